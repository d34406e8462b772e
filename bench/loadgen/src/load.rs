//! The FastCGI load generator: a fixed number of connections, each on its own thread,
//! sending a pre-encoded request over and over (a new connection per request, or one
//! kept connection with FCGI_KEEP_CONN), for a bounded count and a bounded time.
//!
//! Requests are encoded once with the project's client (`RequestBuilder`) and
//! responses are checked record by record in place (`Record::parse`), so the
//! generator itself allocates nothing per request and steals as little CPU as it can
//! from the servers it measures on a small machine.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use php_fpm_rs::fastcgi::record::{Record, RecordType};
use php_fpm_rs::fastcgi::RequestBuilder;

/// One request to send again and again.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// FastCGI params in the order nginx sends them.
    pub params: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
}

impl RequestSpec {
    /// The params nginx's `fastcgi_params` would send for `uri` served from `script`.
    pub fn nginx_like(
        method: &str,
        uri: &str,
        docroot: &Path,
        script: &Path,
        content_type: &str,
        body: Vec<u8>,
    ) -> Self {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let len = if body.is_empty() {
            String::new()
        } else {
            body.len().to_string()
        };
        let params = [
            ("QUERY_STRING", query.to_owned()),
            ("REQUEST_METHOD", method.to_owned()),
            ("CONTENT_TYPE", content_type.to_owned()),
            ("CONTENT_LENGTH", len),
            ("SCRIPT_NAME", path.to_owned()),
            ("REQUEST_URI", uri.to_owned()),
            ("DOCUMENT_URI", path.to_owned()),
            ("DOCUMENT_ROOT", docroot.display().to_string()),
            ("SERVER_PROTOCOL", "HTTP/1.1".to_owned()),
            ("REQUEST_SCHEME", "http".to_owned()),
            ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
            ("SERVER_SOFTWARE", "nginx/1.22.1".to_owned()),
            ("REMOTE_ADDR", "127.0.0.1".to_owned()),
            ("REMOTE_PORT", "50000".to_owned()),
            ("SERVER_ADDR", "127.0.0.1".to_owned()),
            ("SERVER_PORT", "80".to_owned()),
            ("SERVER_NAME", "localhost".to_owned()),
            ("REDIRECT_STATUS", "200".to_owned()),
            ("SCRIPT_FILENAME", script.display().to_string()),
            ("HTTP_HOST", "localhost".to_owned()),
            ("HTTP_USER_AGENT", "fpm-bench/0.1".to_owned()),
            ("HTTP_ACCEPT", "*/*".to_owned()),
        ];
        RequestSpec {
            params: params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            body,
        }
    }

    /// The wire bytes of the request with id 1.
    pub fn encode(&self, keep_conn: bool) -> Vec<u8> {
        let mut b = RequestBuilder::new(1, keep_conn);
        for (k, v) in &self.params {
            b = b.param(k, v);
        }
        let mut out = Vec::with_capacity(self.body.len() + self.body.len() / 8 + 1024);
        b.stdin(&self.body).encode(&mut out);
        out
    }
}

/// How to load one server.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The pool's unix socket.
    pub socket: PathBuf,
    /// Concurrent connections (one thread each).
    pub concurrency: usize,
    /// Requests in all, split between the connections.
    pub requests: usize,
    /// FCGI_KEEP_CONN and one connection per thread, or a new connection per request.
    pub keep_conn: bool,
    /// Stop sending new requests after this long even if `requests` is not reached.
    pub max_duration: Duration,
    /// Socket read/write timeout; a request that takes longer counts as an error.
    pub io_timeout: Duration,
}

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Requests answered with END_REQUEST and an HTTP status below 400.
    pub ok: usize,
    /// Everything else: socket errors, timeouts, bad status.
    pub errors: usize,
    /// First error seen, for the log.
    pub first_error: Option<String>,
    /// From the start barrier to the last thread's end.
    pub elapsed: Duration,
    /// Latency of every successful request, nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
    /// STDOUT bytes of the last response (to compare servers).
    pub stdout_bytes: usize,
}

impl LoadResult {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency percentile in microseconds (`p` in 0..=100), nearest rank.
    pub fn percentile_us(&self, p: f64) -> f64 {
        percentile(&self.latencies_ns, p) / 1000.0
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // the epsilon keeps 99.9% of 1000 at rank 999 despite binary fractions
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// Outcome of one response read.
struct Answer {
    status: u16,
    stdout_bytes: usize,
}

/// Reads one response (up to END_REQUEST) from `stream` using `buf` as scratch.
///
/// `buf` may hold leftover bytes between `*start..*end` on a kept connection.
fn read_response(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
    start: &mut usize,
    end: &mut usize,
) -> Result<Answer> {
    let mut status = 200u16;
    let mut stdout_bytes = 0usize;
    let mut first_stdout = true;
    loop {
        while let Some((record, used)) = Record::parse(&buf[*start..*end])? {
            *start += used;
            match RecordType::from_u8(record.header.record_type) {
                Some(RecordType::Stdout) => {
                    if first_stdout && !record.content.is_empty() {
                        first_stdout = false;
                        status = status_of(record.content);
                    }
                    stdout_bytes += record.content.len();
                }
                Some(RecordType::Stderr) => {}
                Some(RecordType::EndRequest) => {
                    let proto = record.content.get(4).copied().unwrap_or(255);
                    if proto != 0 {
                        bail!("END_REQUEST protocol status {proto}");
                    }
                    return Ok(Answer {
                        status,
                        stdout_bytes,
                    });
                }
                _ => bail!("unexpected record type {}", record.header.record_type),
            }
        }
        if *start == *end {
            *start = 0;
            *end = 0;
        } else if buf.len() - *end < 70_000 {
            buf.copy_within(*start..*end, 0);
            *end -= *start;
            *start = 0;
            if buf.len() - *end < 70_000 {
                buf.resize(*end + 70_000, 0);
            }
        }
        let n = stream.read(&mut buf[*end..]).context("read")?;
        if n == 0 {
            bail!("connection closed before END_REQUEST");
        }
        *end += n;
    }
}

/// The HTTP status of a CGI response from its `Status:` header, 200 without one.
fn status_of(stdout: &[u8]) -> u16 {
    let head = &stdout[..stdout.len().min(4096)];
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.len() > 7 && line[..7].eq_ignore_ascii_case(b"status:") {
            let mut code = 0u16;
            for &b in line[7..].iter().skip_while(|b| **b == b' ') {
                if !b.is_ascii_digit() {
                    break;
                }
                code = code.saturating_mul(10).saturating_add(u16::from(b - b'0'));
            }
            return code;
        }
    }
    200
}

fn connect(spec: &LoadSpec) -> Result<UnixStream> {
    let s = UnixStream::connect(&spec.socket)
        .with_context(|| format!("connect {}", spec.socket.display()))?;
    s.set_read_timeout(Some(spec.io_timeout))?;
    s.set_write_timeout(Some(spec.io_timeout))?;
    Ok(s)
}

struct ThreadResult {
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    latencies: Vec<u64>,
    stdout_bytes: usize,
}

fn worker(
    spec: &LoadSpec,
    wire: &[u8],
    count: usize,
    barrier: &Barrier,
    deadline_after: Duration,
) -> ThreadResult {
    let mut r = ThreadResult {
        ok: 0,
        errors: 0,
        first_error: None,
        latencies: Vec::with_capacity(count),
        stdout_bytes: 0,
    };
    let mut buf = vec![0u8; 128 * 1024];
    let mut kept: Option<UnixStream> = None;
    barrier.wait();
    let deadline = Instant::now() + deadline_after;
    for _ in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        let t0 = Instant::now();
        let (mut start, mut end) = (0usize, 0usize);
        let attempt = (|| -> Result<Answer> {
            let stream = match kept.take() {
                Some(s) => s,
                None => connect(spec)?,
            };
            let mut stream = stream;
            stream.write_all(wire).context("write")?;
            let a = read_response(&mut stream, &mut buf, &mut start, &mut end)?;
            if spec.keep_conn {
                kept = Some(stream);
            }
            Ok(a)
        })();
        match attempt {
            Ok(a) if a.status < 400 => {
                r.latencies.push(t0.elapsed().as_nanos() as u64);
                r.ok += 1;
                r.stdout_bytes = a.stdout_bytes;
            }
            Ok(a) => {
                r.errors += 1;
                r.first_error
                    .get_or_insert_with(|| format!("HTTP status {}", a.status));
            }
            Err(e) => {
                kept = None;
                r.errors += 1;
                r.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    r
}

/// Runs the load and waits for it; bounded by `spec.requests` and `spec.max_duration`.
pub fn run(spec: &LoadSpec, request: &RequestSpec) -> Result<LoadResult> {
    if spec.concurrency == 0 || spec.requests == 0 {
        bail!("concurrency and requests must be positive");
    }
    let wire = Arc::new(request.encode(spec.keep_conn));
    let barrier = Arc::new(Barrier::new(spec.concurrency + 1));
    let per = spec.requests / spec.concurrency;
    let extra = spec.requests % spec.concurrency;
    let mut handles = Vec::with_capacity(spec.concurrency);
    for i in 0..spec.concurrency {
        let count = per + usize::from(i < extra);
        let (spec, wire, barrier) = (spec.clone(), Arc::clone(&wire), Arc::clone(&barrier));
        let max = spec.max_duration;
        handles.push(
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || worker(&spec, &wire, count, &barrier, max))
                .context("spawn load thread")?,
        );
    }
    barrier.wait();
    let t0 = Instant::now();
    let mut out = LoadResult::default();
    for h in handles {
        let r = h
            .join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))?;
        out.ok += r.ok;
        out.errors += r.errors;
        if out.first_error.is_none() {
            out.first_error = r.first_error;
        }
        out.latencies_ns.extend_from_slice(&r.latencies);
        out.stdout_bytes = out.stdout_bytes.max(r.stdout_bytes);
    }
    out.elapsed = t0.elapsed();
    out.latencies_ns.sort_unstable();
    Ok(out)
}

/// One request on a fresh connection; returns the whole STDOUT (for sanity checks).
pub fn fetch(socket: &Path, request: &RequestSpec) -> Result<Vec<u8>> {
    let mut s =
        UnixStream::connect(socket).with_context(|| format!("connect {}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(&request.encode(false))?;
    let mut dec = php_fpm_rs::fastcgi::ResponseDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("connection closed before END_REQUEST");
        }
        if let Some(resp) = dec.push(&buf[..n])? {
            return Ok(resp.stdout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_header_is_found() {
        assert_eq!(status_of(b"Content-type: text/html\r\n\r\nbody"), 200);
        assert_eq!(
            status_of(b"X-A: b\r\nStatus: 404 Not Found\r\n\r\nFile not found."),
            404
        );
        assert_eq!(status_of(b"status:500\r\n\r\n"), 500);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.0), 990.0);
        assert_eq!(percentile(&v, 99.9), 999.0);
        assert_eq!(percentile(&v, 100.0), 1000.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
