//! The real file system: [`StdFs`] implements the protocol's [`Fs`] trait on
//! `std::fs`, with `flock` through std's `File::lock`/`try_lock` (Rust ≥ 1.89).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::barrier::Barrier;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{FileId, Fs, Step};

/// A held `flock`; closing the file releases it.
#[derive(Debug)]
pub struct StdLock {
    file: File,
    path: PathBuf,
}

/// A temporary file being written; closing it (dropping) keeps the file.
#[derive(Debug)]
pub struct StdTemp {
    path: PathBuf,
    file: File,
}

impl AsRef<Path> for StdTemp {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// The protocol's file system on `std::fs`.
#[derive(Debug, Default)]
pub struct StdFs {
    barrier: Option<Barrier>,
}

impl StdFs {
    /// A file system with no test barrier.
    #[must_use]
    pub fn new() -> Self {
        Self { barrier: None }
    }

    /// A file system that honours `CLOBBER_STORE_TEST_BARRIER` (see
    /// [`crate::barrier`]); tests use it to force interleavings between processes.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`] if the variable is set but malformed.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            barrier: Barrier::from_env()?,
        })
    }
}

/// Open (creating) `path` and retry a non-blocking `flock` on that one descriptor,
/// sleeping `next_sleep()` between tries, until it succeeds or `wait` has passed.
fn lock_retrying(
    path: &Path,
    wait: Duration,
    mut next_sleep: impl FnMut() -> Duration,
) -> Result<StdLock> {
    let file = open_mode_0600()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io("open lock file", path, e))?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => {
                return Ok(StdLock {
                    file,
                    path: path.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("flock", path, e)),
        }
        let waited = start.elapsed();
        if waited >= wait {
            return Err(Error::at(ErrorKind::LockTimeout { waited: wait }, path));
        }
        std::thread::sleep(next_sleep().min(wait - waited));
    }
}

fn open_mode_0600() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(0o600);
    o
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl Fs for StdFs {
    type Lock = StdLock;
    type Temp = StdTemp;

    fn lock(&self, path: &Path, wait: Duration) -> Result<StdLock> {
        // Exponential backoff from 1 ms to 25 ms: a waiter notices a release quickly.
        let mut backoff = Duration::from_millis(1);
        lock_retrying(path, wait, move || {
            let now = backoff;
            backoff = (backoff * 2).min(Duration::from_millis(25));
            now
        })
    }

    fn lock_polling(&self, path: &Path, wait: Duration, poll: Duration) -> Result<StdLock> {
        lock_retrying(path, wait, move || poll)
    }

    fn locked_identity(&self, lock: &StdLock) -> Result<FileId> {
        let m = lock
            .file
            .metadata()
            .map_err(|e| Error::io("stat lock file", &lock.path, e))?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    fn unlock(&self, lock: StdLock) -> Result<()> {
        lock.file
            .unlock()
            .map_err(|e| Error::io("unlock", &lock.path, e))
    }

    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    fn create_temp(&self, target: &Path, bytes: &[u8]) -> Result<StdTemp> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| {
            Error::io(
                "read OS randomness",
                target,
                io::Error::other(e.to_string()),
            )
        })?;
        let tmp = dir_of(target).join(format!(
            "{}{}-{:016x}",
            temp_prefix(&name),
            std::process::id(),
            u64::from_le_bytes(suffix)
        ));
        // 0600 from the moment the file exists: the contents are ciphertext, but
        // nobody else has any business reading even that.
        let mut file = open_mode_0600()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create temporary file", &tmp, e))?;
        if let Err(e) = file.write_all(bytes) {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("write temporary file", &tmp, e));
        }
        Ok(StdTemp { path: tmp, file })
    }

    fn sync_temp(&self, temp: &StdTemp) -> Result<()> {
        temp.file
            .sync_all()
            .map_err(|e| Error::io("fsync temporary file", &temp.path, e))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| Error::io("rename", to, e))
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        let dir = dir_of(path);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync directory", dir, e))
    }

    fn temp_files(&self, target: &Path) -> Result<Vec<PathBuf>> {
        leftover_temp_files(target)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", path, e)),
        }
    }

    fn write_in_place(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let mut file = open_mode_0600()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io("open for in-place write", path, e))?;
        let (first, rest) = bytes.split_at(bytes.len() / 2);
        file.write_all(first)
            .map_err(|e| Error::io("write in place", path, e))?;
        self.checkpoint(Step::MidWrite)?;
        file.write_all(rest)
            .map_err(|e| Error::io("write in place", path, e))?;
        // Faulty protocol, but not needlessly so: flush what we wrote.
        file.sync_all().map_err(|e| Error::io("fsync", path, e))
    }

    fn identity(&self, path: &Path) -> Result<Option<FileId>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(FileId {
                dev: m.dev(),
                ino: m.ino(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", path, e)),
        }
    }

    fn checkpoint(&self, step: Step) -> Result<()> {
        if let Some(b) = &self.barrier {
            b.arrive(step)?;
        }
        Ok(())
    }
}

/// The prefix of every temporary file a store named `name` creates
/// (`.<name>.tmp-`); anything with it left in the directory is debris.
#[must_use]
pub fn temp_prefix(name: &str) -> String {
    format!(".{name}.tmp-")
}

/// Temporary files left next to the store at `data` (there should be none once no
/// write is in progress).
///
/// # Errors
/// I/O errors listing the directory.
pub fn leftover_temp_files(data: &Path) -> Result<Vec<PathBuf>> {
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = temp_prefix(&name);
    let dir = dir_of(data);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list directory", dir, e))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}
