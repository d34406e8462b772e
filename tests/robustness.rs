//! Malformed FastCGI input against a running pool: every bad connection gets the
//! documented answer (usually: closed without a response), and afterwards a normal
//! request on a new connection still succeeds: the workers go on serving.
//!
//! One server (pm static, 2 workers) serves all cases, run in order by one test so
//! the memory measurement is not disturbed; every case failure is collected and
//! reported together. Measured numbers are printed with `eprintln!` (`--nocapture`).

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use php_fpm_rs::fastcgi::client::{RequestBuilder, Response, ResponseDecoder};
use php_fpm_rs::fastcgi::{encode_pair, encode_record, encode_stream, RecordType, Role};

const BIN: &str = env!("CARGO_BIN_EXE_php-fpm-rs");
const HELLO_BODY: &str = "hello from php-fpm-rs";
/// How long the server may take to answer or close in the ordinary cases.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// FCGI_UNKNOWN_TYPE / FCGI_GET_VALUES_RESULT / FCGI_UNKNOWN_ROLE.
const UNKNOWN_TYPE: u8 = 11;
const GET_VALUES: u8 = 9;
const GET_VALUES_RESULT: u8 = 10;
const UNKNOWN_ROLE: u8 = 3;
/// Allowed growth of the pool's total RSS over 1,000 garbage connections.
const RSS_BOUND_KIB: u64 = 20 * 1024;

/// The running server; killed (whole process group) on drop, also on panic.
struct Server {
    dir: tempfile::TempDir,
    child: Child,
    sock: PathBuf,
    error_log: PathBuf,
    script: PathBuf,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("fpm.sock");
        let error_log = dir.path().join("error.log");
        let script = dir.path().join("hello.php");
        std::fs::write(&script, format!("<?php echo '{HELLO_BODY}';\n")).expect("fixture");
        let cfg = dir.path().join("pool.conf");
        std::fs::write(
            &cfg,
            format!(
                "[global]\nerror_log = {}\n\n[www]\nlisten = {}\npm = static\n\
                 pm.max_children = 2\ncatch_workers_output = yes\n",
                error_log.display(),
                sock.display()
            ),
        )
        .expect("pool.conf");
        // No -O: with stderr not a TTY the log goes to error_log, as in php-fpm.
        let child = Command::new(BIN)
            .args(["-F", "-R", "-y"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn php-fpm-rs");
        let mut server = Server {
            dir,
            child,
            sock,
            error_log,
            script,
        };
        server.wait_ready();
        server
    }

    /// Bounded readiness poll: connect until it works, at most 10 s.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "php-fpm-rs exited during startup: {status}; log: {}",
                    self.log()
                );
            }
            if UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "php-fpm-rs not ready after 10 s; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.sock).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// A normal GET of hello.php on a new connection.
    fn request(&self) -> Result<Response, String> {
        let mut s = self.connect();
        let mut out = Vec::new();
        let script = self.script.to_str().expect("utf-8");
        RequestBuilder::new(1, false)
            .param("GATEWAY_INTERFACE", "CGI/1.1")
            .param("REQUEST_METHOD", "GET")
            .param("SCRIPT_FILENAME", script)
            .param("SCRIPT_NAME", "/hello.php")
            .param("REQUEST_URI", "/hello.php")
            .param("DOCUMENT_ROOT", self.dir.path().to_str().expect("utf-8"))
            .param("SERVER_PROTOCOL", "HTTP/1.1")
            .param("QUERY_STRING", "")
            .encode(&mut out);
        s.write_all(&out).map_err(|e| format!("write: {e}"))?;
        let mut dec = ResponseDecoder::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed before END_REQUEST".into());
            }
            if let Some(r) = dec.push(&buf[..n]).map_err(|e| format!("decode: {e}"))? {
                return Ok(r);
            }
        }
    }

    /// The normal request succeeds: status 200 (no Status header) and the right body.
    fn check_serving(&self) -> Result<(), String> {
        let r = self
            .request()
            .map_err(|e| format!("normal request failed: {e}"))?;
        let (headers, body) = r.split_headers();
        let status = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Status"))
            .map(|(_, v)| v.clone());
        if let Some(s) = status.filter(|s| !s.starts_with("200")) {
            return Err(format!("normal request got Status: {s}"));
        }
        if body != HELLO_BODY.as_bytes() || r.protocol_status != 0 {
            return Err(format!(
                "normal request: protocol status {}, body {:?}",
                r.protocol_status,
                String::from_utf8_lossy(body)
            ));
        }
        Ok(())
    }

    /// Pids of the master and its direct children (via /proc/*/stat ppid).
    fn pool_pids(&self) -> Vec<u32> {
        let master = self.child.id();
        let mut pids = vec![master];
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(master) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Sum of VmRSS (KiB) of the master and its children.
    fn pool_rss_kib(&self) -> (u64, usize) {
        let pids = self.pool_pids();
        let total = pids
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .sum();
        (total, pids.len())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on the process group we created in start().
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; reaps stragglers (workers) if the master did not.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// What came back on a connection until EOF, reset or timeout.
struct Outcome {
    bytes: Vec<u8>,
    /// The server closed (EOF or reset) rather than leaving us waiting.
    closed: bool,
    elapsed: Duration,
}

/// Reads everything until the server closes or `timeout` passes.
fn read_until_closed(s: &mut UnixStream, timeout: Duration) -> Outcome {
    let start = Instant::now();
    s.set_read_timeout(Some(timeout)).expect("timeout");
    let mut bytes = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            // ECONNRESET and friends: closed too.
            Err(_) => break true,
        }
        if start.elapsed() > timeout {
            break false;
        }
    };
    Outcome {
        bytes,
        closed,
        elapsed: start.elapsed(),
    }
}

/// Writes `bytes`, tolerating the server closing on us midway (it may reject early).
fn write_tolerant(s: &mut UnixStream, bytes: &[u8]) -> Result<(), String> {
    match s.write_all(bytes) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => Ok(()),
        Err(e) => Err(format!("write: {e}")),
    }
}

fn expect_closed_silently(what: &str, o: &Outcome) -> Result<(), String> {
    if !o.closed {
        return Err(format!(
            "{what}: connection still open after {:?}",
            o.elapsed
        ));
    }
    if !o.bytes.is_empty() {
        return Err(format!(
            "{what}: expected no response, got {} bytes: {:?}",
            o.bytes.len(),
            &o.bytes[..o.bytes.len().min(64)]
        ));
    }
    Ok(())
}

fn header(record_type: u8, request_id: u16, content_len: u16) -> [u8; 8] {
    let [i1, i0] = request_id.to_be_bytes();
    let [l1, l0] = content_len.to_be_bytes();
    [1, record_type, i1, i0, l1, l0, 0, 0]
}

fn begin_request(request_id: u16) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(
        RecordType::BeginRequest,
        request_id,
        &[0, Role::Responder as u8, 0, 0, 0, 0, 0, 0],
        &mut out,
    );
    out
}

/// Parses whole records from `bytes`: (type, request id, content).
fn parse_records(mut bytes: &[u8]) -> Result<Vec<(u8, u16, Vec<u8>)>, String> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let h: [u8; 8] = bytes
            .get(..8)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| format!("truncated record header: {bytes:?}"))?;
        if h[0] != 1 {
            return Err(format!("bad version in reply: {h:?}"));
        }
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let total = 8 + len + usize::from(h[6]);
        let content = bytes
            .get(8..8 + len)
            .filter(|_| bytes.len() >= total)
            .ok_or_else(|| format!("truncated record content: {h:?}"))?;
        records.push((h[1], u16::from_be_bytes([h[2], h[3]]), content.to_vec()));
        bytes = &bytes[total..];
    }
    Ok(records)
}

/// Decodes FastCGI name-value pairs (1- or 4-byte lengths).
fn decode_pairs(mut b: &[u8]) -> Result<Vec<(String, String)>, String> {
    fn len(b: &mut &[u8]) -> Result<usize, String> {
        let first = *b.first().ok_or("truncated length")?;
        if first & 0x80 == 0 {
            *b = &b[1..];
            return Ok(usize::from(first));
        }
        let four: [u8; 4] = b
            .get(..4)
            .and_then(|x| x.try_into().ok())
            .ok_or("truncated 4-byte length")?;
        *b = &b[4..];
        Ok((u32::from_be_bytes(four) & 0x7fff_ffff) as usize)
    }
    let mut pairs = Vec::new();
    while !b.is_empty() {
        let n = len(&mut b)?;
        let v = len(&mut b)?;
        let name = b.get(..n).ok_or("truncated name")?;
        let value = b.get(n..n + v).ok_or("truncated value")?;
        pairs.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
        b = &b[n + v..];
    }
    Ok(pairs)
}

// ---- the cases ------------------------------------------------------------

fn truncated_header(srv: &Server) -> Result<(), String> {
    let mut s = srv.connect();
    write_tolerant(&mut s, &[1, 1, 0])?;
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let o = read_until_closed(&mut s, IO_TIMEOUT);
    expect_closed_silently("truncated header", &o)
}

fn wrong_version(srv: &Server) -> Result<(), String> {
    let mut s = srv.connect();
    let mut bytes = begin_request(1);
    bytes[0] = 2;
    write_tolerant(&mut s, &bytes)?;
    // We keep our side open: the server must close on its own.
    let o = read_until_closed(&mut s, IO_TIMEOUT);
    eprintln!("wrong version: closed after {:?}", o.elapsed);
    expect_closed_silently("version byte 2", &o)
}

fn content_past_end(srv: &Server) -> Result<(), String> {
    let mut s = srv.connect();
    let mut bytes = begin_request(1);
    bytes.extend_from_slice(&header(RecordType::Params as u8, 1, 1000));
    bytes.extend_from_slice(&[0x03, 0x01, b'A', b'B', b'C', b'x']);
    write_tolerant(&mut s, &bytes)?;
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let o = read_until_closed(&mut s, IO_TIMEOUT);
    expect_closed_silently("content length past the end", &o)
}

fn params_over_bound(srv: &Server) -> Result<(), String> {
    let mut params = Vec::new();
    let value = vec![b'v'; 1000];
    let mut i = 0;
    while params.len() < 1536 * 1024 {
        encode_pair(format!("HTTP_X_FILL_{i}").as_bytes(), &value, &mut params);
        i += 1;
    }
    let mut bytes = begin_request(1);
    encode_stream(RecordType::Params, 1, &params, &mut bytes);
    let mut s = srv.connect();
    let start = Instant::now();
    write_tolerant(&mut s, &bytes)?;
    // No empty PARAMS record: the bound must trip on the bytes alone.
    let mut o = read_until_closed(&mut s, IO_TIMEOUT);
    o.elapsed = start.elapsed();
    eprintln!(
        "PARAMS of {} KiB ({i} pairs): closed={} after {:?}",
        params.len() / 1024,
        o.closed,
        o.elapsed
    );
    expect_closed_silently("1.5 MiB of PARAMS", &o)
}

fn huge_pair_length(srv: &Server) -> Result<(), String> {
    let mut s = srv.connect();
    let mut content = vec![0xff, 0xff, 0xff, 0xff, 0x01];
    content.extend_from_slice(b"abcdefgh");
    let mut bytes = begin_request(1);
    encode_record(RecordType::Params, 1, &content, &mut bytes);
    let start = Instant::now();
    write_tolerant(&mut s, &bytes)?;
    // We keep our side open: the server must not wait for 2 GiB of name.
    let mut o = read_until_closed(&mut s, Duration::from_secs(3));
    o.elapsed = start.elapsed();
    eprintln!(
        "name length 0x7fffffff: closed={} after {:?} (bound 1 s)",
        o.closed, o.elapsed
    );
    expect_closed_silently("name length 0x7fffffff", &o)?;
    if o.elapsed >= Duration::from_secs(1) {
        return Err(format!(
            "name length 0x7fffffff: closed only after {:?}, want < 1 s",
            o.elapsed
        ));
    }
    Ok(())
}

fn unknown_type(srv: &Server) -> Result<(), String> {
    let mut s = srv.connect();
    write_tolerant(&mut s, &header(42, 0, 0))?;
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let o = read_until_closed(&mut s, IO_TIMEOUT);
    let records = parse_records(&o.bytes)?;
    match records.as_slice() {
        [(UNKNOWN_TYPE, 0, body)] if body.len() == 8 && body[0] == 42 => Ok(()),
        other => Err(format!(
            "unknown type 42: want one UNKNOWN_TYPE record naming 42, got {other:?}"
        )),
    }
}

fn get_values(srv: &Server) -> Result<(), String> {
    let mut content = Vec::new();
    for name in ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"] {
        encode_pair(name.as_bytes(), b"", &mut content);
    }
    let mut bytes = header(GET_VALUES, 0, content.len() as u16).to_vec();
    bytes.extend_from_slice(&content);
    let mut s = srv.connect();
    write_tolerant(&mut s, &bytes)?;
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let o = read_until_closed(&mut s, IO_TIMEOUT);
    let records = parse_records(&o.bytes)?;
    let [(GET_VALUES_RESULT, 0, body)] = records.as_slice() else {
        return Err(format!(
            "GET_VALUES: want one GET_VALUES_RESULT on id 0, got {records:?}"
        ));
    };
    let pairs = decode_pairs(body)?;
    eprintln!("GET_VALUES_RESULT: {pairs:?}");
    let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    if get("FCGI_MPXS_CONNS") != Some("0") {
        return Err(format!("GET_VALUES: FCGI_MPXS_CONNS is not 0: {pairs:?}"));
    }
    for n in ["FCGI_MAX_CONNS", "FCGI_MAX_REQS"] {
        match get(n).map(str::parse::<u32>) {
            Some(Ok(v)) if v >= 1 => {}
            _ => {
                return Err(format!(
                    "GET_VALUES: {n} missing or not a positive number: {pairs:?}"
                ))
            }
        }
    }
    Ok(())
}

fn authorizer_role(srv: &Server) -> Result<(), String> {
    let mut bytes = Vec::new();
    RequestBuilder::new(1, false)
        .role(Role::Authorizer)
        .param("SCRIPT_FILENAME", srv.script.to_str().expect("utf-8"))
        .encode(&mut bytes);
    let mut s = srv.connect();
    write_tolerant(&mut s, &bytes)?;
    let mut dec = ResponseDecoder::new();
    let mut buf = [0u8; 4096];
    let resp = loop {
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("AUTHORIZER: read: {e}"))?;
        if n == 0 {
            return Err("AUTHORIZER: closed without END_REQUEST".into());
        }
        if let Some(r) = dec
            .push(&buf[..n])
            .map_err(|e| format!("AUTHORIZER: decode: {e}"))?
        {
            break r;
        }
    };
    if resp.protocol_status != UNKNOWN_ROLE || !resp.stdout.is_empty() || resp.request_id != 1 {
        return Err(format!(
            "AUTHORIZER: want END_REQUEST(id 1, UNKNOWN_ROLE) and no output, got {resp:?}"
        ));
    }
    Ok(())
}

fn stdin_before_params(srv: &Server) -> Result<(), String> {
    let mut bytes = begin_request(1);
    encode_record(RecordType::Stdin, 1, b"body before params", &mut bytes);
    let mut s = srv.connect();
    write_tolerant(&mut s, &bytes)?;
    let o = read_until_closed(&mut s, IO_TIMEOUT);
    expect_closed_silently("STDIN before PARAMS", &o)
}

/// xorshift64*: deterministic garbage without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One garbage connection: pure noise, or a valid prefix followed by noise records.
fn garbage(rng: &mut Rng) -> Vec<u8> {
    match rng.below(3) {
        0 => {
            let n = 1 + rng.below(4096) as usize;
            rng.bytes(n)
        }
        1 => {
            let mut b = begin_request(1 + rng.below(3) as u16);
            let n = rng.below(4096) as usize;
            b.extend(rng.bytes(n));
            b
        }
        _ => {
            let mut b = Vec::new();
            for _ in 0..1 + rng.below(6) {
                let ty = 1 + rng.below(12) as u8;
                let id = rng.below(3) as u16;
                let len = rng.below(2048) as u16;
                b.extend_from_slice(&header(ty, id, len));
                // Sometimes the whole content, sometimes cut short.
                let sent = rng.below(u64::from(len) + 1) as usize;
                b.extend(rng.bytes(sent));
            }
            b
        }
    }
}

fn garbage_connections(srv: &Server) -> Result<(), String> {
    const TOTAL: usize = 1000;
    const PARALLEL: usize = 8;
    for _ in 0..20 {
        srv.check_serving()?;
    }
    let (before, procs) = srv.pool_rss_kib();
    let start = Instant::now();
    let results: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..PARALLEL)
            .map(|t| {
                scope.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1234_5677));
                    let (mut open, mut answered) = (0, 0);
                    for _ in 0..TOTAL / PARALLEL {
                        let Ok(mut s) = UnixStream::connect(&srv.sock) else {
                            open += 1;
                            continue;
                        };
                        let _ = s.set_write_timeout(Some(IO_TIMEOUT));
                        let _ = s.write_all(&garbage(&mut rng));
                        let _ = s.shutdown(Shutdown::Write);
                        let o = read_until_closed(&mut s, IO_TIMEOUT);
                        if !o.closed {
                            open += 1;
                        }
                        if !o.bytes.is_empty() {
                            answered += 1;
                        }
                    }
                    (open, answered)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("garbage thread"))
            .collect()
    });
    let took = start.elapsed();
    let stuck: usize = results.iter().map(|r| r.0).sum();
    let answered: usize = results.iter().map(|r| r.1).sum();
    srv.check_serving()
        .map_err(|e| format!("after garbage: {e}"))?;
    for _ in 0..20 {
        srv.check_serving()?;
    }
    let (after, procs_after) = srv.pool_rss_kib();
    let grown = after.saturating_sub(before);
    eprintln!(
        "garbage: {TOTAL} connections ({PARALLEL} at a time) in {took:?}; \
         {answered} got some reply bytes, {stuck} not closed within {IO_TIMEOUT:?}"
    );
    eprintln!(
        "pool RSS: before {before} KiB ({procs} processes), after {after} KiB \
         ({procs_after} processes), grown {grown} KiB (bound {RSS_BOUND_KIB} KiB)"
    );
    if stuck > 0 {
        return Err(format!(
            "garbage: {stuck} connections neither answered nor closed within {IO_TIMEOUT:?}"
        ));
    }
    if procs_after != procs || procs < 3 {
        return Err(format!(
            "garbage: pool had {procs} processes before and {procs_after} after (want 3)"
        ));
    }
    if grown >= RSS_BOUND_KIB {
        return Err(format!(
            "garbage: pool RSS grew by {grown} KiB ({before} -> {after}), bound {RSS_BOUND_KIB} KiB"
        ));
    }
    Ok(())
}

type Case = fn(&Server) -> Result<(), String>;

#[test]
fn malformed_fastcgi_input_leaves_the_pool_serving() {
    let srv = Server::start();
    srv.check_serving()
        .expect("the pool serves before any bad input");
    let cases: [(&str, Case); 10] = [
        ("truncated header", truncated_header),
        ("wrong version byte", wrong_version),
        ("content length past the end", content_past_end),
        ("PARAMS over the 1 MiB bound", params_over_bound),
        ("4-byte pair length 0x7fffffff", huge_pair_length),
        ("unknown record type 42", unknown_type),
        ("FCGI_GET_VALUES", get_values),
        ("AUTHORIZER role", authorizer_role),
        ("STDIN before PARAMS", stdin_before_params),
        ("1,000 garbage connections", garbage_connections),
    ];
    let mut failures = Vec::new();
    for (name, case) in cases {
        let started = Instant::now();
        let result = case(&srv).and_then(|()| {
            srv.check_serving()
                .map_err(|e| format!("afterwards, on a new connection: {e}"))
        });
        eprintln!(
            "case {name}: {} in {:?}",
            if result.is_ok() { "ok" } else { "FAILED" },
            started.elapsed()
        );
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    }
    let log = srv.log();
    let closings = log.matches("closing FastCGI connection").count();
    let malformed = log
        .matches("closing FastCGI connection: malformed FastCGI input: ")
        .count();
    eprintln!(
        "error log: {closings} 'closing FastCGI connection' lines, {malformed} of them 'malformed FastCGI input'"
    );
    let mut reasons: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("closing FastCGI connection: ").map(|x| x.1))
        .collect();
    reasons.sort_unstable();
    reasons.dedup();
    for r in reasons.iter().take(12) {
        eprintln!("  reason: {r}");
    }
    if malformed == 0 {
        failures.push(format!(
            "error log {} never names a closed connection's reason \
             ('closing FastCGI connection: malformed FastCGI input: ...'); log:\n{log}",
            srv.error_log.display()
        ));
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
