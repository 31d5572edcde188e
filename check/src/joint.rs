//! `list` and `clear` across keys: one instant for all of them.
//!
//! Per key, a `list` is checked as an observation of that key alone (see
//! [`crate::model::kv`]), which lets it take effect at a different instant on each
//! key. This module adds a sound cross-key check: for a key whose written values are
//! unique, the fast path knows stretches of time over which the key *must* hold a
//! value ([`crate::fast::held_stretches`]). A `list` that omits the key cannot take
//! effect inside such a stretch. If every instant of the `list`'s interval lies
//! inside a stretch of some key it omits, no single instant works: a violation that
//! no per-key check can see (e.g. a `list` that shows an older state of one key and a
//! newer state of another). A `clear` is checked the same way against every key: it
//! cannot take effect inside any key's held stretch.
//!
//! It is not complete: keys with repeated values, and the "present" side of a
//! listing, are not used.

use crate::fast::Held;
use crate::history::{Op, Outcome};
use crate::model::kv::{KvHistory, NO_LIST};

/// A `list` (or `clear`) that fits no single instant: its record and, per key whose
/// held stretch covers part of its interval, (key, records of the write, the first
/// completion and the last invocation of that stretch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitList {
    /// The record of the `list` or `clear`.
    pub list: usize,
    /// The stretches that cover it: key and three records each.
    pub cover: Vec<(u32, [usize; 3])>,
}

/// Check every `list` (and `clear`) against the held stretches of the keys it omits. `held[k]` is
/// the stretches of key `k` as record indices (`None` when unknown), sorted by start.
#[must_use]
pub fn split_lists(h: &KvHistory, held: &[Option<Vec<HeldRecords>>]) -> Vec<SplitList> {
    let mut out = Vec::new();
    for (i, op) in h.ops.iter().enumerate() {
        // A `list` leaves out the keys it does not show; a `clear` (that took effect)
        // leaves every key absent, so it omits them all.
        let listed: &[u32] = match (op.op, op.outcome) {
            (Op::List, Outcome::Ok) if op.list != NO_LIST => &h.lists[op.list as usize],
            (Op::Clear, Outcome::Ok) => &[],
            _ => continue,
        };
        let (a, b) = (
            i128::from(op.invoke),
            i128::from(op.complete.unwrap_or(u64::MAX)),
        );
        // Stretches of omitted keys that overlap the list's interval.
        let mut cover: Vec<(i128, i128, u32, [usize; 3])> = Vec::new();
        for (k, stretches) in held.iter().enumerate() {
            let Some(stretches) = stretches else { continue };
            let k = u32::try_from(k).expect("fewer than 2^32 keys");
            if stretches.is_empty() || listed.binary_search(&k).is_ok() {
                continue;
            }
            let end = stretches.partition_point(|s| s.from < b);
            for s in &stretches[..end] {
                if s.to > a {
                    cover.push((s.from, s.to, k, s.records));
                }
            }
        }
        cover.sort_unstable_by_key(|c| (c.0, c.1));
        // Sweep: the earliest instant not inside any stretch.
        let mut cur = a;
        let mut used = Vec::new();
        for c in &cover {
            if c.0 >= cur {
                break;
            }
            if c.1 > cur {
                cur = c.1;
                used.push((c.2, c.3));
            }
        }
        if cur > b {
            out.push(SplitList {
                list: i,
                cover: used,
            });
        }
    }
    out
}

/// A held stretch with record indices instead of partition indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldRecords {
    /// Start (exclusive).
    pub from: i128,
    /// End (exclusive).
    pub to: i128,
    /// The write, first completion and last invocation, as record indices.
    pub records: [usize; 3],
}

impl HeldRecords {
    /// Map a partition's [`Held`] to records through each entry's `source`.
    #[must_use]
    pub fn from_held(h: &Held, source: impl Fn(usize) -> usize) -> Self {
        HeldRecords {
            from: h.from,
            to: h.to,
            records: h.ops.map(source),
        }
    }
}
