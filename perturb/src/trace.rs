//! The tracer: run a command under `ptrace` and delay its calls per a [`Plan`].
//!
//! The tracer spawns a trampoline (see [`crate::trampoline`]) and waits for its
//! first stop, then sets `PTRACE_O_TRACESECCOMP` (stop where the filter says
//! `SECCOMP_RET_TRACE`), `PTRACE_O_TRACECLONE | TRACEFORK | TRACEVFORK` (every thread
//! and child is traced too: Go, Node and Python start threads), `PTRACE_O_TRACEEXEC`
//! and `PTRACE_O_EXITKILL` (if the tracer dies, every tracee is killed: nothing is
//! left behind, whoever kills the tracer).
//!
//! At each seccomp stop it reads the call and its arguments, asks the plan for a
//! delay, and resumes the thread when the delay is over; other threads keep being
//! served meanwhile. Other stops are handled as `ptrace(2)` prescribes: a new
//! thread's initial `SIGSTOP` is swallowed, a group-stop (no `siginfo`) is resumed
//! without a signal, and a signal-delivery stop is resumed *with* its signal, so the
//! program sees every signal it was sent.
//!
//! [`run`] waits with `waitpid(-1)`: call it from a process whose only children are
//! the ones it traces (the `clobber-perturb` binary and `clobber __perturb` are such
//! processes).

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::calls::Call;
use crate::error::{Error, Result};
use crate::lifecycle::{Lifecycle, ProcFds};
use crate::rng::Rng;
use crate::schedule::Plan;
use crate::trampoline::{EXIT_EXEC, EXIT_NOT_PERMITTED, EXIT_SECCOMP};

/// How many delays a [`Traced`] lists; the counters count them all.
pub const MAX_LISTED_DELAYS: usize = 256;

/// How the traced program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

/// One call's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCount {
    /// Times a thread was stopped at this call.
    pub stopped: u64,
    /// Times it was then delayed (a non-zero delay).
    pub delayed: u64,
    /// Total delay, nanoseconds.
    pub delay_ns: u64,
}

/// The perturber's own counters for one command (after its `exec`; the
/// trampoline's calls are not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Per call name.
    pub calls: BTreeMap<String, CallCount>,
    /// Threads and processes traced (the first one included).
    pub tasks: u64,
    /// Signals passed on to the program.
    pub signals: u64,
}

impl Counters {
    /// Sum over every call.
    #[must_use]
    pub fn total(&self) -> CallCount {
        self.calls
            .values()
            .fold(CallCount::default(), |a, c| CallCount {
                stopped: a.stopped + c.stopped,
                delayed: a.delayed + c.delayed,
                delay_ns: a.delay_ns + c.delay_ns,
            })
    }

    /// Add another command's counters.
    pub fn add(&mut self, other: &Counters) {
        for (k, c) in &other.calls {
            let e = self.calls.entry(k.clone()).or_default();
            e.stopped += c.stopped;
            e.delayed += c.delayed;
            e.delay_ns += c.delay_ns;
        }
        self.tasks += other.tasks;
        self.signals += other.signals;
    }
}

/// One delayed call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delay {
    /// The call.
    pub call: String,
    /// The `pct` point it matched (none for `noise`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<String>,
    /// The thread.
    pub tid: i32,
    /// When it was stopped: `CLOCK_MONOTONIC`, nanoseconds (comparable across
    /// processes of one machine).
    pub at_ns: u64,
    /// How long it was held, nanoseconds.
    pub delay_ns: u64,
}

/// The result of a traced command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traced {
    /// How the program ended.
    pub status: Status,
    /// What was stopped and delayed.
    pub counters: Counters,
    /// The first [`MAX_LISTED_DELAYS`] delays, in order.
    pub delays: Vec<Delay>,
}

/// `CLOCK_MONOTONIC` in nanoseconds.
#[must_use]
pub fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

/// Spawn `trampoline` (a command that ends in [`crate::trampoline::exec`]), trace it
/// and everything it starts, delay per `plan`, and return how it ended.
///
/// When the program's first process exits, any process it left behind is killed
/// (and reaped): nothing outlives the command.
///
/// # Errors
/// [`Error::NotPermitted`] if tracing is not allowed; [`Error::Seccomp`],
/// [`Error::Exec`], [`Error::Spawn`] from the trampoline; [`Error::Trace`] if a
/// wait fails unexpectedly.
pub fn run(mut trampoline: Command, plan: Plan) -> Result<Traced> {
    let program = trampoline.get_program().to_string_lossy().into_owned();
    let child = trampoline.spawn().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    let root = Pid::from_raw(i32::try_from(child.id()).expect("pids fit in i32"));
    drop(child); // we wait for it ourselves, with waitpid

    match waitpid(root, Some(WaitPidFlag::__WALL)) {
        Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
        Ok(WaitStatus::Exited(_, EXIT_NOT_PERMITTED)) => {
            return Err(Error::NotPermitted {
                detail: "PTRACE_TRACEME failed in the traced process".into(),
            });
        }
        Ok(other) => {
            let _ = kill(root, Signal::SIGKILL);
            return Err(Error::NotPermitted {
                detail: format!("the traced process did not stop for its tracer: {other:?}"),
            });
        }
        Err(e) => return Err(Error::trace("waitpid")(e)),
    }
    let options = Options::PTRACE_O_TRACESECCOMP
        | Options::PTRACE_O_EXITKILL
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACEEXEC;
    if let Err(e) = ptrace::setoptions(root, options) {
        let _ = kill(root, Signal::SIGKILL);
        let _ = waitpid(root, Some(WaitPidFlag::__WALL));
        return Err(Error::NotPermitted {
            detail: format!("PTRACE_SETOPTIONS: {e}"),
        });
    }
    ptrace::cont(root, None).map_err(Error::trace("PTRACE_CONT"))?;

    let mut t = Tracer {
        plan,
        noise: match plan {
            Plan::Noise { seed, .. } => Some(Rng::new(seed, 0)),
            _ => None,
        },
        execed: false,
        life: Lifecycle::default(),
        counters: Counters {
            tasks: 1,
            ..Counters::default()
        },
        delays: Vec::new(),
        pending: Vec::new(),
        seen: HashSet::from([root]),
        newborn: HashSet::new(),
        live: HashSet::from([root]),
    };
    let status = t.serve(root)?;
    t.kill_leftovers();
    match status {
        Status::Exited(EXIT_SECCOMP) if !t.execed => Err(Error::Seccomp(
            "see the message above (from the traced process)".into(),
        )),
        Status::Exited(EXIT_EXEC) if !t.execed => Err(Error::Exec {
            program,
            source: std::io::Error::other("see the message above (from the traced process)"),
        }),
        status => Ok(Traced {
            status,
            counters: t.counters,
            delays: t.delays,
        }),
    }
}

struct Tracer {
    plan: Plan,
    noise: Option<Rng>,
    /// The trampoline has executed the program: from now on calls count.
    execed: bool,
    life: Lifecycle,
    counters: Counters,
    delays: Vec<Delay>,
    /// Threads held in a delay, with the instant they may go on.
    pending: Vec<(Instant, Pid)>,
    /// Threads whose first stop has been seen.
    seen: HashSet<Pid>,
    /// Threads announced by a clone/fork event whose initial SIGSTOP is still due.
    newborn: HashSet<Pid>,
    /// Tasks that have not exited.
    live: HashSet<Pid>,
}

impl Tracer {
    /// Serve stops until `root` exits.
    fn serve(&mut self, root: Pid) -> Result<Status> {
        loop {
            let now = Instant::now();
            self.pending.retain(|&(due, tid)| {
                if due <= now {
                    // ESRCH: it was killed meanwhile; its exit is reported anyway.
                    let _ = ptrace::cont(tid, None);
                    false
                } else {
                    true
                }
            });
            let mut flags = WaitPidFlag::__WALL;
            if !self.pending.is_empty() {
                flags |= WaitPidFlag::WNOHANG;
            }
            let status = match waitpid(None, Some(flags)) {
                Ok(s) => s,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::trace("waitpid")(e)),
            };
            match status {
                WaitStatus::StillAlive => {
                    let due = self.pending.iter().map(|p| p.0).min().unwrap_or(now);
                    let wait = due.saturating_duration_since(Instant::now());
                    // Wake at least every 500 us to serve other threads' stops.
                    std::thread::sleep(wait.min(Duration::from_micros(500)));
                }
                WaitStatus::PtraceEvent(tid, _, event) => self.on_event(tid, event),
                WaitStatus::Stopped(tid, sig) => self.on_signal(tid, sig),
                WaitStatus::PtraceSyscall(tid) | WaitStatus::Continued(tid) => {
                    let _ = ptrace::cont(tid, None);
                }
                WaitStatus::Exited(pid, code) => {
                    self.gone(pid);
                    if pid == root {
                        return Ok(Status::Exited(code));
                    }
                }
                WaitStatus::Signaled(pid, sig, _) => {
                    self.gone(pid);
                    if pid == root {
                        return Ok(Status::Signaled(sig as i32));
                    }
                }
            }
        }
    }

    fn gone(&mut self, pid: Pid) {
        self.live.remove(&pid);
        self.pending.retain(|p| p.1 != pid);
    }

    fn on_event(&mut self, tid: Pid, event: i32) {
        self.seen.insert(tid);
        if event == Event::PTRACE_EVENT_SECCOMP as i32 {
            self.on_seccomp(tid);
            return;
        }
        if event == Event::PTRACE_EVENT_CLONE as i32
            || event == Event::PTRACE_EVENT_FORK as i32
            || event == Event::PTRACE_EVENT_VFORK as i32
        {
            if let Ok(new) = ptrace::getevent(tid) {
                let new = Pid::from_raw(i32::try_from(new).unwrap_or(0));
                self.live.insert(new);
                self.counters.tasks += 1;
                if !self.seen.contains(&new) {
                    self.newborn.insert(new);
                }
            }
        } else if event == Event::PTRACE_EVENT_EXEC as i32 {
            self.execed = true;
        }
        let _ = ptrace::cont(tid, None);
    }

    fn on_signal(&mut self, tid: Pid, sig: Signal) {
        let first = self.seen.insert(tid);
        if sig == Signal::SIGSTOP && (self.newborn.remove(&tid) || first) {
            // A new thread's or child's initial stop: not a signal anyone sent.
            if first && self.live.insert(tid) {
                self.counters.tasks += 1;
            }
            let _ = ptrace::cont(tid, None);
            return;
        }
        match ptrace::getsiginfo(tid) {
            // No siginfo: a group-stop. Resume without a signal.
            Err(Errno::EINVAL) => {
                let _ = ptrace::cont(tid, None);
            }
            _ => {
                self.counters.signals += 1;
                let _ = ptrace::cont(tid, Some(sig));
            }
        }
    }

    fn on_seccomp(&mut self, tid: Pid) {
        let Ok((nr, args)) = crate::arch::syscall_at_entry(tid) else {
            let _ = ptrace::cont(tid, None);
            return;
        };
        let (Some(call), true) = (Call::from_number(nr), self.execed) else {
            let _ = ptrace::cont(tid, None);
            return;
        };
        let (delay, point) = match self.plan {
            Plan::Count => (Duration::ZERO, None),
            Plan::Noise { max, .. } => {
                let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
                let rng = self.noise.as_mut().expect("noise plans have a generator");
                (
                    Duration::from_nanos(rng.below(max_ns.saturating_add(1))),
                    None,
                )
            }
            Plan::Point { point, delay } if !self.life.fired => {
                let fds = ProcFds(tid);
                let found = self.life.matches(point, call, args, &fds);
                self.life.observe(call, args, &fds);
                match found {
                    Some(name) => {
                        self.life.fired = true;
                        (delay, Some(name))
                    }
                    None => (Duration::ZERO, None),
                }
            }
            Plan::Point { .. } | Plan::Untraced => (Duration::ZERO, None),
        };
        let count = self
            .counters
            .calls
            .entry(call.name().to_owned())
            .or_default();
        count.stopped += 1;
        if delay.is_zero() {
            let _ = ptrace::cont(tid, None);
            return;
        }
        let delay_ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        count.delayed += 1;
        count.delay_ns += delay_ns;
        if self.delays.len() < MAX_LISTED_DELAYS {
            self.delays.push(Delay {
                call: call.name().to_owned(),
                point: point.map(str::to_owned),
                tid: tid.as_raw(),
                at_ns: monotonic_ns(),
                delay_ns,
            });
        }
        self.pending.push((Instant::now() + delay, tid));
    }

    /// Kill and reap whatever the program left running, so that nothing outlives it.
    fn kill_leftovers(&mut self) {
        for &pid in &self.live {
            let _ = kill(pid, Signal::SIGKILL);
        }
        while !self.live.is_empty() {
            match waitpid(None, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)) => {
                    self.live.remove(&pid);
                }
                Ok(WaitStatus::PtraceEvent(pid, _, _) | WaitStatus::Stopped(pid, _)) => {
                    let _ = ptrace::cont(pid, None);
                }
                Ok(_) => {}
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
    }
}
