//! Checking a whole history: partition, decide each part (fast path, then search),
//! shrink witnesses, collect lost writes, report.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::fast::{self, FastVerdict};
use crate::history::Record;
use crate::joint;
use crate::lost;
use crate::model::kv::KvHistory;
use crate::model::register::{ABSENT, Action, Condition, GHOST, RegEntry, Register, UniquePrune};
use crate::model::{Entry, Model};
use crate::report::{
    CheckReport, LostWrite, Method, Observation, PartitionReport, Verdict, Witness, WitnessOp,
};
use crate::search::{self, Budget, NoPrune};
use crate::shrink;

/// Limits and switches for a check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Wall-time budget for the whole check; partitions still undecided when it runs
    /// out are `Unknown`.
    pub time_budget: Duration,
    /// Memory budget for the search caches of all partitions together (bytes).
    pub memory_budget: usize,
    /// Shrink violating partitions to a minimal witness.
    pub shrink: bool,
    /// Use the unique-value fast path where it applies (turn off to force the search,
    /// e.g. to compare the two).
    pub fast_path: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            time_budget: Duration::from_secs(60),
            memory_budget: 1 << 30,
            shrink: true,
            fast_path: true,
        }
    }
}

/// The decision on one register partition, with indices into the partition.
#[derive(Debug, Clone)]
pub(crate) struct PartDecision {
    pub verdict: Verdict,
    pub method: Method,
    /// Witness operations (indices into the partition), why, and whether minimal.
    pub witness: Option<(Vec<usize>, String, bool)>,
    /// Further proofs to try when shrinking (the fast path may find several).
    pub seeds: Vec<(Vec<usize>, String)>,
    pub reason: Option<String>,
}

/// What to do with each operation before deciding a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    /// An indeterminate write that cannot matter: nobody reads its value and no
    /// operation needs the register to hold *something* (no delete that found the
    /// key, no list that showed it, no failed compare). Taking effect could only hide
    /// earlier values from later operations, and "never took effect" is allowed.
    Drop,
    /// An indeterminate write nobody reads, in a partition where presence matters:
    /// searched in bulk as a ghost (see [`search::Ghosts`]).
    Ghost,
    /// An indeterminate removal (unknown `delete` or `clear`): all alike, searched in
    /// bulk as ghosts too.
    GhostRemoval,
    /// An indeterminate write of a unique value that someone read: it happened, and
    /// before the earliest completion among its reads, which becomes its completion.
    CompleteBy(u64),
}

fn fates(ops: &[RegEntry]) -> Vec<Fate> {
    let mut needs_is = hashbrown::HashMap::<u32, u64>::new();
    let mut any_is_not = false;
    let mut is_not = hashbrown::HashSet::<u32>::new();
    let mut writes = hashbrown::HashMap::<u32, u32>::new();
    for op in ops {
        match Register::condition(op.input, op.output) {
            Condition::Is(v) => {
                let end = needs_is.entry(v).or_insert(u64::MAX);
                *end = (*end).min(op.end());
            }
            Condition::IsNot(v) => {
                any_is_not = true;
                is_not.insert(v);
            }
            _ => {}
        }
        if let Some(v) = Register::effect(op.input, op.output) {
            *writes.entry(v).or_default() += 1;
        }
    }
    ops.iter()
        .map(|op| {
            if op.complete.is_some() {
                return Fate::Keep;
            }
            match op.input {
                Action::Clear => Fate::GhostRemoval,
                Action::Write(v) if v != ABSENT && writes.get(&v) == Some(&1) => {
                    match (needs_is.get(&v), any_is_not) {
                        (Some(&end), _) if end != u64::MAX => Fate::CompleteBy(end),
                        (Some(_), _) => Fate::Keep,
                        (None, false) => Fate::Drop,
                        // A ghost stands for "some value nobody names": not this one
                        // if an operation requires the value to differ from it.
                        (None, true) if is_not.contains(&v) => Fate::Keep,
                        (None, true) => Fate::Ghost,
                    }
                }
                _ => Fate::Keep,
            }
        })
        .collect()
}

/// Is this sub-history non-linearizable (a definite answer)?
pub(crate) fn is_violation(model: &Register<'_>, ops: &[RegEntry], budget: &Budget) -> bool {
    decide(model, ops, true, budget).verdict == Verdict::Violation
}

/// Decide one partition without shrinking.
pub(crate) fn decide(
    model: &Register<'_>,
    ops: &[RegEntry],
    fast_path: bool,
    budget: &Budget,
) -> PartDecision {
    let fate = fates(ops);
    let kept: Vec<usize> = (0..ops.len()).filter(|&i| fate[i] != Fate::Drop).collect();
    // Copy the operations only when some are dropped or changed.
    let sub: Cow<'_, [RegEntry]> = if kept.len() == ops.len() {
        Cow::Borrowed(ops)
    } else {
        Cow::Owned(kept.iter().map(|&i| ops[i].clone()).collect())
    };
    if fast_path {
        match fast::check(&sub) {
            FastVerdict::Ok => {
                return PartDecision {
                    verdict: Verdict::Ok,
                    method: Method::FastPath,
                    witness: None,
                    reason: None,
                    seeds: Vec::new(),
                };
            }
            FastVerdict::Violation { proofs } => {
                let mut seeds: Vec<(Vec<usize>, String)> = proofs
                    .into_iter()
                    .map(|(w, why)| (w.iter().map(|&i| kept[i]).collect(), why))
                    .collect();
                let (w, why) = seeds.remove(0);
                return PartDecision {
                    verdict: Verdict::Violation,
                    method: Method::FastPath,
                    witness: Some((w, why, false)),
                    reason: None,
                    seeds,
                };
            }
            FastVerdict::Undecided | FastVerdict::NotApplicable => {}
        }
    }
    // The search takes the ghosts apart from the other operations.
    let mut searched = Vec::new();
    let mut ghost_writes = Vec::new();
    let mut ghost_removals = Vec::new();
    for (j, &i) in kept.iter().enumerate() {
        match fate[i] {
            Fate::Ghost => ghost_writes.push(ops[i].invoke),
            Fate::GhostRemoval => ghost_removals.push(ops[i].invoke),
            _ => searched.push(j),
        }
    }
    ghost_writes.sort_unstable();
    ghost_removals.sort_unstable();
    let kept: Vec<usize> = searched.iter().map(|&j| kept[j]).collect();
    drop(sub);
    let sub: Cow<'_, [RegEntry]> =
        if kept.len() == ops.len() && fate.iter().all(|f| *f == Fate::Keep) {
            Cow::Borrowed(ops)
        } else {
            Cow::Owned(
                kept.iter()
                    .map(|&i| {
                        let mut e = ops[i].clone();
                        if let Fate::CompleteBy(t) = fate[i] {
                            e.complete = Some(t.max(e.invoke));
                        }
                        e
                    })
                    .collect(),
            )
        };
    let ghosts = [
        search::Ghosts {
            invokes: ghost_writes,
            state: GHOST,
        },
        search::Ghosts {
            invokes: ghost_removals,
            state: ABSENT,
        },
    ];
    let mut prune = UniquePrune::new(&sub);
    match search::search_with_ghosts(model, &sub, &ghosts, &mut prune, budget) {
        search::Outcome::Ok => PartDecision {
            verdict: Verdict::Ok,
            method: Method::Search,
            witness: None,
            reason: None,
            seeds: Vec::new(),
        },
        search::Outcome::Violation { frontier } => PartDecision {
            verdict: Verdict::Violation,
            method: Method::Search,
            witness: Some((
                vec![kept[frontier]],
                "no order of these operations is legal for a register".into(),
                false,
            )),
            reason: None,
            seeds: Vec::new(),
        },
        search::Outcome::Paused => PartDecision {
            verdict: Verdict::Unknown,
            method: Method::Search,
            witness: None,
            reason: Some("the search was paused".into()),
            seeds: Vec::new(),
        },
        search::Outcome::Unknown(reason) => PartDecision {
            verdict: Verdict::Unknown,
            method: Method::Search,
            witness: None,
            reason: Some(reason),
            seeds: Vec::new(),
        },
    }
}

/// Decide one partition and, for a violation, shrink its witness.
pub(crate) fn check_partition(
    model: &Register<'_>,
    ops: &[RegEntry],
    options: &CheckOptions,
    budget: &Budget,
) -> PartDecision {
    let mut d = decide(model, ops, options.fast_path, budget);
    if d.verdict == Verdict::Violation
        && options.shrink
        && let Some((seed, why, _)) = d.witness.take()
    {
        let mut seeds = vec![(seed, why)];
        seeds.append(&mut d.seeds);
        d.witness = Some(shrink::shrink(model, ops, seeds, budget));
    }
    d
}

/// Check a key-value history (the harness's records) for linearizability and lost
/// writes.
#[must_use]
pub fn check_kv(history: &[Record], options: &CheckOptions) -> CheckReport {
    check_kv_history(&KvHistory::from_records(history), options)
}

/// Check an interned key-value history.
#[must_use]
pub fn check_kv_history(h: &KvHistory, options: &CheckOptions) -> CheckReport {
    let started = Instant::now();
    let budget = Budget::new(options.time_budget, options.memory_budget);
    let model = Register { values: &h.values };
    let (per_key, shared) = h.split();
    let mut keys: Vec<u32> = (1..u32::try_from(per_key.len()).expect("fewer than 2^32 keys"))
        .filter(|&k| !per_key[k as usize].is_empty() || !shared.is_empty())
        .collect();
    keys.sort_unstable_by_key(|&k| std::cmp::Reverse(per_key[k as usize].len()));
    let has_lists = h.ops.iter().any(|o| {
        (o.op == crate::history::Op::List && o.list != crate::model::kv::NO_LIST)
            || (o.op == crate::history::Op::Clear && o.outcome == crate::history::Outcome::Ok)
    });
    type KeyResult = (PartitionReport, Vec<lost::LostProof>, usize);
    let results: Vec<(u32, KeyResult)> = keys
        .par_iter()
        .with_max_len(1)
        .map(|&key| {
            let ops = h.project(key, &per_key[key as usize], &shared);
            let d = check_partition(&model, &ops, options, &budget);
            let key_name = h.keys.name(key).to_owned();
            let (lost, acked) = lost::key_proofs(h, key, &ops, u64::MAX);
            let mut verdict = d.verdict;
            let mut witness = d
                .witness
                .map(|(w, why, minimal)| Witness::new(why, witness_ops(h, &ops, &w), minimal));
            if let Some(first) = lost.first()
                && verdict != Verdict::Violation
            {
                // A lost write proves a violation on its own (e.g. when the search ran
                // out of budget): report it with the write and the read that missed it
                // (and the write of the older value the read saw, if it saw one).
                verdict = Verdict::Violation;
                let mut proof = vec![first.write, first.observation];
                proof.extend(first.older_write);
                witness = Some(Witness::new(
                    "an acknowledged write was missed by a later read, and nothing that ran \
                     in between can explain it",
                    record_witness_ops(h, &proof),
                    false,
                ));
            }
            let report = PartitionReport {
                key: key_name,
                verdict,
                operations: ops.len(),
                method: d.method,
                witness,
                reason: if verdict == Verdict::Unknown {
                    d.reason
                } else {
                    None
                },
            };
            (key, (report, lost, acked))
        })
        .collect();
    let mut report = CheckReport {
        model: "kv".into(),
        verdict: Verdict::Ok,
        operations: h.ops.len(),
        partitions: Vec::with_capacity(results.len()),
        lost_writes: Vec::new(),
        acknowledged_writes: 0,
        notes: Vec::new(),
        elapsed_ms: 0.0,
        times_are_lines: false,
        start_ns: h.ops.iter().map(|o| o.invoke).min().unwrap_or(0),
    };
    let mut bad = vec![false; h.keys.len()];
    let mut proofs = Vec::new();
    for (key, (p, lost, acked)) in results {
        bad[key as usize] = p.verdict == Verdict::Violation;
        report.partitions.push(p);
        proofs.extend(lost);
        report.acknowledged_writes += acked;
    }
    lost::attach_culprits(h, &mut proofs);
    report.lost_writes = proofs.iter().map(|p| lost_write(h, p)).collect();
    for d in lost::damaged_reads(h, u64::MAX) {
        let mut records = vec![d.record];
        records.extend(d.concurrent);
        let what = match &d.key {
            Some(k) => format!("get {k}"),
            None => "list".to_owned(),
        };
        report.partitions.push(PartitionReport {
            key: format!("{what} #{} (torn/damaged read)", d.record),
            verdict: Verdict::Violation,
            operations: records.len(),
            method: Method::Recorded,
            witness: Some(Witness::new(
                format!(
                    "torn/damaged read: process {} read a damaged answer{}; a correct store \
                     never shows a reader a damaged state",
                    h.ops[d.record].process,
                    d.detail
                        .as_deref()
                        .map_or_else(String::new, |x| format!(" ({x})"))
                ),
                record_witness_ops(h, &records),
                records.len() == 1,
            )),
            reason: None,
        });
    }
    if has_lists {
        let findings = joint::check_multi_key(
            h,
            &model,
            &per_key,
            &shared,
            &bad,
            options.fast_path,
            &budget,
        );
        for f in findings {
            let op = &h.ops[f.op];
            let keys: Vec<&str> = f.keys.iter().map(|&k| h.keys.name(k)).collect();
            let (witness, reason) = match f.verdict {
                Verdict::Violation => (
                    Some(Witness::new(
                        format!(
                            "the {} fits no single instant of its interval: at every instant, \
                             one of the keys {} contradicts it (pinned together with the \
                             clears that overlap it)",
                            op.op,
                            keys.join(", ")
                        ),
                        record_witness_ops(h, &f.records),
                        false,
                    )),
                    None,
                ),
                _ => (None, Some(format!("joint check bound hit: {}", f.reason))),
            };
            report.partitions.push(PartitionReport {
                key: format!("{} #{} (across keys)", op.op, f.op),
                verdict: f.verdict,
                operations: f.records.len(),
                method: Method::Joint,
                witness,
                reason,
            });
        }
    }
    if h.has_multi_key_ops() {
        report.notes.push(
            "each list and clear was checked per key, and jointly at one instant across the \
             keys whose operations overlap it (with the clears that overlap it pinned too); \
             violations that need several lists at one instant are not detected"
                .into(),
        );
    }
    report.finish();
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

/// A report's lost write from the one lost-write definition's proof.
fn lost_write(h: &KvHistory, p: &lost::LostProof) -> LostWrite {
    let w = &h.ops[p.write];
    let op = |r: usize| {
        let o = &h.ops[r];
        WitnessOp {
            record: r,
            process: o.process,
            op: describe_kv(h, r),
            invoke_ns: o.invoke,
            complete_ns: o.complete,
        }
    };
    LostWrite {
        key: p.key.clone(),
        value: h.values.name(w.value).to_owned(),
        process: w.process,
        record: p.write,
        invoke_ns: w.invoke,
        complete_ns: w.complete.unwrap_or(u64::MAX),
        observed_by: op(p.observation),
        culprit: p.culprit.map(op),
        proven_ns: p.proven_ns,
    }
}

fn record_witness_ops(h: &KvHistory, records: &[usize]) -> Vec<WitnessOp> {
    let mut v: Vec<WitnessOp> = records
        .iter()
        .map(|&r| {
            let op = &h.ops[r];
            WitnessOp {
                record: r,
                process: op.process,
                op: describe_kv(h, r),
                invoke_ns: op.invoke,
                complete_ns: op.complete,
            }
        })
        .collect();
    v.sort_by_key(|o| (o.invoke_ns, o.record));
    v
}

fn witness_ops(h: &KvHistory, ops: &[RegEntry], w: &[usize]) -> Vec<WitnessOp> {
    let mut v: Vec<WitnessOp> = w
        .iter()
        .map(|&i| {
            let e = &ops[i];
            WitnessOp {
                record: e.source,
                process: e.process,
                op: describe_kv(h, e.source),
                invoke_ns: e.invoke,
                complete_ns: e.complete,
            }
        })
        .collect();
    v.sort_by_key(|o| (o.invoke_ns, o.record));
    v
}

/// `set k=v -> ok`, `get k -> v`, `get k -> not found`, `list -> [a, b]`, ...
pub(crate) fn describe_kv(h: &KvHistory, record: usize) -> String {
    use crate::history::{Op, Outcome};
    let op = &h.ops[record];
    let key = h.keys.name(op.key);
    let value = h.values.name(op.value);
    let outcome = match op.outcome {
        Outcome::Ok => "ok",
        Outcome::NotFound => "not found",
        Outcome::Fail => "fail",
        Outcome::Unknown => "unknown",
        Outcome::Damaged => "damaged",
    };
    match (op.op, op.outcome) {
        (Op::Set, _) => format!("set {key}={value} -> {outcome}"),
        (Op::Get, Outcome::Ok) => format!("get {key} -> {value}"),
        (Op::Get | Op::Delete, _) => format!("{} {key} -> {outcome}", op.op),
        (Op::List, Outcome::Ok) => {
            let names: Vec<&str> = h.lists[op.list as usize]
                .iter()
                .map(|&k| h.keys.name(k))
                .collect();
            format!("list -> [{}]", names.join(", "))
        }
        (Op::List | Op::Clear, _) => format!("{} -> {outcome}", op.op),
    }
}

/// Check a register history (e.g. imported from a Jepsen log) as one partition.
#[must_use]
pub fn check_register(h: &crate::import::RegisterHistory, options: &CheckOptions) -> CheckReport {
    let started = Instant::now();
    let budget = Budget::new(options.time_budget, options.memory_budget);
    let model = Register { values: &h.values };
    let ops = &h.entries;
    let d = check_partition(&model, ops, options, &budget);
    let describe = |e: &RegEntry| model.describe(&e.input, &e.output);
    let (lost, acked) = lost::lost_writes(ops);
    let mut report = CheckReport {
        model: "register".into(),
        verdict: Verdict::Ok,
        operations: ops.len(),
        partitions: vec![PartitionReport {
            key: "register".into(),
            verdict: d.verdict,
            operations: ops.len(),
            method: d.method,
            witness: d.witness.map(|(w, why, minimal)| {
                Witness::new(why, generic_witness_ops(ops, &w, describe), minimal)
            }),
            reason: d.reason,
        }],
        lost_writes: lost
            .into_iter()
            .map(|(w, o)| LostWrite {
                key: "register".into(),
                value: describe(&ops[w]),
                process: ops[w].process,
                record: ops[w].source,
                invoke_ns: ops[w].invoke,
                complete_ns: ops[w].end(),
                observed_by: Observation {
                    record: ops[o].source,
                    process: ops[o].process,
                    op: describe(&ops[o]),
                    invoke_ns: ops[o].invoke,
                    complete_ns: ops[o].complete,
                },
                culprit: None,
                proven_ns: ops[o].end(),
            })
            .collect(),
        acknowledged_writes: acked,
        notes: Vec::new(),
        elapsed_ms: 0.0,
        times_are_lines: true,
        start_ns: ops.iter().map(|o| o.invoke).min().unwrap_or(0),
    };
    report.finish();
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

/// Check a history against any [`Model`]: partition, search the parts side by side,
/// stop at the first part that proves a violation, shrink its witness by removing
/// observations only.
///
/// The parts run on up to 16 threads at once, more than there are
/// cores, so that the operating system shares the time among them: a part whose
/// violation is quick to prove is not stuck behind a part whose search is long.
/// Once one part proves a violation the verdict is settled, so the parts still
/// running stop and are reported `Unknown` with the reason (as Porcupine does, it
/// does not exhaust every part to find every violation).
#[must_use]
pub fn check_model<M: Model>(
    model: &M,
    name: &str,
    history: &[Entry<M::Input, M::Output>],
    options: &CheckOptions,
) -> CheckReport {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let started = Instant::now();
    let budget = Budget::new(options.time_budget, options.memory_budget);
    let mut parts = model.partition(history);
    parts.sort_by_key(|p| std::cmp::Reverse(p.1.len()));
    let stop = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let first_violation: Mutex<Option<String>> = Mutex::new(None);
    let outcomes: Mutex<Vec<Option<search::Outcome>>> = Mutex::new(vec![None; parts.len()]);
    let threads = parts.len().clamp(1, MODEL_THREADS);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let p = next.fetch_add(1, Ordering::Relaxed);
                    if p >= parts.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let ops: Vec<Entry<M::Input, M::Output>> =
                        parts[p].1.iter().map(|&i| history[i].clone()).collect();
                    let limit = search::Limit {
                        max_steps: u64::MAX,
                        stop: Some(&stop),
                    };
                    let out =
                        search::search_bounded(model, &ops, &[], &mut NoPrune, &budget, limit);
                    if matches!(out, search::Outcome::Violation { .. }) {
                        let mut first = first_violation.lock().expect("not poisoned");
                        first.get_or_insert_with(|| parts[p].0.clone());
                        stop.store(true, Ordering::Relaxed);
                    }
                    outcomes.lock().expect("not poisoned")[p] = Some(out);
                }
            });
        }
    });
    let outcomes = outcomes.into_inner().expect("not poisoned");
    let first = first_violation.into_inner().expect("not poisoned");
    let stopped_reason = |first: &Option<String>| {
        format!(
            "not decided: the check stopped once partition {:?} proved a violation",
            first.as_deref().unwrap_or("?")
        )
    };
    // Shrinking gets its own budget (the search's may have been used up).
    let left = budget.deadline.saturating_duration_since(Instant::now());
    let shrink_budget = Budget::new(left, options.memory_budget);
    let partitions: Vec<PartitionReport> = parts
        .iter()
        .zip(outcomes)
        .map(|((key, idx), outcome)| {
            let ops: Vec<Entry<M::Input, M::Output>> =
                idx.iter().map(|&i| history[i].clone()).collect();
            let (verdict, witness, reason) = match outcome {
                Some(search::Outcome::Ok) => (Verdict::Ok, None, None),
                Some(search::Outcome::Unknown(r)) => (Verdict::Unknown, None, Some(r)),
                None | Some(search::Outcome::Paused) => {
                    (Verdict::Unknown, None, Some(stopped_reason(&first)))
                }
                Some(search::Outcome::Violation { frontier }) => {
                    // The search never got past the completion of `frontier`, in any
                    // order: the operations invoked by then are a violation already.
                    let cut = ops[frontier].end();
                    let prefix: Vec<usize> =
                        (0..ops.len()).filter(|&i| ops[i].invoke <= cut).collect();
                    let sub: Vec<Entry<M::Input, M::Output>> =
                        prefix.iter().map(|&i| ops[i].clone()).collect();
                    let (w, minimal) = if options.shrink {
                        let (w, minimal) = shrink::shrink_observations(model, &sub, &shrink_budget);
                        (w.into_iter().map(|i| prefix[i]).collect(), minimal)
                    } else {
                        (prefix, false)
                    };
                    let describe =
                        |e: &Entry<M::Input, M::Output>| model.describe(&e.input, &e.output);
                    (
                        Verdict::Violation,
                        Some(Witness::new(
                            "no order of these operations is legal (only reads were removed \
                             while shrinking)",
                            generic_witness_ops(&ops, &w, describe),
                            minimal,
                        )),
                        None,
                    )
                }
            };
            PartitionReport {
                key: key.clone(),
                verdict,
                operations: ops.len(),
                method: Method::Search,
                witness,
                reason,
            }
        })
        .collect();
    let mut report = CheckReport {
        model: name.into(),
        verdict: Verdict::Ok,
        operations: history.len(),
        partitions,
        lost_writes: Vec::new(),
        acknowledged_writes: 0,
        notes: Vec::new(),
        elapsed_ms: 0.0,
        times_are_lines: false,
        start_ns: history.iter().map(|o| o.invoke).min().unwrap_or(0),
    };
    if first.is_some()
        && report
            .partitions
            .iter()
            .any(|p| p.verdict == Verdict::Unknown)
    {
        report.notes.push(
            "the check stops at the first partition that proves a violation; the partitions \
             still being searched then are reported unknown"
                .into(),
        );
    }
    report.finish();
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

/// How many partitions [`check_model`] searches at once (threads, time-shared).
pub const MODEL_THREADS: usize = 16;

fn generic_witness_ops<I, O>(
    ops: &[Entry<I, O>],
    w: &[usize],
    describe: impl Fn(&Entry<I, O>) -> String,
) -> Vec<WitnessOp> {
    let mut v: Vec<WitnessOp> = w
        .iter()
        .map(|&i| WitnessOp {
            record: ops[i].source,
            process: ops[i].process,
            op: describe(&ops[i]),
            invoke_ns: ops[i].invoke,
            complete_ns: ops[i].complete,
        })
        .collect();
    v.sort_by_key(|o| (o.invoke_ns, o.record));
    v
}
