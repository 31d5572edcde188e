//! The architecture-specific part: system call numbers and where a stopped thread
//! keeps its system call number and arguments. x86_64 and aarch64 are covered; on
//! any other architecture this module does not compile, on purpose.

use nix::unistd::Pid;

use crate::calls::Call;
use crate::error::{Error, Result};

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!(
    "clobber-perturb supports Linux on x86_64 and aarch64 only (see perturb/src/arch.rs)"
);

/// The architecture seccompiler builds the filter for.
#[cfg(target_arch = "x86_64")]
pub(crate) const SECCOMP_ARCH: seccompiler::TargetArch = seccompiler::TargetArch::x86_64;
/// The architecture seccompiler builds the filter for.
#[cfg(target_arch = "aarch64")]
pub(crate) const SECCOMP_ARCH: seccompiler::TargetArch = seccompiler::TargetArch::aarch64;

/// Every call and its number on x86_64.
#[cfg(target_arch = "x86_64")]
pub(crate) const CALLS: &[(Call, i64)] = &[
    (Call::Open, libc::SYS_open),
    (Call::Openat, libc::SYS_openat),
    (Call::Read, libc::SYS_read),
    (Call::Pread64, libc::SYS_pread64),
    (Call::Write, libc::SYS_write),
    (Call::Pwrite64, libc::SYS_pwrite64),
    (Call::Fsync, libc::SYS_fsync),
    (Call::Fdatasync, libc::SYS_fdatasync),
    (Call::Rename, libc::SYS_rename),
    (Call::Renameat, libc::SYS_renameat),
    (Call::Renameat2, libc::SYS_renameat2),
    (Call::Unlink, libc::SYS_unlink),
    (Call::Unlinkat, libc::SYS_unlinkat),
    (Call::Flock, libc::SYS_flock),
    (Call::FcntlLock, libc::SYS_fcntl),
    (Call::Close, libc::SYS_close),
    (Call::Mkdir, libc::SYS_mkdir),
    (Call::Mkdirat, libc::SYS_mkdirat),
    (Call::Link, libc::SYS_link),
    (Call::Linkat, libc::SYS_linkat),
];

/// Every call and its number on aarch64 (which has only the `*at` flavours).
#[cfg(target_arch = "aarch64")]
pub(crate) const CALLS: &[(Call, i64)] = &[
    (Call::Openat, libc::SYS_openat),
    (Call::Read, libc::SYS_read),
    (Call::Pread64, libc::SYS_pread64),
    (Call::Write, libc::SYS_write),
    (Call::Pwrite64, libc::SYS_pwrite64),
    (Call::Fsync, libc::SYS_fsync),
    (Call::Fdatasync, libc::SYS_fdatasync),
    (Call::Renameat, libc::SYS_renameat),
    (Call::Renameat2, libc::SYS_renameat2),
    (Call::Unlinkat, libc::SYS_unlinkat),
    (Call::Flock, libc::SYS_flock),
    (Call::FcntlLock, libc::SYS_fcntl),
    (Call::Close, libc::SYS_close),
    (Call::Mkdirat, libc::SYS_mkdirat),
    (Call::Linkat, libc::SYS_linkat),
];

/// The system call number and first three arguments of a thread stopped at a
/// system call entry (a seccomp stop).
///
/// # Errors
/// The thread is gone or not stopped.
pub fn syscall_at_entry(tid: Pid) -> Result<(i64, [u64; 3])> {
    let regs = nix::sys::ptrace::getregs(tid).map_err(Error::trace("PTRACE_GETREGS"))?;
    Ok(from_regs(&regs))
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::cast_possible_wrap)]
fn from_regs(regs: &libc::user_regs_struct) -> (i64, [u64; 3]) {
    (regs.orig_rax as i64, [regs.rdi, regs.rsi, regs.rdx])
}

#[cfg(target_arch = "aarch64")]
#[allow(clippy::cast_possible_wrap)]
fn from_regs(regs: &libc::user_regs_struct) -> (i64, [u64; 3]) {
    (
        regs.regs[8] as i64,
        [regs.regs[0], regs.regs[1], regs.regs[2]],
    )
}
