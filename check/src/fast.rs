//! The fast path for registers whose written values are unique: every read names
//! the one write it came from, and the problem becomes polynomial.
//!
//! Gibbons & Korach ("Testing shared memories", SIAM J. Computing 1997) show that
//! checking a read/write register is O(n log n) once each read's source write is
//! known. We use the *zone* formulation of that result (as in Golab, Li & Shah,
//! "Analyzing consistency properties for fun and profit", PODC 2011): a *cluster* is a
//! write with the reads of its value; its zone runs from the earliest completion to
//! the latest invocation among its operations. If the earliest completion comes
//! first, the zone is *forward* and the value must be held through the whole zone;
//! otherwise it is *backward* and the whole cluster fits at one instant. Then the
//! history is linearizable iff
//! 1. no read completes before its write is invoked,
//! 2. no two forward zones overlap, and
//! 3. no backward zone lies inside a forward zone.
//!
//! The initial "absent" state is one more cluster whose write happens before time.
//!
//! Deletes, clears and `list` observations make "absent" (and "present") values
//! ambiguous: many operations produce the same absent value. For such partitions the
//! three conditions above stay *necessary* (they only speak of unique values), and we
//! add two more necessary conditions:
//! 4. an "absent" observation needs a source (the start, a delete, a clear) that is
//!    not separated from it by a write that finished after the source and before the
//!    observation started (the typical lost write: `set k` acknowledged, later `get
//!    k` → not found, no delete in between);
//! 5. a successful delete (or a `list` that shows the key) needs a write that is not
//!    separated from it by a removal.
//!
//! A failed condition is a proof of violation with a handful of operations as
//! witness. When all pass, a partition without ambiguity is linearizable; an
//! ambiguous one goes to the search.

use crate::model::register::{ABSENT, Action, Condition, RegEntry, Register, Reply, Val};

/// The fast path's verdict on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FastVerdict {
    /// Linearizable (exact: the partition had no ambiguity).
    Ok,
    /// Not linearizable: sets of operations (indices into the partition) that each
    /// prove it, smallest first, each with a one-sentence reason.
    Violation {
        /// The proofs.
        proofs: Vec<(Vec<usize>, String)>,
    },
    /// The conditions hold but the partition is ambiguous: search it.
    Undecided,
    /// The fast path does not apply (repeated values, compare-and-set).
    NotApplicable,
}

#[derive(Debug, Clone, Copy)]
struct Zone {
    /// Earliest completion, and the op giving it.
    f: i128,
    f_op: usize,
    /// Latest invocation, and the op giving it.
    s: i128,
    s_op: usize,
    /// The write (or `usize::MAX` for the initial state).
    write: usize,
}

fn end(e: &RegEntry) -> i128 {
    i128::from(e.end())
}
fn start(e: &RegEntry) -> i128 {
    i128::from(e.invoke)
}

const BEFORE_TIME: i128 = -1;

/// Run the fast path on one partition.
#[must_use]
#[allow(clippy::collapsible_if, clippy::collapsible_match)]
pub fn check(ops: &[RegEntry]) -> FastVerdict {
    let mut proofs = Proofs::default();
    // Classify; group writes and reads of each value by sorting (value, kind).
    let mut ambiguous = false;
    let mut absent_obs = Vec::new();
    let mut by_value: Vec<(Val, u8, usize)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match (op.input, op.output) {
            (Action::Cas { .. }, _) | (_, Reply::Mismatch) | (Action::Write(ABSENT), _) => {
                return FastVerdict::NotApplicable;
            }
            (Action::Write(v), _) => by_value.push((v, 0, i)),
            (Action::Delete, Reply::Ok) | (Action::Clear, _) | (Action::Read, Reply::Present) => {
                ambiguous = true;
            }
            _ => match Register::condition(op.input, op.output) {
                Condition::Is(ABSENT) => absent_obs.push(i),
                Condition::Is(v) if op.complete.is_some() => by_value.push((v, 1, i)),
                Condition::Impossible => {
                    if proofs
                        .push_capped(vec![i], "the reply is impossible for the operation".into())
                    {
                        return proofs.verdict();
                    }
                }
                _ => {}
            },
        }
    }
    by_value.sort_unstable();
    let mut writes: Vec<usize> = Vec::new();
    let mut zones = Vec::new();
    for group in by_value.chunk_by(|a, b| a.0 == b.0) {
        let (_, kind, w) = group[0];
        if kind != 0 {
            for &(_, _, r) in group {
                if proofs.push_capped(
                    vec![r],
                    "it read a value that no operation wrote to this key".into(),
                ) {
                    return proofs.verdict();
                }
            }
            continue;
        }
        if group.len() > 1 && group[1].1 == 0 {
            return FastVerdict::NotApplicable; // the value was written twice
        }
        writes.push(w);
        let rs = &group[1..];
        if rs.is_empty() && ops[w].complete.is_none() {
            // An indeterminate write nobody read: it may never have happened.
            continue;
        }
        let mut z = Zone {
            f: end(&ops[w]),
            f_op: w,
            s: start(&ops[w]),
            s_op: w,
            write: w,
        };
        for &(_, _, r) in rs {
            if end(&ops[r]) < start(&ops[w]) {
                if proofs.push_capped(
                    vec![w, r],
                    "the read finished before the write of its value began".into(),
                ) {
                    return proofs.verdict();
                }
            }
            if end(&ops[r]) < z.f {
                z.f = end(&ops[r]);
                z.f_op = r;
            }
            if start(&ops[r]) > z.s {
                z.s = start(&ops[r]);
                z.s_op = r;
            }
        }
        zones.push(z);
    }
    if !ambiguous && !absent_obs.is_empty() {
        let s_op = *absent_obs
            .iter()
            .max_by_key(|&&i| ops[i].invoke)
            .expect("non-empty");
        zones.push(Zone {
            f: BEFORE_TIME,
            f_op: usize::MAX,
            s: start(&ops[s_op]),
            s_op,
            write: usize::MAX,
        });
    }
    let mut forward: Vec<Zone> = zones.iter().copied().filter(|z| z.f < z.s).collect();
    forward.sort_unstable_by_key(|z| (z.f, z.s));
    // The forward zone with the latest end among those up to each one.
    let mut reach: Vec<usize> = Vec::with_capacity(forward.len());
    for (i, z) in forward.iter().enumerate() {
        let best = match reach.last() {
            Some(&b) if forward[b].s >= z.s => b,
            _ => i,
        };
        reach.push(best);
    }
    // Zone `i` overlaps an earlier one iff it starts before the latest earlier end.
    for i in 1..forward.len() {
        let (a, b) = (forward[reach[i - 1]], forward[i]);
        if b.f < a.s {
            if proofs.push_capped(
                zone_ops(&[a, b]),
                "two values were each seen over stretches of time that overlap: one of the reads is stale".into(),
            ) {
                return proofs.verdict();
            }
        }
    }
    // The forward zone strictly around [lo, hi], if any.
    let around = |lo: i128, hi: i128| -> Option<Zone> {
        let idx = forward.partition_point(|z| z.f < lo);
        let z = forward[reach[idx.checked_sub(1)?]];
        (z.s > hi).then_some(z)
    };
    let mut absent_by_invoke = absent_obs.clone();
    absent_by_invoke.sort_unstable_by_key(|&a| ops[a].invoke);
    for z in zones.iter().filter(|z| z.f >= z.s) {
        if let Some(fz) = around(z.s, z.f) {
            let why = if fz.write == usize::MAX {
                "the key was found absent after a write to it finished, and nothing could have \
                 removed it in between"
            } else {
                "a write finished while an older state was still read after it: that read is stale"
            };
            let mut fz = fz;
            if fz.write == usize::MAX {
                // Name the first absent observation after the write, not the last.
                let k = absent_by_invoke.partition_point(|&a| start(&ops[a]) <= z.f);
                if let Some(&a) = absent_by_invoke.get(k) {
                    fz.s_op = a;
                }
            }
            if proofs.push_capped(zone_ops(&[fz, *z]), why.into()) {
                return proofs.verdict();
            }
        }
    }
    if !proofs.0.is_empty() {
        return proofs.verdict();
    }
    if !ambiguous {
        return FastVerdict::Ok;
    }

    // Necessary conditions for the ambiguous operations.
    for (i, op) in ops.iter().enumerate() {
        let point = matches!(
            (op.input, op.output),
            (
                Action::Read | Action::Delete,
                Reply::Value(ABSENT) | Reply::NotFound
            ) | (Action::Delete, Reply::Ok)
        ) || (op.input == Action::Clear && op.complete.is_some());
        if point && let Some(fz) = around(start(op), end(op)) {
            let mut w = zone_ops(&[fz]);
            w.push(i);
            if proofs.push_capped(
                w,
                "the key was absent (or removed) while a value had to be held".into(),
            ) {
                return proofs.verdict();
            }
        }
    }
    // Condition 4: absent observations need a source.
    let definite_writes: Vec<usize> = {
        let mut w: Vec<usize> = writes
            .iter()
            .copied()
            .filter(|&w| ops[w].complete.is_some())
            .collect();
        w.sort_unstable_by_key(|&w| ops[w].invoke);
        w
    };
    // Suffix minimum of end over writes sorted by invoke.
    let mut suffix_min: Vec<(i128, usize)> =
        vec![(i128::MAX, usize::MAX); definite_writes.len() + 1];
    for k in (0..definite_writes.len()).rev() {
        let w = definite_writes[k];
        suffix_min[k] = suffix_min[k + 1].min((end(&ops[w]), w));
    }
    let removals: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            matches!(
                (o.input, o.output),
                (Action::Delete, Reply::Ok) | (Action::Clear, _)
            )
        })
        .map(|(i, _)| i)
        .collect();
    let mut removals_by_invoke = removals.clone();
    removals_by_invoke.sort_unstable_by_key(|&r| ops[r].invoke);
    let absent_sources = SourceIndex::new(ops, &removals_by_invoke);
    for &a in &absent_obs {
        let (src_end, src) = absent_sources.latest(end(&ops[a]));
        // A definite write invoked after the source ended and finished before `a` began.
        let k = definite_writes.partition_point(|&w| start(&ops[w]) <= src_end);
        let (w_end, w) = suffix_min[k];
        if w != usize::MAX && w_end < start(&ops[a]) {
            let mut witness: Vec<usize> = src.into_iter().collect();
            witness.extend([w, a]);
            if proofs.push_capped(
                witness,
                "the key was found absent after a write finished, and nothing that could \
                      have removed it ran after that write"
                    .into(),
            ) {
                return proofs.verdict();
            }
        }
    }
    // Condition 5: a delete that found the key (or a list that showed it) needs a write.
    let mut writes_by_invoke: Vec<usize> = writes.clone();
    writes_by_invoke.sort_unstable_by_key(|&w| ops[w].invoke);
    let write_sources = SourceIndex::new(ops, &writes_by_invoke);
    let definite_removals: Vec<usize> = removals_by_invoke
        .iter()
        .copied()
        .filter(|&r| ops[r].complete.is_some())
        .collect();
    let mut rem_suffix_min = vec![(i128::MAX, usize::MAX); definite_removals.len() + 1];
    for k in (0..definite_removals.len()).rev() {
        let r = definite_removals[k];
        rem_suffix_min[k] = rem_suffix_min[k + 1].min((end(&ops[r]), r));
    }
    for (d, op) in ops.iter().enumerate() {
        if op.complete.is_none()
            || Register::condition(op.input, op.output) != Condition::IsNot(ABSENT)
        {
            continue;
        }
        let (w_end, w) = write_sources.latest(end(op));
        let Some(w) = w else {
            if proofs.push_capped(
                vec![d],
                "the key was found present but nothing was written to it before".into(),
            ) {
                return proofs.verdict();
            }
            continue;
        };
        // A definite removal invoked after the write ended and finished before `d`
        // began (`d` itself can never qualify: it does not finish before it begins).
        let k = definite_removals.partition_point(|&r| start(&ops[r]) <= w_end);
        let (r_end, r) = rem_suffix_min[k];
        if r != usize::MAX
            && r_end < start(op)
            && proofs.push_capped(
                vec![w, r, d],
                "the key was found present after it was removed, and no write ran after \
                      the removal"
                    .into(),
            )
        {
            return proofs.verdict();
        }
    }
    if proofs.0.is_empty() {
        FastVerdict::Undecided
    } else {
        proofs.verdict()
    }
}

/// Proofs found so far; collecting several lets the shrinker pick the smallest.
#[derive(Default)]
struct Proofs(Vec<(Vec<usize>, String)>);

/// How many proofs to collect before stopping.
const MAX_PROOFS: usize = 32;

impl Proofs {
    /// Add one; true when enough are collected.
    fn push_capped(&mut self, ops: Vec<usize>, why: String) -> bool {
        self.0.push((ops, why));
        self.0.len() >= MAX_PROOFS
    }

    fn verdict(&mut self) -> FastVerdict {
        let mut proofs = std::mem::take(&mut self.0);
        proofs.sort_by_key(|p| p.0.len());
        FastVerdict::Violation { proofs }
    }
}

/// The removals sorted by invocation with a running maximum of their completion, to
/// find the latest-ending source invoked by a deadline in O(log n).
struct SourceIndex {
    invokes: Vec<i128>,
    best: Vec<(i128, Option<usize>)>,
}

impl SourceIndex {
    fn new(ops: &[RegEntry], by_invoke: &[usize]) -> Self {
        let mut best = Vec::with_capacity(by_invoke.len());
        let mut cur = (BEFORE_TIME, None);
        for &r in by_invoke {
            cur = cur.max((end(&ops[r]), Some(r)));
            best.push(cur);
        }
        SourceIndex {
            invokes: by_invoke.iter().map(|&r| start(&ops[r])).collect(),
            best,
        }
    }

    fn latest(&self, deadline: i128) -> (i128, Option<usize>) {
        let k = self.invokes.partition_point(|&t| t <= deadline);
        if k == 0 {
            (BEFORE_TIME, None)
        } else {
            self.best[k - 1]
        }
    }
}

fn zone_ops(zs: &[Zone]) -> Vec<usize> {
    let mut v = Vec::new();
    for z in zs {
        for i in [z.write, z.f_op, z.s_op] {
            if i != usize::MAX && !v.contains(&i) {
                v.push(i);
            }
        }
    }
    v
}

/// A stretch of time over which a key must hold one value: the forward zone of a
/// cluster (see the module docs). Times are open at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The earliest completion in the cluster.
    pub from: i128,
    /// The latest invocation in the cluster.
    pub to: i128,
    /// The write, the op that completes first and the op invoked last (indices into
    /// the partition).
    pub ops: [usize; 3],
}

/// The stretches over which the partition must hold a written value, when written
/// values are unique (`None` otherwise). Used to check `list` across keys.
#[must_use]
pub fn held_stretches(ops: &[RegEntry]) -> Option<Vec<Held>> {
    let mut by_value: Vec<(Val, u8, usize)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match (op.input, op.output) {
            (Action::Cas { .. }, _) | (_, Reply::Mismatch) => return None,
            (Action::Write(v), _) if v != ABSENT => by_value.push((v, 0, i)),
            _ => {
                if let Condition::Is(v) = Register::condition(op.input, op.output)
                    && v != ABSENT
                    && op.complete.is_some()
                {
                    by_value.push((v, 1, i));
                }
            }
        }
    }
    by_value.sort_unstable();
    let mut out = Vec::new();
    for group in by_value.chunk_by(|a, b| a.0 == b.0) {
        let (_, kind, w) = group[0];
        if kind != 0 || (group.len() > 1 && group[1].1 == 0) {
            return None; // a read of an unwritten value, or a repeated value
        }
        let (mut f, mut f_op, mut s, mut s_op) = (end(&ops[w]), w, start(&ops[w]), w);
        for &(_, _, r) in &group[1..] {
            if end(&ops[r]) < f {
                (f, f_op) = (end(&ops[r]), r);
            }
            if start(&ops[r]) > s {
                (s, s_op) = (start(&ops[r]), r);
            }
        }
        if f < s {
            out.push(Held {
                from: f,
                to: s,
                ops: [w, f_op, s_op],
            });
        }
    }
    out.sort_unstable_by_key(|h| (h.from, h.to));
    Some(out)
}
