//! Shared by the integration tests that run the real binary: a pool in a temporary
//! directory, FastCGI requests over its socket, the master's children from /proc,
//! its log, and waiting for a condition with a deadline instead of sleeping.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use php_fpm_rs::fastcgi::client::{RequestBuilder, Response, ResponseDecoder};

/// A running php-fpm-rs master with one pool `t` in a temporary directory.
pub struct Server {
    /// Scripts, config, socket and log live here.
    pub dir: tempfile::TempDir,
    /// The master.
    pub child: Child,
    /// The pool's socket.
    pub sock: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Scripts every pool directory gets.
const SCRIPTS: &[(&str, &str)] = &[
    ("hello.php", "<?php echo 'hi ', getmypid();"),
    (
        "sleep.php",
        "<?php $ms = (int)($_GET['ms'] ?? 1000); usleep($ms * 1000); echo 'slept ', getmypid();",
    ),
    (
        "pid-then-sleep.php",
        "<?php file_put_contents(__DIR__ . '/running.pid', getmypid()); sleep(10); echo 'woke';",
    ),
    ("sleep10.php", "<?php sleep(10); echo 'finished';"),
];

/// The pool section's body: `pool_directives` after `listen`.
pub fn start(pool_directives: &str) -> Server {
    start_with(pool_directives, "")
}

/// Like [`start`], with `[global]` directives too.
pub fn start_with(pool_directives: &str, global_directives: &str) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for (name, body) in SCRIPTS {
        std::fs::write(d.join(name), body).expect("write script");
    }
    let sock = d.join("fpm.sock");
    write_config(d, &sock, pool_directives, global_directives);
    let child = Command::new(env!("CARGO_BIN_EXE_php-fpm-rs"))
        .args(["-F", "-R", "-y"])
        .arg(d.join("pool.conf"))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn php-fpm-rs");
    let server = Server { dir, child, sock };
    wait_for(Duration::from_secs(20), "the pool to listen", || {
        server.log().contains("ready to handle connections")
    });
    server
}

/// Writes `pool.conf` in `d` (also used to change the configuration before a reload).
pub fn write_config(d: &Path, sock: &Path, pool_directives: &str, global_directives: &str) {
    let conf = format!(
        "[global]\nerror_log = {d}/fpm.log\n{global_directives}\n[t]\nlisten = {s}\ncatch_workers_output = yes\nrlimit_core = 0\n{pool_directives}\n",
        d = d.display(),
        s = sock.display()
    );
    std::fs::write(d.join("pool.conf"), conf).expect("write conf");
}

impl Server {
    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The master's current children.
    pub fn workers(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// The error log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fpm.log")).unwrap_or_default()
    }

    /// Path of a script in the pool directory.
    pub fn script(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// One request for `script` with `query`.
    pub fn get(&self, script: &str, query: &str) -> std::io::Result<Response> {
        request(&self.sock, &self.script(script), query)
    }

    /// Sends `sig` to the master.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig)
            .expect("signal the master");
    }
}

/// Children of `parent` that are still running (not zombies), from /proc.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut out: Vec<u32> = children_listed(parent)
        .into_iter()
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").map_or("", |x| x.1);
            // a zombie is already gone as far as the pool is concerned
            !state.is_empty() && !state.starts_with('Z')
        })
        .collect();
    out.sort_unstable();
    out
}

/// The kernel's list of `parent`'s children, read in one go (zombies included), so
/// a fork and an exit racing with the read cannot both be missed.
pub fn children_listed(parent: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// One FastCGI request, read to END_REQUEST.
pub fn request(sock: &Path, script: &Path, query: &str) -> std::io::Result<Response> {
    request_with(sock, script, query, "GET", &[])
}

/// A request with another method and extra params.
pub fn request_with(
    sock: &Path,
    script: &Path,
    query: &str,
    method: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<Response> {
    let name = format!(
        "/{}",
        script.file_name().unwrap_or_default().to_string_lossy()
    );
    let filename = script.to_string_lossy();
    let uri = format!("{name}?{query}");
    let mut params = vec![
        ("SCRIPT_FILENAME", filename.as_ref()),
        ("SCRIPT_NAME", name.as_str()),
        ("REQUEST_URI", uri.as_str()),
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
    ];
    params.extend_from_slice(extra);
    send(sock, &params)
}

/// A POST of `body` to `script`, read to END_REQUEST.
pub fn request_body(sock: &Path, script: &Path, body: &[u8]) -> std::io::Result<Response> {
    let name = format!(
        "/{}",
        script.file_name().unwrap_or_default().to_string_lossy()
    );
    let filename = script.to_string_lossy();
    let len = body.len().to_string();
    let params = [
        ("SCRIPT_FILENAME", filename.as_ref()),
        ("SCRIPT_NAME", name.as_str()),
        ("REQUEST_URI", name.as_str()),
        ("QUERY_STRING", ""),
        ("REQUEST_METHOD", "POST"),
        ("CONTENT_TYPE", "application/octet-stream"),
        ("CONTENT_LENGTH", len.as_str()),
    ];
    send_with_body(sock, &params, body)
}

/// One FastCGI request with exactly `params`, read to END_REQUEST.
pub fn send(sock: &Path, params: &[(&str, &str)]) -> std::io::Result<Response> {
    send_with_body(sock, params, b"")
}

/// One FastCGI request with exactly `params` and `body` on STDIN, read to END_REQUEST.
pub fn send_with_body(
    sock: &Path,
    params: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = RequestBuilder::new(1, false);
    for (k, v) in params {
        req = req.param(k, v);
    }
    if !body.is_empty() {
        req = req.stdin(body);
    }
    let mut out = Vec::new();
    req.encode(&mut out);
    s.write_all(&out)?;
    read_response(&mut s)
}

/// Reads one response from `s`, up to its END_REQUEST.
pub fn read_response(s: &mut UnixStream) -> std::io::Result<Response> {
    let mut dec = ResponseDecoder::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before END_REQUEST",
            ));
        }
        if let Some(r) = dec
            .push(&buf[..n])
            .map_err(|e| std::io::Error::other(e.to_string()))?
        {
            return Ok(r);
        }
    }
}

/// The body of a response, and whether it is a success (no Status header, or 200).
pub fn body_ok(r: &Response) -> (String, bool) {
    let (headers, body) = r.split_headers();
    let ok = headers
        .iter()
        .all(|(k, v)| !k.eq_ignore_ascii_case("status") || v.starts_with("200"));
    (String::from_utf8_lossy(body).into_owned(), ok)
}

/// Polls `cond` every 20 ms until it holds, failing the test after `limit`.
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many times `needle` occurs in `hay`.
pub fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}
