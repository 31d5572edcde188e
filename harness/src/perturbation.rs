//! `clobber run --perturb`: every store process runs under the syscall perturber
//! (crate `clobber-perturb`), and the report says what was delayed.
//!
//! Why: a store's race window is often microseconds wide, and a gate that waits for
//! the scheduler to open it is a coin toss. The perturber widens windows on purpose
//! (a long delay before a rename, between unlock and unlink, between open and
//! lock), and the history checkers do the rest. Delays never change a call's result,
//! so a correct store still passes.
//!
//! How: in `cli` mode the worker computes each store command's plan from the seed
//! and the command's number ([`Schedule::plan`], the same computation the tracer
//! would make, so a run replays from `--seed`). A command the plan leaves alone
//! (`pct`'s unchosen commands) runs directly, exactly as without `--perturb`, and
//! the worker logs it as untraced. Any other command `ARGV` becomes `clobber
//! __perturb --schedule S --seed N --invocation I --tag pP --log
//! SCRATCH/perturb.jsonl -- ARGV`; that process is the tracer, and killing it (a
//! timeout) kills the store with it. Every command appends one JSON record; after
//! the run they are summed into a [`Summary`] (commands run, traced, delayed), and
//! each violation is given the delayed calls that preceded it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clobber_check::history::Record as Op;
use clobber_perturb::{Record, Schedule, Status, trace::Counters};
use serde::{Deserialize, Serialize};

use crate::audit::Violation;
use crate::error::{Error, Result};

/// The perturbation log's file name in the scratch directory.
pub const LOG: &str = "perturb.jsonl";

/// What a worker needs to wrap its store commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerturbSpec {
    /// The schedule, as text (`pct:3:150`).
    pub schedule: String,
    /// The run's seed.
    pub seed: u64,
    /// The worker's process id in the history (its commands' tag and numbering).
    pub process: u64,
    /// Where every traced command appends its record.
    pub log: PathBuf,
}

/// How a worker runs one store command under `--perturb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wrapped {
    /// Through the tracer: this argv.
    Traced(Vec<String>),
    /// Directly, untraced (the plan leaves it alone); log it with
    /// [`PerturbSpec::log_untraced`].
    Direct,
}

impl PerturbSpec {
    /// The command number the tracer sees: unique in the run, the process in the
    /// high bits and the worker's `n`-th command below.
    #[must_use]
    pub fn invocation(&self, n: u64) -> u64 {
        (self.process << 32) | n
    }

    /// How to run `argv`, the worker's `n`-th store command: directly if the plan
    /// leaves it untraced, else wrapped in the tracer.
    #[must_use]
    pub fn prepare(&self, exe: &Path, n: u64, argv: &[String]) -> Wrapped {
        match self.schedule.parse::<Schedule>() {
            Ok(s) if !s.plan(self.seed, self.invocation(n)).is_traced() => Wrapped::Direct,
            // A schedule that does not parse: the tracer says why.
            _ => Wrapped::Traced(self.wrap(exe, n, argv)),
        }
    }

    /// Log the worker's `n`-th store command as run untraced, from `start_ns` to
    /// now, ended with `status` (`None`: killed by the harness, a timeout).
    ///
    /// # Errors
    /// An I/O error appending to the log.
    pub fn log_untraced(
        &self,
        n: u64,
        start_ns: u64,
        status: Option<&std::process::ExitStatus>,
    ) -> Result<()> {
        use std::os::unix::process::ExitStatusExt;
        let schedule = self
            .schedule
            .parse::<Schedule>()
            .map_err(|e| Error::usage(format!("--perturb: {e}")))?;
        let inv = clobber_perturb::Invocation {
            schedule,
            seed: self.seed,
            invocation: self.invocation(n),
            calls: clobber_perturb::CallSet::all(),
            tag: Some(format!("p{}", self.process)),
            log: Some(self.log.clone()),
        };
        let status = match status.map(|s| (s.code(), s.signal())) {
            Some((Some(code), _)) => Status::Exited(code),
            Some((None, sig)) => Status::Signaled(sig.unwrap_or(0)),
            None => Status::Signaled(nix::sys::signal::Signal::SIGKILL as i32),
        };
        let rec = Record::untraced(
            &inv,
            start_ns,
            clobber_perturb::trace::monotonic_ns(),
            status,
        );
        clobber_perturb::record::append(&self.log, &rec).map_err(|e| {
            Error::io(
                "append to the perturbation log",
                &self.log,
                std::io::Error::other(e),
            )
        })
    }

    /// `argv` wrapped in the tracer, as the worker's `n`-th store command.
    #[must_use]
    pub fn wrap(&self, exe: &Path, n: u64, argv: &[String]) -> Vec<String> {
        let mut out = vec![
            exe.to_string_lossy().into_owned(),
            "__perturb".into(),
            "--schedule".into(),
            self.schedule.clone(),
            "--seed".into(),
            self.seed.to_string(),
            "--invocation".into(),
            self.invocation(n).to_string(),
            "--tag".into(),
            format!("p{}", self.process),
            "--log".into(),
            self.log.to_string_lossy().into_owned(),
            "--".into(),
        ];
        out.extend(argv.iter().cloned());
        out
    }
}

/// Resolve `--perturb` / the scenario's `perturb`: `None` for off.
///
/// # Errors
/// A usage error naming the grammar.
pub fn resolve(cli: Option<&str>, scenario: Option<&str>) -> Result<Option<Schedule>> {
    let text = match (cli, scenario) {
        (Some("off"), _) | (None, None) => return Ok(None),
        (Some("default"), _) => return Ok(Some(Schedule::DEFAULT)),
        (Some(t), _) | (None, Some(t)) => t,
    };
    text.parse()
        .map(Some)
        .map_err(|e| Error::usage(format!("--perturb: {e}")))
}

/// Make sure tracing works here before any worker starts: trace `clobber --version`.
///
/// # Errors
/// A setup error (exit 5) naming the fix if ptrace is not permitted.
pub fn preflight(exe: &Path) -> Result<()> {
    let out = std::process::Command::new(exe)
        .args(["__perturb", "--schedule", "count", "--"])
        .arg(exe)
        .arg("--version")
        .output()
        .map_err(|e| Error::setup(format!("starting the perturber: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(Error::setup(format!(
        "--perturb: the perturber cannot run here: {}",
        stderr.trim().trim_start_matches("clobber-perturb: ")
    )))
}

/// What was perturbed in a run, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The schedule.
    pub schedule: String,
    /// Store commands run.
    pub commands: usize,
    /// Of those, commands traced (the others ran directly: `pct` left them alone).
    #[serde(default)]
    pub traced_commands: usize,
    /// Of those, commands that got at least one delay.
    pub delayed_commands: usize,
    /// Counters summed over every command.
    pub counters: Counters,
    /// For each reported violation (same order as the report's), the delayed calls
    /// that preceded it, nearest first.
    pub preceding: Vec<Vec<String>>,
}

impl Summary {
    /// Read the log and attribute delays to `violations`.
    ///
    /// # Errors
    /// An I/O error reading the log.
    pub fn build(
        schedule: &Schedule,
        log: &Path,
        history: &[Op],
        violations: &[Violation],
        epoch: u64,
    ) -> Result<Self> {
        let records = clobber_perturb::record::read_log(log)
            .map_err(|e| Error::io("read the perturbation log", log, std::io::Error::other(e)))?;
        let mut counters = Counters::default();
        for r in &records {
            counters.add(r.counters());
        }
        let preceding = violations
            .iter()
            .map(|v| preceding(&records, history, v, epoch))
            .collect();
        Ok(Summary {
            schedule: schedule.to_string(),
            commands: records.len(),
            traced_commands: records.iter().filter(|r| !r.untraced).count(),
            delayed_commands: records.iter().filter(|r| !r.delays().is_empty()).count(),
            counters,
            preceding,
        })
    }

    /// The report's "perturbation" lines.
    #[must_use]
    pub fn render_text(&self) -> String {
        let total = self.counters.total();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "perturbation: {} over every store command: {} run, {} traced, {} delayed; \
             {} calls stopped, {} delayed, {:.2} s held in all",
            self.schedule,
            self.commands,
            self.traced_commands,
            self.delayed_commands,
            total.stopped,
            total.delayed,
            total.delay_ns as f64 / 1e9
        );
        let by: Vec<String> = self
            .counters
            .calls
            .iter()
            .map(|(k, c)| format!("{k} {}/{}", c.stopped, c.delayed))
            .collect();
        let _ = writeln!(s, "  stopped/delayed: {}", by.join(", "));
        s
    }
}

/// The delays whose hold overlapped the witness's span (from its first invocation to
/// the observation that proves it): those of the witness's own processes first, then
/// in time order, at most 6.
fn preceding(records: &[Record], history: &[Op], v: &Violation, epoch: u64) -> Vec<String> {
    let Some(from) = v.witness.iter().map(|r| r.invoke_ns).min() else {
        return Vec::new();
    };
    let to = v.detected_ns;
    let mut found: Vec<(bool, u64, String)> = Vec::new();
    for rec in records {
        let process: Option<u64> = rec
            .tag
            .as_deref()
            .and_then(|t| t.strip_prefix('p')?.parse().ok());
        let op = process.and_then(|p| {
            history.iter().find(|o| {
                o.process == p
                    && o.invoke_ns <= rec.start_ns
                    && o.complete_ns.is_none_or(|c| c >= rec.end_ns)
            })
        });
        let what = op.map_or_else(String::new, |o| {
            format!(
                " {}{}",
                o.op,
                o.key.as_deref().map_or(String::new(), |k| format!(" {k}"))
            )
        });
        let in_witness = process.is_some_and(|p| v.witness.iter().any(|w| w.process == p));
        for d in rec.delays() {
            if d.at_ns + d.delay_ns < from || d.at_ns > to {
                continue;
            }
            let line = format!(
                "+{:.4}s  {}{what}: {} held {} ms{}",
                d.at_ns.saturating_sub(epoch) as f64 / 1e9,
                rec.tag.as_deref().unwrap_or("?"),
                d.call,
                d.delay_ns / 1_000_000,
                d.point
                    .as_deref()
                    .map_or(String::new(), |p| format!(" ({p})"))
            );
            found.push((!in_witness, d.at_ns, line));
        }
    }
    found.sort();
    let mut lines: Vec<(u64, String)> = found.into_iter().take(6).map(|(_, t, l)| (t, l)).collect();
    lines.sort();
    lines.into_iter().map(|(_, l)| l).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_overrides_the_scenario_and_off_turns_it_off() {
        assert_eq!(resolve(None, None).unwrap(), None);
        assert_eq!(
            resolve(Some("default"), None).unwrap(),
            Some(Schedule::DEFAULT)
        );
        assert_eq!(resolve(None, Some("count")).unwrap(), Some(Schedule::Count));
        assert_eq!(resolve(Some("off"), Some("count")).unwrap(), None);
        assert_eq!(
            resolve(Some("noise:5"), Some("count")).unwrap(),
            Some("noise:5".parse().unwrap())
        );
        let e = resolve(Some("chaos"), None).unwrap_err().to_string();
        assert!(e.contains("--perturb") && e.contains("pct[:ONE_IN"), "{e}");
    }

    #[test]
    fn only_the_commands_pct_chooses_go_through_the_tracer_and_the_choice_replays() {
        let spec = |schedule: &str, seed| PerturbSpec {
            schedule: schedule.into(),
            seed,
            process: 3,
            log: PathBuf::from("/s/perturb.jsonl"),
        };
        let exe = Path::new("/bin/clobber");
        let argv = ["store".to_owned(), "set".to_owned()];
        let kinds = |s: &PerturbSpec| -> Vec<bool> {
            (1..=60)
                .map(|n| matches!(s.prepare(exe, n, &argv), Wrapped::Traced(_)))
                .collect()
        };
        let pct = kinds(&spec("pct:3:150", 9));
        let traced = pct.iter().filter(|t| **t).count();
        assert!(0 < traced && traced < 60, "{traced} of 60 traced");
        assert_eq!(pct, kinds(&spec("pct:3:150", 9)), "same seed, same choice");
        assert_ne!(pct, kinds(&spec("pct:3:150", 10)));
        // The worker's choice is the tracer's: a traced command's plan is not
        // `untraced`.
        let s: Schedule = "pct:3:150".parse().unwrap();
        for (n, t) in (1..=60).zip(&pct) {
            assert_eq!(
                *t,
                s.plan(9, spec("pct:3:150", 9).invocation(n)).is_traced()
            );
        }
        for every in ["count", "noise:100"] {
            assert!(kinds(&spec(every, 9)).iter().all(|t| *t), "{every}");
        }
    }

    #[test]
    fn an_untraced_command_is_logged_so_the_report_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let spec = PerturbSpec {
            schedule: "pct:3:150".into(),
            seed: 1,
            process: 4,
            log: dir.path().join(LOG),
        };
        spec.log_untraced(7, 10, None).unwrap();
        let recs = clobber_perturb::record::read_log(&spec.log).unwrap();
        assert_eq!(recs.len(), 1);
        assert!(recs[0].untraced);
        assert_eq!(recs[0].tag.as_deref(), Some("p4"));
        assert_eq!(recs[0].invocation, spec.invocation(7));
        let summary = Summary::build(&"pct".parse().unwrap(), &spec.log, &[], &[], 0).unwrap();
        assert_eq!((summary.commands, summary.traced_commands), (1, 0));
        assert!(summary.render_text().contains("1 run, 0 traced, 0 delayed"));
    }

    #[test]
    fn a_wrapped_command_is_numbered_uniquely_per_process_and_keeps_its_argv() {
        let spec = PerturbSpec {
            schedule: "pct:3:150".into(),
            seed: 9,
            process: 2,
            log: PathBuf::from("/s/perturb.jsonl"),
        };
        let argv = spec.wrap(
            Path::new("/bin/clobber"),
            5,
            &["store".into(), "get".into()],
        );
        assert_eq!(argv[..2], ["/bin/clobber", "__perturb"]);
        let inv = argv.iter().position(|a| a == "--invocation").unwrap();
        assert_eq!(argv[inv + 1], ((2u64 << 32) | 5).to_string());
        assert_eq!(argv[argv.len() - 3..], ["--", "store", "get"]);
    }
}
