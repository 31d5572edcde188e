//! A string-valued map with `get` / `put` / `append`, as in Jepsen's and Porcupine's
//! key-value histories: `append` concatenates to the current string, so values are
//! not unique and states are strings. Partitioned per key; checked by the search.
//!
//! A state is a shared string with a hash kept up to date as it grows
//! ([`StrState`]): the search clones, hashes and compares states at every step, and
//! a string that every `append` lengthens would otherwise be copied and re-hashed
//! in full each time.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::{Entry, Model};

/// The value of one key: a shared string and a polynomial hash of its bytes
/// (content-determined, so equal strings always hash alike; equality still compares
/// the bytes, so a hash collision can never merge two states).
#[derive(Debug, Clone)]
pub struct StrState {
    text: Arc<str>,
    hash: u64,
}

/// The base of [`StrState`]'s polynomial hash (odd, so multiplication is a bijection
/// modulo 2^64).
const BASE: u64 = 0x100_0000_01b3;

impl StrState {
    fn new(text: &str) -> Self {
        StrState {
            hash: Self::extend(0, text),
            text: Arc::from(text),
        }
    }

    fn extend(mut h: u64, suffix: &str) -> u64 {
        for &b in suffix.as_bytes() {
            h = h.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1);
        }
        h
    }

    fn append(&self, suffix: &str) -> Self {
        let mut text = String::with_capacity(self.text.len() + suffix.len());
        text.push_str(&self.text);
        text.push_str(suffix);
        StrState {
            hash: Self::extend(self.hash, suffix),
            text: Arc::from(text),
        }
    }

    /// The string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for StrState {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.text, &other.text) || (self.hash == other.hash && self.text == other.text)
    }
}

impl Eq for StrState {}

impl Hash for StrState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
        state.write_usize(self.text.len());
    }
}

/// What an operation asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StrInput {
    /// Read the key.
    Get {
        /// The key.
        key: String,
    },
    /// Replace the value.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Append to the value.
    Append {
        /// The key.
        key: String,
        /// The suffix.
        value: String,
    },
}

impl StrInput {
    /// The key.
    #[must_use]
    pub fn key(&self) -> &str {
        match self {
            StrInput::Get { key } | StrInput::Put { key, .. } | StrInput::Append { key, .. } => key,
        }
    }
}

/// What it answered: the value read (for `get`), nothing otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StrOutput {
    /// The value a `get` saw (the empty string for a missing key).
    Value(String),
    /// `put` / `append` took effect.
    Ok,
}

/// The model; the state of one key is its string (initially empty).
#[derive(Debug, Clone, Copy, Default)]
pub struct StrKv;

impl Model for StrKv {
    type State = StrState;
    type Input = StrInput;
    type Output = StrOutput;

    fn init(&self) -> StrState {
        StrState::new("")
    }

    fn step(&self, state: &StrState, input: &StrInput, output: &StrOutput) -> Option<StrState> {
        match (input, output) {
            (StrInput::Get { .. }, StrOutput::Value(v)) => {
                (v.as_str() == state.as_str()).then(|| state.clone())
            }
            (StrInput::Put { value, .. }, _) => Some(StrState::new(value)),
            (StrInput::Append { value, .. }, _) => Some(state.append(value)),
            (StrInput::Get { .. }, StrOutput::Ok) => None,
        }
    }

    fn state_bytes(&self, state: &StrState) -> usize {
        // The shared buffer and its reference counts (charged per distinct state,
        // which the search stores once).
        state.text.len() + 16
    }

    fn partition(&self, history: &[Entry<StrInput, StrOutput>]) -> Vec<(String, Vec<usize>)> {
        let mut by_key: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        for (i, e) in history.iter().enumerate() {
            by_key.entry(e.input.key()).or_default().push(i);
        }
        by_key.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn describe(&self, input: &StrInput, output: &StrOutput) -> String {
        match (input, output) {
            (StrInput::Get { key }, StrOutput::Value(v)) => format!("get {key} -> {v:?}"),
            (StrInput::Get { key }, StrOutput::Ok) => format!("get {key}"),
            (StrInput::Put { key, value }, _) => format!("put {key}={value:?}"),
            (StrInput::Append { key, value }, _) => format!("append {key} {value:?}"),
        }
    }

    fn is_observation(&self, input: &StrInput, _: &StrOutput) -> bool {
        matches!(input, StrInput::Get { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_built_differently_are_one_state_and_different_ones_are_not() {
        let a = StrState::new("").append("x 1").append(" y");
        let b = StrState::new("x").append(" 1 y");
        assert_eq!(a, b);
        let hash = |s: &StrState| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(a, StrState::new("x 1 z"));
        assert_ne!(StrState::new("ab"), StrState::new("ba"));
    }
}
