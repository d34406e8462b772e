//! What the worker's SIGTERM handler needs to know about the request in flight, kept
//! in atomics because a signal handler may read nothing else. When the master ends a
//! request (request_terminate_timeout, or a stop that could not wait), the handler
//! answers the web server with a complete 5xx response if PHP had not sent a byte
//! yet, instead of leaving it a connection that closes without an answer.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

/// The client connection of the current request, -1 between requests.
pub static CONN_FD: AtomicI32 = AtomicI32::new(-1);
/// Its FastCGI request id.
pub static REQUEST_ID: AtomicU32 = AtomicU32::new(0);
/// Some of the response already reached the socket: a 5xx can no longer be sent.
pub static RESPONSE_STARTED: AtomicBool = AtomicBool::new(false);
/// A write on the connection is in progress: a record may be half sent.
pub static IN_WRITE: AtomicBool = AtomicBool::new(false);
/// Monotonic µs when the request started.
pub static STARTED_US: AtomicU64 = AtomicU64::new(0);
/// The pool's request_terminate_timeout in µs (0 = off).
pub static TERMINATE_TIMEOUT_US: AtomicU64 = AtomicU64::new(0);
/// Bytes of the request peeked but still queued on the connection (at most
/// [`UNREAD_MAX`]): the handler reads them before the process dies, because a unix
/// socket closed with unread data makes the web server's next read fail with
/// ECONNRESET instead of seeing the end of the stream.
pub static UNREAD: AtomicU32 = AtomicU32::new(0);
/// The most [`UNREAD`] can hold (the worker peeks no more than this).
pub const UNREAD_MAX: usize = 4096;

/// Marks the start of a request on `fd`.
pub fn begin(fd: i32, request_id: u16, started_us: u64) {
    REQUEST_ID.store(u32::from(request_id), Ordering::Relaxed);
    STARTED_US.store(started_us, Ordering::Relaxed);
    RESPONSE_STARTED.store(false, Ordering::Relaxed);
    CONN_FD.store(fd, Ordering::Release);
}

/// Marks the end of the request: the handler has nothing to answer.
pub fn end() {
    CONN_FD.store(-1, Ordering::Release);
}

const TIMEOUT_BODY: &[u8] =
    b"Status: 504 Gateway Timeout\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n504 Gateway Timeout\n";
const STOPPED_BODY: &[u8] = b"Status: 503 Service Unavailable\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n503 Service Unavailable\n";

/// Room for [`emergency_response`].
pub const EMERGENCY_LEN: usize = 256;

fn header(out: &mut [u8], at: usize, kind: u8, id: u16, len: u16) -> usize {
    let [id_hi, id_lo] = id.to_be_bytes();
    let [len_hi, len_lo] = len.to_be_bytes();
    out[at..at + 8].copy_from_slice(&[1, kind, id_hi, id_lo, len_hi, len_lo, 0, 0]);
    at + 8
}

/// Encodes, without allocating (it runs in a signal handler), a whole FastCGI
/// answer for request `id`: a 504 when the request outlived its timeout, else a
/// 503. Returns the number of bytes written into `out`.
pub fn emergency_response(out: &mut [u8; EMERGENCY_LEN], id: u16, timed_out: bool) -> usize {
    let body = if timed_out {
        TIMEOUT_BODY
    } else {
        STOPPED_BODY
    };
    let mut at = header(out, 0, 6, id, body.len() as u16);
    out[at..at + body.len()].copy_from_slice(body);
    at += body.len();
    at = header(out, at, 6, id, 0);
    at = header(out, at, 3, id, 8);
    out[at..at + 8].copy_from_slice(&[0; 8]);
    at + 8
}

/// The connection and how many peeked bytes the SIGTERM handler must read off it.
pub fn pending_unread() -> Option<(i32, usize)> {
    let n = UNREAD.swap(0, Ordering::Relaxed) as usize;
    let fd = CONN_FD.load(Ordering::Acquire);
    (fd >= 0 && n > 0).then_some((fd, n.min(UNREAD_MAX)))
}

/// What the SIGTERM handler should send, if anything: the fd and bytes to write.
pub fn pending_answer(now_us: u64, out: &mut [u8; EMERGENCY_LEN]) -> Option<(i32, usize)> {
    let fd = CONN_FD.load(Ordering::Acquire);
    if fd < 0 || IN_WRITE.load(Ordering::Relaxed) || RESPONSE_STARTED.load(Ordering::Relaxed) {
        return None;
    }
    let timeout = TERMINATE_TIMEOUT_US.load(Ordering::Relaxed);
    let elapsed = now_us.saturating_sub(STARTED_US.load(Ordering::Relaxed));
    // the master's clock and ours agree to well under this margin
    let timed_out = timeout > 0 && elapsed + 250_000 >= timeout;
    let id = REQUEST_ID.load(Ordering::Relaxed) as u16;
    Some((fd, emergency_response(out, id, timed_out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::client::ResponseDecoder;

    #[test]
    fn the_emergency_answer_is_a_complete_fastcgi_response() {
        let mut buf = [0u8; EMERGENCY_LEN];
        let n = emergency_response(&mut buf, 7, true);
        let resp = ResponseDecoder::new()
            .push(&buf[..n])
            .expect("valid records")
            .expect("complete response");
        assert_eq!(resp.request_id, 7);
        let (headers, body) = resp.split_headers();
        assert!(headers.contains(&("Status".into(), "504 Gateway Timeout".into())));
        assert_eq!(body, b"504 Gateway Timeout\n");
        let n = emergency_response(&mut buf, 1, false);
        let resp = ResponseDecoder::new()
            .push(&buf[..n])
            .expect("valid")
            .expect("complete");
        assert_eq!(resp.split_headers().0[0].1, "503 Service Unavailable");
    }
}
