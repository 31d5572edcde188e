//! Pages from what the harness has: a run's report and its history
//! (`clobber run --html`), or a check's report and the history file it read
//! (`clobber check --html`).
//!
//! The history is optional: without it (an imported Jepsen log, a run whose scratch
//! directory is gone) a timeline shows the witness operations alone.

use std::collections::{BTreeMap, HashMap, HashSet};

use clobber_check::history::{Op, Outcome, Record};
use clobber_check::report::WitnessOp;
use clobber_check::{CheckReport, Verdict as CheckVerdict};

use super::{Bar, CONTEXT_OPS, Class, MAX_TIMELINES, Page, Table, Timeline};
use crate::report::{RunReport, Status, Verdict};

/// Labels are clipped to this many characters, so that a store of huge values
/// still gives a small page.
const LABEL_CHARS: usize = 160;

/// The operations of each key (with `clear`, which touches every key), as indices
/// into the history, built once per page.
struct Index<'h> {
    history: &'h [Record],
    by_key: HashMap<&'h str, Vec<usize>>,
    clears: Vec<usize>,
    at: HashMap<(u64, u64), usize>,
}

impl<'h> Index<'h> {
    fn new(history: &'h [Record]) -> Self {
        let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut clears = Vec::new();
        let mut at = HashMap::with_capacity(history.len());
        for (i, r) in history.iter().enumerate() {
            at.insert((r.process, r.invoke_ns), i);
            if let Some(k) = &r.key {
                by_key.entry(k.as_str()).or_default().push(i);
            } else if r.op == Op::Clear {
                clears.push(i);
            }
        }
        Self {
            history,
            by_key,
            clears,
            at,
        }
    }
}

/// `set k = "v" -> ok`, `get k -> "v"`, `get k -> not found`, `list -> [3 keys]`.
fn describe(r: &Record) -> String {
    let key = r.key.as_deref().unwrap_or("");
    let what = match r.op {
        Op::Set => format!("set {key} = {:?}", r.value.as_deref().unwrap_or("")),
        Op::Get => format!("get {key}"),
        Op::Delete => format!("delete {key}"),
        Op::List => "list".to_owned(),
        Op::Clear => "clear".to_owned(),
    };
    let got = match (r.op, r.outcome) {
        (Op::Get, Outcome::Ok) => format!("{:?}", r.value.as_deref().unwrap_or("")),
        (Op::List, Outcome::Ok) => {
            format!("[{} keys]", r.keys.as_ref().map_or(0, Vec::len))
        }
        (_, Outcome::NotFound) => "not found".to_owned(),
        (_, o) => o.name().to_owned(),
    };
    let mut s = format!("{what} -> {got}");
    if let Some(e) = &r.error
        && r.outcome != Outcome::NotFound
    {
        s.push_str(&format!(" ({})", e.lines().next().unwrap_or("")));
    }
    s
}

fn bar(r: &Record, role: Option<String>) -> Bar {
    Bar {
        process: r.process,
        invoke_ns: r.invoke_ns,
        complete_ns: r.complete_ns,
        label: super::clip(&describe(r), LABEL_CHARS),
        op: r.op.name().to_owned(),
        outcome: r.outcome.name().to_owned(),
        role,
        read: (r.op == Op::Get && r.outcome == Outcome::Ok)
            .then(|| r.value.clone())
            .flatten(),
    }
}

/// A witness operation known only by its text (`set k=v -> ok`).
fn bar_from_text(w: &WitnessOp, role: String) -> Bar {
    let op = w.op.split_whitespace().next().unwrap_or("").to_owned();
    let outcome = match w.op.rsplit_once("-> ") {
        _ if w.complete_ns.is_none() => "unknown",
        Some((_, got)) if got.starts_with("fail") => "fail",
        _ => "ok",
    };
    Bar {
        process: w.process,
        invoke_ns: w.invoke_ns,
        complete_ns: w.complete_ns,
        label: super::clip(&w.op, LABEL_CHARS),
        op,
        outcome: outcome.to_owned(),
        role: Some(role),
        read: None,
    }
}

/// The witness bars plus up to [`CONTEXT_OPS`] operations of `key` nearest to them
/// in time (an operation overlapping the witness's span is nearest of all).
fn with_context(
    witness: Vec<Bar>,
    key: Option<&str>,
    index: Option<&Index<'_>>,
) -> (Vec<Bar>, usize) {
    let (Some(key), Some(index)) = (key, index) else {
        return (witness, 0);
    };
    let lo = witness.iter().map(|b| b.invoke_ns).min().unwrap_or(0);
    let hi = witness
        .iter()
        .map(|b| b.complete_ns.unwrap_or(b.invoke_ns))
        .max()
        .unwrap_or(lo);
    // Context is what happened around the witness: within one witness span of it.
    let reach = (hi - lo).max(1_000_000);
    let (lo_ctx, hi_ctx) = (lo.saturating_sub(reach), hi.saturating_add(reach));
    let mine: HashSet<(u64, u64)> = witness.iter().map(|b| (b.process, b.invoke_ns)).collect();
    let empty = Vec::new();
    let others: Vec<usize> = index
        .by_key
        .get(key)
        .unwrap_or(&empty)
        .iter()
        .chain(index.clears.iter())
        .copied()
        .filter(|&i| {
            let r = &index.history[i];
            !mine.contains(&(r.process, r.invoke_ns))
        })
        .collect();
    // The write each witness read came from explains the read: always drawn.
    let reads: HashSet<&str> = witness.iter().filter_map(|b| b.read.as_deref()).collect();
    let sources: HashSet<usize> = others
        .iter()
        .copied()
        .filter(|&i| {
            let r = &index.history[i];
            r.op == Op::Set && r.value.as_deref().is_some_and(|v| reads.contains(v))
        })
        .collect();
    let candidates: Vec<usize> = others
        .iter()
        .copied()
        .filter(|&i| {
            let r = &index.history[i];
            (r.invoke_ns <= hi_ctx && r.complete_ns.is_none_or(|c| c >= lo_ctx))
                || sources.contains(&i)
        })
        .collect();
    let distance = |r: &Record| {
        let end = r.complete_ns.unwrap_or(u64::MAX);
        if end < lo {
            lo - end
        } else {
            r.invoke_ns.saturating_sub(hi)
        }
    };
    let mut ranked: Vec<(u64, usize)> = candidates
        .iter()
        .map(|&i| {
            let d = if sources.contains(&i) {
                0
            } else {
                distance(&index.history[i])
            };
            (d, i)
        })
        .collect();
    let keep = ranked.len().min(CONTEXT_OPS);
    if keep < ranked.len() {
        ranked.select_nth_unstable(keep);
    }
    let omitted = others.len() - keep;
    let mut bars = witness;
    bars.extend(
        ranked[..keep]
            .iter()
            .map(|&(_, i)| bar(&index.history[i], None)),
    );
    (bars, omitted)
}

fn status_class(s: Status) -> Class {
    match s {
        Status::Ok => Class::Ok,
        Status::Violation => Class::Violation,
        Status::NotChecked | Status::NotRun | Status::Unknown => Class::Unknown,
    }
}

fn status_text(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Violation => "VIOLATION",
        Status::NotChecked => "not checked",
        Status::NotRun => "not run",
        Status::Unknown => "UNKNOWN",
    }
}

/// The page of one `clobber run`: `history` is the run's merged history (its
/// `history.jsonl`), if it is still there.
#[must_use]
pub fn run_page(report: &RunReport, history: Option<&[Record]>) -> Page {
    let index = history.map(Index::new);
    let verdict = match report.verdict {
        Verdict::Pass => "PASS",
        Verdict::Violation => "VIOLATION",
        Verdict::Inconclusive => "INCONCLUSIVE",
    };
    let mut facts = vec![
        (
            "scenario".to_owned(),
            format!("{} ({})", report.scenario, report.scenario_file),
        ),
        (
            "store".to_owned(),
            format!("{} (mode {})", report.store, report.mode),
        ),
        (
            "run".to_owned(),
            format!(
                "{} worker processes, {:.2} s, {} operations, stopped: {}",
                report.processes, report.duration_s, report.ops, report.stop
            ),
        ),
        (
            "lost".to_owned(),
            format!("Lost: {} / {}", report.lost, report.acknowledged),
        ),
    ];
    if let Some(t) = report.time_to_detect_s {
        facts.push(("time to detect".to_owned(), format!("{t:.2} s")));
    }
    if let Some(r) = &report.reason {
        facts.push(("why".to_owned(), r.clone()));
    }
    facts.push(("seed".to_owned(), report.seed.to_string()));
    facts.push(("replay".to_owned(), report.replay.clone()));
    if report.verdict != Verdict::Pass {
        facts.push(("scratch".to_owned(), report.scratch.clone()));
    }
    let checks = Table {
        title: "Checks".to_owned(),
        columns: vec!["check".into(), "result".into(), "detail".into()],
        rows: report
            .checks
            .iter()
            .map(|c| {
                vec![
                    (c.name.clone(), None),
                    (
                        status_text(c.status).to_owned(),
                        Some(status_class(c.status)),
                    ),
                    (c.detail.clone(), None),
                ]
            })
            .collect(),
    };
    let mut timelines = Vec::new();
    let mut seen = HashSet::new();
    let mut distinct = 0usize;
    for v in &report.violations {
        let first = v
            .witness
            .iter()
            .find(|r| r.op == Op::Set)
            .or(v.witness.first());
        if !seen.insert((
            v.kind,
            v.key.clone(),
            first.map(|r| (r.process, r.invoke_ns)),
        )) {
            continue;
        }
        distinct += 1;
        if timelines.len() >= MAX_TIMELINES {
            continue;
        }
        let witness: Vec<Bar> = v
            .witness
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let role = v.roles.get(i).cloned().unwrap_or_else(|| "witness".into());
                bar(r, Some(role))
            })
            .collect();
        let (ops, omitted) = with_context(witness, v.key.as_deref(), index.as_ref());
        timelines.push(Timeline {
            title: format!(
                "{}{}{}",
                v.kind.name(),
                v.key
                    .as_ref()
                    .map_or(String::new(), |k| format!(" on key {k}")),
                if v.final_state {
                    " (final-state audit)"
                } else {
                    ""
                }
            ),
            explanation: v.message.clone(),
            epoch_ns: report.epoch_ns,
            times_are_lines: false,
            ops,
            omitted,
        });
    }
    let mut omitted = distinct - timelines.len();
    // The linearizability checker can prove what the audit's rules cannot see.
    if report.violations.is_empty()
        && let Some(c) = &report.linearizability
    {
        let (t, more) = check_timelines(c, index.as_ref(), report.epoch_ns);
        timelines.extend(t);
        omitted += more;
    }
    let ops_by = Table {
        title: "Operations".to_owned(),
        columns: vec!["operation / outcome".into(), "count".into()],
        rows: report
            .ops_by
            .iter()
            .map(|(k, v)| vec![(k.clone(), None), (v.to_string(), None)])
            .collect(),
    };
    Page {
        title: format!("clobber run: {} on {}", report.scenario, report.store),
        verdict: verdict.to_owned(),
        facts,
        checks,
        tables: vec![ops_by],
        timelines,
        timelines_omitted: omitted,
    }
}

/// Timelines of a check's lost writes (the write and the observation that missed
/// it) and failing partitions (the minimal witness), at most [`MAX_TIMELINES`]
/// with one per key; returns them and how many more there were.
fn check_timelines(
    c: &CheckReport,
    index: Option<&Index<'_>>,
    epoch: u64,
) -> (Vec<Timeline>, usize) {
    let mut out = Vec::new();
    let mut keys = HashSet::new();
    let mut more = 0usize;
    let lookup = |process: u64, invoke: u64| {
        index.and_then(|ix| ix.at.get(&(process, invoke)).map(|&i| &ix.history[i]))
    };
    for l in &c.lost_writes {
        if !keys.insert(l.key.clone()) {
            continue;
        }
        if out.len() >= MAX_TIMELINES {
            more += 1;
            continue;
        }
        let write = lookup(l.process, l.invoke_ns).map_or_else(
            || Bar {
                process: l.process,
                invoke_ns: l.invoke_ns,
                complete_ns: Some(l.complete_ns),
                label: format!("set {}={} -> ok", l.key, l.value),
                op: "set".into(),
                outcome: "ok".into(),
                role: Some("acknowledged write".into()),
                read: None,
            },
            |r| bar(r, Some("acknowledged write".into())),
        );
        let obs = &l.observed_by;
        let observed = lookup(obs.process, obs.invoke_ns).map_or_else(
            || bar_from_text(obs, "missed it (saw an older state)".into()),
            |r| bar(r, Some("missed it (saw an older state)".into())),
        );
        let (ops, omitted) = with_context(vec![write, observed], Some(&l.key), index);
        out.push(Timeline {
            title: format!("lost write on key {}", l.key),
            explanation: format!(
                "process {} wrote {}={} and was acknowledged; process {} then saw an older state, \
                 and no other mutation of the key finished in between.",
                l.process, l.key, l.value, obs.process
            ),
            epoch_ns: epoch,
            times_are_lines: c.times_are_lines,
            ops,
            omitted,
        });
    }
    for p in c
        .partitions
        .iter()
        .filter(|p| p.verdict == CheckVerdict::Violation)
    {
        let Some(w) = &p.witness else { continue };
        if !keys.insert(p.key.clone()) {
            continue;
        }
        if out.len() >= MAX_TIMELINES {
            more += 1;
            continue;
        }
        let witness: Vec<Bar> = w
            .ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                let role = format!("witness op {}", i + 1);
                index
                    .and_then(|ix| ix.history.get(op.record))
                    .filter(|r| r.process == op.process && r.invoke_ns == op.invoke_ns)
                    .map_or_else(
                        || bar_from_text(op, role.clone()),
                        |r| bar(r, Some(role.clone())),
                    )
            })
            .collect();
        let (ops, omitted) = with_context(witness, Some(&p.key), index);
        out.push(Timeline {
            title: format!(
                "not linearizable: key {}{}",
                p.key,
                if w.minimal { " (minimal witness)" } else { "" }
            ),
            explanation: w.explanation.clone(),
            epoch_ns: epoch,
            times_are_lines: c.times_are_lines,
            ops,
            omitted,
        });
    }
    (out, more)
}

/// The page of one `clobber check FILE`: `history` is the file's records when it
/// is clobber's JSON lines (for the context around each witness).
#[must_use]
pub fn check_page(file: &str, c: &CheckReport, history: Option<&[Record]>) -> Page {
    let index = history.map(Index::new);
    let mut count: BTreeMap<CheckVerdict, usize> = BTreeMap::new();
    for p in &c.partitions {
        *count.entry(p.verdict).or_default() += 1;
    }
    let n = |v| count.get(&v).copied().unwrap_or(0);
    let class = |v: CheckVerdict| match v {
        CheckVerdict::Ok => Class::Ok,
        CheckVerdict::Violation => Class::Violation,
        CheckVerdict::Unknown => Class::Unknown,
    };
    let lin = [CheckVerdict::Violation, CheckVerdict::Unknown]
        .into_iter()
        .find(|&v| n(v) > 0)
        .unwrap_or(CheckVerdict::Ok);
    let lost = if c.lost_writes.is_empty() {
        CheckVerdict::Ok
    } else {
        CheckVerdict::Violation
    };
    let checks = Table {
        title: "Checks".to_owned(),
        columns: vec!["check".into(), "result".into(), "detail".into()],
        rows: vec![
            vec![
                ("linearizability (per key)".into(), None),
                (lin.label().into(), Some(class(lin))),
                (
                    format!(
                        "{} partitions: {} ok, {} violation, {} unknown",
                        c.partitions.len(),
                        n(CheckVerdict::Ok),
                        n(CheckVerdict::Violation),
                        n(CheckVerdict::Unknown)
                    ),
                    None,
                ),
            ],
            vec![
                ("lost writes".into(), None),
                (lost.label().into(), Some(class(lost))),
                (c.lost_summary(), None),
            ],
        ],
    };
    // Failing and unknown partitions first (the report sorts them so), then a few
    // of the rest: a summary, not every key.
    const ROWS: usize = 50;
    let mut partitions = Table {
        title: format!(
            "Partitions (failing first; {} of {} shown)",
            c.partitions.len().min(ROWS),
            c.partitions.len()
        ),
        columns: vec![
            "key".into(),
            "verdict".into(),
            "operations".into(),
            "note".into(),
        ],
        rows: Vec::new(),
    };
    for p in c.partitions.iter().take(ROWS) {
        partitions.rows.push(vec![
            (p.key.clone(), None),
            (p.verdict.label().into(), Some(class(p.verdict))),
            (p.operations.to_string(), None),
            (p.reason.clone().unwrap_or_default(), None),
        ]);
    }
    let (timelines, more) = check_timelines(c, index.as_ref(), c.start_ns);
    let mut facts = vec![
        ("history".to_owned(), file.to_owned()),
        ("model".to_owned(), c.model.clone()),
        ("operations".to_owned(), c.operations.to_string()),
        ("lost".to_owned(), c.lost_summary()),
        ("checked in".to_owned(), format!("{:.0} ms", c.elapsed_ms)),
    ];
    for note in &c.notes {
        facts.push(("note".to_owned(), note.clone()));
    }
    Page {
        title: format!("clobber check: {file}"),
        verdict: c.verdict.label().to_owned(),
        facts,
        checks,
        tables: vec![partitions],
        timelines,
        timelines_omitted: more,
    }
}

/// The merged history a run left in its scratch directory (`history.jsonl`), if it
/// is still there (a passing run removes its scratch directory unless `--keep`).
#[must_use]
pub fn run_history(report: &RunReport) -> Option<Vec<Record>> {
    let path = std::path::Path::new(&report.scratch).join("history.jsonl");
    let file = std::fs::File::open(path).ok()?;
    clobber_check::history::read_jsonl(std::io::BufReader::new(file)).ok()
}

/// The page of one `clobber validate`: the matrix as the checks table, and the
/// witnesses of the first failing run of each scenario.
#[must_use]
pub fn validate_page(v: &crate::validate::Validation) -> Page {
    let mut columns = vec!["scenario".to_owned(), "variant".to_owned()];
    columns.extend((1..=v.runs).map(|r| format!("run {r}")));
    let rows = v
        .rows()
        .into_iter()
        .map(|(scenario, variant, cells)| {
            let mut row = vec![(scenario.to_owned(), None), (variant.to_owned(), None)];
            row.extend(cells.iter().map(|c| {
                let class = match c.exit_code() {
                    _ if matches!(c.outcome, crate::validate::Outcome::Skipped(_)) => {
                        Class::Unknown
                    }
                    0 => Class::Ok,
                    1 => Class::Violation,
                    _ => Class::Unknown,
                };
                (c.short(), Some(class))
            }));
            row
        })
        .collect();
    let mut timelines = Vec::new();
    let mut omitted = 0usize;
    let mut drawn = HashSet::new();
    for c in &v.cells {
        let Some(r) = c.report() else { continue };
        if r.verdict == Verdict::Pass || !drawn.insert((c.scenario.clone(), c.variant)) {
            continue;
        }
        let history = run_history(r);
        let page = run_page(r, history.as_deref());
        omitted += page.timelines_omitted;
        for mut t in page.timelines {
            if timelines.len() >= MAX_TIMELINES {
                omitted += 1;
                continue;
            }
            t.title = format!(
                "{} / {} / run {}: {}",
                c.scenario, c.variant, c.run, t.title
            );
            t.explanation = format!("{} — replay: {}", t.explanation, r.replay);
            timelines.push(t);
        }
    }
    let failed: Vec<String> = v
        .cells
        .iter()
        .filter(|c| c.exit_code() != 0)
        .map(|c| match c.report() {
            Some(r) => r.replay.clone(),
            None => format!(
                "{} / {} / run {}: {}",
                c.scenario,
                c.variant,
                c.run,
                c.short()
            ),
        })
        .collect();
    let mut facts = vec![
        ("store".to_owned(), v.store.clone()),
        (
            "runs".to_owned(),
            format!(
                "{} ({} per scenario, variants {}), seed {}",
                v.cells.len(),
                v.runs,
                v.variants.join(","),
                v.seed
            ),
        ),
        (
            "time".to_owned(),
            format!("{:.0} s (estimated {:.0} s)", v.wall_s, v.estimate_s),
        ),
        ("exit code".to_owned(), v.exit_code().to_string()),
    ];
    for f in failed {
        facts.push(("did not pass".to_owned(), f));
    }
    Page {
        title: format!("clobber validate: {}", v.store),
        verdict: v.verdict_label().to_owned(),
        facts,
        checks: Table {
            title: "Scenario × run (verdict, time to detect, Lost / acknowledged)".to_owned(),
            columns,
            rows,
        },
        tables: Vec::new(),
        timelines,
        timelines_omitted: omitted,
    }
}
