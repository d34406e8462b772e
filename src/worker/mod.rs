//! The worker: accept a connection on the pool's socket, read one request at a time,
//! resolve the script (CGI rules), run it through the PHP engine, answer, and repeat
//! until `pm.max_requests` or a stop signal. Process policy is the master's business.
#![forbid(unsafe_code)]

pub mod stream;

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

use crate::cgi::{self, Env, PathSettings};
use crate::fastcgi::{Connection, Limits};
use crate::logging::{self, Level};
use crate::php::{Engine, RequestIo, Script};
use crate::sys;
use stream::{Exchange, OwnedEvent, StreamError, Transport};

/// Set by the SIGQUIT handler: finish the request in flight, then exit.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// What a worker needs to know about its pool.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Pool name, for log lines.
    pub pool: String,
    /// `security.limit_extensions`.
    pub limit_extensions: Vec<String>,
    /// `pm.max_requests`; 0 is unlimited.
    pub max_requests: u64,
    /// Bounds applied to every FastCGI connection.
    pub limits: Limits,
}

/// Serves requests on `listener` until told to stop or `max_requests` is reached.
pub fn serve(engine: &mut Engine, listener: RawFd, settings: &WorkerSettings) {
    let paths = PathSettings {
        fix_pathinfo: engine.ini_bool("cgi.fix_pathinfo"),
        discard_path: engine.ini_bool("cgi.discard_path"),
        script_path_encoded: engine.ini_bool("fastcgi.script_path_encoded"),
        doc_root: None,
    };
    let stderr_to_client = engine.ini_bool("fastcgi.logging");
    let mut served = 0u64;
    let mut env = Env::new();
    while !STOP.load(Ordering::Relaxed) {
        let fd = match sys::accept(listener) {
            Ok(fd) => fd,
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
        let mut transport = Transport::new(fd);
        let mut conn = Connection::new(settings.limits);
        let mut ctx = RunContext {
            engine: &mut *engine,
            env: &mut env,
            paths: &paths,
            settings,
            stderr_to_client,
        };
        match serve_connection(&mut transport, &mut conn, &mut ctx, &mut served) {
            Ok(()) => {}
            Err(e) => logging::log(
                Level::Warning,
                &format!("[pool {}] closing FastCGI connection: {e}", settings.pool),
            ),
        }
        if settings.max_requests > 0 && served >= settings.max_requests {
            break;
        }
    }
}

struct RunContext<'a> {
    engine: &'a mut Engine,
    env: &'a mut Env,
    paths: &'a PathSettings,
    settings: &'a WorkerSettings,
    stderr_to_client: bool,
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
            OwnedEvent::Begin { request_id: id, .. } => request_id = Some(id),
            OwnedEvent::Params(params) => {
                let id = request_id.take().unwrap_or(1);
                ctx.env.clear();
                // php's FastCGI layer adds the role ahead of the params
                ctx.env.append(b"FCGI_ROLE", b"RESPONDER");
                for (n, v) in params.iter() {
                    ctx.env.append(n, v);
                }
                let keep = conn.keep_conn();
                let mut exchange = Exchange::new(transport, conn, id);
                exchange.stderr_to_client = ctx.stderr_to_client;
                run_request(ctx, &mut exchange);
                *served += 1;
                exchange.end();
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
                if STOP.load(Ordering::Relaxed)
                    || ctx.settings.max_requests > 0 && *served >= ctx.settings.max_requests
                {
                    return Ok(());
                }
            }
            OwnedEvent::Abort => {
                conn.end_request();
                request_id = None;
            }
            OwnedEvent::Stdin | OwnedEvent::StdinEnd | OwnedEvent::Nothing => {}
        }
    }
}

fn run_request(ctx: &mut RunContext<'_>, io: &mut Exchange<'_>) {
    let env = &mut *ctx.env;
    let resolved = cgi::resolve(env, ctx.paths);
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
    let script_c = resolved
        .script_filename
        .as_deref()
        .and_then(|f| std::ffi::CString::new(f).ok());
    let uri_c = resolved
        .request_uri
        .as_deref()
        .and_then(|f| std::ffi::CString::new(f).ok());
    let env = &*env;
    let content_length = env
        .get(b"CONTENT_LENGTH")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let script = Script {
        vars: env.iter_cstr().collect(),
        request_method: env.get_cstr(b"REQUEST_METHOD"),
        query_string: env.get_cstr(b"QUERY_STRING"),
        request_uri: uri_c.as_deref(),
        script_filename: script_c.as_deref(),
        content_type: env.get_cstr(b"CONTENT_TYPE"),
        cookie: env.get_cstr(b"HTTP_COOKIE"),
        authorization: env.get_cstr(b"HTTP_AUTHORIZATION"),
        php_value: env.get_cstr(b"PHP_VALUE"),
        php_admin_value: env.get_cstr(b"PHP_ADMIN_VALUE"),
        content_length,
        fix_pathinfo: ctx.paths.fix_pathinfo,
        access_denied: denied,
    };
    match ctx.engine.run(&script, io) {
        Ok(outcome) => {
            if script.script_filename.is_none() && script.request_method.is_some() {
                logging::log(Level::Debug, "Primary script unknown");
                io.stderr_message(b"", b"Primary script unknown");
            }
            if let (Some(errno), Some(f)) = (outcome.open_failed_errno, script.script_filename) {
                let msg = format!(
                    "Unable to open primary script: {} ({})",
                    f.to_string_lossy(),
                    Errno::from_raw(errno).desc()
                );
                logging::log(Level::Error, &format!("[pool {}] {msg}", ctx.settings.pool));
                io.stderr_message(b"", msg.as_bytes());
            }
        }
        Err(e) => {
            logging::log(Level::Error, &format!("[pool {}] {e}", ctx.settings.pool));
            let _ = io.write(b"Status: 500 Internal Server Error\r\nContent-type: text/html; charset=UTF-8\r\n\r\n");
        }
    }
}
