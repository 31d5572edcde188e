//! A worker process: runs one role's loop against the store and writes its own
//! history file.
//!
//! `clobber run` starts every worker as `clobber __worker SPEC` in its own process
//! group. The worker waits for `go <epoch_ns>` on standard input (so every worker
//! starts on the same instant), then loops. Standard input reaching end-of-file —
//! the parent closed it, or died — means "stop after the current operation".

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use clobber_check::history::{Record, write_record};
use serde::{Deserialize, Serialize};

use crate::clock::now_ns;
use crate::driver::{Call, Driver, DriverSpec};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::scenario::{Role, Step};
use crate::template::{Vars, render};

/// Everything a worker needs (written as JSON by the parent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// Its process id in the history.
    pub process: u64,
    /// Its 1-based number within the role.
    pub index: u32,
    /// The role it runs.
    pub role: Role,
    /// The run's seed.
    pub seed: u64,
    /// How it drives the store.
    pub driver: DriverSpec,
    /// Where it writes its history.
    pub history: PathBuf,
    /// Give up after this many `unknown` outcomes in a row (the store hangs or
    /// crashes on every call).
    pub max_consecutive_unknown: u32,
    /// The pid of the `clobber run` that started it: the worker dies with it.
    #[serde(default)]
    pub parent: u32,
}

/// Exit code of a worker whose store stopped answering.
pub const EXIT_STORE_UNRESPONSIVE: i32 = 4;
/// Exit code of a worker that could not start the store program.
pub const EXIT_STORE_MISSING: i32 = 5;
/// Exit code of a worker that could not write its history (or its log) in the
/// scratch directory: the disk is full, or the directory is gone.
pub const EXIT_IO: i32 = 6;

/// Write a line to the worker's log (its standard error, a file in the scratch
/// directory), never panicking: on a full disk the exit code says it all.
pub fn note(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Run a worker from its spec file; returns the process exit code.
///
/// # Errors
/// Unreadable spec, history I/O errors.
pub fn worker_main(spec_path: &Path) -> Result<i32> {
    let text = std::fs::read_to_string(spec_path)
        .map_err(|e| Error::io("read worker spec", spec_path, e))?;
    let spec: WorkerSpec = serde_json::from_str(&text)
        .map_err(|e| Error::config(spec_path, Some(e.line()), e.to_string()))?;
    die_with_parent(spec.parent);
    let mut driver = Driver::in_worker(spec.driver.clone())?;

    let mut stdin = std::io::stdin().lock();
    let mut go = String::new();
    if stdin.read_line(&mut go).unwrap_or(0) == 0 {
        return Ok(0); // the parent gave up before the start
    }
    let epoch: u64 = go
        .trim()
        .strip_prefix("go ")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Error::usage(format!("worker expected `go <epoch_ns>`, got {go:?}")))?;
    drop(stdin);
    let (stop_tx, stop) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = stop_tx.send(());
    });

    let file =
        create_private(&spec.history).map_err(|e| Error::io("create history", &spec.history, e))?;
    let mut out = BufWriter::new(file);
    let mut rng = Rng::for_worker(spec.seed, spec.process);
    let role = &spec.role;
    let start = epoch + role.start_ms * 1_000_000;
    if !sleep_until(&stop, start) {
        return Ok(0);
    }
    let deadline = role.duration_ms.map(|d| start + d * 1_000_000);
    let mut seq = 0u64;
    let mut iter = 0u64;
    let mut unknown_in_a_row = 0u32;
    'outer: loop {
        if role.iterations.is_some_and(|n| iter >= n) || deadline.is_some_and(|d| now_ns() >= d) {
            break;
        }
        iter += 1;
        for step in &role.steps {
            if matches!(
                stop.try_recv(),
                Ok(()) | Err(mpsc::TryRecvError::Disconnected)
            ) {
                break 'outer;
            }
            match step {
                Step::Pause { ms, jitter_ms } => {
                    let ns = (ms + rng.up_to(*jitter_ms)) * 1_000_000;
                    if !sleep_until(&stop, now_ns() + ns) {
                        break 'outer;
                    }
                }
                Step::Op {
                    op,
                    key,
                    value,
                    pad_to,
                } => {
                    let mut tag = String::new();
                    if value.is_some() {
                        seq += 1;
                        tag = format!("p{}-{seq}", spec.process);
                    }
                    let vars = Vars {
                        process: spec.process,
                        index: spec.index,
                        role: &role.name,
                        iter,
                        tag: Some(&tag),
                    };
                    let key = key.as_ref().map(|k| render(k, &vars, &mut rng));
                    let value = value.as_ref().map(|v| {
                        let mut v = render(v, &vars, &mut rng);
                        while v.len() < *pad_to {
                            v.push('.');
                        }
                        v
                    });
                    let call = Call {
                        op: *op,
                        key,
                        value,
                    };
                    let invoke_ns = now_ns();
                    let done = driver.exec(&call);
                    let complete_ns = now_ns();
                    let outcome = done.outcome;
                    let record = Record {
                        process: spec.process,
                        op: call.op,
                        key: call.key,
                        value: if call.op == clobber_check::history::Op::Set {
                            call.value
                        } else {
                            done.value
                        },
                        keys: done.keys,
                        outcome,
                        invoke_ns,
                        complete_ns: (outcome != clobber_check::history::Outcome::Unknown)
                            .then_some(complete_ns),
                        error: done.error.clone(),
                        detail: done.detail,
                    };
                    write_record(&mut out, &record)
                        .and_then(|()| out.flush())
                        .map_err(|e| Error::io("write history", &spec.history, e))?;
                    if done.fatal {
                        note(&done.error.unwrap_or_default());
                        return Ok(EXIT_STORE_MISSING);
                    }
                    if outcome == clobber_check::history::Outcome::Unknown {
                        unknown_in_a_row += 1;
                        if unknown_in_a_row >= spec.max_consecutive_unknown {
                            note(&format!(
                                "the store gave no answer {unknown_in_a_row} times in a row; last: {}",
                                done.error.unwrap_or_default()
                            ));
                            return Ok(EXIT_STORE_UNRESPONSIVE);
                        }
                    } else {
                        unknown_in_a_row = 0;
                    }
                }
            }
        }
    }
    Ok(0)
}

/// Make sure nothing of this worker outlives `clobber run`, even a SIGKILLed one.
///
/// The kernel sends SIGTERM when the parent dies (`PR_SET_PDEATHSIG`, set here in
/// the worker itself: the workspace has no `unsafe` for a `pre_exec` hook); the
/// handler kills the worker's whole process group — the worker and every store
/// process it started, which stay in its group. A parent that died before the
/// request took effect is caught by comparing `getppid` with the expected parent.
pub(crate) fn die_with_parent(parent: u32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::{getpgrp, getppid};
    let _ = ctrlc::set_handler(|| {
        let _ = killpg(getpgrp(), Signal::SIGKILL);
        std::process::exit(137);
    });
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    let ppid = u32::try_from(getppid().as_raw()).unwrap_or(0);
    if parent != 0 && ppid != parent {
        // The parent is already gone: nothing of the run may start.
        std::process::exit(137);
    }
}

/// Create (or truncate) `path` readable and writable by its owner only (0600): a
/// history holds the values the store returned.
///
/// # Errors
/// The OS error.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing regular file keeps its mode through `open`: tighten it (never a
    // device such as /dev/stdout).
    if f.metadata()?.is_file() {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Sleep until the monotonic instant `t_ns`; false if told to stop first.
fn sleep_until(stop: &mpsc::Receiver<()>, t_ns: u64) -> bool {
    loop {
        let now = now_ns();
        if now >= t_ns {
            return !matches!(
                stop.try_recv(),
                Ok(()) | Err(mpsc::TryRecvError::Disconnected)
            );
        }
        match stop.recv_timeout(Duration::from_nanos(t_ns - now)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return false,
        }
    }
}
