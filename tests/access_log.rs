//! The access log against php-fpm8.2's: the same pool settings and requests give the
//! same lines, once pids, times and durations are put aside.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{start, wait_for};

const FORMAT: &str = "%R|%u|%m|%r|%q|%Q|%s|%f|%l|%n|%{kilo}M|%{REQUEST_METHOD}e|%{HTTP_X_TRACE}e|%{Content-Type}o|%{%Y}t";

/// The lines with the worker-specific memory figure blanked (PHP's peak differs by
/// a few KiB between the two SAPIs' startup).
fn normalised(log: &str) -> Vec<String> {
    log.lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split('|').collect();
            if f.len() > 10 {
                f[10] = "M";
            }
            f.join("|")
        })
        .collect()
}

fn requests(sock: &Path, dir: &Path) {
    for (script, query, method) in [
        ("hello.php", "a=1&b=2", "GET"),
        ("missing.php", "", "GET"),
        ("hello.php", "", "POST"),
        ("ping", "", "GET"),
    ] {
        let _ = support::request_with(
            sock,
            &dir.join(script),
            query,
            method,
            &[("HTTP_X_TRACE", "t-1"), ("REMOTE_ADDR", "192.0.2.7")],
        );
    }
}

/// Waits until `log` has at least `n` lines.
fn wait_for_lines(log: &std::path::Path, n: usize) {
    wait_for(Duration::from_secs(5), &format!("{n} access lines"), || {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .count()
            >= n
    });
}

#[test]
fn access_lines_match_php_fpm_8_2() {
    let pool = format!(
        "pm = static\npm.max_children = 1\nping.path = /ping\naccess.log = {{LOG}}\naccess.format = \"{FORMAT}\"\naccess.suppress_path[] = /ping"
    );
    // php-fpm-rs
    let ours = {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("access.log");
        let server = start(&pool.replace("{LOG}", &log.display().to_string()));
        requests(&server.sock, server.dir.path());
        wait_for_lines(&log, 3);
        let text = std::fs::read_to_string(&log).expect("access.log");
        // paths differ between the two runs' directories
        text.replace(&server.dir.path().display().to_string(), "DIR")
    };
    // php-fpm8.2 with the same pool
    let theirs = {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("hello.php"), "<?php echo 'hi ', getmypid();").expect("script");
        let sock = d.join("fpm.sock");
        let log = d.join("access.log");
        let conf = format!(
            "[global]\nerror_log = {d}/fpm.log\npid = {d}/fpm.pid\n[t]\nlisten = {s}\n{p}\n",
            d = d.display(),
            s = sock.display(),
            p = pool.replace("{LOG}", &log.display().to_string())
        );
        std::fs::write(d.join("fpm.conf"), conf).expect("conf");
        let mut child = Command::new("/usr/sbin/php-fpm8.2")
            .args(["-F", "-R", "-y"])
            .arg(d.join("fpm.conf"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("php-fpm8.2");
        wait_for(Duration::from_secs(10), "php-fpm8.2 to listen", || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
        requests(&sock, d);
        wait_for_lines(&log, 3);
        let _ = child.kill();
        let _ = child.wait();
        std::fs::read_to_string(&log)
            .expect("access.log")
            .replace(&d.display().to_string(), "DIR")
    };
    assert_eq!(
        normalised(&ours),
        normalised(&theirs),
        "ours:\n{ours}\nphp-fpm8.2:\n{theirs}"
    );
    assert_eq!(
        ours.lines().count(),
        3,
        "the suppressed /ping is not logged"
    );
}

#[test]
fn a_bad_access_format_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let conf = format!(
        "[global]\nerror_log = /dev/stderr\n[t]\nlisten = {d}/s.sock\npm = static\npm.max_children = 1\naccess.log = {d}/a.log\naccess.format = \"%R %Z\"\n",
        d = d.display()
    );
    std::fs::write(d.join("pool.conf"), conf).expect("conf");
    let out = Command::new(env!("CARGO_BIN_EXE_php-fpm-rs"))
        .args(["-F", "-R", "-y"])
        .arg(d.join("pool.conf"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unsupported placeholder '%Z'") && err.contains("pool.conf"),
        "{err}"
    );
}
