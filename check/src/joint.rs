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
use crate::model::kv::{KvHistory, NO_KEY, NO_LIST};
use crate::model::register::{RegEntry, Register};
use crate::report::Verdict;
use crate::search::Budget;

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

/// Scale of time in the joint check, leaving room between two event times for the
/// pinned operations' own instants.
const SCALE: u64 = 16;

/// At most this many multi-key operations are pinned together (a `list` or `clear`
/// and the `clear`s that overlap it).
pub const MAX_PINNED: usize = 8;
/// At most this many keys are checked jointly for one `list` or `clear`.
pub const MAX_KEYS: usize = 256;
/// At most this many per-key decisions are made for one `list` or `clear`.
pub const MAX_DECISIONS: usize = 1 << 15;

/// The joint check's finding on one `list` or `clear` that is not fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JointFinding {
    /// The record of the `list` or `clear`.
    pub op: usize,
    /// [`Verdict::Violation`], or [`Verdict::Unknown`] when a bound was hit.
    pub verdict: Verdict,
    /// The records that prove it (the pinned operations, and the operations of the
    /// keys that contradicted them that overlap them).
    pub records: Vec<usize>,
    /// The keys checked jointly.
    pub keys: Vec<u32>,
    /// Why (for an unknown: which bound was hit).
    pub reason: String,
}

/// Check every `list` and `clear` that took effect against the joint state of the
/// keys whose operations overlap it.
///
/// Per key, a `list` or `clear` is an operation of its own interval, so each key may
/// place it at a different instant. Here the operation `L`, together with the
/// definite `clear`s that overlap it, is *pinned* to single instants: for each
/// combination of instants (one per pinned operation, among the event times inside
/// its interval, which are all the instants that differ), every key on which the
/// choice matters is checked alone with the pinned operations shrunk to those
/// instants. If every combination fails on some key, no linearization exists: a
/// violation. If some combination passes every key, `L` is fine. Where a bound
/// ([`MAX_PINNED`], [`MAX_KEYS`], [`MAX_DECISIONS`], or a key
/// whose own check is undecided) stops the check, the finding is `Unknown`, never
/// fine. Keys whose operations do not overlap the pinned ones see them at a fixed
/// place whatever the instants, so the per-key check already covers them (unless two
/// operations are pinned: then their order matters on every key).
///
/// `per_key_bad[k]` marks keys already reported as violations: a `list` touching one
/// is not checked again.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn check_multi_key(
    h: &KvHistory,
    model: &Register<'_>,
    per_key: &[Vec<u32>],
    shared: &[u32],
    per_key_bad: &[bool],
    fast_path: bool,
    budget: &Budget,
) -> Vec<JointFinding> {
    let end = |i: usize| h.ops[i].complete.unwrap_or(u64::MAX);
    let multi: Vec<usize> = h
        .ops
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            o.key == NO_KEY
                && o.outcome == Outcome::Ok
                && ((o.op == Op::List && o.list != NO_LIST) || o.op == Op::Clear)
        })
        .map(|(i, _)| i)
        .collect();
    if multi.is_empty() {
        return Vec::new();
    }
    let clears: Vec<usize> = multi
        .iter()
        .copied()
        .filter(|&i| h.ops[i].op == Op::Clear)
        .collect();
    // Single-key operations by invocation, and the longest definite one.
    let mut own: Vec<usize> = (0..h.ops.len())
        .filter(|&i| h.ops[i].key != NO_KEY)
        .collect();
    own.sort_unstable_by_key(|&i| h.ops[i].invoke);
    let longest = own
        .iter()
        .filter_map(|&i| h.ops[i].complete.map(|c| c - h.ops[i].invoke))
        .max()
        .unwrap_or(0);
    let keys_with_ops: Vec<u32> = (1..per_key.len())
        .filter(|&k| !per_key[k].is_empty())
        .map(|k| u32::try_from(k).expect("fewer than 2^32 keys"))
        .collect();
    let overlaps = |i: usize, a: u64, b: u64| h.ops[i].invoke <= b && end(i) >= a;
    // Times are rebased and scaled (see the candidates below).
    let h_base = h.ops.iter().map(|o| o.invoke).min().unwrap_or(0);
    let mut out = Vec::new();
    let mut projections: hashbrown::HashMap<u32, Vec<RegEntry>> = hashbrown::HashMap::new();
    for &l in &multi {
        let (a, b) = (h.ops[l].invoke, end(l));
        let mut pinned = vec![l];
        pinned.extend(
            clears
                .iter()
                .copied()
                .filter(|&c| c != l && overlaps(c, a, b)),
        );
        let unknown = |reason: String, keys: Vec<u32>| JointFinding {
            op: l,
            verdict: Verdict::Unknown,
            records: pinned_records(&pinned),
            keys,
            reason,
        };
        if keys_with_ops.len() <= 1 {
            continue; // one key alone: the per-key check is exact
        }
        if pinned.len() > MAX_PINNED {
            out.push(unknown(
                format!(
                    "{} clears overlap it; the joint check pins at most {}",
                    pinned.len() - 1,
                    MAX_PINNED - 1
                ),
                Vec::new(),
            ));
            continue;
        }
        let span_a = pinned.iter().map(|&p| h.ops[p].invoke).min().unwrap_or(a);
        let span_b = pinned.iter().map(|&p| end(p)).max().unwrap_or(b);
        // The keys whose relation to a pinned operation depends on its instant.
        let mut keys: Vec<u32> = Vec::new();
        let from = own.partition_point(|&i| h.ops[i].invoke < span_a.saturating_sub(longest));
        for &i in &own[from..] {
            if h.ops[i].invoke > span_b {
                break;
            }
            if pinned.iter().any(|&p| overlaps(i, h.ops[p].invoke, end(p))) {
                keys.push(h.ops[i].key);
            }
        }
        // Indeterminate operations invoked earlier overlap everything after: they
        // are concurrent with any instant, so they do not depend on it.
        if pinned.len() > 1 {
            keys.extend_from_slice(&keys_with_ops);
        }
        keys.sort_unstable();
        keys.dedup();
        if keys
            .iter()
            .any(|&k| per_key_bad.get(k as usize).copied().unwrap_or(false))
        {
            continue; // already a violation on one of its keys
        }
        if keys.len() <= 1 {
            continue; // one key alone: the per-key check is exact
        }
        if keys.len() > MAX_KEYS {
            out.push(unknown(
                format!(
                    "{} keys overlap it; the joint check takes at most {MAX_KEYS}",
                    keys.len()
                ),
                keys,
            ));
            continue;
        }
        // Each key's projection, its event times (pinned operations left out) and
        // where the pinned operations sit in it.
        struct KeyView {
            key: u32,
            times: Vec<u64>,
            at: Vec<Option<usize>>,
        }
        let mut views = Vec::with_capacity(keys.len());
        let mut instants: Vec<u64> = Vec::new();
        let mut too_large = false;
        for &k in &keys {
            let ops = projections
                .entry(k)
                .or_insert_with(|| h.project(k, &per_key[k as usize], shared));
            let at: Vec<Option<usize>> = pinned
                .iter()
                .map(|&p| ops.iter().position(|e| e.source == p))
                .collect();
            let mut times = Vec::with_capacity(2 * ops.len());
            for e in ops.iter().filter(|e| !pinned.contains(&e.source)) {
                times.push(e.invoke);
                if let Some(c) = e.complete {
                    times.push(c);
                }
            }
            times.sort_unstable();
            times.dedup();
            let lo = times.partition_point(|&t| t < span_a);
            let hi = times.partition_point(|&t| t <= span_b);
            instants.extend_from_slice(&times[lo..hi]);
            if times
                .last()
                .is_some_and(|&t| (t - h_base).checked_mul(SCALE).is_none())
            {
                too_large = true;
            }
            // The signature of a choice of instants (the cache key below) must also
            // see where they fall against the pinned operations' own intervals: an
            // unchosen one still spans its interval.
            let mut times: Vec<u64> = times
                .iter()
                .copied()
                .chain(pinned.iter().flat_map(|&p| [h.ops[p].invoke, end(p)]))
                .filter(|&t| t != u64::MAX)
                .map(|t| (t - h_base).saturating_mul(SCALE))
                .collect();
            times.sort_unstable();
            times.dedup();
            views.push(KeyView { key: k, times, at });
        }
        if too_large {
            out.push(unknown("times too large to scale".into(), keys));
            continue;
        }
        instants.extend(pinned.iter().map(|&p| h.ops[p].invoke));
        instants.sort_unstable();
        instants.dedup();
        // Candidate instants of each pinned operation, in time scaled by SCALE: at an
        // event time x inside its interval (`SCALE * x`: concurrent with the
        // operations that start or end at x, the most permissive place near x; in
        // between two event times nothing changes) and, when several operations are
        // pinned, also just after x (`SCALE * x + j`), so that two pinned operations
        // can take either order between the same two events. Two pinned operations
        // never share an instant: at one instant each key could order them its own
        // way.
        let slots = if pinned.len() == 1 {
            1
        } else {
            pinned.len() as u64 + 1
        };
        let Some(scaled) = instants
            .iter()
            .map(|&t| (t - h_base).checked_mul(SCALE))
            .collect::<Option<Vec<u64>>>()
        else {
            out.push(unknown("times too large to scale".into(), keys));
            continue;
        };
        let candidates: Vec<Vec<u64>> = pinned
            .iter()
            .map(|&p| {
                let (pa, pb) = (h.ops[p].invoke, end(p));
                instants
                    .iter()
                    .zip(&scaled)
                    .filter(|&(&t, _)| t >= pa && t <= pb)
                    .flat_map(|(_, &st)| (0..slots).map(move |j| st + j))
                    .collect()
            })
            .collect();
        // Depth-first over the pinned operations' instants. A partial choice is
        // checked with the unchosen operations still spanning their intervals (a
        // relaxation): when a key fails it, every completion fails too.
        // (key, where each instant falls among its event times, their order).
        type Signature = (u32, Vec<(usize, usize)>, Vec<usize>);
        let mut cache: hashbrown::HashMap<Signature, Verdict> = hashbrown::HashMap::new();
        let mut decisions = 0usize;
        let mut failing: Vec<u32> = Vec::new();
        let mut any_unknown = None;
        let mut passed = false;
        let mut eval = |ts: &[Option<u64>],
                        failing: &mut Vec<u32>,
                        any_unknown: &mut Option<String>|
         -> Option<Verdict> {
            let order: Vec<usize> = ts
                .iter()
                .map(|t| match t {
                    Some(t) => ts.iter().flatten().filter(|u| *u < t).count(),
                    None => usize::MAX,
                })
                .collect();
            for v in &views {
                let sig: Vec<(usize, usize)> = ts
                    .iter()
                    .map(|t| match *t {
                        Some(t) => (
                            v.times.partition_point(|&x| x < t),
                            v.times.partition_point(|&x| x <= t),
                        ),
                        None => (usize::MAX, usize::MAX),
                    })
                    .collect();
                let cache_key = (v.key, sig, order.clone());
                let verdict = if let Some(&d) = cache.get(&cache_key) {
                    d
                } else {
                    decisions += 1;
                    if decisions > MAX_DECISIONS {
                        *any_unknown = Some(format!(
                            "more than {MAX_DECISIONS} per-key decisions needed"
                        ));
                        return None;
                    }
                    let mut ops = projections[&v.key].clone();
                    for e in &mut ops {
                        e.invoke = (e.invoke - h_base) * SCALE;
                        e.complete = e.complete.map(|c| (c - h_base) * SCALE);
                    }
                    for (j, at) in v.at.iter().enumerate() {
                        if let (Some(i), Some(t)) = (at, ts[j]) {
                            ops[*i].invoke = t;
                            ops[*i].complete = Some(t);
                        }
                    }
                    let d = crate::check::decide(model, &ops, fast_path, budget).verdict;

                    cache.insert(cache_key, d);
                    d
                };
                match verdict {
                    Verdict::Ok => {}
                    Verdict::Violation => {
                        if !failing.contains(&v.key) {
                            failing.push(v.key);
                        }
                        return Some(Verdict::Violation);
                    }
                    Verdict::Unknown => {
                        *any_unknown = Some(format!(
                            "key {:?} could not be decided with the operations pinned",
                            h.keys.name(v.key)
                        ));
                        return Some(Verdict::Unknown);
                    }
                }
            }
            Some(Verdict::Ok)
        };
        let mut ts: Vec<Option<u64>> = vec![None; pinned.len()];
        let mut idx = vec![0usize; pinned.len()];
        let mut level = 0usize;
        loop {
            if idx[level] >= candidates[level].len() {
                ts[level] = None;
                idx[level] = 0;
                if level == 0 {
                    break;
                }
                level -= 1;
                idx[level] += 1;
                continue;
            }
            let t = candidates[level][idx[level]];
            if ts[..level].contains(&Some(t)) {
                idx[level] += 1;
                continue;
            }
            ts[level] = Some(t);
            match eval(&ts, &mut failing, &mut any_unknown) {
                None => break,
                Some(Verdict::Ok) if level + 1 == pinned.len() => {
                    passed = true;
                    break;
                }
                Some(Verdict::Ok) => {
                    level += 1;
                    idx[level] = 0;
                }
                Some(_) => idx[level] += 1,
            }
        }
        if passed {
            continue;
        }
        if let Some(reason) = any_unknown {
            out.push(unknown(reason, keys));
            continue;
        }
        // The proof: the pinned operations and, for each key that contradicted them,
        // its operations that overlap them.
        let mut records = pinned_records(&pinned);
        for &i in &own[from..] {
            if h.ops[i].invoke > span_b {
                break;
            }
            if failing.contains(&h.ops[i].key)
                && pinned.iter().any(|&p| overlaps(i, h.ops[p].invoke, end(p)))
            {
                records.push(i);
            }
        }
        // And the last write or removal of each such key that ended before them: the
        // state they found.
        for &k in &failing {
            if let Some(&last) = per_key[k as usize]
                .iter()
                .map(|&i| i as usize)
                .filter(|&i| h.ops[i].op.is_mutation() && h.ops[i].outcome != Outcome::Fail)
                .filter(|&i| end(i) < span_a)
                .max_by_key(|&i| end(i))
                .as_ref()
            {
                records.push(last);
            }
        }
        records.sort_unstable();
        records.dedup();
        out.push(JointFinding {
            op: l,
            verdict: Verdict::Violation,
            records,
            keys: failing,
            reason: String::new(),
        });
    }
    out
}

fn pinned_records(pinned: &[usize]) -> Vec<usize> {
    let mut r = pinned.to_vec();
    r.sort_unstable();
    r
}
