//! The tracee side: a small process that asks to be traced, stops so that the tracer
//! can set its options, installs the seccomp filter, and executes the program.
//!
//! Why a trampoline: the filter must be installed in the child after `fork` and before
//! `exec`. `std`'s `pre_exec` hook would do that, but it is `unsafe` and the workspace
//! forbids `unsafe`. So the tracer starts a fresh process (a hidden subcommand of
//! the same binary) that does these steps in ordinary safe code and then replaces
//! itself with the program (`CommandExt::exec`). The filter is inherited across
//! `exec`, `fork` and `clone`; `seccompiler::apply_filter` sets `no_new_privs`,
//! which installing a filter without `CAP_SYS_ADMIN` requires.
//!
//! Until the `exec`, the trampoline's own calls stop too; the tracer lets them run
//! undelayed and uncounted. If something fails, the trampoline exits with one of the
//! codes below, which the tracer turns into an [`Error`].

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::ptrace;
use nix::sys::signal::{Signal, raise};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use crate::calls::{Call, CallSet, FCNTL_LOCK_COMMANDS};
use crate::error::{Error, Result};

/// Exit code of a trampoline that may not be traced (`PTRACE_TRACEME` failed).
pub const EXIT_NOT_PERMITTED: i32 = 120;
/// Exit code of a trampoline that could not install its seccomp filter.
pub const EXIT_SECCOMP: i32 = 121;
/// Exit code of a trampoline that could not execute the program (like a shell's).
pub const EXIT_EXEC: i32 = 127;

/// The seccomp filter: `SECCOMP_RET_TRACE` for `calls` (for `fcntl`, only its lock
/// commands), allow everything else.
///
/// # Errors
/// [`Error::Seccomp`] if seccompiler rejects the rules.
pub fn filter(calls: &CallSet) -> Result<BpfProgram> {
    let seccomp = |e: seccompiler::BackendError| Error::Seccomp(e.to_string());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &call in calls.calls() {
        let Some(nr) = call.number() else { continue };
        let call_rules = if call == Call::FcntlLock {
            FCNTL_LOCK_COMMANDS
                .iter()
                .map(|&cmd| {
                    let cmd = u64::try_from(cmd).expect("fcntl commands are positive");
                    let cond =
                        SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, cmd)
                            .map_err(seccomp)?;
                    SeccompRule::new(vec![cond]).map_err(seccomp)
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        rules.insert(nr, call_rules);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Trace(0),
        crate::arch::SECCOMP_ARCH,
    )
    .map_err(seccomp)?;
    filter.try_into().map_err(seccomp)
}

/// Become the traced program: `PTRACE_TRACEME`, stop with `SIGSTOP`, install the
/// filter for `calls`, execute `program` with `args`. Never returns: on failure it
/// prints why on stderr and exits with [`EXIT_NOT_PERMITTED`], [`EXIT_SECCOMP`] or
/// [`EXIT_EXEC`].
pub fn exec(program: &OsStr, args: &[OsString], calls: &CallSet) -> ! {
    if let Err(e) = ptrace::traceme() {
        eprintln!("clobber-perturb: PTRACE_TRACEME failed: {e}");
        std::process::exit(EXIT_NOT_PERMITTED);
    }
    // Wait for the tracer to set its options (it continues us from this stop).
    if let Err(e) = raise(Signal::SIGSTOP) {
        eprintln!("clobber-perturb: raise(SIGSTOP) failed: {e}");
        std::process::exit(EXIT_NOT_PERMITTED);
    }
    let installed = filter(calls).and_then(|prog| {
        seccompiler::apply_filter(&prog).map_err(|e| Error::Seccomp(e.to_string()))
    });
    if let Err(e) = installed {
        eprintln!("clobber-perturb: {e}");
        std::process::exit(EXIT_SECCOMP);
    }
    let e = Command::new(program).args(args).exec();
    eprintln!(
        "clobber-perturb: cannot execute {}: {e}",
        program.to_string_lossy()
    );
    std::process::exit(EXIT_EXEC);
}
