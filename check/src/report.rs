//! Verdicts and reports: what a check found, as data (serialisable to JSON) and as
//! text for a terminal.

use std::fmt::Write as _;

use serde::Serialize;

/// The verdict of a check, or of one partition. A budget exceeded is `Unknown`,
/// never a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not linearizable: a witness proves it.
    Violation,
    /// Could not decide (time or memory budget exceeded).
    Unknown,
    /// Linearizable.
    Ok,
}

impl Verdict {
    /// The process exit code: 0 ok, 1 violation, 2 unknown.
    #[must_use]
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Violation => 1,
            Verdict::Unknown => 2,
        }
    }

    /// The worse of two verdicts (violation > unknown > ok).
    #[must_use]
    pub fn worst(self, other: Verdict) -> Verdict {
        self.min(other)
    }

    /// Upper-case name for reports.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Violation => "VIOLATION",
            Verdict::Unknown => "UNKNOWN",
        }
    }
}

/// How a partition was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The unique-value interval check (Gibbons & Korach).
    FastPath,
    /// The backtracking search (Wing & Gong / Lowe).
    Search,
    /// The history records the violation itself (a damaged read).
    Recorded,
    /// The bounded search over the joint state of the keys a `list`/`clear` spans
    /// ([`crate::joint`]).
    Joint,
}

/// One operation of a witness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WitnessOp {
    /// Index of the record in the input history (0-based).
    pub record: usize,
    /// The process.
    pub process: u64,
    /// What it did and what it got, e.g. `set k=v1 -> ok`.
    pub op: String,
    /// Invoke time (ns).
    pub invoke_ns: u64,
    /// Completion time (ns); `None` if it never answered.
    pub complete_ns: Option<u64>,
}

/// The operations that prove a violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Witness {
    /// Why these operations cannot be linearized.
    pub explanation: String,
    /// The operations, by invocation time.
    pub ops: Vec<WitnessOp>,
    /// True when no single operation can be removed without losing the violation
    /// (false when shrinking ran out of budget).
    pub minimal: bool,
    /// When the violation was proven: the latest completion among the witness's
    /// operations that completed (ns; `None` if none did).
    pub proven_ns: Option<u64>,
}

impl Witness {
    /// A witness over `ops`, sorted by invocation, with its `proven_ns`.
    #[must_use]
    pub fn new(explanation: impl Into<String>, mut ops: Vec<WitnessOp>, minimal: bool) -> Self {
        ops.sort_by_key(|o| (o.invoke_ns, o.record));
        Witness {
            explanation: explanation.into(),
            proven_ns: ops.iter().filter_map(|o| o.complete_ns).max(),
            ops,
            minimal,
        }
    }
}

/// The result for one partition (one key, for the key-value model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    /// The key (or partition name).
    pub key: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// How many operations it has (after projection and dropping failed ones).
    pub operations: usize,
    /// How it was decided.
    pub method: Method,
    /// For a violation: the proof.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<Witness>,
    /// For an unknown verdict: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An operation that observed a state: the same fields as a witness operation.
pub type Observation = WitnessOp;

/// An acknowledged write whose effect disappeared with no overwrite or removal that
/// could explain it: a later observation (one that started after the write finished)
/// saw an older state, and no other mutation of the key finished in between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostWrite {
    /// The key.
    pub key: String,
    /// The value written.
    pub value: String,
    /// The writing process.
    pub process: u64,
    /// Index of the write's record.
    pub record: usize,
    /// Invoke time of the write (ns).
    pub invoke_ns: u64,
    /// Completion time of the write (ns).
    pub complete_ns: u64,
    /// The first observation that missed it.
    pub observed_by: Observation,
    /// The likely culprit ([`crate::lost::Role::LikelyCulprit`]), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub culprit: Option<WitnessOp>,
    /// When the loss was proven: the observation's completion (ns).
    pub proven_ns: u64,
}

/// Everything a check found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The model checked against (`kv`, `register`, ...).
    pub model: String,
    /// The overall verdict: the worst partition's.
    pub verdict: Verdict,
    /// Number of operations in the input.
    pub operations: usize,
    /// Per-partition results: violations first, then unknowns, then the rest, larger
    /// partitions first within each group.
    pub partitions: Vec<PartitionReport>,
    /// Acknowledged writes that were lost (key-value model only).
    pub lost_writes: Vec<LostWrite>,
    /// Number of acknowledged writes (the `M` of "Lost: N / M").
    pub acknowledged_writes: usize,
    /// Caveats about this check (e.g. how `list` was handled).
    pub notes: Vec<String>,
    /// Wall time of the check (ms), parsing excluded.
    pub elapsed_ms: f64,
    /// True when the times are line numbers (imported logs without timestamps).
    pub times_are_lines: bool,
    /// The earliest invocation in the history: text reports show times from here.
    pub start_ns: u64,
}

impl CheckReport {
    /// The overall verdict.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// "Lost: N / M".
    #[must_use]
    pub fn lost_summary(&self) -> String {
        format!(
            "Lost: {} / {}",
            self.lost_writes.len(),
            self.acknowledged_writes
        )
    }

    pub(crate) fn finish(&mut self) {
        self.partitions.sort_by(|a, b| {
            (a.verdict, b.operations, &a.key).cmp(&(b.verdict, a.operations, &b.key))
        });
        self.verdict = self
            .partitions
            .iter()
            .fold(Verdict::Ok, |v, p| v.worst(p.verdict));
        if !self.lost_writes.is_empty() {
            self.verdict = self.verdict.worst(Verdict::Violation);
        }
        self.lost_writes
            .sort_by(|a, b| (&a.key, a.complete_ns).cmp(&(&b.key, b.complete_ns)));
    }

    /// A human-readable report: failing partitions first with their witness
    /// timelines, then the lost writes and a summary.
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let bad: Vec<&PartitionReport> = self
            .partitions
            .iter()
            .filter(|p| p.verdict != Verdict::Ok)
            .collect();
        for p in bad.iter().take(TEXT_PARTITIONS) {
            let _ = writeln!(
                out,
                "{} {} ({} ops, {})",
                p.verdict.label(),
                quote_key(&p.key),
                p.operations,
                match p.method {
                    Method::FastPath => "fast path",
                    Method::Search => "search",
                    Method::Recorded => "recorded",
                    Method::Joint => "joint search",
                }
            );
            if let Some(reason) = &p.reason {
                let _ = writeln!(out, "  {reason}");
            }
            if let Some(w) = &p.witness {
                render_witness(&mut out, w, self.times_are_lines);
            }
            out.push('\n');
        }
        if bad.len() > TEXT_PARTITIONS {
            let _ = writeln!(
                out,
                "... {} more failing partitions (all of them are in --json)\n",
                bad.len() - TEXT_PARTITIONS
            );
        }
        if !self.lost_writes.is_empty() {
            let _ = writeln!(out, "Lost writes:");
            for l in self.lost_writes.iter().take(TEXT_LOST) {
                let _ = writeln!(
                    out,
                    "  {} = {} (process {}, record #{}, acknowledged at +{}) — missed by process {}: {} (record #{}, invoked at +{})",
                    quote_key(&l.key),
                    l.value,
                    l.process,
                    l.record,
                    ms(l.complete_ns.saturating_sub(self.start_ns)),
                    l.observed_by.process,
                    l.observed_by.op,
                    l.observed_by.record,
                    ms(l.observed_by.invoke_ns.saturating_sub(self.start_ns)),
                );
            }
            if self.lost_writes.len() > TEXT_LOST {
                let _ = writeln!(
                    out,
                    "  ... {} more (all of them are in --json)",
                    self.lost_writes.len() - TEXT_LOST
                );
            }
            out.push('\n');
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let count = |v: Verdict| self.partitions.iter().filter(|p| p.verdict == v).count();
        let _ = writeln!(
            out,
            "{}: {} operations, {} partitions ({} ok, {} violation, {} unknown), {}, checked in {:.0} ms",
            self.verdict.label(),
            self.operations,
            self.partitions.len(),
            count(Verdict::Ok),
            count(Verdict::Violation),
            count(Verdict::Unknown),
            self.lost_summary(),
            self.elapsed_ms
        );
        out
    }
}

/// Failing partitions shown in full by [`CheckReport::render_text`].
const TEXT_PARTITIONS: usize = 20;
/// Lost writes listed by [`CheckReport::render_text`].
const TEXT_LOST: usize = 50;

fn quote_key(k: &str) -> String {
    format!("key {k:?}")
}

fn ms(ns: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let v = ns as f64 / 1e6;
    format!("{v:.3} ms")
}

/// Draw a witness as a timeline: one row per operation, with a bar over its
/// interval (`|===|`, `|===...` if it never answered) and times relative to the first
/// invocation.
fn render_witness(out: &mut String, w: &Witness, lines: bool) {
    let ms = |t: u64| if lines { format!("line {t}") } else { ms(t) };
    let _ = writeln!(out, "  why: {}", w.explanation);
    let _ = writeln!(
        out,
        "  witness ({} ops{}):",
        w.ops.len(),
        if w.minimal { ", minimal" } else { "" }
    );
    let t0 = w.ops.iter().map(|o| o.invoke_ns).min().unwrap_or(0);
    let t1 = w
        .ops
        .iter()
        .map(|o| o.complete_ns.unwrap_or(o.invoke_ns))
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);
    const WIDTH: u64 = 32;
    let col = |t: u64| {
        usize::try_from((t.saturating_sub(t0)).saturating_mul(WIDTH) / (t1 - t0)).unwrap_or(0)
    };
    for o in &w.ops {
        let a = col(o.invoke_ns);
        let mut bar = " ".repeat(a);
        match o.complete_ns {
            Some(c) => {
                let b = col(c).max(a + 1);
                bar.push('|');
                bar.push_str(&"=".repeat(b - a - 1));
                bar.push('|');
            }
            None => {
                bar.push('|');
                bar.push_str(&"=".repeat(usize::try_from(WIDTH).unwrap_or(32).saturating_sub(a)));
                bar.push_str("...");
            }
        }
        let rel = |t: u64| {
            if lines {
                ms(t)
            } else {
                format!("+{}", ms(t - t0))
            }
        };
        let end = o.complete_ns.map_or_else(|| "never".to_owned(), rel);
        let _ = writeln!(
            out,
            "    {:<38} p{:<4} {:>12} .. {:>12}  {:<8} #{}",
            bar,
            o.process,
            rel(o.invoke_ns),
            end,
            o.op,
            o.record
        );
    }
}
