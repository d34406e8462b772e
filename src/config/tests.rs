//! Tests for the configuration module, checked against php-fpm 8.2's behaviour.

use super::*;
use std::path::Path;
use std::time::Duration;

const DEBIAN_MAIN: &str = include_str!("testdata/php-fpm.conf");
const DEBIAN_WWW: &str = include_str!("testdata/www.conf");

fn opts() -> LoadOptions {
    let mut env = HashMap::new();
    env.insert("HOME".to_string(), "/home/me".to_string());
    env.insert("PORT".to_string(), "9100".to_string());
    LoadOptions::with_env(env)
}

fn pool_text(body: &str) -> String {
    format!("[global]\nerror_log = /tmp/e.log\n[www]\n{body}\n")
}

fn load_ok(text: &str) -> Loaded {
    match load_str(text, Path::new("/t.conf"), &opts()) {
        Ok(l) => l,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn load_err(text: &str) -> String {
    match load_str(text, Path::new("/t.conf"), &opts()) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const STATIC: &str = "listen = 9000\npm = static\npm.max_children = 2";

#[test]
fn debian_default_files_load_with_expected_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool_d = dir.path().join("pool.d");
    std::fs::create_dir(&pool_d).expect("mkdir");
    std::fs::write(pool_d.join("www.conf"), DEBIAN_WWW).expect("write");
    let main = DEBIAN_MAIN.replace("/etc/php/8.2/fpm/pool.d/*.conf", "pool.d/*.conf");
    let o = LoadOptions {
        prefix: Some(dir.path().to_path_buf()),
        ..opts()
    };
    let l = load_str(&main, &dir.path().join("php-fpm.conf"), &o).expect("loads");
    assert_eq!(l.global.pid, Some("/run/php/php8.2-fpm.pid".into()));
    assert_eq!(
        l.global.error_log,
        LogTarget::File("/var/log/php8.2-fpm.log".into())
    );
    assert_eq!(l.global.log_level, LogLevel::Notice);
    assert!(
        !l.global.daemonize,
        "php-fpm-rs stays in the foreground unless told otherwise"
    );
    assert_eq!(l.pools.len(), 1);
    let p = &l.pools[0];
    assert_eq!(p.name, "www");
    assert_eq!(p.location.line, 4);
    assert_eq!(p.user.as_deref(), Some("www-data"));
    assert_eq!(p.group.as_deref(), Some("www-data"));
    assert_eq!(
        p.listen,
        ListenAddress::Unix("/run/php/php8.2-fpm.sock".into())
    );
    assert_eq!(p.listen_owner.as_deref(), Some("www-data"));
    assert_eq!(p.listen_mode, 0o660);
    assert_eq!(p.listen_backlog, -1);
    assert_eq!(p.pm, PmStyle::Dynamic);
    assert_eq!(
        (
            p.pm_max_children,
            p.pm_start_servers,
            p.pm_min_spare_servers,
            p.pm_max_spare_servers
        ),
        (5, 2, 1, 3)
    );
    assert_eq!(p.pm_max_spawn_rate, 32);
    assert_eq!(p.pm_process_idle_timeout, Duration::from_secs(10));
    assert!(p.clear_env && p.decorate_workers_output && !p.catch_workers_output);
    assert_eq!(p.security_limit_extensions, vec![".php", ".phar"]);
    assert_eq!(p.ping_response, None);
    // Debian's www.conf sets only directives php-fpm-rs implements
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn debian_installed_php_fpm_config_loads_unchanged() {
    // The test set-up installs php8.2-fpm (the reference), so its real files are here.
    let real = Path::new("/etc/php/8.2/fpm/php-fpm.conf");
    let l = load(real, &opts()).expect("real Debian config loads");
    assert!(l.pools.iter().any(|p| p.name == "www"));
}

#[test]
fn include_glob_loads_files_sorted_and_pools_can_be_split() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join("pool.d")).expect("mkdir");
    std::fs::write(d.join("pool.d/b.conf"), "[WWW]\npm.max_children = 7\n").expect("write");
    std::fs::write(
        d.join("pool.d/a.conf"),
        "[www]\nlisten = 9000\npm = static\npm.max_children = 3\n",
    )
    .expect("write");
    std::fs::write(d.join("pool.d/notes.txt"), "garbage").expect("write");
    let text = "[global]\nerror_log = /tmp/e.log\ninclude = pool.d/*.conf\n";
    let o = LoadOptions {
        prefix: Some(d.to_path_buf()),
        ..opts()
    };
    let l = load_str(text, &d.join("main.conf"), &o).expect("loads");
    assert_eq!(l.pools.len(), 1);
    // b.conf comes after a.conf and reopens the same pool (names ignore case).
    assert_eq!(l.pools[0].pm_max_children, 7);
    assert_eq!(l.pools[0].location.file, d.join("pool.d/a.conf"));
}

#[test]
fn include_matching_nothing_warns_but_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let l = load_ok(&format!("[global]\ninclude = {d}/*.conf\n[www]\n{STATIC}"));
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0]
        .to_string()
        .starts_with("/t.conf:2: nothing matches"));
    let e = load_err(&format!(
        "[global]\ninclude = {d}/nope/*.conf\n[www]\n{STATIC}"
    ));
    assert!(
        e.contains("/t.conf:2: cannot expand include pattern"),
        "{e}"
    );
}

#[test]
fn includes_nested_more_than_five_deep_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for i in 0..7 {
        std::fs::write(
            d.join(format!("{i}.conf")),
            format!("include = {}/{}.conf\n", d.display(), i + 1),
        )
        .expect("write");
    }
    let e = load_err(&format!(
        "include = {}/0.conf\n[www]\n{STATIC}",
        d.display()
    ));
    assert!(e.contains("more than 5 files nested"), "{e}");
}

#[test]
fn unreadable_main_file_says_cannot_read() {
    let e = load(Path::new("/nonexistent/x.conf"), &opts()).expect_err("fails");
    assert_eq!(
        e.to_string(),
        "cannot read /nonexistent/x.conf: No such file or directory"
    );
}

#[test]
fn dollar_pool_expands_in_listen_and_values() {
    let l = load_ok(&pool_text(
        "listen = /run/php/$pool.sock\npm = static\npm.max_children = 1\nphp_value[session.name] = $pool-sess\nenv[POOL] = $pool",
    ));
    let p = &l.pools[0];
    assert_eq!(p.listen, ListenAddress::Unix("/run/php/www.sock".into()));
    assert_eq!(p.php_values[0].value, "www-sess");
    // $pool is expanded before env's $VAR lookup, as in php-fpm.
    assert_eq!(p.env, vec![("POOL".to_string(), "www".to_string())]);
}

#[test]
fn dollar_pool_in_global_section_is_an_error() {
    let e = load_err(&format!("[global]\npid = /run/$pool.pid\n[www]\n{STATIC}"));
    assert!(
        e.contains("/t.conf:2: invalid value '/run/$pool.pid' for 'pid'"),
        "{e}"
    );
}

#[test]
fn env_expansion_in_braces_works_in_plain_and_double_quoted_values_only() {
    let l = load_ok(&pool_text(
        "listen = 127.0.0.1:${PORT}\npm = static\npm.max_children = 1\nphp_value[a] = \"${HOME}/x\"\nphp_value[b] = '${HOME}'",
    ));
    let p = &l.pools[0];
    assert_eq!(
        p.listen,
        ListenAddress::Tcp {
            host: Some("127.0.0.1".into()),
            port: 9100
        }
    );
    assert_eq!(p.php_values[0].value, "/home/me/x");
    assert_eq!(p.php_values[1].value, "${HOME}");
}

#[test]
fn env_entries_keep_order_and_take_dollar_values_from_the_master_env() {
    let l = load_ok(&pool_text(&format!(
        "{STATIC}\nenv[PATH] = /usr/bin:/bin\nenv[H] = $HOME\nenv[MISSING] = $NOPE\nenv[LIT] = a$b"
    )));
    assert_eq!(
        l.pools[0].env,
        vec![
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("H".to_string(), "/home/me".to_string()),
            ("MISSING".to_string(), String::new()),
            ("LIT".to_string(), "a$b".to_string()),
        ]
    );
}

#[test]
fn empty_env_value_is_an_error() {
    let e = load_err(&pool_text(&format!("{STATIC}\nenv[X] =")));
    assert!(
        e.contains("/t.conf:7: invalid value '' for 'env[X]'"),
        "{e}"
    );
}

#[test]
fn time_suffixes_become_durations() {
    let l = load_ok(&pool_text(
        "listen = 9000\npm = ondemand\npm.max_children = 1\npm.process_idle_timeout = 2m\nrequest_terminate_timeout = 1h\nrequest_slowlog_timeout = 30\nslowlog = /tmp/slow.log",
    ));
    let p = &l.pools[0];
    assert_eq!(p.pm_process_idle_timeout, Duration::from_secs(120));
    assert_eq!(p.request_terminate_timeout, Duration::from_secs(3600));
    assert_eq!(p.request_slowlog_timeout, Duration::from_secs(30));
    let e = load_err(&pool_text(&format!(
        "{STATIC}\nrequest_terminate_timeout = 5x"
    )));
    assert!(
        e.contains("/t.conf:7: invalid value '5x' for 'request_terminate_timeout'"),
        "{e}"
    );
}

#[test]
fn php_admin_value_and_php_value_are_told_apart_and_flags_normalised() {
    let l = load_ok(&pool_text(&format!(
        "{STATIC}\nphp_value[memory_limit] = 64M\nphp_admin_value[error_log] = /var/log/x.log\nphp_flag[display_errors] = off\nphp_admin_flag[log_errors] = on\nphp_value[error_reporting] = E_ALL & ~E_DEPRECATED"
    )));
    let v = &l.pools[0].php_values;
    let e = |name: &str, value: &str, admin, flag| PhpIniEntry {
        name: name.into(),
        value: value.into(),
        admin,
        flag,
    };
    assert_eq!(
        v,
        &vec![
            e("memory_limit", "64M", false, false),
            e("error_log", "/var/log/x.log", true, false),
            e("display_errors", "0", false, true),
            e("log_errors", "1", true, true),
            e("error_reporting", "24575", false, false),
        ]
    );
}

#[test]
fn relative_php_error_log_is_anchored_at_the_prefix() {
    let l = load_ok(&pool_text(&format!(
        "{STATIC}\nphp_admin_value[error_log] = log/x.log"
    )));
    assert_eq!(l.pools[0].php_values[0].value, "/usr/log/x.log");
}

#[test]
fn listen_addresses_parse_like_php_fpm() {
    let base = Path::new("/pfx");
    let tcp = |h: Option<&str>, port| ListenAddress::Tcp {
        host: h.map(String::from),
        port,
    };
    assert_eq!(loader::parse_listen("9000", base), Ok(tcp(None, 9000)));
    assert_eq!(loader::parse_listen("*:9000", base), Ok(tcp(None, 9000)));
    assert_eq!(
        loader::parse_listen("127.0.0.1:9000", base),
        Ok(tcp(Some("127.0.0.1"), 9000))
    );
    assert_eq!(
        loader::parse_listen("[::1]:9000", base),
        Ok(tcp(Some("::1"), 9000))
    );
    assert_eq!(
        loader::parse_listen("localhost:9", base),
        Ok(tcp(Some("localhost"), 9))
    );
    assert_eq!(
        loader::parse_listen("/run/a.sock", base),
        Ok(ListenAddress::Unix("/run/a.sock".into()))
    );
    assert_eq!(
        loader::parse_listen("a.sock", base),
        Ok(ListenAddress::Unix("/pfx/a.sock".into()))
    );
    assert!(loader::parse_listen("1.2.3.4:0", base).is_err());
    assert!(loader::parse_listen("1.2.3.4:99999", base).is_err());
}

#[test]
fn unknown_directive_names_file_and_line() {
    let e = load_err(&pool_text(&format!("{STATIC}\npm.maxchildren = 5")));
    assert_eq!(e, "/t.conf:7: unknown entry 'pm.maxchildren'");
}

#[test]
fn bad_integer_names_the_value_and_the_expectation() {
    let e = load_err(&pool_text(
        "listen = 9000\npm = static\npm.max_children = abc",
    ));
    assert_eq!(
        e,
        "/t.conf:6: invalid value 'abc' for 'pm.max_children': expected an integer"
    );
}

#[test]
fn every_bad_line_is_reported_not_just_the_first() {
    let e = load_err(&pool_text(&format!(
        "{STATIC}\nfoo = 1\n# not a comment in php 8\ncatch_workers_output = maybe\nlisten.mode = 999\nbar[x] = 2"
    )));
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 5, "{e}");
    assert!(lines[0].starts_with("/t.conf:7: unknown entry 'foo'"));
    assert!(lines[1].starts_with("/t.conf:8: "));
    assert!(lines[2].starts_with("/t.conf:9: invalid value 'maybe' for 'catch_workers_output'"));
    assert!(lines[3].starts_with("/t.conf:10: invalid value '999' for 'listen.mode'"));
    assert!(lines[4].starts_with("/t.conf:11: unknown entry 'bar[x]'"));
}

#[test]
fn not_implemented_directive_yields_a_warning_naming_it() {
    let l = load_ok(&pool_text(&format!("{STATIC}\nlisten.acl_users = nginx")));
    assert_eq!(l.pools[0].listen_acl_users.as_deref(), Some("nginx"));
    assert_eq!(
        l.warnings[0].to_string(),
        "/t.conf:7: directive 'listen.acl_users' is not supported yet and is ignored"
    );
}

#[test]
fn missing_listen_names_the_pool_header() {
    let e = load_err(&pool_text("pm = static\npm.max_children = 1"));
    assert!(
        e.starts_with("/t.conf:3: [pool www] no listen address"),
        "{e}"
    );
}

#[test]
fn missing_pm_names_the_pool_header() {
    let e = load_err(&pool_text("listen = 9000\npm.max_children = 1"));
    assert!(
        e.starts_with("/t.conf:3: [pool www] the process manager is missing"),
        "{e}"
    );
}

#[test]
fn zero_max_children_is_rejected_at_its_line() {
    let e = load_err(&pool_text(
        "listen = 9000\npm = static\npm.max_children = 0",
    ));
    assert_eq!(e, "/t.conf:6: [pool www] pm.max_children = 0: must be >= 1");
}

#[test]
fn dynamic_spare_rules_are_checked() {
    let dynamic = |rest: &str| {
        pool_text(&format!(
            "listen = 9000\npm = dynamic\npm.max_children = 5\n{rest}"
        ))
    };
    assert!(load_err(&dynamic(
        "pm.min_spare_servers = 0\npm.max_spare_servers = 2"
    ))
    .contains("pm.min_spare_servers = 0: must be >= 1"));
    assert!(load_err(&dynamic(
        "pm.min_spare_servers = 1\npm.max_spare_servers = 0"
    ))
    .contains("pm.max_spare_servers = 0: must be >= 1"));
    assert!(load_err(&dynamic(
        "pm.min_spare_servers = 3\npm.max_spare_servers = 2"
    ))
    .contains("must not be less than pm.min_spare_servers (3)"));
    assert!(load_err(&dynamic(
        "pm.min_spare_servers = 1\npm.max_spare_servers = 6"
    ))
    .contains("must not be greater than pm.max_children (5)"));
    assert!(load_err(&dynamic(
        "pm.min_spare_servers = 2\npm.max_spare_servers = 3\npm.start_servers = 4"
    ))
    .contains("/t.conf:9: [pool www] pm.start_servers = 4: must be between"));
    let l = load_ok(&dynamic(
        "pm.min_spare_servers = 1\npm.max_spare_servers = 4",
    ));
    assert_eq!(l.pools[0].pm_start_servers, 2);
}

#[test]
fn ondemand_needs_a_positive_idle_timeout() {
    let e = load_err(&pool_text(
        "listen = 9000\npm = ondemand\npm.max_children = 2\npm.process_idle_timeout = 0",
    ));
    assert!(
        e.contains("/t.conf:7: [pool www] pm.process_idle_timeout"),
        "{e}"
    );
}

#[test]
fn status_and_ping_paths_must_start_with_slash_and_response_be_non_empty() {
    let e = load_err(&pool_text(&format!(
        "{STATIC}\npm.status_path = status\nping.path = /ping\nping.response ="
    )));
    assert!(
        e.contains("pm.status_path = status: must start with '/'"),
        "{e}"
    );
    assert!(e.contains("ping.response is empty"), "{e}");
    let l = load_ok(&pool_text(&format!("{STATIC}\nping.path = /ping")));
    assert_eq!(l.pools[0].ping_response.as_deref(), Some("pong"));
}

#[test]
fn limit_extensions_split_on_blanks_and_warn_without_dot() {
    let l = load_ok(&pool_text(&format!(
        "{STATIC}\nsecurity.limit_extensions = .php  \t php7"
    )));
    assert_eq!(l.pools[0].security_limit_extensions, vec![".php", "php7"]);
    assert!(l.warnings[0]
        .message
        .contains("'php7' does not start with '.'"));
    let l = load_ok(&pool_text(&format!(
        "{STATIC}\nsecurity.limit_extensions ="
    )));
    assert!(l.pools[0].security_limit_extensions.is_empty());
}

#[test]
fn empty_pool_name_and_no_pool_are_errors() {
    assert!(load_err("[global]\n").contains("no pool defined"));
    assert!(load_err(&format!("[]\n{STATIC}")).contains("pool name must not be empty"));
}

#[test]
fn section_named_global_in_any_case_is_the_global_section() {
    let l = load_ok(&format!("[www]\n{STATIC}\n[GLOBAL]\nlog_level = debug\n"));
    assert_eq!(l.global.log_level, LogLevel::Debug);
    assert_eq!(l.pools.len(), 1);
}

#[test]
fn two_pools_on_one_address_are_rejected() {
    let e = load_err(&format!("[a]\n{STATIC}\n[b]\n{STATIC}\n"));
    assert!(
        e.contains("[pool b] listen address is already used by pool 'a'"),
        "{e}"
    );
}

#[test]
fn chroot_expands_dollar_prefix_only_at_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = LoadOptions {
        prefix: Some(dir.path().to_path_buf()),
        ..opts()
    };
    let text = pool_text(&format!("{STATIC}\nchroot = $prefix"));
    let l = load_str(&text, Path::new("/t.conf"), &o).expect("loads");
    assert_eq!(l.pools[0].chroot.as_deref(), Some(dir.path()));
    let e = load_err(&pool_text(&format!("{STATIC}\nchroot = /x$prefix")));
    assert!(e.contains("'$prefix' must be at the beginning"), "{e}");
}

#[test]
fn directive_names_ignore_case_but_array_names_do_not() {
    let l = load_ok(&pool_text(
        "LISTEN = 9000\nPm = static\npm.MAX_children = 1",
    ));
    assert_eq!(l.pools[0].pm_max_children, 1);
    let e = load_err(&pool_text(&format!("{STATIC}\nPhp_value[x] = 1")));
    assert!(e.contains("unknown entry 'Php_value[x]'"), "{e}");
}

#[test]
fn a_pool_file_is_loaded_after_the_global_section_of_the_main_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("php-fpm.conf");
    let pool = dir.path().join("blog.conf");
    std::fs::write(&main, "[global]\nlog_level = debug\n").expect("write");
    std::fs::write(&pool, format!("[blog]\n{STATIC}\n")).expect("write");
    let l = match load_with_pool_file(&main, &pool, &opts()) {
        Ok(l) => l,
        Err(e) => panic!("unexpected errors:\n{e}"),
    };
    assert_eq!(l.global.log_level, LogLevel::Debug);
    assert_eq!(l.pools.len(), 1);
    assert_eq!(l.pools[0].name, "blog");
}

#[test]
fn a_pool_file_with_a_main_file_that_includes_pools_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("php-fpm.conf");
    let pool = dir.path().join("blog.conf");
    std::fs::write(&main, format!("[global]\n[www]\n{STATIC}\n")).expect("write");
    std::fs::write(
        &pool,
        "[blog]\nlisten = 9001\npm = static\npm.max_children = 1\n",
    )
    .expect("write");
    let e = load_with_pool_file(&main, &pool, &opts())
        .expect_err("main file brings a pool")
        .to_string();
    assert!(
        e.contains("must hold only [global]") && e.contains("www"),
        "{e}"
    );
}
