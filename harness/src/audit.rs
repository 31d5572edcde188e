//! The run's audit: lost writes, stale and phantom reads, resurrected keys and
//! damaged reads, cheap enough to re-run on the growing history every few hundred
//! milliseconds and stop at the first violation.
//!
//! Lost writes and damaged reads are decided by `clobber check`'s one definition,
//! [`clobber_check::lost::audit`], so `clobber run` and `clobber check` on the
//! history it wrote always agree on them and on `Lost: N / M`. A lost write is an
//! acknowledged `set` that an observation (a `get`, a `delete` that found nothing,
//! a `list`) missed when no mutation could explain it: the observation found the
//! key absent, or read an older value (a stale read). A damaged read (outcome
//! `damaged`) is always a violation: a correct store never shows a reader a
//! damaged file.
//!
//! The rules below are the harness's own, each flagging only what no linearization
//! could explain. With `end(op)` = completion time, or +∞ for `unknown`:
//!
//! - **Stale read after a delete or clear**: a read returns value `v`, but a
//!   definite delete or clear of `k` began after `v`'s write completed and
//!   completed before the read began (the delete was lost).
//! - **Phantom read**: a value nobody wrote to that key, or a value read before its
//!   write began.
//! - **Failed write visible**: a value whose write definitely failed.
//! - **Resurrected key** (`list` shows `k`): every write of `k` ended before a
//!   definite delete or clear that completed before the list began.
//!
//! Observations are judged only below a *horizon*: while the run is live, a worker's
//! next operation cannot begin before its last recorded one completed, so every
//! operation that could explain an observation completed before the horizon is in
//! the history already.

use std::collections::{BTreeSet, HashMap, HashSet};

use clobber_check::history::{Op, Outcome, Record};
use serde::Serialize;

use clobber_check::lost::{AuditOptions, DamagedRead, LostProof};

/// What kind of violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An acknowledged write disappeared.
    LostWrite,
    /// A read returned an overwritten value.
    StaleRead,
    /// A read returned a value nobody wrote (there), or before it was written.
    PhantomRead,
    /// A read returned a value whose write definitely failed.
    FailedWriteVisible,
    /// `list` showed a key that was definitely deleted.
    ResurrectedKey,
    /// The store file was damaged (a torn read).
    Damaged,
    /// No rule above names it, but the linearizability checker proves no order of
    /// the operations explains them (see `run/linearizable.rs`).
    NotLinearizable,
}

impl Kind {
    /// A short human name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::LostWrite => "lost write",
            Kind::StaleRead => "stale read",
            Kind::PhantomRead => "phantom read",
            Kind::FailedWriteVisible => "failed write visible",
            Kind::ResurrectedKey => "resurrected key",
            Kind::Damaged => "torn read (damaged store)",
            Kind::NotLinearizable => "not linearizable",
        }
    }
}

/// One violation with its witness.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// What kind.
    pub kind: Kind,
    /// The key, if one.
    pub key: Option<String>,
    /// One sentence.
    pub message: String,
    /// The 2–4 operations that prove it, in time order.
    pub witness: Vec<Record>,
    /// Labels for the witness operations ("acknowledged write", "likely culprit", ...).
    pub roles: Vec<String>,
    /// When the observation that proves it completed (monotonic ns).
    pub detected_ns: u64,
    /// Found by the final-state audit.
    pub final_state: bool,
    /// The key is a sentinel.
    pub sentinel: bool,
    /// The acknowledged write it proves lost, if any (index in the history).
    #[serde(skip)]
    pub lost_write: Option<usize>,
}

/// What to audit.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Sentinel keys.
    pub sentinels: HashSet<String>,
    /// The process id of the final-state reads.
    pub auditor: Option<u64>,
    /// Judge only observations that completed before this instant.
    pub horizon: Option<u64>,
}

/// The audit's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Every violation, in the order found (by observation time).
    pub violations: Vec<Violation>,
    /// Acknowledged writes proven lost.
    pub lost: usize,
    /// Acknowledged writes.
    pub acknowledged: usize,
    /// The keys that lost writes.
    pub lost_keys: Vec<String>,
    /// Observations judged (reads, not-found deletes, list entries).
    pub observations: usize,
}

impl Report {
    /// The seed's summary line.
    #[must_use]
    pub fn lost_line(&self) -> String {
        format!("Lost: {} / {}", self.lost, self.acknowledged)
    }
}

const INF: u64 = u64::MAX;

fn end(r: &Record) -> u64 {
    r.complete_ns.unwrap_or(INF)
}

/// Entries sorted by `sort`, with the running maximum of `val` (and its index).
#[derive(Default)]
struct PrefixMax {
    items: Vec<(u64, u64, usize)>,
    sort: Vec<u64>,
    best: Vec<(u64, usize)>,
}

impl PrefixMax {
    fn push(&mut self, sort: u64, val: u64, idx: usize) {
        self.items.push((sort, val, idx));
    }
    fn build(&mut self) {
        self.items.sort_unstable();
        self.sort = self.items.iter().map(|i| i.0).collect();
        let mut best = (0u64, usize::MAX);
        self.best = self
            .items
            .iter()
            .map(|&(_, v, i)| {
                if best.1 == usize::MAX || v > best.0 {
                    best = (v, i);
                }
                best
            })
            .collect();
    }
    /// Max `val` among entries with `sort < bound`.
    fn below(&self, bound: u64) -> Option<(u64, usize)> {
        let n = self.sort.partition_point(|&s| s < bound);
        (n > 0).then(|| self.best[n - 1])
    }
}

#[derive(Default)]
struct KeyIndex {
    /// Definite deletes/clears, by completion; value = invocation.
    definite_absence_by_complete: PrefixMax,
    /// Sets that may have happened (ok, unknown), by invocation; value = end.
    maybe_by_invoke: PrefixMax,
}

/// Audit a history.
#[must_use]
pub fn audit(history: &[Record], options: &Options) -> Report {
    let horizon = options.horizon.unwrap_or(INF);
    let mut keys: HashMap<&str, KeyIndex> = HashMap::new();
    let mut values: HashMap<&str, usize> = HashMap::new();
    let mut clears = Vec::new();
    for (i, r) in history.iter().enumerate() {
        match r.op {
            Op::Clear => {
                if r.outcome != Outcome::Fail {
                    clears.push(i);
                }
                continue;
            }
            Op::List => continue,
            _ => {}
        }
        let Some(key) = r.key.as_deref() else {
            continue;
        };
        let k = keys.entry(key).or_default();
        match (r.op, r.outcome) {
            (Op::Set, Outcome::Fail) => {
                if let Some(v) = r.value.as_deref() {
                    values.entry(v).or_insert(i);
                }
            }
            (Op::Set, _) => {
                if let Some(v) = r.value.as_deref() {
                    values.entry(v).or_insert(i);
                }
                k.maybe_by_invoke.push(r.invoke_ns, end(r), i);
            }
            (Op::Delete, Outcome::Ok | Outcome::NotFound) => {
                k.definite_absence_by_complete.push(end(r), r.invoke_ns, i);
            }
            _ => {}
        }
    }
    for &c in &clears {
        let r = &history[c];
        for k in keys.values_mut() {
            if r.outcome == Outcome::Ok {
                k.definite_absence_by_complete.push(end(r), r.invoke_ns, c);
            }
        }
    }
    for k in keys.values_mut() {
        k.definite_absence_by_complete.build();
        k.maybe_by_invoke.build();
    }
    let universe: BTreeSet<&str> = keys.keys().copied().collect();

    let mut found = Vec::new();
    let mut observations = 0;
    let judge = |obs: usize, key: &str, seen: Seen<'_>, found: &mut Vec<Violation>| {
        let r = &history[obs];
        let Some(k) = keys.get(key) else {
            if let Seen::Value(v) | Seen::Present(v) = seen {
                found.push(phantom(history, obs, key, v, None));
            }
            return;
        };
        match seen {
            // Lost writes (the key found absent) are `clobber check`'s to decide.
            Seen::Absent => {}
            Seen::Value(v) => {
                let Some(&w) = values.get(v) else {
                    found.push(phantom(history, obs, key, v, None));
                    return;
                };
                let wr = &history[w];
                if wr.key.as_deref() != Some(key) {
                    found.push(phantom(history, obs, key, v, Some(w)));
                    return;
                }
                if wr.outcome == Outcome::Fail {
                    found.push(Violation {
                        kind: Kind::FailedWriteVisible,
                        key: Some(key.to_owned()),
                        message: format!(
                            "read {key} = {v:?}, a value whose write the store reported as failed"
                        ),
                        witness: vec![wr.clone(), r.clone()],
                        roles: vec!["failed write".into(), "read".into()],
                        detected_ns: end(r),
                        final_state: false,
                        sentinel: false,
                        lost_write: None,
                    });
                    return;
                }
                if wr.invoke_ns > end(r) {
                    found.push(phantom(history, obs, key, v, Some(w)));
                    return;
                }
                let w_end = end(wr);
                // An overwrite by a `set` is a lost write, `clobber check`'s to
                // decide; one by a delete or clear is a lost delete, decided here.
                if let Some((inv, w2)) = k.definite_absence_by_complete.below(r.invoke_ns)
                    && w_end != INF
                    && inv > w_end
                    && w2 != w
                {
                    found.push(stale_read(history, w, w2, obs, key));
                }
            }
            Seen::Present(_) => {
                let Some((w_end, w)) = k.maybe_by_invoke.below(end(r)) else {
                    found.push(phantom(history, obs, key, "", None));
                    return;
                };
                if w_end == INF {
                    return;
                }
                if let Some((inv, d)) = k.definite_absence_by_complete.below(r.invoke_ns)
                    && inv > w_end
                {
                    found.push(Violation {
                        kind: Kind::ResurrectedKey,
                        key: Some(key.to_owned()),
                        message: format!(
                            "list showed {key}, which was definitely deleted after its last write"
                        ),
                        witness: vec![history[w].clone(), history[d].clone(), r.clone()],
                        roles: vec!["last write".into(), "delete".into(), "list".into()],
                        detected_ns: end(r),
                        final_state: false,
                        sentinel: false,
                        lost_write: None,
                    });
                }
            }
        }
    };

    let decided = clobber_check::lost::audit(
        history,
        &AuditOptions {
            horizon: options.horizon,
        },
    );
    for proof in &decided.lost {
        found.push(lost_write(history, proof));
    }
    for d in &decided.damaged {
        found.push(damaged(history, d));
    }
    for (i, r) in history.iter().enumerate() {
        let Some(done) = r.complete_ns else { continue };
        if done >= horizon {
            continue;
        }
        match (r.op, r.outcome) {
            (Op::Get, Outcome::Ok) => {
                observations += 1;
                let key = r.key.as_deref().unwrap_or("");
                judge(
                    i,
                    key,
                    Seen::Value(r.value.as_deref().unwrap_or("")),
                    &mut found,
                );
            }
            (Op::Get | Op::Delete, Outcome::NotFound) => {
                observations += 1;
                judge(i, r.key.as_deref().unwrap_or(""), Seen::Absent, &mut found);
            }
            (Op::List, Outcome::Ok) => {
                let listed: BTreeSet<&str> = r.keys.iter().flatten().map(String::as_str).collect();
                for &key in universe.union(&listed) {
                    observations += 1;
                    let seen = if listed.contains(key) {
                        Seen::Present(key)
                    } else {
                        Seen::Absent
                    };
                    judge(i, key, seen, &mut found);
                }
            }
            _ => {}
        }
    }
    for v in &mut found {
        let obs = v.witness.last().map(|r| r.process);
        v.final_state = options.auditor.is_some() && obs == options.auditor;
        v.sentinel = v
            .key
            .as_ref()
            .is_some_and(|k| options.sentinels.contains(k));
    }
    found.sort_by_key(|v| v.detected_ns);
    let lost_keys: BTreeSet<String> = decided.lost.iter().map(|l| l.key.clone()).collect();
    Report {
        violations: found,
        lost: decided.lost.len(),
        acknowledged: decided.acknowledged,
        lost_keys: lost_keys.into_iter().collect(),
        observations,
    }
}

#[derive(Clone, Copy)]
enum Seen<'a> {
    Absent,
    Value(&'a str),
    Present(&'a str),
}

/// A lost write as `clobber check` proved it, with its witness.
fn lost_write(history: &[Record], proof: &LostProof) -> Violation {
    let (wr, r) = (&history[proof.write], &history[proof.observation]);
    let key = &proof.key;
    let (witness, roles): (Vec<Record>, Vec<String>) = proof
        .witness()
        .into_iter()
        .map(|(i, role)| (history[i].clone(), role.label().to_owned()))
        .unzip();
    let message = match proof.older_write {
        None => format!(
            "process {} set {key} = {:?} (acknowledged); process {} later found {key} absent, \
             and no delete or clear could have removed it",
            wr.process,
            wr.value.as_deref().unwrap_or(""),
            r.process
        ),
        Some(o) => format!(
            "process {} set {key} = {:?} (acknowledged); process {} later read the older \
             value {:?} (written by process {}): the newer write was lost",
            wr.process,
            wr.value.as_deref().unwrap_or(""),
            r.process,
            history[o].value.as_deref().unwrap_or(""),
            history[o].process
        ),
    };
    Violation {
        kind: if proof.older_write.is_some() {
            Kind::StaleRead
        } else {
            Kind::LostWrite
        },
        key: Some(key.clone()),
        message,
        witness,
        roles,
        detected_ns: proof.proven_ns,
        final_state: false,
        sentinel: false,
        lost_write: Some(proof.write),
    }
}

fn stale_read(history: &[Record], w: usize, w2: usize, obs: usize, key: &str) -> Violation {
    let (wr, w2r, r) = (&history[w], &history[w2], &history[obs]);
    Violation {
        kind: Kind::StaleRead,
        key: Some(key.to_owned()),
        message: format!(
            "process {} read {key} = {:?}, but process {}'s {} of {key} completed after that \
             write and before the read began: the {} was lost",
            r.process,
            r.value.as_deref().unwrap_or(""),
            w2r.process,
            w2r.op,
            w2r.op
        ),
        witness: vec![wr.clone(), w2r.clone(), r.clone()],
        roles: vec![
            "older write".into(),
            format!("newer {} (lost)", w2r.op),
            "read sees the older value".into(),
        ],
        detected_ns: end(r),
        final_state: false,
        sentinel: false,
        lost_write: None,
    }
}

fn phantom(history: &[Record], obs: usize, key: &str, value: &str, w: Option<usize>) -> Violation {
    let r = &history[obs];
    let (message, witness, roles) = match w {
        Some(w) if history[w].key.as_deref() != Some(key) => (
            format!(
                "read {key} = {value:?}, a value written to {:?}",
                history[w].key.as_deref().unwrap_or("")
            ),
            vec![history[w].clone(), r.clone()],
            vec!["write to another key".to_owned(), "read".to_owned()],
        ),
        Some(w) => (
            format!("read {key} = {value:?} before the write of that value began"),
            vec![r.clone(), history[w].clone()],
            vec!["read".to_owned(), "later write".to_owned()],
        ),
        None if r.op == Op::List => (
            format!("list showed {key}, which nobody wrote"),
            vec![r.clone()],
            vec!["list".to_owned()],
        ),
        None => (
            format!("read {key} = {value:?}, a value nobody wrote"),
            vec![r.clone()],
            vec!["read".to_owned()],
        ),
    };
    Violation {
        kind: Kind::PhantomRead,
        key: Some(key.to_owned()),
        message,
        witness,
        roles,
        detected_ns: end(r),
        final_state: false,
        sentinel: false,
        lost_write: None,
    }
}

/// A damaged read as `clobber check` found it.
fn damaged(history: &[Record], d: &DamagedRead) -> Violation {
    let r = &history[d.record];
    let mut witness = vec![r.clone()];
    let mut roles = vec![format!("{} finds the store damaged", r.op)];
    if let Some(m) = d.concurrent {
        witness.insert(0, history[m].clone());
        roles.insert(0, "concurrent write".into());
    }
    Violation {
        kind: Kind::Damaged,
        key: d.key.clone(),
        message: format!(
            "process {} saw a damaged store file during {}: {}",
            r.process,
            r.op,
            d.detail.as_deref().unwrap_or("(no detail)")
        ),
        witness,
        roles,
        detected_ns: d.proven_ns,
        final_state: false,
        sentinel: false,
        lost_write: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        p: u64,
        op: Op,
        key: &str,
        value: Option<&str>,
        outcome: Outcome,
        t: (u64, Option<u64>),
    ) -> Record {
        Record {
            process: p,
            op,
            key: (op != Op::Clear && op != Op::List).then(|| key.to_owned()),
            value: value.map(str::to_owned),
            keys: None,
            outcome,
            invoke_ns: t.0,
            complete_ns: t.1,
            error: None,
            detail: None,
        }
    }
    use Op::*;
    use Outcome::*;

    #[test]
    fn seed_loss_is_a_lost_write_with_the_culprit_in_the_witness() {
        let h = vec![
            rec(2, Set, "_churn_1", Some("p2-1"), Ok, (5, Some(30))),
            rec(1, Set, "my-secret", Some("p1-1"), Ok, (10, Some(20))),
            rec(1, Get, "my-secret", None, NotFound, (40, Some(50))),
        ];
        let r = audit(&h, &Options::default());
        assert_eq!(r.violations.len(), 1);
        let v = &r.violations[0];
        assert_eq!(v.kind, Kind::LostWrite);
        assert_eq!(v.witness.len(), 3);
        assert_eq!(v.witness[1].process, 2);
        assert_eq!(r.lost_line(), "Lost: 1 / 2");
        assert_eq!(r.lost_keys, ["my-secret"]);
    }

    #[test]
    fn absence_explained_by_a_concurrent_delete_or_clear_is_not_flagged() {
        let base = vec![
            rec(1, Set, "k", Some("p1-1"), Ok, (10, Some(20))),
            rec(1, Get, "k", None, NotFound, (40, Some(50))),
        ];
        for extra in [
            rec(2, Delete, "k", None, Ok, (15, Some(45))),
            rec(2, Delete, "k", None, Unknown, (30, None)),
            rec(2, Clear, "", None, Ok, (25, Some(26))),
        ] {
            let mut h = base.clone();
            h.push(extra);
            assert!(
                audit(&h, &Options::default()).violations.is_empty(),
                "{h:?}"
            );
        }
        // A delete that ended before the set began explains nothing.
        let mut h = base.clone();
        h.push(rec(2, Delete, "k", None, Ok, (1, Some(5))));
        assert_eq!(audit(&h, &Options::default()).violations.len(), 1);
    }

    #[test]
    fn reading_an_overwritten_value_is_a_stale_read_and_the_overwrite_is_lost() {
        let h = vec![
            rec(1, Set, "k", Some("p1-1"), Ok, (10, Some(20))),
            rec(2, Set, "k", Some("p2-1"), Ok, (30, Some(40))),
            rec(3, Get, "k", Some("p1-1"), Ok, (50, Some(60))),
        ];
        let r = audit(&h, &Options::default());
        assert_eq!(r.violations[0].kind, Kind::StaleRead);
        assert_eq!(r.lost, 1);
        // Overlapping writes may land in either order: no violation.
        let mut h2 = h.clone();
        h2[1].invoke_ns = 15;
        assert!(audit(&h2, &Options::default()).violations.is_empty());
    }

    #[test]
    fn unknown_writes_may_have_happened_and_failed_writes_must_not_be_seen() {
        let h = vec![
            rec(1, Set, "k", Some("p1-1"), Unknown, (10, None)),
            rec(3, Get, "k", Some("p1-1"), Ok, (50, Some(60))),
        ];
        assert!(audit(&h, &Options::default()).violations.is_empty());
        let mut h2 = h.clone();
        h2[0].outcome = Fail;
        h2[0].complete_ns = Some(20);
        assert_eq!(
            audit(&h2, &Options::default()).violations[0].kind,
            Kind::FailedWriteVisible
        );
        let h3 = vec![rec(3, Get, "k", Some("nobody"), Ok, (50, Some(60)))];
        assert_eq!(
            audit(&h3, &Options::default()).violations[0].kind,
            Kind::PhantomRead
        );
    }

    #[test]
    fn observations_beyond_the_horizon_wait() {
        let h = vec![
            rec(1, Set, "k", Some("p1-1"), Ok, (10, Some(20))),
            rec(1, Get, "k", None, NotFound, (40, Some(50))),
        ];
        let opts = Options {
            horizon: Some(45),
            ..Options::default()
        };
        assert!(audit(&h, &opts).violations.is_empty());
    }

    #[test]
    fn list_missing_an_acknowledged_key_is_a_lost_write() {
        let mut l = rec(2, List, "", None, Ok, (40, Some(50)));
        l.keys = Some(vec!["other".into()]);
        let h = vec![
            rec(1, Set, "k", Some("p1-1"), Ok, (10, Some(20))),
            rec(1, Set, "other", Some("p1-2"), Ok, (21, Some(22))),
            l,
        ];
        let r = audit(&h, &Options::default());
        assert_eq!(r.violations.len(), 1);
        assert_eq!(r.violations[0].kind, Kind::LostWrite);
    }

    #[test]
    fn a_damaged_read_is_a_violation_and_a_failed_read_is_not() {
        let mut r = rec(1, Get, "k", None, Outcome::Damaged, (10, Some(20)));
        r.detail = Some("exit 5: truncated".into());
        let rep = audit(&[r.clone()], &Options::default());
        assert_eq!(rep.violations.len(), 1);
        assert_eq!(rep.violations[0].kind, Kind::Damaged);
        assert!(rep.violations[0].message.contains("truncated"));
        r.outcome = Fail;
        r.detail = None;
        r.error = Some("exit 3: lock busy".into());
        assert!(audit(&[r], &Options::default()).violations.is_empty());
    }
}
