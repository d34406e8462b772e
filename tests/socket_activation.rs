//! Socket activation and sd_notify without a container: `systemd-socket-activate`
//! (from the systemd package) passes a listening socket the way a socket unit does
//! (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), and a datagram socket in the test stands
//! in for systemd's NOTIFY_SOCKET. The full story under a real systemd is in
//! tests/systemd.rs.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

const ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(sock: &Path, script: &Path) -> String {
    let script = script.to_string_lossy();
    let r = support::send(
        sock,
        &[
            ("SCRIPT_FILENAME", script.as_ref()),
            ("SCRIPT_NAME", "/hello.php"),
            ("REQUEST_METHOD", "GET"),
        ],
    )
    .expect("a response on the passed socket");
    String::from_utf8_lossy(r.split_headers().1).into_owned()
}

/// A status page from the master's status socket (no script behind it).
fn get_page(sock: &Path, path: &str) -> String {
    let r = support::send(sock, &[("SCRIPT_NAME", path), ("REQUEST_METHOD", "GET")])
        .expect("a page from the status socket");
    String::from_utf8_lossy(r.split_headers().1).into_owned()
}

/// Runs php-fpm-rs under systemd-socket-activate listening on `socks` (named
/// `names`), with `setenv` passed on, and waits until every socket exists.
fn activate(socks: &[&Path], names: &str, setenv: Option<String>, conf: &Path) -> Reaped {
    let mut cmd = Command::new(ACTIVATE);
    for s in socks {
        cmd.arg("-l").arg(s);
    }
    cmd.arg(format!("--fdname={names}"));
    if let Some(e) = setenv {
        cmd.arg(format!("--setenv={e}"));
    }
    let child = cmd
        .args([env!("CARGO_BIN_EXE_php-fpm-rs"), "-F", "-R", "-n", "-y"])
        .arg(conf)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn systemd-socket-activate");
    let server = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socks.iter().all(|s| s.exists()) {
        assert!(
            Instant::now() < deadline,
            "no socket from systemd-socket-activate"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server
}

/// Collects notify datagrams until one contains `want`.
fn wait_notify(notify: &UnixDatagram, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = notify.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.contains(want) {
                return msg;
            }
            seen.push_str(&msg);
        }
    }
    panic!("no {want} from the master; got:\n{seen}");
}

fn setup(d: &Path) -> (std::path::PathBuf, UnixDatagram) {
    std::fs::write(d.join("hello.php"), "<?php echo 'hi from ', getmypid();").expect("write");
    let conf = format!(
        "[global]\nerror_log = {d}/fpm.log\n[t]\nlisten = {d}/from-the-pool-file.sock\npm = static\npm.max_children = 2\n",
        d = d.display()
    );
    std::fs::write(d.join("pool.conf"), conf).expect("write conf");
    let notify = UnixDatagram::bind(d.join("notify")).expect("bind notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    (d.join("pool.conf"), notify)
}

#[test]
fn a_passed_socket_is_served_and_readiness_and_stopping_are_notified() {
    if !Path::new(ACTIVATE).exists() {
        panic!("{ACTIVATE} is missing: run scripts/install-deps (package systemd)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (conf, notify) = setup(d);
    let sock = d.join("fpm.sock");
    let mut server = activate(
        &[&sock],
        "php-fpm@t.socket",
        Some(format!("NOTIFY_SOCKET={}", d.join("notify").display())),
        &conf,
    );
    // the first connection starts the pool; it waits in the socket's queue meanwhile
    let body = get(&sock, &d.join("hello.php"));
    assert!(body.starts_with("hi from "), "{body}");
    let ready = wait_notify(&notify, "READY=1");
    // the counts depend on whether a worker already took the waiting connection
    assert!(
        ready.contains("STATUS=Processes active: ") && ready.contains(", slow: 0, Traffic: "),
        "{ready}"
    );
    assert!(
        ready.contains(&format!("MAINPID={}", server.0.id())),
        "{ready}"
    );
    let log = std::fs::read_to_string(d.join("fpm.log")).expect("fpm.log");
    assert!(
        log.contains("in the pool file is not used: serving on")
            && log.contains("(php-fpm@t.socket)"),
        "{log}"
    );
    assert!(
        !d.join("from-the-pool-file.sock").exists(),
        "the pool file's listen is not bound"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.0.id() as i32),
        nix::sys::signal::Signal::SIGQUIT,
    )
    .expect("SIGQUIT");
    wait_notify(&notify, "STOPPING=1");
    let status = server.0.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(
        sock.exists(),
        "the master leaves the socket file to its owner"
    );
}

#[test]
fn a_passed_datagram_socket_is_refused_with_the_fix() {
    if !Path::new(ACTIVATE).exists() {
        panic!("{ACTIVATE} is missing: run scripts/install-deps (package systemd)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (conf, _notify) = setup(d);
    let sock = d.join("dgram.sock");
    let child = Command::new(ACTIVATE)
        .arg("--datagram")
        .arg("-l")
        .arg(&sock)
        .args([env!("CARGO_BIN_EXE_php-fpm-rs"), "-F", "-R", "-n", "-y"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn systemd-socket-activate");
    let mut server = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "no socket from systemd-socket-activate"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // a datagram wakes the activator, which then starts the master
    let client = UnixDatagram::unbound().expect("datagram");
    client.send_to(b"x", &sock).expect("send");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = server.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the master did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(78), "bad configuration");
    let log = std::fs::read_to_string(d.join("fpm.log")).unwrap_or_default();
    assert!(
        log.contains("is not a unix or TCP stream socket") && log.contains("ListenStream="),
        "{log}"
    );
}

#[test]
fn several_passed_sockets_are_served_and_the_status_socket_by_the_master() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (conf, _notify) = setup(d);
    std::fs::write(d.join("slow.php"), "<?php usleep(1500000); echo 'slow';").expect("write");
    let (main, second, status) = (
        d.join("main.sock"),
        d.join("second.sock"),
        d.join("status.sock"),
    );
    let _server = activate(
        &[&main, &second, &status],
        "php-fpm@t.socket:t:status",
        None,
        &conf,
    );
    // both pool sockets reach the workers (the first connection starts the pool)
    assert!(get(&main, &d.join("hello.php")).starts_with("hi from "));
    assert!(get(&second, &d.join("hello.php")).starts_with("hi from "));
    // two slow requests occupy both workers; the status socket still answers
    let slow: Vec<_> = [main.clone(), second.clone()]
        .into_iter()
        .map(|s| {
            let script = d.join("slow.php");
            std::thread::spawn(move || get(&s, &script))
        })
        .collect();
    let log = d.join("fpm.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = get_page(&status, "/status");
        if body.contains("active processes:     2") {
            break body;
        }
        assert!(Instant::now() < deadline, "both workers busy: {body}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(body.contains("idle processes:       0"), "{body}");
    for t in slow {
        assert_eq!(t.join().expect("client"), "slow");
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("also serving") && text.contains("status and ping pages on"),
        "{text}"
    );
}
