//! The general linearizability search, for partitions the fast path cannot decide.
//!
//! This is the backtracking search of Wing & Gong ("Testing and verifying concurrent
//! objects", 1993) organised the way Lowe describes ("Testing for linearizability",
//! 2017): operations are linearized *just in time*, when the history reaches an
//! operation's completion and it has not been linearized yet; at that point the
//! search may linearize any of the pending operations first, one at a time, and
//! backtracks when no order works. Configurations already shown to fail are memoised.
//!
//! What differs from Porcupine's rendering of the same idea is the memo key. A
//! configuration is identified by the position in the event list, the set of
//! *pending* operations already linearized and the model state. Everything before the
//! position is linearized in every configuration at that position, so the pending
//! window (at most 128 operations; one bit each in a `u128`) is all the key needs:
//! each entry costs a few dozen bytes and hashes in O(1), instead of an n-bit bitset
//! per entry. Memory stays proportional to the number of failed configurations times
//! the window, not to the history length squared.
//!
//! Operations that never completed (`complete == None`) stay pending to the end and
//! are never required: each may be linearized at any time after its invocation, or
//! not at all. Since they never leave the window, a key with many of them would
//! overflow it; interchangeable ones (writes of values nobody reads, removals) can
//! instead be passed as [`Ghosts`], which cost one counter each in the memo key.
//!
//! The memo stores each distinct model state once and keys entries by its number,
//! so a memo entry costs the same few dozen bytes whatever the state (a string that
//! grows with every `append` is stored once, not once per configuration), and both
//! count against the memory budget: the state by [`Model::state_bytes`].
//!
//! Two rules keep the branching down. An *observation* (an operation that never
//! changes the state, such as a read) that is legal in the current state is
//! linearized at once, as a forced move: it changes nothing, everything that must
//! precede it already has, so delaying it can never help. And an optional [`Prune`]
//! lets a model cut branches it knows are dead; the register
//! model uses it when values are unique (a value still awaited by a pending read may
//! not be overwritten).

use hashbrown::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use crate::model::{Entry, Model};

/// Limits shared by every partition of one check.
#[derive(Debug)]
pub struct Budget {
    /// Give up after this instant.
    pub deadline: Instant,
    /// Give up when the memo caches of all partitions together exceed this (bytes).
    pub memory_limit: usize,
    /// Bytes currently held by memo caches.
    pub memory_used: AtomicUsize,
    /// Set by anyone to stop every search.
    pub cancelled: AtomicBool,
}

impl Budget {
    /// A budget of `time` and `memory_limit` bytes starting now.
    #[must_use]
    pub fn new(time: std::time::Duration, memory_limit: usize) -> Self {
        Budget {
            deadline: Instant::now() + time,
            memory_limit,
            memory_used: AtomicUsize::new(0),
            cancelled: AtomicBool::new(false),
        }
    }

    fn exceeded(&self) -> Option<String> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Some("cancelled".into());
        }
        if Instant::now() > self.deadline {
            return Some("time budget exceeded".into());
        }
        let used = self.memory_used.load(Ordering::Relaxed);
        if used > self.memory_limit {
            return Some(format!(
                "memory budget exceeded ({} MiB of search caches)",
                used >> 20
            ));
        }
        None
    }
}

/// The result of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A linearization exists.
    Ok,
    /// None exists. `frontier` is the completion event the search could never get
    /// past (an index into the history slice: the op that could not be linearized in
    /// the deepest configuration reached).
    Violation {
        /// Index (into the searched slice) of the operation at the deepest failure.
        frontier: usize,
    },
    /// The budget ran out, or the window exceeded 128 operations.
    Unknown(String),
    /// The [`Limit`] of this call was reached (its step count, or its stop flag):
    /// not decided yet; the caller may search again with a larger limit.
    Paused,
}

/// A per-call bound on the search, on top of the shared [`Budget`]: lets a caller
/// share its time among partitions in rounds, and stop the rest once one partition
/// has proven a violation.
#[derive(Debug, Clone, Copy)]
pub struct Limit<'a> {
    /// Pause after this many search steps.
    pub max_steps: u64,
    /// Pause as soon as this is set (checked every few thousand steps).
    pub stop: Option<&'a AtomicBool>,
}

impl Limit<'_> {
    /// No limit beyond the budget.
    pub const NONE: Limit<'static> = Limit {
        max_steps: u64::MAX,
        stop: None,
    };
}

/// Domain knowledge that lets the search skip dead branches. It must never reject a
/// step that some linearization takes.
pub trait Prune<M: Model> {
    /// May operation `op` be linearized next from `state`?
    fn allows(&self, state: &M::State, op: usize) -> bool;
    /// `op` was linearized.
    fn apply(&mut self, op: usize);
    /// `op` was un-linearized (backtracking).
    fn undo(&mut self, op: usize);
    /// May a write of a value nobody reads replace `state` now?
    fn allows_overwrite(&self, _state: &M::State) -> bool {
        true
    }
}

/// Indeterminate writes of values nobody reads ("ghosts"), handled in bulk.
///
/// Such a write matters only by making the object hold *some* value no read can
/// name, and any two of them are interchangeable except for their invocation times.
/// So instead of keeping each one pending (in the window) forever, the search keeps
/// a counter: the next ghost may be linearized, as a step to `state`, once it has
/// been invoked; the earliest-invoked are used first (any linearization that uses
/// k ghosts can use the k earliest instead). Exact, and O(1) per configuration.
#[derive(Debug, Clone)]
pub struct Ghosts<S> {
    /// Invocation times, ascending.
    pub invokes: Vec<u64>,
    /// The state a ghost write leads to.
    pub state: S,
}

/// No pruning.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrune;

impl<M: Model> Prune<M> for NoPrune {
    fn allows(&self, _: &M::State, _: usize) -> bool {
        true
    }
    fn apply(&mut self, _: usize) {}
    fn undo(&mut self, _: usize) {}
}

#[derive(Clone, Copy)]
enum Event {
    Invoke(u32),
    Complete(u32),
}

struct Frame<S> {
    e: usize,
    lin: u128,
    state: S,
    /// Ghosts used so far, per class.
    ghost: [u32; GHOST_CLASSES],
    /// How many ghost classes have been tried from this frame.
    tried_ghost: usize,
    /// The length of the undo stack when the frame was made.
    undo_len: usize,
    /// Has the completing operation itself been tried?
    tried_first: bool,
    /// The last other candidate tried, by (invocation, index).
    cursor: Option<(u64, u32)>,
}

/// What one memo entry costs, hash table overhead included: the key is 32 bytes
/// (position, window bitset, ghost counters, state number), and a hash table holds
/// up to twice its length in slots while it grows.
const MEMO_ENTRY_BYTES: usize = 80;
/// What one distinct state costs besides its heap bytes (map slot, hash, number).
const STATE_ENTRY_BYTES: usize = 48;

/// Search for a linearization of `history` (one partition) under `model`.
pub fn search<M: Model, P: Prune<M>>(
    model: &M,
    history: &[Entry<M::Input, M::Output>],
    prune: &mut P,
    budget: &Budget,
) -> Outcome
where
    M::State: Hash + Eq,
{
    search_with_ghosts(model, history, &[], prune, budget)
}

/// How many classes of [`Ghosts`] a search takes.
pub const GHOST_CLASSES: usize = 2;

/// [`search`], with interchangeable indeterminate operations handled in bulk (see
/// [`Ghosts`]; at most [`GHOST_CLASSES`] classes).
pub fn search_with_ghosts<M: Model, P: Prune<M>>(
    model: &M,
    history: &[Entry<M::Input, M::Output>],
    ghosts: &[Ghosts<M::State>],
    prune: &mut P,
    budget: &Budget,
) -> Outcome
where
    M::State: Hash + Eq,
{
    search_bounded(model, history, ghosts, prune, budget, Limit::NONE)
}

/// [`search_with_ghosts`] that pauses ([`Outcome::Paused`]) at `limit`.
#[allow(clippy::too_many_lines)]
pub fn search_bounded<M: Model, P: Prune<M>>(
    model: &M,
    history: &[Entry<M::Input, M::Output>],
    ghosts: &[Ghosts<M::State>],
    prune: &mut P,
    budget: &Budget,
    limit: Limit<'_>,
) -> Outcome
where
    M::State: Hash + Eq,
{
    assert!(
        ghosts.len() <= GHOST_CLASSES,
        "at most {GHOST_CLASSES} ghost classes"
    );
    let n = history.len();
    let Ok(n32) = u32::try_from(n) else {
        return Outcome::Unknown("partition too large".into());
    };
    let mut events = Vec::with_capacity(2 * n);
    for i in 0..n32 {
        events.push(Event::Invoke(i));
        if history[i as usize].complete.is_some() {
            events.push(Event::Complete(i));
        }
    }
    let key = |ev: &Event| match *ev {
        Event::Invoke(i) => (history[i as usize].invoke, 0u8, i),
        Event::Complete(i) => (history[i as usize].end(), 1u8, i),
    };
    events.sort_unstable_by_key(key);

    // Static slot assignment: an op takes the lowest free slot at its invocation.
    let mut slot = vec![0u8; n];
    {
        let mut free: u128 = !0;
        for ev in &events {
            match *ev {
                Event::Invoke(i) => {
                    if free == 0 {
                        return Outcome::Unknown(
                            "more than 128 operations pending at once on one partition".into(),
                        );
                    }
                    let s = free.trailing_zeros();
                    free &= !(1u128 << s);
                    slot[i as usize] = u8::try_from(s).expect("slot < 128");
                }
                Event::Complete(i) => free |= 1u128 << slot[i as usize],
            }
        }
    }
    let bit = |i: u32| 1u128 << slot[i as usize];

    let mut window: u128 = 0;
    let mut slot_op = [u32::MAX; 128];
    let mut cur_e = 0usize;
    let mut memo: HashSet<(u32, u128, [u32; GHOST_CLASSES], u32)> = HashSet::new();
    // Each distinct state of a memo entry, once, with its number.
    let mut states: HashMap<M::State, u32> = HashMap::new();
    let mut charged = 0usize;
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut deepest = (0usize, 0usize);
    let mut steps = 0u64;

    let mut lin: u128 = 0;
    let mut undo: Vec<u32> = Vec::new();
    let mut ghost = [0u32; GHOST_CLASSES];
    let mut state = model.init();
    let outcome = 'search: loop {
        // Advance through invocations and completions of linearized operations;
        // linearize every pending observation that is legal now (see below).
        let mut e = cur_e;
        let x = loop {
            while e < events.len() {
                match events[e] {
                    Event::Invoke(i) => {
                        window |= bit(i);
                        slot_op[slot[i as usize] as usize] = i;
                    }
                    Event::Complete(i) => {
                        if lin & bit(i) == 0 {
                            break;
                        }
                        lin &= !bit(i);
                        window &= !bit(i);
                    }
                }
                e += 1;
            }
            if e == events.len() {
                break None;
            }
            // An observation that is legal in the current state can be linearized
            // right away without losing any linearization: it changes nothing, and
            // everything that must precede it already has. So it is a forced move.
            let mut bits = window & !lin;
            while bits != 0 {
                let s = bits.trailing_zeros();
                bits &= bits - 1;
                let i = slot_op[s as usize];
                let o = &history[i as usize];
                if model.is_observation(&o.input, &o.output)
                    && prune.allows(&state, i as usize)
                    && let Some(next) = model.step(&state, &o.input, &o.output)
                {
                    state = next;
                    lin |= 1u128 << s;
                    prune.apply(i as usize);
                    undo.push(i);
                }
            }
            let Event::Complete(x) = events[e] else {
                unreachable!("the loop stops only at a completion")
            };
            if lin & bit(x) == 0 {
                break Some(x);
            }
        };
        cur_e = e;
        let Some(x) = x else {
            break 'search Outcome::Ok;
        };
        if e > deepest.0 {
            deepest = (e, x as usize);
        }
        let e32 = u32::try_from(e).expect("fewer than 2^32 events");
        let mut backtrack = false;
        let known = states
            .get(&state)
            .is_some_and(|&sid| memo.contains(&(e32, lin, ghost, sid)));
        if !known {
            stack.push(Frame {
                e,
                lin,
                state: state.clone(),
                ghost,
                tried_ghost: 0,
                undo_len: undo.len(),
                tried_first: false,
                cursor: None,
            });
        }
        // Pick the next candidate from the top frame, backtracking as needed.
        loop {
            steps += 1;
            if steps.is_multiple_of(4096) {
                if let Some(reason) = budget.exceeded() {
                    break 'search Outcome::Unknown(reason);
                }
                if steps >= limit.max_steps || limit.stop.is_some_and(|s| s.load(Ordering::Relaxed))
                {
                    break 'search Outcome::Paused;
                }
            }
            if backtrack {
                // The top frame is exhausted (or was memoised): drop back to its parent.
                if let Some(done) = stack.pop() {
                    let fe = u32::try_from(done.e).expect("fewer than 2^32 events");
                    let next_id = u32::try_from(states.len()).expect("fewer than 2^32 states");
                    let mut cost = 0;
                    let sid = *states.entry(done.state).or_insert_with_key(|st| {
                        cost += STATE_ENTRY_BYTES + model.state_bytes(st);
                        next_id
                    });
                    if memo.insert((fe, done.lin, done.ghost, sid)) {
                        cost += MEMO_ENTRY_BYTES;
                    }
                    charged += cost;
                    let used = budget.memory_used.fetch_add(cost, Ordering::Relaxed) + cost;
                    // Checked at once, not every few thousand steps: one step may
                    // add a large state.
                    if used > budget.memory_limit {
                        break 'search Outcome::Unknown(format!(
                            "memory budget exceeded ({} MiB of search caches)",
                            used >> 20
                        ));
                    }
                }
                backtrack = false;
            }
            let Some(frame) = stack.last_mut() else {
                break 'search Outcome::Violation {
                    frontier: deepest.1,
                };
            };
            // Rewind the window to the frame's position.
            while cur_e > frame.e {
                cur_e -= 1;
                match events[cur_e] {
                    Event::Invoke(i) => window &= !bit(i),
                    Event::Complete(i) => {
                        window |= bit(i);
                        slot_op[slot[i as usize] as usize] = i;
                    }
                }
            }
            // Undo everything linearized since the frame was made.
            while undo.len() > frame.undo_len {
                let a = undo.pop().expect("longer than undo_len");
                prune.undo(a as usize);
            }
            let Event::Complete(x) = events[frame.e] else {
                unreachable!("frames sit at completions")
            };
            let mut next = None;
            if !frame.tried_first {
                frame.tried_first = true;
                next = Some(x);
            }
            if next.is_none() {
                // The pending, unlinearized op with the smallest (invocation, index) after the cursor.
                let mut best: Option<(u64, u32)> = None;
                let mut bits = window & !frame.lin & !bit(x);
                while bits != 0 {
                    let s = bits.trailing_zeros();
                    bits &= bits - 1;
                    let i = slot_op[s as usize];
                    let k = (history[i as usize].invoke, i);
                    if frame.cursor.is_none_or(|c| k > c) && best.is_none_or(|b| k < b) {
                        best = Some(k);
                    }
                }
                if let Some(k) = best {
                    frame.cursor = Some(k);
                    next = Some(k.1);
                }
            }
            let Some(y) = next else {
                // Last resorts: the next ghost of each class, if invoked by now.
                while frame.tried_ghost < ghosts.len() {
                    let c = frame.tried_ghost;
                    frame.tried_ghost += 1;
                    let now = history[x as usize].end();
                    if ghosts[c]
                        .invokes
                        .get(frame.ghost[c] as usize)
                        .is_some_and(|&t| t <= now)
                        && prune.allows_overwrite(&frame.state)
                    {
                        lin = frame.lin;
                        ghost = frame.ghost;
                        ghost[c] += 1;
                        state = ghosts[c].state.clone();
                        cur_e = frame.e;
                        continue 'search;
                    }
                }
                backtrack = true;
                continue;
            };
            let op = &history[y as usize];
            if !prune.allows(&frame.state, y as usize) {
                continue;
            }
            let Some(new_state) = model.step(&frame.state, &op.input, &op.output) else {
                continue;
            };
            prune.apply(y as usize);
            undo.push(y);
            lin = frame.lin | bit(y);
            ghost = frame.ghost;
            state = new_state;
            cur_e = frame.e;
            continue 'search;
        }
    };
    budget.memory_used.fetch_sub(charged, Ordering::Relaxed);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::Interner;
    use crate::model::register::{Action, RegEntry, Register, Reply};

    fn op(process: u64, invoke: u64, complete: u64, input: Action, output: Reply) -> RegEntry {
        Entry {
            process,
            invoke,
            complete: Some(complete),
            input,
            output,
            source: 0,
        }
    }

    fn run(h: &[RegEntry], budget: &Budget) -> Outcome {
        let names = Interner::new("nil");
        search(&Register { values: &names }, h, &mut NoPrune, budget)
    }

    fn roomy() -> Budget {
        Budget::new(std::time::Duration::from_secs(10), 1 << 30)
    }

    #[test]
    fn finds_a_linearization_that_reorders_concurrent_writes() {
        // w1 and w2 overlap; the reads show w2 took effect first.
        let h = [
            op(1, 0, 10, Action::Write(1), Reply::Ok),
            op(2, 1, 9, Action::Write(2), Reply::Ok),
            op(3, 2, 3, Action::Read, Reply::Value(2)),
            op(3, 11, 12, Action::Read, Reply::Value(1)),
        ];
        assert_eq!(run(&h, &roomy()), Outcome::Ok);
    }

    #[test]
    fn identifies_unlinearizable_register_history() {
        // A read after both writes finished sees the first one, then the second.
        let h = [
            op(1, 0, 1, Action::Write(1), Reply::Ok),
            op(2, 2, 3, Action::Write(2), Reply::Ok),
            op(3, 4, 5, Action::Read, Reply::Value(2)),
            op(3, 6, 7, Action::Read, Reply::Value(1)),
        ];
        assert!(matches!(run(&h, &roomy()), Outcome::Violation { .. }));
    }

    #[test]
    fn indeterminate_writes_may_apply_late_or_never() {
        let pending = |v| Entry {
            process: 9,
            invoke: 0,
            complete: None,
            input: Action::Write(v),
            output: Reply::Ok,
            source: 0,
        };
        let h = [
            pending(1),
            op(2, 5, 6, Action::Read, Reply::Value(0)),
            op(2, 100, 101, Action::Read, Reply::Value(1)),
        ];
        assert_eq!(run(&h, &roomy()), Outcome::Ok);
        let never = [pending(1), op(2, 5, 6, Action::Read, Reply::Value(0))];
        assert_eq!(run(&never, &roomy()), Outcome::Ok);
    }

    #[test]
    fn an_exceeded_memory_budget_is_unknown() {
        // 14 overlapping writes, then reads that no order satisfies: without pruning
        // the search must try many subsets before failing.
        let mut h: Vec<RegEntry> = (1..=14)
            .map(|v| op(v.into(), 0, 100, Action::Write(v), Reply::Ok))
            .collect();
        h.push(op(20, 200, 201, Action::Read, Reply::Value(1)));
        h.push(op(20, 202, 203, Action::Read, Reply::Value(2)));
        let tiny = Budget::new(std::time::Duration::from_secs(10), 1024);
        match run(&h, &tiny) {
            Outcome::Unknown(reason) => assert!(reason.contains("memory"), "{reason}"),
            other => panic!("expected unknown, got {other:?}"),
        }
        assert!(matches!(run(&h, &roomy()), Outcome::Violation { .. }));
    }
}
