//! One traced command, as a JSON line: what a harness reads back to report what was
//! perturbed, and to say which delays preceded a failure.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::calls::CallSet;
use crate::error::{Error, Result};
use crate::schedule::{Plan, Schedule};
use crate::trace::{self, Counters, Delay, Status, Traced};

/// What one traced command should do, and where its record goes.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The run's schedule.
    pub schedule: Schedule,
    /// The run's seed.
    pub seed: u64,
    /// This command's number in the run (with `seed`, it picks the plan).
    pub invocation: u64,
    /// The calls to stop.
    pub calls: CallSet,
    /// A label for the record (a harness puts its process id here).
    pub tag: Option<String>,
    /// Append the record, as one JSON line, to this file.
    pub log: Option<PathBuf>,
}

/// The JSON line of one traced command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The invocation's tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The command's number in the run.
    pub invocation: u64,
    /// The run's schedule, as text.
    pub schedule: String,
    /// This command's plan, in words.
    pub plan: String,
    /// The command was run directly, not traced (`pct` left it alone): its
    /// counters are empty because nothing was stopped, not because nothing ran.
    #[serde(default, skip_serializing_if = "is_false")]
    pub untraced: bool,
    /// When the command started and ended (`CLOCK_MONOTONIC`, ns).
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
    /// How it ended, its counters and its delays.
    #[serde(flatten)]
    pub traced: Traced,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Record {
    /// The record of a command that was run directly, untraced.
    #[must_use]
    pub fn untraced(inv: &Invocation, start_ns: u64, end_ns: u64, status: Status) -> Record {
        Record {
            tag: inv.tag.clone(),
            invocation: inv.invocation,
            schedule: inv.schedule.to_string(),
            plan: Plan::Untraced.to_string(),
            untraced: true,
            start_ns,
            end_ns,
            traced: Traced {
                status,
                counters: Counters::default(),
                delays: Vec::new(),
            },
        }
    }

    /// The counters.
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.traced.counters
    }

    /// The listed delays.
    #[must_use]
    pub fn delays(&self) -> &[Delay] {
        &self.traced.delays
    }
}

/// Trace `program args` through the trampoline `trampoline_prefix` (a program and
/// the arguments that make it call [`crate::trampoline::exec`]; the calls, `--` and
/// the program are appended), per `inv`; append the record to `inv.log`.
///
/// The seccomp filter stops the calls of `inv.calls` that the plan needs
/// ([`Plan::calls`]). A command the plan leaves alone ([`Plan::Untraced`]) is run
/// directly, without tracer or trampoline, and logged as untraced (killing this
/// process then does not kill it: put both in one process group to be sure).
///
/// Standard streams and environment are inherited.
///
/// # Errors
/// As [`trace::run`]; [`Error::Spawn`] if an untraced program cannot be started;
/// [`Error::Log`] if the record cannot be appended.
pub fn trace_and_log(
    trampoline_prefix: &[OsString],
    program: &OsString,
    args: &[OsString],
    inv: &Invocation,
) -> Result<Record> {
    let (exe, prefix) = trampoline_prefix
        .split_first()
        .ok_or_else(|| Error::invalid("trampoline", "", "no program"))?;
    let plan = inv.schedule.plan(inv.seed, inv.invocation);
    let start_ns = trace::monotonic_ns();
    if !plan.is_traced() {
        let status = Command::new(program)
            .args(args)
            .status()
            .map_err(|source| Error::Spawn {
                program: program.to_string_lossy().into_owned(),
                source,
            })?;
        let status = match (status.code(), status.signal()) {
            (Some(code), _) => Status::Exited(code),
            (None, sig) => Status::Signaled(sig.unwrap_or(0)),
        };
        let record = Record::untraced(inv, start_ns, trace::monotonic_ns(), status);
        if let Some(log) = &inv.log {
            append(log, &record)?;
        }
        return Ok(record);
    }
    let mut cmd = Command::new(exe);
    cmd.args(prefix)
        .arg("--calls")
        .arg(plan.calls(&inv.calls).to_string())
        .arg("--")
        .arg(program)
        .args(args);
    let traced = trace::run(cmd, plan)?;
    let record = Record {
        tag: inv.tag.clone(),
        invocation: inv.invocation,
        schedule: inv.schedule.to_string(),
        plan: plan.to_string(),
        untraced: false,
        start_ns,
        end_ns: trace::monotonic_ns(),
        traced,
    };
    if let Some(log) = &inv.log {
        append(log, &record)?;
    }
    Ok(record)
}

/// Append `record` as one JSON line (one `write`, in append mode, so concurrent
/// writers' lines never interleave).
///
/// # Errors
/// [`Error::Log`] if the file cannot be opened or written.
pub fn append(path: &Path, record: &Record) -> Result<()> {
    let mut line = serde_json::to_vec(record).expect("records serialize");
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&line))
        .map_err(|source| Error::Log {
            path: path.to_path_buf(),
            source,
        })
}

/// Read every record of a log; lines that do not parse are skipped (a command
/// killed mid-write leaves at most its own line torn).
///
/// # Errors
/// [`Error::Log`] if the file cannot be read (a missing file is an empty log).
pub fn read_log(path: &Path) -> Result<Vec<Record>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(Error::Log {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// End this process the way the traced program ended: its exit code, or its
/// signal (re-raised; if that signal is ignored here, exit 128 + signal).
pub fn exit_like(status: Status) -> ! {
    match status {
        Status::Exited(code) => std::process::exit(code),
        Status::Signaled(sig) => {
            if let Ok(s) = nix::sys::signal::Signal::try_from(sig) {
                let _ = nix::sys::signal::raise(s);
            }
            std::process::exit(128 + sig)
        }
    }
}
