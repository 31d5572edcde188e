//! Pre-flight: set the store up in the scratch directory and make sure it answers
//! before any worker starts.
//!
//! Why: a store that cannot start, hangs, or does not say "not found" the way the
//! adapter expects would turn every operation into an `unknown` and the run into
//! noise; refusing up front (exit 5) names the command and what it did instead.
//!
//! Isolation is checked, not assumed: after `setup` the store must be empty (`list`,
//! when the adapter has it, shows nothing) and the probe key absent. An adapter
//! that does not point the store at the scratch directory would otherwise write
//! into the user's real store and read real secrets into the history; the run is
//! refused before any write.

use std::path::Path;
use std::time::Duration;

use clobber_check::history::{Op, Outcome};

use super::supervise::{Grouping, RunError, run_with_timeout, store_command};
use crate::adapter::Adapter;
use crate::error::{Error, Result};

/// Run one adapter command from clobber itself (its own registered process group),
/// with a timeout; errors name the command.
pub(crate) fn run_command(
    adapter: &Adapter,
    scratch: &Path,
    argv: &[String],
    timeout_ms: u64,
) -> std::result::Result<std::process::Output, String> {
    let mut cmd = store_command(argv, &[], &[], false);
    adapter.apply_env(&mut cmd, scratch);
    run_with_timeout(cmd, Grouping::Own, None, Duration::from_millis(timeout_ms)).map_err(|e| {
        match e {
            RunError::Start(e) => format!("cannot start `{}`: {e}", argv.join(" ")),
            RunError::Wait(e) => format!("waiting for `{}`: {e}", argv.join(" ")),
            RunError::TimedOut(_) => format!(
                "`{}` did not finish within {timeout_ms} ms (the store hangs); it was killed",
                argv.join(" ")
            ),
        }
    })
}

/// How a store process ended, with its standard error.
pub(crate) fn describe_exit(out: &std::process::Output) -> String {
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    match (out.status.code(), out.status.signal()) {
        (Some(c), _) => format!("exit {c}: {stderr}"),
        (None, Some(s)) => format!("crashed (killed by signal {s}): {stderr}"),
        _ => stderr,
    }
}

/// Run the adapter's `setup`, then probe a key that must be absent.
pub(crate) fn preflight(adapter: &Adapter, scratch: &Path, timeout_ms: u64) -> Result<()> {
    adapter.require_program()?;
    for argv in adapter.setup_argvs(scratch) {
        let out = run_command(adapter, scratch, &argv, timeout_ms).map_err(Error::setup)?;
        if !out.status.success() {
            return Err(Error::setup(format!(
                "store setup `{}` failed: {}",
                argv.join(" "),
                describe_exit(&out)
            )));
        }
    }
    if let Some(argv) = adapter.argv("list", None, None, scratch) {
        let out = run_command(adapter, scratch, &argv, timeout_ms).map_err(Error::setup)?;
        let done = crate::driver::classify(adapter, Op::List, &out);
        if done.outcome != Outcome::Ok {
            return Err(Error::setup(format!(
                "store `list` on the empty scratch store failed: `{}`: {}",
                argv.join(" "),
                describe_exit(&out)
            )));
        }
        let keys = done.keys.unwrap_or_default();
        if !keys.is_empty() {
            let shown: Vec<&str> = keys.iter().take(5).map(String::as_str).collect();
            return Err(Error::setup(format!(
                "the store is not isolated in the scratch directory: right after setup, `{}` \
                 lists {} key(s) ({}{}). Refusing to run: nothing was written. Point the \
                 store at {{scratch}} in the adapter's [env] (or its commands).",
                argv.join(" "),
                keys.len(),
                shown.join(", "),
                if keys.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            )));
        }
    }
    let key = "__clobber_probe__";
    let argv = adapter
        .argv("get", Some(key), None, scratch)
        .ok_or_else(|| Error::setup("adapter has no `get` command"))?;
    let out = run_command(adapter, scratch, &argv, timeout_ms).map_err(Error::setup)?;
    let done = crate::driver::classify(adapter, Op::Get, &out);
    if done.outcome == Outcome::Ok {
        return Err(Error::setup(format!(
            "the store is not isolated in the scratch directory: right after setup, `{}` \
             finds the probe key {key} (a store that is not empty). Refusing to run: nothing \
             was written. Point the store at {{scratch}} in the adapter's [env] (or its \
             commands).",
            argv.join(" ")
        )));
    }
    if done.outcome != Outcome::NotFound {
        return Err(Error::setup(format!(
            "store probe `{}` on an empty scratch store should report \"not found\" ({}), got {}",
            argv.join(" "),
            adapter.describe_not_found(),
            describe_exit(&out)
        )));
    }
    Ok(())
}
