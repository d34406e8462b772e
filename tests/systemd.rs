//! Under a real systemd (systemd-nspawn, see tests/systemd/harness.rs): the units in
//! units/, socket activation, sd_notify, the watchdog and the journal, checked with
//! the guest's own systemctl and journalctl, with nginx in front of pool `blog`.
//!
//! Needs root, systemd-nspawn and debootstrap (scripts/install-deps). The first run
//! builds the guest tree (about 1.5 min, cached in /var/tmp/php-fpm-rs-nspawn).
//! PHP_FPM_RS_SKIP_NSPAWN=1 skips these tests where containers cannot run.

#[path = "systemd/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::Guest;

const UNIT: &str = "php-fpm@blog.service";
const SOCKET: &str = "php-fpm@blog.socket";

fn add_tree(dir: &Path, guest_dir: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).expect("read support dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let guest = format!("{guest_dir}/{name}");
        if e.path().is_dir() {
            add_tree(&e.path(), &guest, out);
        } else {
            out.push((guest, std::fs::read(e.path()).expect("read support file")));
        }
    }
}

/// Boots a guest with the binary, the units, pool `blog`, nginx's site and the
/// extra `files`; `None` when PHP_FPM_RS_SKIP_NSPAWN=1 and containers cannot run.
fn boot(extra: &[(&str, &str)]) -> Option<Guest> {
    if let Some(why) = harness::missing_prerequisite() {
        if std::env::var_os("PHP_FPM_RS_SKIP_NSPAWN").is_some() {
            eprintln!("skipped (PHP_FPM_RS_SKIP_NSPAWN): {why}");
            return None;
        }
        panic!("systemd tests cannot run: {why} (PHP_FPM_RS_SKIP_NSPAWN=1 skips them)");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    add_tree(&root.join("tests/systemd/guest"), "", &mut files);
    add_tree(&root.join("units"), "/etc/systemd/system", &mut files);
    for (path, text) in extra {
        files.push((path.to_string(), text.as_bytes().to_vec()));
    }
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_php-fpm-rs"));
    let guest = Guest::boot(&files, &[(binary, "/usr/sbin/php-fpm-rs".to_string())])
        .expect("the guest boots");
    Some(guest)
}

/// `code body` of one request through nginx, from inside the guest.
fn get(g: &Guest, path: &str) -> (u16, String) {
    let out = g.sh(&format!(
        "curl -sS --max-time 20 -o /tmp/body -w '%{{http_code}}' http://127.0.0.1{path}; echo; cat /tmp/body"
    ));
    let (code, body) = out.split_once('\n').unwrap_or((out.as_str(), ""));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Seconds from connect to first byte of one request (curl's time_starttransfer).
fn first_byte(g: &Guest, path: &str) -> f64 {
    let out = g.sh(&format!(
        "curl -sS --max-time 20 -o /dev/null -w '%{{http_code}} %{{time_connect}} %{{time_starttransfer}}' http://127.0.0.1{path}"
    ));
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.first(), Some(&"200"), "{out}");
    let connect: f64 = f.get(1).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let first: f64 = f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    first - connect
}

fn is_active(g: &Guest, unit: &str) -> String {
    g.exec(&format!("systemctl is-active {unit}"))
        .expect("nsenter")
        .stdout
        .trim()
        .to_string()
}

fn main_pid(g: &Guest) -> u32 {
    g.sh(&format!("systemctl show -p MainPID --value {UNIT}"))
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The unit's journal entries as JSON objects.
fn journal(g: &Guest) -> Vec<serde_json::Value> {
    g.sh(&format!("journalctl -u {UNIT} -o json --no-pager"))
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn field<'a>(e: &'a serde_json::Value, name: &str) -> &'a str {
    e.get(name).and_then(|v| v.as_str()).unwrap_or("")
}

fn start_blog(g: &Guest) {
    g.sh(&format!("systemctl start {SOCKET} nginx.service"));
}

#[test]
fn socket_activation_starts_the_pool_on_the_first_request_and_logs_to_the_journal() {
    let Some(g) = boot(&[]) else { return };
    start_blog(&g);
    assert_eq!(is_active(&g, UNIT), "inactive", "no pool before a request");
    assert_eq!(
        g.exec("pgrep -x php-fpm-rs").expect("nsenter").code,
        1,
        "no pool process before the first request"
    );
    let sock = g.sh("stat -c '%a %U %G %F' /run/php-fpm/blog.sock");
    assert_eq!(sock.trim(), "660 root www-data socket");

    let t0 = Instant::now();
    let (code, body) = get(&g, "/index.php");
    let cold = t0.elapsed();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("hello from pool blog, fpm-fcgi"), "{body}");
    assert_eq!(is_active(&g, UNIT), "active");
    let status = g.sh(&format!("systemctl status --no-pager {UNIT}"));
    assert!(status.contains("active (running)"), "{status}");
    assert!(
        status.contains("Status: \"Processes active: ") && status.contains(", Requests: "),
        "php-fpm's STATUS line from the scoreboard: {status}"
    );
    let procs = g.sh("pgrep -c -x php-fpm-rs");
    assert_eq!(procs.trim(), "5", "master and 4 workers");

    // cold start again, now that the tree's files are cached: stop the service, keep
    // the socket, time connection to first byte
    g.sh(&format!("systemctl stop {UNIT}"));
    assert_eq!(is_active(&g, SOCKET), "active");
    let cold_again = first_byte(&g, "/index.php");
    let warm = first_byte(&g, "/index.php");
    eprintln!(
        "[figures] first request incl. activation (curl wall) {cold:.2?}; cold start connect->first byte {:.1} ms; warm {:.2} ms",
        cold_again * 1000.0,
        warm * 1000.0
    );

    let (code, body) = get(&g, "/warn.php");
    assert_eq!(code, 200, "{body}");
    let entries = g.wait_for(
        "the PHP warning in the journal",
        Duration::from_secs(10),
        |g| {
            let j = journal(g);
            j.iter()
                .any(|e| field(e, "MESSAGE").contains("Undefined variable $undefined_on_purpose"))
                .then_some(j)
        },
    );
    let warning = entries
        .iter()
        .find(|e| field(e, "MESSAGE").contains("Undefined variable $undefined_on_purpose"))
        .expect("found above");
    assert_eq!(field(warning, "PRIORITY"), "4", "{warning}");
    assert_eq!(field(warning, "POOL"), "blog", "{warning}");
    assert_eq!(
        field(warning, "SCRIPT_FILENAME"),
        "/srv/blog/warn.php",
        "{warning}"
    );
    assert_eq!(field(warning, "REQUEST_URI"), "/warn.php", "{warning}");
    assert_eq!(
        field(warning, "WORKER_PID"),
        field(warning, "_PID"),
        "{warning}"
    );
    assert_eq!(
        field(warning, "SYSLOG_IDENTIFIER"),
        "php-fpm-rs",
        "{warning}"
    );

    let started = entries
        .iter()
        .find(|e| field(e, "MESSAGE").starts_with("[pool blog] child "))
        .expect("a child started line");
    assert_eq!(field(started, "POOL"), "blog", "{started}");
    assert_eq!(field(started, "PRIORITY"), "5", "{started}");
    let notice = entries
        .iter()
        .find(|e| field(e, "MESSAGE").contains("in the pool file is not used"))
        .expect("the NOTICE about the pool file's listen");
    assert!(
        field(notice, "MESSAGE").contains("serving on /run/php-fpm/blog.sock"),
        "{notice}"
    );
    assert_eq!(field(notice, "PRIORITY"), "5", "{notice}");

    g.sh(&format!("systemctl stop {SOCKET} {UNIT}"));
    assert_eq!(
        g.exec("test -e /run/php-fpm/blog.sock")
            .expect("nsenter")
            .code,
        1,
        "RemoveOnStop removes the socket file"
    );
}

/// Runs batches of requests through nginx until `stop` is set (at most 40 batches of
/// 200, at most 150 s), counting answers that are not 200.
fn load_until(g: &Guest, stop: &AtomicBool) -> (u64, u64) {
    let (mut ok, mut failed) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(150);
    for _ in 0..40 {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            break;
        }
        let out = g
            .exec("timeout 60 curl -s --parallel --parallel-max 4 --max-time 30 -w 'code=%{http_code}\\n' 'http://127.0.0.1/load.php?n=[1-200]'")
            .expect("nsenter");
        let codes: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("code="))
            .collect();
        ok += codes.iter().filter(|c| **c == "200").count() as u64;
        failed += codes.iter().filter(|c| **c != "200").count() as u64;
        failed += 200u64.saturating_sub(codes.len() as u64);
    }
    (ok, failed)
}

#[test]
fn restart_and_reload_under_load_lose_no_request() {
    let Some(g) = boot(&[]) else { return };
    start_blog(&g);
    assert_eq!(get(&g, "/index.php").0, 200);
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let (ok, failed) = std::thread::scope(|s| {
        let load = s.spawn(|| load_until(&g, &stop));
        for _ in 0..10 {
            let before = main_pid(&g);
            // systemd's start limit (5 starts in 10 s) counts manual restarts too
            g.sh(&format!(
                "systemctl reset-failed {UNIT}; systemctl restart {UNIT}"
            ));
            let after = main_pid(&g);
            assert!(
                after != 0 && after != before,
                "a new master ({before} -> {after})"
            );
        }
        for _ in 0..10 {
            g.sh(&format!("systemctl reload {UNIT}"));
            // RELOADING=1 until the re-executed master sends READY=1
            let deadline = Instant::now() + Duration::from_secs(15);
            while is_active(&g, UNIT) != "active" {
                assert!(Instant::now() < deadline, "the reload completes");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        stop.store(true, Ordering::Relaxed);
        load.join().expect("the load thread")
    });
    eprintln!(
        "[figures] 10 restarts + 10 reloads under load in {:.1?}: {ok} requests answered 200, {failed} failed",
        t0.elapsed()
    );
    assert!(ok >= 200, "the load ran ({ok})");
    assert_eq!(failed, 0, "no request lost across restarts and reloads");
}

#[test]
fn a_stopped_master_is_restarted_by_the_watchdog_and_requests_are_still_served() {
    let dropin = "[Service]\nWatchdogSec=3s\n";
    let Some(g) = boot(&[(
        "/etc/systemd/system/php-fpm@blog.service.d/watchdog.conf",
        dropin,
    )]) else {
        return;
    };
    start_blog(&g);
    assert_eq!(get(&g, "/index.php").0, 200);
    // fed while healthy: still running after two watchdog periods
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(is_active(&g, UNIT), "active");
    let old = main_pid(&g);
    assert!(old > 0);
    let t0 = Instant::now();
    g.sh(&format!("kill -STOP {old}"));
    let served = std::thread::scope(|s| {
        let during = s.spawn(|| (0..3).map(|_| get(&g, "/index.php").0).collect::<Vec<_>>());
        let new = g.wait_for(
            "a new master after the watchdog",
            Duration::from_secs(20),
            |g| {
                let pid = main_pid(g);
                (pid != 0 && pid != old && is_active(g, UNIT) == "active").then_some(pid)
            },
        );
        eprintln!(
            "[figures] watchdog (WatchdogSec=3s): stopped master {old} replaced by {new} after {:.1?}",
            t0.elapsed()
        );
        during.join().expect("requests thread")
    });
    assert!(served.iter().all(|c| *c == 200), "{served:?}");
    assert_eq!(get(&g, "/index.php").0, 200);
    let log = g.sh(&format!("journalctl -u {UNIT} --no-pager"));
    assert!(log.contains("Watchdog timeout"), "{log}");
}

/// `systemd-analyze security` exposure (0 safest .. 10), from its last line.
fn exposure(g: &Guest, unit: &str) -> f64 {
    let out = g
        .exec(&format!("systemd-analyze security --no-pager {unit}"))
        .expect("nsenter");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line for {unit}:\n{}{}", out.stdout, out.stderr));
    line.split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unreadable: {line}"))
}

#[test]
fn the_pool_service_is_sandboxed_more_tightly_than_debians_php_fpm() {
    let Some(g) = boot(&[]) else { return };
    let verify = g.exec(&format!(
        "systemd-analyze verify /etc/systemd/system/{SOCKET} /etc/systemd/system/{UNIT} /etc/systemd/system/php-fpm.target"
    ))
    .expect("nsenter");
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    start_blog(&g);
    // the sandbox still lets the root master switch workers to www-data
    assert_eq!(get(&g, "/index.php").0, 200);
    let users = g.sh("ps -o user= -C php-fpm-rs | sort | uniq -c");
    assert!(
        users.contains("4 www-data") && users.contains("1 root"),
        "{users}"
    );
    let ours = exposure(&g, UNIT);
    let debian = exposure(&g, "php8.2-fpm.service");
    eprintln!("[figures] systemd-analyze security: {UNIT} {ours}, php8.2-fpm.service {debian}");
    assert!(ours < debian, "ours {ours} vs Debian's {debian}");
    // the target starts and stops every enabled pool
    g.sh(&format!(
        "systemctl enable {SOCKET} && systemctl stop {SOCKET} && systemctl start php-fpm.target"
    ));
    assert_eq!(is_active(&g, SOCKET), "active");
    g.sh("systemctl stop php-fpm.target");
    assert_eq!(is_active(&g, SOCKET), "inactive");
}
