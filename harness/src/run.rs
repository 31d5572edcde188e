//! `clobber run`: set up a scratch store, start every worker process, watch their
//! histories, stop at the first violation, audit, and report.
//!
//! Every worker is a real OS process in its own process group (and, in `cli` mode,
//! so are the store processes it starts, which inherit the group), so one `killpg`
//! per worker reaches everything. Ctrl-C, SIGTERM, a timeout or a failure kill every
//! group; none is left behind.
//!
//! The parts, in the order a run uses them:
//! - `run/preflight.rs`: set the store up and make sure it answers;
//! - [`supervise`]: starting and killing processes (the one spawn point of a store
//!   process is [`supervise::store_command`]);
//! - `run/tail.rs`: reading the workers' histories while they run;
//! - `run/integrity.rs`: the store file after the run;
//! - `run/verdict.rs`: the summary table and the verdict.

mod integrity;
mod linearizable;
mod preflight;
pub mod supervise;
mod tail;
mod verdict;

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::time::{Duration, Instant};

use clobber_check::history::{Op, Outcome, Record};
use clobber_store::{KdfParams, KeySource, StoreOptions};

pub use self::integrity::Integrity;
use self::supervise::{
    exited_unreaped, install_signal_handler, kill_all_groups, unregister_group, yield_to_interrupt,
};
use self::tail::Tail;
use crate::adapter::Adapter;
use crate::audit::{self, Options};
use crate::clock::now_ns;
use crate::driver::{Call, Driver, DriverSpec};
use crate::error::{Error, Result};
use crate::nemesis::{Kind as NemesisKind, Nemesis, excuse_reads_of_lost_inflight_writes};
use crate::report::RunReport;
use crate::scenario::{Handle, Mode, Scenario};
use crate::worker::{EXIT_IO, EXIT_STORE_MISSING, EXIT_STORE_UNRESPONSIVE, WorkerSpec};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The scenario file.
    pub scenario: PathBuf,
    /// `--store`: an adapter file or a built-in name.
    pub store: String,
    /// Overrides the scenario's mode.
    pub mode: Option<Mode>,
    /// The seed (random if not given).
    pub seed: Option<u64>,
    /// Keep running after the first violation.
    pub full: bool,
    /// Keep the scratch directory even when the run passes.
    pub keep: bool,
    /// Use this (new or empty) directory as the scratch directory.
    pub scratch: Option<PathBuf>,
    /// Overrides the scenario's per-operation timeout.
    pub op_timeout_ms: Option<u64>,
    /// Overrides the scenario's maximum duration.
    pub max_duration_ms: Option<u64>,
    /// Show a progress bar (on a TTY).
    pub progress: bool,
    /// Also write the merged history here.
    pub history_out: Option<PathBuf>,
    /// `--perturb`: a schedule, `default`, or `off` (overrides the scenario's).
    pub perturb: Option<String>,
    /// `--nemesis`: faults to inject while the workload runs.
    pub nemesis: NemesisKind,
}

/// Why the run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    Done,
    Violation,
    MaxDuration,
    StoreUnresponsive(String),
}

/// What the command line and the files resolve to, before anything starts.
pub(crate) struct Plan {
    scenario: Scenario,
    adapter: Adapter,
    mode: Mode,
    seed: u64,
    op_timeout_ms: u64,
    max_duration_ms: u64,
    scratch: PathBuf,
    /// Where the store lives: the scratch directory, or under `--nemesis
    /// power-loss` its `store/` subdirectory (the faultfs mount), so that the
    /// histories beside it survive the crashes.
    store_root: PathBuf,
    replay: String,
    /// The exact command that re-checks the recorded history.
    recheck: String,
    /// The reference store's file (`lib` mode and the integrity check).
    store_path: PathBuf,
    passphrase: String,
    /// Run every store process under the perturber with this schedule.
    perturb: Option<clobber_perturb::Schedule>,
}

impl Plan {
    /// How a worker (or the final-state reader) drives the store.
    fn driver_spec(&self, handle: Handle) -> DriverSpec {
        match self.mode {
            Mode::Cli => DriverSpec::Cli {
                adapter: Box::new(self.adapter.clone()),
                scratch: self.store_root.clone(),
                op_timeout_ms: self.op_timeout_ms,
                perturb: None,
            },
            Mode::Lib => DriverSpec::Lib {
                path: self.store_path.clone(),
                passphrase: self.passphrase.clone(),
                protocol: self.adapter.reference.unwrap_or_default().name().to_owned(),
                lock_wait_ms: 5000,
                handle,
            },
        }
    }
}

/// One running worker process and what it has written so far.
struct Worker {
    spec: WorkerSpec,
    child: Child,
    stdin: Option<ChildStdin>,
    exited: Option<i32>,
    tail: Tail,
    finite: bool,
    start_ns: u64,
    stderr: PathBuf,
    /// Killed by the run (it did not stop within the grace period).
    killed: bool,
}

/// Run a scenario; returns the report (whose verdict gives the exit code).
///
/// # Errors
/// Configuration, setup and I/O errors (exit code 3 or more).
pub fn run(config: &RunConfig) -> Result<RunReport> {
    let mut scratch_made = None;
    let result = run_inner(config, &mut scratch_made);
    // The adapter's teardown runs on every exit path (Ctrl-C: in the handler).
    crate::adapter::lifecycle::teardown_armed();
    if result.is_err() {
        yield_to_interrupt();
    }
    if result.is_err()
        && config.scratch.is_none()
        && let Some(dir) = scratch_made
    {
        // A run that never got going leaves nothing worth keeping.
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn run_inner(config: &RunConfig, scratch_made: &mut Option<PathBuf>) -> Result<RunReport> {
    let wall = Instant::now();
    let mut plan = make_plan(config, scratch_made)?;
    let mut nemesis = Nemesis::start(config.nemesis, plan.seed, &plan.store_root)?;
    if nemesis.mount().is_some() {
        for sub in ["home", "config", "data", "state", "cache"] {
            let p = plan.store_root.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| Error::io("create store directory", &p, e))?;
        }
    }

    // Set the store up, and make sure it answers, before any worker starts.
    if plan.perturb.is_some() {
        let exe = std::env::current_exe()
            .map_err(|e| Error::io("find own executable", Path::new("clobber"), e))?;
        crate::perturbation::preflight(&exe)?;
    }
    if plan.mode == Mode::Cli {
        crate::adapter::lifecycle::arm_teardown(&plan.adapter, &plan.store_root);
    }
    match plan.mode {
        Mode::Cli => preflight::preflight(&plan.adapter, &plan.store_root, plan.op_timeout_ms)?,
        Mode::Lib => {
            StoreOptions::new(
                &plan.store_path,
                KeySource::passphrase(plan.passphrase.clone()),
            )
            .new_store_params(KdfParams::CHEAP)
            .open()
            .and_then(|mut s| s.init())
            .map_err(|e| Error::setup(format!("creating the scratch store: {e}")))?;
        }
    }
    // Pauses given as multiples of the store's latency (latency.rs).
    let ops = plan.scenario.latency_ops();
    if !ops.is_empty() {
        let mut driver = Driver::new(plan.driver_spec(Handle::PerOp))?;
        let latency = crate::latency::measure(&mut driver, &ops);
        eprintln!(
            "clobber: store latency (median of {}): {}",
            crate::latency::SAMPLES,
            latency.describe()
        );
        plan.scenario.apply_latency(&|op| latency.ms(op));
    }

    let (mut workers, sentinel_processes) = start_workers(&plan, config.nemesis)?;
    let epoch = now_ns() + 100_000_000 + 5_000_000 * workers.len() as u64;
    for w in &mut workers {
        w.start_ns += epoch;
        w.tail.last_ns = w.start_ns;
        if let Some(stdin) = w.stdin.as_mut() {
            let _ = writeln!(stdin, "go {epoch}");
            let _ = stdin.flush();
        }
    }
    nemesis.begin(epoch);
    let stop = watch(config, &plan, &mut workers, epoch, &mut nemesis)?;
    let run_end = now_ns();
    // Power loss: one last cut, so the read-back sees only what was durable.
    nemesis.end()?;

    // Final-state audit: read back every key once the run has quiesced.
    let auditor = workers.len() as u64 + 1;
    let stopped_early = matches!(stop, Stop::Violation | Stop::StoreUnresponsive(_));
    let finals = if stopped_early {
        Vec::new()
    } else {
        read_final_state(&plan, &workers, auditor)?
    };
    let mut history = merge(&workers, &finals);
    let excused = excuse_reads_of_lost_inflight_writes(&mut history, &nemesis.crash_times());

    // Operations that may have been cut short: every unknown outcome (timed out and
    // killed, or crashed), and whatever a worker killed at the end was doing.
    let interrupted = history
        .iter()
        .filter(|r| r.outcome == Outcome::Unknown)
        .count()
        + workers.iter().filter(|w| w.killed).count();
    let integrity = integrity::check_integrity(
        &plan.adapter,
        &plan.store_root,
        &plan.store_path,
        &plan.passphrase,
        plan.op_timeout_ms,
        interrupted,
        (config.nemesis != NemesisKind::None).then_some(workers.len()),
    );

    let sentinels: HashSet<String> = history
        .iter()
        .filter(|r| r.op == Op::Set && sentinel_processes.contains(&r.process))
        .filter_map(|r| r.key.clone())
        .collect();
    let full_audit = audit::audit(
        &history,
        &Options {
            sentinels: sentinels.clone(),
            auditor: (!finals.is_empty()).then_some(auditor),
            horizon: None,
        },
    );
    let nemesis = nemesis.finish(excused)?;
    let history_path = plan.scratch.join("history.jsonl");
    write_history(&history_path, &history)?;
    if let Some(out) = &config.history_out {
        write_history(out, &history)?;
    }

    let linearizability = clobber_check::check_kv(
        &history,
        &clobber_check::CheckOptions {
            time_budget: Duration::from_secs(30),
            ..clobber_check::CheckOptions::default()
        },
    );
    let mut report = verdict::build_report(verdict::Facts {
        config,
        plan: &plan,
        epoch,
        run_end,
        wall: wall.elapsed(),
        history: &history,
        audit: &full_audit,
        integrity: &integrity,
        stop: &stop,
        final_read: !finals.is_empty(),
        has_sentinel: !sentinels.is_empty(),
        processes: workers.len(),
        linearizability: Some(linearizability),
    });
    if let Some(schedule) = &plan.perturb {
        report.perturbation = Some(crate::perturbation::Summary::build(
            schedule,
            &plan.scratch.join(crate::perturbation::LOG),
            &history,
            &report.violations,
            epoch,
        )?);
    }
    report.nemesis = nemesis;
    if report.verdict == crate::report::Verdict::Pass && !config.keep && config.scratch.is_none() {
        let _ = std::fs::remove_dir_all(&plan.scratch);
    }
    Ok(report)
}

/// Load and cross-check the scenario and the adapter, pick the seed, make the
/// scratch directory, print the seed and the replay line.
fn make_plan(config: &RunConfig, scratch_made: &mut Option<PathBuf>) -> Result<Plan> {
    let scenario = Scenario::load(&config.scenario)?;
    let adapter = Adapter::resolve(&config.store)?;
    let mode = config.mode.unwrap_or(scenario.mode);
    if config.nemesis != NemesisKind::None && mode == Mode::Lib {
        return Err(Error::usage(format!(
            "--nemesis {} kills store processes, and in --mode lib the workers are the store: \
             use --mode cli",
            config.nemesis.name()
        )));
    }
    if mode == Mode::Lib && adapter.reference.is_none() {
        return Err(Error::usage(format!(
            "--mode lib calls the reference store's library; --store {} is not the reference \
             store (use --mode cli)",
            config.store
        )));
    }
    let seed = config
        .seed
        .unwrap_or_else(|| (now_ns() ^ (u64::from(std::process::id()) << 32)) % 1_000_000_000);
    let perturb =
        crate::perturbation::resolve(config.perturb.as_deref(), scenario.perturb.as_deref())?;
    if perturb.is_some() && mode == Mode::Lib {
        return Err(Error::usage(
            "--perturb delays the system calls of store processes, one per operation: \
             use --mode cli (or --perturb off)",
        ));
    }
    let op_timeout_ms = config.op_timeout_ms.unwrap_or(scenario.op_timeout_ms);
    let max_duration_ms = config.max_duration_ms.unwrap_or(scenario.max_duration_ms);
    if mode == Mode::Cli {
        adapter.require_program()?;
        // A capability the store lacks: refused with one line (exit 3).
        if let Some(why) = adapter.missing_capability(&scenario) {
            return Err(Error::usage(why));
        }
    }
    let scratch = make_scratch(config, &scenario, seed)?;
    *scratch_made = Some(scratch.clone());
    supervise::set_scratch(&scratch);
    install_signal_handler();
    let mut replay = String::new();
    for (k, v) in shaping_env(&adapter) {
        replay.push_str(&format!("{k}={} ", shell_quote(&v)));
    }
    replay.push_str(&format!(
        "clobber run {} --store {} --mode {} --seed {seed}",
        shell_quote(&config.scenario.display().to_string()),
        shell_quote(&config.store),
        mode.name()
    ));
    if config.full {
        replay.push_str(" --full");
    }
    if let Some(ms) = config.op_timeout_ms {
        replay.push_str(&format!(" --op-timeout-ms {ms}"));
    }
    if let Some(ms) = config.max_duration_ms {
        replay.push_str(&format!(" --max-duration-ms {ms}"));
    }
    if config.nemesis != NemesisKind::None {
        replay.push_str(&format!(" --nemesis {}", config.nemesis.name()));
    }
    let recheck_path = config
        .history_out
        .clone()
        .unwrap_or_else(|| scratch.join("history.jsonl"));
    let recheck = format!(
        "clobber check {}",
        shell_quote(&recheck_path.display().to_string())
    );
    match (&perturb, scenario.perturb.is_some()) {
        (Some(s), _) => replay.push_str(&format!(" --perturb {s}")),
        (None, true) => replay.push_str(" --perturb off"),
        (None, false) => {}
    }
    eprintln!("clobber: seed={seed}  scratch={}", scratch.display());
    eprintln!("clobber: replay: {replay}");
    eprintln!("clobber: {REPLAY_CAVEAT}");

    let store_root = if config.nemesis == NemesisKind::PowerLoss {
        let root = scratch.join("store");
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io("create store directory", &root, e))?;
        root
    } else {
        scratch.clone()
    };
    let store_path = store_root.join("secrets");
    let passphrase = adapter
        .env_value("CLOBBER_STORE_PASSPHRASE")
        .unwrap_or_else(|| "clobber-scratch-passphrase".into());
    Ok(Plan {
        scenario,
        adapter,
        mode,
        seed,
        op_timeout_ms,
        max_duration_ms,
        scratch,
        store_root,
        replay,
        recheck,
        store_path,
        passphrase,
        perturb,
    })
}

/// What a replay line cannot promise.
pub const REPLAY_CAVEAT: &str = "the seed fixes clobber's choices (keys, values, pauses), not \
     the OS's interleaving of processes: a replay may not repeat a race; the recorded history \
     does (re-check it with `clobber check`)";

/// The environment variables that shaped the run beyond its command line: every
/// inherited `CLOBBER_STORE_*` the store still sees, and the adapter's
/// `program_env` (where the store program was found).
fn shaping_env(adapter: &Adapter) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| {
            (k.starts_with("CLOBBER_STORE_") && !adapter.env_overrides(k))
                || adapter.program_env.as_deref() == Some(k.as_str())
        })
        .collect();
    vars.sort();
    vars
}

/// `text` as one shell word.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Start every worker, each in its own process group, waiting for the start signal.
/// Returns the workers and the history process ids of the sentinel roles.
fn start_workers(plan: &Plan, nemesis: NemesisKind) -> Result<(Vec<Worker>, HashSet<u64>)> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find own executable", Path::new("clobber"), e))?;
    let mut workers = Vec::new();
    let mut process = 0u64;
    let mut sentinel_processes = HashSet::new();
    for role in &plan.scenario.roles {
        for index in 1..=role.processes {
            process += 1;
            if role.sentinel {
                sentinel_processes.insert(process);
            }
            let spec = WorkerSpec {
                process,
                index,
                role: role.clone(),
                seed: plan.seed,
                driver: match plan.driver_spec(role.handle) {
                    DriverSpec::Cli {
                        adapter,
                        scratch,
                        op_timeout_ms,
                        ..
                    } => DriverSpec::Cli {
                        perturb: plan.perturb.map(|s| {
                            Box::new(crate::perturbation::PerturbSpec {
                                schedule: s.to_string(),
                                seed: plan.seed,
                                process,
                                log: plan.scratch.join(crate::perturbation::LOG),
                            })
                        }),
                        adapter,
                        scratch,
                        op_timeout_ms,
                    },
                    lib => lib,
                },
                history: plan.scratch.join(format!("history-{process}.jsonl")),
                // A nemesis makes unknowns on purpose; a store that never answers
                // still runs out of them.
                max_consecutive_unknown: if nemesis == NemesisKind::None { 3 } else { 20 },
                parent: std::process::id(),
            };
            let spec_path = plan.scratch.join(format!("worker-{process}.json"));
            let json = serde_json::to_vec_pretty(&spec).expect("a worker spec always serialises");
            crate::worker::create_private(&spec_path)
                .and_then(|mut f| f.write_all(&json))
                .map_err(|e| Error::io("write worker spec", &spec_path, e))?;
            let stderr_path = plan.scratch.join(format!("worker-{process}.err"));
            let stderr = crate::worker::create_private(&stderr_path)
                .map_err(|e| Error::io("create worker log", &stderr_path, e))?;
            let mut child =
                supervise::spawn_worker(&exe, &spec_path, stderr, &plan.adapter.env_removed())
                    .map_err(|e| {
                        kill_all_groups();
                        Error::setup(format!("starting worker process {process}: {e}"))
                    })?;
            let stdin = child.stdin.take();
            workers.push(Worker {
                tail: Tail::new(spec.history.clone()),
                finite: role.is_finite(),
                start_ns: role.start_ms * 1_000_000,
                spec,
                child,
                stdin,
                exited: None,
                stderr: stderr_path,
                killed: false,
            });
        }
    }
    Ok((workers, sentinel_processes))
}

/// Watch the workers until they are all done (or killed after the grace period):
/// tail their histories, audit what is in so far, stop everyone at the first
/// violation, on a failed worker, or at the maximum duration. Every worker is
/// reaped, and its group killed, before this returns.
#[allow(clippy::too_many_lines)]
fn watch(
    config: &RunConfig,
    plan: &Plan,
    workers: &mut [Worker],
    epoch: u64,
    nemesis: &mut Nemesis,
) -> Result<Stop> {
    let progress = crate::report::progress(config.progress, &plan.scenario.name);
    let mut stop = Stop::Done;
    let mut stopping_since: Option<Instant> = None;
    let mut last_audit = Instant::now();
    let mut audit_cost = Duration::ZERO;
    let mut early = false;
    let grace = Duration::from_millis(plan.op_timeout_ms + 2000);
    let max_duration_ms = plan.max_duration_ms;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        yield_to_interrupt();
        for w in workers.iter_mut() {
            if w.exited.is_none() {
                w.exited = exited_unreaped(w.child.id());
            }
            w.tail.poll();
        }
        if let Some(w) = workers.iter().find(|w| w.tail.bad.is_some()) {
            kill_all_groups();
            return Err(Error::setup(format!(
                "worker {} wrote a malformed history line: {}",
                w.spec.process,
                w.tail.bad.clone().unwrap_or_default()
            )));
        }
        // A worker that failed ends the run.
        if stopping_since.is_none()
            && let Some(w) = workers.iter().find(|w| w.exited.is_some_and(|c| c != 0))
        {
            let code = w.exited.unwrap_or(0);
            let log = std::fs::read_to_string(&w.stderr).unwrap_or_default();
            let log = log.trim();
            if code == EXIT_STORE_MISSING {
                kill_all_groups();
                return Err(Error::setup(format!("worker {}: {log}", w.spec.process)));
            }
            if code == EXIT_IO {
                kill_all_groups();
                return Err(Error::io(
                    "write a worker's history or log in the scratch directory",
                    &plan.scratch,
                    std::io::Error::other(format!(
                        "worker {} could not write there (is the disk full?){}{log}",
                        w.spec.process,
                        if log.is_empty() { "" } else { ": " }
                    )),
                ));
            }
            if code == EXIT_STORE_UNRESPONSIVE {
                stop = Stop::StoreUnresponsive(format!("worker {}: {log}", w.spec.process));
            } else {
                kill_all_groups();
                return Err(Error::setup(format!(
                    "worker process {} failed (exit {code}): {log}",
                    w.spec.process
                )));
            }
            stopping_since = Some(Instant::now());
            for w in workers.iter_mut() {
                w.stdin = None;
            }
        }
        let all_finite_done = workers
            .iter()
            .filter(|w| w.finite)
            .all(|w| w.exited.is_some());
        if stopping_since.is_none() && all_finite_done {
            stopping_since = Some(Instant::now());
            for w in workers.iter_mut() {
                w.stdin = None;
            }
        }
        if stopping_since.is_none() && now_ns() > epoch + max_duration_ms * 1_000_000 {
            stop = Stop::MaxDuration;
            stopping_since = Some(Instant::now());
            for w in workers.iter_mut() {
                w.stdin = None;
            }
        }
        if stopping_since.is_none() {
            let live: Vec<i32> = workers
                .iter()
                .filter(|w| w.exited.is_none())
                .filter_map(|w| i32::try_from(w.child.id()).ok())
                .collect();
            let completed = workers
                .iter()
                .flat_map(|w| &w.tail.records)
                .filter(|r| r.outcome != Outcome::Unknown)
                .count();
            if let Err(e) = nemesis.tick(&live, completed) {
                kill_all_groups();
                return Err(e);
            }
        }
        // Re-audit what is in so far, below the horizon.
        let total: usize = workers.iter().map(|w| w.tail.records.len()).sum();
        if !config.full
            && stop == Stop::Done
            && !early
            && last_audit.elapsed() >= Duration::from_millis(150).max(audit_cost * 4)
        {
            let t = Instant::now();
            let horizon = workers
                .iter()
                .map(|w| {
                    if w.exited.is_some() {
                        u64::MAX
                    } else {
                        w.tail.last_ns
                    }
                })
                .min()
                .unwrap_or(u64::MAX);
            let mut history = merge(workers, &[]);
            excuse_reads_of_lost_inflight_writes(&mut history, &nemesis.crash_times());
            let report = audit::audit(
                &history,
                &Options {
                    horizon: Some(horizon),
                    ..Options::default()
                },
            );
            // What only the checker finds stops the run too (same horizon).
            let found =
                !report.violations.is_empty() || linearizable::live_violation(&history, horizon);
            audit_cost = t.elapsed();
            last_audit = Instant::now();
            if found {
                early = true;
                stop = Stop::Violation;
                stopping_since.get_or_insert_with(Instant::now);
                for w in workers.iter_mut() {
                    w.stdin = None;
                }
            }
        }
        if let Some(pb) = &progress {
            let states: Vec<crate::progress::WorkerProgress<'_>> = workers
                .iter()
                .map(|w| crate::progress::WorkerProgress {
                    role: &w.spec.role,
                    ops: w.tail.records.len(),
                    exited: w.exited.is_some(),
                })
                .collect();
            pb.set_message(format!(
                "{}  {total} ops  {} workers live{}",
                crate::progress::line(
                    &states,
                    (now_ns().saturating_sub(epoch)) as f64 / 1e9,
                    max_duration_ms as f64 / 1e3
                ),
                workers.iter().filter(|w| w.exited.is_none()).count(),
                if early { "  VIOLATION" } else { "" }
            ));
            pb.tick();
        }
        if workers.iter().all(|w| w.exited.is_some()) {
            break;
        }
        if stopping_since.is_some_and(|s| s.elapsed() > grace) {
            kill_all_groups();
            for w in workers.iter_mut() {
                if w.exited.is_none() {
                    w.exited = Some(137);
                    w.killed = true;
                }
            }
            break;
        }
    }
    if let Some(pb) = &progress {
        pb.finish_and_clear();
    }
    // Store processes a worker left behind share its group: make sure none survive,
    // then reap the workers (only now may their group ids be reused).
    kill_all_groups();
    for w in workers.iter_mut() {
        let _ = w.child.wait();
        unregister_group(w.child.id());
    }
    for w in workers.iter_mut() {
        w.tail.poll();
    }
    Ok(stop)
}

/// Read every key back once the run has quiesced, as process `auditor`.
fn read_final_state(plan: &Plan, workers: &[Worker], auditor: u64) -> Result<Vec<Record>> {
    let mut finals = Vec::new();
    let mut driver = Driver::new(plan.driver_spec(Handle::PerOp))?;
    let mut keys: BTreeSet<String> = workers
        .iter()
        .flat_map(|w| w.tail.records.iter())
        .filter_map(|r| r.key.clone())
        .collect();
    let lists = plan.mode == Mode::Lib || plan.adapter.supports(Op::List);
    if lists {
        let r = final_op(&mut driver, auditor, Op::List, None);
        keys.extend(r.keys.iter().flatten().cloned());
        finals.push(r);
    }
    for k in keys {
        finals.push(final_op(&mut driver, auditor, Op::Get, Some(k)));
    }
    Ok(finals)
}

fn final_op(driver: &mut Driver, process: u64, op: Op, key: Option<String>) -> Record {
    let call = Call {
        op,
        key,
        value: None,
    };
    let invoke_ns = now_ns();
    let done = driver.exec(&call);
    let complete_ns = now_ns();
    Record {
        process,
        op,
        key: call.key,
        value: done.value,
        keys: done.keys,
        outcome: done.outcome,
        invoke_ns,
        complete_ns: (done.outcome != Outcome::Unknown).then_some(complete_ns),
        error: done.error,
        detail: done.detail,
    }
}

fn merge(workers: &[Worker], finals: &[Record]) -> Vec<Record> {
    let mut all: Vec<Record> = workers
        .iter()
        .flat_map(|w| w.tail.records.iter().cloned())
        .chain(finals.iter().cloned())
        .collect();
    all.sort_by_key(|r| (r.invoke_ns, r.process));
    all
}

/// Write a history as JSON lines.
///
/// # Errors
/// I/O errors naming the file.
pub fn write_history(path: &Path, history: &[Record]) -> Result<()> {
    let mut out = std::io::BufWriter::new(
        crate::worker::create_private(path).map_err(|e| Error::io("create history", path, e))?,
    );
    for r in history {
        clobber_check::history::write_record(&mut out, r)
            .map_err(|e| Error::io("write history", path, e))?;
    }
    out.flush().map_err(|e| Error::io("write history", path, e))
}

fn make_scratch(config: &RunConfig, scenario: &Scenario, seed: u64) -> Result<PathBuf> {
    let dir = match &config.scratch {
        Some(d) => {
            if d.exists()
                && std::fs::read_dir(d)
                    .map_err(|e| Error::io("list scratch directory", d, e))?
                    .next()
                    .is_some()
            {
                return Err(Error::usage(format!(
                    "--scratch {}: not empty; a run only ever uses a new, empty directory",
                    d.display()
                )));
            }
            d.clone()
        }
        None => {
            let base = format!("clobber-{}-{seed}-{}", scenario.name, std::process::id());
            return new_private_dir(&std::env::temp_dir(), &base).and_then(|dir| {
                for sub in ["home", "config", "data", "state", "cache"] {
                    private_dir(&dir.join(sub))?;
                }
                Ok(dir)
            });
        }
    };
    private_dir(&dir)?;
    for sub in ["home", "config", "data", "state", "cache"] {
        private_dir(&dir.join(sub))?;
    }
    Ok(dir)
}

/// Create `p` (and its parents) 0700: the scratch store, the worker specs (with the
/// scratch passphrase) and the histories are the run's alone.
fn private_dir(p: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .and_then(|()| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| Error::io("create scratch directory", p, e))
}

/// A new directory `parent/base` (or `parent/base-2`, `-3`, ... if that exists), 0700,
/// created by this call alone: a kept scratch directory of an earlier run whose
/// process id was reused is never run in again (its store would be "already there").
fn new_private_dir(parent: &Path, base: &str) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    // The parent (the system's temporary directory) is only created if missing,
    // never re-moded.
    std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    for n in 1..=1000u32 {
        let dir = match n {
            1 => parent.join(base),
            n => parent.join(format!("{base}-{n}")),
        };
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::io("create scratch directory", &dir, e))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create scratch directory", &dir, e)),
        }
    }
    Err(Error::io(
        "create scratch directory",
        &parent.join(base),
        std::io::Error::other("1000 directories of that name exist already"),
    ))
}

#[cfg(test)]
mod scratch_tests {
    use super::new_private_dir;

    #[test]
    fn a_left_over_scratch_directory_of_the_same_name_is_never_reused() {
        let parent = tempfile::tempdir().unwrap();
        let first = new_private_dir(parent.path(), "clobber-x-1-42").unwrap();
        std::fs::write(first.join("secrets"), b"an earlier run's store").unwrap();
        let second = new_private_dir(parent.path(), "clobber-x-1-42").unwrap();
        assert_ne!(first, second);
        assert_eq!(
            std::fs::read_dir(&second).unwrap().count(),
            0,
            "a new, empty directory"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&second).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
