//! One register with interned values: read / write / compare-and-set, plus the
//! delete and clear of a key-value store seen from one key.
//!
//! Value 0 ([`ABSENT`]) is the register's initial content: "no value" for a store
//! key, `nil` for a Jepsen register.

use hashbrown::HashMap;

use super::{Entry, Model};
use crate::intern::Interner;
use crate::search::Prune;

/// An interned value.
pub type Val = u32;

/// The absent value (initial state; what `delete` and `clear` leave behind).
pub const ABSENT: Val = 0;

/// Some value that no read names: the state after an indeterminate write nobody
/// read (see [`crate::search::Ghosts`]).
pub const GHOST: Val = u32::MAX;

/// What an operation asks of the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Write a value (unconditionally).
    Write(Val),
    /// Read the value.
    Read,
    /// If the value is `expect`, replace it with `new`.
    Cas {
        /// The value compared against.
        expect: Val,
        /// The value written on a match.
        new: Val,
    },
    /// Remove the value if present.
    Delete,
    /// Remove the value unconditionally (a `clear`, or a `delete` whose outcome is
    /// unknown: if it happened the key is absent afterwards either way).
    Clear,
}

/// What the register answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// The operation took effect (`Write`, `Clear`, a matching `Cas`, a `Delete`
    /// that found a value).
    Ok,
    /// A `Read` saw this value ([`ABSENT`] = not found / nil).
    Value(Val),
    /// A `Read` saw that some value is present without naming it (a `list` that
    /// contained the key).
    Present,
    /// A `Delete` found nothing.
    NotFound,
    /// A `Cas` did not match: the value was not `expect`.
    Mismatch,
}

/// An operation of the register model.
pub type RegEntry = Entry<Action, Reply>;

/// The register model; `values` names the interned values for reports.
#[derive(Debug, Clone, Copy)]
pub struct Register<'a> {
    /// The names of the values.
    pub values: &'a Interner,
}

impl Register<'_> {
    /// The state this operation needs, when it needs exactly one: used for pruning.
    #[must_use]
    pub fn condition(action: Action, reply: Reply) -> Condition {
        match (action, reply) {
            (Action::Write(_) | Action::Clear, _) => Condition::None,
            (Action::Read, Reply::Value(v)) | (Action::Cas { expect: v, .. }, Reply::Ok) => {
                Condition::Is(v)
            }
            (Action::Delete, Reply::NotFound) => Condition::Is(ABSENT),
            (Action::Read, Reply::Present) | (Action::Delete, Reply::Ok) => {
                Condition::IsNot(ABSENT)
            }
            (Action::Cas { expect, .. }, Reply::Mismatch) => Condition::IsNot(expect),
            _ => Condition::Impossible,
        }
    }

    /// The value this operation leaves, if it changes the register.
    #[must_use]
    pub fn effect(action: Action, reply: Reply) -> Option<Val> {
        match (action, reply) {
            (Action::Write(v), _) | (Action::Cas { new: v, .. }, Reply::Ok) => Some(v),
            (Action::Delete, Reply::Ok) | (Action::Clear, _) => Some(ABSENT),
            _ => None,
        }
    }
}

/// What an operation requires of the state before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Nothing.
    None,
    /// The value is exactly this.
    Is(Val),
    /// The value is anything but this.
    IsNot(Val),
    /// The reply is impossible for the action.
    Impossible,
}

impl Condition {
    /// Does `state` satisfy it?
    #[must_use]
    pub fn holds(self, state: Val) -> bool {
        match self {
            Condition::None => true,
            Condition::Is(v) => state == v,
            Condition::IsNot(v) => state != v,
            Condition::Impossible => false,
        }
    }
}

impl Model for Register<'_> {
    type State = Val;
    type Input = Action;
    type Output = Reply;

    fn init(&self) -> Val {
        ABSENT
    }

    #[inline]
    fn step(&self, state: &Val, input: &Action, output: &Reply) -> Option<Val> {
        if !Register::condition(*input, *output).holds(*state) {
            return None;
        }
        Some(Register::effect(*input, *output).unwrap_or(*state))
    }

    fn describe(&self, input: &Action, output: &Reply) -> String {
        let name = |v: Val| {
            if v == GHOST {
                "<unread value>".to_owned()
            } else {
                self.values.name(v).to_owned()
            }
        };
        match (input, output) {
            (Action::Write(v), _) => format!("write {}", name(*v)),
            (Action::Read, Reply::Value(v)) if *v == ABSENT => "read -> not found".into(),
            (Action::Read, Reply::Value(v)) => format!("read -> {}", name(*v)),
            (Action::Read, Reply::Present) => "list -> present".into(),
            (Action::Read, r) => format!("read -> {r:?}"),
            (Action::Cas { expect, new }, Reply::Ok) => {
                format!("cas {} -> {}: ok", name(*expect), name(*new))
            }
            (Action::Cas { expect, new }, _) => {
                format!("cas {} -> {}: mismatch", name(*expect), name(*new))
            }
            (Action::Delete, Reply::NotFound) => "delete -> not found".into(),
            (Action::Delete, _) => "delete -> ok".into(),
            (Action::Clear, _) => "clear".into(),
        }
    }

    fn is_observation(&self, input: &Action, output: &Reply) -> bool {
        Register::effect(*input, *output).is_none()
    }
}

/// Pruning for the search when values are unique: a value written exactly once and
/// still awaited by a pending read can never come back once overwritten, so nothing
/// may overwrite it until all its reads are linearized.
#[derive(Debug, Clone)]
pub struct UniquePrune {
    remaining: HashMap<Val, u32>,
    reads: Vec<Val>,
    effects: Vec<Option<Val>>,
}

impl UniquePrune {
    /// Count, for every value written exactly once, the reads that require it.
    #[must_use]
    pub fn new(ops: &[RegEntry]) -> Self {
        let mut writes: HashMap<Val, u32> = HashMap::new();
        for op in ops {
            if let Some(v) = Register::effect(op.input, op.output)
                && v != ABSENT
            {
                *writes.entry(v).or_default() += 1;
            }
        }
        let mut remaining: HashMap<Val, u32> = HashMap::new();
        let reads = ops
            .iter()
            .map(|op| match Register::condition(op.input, op.output) {
                Condition::Is(v)
                    if v != ABSENT && op.complete.is_some() && writes.get(&v) == Some(&1) =>
                {
                    *remaining.entry(v).or_default() += 1;
                    v
                }
                _ => ABSENT,
            })
            .collect();
        let effects = ops
            .iter()
            .map(|op| Register::effect(op.input, op.output))
            .collect();
        UniquePrune {
            remaining,
            reads,
            effects,
        }
    }
}

impl Prune<Register<'_>> for UniquePrune {
    #[inline]
    fn allows(&self, state: &Val, op: usize) -> bool {
        let Some(&left) = self.remaining.get(state) else {
            return true;
        };
        let own = u32::from(self.reads[op] == *state);
        // `op` is about to be linearized; if it changes the state, no other read of
        // the current value may still be waiting.
        left <= own || self.effects[op].is_none_or(|v| v == *state)
    }

    fn allows_overwrite(&self, state: &Val) -> bool {
        self.remaining.get(state).is_none_or(|&left| left == 0)
    }

    #[inline]
    fn apply(&mut self, op: usize) {
        let v = self.reads[op];
        if v != ABSENT
            && let Some(c) = self.remaining.get_mut(&v)
        {
            *c -= 1;
        }
    }

    #[inline]
    fn undo(&mut self, op: usize) {
        let v = self.reads[op];
        if v != ABSENT
            && let Some(c) = self.remaining.get_mut(&v)
        {
            *c += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_register_semantics() {
        let names = Interner::new("nil");
        let m = Register { values: &names };
        assert_eq!(m.step(&ABSENT, &Action::Write(3), &Reply::Ok), Some(3));
        assert_eq!(m.step(&3, &Action::Read, &Reply::Value(3)), Some(3));
        assert_eq!(m.step(&3, &Action::Read, &Reply::Value(4)), None);
        assert_eq!(m.step(&3, &Action::Read, &Reply::Present), Some(3));
        assert_eq!(m.step(&ABSENT, &Action::Read, &Reply::Present), None);
        assert_eq!(m.step(&3, &Action::Delete, &Reply::Ok), Some(ABSENT));
        assert_eq!(m.step(&ABSENT, &Action::Delete, &Reply::Ok), None);
        assert_eq!(
            m.step(&ABSENT, &Action::Delete, &Reply::NotFound),
            Some(ABSENT)
        );
        let cas = Action::Cas { expect: 3, new: 5 };
        assert_eq!(m.step(&3, &cas, &Reply::Ok), Some(5));
        assert_eq!(m.step(&4, &cas, &Reply::Ok), None);
        assert_eq!(m.step(&4, &cas, &Reply::Mismatch), Some(4));
        assert_eq!(m.step(&3, &cas, &Reply::Mismatch), None);
        assert_eq!(m.step(&3, &Action::Clear, &Reply::Ok), Some(ABSENT));
    }
}
