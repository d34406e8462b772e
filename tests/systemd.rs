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

/// Waits for the service to be active. The workers accept as soon as they are forked,
/// so the first answer after an activation may come before systemd has processed the
/// master's READY=1.
fn wait_active(g: &Guest) {
    g.wait_for("the service active", Duration::from_secs(10), |g| {
        (is_active(g, UNIT) == "active").then_some(())
    });
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
    // this pool also logs each request to the journal (access.log = journal)
    let pool = format!(
        "{}\naccess.log = journal\naccess.format = \"%R %m %r%Q%q %s %{{mili}}d ms\"\n",
        include_str!("systemd/guest/etc/php-fpm-rs/pool.d/blog.conf")
    );
    let Some(g) = boot(&[("/etc/php-fpm-rs/pool.d/blog.conf", pool.as_str())]) else {
        return;
    };
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
    wait_active(&g);
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

    // one access entry per request, with its fields and access.format's line
    let (code, _) = get(&g, "/index.php?from=test");
    assert_eq!(code, 200);
    let entries = g.wait_for(
        "the access entry in the journal",
        Duration::from_secs(10),
        |g| {
            let j = journal(g);
            j.iter()
                .any(|e| {
                    field(e, "REQUEST_URI") == "/index.php"
                        && !field(e, "STATUS").is_empty()
                        && field(e, "MESSAGE").contains("?from=test")
                })
                .then_some(j)
        },
    );
    let access: Vec<_> = entries
        .iter()
        .filter(|e| !field(e, "STATUS").is_empty())
        .collect();
    let e = access
        .iter()
        .find(|e| field(e, "MESSAGE").contains("?from=test"))
        .expect("found above");
    assert_eq!(field(e, "STATUS"), "200", "{e}");
    assert_eq!(field(e, "REQUEST_METHOD"), "GET", "{e}");
    assert_eq!(field(e, "SCRIPT_FILENAME"), "/srv/blog/index.php", "{e}");
    assert_eq!(
        field(e, "REMOTE_ADDR"),
        "127.0.0.1",
        "the client, from nginx: {e}"
    );
    assert_eq!(field(e, "POOL"), "blog", "{e}");
    for f in ["DURATION_USEC", "CPU_PERCENT", "MEMORY_BYTES", "WORKER_PID"] {
        assert!(!field(e, f).is_empty(), "{f} in {e}");
    }
    let message = field(e, "MESSAGE");
    assert!(
        message.contains(" GET /index.php?from=test 200 ") && message.ends_with(" ms"),
        "MESSAGE is the access.format line: {message}"
    );
    // every request so far has its entry: index twice, warn once, and this one
    let by_uri = |u: &str| {
        access
            .iter()
            .filter(|e| field(e, "REQUEST_URI") == u)
            .count()
    };
    assert!(
        by_uri("/index.php") >= 3 && by_uri("/warn.php") == 1,
        "{access:?}"
    );
    let failed = g.sh("journalctl -u php-fpm@blog STATUS=500 -o cat | wc -l");
    assert_eq!(failed.trim(), "0", "filtering on a field works");

    g.sh(&format!("systemctl stop {SOCKET} {UNIT}"));
    assert_eq!(
        g.exec("test -e /run/php-fpm/blog.sock")
            .expect("nsenter")
            .code,
        1,
        "RemoveOnStop removes the socket file"
    );
}

/// What a load run got: answers 200, and every other outcome (code, URL, time, curl's
/// error), missing answers included.
#[derive(Debug, Default)]
struct Load {
    ok: u64,
    failed: Vec<String>,
}

/// Runs batches of requests through nginx, `parallel` at a time, until `stop` is set
/// (at most 40 batches of 200, at most 150 s).
fn load_until(g: &Guest, stop: &AtomicBool, parallel: u32) -> Load {
    let mut load = Load::default();
    let deadline = Instant::now() + Duration::from_secs(150);
    for _ in 0..40 {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            break;
        }
        let out = g
            .exec(&format!("timeout 60 curl -s --parallel --parallel-max {parallel} --max-time 30 -w 'code=%{{http_code}} %{{url_effective}} %{{time_total}} %{{errormsg}}\n' 'http://127.0.0.1/load.php?n=[1-200]'"))
            .expect("nsenter");
        let answers: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("code="))
            .collect();
        for a in &answers {
            if a.starts_with("200 ") {
                load.ok += 1;
            } else {
                load.failed.push((*a).to_string());
            }
        }
        for _ in answers.len()..200 {
            load.failed
                .push(format!("no answer (curl exited {})", out.code));
        }
    }
    load
}

/// Asserts that a load lost nothing; shows php-fpm-rs's warnings when it did.
fn assert_no_failure(g: &Guest, load: &Load, what: &str) {
    if load.failed.is_empty() {
        return;
    }
    let warnings = g
        .exec("journalctl -o short-precise --no-pager -p warning SYSLOG_IDENTIFIER=php-fpm-rs + _PID=1 UNIT=php-fpm@blog.service; echo '--- nginx ---'; grep -v '\\[notice\\]' /var/log/nginx/error.log | tail -20")
        .map(|r| r.stdout)
        .unwrap_or_default();
    panic!(
        "{what}: {} of {} requests failed: {:#?}\n--- warnings ---\n{warnings}",
        load.failed.len(),
        load.ok + load.failed.len() as u64,
        load.failed
    );
}

/// php-fpm-rs's own journal lines (MESSAGE only) that contain `needle`. Selected by
/// SYSLOG_IDENTIFIER rather than by unit: with systemd's debug logging on, journald
/// may attribute a freshly started master's first lines to the process systemd forked
/// it from (its cached `(p-fpm-rs)` metadata, in init.scope).
fn fpm_lines(g: &Guest, needle: &str) -> Vec<String> {
    lines_of(g, "SYSLOG_IDENTIFIER=php-fpm-rs", needle)
}

/// What systemd itself logged about the service.
fn manager_lines(g: &Guest, needle: &str) -> Vec<String> {
    lines_of(g, &format!("_PID=1 UNIT={UNIT}"), needle)
}

fn lines_of(g: &Guest, matches: &str, needle: &str) -> Vec<String> {
    g.sh(&format!("journalctl -o cat --no-pager {matches}"))
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The master's children (its workers, old generation included), sorted.
fn workers(g: &Guest) -> Vec<u32> {
    let pid = main_pid(g);
    if pid == 0 {
        return Vec::new();
    }
    let out = g.exec(&format!("pgrep -P {pid}")).expect("nsenter").stdout;
    let mut pids: Vec<u32> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    pids.sort_unstable();
    pids
}

/// `systemctl reload` of a master that has been reloaded `done` times since it
/// started, then waits for the reloaded image's "ready to handle connections" (logged
/// just before READY=1: `done + 2` of them from that pid) and the unit active again.
/// systemd 252 may return from `systemctl reload` as soon as `kill -USR2` has run,
/// when the master's RELOADING=1 comes after that. Returns the time to READY.
fn reload_and_wait(g: &Guest, master: u32, done: usize) -> Duration {
    let t0 = Instant::now();
    g.sh(&format!("systemctl reload {UNIT}"));
    let ready = format!("SYSLOG_IDENTIFIER=php-fpm-rs _PID={master}");
    g.wait_for(
        "the reloaded master's READY",
        Duration::from_secs(20),
        |g| {
            (lines_of(g, &ready, "ready to handle connections").len() >= done + 2
                && is_active(g, UNIT) == "active")
                .then_some(())
        },
    );
    t0.elapsed()
}

/// systemd's own debug lines for the unit ("Got notification message from PID ...")
/// show what the master sent on NOTIFY_SOCKET.
fn notify_messages(g: &Guest, pid: u32) -> Vec<String> {
    manager_lines(g, &format!("Got notification message from PID {pid} ("))
}

fn stats(name: &str, v: &[Duration]) -> String {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let median = ms.get(ms.len() / 2).copied().unwrap_or(0.0);
    let max = ms.last().copied().unwrap_or(0.0);
    format!("{name} median {median:.0} ms, max {max:.0} ms")
}

#[test]
fn restart_and_reload_under_load_lose_no_request() {
    let Some(g) = boot(&[]) else { return };
    // systemd logs every sd_notify message it receives at debug level
    g.sh("systemd-analyze log-level debug");
    start_blog(&g);
    assert_eq!(get(&g, "/index.php").0, 200);
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let (mut restarts, mut reloads, mut drains) = (Vec::new(), Vec::new(), Vec::new());
    let load = std::thread::scope(|s| {
        let load = s.spawn(|| load_until(&g, &stop, 4));
        for _ in 0..10 {
            let before = main_pid(&g);
            let t = Instant::now();
            // systemd's start limit (5 starts in 10 s) counts manual restarts too
            g.sh(&format!(
                "systemctl reset-failed {UNIT}; systemctl restart {UNIT}"
            ));
            restarts.push(t.elapsed());
            let after = main_pid(&g);
            assert!(
                after != 0 && after != before,
                "a new master ({before} -> {after})"
            );
        }
        let master = main_pid(&g);
        for i in 0..10 {
            let old = g.wait_for(
                "4 workers of one generation",
                Duration::from_secs(20),
                |g| {
                    let w = workers(g);
                    (w.len() == 4).then_some(w)
                },
            );
            reloads.push(reload_and_wait(&g, master, i));
            assert_eq!(main_pid(&g), master, "reload {i} keeps the master's pid");
            // the new generation was forked by the same master; the old one finishes
            // its requests and leaves
            let t = Instant::now();
            let new = g.wait_for(
                "a new generation of workers, the old one gone",
                Duration::from_secs(20),
                |g| {
                    let w = workers(g);
                    (w.len() == 4 && w.iter().all(|p| !old.contains(p))).then_some(w)
                },
            );
            drains.push(t.elapsed());
            assert!(new.iter().all(|p| !old.contains(p)), "{old:?} -> {new:?}");
        }
        stop.store(true, Ordering::Relaxed);
        load.join().expect("the load thread")
    });
    eprintln!(
        "[figures] 10 restarts + 10 reloads under load in {:.1?}: {} requests answered 200, {} failed; {}; {}; {}",
        t0.elapsed(),
        load.ok,
        load.failed.len(),
        stats("restart", &restarts),
        stats("reload to READY", &reloads),
        stats("then old generation gone", &drains),
    );
    assert!(load.ok >= 200, "the load ran ({})", load.ok);
    assert_no_failure(&g, &load, "restarts and reloads");

    let master = main_pid(&g);
    assert!(fpm_lines(&g, "Reloading in progress").len() >= 10);
    assert!(
        fpm_lines(&g, "using inherited socket").len() >= 10,
        "the reloaded image serves the socket it was handed"
    );
    assert!(fpm_lines(&g, "reloading: execv(\"/usr/sbin/php-fpm-rs\"").len() >= 10);
    // what systemd received from the master that was reloaded ten times
    let sent = notify_messages(&g, master);
    let reloading: Vec<&String> = sent.iter().filter(|m| m.contains("RELOADING=1")).collect();
    assert_eq!(reloading.len(), 10, "{sent:#?}");
    assert!(
        reloading.iter().all(|m| m.contains("MONOTONIC_USEC=")),
        "{reloading:#?}"
    );
    // systemd 252 finishes the reload job when ExecReload's `kill` exits; the job
    // waits for READY=1 only when RELOADING=1 arrived before that
    let (mut early, mut waiting) = (0, None);
    for l in manager_lines(&g, "") {
        if l.starts_with(&format!("Reloading {UNIT}")) {
            waiting = Some(false);
        } else if l.contains(&format!("from PID {master} (READY=1")) {
            waiting = waiting.map(|_| true);
        } else if l.starts_with(&format!("Reloaded {UNIT}")) {
            early += usize::from(waiting == Some(false));
            waiting = None;
        }
    }
    eprintln!("[figures] `systemctl reload` returned before the master's READY=1 in {early} of 10 reloads");
    let ready = sent.iter().filter(|m| m.contains("READY=1")).count();
    assert_eq!(
        ready, 11,
        "READY=1 at start and after each reload: {sent:#?}"
    );
    assert!(
        sent.iter()
            .filter(|m| m.contains("READY=1"))
            .all(|m| m.contains(&format!("MAINPID={master}"))),
        "{sent:#?}"
    );
}

#[test]
fn a_slow_request_survives_reloads_while_fast_ones_stay_fast() {
    let Some(g) = boot(&[]) else { return };
    start_blog(&g);
    assert_eq!(get(&g, "/index.php").0, 200);
    let master = main_pid(&g);
    let started = Instant::now();
    let (slow, probes, reloads, slow_pid) = std::thread::scope(|s| {
        let slow = s.spawn(|| {
            g.sh("curl -sS --max-time 20 -o /tmp/slow -w '%{http_code} %{time_total}' http://127.0.0.1/slow.php; echo; cat /tmp/slow")
        });
        // the worker running it, from the status page
        let slow_pid = g.wait_for("slow.php running", Duration::from_secs(10), |g| {
            status_processes(g).into_iter().find_map(|p| {
                (p.get("request uri").and_then(|v| v.as_str()) == Some("/slow.php")
                    && p.get("state").and_then(|v| v.as_str()) == Some("Running"))
                .then(|| p.get("pid").and_then(serde_json::Value::as_u64))
                .flatten()
            })
        });
        // fast requests one after the other, each timed by curl, until told to stop
        g.sh("rm -f /tmp/stop-probe");
        let probe = s.spawn(|| {
            g.sh("timeout 60 bash -c 'for i in $(seq 1 400); do [ -e /tmp/stop-probe ] && break; curl -s -o /dev/null --max-time 10 -w \"%{http_code} %{time_total}\\n\" http://127.0.0.1/index.php; done'")
        });
        let mut reloads = Vec::new();
        while reloads.len() < 3 && alive(&g, slow_pid) {
            reloads.push(reload_and_wait(&g, master, reloads.len()));
        }
        g.sh("touch /tmp/stop-probe");
        (
            slow.join().expect("slow thread"),
            probe.join().expect("probe thread"),
            reloads,
            slow_pid,
        )
    });
    assert!(
        !reloads.is_empty(),
        "the slow request was still running when the first reload completed"
    );
    assert_eq!(main_pid(&g), master, "reloads keep the master's pid");
    let (head, body) = slow.split_once('\n').unwrap_or((slow.as_str(), ""));
    let f: Vec<&str> = head.split_whitespace().collect();
    assert_eq!(f.first(), Some(&"200"), "{slow}");
    assert_eq!(body.trim(), "slow done", "{slow}");
    let slow_secs: f64 = f.get(1).and_then(|t| t.parse().ok()).unwrap_or(0.0);
    assert!(slow_secs >= 2.0, "the slow request ran to its end: {slow}");
    let times: Vec<f64> = probes
        .lines()
        .map(|l| {
            let (code, t) = l.split_once(' ').unwrap_or((l, "0"));
            assert_eq!(code, "200", "fast request during reloads: {probes}");
            t.trim().parse().unwrap_or(f64::MAX)
        })
        .collect();
    assert!(times.len() >= 5, "the probe ran: {probes}");
    let worst = times.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "[figures] {} reload(s) while slow.php (2 s) ran in worker {slow_pid}: slow answered 200 after {slow_secs:.2} s; {} fast requests meanwhile, worst {:.1} ms; {}; {:.1?} in all",
        reloads.len(),
        times.len(),
        worst * 1000.0,
        stats("reload to READY", &reloads),
        started.elapsed()
    );
    // a fast request that waited for the slow one would take a second or more
    assert!(
        worst < 1.0,
        "fast requests stay fast during reloads: {probes}"
    );
    let exited = fpm_lines(&g, &format!("child {slow_pid} exited with code 0"));
    assert_eq!(exited.len(), 1, "the old worker left after its request");
}

fn alive(g: &Guest, pid: u64) -> bool {
    g.exec(&format!("kill -0 {pid}")).expect("nsenter").code == 0
}

/// The pool's workers as the status page (`?json&full`) shows them.
fn status_processes(g: &Guest) -> Vec<serde_json::Value> {
    let out = g
        .exec("curl -sS --max-time 10 'http://127.0.0.1/fpm-status?json&full'")
        .expect("nsenter");
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.get("processes").and_then(|p| p.as_array()).cloned())
        .unwrap_or_default()
}

/// A property of the pool's service, as `systemctl show` gives it.
fn show(g: &Guest, property: &str) -> String {
    g.sh(&format!("systemctl show -p {property} --value {UNIT}"))
        .trim()
        .to_string()
}

/// php-fpm's STATUS= line, parsed: `Processes active: 0, idle: 4, Requests: 20,
/// slow: 0, Traffic: 0.5req/sec`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct StatusLine {
    active: u32,
    idle: u32,
    requests: u64,
    slow: u64,
    traffic: f64,
}

fn parse_status(text: &str) -> Option<StatusLine> {
    let mut f = text.trim().split(", ");
    let mut next = |prefix: &str| f.next()?.strip_prefix(prefix).map(str::to_string);
    Some(StatusLine {
        active: next("Processes active: ")?.parse().ok()?,
        idle: next("idle: ")?.parse().ok()?,
        requests: next("Requests: ")?.parse().ok()?,
        slow: next("slow: ")?.parse().ok()?,
        traffic: next("Traffic: ")?.strip_suffix("req/sec")?.parse().ok()?,
    })
}

fn status_text(g: &Guest) -> String {
    show(g, "StatusText")
}

/// `n` requests one after the other through nginx; all must be answered 200.
fn requests(g: &Guest, n: u32) {
    let codes = g.sh(&format!(
        "for i in $(seq 1 {n}); do curl -s -o /dev/null --max-time 10 -w '%{{http_code}}\\n' http://127.0.0.1/index.php; done"
    ));
    assert_eq!(
        codes.lines().filter(|c| *c == "200").count(),
        n as usize,
        "{codes}"
    );
}

/// Stops a worker, checks that it sits idle (its slot on the status page, and no
/// accepted connection), then SIGSEGVs it and lets it die; retries with another
/// worker when it was busy. A stopped worker is out of accept(), so it cannot take a
/// connection meanwhile: the crash fails no request. Returns its pid.
fn crash_an_idle_worker(g: &Guest) -> u32 {
    g.wait_for("an idle worker to crash", Duration::from_secs(30), |g| {
        for w in workers(g) {
            let stopped = g
                .exec(&format!(
                    "kill -STOP {w} && for i in $(seq 1 200); do [ \"$(cut -d' ' -f3 /proc/{w}/stat)\" = T ] && exit 0; sleep 0.01; done; exit 1"
                ))
                .expect("nsenter");
            if stopped.code != 0 {
                let _ = g.exec(&format!("kill -CONT {w}"));
                continue;
            }
            // a stop signal that wakes accept() while a connection is queued lets the
            // accept succeed first: the worker may hold a connection while its slot
            // still reads Idle, so look for an accepted (connected stream) socket too
            let idle = status_processes(g).iter().any(|p| {
                p.get("pid").and_then(serde_json::Value::as_u64) == Some(u64::from(w))
                    && p.get("state").and_then(|v| v.as_str()) == Some("Idle")
            }) && g
                .exec(&format!(
                    "ss -xpH state established | awk '$1 == \"u_str\"' | grep -q 'pid={w},'"
                ))
                .expect("nsenter")
                .code
                == 1;
            if idle {
                g.sh(&format!("kill -SEGV {w}; kill -CONT {w}"));
                return Some(w);
            }
            g.sh(&format!("kill -CONT {w}"));
        }
        None
    })
}

const CRASHY_GLOBAL: &str = "[global]
log_level = notice
; three crashes within 30 s: the master gives up and systemd restarts it
emergency_restart_threshold = 3
emergency_restart_interval = 30s
; the STATUS= line every second
systemd_interval = 1s
";

#[test]
fn status_is_refreshed_and_crashing_workers_get_the_pool_restarted_by_systemd() {
    let Some(g) = boot(&[("/etc/php-fpm-rs/php-fpm.conf", CRASHY_GLOBAL)]) else {
        return;
    };
    // systemd logs every sd_notify message it receives at debug level
    g.sh("systemd-analyze log-level debug");
    start_blog(&g);

    // STATUS=, refreshed every systemd_interval from the scoreboard
    let status_where = |what: &str, ok: &dyn Fn(&StatusLine) -> bool| {
        g.wait_for(what, Duration::from_secs(10), |g| {
            let text = status_text(g);
            parse_status(&text).filter(ok).map(|s| (s, text))
        })
    };
    requests(&g, 20);
    let (first, first_text) = status_where("STATUS= counting 20 requests, none active", &|s| {
        s.requests == 20 && s.active == 0
    });
    assert_eq!(
        (first.active, first.idle, first.slow),
        (0, 4, 0),
        "{first_text}"
    );
    requests(&g, 10);
    let (grown, grown_text) = status_where("STATUS= counting 30 requests", &|s| s.requests == 30);
    assert!(grown.traffic > 0.0, "{grown_text}");
    let (_, quiet_text) = status_where("STATUS= traffic back to 0 with 30 requests", &|s| {
        s.traffic == 0.0 && s.requests == 30
    });
    eprintln!(
        "[figures] STATUS= (systemd_interval = 1s): \"{first_text}\" -> \"{grown_text}\" -> \"{quiet_text}\""
    );

    // emergency restart: below the threshold nothing happens, at it systemd restarts
    let old = main_pid(&g);
    let restarts: u32 = show(&g, "NRestarts").parse().expect("NRestarts");
    let stop = AtomicBool::new(false);
    let (victims, restart_took, new, load) = std::thread::scope(|s| {
        let load = s.spawn(|| load_until(&g, &stop, 2));
        let mut victims = vec![crash_an_idle_worker(&g), crash_an_idle_worker(&g)];
        g.wait_for(
            "two crashed workers reaped and replaced",
            Duration::from_secs(20),
            |g| {
                let gone = victims.iter().all(|v| {
                    fpm_lines(g, &format!("child {v} exited on signal 11 (SIGSEGV")).len() == 1
                });
                let w = workers(g);
                (gone && w.len() == 4 && w.iter().all(|p| !victims.contains(p))).then_some(())
            },
        );
        assert_eq!(main_pid(&g), old, "2 crashes: the same master");
        assert_eq!(is_active(&g, UNIT), "active");
        assert_eq!(show(&g, "NRestarts").parse::<u32>().ok(), Some(restarts));
        assert!(fpm_lines(&g, "failed processes threshold").is_empty());

        // a request in flight when the threshold is reached is finished before the
        // master exits
        let slow = s.spawn(|| get(&g, "/slow.php"));
        g.wait_for("slow.php running", Duration::from_secs(10), |g| {
            status_processes(g).into_iter().find(|p| {
                p.get("request uri").and_then(|v| v.as_str()) == Some("/slow.php")
                    && p.get("state").and_then(|v| v.as_str()) == Some("Running")
            })
        });
        let t = Instant::now();
        victims.push(crash_an_idle_worker(&g));
        let new = g.wait_for(
            "systemd restarting the pool after the third crash",
            Duration::from_secs(30),
            |g| {
                let pid = main_pid(g);
                (pid != 0
                    && pid != old
                    && is_active(g, UNIT) == "active"
                    && show(g, "NRestarts").parse::<u32>().ok() == Some(restarts + 1))
                .then_some(pid)
            },
        );
        let took = t.elapsed();
        assert_eq!(
            slow.join().expect("the slow request"),
            (200, "slow done\n".to_string()),
            "the request in flight finished before the master left"
        );
        // the new master serves the load: its own STATUS= counts requests
        g.wait_for(
            "the restarted pool serving the load",
            Duration::from_secs(20),
            |g| parse_status(&status_text(g)).filter(|s| s.requests >= 100 && main_pid(g) == new),
        );
        stop.store(true, Ordering::Relaxed);
        (victims, took, new, load.join().expect("the load thread"))
    });
    eprintln!(
        "[figures] emergency restart: workers {victims:?} SIGSEGVed; master {old} -> {new}, NRestarts {restarts} -> {}, {restart_took:.1?} from the third crash to the new master's READY (a 2 s request in flight finished first); load {} answered 200, {} failed",
        show(&g, "NRestarts"),
        load.ok,
        load.failed.len()
    );
    assert!(load.ok >= 200, "the load ran ({})", load.ok);
    assert_no_failure(&g, &load, "emergency restart");

    let threshold = fpm_lines(&g, "failed processes threshold (3 in 30 sec) is reached");
    assert_eq!(threshold.len(), 1, "{threshold:?}");
    assert_eq!(
        fpm_lines(
            &g,
            "not feeding the systemd watchdog: an emergency restart is pending"
        )
        .len(),
        1
    );
    let sent = notify_messages(&g, old);
    let stopping = sent
        .iter()
        .position(|m| m.contains("STOPPING=1"))
        .unwrap_or_else(|| panic!("STOPPING=1 from {old}: {sent:#?}"));
    assert!(
        sent[stopping..].iter().all(|m| !m.contains("WATCHDOG=1")),
        "no WATCHDOG=1 once the emergency restart is pending: {sent:#?}"
    );
    let exited = manager_lines(&g, "Main process exited, code=exited, status=70/SOFTWARE");
    assert_eq!(exited.len(), 1, "the old master exits with 70");
    assert_eq!(
        manager_lines(&g, "Scheduled restart job, restart counter is at 1").len(),
        1
    );
}

/// The test pool, exiting after 3 s without a request.
fn idle_exit_pool() -> String {
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/systemd/guest/etc/php-fpm-rs/pool.d/blog.conf"),
    )
    .expect("blog.conf");
    format!("{base}; scale to zero: exit after 3 s without a request (php-fpm-rs only)\npm.idle_exit_timeout = 3s\n")
}

/// Waits for the pool to exit on its own (pm.idle_exit_timeout), from `since` (the
/// end of its last request); checks it left cleanly while systemd kept the socket.
fn wait_idle_exit(g: &Guest, since: Instant) -> Duration {
    g.wait_for("the idle pool exiting", Duration::from_secs(20), |g| {
        (is_active(g, UNIT) == "inactive").then_some(())
    });
    let after = since.elapsed();
    assert_eq!(show(g, "Result"), "success");
    assert_eq!(show(g, "ExecMainCode"), "1", "exited, not killed");
    assert_eq!(show(g, "ExecMainStatus"), "0");
    assert_eq!(show(g, "NRestarts"), "0");
    assert_eq!(
        g.exec("pgrep -x php-fpm-rs").expect("nsenter").code,
        1,
        "no pool process left"
    );
    assert_eq!(is_active(g, SOCKET), "active", "systemd keeps the socket");
    g.sh("test -S /run/php-fpm/blog.sock");
    after
}

#[test]
fn an_idle_pool_exits_and_its_socket_starts_it_again() {
    let pool = idle_exit_pool();
    let Some(g) = boot(&[("/etc/php-fpm-rs/pool.d/blog.conf", &pool)]) else {
        return;
    };
    start_blog(&g);
    let mut colds = vec![first_byte(&g, "/index.php")];
    let mut idles = Vec::new();
    for _ in 0..2 {
        let since = Instant::now();
        let after = wait_idle_exit(&g, since);
        assert!(
            after >= Duration::from_millis(2500) && after <= Duration::from_secs(10),
            "exited {after:?} after the last request"
        );
        idles.push(after);
        // the next request starts it again
        colds.push(first_byte(&g, "/index.php"));
        wait_active(&g);
    }
    // a reloaded pool is still socket-activated: it scales to zero as well
    // (the reloaded image may already be idle for 3 s when a slow machine gets to
    // look, so only its READY line is awaited, not the unit being active)
    let master = main_pid(&g);
    let since = Instant::now();
    g.sh(&format!("systemctl reload {UNIT}"));
    let ready = format!("SYSLOG_IDENTIFIER=php-fpm-rs _PID={master}");
    g.wait_for(
        "the reloaded master's READY",
        Duration::from_secs(20),
        |g| (lines_of(g, &ready, "ready to handle connections").len() >= 2).then_some(()),
    );
    assert_eq!(fpm_lines(&g, "using inherited socket").len(), 1);
    idles.push(wait_idle_exit(&g, since));
    colds.push(first_byte(&g, "/index.php"));
    assert!(
        fpm_lines(&g, "pm.idle_exit_timeout is ignored").is_empty(),
        "{:?}",
        fpm_lines(&g, "pm.idle_exit_timeout")
    );
    assert_eq!(
        fpm_lines(
            &g,
            "no request for 3 s (pm.idle_exit_timeout): exiting until the next connection"
        )
        .len(),
        3
    );
    let ms: Vec<String> = colds.iter().map(|c| format!("{:.0}", c * 1000.0)).collect();
    eprintln!(
        "[figures] scale to zero (pm.idle_exit_timeout = 3s, checked every 1 s): exited {:.1?} and {:.1?} after the last request, {:.1?} after `systemctl reload`; cold start connect->first byte {} ms (the first with the guest's page cache cold)",
        idles[0],
        idles[1],
        idles[2],
        ms.join(", ")
    );
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
    // a worker forked a moment ago may not have dropped privileges yet: poll
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let users = g.sh("ps -o user= -C php-fpm-rs | sort | uniq -c");
        if users.contains("4 www-data") && users.contains("1 root") {
            break;
        }
        assert!(Instant::now() < deadline, "{users}");
        std::thread::sleep(Duration::from_millis(50));
    }
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
