//! Protocol errors: every variant is a loggable reason to drop the connection.

use super::record::TypeName;

/// A violation of the FastCGI protocol by the peer; the connection should be closed.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The record header carried a version other than 1.
    #[error("unsupported FastCGI version {0}")]
    UnsupportedVersion(u8),
    /// A BEGIN_REQUEST body was not exactly 8 bytes.
    #[error("BEGIN_REQUEST body is {length} bytes, expected 8")]
    BadBeginRequest {
        /// Content length actually received.
        length: usize,
    },
    /// An END_REQUEST body was not exactly 8 bytes.
    #[error("END_REQUEST body is {length} bytes, expected 8")]
    BadEndRequest {
        /// Content length actually received.
        length: usize,
    },
    /// A record arrived that the current state does not allow.
    #[error("{} record {}", TypeName(*.record_type), .state)]
    UnexpectedRecord {
        /// Raw record type byte.
        record_type: u8,
        /// Why it was unexpected, phrased to follow the record name.
        state: &'static str,
    },
    /// A record named a request id other than the active one.
    #[error("record for request id {got} while request id {expected} is active")]
    WrongRequestId {
        /// The active request id.
        expected: u16,
        /// The id the record carried.
        got: u16,
    },
    /// A name or value length exceeds what remains of the params byte budget.
    #[error("parameter length {length} exceeds the remaining params budget of {limit} bytes")]
    ParamLengthOutOfBounds {
        /// Declared length from the wire.
        length: u32,
        /// Bytes still allowed when the length was read.
        limit: usize,
    },
    /// More name-value pairs than allowed.
    #[error("more than {limit} parameters")]
    TooManyParams {
        /// Configured maximum pair count.
        limit: usize,
    },
    /// The params stream ended in the middle of a name-value pair.
    #[error("params stream ended inside a name-value pair")]
    TruncatedParams,
    /// BEGIN_REQUEST repeated for the request id that is already active.
    #[error("second BEGIN_REQUEST for active request id {request_id}")]
    SecondBeginRequest {
        /// The active request id.
        request_id: u16,
    },
}
