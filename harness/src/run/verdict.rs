//! The final verdict: turn what the run found (the audit, the checker's report, the
//! integrity check, why it stopped) into the summary table and one verdict.
//!
//! Why one place: the verdict is the product. Every rule that decides pass,
//! violation or inconclusive lives here, next to the figures it prints, so a status
//! can never contradict its numbers.

use std::collections::BTreeMap;
use std::time::Duration;

use clobber_check::history::Record;

use super::integrity::Integrity;
use super::{Plan, RunConfig, Stop};
use crate::audit;
use crate::report::{Check, RunReport, Status, UnknownOutcomes, Verdict};

/// Above this share of unknown outcomes in an operation kind the report warns and
/// shows the commonest store messages behind them.
pub const UNKNOWN_WARN_PERCENT: usize = 5;
/// Above this share of unknown outcomes in an operation kind the run is
/// inconclusive (exit 2), never a pass.
pub const UNKNOWN_INCONCLUSIVE_PERCENT: usize = 10;

/// Unknown outcomes per operation kind, with the three most frequent first lines of
/// the store's messages for a kind above [`UNKNOWN_WARN_PERCENT`].
fn unknown_outcomes(workload: &[&Record]) -> Vec<UnknownOutcomes> {
    let mut by: BTreeMap<String, (usize, usize, BTreeMap<String, usize>)> = BTreeMap::new();
    for r in workload {
        let e = by.entry(r.op.name().to_owned()).or_default();
        e.0 += 1;
        if r.outcome == clobber_check::history::Outcome::Unknown {
            e.1 += 1;
            let line = r
                .error
                .as_deref()
                .and_then(|e| e.lines().next())
                .unwrap_or("(no message)")
                .to_owned();
            *e.2.entry(line).or_default() += 1;
        }
    }
    by.into_iter()
        .map(|(op, (total, unknown, messages))| {
            let warn = unknown * 100 > total * UNKNOWN_WARN_PERCENT;
            let mut top: Vec<(String, usize)> = messages.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            top.truncate(3);
            UnknownOutcomes {
                op,
                total,
                unknown,
                warn,
                inconclusive: unknown * 100 > total * UNKNOWN_INCONCLUSIVE_PERCENT,
                top_messages: if warn { top } else { Vec::new() },
            }
        })
        .collect()
}

/// Everything the verdict is decided from.
pub(crate) struct Facts<'a> {
    /// The command line.
    pub(crate) config: &'a RunConfig,
    /// The resolved scenario, store, mode, seed and scratch directory.
    pub(crate) plan: &'a Plan,
    /// The common start of every worker (monotonic ns).
    pub(crate) epoch: u64,
    /// When the workload ended (monotonic ns); later records are final-state reads.
    pub(crate) run_end: u64,
    /// Wall time of the whole command.
    pub(crate) wall: Duration,
    /// The merged history, final-state reads included.
    pub(crate) history: &'a [Record],
    /// The audit of the whole history.
    pub(crate) audit: &'a audit::Report,
    /// The store-file integrity check.
    pub(crate) integrity: &'a Integrity,
    /// Why the run stopped.
    pub(crate) stop: &'a Stop,
    /// Whether the final state was read back.
    pub(crate) final_read: bool,
    /// Whether the scenario has a sentinel role.
    pub(crate) has_sentinel: bool,
    /// How many worker processes ran.
    pub(crate) processes: usize,
    /// The linearizability checker's report.
    pub(crate) linearizability: Option<clobber_check::CheckReport>,
}

/// Build the report and its verdict.
#[allow(clippy::too_many_lines)]
pub(crate) fn build_report(facts: Facts<'_>) -> RunReport {
    let Facts {
        config,
        plan,
        epoch,
        run_end,
        wall,
        history,
        audit,
        integrity,
        stop,
        final_read,
        has_sentinel,
        processes,
        linearizability,
    } = facts;
    let Plan {
        scenario,
        adapter,
        mode,
        seed,
        replay,
        recheck,
        scratch,
        ..
    } = plan;
    let (mode, seed, replay) = (*mode, *seed, replay.clone());
    // The header's count and the breakdown cover the same operations: the
    // workload's. The final-state reads are counted apart.
    let workload: Vec<&Record> = history.iter().filter(|r| r.invoke_ns < run_end).collect();
    let mut ops_by = BTreeMap::new();
    for r in &workload {
        *ops_by
            .entry(format!("{}/{}", r.op, r.outcome))
            .or_insert(0usize) += 1;
    }
    let run_s = run_end.saturating_sub(epoch) as f64 / 1e9;
    let workload_ops = workload.len();
    let final_reads = history.len() - workload_ops;
    let unknowns = unknown_outcomes(&workload);
    // Keys only the checker proves wrong are violations too, dated by its witness.
    let mut all = audit.violations.clone();
    if let Some(c) = &linearizability {
        all.extend(super::linearizable::checker_only(
            c,
            history,
            &audit.violations,
        ));
    }
    let vs = &all;
    let status_of = |pred: &dyn Fn(&audit::Violation) -> bool| {
        let n = vs.iter().filter(|v| pred(v)).count();
        if n > 0 {
            (Status::Violation, format!("{n} violation(s)"))
        } else {
            (Status::Ok, String::new())
        }
    };
    let mut checks = Vec::new();
    // Every lost write counts, whichever rule proved it (a read finding the key
    // absent, a stale read, the final-state audit): the status follows the figure.
    let s = if audit.lost > 0 {
        Status::Violation
    } else {
        status_of(&|v| v.kind == audit::Kind::LostWrite && !v.final_state).0
    };
    checks.push(Check::new("lost writes", s, {
        let mut d = audit.lost_line();
        if !audit.lost_keys.is_empty() {
            d.push_str(&format!(
                " ({})",
                audit
                    .lost_keys
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        d
    }));
    let (s, d) = status_of(&|v| {
        !v.final_state
            && !matches!(
                v.kind,
                audit::Kind::LostWrite | audit::Kind::Damaged | audit::Kind::NotLinearizable
            )
    });
    checks.push(Check::new(
        "stale reads",
        s,
        if d.is_empty() {
            format!("{} observations", audit.observations)
        } else {
            d
        },
    ));
    if final_read {
        let (s, d) = status_of(&|v| v.final_state);
        checks.push(Check::new(
            "final state",
            s,
            if d.is_empty() {
                "every key holds a value that could be last".into()
            } else {
                d
            },
        ));
    } else {
        checks.push(Check::new(
            "final state",
            Status::NotRun,
            "stopped early".into(),
        ));
    }
    if has_sentinel {
        let (s, d) = status_of(&|v| v.sentinel);
        checks.push(Check::new(
            "sentinel",
            s,
            if d.is_empty() { "intact".into() } else { d },
        ));
    }
    let (s, d) = status_of(&|v| v.kind == audit::Kind::Damaged);
    checks.push(Check::new(
        "torn reads",
        s,
        if d.is_empty() { "none".into() } else { d },
    ));
    checks.push(Check::new(
        "store integrity",
        integrity.status,
        integrity.detail.clone(),
    ));
    checks.push(match &linearizability {
        None => Check::new("linearizability", Status::NotChecked, "not checked".into()),
        Some(c) => {
            let failing: Vec<&str> = c
                .partitions
                .iter()
                .filter(|p| p.verdict != clobber_check::Verdict::Ok)
                .map(|p| p.key.as_str())
                .take(5)
                .collect();
            let status = match c.verdict() {
                clobber_check::Verdict::Ok => Status::Ok,
                clobber_check::Verdict::Violation => Status::Violation,
                clobber_check::Verdict::Unknown => Status::Unknown,
            };
            let mut d = format!(
                "{} keys, {} ops, {:.0} ms; checker {}",
                c.partitions.len(),
                c.operations,
                c.elapsed_ms,
                c.lost_summary()
            );
            if !failing.is_empty() {
                d.push_str(&format!("; not linearizable: {}", failing.join(", ")));
            }
            Check::new("linearizability", status, d)
        }
    });

    let too_many_unknown: Vec<String> = unknowns
        .iter()
        .filter(|u| u.inconclusive)
        .map(|u| format!("{} of {} `{}`", u.unknown, u.total, u.op))
        .collect();
    checks.push(if unknowns.iter().any(|u| u.unknown > 0) {
        let d = unknowns
            .iter()
            .filter(|u| u.unknown > 0)
            .map(|u| format!("{} {}/{}", u.op, u.unknown, u.total))
            .collect::<Vec<_>>()
            .join(", ");
        let status = if too_many_unknown.is_empty() {
            Status::Ok
        } else {
            Status::Unknown
        };
        Check::new("unknown outcomes", status, d)
    } else {
        Check::new("unknown outcomes", Status::Ok, "none".into())
    });

    let violated = checks.iter().any(|c| c.status == Status::Violation);
    let unknown_checks: Vec<String> = checks
        .iter()
        .filter(|c| c.status == Status::Unknown && c.name != "unknown outcomes")
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    let (verdict, reason) = if violated {
        (Verdict::Violation, None)
    } else if !unknown_checks.is_empty() {
        (
            Verdict::Inconclusive,
            Some(format!(
                "unknown, never a pass: {}",
                unknown_checks.join("; ")
            )),
        )
    } else if let Stop::StoreUnresponsive(why) = stop {
        (
            Verdict::Inconclusive,
            Some(format!("the store stopped answering: {why}")),
        )
    } else if !too_many_unknown.is_empty() {
        (
            Verdict::Inconclusive,
            Some(format!(
                "too many outcomes are unknown ({}; above {UNKNOWN_INCONCLUSIVE_PERCENT}% of a \
                 kind): an unknown write or delete can explain away a loss, so the checks \
                 are too weak to pass",
                too_many_unknown.join(", ")
            )),
        )
    } else if audit.observations == 0 {
        (
            Verdict::Inconclusive,
            Some("nothing was observed: no read succeeded".to_owned()),
        )
    } else if let Some(why) = crate::evidence::Reads::of(workload.iter().copied()).too_little() {
        // A floor of evidence under every pass (see evidence.rs).
        (Verdict::Inconclusive, Some(why))
    } else {
        (Verdict::Pass, None)
    };
    let first = vs
        .iter()
        .map(|v| v.detected_ns)
        .min()
        .map(|t| t.saturating_sub(epoch) as f64 / 1e9);
    RunReport {
        scenario: scenario.name.clone(),
        scenario_file: config.scenario.display().to_string(),
        store: adapter.name.clone(),
        mode: mode.name().to_owned(),
        seed,
        replay,
        recheck: if verdict == Verdict::Pass
            && !config.keep
            && config.scratch.is_none()
            && config.history_out.is_none()
        {
            format!("{recheck}  (removed after a pass: keep it with --keep or --history FILE)")
        } else {
            recheck.clone()
        },
        scratch: scratch.display().to_string(),
        processes,
        duration_s: run_s,
        wall_s: wall.as_secs_f64(),
        ops: workload_ops,
        ops_per_s: if run_s > 0.0 {
            workload_ops as f64 / run_s
        } else {
            0.0
        },
        ops_by,
        final_reads,
        unknowns,
        stop: match stop {
            Stop::Done => "done".into(),
            Stop::Violation => "first violation".into(),
            Stop::MaxDuration => "max duration".into(),
            Stop::StoreUnresponsive(_) => "store unresponsive".into(),
        },
        time_to_detect_s: first,
        lost: audit.lost,
        acknowledged: audit.acknowledged,
        lost_keys: audit.lost_keys.clone(),
        checks,
        violations: vs.iter().take(20).cloned().collect(),
        violation_count: vs.len(),
        distinct_violations: crate::report::distinct(vs).len(),
        epoch_ns: epoch,
        verdict,
        reason,
        linearizability,
        perturbation: None,
        nemesis: None,
    }
}
