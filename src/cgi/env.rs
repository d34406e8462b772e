//! The variables of one request: an ordered name → value list in one arena, each
//! string NUL-terminated so PHP can borrow it without a copy.

use std::ops::Range;

/// Ordered request variables. Setting an existing name replaces its value in place
/// (php-fpm's hash keeps the first position), a new name goes to the end.
#[derive(Debug, Default, Clone)]
pub struct Env {
    arena: Vec<u8>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// [`key`] of the name: a request looks up ~30 names among ~25 entries, and
    /// comparing one word per entry first is cheaper than comparing names.
    key: u32,
    name: Range<usize>,
    value: Range<usize>,
}

/// A cheap fingerprint of a name: its length and its first and last bytes.
fn key(name: &[u8]) -> u32 {
    let edge = |b: Option<&u8>| u32::from(b.copied().unwrap_or(0));
    (name.len() as u32) << 16 | edge(name.first()) << 8 | edge(name.last())
}

impl Env {
    /// An empty set with room for a typical request.
    pub fn new() -> Self {
        Env {
            arena: Vec::with_capacity(4096),
            entries: Vec::with_capacity(48),
        }
    }

    /// Forgets all variables, keeping the allocations for the next request.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.entries.clear();
    }

    fn push(&mut self, s: &[u8]) -> Range<usize> {
        let start = self.arena.len();
        self.arena.extend_from_slice(s);
        let end = self.arena.len();
        self.arena.push(0);
        start..end
    }

    fn position(&self, name: &[u8]) -> Option<usize> {
        let k = key(name);
        self.entries
            .iter()
            .rposition(|e| e.key == k && self.arena.get(e.name.clone()) == Some(name))
    }

    /// Appends a param as received (duplicates are kept; the last one wins on lookup).
    pub fn append(&mut self, name: &[u8], value: &[u8]) {
        let n = self.push(name);
        let v = self.push(value);
        self.entries.push(Entry {
            key: key(name),
            name: n,
            value: v,
        });
    }

    /// Sets `name`, replacing the value in place if it exists.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        let v = self.push(value);
        match self.position(name) {
            Some(i) => self.entries[i].value = v,
            None => {
                let n = self.push(name);
                self.entries.push(Entry {
                    key: key(name),
                    name: n,
                    value: v,
                });
            }
        }
    }

    /// Removes every entry of `name`.
    pub fn unset(&mut self, name: &[u8]) {
        let arena = &self.arena;
        self.entries.retain(|e| &arena[e.name.clone()] != name);
    }

    /// The value of `name` (the last one when repeated).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.position(name)
            .map(|i| &self.arena[self.entries[i].value.clone()])
    }

    /// The value of `name` followed by its NUL terminator, for C to borrow.
    pub fn get_with_nul(&self, name: &[u8]) -> Option<&[u8]> {
        self.position(name)
            .map(|i| self.with_nul(&self.entries[i].value))
    }

    fn with_nul(&self, r: &Range<usize>) -> &[u8] {
        // every stored string is followed by its NUL (see `push`)
        &self.arena[r.start..r.end + 1]
    }

    /// All variables in order, each string followed by its NUL terminator.
    pub fn iter_with_nul(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|e| (self.with_nul(&e.name), self.with_nul(&e.value)))
    }

    /// All variables in order, as bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|e| (&self.arena[e.name.clone()], &self.arena[e.value.clone()]))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_in_place_and_unset_removes() {
        let mut env = Env::new();
        env.append(b"A", b"1");
        env.append(b"B", b"2");
        env.set(b"A", b"3");
        env.set(b"C", b"4");
        let names: Vec<_> = env.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        assert_eq!(
            names,
            vec![
                (b"A".to_vec(), b"3".to_vec()),
                (b"B".to_vec(), b"2".to_vec()),
                (b"C".to_vec(), b"4".to_vec())
            ]
        );
        env.unset(b"B");
        assert_eq!(env.get(b"B"), None);
        assert_eq!(env.get_with_nul(b"C"), Some(&b"4\0"[..]));
    }

    #[test]
    fn every_string_keeps_its_terminator() {
        let mut env = Env::new();
        env.append(b"X", b"a\0b");
        env.append(b"EMPTY", b"");
        assert_eq!(env.get(b"X"), Some(&b"a\0b"[..]));
        assert_eq!(env.get_with_nul(b"X"), Some(&b"a\0b\0"[..]));
        let all: Vec<_> = env.iter_with_nul().collect();
        assert_eq!(
            all,
            vec![(&b"X\0"[..], &b"a\0b\0"[..]), (&b"EMPTY\0"[..], &b"\0"[..])]
        );
    }
}
