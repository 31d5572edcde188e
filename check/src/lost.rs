//! Lost writes: acknowledged writes whose effect disappeared.
//!
//! A write `w` of key `k` is *lost* when some observation `o` of `k` (a `get`, a
//! `delete` that found nothing, a `list` without `k`) started after `w` finished, no
//! other mutation of `k` finished in between (so `w` is among the latest writes `o`
//! must see), and every operation that could have produced what `o` saw finished
//! before `w` began (so `o` saw a state older than `w`). Each lost write is also a
//! linearizability violation; the list exists because it is the figure users ask
//! for: "Lost: N / M".

use crate::model::register::{ABSENT, Action, Condition, RegEntry, Register, Reply, Val};
use std::collections::HashMap;

/// A lost write: (index of the write, index of the observation that missed it), as
/// indices into the partition.
pub type Lost = (usize, usize);

/// Find the lost writes of one key. Returns them and the number of acknowledged
/// writes.
#[must_use]
pub fn lost_writes(ops: &[RegEntry]) -> (Vec<Lost>, usize) {
    let end = |i: usize| ops[i].end();
    let acked: Vec<usize> = {
        let mut a: Vec<usize> = (0..ops.len())
            .filter(|&i| {
                matches!(ops[i].input, Action::Write(v) if v != ABSENT) && ops[i].complete.is_some()
            })
            .collect();
        a.sort_unstable_by_key(|&i| end(i));
        a
    };
    if acked.is_empty() {
        return (Vec::new(), 0);
    }
    // Definite mutations sorted by end, with the running max of their invoke.
    let mut muts: Vec<usize> = (0..ops.len())
        .filter(|&i| {
            ops[i].complete.is_some() && Register::effect(ops[i].input, ops[i].output).is_some()
        })
        .collect();
    muts.sort_unstable_by_key(|&i| end(i));
    let mut mut_max_invoke = Vec::with_capacity(muts.len());
    let mut m = 0u64;
    for &i in &muts {
        m = m.max(ops[i].invoke);
        mut_max_invoke.push(m);
    }
    // Sources of each observed state, sorted by invoke with a running max of end.
    let mut sources: HashMap<Val, (Vec<u64>, Vec<u64>)> = HashMap::new();
    let mut by_invoke: Vec<usize> = (0..ops.len()).collect();
    by_invoke.sort_unstable_by_key(|&i| ops[i].invoke);
    for &i in &by_invoke {
        if let Some(v) = Register::effect(ops[i].input, ops[i].output) {
            let (inv, best) = sources.entry(v).or_default();
            let prev = best.last().copied().unwrap_or(0);
            inv.push(ops[i].invoke);
            best.push(prev.max(end(i)));
        }
    }
    let mut lost: HashMap<usize, usize> = HashMap::new();
    for &o in &by_invoke {
        let op = &ops[o];
        if op.complete.is_none() {
            continue;
        }
        let Condition::Is(seen) = Register::condition(op.input, op.output) else {
            continue;
        };
        if !matches!(
            (op.input, op.output),
            (Action::Read, Reply::Value(_)) | (Action::Delete, Reply::NotFound)
        ) {
            continue;
        }
        // Latest end of a source of `seen` that could precede `o` (the start of time
        // is a source of "absent").
        let src_end: Option<u64> = sources.get(&seen).and_then(|(inv, best)| {
            let k = inv.partition_point(|&t| t <= op.end());
            (k > 0).then(|| best[k - 1])
        });
        if src_end.is_none() && seen != ABSENT {
            continue; // a value never written: a violation, but not a lost write
        }
        // g = the latest invocation of a mutation that finished before `o` began.
        let k = muts.partition_point(|&i| end(i) < op.invoke);
        let g = if k == 0 { 0 } else { mut_max_invoke[k - 1] };
        let lo = acked.partition_point(|&w| end(w) < g);
        let hi = acked.partition_point(|&w| end(w) < op.invoke);
        for &w in &acked[lo..hi] {
            let older = src_end.is_none_or(|s| s < ops[w].invoke);
            if older {
                lost.entry(w).or_insert(o);
            }
        }
    }
    let mut out: Vec<Lost> = lost.into_iter().collect();
    out.sort_unstable();
    (out, acked.len())
}
