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

/// The `clobber` binary, when this process is one: store processes that clobber
/// starts in their own group run under `clobber __guard` (see [`guard_main`]).
static GUARD_EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

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

/// Run every store process that clobber starts in its own group (pre-flight,
/// final-state reads, integrity) under `exe __guard`, so that it dies with clobber
/// even when clobber is SIGKILLed. Called once by the `clobber` binary; a library
/// user that never calls it runs those processes directly.
pub fn enable_guard(exe: PathBuf) {
    let _ = GUARD_EXE.set(exe);
}

/// The exit code of `clobber __guard` when the store program cannot be started;
/// its standard error then starts with [`GUARD_START_FAILED`].
pub const GUARD_EXIT_START: i32 = 127;
/// See [`GUARD_EXIT_START`].
pub const GUARD_START_FAILED: &str = "clobber __guard: cannot start: ";
/// The last line of `clobber __guard`'s standard error when a signal ended the
/// store (then followed by the signal's number; the guard exits 128 + that number).
pub const GUARD_SIGNALED: &str = "clobber __guard: the store was killed by signal ";

/// Undo the guard's report of a signal: the store's own status and standard error.
fn unguard(mut out: Output) -> Output {
    use std::os::unix::process::ExitStatusExt;
    let Some(code) = out.status.code() else {
        return out;
    };
    let text = out.stderr.strip_suffix(b"\n").unwrap_or(&out.stderr);
    let start = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let last = String::from_utf8_lossy(&text[start..]).into_owned();
    if let Some(sig) = last
        .strip_prefix(GUARD_SIGNALED)
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|&sig| code == 128 + sig)
    {
        out.stderr.truncate(start);
        // A wait status whose low 7 bits are the signal: "killed by signal N".
        out.status = std::process::ExitStatus::from_raw(sig & 0x7f);
    }
    out
}

/// `clobber __guard PARENT -- ARGV`: run ARGV as a child (same process group,
/// same standard streams and environment) and end as it ended: its exit code, or,
/// if a signal killed it, exit 128 + N with [`GUARD_SIGNALED`]`N` as the last line
/// of standard error (which [`run_with_timeout`] turns back into "killed by N").
///
/// Why: a store process that clobber starts in its own group (pre-flight,
/// final-state reads, integrity) is killed on every exit path of clobber but one:
/// a SIGKILL of clobber itself. The guard asks the kernel for SIGTERM when its
/// parent dies (`PR_SET_PDEATHSIG`; the workspace has no `unsafe` for a `pre_exec`
/// hook in clobber), and its handler kills its whole group: the store and anything
/// the store started. A parent already gone when the guard starts means exit 137,
/// nothing started.
pub fn guard_main(parent: u32, argv: &[std::ffi::OsString]) -> i32 {
    crate::worker::die_with_parent(parent);
    let Some((program, args)) = argv.split_first() else {
        eprintln!("{GUARD_START_FAILED}no program");
        return GUARD_EXIT_START;
    };
    let mut child = match Command::new(program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{GUARD_START_FAILED}{e}");
            return GUARD_EXIT_START;
        }
    };
    match child.wait() {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => code,
                (None, Some(sig)) => {
                    // Say how the store ended, so that a crash stays a crash for
                    // clobber (re-raising the signal here would meet the runtime's
                    // own handlers): the last line of standard error, exit 128+N.
                    eprintln!("{GUARD_SIGNALED}{sig}");
                    128 + sig
                }
                (None, None) => 1,
            }
        }
        Err(e) => {
            eprintln!("clobber __guard: waiting for the store: {e}");
            1
        }
    }
}

/// `cmd` as an argument list for `clobber __guard`: same program, arguments,
/// environment changes and directory. (Standard streams are set by the caller.)
fn guarded(exe: &std::path::Path, cmd: &Command) -> Command {
    let mut g = Command::new(exe);
    g.arg("__guard")
        .arg(std::process::id().to_string())
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => g.env(k, v),
            None => g.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        g.current_dir(dir);
    }
    g
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
    let guard = grouping == Grouping::Own && GUARD_EXE.get().is_some();
    if let (true, Some(exe)) = (guard, GUARD_EXE.get()) {
        let mut g = guarded(exe, &cmd);
        // store_command pipes stdout and stderr, and stdin only when it is fed.
        g.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd = g;
    }
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
        Ok(Ok(out))
            if guard
                && out.status.code() == Some(GUARD_EXIT_START)
                && out.stderr.starts_with(GUARD_START_FAILED.as_bytes()) =>
        {
            let why = String::from_utf8_lossy(&out.stderr[GUARD_START_FAILED.len()..]);
            Err(RunError::Start(std::io::Error::other(
                why.trim().to_owned(),
            )))
        }
        Ok(Ok(out)) if guard => Ok(unguard(out)),
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(RunError::Wait(e)),
        Err(_) => Err(RunError::TimedOut(timeout)),
    }
}
