//! Walks the files (main file and `include` globs), routes entries to the global
//! section or a pool, then post-processes and validates like php-fpm's
//! `fpm_conf_post_process` and `fpm_conf_process_all_pools`.
//!
//! Unlike php-fpm, which stops at the first problem, every problem is collected.

use super::directives::{self, GlobalDraft, PoolDraft, ACCESS_SUPPRESS_PATH_IMPLEMENTED};
use super::ini::{self, Item};
use super::{
    ConfigError, ConfigErrors, ConfigWarning, GlobalConfig, ListenAddress, LoadOptions, Loaded,
    Location, LogTarget, PhpIniEntry, PmStyle, PoolConfig, DEFAULT_PREFIX, DEFAULT_STATE_DIR,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// php-fpm refuses a sixth nested file (`ini_recursion++ > 4`).
const MAX_INCLUDE_DEPTH: usize = 5;
/// php-fpm's default `access.format`.
use super::DEFAULT_ACCESS_FORMAT;
/// php ini settings whose relative paths php-fpm anchors at the pool prefix
/// (`FPM_PHP_INI_TO_EXPAND` in fpm_php.h).
const PHP_INI_PATHS: &[&str] = &[
    "error_log",
    "extension_dir",
    "sendmail_path",
    "session.cookie_path",
    "session_pgsql.sem_file_name",
    "soap.wsdl_cache_dir",
    "uploadprogress.file.filename_template",
    "xdebug.output_dir",
    "xdebug.profiler_output_dir",
    "xdebug.trace_output_dir",
    "xmms.path",
    "axis2.client_home",
    "blenc.key_file",
    "coin_acceptor.device",
];

/// Loads the main configuration file and everything it includes.
///
/// # Errors
/// Every unreadable file, bad line and failed validation, in file order.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Loaded, ConfigErrors> {
    let mut l = Loader::new(opts, path);
    l.read_file(path, None);
    l.finish()
}

/// Loads the main file for its `[global]` section, then the pools of `pool_file`:
/// what a per-pool service (`php-fpm@NAME.service`) runs. The main file must define
/// no pool itself (not even through `include`), or the pool file's pool would be
/// loaded twice and other pools would start in this service.
///
/// # Errors
/// As [`load`], and when the main file brings pools or the pool file has none.
pub fn load_with_pool_file(
    path: &Path,
    pool_file: &Path,
    opts: &LoadOptions,
) -> Result<Loaded, ConfigErrors> {
    let mut l = Loader::new(opts, path);
    l.read_file(path, None);
    let from_main: Vec<String> = l.pools.iter().map(|p| p.cfg.name.clone()).collect();
    if !from_main.is_empty() {
        l.errors.push(ConfigError::General {
            location: Location::new(path, 1),
            message: format!(
                "with --pool-config, {} must hold only [global], but it defines or includes pool(s) {}: remove the pool sections or the 'include' line",
                path.display(),
                from_main.join(", ")
            ),
        });
    }
    // the pool file starts in [global] until its first section, like an included file
    l.current = None;
    l.read_file(pool_file, None);
    if l.pools.is_empty() && l.errors.is_empty() {
        l.errors.push(ConfigError::General {
            location: Location::new(pool_file, 1),
            message: "no pool defined: the pool file needs a section such as [www]".to_string(),
        });
    }
    l.finish()
}

/// Loads configuration text; `path` names it in messages and is not read.
/// Includes in the text are still read from disk.
///
/// # Errors
/// As [`load`].
pub fn load_str(text: &str, path: &Path, opts: &LoadOptions) -> Result<Loaded, ConfigErrors> {
    let mut l = Loader::new(opts, path);
    l.feed(text, path);
    l.finish()
}

struct Loader<'a> {
    opts: &'a LoadOptions,
    main: PathBuf,
    global: GlobalDraft,
    global_seen: HashMap<&'static str, Location>,
    pools: Vec<PoolDraft>,
    /// Index into `pools`; `None` in `[global]`. Like php-fpm, it carries across
    /// includes, so an included file continues the includer's section.
    current: Option<usize>,
    depth: usize,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

impl<'a> Loader<'a> {
    fn new(opts: &'a LoadOptions, main: &Path) -> Self {
        Loader {
            opts,
            main: main.to_path_buf(),
            global: GlobalDraft::default(),
            global_seen: HashMap::new(),
            pools: Vec::new(),
            current: None,
            depth: 0,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn prefix(&self) -> PathBuf {
        self.opts
            .prefix
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PREFIX))
    }

    fn read_file(&mut self, path: &Path, from: Option<&Location>) {
        if self.depth >= MAX_INCLUDE_DEPTH {
            let location = from.cloned().unwrap_or_else(|| Location::new(path, 0));
            self.errors.push(ConfigError::General {
                location,
                message: format!(
                    "cannot include {}: more than {MAX_INCLUDE_DEPTH} files nested",
                    path.display()
                ),
            });
            return;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => self.feed(&text, path),
            Err(source) => self.errors.push(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn feed(&mut self, text: &str, path: &Path) {
        self.depth += 1;
        for item in ini::parse(text, path, &*self.opts.env) {
            match item {
                Err(e) => self.errors.push(e),
                Ok(Item::Section { name, location }) => self.section(name, location),
                Ok(Item::Entry {
                    key,
                    index: None,
                    value,
                    location,
                }) if key == "include" => self.include(&value, &location),
                Ok(Item::Entry {
                    key,
                    index: Some(index),
                    value,
                    location,
                }) => self.array(&key, &index, value, location),
                Ok(Item::Entry {
                    key,
                    value,
                    location,
                    ..
                }) => self.entry(&key, value, location),
            }
        }
        self.depth -= 1;
    }

    fn section(&mut self, name: String, location: Location) {
        // A section named "global" in any case is the global section, as in php-fpm.
        if name.eq_ignore_ascii_case("global") {
            self.current = None;
            return;
        }
        // Pool names compare case-insensitively, so [WWW] reopens [www].
        if let Some(i) = self
            .pools
            .iter()
            .position(|p| p.cfg.name.eq_ignore_ascii_case(&name))
        {
            self.current = Some(i);
            return;
        }
        self.pools.push(PoolDraft::new(name, location));
        self.current = Some(self.pools.len() - 1);
    }

    fn include(&mut self, pattern: &str, location: &Location) {
        let full = if pattern.starts_with('/') {
            PathBuf::from(pattern)
        } else {
            self.prefix().join(pattern)
        };
        let shown = full.display().to_string();
        let paths = match glob::glob(&shown) {
            Ok(paths) => paths,
            Err(e) => {
                self.errors.push(ConfigError::General {
                    location: location.clone(),
                    message: format!("invalid include pattern '{shown}': {e}"),
                });
                return;
            }
        };
        let mut files = Vec::new();
        for p in paths {
            match p {
                Ok(p) if p.is_dir() => {}
                Ok(p) => files.push(p),
                Err(e) => self.errors.push(ConfigError::General {
                    location: location.clone(),
                    message: format!("cannot expand include pattern '{shown}': {e}"),
                }),
            }
        }
        files.sort();
        if files.is_empty() {
            // php-fpm's glob(GLOB_ERR) fails when the directory is missing but
            // only warns when the directory exists and nothing matches.
            let base: PathBuf = full
                .components()
                .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
                .collect();
            let dir = if base == full {
                base.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                base
            };
            if dir.is_dir() {
                self.warnings.push(ConfigWarning {
                    location: location.clone(),
                    message: format!("nothing matches the include pattern '{shown}'"),
                });
            } else {
                self.errors.push(ConfigError::General {
                    location: location.clone(),
                    message: format!(
                        "cannot expand include pattern '{shown}': directory {} does not exist",
                        dir.display()
                    ),
                });
            }
        }
        for f in files {
            self.read_file(&f, Some(location));
        }
    }

    fn not_supported(&mut self, name: &str, location: &Location) {
        self.warnings.push(ConfigWarning {
            location: location.clone(),
            message: format!("directive '{name}' is not supported yet and is ignored"),
        });
    }

    fn entry(&mut self, key: &str, value: String, location: Location) {
        let Some(i) = self.current else {
            let Some(d) = directives::find(directives::GLOBAL, key) else {
                self.errors.push(ConfigError::UnknownEntry {
                    location,
                    key: key.to_string(),
                });
                return;
            };
            if value.contains("$pool") {
                self.errors.push(ConfigError::InvalidValue {
                    location,
                    key: d.name.to_string(),
                    value,
                    reason: "'$pool' cannot be used outside a pool section".to_string(),
                });
                return;
            }
            match (d.set)(&mut self.global, &value) {
                Ok(()) => {
                    if !d.implemented {
                        self.not_supported(d.name, &location);
                    }
                    self.global_seen.insert(d.name, location);
                }
                Err(reason) => self.errors.push(ConfigError::InvalidValue {
                    location,
                    key: d.name.to_string(),
                    value,
                    reason,
                }),
            }
            return;
        };
        let Some(d) = directives::find(directives::POOL, key) else {
            self.errors.push(ConfigError::UnknownEntry {
                location,
                key: key.to_string(),
            });
            return;
        };
        let pool = &mut self.pools[i];
        let value = value.replace("$pool", &pool.cfg.name);
        match (d.set)(pool, &value) {
            Ok(()) => {
                pool.seen.insert(d.name, location.clone());
                if !d.implemented {
                    self.not_supported(d.name, &location);
                }
            }
            Err(reason) => {
                pool.failed.push(d.name);
                self.errors.push(ConfigError::InvalidValue {
                    location,
                    key: d.name.to_string(),
                    value,
                    reason,
                })
            }
        }
    }

    fn array(&mut self, key: &str, index: &str, value: String, location: Location) {
        let invalid = |reason: &str| ConfigError::InvalidValue {
            location: location.clone(),
            key: format!("{key}[{index}]"),
            value: value.clone(),
            reason: reason.to_string(),
        };
        if key == "access.suppress_path" {
            if !index.is_empty() {
                self.errors.push(invalid(
                    "write 'access.suppress_path[] = /path': keys are not allowed",
                ));
                return;
            }
            if !value.starts_with('/') {
                self.errors.push(invalid("the path must begin with '/'"));
                return;
            }
        } else if index.is_empty() {
            self.errors.push(invalid(&format!(
                "a key is required: '{key}[NAME] = value'"
            )));
            return;
        }
        let Some(i) = self.current else {
            self.errors.push(ConfigError::General {
                location,
                message: format!("'{key}[{index}]' is only allowed in a pool section"),
            });
            return;
        };
        let value = value.replace("$pool", &self.pools[i].cfg.name);
        // Array names are case-sensitive in php-fpm, unlike plain directives.
        let (admin, flag) = match key {
            "php_value" => (false, false),
            "php_admin_value" => (true, false),
            "php_flag" => (false, true),
            "php_admin_flag" => (true, true),
            "env" => {
                if value.is_empty() {
                    self.errors.push(invalid("env values must not be empty"));
                    return;
                }
                // fpm_env.c: a value starting with '$' is the master's variable.
                let value = match value.strip_prefix('$') {
                    Some(var) if !var.is_empty() => (self.opts.env)(var).unwrap_or_default(),
                    _ => value,
                };
                self.pools[i].cfg.env.push((index.to_string(), value));
                return;
            }
            "access.suppress_path" => {
                self.pools[i].cfg.access_suppress_paths.push(value);
                if !ACCESS_SUPPRESS_PATH_IMPLEMENTED {
                    self.not_supported(key, &location);
                }
                return;
            }
            _ => {
                self.errors.push(ConfigError::UnknownEntry {
                    location,
                    key: format!("{key}[{index}]"),
                });
                return;
            }
        };
        let value = if flag {
            match directives::boolean(&value) {
                // php-fpm 8.2 passes flags on as "1"/"0".
                Ok(b) => if b { "1" } else { "0" }.to_string(),
                Err(reason) => {
                    self.errors.push(invalid(&reason));
                    return;
                }
            }
        } else {
            value
        };
        self.pools[i].cfg.php_values.push(PhpIniEntry {
            name: index.to_string(),
            value,
            admin,
            flag,
        });
    }

    fn finish(mut self) -> Result<Loaded, ConfigErrors> {
        let global = self.finish_global();
        if self.pools.is_empty() && self.errors.is_empty() {
            self.errors.push(ConfigError::General {
                location: Location::new(&self.main, 1),
                message: "no pool defined: at least one pool section (e.g. [www]) is required"
                    .to_string(),
            });
        }
        let drafts = std::mem::take(&mut self.pools);
        let mut pools = Vec::with_capacity(drafts.len());
        for d in drafts {
            if let Some(p) = self.finish_pool(d) {
                pools.push(p);
            }
        }
        // php-fpm: two pools may not share a listening address.
        for (i, a) in pools.iter().enumerate() {
            if let Some(b) = pools[..i].iter().find(|b| b.listen == a.listen) {
                self.errors.push(ConfigError::Pool {
                    location: a.location.clone(),
                    pool: a.name.clone(),
                    message: format!("listen address is already used by pool '{}'", b.name),
                });
            }
        }
        if self.errors.is_empty() {
            Ok(Loaded {
                global,
                pools,
                warnings: self.warnings,
            })
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    fn finish_global(&mut self) -> GlobalConfig {
        let state = self
            .opts
            .prefix
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let mut g = std::mem::take(&mut self.global);
        g.cfg.pid = g.pid.filter(|p| !p.is_empty()).map(|p| resolve(&p, &state));
        g.cfg.error_log = match g.error_log.filter(|e| !e.is_empty()) {
            Some(e) if e.eq_ignore_ascii_case("syslog") => LogTarget::Syslog,
            Some(e) => LogTarget::File(resolve(&e, &state)),
            None => LogTarget::Stderr,
        };
        if g.cfg.log_limit < 1 {
            self.errors.push(ConfigError::InvalidValue {
                location: self.global_location("log_limit"),
                key: "log_limit".to_string(),
                value: g.cfg.log_limit.to_string(),
                reason: "must be >= 1".to_string(),
            });
        }
        g.cfg
    }

    fn global_location(&self, key: &str) -> Location {
        self.global_seen
            .get(key)
            .cloned()
            .unwrap_or_else(|| Location::new(&self.main, 1))
    }

    fn finish_pool(&mut self, mut d: PoolDraft) -> Option<PoolConfig> {
        let name = d.cfg.name.clone();
        let mut errs: Vec<(Option<&'static str>, String)> = Vec::new();
        if name.is_empty() {
            errs.push((
                None,
                "the pool name must not be empty: write [name]".to_string(),
            ));
        }
        let global_prefix = self.prefix();
        if let Some(p) = d.prefix.take().filter(|p| !p.is_empty()) {
            let p = resolve(&p, &global_prefix);
            if !p.is_dir() {
                errs.push((
                    Some("prefix"),
                    format!(
                        "prefix = {}: does not exist or is not a directory",
                        p.display()
                    ),
                ));
            }
            d.cfg.prefix = Some(p);
        }
        let base = d.cfg.prefix.clone().unwrap_or(global_prefix);

        match d.listen.take().filter(|l| !l.is_empty()) {
            None => errs.push((
                Some("listen"),
                "no listen address: add 'listen = /run/php/NAME.sock' or 'listen = 127.0.0.1:9000'"
                    .to_string(),
            )),
            Some(l) => match parse_listen(&l, &base) {
                Ok(a) => d.cfg.listen = a,
                Err(e) => errs.push((Some("listen"), format!("listen = {l}: {e}"))),
            },
        }
        if let Some(l) = d.status_listen.take() {
            match parse_listen(&l, &base) {
                Ok(a) => d.cfg.pm_status_listen = Some(a),
                Err(e) => errs.push((
                    Some("pm.status_listen"),
                    format!("pm.status_listen = {l}: {e}"),
                )),
            }
        }

        let c = &mut d.cfg;
        match d.pm {
            None => errs.push((
                Some("pm"),
                "the process manager is missing: add 'pm = static', 'dynamic' or 'ondemand'"
                    .to_string(),
            )),
            Some(pm) => c.pm = pm,
        }
        if c.pm_max_children < 1 {
            errs.push((
                Some("pm.max_children"),
                format!("pm.max_children = {}: must be >= 1", c.pm_max_children),
            ));
        }
        match d.pm {
            Some(PmStyle::Dynamic) => {
                let (min, max, children) = (
                    c.pm_min_spare_servers,
                    c.pm_max_spare_servers,
                    c.pm_max_children,
                );
                if min < 1 {
                    errs.push((
                        Some("pm.min_spare_servers"),
                        format!("pm.min_spare_servers = {min}: must be >= 1"),
                    ));
                }
                if max < 1 {
                    errs.push((
                        Some("pm.max_spare_servers"),
                        format!("pm.max_spare_servers = {max}: must be >= 1"),
                    ));
                }
                if children >= 1 && (min > children || max > children) {
                    errs.push((
                        Some("pm.max_spare_servers"),
                        format!("pm.min_spare_servers ({min}) and pm.max_spare_servers ({max}) must not be greater than pm.max_children ({children})"),
                    ));
                }
                if max < min {
                    errs.push((
                        Some("pm.max_spare_servers"),
                        format!("pm.max_spare_servers = {max}: must not be less than pm.min_spare_servers ({min})"),
                    ));
                }
                match d.start_servers {
                    None => c.pm_start_servers = min + max.saturating_sub(min) / 2,
                    Some(s) if s < min || s > max => errs.push((
                        Some("pm.start_servers"),
                        format!("pm.start_servers = {s}: must be between pm.min_spare_servers ({min}) and pm.max_spare_servers ({max})"),
                    )),
                    Some(s) => c.pm_start_servers = s,
                }
                if c.pm_max_spawn_rate < 1 {
                    errs.push((
                        Some("pm.max_spawn_rate"),
                        format!("pm.max_spawn_rate = {}: must be >= 1", c.pm_max_spawn_rate),
                    ));
                }
            }
            Some(PmStyle::OnDemand) => {
                if c.pm_process_idle_timeout < Duration::from_secs(1) {
                    errs.push((
                        Some("pm.process_idle_timeout"),
                        "pm.process_idle_timeout = 0s: must be at least 1s".to_string(),
                    ));
                }
                // php-fpm ignores these for ondemand.
                c.pm_start_servers = 0;
                c.pm_min_spare_servers = 0;
                c.pm_max_spare_servers = 0;
            }
            _ => c.pm_start_servers = d.start_servers.unwrap_or(0),
        }

        if let Some(s) = &c.pm_status_path {
            if let Err(e) = check_uri_path(s, c.pm_status_listen.is_none()) {
                errs.push((Some("pm.status_path"), format!("pm.status_path = {s}: {e}")));
            }
        }
        match &c.ping_path {
            Some(p) => {
                if let Err(e) = check_uri_path(p, true) {
                    errs.push((Some("ping.path"), format!("ping.path = {p}: {e}")));
                }
                match d.ping_response.take() {
                    Some(r) if r.is_empty() => errs.push((
                        Some("ping.response"),
                        "ping.response is empty: set it or remove it for 'pong'".to_string(),
                    )),
                    Some(r) => c.ping_response = Some(r),
                    None => c.ping_response = Some("pong".to_string()),
                }
            }
            // php-fpm drops a ping.response without a ping.path.
            None => c.ping_response = None,
        }

        if let Some(a) = d.access_log.take() {
            // php-fpm-rs: `journal` is a journal entry per request, not a file
            if a == "journal" {
                c.access_journal = true;
            } else {
                c.access_log = Some(resolve(&a, &base));
            }
            if c.access_format.is_none() {
                c.access_format = Some(DEFAULT_ACCESS_FORMAT.to_string());
            }
        }
        c.slowlog = d.slowlog.take().map(|s| resolve(&s, &base));
        if !c.request_slowlog_timeout.is_zero() {
            if c.slowlog.is_none() {
                errs.push((
                    Some("request_slowlog_timeout"),
                    "request_slowlog_timeout needs 'slowlog' to be set".to_string(),
                ));
            }
            if !c.request_terminate_timeout.is_zero()
                && c.request_slowlog_timeout > c.request_terminate_timeout
            {
                errs.push((
                    Some("request_slowlog_timeout"),
                    format!(
                        "request_slowlog_timeout ({}s) must not be greater than request_terminate_timeout ({}s)",
                        c.request_slowlog_timeout.as_secs(),
                        c.request_terminate_timeout.as_secs()
                    ),
                ));
            }
        }
        match d.trace_depth {
            Some(n) if n > 0 => {
                if c.slowlog.is_none() {
                    errs.push((
                        Some("request_slowlog_trace_depth"),
                        "request_slowlog_trace_depth needs 'slowlog' to be set".to_string(),
                    ));
                }
                c.request_slowlog_trace_depth = n;
            }
            _ => c.request_slowlog_trace_depth = 20,
        }

        if let Some(r) = d.chroot.take() {
            // `$prefix` is only expanded in chroot, and only at the start.
            let expanded = match r.strip_prefix("$prefix") {
                Some(rest) => Some(format!("{}{rest}", base.display())),
                None if r.contains("$prefix") => None,
                None => Some(r.clone()),
            };
            match expanded {
                None => errs.push((
                    Some("chroot"),
                    format!("chroot = {r}: '$prefix' must be at the beginning of the value"),
                )),
                Some(e) => {
                    let p = resolve(&e, &base);
                    if !p.is_dir() {
                        errs.push((
                            Some("chroot"),
                            format!(
                                "chroot = {}: does not exist or is not a directory",
                                p.display()
                            ),
                        ));
                    }
                    c.chroot = Some(p);
                }
            }
        }
        if let Some(dir) = d.chdir.take() {
            let p = resolve(&dir, &base);
            let check = match &c.chroot {
                Some(root) => root.join(p.strip_prefix("/").unwrap_or(&p)),
                None => p.clone(),
            };
            if !check.is_dir() {
                errs.push((
                    Some("chdir"),
                    format!(
                        "chdir = {}: {} does not exist or is not a directory",
                        p.display(),
                        check.display()
                    ),
                ));
            }
            c.chdir = Some(p);
        }

        let exts = d
            .limit_extensions
            .take()
            .unwrap_or_else(|| ".php .phar".to_string());
        c.security_limit_extensions = exts
            .split([' ', '\t'])
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect();
        for e in &c.security_limit_extensions {
            if !e.starts_with('.') {
                // php-fpm matches by suffix, so "php" would also allow "foo.xphp".
                let location = d
                    .seen
                    .get("security.limit_extensions")
                    .cloned()
                    .unwrap_or_else(|| c.location.clone());
                self.warnings.push(ConfigWarning {
                    location,
                    message: format!("[pool {name}] security.limit_extensions entry '{e}' does not start with '.': it matches any name ending in '{e}'"),
                });
            }
        }

        if c.chroot.is_none() {
            for v in &mut c.php_values {
                let is_path = PHP_INI_PATHS
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(&v.name));
                let syslog = v.name.eq_ignore_ascii_case("error_log")
                    && v.value.eq_ignore_ascii_case("syslog");
                if is_path && !syslog && !v.value.is_empty() && !v.value.starts_with('/') {
                    v.value = resolve(&v.value, &base).display().to_string();
                }
            }
        }

        errs.retain(|(key, _)| !key.is_some_and(|k| d.failed.contains(&k)));
        if errs.is_empty() && d.failed.is_empty() {
            return Some(d.cfg);
        }
        for (key, message) in errs {
            let location = key
                .and_then(|k| d.seen.get(k))
                .cloned()
                .unwrap_or_else(|| d.cfg.location.clone());
            self.errors.push(ConfigError::Pool {
                location,
                pool: name.clone(),
                message,
            });
        }
        None
    }
}

impl PoolDraft {
    fn new(name: String, location: Location) -> Self {
        PoolDraft {
            cfg: PoolConfig {
                name,
                location,
                prefix: None,
                user: None,
                group: None,
                // Placeholder until validation; a pool without listen is an error.
                listen: ListenAddress::Tcp {
                    host: None,
                    port: 0,
                },
                listen_backlog: -1,
                listen_owner: None,
                listen_group: None,
                listen_mode: 0o660,
                listen_allowed_clients: Vec::new(),
                listen_acl_users: None,
                listen_acl_groups: None,
                listen_setfib: None,
                process_priority: None,
                process_dumpable: false,
                pm: PmStyle::Static,
                pm_max_children: 0,
                pm_start_servers: 0,
                pm_min_spare_servers: 0,
                pm_max_spare_servers: 0,
                pm_max_spawn_rate: 32,
                pm_process_idle_timeout: Duration::from_secs(10),
                pm_idle_exit_timeout: Duration::ZERO,
                pm_max_requests: 0,
                pm_status_path: None,
                pm_status_listen: None,
                ping_path: None,
                ping_response: None,
                access_log: None,
                access_journal: false,
                access_format: None,
                access_suppress_paths: Vec::new(),
                slowlog: None,
                request_slowlog_timeout: Duration::ZERO,
                request_slowlog_trace_depth: 20,
                request_terminate_timeout: Duration::ZERO,
                request_terminate_timeout_track_finished: false,
                rlimit_files: None,
                rlimit_core: None,
                chroot: None,
                chdir: None,
                catch_workers_output: false,
                decorate_workers_output: true,
                clear_env: true,
                security_limit_extensions: Vec::new(),
                env: Vec::new(),
                php_values: Vec::new(),
            },
            listen: None,
            pm: None,
            start_servers: None,
            trace_depth: None,
            prefix: None,
            status_listen: None,
            ping_response: None,
            access_log: None,
            slowlog: None,
            chroot: None,
            chdir: None,
            limit_extensions: None,
            seen: HashMap::new(),
            failed: Vec::new(),
        }
    }
}

/// Anchors a relative path at `base`, as php-fpm's `fpm_evaluate_full_path`.
fn resolve(p: &str, base: &Path) -> PathBuf {
    if p.starts_with('/') {
        PathBuf::from(p)
    } else {
        base.join(p)
    }
}

/// php-fpm's rules for status and ping URIs.
fn check_uri_path(p: &str, need_two_chars: bool) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err("must start with '/'".to_string());
    }
    if need_two_chars && p.len() < 2 {
        return Err("is too short: use a path such as /status".to_string());
    }
    if !p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c))
    {
        return Err("may only contain letters, digits and '/-_.~'".to_string());
    }
    Ok(())
}

/// Parses a listen address like `fpm_sockets_domain_from_address` and friends:
/// anything with ':' or only digits is TCP, the rest is a Unix socket path.
pub(crate) fn parse_listen(s: &str, base: &Path) -> Result<ListenAddress, String> {
    let is_tcp = s.contains(':') || s.bytes().all(|b| b.is_ascii_digit());
    if !is_tcp {
        return Ok(ListenAddress::Unix(resolve(s, base)));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| "expected '[ipv6]:port'".to_string())?;
        (Some(h), p)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (Some(h), p),
            None => (None, s),
        }
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port '{port}': expected 1 to 65535"))?;
    let host = match host {
        None | Some("*") => None,
        Some("") => return Err("missing address before ':'".to_string()),
        Some(h) => Some(h.to_string()),
    };
    Ok(ListenAddress::Tcp { host, port })
}
