//! Shrinking a violating partition to a minimal witness.
//!
//! The witness must stay a *proof*: a sub-history that cannot be linearized on its
//! own and whose failure implies the failure of the whole partition. Removing an
//! arbitrary operation breaks that: drop the `delete` between `set k=1` and `get k →
//! not found` and the remaining pair "fails" although the original did not. So we
//! only remove operations together with their **closure**: removing a mutation `r`
//! also removes every operation that might have been linearized in `r`'s *epoch*
//! (after `r` and before the next mutation) and depends on the value `r` left: an
//! operation that does not finish before `r` starts, is not separated from `r` by
//! another mutation that finishes in between, and whose condition holds for `r`'s
//! value. Removed conditional mutations are closed over in turn. Removing a write
//! also removes every read of its value, so that no witness shows a read without the
//! write it read. If the partition has
//! a linearization, deleting such a closure from it leaves a linearization of the
//! rest, so a sub-history reached this way that fails proves the partition fails.
//!
//! The search for a small one is delta debugging (Zeller & Hildebrandt, 2002) over
//! these closures: try removing halves, then quarters, ... then single operations,
//! until no single removal keeps the violation (1-minimal), or the budget runs out.

use std::time::{Duration, Instant};

use crate::check::is_violation;
use hashbrown::HashMap;

use crate::model::register::{ABSENT, Condition, RegEntry, Register, Val};
use crate::model::{Entry, Model};
use crate::search::{self, Budget, NoPrune};

/// Ops to keep around a search frontier when seeding the shrink.
const FRONTIER_WINDOW: usize = 128;

/// Shrink from each seed (a proof, or a search frontier) and keep the smallest
/// result: the witness (indices into `ops`), its reason, and whether it is
/// 1-minimal.
pub(crate) fn shrink(
    model: &Register<'_>,
    ops: &[RegEntry],
    seeds: Vec<(Vec<usize>, String)>,
    budget: &Budget,
) -> (Vec<usize>, String, bool) {
    let left = budget.deadline.saturating_duration_since(Instant::now());
    let local = Budget::new(left.min(Duration::from_secs(10)), budget.memory_limit);
    let mut best: Option<(Vec<usize>, String, bool)> = None;
    for (seed, why) in seeds {
        if best.as_ref().is_some_and(|b| b.0.len() <= 2 && b.2) {
            break;
        }
        let (w, minimal) = shrink_one(model, ops, &seed, &local);
        if best
            .as_ref()
            .is_none_or(|b| (w.len(), !minimal) < (b.0.len(), !b.2))
        {
            best = Some((w, why, minimal));
        }
    }
    best.unwrap_or_else(|| {
        (
            (0..ops.len()).collect(),
            "no linearization exists".into(),
            false,
        )
    })
}

fn shrink_one(
    model: &Register<'_>,
    ops: &[RegEntry],
    seed: &[usize],
    local: &Budget,
) -> (Vec<usize>, bool) {
    let all: Vec<usize> = (0..ops.len()).collect();
    let oracle = |s: &[usize]| {
        let sub: Vec<RegEntry> = s.iter().map(|&i| ops[i].clone()).collect();
        is_violation(model, &sub, local)
    };
    // Seed: the fast path's proof, or a window of operations around the frontier.
    let mut seed: Vec<usize> = seed.to_vec();
    if seed.len() == 1 && ops.len() > FRONTIER_WINDOW {
        let f = seed[0];
        let mut by_invoke = all.clone();
        by_invoke.sort_unstable_by_key(|&i| ops[i].invoke);
        let pos = by_invoke.iter().position(|&i| i == f).unwrap_or(0);
        let t0 = ops[by_invoke[pos.saturating_sub(FRONTIER_WINDOW)]].invoke;
        let t1 = ops[f].end();
        seed = all
            .iter()
            .copied()
            .filter(|&i| ops[i].invoke <= t1 && ops[i].end() >= t0)
            .collect();
    }
    let mut s = all.clone();
    let complement: Vec<usize> = {
        let mut in_seed = vec![false; ops.len()];
        for &i in &seed {
            in_seed[i] = true;
        }
        all.iter().copied().filter(|&i| !in_seed[i]).collect()
    };
    let seeded = remove_with_closure(ops, &s, &complement);
    if !seeded.is_empty() && oracle(&seeded) {
        s = seeded;
    }
    ddmin(
        s,
        local.deadline,
        |s, i, end| remove_with_closure(ops, s, &s[i..end]),
        oracle,
    )
}

/// Delta debugging (Zeller & Hildebrandt): try removing chunks of `s`, halving the
/// chunk size whenever a pass removes nothing, until no single operation can go.
/// `candidate(s, i, end)` is what remains when `s[i..end]` is removed (a caller may
/// take more or fewer operations with it); `fails` says whether a candidate still
/// shows the violation. Returns the shrunk set and whether it is 1-minimal (false if
/// `deadline` passed first).
fn ddmin(
    mut s: Vec<usize>,
    deadline: Instant,
    candidate: impl Fn(&[usize], usize, usize) -> Vec<usize>,
    mut fails: impl FnMut(&[usize]) -> bool,
) -> (Vec<usize>, bool) {
    let mut chunk = (s.len() / 2).max(1);
    loop {
        let mut progress = false;
        let mut i = 0;
        while i < s.len() {
            if Instant::now() > deadline {
                return (s, false);
            }
            let end = (i + chunk).min(s.len());
            let s2 = candidate(&s, i, end);
            if !s2.is_empty() && s2.len() < s.len() && fails(&s2) {
                s = s2;
                progress = true;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 && !progress {
            return (s, true);
        }
        chunk = (chunk / 2).max(1);
    }
}

/// `s` minus `remove` and everything that depends on a removed mutation (see the
/// module docs). `s` and the result are sorted indices into `ops`.
pub(crate) fn remove_with_closure(ops: &[RegEntry], s: &[usize], remove: &[usize]) -> Vec<usize> {
    let mut removed = vec![false; ops.len()];
    let mut in_s = vec![false; ops.len()];
    for &i in s {
        in_s[i] = true;
    }
    // Barriers: definite mutations of `s`, by invoke, with the suffix minimum of end.
    let mut muts: Vec<usize> = s
        .iter()
        .copied()
        .filter(|&i| {
            ops[i].complete.is_some() && Register::effect(ops[i].input, ops[i].output).is_some()
        })
        .collect();
    muts.sort_unstable_by_key(|&i| ops[i].invoke);
    let mut suffix_min = vec![u64::MAX; muts.len() + 1];
    for k in (0..muts.len()).rev() {
        suffix_min[k] = suffix_min[k + 1].min(ops[muts[k]].end());
    }
    // Conditional operations of `s`, by invoke; those that never completed apart.
    let mut conds: Vec<usize> = Vec::new();
    let mut open_conds: Vec<usize> = Vec::new();
    let mut max_dur = 0u64;
    for &i in s {
        if Register::condition(ops[i].input, ops[i].output) == Condition::None {
            continue;
        }
        match ops[i].complete {
            Some(c) => {
                conds.push(i);
                max_dur = max_dur.max(c - ops[i].invoke);
            }
            None => open_conds.push(i),
        }
    }
    conds.sort_unstable_by_key(|&i| ops[i].invoke);
    // Readers of each value: a witness never keeps a read without the write it read.
    let mut readers: HashMap<Val, Vec<usize>> = HashMap::new();
    for &i in conds.iter().chain(&open_conds) {
        if let Condition::Is(v) = Register::condition(ops[i].input, ops[i].output)
            && v != ABSENT
        {
            readers.entry(v).or_default().push(i);
        }
    }
    let mut work: Vec<usize> = Vec::new();
    for &r in remove {
        if in_s[r] && !removed[r] {
            removed[r] = true;
            work.push(r);
        }
    }
    while let Some(r) = work.pop() {
        let Some(val) = Register::effect(ops[r].input, ops[r].output) else {
            continue;
        };
        for &o in readers.get(&val).map_or(&[][..], Vec::as_slice) {
            if !removed[o] && o != r {
                removed[o] = true;
                work.push(o);
            }
        }
        let r_end = ops[r].end();
        let k = muts.partition_point(|&m| ops[m].invoke <= r_end);
        let t = suffix_min[k];
        let lo = ops[r].invoke.saturating_sub(max_dur);
        let a = conds.partition_point(|&i| ops[i].invoke < lo);
        let b = conds.partition_point(|&i| ops[i].invoke <= t);
        for &o in conds
            .get(a..b.max(a))
            .unwrap_or(&[])
            .iter()
            .chain(&open_conds)
        {
            if removed[o] || o == r {
                continue;
            }
            let op = &ops[o];
            if op.end() >= ops[r].invoke
                && op.invoke <= t
                && Register::condition(op.input, op.output).holds(val)
            {
                removed[o] = true;
                work.push(o);
            }
        }
    }
    s.iter().copied().filter(|&i| !removed[i]).collect()
}

/// Shrink a violating history of any model by removing observations only (always
/// sound: an observation never enables anything). Returns indices into `ops` and
/// whether the result is 1-minimal among such removals.
pub(crate) fn shrink_observations<M: Model>(
    model: &M,
    ops: &[Entry<M::Input, M::Output>],
    budget: &Budget,
) -> (Vec<usize>, bool) {
    let left = budget.deadline.saturating_duration_since(Instant::now());
    let local = Budget::new(left.min(Duration::from_secs(10)), budget.memory_limit);
    let fails = |s: &[usize]| {
        let sub: Vec<_> = s.iter().map(|&i| ops[i].clone()).collect();
        matches!(
            search::search(model, &sub, &mut NoPrune, &local),
            search::Outcome::Violation { .. }
        )
    };
    ddmin(
        (0..ops.len()).collect(),
        local.deadline,
        |s, i, end| {
            s.iter()
                .enumerate()
                .filter(|&(j, &k)| {
                    !(j >= i && j < end && model.is_observation(&ops[k].input, &ops[k].output))
                })
                .map(|(_, &k)| k)
                .collect()
        },
        fails,
    )
}
