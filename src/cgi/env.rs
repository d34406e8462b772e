//! The variables of one request: an ordered name → value list in one arena, each
//! string NUL-terminated so PHP can borrow it without a copy.

use std::ffi::CStr;
use std::ops::Range;

/// Ordered request variables. Setting an existing name replaces its value in place
/// (php-fpm's hash keeps the first position), a new name goes to the end.
#[derive(Debug, Default, Clone)]
pub struct Env {
    arena: Vec<u8>,
    entries: Vec<(Range<usize>, Range<usize>)>,
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
        self.entries
            .iter()
            .rposition(|(n, _)| &self.arena[n.clone()] == name)
    }

    /// Appends a param as received (duplicates are kept; the last one wins on lookup).
    pub fn append(&mut self, name: &[u8], value: &[u8]) {
        let n = self.push(name);
        let v = self.push(value);
        self.entries.push((n, v));
    }

    /// Sets `name`, replacing the value in place if it exists.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        let v = self.push(value);
        match self.position(name) {
            Some(i) => self.entries[i].1 = v,
            None => {
                let n = self.push(name);
                self.entries.push((n, v));
            }
        }
    }

    /// Removes every entry of `name`.
    pub fn unset(&mut self, name: &[u8]) {
        let arena = &self.arena;
        self.entries.retain(|(n, _)| &arena[n.clone()] != name);
    }

    /// The value of `name` (the last one when repeated).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.position(name)
            .map(|i| &self.arena[self.entries[i].1.clone()])
    }

    /// The value of `name` as a C string (cut at an embedded NUL, as C would).
    pub fn get_cstr(&self, name: &[u8]) -> Option<&CStr> {
        self.position(name)
            .map(|i| self.cstr(self.entries[i].1.start))
    }

    fn cstr(&self, start: usize) -> &CStr {
        // Every stored string is followed by a NUL, so this cannot fail; the fallback
        // keeps the function total anyway.
        CStr::from_bytes_until_nul(&self.arena[start..]).unwrap_or_default()
    }

    /// All variables in order, as C strings.
    pub fn iter_cstr(&self) -> impl Iterator<Item = (&CStr, &CStr)> {
        self.entries
            .iter()
            .map(|(n, v)| (self.cstr(n.start), self.cstr(v.start)))
    }

    /// All variables in order, as bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|(n, v)| (&self.arena[n.clone()], &self.arena[v.clone()]))
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
        assert_eq!(env.get_cstr(b"C").map(CStr::to_bytes), Some(&b"4"[..]));
    }

    #[test]
    fn embedded_nul_cuts_the_c_string_only() {
        let mut env = Env::new();
        env.append(b"X", b"a\0b");
        assert_eq!(env.get(b"X"), Some(&b"a\0b"[..]));
        assert_eq!(env.get_cstr(b"X").map(CStr::to_bytes), Some(&b"a"[..]));
    }
}
