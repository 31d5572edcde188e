//! Supervising processes: every process clobber starts, and how it is stopped.
//!
//! Why one place: a verdict is only as good as the guarantee that nothing of the run
//! outlives it. Workers and clobber-side store processes each get their own process
//! group, registered here, so one `killpg` per group reaches every descendant; the
//! Ctrl-C / SIGTERM handler and every failure path kill the registered groups.
//!
//! Every store process, whoever starts it, is built by [`store_command`] and run by
//! [`run_with_timeout`]: that pair is the single spawn point to wrap when a store
//! process must run under something else (a perturber, a fault injector).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Process groups to kill on Ctrl-C / SIGTERM.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// The scratch directory to mention when interrupted.
static SCRATCH: Mutex<Option<PathBuf>> = Mutex::new(None);
/// Set by the Ctrl-C / SIGTERM handler before it kills anything.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// If the signal handler is tearing the run down, let it finish (it exits the
/// process with 130) rather than report the workers it killed as failures.
pub(crate) fn yield_to_interrupt() {
    while INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Remember the scratch directory, to name it if the run is interrupted.
pub(crate) fn set_scratch(dir: &std::path::Path) {
    if let Ok(mut s) = SCRATCH.lock() {
        *s = Some(dir.to_path_buf());
    }
}

/// Register the process group led by `pid` for killing.
pub(crate) fn register_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid)
        && let Ok(mut g) = GROUPS.lock()
    {
        g.push(pid);
    }
}

/// Forget the process group led by `pid` (its leader has been reaped).
pub(crate) fn unregister_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid)
        && let Ok(mut g) = GROUPS.lock()
    {
        g.retain(|&p| p != pid);
    }
}

/// The exit code of child `pid` if it has exited, *without* reaping it: an
/// unreaped leader keeps its process-group id reserved, so a later `killpg` can
/// never hit an unrelated group that reused the number (`pid_max` can be small).
pub(crate) fn exited_unreaped(pid: u32) -> Option<i32> {
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
pub(crate) fn kill_all_groups() -> usize {
    let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for &g in &groups {
        let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
    }
    groups.len()
}

/// On Ctrl-C or SIGTERM: kill every registered group, name the scratch directory,
/// exit 130.
pub(crate) fn install_signal_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::SeqCst);
            let n = kill_all_groups();
            crate::nemesis::detach_mount();
            crate::adapter::lifecycle::teardown_armed();
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

/// Start `clobber __worker SPEC` in its own (registered) process group, with its
/// standard input piped (the start signal and, when closed, the stop signal).
pub(crate) fn spawn_worker(
    exe: &std::path::Path,
    spec: &std::path::Path,
    stderr: std::fs::File,
    env_remove: &[String],
) -> std::io::Result<Child> {
    let mut cmd = Command::new(exe);
    for k in env_remove {
        cmd.env_remove(k);
    }
    let child = cmd
        .arg("__worker")
        .arg(spec)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()?;
    register_group(child.id());
    Ok(child)
}

/// The `Command` for one store operation: `argv` with the adapter's environment
/// (`env` set, `env_remove` removed), output captured, standard input piped only
/// when the operation feeds it.
///
/// This is the one place a store process is described; wrap it to run store
/// processes under another program.
#[must_use]
pub fn store_command(
    argv: &[String],
    env: &[(String, String)],
    env_remove: &[String],
    feeds_stdin: bool,
) -> Command {
    let mut cmd = Command::new(&argv[0]);
    for k in env_remove {
        cmd.env_remove(k);
    }
    cmd.args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if feeds_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Which process group a store process runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// Its own group, registered for killing: for store processes clobber itself
    /// starts (pre-flight, integrity). A timeout kills the whole group.
    Own,
    /// The caller's group: for store processes a worker starts, so that killing the
    /// worker's group kills them too. A timeout kills the process itself.
    Inherit,
}

/// Why a store process gave no output.
#[derive(Debug)]
pub enum RunError {
    /// It could not be started.
    Start(std::io::Error),
    /// Waiting for it failed.
    Wait(std::io::Error),
    /// It did not finish in time and was killed.
    TimedOut(Duration),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Start(e) => write!(f, "cannot start: {e}"),
            RunError::Wait(e) => write!(f, "waiting for it: {e}"),
            RunError::TimedOut(t) => write!(f, "timed out after {} ms; killed", t.as_millis()),
        }
    }
}

impl std::error::Error for RunError {}

/// Run `cmd` to completion, feeding it `stdin` (if piped), killing it after
/// `timeout`.
///
/// # Errors
/// [`RunError`]: not started, wait failed, or timed out (and killed).
pub fn run_with_timeout(
    mut cmd: Command,
    grouping: Grouping,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, RunError> {
    if grouping == Grouping::Own {
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(RunError::Start)?;
    if grouping == Grouping::Own {
        register_group(child.id());
    }
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A store that exits without reading its input is judged by its exit status.
        let _ = pipe.write_all(text);
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let result = rx.recv_timeout(timeout);
    if result.is_err()
        && let Ok(raw) = i32::try_from(pid)
    {
        // Still running (not reaped), so the id is still ours.
        match grouping {
            Grouping::Own => {
                let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
            }
            Grouping::Inherit => {
                // Its own children may hold the output pipes open; they share the
                // worker's process group, which `clobber run` kills at the end.
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
        let _ = rx.recv_timeout(Duration::from_millis(500));
    }
    if grouping == Grouping::Own {
        unregister_group(pid);
    }
    match result {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(RunError::Wait(e)),
        Err(_) => Err(RunError::TimedOut(timeout)),
    }
}
