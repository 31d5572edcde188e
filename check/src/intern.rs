//! String interning: every key and value of a history becomes a `u32`, so the
//! checker compares integers and a million-operation history stays small in memory
//! (each distinct string is stored once, all in one buffer).

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// A set of strings numbered in order of first appearance. Id 0 is reserved (the
/// absent value for values, "no key" for keys) and named by the constructor.
#[derive(Debug, Clone)]
pub struct Interner {
    /// Every name, back to back (UTF-8 when interned from `&str`).
    arena: Vec<u8>,
    /// Where each id's name ends in `arena` (it starts where the previous ends).
    ends: Vec<usize>,
    table: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl Interner {
    /// An interner whose id 0 is named `zero_name`.
    #[must_use]
    pub fn new(zero_name: &str) -> Self {
        let mut interner = Interner {
            arena: Vec::new(),
            ends: Vec::new(),
            table: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        };
        interner.arena.extend_from_slice(zero_name.as_bytes());
        interner.ends.push(interner.arena.len());
        interner
    }

    /// The id of `name`, adding it if new. Id 0 is never returned.
    pub fn intern(&mut self, name: &str) -> u32 {
        self.intern_bytes(name.as_bytes())
    }

    /// [`Interner::intern`] for bytes known to be UTF-8 (the JSON parser checked
    /// them); invalid UTF-8 is shown as `<invalid UTF-8>` by [`Interner::name`].
    pub fn intern_bytes(&mut self, name: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(name);
        let (arena, ends) = (&self.arena, &self.ends);
        if let Some(&id) = self.table.find(hash, |&id| slice(arena, ends, id) == name) {
            return id;
        }
        let id = u32::try_from(self.ends.len()).expect("fewer than 2^32 distinct strings");
        self.arena.extend_from_slice(name);
        self.ends.push(self.arena.len());
        let (arena, ends, hasher) = (&self.arena, &self.ends, &self.hasher);
        self.table
            .insert_unique(hash, id, |&id| hasher.hash_one(slice(arena, ends, id)));
        id
    }

    /// The id of `name` if it was interned.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name.as_bytes());
        self.table
            .find(hash, |&id| {
                slice(&self.arena, &self.ends, id) == name.as_bytes()
            })
            .copied()
    }

    /// The string of `id`.
    #[must_use]
    pub fn name(&self, id: u32) -> &str {
        std::str::from_utf8(slice(&self.arena, &self.ends, id)).unwrap_or("<invalid UTF-8>")
    }

    /// Number of ids, including the reserved 0.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when only the reserved id exists.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ends.len() == 1
    }
}

fn slice<'a>(arena: &'a [u8], ends: &[usize], id: u32) -> &'a [u8] {
    let id = id as usize;
    let start = if id == 0 { 0 } else { ends[id - 1] };
    &arena[start..ends[id]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_reserves_zero() {
        let mut i = Interner::new("<none>");
        let a = i.intern("a");
        let b = i.intern("b");
        assert_eq!(i.intern("a"), a);
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_eq!(i.name(0), "<none>");
        assert_eq!(i.name(b), "b");
        assert_eq!(i.get("c"), None);
        assert_eq!(i.len(), 3);
    }
}
