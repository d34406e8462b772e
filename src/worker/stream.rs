//! One FastCGI transport connection as the worker sees it: buffered reads that always
//! hold a whole record, and the response side (STDOUT framing, STDERR, END_REQUEST)
//! that PHP's output goes through. Small responses leave in a single write.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{shutdown, Shutdown};

use crate::fastcgi::{
    encode_end_request, encode_stream, encode_stream_end, Connection, Event, ProtocolError,
    ProtocolStatus, RecordType, HEADER_LEN, MAX_CONTENT_LEN, VERSION_1,
};
use crate::php::RequestIo;
use crate::scoreboard::Slot;
use crate::sys;

use super::inflight;
use std::sync::atomic::Ordering;

/// Room for the largest record (header, 65535 content bytes, 255 padding) and then some.
/// A worker keeps it once a large record went through, so it is not made bigger:
/// twice this size read no fewer times per 1 MiB body (the peer's writes set the pace).
const READ_BUF: usize = HEADER_LEN + MAX_CONTENT_LEN + 255 + FIRST_BUF;
/// What a connection starts with: a whole nginx request (params, small body) fits, and
/// a worker that never sees a large record never pays for `READ_BUF` of private memory.
const FIRST_BUF: usize = 16 * 1024;
/// Below this much free room the buffer grows to `READ_BUF` (a record may not fit).
const GROW_AT: usize = 4096;
/// The response buffer's first capacity.
const OUT_FIRST: usize = 16 * 1024;
/// The most of a request that is peeked (see [`Transport::new`]): any nginx GET fits;
/// of a larger request (a body), only this much is read twice.
const PEEK_MAX: usize = inflight::UNREAD_MAX;
/// Raw output is framed into STDOUT records once this much has accumulated.
const FRAME_AT: usize = 0xfff8;

/// Why serving a connection stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The web server broke the protocol; the connection is closed.
    #[error("malformed FastCGI input: {0}")]
    Protocol(#[from] ProtocolError),
    /// The peer closed in the middle of a record or request.
    #[error("connection closed by the peer in the middle of a request")]
    Truncated,
    /// A socket error.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
}

/// Buffered reader of whole records from a socket.
pub struct Transport {
    fd: OwnedFd,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Encoded bytes waiting to be written.
    pub out: Vec<u8>,
    /// At least one request was answered on this connection (it is being kept).
    pub kept: bool,
    /// A request's first bytes are peeked, not consumed, until its response is out.
    defer_consume: bool,
    /// (offset in `buf`, length) of bytes that were peeked and are still queued in the
    /// kernel.
    peeked: Option<(usize, usize)>,
}

/// Reads once; EINTR comes back to the caller, who may have been told to stop.
fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(fd), buf).map_err(io::Error::from)
}

fn write_all_fd(fd: &OwnedFd, data: &[u8]) -> io::Result<()> {
    inflight::IN_WRITE.store(true, Ordering::Relaxed);
    let r = write_all_fd_inner(fd, data);
    inflight::IN_WRITE.store(false, Ordering::Relaxed);
    r
}

fn write_all_fd_inner(fd: &OwnedFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd.as_fd(), data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

thread_local! {
    /// The buffers of the last closed connection, reused by the next one: a worker serves
    /// one connection at a time, and zeroing a fresh read buffer (up to 128 KiB) for
    /// every connection cost more than the rest of the FastCGI layer.
    static SPARE: Cell<Option<(Vec<u8>, Vec<u8>)>> = const { Cell::new(None) };
}

impl Transport {
    /// Wraps an accepted connection. With `defer_consume` (unix sockets), the bytes of a
    /// request that arrive at once are peeked and only consumed once its response is
    /// written: consuming them wakes the web server waiting on its socket (the kernel
    /// signals write space), and that wake-up would come while the script runs, for
    /// nothing. On TCP, unread bytes at close would turn the FIN into a reset.
    pub fn new(fd: OwnedFd, defer_consume: bool) -> Self {
        let (buf, out) = SPARE
            .take()
            .unwrap_or_else(|| (vec![0; FIRST_BUF], Vec::with_capacity(OUT_FIRST)));
        Transport {
            fd,
            buf,
            start: 0,
            end: 0,
            out,
            kept: false,
            defer_consume,
            peeked: None,
        }
    }

    /// Consumes the bytes peeked earlier. They are read over the same place in the
    /// buffer, which still holds them: nothing moves buffered bytes before this runs.
    pub fn settle(&mut self) -> io::Result<()> {
        let Some((at, len)) = self.peeked.take() else {
            return Ok(());
        };
        inflight::UNREAD.store(0, Ordering::Relaxed);
        let mut done = 0;
        while done < len {
            match read_fd(&self.fd, &mut self.buf[at + done..at + len]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads more bytes; `Ok(false)` on EOF.
    fn fill(&mut self) -> io::Result<bool> {
        self.settle()?;
        if self.start > 0
            && (self.start == self.end
                || self.buf.len() - self.end < HEADER_LEN + MAX_CONTENT_LEN + 255)
        {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < GROW_AT && self.buf.len() < READ_BUF {
            // an incomplete record fills what is left: make room for the largest one
            self.buf.resize(READ_BUF, 0);
        }
        let n = if self.defer_consume && self.start == self.end {
            // a request's first bytes: everything that is there, left queued
            let room = (self.buf.len() - self.end).min(PEEK_MAX);
            let n = nix::sys::socket::recv(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                &mut self.buf[self.end..self.end + room],
                nix::sys::socket::MsgFlags::MSG_PEEK,
            )
            .map_err(io::Error::from)?;
            if n > 0 {
                self.peeked = Some((self.end, n));
                // `n` <= PEEK_MAX, far below u32::MAX
                inflight::UNREAD.store(n as u32, Ordering::Relaxed);
            }
            n
        } else {
            read_fd(&self.fd, &mut self.buf[self.end..])?
        };
        self.end += n;
        Ok(n > 0)
    }

    /// Whether the connection sits between requests with nothing of the next one read.
    fn between_requests(&self, conn: &Connection) -> bool {
        self.start == self.end && conn.request_id().is_none()
    }

    /// Whether a stop may close this connection now: it was kept after an answered
    /// request and nothing of the next one arrived. A fresh connection is always
    /// served: the web server already sent, or is sending, its request.
    fn may_close_for_stop(&self, conn: &Connection) -> bool {
        self.kept && self.between_requests(conn)
    }

    /// Next event from the connection, reading as needed. `None` on a clean EOF
    /// between requests.
    ///
    /// The returned range locates `Stdin` data inside the internal buffer, so the
    /// caller can copy it out in pieces without holding a borrow.
    pub fn next_event(
        &mut self,
        conn: &mut Connection,
    ) -> Result<Option<(OwnedEvent, std::ops::Range<usize>)>, StreamError> {
        loop {
            let base = self.buf.as_ptr() as usize;
            match conn.handle_input(&self.buf[self.start..self.end])? {
                Some((event, consumed)) => {
                    let (owned, range) = match event {
                        Event::BeginRequest {
                            request_id,
                            keep_conn,
                        } => (
                            OwnedEvent::Begin {
                                request_id,
                                keep_conn,
                            },
                            0..0,
                        ),
                        Event::ParamsComplete(p) => (OwnedEvent::Params(p), 0..0),
                        Event::Stdin(data) => {
                            let off = data.as_ptr() as usize - base;
                            (OwnedEvent::Stdin, off..off + data.len())
                        }
                        Event::StdinEnd => (OwnedEvent::StdinEnd, 0..0),
                        Event::AbortRequest => (OwnedEvent::Abort, 0..0),
                        Event::Management | Event::Ignored => (OwnedEvent::Nothing, 0..0),
                    };
                    self.start += consumed;
                    if conn.poll_transmit(&mut self.out) {
                        self.send()?;
                    }
                    return Ok(Some((owned, range)));
                }
                None => match self.fill() {
                    Ok(true) => {}
                    Ok(false) if self.between_requests(conn) => return Ok(None),
                    Ok(false) => return Err(StreamError::Truncated),
                    // told to stop while a kept connection waits for its next request:
                    // close it now rather than when the web server sends one more
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                        if super::STOP.load(Ordering::Relaxed) && self.may_close_for_stop(conn) {
                            return Ok(None);
                        }
                    }
                    Err(e) => return Err(e.into()),
                },
            }
        }
    }

    /// The connection's descriptor (for the SIGTERM handler's last answer).
    pub fn raw_fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }

    /// Bytes of the internal buffer (for `Stdin` ranges).
    pub fn slice(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Writes everything in `out`.
    pub fn send(&mut self) -> io::Result<()> {
        let r = write_all_fd(&self.fd, &self.out);
        self.out.clear();
        r
    }

    /// Shuts the connection down in both directions (the response is complete).
    pub fn shutdown(&mut self) {
        let _ = self.settle();
        let _ = shutdown(std::os::fd::AsRawFd::as_raw_fd(&self.fd), Shutdown::Both);
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        let _ = self.settle();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        if out.capacity() > 1 << 20 {
            // only a huge STDERR message gets here: not kept even until the worker idles
            out = Vec::with_capacity(OUT_FIRST);
        }
        SPARE.set(Some((std::mem::take(&mut self.buf), out)));
    }
}

/// Whether the buffers kept for the next connection grew beyond what a small request
/// needs (a large body or response went through).
pub fn holds_grown_buffers() -> bool {
    let spare = SPARE.take();
    let grown = spare
        .as_ref()
        .is_some_and(|(buf, out)| buf.len() > FIRST_BUF || out.capacity() > OUT_FIRST);
    SPARE.set(spare);
    grown
}

/// Gives back what large requests grew: called once the worker has been idle a while,
/// so that busy workers keep their buffers (no regrowth, no page faults per request)
/// and idle ones hold what php-fpm's do. The heap's free pages go back to the kernel.
pub fn release_grown_buffers() {
    if holds_grown_buffers() {
        SPARE.set(Some((vec![0; FIRST_BUF], Vec::with_capacity(OUT_FIRST))));
        sys::release_free_heap();
    }
}

/// An [`Event`] detached from the read buffer.
#[derive(Debug)]
pub enum OwnedEvent {
    /// BEGIN_REQUEST.
    Begin {
        /// The request id.
        request_id: u16,
        /// FCGI_KEEP_CONN.
        keep_conn: bool,
    },
    /// All params.
    Params(crate::fastcgi::Params),
    /// Body bytes (see the range).
    Stdin,
    /// End of the body.
    StdinEnd,
    /// ABORT_REQUEST.
    Abort,
    /// Absorbed or answered by the protocol layer.
    Nothing,
}

/// The response side of one request, handed to PHP as its [`RequestIo`].
pub struct Exchange<'a> {
    /// The connection's transport.
    pub transport: &'a mut Transport,
    /// The protocol state.
    pub conn: &'a mut Connection,
    request_id: u16,
    /// Where the open STDOUT record's header sits in `transport.out`: output is copied
    /// once, straight behind it, and the header is filled in when the record closes.
    open: Option<usize>,
    body: std::ops::Range<usize>,
    /// The body's end (or an abort) was seen.
    pub body_done: bool,
    /// The web server aborted the request.
    pub aborted: bool,
    /// END_REQUEST was sent (fastcgi_finish_request or the end).
    pub finished: bool,
    /// Writing failed or the peer went away.
    pub client_gone: bool,
    /// A protocol error seen while reading the body, to close the connection after.
    pub error: Option<StreamError>,
    stderr_started: bool,
    /// Send PHP messages to the web server as FastCGI STDERR (fastcgi.logging).
    pub stderr_to_client: bool,
    /// Response bytes taken from PHP.
    pub bytes_out: u64,
    /// The worker's scoreboard slot, told when the script finishes the request early.
    pub slot: Option<&'a Slot>,
    /// Where `fpm_get_status()` reads from.
    pub status: Option<StatusSource<'a>>,
}

/// The pool's scoreboard and names, for `fpm_get_status()`.
#[derive(Clone, Copy)]
pub struct StatusSource<'a> {
    /// The pool's scoreboard.
    pub board: &'a crate::scoreboard::Scoreboard,
    /// The pool's name.
    pub pool: &'a str,
    /// Its page settings (the process manager's name).
    pub pages: &'a crate::status::Pages,
}

impl<'a> Exchange<'a> {
    /// Starts the response of request `request_id`.
    pub fn new(transport: &'a mut Transport, conn: &'a mut Connection, request_id: u16) -> Self {
        Exchange {
            transport,
            conn,
            request_id,
            open: None,
            body: 0..0,
            body_done: false,
            aborted: false,
            finished: false,
            client_gone: false,
            error: None,
            stderr_started: false,
            stderr_to_client: true,
            bytes_out: 0,
            slot: None,
            status: None,
        }
    }

    /// Closes the open STDOUT record: fills in its header and pads it to 8 bytes.
    fn frame_pending(&mut self) {
        let Some(at) = self.open.take() else {
            return;
        };
        let out = &mut self.transport.out;
        let len = out.len() - at - HEADER_LEN;
        let Ok(len16) = u16::try_from(len) else {
            // write() closes records at FRAME_AT bytes, far below u16::MAX
            unreachable!("STDOUT record of {len} bytes");
        };
        let pad = (8 - len % 8) % 8;
        let [id1, id0] = self.request_id.to_be_bytes();
        let [len1, len0] = len16.to_be_bytes();
        // `pad` is below 8, so the cast is lossless
        let header = [
            VERSION_1,
            RecordType::Stdout as u8,
            id1,
            id0,
            len1,
            len0,
            pad as u8,
            0,
        ];
        out[at..at + HEADER_LEN].copy_from_slice(&header);
        out.resize(out.len() + pad, 0);
    }

    fn send(&mut self) -> bool {
        if self.client_gone {
            self.transport.out.clear();
            return false;
        }
        if self.transport.send().is_err() {
            self.client_gone = true;
        } else {
            inflight::RESPONSE_STARTED.store(true, Ordering::Relaxed);
        }
        !self.client_gone
    }

    /// Ends the response: the rest of STDOUT, the stream ends and END_REQUEST, in one write.
    pub fn end(&mut self) -> bool {
        if self.finished {
            return false;
        }
        self.finished = true;
        self.frame_pending();
        let out = &mut self.transport.out;
        if self.stderr_started {
            encode_stream_end(RecordType::Stderr, self.request_id, out);
        }
        encode_stream_end(RecordType::Stdout, self.request_id, out);
        encode_end_request(self.request_id, 0, ProtocolStatus::RequestComplete, out);
        self.send();
        // the response is out: now the request's bytes may leave the socket
        if let Err(e) = self.transport.settle() {
            self.error.get_or_insert(e.into());
        }
        true
    }

    /// Sends one message on the FastCGI STDERR stream, `; `-separated from the previous
    /// one as php-fpm does (nginx logs it as "FastCGI sent in stderr").
    pub fn stderr_message(&mut self, prefix: &[u8], msg: &[u8]) {
        if !self.stderr_to_client || self.finished || self.client_gone || msg.is_empty() {
            return;
        }
        // keep STDOUT and STDERR in the order they were produced
        self.frame_pending();
        let mut line = Vec::with_capacity(prefix.len() + msg.len() + 2);
        if self.stderr_started {
            line.extend_from_slice(b"; ");
        }
        line.extend_from_slice(prefix);
        line.extend_from_slice(msg);
        self.stderr_started = true;
        encode_stream(
            RecordType::Stderr,
            self.request_id,
            &line,
            &mut self.transport.out,
        );
    }

    /// Reads and drops the rest of the body so the next request on a kept connection
    /// starts at a record boundary. Nothing is copied.
    pub fn drain_body(&mut self) {
        self.body = 0..0;
        while !self.client_gone && self.next_body_chunk() {
            self.body = 0..0;
        }
    }

    /// Makes the next body chunk current (`self.body`); `false` at the end of the body or
    /// once reading it failed.
    fn next_body_chunk(&mut self) -> bool {
        // management replies may be written while the body is read: close the open
        // STDOUT record first so they land between records, never inside one
        self.frame_pending();
        while self.body.is_empty() {
            if self.body_done || self.error.is_some() {
                return false;
            }
            match self.transport.next_event(self.conn) {
                Ok(Some((OwnedEvent::Stdin, range))) => self.body = range,
                Ok(Some((OwnedEvent::StdinEnd, _))) => self.body_done = true,
                Ok(Some((OwnedEvent::Abort, _))) => {
                    self.body_done = true;
                    self.aborted = true;
                }
                Ok(Some((OwnedEvent::Nothing, _))) => {}
                Ok(Some((other, _))) => {
                    self.error = Some(StreamError::Protocol(ProtocolError::UnexpectedRecord {
                        record_type: match other {
                            OwnedEvent::Begin { .. } => RecordType::BeginRequest as u8,
                            _ => RecordType::Params as u8,
                        },
                        state: "while reading the request body",
                    }));
                }
                Ok(None) => self.error = Some(StreamError::Truncated),
                Err(e) => self.error = Some(e),
            }
        }
        true
    }
}

impl RequestIo for Exchange<'_> {
    fn write(&mut self, mut data: &[u8]) -> bool {
        if self.finished {
            // after fastcgi_finish_request() output has nowhere to go
            return true;
        }
        if self.client_gone {
            return false;
        }
        self.bytes_out += data.len() as u64;
        while !data.is_empty() {
            let out = &mut self.transport.out;
            let at = *self.open.get_or_insert_with(|| {
                out.extend_from_slice(&[0; HEADER_LEN]);
                out.len() - HEADER_LEN
            });
            let have = out.len() - at - HEADER_LEN;
            let n = (FRAME_AT - have).min(data.len());
            out.extend_from_slice(&data[..n]);
            data = &data[n..];
            if have + n == FRAME_AT {
                // a full record leaves at once, as php-fpm's do
                self.frame_pending();
                if !self.send() {
                    return false;
                }
            }
        }
        true
    }

    fn flush(&mut self) -> bool {
        if self.finished {
            return true;
        }
        self.frame_pending();
        if self.transport.out.is_empty() {
            return !self.client_gone;
        }
        self.send()
    }

    fn read_body(&mut self, buf: &mut [u8]) -> usize {
        if self.body.is_empty() && (self.finished && self.client_gone || !self.next_body_chunk()) {
            return 0;
        }
        let n = buf.len().min(self.body.len());
        let start = self.body.start;
        buf[..n].copy_from_slice(&self.transport.slice(start..start + n)[..n]);
        self.body.start += n;
        n
    }

    fn log_message(&mut self, msg: &[u8]) {
        self.stderr_message(b"PHP message: ", msg);
    }

    fn status_json(&mut self) -> Option<Vec<u8>> {
        let s = self.status?;
        Some(crate::status::export_json(s.pool, s.pages, s.board).into_bytes())
    }

    fn finish_request(&mut self) -> bool {
        let ended = self.end();
        if let Some(slot) = self.slot {
            slot.mark_finished_early();
        }
        if ended && !self.conn.keep_conn() {
            self.transport.shutdown();
        }
        ended
    }
}
