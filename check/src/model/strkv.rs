//! A string-valued map with `get` / `put` / `append`, as in Jepsen's and Porcupine's
//! key-value histories: `append` concatenates to the current string, so values are
//! not unique and states are strings. Partitioned per key; checked by the search.

use super::{Entry, Model};

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
    type State = String;
    type Input = StrInput;
    type Output = StrOutput;

    fn init(&self) -> String {
        String::new()
    }

    fn step(&self, state: &String, input: &StrInput, output: &StrOutput) -> Option<String> {
        match (input, output) {
            (StrInput::Get { .. }, StrOutput::Value(v)) => (v == state).then(|| state.clone()),
            (StrInput::Put { value, .. }, _) => Some(value.clone()),
            (StrInput::Append { value, .. }, _) => Some(format!("{state}{value}")),
            (StrInput::Get { .. }, StrOutput::Ok) => None,
        }
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
