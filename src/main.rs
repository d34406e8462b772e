//! php-fpm-rs: parse the command line, load the configuration, start PHP, bind the
//! pools' sockets and hand over to the master. Errors are printed once, here, with
//! their context chain, and mapped to php-fpm's exit codes.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use nix::unistd::Uid;

use php_fpm_rs::cli::{exit, Args, DEFAULT_CONFIG};
use php_fpm_rs::config::{self, LoadOptions, LogTarget};
use php_fpm_rs::logging::{self, Level};
use php_fpm_rs::php::{Engine, EngineOptions, PHP_VERSION};
use php_fpm_rs::pm::{listen, Master, Pool};

/// Where Debian's php-fpm of the same PHP branch keeps its php.ini and conf.d.
fn fpm_ini_dir() -> PathBuf {
    let branch: String = PHP_VERSION.split('.').take(2).collect::<Vec<_>>().join(".");
    PathBuf::from(format!("/etc/php/{branch}/fpm"))
}

fn engine_options(args: &Args) -> EngineOptions {
    EngineOptions {
        ini_path: Some(args.php_ini.clone().unwrap_or_else(fpm_ini_dir)),
        no_ini: args.no_php_ini,
        defines: args.defines(),
    }
}

fn start_engine(args: &Args) -> Result<Engine> {
    // PHP reads its conf.d from PHP_INI_SCAN_DIR; default to the FPM one (the embed
    // SAPI's compiled-in directory would load a different set of extensions).
    if std::env::var_os("PHP_INI_SCAN_DIR").is_none() {
        std::env::set_var("PHP_INI_SCAN_DIR", fpm_ini_dir().join("conf.d"));
    }
    Ok(Engine::start(&engine_options(args))?)
}

fn log_level(l: config::LogLevel) -> Level {
    match l {
        config::LogLevel::Debug => Level::Debug,
        config::LogLevel::Notice => Level::Notice,
        config::LogLevel::Warning => Level::Warning,
        config::LogLevel::Error => Level::Error,
        config::LogLevel::Alert => Level::Alert,
    }
}

fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::USAGE,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    std::process::exit(run(&args));
}

fn run(args: &Args) -> i32 {
    // under systemd, stderr is the journal: write structured entries instead
    logging::journal::enable_if_stderr_is_journal();
    if args.version || args.modules || args.info {
        let mut engine = match start_engine(args) {
            Ok(e) => e,
            Err(e) => {
                logging::log(Level::Error, &format!("{e:#}"));
                return exit::SOFTWARE;
            }
        };
        if args.version {
            engine.print_version();
        } else if args.modules {
            engine.print_modules();
        } else {
            engine.print_info();
        }
        return exit::OK;
    }
    let path = args
        .fpm_config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let mut opts = LoadOptions::from_process_env();
    opts.prefix = args.prefix.clone();
    let result = match &args.pool_config {
        Some(pool_file) => config::load_with_pool_file(&path, pool_file, &opts),
        None => config::load(&path, &opts),
    };
    let loaded = match result {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors.0 {
                logging::log(Level::Error, &e.to_string());
            }
            logging::log(Level::Error, "FPM initialization failed");
            return exit::CONFIG;
        }
    };
    for w in &loaded.warnings {
        logging::log(Level::Warning, &format!("{}: {}", w.location, w.message));
    }
    for p in loaded
        .pools
        .iter()
        .filter(|p| p.pm != config::PmStyle::Static)
    {
        logging::log(
            Level::Warning,
            &format!(
                "{}: [pool {}] pm = {:?} is not supported yet: running pm.max_children = {} workers as pm = static",
                p.location, p.name, p.pm, p.pm_max_children
            ),
        );
    }
    if let Err(e) = check_privileges(args, &loaded.pools) {
        logging::log(Level::Error, &format!("{e:#}"));
        logging::log(Level::Error, "FPM initialization failed");
        return exit::CONFIG;
    }
    if args.test > 0 {
        if args.test > 1 {
            for p in &loaded.pools {
                logging::log(Level::Notice, &format!("{p:#?}"));
            }
        }
        logging::log(
            Level::Notice,
            &format!("configuration file {} test is successful", path.display()),
        );
        return exit::OK;
    }
    logging::set_level(log_level(loaded.global.log_level));
    if !args.force_stderr {
        if let LogTarget::File(f) = &loaded.global.error_log {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
            {
                Ok(file) => logging::set_file(Some(file)),
                Err(e) => {
                    logging::log(
                        Level::Error,
                        &format!("failed to open error_log ({}): {e}", f.display()),
                    );
                    return exit::CONFIG;
                }
            }
        }
    }
    match serve(args, loaded) {
        Ok(code) => code,
        Err(e) => {
            logging::log(Level::Error, &format!("{e:#}"));
            logging::log(Level::Error, "FPM initialization failed");
            exit::CONFIG
        }
    }
}

/// php-fpm's rule: a root master needs a non-root pool user, unless `-R`.
fn check_privileges(args: &Args, pools: &[config::PoolConfig]) -> Result<()> {
    if !Uid::effective().is_root() {
        return Ok(());
    }
    for p in pools {
        let user = p.user.as_deref().unwrap_or("");
        if (user.is_empty() || user == "root" || user == "0") && !args.allow_root {
            bail!(
                "[pool {}] please specify user and group other than root",
                p.name
            );
        }
    }
    Ok(())
}

fn serve(args: &Args, loaded: config::Loaded) -> Result<i32> {
    let engine = match start_engine(args) {
        Ok(e) => e,
        Err(e) => {
            logging::log(Level::Error, &format!("{e:#}"));
            return Ok(exit::SOFTWARE);
        }
    };
    let root = Uid::effective().is_root();
    let mut activation = php_fpm_rs::systemd::Activation::from_env(&loaded.pools)?;
    let mut pools = Vec::new();
    for p in loaded.pools {
        let credentials = match (&p.user, root) {
            (Some(user), true) if !user.is_empty() => {
                let (uid, mut gid) =
                    listen::lookup_user(user).with_context(|| format!("[pool {}] user", p.name))?;
                if let Some(g) = p.group.as_deref().filter(|g| !g.is_empty()) {
                    gid = listen::lookup_group(g)
                        .with_context(|| format!("[pool {}] group", p.name))?;
                }
                Some((user.clone(), uid, gid))
            }
            (Some(_), false) => {
                logging::log(
                    Level::Notice,
                    &format!(
                        "[pool {}] 'user' directive is ignored when FPM is not running as root",
                        p.name
                    ),
                );
                None
            }
            _ => None,
        };
        let owner = credentials.as_ref().map(|(_, u, g)| (*u, *g));
        let listener = match activation.take(&p) {
            Some(l) => l,
            None => listen::bind_pool(&p, owner)?,
        };
        pools.push(Pool::new(p, listener, credentials));
    }
    let pid_path = args.pid.clone().or(loaded.global.pid.clone());
    let daemonize = args.daemonize || (loaded.global.daemonize && !args.nodaemonize);
    if daemonize {
        php_fpm_rs::sys::daemonize().context("daemonizing")?;
    }
    if let Some(p) = &pid_path {
        write_pid(p)?;
    }
    let master = Master::new(engine, pools, loaded.global)?;
    let code = master.run();
    if let Some(p) = &pid_path {
        if std::process::id() == read_pid(p).unwrap_or(0) {
            let _ = std::fs::remove_file(p);
        }
    }
    Ok(code)
}

fn write_pid(p: &Path) -> Result<()> {
    std::fs::write(p, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing pid file {}", p.display()))
}

fn read_pid(p: &Path) -> Option<u32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}
