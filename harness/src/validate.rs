//! `clobber validate ADAPTER`: every shipped scenario, in every applicable variant,
//! `--runs N` times against one store, as one matrix.
//!
//! A user validating a store wants one command and one answer, not a shell loop
//! over `scenarios/*.toml` and six reports. The answer is the matrix (scenario ×
//! run → verdict, time to detect, `Lost: N / M`), the replay command of every run
//! that did not pass, and one exit code (see [`Validation::exit_code`]).
//!
//! The *variants* are data ([`VARIANTS`]): each names how a run is configured
//! (`cli`, `lib`, and future fault modes) and to which stores it applies, so a new
//! mode is one entry. Before it starts, `validate` times a few operations of the
//! store and prints how long the whole matrix should take; while it runs it says
//! which run of how many it is on and how long is left.
//!
//! The scenarios are the ones shipped in `scenarios/`, compiled into the binary
//! so that an installed `clobber` validates from any directory (`--scenarios DIR`
//! runs another set).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use clobber_check::history::Op;
use serde::Serialize;

use crate::adapter::Adapter;
use crate::driver::{Call, Driver, DriverSpec};
use crate::error::{Error, Result};
use crate::report::{RunReport, Verdict, render_witness};
use crate::run::{RunConfig, run};
use crate::scenario::{Mode, Scenario, Step};

/// The scenarios shipped with this binary: (file name, contents).
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "oauth-churn.toml",
        include_str!("../../scenarios/oauth-churn.toml"),
    ),
    (
        "seed-loop.toml",
        include_str!("../../scenarios/seed-loop.toml"),
    ),
    (
        "parallel-churn.toml",
        include_str!("../../scenarios/parallel-churn.toml"),
    ),
    (
        "token-rotation.toml",
        include_str!("../../scenarios/token-rotation.toml"),
    ),
    (
        "delete-vs-set.toml",
        include_str!("../../scenarios/delete-vs-set.toml"),
    ),
    (
        "clear-vs-set.toml",
        include_str!("../../scenarios/clear-vs-set.toml"),
    ),
    (
        "throughput.toml",
        include_str!("../../scenarios/throughput.toml"),
    ),
    (
        "lock-storm.toml",
        include_str!("../../scenarios/lock-storm.toml"),
    ),
];

/// One way of running every scenario. Adding a fault mode to `validate` is adding
/// an entry to [`VARIANTS`].
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// Its name on the command line and in the matrix.
    pub name: &'static str,
    /// One line for `--help` and the report.
    pub about: &'static str,
    /// Run by default (when `--variants` is not given).
    pub default: bool,
    /// Whether it can run against this store.
    pub applies: fn(&Adapter) -> bool,
    /// Set up one run.
    pub configure: fn(&mut RunConfig),
}

/// Every variant, in matrix order.
pub const VARIANTS: &[Variant] = &[
    Variant {
        name: "cli",
        about: "one store process per operation, as users run it (every store)",
        default: true,
        applies: |_| true,
        configure: |c| c.mode = Some(Mode::Cli),
    },
    Variant {
        name: "perturb",
        about: "cli, every store process under the syscall perturber (`--perturb default`)",
        default: false,
        applies: |_| true,
        configure: |c| {
            c.mode = Some(Mode::Cli);
            c.perturb = Some("default".to_owned());
        },
    },
    Variant {
        name: "kill",
        about: "cli, SIGKILL one store process at a time (`--nemesis kill`)",
        default: false,
        applies: |_| true,
        configure: |c| {
            c.mode = Some(Mode::Cli);
            c.nemesis = crate::nemesis::Kind::Kill;
        },
    },
    Variant {
        name: "power-loss",
        about: "cli, the store on a FUSE mount that drops what is not fsynced (`--nemesis power-loss`; needs /dev/fuse)",
        default: false,
        applies: |_| true,
        configure: |c| {
            c.mode = Some(Mode::Cli);
            c.nemesis = crate::nemesis::Kind::PowerLoss;
        },
    },
    Variant {
        name: "lib",
        about: "worker processes call the reference store's library (reference store only)",
        default: false,
        applies: |a| a.reference.is_some(),
        configure: |c| c.mode = Some(Mode::Lib),
    },
];

/// What to validate.
#[derive(Debug, Clone)]
pub struct ValidateConfig {
    /// The store: an adapter file, `reference` or `reference:<fault>`.
    pub store: String,
    /// Runs per scenario and variant.
    pub runs: u32,
    /// A directory of scenarios instead of the shipped ones.
    pub scenarios: Option<PathBuf>,
    /// Variant names; empty: every default variant that applies.
    pub variants: Vec<String>,
    /// Seed of run 1 (run `r` uses `seed + r - 1`); random if not given.
    pub seed: Option<u64>,
    /// Progress lines on stderr and each run's progress bar.
    pub progress: bool,
}

/// How one run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It ran: its report.
    Report(Box<RunReport>),
    /// Not run: the scenario uses an operation the adapter has no command for.
    /// Counts as neither a pass nor a failure, and says so.
    Skipped(String),
    /// It could not run (setup, I/O): exit code and message.
    Error {
        /// The exit code `clobber run` would give.
        code: u8,
        /// What went wrong.
        message: String,
    },
}

/// One cell of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub scenario_file: PathBuf,
    /// Variant name.
    pub variant: &'static str,
    /// 1-based run number.
    pub run: u32,
    /// The run's seed.
    pub seed: u64,
    /// Its outcome.
    pub outcome: Outcome,
    /// Wall time in seconds.
    pub wall_s: f64,
}

impl Cell {
    /// The exit code of this run, as `clobber run` gives it.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match &self.outcome {
            Outcome::Report(r) => r.verdict.exit_code(),
            Outcome::Error { code, .. } => *code,
            Outcome::Skipped(_) => 0,
        }
    }

    /// The report, if the run ran.
    #[must_use]
    pub fn report(&self) -> Option<&RunReport> {
        match &self.outcome {
            Outcome::Report(r) => Some(r),
            Outcome::Error { .. } | Outcome::Skipped(_) => None,
        }
    }

    /// `PASS  0/971`, `VIOLATION 0.11s  3/69`, `ERROR 5`.
    #[must_use]
    pub fn short(&self) -> String {
        match &self.outcome {
            Outcome::Report(r) => {
                let verdict = match r.verdict {
                    Verdict::Pass => "PASS",
                    Verdict::Violation => "VIOLATION",
                    Verdict::Inconclusive => "INCONCLUSIVE",
                };
                let detect = r
                    .time_to_detect_s
                    .map_or(String::new(), |t| format!(" {t:.2}s"));
                format!("{verdict}{detect} {}/{}", r.lost, r.acknowledged)
            }
            Outcome::Error { code, .. } => format!("ERROR (exit {code})"),
            Outcome::Skipped(_) => "SKIPPED".to_owned(),
        }
    }
}

/// The result of a validation.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The store as given.
    pub store: String,
    /// Runs per scenario and variant.
    pub runs: u32,
    /// Variants run.
    pub variants: Vec<&'static str>,
    /// Seed of run 1.
    pub seed: u64,
    /// The estimate printed before starting, in seconds.
    pub estimate_s: f64,
    /// Wall time, in seconds.
    pub wall_s: f64,
    /// Every run, in order.
    pub cells: Vec<Cell>,
}

/// One matrix cell as JSON.
#[derive(Serialize)]
struct CellJson<'a> {
    scenario: &'a str,
    scenario_file: String,
    variant: &'a str,
    run: u32,
    seed: u64,
    verdict: &'static str,
    exit_code: u8,
    time_to_detect_s: Option<f64>,
    lost: Option<usize>,
    acknowledged: Option<usize>,
    wall_s: f64,
    replay: Option<&'a str>,
    scratch: Option<&'a str>,
    error: Option<&'a str>,
    report: Option<&'a RunReport>,
}

#[derive(Serialize)]
struct ValidationJson<'a> {
    store: &'a str,
    runs: u32,
    variants: &'a [&'static str],
    seed: u64,
    estimate_s: f64,
    wall_s: f64,
    verdict: &'static str,
    exit_code: u8,
    cells: Vec<CellJson<'a>>,
}

fn verdict_name(code: u8) -> &'static str {
    match code {
        0 => "pass",
        1 => "violation",
        2 => "inconclusive",
        _ => "error",
    }
}

impl Validation {
    /// The exit code: 0 only if every run passed. Otherwise the worst run's, in
    /// this order: **1** (a run proved a violation: the store is wrong, whatever
    /// else happened) beats **3–6** (a run could not be carried out: the
    /// validation is incomplete; the first such code) beats **2** (a run was
    /// inconclusive: never a pass).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        // Nothing ran: no evidence, never a pass.
        if self
            .cells
            .iter()
            .all(|c| matches!(c.outcome, Outcome::Skipped(_)))
        {
            return 2;
        }
        worst(&self.cells.iter().map(Cell::exit_code).collect::<Vec<_>>())
    }

    /// `PASS`, `VIOLATION`, `INCONCLUSIVE` or `ERROR`.
    #[must_use]
    pub fn verdict_label(&self) -> &'static str {
        match self.exit_code() {
            0 => "PASS",
            1 => "VIOLATION",
            2 => "INCONCLUSIVE",
            _ => "ERROR",
        }
    }

    /// The rows of the matrix: (scenario, variant, cells of runs 1..=N).
    #[must_use]
    pub fn rows(&self) -> Vec<(&str, &str, Vec<&Cell>)> {
        let mut rows: Vec<(&str, &str, Vec<&Cell>)> = Vec::new();
        for c in &self.cells {
            match rows.last_mut() {
                Some((s, v, cells)) if *s == c.scenario && *v == c.variant => cells.push(c),
                _ => rows.push((&c.scenario, c.variant, vec![c])),
            }
        }
        rows
    }

    /// The matrix, the failures with their replay commands, and the verdict.
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\nclobber validate: store {}, {} run(s) per scenario, variants {}, seed {}",
            self.store,
            self.runs,
            self.variants.join(","),
            self.seed
        );
        let rows = self.rows();
        let sw = rows.iter().map(|r| r.0.len()).max().unwrap_or(8).max(8);
        let vw = rows.iter().map(|r| r.1.len()).max().unwrap_or(7).max(7);
        let cw = self
            .cells
            .iter()
            .map(|c| c.short().len())
            .max()
            .unwrap_or(10)
            .max(10);
        let _ = write!(s, "\n  {:sw$}  {:vw$}", "scenario", "variant");
        for r in 1..=self.runs {
            let _ = write!(s, "  {:cw$}", format!("run {r}"));
        }
        s.push('\n');
        for (scenario, variant, cells) in &rows {
            let _ = write!(s, "  {scenario:sw$}  {variant:vw$}");
            for c in cells {
                let _ = write!(s, "  {:cw$}", c.short());
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "\n  cell: verdict, time to detect (when a violation was proven), Lost / acknowledged writes"
        );
        let failed: Vec<&Cell> = self
            .cells
            .iter()
            .filter(|c| c.exit_code() != 0 || matches!(c.outcome, Outcome::Skipped(_)))
            .collect();
        if !failed.is_empty() {
            let _ = writeln!(s, "\nruns that did not pass:");
        }
        for c in &failed {
            let _ = writeln!(
                s,
                "  {} / {} / run {}: {}",
                c.scenario,
                c.variant,
                c.run,
                c.short()
            );
            match &c.outcome {
                Outcome::Report(r) => {
                    if let Some(v) = r.violations.first() {
                        let _ = writeln!(s, "    {}", v.message);
                        for line in render_witness(v, r.epoch_ns).lines() {
                            let _ = writeln!(s, "  {line}");
                        }
                    } else if let Some(reason) = &r.reason {
                        let _ = writeln!(s, "    {reason}");
                    }
                    let _ = writeln!(s, "    replay: {}", r.replay);
                    let _ = writeln!(s, "    scratch: {}", r.scratch);
                }
                Outcome::Error { message, .. } | Outcome::Skipped(message) => {
                    let _ = writeln!(s, "    {message}");
                }
            }
        }
        let _ = writeln!(
            s,
            "\n{} runs in {:.0} s (estimated {:.0} s): {} passed, {} did not",
            self.cells.len(),
            self.wall_s,
            self.estimate_s,
            self.cells.len() - failed.len(),
            failed.len()
        );
        let _ = writeln!(
            s,
            "verdict: {} (exit {})",
            self.verdict_label(),
            self.exit_code()
        );
        s
    }

    /// The whole validation as JSON (each run's full report included).
    #[must_use]
    pub fn render_json(&self) -> String {
        let cells = self
            .cells
            .iter()
            .map(|c| {
                let r = c.report();
                CellJson {
                    scenario: &c.scenario,
                    scenario_file: c.scenario_file.display().to_string(),
                    variant: c.variant,
                    run: c.run,
                    seed: c.seed,
                    verdict: match c.outcome {
                        // Not run: no evidence, so never "pass" to a reader of the JSON.
                        Outcome::Skipped(_) => "skipped",
                        _ => verdict_name(c.exit_code()),
                    },
                    exit_code: c.exit_code(),
                    time_to_detect_s: r.and_then(|r| r.time_to_detect_s),
                    lost: r.map(|r| r.lost),
                    acknowledged: r.map(|r| r.acknowledged),
                    wall_s: c.wall_s,
                    replay: r.map(|r| r.replay.as_str()),
                    scratch: r.map(|r| r.scratch.as_str()),
                    error: match &c.outcome {
                        Outcome::Error { message, .. } | Outcome::Skipped(message) => {
                            Some(message.as_str())
                        }
                        Outcome::Report(_) => None,
                    },
                    report: r,
                }
            })
            .collect();
        let json = ValidationJson {
            store: &self.store,
            runs: self.runs,
            variants: &self.variants,
            seed: self.seed,
            estimate_s: self.estimate_s,
            wall_s: self.wall_s,
            verdict: verdict_name(self.exit_code()),
            exit_code: self.exit_code(),
            cells,
        };
        serde_json::to_string_pretty(&json).expect("a validation always serialises") + "\n"
    }

    /// JUnit XML: one test suite per scenario and variant, one test case per run;
    /// a violation is a failure (with its witness), anything else that is not a
    /// pass is an error.
    #[must_use]
    pub fn render_junit(&self) -> String {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let failures = self.cells.iter().filter(|c| c.exit_code() == 1).count();
        let errors = self.cells.iter().filter(|c| c.exit_code() >= 2).count();
        let _ = writeln!(
            s,
            "<testsuites name=\"clobber validate {}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">",
            xml(&self.store),
            self.cells.len(),
            self.wall_s
        );
        for (scenario, variant, cells) in self.rows() {
            let suite = format!("clobber.validate.{}.{scenario}.{variant}", self.store);
            let _ = writeln!(
                s,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3}\">",
                xml(&suite),
                cells.len(),
                cells.iter().filter(|c| c.exit_code() == 1).count(),
                cells.iter().filter(|c| c.exit_code() >= 2).count(),
                cells.iter().map(|c| c.wall_s).sum::<f64>()
            );
            for c in cells {
                let _ = write!(
                    s,
                    "    <testcase classname=\"{}\" name=\"run {} (seed {})\" time=\"{:.3}\"",
                    xml(&suite),
                    c.run,
                    c.seed,
                    c.wall_s
                );
                match (&c.outcome, c.exit_code()) {
                    (Outcome::Skipped(why), _) => {
                        let _ = writeln!(s, "><skipped message=\"{}\"/></testcase>", xml(why));
                    }
                    (_, 0) => s.push_str("/>\n"),
                    (Outcome::Report(r), 1) => {
                        let mut body = String::new();
                        for v in r.violations.iter().take(3) {
                            let _ = writeln!(body, "{}", v.message);
                            body.push_str(&render_witness(v, r.epoch_ns));
                        }
                        let _ = writeln!(body, "replay: {}", r.replay);
                        let _ = writeln!(
                            s,
                            "><failure message=\"{}\">{}</failure></testcase>",
                            xml(&c.short()),
                            xml(&body)
                        );
                    }
                    (outcome, _) => {
                        let detail = match outcome {
                            Outcome::Report(r) => format!(
                                "{}; replay: {}",
                                r.reason.as_deref().unwrap_or("inconclusive"),
                                r.replay
                            ),
                            Outcome::Error { message, .. } | Outcome::Skipped(message) => {
                                message.clone()
                            }
                        };
                        let _ = writeln!(
                            s,
                            "><error message=\"{}\">{}</error></testcase>",
                            xml(&c.short()),
                            xml(&detail)
                        );
                    }
                }
            }
            s.push_str("  </testsuite>\n");
        }
        s.push_str("</testsuites>\n");
        s
    }
}

/// The precedence of [`Validation::exit_code`] over run exit codes.
fn worst(codes: &[u8]) -> u8 {
    if codes.contains(&1) {
        1
    } else if let Some(&e) = codes.iter().find(|&&c| c >= 3) {
        e
    } else if codes.contains(&2) {
        2
    } else {
        0
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The variants to run against `adapter`.
///
/// # Errors
/// An unknown variant name, or one that does not apply to the store.
pub fn select_variants(names: &[String], adapter: &Adapter, store: &str) -> Result<Vec<Variant>> {
    if names.iter().any(|n| n == "all") {
        return Ok(VARIANTS
            .iter()
            .filter(|v| (v.applies)(adapter))
            .copied()
            .collect());
    }
    if names.is_empty() {
        return Ok(VARIANTS
            .iter()
            .filter(|v| v.default && (v.applies)(adapter))
            .copied()
            .collect());
    }
    let mut out = Vec::new();
    for name in names {
        let v = VARIANTS.iter().find(|v| v.name == name).ok_or_else(|| {
            Error::usage(format!(
                "--variants: unknown variant {name:?} (known: {})",
                VARIANTS
                    .iter()
                    .map(|v| v.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if !(v.applies)(adapter) {
            return Err(Error::usage(format!(
                "--variants: {} does not apply to store {store}: {}",
                v.name, v.about
            )));
        }
        out.push(*v);
    }
    Ok(out)
}

/// The scenario files: every `*.toml` in `dir` (sorted), or the shipped ones,
/// written once to a per-user directory under the system's temporary directory
/// ([`shipped_dir`]) so that replay commands keep working.
///
/// # Errors
/// The directory cannot be read or holds no scenario; a scenario is malformed.
pub fn scenario_files(dir: Option<&Path>) -> Result<Vec<Scenario>> {
    let files: Vec<PathBuf> = match dir {
        Some(dir) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| Error::io("read the scenario directory", dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::usage(format!(
                    "--scenarios {}: no *.toml scenario in it",
                    dir.display()
                )));
            }
            files
        }
        None => SHIPPED
            .iter()
            .map(|(name, _)| shipped_scenario(name))
            .collect::<Result<_>>()?,
    };
    files.iter().map(|f| Scenario::load(f)).collect()
}

/// The path of shipped scenario `name` (`throughput.toml`): the copy compiled into
/// this binary, written (once per version) to [`shipped_dir`], so that an installed
/// `clobber` works from any directory and its replay commands keep working.
///
/// # Errors
/// Unknown name, the directory is not safe to use (see [`shipped_dir`]), or the
/// copy cannot be written.
pub fn shipped_scenario(name: &str) -> Result<PathBuf> {
    let (_, text) = SHIPPED
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| Error::usage(format!("no shipped scenario {name}")))?;
    let dir = shipped_dir(&std::env::temp_dir(), nix::unistd::geteuid().as_raw())?;
    let path = dir.join(name);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(*text) {
        // Whole or not at all: another `clobber` of this user may be reading it.
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| Error::io("write a shipped scenario", &tmp, e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io("write a shipped scenario", &path, e))?;
    }
    Ok(path)
}

/// `PARENT/clobber-scenarios-<version>-<uid>/`: where the shipped scenarios are
/// written for user `uid`, created 0700.
///
/// One directory per user: users sharing `/tmp` would otherwise collide on it, and
/// whoever created it first could put their own scenario under another user's
/// replay command. So a directory that is not a real directory (a symbolic link)
/// or is owned by another user is refused, naming it; one of ours that others can
/// enter is made 0700 again.
///
/// # Errors
/// The directory cannot be created or inspected, or it is refused as above.
pub fn shipped_dir(parent: &Path, uid: u32) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let dir = parent.join(format!(
        "clobber-scenarios-{}-{uid}",
        env!("CARGO_PKG_VERSION")
    ));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create the scenario directory", &dir, e)),
    }
    // Not followed: a link planted here must not redirect the scenarios.
    let meta = std::fs::symlink_metadata(&dir)
        .map_err(|e| Error::io("inspect the scenario directory", &dir, e))?;
    let refuse = |why: String| {
        Error::io(
            "use the scenario directory",
            &dir,
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{why}; remove it, or point TMPDIR elsewhere"),
            ),
        )
    };
    if !meta.is_dir() {
        return Err(refuse("not a directory (a symbolic link?)".to_owned()));
    }
    if meta.uid() != uid {
        return Err(refuse(format!(
            "owned by uid {}, not by this user (uid {uid})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("make the scenario directory private", &dir, e))?;
    }
    Ok(dir)
}

/// Seconds one scenario should take when one operation of the store takes
/// `op_s` seconds on its own: the slowest finite role's loop (operations slowed
/// by contention, plus pauses), capped by the scenario's maximum duration, plus a
/// second of setup and audit.
///
/// Contention is how many store processes want a CPU at once, per CPU: each
/// process is busy for the share of its loop spent in operations (a churner that
/// pauses 50 ms between 10 ms operations wants a sixth of a CPU, not a whole one),
/// counted for the share of the scenario during which its role runs. Busier
/// processes make operations slower, which makes processes busier: the estimate
/// takes the fixed point. A burst of processes with no pauses counts in full
/// while it lasts.
#[must_use]
pub fn estimate_scenario_s(s: &Scenario, op_s: f64) -> f64 {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    estimate_on(s, op_s, cpus as f64)
}

/// [`estimate_scenario_s`] on `cpus` CPUs.
fn estimate_on(s: &Scenario, op_s: f64, cpus: f64) -> f64 {
    // Per iteration of one process: operations, and seconds of pause.
    let shape = |r: &crate::scenario::Role| {
        r.steps
            .iter()
            .fold((0.0f64, 0.0f64), |(ops, pause), step| match step {
                Step::Op { .. } => (ops + 1.0, pause),
                Step::Pause { ms, jitter_ms } => {
                    (ops, pause + (*ms as f64 + *jitter_ms as f64 / 2.0) / 1e3)
                }
            })
    };
    // (start, seconds of the loop) of a finite role at contention `c`.
    let body = |r: &crate::scenario::Role, c: f64| {
        let (ops, pause) = shape(r);
        let b = match (r.duration_ms, r.iterations) {
            (Some(d), _) => d as f64 / 1e3,
            (None, n) => n.unwrap_or(1) as f64 * (ops * op_s * c + pause),
        };
        (r.start_ms as f64 / 1e3, b)
    };
    let length = |c: f64| {
        s.roles
            .iter()
            .filter(|r| r.is_finite())
            .map(|r| {
                let (start, b) = body(r, c);
                start + b
            })
            .fold(0.0, f64::max)
            .min(s.max_duration_ms as f64 / 1e3)
    };
    let mut c = 1.0f64;
    for _ in 0..50 {
        let total = length(c).max(1e-3);
        let busy: f64 = s
            .roles
            .iter()
            .map(|r| {
                let (ops, pause) = shape(r);
                let work = ops * op_s * c;
                if work <= 0.0 {
                    return 0.0;
                }
                let duty = work / (work + pause);
                let (start, b) = if r.is_finite() {
                    body(r, c)
                } else {
                    (r.start_ms as f64 / 1e3, total)
                };
                let alive = ((start + b).min(total) - start.min(total)) / total;
                f64::from(r.processes) * duty * alive
            })
            .sum();
        let next = (busy / cpus).max(1.0);
        if (next - c).abs() < 1e-6 {
            break;
        }
        c = next;
    }
    length(c) + 1.0
}

/// Seconds of one operation of the store, alone: `setup`, then a few `set` and
/// `get` calls in a scratch directory, timed. Outcomes are not judged here (the
/// runs do that); a store that cannot even be set up fails the validation early.
///
/// # Errors
/// The store's program is missing or its setup command fails.
pub fn calibrate(adapter: &Adapter, mode: Mode) -> Result<f64> {
    if mode == Mode::Lib {
        // The library does no process start: a fraction of a millisecond plus
        // two fsyncs; the scenarios' pauses dominate.
        return Ok(0.002);
    }
    adapter.require_program()?;
    let scratch = std::env::temp_dir().join(format!(
        "clobber-calibrate-{}-{}",
        std::process::id(),
        crate::clock::now_ns()
    ));
    std::fs::create_dir_all(&scratch)
        .map_err(|e| Error::io("create scratch directory", &scratch, e))?;
    let result = calibrate_in(adapter, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn calibrate_in(adapter: &Adapter, scratch: &Path) -> Result<f64> {
    for setup in adapter.setup_argvs(scratch) {
        let out = adapter
            .command(&setup, scratch)
            .current_dir(scratch)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::setup(format!("running the store's setup {setup:?}: {e}")))?;
        if !out.status.success() {
            return Err(Error::setup(format!(
                "the store's setup {setup:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    let mut driver = Driver::new(DriverSpec::Cli {
        adapter: Box::new(adapter.clone()),
        scratch: scratch.to_path_buf(),
        op_timeout_ms: 10_000,
        perturb: None,
    })?;
    const SAMPLES: u32 = 3;
    let started = Instant::now();
    for i in 0..SAMPLES {
        for (op, value) in [(Op::Set, Some(format!("calibrate-{i}"))), (Op::Get, None)] {
            driver.exec(&Call {
                op,
                key: Some("clobber-calibrate".into()),
                value,
            });
        }
    }
    Ok(started.elapsed().as_secs_f64() / f64::from(2 * SAMPLES))
}

/// Run the matrix.
///
/// # Errors
/// Usage, configuration and setup errors found before the first run (bad store,
/// bad scenario, a store that cannot be set up). Errors of single runs are cells.
pub fn validate(config: &ValidateConfig) -> Result<Validation> {
    let started = Instant::now();
    if config.runs == 0 {
        return Err(Error::usage("--runs must be at least 1"));
    }
    let adapter = Adapter::resolve(&config.store)?;
    let variants = select_variants(&config.variants, &adapter, &config.store)?;
    let scenarios = scenario_files(config.scenarios.as_deref())?;
    let seed = config.seed.unwrap_or_else(|| {
        (crate::clock::now_ns() ^ u64::from(std::process::id())) % 1_000_000_000
    });

    // The estimate, per variant, from one calibrated operation time.
    let mut plan: Vec<(&Scenario, Variant, u32, f64)> = Vec::new();
    let mut op_times = Vec::new();
    for v in &variants {
        let mut probe = run_config(config, &scenarios[0], seed, 1);
        (v.configure)(&mut probe);
        let op_s = calibrate(&adapter, probe.mode.unwrap_or(Mode::Cli))?;
        op_times.push(format!("{} {:.0} ms", v.name, op_s * 1e3));
        for s in &scenarios {
            for r in 1..=config.runs {
                plan.push((s, *v, r, estimate_scenario_s(s, op_s)));
            }
        }
    }
    // Matrix order: scenario, then variant, then run.
    plan.sort_by_key(|(s, v, r, _)| {
        (
            scenarios.iter().position(|x| x.path == s.path),
            variants.iter().position(|x| x.name == v.name),
            *r,
        )
    });
    let estimate_s: f64 = plan.iter().map(|p| p.3).sum::<f64>() + started.elapsed().as_secs_f64();
    let total = plan.len();
    if config.progress {
        eprintln!(
            "clobber validate: store {}, {} scenarios x {} variant(s) ({}) x {} run(s) = {total} runs; \
             seed {seed}; estimated {} (one operation alone: {})",
            config.store,
            scenarios.len(),
            variants.len(),
            variants
                .iter()
                .map(|v| v.name)
                .collect::<Vec<_>>()
                .join(","),
            config.runs,
            duration(estimate_s),
            op_times.join(", ")
        );
    }
    let mut cells = Vec::with_capacity(total);
    let (mut spent_est, mut spent_real) = (0.0f64, 0.0f64);
    for (k, (scenario, variant, r, est)) in plan.iter().enumerate() {
        let remaining: f64 = plan[k..].iter().map(|p| p.3).sum();
        // Correct the estimate by how the runs so far compared with theirs.
        let ratio = if spent_est > 0.0 {
            spent_real / spent_est
        } else {
            1.0
        };
        if config.progress {
            eprintln!(
                "clobber validate: scenario {} of {total}: {} ({}) run {r} of {}; {} elapsed, about {} left",
                k + 1,
                scenario.name,
                variant.name,
                config.runs,
                duration(started.elapsed().as_secs_f64()),
                duration(remaining * ratio)
            );
            let _ = std::io::stderr().flush();
        }
        let mut rc = run_config(config, scenario, seed, *r);
        (variant.configure)(&mut rc);
        let t = Instant::now();
        let missing = scenario
            .roles
            .iter()
            .flat_map(|r| &r.steps)
            .find_map(|step| match step {
                Step::Op { op, .. } if !adapter.supports(*op) => Some(*op),
                _ => None,
            });
        let outcome = if let Some(op) = missing {
            Outcome::Skipped(format!(
                "skipped: the scenario uses `{op}`, and adapter {} has no `{op}` command",
                adapter.name
            ))
        } else {
            match run(&rc) {
                Ok(report) => Outcome::Report(Box::new(report)),
                Err(e) => Outcome::Error {
                    code: e.exit_code(),
                    message: e.to_string(),
                },
            }
        };
        let wall_s = t.elapsed().as_secs_f64();
        spent_est += est;
        spent_real += wall_s;
        let cell = Cell {
            scenario: scenario.name.clone(),
            scenario_file: scenario.path.clone(),
            variant: variant.name,
            run: *r,
            seed: rc.seed.unwrap_or(seed),
            outcome,
            wall_s,
        };
        if config.progress {
            eprintln!(
                "clobber validate:   -> {} in {wall_s:.1} s (estimated {est:.1} s)",
                cell.short()
            );
        }
        cells.push(cell);
    }
    Ok(Validation {
        store: config.store.clone(),
        runs: config.runs,
        variants: variants.iter().map(|v| v.name).collect(),
        seed,
        estimate_s,
        wall_s: started.elapsed().as_secs_f64(),
        cells,
    })
}

fn run_config(config: &ValidateConfig, scenario: &Scenario, seed: u64, run_no: u32) -> RunConfig {
    RunConfig {
        scenario: scenario.path.clone(),
        store: config.store.clone(),
        mode: None,
        seed: Some(seed + u64::from(run_no) - 1),
        full: false,
        keep: false,
        scratch: None,
        op_timeout_ms: None,
        max_duration_ms: None,
        progress: config.progress,
        history_out: None,
        perturb: None,
        nemesis: crate::nemesis::Kind::None,
    }
}

/// `42 s`, `3 min 05 s`.
fn duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_in_the_repository_is_shipped_in_the_binary() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("scenarios/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let mut shipped: Vec<String> = SHIPPED.iter().map(|(n, _)| (*n).to_owned()).collect();
        shipped.sort();
        assert_eq!(shipped, on_disk, "add the new scenario to SHIPPED");
    }

    #[test]
    fn shipped_scenarios_go_to_a_private_directory_named_after_the_user() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let parent = tmp.path();
        let uid = nix::unistd::geteuid().as_raw();
        let dir = shipped_dir(parent, uid).expect("created");
        assert_eq!(
            dir,
            parent.join(format!(
                "clobber-scenarios-{}-{uid}",
                env!("CARGO_PKG_VERSION")
            ))
        );
        let mode = |d: &Path| std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        // Ours but opened up (an old version, a umask): made private again.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(shipped_dir(parent, uid).expect("reused"), dir);
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_shipped_scenario_directory_owned_by_another_user_is_refused() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let parent = tmp.path();
        let uid = nix::unistd::geteuid().as_raw();
        // The directory exists and is ours: to a user with another uid it is
        // someone else's, which is what another user sharing /tmp would find.
        shipped_dir(parent, uid).expect("created");
        let other = uid + 1;
        std::fs::rename(
            parent.join(format!(
                "clobber-scenarios-{}-{uid}",
                env!("CARGO_PKG_VERSION")
            )),
            parent.join(format!(
                "clobber-scenarios-{}-{other}",
                env!("CARGO_PKG_VERSION")
            )),
        )
        .unwrap();
        let e = shipped_dir(parent, other).expect_err("refused");
        assert_eq!(e.exit_code(), 6, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "owned by uid {uid}, not by this user (uid {other})"
            )) && msg.contains(&format!(
                "clobber-scenarios-{}-{other}",
                env!("CARGO_PKG_VERSION")
            )),
            "{msg}"
        );
    }

    #[test]
    fn a_symbolic_link_in_place_of_the_shipped_scenario_directory_is_refused() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let parent = tmp.path();
        let uid = nix::unistd::geteuid().as_raw();
        std::fs::create_dir(parent.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(
            parent.join("elsewhere"),
            parent.join(format!(
                "clobber-scenarios-{}-{uid}",
                env!("CARGO_PKG_VERSION")
            )),
        )
        .unwrap();
        let e = shipped_dir(parent, uid).expect_err("refused");
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    fn scenario(background_pause_ms: u64) -> Scenario {
        let text = format!(
            "name = \"e\"\ndescription = \"e\"\nmax_duration_ms = 60000\n\
             [[role]]\nname = \"victim\"\nprocesses = 2\niterations = 10\n\
             steps = [{{ op = \"set\", key = \"k{{index}}\" }}, {{ pause_ms = 100 }}]\n\
             [[role]]\nname = \"churn\"\nprocesses = 8\n\
             steps = [{{ op = \"set\", key = \"c{{index}}\" }}, {{ pause_ms = {background_pause_ms} }}]\n"
        );
        Scenario::parse(Path::new("e.toml"), &text).expect("a valid scenario")
    }

    #[test]
    fn the_estimate_counts_a_pausing_process_as_a_fraction_of_a_cpu() {
        // 10 iterations of (one 10 ms set + 100 ms) with churners that pause 1 s
        // between sets: nearly no contention, about 1.1 s plus a second.
        let idle = estimate_on(&scenario(1000), 0.01, 2.0);
        assert!((2.0..2.3).contains(&idle), "{idle}");
        // Churners that never pause: 10 processes on 2 CPUs, each set slower.
        let busy = estimate_on(&scenario(0), 0.01, 2.0);
        assert!(busy > idle + 0.2, "{busy} vs {idle}");
        // A slower store, a longer estimate; capped by the maximum duration.
        assert!(estimate_on(&scenario(0), 0.1, 2.0) > busy);
        assert!(estimate_on(&scenario(0), 100.0, 2.0) <= 61.0);
    }

    #[test]
    fn a_skipped_scenario_is_skipped_in_the_json_not_passed() {
        let v = Validation {
            store: "s".into(),
            runs: 1,
            variants: vec!["cli"],
            seed: 1,
            estimate_s: 1.0,
            wall_s: 1.0,
            cells: vec![Cell {
                scenario: "clear-vs-set".into(),
                scenario_file: "clear-vs-set.toml".into(),
                variant: "cli",
                run: 1,
                seed: 1,
                outcome: Outcome::Skipped("no `clear` command".into()),
                wall_s: 0.0,
            }],
        };
        let json: serde_json::Value = serde_json::from_str(&v.render_json()).unwrap();
        assert_eq!(json["cells"][0]["verdict"], "skipped");
        // Nothing ran: the validation as a whole is inconclusive, never a pass.
        assert_eq!(json["verdict"], "inconclusive");
        assert!(v.render_junit().contains("<skipped "));
    }

    #[test]
    fn a_violation_outranks_an_error_which_outranks_an_inconclusive_run() {
        assert_eq!(worst(&[0, 2, 5, 1, 0]), 1);
        assert_eq!(worst(&[0, 2, 5, 6]), 5);
        assert_eq!(worst(&[0, 2, 0]), 2);
        assert_eq!(worst(&[0, 0]), 0);
    }
}
