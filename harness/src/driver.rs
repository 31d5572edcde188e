//! Performing one operation on the store: through its CLI (`cli` mode, one store
//! process per operation, through an [`Adapter`]) or through the reference store's
//! library (`lib` mode).
//!
//! Either way the result is classified into the history's outcomes: `ok`,
//! `not_found`, `fail` (the store said it did not happen), `unknown` (timeout,
//! crash, I/O error: it may have happened) and `damaged` (a read whose answer was
//! torn or undecryptable, with a `detail`: the history contract's damaged read,
//! which `clobber check` and the audit report as a violation, because a correct
//! store never shows a reader a damaged file). A mutation that finds the file
//! damaged did not happen: `fail`, its error starting with [`DAMAGED`].

use std::path::PathBuf;
use std::time::Duration;

use clobber_check::history::{Op, Outcome};
use clobber_store::{ErrorKind, KdfParams, KeySource, Protocol, Store, StoreOptions};
use serde::{Deserialize, Serialize};

use crate::adapter::{Adapter, Answer, ValueVia};
use crate::run::supervise::{Grouping, RunError, run_with_timeout, store_command};
use crate::scenario::Handle;

/// Prefix of the `error` of an operation that found the store file damaged.
pub const DAMAGED: &str = "damaged: ";

/// One operation to perform.
#[derive(Debug, Clone)]
pub struct Call {
    /// What to do.
    pub op: Op,
    /// On which key.
    pub key: Option<String>,
    /// With which value (`set`).
    pub value: Option<String>,
}

/// How it ended.
#[derive(Debug, Clone)]
pub struct Done {
    /// The outcome.
    pub outcome: Outcome,
    /// `get`/`ok`: the value read.
    pub value: Option<String>,
    /// `list`/`ok`: the keys.
    pub keys: Option<Vec<String>>,
    /// The store's message, for `fail` and `unknown`.
    pub error: Option<String>,
    /// What was wrong, for `damaged`.
    pub detail: Option<String>,
    /// The store program could not even be started: the run cannot go on.
    pub fatal: bool,
}

impl Done {
    fn ok() -> Self {
        Self {
            outcome: Outcome::Ok,
            value: None,
            keys: None,
            error: None,
            detail: None,
            fatal: false,
        }
    }

    /// The store file was damaged: a damaged read for `get`/`list`, a failed
    /// mutation otherwise.
    fn damaged(op: Op, what: String) -> Self {
        if matches!(op, Op::Get | Op::List) {
            Self {
                outcome: Outcome::Damaged,
                detail: Some(what),
                ..Self::ok()
            }
        } else {
            Self::with(Outcome::Fail, format!("{DAMAGED}{what}"))
        }
    }

    fn with(outcome: Outcome, error: impl Into<String>) -> Self {
        Self {
            outcome,
            error: Some(error.into()),
            ..Self::ok()
        }
    }
}

/// What a worker needs to build its driver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DriverSpec {
    /// Spawn the store's CLI per operation.
    Cli {
        /// The adapter.
        adapter: Box<Adapter>,
        /// The run's scratch directory.
        scratch: PathBuf,
        /// Kill the store process after this long; the outcome is `unknown`.
        op_timeout_ms: u64,
        /// Run every store command under the perturber (`clobber run --perturb`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        perturb: Option<Box<crate::perturbation::PerturbSpec>>,
    },
    /// Call the reference store library.
    Lib {
        /// The store file.
        path: PathBuf,
        /// Its passphrase.
        passphrase: String,
        /// The protocol's name.
        protocol: String,
        /// Lock wait in milliseconds.
        lock_wait_ms: u64,
        /// Open per operation or once.
        handle: Handle,
    },
}

/// Performs operations.
#[derive(Debug)]
pub enum Driver {
    /// `cli` mode.
    Cli {
        /// The adapter.
        adapter: Box<Adapter>,
        /// The scratch directory.
        scratch: PathBuf,
        /// Per-operation timeout.
        timeout: Duration,
        /// Which process group its store processes run in.
        grouping: Grouping,
        /// The perturber's spec, and how many store commands it has wrapped.
        perturb: Option<(crate::perturbation::PerturbSpec, u64)>,
    },
    /// `lib` mode.
    Lib {
        /// How to open the store.
        options: Box<StoreOptions>,
        /// Keep one handle?
        handle: Handle,
        /// The kept handle.
        store: Option<Box<Store>>,
    },
}

impl Driver {
    /// Build a driver from its spec, for use in clobber itself: each store process
    /// runs in its own registered process group (killed on Ctrl-C and SIGTERM).
    ///
    /// # Errors
    /// An unknown protocol name.
    pub fn new(spec: DriverSpec) -> crate::Result<Self> {
        Self::with_grouping(spec, Grouping::Own)
    }

    /// Build a driver for a worker process: its store processes stay in the
    /// worker's process group, so killing the worker's group kills them too.
    ///
    /// # Errors
    /// An unknown protocol name.
    pub fn in_worker(spec: DriverSpec) -> crate::Result<Self> {
        Self::with_grouping(spec, Grouping::Inherit)
    }

    fn with_grouping(spec: DriverSpec, grouping: Grouping) -> crate::Result<Self> {
        Ok(match spec {
            DriverSpec::Cli {
                adapter,
                scratch,
                op_timeout_ms,
                perturb,
            } => Driver::Cli {
                perturb: perturb.map(|p| (*p, 0)),
                adapter,
                scratch,
                timeout: Duration::from_millis(op_timeout_ms),
                grouping,
            },
            DriverSpec::Lib {
                path,
                passphrase,
                protocol,
                lock_wait_ms,
                handle,
            } => {
                let protocol: Protocol = protocol
                    .parse()
                    .map_err(|e| crate::Error::usage(format!("{e}")))?;
                let options = StoreOptions::new(path, KeySource::passphrase(passphrase))
                    .new_store_params(KdfParams::CHEAP)
                    .protocol(protocol)
                    .lock_wait(Duration::from_millis(lock_wait_ms));
                Driver::Lib {
                    options: Box::new(options),
                    handle,
                    store: None,
                }
            }
        })
    }

    /// Perform `call`.
    pub fn exec(&mut self, call: &Call) -> Done {
        match self {
            Driver::Cli {
                adapter,
                scratch,
                timeout,
                grouping,
                perturb,
            } => {
                let wrap = perturb.as_mut().map(|(spec, n)| {
                    *n += 1;
                    (&*spec, *n)
                });
                exec_cli(adapter, scratch, *timeout, *grouping, wrap, call)
            }
            Driver::Lib {
                options,
                handle,
                store,
            } => {
                if store.is_none() || *handle == Handle::PerOp {
                    match options.as_ref().clone().open() {
                        Ok(s) => *store = Some(Box::new(s)),
                        Err(e) => return lib_error(call.op, &e),
                    }
                }
                let s = store.as_mut().expect("opened above");
                let done = exec_lib(s, call);
                if *handle == Handle::PerOp {
                    *store = None;
                }
                done
            }
        }
    }
}

fn exec_lib(store: &mut Store, call: &Call) -> Done {
    let key = call.key.as_deref().unwrap_or("");
    let result = match call.op {
        Op::Set => store
            .set(key, call.value.as_deref().unwrap_or(""))
            .map(|()| Done::ok()),
        Op::Get => store.get(key).map(|v| match v {
            Some(v) => Done {
                value: Some(v.as_str().to_owned()),
                ..Done::ok()
            },
            None => Done::with(Outcome::NotFound, "secret not found"),
        }),
        Op::Delete => store.delete(key).map(|found| {
            if found {
                Done::ok()
            } else {
                Done::with(Outcome::NotFound, "secret not found")
            }
        }),
        Op::List => store.list().map(|keys| Done {
            keys: Some(keys),
            ..Done::ok()
        }),
        Op::Clear => store.clear().map(|_| Done::ok()),
    };
    result.unwrap_or_else(|e| lib_error(call.op, &e))
}

fn lib_error(op: Op, e: &clobber_store::Error) -> Done {
    let damaged = matches!(
        e.kind(),
        ErrorKind::Tampered
            | ErrorKind::Truncated { .. }
            | ErrorKind::UnknownVersion { .. }
            | ErrorKind::Corrupt { .. }
    );
    if damaged {
        Done::damaged(op, e.to_string())
    } else if e.is_definite() {
        Done::with(Outcome::Fail, e.to_string())
    } else {
        Done::with(Outcome::Unknown, e.to_string())
    }
}

fn exec_cli(
    adapter: &Adapter,
    scratch: &std::path::Path,
    timeout: Duration,
    grouping: Grouping,
    perturb: Option<(&crate::perturbation::PerturbSpec, u64)>,
    call: &Call,
) -> Done {
    let by_arg = adapter.value == ValueVia::Argument;
    let Some(argv) = adapter.argv(
        call.op.name(),
        call.key.as_deref(),
        if by_arg { call.value.as_deref() } else { None },
        scratch,
    ) else {
        return Done::with(
            Outcome::Fail,
            format!("adapter {} has no `{}` command", adapter.name, call.op),
        );
    };
    let feeds_stdin = call.op == Op::Set && !by_arg;
    // Under --perturb: through the tracer, or directly (logged as untraced).
    let mut untraced = None;
    let argv = match perturb {
        Some((spec, n)) => match std::env::current_exe() {
            Ok(exe) => match spec.prepare(&exe, n, &argv) {
                crate::perturbation::Wrapped::Traced(wrapped) => wrapped,
                crate::perturbation::Wrapped::Direct => {
                    untraced = Some((spec, n, clobber_perturb::trace::monotonic_ns()));
                    argv
                }
            },
            Err(e) => {
                return Done {
                    fatal: true,
                    ..Done::with(
                        Outcome::Fail,
                        format!("cannot find clobber for --perturb: {e}"),
                    )
                };
            }
        },
        None => argv,
    };
    let mut cmd = store_command(&argv, &[], &[], feeds_stdin);
    adapter.apply_env(&mut cmd, scratch);
    let line = feeds_stdin.then(|| {
        let mut line = call.value.clone().unwrap_or_default();
        line.push('\n');
        line
    });
    let result = run_with_timeout(cmd, grouping, line.as_deref().map(str::as_bytes), timeout);
    if let Some((spec, n, start_ns)) = untraced
        && !matches!(result, Err(RunError::Start(_)))
    {
        // Not fatal: the operation's outcome stands; the report's count of
        // commands run would be one short, so say so.
        if let Err(e) = spec.log_untraced(n, start_ns, result.as_ref().ok().map(|o| &o.status)) {
            eprintln!("clobber: {e}");
        }
    }
    let output = match result {
        Ok(out) => out,
        Err(RunError::Start(e)) => {
            return Done {
                fatal: true,
                ..Done::with(Outcome::Fail, format!("cannot start {:?}: {e}", argv[0]))
            };
        }
        Err(RunError::Wait(e)) => {
            return Done::with(Outcome::Unknown, format!("waiting for the store: {e}"));
        }
        Err(RunError::TimedOut(_)) => {
            return Done::with(
                Outcome::Unknown,
                format!("timed out after {} ms; killed", timeout.as_millis()),
            );
        }
    };
    classify(adapter, call.op, &output)
}

/// Turn a store process's exit status and output into an outcome, as the adapter's
/// rules say ([`Adapter::answer`]).
#[must_use]
pub fn classify(adapter: &Adapter, op: Op, output: &std::process::Output) -> Done {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(code) = output.status.code() else {
        use std::os::unix::process::ExitStatusExt;
        let signal = output.status.signal().unwrap_or(0);
        return Done::with(
            Outcome::Unknown,
            format!("store killed by signal {signal}: {}", stderr.trim()),
        );
    };
    let says = || {
        let text = if stderr.trim().is_empty() {
            stdout.trim()
        } else {
            stderr.trim()
        };
        format!("exit {code}: {text}")
    };
    match adapter.answer(op, code, &stdout, &stderr) {
        Answer::Ok => match op {
            Op::Get => {
                let mut v: &str = &stdout;
                if let Some(s) = v.strip_suffix('\n') {
                    v = s.strip_suffix('\r').unwrap_or(s);
                }
                Done {
                    value: Some(v.to_owned()),
                    ..Done::ok()
                }
            }
            Op::List => Done {
                keys: Some(adapter.list_keys(&stdout)),
                ..Done::ok()
            },
            _ => Done::ok(),
        },
        Answer::NotFound => Done::with(Outcome::NotFound, stderr.trim()),
        Answer::Damaged => Done::damaged(op, says()),
        Answer::Fail => Done::with(Outcome::Fail, says()),
        Answer::Unknown => Done::with(Outcome::Unknown, says()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{ExitStatus, Output};

    use super::*;

    fn out(code: Option<i32>, signal: i32, stdout: &str, stderr: &str) -> Output {
        let raw = code.map_or(signal, |c| c << 8);
        Output {
            status: ExitStatus::from_raw(raw),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    fn reference() -> Adapter {
        Adapter::resolve("reference").unwrap()
    }

    #[test]
    fn get_ok_trims_exactly_one_newline() {
        let d = classify(&reference(), Op::Get, &out(Some(0), 0, "v1\n\n", ""));
        assert_eq!(d.outcome, Outcome::Ok);
        assert_eq!(d.value.as_deref(), Some("v1\n"));
        let d = classify(&reference(), Op::List, &out(Some(0), 0, "a\nb\n", ""));
        assert_eq!(d.keys, Some(vec!["a".to_owned(), "b".to_owned()]));
    }

    #[test]
    fn not_found_needs_the_exit_code_and_the_stderr_text() {
        let nf = out(Some(1), 0, "", "clobber-store: secret not found: k");
        assert_eq!(
            classify(&reference(), Op::Get, &nf).outcome,
            Outcome::NotFound
        );
        assert_eq!(
            classify(&reference(), Op::Delete, &nf).outcome,
            Outcome::NotFound
        );
        // The same exit code without the text is not "not found".
        let other = out(Some(1), 0, "", "something else");
        assert_eq!(
            classify(&reference(), Op::Get, &other).outcome,
            Outcome::Unknown
        );
        // A set cannot end "not found".
        assert_eq!(
            classify(&reference(), Op::Set, &nf).outcome,
            Outcome::Unknown
        );
    }

    #[test]
    fn damaged_fail_unknown_and_signals_are_told_apart() {
        let damaged = classify(&reference(), Op::Get, &out(Some(5), 0, "", "truncated"));
        assert_eq!(damaged.outcome, Outcome::Damaged);
        assert_eq!(damaged.detail.as_deref(), Some("exit 5: truncated"));
        let set = classify(&reference(), Op::Set, &out(Some(5), 0, "", "truncated"));
        assert_eq!(
            set.outcome,
            Outcome::Fail,
            "a write that finds damage did not happen"
        );
        assert!(set.error.unwrap().starts_with(DAMAGED));
        let busy = classify(&reference(), Op::Set, &out(Some(3), 0, "", "lock busy"));
        assert_eq!(busy.outcome, Outcome::Fail);
        assert!(!busy.error.unwrap().starts_with(DAMAGED));
        let io = classify(&reference(), Op::Set, &out(Some(6), 0, "", "I/O"));
        assert_eq!(io.outcome, Outcome::Unknown);
        let killed = classify(&reference(), Op::Set, &out(None, 9, "", ""));
        assert_eq!(killed.outcome, Outcome::Unknown);
        assert!(killed.error.unwrap().contains("signal 9"));
    }
}
