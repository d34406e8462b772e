//! The directive tables: one row per php-fpm 8.2 directive, with its parser and
//! whether the rest of php-fpm-rs implements it yet.
//!
//! Flipping `implemented: false` to `true` is all it takes once a feature lands;
//! until then the value is still parsed and stored, and the loader warns.

use super::{GlobalConfig, LogLevel, PmStyle, PoolConfig, Rlimit};
use std::collections::HashMap;
use std::time::Duration;

/// A directive: its name, whether it is implemented, and how to store a value.
pub(crate) struct Directive<T: 'static> {
    /// Name as in php-fpm's `ini_fpm_*_options` (matched case-insensitively).
    pub name: &'static str,
    /// False: parsed and stored, but the loader warns that it has no effect yet.
    pub implemented: bool,
    /// Parses the value into the draft; the error is the "expected ..." reason.
    pub set: fn(&mut T, &str) -> Result<(), String>,
}

/// Global values before post-processing (paths still relative).
#[derive(Default)]
pub(crate) struct GlobalDraft {
    pub cfg: GlobalConfig,
    pub pid: Option<String>,
    pub error_log: Option<String>,
}

/// Pool values before validation: raw strings where php-fpm resolves later.
pub(crate) struct PoolDraft {
    pub cfg: PoolConfig,
    pub listen: Option<String>,
    pub pm: Option<PmStyle>,
    pub start_servers: Option<u32>,
    pub trace_depth: Option<u32>,
    pub prefix: Option<String>,
    pub status_listen: Option<String>,
    pub ping_response: Option<String>,
    pub access_log: Option<String>,
    pub slowlog: Option<String>,
    pub chroot: Option<String>,
    pub chdir: Option<String>,
    pub limit_extensions: Option<String>,
    /// Line of the last assignment of each directive, for validation messages.
    pub seen: HashMap<&'static str, super::Location>,
    /// Directives whose value was rejected: validation stays quiet about them so
    /// one bad line gives one error.
    pub failed: Vec<&'static str>,
}

fn some(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// php-fpm's integer: optional '-', digits; empty counts as 0 (php-fpm accepts it).
fn int(v: &str) -> Result<i64, String> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected an integer".to_string());
    }
    if digits.is_empty() {
        return Ok(0);
    }
    v.parse::<i64>()
        .map_err(|_| "expected an integer that fits in 32 bits".to_string())
}

fn uint(v: &str) -> Result<u32, String> {
    let n = int(v)?;
    u32::try_from(n).map_err(|_| "expected an integer >= 0".to_string())
}

fn sint(v: &str) -> Result<i32, String> {
    i32::try_from(int(v)?).map_err(|_| "expected an integer that fits in 32 bits".to_string())
}

/// php-fpm's time: digits with an optional s/m/h/d suffix; plain is seconds.
pub(crate) fn time(v: &str) -> Result<Duration, String> {
    const WANT: &str = "expected a time like 10s, 5m, 1h or 1d";
    let (num, mult) = match v.as_bytes().last() {
        None => return Err(WANT.to_string()),
        Some(b's') => (&v[..v.len() - 1], 1),
        Some(b'm') => (&v[..v.len() - 1], 60),
        Some(b'h') => (&v[..v.len() - 1], 3600),
        Some(b'd') => (&v[..v.len() - 1], 86400),
        Some(b) if b.is_ascii_digit() => (v, 1),
        Some(_) => return Err(format!("{WANT} (unknown suffix)")),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WANT.to_string());
    }
    let n: u64 = num.parse().map_err(|_| WANT.to_string())?;
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

/// php-fpm's boolean: the INI layer already turned yes/on/true into "1" and
/// no/off/false/none into ""; php-fpm 8.2 also accepts a literal "0".
pub(crate) fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "1" => Ok(true),
        "" | "0" => Ok(false),
        _ => Err("expected a boolean (yes/no, on/off, true/false, 1/0)".to_string()),
    }
}

fn rlimit(v: &str) -> Result<Option<Rlimit>, String> {
    if v.eq_ignore_ascii_case("unlimited") {
        return Ok(Some(Rlimit::Unlimited));
    }
    let n = int(v)?;
    let n = u64::try_from(n).map_err(|_| "expected an integer >= 0 or 'unlimited'".to_string())?;
    // 0 is php-fpm's "not set".
    Ok((n > 0).then_some(Rlimit::Limit(n)))
}

fn rlimit_files(v: &str) -> Result<Option<u64>, String> {
    let n = u64::try_from(int(v)?).map_err(|_| "expected an integer >= 0".to_string())?;
    Ok((n > 0).then_some(n))
}

fn priority(v: &str) -> Result<Option<i32>, String> {
    let n = sint(v)?;
    if !(-19..=20).contains(&n) {
        return Err("expected a priority between -19 and 20".to_string());
    }
    Ok(Some(n))
}

fn log_level(v: &str) -> Result<LogLevel, String> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "debug" => LogLevel::Debug,
        "notice" => LogLevel::Notice,
        "warning" | "warn" => LogLevel::Warning,
        "error" => LogLevel::Error,
        "alert" => LogLevel::Alert,
        _ => return Err("expected alert, error, warning, notice or debug".to_string()),
    })
}

fn pm(v: &str) -> Result<PmStyle, String> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "static" => PmStyle::Static,
        "dynamic" => PmStyle::Dynamic,
        "ondemand" => PmStyle::OnDemand,
        _ => return Err("expected static, dynamic or ondemand".to_string()),
    })
}

fn facility(v: &str) -> Result<String, String> {
    const NAMES: [&str; 20] = [
        "AUTH", "AUTHPRIV", "CRON", "DAEMON", "FTP", "KERN", "LPR", "MAIL", "NEWS", "SYSLOG",
        "USER", "UUCP", "LOCAL0", "LOCAL1", "LOCAL2", "LOCAL3", "LOCAL4", "LOCAL5", "LOCAL6",
        "LOCAL7",
    ];
    let up = v.to_ascii_uppercase();
    if NAMES.contains(&up.as_str()) {
        Ok(up)
    } else {
        Err("expected a syslog facility such as DAEMON or LOCAL0".to_string())
    }
}

/// Unix permission bits in octal, as php-fpm passes them to strtoul(.., 8).
fn octal_mode(v: &str) -> Result<u32, String> {
    u32::from_str_radix(v, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| "expected an octal mode such as 0660".to_string())
}

/// The `[global]` table, in php-fpm's order.
#[rustfmt::skip]
pub(crate) static GLOBAL: &[Directive<GlobalDraft>] = &[
    Directive { name: "pid", implemented: true, set: |d, v| { d.pid = some(v); Ok(()) } },
    Directive { name: "error_log", implemented: true, set: |d, v| { d.error_log = some(v); Ok(()) } },
    Directive { name: "syslog.ident", implemented: false, set: |d, v| { d.cfg.syslog_ident = v.to_string(); Ok(()) } },
    Directive { name: "syslog.facility", implemented: false, set: |d, v| { d.cfg.syslog_facility = facility(v)?; Ok(()) } },
    Directive { name: "log_buffering", implemented: false, set: |d, v| { d.cfg.log_buffering = boolean(v)?; Ok(()) } },
    Directive { name: "log_level", implemented: true, set: |d, v| { d.cfg.log_level = log_level(v)?; Ok(()) } },
    Directive { name: "log_limit", implemented: false, set: |d, v| { d.cfg.log_limit = uint(v)?; Ok(()) } },
    Directive { name: "emergency_restart_threshold", implemented: true, set: |d, v| { d.cfg.emergency_restart_threshold = uint(v)?; Ok(()) } },
    Directive { name: "emergency_restart_interval", implemented: true, set: |d, v| { d.cfg.emergency_restart_interval = time(v)?; Ok(()) } },
    Directive { name: "process_control_timeout", implemented: true, set: |d, v| { d.cfg.process_control_timeout = time(v)?; Ok(()) } },
    Directive { name: "process.max", implemented: true, set: |d, v| { d.cfg.process_max = uint(v)?; Ok(()) } },
    Directive { name: "process.priority", implemented: true, set: |d, v| { d.cfg.process_priority = priority(v)?; Ok(()) } },
    Directive { name: "daemonize", implemented: true, set: |d, v| { d.cfg.daemonize = boolean(v)?; Ok(()) } },
    Directive { name: "rlimit_files", implemented: true, set: |d, v| { d.cfg.rlimit_files = rlimit_files(v)?; Ok(()) } },
    Directive { name: "rlimit_core", implemented: true, set: |d, v| { d.cfg.rlimit_core = rlimit(v)?; Ok(()) } },
    Directive { name: "events.mechanism", implemented: false, set: |d, v| { d.cfg.events_mechanism = some(v); Ok(()) } },
    Directive { name: "systemd_interval", implemented: true, set: |d, v| { d.cfg.systemd_interval = time(v)?; Ok(()) } },
];

/// The pool table, in php-fpm's order. Arrays (`env[]`, `php_value[]`, ...) are
/// handled by the loader because their key is part of the line.
#[rustfmt::skip]
pub(crate) static POOL: &[Directive<PoolDraft>] = &[
    Directive { name: "prefix", implemented: true, set: |d, v| { d.prefix = some(v); Ok(()) } },
    Directive { name: "user", implemented: true, set: |d, v| { d.cfg.user = some(v); Ok(()) } },
    Directive { name: "group", implemented: true, set: |d, v| { d.cfg.group = some(v); Ok(()) } },
    Directive { name: "listen", implemented: true, set: |d, v| { d.listen = some(v); Ok(()) } },
    Directive { name: "listen.backlog", implemented: true, set: |d, v| { d.cfg.listen_backlog = sint(v)?; Ok(()) } },
    Directive { name: "listen.acl_users", implemented: false, set: |d, v| { d.cfg.listen_acl_users = some(v); Ok(()) } },
    Directive { name: "listen.acl_groups", implemented: false, set: |d, v| { d.cfg.listen_acl_groups = some(v); Ok(()) } },
    Directive { name: "listen.owner", implemented: true, set: |d, v| { d.cfg.listen_owner = some(v); Ok(()) } },
    Directive { name: "listen.group", implemented: true, set: |d, v| { d.cfg.listen_group = some(v); Ok(()) } },
    Directive { name: "listen.mode", implemented: true, set: |d, v| { d.cfg.listen_mode = octal_mode(v)?; Ok(()) } },
    Directive { name: "listen.allowed_clients", implemented: false, set: |d, v| {
        d.cfg.listen_allowed_clients = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        Ok(())
    } },
    Directive { name: "listen.setfib", implemented: false, set: |d, v| { d.cfg.listen_setfib = Some(sint(v)?); Ok(()) } },
    Directive { name: "process.priority", implemented: true, set: |d, v| { d.cfg.process_priority = priority(v)?; Ok(()) } },
    Directive { name: "process.dumpable", implemented: false, set: |d, v| { d.cfg.process_dumpable = boolean(v)?; Ok(()) } },
    Directive { name: "pm", implemented: true, set: |d, v| { d.pm = Some(pm(v)?); Ok(()) } },
    Directive { name: "pm.max_children", implemented: true, set: |d, v| { d.cfg.pm_max_children = uint(v)?; Ok(()) } },
    Directive { name: "pm.start_servers", implemented: true, set: |d, v| { d.start_servers = Some(uint(v)?).filter(|n| *n > 0); Ok(()) } },
    Directive { name: "pm.min_spare_servers", implemented: true, set: |d, v| { d.cfg.pm_min_spare_servers = uint(v)?; Ok(()) } },
    Directive { name: "pm.max_spare_servers", implemented: true, set: |d, v| { d.cfg.pm_max_spare_servers = uint(v)?; Ok(()) } },
    Directive { name: "pm.max_spawn_rate", implemented: true, set: |d, v| { d.cfg.pm_max_spawn_rate = uint(v)?; Ok(()) } },
    Directive { name: "pm.process_idle_timeout", implemented: true, set: |d, v| { d.cfg.pm_process_idle_timeout = time(v)?; Ok(()) } },
    // php-fpm-rs only: scale to zero under socket activation
    Directive { name: "pm.idle_exit_timeout", implemented: true, set: |d, v| { d.cfg.pm_idle_exit_timeout = time(v)?; Ok(()) } },
    Directive { name: "pm.max_requests", implemented: true, set: |d, v| { d.cfg.pm_max_requests = uint(v)?; Ok(()) } },
    Directive { name: "pm.status_path", implemented: true, set: |d, v| { d.cfg.pm_status_path = Some(v.to_string()).filter(|s| !s.is_empty()); Ok(()) } },
    Directive { name: "pm.status_listen", implemented: true, set: |d, v| { d.status_listen = Some(v.to_string()).filter(|s| !s.is_empty()); Ok(()) } },
    Directive { name: "ping.path", implemented: true, set: |d, v| { d.cfg.ping_path = Some(v.to_string()).filter(|s| !s.is_empty()); Ok(()) } },
    Directive { name: "ping.response", implemented: true, set: |d, v| { d.ping_response = some(v); Ok(()) } },
    Directive { name: "access.log", implemented: true, set: |d, v| { d.access_log = Some(v.to_string()).filter(|s| !s.is_empty()); Ok(()) } },
    Directive { name: "access.format", implemented: true, set: |d, v| { d.cfg.access_format = some(v); Ok(()) } },
    Directive { name: "slowlog", implemented: false, set: |d, v| { d.slowlog = Some(v.to_string()).filter(|s| !s.is_empty()); Ok(()) } },
    Directive { name: "request_slowlog_timeout", implemented: false, set: |d, v| { d.cfg.request_slowlog_timeout = time(v)?; Ok(()) } },
    Directive { name: "request_slowlog_trace_depth", implemented: false, set: |d, v| { d.trace_depth = Some(uint(v)?); Ok(()) } },
    Directive { name: "request_terminate_timeout", implemented: true, set: |d, v| { d.cfg.request_terminate_timeout = time(v)?; Ok(()) } },
    Directive { name: "request_terminate_timeout_track_finished", implemented: true, set: |d, v| { d.cfg.request_terminate_timeout_track_finished = boolean(v)?; Ok(()) } },
    Directive { name: "rlimit_files", implemented: true, set: |d, v| { d.cfg.rlimit_files = rlimit_files(v)?; Ok(()) } },
    Directive { name: "rlimit_core", implemented: true, set: |d, v| { d.cfg.rlimit_core = rlimit(v)?; Ok(()) } },
    Directive { name: "chroot", implemented: false, set: |d, v| { d.chroot = Some(v.to_string()).filter(|s| !s.is_empty()); Ok(()) } },
    Directive { name: "chdir", implemented: true, set: |d, v| { d.chdir = Some(v.to_string()).filter(|s| !s.is_empty()); Ok(()) } },
    Directive { name: "catch_workers_output", implemented: true, set: |d, v| { d.cfg.catch_workers_output = boolean(v)?; Ok(()) } },
    Directive { name: "decorate_workers_output", implemented: true, set: |d, v| { d.cfg.decorate_workers_output = boolean(v)?; Ok(()) } },
    Directive { name: "clear_env", implemented: true, set: |d, v| { d.cfg.clear_env = boolean(v)?; Ok(()) } },
    Directive { name: "security.limit_extensions", implemented: true, set: |d, v| { d.limit_extensions = some(v); Ok(()) } },
];

/// `access.suppress_path[]` is an array, so it lives outside the table; this flag
/// plays the table's role for it.
pub(crate) const ACCESS_SUPPRESS_PATH_IMPLEMENTED: bool = true;

/// The section a directive belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `[global]`.
    Global,
    /// A pool section such as `[www]`.
    Pool,
}

/// A directive as the documentation sees it: where it goes and whether it has an
/// effect yet. Built from the tables above, so the man page cannot drift from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectiveInfo {
    /// Section it is accepted in.
    pub section: Section,
    /// Name as written in the file; arrays end in `[]` (`env[]`, `php_value[]`).
    pub name: &'static str,
    /// False: accepted and stored, but the loader warns that it has no effect yet.
    pub implemented: bool,
}

/// The directives whose key is part of the line, handled by the loader rather than
/// the tables; `include` is accepted in any section.
const SPECIAL: &[(Section, &str, bool)] = &[
    (Section::Global, "include", true),
    (Section::Pool, "env[]", true),
    (Section::Pool, "php_value[]", true),
    (Section::Pool, "php_flag[]", true),
    (Section::Pool, "php_admin_value[]", true),
    (Section::Pool, "php_admin_flag[]", true),
    (
        Section::Pool,
        "access.suppress_path[]",
        ACCESS_SUPPRESS_PATH_IMPLEMENTED,
    ),
];

/// Every directive php-fpm-rs accepts: the global ones, then the pool ones, each in
/// php-fpm's order, with `include` and the arrays last in their section.
pub fn all() -> Vec<DirectiveInfo> {
    fn table<T>(
        section: Section,
        rows: &'static [Directive<T>],
    ) -> impl Iterator<Item = DirectiveInfo> {
        rows.iter().map(move |d| DirectiveInfo {
            section,
            name: d.name,
            implemented: d.implemented,
        })
    }
    fn special(section: Section) -> impl Iterator<Item = DirectiveInfo> {
        SPECIAL.iter().filter(move |(s, _, _)| *s == section).map(
            |&(section, name, implemented)| DirectiveInfo {
                section,
                name,
                implemented,
            },
        )
    }
    table(Section::Global, GLOBAL)
        .chain(special(Section::Global))
        .chain(table(Section::Pool, POOL))
        .chain(special(Section::Pool))
        .collect()
}

/// Finds a directive by name, case-insensitively like php-fpm's strcasecmp.
pub(crate) fn find<T>(table: &'static [Directive<T>], key: &str) -> Option<&'static Directive<T>> {
    table.iter().find(|d| d.name.eq_ignore_ascii_case(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_suffixes_follow_php_fpm() {
        assert_eq!(time("10"), Ok(Duration::from_secs(10)));
        assert_eq!(time("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(time("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(time("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(time("1d"), Ok(Duration::from_secs(86400)));
        assert!(time("5x").is_err());
        assert!(time("").is_err());
        assert!(time("s").is_err());
    }

    #[test]
    fn booleans_accept_what_the_ini_layer_leaves() {
        assert_eq!(boolean("1"), Ok(true));
        assert_eq!(boolean(""), Ok(false));
        assert_eq!(boolean("0"), Ok(false));
        assert!(boolean("maybe").is_err());
    }

    #[test]
    fn every_directive_name_is_unique_per_table() {
        for (i, d) in POOL.iter().enumerate() {
            assert!(POOL[i + 1..].iter().all(|e| e.name != d.name), "{}", d.name);
        }
        for (i, d) in GLOBAL.iter().enumerate() {
            assert!(
                GLOBAL[i + 1..].iter().all(|e| e.name != d.name),
                "{}",
                d.name
            );
        }
    }
}
