//! The adapter's `teardown`, run on every exit path of a run.
//!
//! A store whose setup starts something (an agent, a server) would leak it if a run
//! ended early: a setup error, a violation that stops the run, a panic in the
//! harness, Ctrl-C. So the run arms the teardown before the first setup command and
//! whoever ends the run (the normal return, an error, the signal handler) disarms
//! and runs it, once.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Adapter;

static ARMED: Mutex<Option<(Adapter, PathBuf)>> = Mutex::new(None);

/// How long one teardown command may take before it is killed.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Remember `adapter`'s teardown for `scratch`, to run when the run ends.
pub fn arm_teardown(adapter: &Adapter, scratch: &Path) {
    if adapter.teardown.is_empty() {
        return;
    }
    if let Ok(mut a) = ARMED.lock() {
        *a = Some((adapter.clone(), scratch.to_path_buf()));
    }
}

/// Run the armed teardown, if any (at most once per arming). Failures are printed,
/// never fatal: the run's verdict does not depend on them.
pub fn teardown_armed() {
    let armed = ARMED.lock().ok().and_then(|mut a| a.take());
    if let Some((adapter, scratch)) = armed {
        for line in run_teardown(&adapter, &scratch) {
            eprintln!("clobber: teardown: {line}");
        }
    }
}

/// Run every teardown command in order; returns one line per command that failed.
#[must_use]
pub fn run_teardown(adapter: &Adapter, scratch: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for argv in adapter.teardown_argvs(scratch) {
        let child = adapter
            .command(&argv, scratch)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("cannot start `{}`: {e}", argv.join(" ")));
                continue;
            }
        };
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => break,
                Ok(Some(status)) => {
                    problems.push(format!("`{}` {status}", argv.join(" ")));
                    break;
                }
                Ok(None) if start.elapsed() < TEARDOWN_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    problems.push(format!(
                        "`{}` did not finish in {} s; killed",
                        argv.join(" "),
                        TEARDOWN_TIMEOUT.as_secs()
                    ));
                    break;
                }
            }
        }
    }
    problems
}
