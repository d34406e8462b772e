//! Web-server side helpers for tests and benchmarks: encode requests, decode responses.

use super::encoder::{encode_record, encode_stream, encode_stream_end};
use super::error::ProtocolError;
use super::params::encode_pair;
use super::record::{Record, RecordType, Role, FLAG_KEEP_CONN};

/// Builds the full byte stream of one request.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    request_id: u16,
    keep_conn: bool,
    role: Role,
    params: Vec<u8>,
    stdin: Vec<u8>,
}

impl RequestBuilder {
    /// Starts a RESPONDER request.
    pub fn new(request_id: u16, keep_conn: bool) -> Self {
        Self {
            request_id,
            keep_conn,
            role: Role::Responder,
            params: Vec::new(),
            stdin: Vec::new(),
        }
    }

    /// Overrides the role, to exercise rejection paths.
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// Adds one name-value pair.
    pub fn param(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        encode_pair(name.as_ref(), value.as_ref(), &mut self.params);
        self
    }

    /// Appends request body bytes.
    pub fn stdin(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.stdin.extend_from_slice(bytes.as_ref());
        self
    }

    /// Appends BEGIN_REQUEST, PARAMS records, empty PARAMS, STDIN records and empty STDIN.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let [r1, r0] = (self.role as u16).to_be_bytes();
        let flags = if self.keep_conn { FLAG_KEEP_CONN } else { 0 };
        let body = [r1, r0, flags, 0, 0, 0, 0, 0];
        encode_record(RecordType::BeginRequest, self.request_id, &body, out);
        encode_stream(RecordType::Params, self.request_id, &self.params, out);
        encode_stream_end(RecordType::Params, self.request_id, out);
        encode_stream(RecordType::Stdin, self.request_id, &self.stdin, out);
        encode_stream_end(RecordType::Stdin, self.request_id, out);
    }
}

/// One complete response as seen by the web server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Request id of the response records.
    pub request_id: u16,
    /// Concatenated STDOUT content.
    pub stdout: Vec<u8>,
    /// Concatenated STDERR content.
    pub stderr: Vec<u8>,
    /// END_REQUEST application status.
    pub app_status: u32,
    /// END_REQUEST protocol status byte.
    pub protocol_status: u8,
    /// Number of non-empty STDOUT records.
    pub stdout_records: usize,
    /// Largest STDOUT record content length.
    pub max_stdout_record_len: usize,
}

impl Response {
    /// Splits stdout into CGI headers and body at the first blank line (`\r\n` or `\n`).
    ///
    /// Without a blank line there is no header block, so everything is body.
    pub fn split_headers(&self) -> (Vec<(String, String)>, &[u8]) {
        let mut headers = Vec::new();
        let mut pos = 0;
        loop {
            let rest = self.stdout.get(pos..).unwrap_or_default();
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                return (Vec::new(), &self.stdout);
            };
            let line = rest.get(..nl).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let after = rest.get(nl + 1..).unwrap_or_default();
            if line.is_empty() {
                return (headers, after);
            }
            let text = String::from_utf8_lossy(line);
            let (name, value) = text.split_once(':').unwrap_or((&text, ""));
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
            pos += nl + 1;
        }
    }
}

/// Incremental response decoder; keeps leftover bytes for the next response.
#[derive(Debug, Clone, Default)]
pub struct ResponseDecoder {
    buf: Vec<u8>,
    current: Option<Response>,
}

impl ResponseDecoder {
    /// Creates an empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns a response once its END_REQUEST is seen.
    ///
    /// At most one response is returned per call; call again with `&[]` to
    /// drain a second response already buffered.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<Response>, ProtocolError> {
        self.buf.extend_from_slice(bytes);
        let mut pos = 0;
        let result = loop {
            let Some((record, used)) = Record::parse(self.buf.get(pos..).unwrap_or_default())?
            else {
                break Ok(None);
            };
            pos += used;
            if let Some(done) = Self::apply(&mut self.current, record)? {
                break Ok(Some(done));
            }
        };
        self.buf.drain(..pos);
        result
    }

    fn apply(
        current: &mut Option<Response>,
        record: Record<'_>,
    ) -> Result<Option<Response>, ProtocolError> {
        let h = record.header;
        let unexpected = |state| ProtocolError::UnexpectedRecord {
            record_type: h.record_type,
            state,
        };
        if h.request_id == 0 {
            return Err(unexpected("with request id 0 in a response stream"));
        }
        let resp = current.get_or_insert_with(|| Response {
            request_id: h.request_id,
            ..Response::default()
        });
        if resp.request_id != h.request_id {
            return Err(ProtocolError::WrongRequestId {
                expected: resp.request_id,
                got: h.request_id,
            });
        }
        match RecordType::from_u8(h.record_type) {
            Some(RecordType::Stdout) => {
                if !record.content.is_empty() {
                    resp.stdout_records += 1;
                    resp.max_stdout_record_len =
                        resp.max_stdout_record_len.max(record.content.len());
                }
                resp.stdout.extend_from_slice(record.content);
            }
            Some(RecordType::Stderr) => resp.stderr.extend_from_slice(record.content),
            Some(RecordType::EndRequest) => {
                let Some(&[a, b, c, d, status, ..]) = record
                    .content
                    .first_chunk::<5>()
                    .filter(|_| record.content.len() == 8)
                else {
                    return Err(ProtocolError::BadEndRequest {
                        length: record.content.len(),
                    });
                };
                let mut done = current.take().unwrap_or_default();
                done.app_status = u32::from_be_bytes([a, b, c, d]);
                done.protocol_status = status;
                return Ok(Some(done));
            }
            _ => return Err(unexpected("in a response stream")),
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::encoder::encode_end_request;
    use super::super::record::ProtocolStatus;
    use super::*;

    #[test]
    fn response_with_large_stdout_decodes_equal() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        encode_stream(RecordType::Stdout, 3, &body, &mut out);
        encode_stream(RecordType::Stderr, 3, b"warn", &mut out);
        encode_stream_end(RecordType::Stdout, 3, &mut out);
        encode_end_request(3, 0, ProtocolStatus::RequestComplete, &mut out);
        let resp = ResponseDecoder::new().push(&out).unwrap().unwrap();
        assert_eq!(resp.stdout, body);
        assert_eq!(resp.stderr, b"warn");
        assert_eq!(resp.stdout_records, 4);
        assert!(resp.max_stdout_record_len <= 65535);
    }

    #[test]
    fn leftover_bytes_are_kept_for_the_next_response() {
        let mut out = Vec::new();
        for id in [1, 2] {
            encode_stream(RecordType::Stdout, id, b"hi", &mut out);
            encode_end_request(id, u32::from(id), ProtocolStatus::RequestComplete, &mut out);
        }
        let mut dec = ResponseDecoder::new();
        let (a, b) = out.split_at(40);
        let first = dec.push(a).unwrap().unwrap();
        assert_eq!((first.request_id, first.app_status), (1, 1));
        let second = dec.push(b).unwrap().unwrap();
        assert_eq!(
            (second.request_id, second.stdout.as_slice()),
            (2, &b"hi"[..])
        );
        assert_eq!(dec.push(&[]).unwrap(), None);
    }

    #[test]
    fn cgi_headers_split_from_body() {
        let resp = Response {
            stdout: b"Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\nbody\n".to_vec(),
            ..Response::default()
        };
        let (headers, body) = resp.split_headers();
        assert_eq!(
            headers,
            vec![
                ("Status".to_owned(), "404 Not Found".to_owned()),
                ("Content-Type".to_owned(), "text/html".to_owned()),
            ]
        );
        assert_eq!(body, b"body\n");
        let bare = Response {
            stdout: b"X-A: 1\n\nrest".to_vec(),
            ..Response::default()
        };
        assert_eq!(bare.split_headers().1, b"rest");
    }

    #[test]
    fn request_builder_emits_records_in_order() {
        let mut out = Vec::new();
        RequestBuilder::new(9, true)
            .param("A", "b")
            .stdin("x")
            .encode(&mut out);
        let mut types = Vec::new();
        let mut buf = out.as_slice();
        while let Some((r, used)) = Record::parse(buf).unwrap() {
            types.push((r.header.record_type, r.content.len()));
            buf = &buf[used..];
        }
        assert_eq!(types, vec![(1, 8), (4, 4), (4, 0), (5, 1), (5, 0)]);
    }
}
