//! Models: what a sequential object does, as a few pure functions.
//!
//! The shape follows Porcupine's model (an initial state, a step function that says
//! whether an operation with its observed output is legal from a state and what state
//! it leads to, a partition function and a describe function), but typed: the state,
//! the inputs and the outputs are Rust types, and the search in [`crate::search`] is
//! generic over them.
//!
//! Built-in models:
//! - [`register::Register`]: read / write / compare-and-set (and delete / clear) on
//!   one register whose values are interned to `u32`. The key-value store is checked
//!   as one register per key (see [`kv`]); Jepsen register logs use it directly.
//! - [`strkv::StrKv`]: a string-valued map with `get` / `put` / `append`, partitioned
//!   per key, for EDN-style histories.

pub mod kv;
pub mod register;
pub mod strkv;

use std::hash::Hash;

/// One operation of a history, paired with its observed output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<I, O> {
    /// The process that performed it.
    pub process: u64,
    /// When it was invoked.
    pub invoke: u64,
    /// When it completed; `None` when it never answered (indeterminate: it may take
    /// effect at any time after `invoke`, or never).
    pub complete: Option<u64>,
    /// What was asked.
    pub input: I,
    /// What was answered (meaningless for an indeterminate operation that only
    /// mutates; for those the model must accept any reply).
    pub output: O,
    /// Index of the record this entry came from (for reports).
    pub source: usize,
}

impl<I, O> Entry<I, O> {
    /// The completion time, with "never" as `u64::MAX`.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.complete.unwrap_or(u64::MAX)
    }

    /// True when `self` finished before `other` started (real-time order).
    #[must_use]
    pub fn precedes<J, P>(&self, other: &Entry<J, P>) -> bool {
        self.end() < other.invoke
    }
}

/// A sequential specification.
pub trait Model: Sync {
    /// The object's state.
    type State: Clone + Eq + Hash + Send + Sync;
    /// An operation's input.
    type Input: Clone + Send + Sync;
    /// An operation's output.
    type Output: Clone + Send + Sync;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// If `input` answered with `output` is legal in `state`, the state after it.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Split a history into independent sub-histories (P-compositionality: the
    /// history is linearizable iff every part is). Each part is a list of indices
    /// into `history` and a name for reports. The default is one part.
    fn partition(&self, history: &[Entry<Self::Input, Self::Output>]) -> Vec<(String, Vec<usize>)> {
        vec![("all".to_owned(), (0..history.len()).collect())]
    }

    /// Heap bytes a state holds beyond its own size (e.g. a string's buffer), so that
    /// the search can charge its memo to the memory budget. The default, 0, is right
    /// for states without heap data.
    fn state_bytes(&self, _state: &Self::State) -> usize {
        0
    }

    /// A short human description of an operation, e.g. `set k=v1 -> ok`.
    fn describe(&self, input: &Self::Input, output: &Self::Output) -> String;

    /// True when the operation never changes the state (a pure observation), so
    /// removing it from a history can only make the history easier to linearize.
    /// Used to shrink witnesses soundly; the default (`false`) is always safe.
    fn is_observation(&self, _input: &Self::Input, _output: &Self::Output) -> bool {
        false
    }
}
