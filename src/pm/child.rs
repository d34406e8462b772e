//! A worker as the master tracks it: its scoreboard slot, its output pipes and what
//! the master has asked of it; and the relay of what it writes into the log.
#![forbid(unsafe_code)]

use std::io::Read;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::logging;
use crate::scoreboard::{Scoreboard, SlotSnapshot, WorkerState};

/// Which of the child's pipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// fd 1.
    Stdout = 0,
    /// fd 2.
    Stderr = 1,
    /// The worker's logger, lines already formatted.
    Log = 2,
}

/// Why a child is leaving, when the master knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    /// Not leaving.
    No,
    /// Serving its last request (max_requests); a replacement is already forked.
    Retiring,
    /// Stopped by the process manager because it was idle.
    IdleKill,
    /// Its generation was replaced by a reload, or the pool is stopping.
    Draining,
}

/// One forked worker.
pub struct Child {
    /// Its pool's name.
    pub pool: String,
    /// The scoreboard of its generation.
    pub board: Rc<Scoreboard>,
    /// Its slot there.
    pub slot: usize,
    /// The slot was given to another worker: this one had reached `Ending` and
    /// writes nothing more, only its process exit is pending.
    pub slot_released: bool,
    /// When it was forked (for "after N seconds from start").
    pub started: Instant,
    /// Read ends of its stdout, stderr and log pipes.
    pub pipes: [Option<OwnedFd>; 3],
    partial: [Vec<u8>; 3],
    /// What the master asked of it.
    pub leaving: Leaving,
    /// When the master last sent it SIGQUIT.
    pub quit_sent: Option<Instant>,
    /// When the master first asked it to leave.
    pub leaving_since: Option<Instant>,
    /// When the master sent it SIGTERM (request_terminate_timeout or stop).
    pub term_sent: Option<Instant>,
    /// SIGKILL was sent.
    pub killed: bool,
    /// Its pool's request_terminate_timeout (kept for a generation whose pool left).
    pub terminate_timeout: Duration,
    /// request_terminate_timeout_track_finished.
    pub track_finished: bool,
}

impl Child {
    /// A freshly forked (or inherited) child.
    pub fn new(
        pool: String,
        board: Rc<Scoreboard>,
        slot: usize,
        started: Instant,
        pipes: [Option<OwnedFd>; 3],
    ) -> Child {
        Child {
            pool,
            board,
            slot,
            slot_released: false,
            started,
            pipes,
            partial: Default::default(),
            leaving: Leaving::No,
            quit_sent: None,
            leaving_since: None,
            term_sent: None,
            killed: false,
            terminate_timeout: Duration::ZERO,
            track_finished: false,
        }
    }

    /// Its scoreboard slot, while it holds one.
    pub fn slot_ref(&self) -> Option<&crate::scoreboard::Slot> {
        if self.slot_released {
            return None;
        }
        self.board.slot(self.slot)
    }

    /// Its scoreboard state (`Ending` once its slot was released).
    pub fn state(&self) -> WorkerState {
        if self.slot_released {
            return WorkerState::Ending;
        }
        self.slot_ref().map_or(WorkerState::Free, |s| s.state())
    }

    /// A copy of its slot.
    pub fn snapshot(&self) -> Option<SlotSnapshot> {
        self.slot_ref().map(|s| s.snapshot())
    }

    /// Whether the master counts it toward the pool's size.
    pub fn counts(&self) -> bool {
        self.leaving == Leaving::No
    }

    /// Whether a signal would only interrupt waiting (accept, or a kept connection
    /// between requests), never a script.
    pub fn signal_is_harmless(&self) -> bool {
        matches!(
            self.state(),
            WorkerState::Starting | WorkerState::Idle | WorkerState::ReadingHeaders
        )
    }

    /// Asks it to leave after its current request: a flag it reads between requests,
    /// plus SIGQUIT only while it waits, so a running script is never interrupted.
    pub fn ask_to_quit(&mut self, pid: Pid, now: Instant) {
        if let Some(slot) = self.slot_ref() {
            slot.request_quit();
        }
        self.leaving_since.get_or_insert(now);
        if self.signal_is_harmless() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGQUIT);
            self.quit_sent = Some(now);
        }
    }

    /// Reads what is available on pipe `k` and logs complete lines (all of it at EOF).
    pub fn relay(&mut self, pid: Pid, k: Stream, catch: bool, decorate: bool) {
        let idx = k as usize;
        let Some(fd) = self.pipes[idx].as_ref() else {
            return;
        };
        let mut file = match fd.try_clone() {
            Ok(f) => std::fs::File::from(f),
            Err(_) => return,
        };
        let mut buf = [0u8; 8192];
        let mut eof = false;
        loop {
            match file.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.partial[idx].extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if eof {
            self.pipes[idx] = None;
        }
        let data = &mut self.partial[idx];
        let complete = match data.iter().rposition(|&c| c == b'\n') {
            Some(p) => p + 1,
            None if eof || data.len() > 1024 => data.len(),
            None => 0,
        };
        let lines: Vec<u8> = data.drain(..complete).collect();
        for line in lines.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let text = String::from_utf8_lossy(line);
            match k {
                Stream::Log => logging::raw(&text),
                _ if !catch => {}
                _ => {
                    let stream = if k == Stream::Stdout {
                        "stdout"
                    } else {
                        "stderr"
                    };
                    logging::worker_output(
                        &self.pool,
                        pid.as_raw() as u32,
                        stream,
                        &text,
                        decorate,
                    );
                }
            }
        }
    }
}

/// php-fpm's wording of how a child ended: `with code 0`, `on signal 11 (SIGSEGV - core dumped)`.
pub fn describe_exit(status: &WaitStatus) -> Option<(Pid, String, bool)> {
    match *status {
        WaitStatus::Exited(pid, code) => Some((pid, format!("with code {code}"), code == 0)),
        WaitStatus::Signaled(pid, sig, core) => {
            let core = if core { " - core dumped" } else { "" };
            Some((
                pid,
                format!("on signal {} ({}{core})", sig as i32, sig.as_str()),
                sig == Signal::SIGQUIT,
            ))
        }
        _ => None,
    }
}

/// `GET /index.php?a=1` as php-fpm writes a request in its log lines.
pub fn request_line(s: &SlotSnapshot) -> String {
    let q = if s.query.is_empty() { "" } else { "?" };
    format!("{} {}{q}{}", s.method, s.uri, s.query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_worded_like_php_fpm() {
        let pid = Pid::from_raw(42);
        let (_, how, clean) = describe_exit(&WaitStatus::Exited(pid, 0)).expect("exit");
        assert_eq!((how.as_str(), clean), ("with code 0", true));
        let (_, how, clean) =
            describe_exit(&WaitStatus::Signaled(pid, Signal::SIGSEGV, true)).expect("signal");
        assert_eq!(how, "on signal 11 (SIGSEGV - core dumped)");
        assert!(!clean);
        let (_, how, _) =
            describe_exit(&WaitStatus::Signaled(pid, Signal::SIGTERM, false)).expect("signal");
        assert_eq!(how, "on signal 15 (SIGTERM)");
    }
}
