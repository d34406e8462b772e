//! The transport floor: a FastCGI responder with no PHP behind it, built on the
//! project's sans-IO `Connection`, that answers every request with the bytes hello.php
//! produces. What a request costs through it (load generator, kernel, one read and one
//! write per request) is what no PHP server can go below on this machine. Like
//! php-fpm-rs's worker, it peeks a request's first bytes and consumes them only once the
//! answer is written, so the client is not woken for the write space in between.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use php_fpm_rs::fastcgi::record::{ProtocolStatus, RecordType};
use php_fpm_rs::fastcgi::{
    encode_end_request, encode_stream, encode_stream_end, Connection, Event, Limits,
};

const BODY: &[u8] = b"Content-type: text/html; charset=UTF-8\r\n\r\nHello, world!\n";

/// Consumes `pending` bytes peeked earlier (they are still queued in the kernel).
fn settle(stream: &mut UnixStream, pending: &mut usize, scratch: &mut [u8]) -> Result<()> {
    while *pending > 0 {
        let want = (*pending).min(scratch.len());
        let n = stream.read(&mut scratch[..want])?;
        anyhow::ensure!(n > 0, "peeked bytes vanished");
        *pending -= n;
    }
    Ok(())
}

/// Serves `socket` for at most `max_secs` seconds, one connection at a time.
pub fn serve(socket: &Path, max_secs: u64) -> Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener =
        UnixListener::bind(socket).with_context(|| format!("bind {}", socket.display()))?;
    // bounded in time: a watchdog ends the process, whatever accept() is doing
    let sock = socket.to_owned();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(max_secs));
        let _ = std::fs::remove_file(&sock);
        std::process::exit(0);
    });
    let mut bufs = Buffers {
        buf: vec![0u8; 70_000],
        scratch: vec![0u8; 16 * 1024],
        out: Vec::with_capacity(4096),
    };
    loop {
        let (stream, _) = listener.accept()?;
        // a client that goes away mid-request (wrk stopping) ends its connection only
        if let Err(e) = connection(stream, &mut bufs) {
            eprintln!("floor: connection closed: {e}");
        }
    }
}

struct Buffers {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    out: Vec<u8>,
}

/// Answers every request of one connection.
fn connection(mut stream: UnixStream, b: &mut Buffers) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let (buf, scratch, out) = (&mut b.buf, &mut b.scratch, &mut b.out);
    out.clear();
    let mut conn = Connection::new(Limits::default());
    let (mut start, mut end, mut pending) = (0usize, 0usize, 0usize);
    loop {
        while let Some((event, used)) = conn.handle_input(&buf[start..end])? {
            start += used;
            if let Event::StdinEnd = event {
                let id = conn.request_id().unwrap_or(1);
                encode_stream(RecordType::Stdout, id, BODY, out);
                encode_stream_end(RecordType::Stdout, id, out);
                encode_end_request(id, 0, ProtocolStatus::RequestComplete, out);
                stream.write_all(out)?;
                out.clear();
                settle(&mut stream, &mut pending, scratch)?;
                if !conn.keep_conn() {
                    return Ok(());
                }
                conn.end_request();
            }
        }
        settle(&mut stream, &mut pending, scratch)?;
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        let got = if end == 0 {
            nix::sys::socket::recv(
                stream.as_raw_fd(),
                &mut buf[end..],
                nix::sys::socket::MsgFlags::MSG_PEEK,
            )
            .inspect(|&n| pending = n)
            .map_err(std::io::Error::from)
        } else {
            stream.read(&mut buf[end..])
        };
        match got? {
            0 => return Ok(()),
            n => end += n,
        }
    }
}
