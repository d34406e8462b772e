//! Name-value pairs: an incremental, bounded decoder and a compact store.

use super::error::ProtocolError;

/// Resource limits applied to one connection's input, plus the values it advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum total bytes of names plus values in one PARAMS stream.
    pub max_params_bytes: usize,
    /// Maximum number of name-value pairs in one PARAMS stream.
    pub max_params: usize,
    /// Value advertised for FCGI_MAX_CONNS.
    pub max_conns: u32,
    /// Value advertised for FCGI_MAX_REQS.
    pub max_reqs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_params_bytes: 1024 * 1024,
            max_params: 4096,
            max_conns: 1,
            max_reqs: 1,
        }
    }
}

/// Decoded name-value pairs, stored in one arena to avoid an allocation per pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// Names and values back to back, in wire order.
    arena: Vec<u8>,
    /// Per pair: (end of name, end of value) in `arena`; a pair starts where the previous ends.
    ends: Vec<(usize, usize)>,
}

impl Params {
    /// Iterates pairs in wire order, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|&(_, v)| v));
        starts.zip(self.ends.iter()).map(move |(start, &(n, v))| {
            (
                self.arena.get(start..n).unwrap_or_default(),
                self.arena.get(n..v).unwrap_or_default(),
            )
        })
    }

    /// Value of the last pair named `name`, matching PHP's last-wins rule.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        let mut found = None;
        for (n, v) in self.iter() {
            if n == name {
                found = Some(v);
            }
        }
        found
    }

    /// Number of pairs, duplicates included.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Total bytes of names and values.
    pub fn byte_len(&self) -> usize {
        self.arena.len()
    }
}

/// Where the decoder is inside the current pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    NameLen,
    ValueLen,
    /// Copying name then value bytes; `end` is the arena length at which the value ends.
    Body {
        name_end: usize,
        end: usize,
    },
}

/// Incremental name-value pair decoder; pairs may span any number of `push` calls.
#[derive(Debug, Clone)]
pub struct ParamsDecoder {
    limits: Limits,
    params: Params,
    stage: Stage,
    /// Length prefix bytes seen so far; prefixes may themselves be split across records.
    len_buf: [u8; 4],
    len_have: usize,
    name_len: usize,
}

impl ParamsDecoder {
    /// Creates a decoder enforcing `limits.max_params_bytes` and `limits.max_params`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            params: Params::default(),
            stage: Stage::NameLen,
            len_buf: [0; 4],
            len_have: 0,
            name_len: 0,
        }
    }

    /// Feeds the next chunk of the PARAMS stream.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.params.arena.capacity() == 0 {
            // Names and values never take more room than the stream's bytes: size the
            // arena (and the pair index, ~16 bytes a pair) from this first chunk, at most a
            // record, instead of regrowing it pair after pair.
            self.params
                .arena
                .reserve(bytes.len().min(self.limits.max_params_bytes));
            self.params
                .ends
                .reserve((bytes.len() / 16).min(self.limits.max_params));
        }
        while !bytes.is_empty() {
            if self.stage == Stage::NameLen && self.len_have == 0 {
                if let Some(used) = self.whole_pair(bytes)? {
                    bytes = &bytes[used..];
                    continue;
                }
            }
            match self.stage {
                Stage::NameLen => {
                    if self.len_have == 0 && self.params.len() >= self.limits.max_params {
                        return Err(ProtocolError::TooManyParams {
                            limit: self.limits.max_params,
                        });
                    }
                    let Some(len) = self.take_len(&mut bytes) else {
                        continue;
                    };
                    self.name_len = self.check_len(len, 0)?;
                    self.stage = Stage::ValueLen;
                }
                Stage::ValueLen => {
                    let Some(len) = self.take_len(&mut bytes) else {
                        continue;
                    };
                    let value_len = self.check_len(len, self.name_len)?;
                    let start = self.params.arena.len();
                    // Both lengths passed the budget check, so this reserve is bounded.
                    self.params.arena.reserve(self.name_len + value_len);
                    self.stage = Stage::Body {
                        name_end: start + self.name_len,
                        end: start + self.name_len + value_len,
                    };
                    self.complete_pair_if_done();
                }
                Stage::Body { end, .. } => {
                    let want = end.saturating_sub(self.params.arena.len());
                    let (now, rest) = bytes.split_at(want.min(bytes.len()));
                    self.params.arena.extend_from_slice(now);
                    bytes = rest;
                    self.complete_pair_if_done();
                }
            }
        }
        Ok(())
    }

    /// Fast path: decodes a pair that lies whole at the start of `bytes` (the usual case:
    /// web servers do not split pairs across records) with one copy into the arena.
    /// `Ok(None)` when it is not whole; the byte-wise stages then take over, having
    /// consumed nothing. Applies the same limits, in the same order, as those stages.
    fn whole_pair(&mut self, bytes: &[u8]) -> Result<Option<usize>, ProtocolError> {
        if self.params.len() >= self.limits.max_params {
            return Err(ProtocolError::TooManyParams {
                limit: self.limits.max_params,
            });
        }
        let Some((name_len, a)) = read_len(bytes) else {
            return Ok(None);
        };
        let name_len = self.check_len(name_len, 0)?;
        let Some((value_len, b)) = bytes.get(a..).and_then(read_len) else {
            return Ok(None);
        };
        let value_len = self.check_len(value_len, name_len)?;
        let start = a + b;
        let Some(pair) = bytes.get(start..start + name_len + value_len) else {
            return Ok(None);
        };
        let base = self.params.arena.len();
        self.params.arena.extend_from_slice(pair);
        self.params
            .ends
            .push((base + name_len, base + name_len + value_len));
        Ok(Some(start + pair.len()))
    }

    /// Ends the stream, failing if it stopped inside a pair.
    pub fn finish(self) -> Result<Params, ProtocolError> {
        if self.stage != Stage::NameLen || self.len_have != 0 {
            return Err(ProtocolError::TruncatedParams);
        }
        Ok(self.params)
    }

    /// Consumes length-prefix bytes; returns the length once all 1 or 4 bytes are in.
    fn take_len(&mut self, bytes: &mut &[u8]) -> Option<u32> {
        let (&first, rest) = bytes.split_first()?;
        if self.len_have == 0 && first & 0x80 == 0 {
            *bytes = rest;
            return Some(u32::from(first));
        }
        let want = 4 - self.len_have;
        let (now, rest) = bytes.split_at(want.min(bytes.len()));
        for (slot, &b) in self.len_buf.iter_mut().skip(self.len_have).zip(now) {
            *slot = b;
        }
        self.len_have += now.len();
        *bytes = rest;
        if self.len_have < 4 {
            return None;
        }
        self.len_have = 0;
        Some(u32::from_be_bytes(self.len_buf) & 0x7fff_ffff)
    }

    /// Rejects a declared length as soon as it is read if it cannot fit the budget.
    fn check_len(&self, len: u32, pending: usize) -> Result<usize, ProtocolError> {
        let limit = self
            .limits
            .max_params_bytes
            .saturating_sub(self.params.arena.len())
            .saturating_sub(pending);
        match usize::try_from(len) {
            Ok(n) if n <= limit => Ok(n),
            _ => Err(ProtocolError::ParamLengthOutOfBounds { length: len, limit }),
        }
    }

    fn complete_pair_if_done(&mut self) {
        if let Stage::Body { name_end, end } = self.stage {
            if self.params.arena.len() == end {
                self.params.ends.push((name_end, end));
                self.stage = Stage::NameLen;
            }
        }
    }
}

/// A whole 1- or 4-byte length prefix at the start of `bytes` and its size.
fn read_len(bytes: &[u8]) -> Option<(u32, usize)> {
    let &first = bytes.first()?;
    if first & 0x80 == 0 {
        return Some((u32::from(first), 1));
    }
    let four = *bytes.first_chunk::<4>()?;
    Some((u32::from_be_bytes(four) & 0x7fff_ffff, 4))
}

/// Appends one encoded name-value pair to `out`.
///
/// # Panics
/// If `name` or `value` is longer than 2^31-1 bytes, which the wire format cannot express.
pub fn encode_pair(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.reserve(8 + name.len() + value.len());
    encode_len(name.len(), out);
    encode_len(value.len(), out);
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

fn encode_len(len: usize, out: &mut Vec<u8>) {
    match u8::try_from(len) {
        Ok(b) if b < 0x80 => out.push(b),
        _ => {
            let n = u32::try_from(len)
                .ok()
                .filter(|&n| n <= 0x7fff_ffff)
                .unwrap_or_else(|| panic!("FastCGI name/value length {len} exceeds 2^31-1"));
            out.extend_from_slice(&(n | 0x8000_0000).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Params, ProtocolError> {
        let mut d = ParamsDecoder::new(Limits::default());
        d.push(bytes)?;
        d.finish()
    }

    #[test]
    fn params_with_one_byte_lengths_decode() {
        let mut buf = Vec::new();
        encode_pair(b"SCRIPT_FILENAME", b"/srv/index.php", &mut buf);
        encode_pair(b"EMPTY", b"", &mut buf);
        assert_eq!(buf[0], 15);
        let p = decode(&buf).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.get(b"SCRIPT_FILENAME"), Some(&b"/srv/index.php"[..]));
        assert_eq!(p.get(b"EMPTY"), Some(&b""[..]));
        assert_eq!(p.get(b"MISSING"), None);
    }

    #[test]
    fn params_with_four_byte_lengths_decode() {
        let name = vec![b'N'; 200];
        let value = vec![b'v'; 70_000];
        let mut buf = Vec::new();
        encode_pair(&name, &value, &mut buf);
        assert_eq!(&buf[..4], &(0x8000_0000u32 | 200).to_be_bytes());
        let p = decode(&buf).unwrap();
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![(&name[..], &value[..])]);
    }

    #[test]
    fn pairs_split_at_every_byte_decode() {
        let mut buf = Vec::new();
        encode_pair(b"A", &[b'x'; 300], &mut buf);
        encode_pair(&[b'k'; 130], b"B", &mut buf);
        let mut d = ParamsDecoder::new(Limits::default());
        for b in &buf {
            d.push(std::slice::from_ref(b)).unwrap();
        }
        let p = d.finish().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.get(b"A").map(<[u8]>::len), Some(300));
        assert_eq!(p.get(&[b'k'; 130]), Some(&b"B"[..]));
    }

    #[test]
    fn last_duplicate_wins() {
        let mut buf = Vec::new();
        encode_pair(b"X", b"1", &mut buf);
        encode_pair(b"X", b"2", &mut buf);
        let p = decode(&buf).unwrap();
        assert_eq!(p.get(b"X"), Some(&b"2"[..]));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn huge_declared_length_fails_before_buffering() {
        let mut d = ParamsDecoder::new(Limits::default());
        let err = d.push(&[0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::ParamLengthOutOfBounds {
                length: 0x7fff_ffff,
                limit: 1_048_576
            }
        ));
    }

    #[test]
    fn value_length_counts_the_pending_name() {
        let limits = Limits {
            max_params_bytes: 10,
            ..Limits::default()
        };
        let mut d = ParamsDecoder::new(limits);
        let err = d.push(&[6, 5]).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::ParamLengthOutOfBounds {
                length: 5,
                limit: 4
            }
        ));
    }

    #[test]
    fn too_many_params_is_rejected() {
        let limits = Limits {
            max_params: 2,
            ..Limits::default()
        };
        let mut d = ParamsDecoder::new(limits);
        let err = d.push(&[0, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(matches!(err, ProtocolError::TooManyParams { limit: 2 }));
    }

    #[test]
    fn truncated_pair_fails_at_finish() {
        for cut in [&[3u8][..], &[3, 1, b'a'], &[0x80, 0]] {
            let mut d = ParamsDecoder::new(Limits::default());
            d.push(cut).unwrap();
            assert!(matches!(d.finish(), Err(ProtocolError::TruncatedParams)));
        }
    }

    /// Whole pushes (fast path), byte-wise pushes and uneven splits (both paths mixed)
    /// decode to the same pairs, or fail with the same error.
    #[test]
    fn whole_and_split_pushes_agree() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300 {
            let mut buf = Vec::new();
            for _ in 0..next() % 12 {
                let name: Vec<u8> = (0..next() % 140).map(|i| b'a' + (i % 26) as u8).collect();
                let value: Vec<u8> = (0..next() % 300).map(|i| i as u8).collect();
                encode_pair(&name, &value, &mut buf);
            }
            let limits = Limits {
                max_params_bytes: if round % 3 == 0 { 600 } else { 1 << 20 },
                max_params: if round % 5 == 0 { 4 } else { 4096 },
                ..Limits::default()
            };
            let run = |cuts: &[usize]| -> Result<Params, ProtocolError> {
                let mut d = ParamsDecoder::new(limits);
                let mut rest = buf.as_slice();
                for &c in cuts {
                    let (now, later) = rest.split_at(c.min(rest.len()));
                    d.push(now)?;
                    rest = later;
                }
                d.push(rest)?;
                d.finish()
            };
            let whole = run(&[]);
            let bytewise = run(&vec![1; buf.len()]);
            let cuts: Vec<usize> = (0..6).map(|_| (next() % 200) as usize).collect();
            let uneven = run(&cuts);
            let show = |r: &Result<Params, ProtocolError>| format!("{r:?}");
            assert_eq!(show(&whole), show(&bytewise), "round {round}");
            assert_eq!(show(&whole), show(&uneven), "round {round}");
        }
    }

    #[test]
    fn empty_stream_decodes_to_no_params() {
        let p = decode(&[]).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.iter().count(), 0);
    }
}
