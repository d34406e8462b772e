//! Conformance harness: runs the reference php-fpm8.2 and php-fpm-rs side by side
//! and sends both the same raw FastCGI request.
//!
//! Startup: both servers start once per test binary (a `OnceLock`), each in its own
//! temp dir (pool.conf, unix socket, error_log, pid file, captured stdout/stderr),
//! `pm = static`, 4 children, same php.ini, `-F -O -R`. Readiness is a bounded
//! poll-connect on the socket (10 s), failing early if the master exits.
//!
//! Cleanup: each master is spawned as the leader of a new process group (its
//! workers inherit the group). Two independent mechanisms end the groups:
//! * a `libc::atexit` hook (the libtest main returns normally, so it runs) sends
//!   SIGTERM to both groups, waits up to 2 s, then SIGKILLs what is left and
//!   removes the temp dirs;
//! * a watchdog `sh` in its own process group (immune to the terminal's Ctrl-C,
//!   which would otherwise kill it with the test binary) polls the test binary's
//!   pid and, once it is gone (panic=abort, SIGKILL, Ctrl-C), does the same.
//!
//! Normalisation (legitimate only): `Date`/`Expires` response headers dropped,
//! PHPSESSID values, each server's temp dir, upload tmp names (`/tmp/phpXXXXXX`)
//! and `pid=NNN`/`pid NNN` numbers replaced by placeholders. Nothing else.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use php_fpm_rs::fastcgi::client::{RequestBuilder, Response, ResponseDecoder};

/// php.ini shared by both servers.
pub const PHP_INI: &str = "/etc/php/8.2/fpm/php.ini";
/// The reference implementation.
pub const PHP_FPM: &str = "/usr/sbin/php-fpm8.2";

/// One running server.
pub struct Server {
    /// "php-fpm8.2" or "php-fpm-rs".
    pub name: &'static str,
    /// Its private temp dir.
    pub dir: PathBuf,
    /// Its listening socket.
    pub sock: PathBuf,
    /// Process group id (= master pid).
    pub pgid: i32,
    child: Mutex<Child>,
}

/// Both servers.
pub struct Servers {
    /// Reference php-fpm8.2.
    pub fpm: Server,
    /// php-fpm-rs under test.
    pub rs: Server,
}

static SERVERS: OnceLock<Servers> = OnceLock::new();

/// The fixtures directory, DOCUMENT_ROOT of both servers.
pub fn docroot() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/www").to_owned()
}

fn kill_group(pgid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) with a negative pid signals a process group we created.
    unsafe { libc::kill(-pgid, sig) == 0 }
}

extern "C" fn cleanup_at_exit() {
    let Some(s) = SERVERS.get() else { return };
    let groups = [s.fpm.pgid, s.rs.pgid];
    for g in groups {
        kill_group(g, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while groups.iter().any(|&g| kill_group(g, 0)) && Instant::now() < deadline {
        for srv in [&s.fpm, &s.rs] {
            if let Ok(mut c) = srv.child.try_lock() {
                let _ = c.try_wait();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for g in groups {
        kill_group(g, libc::SIGKILL);
    }
    let _ = std::fs::remove_dir_all(&s.fpm.dir);
    let _ = std::fs::remove_dir_all(&s.rs.dir);
}

fn start(name: &'static str, bin: &str) -> Server {
    let dir = tempfile::Builder::new()
        .prefix(&format!("conformance-{name}-"))
        .tempdir()
        .expect("temp dir")
        .keep();
    let sock = dir.join("fpm.sock");
    let conf = dir.join("pool.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "[global]\nerror_log = {d}/error.log\npid = {d}/fpm.pid\n\n\
             [www]\nlisten = {}\npm = static\npm.max_children = 4\n\
             catch_workers_output = yes\n",
            sock.display()
        ),
    )
    .expect("write pool.conf");
    let out = std::fs::File::create(dir.join("stdout.log")).expect("stdout.log");
    let err = std::fs::File::create(dir.join("stderr.log")).expect("stderr.log");
    let child = Command::new(bin)
        .args(["-F", "-O", "-R", "-y"])
        .arg(&conf)
        .args(["-c", PHP_INI])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    let pgid = i32::try_from(child.id()).expect("pid");
    Server {
        name,
        dir,
        sock,
        pgid,
        child: Mutex::new(child),
    }
}

// The watchdog must outlive the test binary, so it is never waited for.
#[allow(clippy::zombie_processes)]
fn spawn_watchdog(servers: &Servers) {
    let script = format!(
        "trap '' INT HUP TERM; while kill -0 {me} 2>/dev/null; do sleep 0.3; done; \
         kill -TERM -{a} -{b} 2>/dev/null; i=0; \
         while [ $i -lt 20 ] && {{ kill -0 -{a} || kill -0 -{b}; }} 2>/dev/null; do sleep 0.1; i=$((i+1)); done; \
         kill -KILL -{a} -{b} 2>/dev/null; \
         rm -rf '{da}' '{db}'",
        me = std::process::id(),
        a = servers.fpm.pgid,
        b = servers.rs.pgid,
        da = servers.fpm.dir.display(),
        db = servers.rs.dir.display(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn watchdog");
}

fn wait_ready(srv: &Server) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if UnixStream::connect(&srv.sock).is_ok() {
            return;
        }
        if let Ok(Some(st)) = srv.child.lock().expect("child").try_wait() {
            panic!(
                "{} exited early ({st}):\n{}",
                srv.name,
                std::fs::read_to_string(srv.dir.join("stderr.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} not ready after 10 s: {}",
            srv.name,
            std::fs::read_to_string(srv.dir.join("stderr.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Both servers, started on first use.
pub fn servers() -> &'static Servers {
    SERVERS.get_or_init(|| {
        let s = Servers {
            fpm: start("php-fpm8.2", PHP_FPM),
            rs: start("php-fpm-rs", env!("CARGO_BIN_EXE_php-fpm-rs")),
        };
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe { libc::atexit(cleanup_at_exit) };
        spawn_watchdog(&s);
        wait_ready(&s.fpm);
        wait_ready(&s.rs);
        s
    })
}

// ---------------------------------------------------------------- requests

/// One request as nginx would send it (params in nginx's fastcgi_params order).
#[derive(Debug, Clone)]
pub struct Req {
    /// FastCGI params, in order.
    pub params: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Read timeout.
    pub timeout: Duration,
    /// Pack PARAMS records pair-aligned, as nginx does, instead of the client's
    /// plain 65535-byte split (php-fpm cannot parse a pair straddling records).
    pub aligned: bool,
}

impl Req {
    /// `GET uri` where uri is `/script.php?query`.
    pub fn get(uri: &str) -> Self {
        Self::new("GET", uri, None, Vec::new())
    }

    /// `POST uri` with a body.
    pub fn post(uri: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", uri, Some(content_type), body.into())
    }

    /// Any method.
    pub fn new(method: &str, uri: &str, content_type: Option<&str>, body: Vec<u8>) -> Self {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let root = docroot();
        let params = vec![
            ("QUERY_STRING", query.to_owned()),
            ("REQUEST_METHOD", method.to_owned()),
            ("CONTENT_TYPE", content_type.unwrap_or("").to_owned()),
            (
                "CONTENT_LENGTH",
                if body.is_empty() && content_type.is_none() {
                    String::new()
                } else {
                    body.len().to_string()
                },
            ),
            ("SCRIPT_NAME", path.to_owned()),
            ("REQUEST_URI", uri.to_owned()),
            ("DOCUMENT_URI", path.to_owned()),
            ("DOCUMENT_ROOT", root.clone()),
            ("SERVER_PROTOCOL", "HTTP/1.1".to_owned()),
            ("REQUEST_SCHEME", "http".to_owned()),
            ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
            ("SERVER_SOFTWARE", "nginx/1.22.1".to_owned()),
            ("REMOTE_ADDR", "192.0.2.10".to_owned()),
            ("REMOTE_PORT", "54321".to_owned()),
            ("SERVER_ADDR", "192.0.2.1".to_owned()),
            ("SERVER_PORT", "80".to_owned()),
            ("SERVER_NAME", "example.test".to_owned()),
            ("REDIRECT_STATUS", "200".to_owned()),
            ("SCRIPT_FILENAME", format!("{root}{path}")),
            ("HTTP_HOST", "example.test".to_owned()),
            ("HTTP_USER_AGENT", "conformance/1.0".to_owned()),
        ];
        Self {
            params: params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            body,
            timeout: Duration::from_secs(20),
            aligned: false,
        }
    }

    /// Sets (replacing) or appends a param.
    pub fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        match self.params.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
        self
    }

    /// Removes a param.
    pub fn without(mut self, name: &str) -> Self {
        self.params.retain(|(k, _)| k != name);
        self
    }

    /// Adds an HTTP request header as `HTTP_*`.
    pub fn header(self, name: &str, value: impl Into<String>) -> Self {
        let key = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        self.param(&key, value)
    }

    /// Sets `HTTPS=on` and the https scheme/port.
    pub fn https(self) -> Self {
        self.param("HTTPS", "on")
            .param("REQUEST_SCHEME", "https")
            .param("SERVER_PORT", "443")
    }

    /// Longer read timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Pair-aligned PARAMS records (see `aligned`).
    pub fn aligned(mut self) -> Self {
        self.aligned = true;
        self
    }

    /// The encoded records.
    pub fn encode(&self, id: u16, keep_conn: bool) -> Vec<u8> {
        if self.aligned {
            return self.encode_aligned(id, keep_conn);
        }
        let mut b = RequestBuilder::new(id, keep_conn);
        for (k, v) in &self.params {
            b = b.param(k, v);
        }
        let mut out = Vec::with_capacity(self.body.len() + self.body.len() / 8 + 4096);
        b.stdin(&self.body).encode(&mut out);
        out
    }
}

impl Req {
    fn encode_aligned(&self, id: u16, keep_conn: bool) -> Vec<u8> {
        use php_fpm_rs::fastcgi::record::RecordType;
        use php_fpm_rs::fastcgi::{encode_pair, encode_record, encode_stream, encode_stream_end};
        let mut out = Vec::new();
        let begin = [0, 1, u8::from(keep_conn), 0, 0, 0, 0, 0];
        encode_record(RecordType::BeginRequest, id, &begin, &mut out);
        let mut rec = Vec::new();
        for (k, v) in &self.params {
            let mut pair = Vec::new();
            encode_pair(k.as_bytes(), v.as_bytes(), &mut pair);
            // php-fpm refuses a PARAMS record whose content + padding exceeds 65535.
            assert!(pair.len() <= 0xfff8, "param {k} cannot fit one record");
            if rec.len() + pair.len() > 0xfff8 {
                encode_record(RecordType::Params, id, &rec, &mut out);
                rec.clear();
            }
            rec.extend_from_slice(&pair);
        }
        if !rec.is_empty() {
            encode_record(RecordType::Params, id, &rec, &mut out);
        }
        encode_stream_end(RecordType::Params, id, &mut out);
        encode_stream(RecordType::Stdin, id, &self.body, &mut out);
        encode_stream_end(RecordType::Stdin, id, &mut out);
        out
    }
}

/// A raw response and its wall time.
#[derive(Debug, Clone)]
pub struct Raw {
    /// Decoded response.
    pub resp: Response,
    /// Time from connect to END_REQUEST.
    pub elapsed: Duration,
}

fn read_response(
    stream: &mut UnixStream,
    dec: &mut ResponseDecoder,
    who: &str,
) -> Result<Response, String> {
    if let Some(r) = dec.push(&[]).map_err(|e| format!("{who}: decode: {e}"))? {
        return Ok(r);
    }
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("{who}: read: {e}"))?;
        if n == 0 {
            return Err(format!("{who}: connection closed before END_REQUEST"));
        }
        if let Some(r) = dec
            .push(&buf[..n])
            .map_err(|e| format!("{who}: decode: {e}"))?
        {
            return Ok(r);
        }
    }
}

fn connect(srv: &Server, timeout: Duration) -> UnixStream {
    let s = UnixStream::connect(&srv.sock).unwrap_or_else(|e| panic!("{}: connect: {e}", srv.name));
    s.set_read_timeout(Some(timeout)).expect("timeout");
    s.set_write_timeout(Some(timeout)).expect("timeout");
    s
}

/// Sends one request on a fresh connection; the body is written by a second
/// thread (in 64 KiB slices of records) while this one reads.
pub fn send(srv: &Server, req: &Req) -> Result<Raw, String> {
    let start = Instant::now();
    let mut stream = connect(srv, req.timeout);
    let bytes = req.encode(1, false);
    let mut w = stream.try_clone().expect("clone");
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        for chunk in bytes.chunks(64 * 1024) {
            w.write_all(chunk)?;
        }
        Ok(())
    });
    let mut dec = ResponseDecoder::new();
    let resp = read_response(&mut stream, &mut dec, srv.name);
    let elapsed = start.elapsed();
    let wr = writer.join().expect("writer thread");
    let resp = resp?;
    if let Err(e) = wr {
        // The server may answer without reading the whole body; only report it
        // when there was no response.
        eprintln!("{}: write error after response: {e}", srv.name);
    }
    Ok(Raw { resp, elapsed })
}

/// A keep-alive connection (FCGI_KEEP_CONN) to one server.
pub struct Conn {
    stream: UnixStream,
    dec: ResponseDecoder,
    next_id: u16,
    name: &'static str,
}

impl Conn {
    /// Opens a connection.
    pub fn open(srv: &Server) -> Self {
        Self {
            stream: connect(srv, Duration::from_secs(20)),
            dec: ResponseDecoder::new(),
            next_id: 1,
            name: srv.name,
        }
    }

    /// One request with the keep-conn flag set (small bodies only).
    pub fn send(&mut self, req: &Req) -> Result<Response, String> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.stream
            .write_all(&req.encode(id, true))
            .map_err(|e| format!("{}: write: {e}", self.name))?;
        let r = read_response(&mut self.stream, &mut self.dec, self.name)?;
        if r.request_id != id {
            return Err(format!(
                "{}: response id {} != {id}",
                self.name, r.request_id
            ));
        }
        Ok(r)
    }
}

// ----------------------------------------------------------- normalising

/// A response after normalisation, ready to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Norm {
    /// HTTP status from the `Status:` header (200 without one).
    pub status: u16,
    /// Lowercased name / value multiset, sorted.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// FastCGI STDERR text.
    pub stderr: String,
    /// END_REQUEST appStatus.
    pub app_status: u32,
    /// END_REQUEST protocolStatus.
    pub protocol_status: u8,
}

impl Norm {
    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// First value of a header (name lowercased).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Replaces `prefix` followed by a run of bytes matching `run` with `prefix` + `with`.
fn replace_runs(s: &[u8], prefix: &[u8], run: fn(u8) -> bool, min: usize, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(prefix) {
            let start = i + prefix.len();
            let len = s[start..].iter().take_while(|&&c| run(c)).count();
            if len >= min {
                out.extend_from_slice(prefix);
                out.extend_from_slice(with);
                i = start + len;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn replace_all(s: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Legitimate normalisation of one text (body, stderr, header value).
pub fn normalise_bytes(srv: &Server, s: &[u8]) -> Vec<u8> {
    if s.len() > 1 << 20 {
        return s.to_vec(); // big payloads carry no paths; compared verbatim
    }
    let dir = srv.dir.display().to_string();
    let s = replace_all(s, dir.as_bytes(), b"<TMPDIR>");
    let s = replace_runs(
        &s,
        b"/tmp/php",
        |c| c.is_ascii_alphanumeric(),
        6,
        b"<UPLOAD>",
    );
    let sid = |c: u8| c.is_ascii_alphanumeric() || c == b',' || c == b'-';
    let s = replace_runs(&s, b"PHPSESSID=", sid, 1, b"<SID>");
    let s = replace_runs(&s, b"pid=", |c| c.is_ascii_digit(), 1, b"<PID>");
    replace_runs(&s, b"pid ", |c| c.is_ascii_digit(), 1, b"<PID>")
}

/// Normalises a response from `srv`.
pub fn normalise(srv: &Server, r: &Response) -> Norm {
    let (hdrs, body) = r.split_headers();
    let mut status = 200;
    let mut headers = Vec::new();
    for (k, v) in hdrs {
        let k = k.to_ascii_lowercase();
        if k == "status" {
            status = v
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
        }
        if k == "date" || k == "expires" {
            continue;
        }
        let v = String::from_utf8_lossy(&normalise_bytes(srv, v.as_bytes())).into_owned();
        headers.push((k, v));
    }
    headers.sort();
    Norm {
        status,
        headers,
        body: normalise_bytes(srv, body),
        stderr: String::from_utf8_lossy(&normalise_bytes(srv, &r.stderr)).into_owned(),
        app_status: r.app_status,
        protocol_status: r.protocol_status,
    }
}

// ---------------------------------------------------------------- diffing

fn show_bytes(b: &[u8]) -> String {
    if b.len() > 4096 {
        return format!("<{} bytes, sha256 {}>", b.len(), sha256_hex(b));
    }
    String::from_utf8_lossy(b).into_owned()
}

/// Line diff of two texts: common prefix/suffix elided, middle shown as -/+.
pub fn diff_text(a: &str, b: &str) -> String {
    let la: Vec<&str> = a.lines().collect();
    let lb: Vec<&str> = b.lines().collect();
    let pre = la.iter().zip(&lb).take_while(|(x, y)| x == y).count();
    let suf = la[pre..]
        .iter()
        .rev()
        .zip(lb[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = String::new();
    if pre > 0 {
        let _ = writeln!(out, "  ... {pre} equal line(s)");
    }
    for l in &la[pre..la.len() - suf] {
        let _ = writeln!(out, "- {l}");
    }
    for l in &lb[pre..lb.len() - suf] {
        let _ = writeln!(out, "+ {l}");
    }
    if suf > 0 {
        let _ = writeln!(out, "  ... {suf} equal line(s)");
    }
    if la == lb {
        let _ = writeln!(out, "  (differ only in line endings / trailing newline)");
        let _ = writeln!(out, "- {a:?}\n+ {b:?}");
    }
    out
}

/// Human-readable difference of two normalised responses ("" when equal).
pub fn describe_diff(a: &Norm, b: &Norm) -> String {
    let mut out = String::new();
    if a.status != b.status {
        let _ = writeln!(
            out,
            "status: php-fpm8.2 {} | php-fpm-rs {}",
            a.status, b.status
        );
    }
    if a.headers != b.headers {
        let fmt = |h: &[(String, String)]| {
            h.iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let _ = writeln!(
            out,
            "headers:\n{}",
            diff_text(&fmt(&a.headers), &fmt(&b.headers))
        );
    }
    if a.body != b.body {
        let texty = |b: &[u8]| b.len() < 1 << 20 && std::str::from_utf8(b).is_ok();
        if !texty(&a.body) || !texty(&b.body) {
            let _ = writeln!(
                out,
                "body: php-fpm8.2 {} | php-fpm-rs {}",
                show_bytes(&a.body),
                show_bytes(&b.body)
            );
        } else {
            let _ = writeln!(out, "body:\n{}", diff_text(&a.text(), &b.text()));
        }
    }
    if a.stderr != b.stderr {
        let _ = writeln!(out, "stderr:\n{}", diff_text(&a.stderr, &b.stderr));
    }
    if a.app_status != b.app_status || a.protocol_status != b.protocol_status {
        let _ = writeln!(
            out,
            "END_REQUEST (app, protocol): php-fpm8.2 ({}, {}) | php-fpm-rs ({}, {})",
            a.app_status, a.protocol_status, b.app_status, b.protocol_status
        );
    }
    out
}

/// Both servers' answers to one request.
pub struct Pair {
    /// php-fpm8.2, normalised.
    pub fpm: Norm,
    /// php-fpm-rs, normalised.
    pub rs: Norm,
    /// php-fpm8.2, raw.
    pub fpm_raw: Raw,
    /// php-fpm-rs, raw.
    pub rs_raw: Raw,
}

/// Sends `req` to both servers (reference first) without asserting.
pub fn both(req: &Req) -> Pair {
    let s = servers();
    let fpm_raw = send(&s.fpm, req).unwrap_or_else(|e| panic!("{e}"));
    let rs_raw = send(&s.rs, req).unwrap_or_else(|e| panic!("php-fpm-rs failed: {e}"));
    Pair {
        fpm: normalise(&s.fpm, &fpm_raw.resp),
        rs: normalise(&s.rs, &rs_raw.resp),
        fpm_raw,
        rs_raw,
    }
}

/// Asserts two normalised responses are equal, printing a diff otherwise.
pub fn assert_same(what: &str, a: &Norm, b: &Norm) {
    let d = describe_diff(a, b);
    assert!(
        d.is_empty(),
        "{what}: php-fpm-rs differs from php-fpm8.2 (- php-fpm8.2, + php-fpm-rs)\n{d}"
    );
}

/// The one comparison every case goes through.
pub fn compare(req: &Req) -> Pair {
    let p = both(req);
    let uri = req
        .params
        .iter()
        .find(|(k, _)| k == "REQUEST_URI")
        .map_or("", |(_, v)| v.as_str());
    assert_same(uri, &p.fpm, &p.rs);
    p
}

// ------------------------------------------------------------------ sha256

/// SHA-256 (FIPS 180-4), hex; used to summarise large bodies.
pub fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, c) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

/// Path helper for fixtures.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(&docroot()).join(rel.trim_start_matches('/'))
}
