//! The one error type of the crate: what failed, and on which path.

use std::path::PathBuf;

/// A failure to mount, lose power, or unmount.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel refused the mount (no `/dev/fuse`, not permitted, not a directory).
    #[error("faultfs: cannot mount on {path}: {source}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file system could not be unmounted (a process still uses it).
    #[error("faultfs: cannot unmount {path}: {source}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading the directory's initial contents, or writing the final ones back.
    #[error("faultfs: cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory holds something the file system cannot represent.
    #[error("faultfs: {path}: unsupported file type (only files, directories and symlinks)")]
    Unsupported {
        /// The file.
        path: PathBuf,
    },
}

/// Shorthand for this crate's results.
pub type Result<T> = std::result::Result<T, Error>;
