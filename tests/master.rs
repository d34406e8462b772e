//! The master and its workers: `pm = static` holds its count, a dead worker is replaced,
//! SIGQUIT lets a request in flight finish, SIGTERM stops at once, and a worker's
//! stdout/stderr are pipes to the master, never the client socket.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use php_fpm_rs::fastcgi::client::Response;

mod support;

struct Server {
    dir: tempfile::TempDir,
    child: Child,
    sock: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(children: u32) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("hello.php"), "<?php echo 'hi ', getmypid();").expect("write");
    std::fs::write(
        d.join("slow.php"),
        "<?php touch(__DIR__ . '/started'); usleep(1500000); echo 'slow done';",
    )
    .expect("write");
    std::fs::write(
        d.join("noisy.php"),
        "<?php file_put_contents('php://stderr', \"to-stderr\\n\"); echo 'ok';",
    )
    .expect("write");
    let sock = d.join("fpm.sock");
    let conf = format!(
        "[global]\nerror_log = {d}/fpm.log\n[t]\nlisten = {s}\npm = static\npm.max_children = {children}\ncatch_workers_output = yes\n",
        d = d.display(),
        s = sock.display()
    );
    std::fs::write(d.join("pool.conf"), conf).expect("write conf");
    let child = Command::new(env!("CARGO_BIN_EXE_php-fpm-rs"))
        .args(["-F", "-R", "-y"])
        .arg(d.join("pool.conf"))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let server = Server { dir, child, sock };
    let deadline = Instant::now() + Duration::from_secs(15);
    while support::children_of(server.child.id()).len() < children as usize
        || UnixStream::connect(&server.sock).is_err()
    {
        assert!(Instant::now() < deadline, "pool did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(r.split_headers().1).to_string()
}

/// Waits until slow.php has started running in a worker (it touches a marker file).
fn wait_started(s: &Server) {
    let marker = s.dir.path().join("started");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "slow.php never started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn static_pool_replaces_a_killed_worker_and_keeps_serving() {
    let s = start(3);
    let before = support::children_of(s.child.id());
    assert_eq!(before.len(), 3);
    let victim = before[0];
    Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = support::children_of(s.child.id());
        if now.len() == 3 && !now.contains(&victim) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker {victim} not replaced: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..10 {
        let r = support::request(&s.sock, &s.dir.path().join("hello.php"), "")
            .expect("request after replacement");
        assert!(body(&r).starts_with("hi "));
    }
    let log = std::fs::read_to_string(s.dir.path().join("fpm.log")).expect("log");
    assert!(
        log.contains(&format!("child {victim} exited on signal 9 (SIGKILL)")),
        "{log}"
    );
}

#[test]
fn sigquit_lets_the_request_in_flight_finish_then_exits() {
    let mut s = start(2);
    let slow = s.dir.path().join("slow.php");
    let sock = s.sock.clone();
    let inflight = std::thread::spawn(move || support::request(&sock, &slow, ""));
    wait_started(&s);
    let pid = s.child.id().to_string();
    Command::new("kill")
        .args(["-QUIT", &pid])
        .status()
        .expect("kill -QUIT");
    let r = inflight
        .join()
        .expect("thread")
        .expect("slow request answered");
    assert_eq!(body(&r), "slow done");
    let st = wait_exit(&mut s.child, Duration::from_secs(10)).expect("master exits after SIGQUIT");
    assert!(st.success(), "{st:?}");
    assert!(!s.sock.exists(), "socket file removed on exit");
}

#[test]
fn sigterm_stops_the_pool_at_once() {
    let mut s = start(2);
    let slow = s.dir.path().join("slow.php");
    let sock = s.sock.clone();
    let inflight = std::thread::spawn(move || support::request(&sock, &slow, ""));
    wait_started(&s);
    let t = Instant::now();
    Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    wait_exit(&mut s.child, Duration::from_secs(5)).expect("master exits after SIGTERM");
    assert!(
        t.elapsed() < Duration::from_millis(1200),
        "took {:?}",
        t.elapsed()
    );
    // cut off, not finished: the worker answers 503 on its way out rather than
    // leaving the web server a connection that closes without an answer
    let r = inflight.join().expect("thread").expect("a complete answer");
    let (headers, _) = r.split_headers();
    assert!(
        headers.contains(&("Status".into(), "503 Service Unavailable".into())),
        "{headers:?} {}",
        body(&r)
    );
}

#[test]
fn worker_output_goes_to_master_pipes_not_the_client() {
    let s = start(1);
    let r = support::request(&s.sock, &s.dir.path().join("noisy.php"), "").expect("request");
    assert_eq!(body(&r), "ok");
    let w = support::children_of(s.child.id());
    for fd in [1, 2] {
        let target = std::fs::read_link(format!("/proc/{}/fd/{fd}", w[0])).expect("readlink");
        assert!(
            target.to_string_lossy().starts_with("pipe:"),
            "fd {fd} is {target:?}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(s.dir.path().join("fpm.log")).unwrap_or_default();
        if log.contains("said into stderr: \"to-stderr\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker stderr not relayed: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
