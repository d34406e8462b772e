//! The transport floor: a FastCGI responder with no PHP behind it, built on the
//! project's sans-IO `Connection`, that answers every request with the bytes hello.php
//! produces. What a request costs through it (load generator, kernel, one read and one
//! write per request) is what no PHP server can go below on this machine.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use php_fpm_rs::fastcgi::record::{ProtocolStatus, RecordType};
use php_fpm_rs::fastcgi::{
    encode_end_request, encode_stream, encode_stream_end, Connection, Event, Limits,
};

const BODY: &[u8] = b"Content-type: text/html; charset=UTF-8\r\n\r\nHello, world!\n";

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
    let mut buf = vec![0u8; 70_000];
    let mut out = Vec::with_capacity(4096);
    loop {
        let (mut stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut conn = Connection::new(Limits::default());
        let (mut start, mut end) = (0usize, 0usize);
        'conn: loop {
            while let Some((event, used)) = conn.handle_input(&buf[start..end])? {
                start += used;
                if let Event::StdinEnd = event {
                    let id = conn.request_id().unwrap_or(1);
                    encode_stream(RecordType::Stdout, id, BODY, &mut out);
                    encode_stream_end(RecordType::Stdout, id, &mut out);
                    encode_end_request(id, 0, ProtocolStatus::RequestComplete, &mut out);
                    stream.write_all(&out)?;
                    out.clear();
                    if !conn.keep_conn() {
                        break 'conn;
                    }
                    conn.end_request();
                }
            }
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            match stream.read(&mut buf[end..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => end += n,
            }
        }
    }
}
