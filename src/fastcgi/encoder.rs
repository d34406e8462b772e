//! Server output: stream records, stream terminators and END_REQUEST, written straight into the caller's buffer.

use super::record::{Header, ProtocolStatus, RecordType, HEADER_LEN, MAX_CONTENT_LEN};

/// Content bytes per full record; php-fpm uses 0xfff8 so full records need no padding.
const CHUNK: usize = 0xfff8;

/// Padding that rounds `len` up to a multiple of 8, as php-fpm does.
fn padding_for(len: usize) -> u8 {
    // `(8 - len % 8) % 8` is always below 8, so the cast is lossless.
    ((8 - len % 8) % 8) as u8
}

/// Appends one record carrying `content`, padded to a multiple of 8.
///
/// # Panics
/// If `content` is longer than [`MAX_CONTENT_LEN`]; callers with larger data use [`encode_stream`].
pub fn encode_record(record_type: RecordType, request_id: u16, content: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(content.len())
        .unwrap_or_else(|_| panic!("record content {} > {MAX_CONTENT_LEN}", content.len()));
    let pad = padding_for(content.len());
    out.reserve(HEADER_LEN + content.len() + usize::from(pad));
    Header::new(record_type, request_id, len, pad).encode(out);
    out.extend_from_slice(content);
    out.resize(out.len() + usize::from(pad), 0);
}

/// Appends `data` as records of at most 0xfff8 content bytes; empty `data` writes nothing.
///
/// Empty input writes nothing because an empty record would end the stream;
/// use [`encode_stream_end`] for that.
pub fn encode_stream(record_type: RecordType, request_id: u16, data: &[u8], out: &mut Vec<u8>) {
    let records = data.len().div_ceil(CHUNK);
    out.reserve(data.len() + records * (HEADER_LEN + 7));
    for chunk in data.chunks(CHUNK) {
        encode_record(record_type, request_id, chunk, out);
    }
}

/// Appends the empty record that ends a stream.
pub fn encode_stream_end(record_type: RecordType, request_id: u16, out: &mut Vec<u8>) {
    Header::new(record_type, request_id, 0, 0).encode(out);
}

/// Appends an END_REQUEST record.
pub fn encode_end_request(
    request_id: u16,
    app_status: u32,
    status: ProtocolStatus,
    out: &mut Vec<u8>,
) {
    let [a, b, c, d] = app_status.to_be_bytes();
    out.reserve(HEADER_LEN + 8);
    Header::new(RecordType::EndRequest, request_id, 8, 0).encode(out);
    out.extend_from_slice(&[a, b, c, d, status as u8, 0, 0, 0]);
}

#[cfg(test)]
mod tests {
    use super::super::record::Record;
    use super::*;

    fn records(mut buf: &[u8]) -> Vec<(Header, Vec<u8>)> {
        let mut v = Vec::new();
        while let Some((r, used)) = Record::parse(buf).unwrap() {
            v.push((r.header, r.content.to_vec()));
            buf = &buf[used..];
        }
        assert!(buf.is_empty());
        v
    }

    #[test]
    fn large_stream_splits_into_bounded_padded_records() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        encode_stream(RecordType::Stdout, 7, &data, &mut out);
        let recs = records(&out);
        assert_eq!(recs.len(), 4);
        let mut joined = Vec::new();
        for (h, c) in &recs {
            assert!(usize::from(h.content_length) <= MAX_CONTENT_LEN);
            assert_eq!(
                (usize::from(h.content_length) + usize::from(h.padding_length)) % 8,
                0
            );
            assert_eq!(h.request_id, 7);
            joined.extend_from_slice(c);
        }
        assert_eq!(joined, data);
    }

    #[test]
    fn empty_stream_writes_nothing_and_end_writes_empty_record() {
        let mut out = Vec::new();
        encode_stream(RecordType::Stdout, 1, b"", &mut out);
        assert!(out.is_empty());
        encode_stream_end(RecordType::Stdout, 1, &mut out);
        assert_eq!(out, [1, 6, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn end_request_carries_status_fields() {
        let mut out = Vec::new();
        encode_end_request(258, 0x01020304, ProtocolStatus::Overloaded, &mut out);
        assert_eq!(out, [1, 3, 1, 2, 0, 8, 0, 0, 1, 2, 3, 4, 2, 0, 0, 0]);
    }
}
