//! The journald sink: one structured entry per log line through tracing and
//! tracing-journald (the journal's native protocol), so `journalctl -u php-fpm@blog`
//! can filter on fields instead of parsing text.
//!
//! Fields (names as journalctl shows them):
//! - `PRIORITY`: from the php-fpm level (DEBUG 7, NOTICE 5, WARNING 4, ERROR and
//!   ALERT 3) or from PHP's own severity for PHP messages (E_WARNING 4, E_NOTICE 5,
//!   E_DEPRECATED 6, errors 3).
//! - `POOL`: the pool (from the worker, or the `[pool NAME]` prefix of a master line).
//! - `WORKER_PID`: the worker that logged (journald's trusted `_PID` says the same).
//! - `SCRIPT_FILENAME`, `REQUEST_METHOD`, `REQUEST_URI`: the request a PHP message
//!   came from.
//! - `STREAM`: `stdout`/`stderr` for relayed worker output (`catch_workers_output`).
//! - access entries: `REQUEST_METHOD`, `REQUEST_URI`, `STATUS`, `DURATION_USEC`,
//!   `CPU_PERCENT`, `MEMORY_BYTES`, `REMOTE_ADDR`, `SCRIPT_FILENAME`.
//! - `SYSLOG_IDENTIFIER=php-fpm-rs`, and tracing-journald's `TARGET`, `CODE_FILE`,
//!   `CODE_LINE`.
//!
//! The MESSAGE is php-fpm's line without its timestamp and level, which the journal
//! keeps as fields of its own.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;

use super::Level;

/// Set once the journal subscriber is installed.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The pool and worker pid of this process (workers only).
static PROCESS: Mutex<(Option<String>, Option<u32>)> = Mutex::new((None, None));
/// The request a worker is running, for PHP messages.
static REQUEST: Mutex<Option<RequestFields>> = Mutex::new(None);

#[derive(Debug, Default)]
struct RequestFields {
    script: Option<String>,
    method: Option<String>,
    uri: Option<String>,
}

/// Whether stderr is connected to the journal: systemd sets JOURNAL_STREAM to the
/// `device:inode` of the stream it gave the service (systemd.exec(5)). Comparing them
/// tells a service's own stderr from one a child redirected elsewhere.
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(2) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

/// Sends log lines to the journal from now on (unless an `error_log` file is set).
///
/// # Errors
/// When the journal socket cannot be reached or a tracing subscriber is already set.
pub fn enable() -> std::io::Result<()> {
    if ACTIVE.load(Ordering::Relaxed) {
        return Ok(());
    }
    let layer = tracing_journald::layer()?
        .with_field_prefix(None)
        .with_syslog_identifier("php-fpm-rs".to_string());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::set_global_default(subscriber).map_err(std::io::Error::other)?;
    ACTIVE.store(true, Ordering::Relaxed);
    Ok(())
}

/// Enables the journal when stderr is connected to it. Returns whether it is on.
pub fn enable_if_stderr_is_journal() -> bool {
    stderr_is_journal() && enable().is_ok()
}

/// Whether the journal is on.
pub fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Whether lines go to the journal now (on, and no `error_log` file wins over it).
pub fn direct() -> bool {
    is_active() && !super::file_is_set()
}

/// Sets the pool and worker pid every entry of this process carries.
pub fn set_process(pool: Option<&str>, pid: Option<u32>) {
    if let Ok(mut p) = PROCESS.lock() {
        *p = (pool.map(str::to_string), pid);
    }
}

fn process() -> (Option<String>, Option<u32>) {
    PROCESS.lock().map(|p| p.clone()).unwrap_or_default()
}

/// Emits one event at a level chosen at run time (tracing's callsites are static,
/// hence one arm per level).
macro_rules! emit {
    ($level:expr, $($rest:tt)*) => {
        match $level {
            tracing::Level::ERROR => tracing::event!(target: "php-fpm-rs", tracing::Level::ERROR, $($rest)*),
            tracing::Level::WARN => tracing::event!(target: "php-fpm-rs", tracing::Level::WARN, $($rest)*),
            tracing::Level::INFO => tracing::event!(target: "php-fpm-rs", tracing::Level::INFO, $($rest)*),
            tracing::Level::DEBUG => tracing::event!(target: "php-fpm-rs", tracing::Level::DEBUG, $($rest)*),
            tracing::Level::TRACE => tracing::event!(target: "php-fpm-rs", tracing::Level::TRACE, $($rest)*),
        }
    };
}

/// tracing level whose default journald mapping gives the php-fpm level's PRIORITY.
fn tracing_level(level: Level) -> tracing::Level {
    match level {
        Level::Debug => tracing::Level::TRACE,  // 7 debug
        Level::Notice => tracing::Level::INFO,  // 5 notice
        Level::Warning => tracing::Level::WARN, // 4 warning
        Level::Error => tracing::Level::ERROR,  // 3 err
        Level::Alert => tracing::Level::ERROR,  // 3 err: tracing has nothing above
    }
}

/// tracing level for a syslog priority PHP gives its message (php_error_cb).
fn php_level(syslog_priority: i32) -> tracing::Level {
    match syslog_priority {
        i32::MIN..=3 => tracing::Level::ERROR,
        4 => tracing::Level::WARN,
        5 => tracing::Level::INFO,
        6 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    }
}

/// `[pool NAME] rest` → `Some(NAME)`.
fn pool_of(msg: &str) -> Option<&str> {
    msg.strip_prefix("[pool ")
        .and_then(|r| r.split_once(']'))
        .map(|(name, _)| name)
}

/// One php-fpm log line.
pub(super) fn fpm_line(level: Level, msg: &str) {
    let (own_pool, pid) = process();
    let pool = own_pool.as_deref().or_else(|| pool_of(msg));
    emit!(tracing_level(level), pool, worker_pid = pid, "{}", msg);
}

/// One line of a worker's stdout/stderr.
pub(super) fn worker_output(pool: &str, pid: u32, stream: &str, text: &str) {
    emit!(
        tracing::Level::WARN,
        pool,
        worker_pid = pid,
        stream,
        "{}",
        text
    );
}

/// Remembers the request a worker runs, so PHP messages name it. Cleared on drop.
#[derive(Debug)]
pub struct RequestScope(bool);

impl RequestScope {
    /// Enters a request (does nothing unless the journal is the sink).
    pub fn enter(script: Option<&[u8]>, method: Option<&[u8]>, uri: Option<&[u8]>) -> Self {
        if !direct() {
            return RequestScope(false);
        }
        let s = |c: Option<&[u8]>| c.map(|c| String::from_utf8_lossy(c).into_owned());
        if let Ok(mut r) = REQUEST.lock() {
            *r = Some(RequestFields {
                script: s(script),
                method: s(method),
                uri: s(uri),
            });
        }
        RequestScope(true)
    }
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        if self.0 {
            if let Ok(mut r) = REQUEST.lock() {
                *r = None;
            }
        }
    }
}

/// A message PHP logged (warning, notice, fatal error) with its syslog priority.
/// Returns whether it went to the journal.
pub fn php_message(syslog_priority: i32, msg: &[u8]) -> bool {
    if !direct() {
        return false;
    }
    let (pool, pid) = process();
    let req = REQUEST.lock().ok().and_then(|mut r| r.take());
    let text = String::from_utf8_lossy(msg);
    let (script, method, uri) = match &req {
        Some(r) => (r.script.as_deref(), r.method.as_deref(), r.uri.as_deref()),
        None => (None, None, None),
    };
    emit!(
        php_level(syslog_priority),
        pool = pool.as_deref(),
        worker_pid = pid,
        script_filename = script,
        request_method = method,
        request_uri = uri,
        "{}",
        text
    );
    if let (Some(r), Ok(mut slot)) = (req, REQUEST.lock()) {
        *slot = Some(r);
    }
    true
}

/// One served request, for the access log.
#[derive(Debug, Clone, Default)]
pub struct AccessEntry<'a> {
    /// The pool.
    pub pool: &'a str,
    /// REQUEST_METHOD.
    pub method: &'a str,
    /// REQUEST_URI.
    pub uri: &'a str,
    /// The HTTP status sent.
    pub status: u16,
    /// Wall time of the request.
    pub duration_usec: u64,
    /// CPU used, percent of the wall time (access.format `%C`).
    pub cpu_percent: f64,
    /// Peak memory of the request (`%M`).
    pub memory_bytes: u64,
    /// REMOTE_ADDR.
    pub remote_addr: &'a str,
    /// SCRIPT_FILENAME.
    pub script: &'a str,
}

/// One access log entry; `message` is the line `access.format` produced. Returns
/// whether it went to the journal (else the caller writes its access log file).
pub fn access(entry: &AccessEntry<'_>, message: &str) -> bool {
    if !is_active() {
        return false;
    }
    let (_, pid) = process();
    emit!(
        tracing::Level::INFO,
        pool = entry.pool,
        worker_pid = pid,
        request_method = entry.method,
        request_uri = entry.uri,
        status = entry.status,
        duration_usec = entry.duration_usec,
        cpu_percent = entry.cpu_percent,
        memory_bytes = entry.memory_bytes,
        remote_addr = entry.remote_addr,
        script_filename = entry.script,
        "{}",
        message
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_severities_map_to_their_syslog_priorities() {
        assert_eq!(php_level(3), tracing::Level::ERROR);
        assert_eq!(php_level(4), tracing::Level::WARN);
        assert_eq!(php_level(5), tracing::Level::INFO);
        assert_eq!(php_level(6), tracing::Level::DEBUG);
        assert_eq!(tracing_level(Level::Debug), tracing::Level::TRACE);
    }

    #[test]
    fn the_pool_is_read_from_a_master_line() {
        assert_eq!(pool_of("[pool blog] child 7 started"), Some("blog"));
        assert_eq!(pool_of("fpm is running, pid 1"), None);
    }

    #[test]
    fn stderr_is_not_the_journal_without_journal_stream() {
        // the test runner's stderr is a pipe or a terminal, never the journal
        if std::env::var_os("JOURNAL_STREAM").is_none() {
            assert!(!stderr_is_journal());
        }
    }
}
