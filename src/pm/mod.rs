//! The process manager: the master's loop. It forks the pool's workers after PHP's
//! module startup, replaces the ones that die, relays their output to the log, and
//! stops them on SIGQUIT (finish requests in flight) or SIGTERM/SIGINT (now).
//! The master never runs a PHP request and stays single-threaded around fork.
#![forbid(unsafe_code)]

pub mod listen;

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{Gid, Pid, Uid};

use crate::config::{GlobalConfig, PoolConfig};
use crate::logging::{self, Level};
use crate::php::Engine;
use crate::sys::{self, Forked};
use crate::worker::{self, WorkerSettings};
use listen::Listener;

/// One pool as the master runs it.
pub struct Pool {
    /// The validated pool section.
    pub config: PoolConfig,
    /// Its listening socket.
    pub listener: Listener,
    /// The user and group workers drop to, when the master is root.
    pub credentials: Option<(String, Uid, Gid)>,
    /// What each worker is told.
    pub worker: WorkerSettings,
    children: HashMap<Pid, Child>,
    spawned_this_second: (Instant, u32),
}

struct Child {
    started: Instant,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    log: Option<OwnedFd>,
    partial: [Vec<u8>; 3],
}

impl Pool {
    /// A pool ready to be started by [`Master::run`].
    pub fn new(
        config: PoolConfig,
        listener: Listener,
        credentials: Option<(String, Uid, Gid)>,
    ) -> Self {
        let worker = WorkerSettings {
            pool: config.name.clone(),
            limit_extensions: config.security_limit_extensions.clone(),
            max_requests: u64::from(config.pm_max_requests),
            limits: crate::fastcgi::Limits {
                max_conns: config.pm_max_children,
                max_reqs: config.pm_max_children,
                ..crate::fastcgi::Limits::default()
            },
        };
        Pool {
            config,
            listener,
            credentials,
            worker,
            children: HashMap::new(),
            spawned_this_second: (Instant::now(), 0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// SIGQUIT: workers finish their requests, then everything exits.
    Finishing,
    /// SIGTERM/SIGINT: workers are told to exit now.
    Terminating,
}

/// The master process of one or more pools.
pub struct Master {
    engine: Option<Engine>,
    pools: Vec<Pool>,
    global: GlobalConfig,
    signals: SignalFd,
    state: State,
    stop_started: Option<Instant>,
    escalated: u8,
    notifier: crate::systemd::Notifier,
}

fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    set
}

impl Master {
    /// Takes over signal handling (through a signalfd) for the pools about to start.
    ///
    /// # Errors
    /// When the signal mask or the signalfd cannot be set up.
    pub fn new(engine: Engine, pools: Vec<Pool>, global: GlobalConfig) -> Result<Self> {
        let set = handled_signals();
        set.thread_block()
            .context("blocking signals in the master")?;
        let signals = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .context("creating the signalfd")?;
        sys::ignore_sigpipe().context("ignoring SIGPIPE")?;
        Ok(Master {
            engine: Some(engine),
            pools,
            notifier: crate::systemd::Notifier::from_env(global.systemd_interval),
            global,
            signals,
            state: State::Running,
            stop_started: None,
            escalated: 0,
        })
    }

    /// Starts every pool's workers and runs until stopped. Returns the exit status.
    pub fn run(mut self) -> i32 {
        for i in 0..self.pools.len() {
            let want = self.pools[i].config.pm_max_children;
            for _ in 0..want {
                if self.spawn(i).is_none() {
                    // spawn() returns None in the child once it is done serving
                    return 0;
                }
            }
        }
        logging::log(
            Level::Notice,
            &format!("fpm is running, pid {}", std::process::id()),
        );
        logging::log(Level::Notice, "ready to handle connections");
        self.notifier
            .ready(&format!("Ready: {} workers", self.all_children()));
        loop {
            match self.poll_once() {
                Some(status) => return status,
                None => continue,
            }
        }
    }

    fn all_children(&self) -> usize {
        self.pools.iter().map(|p| p.children.len()).sum()
    }

    /// Forks one worker of pool `i`. Returns `None` in the child after it served.
    fn spawn(&mut self, i: usize) -> Option<()> {
        let pool = &mut self.pools[i];
        let now = Instant::now();
        if now.duration_since(pool.spawned_this_second.0) >= Duration::from_secs(1) {
            pool.spawned_this_second = (now, 0);
        }
        if pool.spawned_this_second.1 >= pool.config.pm_max_children.max(8) {
            // a worker that dies right after start must not turn into a fork storm
            return Some(());
        }
        pool.spawned_this_second.1 += 1;
        let pipes = (
            nix::unistd::pipe(),
            nix::unistd::pipe(),
            nix::unistd::pipe(),
        );
        let (Ok(out), Ok(err), Ok(log)) = pipes else {
            logging::log(
                Level::Error,
                &format!("[pool {}] pipe() failed", pool.config.name),
            );
            return Some(());
        };
        match sys::fork() {
            Ok(Forked::Parent(pid)) => {
                logging::log(
                    Level::Notice,
                    &format!("[pool {}] child {pid} started", pool.config.name),
                );
                for fd in [&out.0, &err.0, &log.0] {
                    let _ = nix::fcntl::fcntl(
                        fd.as_raw_fd(),
                        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                    );
                    let _ = nix::fcntl::fcntl(
                        fd.as_raw_fd(),
                        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                    );
                }
                pool.children.insert(
                    pid,
                    Child {
                        started: now,
                        stdout: Some(out.0),
                        stderr: Some(err.0),
                        log: Some(log.0),
                        partial: Default::default(),
                    },
                );
                Some(())
            }
            Ok(Forked::Child) => {
                let code = self.become_worker(i, out.1, err.1, log.1);
                std::process::exit(code);
            }
            Err(e) => {
                logging::log(
                    Level::Error,
                    &format!("[pool {}] fork() failed: {e}", pool.config.name),
                );
                Some(())
            }
        }
    }

    /// The child's side of spawn: drop what belongs to the master, become a worker.
    fn become_worker(&mut self, i: usize, out: OwnedFd, err: OwnedFd, log: OwnedFd) -> i32 {
        let _ = handled_signals().thread_unblock();
        if let Err(e) = sys::worker_signals() {
            eprintln!("worker signal setup failed: {e}");
            return 70;
        }
        // The master's descriptors (other workers' pipes, other pools' sockets) are not ours.
        for (j, pool) in self.pools.iter_mut().enumerate() {
            pool.children.clear();
            if j != i {
                let _ = nix::unistd::close(pool.listener.fd.as_raw_fd());
            }
        }
        let _ = nix::unistd::dup2(out.as_raw_fd(), 1);
        let _ = nix::unistd::dup2(err.as_raw_fd(), 2);
        drop(out);
        drop(err);
        logging::enter_worker(&self.pools[i].config.name, std::process::id(), log.into());
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGQUIT);
        let pool = &self.pools[i];
        let name = pool.config.name.clone();
        if let Some((user, uid, gid)) = &pool.credentials {
            let cuser = std::ffi::CString::new(user.as_str()).unwrap_or_default();
            let r = nix::unistd::setgid(*gid)
                .and_then(|()| nix::unistd::initgroups(&cuser, *gid))
                .and_then(|()| nix::unistd::setuid(*uid));
            if let Err(e) = r {
                logging::log(
                    Level::Error,
                    &format!("[pool {name}] failed to switch to user '{user}': {e}"),
                );
                return 78;
            }
        }
        if let Some(dir) = &pool.config.chdir {
            if let Err(e) = std::env::set_current_dir(dir) {
                logging::log(
                    Level::Error,
                    &format!("[pool {name}] chdir({}) failed: {e}", dir.display()),
                );
                return 78;
            }
        } else {
            let _ = std::env::set_current_dir("/");
        }
        sys::replace_environment(pool.config.clear_env, &pool.config.env);
        let Some(mut engine) = self.engine.take() else {
            return 70;
        };
        engine.child_init();
        for entry in &pool.config.php_values {
            if let Err(e) = engine.apply_pool_ini(&entry.name, &entry.value, entry.admin) {
                logging::log(Level::Error, &format!("[pool {name}] {e}"));
            }
        }
        let listener = pool.listener.fd.as_raw_fd();
        let settings = pool.worker.clone();
        worker::serve(&mut engine, listener, &settings);
        drop(engine);
        0
    }

    /// One turn of the event loop. `Some(status)` when the master should exit.
    fn poll_once(&mut self) -> Option<i32> {
        let mut fds: Vec<(usize, Pid, usize)> = Vec::new();
        let mut pfds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        for (pi, pool) in self.pools.iter().enumerate() {
            for (pid, child) in &pool.children {
                for (k, fd) in [&child.stdout, &child.stderr, &child.log]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(fd) = fd {
                        pfds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                        fds.push((pi, *pid, k));
                    }
                }
            }
        }
        let _ = poll(&mut pfds, PollTimeout::from(1000u16));
        let ready: Vec<bool> = pfds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(pfds);
        for (idx, (pi, pid, k)) in fds.into_iter().enumerate() {
            if ready[idx + 1] {
                self.drain_pipe(pi, pid, k);
            }
        }
        if ready[0] {
            while let Ok(Some(info)) = self.signals.read_signal() {
                if let Some(status) = self.on_signal(info.ssi_signo as i32) {
                    return Some(status);
                }
            }
        }
        let can_fork = self.state != State::Running || self.all_children() > 0;
        let health = crate::systemd::Health {
            can_fork,
            ..Default::default()
        };
        self.notifier.tick(Instant::now(), &health);
        self.check_stop_progress()
    }

    fn drain_pipe(&mut self, pi: usize, pid: Pid, k: usize) {
        let pool = &mut self.pools[pi];
        let name = pool.config.name.clone();
        let (catch, decorate) = (
            pool.config.catch_workers_output,
            pool.config.decorate_workers_output,
        );
        let Some(child) = pool.children.get_mut(&pid) else {
            return;
        };
        let slot = match k {
            0 => &mut child.stdout,
            1 => &mut child.stderr,
            _ => &mut child.log,
        };
        let Some(fd) = slot.as_ref() else { return };
        let mut buf = [0u8; 8192];
        let mut file = std::fs::File::from(match fd.try_clone() {
            Ok(f) => f,
            Err(_) => return,
        });
        let mut eof = false;
        loop {
            match file.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => child.partial[k].extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if eof {
            *slot = None;
        }
        let data = &mut child.partial[k];
        let complete = match data.iter().rposition(|&c| c == b'\n') {
            Some(p) => p + 1,
            None if eof || data.len() > 1024 => data.len(),
            None => 0,
        };
        let lines: Vec<u8> = data.drain(..complete).collect();
        for line in lines.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let text = String::from_utf8_lossy(line);
            if k == 2 {
                // already formatted by the worker's logger
                logging::raw(&text);
            } else if catch {
                let stream = if k == 0 { "stdout" } else { "stderr" };
                if decorate {
                    logging::log(
                        Level::Warning,
                        &format!("[pool {name}] child {pid} said into {stream}: \"{text}\""),
                    );
                } else {
                    logging::raw(&text);
                }
            }
        }
    }

    fn on_signal(&mut self, signo: i32) -> Option<i32> {
        let Ok(sig) = Signal::try_from(signo) else {
            return None;
        };
        match sig {
            Signal::SIGCHLD => self.reap(),
            Signal::SIGQUIT if self.state == State::Running => {
                logging::log(Level::Notice, "Finishing ...");
                self.begin_stop(State::Finishing, Signal::SIGQUIT);
            }
            Signal::SIGTERM | Signal::SIGINT if self.state != State::Terminating => {
                logging::log(Level::Notice, "Terminating ...");
                self.begin_stop(State::Terminating, Signal::SIGTERM);
            }
            Signal::SIGUSR1 => logging::log(Level::Notice, "error log file re-opened"),
            Signal::SIGUSR2 => logging::log(
                Level::Warning,
                "reload (SIGUSR2) is not implemented yet in this version; the pool keeps running",
            ),
            _ => {}
        }
        if self.state != State::Running && self.all_children() == 0 {
            return Some(self.exit_now());
        }
        None
    }

    fn begin_stop(&mut self, state: State, signal: Signal) {
        self.state = state;
        self.notifier.stopping("Stopping");
        self.stop_started = Some(Instant::now());
        self.escalated = 0;
        self.signal_all(signal);
    }

    fn signal_all(&self, signal: Signal) {
        for pool in &self.pools {
            for pid in pool.children.keys() {
                let _ = kill(*pid, signal);
            }
        }
    }

    /// Escalates a stop that takes too long: QUIT → TERM after process_control_timeout
    /// (if set), TERM → KILL after one more second.
    fn check_stop_progress(&mut self) -> Option<i32> {
        let started = self.stop_started?;
        if self.all_children() == 0 {
            return Some(self.exit_now());
        }
        let elapsed = started.elapsed();
        let pct = self.global.process_control_timeout;
        if self.state == State::Finishing && self.escalated == 0 && !pct.is_zero() && elapsed >= pct
        {
            logging::log(
                Level::Warning,
                "process_control_timeout reached, sending SIGTERM to the remaining children",
            );
            self.signal_all(Signal::SIGTERM);
            self.state = State::Terminating;
            self.stop_started = Some(Instant::now());
            self.escalated = 1;
        } else if self.state == State::Terminating
            && elapsed >= Duration::from_secs(1)
            && self.escalated < 2
        {
            logging::log(
                Level::Warning,
                "children still alive after SIGTERM, sending SIGKILL",
            );
            self.signal_all(Signal::SIGKILL);
            self.escalated = 2;
        }
        None
    }

    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    self.child_gone(pid, format!("exited with code {code}"), code == 0)
                }
                Ok(WaitStatus::Signaled(pid, sig, core)) => {
                    let core = if core { " (core dumped)" } else { "" };
                    let num = sig as i32;
                    self.child_gone(
                        pid,
                        format!("exited on signal {num} ({}{core})", sig.as_str()),
                        false,
                    )
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }

    fn child_gone(&mut self, pid: Pid, how: String, clean: bool) {
        let Some(pi) = self
            .pools
            .iter()
            .position(|p| p.children.contains_key(&pid))
        else {
            return;
        };
        // relay what the child wrote before it died
        for k in 0..3 {
            self.drain_pipe(pi, pid, k);
        }
        let pool = &mut self.pools[pi];
        let Some(child) = pool.children.remove(&pid) else {
            return;
        };
        let secs = child.started.elapsed().as_secs_f64();
        let level = if clean || self.state != State::Running {
            Level::Notice
        } else {
            Level::Warning
        };
        logging::log(
            level,
            &format!(
                "[pool {}] child {pid} {how} after {secs:.6} seconds from start",
                pool.config.name
            ),
        );
        if self.state == State::Running {
            let _ = self.spawn(pi);
        }
    }

    fn exit_now(&mut self) -> i32 {
        for pool in &self.pools {
            if let Some(path) = &pool.listener.path {
                let _ = std::fs::remove_file(path);
            }
        }
        logging::log(Level::Notice, "exiting, bye-bye!");
        0
    }
}
