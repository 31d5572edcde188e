//! The run report: a summary table, a minimal witness per violation on one
//! timeline, the verdict and its exit code, and the same as JSON (`--json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clobber_check::history::{Op, Record};
use serde::Serialize;

use crate::audit::Violation;

/// The verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check passed (exit 0).
    Pass,
    /// A violation was proven (exit 1).
    Violation,
    /// Nothing could be concluded (exit 2); never a pass.
    Inconclusive,
}

impl Verdict {
    /// The process exit code.
    #[must_use]
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Violation => 1,
            Verdict::Inconclusive => 2,
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Passed.
    Ok,
    /// Failed.
    Violation,
    /// Not checked (not available): never a pass.
    NotChecked,
    /// Not run in this run (e.g. stopped early).
    NotRun,
    /// Ran out of budget: never a pass.
    Unknown,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Violation => "VIOLATION",
            Status::NotChecked => "not checked",
            Status::NotRun => "not run",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// One row of the summary table.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Its result.
    pub status: Status,
    /// Details.
    pub detail: String,
}

impl Check {
    /// A row.
    #[must_use]
    pub fn new(name: &str, status: Status, detail: String) -> Self {
        Self {
            name: name.to_owned(),
            status,
            detail,
        }
    }
}

/// Unknown outcomes of one operation kind: each may or may not have happened, and
/// an unknown write or delete can explain away a loss, so many of them weaken the
/// checks.
#[derive(Debug, Clone, Serialize)]
pub struct UnknownOutcomes {
    /// The operation kind.
    pub op: String,
    /// Operations of that kind.
    pub total: usize,
    /// Of which unknown.
    pub unknown: usize,
    /// Above the warning share.
    pub warn: bool,
    /// Above the inconclusive share.
    pub inconclusive: bool,
    /// The most frequent first lines of the store's messages (with counts), when
    /// above the warning share.
    pub top_messages: Vec<(String, usize)>,
}

/// The violations with distinct witnesses (same kind, key and first write), in
/// order.
#[must_use]
pub fn distinct(violations: &[Violation]) -> Vec<&Violation> {
    let mut seen = std::collections::HashSet::new();
    violations
        .iter()
        .filter(|v| {
            let first = v
                .witness
                .iter()
                .find(|r| r.op == Op::Set)
                .or(v.witness.first());
            seen.insert((
                v.kind,
                v.key.clone(),
                first.map(|r| (r.process, r.invoke_ns)),
            ))
        })
        .collect()
}

/// Everything a run found (serialised by `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub scenario_file: String,
    /// Store (adapter) name.
    pub store: String,
    /// `cli` or `lib`.
    pub mode: String,
    /// The seed.
    pub seed: u64,
    /// The command that replays this run (clobber's choices, not the OS's
    /// interleaving), with the environment variables that shaped it.
    pub replay: String,
    /// The exact command that re-checks the recorded history.
    pub recheck: String,
    /// The scratch directory (removed after a passing run unless `--keep`).
    pub scratch: String,
    /// Worker processes.
    pub processes: usize,
    /// From the common start to the last worker's exit, in seconds.
    pub duration_s: f64,
    /// Wall time of the whole command, in seconds.
    pub wall_s: f64,
    /// Workload operations (without the final-state reads).
    pub ops: usize,
    /// Workload operations per second.
    pub ops_per_s: f64,
    /// Workload operations by `op/outcome` (they add up to `ops`).
    pub ops_by: BTreeMap<String, usize>,
    /// The final-state reads after the workload (not in `ops`).
    pub final_reads: usize,
    /// Unknown outcomes per operation kind (workload only).
    pub unknowns: Vec<UnknownOutcomes>,
    /// Why the run stopped.
    pub stop: String,
    /// Seconds from the start to the observation that proved the first violation.
    pub time_to_detect_s: Option<f64>,
    /// Acknowledged writes proven lost.
    pub lost: usize,
    /// Acknowledged writes.
    pub acknowledged: usize,
    /// Keys that lost writes.
    pub lost_keys: Vec<String>,
    /// The summary table.
    pub checks: Vec<Check>,
    /// The first violations (at most 20) with their witnesses.
    pub violations: Vec<Violation>,
    /// How many violations in all.
    pub violation_count: usize,
    /// How many of them have distinct witnesses (several observations often prove
    /// the same loss).
    pub distinct_violations: usize,
    /// The monotonic instant the run started (witness times are relative to it).
    pub epoch_ns: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the run is inconclusive, if it is.
    pub reason: Option<String>,
    /// The linearizability checker's report (`clobber check` on the same history).
    pub linearizability: Option<clobber_check::CheckReport>,
    /// `--perturb`: what was delayed, and which delays preceded each violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturbation: Option<crate::perturbation::Summary>,
    /// What `--nemesis` did (none: no field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<crate::nemesis::Summary>,
}

impl RunReport {
    /// The human-readable report.
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "clobber run: scenario {} ({}), store {}, mode {}, seed {}",
            self.scenario, self.scenario_file, self.store, self.mode, self.seed
        );
        let _ = writeln!(
            s,
            "  {} worker processes, {:.2} s, {} operations ({:.0} ops/s), stopped: {}{}",
            self.processes,
            self.duration_s,
            self.ops,
            self.ops_per_s,
            self.stop,
            if self.final_reads > 0 {
                format!("; then {} final-state reads", self.final_reads)
            } else {
                String::new()
            }
        );
        let by: Vec<String> = self
            .ops_by
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "  {}", by.join(", "));
        if let Some(n) = &self.nemesis {
            let _ = writeln!(s, "  {}", n.line());
        }
        let _ = writeln!(s);
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            let _ = writeln!(
                s,
                "  {:width$}  {:11}  {}",
                c.name,
                c.status.label(),
                c.detail
            );
        }
        for u in self.unknowns.iter().filter(|u| u.warn) {
            let _ = writeln!(
                s,
                "\nwarning: {} of {} `{}` operations have an unknown outcome{}; commonest \
                 store messages:",
                u.unknown,
                u.total,
                u.op,
                if u.inconclusive {
                    " (too many: the run cannot pass)"
                } else {
                    ""
                }
            );
            for (line, n) in &u.top_messages {
                let _ = writeln!(s, "  {n:>5} x  {line}");
            }
        }
        // Several observations often prove the same loss: show distinct ones,
        // numbered among the distinct ones.
        let distinct = distinct(&self.violations);
        for (n, v) in distinct.iter().take(3).enumerate() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "violation {} of {}: {}{}{}",
                n + 1,
                self.distinct_violations,
                v.kind.name(),
                v.key
                    .as_ref()
                    .map_or(String::new(), |k| format!(" on key {k}")),
                if v.final_state {
                    " (final-state audit)"
                } else {
                    ""
                }
            );
            let _ = writeln!(s, "  {}", v.message);
            s.push_str(&render_witness(v, self.epoch_ns));
            if let Some(p) = &self.perturbation {
                match p.preceding.get(n).map(Vec::as_slice) {
                    Some([]) | None => {
                        let _ = writeln!(s, "  perturbation: no delayed call overlapped it");
                    }
                    Some(lines) => {
                        let _ = writeln!(s, "  perturbation: delayed calls that preceded it:");
                        for l in lines {
                            let _ = writeln!(s, "    {l}");
                        }
                    }
                }
            }
        }
        if self.violation_count == 0
            && let Some(c) = &self.linearizability
            && c.verdict() == clobber_check::Verdict::Violation
        {
            let _ = writeln!(s, "\nlinearizability checker:");
            for line in c.render_text().lines().take(40) {
                let _ = writeln!(s, "  {line}");
            }
        }
        let shown = distinct.len().min(3);
        if self.violation_count > shown {
            let _ = writeln!(
                s,
                "\n  ... {} violation(s) in all, {} with distinct witnesses, {shown} shown \
                 (see --json)",
                self.violation_count, self.distinct_violations
            );
        }
        if let Some(p) = &self.perturbation {
            let _ = writeln!(s);
            s.push_str(&p.render_text());
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "{}", lost_summary(self));
        if let Some(t) = self.time_to_detect_s {
            let _ = writeln!(s, "time to detect: {t:.2} s");
        }
        let verdict = match self.verdict {
            Verdict::Pass => "PASS",
            Verdict::Violation => "VIOLATION",
            Verdict::Inconclusive => "INCONCLUSIVE",
        };
        let _ = writeln!(
            s,
            "verdict: {verdict} (exit {}){}",
            self.verdict.exit_code(),
            self.reason
                .as_ref()
                .map_or(String::new(), |r| format!(": {r}"))
        );
        let _ = writeln!(s, "seed={}  replay: {}", self.seed, self.replay);
        let _ = writeln!(s, "  ({})", crate::run::REPLAY_CAVEAT);
        let _ = writeln!(s, "re-check: {}", self.recheck);
        if self.verdict != Verdict::Pass {
            let _ = writeln!(
                s,
                "scratch (history.jsonl, store, worker logs): {}",
                self.scratch
            );
        }
        s
    }
}

impl RunReport {
    /// The checks as a JUnit XML test suite (one test case per check), for CI
    /// dashboards. `not checked` / `not run` checks are reported as skipped.
    #[must_use]
    pub fn render_junit(&self) -> String {
        let failures = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Violation)
            .count();
        let errors = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Unknown)
            .count();
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let suite = format!("clobber.{}.{}.{}", self.scenario, self.store, self.mode);
        let _ = writeln!(
            s,
            "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">",
            xml(&suite),
            self.checks.len(),
            self.wall_s
        );
        let _ = writeln!(
            s,
            "  <properties><property name=\"seed\" value=\"{}\"/><property name=\"replay\" value=\"{}\"/></properties>",
            self.seed,
            xml(&self.replay)
        );
        for c in &self.checks {
            let _ = write!(
                s,
                "  <testcase classname=\"{}\" name=\"{}\"",
                xml(&suite),
                xml(&c.name)
            );
            let detail = xml(&c.detail);
            match c.status {
                Status::Ok => {
                    let _ = writeln!(s, "/>");
                }
                Status::Violation => {
                    let witness: String = self
                        .violations
                        .iter()
                        .take(3)
                        .map(|v| format!("{}\n{}", v.message, render_witness(v, self.epoch_ns)))
                        .collect();
                    let _ = writeln!(
                        s,
                        "><failure message=\"{detail}\">{}</failure></testcase>",
                        xml(&witness)
                    );
                }
                Status::Unknown => {
                    let _ = writeln!(s, "><error message=\"{detail}\"/></testcase>");
                }
                Status::NotChecked | Status::NotRun => {
                    let _ = writeln!(s, "><skipped message=\"{detail}\"/></testcase>");
                }
            }
        }
        s.push_str("</testsuite>\n");
        s
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn lost_summary(r: &RunReport) -> String {
    let mut line = format!("Lost: {} / {}", r.lost, r.acknowledged);
    if !r.lost_keys.is_empty() {
        let shown: Vec<&str> = r.lost_keys.iter().take(10).map(String::as_str).collect();
        let _ = write!(line, "  keys: {}", shown.join(", "));
        if r.lost_keys.len() > 10 {
            let _ = write!(line, ", ... ({} keys)", r.lost_keys.len());
        }
    }
    // What the checker proves counts too, whether or not a write was lost.
    if let Some(c) = &r.linearizability {
        let k = c
            .partitions
            .iter()
            .filter(|p| p.verdict == clobber_check::Verdict::Violation)
            .count();
        if k > 0 {
            let _ = write!(line, "  not linearizable: {k} key(s)");
        }
    }
    line
}

fn rel(ns: Option<u64>, epoch: u64) -> String {
    match ns {
        Some(t) if t >= epoch => format!("+{:.4}s", (t - epoch) as f64 / 1e9),
        Some(t) => format!("-{:.4}s", (epoch - t) as f64 / 1e9),
        None => "   (none)".into(),
    }
}

fn describe(r: &Record) -> String {
    let key = r.key.as_deref().unwrap_or("");
    let mut s = match r.op {
        Op::Set => format!("set {key} = {:?}", r.value.as_deref().unwrap_or("")),
        Op::Get => format!("get {key}"),
        Op::Delete => format!("delete {key}"),
        Op::List => "list".to_owned(),
        Op::Clear => "clear".to_owned(),
    };
    let _ = write!(s, " -> {}", r.outcome);
    if r.op == Op::Get
        && let Some(v) = &r.value
    {
        let _ = write!(s, " {v:?}");
    }
    if let Some(keys) = &r.keys {
        let _ = write!(s, " [{} keys]", keys.len());
    }
    if let Some(e) = &r.error
        && r.outcome != clobber_check::history::Outcome::NotFound
    {
        let _ = write!(s, " ({})", e.lines().next().unwrap_or(""));
    }
    s
}

/// One line per witness operation: process, invoke..complete relative to the run's
/// start, what it did, and its role in the proof.
#[must_use]
pub fn render_witness(v: &Violation, epoch: u64) -> String {
    let mut order: Vec<usize> = (0..v.witness.len()).collect();
    order.sort_by_key(|&i| v.witness[i].invoke_ns);
    let mut s = String::new();
    for i in order {
        let r = &v.witness[i];
        let _ = writeln!(
            s,
            "    {} .. {}  p{:<3} {}   <- {}",
            rel(Some(r.invoke_ns), epoch),
            rel(r.complete_ns, epoch),
            r.process,
            describe(r),
            v.roles.get(i).map_or("", String::as_str)
        );
    }
    s
}

/// A spinner on a TTY (hidden otherwise).
#[must_use]
pub fn progress(enabled: bool, name: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_prefix(name.to_owned());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg}") {
        pb.set_style(style);
    }
    Some(pb)
}
