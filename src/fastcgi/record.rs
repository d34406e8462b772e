//! Record framing: the 8-byte header, record types, roles and protocol statuses.

use std::fmt;

use super::error::ProtocolError;

/// Size of a record header on the wire.
pub const HEADER_LEN: usize = 8;
/// Largest content length a single record can carry.
pub const MAX_CONTENT_LEN: usize = 65535;
/// The only protocol version defined by the spec.
pub const VERSION_1: u8 = 1;
/// BEGIN_REQUEST flag asking the application to keep the connection open.
pub const FLAG_KEEP_CONN: u8 = 1;

/// FastCGI record types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordType {
    /// Starts a request.
    BeginRequest = 1,
    /// Web server asks to abort a request.
    AbortRequest = 2,
    /// Application finished a request.
    EndRequest = 3,
    /// Name-value pair stream.
    Params = 4,
    /// Request body stream.
    Stdin = 5,
    /// Response stream.
    Stdout = 6,
    /// Error stream.
    Stderr = 7,
    /// Filter data stream.
    Data = 8,
    /// Management query.
    GetValues = 9,
    /// Management query answer.
    GetValuesResult = 10,
    /// Answer to a management record of an unknown type.
    UnknownType = 11,
}

impl RecordType {
    /// Maps a wire byte to a known record type.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::BeginRequest,
            2 => Self::AbortRequest,
            3 => Self::EndRequest,
            4 => Self::Params,
            5 => Self::Stdin,
            6 => Self::Stdout,
            7 => Self::Stderr,
            8 => Self::Data,
            9 => Self::GetValues,
            10 => Self::GetValuesResult,
            11 => Self::UnknownType,
            _ => return None,
        })
    }

    /// Spec name of the type, as used in log messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::BeginRequest => "BEGIN_REQUEST",
            Self::AbortRequest => "ABORT_REQUEST",
            Self::EndRequest => "END_REQUEST",
            Self::Params => "PARAMS",
            Self::Stdin => "STDIN",
            Self::Stdout => "STDOUT",
            Self::Stderr => "STDERR",
            Self::Data => "DATA",
            Self::GetValues => "GET_VALUES",
            Self::GetValuesResult => "GET_VALUES_RESULT",
            Self::UnknownType => "UNKNOWN_TYPE",
        }
    }
}

/// Displays a raw type byte by its spec name, falling back to the number.
pub(super) struct TypeName(pub(super) u8);

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match RecordType::from_u8(self.0) {
            Some(t) => f.write_str(t.name()),
            None => write!(f, "type {}", self.0),
        }
    }
}

/// Role requested by BEGIN_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Role {
    /// Ordinary request/response (the only role php-fpm serves).
    Responder = 1,
    /// Access-control decision.
    Authorizer = 2,
    /// Responder with an extra DATA stream.
    Filter = 3,
}

impl Role {
    /// Maps a wire value to a known role.
    pub fn from_u16(value: u16) -> Option<Self> {
        match value {
            1 => Some(Self::Responder),
            2 => Some(Self::Authorizer),
            3 => Some(Self::Filter),
            _ => None,
        }
    }
}

/// END_REQUEST protocol status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProtocolStatus {
    /// Normal end of request.
    RequestComplete = 0,
    /// Rejected: this connection does not multiplex.
    CantMpxConn = 1,
    /// Rejected: out of resources.
    Overloaded = 2,
    /// Rejected: role not supported.
    UnknownRole = 3,
}

impl ProtocolStatus {
    /// Maps a wire byte to a known status.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::RequestComplete),
            1 => Some(Self::CantMpxConn),
            2 => Some(Self::Overloaded),
            3 => Some(Self::UnknownRole),
            _ => None,
        }
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Protocol version, always 1 once parsed.
    pub version: u8,
    /// Raw type byte; kept raw so unknown types can be answered with UNKNOWN_TYPE.
    pub record_type: u8,
    /// Request id; 0 means a management record.
    pub request_id: u16,
    /// Bytes of content following the header.
    pub content_length: u16,
    /// Bytes of padding following the content.
    pub padding_length: u8,
}

impl Header {
    /// Builds a version-1 header.
    pub fn new(
        record_type: RecordType,
        request_id: u16,
        content_length: u16,
        padding_length: u8,
    ) -> Self {
        Self {
            version: VERSION_1,
            record_type: record_type as u8,
            request_id,
            content_length,
            padding_length,
        }
    }

    /// Parses a header from the start of `buf`; `Ok(None)` if fewer than 8 bytes.
    pub fn parse(buf: &[u8]) -> Result<Option<Header>, ProtocolError> {
        let Some(&[version, record_type, id1, id0, len1, len0, padding_length, _]) =
            buf.first_chunk::<HEADER_LEN>()
        else {
            return Ok(None);
        };
        if version != VERSION_1 {
            return Err(ProtocolError::UnsupportedVersion(version));
        }
        Ok(Some(Header {
            version,
            record_type,
            request_id: u16::from_be_bytes([id1, id0]),
            content_length: u16::from_be_bytes([len1, len0]),
            padding_length,
        }))
    }

    /// Appends the 8 header bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let [id1, id0] = self.request_id.to_be_bytes();
        let [len1, len0] = self.content_length.to_be_bytes();
        out.extend_from_slice(&[
            self.version,
            self.record_type,
            id1,
            id0,
            len1,
            len0,
            self.padding_length,
            0,
        ]);
    }

    /// Total wire size of the record: header, content and padding.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + usize::from(self.content_length) + usize::from(self.padding_length)
    }
}

/// A complete record borrowed from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The parsed header.
    pub header: Header,
    /// Content bytes, padding excluded.
    pub content: &'a [u8],
}

impl<'a> Record<'a> {
    /// Parses one whole record from the start of `buf`, returning it and its wire length.
    ///
    /// `Ok(None)` means `buf` does not yet hold the full record.
    pub fn parse(buf: &'a [u8]) -> Result<Option<(Record<'a>, usize)>, ProtocolError> {
        let Some(header) = Header::parse(buf)? else {
            return Ok(None);
        };
        let total = header.record_len();
        if buf.len() < total {
            return Ok(None);
        }
        let content_end = HEADER_LEN + usize::from(header.content_length);
        let Some(content) = buf.get(HEADER_LEN..content_end) else {
            return Ok(None);
        };
        Ok(Some((Record { header, content }, total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_through_encode_and_parse() {
        let h = Header::new(RecordType::Stdout, 0x1234, 0xfff8, 7);
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, [1, 6, 0x12, 0x34, 0xff, 0xf8, 7, 0]);
        assert_eq!(Header::parse(&out).unwrap(), Some(h));
        assert_eq!(h.record_len(), 8 + 0xfff8 + 7);
    }

    #[test]
    fn short_header_is_partial() {
        assert_eq!(Header::parse(&[1, 1, 0, 1, 0, 8, 0]).unwrap(), None);
        assert_eq!(Header::parse(&[]).unwrap(), None);
    }

    #[test]
    fn wrong_version_is_rejected() {
        let err = Header::parse(&[2, 1, 0, 1, 0, 8, 0, 0]).unwrap_err();
        assert!(matches!(err, ProtocolError::UnsupportedVersion(2)));
        assert_eq!(err.to_string(), "unsupported FastCGI version 2");
    }

    #[test]
    fn record_types_map_both_ways() {
        for v in 1..=11u8 {
            assert_eq!(RecordType::from_u8(v).map(|t| t as u8), Some(v));
        }
        assert_eq!(RecordType::from_u8(0), None);
        assert_eq!(RecordType::from_u8(12), None);
    }

    #[test]
    fn record_parse_waits_for_padding() {
        let mut buf = Vec::new();
        Header::new(RecordType::Stdin, 1, 3, 5).encode(&mut buf);
        buf.extend_from_slice(b"abc");
        buf.extend_from_slice(&[0; 4]);
        assert!(Record::parse(&buf).unwrap().is_none());
        buf.push(0);
        let (rec, used) = Record::parse(&buf).unwrap().unwrap();
        assert_eq!(rec.content, b"abc");
        assert_eq!(used, 16);
    }
}
