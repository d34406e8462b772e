//! What a reloading master hands to its next image across exec: the listening
//! sockets (so no connection is refused), the scoreboards and the children of the
//! generation that is still finishing its requests (so they are still reaped, their
//! output still logged and their timeouts still enforced).
//!
//! It travels in one environment variable of `;`-separated records; strings are hex
//! so that no path or pool name can break the format. Descriptor numbers are checked
//! to be open and unique before they are adopted.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

/// The variable the previous image sets.
pub const ENV: &str = "PHP_FPM_RS_HANDOFF";

/// A listening socket, by the pool address it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRecord {
    /// Descriptor number.
    pub fd: RawFd,
    /// [`crate::pm::listen::address_key`] of the address.
    pub key: String,
    /// The master bound it (and removes its file at exit); false for a socket
    /// systemd owns.
    pub owned: bool,
}

/// A worker of the previous generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRecord {
    /// Its pid (still a child of this process: exec keeps the pid).
    pub pid: i32,
    /// Its pool's name.
    pub pool: String,
    /// Which scoreboard record holds its slot.
    pub board: u32,
    /// Its slot.
    pub slot: usize,
    /// Its stdout, stderr and log pipes (read ends), -1 when closed.
    pub pipes: [RawFd; 3],
    /// How long it has been running.
    pub age: Duration,
    /// Its pool's request_terminate_timeout.
    pub terminate_timeout: Duration,
    /// Its pool's request_terminate_timeout_track_finished.
    pub track_finished: bool,
}

/// Everything handed over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handoff {
    /// Listening sockets.
    pub sockets: Vec<SocketRecord>,
    /// Scoreboards, by id.
    pub boards: Vec<(u32, RawFd)>,
    /// Workers still finishing.
    pub children: Vec<ChildRecord>,
    /// How many reloads came before (for log lines).
    pub generation: u64,
    /// systemd passed the sockets (socket activation): it can start the pool again
    /// after an idle exit. LISTEN_FDS is gone by the time the next image starts.
    pub activated: bool,
}

/// A malformed handoff: the next image refuses it as a whole.
#[derive(Debug, thiserror::Error)]
#[error("malformed {ENV}: {0}")]
pub struct HandoffError(String);

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<String, HandoffError> {
    let bad = || HandoffError(format!("bad hex string {s:?}"));
    if s.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).map_err(|_| bad())
}

fn num<T: std::str::FromStr>(s: Option<&str>, what: &str) -> Result<T, HandoffError> {
    s.and_then(|v| v.parse().ok())
        .ok_or_else(|| HandoffError(format!("bad {what}: {s:?}")))
}

impl Handoff {
    /// The variable's value.
    pub fn encode(&self) -> String {
        // the flag after the generation: an older image ignores it
        let mut parts = vec![format!(
            "g,{},{}",
            self.generation,
            u8::from(self.activated)
        )];
        for s in &self.sockets {
            parts.push(format!("s,{},{},{}", s.fd, u8::from(s.owned), hex(&s.key)));
        }
        for (id, fd) in &self.boards {
            parts.push(format!("b,{id},{fd}"));
        }
        for c in &self.children {
            parts.push(format!(
                "c,{},{},{},{},{},{},{},{},{},{},{}",
                c.pid,
                hex(&c.pool),
                c.board,
                c.slot,
                c.pipes[0],
                c.pipes[1],
                c.pipes[2],
                c.age.as_millis(),
                c.terminate_timeout.as_millis(),
                u8::from(c.track_finished),
                "end"
            ));
        }
        parts.join(";")
    }

    /// Parses the variable's value; every descriptor number must appear once.
    ///
    /// # Errors
    /// On any malformed record or a repeated descriptor.
    pub fn decode(text: &str) -> Result<Handoff, HandoffError> {
        let mut h = Handoff::default();
        let mut seen = HashSet::new();
        let mut fd_once = |fd: RawFd| {
            if fd >= 0 && !seen.insert(fd) {
                return Err(HandoffError(format!("descriptor {fd} appears twice")));
            }
            Ok(fd)
        };
        for rec in text.split(';').filter(|r| !r.is_empty()) {
            let mut f = rec.split(',');
            match f.next() {
                Some("g") => {
                    h.generation = num(f.next(), "generation")?;
                    // absent when handed over by an older image
                    h.activated = match f.next() {
                        Some(a) => num::<u8>(Some(a), "activation flag")? != 0,
                        None => false,
                    };
                }
                Some("s") => {
                    let fd = fd_once(num(f.next(), "socket fd")?)?;
                    let owned = num::<u8>(f.next(), "socket owner flag")? != 0;
                    let key = unhex(f.next().unwrap_or_default())?;
                    h.sockets.push(SocketRecord { fd, key, owned });
                }
                Some("b") => {
                    let id = num(f.next(), "scoreboard id")?;
                    let fd = fd_once(num(f.next(), "scoreboard fd")?)?;
                    h.boards.push((id, fd));
                }
                Some("c") => {
                    let pid = num(f.next(), "pid")?;
                    let pool = unhex(f.next().unwrap_or_default())?;
                    let board = num(f.next(), "board")?;
                    let slot = num(f.next(), "slot")?;
                    let mut pipes = [-1; 3];
                    for p in &mut pipes {
                        *p = fd_once(num(f.next(), "pipe fd")?)?;
                    }
                    let age = Duration::from_millis(num(f.next(), "age")?);
                    let terminate_timeout = Duration::from_millis(num(f.next(), "timeout")?);
                    let track_finished = num::<u8>(f.next(), "track_finished")? != 0;
                    if f.next() != Some("end") {
                        return Err(HandoffError(format!("truncated child record {rec:?}")));
                    }
                    h.children.push(ChildRecord {
                        pid,
                        pool,
                        board,
                        slot,
                        pipes,
                        age,
                        terminate_timeout,
                        track_finished,
                    });
                }
                _ => return Err(HandoffError(format!("unknown record {rec:?}"))),
            }
        }
        let boards: HashSet<u32> = h.boards.iter().map(|(id, _)| *id).collect();
        if let Some(c) = h.children.iter().find(|c| !boards.contains(&c.board)) {
            return Err(HandoffError(format!(
                "child {} names scoreboard {} that was not handed over",
                c.pid, c.board
            )));
        }
        Ok(h)
    }

    /// Takes the handoff from the environment (and removes it, so workers never see
    /// it). `Ok(None)` on a normal start.
    ///
    /// # Errors
    /// When the variable is present but malformed.
    pub fn from_env() -> Result<Option<Handoff>, HandoffError> {
        let Some(v) = std::env::var_os(ENV) else {
            return Ok(None);
        };
        std::env::remove_var(ENV);
        let text = v
            .into_string()
            .map_err(|_| HandoffError("not UTF-8".into()))?;
        Handoff::decode(&text).map(Some)
    }
}

/// The inherited descriptors, owned again.
#[derive(Debug, Default)]
pub struct Adopted {
    /// Listening sockets by address key, and whether this master owns the file.
    pub sockets: HashMap<String, (OwnedFd, bool)>,
    /// Scoreboards by id.
    pub boards: HashMap<u32, OwnedFd>,
    /// Child pipes by descriptor number.
    pub pipes: HashMap<RawFd, OwnedFd>,
}

/// The handoff key of a pool's extra socket (`display` tells several apart).
pub fn extra_key(pool: &str, display: &str) -> String {
    format!("extra:{pool}:{display}")
}

/// The handoff key of a pool's status socket.
pub fn status_key(pool: &str) -> String {
    format!("status:{pool}")
}

impl Adopted {
    /// Removes and returns the sockets whose key starts with `prefix`.
    pub fn take_prefixed(&mut self, prefix: &str) -> Vec<crate::pm::listen::Listener> {
        let keys: Vec<String> = self
            .sockets
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                // extra sockets come from systemd only: never this master's files
                let (fd, _) = self.sockets.remove(&k)?;
                let display = k[prefix.len()..].to_string();
                Some(crate::pm::listen::Listener {
                    fd,
                    path: None,
                    display,
                })
            })
            .collect()
    }
}

/// Takes ownership of every descriptor the handoff names; descriptors that are not
/// open are reported and skipped.
pub fn adopt(h: &Handoff) -> (Adopted, Vec<String>) {
    let mut out = Adopted::default();
    let mut problems = Vec::new();
    let mut take = |fd: RawFd, what: &str| match crate::sys::adopt_fd(fd) {
        Ok(owned) => Some(owned),
        Err(e) => {
            problems.push(format!("inherited {what} fd {fd}: {e}"));
            None
        }
    };
    for s in &h.sockets {
        if let Some(fd) = take(s.fd, "socket") {
            out.sockets.insert(s.key.clone(), (fd, s.owned));
        }
    }
    for (id, fd) in &h.boards {
        if let Some(owned) = take(*fd, "scoreboard") {
            out.boards.insert(*id, owned);
        }
    }
    for c in &h.children {
        for &p in c.pipes.iter().filter(|&&p| p >= 0) {
            if let Some(owned) = take(p, "pipe") {
                out.pipes.insert(p, owned);
            }
        }
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handoff {
        Handoff {
            sockets: vec![SocketRecord {
                fd: 3,
                key: "unix:/run/php fpm;x,y.sock".into(),
                owned: true,
            }],
            boards: vec![(0, 4)],
            children: vec![ChildRecord {
                pid: 1234,
                pool: "www;1".into(),
                board: 0,
                slot: 2,
                pipes: [5, -1, 7],
                age: Duration::from_millis(1500),
                terminate_timeout: Duration::from_secs(2),
                track_finished: true,
            }],
            generation: 3,
            activated: true,
        }
    }

    #[test]
    fn round_trips_including_awkward_names() {
        let h = sample();
        assert_eq!(Handoff::decode(&h.encode()).expect("decodes"), h);
    }

    #[test]
    fn refuses_repeated_descriptors_and_broken_records() {
        let mut h = sample();
        h.boards = vec![(0, 3)];
        assert!(Handoff::decode(&h.encode()).is_err(), "fd 3 twice");
        let text = sample().encode();
        assert!(
            Handoff::decode(&text[..text.len() - 4]).is_err(),
            "truncated"
        );
        assert!(Handoff::decode("x,1").is_err());
        assert!(Handoff::decode("s,notanumber,1,00").is_err());
        assert!(Handoff::decode("s,3,1,zz").is_err());
        let mut orphan = sample();
        orphan.boards.clear();
        assert!(
            Handoff::decode(&orphan.encode()).is_err(),
            "child without its scoreboard"
        );
        assert_eq!(Handoff::decode("").expect("empty"), Handoff::default());
    }

    #[test]
    fn reads_an_older_images_handoff_without_the_activation_flag() {
        let h = Handoff::decode("g,3").expect("decodes");
        assert_eq!((h.generation, h.activated), (3, false));
    }
}
