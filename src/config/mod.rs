//! php-fpm 8.2 compatible configuration: INI files in, validated typed values out.
//!
//! The module reads files and nothing else: environment values come from the
//! caller (`LoadOptions::env`), so tests need no process state. It knows nothing
//! of sockets, PHP execution or systemd. Errors are collected, not thrown at the
//! first bad line, so an operator fixes a file in one pass.
#![forbid(unsafe_code)]

mod directives;
pub mod ini;
mod loader;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use directives::{all as directives, DirectiveInfo, Section};
pub use loader::{load, load_str, load_with_pool_file};

/// php-fpm's `access.format` default.
pub const DEFAULT_ACCESS_FORMAT: &str = "%R - %u %t \"%m %r\" %s";

/// php-fpm's compiled-in PHP_PREFIX on Debian: base for relative pool paths and includes.
pub const DEFAULT_PREFIX: &str = "/usr";
/// php-fpm's compiled-in PHP_LOCALSTATEDIR on Debian: base for relative pid/error_log.
pub const DEFAULT_STATE_DIR: &str = "/var";

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as it was opened (or named, for `load_str`).
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl Location {
    /// Builds a location.
    pub fn new(file: &Path, line: usize) -> Self {
        Location {
            file: file.to_path_buf(),
            line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Looks up one environment variable of the master process by name.
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String>>;

/// How to load: the `-p` prefix and where `${VAR}` / `env[X] = $Y` values come from.
pub struct LoadOptions {
    /// php-fpm's `--prefix`; `None` means the compiled-in defaults above.
    pub prefix: Option<PathBuf>,
    /// Looks up an environment variable of the master process.
    pub env: EnvLookup,
}

impl LoadOptions {
    /// Options reading the real process environment, no prefix.
    pub fn from_process_env() -> Self {
        LoadOptions {
            prefix: None,
            env: Box::new(|k| std::env::var(k).ok()),
        }
    }

    /// Options with a fixed environment, for tests and `--test` runs.
    pub fn with_env(env: HashMap<String, String>) -> Self {
        LoadOptions {
            prefix: None,
            env: Box::new(move |k| env.get(k).cloned()),
        }
    }
}

impl Default for LoadOptions {
    /// No prefix and an empty environment: loading depends on the files alone.
    fn default() -> Self {
        Self::with_env(HashMap::new())
    }
}

impl fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadOptions")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The result of a successful load.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The `[global]` section.
    pub global: GlobalConfig,
    /// Pools in the order their first section appeared.
    pub pools: Vec<PoolConfig>,
    /// Legal but noteworthy things: unsupported directives, empty include globs.
    pub warnings: Vec<ConfigWarning>,
}

/// Severity threshold of the error log (`log_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// php-fpm's default.
    Notice,
    /// `warning` or `warn`.
    Warning,
    /// Errors only.
    Error,
    /// Alerts only.
    Alert,
}

/// Where the master's log goes (`error_log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// A file, made absolute against the prefix.
    File(PathBuf),
    /// The literal value `syslog`.
    Syslog,
    /// No `error_log` set: standard error, which systemd sends to the journal.
    /// (php-fpm's default is `log/php-fpm.log` under its prefix; a file nobody reads
    /// is the wrong default for a service manager that already collects stderr.)
    Stderr,
}

/// A resource limit value (`rlimit_core` accepts `unlimited`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rlimit {
    /// A number.
    Limit(u64),
    /// `unlimited`.
    Unlimited,
}

/// The `[global]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalConfig {
    /// `pid`: absolute path, or `None` for no pid file.
    pub pid: Option<PathBuf>,
    /// `error_log`, default `log/php-fpm.log` under the state dir.
    pub error_log: LogTarget,
    /// `syslog.facility`, upper-cased name, default `DAEMON`.
    pub syslog_facility: String,
    /// `syslog.ident`, default `php-fpm`.
    pub syslog_ident: String,
    /// `log_level`, default notice.
    pub log_level: LogLevel,
    /// `log_limit` in bytes per line, default 1024.
    pub log_limit: u32,
    /// `log_buffering`, default yes.
    pub log_buffering: bool,
    /// `emergency_restart_threshold`, 0 = off.
    pub emergency_restart_threshold: u32,
    /// `emergency_restart_interval`, 0 = off.
    pub emergency_restart_interval: Duration,
    /// `process_control_timeout`, 0 = wait forever.
    pub process_control_timeout: Duration,
    /// `process.max`, 0 = no limit.
    pub process_max: u32,
    /// `process.priority` (-19..=20), `None` = unchanged.
    pub process_priority: Option<i32>,
    /// `daemonize`; default no (php-fpm: yes), since systemd and containers want the foreground.
    pub daemonize: bool,
    /// `rlimit_files`, `None` = system default.
    pub rlimit_files: Option<u64>,
    /// `rlimit_core`, `None` = system default.
    pub rlimit_core: Option<Rlimit>,
    /// `events.mechanism`, `None` = best available.
    pub events_mechanism: Option<String>,
    /// `systemd_interval`, default 10s.
    pub systemd_interval: Duration,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            pid: None,
            error_log: LogTarget::Stderr,
            syslog_facility: "DAEMON".to_string(),
            syslog_ident: "php-fpm".to_string(),
            log_level: LogLevel::Notice,
            log_limit: 1024,
            log_buffering: true,
            emergency_restart_threshold: 0,
            emergency_restart_interval: Duration::ZERO,
            process_control_timeout: Duration::ZERO,
            process_max: 0,
            process_priority: None,
            daemonize: false,
            rlimit_files: None,
            rlimit_core: None,
            events_mechanism: None,
            systemd_interval: Duration::from_secs(10),
        }
    }
}

/// Process manager style (`pm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmStyle {
    /// A fixed number of children.
    Static,
    /// Between min and max spare children.
    Dynamic,
    /// Children forked when requests arrive.
    OnDemand,
}

/// A `listen` (or `pm.status_listen`) address, parsed like php-fpm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddress {
    /// A Unix socket path, made absolute against the pool prefix.
    Unix(PathBuf),
    /// A TCP port; `host: None` for `port` or `*:port` (all addresses).
    Tcp {
        /// Host or IP without brackets, `None` for all addresses.
        host: Option<String>,
        /// Port, 1..=65535.
        port: u16,
    },
}

/// One `php_value`/`php_flag`/`php_admin_value`/`php_admin_flag` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhpIniEntry {
    /// INI name, the part in brackets.
    pub name: String,
    /// Value; flags are normalised to "1"/"0" like php-fpm 8.2.
    pub value: String,
    /// From `php_admin_*`: scripts cannot override it.
    pub admin: bool,
    /// From `php_*flag`.
    pub flag: bool,
}

/// One pool section (possibly assembled from several files).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Section name.
    pub name: String,
    /// Where the pool's first section header is.
    pub location: Location,
    /// `prefix`: absolute directory for this pool's relative paths.
    pub prefix: Option<PathBuf>,
    /// `user`; whether it is required depends on the master's uid (caller's job).
    pub user: Option<String>,
    /// `group`.
    pub group: Option<String>,
    /// `listen` (required).
    pub listen: ListenAddress,
    /// `listen.backlog`; -1 (php-fpm's Linux default) means the kernel maximum.
    pub listen_backlog: i32,
    /// `listen.owner`.
    pub listen_owner: Option<String>,
    /// `listen.group`.
    pub listen_group: Option<String>,
    /// `listen.mode`, default 0o660.
    pub listen_mode: u32,
    /// `listen.allowed_clients`, split on commas; empty = any.
    pub listen_allowed_clients: Vec<String>,
    /// `listen.acl_users`.
    pub listen_acl_users: Option<String>,
    /// `listen.acl_groups`.
    pub listen_acl_groups: Option<String>,
    /// `listen.setfib` (FreeBSD).
    pub listen_setfib: Option<i32>,
    /// `process.priority` (-19..=20), `None` = unchanged.
    pub process_priority: Option<i32>,
    /// `process.dumpable`, default no.
    pub process_dumpable: bool,
    /// `pm` (required).
    pub pm: PmStyle,
    /// `pm.max_children` (>= 1).
    pub pm_max_children: u32,
    /// `pm.start_servers`, defaulted for dynamic; 0 otherwise.
    pub pm_start_servers: u32,
    /// `pm.min_spare_servers`; 0 unless dynamic.
    pub pm_min_spare_servers: u32,
    /// `pm.max_spare_servers`; 0 unless dynamic.
    pub pm_max_spare_servers: u32,
    /// `pm.max_spawn_rate`, default 32.
    pub pm_max_spawn_rate: u32,
    /// `pm.process_idle_timeout`, default 10s.
    pub pm_process_idle_timeout: Duration,
    /// `pm.idle_exit_timeout` (php-fpm-rs): with socket activation, the master
    /// exits after the pool served nothing for this long; 0 = never.
    pub pm_idle_exit_timeout: Duration,
    /// `pm.max_requests`, 0 = unlimited.
    pub pm_max_requests: u32,
    /// `pm.status_path`.
    pub pm_status_path: Option<String>,
    /// `pm.status_listen`.
    pub pm_status_listen: Option<ListenAddress>,
    /// `ping.path`.
    pub ping_path: Option<String>,
    /// `ping.response`: "pong" when `ping.path` is set, else `None`.
    pub ping_response: Option<String>,
    /// `access.log`, absolute.
    pub access_log: Option<PathBuf>,
    /// `access.log = journal` (php-fpm-rs): one journal entry per request.
    pub access_journal: bool,
    /// `access.format`, php-fpm's default when `access.log` is set.
    pub access_format: Option<String>,
    /// `access.suppress_path[]` entries.
    pub access_suppress_paths: Vec<String>,
    /// `slowlog`, absolute.
    pub slowlog: Option<PathBuf>,
    /// `request_slowlog_timeout`, 0 = off.
    pub request_slowlog_timeout: Duration,
    /// `request_slowlog_trace_depth`, default 20.
    pub request_slowlog_trace_depth: u32,
    /// `request_terminate_timeout`, 0 = off.
    pub request_terminate_timeout: Duration,
    /// `request_terminate_timeout_track_finished`.
    pub request_terminate_timeout_track_finished: bool,
    /// `rlimit_files`.
    pub rlimit_files: Option<u64>,
    /// `rlimit_core`.
    pub rlimit_core: Option<Rlimit>,
    /// `chroot`, absolute, `$prefix` expanded.
    pub chroot: Option<PathBuf>,
    /// `chdir`, absolute.
    pub chdir: Option<PathBuf>,
    /// `catch_workers_output`, default no.
    pub catch_workers_output: bool,
    /// `decorate_workers_output`, default yes.
    pub decorate_workers_output: bool,
    /// `clear_env`, default yes.
    pub clear_env: bool,
    /// `security.limit_extensions`; empty = any extension allowed.
    pub security_limit_extensions: Vec<String>,
    /// `env[NAME] = value`, in file order; `$VAR` values already resolved.
    pub env: Vec<(String, String)>,
    /// php ini overrides in file order.
    pub php_values: Vec<PhpIniEntry>,
}

/// Something legal that the operator should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Where it is.
    pub location: Location,
    /// What it is, e.g. "directive 'slowlog' is not supported yet and is ignored".
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {}: {}", path.display(), io_reason(source))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line the INI scanner rejects.
    #[error("{location}: {message}")]
    Syntax {
        /// Where.
        location: Location,
        /// What.
        message: String,
    },
    /// A directive php-fpm does not know in this section.
    #[error("{location}: unknown entry '{key}'")]
    UnknownEntry {
        /// Where.
        location: Location,
        /// The name as written.
        key: String,
    },
    /// A known directive with a value of the wrong shape.
    #[error("{location}: invalid value '{value}' for '{key}': {reason}")]
    InvalidValue {
        /// Where.
        location: Location,
        /// Directive name.
        key: String,
        /// Value as read.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A pool that fails php-fpm's checks; location is the offending line, or the
    /// section header when the problem is something missing.
    #[error("{location}: [pool {pool}] {message}")]
    Pool {
        /// Where.
        location: Location,
        /// Pool name.
        pool: String,
        /// What is wrong and how.
        message: String,
    },
    /// A problem with the file as a whole or the global section.
    #[error("{location}: {message}")]
    General {
        /// Where.
        location: Location,
        /// What.
        message: String,
    },
}

/// Drops std's " (os error N)" so messages read like php-fpm's.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Every error found, in file order.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
