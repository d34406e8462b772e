//! FastCGI 1.0 protocol, sans-IO: turns bytes into events and events into bytes.
//!
//! Nothing here touches sockets or PHP; the caller owns all buffers and I/O,
//! in the style of `quinn-proto` and `httparse`.
#![forbid(unsafe_code)]

pub mod client;
pub mod connection;
pub mod encoder;
pub mod error;
pub mod params;
pub mod record;

pub use client::{RequestBuilder, Response, ResponseDecoder};
pub use connection::{Connection, Event};
pub use encoder::{encode_end_request, encode_record, encode_stream, encode_stream_end};
pub use error::ProtocolError;
pub use params::{encode_pair, Limits, Params, ParamsDecoder};
pub use record::{
    Header, ProtocolStatus, Record, RecordType, Role, FLAG_KEEP_CONN, HEADER_LEN, MAX_CONTENT_LEN,
    VERSION_1,
};
