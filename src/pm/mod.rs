//! The process manager: the master's loop. It forks each pool's workers after PHP's
//! module startup and keeps their number where `pm` wants it (static, dynamic,
//! ondemand), recycles them on `pm.max_requests` (a replacement is forked before the
//! old worker leaves), ends requests that outlive `request_terminate_timeout`,
//! reloads by re-executing itself on the same sockets while the previous generation
//! finishes, restarts the engine when workers keep crashing, and stops on SIGQUIT
//! (finish requests in flight) or SIGTERM/SIGINT (now).
//! The master never runs a PHP request and stays single-threaded around fork.
#![forbid(unsafe_code)]

pub mod child;
pub mod handoff;
pub mod listen;
pub mod policy;
pub mod pool;
pub mod reload;
pub mod status_server;

pub use pool::Pool;
pub use reload::{inherited_children, ReloadSpec};

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::config::{GlobalConfig, PmStyle, Rlimit};
use crate::logging::{self, Level};
use crate::php::Engine;
use crate::scoreboard::{self, WorkerState};
use crate::sys::{self, Forked};
use crate::worker::{self, Reporting};
use child::{describe_exit, request_line, Child, Leaving, Stream};
use policy::{DynamicBounds, DynamicStep, FaultWindow};

/// Idle server maintenance runs once a second, as in php-fpm.
const TICK: Duration = Duration::from_secs(1);
/// While an ondemand pool still has queued connections and no idle worker, it is
/// looked at again this soon (connections arriving together wake the master once).
const ONDEMAND_RECHECK: Duration = Duration::from_millis(10);
/// A worker sent SIGTERM gets this long before SIGKILL.
const KILL_AFTER: Duration = Duration::from_secs(1);

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
    /// Workers of a previous generation (a reload) finishing their requests.
    draining: HashMap<Pid, Child>,
    global: GlobalConfig,
    signals: SignalFd,
    state: State,
    stop_started: Option<Instant>,
    escalated: u8,
    reload: Option<ReloadSpec>,
    faults: FaultWindow,
    ondemand: Option<Epoll>,
    next_tick: Instant,
    spawn_seq: u64,
    warned_process_max: bool,
    notifier: crate::systemd::Notifier,
    /// What the process exits with (70 after an emergency restart under systemd).
    exit_code: i32,
    /// The last fork failed (the watchdog is not fed while workers cannot start).
    fork_failed: bool,
    /// Crashes reached emergency_restart_threshold; the restart is under way.
    emergency_pending: bool,
    /// systemd passed the sockets: it can start the pool again after an idle exit.
    activated: bool,
    /// Requests accepted, and since when that number has not moved (idle exit).
    idle_mark: (u64, Instant),
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

/// Blocks the signals the master takes through its signalfd. Called first thing in
/// main, so a signal that arrives during startup waits instead of killing the
/// process; the mask also survives the exec of a reload.
///
/// # Errors
/// When the signal mask cannot be changed.
pub fn block_signals() -> Result<()> {
    handled_signals()
        .thread_block()
        .context("blocking signals in the master")
}

fn apply_rlimits(files: Option<u64>, core: Option<Rlimit>) -> Result<()> {
    use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};
    if let Some(n) = files {
        setrlimit(Resource::RLIMIT_NOFILE, n, n).with_context(|| format!("rlimit_files = {n}"))?;
    }
    if let Some(c) = core {
        let n = match c {
            Rlimit::Limit(n) => n,
            Rlimit::Unlimited => RLIM_INFINITY,
        };
        setrlimit(Resource::RLIMIT_CORE, n, n).context("rlimit_core")?;
    }
    Ok(())
}

impl Master {
    /// Takes over signal handling (through a signalfd) for the pools about to start;
    /// applies the global `process.priority` and rlimits. `inherited` are workers of
    /// the previous generation handed over by a reload.
    ///
    /// # Errors
    /// When the signalfd, the epoll set or a global limit cannot be set up.
    pub fn new(
        engine: Engine,
        pools: Vec<Pool>,
        global: GlobalConfig,
        reload: Option<ReloadSpec>,
        inherited: Vec<(Pid, Child)>,
        activated: bool,
    ) -> Result<Self> {
        block_signals()?;
        let signals = SignalFd::with_flags(
            &handled_signals(),
            SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
        )
        .context("creating the signalfd")?;
        sys::ignore_sigpipe().context("ignoring SIGPIPE")?;
        apply_rlimits(global.rlimit_files, global.rlimit_core)?;
        if let Some(p) = global.process_priority {
            sys::set_priority(p).with_context(|| format!("process.priority = {p}"))?;
        }
        let ondemand = if pools.iter().any(|p| p.config.pm == PmStyle::OnDemand) {
            let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("epoll_create")?;
            for (i, p) in pools.iter().enumerate() {
                if p.config.pm == PmStyle::OnDemand {
                    // edge-triggered: one wake-up per arriving connection, not a
                    // spin while it waits in the queue for a busy pool
                    ep.add(
                        &p.listener.fd,
                        EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, i as u64),
                    )
                    .with_context(|| format!("[pool {}] watching the socket", p.name()))?;
                }
            }
            Some(ep)
        } else {
            None
        };
        let faults = FaultWindow::new(
            global.emergency_restart_threshold,
            global.emergency_restart_interval,
        );
        Ok(Master {
            engine: Some(engine),
            pools,
            draining: inherited.into_iter().collect(),
            notifier: crate::systemd::Notifier::from_env(global.systemd_interval),
            global,
            signals,
            state: State::Running,
            stop_started: None,
            escalated: 0,
            reload,
            faults,
            ondemand,
            next_tick: Instant::now() + TICK,
            spawn_seq: 0,
            warned_process_max: false,
            exit_code: 0,
            fork_failed: false,
            emergency_pending: false,
            activated,
            idle_mark: (0, Instant::now()),
        })
    }

    /// Starts every pool's workers and runs until stopped. Returns the exit status.
    pub fn run(mut self) -> i32 {
        for i in 0..self.pools.len() {
            let p = &self.pools[i].config;
            let initial = match p.pm {
                PmStyle::Static => p.pm_max_children,
                PmStyle::Dynamic => p.pm_start_servers,
                PmStyle::OnDemand => 0,
            };
            for _ in 0..initial {
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
        if !self.activated {
            for p in self
                .pools
                .iter()
                .filter(|p| !p.config.pm_idle_exit_timeout.is_zero())
            {
                logging::log(
                    Level::Warning,
                    &format!("[pool {}] pm.idle_exit_timeout is ignored: the socket was not passed by systemd, so nothing would start the pool again", p.name()),
                );
            }
        }
        if !self.draining.is_empty() {
            // the new generation is forked: only now tell the old one to finish, so
            // something is always accepting
            let now = Instant::now();
            let mut per_pool: HashMap<String, usize> = HashMap::new();
            for (pid, c) in self.draining.iter_mut() {
                c.leaving = Leaving::Draining;
                c.ask_to_quit(*pid, now);
                *per_pool.entry(c.pool.clone()).or_default() += 1;
            }
            let mut names: Vec<_> = per_pool.into_iter().collect();
            names.sort();
            for (pool, n) in names {
                logging::log(
                    Level::Notice,
                    &format!("[pool {pool}] {n} worker(s) of the previous generation finish their requests"),
                );
            }
        }
        self.reap();
        let line = self.stats().status_line(0.0);
        self.notifier.ready(&line);
        loop {
            match self.poll_once() {
                Some(status) => return status,
                None => continue,
            }
        }
    }

    /// Every worker: the pools' current generations and the one a reload replaced.
    fn every_child(&self) -> impl Iterator<Item = (&Pid, &Child)> {
        self.pools
            .iter()
            .flat_map(|p| p.children.iter())
            .chain(self.draining.iter())
    }

    fn every_child_mut(&mut self) -> impl Iterator<Item = (&Pid, &mut Child)> {
        self.pools
            .iter_mut()
            .flat_map(|p| p.children.iter_mut())
            .chain(self.draining.iter_mut())
    }

    fn all_children(&self) -> usize {
        self.pools.iter().map(|p| p.children.len()).sum::<usize>() + self.draining.len()
    }

    fn live_total(&self) -> u32 {
        self.pools.iter().map(Pool::live).sum()
    }

    /// Forks one worker of pool `i`. Returns `None` in the child after it served.
    fn spawn(&mut self, i: usize) -> Option<()> {
        self.spawn_as(i, false)
    }

    /// Replaces a worker that failed: limited per second, so a worker that dies
    /// right after start does not turn into a fork storm. Planned forks (start,
    /// max_requests, pool growth) are not limited.
    fn respawn(&mut self, i: usize) -> Option<()> {
        self.spawn_as(i, true)
    }

    fn spawn_as(&mut self, i: usize, throttled: bool) -> Option<()> {
        if self.state != State::Running {
            return Some(());
        }
        let process_max = self.global.process_max;
        if process_max > 0 && self.live_total() >= process_max {
            if !self.warned_process_max {
                self.warned_process_max = true;
                logging::log(Level::Warning, "The maximum number of processes has been reached. Please review your configuration and consider raising 'process.max'");
            }
            return Some(());
        }
        self.warned_process_max = false;
        if self.pools[i].free_slots.is_empty() {
            // every slot may be held by retired workers on their way out (a burst
            // of max_requests recycling): reap the ones gone, and take back the
            // slots of those past their last write
            self.reap();
            let pool = &mut self.pools[i];
            for c in pool.children.values_mut() {
                if !c.slot_released && c.state() == WorkerState::Ending {
                    c.slot_released = true;
                    pool.free_slots.push(c.slot);
                }
            }
        }
        self.spawn_seq += 1;
        let seed = (u64::from(std::process::id()) << 32) ^ self.spawn_seq ^ scoreboard::now_us();
        let pool = &mut self.pools[i];
        let now = Instant::now();
        if now.duration_since(pool.spawned_this_second.0) >= Duration::from_secs(1) {
            pool.spawned_this_second = (now, 0);
        }
        if throttled && pool.spawned_this_second.1 >= pool.config.pm_max_children.max(8) {
            return Some(());
        }
        let Some(slot) = pool.free_slots.pop() else {
            logging::log(
                Level::Warning,
                &format!(
                    "[pool {}] no free scoreboard slot, not forking now",
                    pool.name()
                ),
            );
            return Some(());
        };
        pool.spawned_this_second.1 += 1;
        let pipes = (
            nix::unistd::pipe(),
            nix::unistd::pipe(),
            nix::unistd::pipe(),
        );
        let (Ok(out), Ok(err), Ok(log)) = pipes else {
            pool.free_slots.push(slot);
            logging::log(
                Level::Error,
                &format!("[pool {}] pipe() failed", pool.name()),
            );
            return Some(());
        };
        if let Some(s) = pool.board.slot(slot) {
            s.reset();
        }
        let max_requests = policy::max_requests_for(u64::from(pool.config.pm_max_requests), seed);
        match sys::fork() {
            Ok(Forked::Parent(pid)) => {
                self.fork_failed = false;
                logging::log(
                    Level::Notice,
                    &format!("[pool {}] child {pid} started", pool.name()),
                );
                if let Some(s) = pool.board.slot(slot) {
                    s.set_pid(pid.as_raw() as u32);
                }
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
                let mut c = Child::new(
                    pool.config.name.clone(),
                    Rc::clone(&pool.board),
                    slot,
                    now,
                    [Some(out.0), Some(err.0), Some(log.0)],
                );
                c.terminate_timeout = pool.config.request_terminate_timeout;
                c.track_finished = pool.config.request_terminate_timeout_track_finished;
                pool.children.insert(pid, c);
                Some(())
            }
            Ok(Forked::Child) => {
                let code = self.become_worker(i, slot, max_requests, [out.1, err.1, log.1]);
                std::process::exit(code);
            }
            Err(e) => {
                self.fork_failed = true;
                pool.free_slots.push(slot);
                if let Some(s) = pool.board.slot(slot) {
                    s.free();
                }
                logging::log(
                    Level::Error,
                    &format!("[pool {}] fork() failed: {e}", pool.name()),
                );
                Some(())
            }
        }
    }

    /// The child's side of spawn: drop what belongs to the master, become a worker.
    fn become_worker(
        &mut self,
        i: usize,
        slot: usize,
        max_requests: u64,
        [out, err, log]: [OwnedFd; 3],
    ) -> i32 {
        let _ = handled_signals().thread_unblock();
        if let Err(e) = sys::worker_signals() {
            eprintln!("worker signal setup failed: {e}");
            return 70;
        }
        // The master's descriptors (other workers' pipes, other pools' sockets, the
        // previous generation) are not ours.
        self.draining.clear();
        self.ondemand = None;
        for (j, pool) in self.pools.iter_mut().enumerate() {
            pool.children.clear();
            // the status socket is the master's to answer
            pool.status = None;
            if j != i {
                let _ = nix::unistd::close(pool.listener.fd.as_raw_fd());
                pool.extra.clear();
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
        if let Err(e) = apply_rlimits(pool.config.rlimit_files, pool.config.rlimit_core) {
            logging::log(Level::Error, &format!("[pool {name}] {e:#}"));
            return 78;
        }
        if let Some(p) = pool.config.process_priority {
            // before dropping privileges: only root may raise a priority
            if let Err(e) = sys::set_priority(p) {
                logging::log(
                    Level::Error,
                    &format!("[pool {name}] process.priority = {p}: {e}"),
                );
                return 78;
            }
        }
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
        let Some(my_slot) = pool.board.slot(slot) else {
            return 70;
        };
        let report = Reporting {
            slot: my_slot,
            header: pool.board.header(),
            board: &pool.board,
            notices: pool.notices.1.try_clone().ok(),
        };
        let listeners: Vec<_> = std::iter::once(&pool.listener)
            .chain(&pool.extra)
            .map(|l| l.fd.as_fd())
            .collect();
        let settings = pool.settings(max_requests);
        worker::serve(&mut engine, &listeners, &settings, &report);
        drop(engine);
        0
    }

    /// When the loop must wake up next.
    fn next_deadline(&self, now: Instant) -> Instant {
        let mut at = self.next_tick;
        let mut timeouts = self
            .pools
            .iter()
            .map(|p| p.config.request_terminate_timeout)
            .chain(self.draining.values().map(|c| c.terminate_timeout))
            .filter(|t| !t.is_zero());
        if let Some(min) = timeouts.by_ref().min() {
            // look often enough to end a request within 5% of its timeout
            let step = (min / 20).clamp(Duration::from_millis(20), TICK);
            at = at.min(now + step);
        }
        for p in &self.pools {
            if let Some(r) = p.ondemand_recheck {
                at = at.min(r);
            }
        }
        if self.stop_started.is_some() {
            at = at.min(now + Duration::from_millis(100));
        }
        if let Some(w) = self.notifier.next_wakeup(now) {
            at = at.min(now + w);
        }
        for p in &self.pools {
            if let Some(d) = p.status.as_ref().and_then(|s| s.next_deadline()) {
                at = at.min(d);
            }
        }
        at
    }

    /// One turn of the event loop. `Some(status)` when the master should exit.
    fn poll_once(&mut self) -> Option<i32> {
        enum Src {
            Signals,
            Epoll,
            Notices(usize),
            Pipe(Pid, Stream),
            StatusAccept(usize),
            StatusConn(usize, usize),
        }
        let now = Instant::now();
        let wait = self.next_deadline(now).saturating_duration_since(now);
        let mut srcs = vec![Src::Signals];
        let mut pfds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        if let Some(ep) = &self.ondemand {
            pfds.push(PollFd::new(ep.0.as_fd(), PollFlags::POLLIN));
            srcs.push(Src::Epoll);
        }
        for (pi, pool) in self.pools.iter().enumerate() {
            pfds.push(PollFd::new(pool.notices.0.as_fd(), PollFlags::POLLIN));
            srcs.push(Src::Notices(pi));
            let Some(server) = &pool.status else { continue };
            for (fd, interest) in server.interests() {
                match interest {
                    status_server::Interest::Accept => {
                        pfds.push(PollFd::new(fd, PollFlags::POLLIN));
                        srcs.push(Src::StatusAccept(pi));
                    }
                    status_server::Interest::Conn(i, write) => {
                        let flags = if write {
                            PollFlags::POLLOUT
                        } else {
                            PollFlags::POLLIN
                        };
                        pfds.push(PollFd::new(fd, flags));
                        srcs.push(Src::StatusConn(pi, i));
                    }
                }
            }
        }
        for (pid, child) in self.every_child() {
            for (k, stream) in [Stream::Stdout, Stream::Stderr, Stream::Log]
                .into_iter()
                .enumerate()
            {
                if let Some(fd) = &child.pipes[k] {
                    pfds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    srcs.push(Src::Pipe(*pid, stream));
                }
            }
        }
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        let _ = poll(
            &mut pfds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        );
        let ready: Vec<bool> = pfds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(pfds);
        // signals first: reaping frees the scoreboard slots the forks below need
        if ready[0] {
            while let Ok(Some(info)) = self.signals.read_signal() {
                if let Some(status) = self.on_signal(info.ssi_signo as i32) {
                    return Some(status);
                }
            }
        }
        for (src, ready) in srcs.into_iter().zip(ready) {
            if !ready {
                continue;
            }
            match src {
                Src::Signals => {}
                Src::Epoll => self.on_ondemand_events(),
                Src::Notices(pi) => self.on_notices(pi),
                Src::Pipe(pid, stream) => self.relay(pid, stream),
                Src::StatusAccept(pi) => {
                    if let Some(server) = &mut self.pools[pi].status {
                        server.accept();
                    }
                }
                Src::StatusConn(pi, i) => {
                    let pool = &mut self.pools[pi];
                    if let Some(server) = &mut pool.status {
                        server.ready(i, &pool.config.name, &pool.board);
                    }
                }
            }
        }
        let now = Instant::now();
        for pool in &mut self.pools {
            if let Some(server) = &mut pool.status {
                server.sweep(now);
            }
        }
        let now = Instant::now();
        self.check_request_timeouts(now);
        self.ondemand_rechecks(now);
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.maintenance(now);
            self.check_idle_exit(now);
        }
        let health = crate::systemd::Health {
            scoreboard_consistent: self.pools.iter().all(|p| p.board.is_intact()),
            can_fork: !self.fork_failed,
            emergency_restart_pending: self.emergency_pending,
        };
        self.notifier.tick(now, &health);
        let stats = self.stats();
        self.notifier.refresh_status(now, &stats);
        self.check_stop_progress()
    }

    /// Counts for systemd's STATUS= line, from the current generation's scoreboards.
    fn stats(&self) -> crate::systemd::Stats {
        let mut st = crate::systemd::Stats::default();
        for p in &self.pools {
            for slot in p.board.slots() {
                match slot.state() {
                    WorkerState::Idle | WorkerState::Starting => st.idle += 1,
                    s if s.in_request() => st.active += 1,
                    _ => {}
                }
            }
            st.requests += p
                .board
                .header()
                .accepted_conn
                .load(std::sync::atomic::Ordering::Relaxed);
        }
        st
    }

    /// Scale to zero: when every pool sets `pm.idle_exit_timeout` and none accepted
    /// a connection or ran a request for that long, stop gracefully and exit 0;
    /// systemd keeps the socket and starts the pool again on the next connection.
    fn check_idle_exit(&mut self, now: Instant) {
        // without socket activation nothing would start the pool again
        if self.state != State::Running || self.pools.is_empty() || !self.activated {
            return;
        }
        let Some(limit) = self
            .pools
            .iter()
            .map(|p| p.config.pm_idle_exit_timeout)
            .try_fold(Duration::MAX, |m, t| (!t.is_zero()).then_some(m.min(t)))
        else {
            return;
        };
        let st = self.stats();
        if st.requests != self.idle_mark.0 || st.active > 0 || !self.draining.is_empty() {
            self.idle_mark = (st.requests, now);
            return;
        }
        if now.duration_since(self.idle_mark.1) < limit {
            return;
        }
        logging::log(
            Level::Notice,
            &format!(
                "no request for {} s (pm.idle_exit_timeout): exiting until the next connection",
                limit.as_secs()
            ),
        );
        self.notifier
            .stopping("Idle: exiting until the next connection");
        self.begin_stop(State::Finishing);
    }

    fn child_mut(&mut self, pid: Pid) -> Option<&mut Child> {
        if let Some(c) = self.draining.get_mut(&pid) {
            return Some(c);
        }
        self.pools.iter_mut().find_map(|p| p.children.get_mut(&pid))
    }

    fn relay(&mut self, pid: Pid, stream: Stream) {
        let (catch, decorate) = self
            .child_mut(pid)
            .map(|c| c.pool.clone())
            .and_then(|name| self.pools.iter().find(|p| p.config.name == name))
            .map_or((true, true), |p| {
                (
                    p.config.catch_workers_output,
                    p.config.decorate_workers_output,
                )
            });
        if let Some(c) = self.child_mut(pid) {
            c.relay(pid, stream, catch, decorate);
        }
    }

    /// Workers starting their last request: fork each one's replacement now, so the
    /// pool never has fewer workers accepting than configured.
    fn on_notices(&mut self, pi: usize) {
        let mut buf = [0u8; 512];
        let mut pids = Vec::new();
        while let Ok(n) = nix::unistd::read(self.pools[pi].notices.0.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            pids.extend(
                buf[..n - n % 4]
                    .chunks_exact(4)
                    .map(|c| Pid::from_raw(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            );
        }
        for pid in pids {
            let pool = &mut self.pools[pi];
            let Some(c) = pool.children.get_mut(&pid) else {
                continue;
            };
            if c.leaving != Leaving::No {
                continue;
            }
            c.leaving = Leaving::Retiring;
            if pool.live() < pool.config.pm_max_children && self.spawn(pi).is_none() {
                std::process::exit(0);
            }
            // the replacement exists: the retiring worker may leave after its request
            if let Some(c) = self.pools[pi].children.get(&pid) {
                if let Some(slot) = c.slot_ref() {
                    slot.request_quit();
                }
            }
        }
    }

    fn on_ondemand_events(&mut self) {
        let Some(ep) = &self.ondemand else { return };
        let mut events = [EpollEvent::empty(); 16];
        let n = ep.wait(&mut events, EpollTimeout::ZERO).unwrap_or(0);
        let pools: Vec<usize> = events[..n].iter().map(|e| e.data() as usize).collect();
        for pi in pools {
            if pi < self.pools.len() {
                self.ondemand_accept(pi);
            }
        }
    }

    /// A connection arrived at an ondemand pool: fork unless a worker is idle.
    fn ondemand_accept(&mut self, pi: usize) {
        if self.state != State::Running {
            return;
        }
        let pool = &mut self.pools[pi];
        if pool.live() >= pool.config.pm_max_children {
            pool.warn_max_children(true);
            return;
        }
        pool.ondemand_recheck = Some(Instant::now() + ONDEMAND_RECHECK);
        // a worker still starting will take the waiting connection: one fork per
        // connection, not one per recheck while a slow start is under way
        let starting = pool
            .children
            .values()
            .filter(|c| c.counts() && c.state() == WorkerState::Starting)
            .count();
        if pool.idle() > 0 || starting > 0 {
            return;
        }
        pool.warned_max_children = false;
        if self.spawn(pi).is_none() {
            std::process::exit(0);
        }
    }

    fn ondemand_rechecks(&mut self, now: Instant) {
        for pi in 0..self.pools.len() {
            let due = self.pools[pi].ondemand_recheck.is_some_and(|at| now >= at);
            if !due {
                continue;
            }
            self.pools[pi].ondemand_recheck = None;
            let fd = self.pools[pi].listener.fd.as_fd();
            let mut pfd = [PollFd::new(fd, PollFlags::POLLIN)];
            let queued = poll(&mut pfd, PollTimeout::ZERO).unwrap_or(0) > 0;
            if queued {
                self.ondemand_accept(pi);
            }
        }
    }

    /// Once a second: pool sizes (dynamic, ondemand idle timeout, static refill),
    /// reminders to workers asked to quit, and the drain deadline of a previous
    /// generation.
    fn maintenance(&mut self, now: Instant) {
        for pool in &self.pools {
            let active = pool
                .board
                .slots()
                .filter(|s| s.state().in_request())
                .count() as u64;
            pool.board
                .header()
                .max_active
                .fetch_max(active, std::sync::atomic::Ordering::Relaxed);
        }
        if self.state == State::Running {
            for pi in 0..self.pools.len() {
                if self.maintain_pool(pi, now).is_none() {
                    std::process::exit(0);
                }
            }
        }
        let pct = self.global.process_control_timeout;
        for (pid, c) in self.every_child_mut() {
            if c.leaving == Leaving::No || c.term_sent.is_some() {
                continue;
            }
            // a SIGQUIT that landed just before accept() was entered is lost: repeat it
            if c.quit_sent.map_or(true, |t| now.duration_since(t) >= TICK) && c.signal_is_harmless()
            {
                let _ = kill(*pid, Signal::SIGQUIT);
                c.quit_sent = Some(now);
            }
        }
        if !pct.is_zero() {
            for (pid, c) in self.draining.iter_mut() {
                let overdue = c
                    .leaving_since
                    .is_some_and(|t| now.duration_since(t) >= pct);
                if c.term_sent.is_none() && overdue {
                    logging::log(
                        Level::Warning,
                        &format!(
                            "[pool {}] child {pid} of the previous generation did not finish within process_control_timeout, terminating",
                            c.pool
                        ),
                    );
                    let _ = kill(*pid, Signal::SIGTERM);
                    c.term_sent = Some(now);
                }
            }
        }
    }

    /// `None` in a child forked here, once it is done serving.
    fn maintain_pool(&mut self, pi: usize, now: Instant) -> Option<()> {
        let style = self.pools[pi].config.pm;
        match style {
            PmStyle::Static => {
                // replaces workers whose respawn was throttled or failed
                while self.pools[pi].live() < self.pools[pi].config.pm_max_children {
                    let before = self.pools[pi].children.len();
                    self.spawn(pi)?;
                    if self.pools[pi].children.len() == before {
                        break;
                    }
                }
            }
            PmStyle::Dynamic => {
                let pool = &mut self.pools[pi];
                let b = DynamicBounds {
                    max_children: pool.config.pm_max_children,
                    min_spare: pool.config.pm_min_spare_servers,
                    max_spare: pool.config.pm_max_spare_servers,
                    max_spawn_rate: pool.config.pm_max_spawn_rate,
                };
                let (idle, live) = (pool.idle(), pool.live());
                let rate = pool.rate.0;
                match policy::dynamic_step(&b, idle, live, &mut pool.rate) {
                    DynamicStep::Hold => {}
                    DynamicStep::KillOneIdle => {
                        let oldest = pool
                            .children
                            .iter()
                            .filter(|(_, c)| c.counts() && c.state() == WorkerState::Idle)
                            .min_by_key(|(_, c)| c.started)
                            .map(|(pid, _)| *pid);
                        if let Some(pid) = oldest {
                            if let Some(c) = pool.children.get_mut(&pid) {
                                c.leaving = Leaving::IdleKill;
                                c.ask_to_quit(pid, now);
                            }
                        }
                    }
                    DynamicStep::AtMaxChildren => pool.warn_max_children(false),
                    DynamicStep::Spawn(n) => {
                        pool.warned_max_children = false;
                        if rate >= 8 {
                            logging::log(Level::Warning, &format!("[pool {}] seems busy (you may need to increase pm.start_servers, or pm.min/max_spare_servers), spawning {n} children, there are {idle} idle, and {live} total children", pool.name()));
                        }
                        for _ in 0..n {
                            self.spawn(pi)?;
                        }
                    }
                }
            }
            PmStyle::OnDemand => {
                let pool = &mut self.pools[pi];
                let timeout = pool.config.pm_process_idle_timeout.as_micros() as u64;
                let now_us = scoreboard::now_us();
                for (pid, c) in pool.children.iter_mut() {
                    if !c.counts() || c.state() != WorkerState::Idle {
                        continue;
                    }
                    let since = c.snapshot().map_or(now_us, |s| s.since_us);
                    if now_us.saturating_sub(since) >= timeout {
                        c.leaving = Leaving::IdleKill;
                        c.ask_to_quit(*pid, now);
                    }
                }
            }
        }
        Some(())
    }

    /// `request_terminate_timeout`: SIGTERM to a worker whose request runs too long
    /// (it answers 504 if nothing was sent yet), SIGKILL a second later.
    fn check_request_timeouts(&mut self, now: Instant) {
        let now_us = scoreboard::now_us();
        for (pid, c) in self.every_child_mut() {
            if let Some(t) = c.term_sent {
                if !c.killed && now.duration_since(t) >= KILL_AFTER {
                    let _ = kill(*pid, Signal::SIGKILL);
                    c.killed = true;
                }
                continue;
            }
            if c.terminate_timeout.is_zero() {
                continue;
            }
            let state = c.state();
            if !state.in_request() {
                continue;
            }
            let Some(snap) = c.snapshot() else { continue };
            if snap.finished_early && !c.track_finished {
                continue;
            }
            let elapsed = now_us.saturating_sub(snap.since_us);
            if elapsed < c.terminate_timeout.as_micros() as u64 {
                continue;
            }
            let _ = kill(*pid, Signal::SIGTERM);
            c.term_sent = Some(now);
            c.board
                .header()
                .terminated_requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            logging::log(
                Level::Warning,
                &format!(
                    "[pool {}] child {pid}, script '{}' (request: \"{}\") execution timed out ({}.{:06} sec), terminating",
                    c.pool,
                    snap.script,
                    request_line(&snap),
                    elapsed / 1_000_000,
                    elapsed % 1_000_000
                ),
            );
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
                self.begin_stop(State::Finishing);
            }
            Signal::SIGTERM | Signal::SIGINT if self.state != State::Terminating => {
                logging::log(Level::Notice, "Terminating ...");
                self.begin_stop(State::Terminating);
            }
            Signal::SIGUSR1 => self.reopen_log(),
            Signal::SIGUSR2 => self.reload("SIGUSR2"),
            _ => {}
        }
        if self.state != State::Running && self.all_children() == 0 {
            return Some(self.exit_now());
        }
        None
    }

    fn reopen_log(&mut self) {
        if let crate::config::LogTarget::File(path) = &self.global.error_log {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => logging::set_file(Some(f)),
                Err(e) => {
                    logging::log(
                        Level::Error,
                        &format!("failed to reopen error_log {}: {e}", path.display()),
                    );
                    return;
                }
            }
        }
        logging::log(Level::Notice, "error log file re-opened");
    }

    fn begin_stop(&mut self, state: State) {
        self.state = state;
        self.notifier.stopping("Stopping");
        self.stop_started = Some(Instant::now());
        self.escalated = 0;
        let now = Instant::now();
        for pool in &mut self.pools {
            pool.ondemand_recheck = None;
        }
        for (pid, c) in self.every_child_mut() {
            if state == State::Finishing {
                c.leaving = Leaving::Draining;
                c.ask_to_quit(*pid, now);
            } else {
                let _ = kill(*pid, Signal::SIGTERM);
                c.term_sent.get_or_insert(now);
            }
        }
    }

    fn signal_all(&self, signal: Signal) {
        let pids = self
            .pools
            .iter()
            .flat_map(|p| p.children.keys())
            .chain(self.draining.keys());
        for pid in pids {
            let _ = kill(*pid, signal);
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
        } else if self.state == State::Terminating && elapsed >= KILL_AFTER && self.escalated < 2 {
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
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    if let Some((pid, how, clean)) = describe_exit(&status) {
                        let crashed = matches!(
                            status,
                            WaitStatus::Signaled(_, Signal::SIGSEGV | Signal::SIGBUS, _)
                        );
                        self.child_gone(pid, &how, clean, crashed);
                    }
                }
            }
        }
    }

    fn child_gone(&mut self, pid: Pid, how: &str, clean: bool, crashed: bool) {
        for k in [Stream::Stdout, Stream::Stderr, Stream::Log] {
            self.relay(pid, k);
        }
        let (child, pool_index) = if let Some(c) = self.draining.remove(&pid) {
            (c, None)
        } else if let Some(pi) = self
            .pools
            .iter()
            .position(|p| p.children.contains_key(&pid))
        {
            match self.pools[pi].children.remove(&pid) {
                Some(c) => (c, Some(pi)),
                None => return,
            }
        } else {
            logging::log(
                Level::Alert,
                &format!("oops, unknown child ({pid}) exited {how}"),
            );
            return;
        };
        let snap = child.snapshot();
        if let Some(s) = child.slot_ref() {
            s.free();
            if let Some(pi) = pool_index {
                self.pools[pi].free_slots.push(child.slot);
            }
        }
        let t = child.started.elapsed();
        let (secs, micros) = (t.as_secs(), t.subsec_micros());
        if child.leaving == Leaving::IdleKill && clean {
            logging::log(
                Level::Debug,
                &format!("[pool {}] child {pid} has been killed by the process management after {secs}.{micros:06} seconds from start", child.pool),
            );
        } else {
            let level = if clean || self.state != State::Running {
                Level::Notice
            } else {
                Level::Warning
            };
            logging::log(
                level,
                &format!(
                    "[pool {}] child {pid} exited {how} after {secs}.{micros:06} seconds from start",
                    child.pool
                ),
            );
        }
        if let Some(s) =
            snap.filter(|s| !clean && s.state.in_request() && child.term_sent.is_none())
        {
            logging::log(
                Level::Warning,
                &format!(
                    "[pool {}] child {pid} died while serving script '{}' (request: \"{}\"); that request failed",
                    child.pool,
                    s.script,
                    request_line(&s)
                ),
            );
        }
        if crashed && self.faults.record(Instant::now()) {
            logging::log(
                Level::Warning,
                &format!(
                    "failed processes threshold ({} in {} sec) is reached, initiating reload",
                    self.global.emergency_restart_threshold,
                    self.global.emergency_restart_interval.as_secs()
                ),
            );
            if self.notifier.is_enabled() {
                // under systemd the restart is systemd's: requests in flight finish,
                // new ones wait in the socket systemd holds, and the failure counts
                // in the unit's state and the journal
                self.emergency_pending = true;
                logging::log(
                    Level::Warning,
                    "stopping gracefully; systemd restarts the service with a fresh engine",
                );
                self.notifier.stopping("Emergency restart");
                self.exit_code = 70;
                self.begin_stop(State::Finishing);
            } else {
                // the reload replaces this image, or fails and we go on as before
                self.reload("emergency restart");
            }
        }
        let Some(pi) = pool_index else { return };
        if self.state == State::Running && child.leaving == Leaving::No {
            let pool = &self.pools[pi];
            let respawn = match pool.config.pm {
                PmStyle::Static => true,
                // php-fpm replaces a dead worker in every mode; the spare logic
                // trims it later if it is not needed
                PmStyle::Dynamic | PmStyle::OnDemand => pool.live() < pool.config.pm_max_children,
            };
            if respawn {
                let again = if clean {
                    self.spawn(pi)
                } else {
                    self.respawn(pi)
                };
                if again.is_none() {
                    std::process::exit(0);
                }
            }
        }
    }

    fn exit_now(&mut self) -> i32 {
        for pool in &self.pools {
            let status = pool.status.as_ref().map(|s| &s.listener);
            for l in std::iter::once(&pool.listener).chain(status) {
                if let Some(path) = &l.path {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        logging::log(Level::Notice, "exiting, bye-bye!");
        self.exit_code
    }
}
