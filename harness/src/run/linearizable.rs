//! The linearizability checker as a source of violations, live and at the end.
//!
//! Why: the audit's rules name the common losses, but some histories break no rule
//! and are still impossible (a key seen with a value that then vanished with no
//! delete or clear to explain it, when the write's own answer was unknown). Only the
//! checker finds those. Here its failing keys become violations like the audit's:
//! they count, they stop a live run, and they are dated when the operation that
//! completes the checker's witness returned.

use std::collections::HashSet;
use std::time::Duration;

use clobber_check::history::{Outcome, Record};
use clobber_check::{CheckOptions, CheckReport, Verdict};

use crate::audit::{Kind, Violation};

/// The budget of one live check; running out is not a violation, so the run goes on.
const LIVE_BUDGET: Duration = Duration::from_secs(2);

/// Whether the history so far is proven not linearizable.
///
/// Only what is settled below `horizon` is judged: an operation that completed
/// after it is treated as still pending (it may or may not have taken effect, and a
/// read whose answer is pending constrains nothing). A worker's operations not yet
/// in its history began after its last recorded one completed, so after the
/// horizon, after everything judged: they cannot explain it. So the history
/// checked is a linearizable prefix whenever the whole is, and no false alarm can
/// come from an operation still in flight.
pub(crate) fn live_violation(history: &[Record], horizon: u64) -> bool {
    let settled: Vec<Record> = history
        .iter()
        .map(|r| {
            if r.complete_ns.is_some_and(|c| c > horizon) {
                Record {
                    outcome: Outcome::Unknown,
                    complete_ns: None,
                    ..r.clone()
                }
            } else {
                r.clone()
            }
        })
        .collect();
    let report = clobber_check::check_kv(
        &settled,
        &CheckOptions {
            time_budget: LIVE_BUDGET,
            // The verdict is enough to stop; the final check shrinks the witness.
            shrink: false,
            ..CheckOptions::default()
        },
    );
    report.verdict() == Verdict::Violation
}

/// The checker's failing keys that no audit violation already names, as
/// violations: the checker's witness (indices into `history`, the history it
/// checked), dated when its latest operation completed.
pub(crate) fn checker_only(
    report: &CheckReport,
    history: &[Record],
    audited: &[Violation],
) -> Vec<Violation> {
    let named: HashSet<&str> = audited.iter().filter_map(|v| v.key.as_deref()).collect();
    report
        .partitions
        .iter()
        .filter(|p| p.verdict == Verdict::Violation && !named.contains(p.key.as_str()))
        .filter_map(|p| {
            let w = p.witness.as_ref()?;
            // The audit reports every damaged read itself (the same `lost::audit`):
            // a witness that rests on one would count that violation twice.
            if w.ops.iter().any(|o| {
                history
                    .get(o.record)
                    .is_some_and(|r| r.outcome == Outcome::Damaged)
            }) {
                return None;
            }
            let detected_ns = w.proven_ns?;
            let witness: Vec<Record> = w
                .ops
                .iter()
                .filter_map(|o| history.get(o.record).cloned())
                .collect();
            let roles = w
                .ops
                .iter()
                .map(|o| {
                    if o.complete_ns == Some(detected_ns) {
                        "completes the proof".to_owned()
                    } else {
                        "in the checker's witness".to_owned()
                    }
                })
                .collect();
            Some(Violation {
                kind: Kind::NotLinearizable,
                key: Some(p.key.clone()),
                message: format!(
                    "the linearizability checker found no order of these operations that \
                     explains them{}: {}",
                    if w.minimal { " (minimal witness)" } else { "" },
                    w.explanation
                ),
                witness,
                roles,
                detected_ns,
                final_state: false,
                sentinel: false,
                lost_write: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clobber_check::history::Op;

    fn rec(process: u64, op: Op, value: Option<&str>, outcome: Outcome, t: (u64, u64)) -> Record {
        Record {
            process,
            op,
            key: Some("k".into()),
            value: value.map(Into::into),
            keys: None,
            outcome,
            invoke_ns: t.0,
            complete_ns: (outcome != Outcome::Unknown).then_some(t.1),
            error: None,
            detail: None,
        }
    }

    /// A write whose answer was unknown, read back, then gone with no delete.
    fn vanished() -> Vec<Record> {
        vec![
            rec(1, Op::Set, Some("v1"), Outcome::Unknown, (0, 0)),
            rec(1, Op::Get, Some("v1"), Outcome::Ok, (10, 20)),
            rec(1, Op::Get, None, Outcome::NotFound, (30, 40)),
        ]
    }

    #[test]
    fn a_value_that_vanished_is_a_live_violation_once_settled() {
        assert!(live_violation(&vanished(), 40));
        // Before the horizon passes the absent read, it is still pending: no alarm.
        assert!(!live_violation(&vanished(), 35));
    }

    #[test]
    fn the_audit_misses_it_and_the_checker_dates_it_at_the_proving_read() {
        let h = vanished();
        let audit = crate::audit::audit(&h, &crate::audit::Options::default());
        assert!(audit.violations.is_empty(), "{:?}", audit.violations);
        let report = clobber_check::check_kv(&h, &CheckOptions::default());
        let vs = checker_only(&report, &h, &audit.violations);
        assert_eq!(vs.len(), 1);
        assert_eq!(vs[0].kind, Kind::NotLinearizable);
        assert_eq!(vs[0].detected_ns, 40);
    }

    #[test]
    fn a_write_still_in_flight_explains_a_read_and_raises_no_alarm() {
        // p2's write completes after the horizon: pending, so p1 may have read it.
        let h = vec![
            rec(2, Op::Set, Some("v1"), Outcome::Ok, (0, 100)),
            rec(1, Op::Get, Some("v1"), Outcome::Ok, (10, 20)),
        ];
        assert!(!live_violation(&h, 30));
        // A phantom value nobody wrote is proven at once.
        let h = vec![rec(1, Op::Get, Some("v9"), Outcome::Ok, (10, 20))];
        assert!(live_violation(&h, 30));
    }
}
