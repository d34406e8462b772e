//! A pool as the master runs it: its socket, its scoreboard, its current workers,
//! and the counts the pm modes decide on.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Instant;

use anyhow::{Context, Result};
use nix::unistd::{Gid, Pid, Uid};

use super::child::Child;
use super::listen::Listener;
use super::policy::SpawnRate;
use crate::config::PoolConfig;
use crate::logging::{self, Level};
use crate::scoreboard::{Scoreboard, WorkerState};
use crate::worker::WorkerSettings;

/// One pool as the master runs it.
pub struct Pool {
    /// The validated pool section.
    pub config: PoolConfig,
    /// Its listening socket.
    pub listener: Listener,
    /// The user and group workers drop to, when the master is root.
    pub credentials: Option<(String, Uid, Gid)>,
    pub(super) board: Rc<Scoreboard>,
    pub(super) free_slots: Vec<usize>,
    pub(super) children: HashMap<Pid, Child>,
    /// Workers write their pid here when they start their last request.
    pub(super) notices: (OwnedFd, OwnedFd),
    pub(super) rate: SpawnRate,
    pub(super) warned_max_children: bool,
    pub(super) spawned_this_second: (Instant, u32),
    pub(super) ondemand_recheck: Option<Instant>,
    /// The access log, opened here so every worker appends to the same file.
    pub(super) access: Option<crate::worker::AccessLog>,
    /// More sockets the workers accept on (systemd passed several for this pool).
    pub extra: Vec<Listener>,
    /// The status-only socket, answered by the master.
    pub(super) status: Option<super::status_server::StatusServer>,
}

impl Pool {
    /// A pool ready to be started by [`Master::run`], with its scoreboard (two slots
    /// per child: a retiring worker keeps its slot while its replacement starts).
    ///
    /// # Errors
    /// When the scoreboard or the notice pipe cannot be created.
    pub fn new(
        config: PoolConfig,
        listener: Listener,
        credentials: Option<(String, Uid, Gid)>,
    ) -> Result<Self> {
        let slots = 2 * config.pm_max_children.max(1) as usize;
        let board = Scoreboard::create(slots)
            .with_context(|| format!("[pool {}] creating the scoreboard", config.name))?;
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .with_context(|| format!("[pool {}] creating the notice pipe", config.name))?;
        let access = access_log(&config)?;
        Ok(Pool {
            access,
            extra: Vec::new(),
            status: None,
            config,
            listener,
            credentials,
            board: Rc::new(board),
            free_slots: (0..slots).rev().collect(),
            children: HashMap::new(),
            notices: (r, w),
            rate: SpawnRate::default(),
            warned_max_children: false,
            spawned_this_second: (Instant::now(), 0),
            ondemand_recheck: None,
        })
    }

    pub(super) fn name(&self) -> &str {
        &self.config.name
    }

    /// Workers that count toward the pool's size (not leaving).
    pub(super) fn live(&self) -> u32 {
        self.children.values().filter(|c| c.counts()).count() as u32
    }

    /// Counted workers waiting in accept().
    pub(super) fn idle(&self) -> u32 {
        self.children
            .values()
            .filter(|c| c.counts() && c.state() == WorkerState::Idle)
            .count() as u32
    }

    pub(super) fn settings(&self, max_requests: u64) -> WorkerSettings {
        WorkerSettings {
            pool: self.config.name.clone(),
            limit_extensions: self.config.security_limit_extensions.clone(),
            max_requests,
            limits: crate::fastcgi::Limits {
                max_conns: self.config.pm_max_children,
                max_reqs: self.config.pm_max_children,
                ..crate::fastcgi::Limits::default()
            },
            terminate_timeout_us: self.config.request_terminate_timeout.as_micros() as u64,
            access: self.access.clone(),
            pages: self.pages(),
        }
    }

    /// Its status and ping pages.
    pub(super) fn pages(&self) -> crate::status::Pages {
        crate::status::Pages {
            status_path: self.config.pm_status_path.clone(),
            ping_path: self.config.ping_path.clone(),
            ping_response: self.config.ping_response.clone().unwrap_or_default(),
            process_manager: match self.config.pm {
                crate::config::PmStyle::Static => "static",
                crate::config::PmStyle::Dynamic => "dynamic",
                crate::config::PmStyle::OnDemand => "ondemand",
            },
        }
    }

    /// Adds a socket the workers also accept on; with more than one, all are
    /// non-blocking (a worker polls them, and must not block in accept() after
    /// another worker took the connection).
    pub fn add_socket(&mut self, listener: Listener) {
        self.extra.push(listener);
        for l in std::iter::once(&self.listener).chain(&self.extra) {
            let _ = nix::fcntl::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&l.fd),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
    }

    /// Gives the pool a status-only socket, answered by the master. Without
    /// `pm.status_path`/`ping.path`, that socket answers `/status` and `/ping` (the
    /// pool's own socket still does not).
    pub fn serve_status(&mut self, listener: Listener) {
        let mut pages = self.pages();
        pages.status_path.get_or_insert_with(|| "/status".into());
        if pages.ping_path.is_none() {
            pages.ping_path = Some("/ping".into());
            pages.ping_response = "pong".into();
        }
        self.status = Some(super::status_server::StatusServer::new(listener, pages));
    }

    pub(super) fn warn_max_children(&mut self, ondemand: bool) {
        if self.warned_max_children {
            return;
        }
        self.warned_max_children = true;
        self.board
            .header()
            .max_children_reached
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // php-fpm words it differently for ondemand pools; keep both as they are
        let what = if ondemand {
            "max_children"
        } else {
            "pm.max_children"
        };
        logging::log(
            Level::Warning,
            &format!(
                "[pool {}] server reached {what} setting ({}), consider raising it",
                self.config.name, self.config.pm_max_children
            ),
        );
    }
}

/// Parses `access.format` and opens `access.log` (append, created if missing).
fn access_log(config: &PoolConfig) -> Result<Option<crate::worker::AccessLog>> {
    if config.access_log.is_none() && !config.access_journal {
        return Ok(None);
    }
    let text = config
        .access_format
        .as_deref()
        .unwrap_or(crate::config::DEFAULT_ACCESS_FORMAT);
    let format = crate::access::Format::parse(text)
        .map_err(|e| anyhow::anyhow!("{}: [pool {}] {e}", config.location, config.name))?;
    let file = match &config.access_log {
        Some(path) => Some(std::sync::Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| {
                    format!(
                        "[pool {}] opening access.log {}",
                        config.name,
                        path.display()
                    )
                })?,
        )),
        None => None,
    };
    Ok(Some(crate::worker::AccessLog {
        format,
        file,
        suppress: config.access_suppress_paths.clone(),
    }))
}
