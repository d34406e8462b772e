//! The worker: accept a connection on the pool's socket, read one request at a time,
//! resolve the script (CGI rules), run it through the PHP engine, answer, and repeat
//! until `pm.max_requests` or a stop signal. Process policy is the master's business.
#![forbid(unsafe_code)]

pub mod inflight;
pub mod stream;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

use crate::access;
use crate::cgi::{self, Env, PathSettings};
use crate::fastcgi::{Connection, Limits};
use crate::logging::{self, Level};
use crate::php::{Engine, NulTerminated, RequestIo, Script};
use crate::scoreboard::{self, Header, RequestInfo, Scoreboard, Slot, WorkerState};
use crate::status;
use crate::sys;
use stream::{Exchange, OwnedEvent, StreamError, Transport};

/// After this long without a connection, a worker gives back the buffers that large
/// requests grew.
const IDLE_RELEASE_MS: u16 = 1000;

/// Set by the SIGQUIT handler: finish the request in flight, then exit.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// What a worker needs to know about its pool.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Pool name, for log lines.
    pub pool: String,
    /// `security.limit_extensions`.
    pub limit_extensions: Vec<String>,
    /// This worker's share of `pm.max_requests` (the master spreads it); 0 is unlimited.
    pub max_requests: u64,
    /// Bounds applied to every FastCGI connection.
    pub limits: Limits,
    /// `request_terminate_timeout` in µs, 0 = off (the master enforces it; the
    /// worker only needs it to pick 504 over 503 when it is ended).
    pub terminate_timeout_us: u64,
    /// The status and ping pages this pool answers itself.
    pub pages: status::Pages,
    /// The access log, when the pool has one.
    pub access: Option<AccessLog>,
}

/// Where and how a pool logs each request.
#[derive(Debug, Clone)]
pub struct AccessLog {
    /// `access.format`, parsed.
    pub format: access::Format,
    /// `access.log` opened by the master (O_APPEND, shared by the workers), or
    /// `None` for `access.log = journal`.
    pub file: Option<std::sync::Arc<std::fs::File>>,
    /// `access.suppress_path[]`: request URIs that are not logged.
    pub suppress: Vec<String>,
}

impl access::Params for Env {
    fn param(&self, name: &[u8]) -> Option<&[u8]> {
        self.get(name)
    }
}

/// What a request's access line needs beyond the parameters.
struct Finished {
    status: u16,
    memory: u64,
    cpu_us: u64,
    start_us: u64,
    end_us: u64,
}

fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Writes the request's access line: one write(2) per line to the shared file, or a
/// journal entry with the request's fields.
/// The FastCGI client's IP, as php-fpm's `%R` (`-` on a unix socket).
fn peer_ip(fd: i32) -> String {
    use nix::sys::socket::{getpeername, SockaddrStorage};
    match getpeername::<SockaddrStorage>(fd) {
        Ok(a) => {
            if let Some(v4) = a.as_sockaddr_in() {
                v4.ip().to_string()
            } else if let Some(v6) = a.as_sockaddr_in6() {
                v6.ip().to_string()
            } else {
                String::new()
            }
        }
        Err(_) => String::new(),
    }
}

fn log_access(log: &AccessLog, pool: &str, env: &Env, uri: &[u8], done: &Finished, fd: i32) {
    if log.suppress.iter().any(|p| p.as_bytes() == uri) {
        return;
    }
    let g = |k: &[u8]| env.get(k).unwrap_or_default();
    let peer = peer_ip(fd);
    let record = access::Record {
        pool,
        remote: peer.as_bytes(),
        user: g(b"REMOTE_USER"),
        method: g(b"REQUEST_METHOD"),
        uri,
        query: g(b"QUERY_STRING"),
        script: g(b"SCRIPT_FILENAME"),
        content_length: std::str::from_utf8(g(b"CONTENT_LENGTH"))
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        status: done.status,
        pid: std::process::id(),
        ppid: nix::unistd::getppid().as_raw() as u32,
        start_us: done.start_us,
        end_us: done.end_us,
        cpu_us: done.cpu_us,
        memory: done.memory,
    };
    let line = log.format.render(&record, env);
    match &log.file {
        Some(f) => {
            let mut buf = line.into_bytes();
            buf.push(b'\n');
            let _ = std::io::Write::write(&mut &**f, &buf);
        }
        None => {
            let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
            let wall = done.end_us.saturating_sub(done.start_us);
            let entry = logging::journal::AccessEntry {
                pool,
                method: &text(record.method),
                uri: &text(uri),
                status: done.status,
                duration_usec: wall,
                cpu_percent: if wall == 0 {
                    0.0
                } else {
                    done.cpu_us as f64 / wall as f64 * 100.0
                },
                memory_bytes: done.memory,
                remote_addr: &text(g(b"REMOTE_ADDR")),
                script: &text(record.script),
            };
            if !logging::journal::access(&entry, &line) {
                // no journal (a terminal, a container): the line goes to the error log
                logging::raw(&line);
            }
        }
    }
}

/// Where a worker reports: its scoreboard slot, the pool counters, and the pipe on
/// which it tells the master it is about to leave (so a replacement starts before).
pub struct Reporting<'a> {
    /// This worker's slot.
    pub slot: &'a Slot,
    /// The pool's counters.
    pub header: &'a Header,
    /// The whole scoreboard, for the status page.
    pub board: &'a Scoreboard,
    /// Write end of the master's notice pipe.
    pub notices: Option<OwnedFd>,
}

impl Reporting<'_> {
    /// Tells the master this worker is serving its last request.
    fn retiring(&self) {
        if let Some(fd) = &self.notices {
            let _ = nix::unistd::write(fd, &std::process::id().to_le_bytes());
        }
    }

    /// After its last request a worker stays until the master has forked its
    /// replacement (the master then sets the quit flag), so the pool never has
    /// fewer workers than configured; bounded, should the master be busy.
    fn wait_for_replacement(&self) {
        if self.notices.is_none() {
            return;
        }
        for _ in 0..500 {
            if self.slot.quit_requested() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// CPU time (user + system) of this process in µs.
fn cpu_us() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let t =
                |tv: nix::sys::time::TimeVal| tv.tv_sec() as u64 * 1_000_000 + tv.tv_usec() as u64;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0)
}

/// Serves requests on `listener` until told to stop or `max_requests` is reached.
pub fn serve(
    engine: &mut Engine,
    listeners: &[BorrowedFd<'_>],
    settings: &WorkerSettings,
    report: &Reporting<'_>,
) {
    inflight::TERMINATE_TIMEOUT_US.store(settings.terminate_timeout_us, Ordering::Relaxed);
    let paths = PathSettings {
        fix_pathinfo: engine.ini_bool("cgi.fix_pathinfo"),
        discard_path: engine.ini_bool("cgi.discard_path"),
        script_path_encoded: engine.ini_bool("fastcgi.script_path_encoded"),
        doc_root: None,
    };
    let stderr_to_client = engine.ini_bool("fastcgi.logging");
    let mut served = 0u64;
    let mut env = Env::new();
    let mut cpu_mark = cpu_us();
    let mut polled: Vec<PollFd<'_>> = listeners
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let unix: Vec<bool> = listeners.iter().map(|fd| is_unix_socket(*fd)).collect();
    while !should_stop(report.slot) {
        report.slot.set_state(WorkerState::Idle);
        if stream::holds_grown_buffers() {
            match poll(&mut polled, PollTimeout::from(IDLE_RELEASE_MS)) {
                Ok(0) => stream::release_grown_buffers(),
                // a stop signal: look at the flags again
                Err(Errno::EINTR) => continue,
                // a connection, or an error accept() will report
                Ok(_) | Err(_) => {}
            }
        }
        let (fd, which) = match accept_any(&mut polled) {
            Ok(accepted) => accepted,
            Err(Errno::EINTR) | Err(Errno::ECONNABORTED) | Err(Errno::EAGAIN) => continue,
            Err(e) => {
                logging::log(
                    Level::Error,
                    &format!("[pool {}] accept() failed: {e}", settings.pool),
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        report.slot.set_state(WorkerState::ReadingHeaders);
        report.header.accepted_conn.fetch_add(1, Ordering::Relaxed);
        let mut transport = Transport::new(fd, unix.get(which).copied().unwrap_or(false));
        let mut conn = Connection::new(settings.limits);
        let mut ctx = RunContext {
            engine: &mut *engine,
            env: &mut env,
            paths: &paths,
            settings,
            stderr_to_client,
            report,
            cpu_mark: &mut cpu_mark,
        };
        match serve_connection(&mut transport, &mut conn, &mut ctx, &mut served) {
            Ok(()) => {}
            Err(e) => logging::log(
                Level::Warning,
                &format!("[pool {}] closing FastCGI connection: {e}", settings.pool),
            ),
        }
        if settings.max_requests > 0 && served >= settings.max_requests {
            report.wait_for_replacement();
            break;
        }
    }
    report.slot.set_state(WorkerState::Ending);
}

/// Accepts on the pool's socket: a blocking accept(2) when there is one (the common
/// case, one syscall), else poll(2) over all of them (they are non-blocking then, so
/// a worker that loses the race to another one polls again). `polled` is the poll
/// set, built once per worker.
fn accept_any(polled: &mut [PollFd<'_>]) -> nix::Result<(OwnedFd, usize)> {
    if let [one] = polled {
        return sys::accept(one.as_fd().as_raw_fd()).map(|fd| (fd, 0));
    }
    poll(polled, PollTimeout::NONE)?;
    for (i, p) in polled.iter().enumerate() {
        if p.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
            match sys::accept(p.as_fd().as_raw_fd()) {
                Err(Errno::EAGAIN) => continue,
                other => return other.map(|fd| (fd, i)),
            }
        }
    }
    Err(Errno::EAGAIN)
}

/// Whether `listener` is a unix socket (its connections may defer consuming a request:
/// see [`Transport::new`]).
fn is_unix_socket(listener: BorrowedFd<'_>) -> bool {
    use nix::sys::socket::{getsockname, AddressFamily, SockaddrLike, SockaddrStorage};
    getsockname::<SockaddrStorage>(listener.as_raw_fd())
        .is_ok_and(|a| a.family() == Some(AddressFamily::Unix))
}

/// SIGQUIT, or the master's quit flag (set instead of a signal for a busy worker,
/// so that a running script's sleep() is not cut short).
fn should_stop(slot: &Slot) -> bool {
    if slot.quit_requested() {
        STOP.store(true, Ordering::Relaxed);
    }
    STOP.load(Ordering::Relaxed)
}

struct RunContext<'a> {
    engine: &'a mut Engine,
    env: &'a mut Env,
    paths: &'a PathSettings,
    settings: &'a WorkerSettings,
    stderr_to_client: bool,
    report: &'a Reporting<'a>,
    cpu_mark: &'a mut u64,
}

fn serve_connection(
    transport: &mut Transport,
    conn: &mut Connection,
    ctx: &mut RunContext<'_>,
    served: &mut u64,
) -> Result<(), StreamError> {
    let mut request_id = None;
    loop {
        let Some((event, _)) = transport.next_event(conn)? else {
            return Ok(());
        };
        match event {
            OwnedEvent::Begin { request_id: id, .. } => {
                request_id = Some(id);
                if ctx.report.slot.state() == WorkerState::Idle {
                    ctx.report.slot.set_state(WorkerState::ReadingHeaders);
                }
            }
            OwnedEvent::Params(params) => {
                let id = request_id.take().unwrap_or(1);
                ctx.env.clear();
                // php's FastCGI layer adds the role ahead of the params
                ctx.env.append(b"FCGI_ROLE", b"RESPONDER");
                for (n, v) in params.iter() {
                    ctx.env.append(n, v);
                }
                let keep = conn.keep_conn();
                if ctx.settings.max_requests > 0 && *served + 1 == ctx.settings.max_requests {
                    ctx.report.retiring();
                }
                let conn_fd = transport.raw_fd();
                inflight::begin(conn_fd, id, scoreboard::now_us());
                let start_us = if ctx.settings.access.is_some() {
                    wall_us()
                } else {
                    0
                };
                let mut exchange = Exchange::new(transport, conn, id);
                exchange.stderr_to_client = ctx.stderr_to_client;
                exchange.slot = Some(ctx.report.slot);
                exchange.status = Some(stream::StatusSource {
                    board: ctx.report.board,
                    pool: &ctx.settings.pool,
                    pages: &ctx.settings.pages,
                });
                let (memory, status) = run_request(ctx, &mut exchange);
                *served += 1;
                ctx.report.slot.set_state(WorkerState::Finishing);
                exchange.end();
                inflight::end();
                let cpu = cpu_us();
                let cpu_used = cpu.saturating_sub(*ctx.cpu_mark);
                ctx.report.slot.end_request(cpu_used, memory);
                *ctx.cpu_mark = cpu;
                if let Some(log) = &ctx.settings.access {
                    let done = Finished {
                        status,
                        memory,
                        cpu_us: cpu_used,
                        start_us,
                        end_us: wall_us(),
                    };
                    let uri =
                        cgi::request_path(ctx.env.get(b"SCRIPT_NAME"), ctx.env.get(b"REQUEST_URI"));
                    log_access(log, &ctx.settings.pool, ctx.env, uri, &done, conn_fd);
                }
                if let Some(e) = exchange.error.take() {
                    return Err(e);
                }
                if !keep || exchange.client_gone {
                    return Ok(());
                }
                exchange.drain_body();
                if let Some(e) = exchange.error.take() {
                    return Err(e);
                }
                conn.end_request();
                transport.kept = true;
                if should_stop(ctx.report.slot)
                    || ctx.settings.max_requests > 0 && *served >= ctx.settings.max_requests
                {
                    return Ok(());
                }
                // waiting on a kept connection is idleness, not a slow request:
                // request_terminate_timeout must not end it
                ctx.report.slot.set_state(WorkerState::Idle);
            }
            OwnedEvent::Abort => {
                conn.end_request();
                request_id = None;
            }
            OwnedEvent::Stdin | OwnedEvent::StdinEnd | OwnedEvent::Nothing => {}
        }
    }
}

/// Runs one request; returns its peak memory and HTTP status.
fn run_request(ctx: &mut RunContext<'_>, io: &mut Exchange<'_>) -> (u64, u16) {
    let env = &mut *ctx.env;
    let engine = &*ctx.engine;
    let resolved = cgi::resolve(env, ctx.paths, &|p| engine.realpath_exists(p));
    // PHP's request_uri: the script name after the fix-up rules
    let uri = cgi::request_path(resolved.request_uri.as_deref(), env.get(b"REQUEST_URI"));
    if answer_page(ctx.settings, ctx.report, env, io, uri) {
        return (0, 200);
    }
    ctx.report.slot.begin_request(&RequestInfo {
        method: env.get(b"REQUEST_METHOD").unwrap_or_default(),
        uri,
        query: env.get(b"QUERY_STRING").unwrap_or_default(),
        script: resolved.script_filename.as_deref().unwrap_or_default(),
        content_length: env
            .get(b"CONTENT_LENGTH")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    });
    let denied = resolved
        .script_filename
        .as_deref()
        .is_some_and(|f| !cgi::extension_allowed(f, &ctx.settings.limit_extensions));
    if denied {
        let msg = format!(
            "Access to the script '{}' has been denied (see security.limit_extensions)",
            String::from_utf8_lossy(resolved.script_filename.as_deref().unwrap_or_default())
        );
        logging::log(
            Level::Notice,
            &format!("[pool {}] {msg}", ctx.settings.pool),
        );
        io.stderr_message(b"", msg.as_bytes());
    }
    // C borrows these two in place; one holding a NUL byte is not a path PHP may open
    let with_nul = |s: &Option<Vec<u8>>| {
        s.as_deref().filter(|s| !s.contains(&0)).map(|s| {
            let mut v = Vec::with_capacity(s.len() + 1);
            v.extend_from_slice(s);
            v.push(0);
            v
        })
    };
    let script_c = with_nul(&resolved.script_filename);
    let uri_c = with_nul(&resolved.request_uri);
    let env = &*env;
    let content_length = env
        .get(b"CONTENT_LENGTH")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let c = |name: &[u8]| env.get_with_nul(name).and_then(NulTerminated::new);
    let script = Script {
        request_method: c(b"REQUEST_METHOD"),
        query_string: c(b"QUERY_STRING"),
        request_uri: uri_c.as_deref().and_then(NulTerminated::new),
        http_request_uri: c(b"REQUEST_URI"),
        script_filename: script_c.as_deref().and_then(NulTerminated::new),
        content_type: c(b"CONTENT_TYPE"),
        cookie: c(b"HTTP_COOKIE"),
        authorization: c(b"HTTP_AUTHORIZATION"),
        php_value: c(b"PHP_VALUE"),
        php_admin_value: c(b"PHP_ADMIN_VALUE"),
        content_length,
        fix_pathinfo: ctx.paths.fix_pathinfo,
        access_denied: denied,
    };
    let vars = env
        .iter_with_nul()
        .filter_map(|(n, v)| Some((NulTerminated::new(n)?, NulTerminated::new(v)?)));
    ctx.report.slot.set_state(WorkerState::Running);
    match ctx.engine.run(&script, vars, io) {
        Ok(outcome) => {
            if script.script_filename.is_none() && script.request_method.is_some() {
                logging::log(Level::Debug, "Primary script unknown");
                io.stderr_message(b"", b"Primary script unknown");
            }
            if let (Some(errno), Some(f)) = (outcome.open_failed_errno, script.script_filename) {
                let msg = format!(
                    "Unable to open primary script: {} ({})",
                    String::from_utf8_lossy(f.bytes()),
                    Errno::from_raw(errno).desc()
                );
                logging::log(Level::Error, &format!("[pool {}] {msg}", ctx.settings.pool));
                io.stderr_message(b"", msg.as_bytes());
            }
            (outcome.peak_memory as u64, outcome.http_status)
        }
        Err(e) => {
            logging::log(Level::Error, &format!("[pool {}] {e}", ctx.settings.pool));
            let _ = io.write(b"Status: 500 Internal Server Error\r\nContent-type: text/html; charset=UTF-8\r\n\r\n");
            (0, 500)
        }
    }
}

/// Answers the status or ping page if `uri` (PHP's request_uri: the script name) is
/// one of them; they never reach PHP, so they work even when every script is slow.
fn answer_page(
    settings: &WorkerSettings,
    report: &Reporting<'_>,
    env: &Env,
    io: &mut Exchange<'_>,
    uri: &[u8],
) -> bool {
    let pages = &settings.pages;
    let method = env.get(b"REQUEST_METHOD").unwrap_or_default();
    let query = env.get(b"QUERY_STRING").unwrap_or_default();
    let page = status::Request { uri, query, method };
    let Some(kind) = pages.which(uri) else {
        return false;
    };
    report.slot.begin_request(&RequestInfo {
        method,
        uri,
        query,
        script: b"",
        content_length: 0,
    });
    report.slot.set_state(WorkerState::Running);
    let response = status::respond(kind, &page, pages, &settings.pool, report.board);
    io.write(&response);
    true
}
