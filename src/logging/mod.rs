//! Log lines in php-fpm's format (`[21-Nov-2026 06:27:00] NOTICE: fpm is running, pid 1`)
//! to stderr or the `error_log` file, or, when stderr is the journal (systemd sets
//! JOURNAL_STREAM), structured journal entries through [`journal`].
//!
//! Precedence: an `error_log` file (php-fpm compatibility), then the journal, then
//! stderr. The sink is process-wide state because a log line can come from anywhere
//! in a single-threaded master or worker, as with php-fpm's zlog.
#![forbid(unsafe_code)]

pub mod journal;

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

/// Severity, as php-fpm's `log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Debug detail.
    Debug = 1,
    /// Normal but significant.
    Notice = 2,
    /// Something to look at.
    Warning = 3,
    /// An operation failed.
    Error = 4,
    /// The process cannot go on.
    Alert = 5,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Notice => "NOTICE",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Alert => "ALERT",
        }
    }
}

static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Notice as u8);
static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Sets the lowest level that is written (`log_level`).
pub fn set_level(level: Level) {
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Sends log lines to `file` instead of stderr (`error_log`).
pub fn set_file(file: Option<std::fs::File>) {
    if let Ok(mut f) = FILE.lock() {
        *f = file;
    }
}

/// php-fpm's timestamp: `21-Nov-2026 06:27:00`, local time as the C library sees it.
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = now.div_euclid(86_400);
    let secs = now.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d:02}-{}-{y} {:02}:{:02}:{:02}",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Writes one line at `level`.
pub fn log(level: Level, msg: &str) {
    if (level as u8) < MIN_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    if journal::direct() {
        journal::fpm_line(level, msg);
        return;
    }
    let line = format!("[{}] {}: {}\n", timestamp(), level.label(), msg);
    if let Ok(mut f) = FILE.lock() {
        if let Some(file) = f.as_mut() {
            let _ = file.write_all(line.as_bytes());
            return;
        }
    }
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Writes a line that is already formatted (a worker's log line relayed by the master).
pub fn raw(line: &str) {
    if journal::direct() {
        let (level, msg) = parse_line(line);
        journal::fpm_line(level, msg);
        return;
    }
    let mut l = String::with_capacity(line.len() + 1);
    l.push_str(line);
    l.push('\n');
    if let Ok(mut f) = FILE.lock() {
        if let Some(file) = f.as_mut() {
            let _ = file.write_all(l.as_bytes());
            return;
        }
    }
    let _ = std::io::stderr().write_all(l.as_bytes());
}

/// Whether an `error_log` file is set (it wins over the journal).
fn file_is_set() -> bool {
    FILE.lock().map(|f| f.is_some()).unwrap_or(false)
}

/// Splits `[ts] LEVEL: message` back into its level and message (NOTICE when the
/// line is not in that format, e.g. decorated worker output).
fn parse_line(line: &str) -> (Level, &str) {
    let rest = match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
        Some((_, rest)) => rest,
        None => return (Level::Notice, line),
    };
    for level in [
        Level::Debug,
        Level::Notice,
        Level::Warning,
        Level::Error,
        Level::Alert,
    ] {
        if let Some(msg) = rest
            .strip_prefix(level.label())
            .and_then(|r| r.strip_prefix(": "))
        {
            return (level, msg);
        }
    }
    (Level::Notice, line)
}

/// Switches a freshly forked worker's logging: straight to the journal when that is
/// the sink (the entry then carries the worker's own _PID and the pool), otherwise to
/// `pipe`, which the master relays to stderr or `error_log`.
pub fn enter_worker(pool: &str, pid: u32, pipe: std::fs::File) {
    journal::set_process(Some(pool), Some(pid));
    if journal::direct() {
        drop(pipe);
    } else {
        set_file(Some(pipe));
    }
}

/// Relays one line a worker wrote to its stdout or stderr (`catch_workers_output`):
/// a journal entry with POOL, WORKER_PID and STREAM, or php-fpm's line
/// (`child 12 said into stderr: "..."` when `decorate_workers_output`).
pub fn worker_output(pool: &str, pid: u32, stream: &str, text: &str, decorate: bool) {
    if journal::direct() {
        journal::worker_output(pool, pid, stream, text);
    } else if decorate {
        log(
            Level::Warning,
            &format!("[pool {pool}] child {pid} said into {stream}: \"{text}\""),
        );
    } else {
        raw(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_lines_are_split_into_level_and_message() {
        assert_eq!(
            parse_line("[21-Nov-2026 06:27:00] WARNING: [pool www] child 7 exited"),
            (Level::Warning, "[pool www] child 7 exited")
        );
        assert_eq!(parse_line("plain output"), (Level::Notice, "plain output"));
    }

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
