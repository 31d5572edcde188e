//! `clobber run`: set up a scratch store, start every worker process, watch their
//! histories, stop at the first violation, audit, and report.
//!
//! Every worker is a real OS process in its own process group (and, in `cli` mode,
//! so are the store processes it starts, which inherit the group), so one `killpg`
//! per worker reaches everything. Ctrl-C, SIGTERM, a timeout or a failure kill every
//! group; none is left behind.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clobber_check::history::{Op, Outcome, Record};
use clobber_store::{KdfParams, KeySource, StoreOptions};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::adapter::Adapter;
use crate::audit::{self, Options};
use crate::clock::now_ns;
use crate::driver::{Call, Driver, DriverSpec};
use crate::error::{Error, Result};
use crate::report::{Check, RunReport, Status, Verdict};
use crate::scenario::{Mode, Scenario};
use crate::worker::{EXIT_STORE_MISSING, EXIT_STORE_UNRESPONSIVE, WorkerSpec};

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
}

/// Process groups to kill on Ctrl-C / SIGTERM.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static SCRATCH: Mutex<Option<PathBuf>> = Mutex::new(None);
/// Set by the Ctrl-C / SIGTERM handler before it kills anything.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// If the signal handler is tearing the run down, let it finish (it exits the
/// process with 130) rather than report the workers it killed as failures.
fn yield_to_interrupt() {
    while INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn register_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid)
        && let Ok(mut g) = GROUPS.lock()
    {
        g.push(pid);
    }
}

fn unregister_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid)
        && let Ok(mut g) = GROUPS.lock()
    {
        g.retain(|&p| p != pid);
    }
}

/// The exit code of child `pid` if it has exited, *without* reaping it: an
/// unreaped leader keeps its process-group id reserved, so a later `killpg` can
/// never hit an unrelated group that reused the number (`pid_max` can be small).
fn exited_unreaped(pid: u32) -> Option<i32> {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    let pid = Pid::from_raw(i32::try_from(pid).ok()?);
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(pid), flags) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(128 + signal as i32),
        _ => None,
    }
}

/// Kill every registered process group; returns how many there were.
fn kill_all_groups() -> usize {
    let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for &g in &groups {
        let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
    }
    groups.len()
}

fn install_signal_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            let n = kill_all_groups();
            let scratch = SCRATCH.lock().ok().and_then(|s| s.clone());
            eprintln!(
                "\nclobber: interrupted: killed {n} process group(s){}",
                scratch.map_or(String::new(), |s| format!(
                    "; scratch kept at {}",
                    s.display()
                ))
            );
            std::process::exit(130);
        });
    });
}

struct Worker {
    spec: WorkerSpec,
    child: Child,
    stdin: Option<ChildStdin>,
    exited: Option<i32>,
    tail: Tail,
    finite: bool,
    start_ns: u64,
    stderr: PathBuf,
}

/// Reads the complete lines a worker has appended to its history so far.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    records: Vec<Record>,
    last_ns: u64,
    bad: Option<String>,
}

impl Tail {
    fn poll(&mut self) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            match serde_json::from_slice::<Record>(&line) {
                Ok(r) => {
                    self.last_ns = self.last_ns.max(r.complete_ns.unwrap_or(r.invoke_ns));
                    self.records.push(r);
                }
                Err(e) => {
                    self.bad
                        .get_or_insert_with(|| format!("{}: {e}", self.path.display()));
                }
            }
        }
    }
}

/// Why the run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stop {
    Done,
    Violation,
    MaxDuration,
    StoreUnresponsive(String),
}

/// Run a scenario; returns the report (whose verdict gives the exit code).
///
/// # Errors
/// Configuration, setup and I/O errors (exit code 3 or more).
pub fn run(config: &RunConfig) -> Result<RunReport> {
    let mut scratch_made = None;
    let result = run_inner(config, &mut scratch_made);
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

#[allow(clippy::too_many_lines)]
fn run_inner(config: &RunConfig, scratch_made: &mut Option<PathBuf>) -> Result<RunReport> {
    let wall = Instant::now();
    let scenario = Scenario::load(&config.scenario)?;
    let adapter = Adapter::resolve(&config.store)?;
    let mode = config.mode.unwrap_or(scenario.mode);
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
    let op_timeout_ms = config.op_timeout_ms.unwrap_or(scenario.op_timeout_ms);
    let max_duration_ms = config.max_duration_ms.unwrap_or(scenario.max_duration_ms);
    if mode == Mode::Cli {
        adapter.require_program()?;
        for role in &scenario.roles {
            for step in &role.steps {
                if let crate::scenario::Step::Op { op, .. } = step
                    && !adapter.supports(*op)
                {
                    return Err(Error::usage(format!(
                        "scenario {} role {:?} uses `{op}`, but adapter {} ({}) has no `{op}` command",
                        scenario.path.display(),
                        role.name,
                        adapter.name,
                        adapter.source
                    )));
                }
            }
        }
    }
    let scratch = make_scratch(config, &scenario, seed)?;
    *scratch_made = Some(scratch.clone());
    if let Ok(mut s) = SCRATCH.lock() {
        *s = Some(scratch.clone());
    }
    install_signal_handler();
    let mut replay = format!(
        "clobber run {} --store {} --mode {} --seed {seed}",
        config.scenario.display(),
        config.store,
        mode.name()
    );
    if config.full {
        replay.push_str(" --full");
    }
    if let Some(ms) = config.op_timeout_ms {
        replay.push_str(&format!(" --op-timeout-ms {ms}"));
    }
    if let Some(ms) = config.max_duration_ms {
        replay.push_str(&format!(" --max-duration-ms {ms}"));
    }
    eprintln!("clobber: seed={seed}  scratch={}", scratch.display());
    eprintln!("clobber: replay: {replay}");

    let store_path = scratch.join("secrets");
    let passphrase = adapter
        .env
        .get("CLOBBER_STORE_PASSPHRASE")
        .cloned()
        .unwrap_or_else(|| "clobber-scratch-passphrase".into());
    let protocol = adapter.reference.unwrap_or_default();
    let driver_spec = |handle| match mode {
        Mode::Cli => DriverSpec::Cli {
            adapter: adapter.clone(),
            scratch: scratch.clone(),
            op_timeout_ms,
        },
        Mode::Lib => DriverSpec::Lib {
            path: store_path.clone(),
            passphrase: passphrase.clone(),
            protocol: protocol.name().to_owned(),
            lock_wait_ms: 5000,
            handle,
        },
    };

    // Set the store up, and make sure it answers, before any worker starts.
    match mode {
        Mode::Cli => preflight(&adapter, &scratch, op_timeout_ms)?,
        Mode::Lib => {
            StoreOptions::new(&store_path, KeySource::passphrase(passphrase.clone()))
                .new_store_params(KdfParams::CHEAP)
                .open()
                .and_then(|mut s| s.init())
                .map_err(|e| Error::setup(format!("creating the scratch store: {e}")))?;
        }
    }

    // Start every worker, each in its own process group.
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find own executable", Path::new("clobber"), e))?;
    let mut workers = Vec::new();
    let mut process = 0u64;
    let mut sentinel_processes = HashSet::new();
    for role in &scenario.roles {
        for index in 1..=role.processes {
            process += 1;
            if role.sentinel {
                sentinel_processes.insert(process);
            }
            let spec = WorkerSpec {
                process,
                index,
                role: role.clone(),
                seed,
                driver: driver_spec(role.handle),
                history: scratch.join(format!("history-{process}.jsonl")),
                max_consecutive_unknown: 3,
            };
            let spec_path = scratch.join(format!("worker-{process}.json"));
            let json = serde_json::to_vec_pretty(&spec).expect("a worker spec always serialises");
            std::fs::write(&spec_path, json)
                .map_err(|e| Error::io("write worker spec", &spec_path, e))?;
            let stderr_path = scratch.join(format!("worker-{process}.err"));
            let stderr = std::fs::File::create(&stderr_path)
                .map_err(|e| Error::io("create worker log", &stderr_path, e))?;
            let mut child = Command::new(&exe)
                .arg("__worker")
                .arg(&spec_path)
                .process_group(0)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .map_err(|e| {
                    kill_all_groups();
                    Error::setup(format!("starting worker process {process}: {e}"))
                })?;
            register_group(child.id());
            let stdin = child.stdin.take();
            workers.push(Worker {
                tail: Tail {
                    path: spec.history.clone(),
                    offset: 0,
                    partial: Vec::new(),
                    records: Vec::new(),
                    last_ns: 0,
                    bad: None,
                },
                finite: role.is_finite(),
                start_ns: role.start_ms * 1_000_000,
                spec,
                child,
                stdin,
                exited: None,
                stderr: stderr_path,
            });
        }
    }
    let epoch = now_ns() + 100_000_000 + 5_000_000 * workers.len() as u64;
    for w in &mut workers {
        w.start_ns += epoch;
        w.tail.last_ns = w.start_ns;
        if let Some(stdin) = w.stdin.as_mut() {
            let _ = writeln!(stdin, "go {epoch}");
            let _ = stdin.flush();
        }
    }

    let progress = crate::report::progress(config.progress, &scenario.name);
    let mut stop = Stop::Done;
    let mut stopping_since: Option<Instant> = None;
    let mut last_audit = Instant::now();
    let mut audit_cost = Duration::ZERO;
    let mut early: Option<audit::Report> = None;
    let grace = Duration::from_millis(op_timeout_ms + 2000);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        yield_to_interrupt();
        for w in &mut workers {
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
            for w in &mut workers {
                w.stdin = None;
            }
        }
        let all_finite_done = workers
            .iter()
            .filter(|w| w.finite)
            .all(|w| w.exited.is_some());
        if stopping_since.is_none() && all_finite_done {
            stopping_since = Some(Instant::now());
            for w in &mut workers {
                w.stdin = None;
            }
        }
        if stopping_since.is_none() && now_ns() > epoch + max_duration_ms * 1_000_000 {
            stop = Stop::MaxDuration;
            stopping_since = Some(Instant::now());
            for w in &mut workers {
                w.stdin = None;
            }
        }
        // Re-audit what is in so far, below the horizon.
        let total: usize = workers.iter().map(|w| w.tail.records.len()).sum();
        if !config.full
            && stop == Stop::Done
            && early.is_none()
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
            let history = merge(&workers, &[]);
            let report = audit::audit(
                &history,
                &Options {
                    horizon: Some(horizon),
                    ..Options::default()
                },
            );
            audit_cost = t.elapsed();
            last_audit = Instant::now();
            if !report.violations.is_empty() {
                early = Some(report);
                stop = Stop::Violation;
                stopping_since.get_or_insert_with(Instant::now);
                for w in &mut workers {
                    w.stdin = None;
                }
            }
        }
        if let Some(pb) = &progress {
            pb.set_message(format!(
                "{:.1}s  {total} ops  {} workers live{}",
                (now_ns().saturating_sub(epoch)) as f64 / 1e9,
                workers.iter().filter(|w| w.exited.is_none()).count(),
                if early.is_some() { "  VIOLATION" } else { "" }
            ));
            pb.tick();
        }
        if workers.iter().all(|w| w.exited.is_some()) {
            break;
        }
        if stopping_since.is_some_and(|s| s.elapsed() > grace) {
            kill_all_groups();
            for w in &mut workers {
                if w.exited.is_none() {
                    w.exited = Some(137);
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
    for w in &mut workers {
        let _ = w.child.wait();
        unregister_group(w.child.id());
    }
    for w in &mut workers {
        w.tail.poll();
    }
    let run_end = now_ns();

    // Final-state audit: read back every key once the run has quiesced.
    let auditor = process + 1;
    let mut finals = Vec::new();
    let stopped_early = matches!(stop, Stop::Violation | Stop::StoreUnresponsive(_));
    if !stopped_early {
        let mut driver = Driver::new(driver_spec(crate::scenario::Handle::PerOp))?;
        let mut keys: BTreeSet<String> = workers
            .iter()
            .flat_map(|w| w.tail.records.iter())
            .filter_map(|r| r.key.clone())
            .collect();
        let lists = mode == Mode::Lib || adapter.supports(Op::List);
        if lists {
            let r = final_op(&mut driver, auditor, Op::List, None);
            keys.extend(r.keys.iter().flatten().cloned());
            finals.push(r);
        }
        for k in keys {
            finals.push(final_op(&mut driver, auditor, Op::Get, Some(k)));
        }
    }
    let history = merge(&workers, &finals);

    // Integrity of the store file.
    let integrity = check_integrity(
        &adapter,
        mode,
        &scratch,
        &store_path,
        &passphrase,
        op_timeout_ms,
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
    let _ = early;
    let history_path = scratch.join("history.jsonl");
    write_history(&history_path, &history)?;
    if let Some(out) = &config.history_out {
        write_history(out, &history)?;
    }

    let report = build_report(
        config,
        &scenario,
        &adapter,
        mode,
        seed,
        replay,
        &scratch,
        epoch,
        run_end,
        wall.elapsed(),
        &history,
        &full_audit,
        &integrity,
        &stop,
        !finals.is_empty(),
        !sentinels.is_empty(),
        workers.len(),
        Some(clobber_check::check_kv(
            &history,
            &clobber_check::CheckOptions {
                time_budget: Duration::from_secs(30),
                ..clobber_check::CheckOptions::default()
            },
        )),
    );
    if report.verdict == Verdict::Pass && !config.keep && config.scratch.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(report)
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
        std::fs::File::create(path).map_err(|e| Error::io("create history", path, e))?,
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
        None => std::env::temp_dir().join(format!(
            "clobber-{}-{seed}-{}",
            scenario.name,
            std::process::id()
        )),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create scratch directory", &dir, e))?;
    for sub in ["home", "config", "data", "state", "cache"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| Error::io("create scratch directory", &p, e))?;
    }
    Ok(dir)
}

/// Run one adapter command with a timeout, in its own process group.
fn run_command(
    adapter: &Adapter,
    scratch: &Path,
    argv: &[String],
    stdin: Option<&str>,
    timeout_ms: u64,
) -> std::result::Result<std::process::Output, String> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .envs(adapter.env_for(scratch))
        .process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", argv.join(" ")))?;
    register_group(child.id());
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes());
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let result = rx.recv_timeout(Duration::from_millis(timeout_ms));
    let timed_out = result.is_err();
    if timed_out && let Ok(pgid) = i32::try_from(pid) {
        // Still running, so the group id is still ours.
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        let _ = rx.recv_timeout(Duration::from_millis(500));
    }
    unregister_group(pid);
    match result {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(format!("waiting for `{}`: {e}", argv.join(" "))),
        Err(_) => Err(format!(
            "`{}` did not finish within {timeout_ms} ms (the store hangs); it was killed",
            argv.join(" ")
        )),
    }
}

fn describe_exit(out: &std::process::Output) -> String {
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    match (out.status.code(), out.status.signal()) {
        (Some(c), _) => format!("exit {c}: {stderr}"),
        (None, Some(s)) => format!("crashed (killed by signal {s}): {stderr}"),
        _ => stderr,
    }
}

fn preflight(adapter: &Adapter, scratch: &Path, timeout_ms: u64) -> Result<()> {
    adapter.require_program()?;
    if let Some(argv) = adapter.argv("setup", None, None, scratch) {
        let out = run_command(adapter, scratch, &argv, None, timeout_ms).map_err(Error::setup)?;
        if !out.status.success() {
            return Err(Error::setup(format!(
                "store setup `{}` failed: {}",
                argv.join(" "),
                describe_exit(&out)
            )));
        }
    }
    let key = "__clobber_probe__";
    let argv = adapter
        .argv("get", Some(key), None, scratch)
        .ok_or_else(|| Error::setup("adapter has no `get` command"))?;
    let out = run_command(adapter, scratch, &argv, None, timeout_ms).map_err(Error::setup)?;
    let done = crate::driver::classify(adapter, Op::Get, &out);
    if done.outcome != Outcome::NotFound {
        return Err(Error::setup(format!(
            "store probe `{}` on an empty scratch store should report \"not found\" (exit {}{}), got {}",
            argv.join(" "),
            adapter.not_found.exit_code,
            adapter
                .not_found
                .stderr_contains
                .as_deref()
                .map_or(String::new(), |t| format!(", stderr containing {t:?}")),
            describe_exit(&out)
        )));
    }
    Ok(())
}

/// The result of the integrity check.
#[derive(Debug, Clone)]
pub struct Integrity {
    /// Ok, violation or not checked.
    pub status: Status,
    /// What was checked and found.
    pub detail: String,
}

fn check_integrity(
    adapter: &Adapter,
    mode: Mode,
    scratch: &Path,
    store_path: &Path,
    passphrase: &str,
    timeout_ms: u64,
) -> Integrity {
    if let Some(protocol) = adapter.reference {
        let opened = StoreOptions::new(store_path, KeySource::passphrase(passphrase.to_owned()))
            .protocol(protocol)
            .open()
            .and_then(|mut s| s.read_all());
        let leftovers = clobber_store::fs::leftover_temp_files(store_path).unwrap_or_default();
        return match (opened, leftovers.is_empty()) {
            (Ok(map), true) => Integrity {
                status: Status::Ok,
                detail: format!("decrypts ({} secrets), no temporary files left", map.len()),
            },
            (Err(e), _) => Integrity {
                status: Status::Violation,
                detail: format!("does not decrypt: {e}"),
            },
            (Ok(_), false) => Integrity {
                status: Status::Violation,
                detail: format!("temporary files left behind: {leftovers:?}"),
            },
        };
    }
    let _ = mode;
    match adapter.argv("integrity", None, None, scratch) {
        None => Integrity {
            status: Status::NotChecked,
            detail: "the adapter has no integrity command".into(),
        },
        Some(argv) => match run_command(adapter, scratch, &argv, None, timeout_ms) {
            Ok(out) if out.status.success() => Integrity {
                status: Status::Ok,
                detail: format!("`{}` passed", argv.join(" ")),
            },
            Ok(out) => Integrity {
                status: Status::Violation,
                detail: format!("`{}`: {}", argv.join(" "), describe_exit(&out)),
            },
            Err(e) => Integrity {
                status: Status::Violation,
                detail: e,
            },
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    config: &RunConfig,
    scenario: &Scenario,
    adapter: &Adapter,
    mode: Mode,
    seed: u64,
    replay: String,
    scratch: &Path,
    epoch: u64,
    run_end: u64,
    wall: Duration,
    history: &[Record],
    audit: &audit::Report,
    integrity: &Integrity,
    stop: &Stop,
    final_read: bool,
    has_sentinel: bool,
    processes: usize,
    linearizability: Option<clobber_check::CheckReport>,
) -> RunReport {
    let mut ops_by = BTreeMap::new();
    for r in history {
        *ops_by
            .entry(format!("{}/{}", r.op, r.outcome))
            .or_insert(0usize) += 1;
    }
    let run_s = run_end.saturating_sub(epoch) as f64 / 1e9;
    let workload_ops = history.iter().filter(|r| r.invoke_ns < run_end).count();
    let vs = &audit.violations;
    let status_of = |pred: &dyn Fn(&audit::Violation) -> bool| {
        let n = vs.iter().filter(|v| pred(v)).count();
        if n > 0 {
            (Status::Violation, format!("{n} violation(s)"))
        } else {
            (Status::Ok, String::new())
        }
    };
    let mut checks = Vec::new();
    let (s, _) = status_of(&|v| v.kind == audit::Kind::LostWrite && !v.final_state);
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
        !v.final_state && !matches!(v.kind, audit::Kind::LostWrite | audit::Kind::Damaged)
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

    let violated = checks.iter().any(|c| c.status == Status::Violation);
    let (verdict, reason) = if violated {
        (Verdict::Violation, None)
    } else if checks.iter().any(|c| c.status == Status::Unknown) {
        (
            Verdict::Inconclusive,
            Some("the linearizability check ran out of budget (unknown, never a pass)".to_owned()),
        )
    } else if let Stop::StoreUnresponsive(why) = stop {
        (
            Verdict::Inconclusive,
            Some(format!("the store stopped answering: {why}")),
        )
    } else if audit.observations == 0 {
        (
            Verdict::Inconclusive,
            Some("nothing was observed: no read succeeded".to_owned()),
        )
    } else {
        (Verdict::Pass, None)
    };
    let first = vs
        .first()
        .map(|v| v.detected_ns.saturating_sub(epoch) as f64 / 1e9);
    RunReport {
        scenario: scenario.name.clone(),
        scenario_file: config.scenario.display().to_string(),
        store: adapter.name.clone(),
        mode: mode.name().to_owned(),
        seed,
        replay,
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
        epoch_ns: epoch,
        verdict,
        reason,
        linearizability,
    }
}
