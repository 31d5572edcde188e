//! Lost writes: acknowledged writes whose effect disappeared.
//!
//! A write `w` of key `k` is *lost* when some observation `o` of `k` (a `get`, a
//! `delete` that found nothing, a `list` without `k`) started after `w` finished, no
//! other mutation of `k` finished in between (so `w` is among the latest writes `o`
//! must see), and every operation that could have produced what `o` saw finished
//! before `w` began (so `o` saw a state older than `w`). Each lost write is also a
//! linearizability violation; the list exists because it is the figure users ask
//! for: "Lost: N / M".
//!
//! This is the one definition of a lost write: `clobber check` ([`crate::check_kv`])
//! and the harness's live audit both call it, the harness through [`audit`], so the
//! two always agree on "Lost: N / M".

use hashbrown::HashMap;
use rayon::prelude::*;
use serde::Serialize;

use crate::history::{Op, Outcome, Record};
use crate::model::kv::KvHistory;
use crate::model::register::{ABSENT, Action, Condition, RegEntry, Register, Reply, Val};

/// A lost write: (index of the write, index of the observation that missed it), as
/// indices into the partition.
pub type Lost = (usize, usize);

/// Find the lost writes of one key. Returns them and the number of acknowledged
/// writes.
#[must_use]
pub fn lost_writes(ops: &[RegEntry]) -> (Vec<Lost>, usize) {
    lost_writes_before(ops, u64::MAX)
}

/// [`lost_writes`], judging only observations that completed before `horizon`
/// (every operation is still used to explain them).
#[must_use]
pub fn lost_writes_before(ops: &[RegEntry], horizon: u64) -> (Vec<Lost>, usize) {
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
        if op.complete.is_none_or(|c| c >= horizon) {
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

/// What [`audit`] judges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditOptions {
    /// Judge only observations (reads, deletes that found nothing, lists, damaged
    /// reads) that completed before this instant (monotonic ns); `None` judges all.
    /// A live run passes the time before which every worker's operations are all in
    /// the history, so that whatever could explain an observation is there too.
    pub horizon: Option<u64>,
}

/// The part an operation plays in a [`LostProof`]'s witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The acknowledged write that was lost.
    AcknowledgedWrite,
    /// The write of the older value the observation saw.
    OlderWrite,
    /// A definite mutation by another process that overlapped the lost write and
    /// completed after it, before the observation: the likely writer of a stale map.
    /// A hint, not part of the proof.
    LikelyCulprit,
    /// The observation that missed the write.
    Observation,
}

impl Role {
    /// A label for reports.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Role::AcknowledgedWrite => "acknowledged write",
            Role::OlderWrite => "older write (what the observation saw)",
            Role::LikelyCulprit => "likely culprit: overlapped the write, finished after it",
            Role::Observation => "observation misses it",
        }
    }
}

/// An acknowledged write proven lost. Every index is a record index into the
/// history given to [`audit`] (or to [`crate::check_kv`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostProof {
    /// The key.
    pub key: String,
    /// The acknowledged `set`.
    pub write: usize,
    /// The first observation (by invocation) that missed it: a `get`, a `delete`
    /// that found nothing, or a `list` without the key.
    pub observation: usize,
    /// The write of the older value the observation saw (`None`: it saw the key
    /// absent).
    pub older_write: Option<usize>,
    /// The likely culprit (see [`Role::LikelyCulprit`]), if any.
    pub culprit: Option<usize>,
    /// When the loss was proven: the completion time of the observation (ns).
    pub proven_ns: u64,
}

impl LostProof {
    /// The witness: record indices with their roles, in time order (write, older
    /// write, culprit, observation; each present at most once).
    #[must_use]
    pub fn witness(&self) -> Vec<(usize, Role)> {
        let mut w = vec![(self.write, Role::AcknowledgedWrite)];
        if let Some(o) = self.older_write {
            w.insert(0, (o, Role::OlderWrite));
        }
        if let Some(c) = self.culprit {
            w.push((c, Role::LikelyCulprit));
        }
        w.push((self.observation, Role::Observation));
        w
    }
}

/// A read whose answer was damaged (outcome `damaged`): always a violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedRead {
    /// The damaged read's record index.
    pub record: usize,
    /// Its key (`None` for a `list`).
    pub key: Option<String>,
    /// What was wrong with it, as recorded.
    pub detail: Option<String>,
    /// A mutation by another process that overlapped it (that did not fail): the
    /// likely writer of the torn state. A hint, not part of the proof.
    pub concurrent: Option<usize>,
    /// When it was proven: the read's completion time (ns).
    pub proven_ns: u64,
}

/// What [`audit`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LostAudit {
    /// The lost writes, by `proven_ns` (one per write).
    pub lost: Vec<LostProof>,
    /// The acknowledged writes (`set` with outcome `ok`): the `M` of "Lost: N / M".
    pub acknowledged: usize,
    /// The damaged reads, by `proven_ns`.
    pub damaged: Vec<DamagedRead>,
}

impl LostAudit {
    /// "Lost: N / M".
    #[must_use]
    pub fn summary(&self) -> String {
        format!("Lost: {} / {}", self.lost.len(), self.acknowledged)
    }
}

/// The lost writes and damaged reads of a key-value history: the one definition
/// `clobber check` uses, cheap enough (O(n log n)) to call again and again on a
/// growing history.
///
/// How to call it: pass the records as the harness wrote them (already valid, e.g.
/// from [`crate::history::read_jsonl`] or [`crate::history::Record::validate`]), and
/// for a live run `AuditOptions { horizon: Some(t) }` with `t` the instant before
/// which every worker's operations are all recorded. Every index in the result is
/// an index into `history`; [`LostProof::witness`] gives the operations to show,
/// with their roles; `proven_ns` dates each violation by the completion of the
/// operation that proved it.
///
/// ```
/// use clobber_check::history::{Op, Outcome, Record};
/// use clobber_check::lost::{AuditOptions, audit};
///
/// let rec = |process, op, value: Option<&str>, outcome, t: (u64, u64)| Record {
///     process, op, key: Some("k".into()), value: value.map(Into::into), keys: None,
///     outcome, invoke_ns: t.0, complete_ns: Some(t.1), error: None, detail: None,
/// };
/// let history = [
///     rec(1, Op::Set, Some("p1-1"), Outcome::Ok, (10, 20)),
///     rec(2, Op::Get, None, Outcome::NotFound, (40, 50)),
/// ];
/// let found = audit(&history, &AuditOptions::default());
/// assert_eq!(found.summary(), "Lost: 1 / 1");
/// assert_eq!((found.lost[0].write, found.lost[0].observation), (0, 1));
/// assert_eq!(found.lost[0].proven_ns, 50);
/// ```
#[must_use]
pub fn audit(history: &[Record], options: &AuditOptions) -> LostAudit {
    let h = KvHistory::from_records(history);
    let horizon = options.horizon.unwrap_or(u64::MAX);
    let (per_key, shared) = h.split();
    let keys: Vec<u32> = (1..u32::try_from(per_key.len()).expect("fewer than 2^32 keys"))
        .filter(|&k| !per_key[k as usize].is_empty())
        .collect();
    let per: Vec<(Vec<LostProof>, usize)> = keys
        .par_iter()
        .map(|&k| {
            let ops = h.project(k, &per_key[k as usize], &shared);
            key_proofs(&h, k, &ops, horizon)
        })
        .collect();
    let mut out = LostAudit::default();
    for (lost, acked) in per {
        out.lost.extend(lost);
        out.acknowledged += acked;
    }
    attach_culprits(&h, &mut out.lost);
    out.lost
        .sort_unstable_by_key(|l| (l.proven_ns, l.observation, l.write));
    out.damaged = damaged_reads(&h, horizon);
    out
}

/// The lost writes of one key's projection `ops`, as proofs over records (no
/// culprits yet), and the number of acknowledged writes.
pub(crate) fn key_proofs(
    h: &KvHistory,
    key: u32,
    ops: &[RegEntry],
    horizon: u64,
) -> (Vec<LostProof>, usize) {
    let (lost, acked) = lost_writes_before(ops, horizon);
    let name = h.keys.name(key);
    let proofs = lost
        .into_iter()
        .map(|(w, o)| {
            let older_write = match Register::condition(ops[o].input, ops[o].output) {
                Condition::Is(u) if u != ABSENT => (0..ops.len())
                    .filter(|&i| ops[i].input == Action::Write(u) && ops[i].invoke <= ops[o].end())
                    .max_by_key(|&i| ops[i].end())
                    .map(|i| ops[i].source),
                _ => None,
            };
            LostProof {
                key: name.to_owned(),
                write: ops[w].source,
                observation: ops[o].source,
                older_write,
                culprit: None,
                proven_ns: ops[o].end(),
            }
        })
        .collect();
    (proofs, acked)
}

/// Fill in each proof's likely culprit: among the definite (`ok`) mutations by other
/// processes, one in flight when the write completed that completed before the
/// observation began (the earliest invoked). A process runs one operation at a
/// time, so per process only its last mutation invoked before the write's
/// completion can be in flight then.
pub(crate) fn attach_culprits(h: &KvHistory, proofs: &mut [LostProof]) {
    if proofs.is_empty() {
        return;
    }
    let mut by_process: HashMap<u64, Vec<(u64, u64, usize)>> = HashMap::new();
    for (i, op) in h.ops.iter().enumerate() {
        if op.op.is_mutation() && op.outcome == Outcome::Ok {
            by_process.entry(op.process).or_default().push((
                op.invoke,
                op.complete.unwrap_or(u64::MAX),
                i,
            ));
        }
    }
    for v in by_process.values_mut() {
        v.sort_unstable();
    }
    for p in proofs {
        let w = &h.ops[p.write];
        let w_end = w.complete.unwrap_or(u64::MAX);
        let o_invoke = h.ops[p.observation].invoke;
        p.culprit = by_process
            .iter()
            .filter(|(proc_, _)| **proc_ != w.process)
            .filter_map(|(_, ms)| {
                let n = ms.partition_point(|m| m.0 < w_end);
                let &(inv, end, i) = ms.get(n.checked_sub(1)?)?;
                (end > w_end && end < o_invoke).then_some((inv, i))
            })
            .min()
            .map(|(_, i)| i);
    }
}

/// The damaged reads of a history completed before `horizon`, each with a
/// concurrent mutation as a hint.
pub(crate) fn damaged_reads(h: &KvHistory, horizon: u64) -> Vec<DamagedRead> {
    let mut out: Vec<DamagedRead> = h
        .damaged
        .iter()
        .filter(|(i, _)| h.ops[*i].complete.is_some_and(|c| c < horizon))
        .map(|(i, detail)| {
            let r = &h.ops[*i];
            let end = r.complete.unwrap_or(u64::MAX);
            let concurrent = h
                .ops
                .iter()
                .position(|m| {
                    m.op.is_mutation()
                        && m.process != r.process
                        && matches!(m.outcome, Outcome::Ok | Outcome::Unknown)
                        && (r.op == Op::List || m.key == r.key || m.op == Op::Clear)
                        && m.invoke < end
                        && m.complete.unwrap_or(u64::MAX) > r.invoke
                })
                .or_else(|| {
                    // A torn file can come from a write to any key (the whole map is
                    // rewritten).
                    h.ops.iter().position(|m| {
                        m.op.is_mutation()
                            && m.process != r.process
                            && matches!(m.outcome, Outcome::Ok | Outcome::Unknown)
                            && m.invoke < end
                            && m.complete.unwrap_or(u64::MAX) > r.invoke
                    })
                });
            DamagedRead {
                record: *i,
                key: (r.key != crate::model::kv::NO_KEY).then(|| h.keys.name(r.key).to_owned()),
                detail: detail.clone(),
                concurrent,
                proven_ns: end,
            }
        })
        .collect();
    out.sort_unstable_by_key(|d| (d.proven_ns, d.record));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{GenOptions, Inject, Mix, generate};

    fn rec(
        p: u64,
        op: Op,
        key: &str,
        value: Option<&str>,
        outcome: Outcome,
        t: (u64, u64),
    ) -> Record {
        Record {
            process: p,
            op,
            key: Some(key.to_owned()),
            value: value.map(str::to_owned),
            keys: None,
            outcome,
            invoke_ns: t.0,
            complete_ns: Some(t.1),
            error: None,
            detail: None,
        }
    }

    #[test]
    fn audit_names_the_seed_loss_with_its_culprit_and_dates_it_by_the_observation() {
        let h = [
            rec(2, Op::Set, "_churn_1", Some("p2-1"), Outcome::Ok, (5, 30)),
            rec(1, Op::Set, "my-secret", Some("p1-1"), Outcome::Ok, (10, 20)),
            rec(1, Op::Get, "my-secret", None, Outcome::NotFound, (40, 50)),
        ];
        let a = audit(&h, &AuditOptions::default());
        assert_eq!(a.summary(), "Lost: 1 / 2");
        let l = &a.lost[0];
        assert_eq!(
            (l.write, l.observation, l.culprit, l.older_write),
            (1, 2, Some(0), None)
        );
        assert_eq!(l.proven_ns, 50);
        assert_eq!(
            l.witness(),
            [
                (1, Role::AcknowledgedWrite),
                (0, Role::LikelyCulprit),
                (2, Role::Observation)
            ]
        );
        // Before the observation completed, nothing is proven yet.
        let live = audit(&h, &AuditOptions { horizon: Some(50) });
        assert_eq!(live.summary(), "Lost: 0 / 2");
    }

    #[test]
    fn a_stale_read_loses_the_overwrite_and_names_the_older_write() {
        let h = [
            rec(1, Op::Set, "k", Some("p1-1"), Outcome::Ok, (10, 20)),
            rec(2, Op::Set, "k", Some("p2-1"), Outcome::Ok, (30, 40)),
            rec(3, Op::Get, "k", Some("p1-1"), Outcome::Ok, (50, 60)),
        ];
        let a = audit(&h, &AuditOptions::default());
        assert_eq!(a.lost.len(), 1);
        assert_eq!((a.lost[0].write, a.lost[0].older_write), (1, Some(0)));
    }

    #[test]
    fn damaged_reads_are_reported_with_a_concurrent_write_and_failed_reads_are_not() {
        let mut torn = rec(3, Op::Get, "k", None, Outcome::Damaged, (25, 35));
        torn.detail = Some("garbage".into());
        let mut failed = rec(3, Op::Get, "k", None, Outcome::Fail, (45, 55));
        failed.error = Some("busy".into());
        let h = [
            rec(1, Op::Set, "k", Some("p1-1"), Outcome::Ok, (10, 40)),
            torn,
            failed,
        ];
        let a = audit(&h, &AuditOptions::default());
        assert_eq!(a.damaged.len(), 1);
        let d = &a.damaged[0];
        assert_eq!((d.record, d.concurrent, d.proven_ns), (1, Some(0), 35));
        assert_eq!(d.detail.as_deref(), Some("garbage"));
        let report = crate::check_kv(&h, &crate::CheckOptions::default());
        assert_eq!(report.verdict(), crate::Verdict::Violation);
        assert!(
            report.render_text().contains("torn/damaged read"),
            "{}",
            report.render_text()
        );
        // The same read recorded as `fail` is harmless.
        let mut ok = h.clone();
        ok[1].outcome = Outcome::Fail;
        ok[1].detail = None;
        assert_eq!(
            crate::check_kv(&ok, &crate::CheckOptions::default()).verdict(),
            crate::Verdict::Ok
        );
    }

    #[test]
    fn audit_and_check_kv_report_the_same_lost_writes_on_generated_histories() {
        let mut compared = 0;
        for seed in 0..40 {
            let g = generate(&GenOptions {
                ops: 400,
                keys: 4,
                clients: 6,
                seed,
                indeterminate: 0.05,
                mix: Mix {
                    list: 3.0,
                    clear: 1.0,
                    ..Mix::default()
                },
                inject: (seed % 2 == 0).then_some(Inject::LostWrite),
                ..GenOptions::default()
            });
            let a = audit(&g.records, &AuditOptions::default());
            let r = crate::check_kv(&g.records, &crate::CheckOptions::default());
            let mut from_audit: Vec<(usize, usize, u64)> = a
                .lost
                .iter()
                .map(|l| (l.write, l.observation, l.proven_ns))
                .collect();
            let mut from_check: Vec<(usize, usize, u64)> = r
                .lost_writes
                .iter()
                .map(|l| (l.record, l.observed_by.record, l.proven_ns))
                .collect();
            from_audit.sort_unstable();
            from_check.sort_unstable();
            assert_eq!(from_audit, from_check, "seed {seed}");
            assert_eq!(a.acknowledged, r.acknowledged_writes, "seed {seed}");
            compared += usize::from(!from_audit.is_empty());
        }
        assert!(compared >= 10, "only {compared} histories had a lost write");
    }
}
