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
use php_fpm_rs::pm::handoff::{self, Handoff};
use php_fpm_rs::pm::{self, listen, Master, Pool, ReloadSpec};

/// Where Debian's php-fpm of the same PHP branch keeps its php.ini and conf.d.
/// Debian's php-fpm php.ini and conf.d when php8.2-fpm is installed (the same
/// settings and extensions as the php-fpm being replaced), else the embed SAPI's,
/// which libphp8.2-embed always ships (with opcache enabled in its conf.d).
fn fpm_ini_dir() -> PathBuf {
    let branch: String = PHP_VERSION.split('.').take(2).collect::<Vec<_>>().join(".");
    let fpm = PathBuf::from(format!("/etc/php/{branch}/fpm"));
    if fpm.join("php.ini").exists() {
        return fpm;
    }
    let embed = PathBuf::from(format!("/etc/php/{branch}/embed"));
    if embed.join("php.ini").exists() {
        embed
    } else {
        fpm
    }
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
    if args.test == 0 {
        // from here on signals wait for the master's signalfd instead of killing a
        // half-started process (a reload's exec keeps this mask)
        if let Err(e) = pm::block_signals() {
            logging::log(Level::Error, &format!("{e:#}"));
            return exit::SOFTWARE;
        }
    }
    let path = config_path(args);
    let loaded = match load_config(args) {
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

fn config_path(args: &Args) -> PathBuf {
    args.fpm_config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

fn load_config(args: &Args) -> Result<config::Loaded, config::ConfigErrors> {
    let mut opts = LoadOptions::from_process_env();
    opts.prefix = args.prefix.clone();
    let path = config_path(args);
    match &args.pool_config {
        Some(pool_file) => config::load_with_pool_file(&path, pool_file, &opts),
        None => config::load(&path, &opts),
    }
}

/// What a reload checks before it re-executes: the configuration loads and the
/// privilege rule holds, exactly as the next image will check them.
fn reload_spec(args: &Args, generation: u64) -> Option<ReloadSpec> {
    let exe = std::env::current_exe().ok()?;
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = args.clone();
    Some(ReloadSpec {
        exe,
        argv,
        preflight: Box::new(move || {
            let loaded = load_config(&args)
                .map_err(|errs| errs.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
            check_privileges(&args, &loaded.pools).map_err(|e| vec![format!("{e:#}")])
        }),
        generation,
    })
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
    // a reload: the previous image of this process handed over its sockets and workers
    let inherited = match Handoff::from_env() {
        Ok(h) => h,
        Err(e) => {
            logging::log(Level::Error, &e.to_string());
            return Ok(exit::SOFTWARE);
        }
    };
    let (mut adopted, problems) = inherited.as_ref().map(handoff::adopt).unwrap_or_default();
    for p in problems {
        logging::log(Level::Warning, &p);
    }
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
        let key = listen::address_key(&p.listen);
        let listener = match adopted.sockets.remove(&key) {
            Some((fd, owned)) => {
                let l = listen::inherited(&p, fd, owned);
                logging::log(
                    Level::Notice,
                    &format!(
                        "using inherited socket fd={}, \"{}\"",
                        std::os::fd::AsRawFd::as_raw_fd(&l.fd),
                        l.display
                    ),
                );
                l
            }
            None => match activation.take(&p) {
                Some(l) => l,
                None => listen::bind_pool(&p, owner)?,
            },
        };
        let name = p.name.clone();
        let status_listen = p.pm_status_listen.clone();
        let status_cfg = status_listen.as_ref().map(|addr| {
            let mut c = p.clone();
            c.listen = addr.clone();
            c
        });
        let mut pool = Pool::new(p, listener, credentials)?;
        // the pool's other sockets and its status socket: inherited across a
        // reload, else passed by systemd, else (status) bound from pm.status_listen
        let mut extra = adopted.take_prefixed(&handoff::extra_key(&name, ""));
        extra.extend(activation.take_extra(&name));
        for l in extra {
            pool.add_socket(l);
        }
        let status = match adopted.sockets.remove(&handoff::status_key(&name)) {
            Some((fd, owned)) => Some(listen::inherited_as(fd, owned, status_cfg.as_ref())),
            None => match activation.take_status(&name) {
                Some(l) => Some(l),
                None => match &status_cfg {
                    Some(c) => Some(listen::bind_pool(c, owner)?),
                    None => None,
                },
            },
        };
        if let Some(l) = status {
            pool.serve_status(l);
        }
        pools.push(pool);
    }
    // sockets of pools the new configuration dropped: their old workers are told to
    // finish, and nobody accepts on them any more
    for (key, (fd, owned)) in adopted.sockets.drain() {
        drop(fd);
        if let Some(path) = key.strip_prefix("unix:").filter(|_| owned) {
            let _ = std::fs::remove_file(path);
        }
        logging::log(
            Level::Notice,
            &format!("closed {key}: no pool listens there any more"),
        );
    }
    let children = inherited
        .as_ref()
        .map(|h| pm::inherited_children(h, &mut adopted))
        .unwrap_or_default();
    let generation = inherited.as_ref().map_or(0, |h| h.generation);
    let pid_path = args.pid.clone().or(loaded.global.pid.clone());
    let daemonize = args.daemonize || (loaded.global.daemonize && !args.nodaemonize);
    if daemonize && inherited.is_none() {
        php_fpm_rs::sys::daemonize().context("daemonizing")?;
    }
    if let Some(p) = &pid_path {
        write_pid(p)?;
    }
    let master = Master::new(
        engine,
        pools,
        loaded.global,
        reload_spec(args, generation),
        children,
        // after a reload LISTEN_FDS is gone: the previous image says where the sockets came from
        activation.is_active() || inherited.as_ref().is_some_and(|h| h.activated),
    )?;
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
