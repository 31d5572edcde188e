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
use hashbrown::HashMap;

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
    // Sources of each observed state: (value, invoke, running max of end within
    // the value), sorted by value then invoke.
    let mut sources: Vec<(Val, u64, u64)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| Register::effect(op.input, op.output).map(|v| (v, op.invoke, end(i))))
        .collect();
    sources.sort_unstable();
    for k in 1..sources.len() {
        if sources[k].0 == sources[k - 1].0 {
            sources[k].2 = sources[k].2.max(sources[k - 1].2);
        }
    }
    let mut by_invoke: Vec<usize> = (0..ops.len()).collect();
    by_invoke.sort_unstable_by_key(|&i| ops[i].invoke);
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
        let lo = sources.partition_point(|s| s.0 < seen);
        let hi = lo + sources[lo..].partition_point(|s| s.0 == seen && s.1 <= op.end());
        let src_end: Option<u64> = (hi > lo).then(|| sources[hi - 1].2);
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
