//! Server-side (responder) state machine for one transport connection.

use super::encoder::{encode_end_request, encode_record};
use super::error::ProtocolError;
use super::params::{encode_pair, Limits, Params, ParamsDecoder};
use super::record::{ProtocolStatus, Record, RecordType, Role, FLAG_KEEP_CONN};

/// Ids rejected with END_REQUEST whose trailing PARAMS/STDIN we still swallow.
///
/// Bounded so a peer spamming BEGIN_REQUESTs cannot grow memory; an id that
/// falls out of the list makes its later records a protocol error.
const MAX_REJECTED: usize = 8;

/// Input that the caller must act on; borrowed data points into the caller's buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A responder request started.
    BeginRequest {
        /// Id of the new request.
        request_id: u16,
        /// Whether the web server wants the connection kept after the request.
        keep_conn: bool,
    },
    /// The PARAMS stream ended; all pairs of the request.
    ParamsComplete(Params),
    /// A chunk of the request body.
    Stdin(&'a [u8]),
    /// The request body ended.
    StdinEnd,
    /// The web server aborted the active request.
    AbortRequest,
    /// A reply was queued; drain it with [`Connection::poll_transmit`].
    Management,
    /// Nothing for the caller; the record was absorbed.
    Ignored,
}

/// Where the active request is in its lifecycle.
#[derive(Debug)]
enum State {
    AwaitBegin,
    Params(ParamsDecoder),
    Stdin,
    Done,
}

/// Responder-side FastCGI connection, one request at a time.
///
/// Call order, per transport connection:
/// 1. Read bytes into a buffer of at least `HEADER_LEN + 65535 + 255` bytes.
/// 2. Loop [`handle_input`](Self::handle_input) on the unconsumed part, dropping
///    `consumed` bytes after each `Some`, until it returns `Ok(None)` (read more).
/// 3. After every event (at least after `Management`), call
///    [`poll_transmit`](Self::poll_transmit) and write what it appended.
/// 4. Events arrive as `BeginRequest`, `ParamsComplete`, `Stdin`*, `StdinEnd`
///    (or `AbortRequest` at any point). The caller writes the response with the
///    `encoder` functions, ending with END_REQUEST.
/// 5. If [`keep_conn`](Self::keep_conn), call [`end_request`](Self::end_request)
///    and continue at step 2; otherwise close the transport.
///
/// Any `Err` is fatal for the connection: close it.
#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    state: State,
    request_id: u16,
    keep_conn: bool,
    rejected: Vec<u16>,
    transmit: Vec<u8>,
}

impl Connection {
    /// Creates a connection waiting for BEGIN_REQUEST.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::AwaitBegin,
            request_id: 0,
            keep_conn: false,
            rejected: Vec::new(),
            transmit: Vec::new(),
        }
    }

    /// Handles the record at the start of `buf`.
    ///
    /// Returns `Ok(None)` if `buf` does not hold a whole record yet, otherwise the
    /// event and how many bytes (header, content, padding) were consumed.
    pub fn handle_input<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<Option<(Event<'a>, usize)>, ProtocolError> {
        let Some((record, consumed)) = Record::parse(buf)? else {
            return Ok(None);
        };
        let event = self.handle_record(record)?;
        Ok(Some((event, consumed)))
    }

    /// Appends queued replies to `out`; returns whether anything was appended.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if self.transmit.is_empty() {
            return false;
        }
        out.append(&mut self.transmit);
        true
    }

    /// Id of the active request, if one has begun and not been ended.
    pub fn request_id(&self) -> Option<u16> {
        match self.state {
            State::AwaitBegin => None,
            _ => Some(self.request_id),
        }
    }

    /// KEEP_CONN flag of the active or most recent request.
    pub fn keep_conn(&self) -> bool {
        self.keep_conn
    }

    /// Forgets the active request so the next BEGIN_REQUEST is accepted.
    pub fn end_request(&mut self) {
        self.state = State::AwaitBegin;
    }

    fn handle_record<'a>(&mut self, record: Record<'a>) -> Result<Event<'a>, ProtocolError> {
        let h = record.header;
        if h.request_id == 0 {
            return self.handle_management(h.record_type, record.content);
        }
        let unexpected = |state| ProtocolError::UnexpectedRecord {
            record_type: h.record_type,
            state,
        };
        match RecordType::from_u8(h.record_type) {
            Some(RecordType::BeginRequest) => self.handle_begin(h.request_id, record.content),
            Some(RecordType::AbortRequest) => Ok(if self.request_id() == Some(h.request_id) {
                self.state = State::Done;
                Event::AbortRequest
            } else {
                // The request may already be over (race with our END_REQUEST) or was rejected.
                self.forget_rejected(h.request_id);
                Event::Ignored
            }),
            Some(RecordType::Params) => {
                if !self.route(h.request_id, h.record_type)? {
                    return Ok(Event::Ignored);
                }
                let State::Params(decoder) = &mut self.state else {
                    return Err(unexpected("after PARAMS ended"));
                };
                if !record.content.is_empty() {
                    decoder.push(record.content)?;
                    return Ok(Event::Ignored);
                }
                match std::mem::replace(&mut self.state, State::Stdin) {
                    State::Params(decoder) => Ok(Event::ParamsComplete(decoder.finish()?)),
                    other => {
                        self.state = other;
                        Err(unexpected("after PARAMS ended"))
                    }
                }
            }
            Some(RecordType::Stdin) => {
                if !self.route(h.request_id, h.record_type)? {
                    if record.content.is_empty() {
                        self.forget_rejected(h.request_id);
                    }
                    return Ok(Event::Ignored);
                }
                match self.state {
                    State::Params(_) => Err(unexpected("before PARAMS ended")),
                    State::Stdin if record.content.is_empty() => {
                        self.state = State::Done;
                        Ok(Event::StdinEnd)
                    }
                    State::Stdin => Ok(Event::Stdin(record.content)),
                    State::Done | State::AwaitBegin => Err(unexpected("after STDIN ended")),
                }
            }
            // Responders have no DATA stream; absorb it like php-fpm does.
            Some(RecordType::Data) => {
                self.route(h.request_id, h.record_type)?;
                Ok(Event::Ignored)
            }
            _ => Err(unexpected("sent to an application")),
        }
    }

    fn handle_begin<'a>(
        &mut self,
        request_id: u16,
        body: &[u8],
    ) -> Result<Event<'a>, ProtocolError> {
        let Some(&[role1, role0, flags, ..]) = body.first_chunk::<3>().filter(|_| body.len() == 8)
        else {
            return Err(ProtocolError::BadBeginRequest { length: body.len() });
        };
        // A client may reuse an id once it has seen our END_REQUEST for it.
        self.forget_rejected(request_id);
        if let Some(active) = self.request_id() {
            if active == request_id {
                return Err(ProtocolError::SecondBeginRequest { request_id });
            }
            self.reject(request_id, ProtocolStatus::CantMpxConn);
            return Ok(Event::Management);
        }
        if Role::from_u16(u16::from_be_bytes([role1, role0])) != Some(Role::Responder) {
            self.reject(request_id, ProtocolStatus::UnknownRole);
            return Ok(Event::Management);
        }
        self.state = State::Params(ParamsDecoder::new(self.limits));
        self.request_id = request_id;
        self.keep_conn = flags & FLAG_KEEP_CONN != 0;
        Ok(Event::BeginRequest {
            request_id,
            keep_conn: self.keep_conn,
        })
    }

    fn handle_management<'a>(
        &mut self,
        record_type: u8,
        content: &[u8],
    ) -> Result<Event<'a>, ProtocolError> {
        if RecordType::from_u8(record_type) != Some(RecordType::GetValues) {
            encode_record(
                RecordType::UnknownType,
                0,
                &[record_type, 0, 0, 0, 0, 0, 0, 0],
                &mut self.transmit,
            );
            return Ok(Event::Management);
        }
        let mut decoder = ParamsDecoder::new(self.limits);
        decoder.push(content)?;
        let query = decoder.finish()?;
        let conns = self.limits.max_conns.to_string();
        let reqs = self.limits.max_reqs.to_string();
        let mut known: [(&[u8], &[u8], bool); 3] = [
            (b"FCGI_MAX_CONNS", conns.as_bytes(), false),
            (b"FCGI_MAX_REQS", reqs.as_bytes(), false),
            (b"FCGI_MPXS_CONNS", b"0", false),
        ];
        let mut reply = Vec::new();
        for (name, _) in query.iter() {
            // Answer each known name once so the reply stays far below one record.
            if let Some((n, v, sent)) = known.iter_mut().find(|(n, _, sent)| *n == name && !*sent) {
                *sent = true;
                encode_pair(n, v, &mut reply);
            }
        }
        encode_record(RecordType::GetValuesResult, 0, &reply, &mut self.transmit);
        Ok(Event::Management)
    }

    /// Decides whether a stream record belongs to the active request.
    ///
    /// `Ok(false)` means it belongs to a request we rejected and must be swallowed.
    fn route(&self, request_id: u16, record_type: u8) -> Result<bool, ProtocolError> {
        match self.request_id() {
            Some(active) if active == request_id => Ok(true),
            _ if self.rejected.contains(&request_id) => Ok(false),
            Some(expected) => Err(ProtocolError::WrongRequestId {
                expected,
                got: request_id,
            }),
            None => Err(ProtocolError::UnexpectedRecord {
                record_type,
                state: "before BEGIN_REQUEST",
            }),
        }
    }

    fn reject(&mut self, request_id: u16, status: ProtocolStatus) {
        encode_end_request(request_id, 0, status, &mut self.transmit);
        if self.rejected.len() >= MAX_REJECTED {
            self.rejected.remove(0);
        }
        self.rejected.push(request_id);
    }

    fn forget_rejected(&mut self, request_id: u16) {
        self.rejected.retain(|&id| id != request_id);
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::RequestBuilder;
    use super::super::encoder::encode_stream;
    use super::super::record::{Header, HEADER_LEN};
    use super::*;

    /// Everything a connection produced while consuming a whole buffer.
    #[derive(Debug, Default)]
    struct Run {
        begins: Vec<(u16, bool)>,
        params: Vec<Params>,
        stdin: Vec<u8>,
        stdin_records: usize,
        stdin_end: usize,
        aborts: usize,
        management: usize,
        transmit: Vec<u8>,
    }

    fn run(conn: &mut Connection, mut buf: &[u8]) -> Result<Run, ProtocolError> {
        let mut r = Run::default();
        while let Some((ev, used)) = conn.handle_input(buf)? {
            assert!(used >= HEADER_LEN && used <= buf.len());
            match ev {
                Event::BeginRequest {
                    request_id,
                    keep_conn,
                } => r.begins.push((request_id, keep_conn)),
                Event::ParamsComplete(p) => r.params.push(p),
                Event::Stdin(d) => {
                    r.stdin.extend_from_slice(d);
                    r.stdin_records += 1;
                }
                Event::StdinEnd => r.stdin_end += 1,
                Event::AbortRequest => r.aborts += 1,
                Event::Management => r.management += 1,
                Event::Ignored => {}
            }
            conn.poll_transmit(&mut r.transmit);
            buf = &buf[used..];
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        Ok(r)
    }

    fn records(mut buf: &[u8]) -> Vec<(Header, Vec<u8>)> {
        let mut v = Vec::new();
        while let Some((r, used)) = Record::parse(buf).unwrap() {
            v.push((r.header, r.content.to_vec()));
            buf = &buf[used..];
        }
        assert!(buf.is_empty());
        v
    }

    fn record(ty: u8, id: u16, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Header {
            version: 1,
            record_type: ty,
            request_id: id,
            content_length: content.len() as u16,
            padding_length: 0,
        }
        .encode(&mut out);
        out.extend_from_slice(content);
        out
    }

    fn begin(id: u16, role: u16, flags: u8) -> Vec<u8> {
        let [a, b] = role.to_be_bytes();
        record(1, id, &[a, b, flags, 0, 0, 0, 0, 0])
    }

    #[test]
    fn small_request_round_trips() {
        let mut buf = Vec::new();
        RequestBuilder::new(1, false)
            .param("SCRIPT_FILENAME", "/srv/a.php")
            .param("QUERY_STRING", "x=1")
            .stdin("hello")
            .encode(&mut buf);
        let mut conn = Connection::new(Limits::default());
        let r = run(&mut conn, &buf).unwrap();
        assert_eq!(r.begins, vec![(1, false)]);
        assert_eq!(r.params[0].get(b"QUERY_STRING"), Some(&b"x=1"[..]));
        assert_eq!(r.params[0].len(), 2);
        assert_eq!(r.stdin, b"hello");
        assert_eq!(r.stdin_end, 1);
        assert_eq!(conn.request_id(), Some(1));
        assert!(r.transmit.is_empty());
    }

    #[test]
    fn large_request_round_trips() {
        let big_value: Vec<u8> = (0..200 * 1024u32).map(|i| b'a' + (i % 26) as u8).collect();
        let body: Vec<u8> = (0..1024 * 1024u32).map(|i| (i * 7) as u8).collect();
        let mut buf = Vec::new();
        RequestBuilder::new(513, true)
            .param("HTTP_BIG", &big_value)
            .param("A", "B")
            .stdin(&body)
            .encode(&mut buf);
        let mut conn = Connection::new(Limits::default());
        let r = run(&mut conn, &buf).unwrap();
        assert_eq!(r.begins, vec![(513, true)]);
        assert_eq!(r.params[0].get(b"HTTP_BIG"), Some(&big_value[..]));
        assert_eq!(r.params[0].get(b"A"), Some(&b"B"[..]));
        assert_eq!(r.stdin, body);
        assert!(r.stdin_records >= 16);
    }

    #[test]
    fn growing_prefixes_are_partial_until_a_record_completes() {
        let mut buf = Vec::new();
        RequestBuilder::new(1, false)
            .param("K", "V")
            .stdin("body")
            .encode(&mut buf);
        let mut conn = Connection::new(Limits::default());
        let mut start = 0;
        let mut events = 0;
        while start < buf.len() {
            let mut end = start;
            let used = loop {
                end += 1;
                assert!(end <= buf.len());
                if let Some((_, used)) = conn.handle_input(&buf[start..end]).unwrap() {
                    break used;
                }
            };
            assert_eq!(used, end - start);
            start = end;
            events += 1;
        }
        assert_eq!(events, 5);
    }

    #[test]
    fn pair_spanning_two_params_records_decodes() {
        let mut pairs = Vec::new();
        encode_pair(b"NAME", b"split-value", &mut pairs);
        let (a, b) = pairs.split_at(7);
        let mut buf = begin(1, 1, 0);
        buf.extend(record(4, 1, a));
        buf.extend(record(4, 1, b));
        buf.extend(record(4, 1, b""));
        let r = run(&mut Connection::new(Limits::default()), &buf).unwrap();
        assert_eq!(r.params[0].get(b"NAME"), Some(&b"split-value"[..]));
    }

    #[test]
    fn four_byte_length_of_max_errors_at_once() {
        let mut buf = begin(1, 1, 0);
        buf.extend(record(4, 1, &[0xff, 0xff, 0xff, 0xff]));
        let err = run(&mut Connection::new(Limits::default()), &buf).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::ParamLengthOutOfBounds {
                length: 0x7fff_ffff,
                ..
            }
        ));
    }

    #[test]
    fn truncated_params_fail_at_the_empty_params_record() {
        let mut buf = begin(1, 1, 0);
        buf.extend(record(4, 1, &[4, 4, b'a', b'b']));
        buf.extend(record(4, 1, b""));
        let err = run(&mut Connection::new(Limits::default()), &buf).unwrap_err();
        assert!(matches!(err, ProtocolError::TruncatedParams));
    }

    #[test]
    fn wrong_version_is_an_error() {
        let mut buf = begin(1, 1, 0);
        buf[0] = 2;
        let err = run(&mut Connection::new(Limits::default()), &buf).unwrap_err();
        assert_eq!(err.to_string(), "unsupported FastCGI version 2");
    }

    #[test]
    fn seven_byte_begin_request_is_rejected() {
        let buf = record(1, 1, &[0, 1, 0, 0, 0, 0, 0]);
        let err = run(&mut Connection::new(Limits::default()), &buf).unwrap_err();
        assert!(matches!(err, ProtocolError::BadBeginRequest { length: 7 }));
    }

    #[test]
    fn unknown_management_type_gets_unknown_type_reply() {
        let r = run(&mut Connection::new(Limits::default()), &record(42, 0, b"")).unwrap();
        assert_eq!(r.management, 1);
        let recs = records(&r.transmit);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].0.record_type, RecordType::UnknownType as u8);
        assert_eq!(recs[0].0.request_id, 0);
        assert_eq!(recs[0].1, [42, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn get_values_answers_exactly_the_known_names_asked() {
        let mut q = Vec::new();
        for name in [&b"FCGI_MPXS_CONNS"[..], b"FCGI_UNKNOWN", b"FCGI_MAX_CONNS"] {
            encode_pair(name, b"", &mut q);
        }
        let limits = Limits {
            max_conns: 50,
            ..Limits::default()
        };
        let mut conn = Connection::new(limits);
        let r = run(&mut conn, &record(9, 0, &q)).unwrap();
        let recs = records(&r.transmit);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].0.record_type, RecordType::GetValuesResult as u8);
        let mut dec = ParamsDecoder::new(Limits::default());
        dec.push(&recs[0].1).unwrap();
        let got = dec.finish().unwrap();
        let pairs: Vec<_> = got.iter().collect();
        assert_eq!(
            pairs,
            vec![
                (&b"FCGI_MPXS_CONNS"[..], &b"0"[..]),
                (&b"FCGI_MAX_CONNS"[..], &b"50"[..])
            ]
        );
        assert!(!conn.poll_transmit(&mut Vec::new()));
    }

    #[test]
    fn authorizer_role_gets_unknown_role_and_connection_stays_usable() {
        let mut buf = Vec::new();
        RequestBuilder::new(4, false)
            .role(Role::Authorizer)
            .param("A", "1")
            .stdin("x")
            .encode(&mut buf);
        RequestBuilder::new(5, false)
            .param("B", "2")
            .encode(&mut buf);
        let r = run(&mut Connection::new(Limits::default()), &buf).unwrap();
        let recs = records(&r.transmit);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].0.record_type, RecordType::EndRequest as u8);
        assert_eq!(recs[0].0.request_id, 4);
        assert_eq!(recs[0].1[4], ProtocolStatus::UnknownRole as u8);
        assert_eq!(r.begins, vec![(5, false)]);
        assert_eq!(r.params[0].get(b"B"), Some(&b"2"[..]));
    }

    #[test]
    fn second_begin_with_another_id_gets_cant_mpx_conn() {
        let mut first = Vec::new();
        RequestBuilder::new(1, false)
            .param("A", "1")
            .stdin("one")
            .encode(&mut first);
        let mut second = Vec::new();
        RequestBuilder::new(2, false)
            .param("A", "2")
            .stdin("two")
            .encode(&mut second);
        // Interleave: request 2 arrives right after request 1's BEGIN_REQUEST.
        let mut buf = first[..16].to_vec();
        buf.extend_from_slice(&second);
        buf.extend_from_slice(&first[16..]);
        let r = run(&mut Connection::new(Limits::default()), &buf).unwrap();
        let recs = records(&r.transmit);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].0.request_id, 2);
        assert_eq!(recs[0].1[4], ProtocolStatus::CantMpxConn as u8);
        assert_eq!(r.begins, vec![(1, false)]);
        assert_eq!(r.stdin, b"one");
    }

    #[test]
    fn same_id_begin_twice_is_an_error() {
        let mut buf = begin(1, 1, 0);
        buf.extend(begin(1, 1, 0));
        let err = run(&mut Connection::new(Limits::default()), &buf).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::SecondBeginRequest { request_id: 1 }
        ));
    }

    #[test]
    fn stdin_before_params_end_is_an_error() {
        let mut buf = begin(1, 1, 0);
        buf.extend(record(5, 1, b"early"));
        let err = run(&mut Connection::new(Limits::default()), &buf).unwrap_err();
        assert_eq!(err.to_string(), "STDIN record before PARAMS ended");
    }

    #[test]
    fn params_before_begin_is_an_error() {
        let err = run(&mut Connection::new(Limits::default()), &record(4, 1, b"")).unwrap_err();
        assert_eq!(err.to_string(), "PARAMS record before BEGIN_REQUEST");
    }

    #[test]
    fn record_for_another_id_is_an_error() {
        let mut buf = begin(1, 1, 0);
        buf.extend(record(4, 3, b""));
        let err = run(&mut Connection::new(Limits::default()), &buf).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::WrongRequestId {
                expected: 1,
                got: 3
            }
        ));
    }

    #[test]
    fn stdin_after_stdin_end_is_an_error() {
        let mut buf = Vec::new();
        RequestBuilder::new(1, false).encode(&mut buf);
        buf.extend(record(5, 1, b"late"));
        let err = run(&mut Connection::new(Limits::default()), &buf).unwrap_err();
        assert_eq!(err.to_string(), "STDIN record after STDIN ended");
    }

    #[test]
    fn abort_for_active_id_yields_abort_and_unknown_id_is_ignored() {
        let mut buf = begin(1, 1, 0);
        buf.extend(record(2, 9, b""));
        buf.extend(record(2, 1, b""));
        let r = run(&mut Connection::new(Limits::default()), &buf).unwrap();
        assert_eq!(r.aborts, 1);
    }

    #[test]
    fn keep_conn_serves_two_requests_back_to_back() {
        let mut conn = Connection::new(Limits::default());
        for id in [1u16, 1, 2] {
            let mut buf = Vec::new();
            RequestBuilder::new(id, true)
                .param("ID", id.to_string())
                .stdin("b")
                .encode(&mut buf);
            let r = run(&mut conn, &buf).unwrap();
            assert_eq!(r.begins, vec![(id, true)]);
            assert_eq!(r.stdin_end, 1);
            assert!(conn.keep_conn());
            conn.end_request();
            assert_eq!(conn.request_id(), None);
        }
    }

    #[test]
    fn data_and_padding_are_absorbed() {
        let mut buf = begin(1, 1, 0);
        let mut padded = Vec::new();
        encode_stream(RecordType::Data, 1, b"abc", &mut padded);
        buf.extend(padded);
        let r = run(&mut Connection::new(Limits::default()), &buf).unwrap();
        assert_eq!(r.begins.len(), 1);
    }

    /// Deterministic xorshift64 so the fuzz corpus is reproducible without extra crates.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn random_input_never_panics_or_overconsumes() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let mut buf = Vec::new();
            let len = rng.below(600) as usize;
            if rng.below(2) == 0 {
                buf.extend((0..len).map(|_| rng.next() as u8));
            } else {
                // Mostly well-framed records so the state machine, not just the header check, is hit.
                while buf.len() < len {
                    let ty = rng.below(13) as u8;
                    let id = rng.below(3) as u8;
                    let valid_begin = ty == 1 && rng.below(2) == 0;
                    let content: Vec<u8> = if valid_begin {
                        vec![0, 1, rng.below(2) as u8, 0, 0, 0, 0, 0]
                    } else {
                        (0..rng.below(40)).map(|_| rng.next() as u8).collect()
                    };
                    let version = if rng.below(20) == 0 {
                        rng.next() as u8
                    } else {
                        1
                    };
                    let pad = rng.below(3) as u8;
                    buf.extend_from_slice(&[version, ty, 0, id, 0, content.len() as u8, pad, 0]);
                    buf.extend_from_slice(&content);
                    buf.extend((0..pad).map(|_| 0));
                }
            }
            let mut conn = Connection::new(Limits::default());
            let mut rest = buf.as_slice();
            while let Ok(Some((_, used))) = conn.handle_input(rest) {
                assert!(used > 0 && used <= rest.len());
                rest = &rest[used..];
                conn.poll_transmit(&mut Vec::new());
            }
        }
    }
}
