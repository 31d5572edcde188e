//! The crate's one error type.

use std::io;

/// What went wrong while perturbing a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `ptrace` is not allowed here; the message names the fix.
    #[error(
        "ptrace is not permitted here ({detail}). Fix: allow tracing of child processes \
         (`sysctl kernel.yama.ptrace_scope=1`, or 0), or, in a container, run with \
         `--cap-add SYS_PTRACE` and a seccomp profile that allows ptrace; or run without --perturb"
    )]
    NotPermitted {
        /// What failed.
        detail: String,
    },
    /// The seccomp filter could not be built or installed.
    #[error("cannot install the seccomp filter: {0}")]
    Seccomp(String),
    /// A schedule, plan or call list did not parse.
    #[error("invalid {what} {input:?}: {reason}")]
    Invalid {
        /// What was being parsed (`schedule`, `call`, ...).
        what: &'static str,
        /// The input.
        input: String,
        /// Why it is wrong, and what is expected.
        reason: String,
    },
    /// Starting the trampoline failed.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: io::Error,
    },
    /// A ptrace or wait call failed unexpectedly.
    #[error("{op}: {source}")]
    Trace {
        /// The operation.
        op: &'static str,
        /// The cause.
        source: nix::Error,
    },
    /// A record could not be written to or read from its log.
    #[error("perturbation log {path}: {source}")]
    Log {
        /// The log file.
        path: std::path::PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Executing the traced program failed (in the trampoline).
    #[error("cannot execute {program}: {source}")]
    Exec {
        /// The program.
        program: String,
        /// The cause.
        source: io::Error,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn invalid(what: &'static str, input: &str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            input: input.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn trace(op: &'static str) -> impl FnOnce(nix::Error) -> Self {
        move |source| Error::Trace { op, source }
    }
}
