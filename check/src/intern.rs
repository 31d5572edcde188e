//! String interning: every key and value of a history becomes a `u32`, so the
//! checker compares integers and a million-operation history stays small in memory
//! (each distinct string is stored once).

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// A set of strings numbered in order of first appearance. Id 0 is reserved (the
/// absent value for values, "no key" for keys) and named by the constructor.
#[derive(Debug, Clone)]
pub struct Interner {
    names: Vec<Box<str>>,
    table: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl Interner {
    /// An interner whose id 0 is named `zero_name`.
    #[must_use]
    pub fn new(zero_name: &str) -> Self {
        let mut interner = Interner {
            names: Vec::new(),
            table: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        };
        interner.names.push(zero_name.into());
        interner
    }

    /// The id of `name`, adding it if new. Id 0 is never returned.
    pub fn intern(&mut self, name: &str) -> u32 {
        let hash = self.hasher.hash_one(name);
        let names = &self.names;
        if let Some(&id) = self.table.find(hash, |&id| &*names[id as usize] == name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 distinct strings");
        self.names.push(name.into());
        let names = &self.names;
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, id, |&id| hasher.hash_one(&*names[id as usize]));
        id
    }

    /// The id of `name` if it was interned.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |&id| &*self.names[id as usize] == name)
            .copied()
    }

    /// The string of `id`.
    #[must_use]
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// Number of ids, including the reserved 0.
    #[must_use]
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when only the reserved id exists.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.names.len() == 1
    }
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
