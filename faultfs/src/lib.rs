//! # faultfs: a file system that can lose power
//!
//! A store that promises crash safety makes promises about *ordering*: a replace
//! is safe only if the new file's data is fsynced before the rename, and the
//! rename is durable only once the directory is fsynced. On a healthy machine none
//! of that is visible — the page cache holds everything, and a test that kills
//! processes never loses a byte the kernel accepted. Only a power cut shows
//! whether the fsyncs are there.
//!
//! `faultfs` is that power cut. [`FaultFs::mount`] mounts a FUSE file system over
//! a directory (taking its current contents as already durable). Every change —
//! file data **and** directory entries (create, rename, unlink, link, mkdir) —
//! stays volatile until the matching fsync: a file's fsync makes its contents
//! durable, a directory's fsync makes its entry list durable. The exact rules, one
//! per system call, head the source file `faultfs/src/tree.rs`; in short, a rename inside one directory is undone by a power loss unless that
//! directory was fsynced after it.
//! [`FaultFs::power_loss`] throws away everything that is not durable and
//! remounts; [`FaultFs::unmount`] writes the live contents back into the
//! directory, as a clean shutdown would.
//!
//! File locks (`flock`, `fcntl`) are kept by the kernel on the mount, so processes
//! exclude each other exactly as on a local disk.
//!
//! ```no_run
//! # fn main() -> Result<(), faultfs::Error> {
//! let mut fs = faultfs::FaultFs::mount("/tmp/store")?;
//! // ... run a store in /tmp/store, kill every process using it ...
//! let loss = fs.power_loss()?;
//! println!("{} file(s) and {} directory(ies) lost changes", loss.files_reverted, loss.dirs_reverted);
//! fs.unmount()?;
//! # Ok(()) }
//! ```
//!
//! ## Limits
//! - Everything lives in memory (a store of a few megabytes is the intended use).
//! - A power loss needs every process that uses the mount to be dead first (the
//!   kernel will not unmount a busy file system); [`FaultFs::power_loss`] waits a
//!   little for killed processes to go, then reports [`Error::Unmount`].
//! - One outcome per power loss: everything volatile is dropped. Stores that are
//!   correct only for *some* orders of partial persistence (ALICE's reorderings)
//!   are not explored.
//! - Regular files, directories and symlinks only; no xattrs, no devices.
//! - Mounting needs `/dev/fuse` and either root or `fusermount3`.

#![deny(missing_docs)]

mod error;
mod fuse;
mod tree;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use error::{Error, Result};
pub use tree::{Loss, Stats};

use fuse::Fs;
use tree::Tree;

/// A mounted faultfs. Dropping it unmounts (writing the live contents back) but
/// cannot report errors: prefer [`FaultFs::unmount`].
pub struct FaultFs {
    dir: PathBuf,
    tree: Arc<Mutex<Tree>>,
    session: Option<fuser::BackgroundSession>,
}

impl std::fmt::Debug for FaultFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultFs")
            .field("dir", &self.dir)
            .field("mounted", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

/// Whether this machine can mount FUSE file systems at all (`/dev/fuse` exists).
#[must_use]
pub fn available() -> bool {
    Path::new("/dev/fuse").exists()
}

impl FaultFs {
    /// Mount over `dir` (an existing directory). Its current contents become the
    /// file system's initial, durable contents; while mounted, the directory
    /// underneath is hidden and untouched.
    ///
    /// # Errors
    /// [`Error::Io`] if `dir` cannot be read, [`Error::Unsupported`] for a device
    /// or socket in it, [`Error::Mount`] if the kernel refuses the mount.
    pub fn mount(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        let tree = Arc::new(Mutex::new(Tree::load(&dir)?));
        let mut fs = FaultFs {
            dir,
            tree,
            session: None,
        };
        fs.start()?;
        Ok(fs)
    }

    /// The mount point.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Counters of the fsyncs served and power losses so far.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tree> {
        // A panic in a request handler cannot leave the tree half-changed in a
        // way that matters more than the panic itself: keep serving.
        self.tree
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn start(&mut self) -> Result<()> {
        let generation = self.lock().generation;
        let fs = Fs {
            tree: Arc::clone(&self.tree),
            generation,
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("faultfs".into()),
            fuser::MountOption::Subtype("faultfs".into()),
        ];
        let session =
            fuser::spawn_mount(fs, &self.dir, &config).map_err(|source| Error::Mount {
                path: self.dir.clone(),
                source,
            })?;
        self.session = Some(session);
        Ok(())
    }

    /// Unmount, retrying for a few seconds while killed processes let go of it.
    fn stop(&mut self) -> Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let mut unmounter = session;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match try_unmount(&self.dir) {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(source) => {
                    self.session = Some(unmounter);
                    return Err(Error::Unmount {
                        path: self.dir.clone(),
                        source,
                    });
                }
            }
        }
        // The kernel has let go: the session thread ends on its own.
        unmounter = join(unmounter);
        drop(unmounter);
        Ok(())
    }

    /// Cut the power: drop every change not made durable by an fsync, then mount
    /// again on the same directory. Every process using the mount must already be
    /// dead (kill them first); their open files are gone with the old mount.
    ///
    /// # Errors
    /// [`Error::Unmount`] if a process still uses the mount after 5 s,
    /// [`Error::Mount`] if the remount fails.
    pub fn power_loss(&mut self) -> Result<Loss> {
        self.stop()?;
        let loss = self.lock().power_loss();
        self.start()?;
        Ok(loss)
    }

    /// Unmount and write the live contents back into the directory (a clean
    /// shutdown: nothing is lost).
    ///
    /// # Errors
    /// [`Error::Unmount`] if a process still uses the mount, [`Error::Io`] if the
    /// contents cannot be written back.
    pub fn unmount(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        if self.session.is_none() {
            return Ok(());
        }
        self.stop()?;
        clear_dir(&self.dir)?;
        self.lock().store(&self.dir)
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Unmount `dir` (root: `umount2`; otherwise `fusermount3 -u`).
fn try_unmount(dir: &Path) -> std::io::Result<()> {
    let status = std::process::Command::new("umount")
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status();
    if matches!(status, Ok(s) if s.success()) {
        return Ok(());
    }
    let out = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(dir)
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Wait for the session thread to end, giving up after a few seconds (it then
/// stays detached; its generation is stale, so it can no longer change the tree).
fn join(session: fuser::BackgroundSession) -> fuser::BackgroundSession {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !session.guard.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    session
}

/// Remove everything in `dir` (the copy underneath the mount, replaced by the
/// live contents at unmount).
fn clear_dir(dir: &Path) -> Result<()> {
    let io = |op, path: &Path, source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(|e| io("list", dir, e))? {
        let path = entry.map_err(|e| io("list", dir, e))?.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io("read", &path, e))?;
        let result = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.map_err(|e| io("remove", &path, e))?;
    }
    Ok(())
}
