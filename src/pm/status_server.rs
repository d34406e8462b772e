//! The status socket, answered by the master itself: a socket systemd passes under the
//! name `status`, or `pm.status_listen`. Its pages come straight from the scoreboard
//! in the master's event loop, so they answer even when every worker is busy (on the
//! pool's own socket they wait for a free worker, as in php-fpm). Everything is
//! non-blocking and bounded: a few small connections, a deadline each, no body.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::listen::Listener;
use crate::fastcgi::{
    encode_end_request, encode_stream, encode_stream_end, Connection, Event, Limits,
    ProtocolStatus, RecordType,
};
use crate::logging::{self, Level};
use crate::scoreboard::Scoreboard;
use crate::status::{self, Page, Pages};

/// Connections served at once; more wait in the socket's queue.
const MAX_CONNS: usize = 16;
/// A request must arrive and its answer leave within this.
const DEADLINE: Duration = Duration::from_secs(5);
/// A status request is a few hundred bytes of params.
const MAX_INPUT: usize = 64 * 1024;

struct Conn {
    fd: OwnedFd,
    conn: Connection,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    deadline: Instant,
}

/// One pool's status socket and its connections in flight.
pub struct StatusServer {
    /// The listening socket (non-blocking, the master's only).
    pub listener: Listener,
    pages: Pages,
    conns: Vec<Conn>,
}

/// What a descriptor of the status server is waiting for.
pub enum Interest {
    /// The listening socket.
    Accept,
    /// Connection `i`, to read (false) or write (true).
    Conn(usize, bool),
}

impl StatusServer {
    /// Serves `listener`, which is made non-blocking.
    pub fn new(listener: Listener, pages: Pages) -> StatusServer {
        let _ = nix::fcntl::fcntl(
            listener.fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        StatusServer {
            listener,
            pages,
            conns: Vec::new(),
        }
    }

    /// The descriptors to poll and what for.
    pub fn interests(&self) -> Vec<(BorrowedFd<'_>, Interest)> {
        let mut v = Vec::with_capacity(1 + self.conns.len());
        if self.conns.len() < MAX_CONNS {
            v.push((self.listener.fd.as_fd(), Interest::Accept));
        }
        for (i, c) in self.conns.iter().enumerate() {
            v.push((c.fd.as_fd(), Interest::Conn(i, !c.output.is_empty())));
        }
        v
    }

    /// The earliest connection deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|c| c.deadline).min()
    }

    /// Accepts what is waiting.
    pub fn accept(&mut self) {
        while self.conns.len() < MAX_CONNS {
            match crate::sys::accept_nonblocking(self.listener.fd.as_raw_fd()) {
                Ok(fd) => self.conns.push(Conn {
                    fd,
                    conn: Connection::new(Limits::default()),
                    input: Vec::new(),
                    output: Vec::new(),
                    written: 0,
                    deadline: Instant::now() + DEADLINE,
                }),
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                Err(_) => break,
            }
        }
    }

    /// Reads from or writes to connection `i`.
    pub fn ready(&mut self, i: usize, pool: &str, board: &Scoreboard) {
        let pages = &self.pages;
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        if c.output.is_empty() {
            let mut buf = [0u8; 4096];
            match nix::unistd::read(c.fd.as_raw_fd(), &mut buf) {
                Ok(0) => c.deadline = Instant::now(),
                Ok(n) if c.input.len() + n <= MAX_INPUT => {
                    c.input.extend_from_slice(&buf[..n]);
                    answer(c, pool, pages, board);
                }
                Ok(_) => c.deadline = Instant::now(),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(_) => c.deadline = Instant::now(),
            }
        }
        if !c.output.is_empty() {
            match nix::unistd::write(&c.fd, &c.output[c.written..]) {
                Ok(n) => {
                    c.written += n;
                    if c.written >= c.output.len() {
                        // answered: done with this connection
                        c.deadline = Instant::now();
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(_) => c.deadline = Instant::now(),
            }
        }
    }

    /// Closes finished connections and those past their deadline.
    pub fn sweep(&mut self, now: Instant) {
        self.conns.retain(|c| c.deadline > now);
    }
}

/// Feeds the input to the protocol; once the params are complete, the whole answer
/// goes to the output buffer.
fn answer(c: &mut Conn, pool: &str, pages: &Pages, board: &Scoreboard) {
    let mut consumed = 0;
    loop {
        let step = c.conn.handle_input(&c.input[consumed..]);
        let (event, used) = match step {
            Ok(Some(x)) => x,
            Ok(None) => break,
            Err(e) => {
                logging::log(
                    Level::Warning,
                    &format!("[pool {pool}] closing a status connection: {e}"),
                );
                c.deadline = Instant::now();
                return;
            }
        };
        consumed += used;
        let Event::ParamsComplete(params) = event else {
            continue;
        };
        let Some(id) = c.conn.request_id() else {
            return;
        };
        let get = |k: &[u8]| params.get(k).unwrap_or_default();
        let uri = crate::cgi::request_path(params.get(b"SCRIPT_NAME"), params.get(b"REQUEST_URI"));
        let req = status::Request {
            uri,
            query: get(b"QUERY_STRING"),
            method: get(b"REQUEST_METHOD"),
        };
        // only the pages live here; the paths default to php-fpm's usual ones
        let page = pages.which(uri).unwrap_or(Page::NotFound);
        let body = status::respond(page, &req, pages, pool, board);
        board
            .header()
            .accepted_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut out = Vec::with_capacity(body.len() + 64);
        encode_stream(RecordType::Stdout, id, &body, &mut out);
        encode_stream_end(RecordType::Stdout, id, &mut out);
        encode_end_request(id, 0, ProtocolStatus::RequestComplete, &mut out);
        c.output = out;
        return;
    }
    c.input.drain(..consumed);
}
