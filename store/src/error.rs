//! The one error type of the crate.
//!
//! Every failure names what failed (the [`ErrorKind`]) and, where there is one, the
//! file it failed on. Callers branch on the kind: the CLI maps each kind to its own
//! exit code, and the harness tells a *definite* failure (the write did not happen)
//! from an I/O error whose effect is unknown.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A specialised `Result` for store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. Each variant is a distinct, documented failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An I/O operation failed; `op` names it ("read", "rename", "fsync directory", ...).
    Io {
        /// The operation that failed.
        op: &'static str,
    },
    /// The exclusive lock was not acquired within the configured wait.
    LockTimeout {
        /// How long we waited before giving up.
        waited: Duration,
    },
    /// The key (passphrase or key file) does not open this store. The file is intact.
    WrongKey,
    /// The file's header is intact and the key is right, but the encrypted body does
    /// not authenticate: someone changed the bytes.
    Tampered,
    /// The file is shorter than its header says it must be.
    Truncated {
        /// Bytes the header promises.
        expected: u64,
        /// Bytes actually present.
        actual: u64,
    },
    /// The file carries a format version this build does not understand.
    UnknownVersion {
        /// The version number found in the header.
        version: u16,
    },
    /// The file is not a clobber store, or its header is damaged.
    Corrupt {
        /// What exactly is wrong.
        detail: String,
    },
    /// A key file is not exactly 32 bytes (raw) or 64 hex digits.
    BadKeyFile {
        /// What exactly is wrong.
        detail: String,
    },
    /// The caller asked for something the store rejects (empty name, empty value, ...).
    Invalid {
        /// What was rejected and why.
        detail: String,
    },
    /// `init` was asked to create a store that already exists.
    AlreadyExists,
    /// A model or a test injected a crash at a protocol step (never produced by the
    /// real file system).
    Crashed {
        /// The step at which the crash was injected.
        step: &'static str,
    },
}

/// The error type of `clobber-store`: a kind, the file involved, and the OS error.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    path: Option<PathBuf>,
    source: Option<io::Error>,
}

impl Error {
    /// An error of `kind` about no particular file.
    #[must_use]
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            path: None,
            source: None,
        }
    }

    /// An error of `kind` about the file at `path`.
    #[must_use]
    pub fn at(kind: ErrorKind, path: &Path) -> Self {
        Self {
            kind,
            path: Some(path.to_path_buf()),
            source: None,
        }
    }

    /// An I/O error from operation `op` on `path`.
    #[must_use]
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            kind: ErrorKind::Io { op },
            path: Some(path.to_path_buf()),
            source: Some(source),
        }
    }

    /// A rejected request (empty name, empty value, ...).
    #[must_use]
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid {
            detail: detail.into(),
        })
    }

    /// Attach the file this error is about, unless one is already attached.
    #[must_use]
    pub fn with_path(mut self, path: &Path) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_path_buf());
        }
        self
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The file involved, if any.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// True if the operation certainly did not change the store. Only an I/O error
    /// during the replace (or a crash) leaves the outcome open.
    #[must_use]
    pub fn is_definite(&self) -> bool {
        !matches!(self.kind, ErrorKind::Io { .. } | ErrorKind::Crashed { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Io { op } => write!(f, "I/O error during {op}")?,
            ErrorKind::LockTimeout { waited } => write!(
                f,
                "failed to acquire lock: still held by another process after {} ms",
                waited.as_millis()
            )?,
            ErrorKind::WrongKey => f.write_str("wrong passphrase or key for this store")?,
            ErrorKind::Tampered => f.write_str(
                "store contents failed authentication: the file was modified or damaged",
            )?,
            ErrorKind::Truncated { expected, actual } => write!(
                f,
                "store file is truncated: expected {expected} bytes, found {actual}"
            )?,
            ErrorKind::UnknownVersion { version } => write!(
                f,
                "store format version {version} is not supported by this build (supported: {})",
                crate::format::VERSION
            )?,
            ErrorKind::Corrupt { detail } => write!(f, "not a valid store file: {detail}")?,
            ErrorKind::BadKeyFile { detail } => write!(f, "bad key file: {detail}")?,
            ErrorKind::Invalid { detail } => f.write_str(detail)?,
            ErrorKind::AlreadyExists => f.write_str("a store already exists here")?,
            ErrorKind::Crashed { step } => write!(f, "crash injected at step {step}")?,
        }
        if let Some(path) = &self.path {
            write!(f, " ({})", path.display())?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
