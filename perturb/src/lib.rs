//! Run any Linux program with chosen file-system system calls delayed.
//!
//! Races between processes that share a file hide in windows a few microseconds
//! wide: between reading a file and renaming the new one over it, between releasing a
//! lock and unlinking its file, between opening a lock file and locking it. A test
//! that waits for the scheduler to open such a window by chance is a coin toss. This
//! crate widens the windows on purpose: it runs a command under `ptrace`, with a
//! seccomp filter that stops the tracee only at the chosen calls (the technique of
//! `strace --seccomp-bpf`), and holds the calling thread for a while before letting
//! the call run. A delay never changes a call's arguments or its result.
//!
//! It works on any binary: statically linked (Go, musl), dynamic, Python, Node. No
//! `LD_PRELOAD`, no hand-written BPF (the filter is built by `seccompiler`), no
//! `unsafe` (the tracee side is a *trampoline*, see [`trampoline`]).
//!
//! # Pieces
//! - [`Call`]: the calls that can be delayed (`openat`, `read`, `write`, `fsync`,
//!   `rename`, `unlink`, `flock`, `fcntl` lock commands, `close`, `mkdir`, `link`, ...).
//! - [`Schedule`]: how a run of many commands is perturbed (`pct`, `noise`, `count`),
//!   and [`Plan`]: what one command gets, derived from the run's seed.
//! - [`trace::run`]: the tracer. It spawns the trampoline, follows every thread,
//!   fork and exec, delays per the plan, and returns the exit status with
//!   [`Counters`] and the list of [`Delay`]s.
//! - [`trampoline::exec`]: the tracee side: `PTRACE_TRACEME`, stop, install the
//!   filter, exec the program.
//!
//! It knows nothing of stores, scenarios or histories; `clobber run --perturb`
//! composes it.
//!
//! # Limitations
//! - Linux on x86_64 or aarch64 only (see [`arch`]).
//! - `ptrace` must be allowed: `kernel.yama.ptrace_scope` ≤ 1 and, in a container,
//!   `CAP_SYS_PTRACE` or a seccomp profile that allows `ptrace`. Otherwise
//!   [`Error::NotPermitted`] names the fix.
//! - Threads of one traced tree are resumed independently, but the tracer is one
//!   thread: a stop that arrives while it is busy waits for it (microseconds).

#![deny(missing_docs)]

pub mod arch;
mod calls;
pub mod cli;
mod error;
mod lifecycle;
pub mod record;
mod rng;
mod schedule;
pub mod trace;
pub mod trampoline;

pub use calls::{Call, CallSet};
pub use error::{Error, Result};
pub use record::{Invocation, Record};
pub use schedule::{Plan, Point, Schedule};
pub use trace::{Counters, Delay, Status, Traced};
