//! Reload: the new configuration is checked, then the master re-executes itself
//! (same pid) with the listening sockets and the current workers handed over
//! ([`super::handoff`]). The new image forks its workers first and only then tells
//! the old ones to finish their requests, so nothing stops accepting.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use nix::unistd::Pid;

use super::child::{Child, Leaving};
use super::handoff::{self, ChildRecord, Handoff, SocketRecord};
use super::{listen, Master, State};
use crate::logging::{self, Level};
use crate::scoreboard::Scoreboard;
use crate::sys;

/// How to reload: the executable and arguments to run again, and a check of the new
/// configuration made before anything is stopped.
pub struct ReloadSpec {
    /// The binary, as started (a package upgrade replaces the file: reload runs the new one).
    pub exe: PathBuf,
    /// argv, including argv[0].
    pub argv: Vec<OsString>,
    /// Loads and validates the configuration as the next image will; the messages
    /// of a refusal.
    pub preflight: Box<dyn Fn() -> std::result::Result<(), Vec<String>>>,
    /// Reloads before this image.
    pub generation: u64,
}

impl Master {
    /// Reload: check the configuration, then re-execute this binary with the
    /// listening sockets and the current workers handed over. The new image forks
    /// its workers first, and only then tells these to finish their requests.
    pub(super) fn reload(&mut self, why: &str) {
        if self.state != State::Running {
            return;
        }
        let Some(spec) = &self.reload else {
            logging::log(
                Level::Warning,
                &format!("{why}: reload is not available in this mode; the pool keeps running"),
            );
            return;
        };
        logging::log(Level::Notice, "Reloading in progress ...");
        if let Err(problems) = (spec.preflight)() {
            for p in &problems {
                logging::log(Level::Error, p);
            }
            logging::log(
                Level::Error,
                "reload refused: the new configuration is not valid; the running pools keep serving",
            );
            return;
        }
        let handoff = self.handoff(spec.generation + 1);
        let keep: Vec<i32> = handoff
            .sockets
            .iter()
            .map(|s| s.fd)
            .chain(handoff.boards.iter().map(|(_, fd)| *fd))
            .chain(handoff.children.iter().flat_map(|c| c.pipes))
            .filter(|fd| *fd >= 0)
            .collect();
        for &fd in &keep {
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            );
        }
        self.notifier.reloading();
        std::env::set_var(handoff::ENV, handoff.encode());
        let shown: Vec<String> = spec
            .argv
            .iter()
            .map(|a| format!("\"{}\"", a.to_string_lossy()))
            .collect();
        logging::log(
            Level::Notice,
            &format!(
                "reloading: execv(\"{}\", {{{}}})",
                spec.exe.display(),
                shown.join(", ")
            ),
        );
        let e = sys::exec(&spec.exe, &spec.argv);
        std::env::remove_var(handoff::ENV);
        for &fd in &keep {
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
        }
        logging::log(
            Level::Error,
            &format!("failed to reload: execv() failed: {e}; the running pools keep serving"),
        );
        self.notifier
            .ready("Reload failed: still serving the previous configuration");
    }

    fn handoff(&self, generation: u64) -> Handoff {
        let mut h = Handoff {
            generation,
            activated: self.activated,
            ..Handoff::default()
        };
        for p in &self.pools {
            h.sockets.push(SocketRecord {
                fd: p.listener.fd.as_raw_fd(),
                key: listen::address_key(&p.config.listen),
                owned: p.listener.path.is_some(),
            });
            for l in &p.extra {
                h.sockets.push(SocketRecord {
                    fd: l.fd.as_raw_fd(),
                    key: handoff::extra_key(&p.config.name, &l.display),
                    owned: false,
                });
            }
            if let Some(s) = &p.status {
                h.sockets.push(SocketRecord {
                    fd: s.listener.fd.as_raw_fd(),
                    key: handoff::status_key(&p.config.name),
                    owned: s.listener.path.is_some(),
                });
            }
        }
        let mut board_ids: HashMap<*const Scoreboard, u32> = HashMap::new();
        for (pid, c) in self.every_child() {
            let next = board_ids.len() as u32;
            let id = *board_ids.entry(Rc::as_ptr(&c.board)).or_insert_with(|| {
                h.boards.push((next, c.board.fd().as_raw_fd()));
                next
            });
            let fd = |k: usize| c.pipes[k].as_ref().map_or(-1, |f| f.as_raw_fd());
            h.children.push(ChildRecord {
                pid: pid.as_raw(),
                pool: c.pool.clone(),
                board: id,
                slot: if c.slot_released { usize::MAX } else { c.slot },
                pipes: [fd(0), fd(1), fd(2)],
                age: c.started.elapsed(),
                terminate_timeout: c.terminate_timeout,
                track_finished: c.track_finished,
            });
        }
        h
    }
}

/// Rebuilds the previous generation's children from a handoff, with their
/// scoreboards and pipes, for [`Master::new`].
pub fn inherited_children(h: &Handoff, adopted: &mut handoff::Adopted) -> Vec<(Pid, Child)> {
    let mut boards: HashMap<u32, Rc<Scoreboard>> = HashMap::new();
    for (id, fd) in adopted.boards.drain() {
        match Scoreboard::adopt(fd) {
            Ok(b) => {
                boards.insert(id, Rc::new(b));
            }
            Err(e) => logging::log(
                Level::Error,
                &format!("cannot map an inherited scoreboard: {e}"),
            ),
        }
    }
    let now = Instant::now();
    let mut out = Vec::new();
    for r in &h.children {
        let Some(board) = boards.get(&r.board) else {
            continue;
        };
        let pipes = r.pipes.map(|fd| adopted.pipes.remove(&fd));
        let mut c = Child::new(
            r.pool.clone(),
            Rc::clone(board),
            r.slot,
            now.checked_sub(r.age).unwrap_or(now),
            pipes,
        );
        c.terminate_timeout = r.terminate_timeout;
        c.track_finished = r.track_finished;
        c.leaving = Leaving::Draining;
        out.push((Pid::from_raw(r.pid), c));
    }
    out
}
