//! System calls per request, counted with strace on a worker serving kept connections:
//! a small request is received at once (peeked, then consumed once its response is
//! out), a small response leaves in one write, and nothing is asked that PHP can answer
//! from memory (the script's path from its realpath cache, signal handlers it already
//! installed). A count, not a timing: it is the same on every machine.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use php_fpm_rs::fastcgi::client::{RequestBuilder, Response};
use support::{start, wait_for};

const REQUESTS: usize = 100;

/// Sends one request on a kept connection and reads its response.
fn kept_request(s: &mut UnixStream, script: &str, dir: &str) -> Response {
    let mut out = Vec::new();
    RequestBuilder::new(1, true)
        .param("SCRIPT_FILENAME", script)
        .param("SCRIPT_NAME", "/count.php")
        .param("REQUEST_URI", "/count.php")
        .param("DOCUMENT_ROOT", dir)
        .param("QUERY_STRING", "")
        .param("REQUEST_METHOD", "GET")
        .param("SERVER_SOFTWARE", "nginx/1.22.1")
        .param("HTTP_HOST", "localhost")
        .encode(&mut out);
    s.write_all(&out).expect("send");
    support::read_response(s).expect("a response")
}

/// Counts the system calls in an `strace -o` file by name.
fn count(trace: &str) -> BTreeMap<String, usize> {
    let mut by_name = BTreeMap::new();
    for line in trace.lines() {
        // "read(13, ..." or "<... read resumed>..." (a call strace found in progress)
        let name = if let Some(rest) = line.strip_prefix("<... ") {
            rest.split_whitespace().next().unwrap_or_default()
        } else {
            line.split('(').next().unwrap_or_default()
        };
        if !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            *by_name.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    by_name
}

#[test]
fn a_kept_connection_hello_is_received_once_answered_in_one_write_with_no_redundant_calls() {
    let server = start("pm = static\npm.max_children = 1");
    let dir = server.dir.path().to_string_lossy().into_owned();
    // opcache skips a file changed in the last opcache.file_update_protection (2 s)
    let path = server.script("count.php");
    std::fs::write(&path, "<?php echo 'counted';").expect("script");
    let hour_ago = nix::sys::time::TimeVal::new(
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
            .expect("clock")
            .tv_sec()
            - 3600,
        0,
    );
    nix::sys::stat::utimes(&path, &hour_ago, &hour_ago).expect("utimes");
    let script = path.to_string_lossy().into_owned();
    let mut conn = UnixStream::connect(&server.sock).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // warm: opcache, PHP's realpath cache and its signal handlers
    for _ in 0..5 {
        assert!(support::body_ok(&kept_request(&mut conn, &script, &dir)).1);
    }
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "one worker: {workers:?}");

    let out = server.dir.path().join("strace.out");
    let err = server.dir.path().join("strace.err");
    let mut strace = Command::new("strace")
        .arg("-p")
        .arg(workers[0].to_string())
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("strace (make test installs it)");
    wait_for(Duration::from_secs(10), "strace to attach", || {
        std::fs::read_to_string(&err).is_ok_and(|e| e.contains("attached"))
    });
    for _ in 0..REQUESTS {
        let r = kept_request(&mut conn, &script, &dir);
        assert!(support::body_ok(&r).1);
    }
    // the last request is over for the worker once it waits for the next one
    // (x86-64: 45 = recvfrom)
    let syscall = format!("/proc/{}/syscall", workers[0]);
    wait_for(Duration::from_secs(10), "the worker to wait again", || {
        std::fs::read_to_string(&syscall).is_ok_and(|s| s.starts_with("45 "))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(strace.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("stop strace");
    strace.wait().expect("strace exits");
    let trace = std::fs::read_to_string(&out).expect("trace");
    let calls = count(&trace);
    let total: usize = calls.values().sum();
    let of = |name: &str| calls.get(name).copied().unwrap_or(0);
    let per_request = total as f64 / REQUESTS as f64;
    eprintln!("{per_request:.2} system calls per request: {calls:?}");

    // the receive in progress when strace attached, and the one waiting for the next
    // request when it detached, may be counted too
    assert!(
        (REQUESTS..=REQUESTS + 2).contains(&of("recvfrom")),
        "one receive (MSG_PEEK) per request: {calls:?}"
    );
    assert_eq!(
        of("read"),
        REQUESTS,
        "one read consumes the request after its response: {calls:?}"
    );
    assert_eq!(of("write"), REQUESTS, "one write per response: {calls:?}");
    assert_eq!(
        of("readlink"),
        0,
        "the script's path comes from PHP's realpath cache: {calls:?}"
    );
    assert!(
        of("rt_sigaction") <= REQUESTS,
        "PHP's handlers are not re-installed on every request (only its timeout's): {calls:?}"
    );
    // php-fpm8.2 makes 27 a request here; PHP itself needs 10 (its timers, opcache's
    // lock, the chdir into the script's directory)
    // (plus the receive strace found in progress and the one it left waiting)
    assert!(
        total <= 14 * REQUESTS + 2,
        "{per_request:.2} system calls per request: {calls:?}"
    );
}

/// Voluntary context switches of the calling thread so far.
fn my_voluntary_switches() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
        .expect("getrusage")
        .voluntary_context_switches()
}

#[test]
fn the_web_server_is_woken_once_per_request_not_also_when_the_request_is_read() {
    // Consuming a request wakes whoever waits on the other end (the kernel reports
    // write space); the worker consumes it only once the response is out, so a client
    // waiting for a 2 ms script sleeps once per request instead of twice.
    let server = start("pm = static\npm.max_children = 1");
    let dir = server.dir.path().to_string_lossy().into_owned();
    let path = server.script("nap.php");
    std::fs::write(&path, "<?php usleep(2000); echo 'rested';").expect("script");
    let script = path.to_string_lossy().into_owned();
    let mut conn = UnixStream::connect(&server.sock).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert!(support::body_ok(&kept_request(&mut conn, &script, &dir)).1);
    let n = 50;
    let before = my_voluntary_switches();
    for _ in 0..n {
        assert!(support::body_ok(&kept_request(&mut conn, &script, &dir)).1);
    }
    let per_request = (my_voluntary_switches() - before) as f64 / f64::from(n);
    assert!(
        per_request < 1.5,
        "{per_request:.2} sleeps per request (2 when woken as the request is read)"
    );
}
