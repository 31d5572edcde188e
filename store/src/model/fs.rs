//! [`ModelFs`]: an inode-level, in-memory file system that implements [`Fs`].
//!
//! It models exactly what the protocol's correctness depends on, and no more:
//!
//! - a **directory**: names → inodes. `rename` and `remove` act on names; an inode
//!   lives on while a handle refers to it, named or not;
//! - **inodes** with their contents. The atomic protocols never change a file's
//!   contents after creating it (a new version is a new inode); only the faulty
//!   `in-place` protocol rewrites an inode, in two observable halves;
//! - **one exclusive lock per inode**, taken through an open handle and released
//!   when the handle is dropped ([`ModelLock`]), like `flock` on a descriptor that
//!   is closed when its process dies. Opening a file and locking it are two
//!   separate steps, as they are with `open(2)` and `flock(2)`.
//!
//! A coarser model (one global lock, or contents per name) could not tell the
//! `unlink-lock` and `lock-data-file` faults from the correct protocol: both are
//! about a lock held on an inode that the name no longer points at.
//!
//! # Granularity, and why it matters for loom
//!
//! One file-system call is one step (two for calls that are two steps in reality:
//! open then lock, open then read), hence one scheduling point, on the object it
//! really touches: each shared directory entry (the store's data and lock names)
//! is its own checked atomic holding an inode number; each inode's lock is its
//! own checked mutex and condition variable; each inode's contents sit behind
//! its own checked generation counter. loom's partial-order reduction only
//! reorders operations that touch the same object (and never two reads), so
//! processes that only look up the same name, or touch different files, do not
//! multiply the interleavings, while every real race is explored.
//!
//! Temporary files are private to their creator until renamed (nobody else can
//! know their random names), so their names live in an untracked map, like the
//! inode registry and the trace (see [`crate::sync::untracked`] for why that is
//! sound).
//!
//! # The trace
//!
//! Every operation is appended to a trace, in the order it happened. A violated
//! model prints it: the interleaving that broke the protocol, in file-system terms.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{FileId, Fs, Paths, Step};
use crate::sync::atomic::{AtomicU64, Ordering::SeqCst};
use crate::sync::untracked;
use crate::sync::{Condvar, Mutex, MutexGuard};

/// The device number every model inode reports.
const MODEL_DEV: u64 = 0;

/// The inode number of a directory entry that names nothing.
const NO_INODE: u64 = 0;

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section of the model is panic-free, so even a poisoned lock
    // still guards a sound state.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn untracked_guard<T>(m: &untracked::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The state of an inode's `flock`.
#[derive(Debug, Default)]
struct Flock {
    holder: Option<usize>,
    waiters: usize,
}

#[derive(Debug)]
struct Inode {
    ino: u64,
    /// Bumped before every change of `contents`, loaded before every read of it:
    /// the checked object that orders accesses to the contents. Only `in-place`
    /// ever bumps it, so reads of the immutable inodes of the atomic protocols
    /// never race with anything.
    generation: AtomicU64,
    /// Accessed only right after a checked operation on `generation`.
    contents: untracked::Mutex<Vec<u8>>,
    flock: Mutex<Flock>,
    /// Signalled when the lock is released and someone waits for it.
    released: Condvar,
}

impl Inode {
    fn read(&self) -> Vec<u8> {
        self.generation.load(SeqCst);
        untracked_guard(&self.contents).clone()
    }

    fn write(&self, bytes: &[u8]) {
        self.generation.fetch_add(1, SeqCst);
        *untracked_guard(&self.contents) = bytes.to_vec();
    }
}

type InodeRef = untracked::Arc<Inode>;

#[derive(Debug)]
struct Shared {
    /// The shared names (data file, lock file): each a checked inode number.
    entries: BTreeMap<PathBuf, AtomicU64>,
    /// Temporary names → inode numbers, private to their creator until renamed.
    temps: untracked::Mutex<BTreeMap<PathBuf, u64>>,
    /// Every inode ever created, by number (inodes are never freed: a lock handle
    /// or a reader may still hold an unnamed one).
    inodes: untracked::Mutex<BTreeMap<u64, InodeRef>>,
    next_ino: untracked::AtomicU64,
    trace: untracked::Mutex<Vec<String>>,
}

impl Shared {
    fn create_inode(&self, contents: Vec<u8>) -> InodeRef {
        let ino = self.next_ino.fetch_add(1, untracked::Ordering::Relaxed) + 1;
        let inode = untracked::Arc::new(Inode {
            ino,
            generation: AtomicU64::new(0),
            contents: untracked::Mutex::new(contents),
            flock: Mutex::new(Flock::default()),
            released: Condvar::new(),
        });
        untracked_guard(&self.inodes).insert(ino, untracked::Arc::clone(&inode));
        inode
    }

    fn inode(&self, ino: u64) -> InodeRef {
        let inodes = untracked_guard(&self.inodes);
        untracked::Arc::clone(&inodes[&ino])
    }

    fn log(&self, process: usize, event: String) {
        untracked_guard(&self.trace).push(format!("{}: {event}", process_name(process)));
    }

    fn entry(&self, path: &Path, op: &'static str) -> Result<&AtomicU64> {
        self.entries.get(path).ok_or_else(|| {
            Error::io(
                op,
                path,
                io::Error::other("the model directory has no such shared name"),
            )
        })
    }

    /// The inode named `path` (checked entry or private temporary name).
    fn lookup(&self, path: &Path) -> Option<InodeRef> {
        let ino = match self.entries.get(path) {
            Some(entry) => entry.load(SeqCst),
            None => *untracked_guard(&self.temps).get(path)?,
        };
        (ino != NO_INODE).then(|| self.inode(ino))
    }
}

/// The name of process `p` in traces: `p0`, `p1`, ... and `setup` for
/// [`ModelFs::SETUP`].
fn process_name(p: usize) -> String {
    if p == ModelFs::SETUP {
        "setup".to_owned()
    } else {
        format!("p{p}")
    }
}

/// A short, readable rendering of file contents for the trace: the decoded map, or
/// what is wrong with it.
#[must_use]
pub fn describe(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "<empty>".to_owned();
    }
    match crate::secrets::decode(bytes) {
        Ok(map) => {
            let mut s = String::from("{");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{k}={}", v.as_str());
            }
            s.push('}');
            s
        }
        Err(_) => format!("<undecodable, {} bytes>", bytes.len()),
    }
}

fn name_of(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// One process's view of a shared model file system. Give each process its own
/// handle with [`ModelFs::process`] (its id appears in the trace, and its crash
/// point is its own).
#[derive(Debug)]
pub struct ModelFs {
    shared: untracked::Arc<Shared>,
    process: usize,
    crash_at: Option<Step>,
}

/// A held lock on one model inode; dropping it releases the lock, like closing the
/// descriptor (or dying) releases a `flock`.
#[derive(Debug)]
pub struct ModelLock {
    shared: untracked::Arc<Shared>,
    process: usize,
    inode: InodeRef,
}

impl Drop for ModelLock {
    fn drop(&mut self) {
        let mut flock = guard(&self.inode.flock);
        flock.holder = None;
        let waiters = flock.waiters;
        self.shared.log(
            self.process,
            format!("releases the lock on ino {}", self.inode.ino),
        );
        drop(flock);
        if waiters > 0 {
            self.inode.released.notify_all();
        }
    }
}

impl ModelFs {
    /// The process id of the set-up and final-check code (not a protocol process).
    pub const SETUP: usize = usize::MAX;

    /// An empty directory in which the store `paths` (its data and lock names) and
    /// temporary files next to the data file can be created; seen by the set-up
    /// process.
    #[must_use]
    pub fn new(paths: &Paths) -> Self {
        let entries = [&paths.data, &paths.lock]
            .into_iter()
            .map(|p| (p.clone(), AtomicU64::new(NO_INODE)))
            .collect();
        Self {
            shared: untracked::Arc::new(Shared {
                entries,
                temps: untracked::Mutex::new(BTreeMap::new()),
                inodes: untracked::Mutex::new(BTreeMap::new()),
                next_ino: untracked::AtomicU64::new(NO_INODE),
                trace: untracked::Mutex::new(Vec::new()),
            }),
            process: Self::SETUP,
            crash_at: None,
        }
    }

    /// A handle on the same file system for process `process`, which never crashes.
    #[must_use]
    pub fn process(&self, process: usize) -> Self {
        Self {
            shared: untracked::Arc::clone(&self.shared),
            process,
            crash_at: None,
        }
    }

    /// This handle, dying at `step`: its [`Fs::checkpoint`] returns
    /// [`ErrorKind::Crashed`] there, and the engine unwinds, dropping its lock like
    /// a killed process closing its descriptors. Whatever it wrote stays written.
    #[must_use]
    pub fn crashing_at(mut self, step: Step) -> Self {
        self.crash_at = Some(step);
        self
    }

    /// Create (or replace) the shared file `path` with `contents`, as the set-up
    /// step.
    ///
    /// # Errors
    /// If `path` is not one of the store's names.
    pub fn install(&self, path: &Path, contents: Vec<u8>) -> Result<()> {
        let entry = self.shared.entry(path, "install")?;
        let summary = describe(&contents);
        let ino = self.shared.create_inode(contents).ino;
        entry.store(ino, SeqCst);
        self.log(format!(
            "installs {} (ino {ino}) = {summary}",
            name_of(path)
        ));
        Ok(())
    }

    /// The contents of the file named `path`, if there is one.
    #[must_use]
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        Some(self.shared.lookup(path)?.read())
    }

    /// Every name in the directory, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = self
            .shared
            .entries
            .iter()
            .filter(|(_, entry)| entry.load(SeqCst) != NO_INODE)
            .map(|(name, _)| name.clone())
            .collect();
        names.extend(untracked_guard(&self.shared.temps).keys().cloned());
        names.sort();
        names
    }

    /// The locks still held: (inode, process).
    #[must_use]
    pub fn held_locks(&self) -> Vec<(u64, usize)> {
        let inodes: Vec<InodeRef> = untracked_guard(&self.shared.inodes)
            .values()
            .cloned()
            .collect();
        inodes
            .iter()
            .filter_map(|inode| guard(&inode.flock).holder.map(|p| (inode.ino, p)))
            .collect()
    }

    /// Every file-system operation so far, in the order it happened, one per line.
    #[must_use]
    pub fn trace(&self) -> String {
        let trace = untracked_guard(&self.shared.trace);
        let mut out = String::new();
        for (i, event) in trace.iter().enumerate() {
            let _ = writeln!(out, "  {:>3}  {event}", i + 1);
        }
        out
    }

    fn log(&self, event: String) {
        self.shared.log(self.process, event);
    }

    /// `open(path, O_CREAT)`: the inode the shared name points at, created empty if
    /// the name is missing (atomically: of two creators, one wins).
    fn open_or_create(&self, path: &Path, op: &'static str) -> Result<InodeRef> {
        let entry = self.shared.entry(path, op)?;
        let ino = entry.load(SeqCst);
        if ino != NO_INODE {
            self.log(format!("opens {} (ino {ino})", name_of(path)));
            return Ok(self.shared.inode(ino));
        }
        let fresh = self.shared.create_inode(Vec::new());
        match entry.compare_exchange(NO_INODE, fresh.ino, SeqCst, SeqCst) {
            Ok(_) => {
                self.log(format!(
                    "creates and opens {} (ino {})",
                    name_of(path),
                    fresh.ino
                ));
                Ok(fresh)
            }
            Err(ino) => {
                self.log(format!(
                    "opens {} (ino {ino}), created meanwhile",
                    name_of(path)
                ));
                Ok(self.shared.inode(ino))
            }
        }
    }
}

impl Fs for ModelFs {
    type Lock = ModelLock;
    type Temp = PathBuf;

    /// Open (creating) `path`, then, as a separate step, wait until its inode's lock
    /// is free and take it. The wait is unbounded: `wait` is ignored, so that no
    /// time-dependent branch of the engine is ever taken inside a model (give the
    /// engine a lock wait far longer than any model runs).
    fn lock(&self, path: &Path, _wait: Duration) -> Result<ModelLock> {
        let inode = self.open_or_create(path, "open lock file")?;
        // open(2) and flock(2) are two calls: anything may happen in between.
        let mut flock = guard(&inode.flock);
        while flock.holder.is_some() {
            flock.waiters += 1;
            flock = inode
                .released
                .wait(flock)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            flock.waiters -= 1;
        }
        flock.holder = Some(self.process);
        self.log(format!("locks ino {}", inode.ino));
        drop(flock);
        Ok(ModelLock {
            shared: untracked::Arc::clone(&self.shared),
            process: self.process,
            inode,
        })
    }

    fn locked_identity(&self, lock: &ModelLock) -> Result<FileId> {
        Ok(FileId {
            dev: MODEL_DEV,
            ino: lock.inode.ino,
        })
    }

    fn unlock(&self, lock: ModelLock) -> Result<()> {
        drop(lock);
        Ok(())
    }

    /// Two steps, like `open` then `read`: find the inode, then read its contents.
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        let Some(inode) = self.shared.lookup(path) else {
            self.log(format!("reads {}: no such file", name_of(path)));
            return Ok(None);
        };
        let contents = inode.read();
        self.log(format!(
            "reads {} (ino {}) = {}",
            name_of(path),
            inode.ino,
            describe(&contents)
        ));
        Ok(Some(contents))
    }

    fn create_temp(&self, target: &Path, bytes: &[u8]) -> Result<PathBuf> {
        let ino = self.shared.create_inode(bytes.to_vec()).ino;
        let tmp = target.with_file_name(format!(
            "{}{}-{ino}",
            crate::fs::temp_prefix(&name_of(target)),
            process_name(self.process),
        ));
        self.log(format!(
            "writes {} (ino {ino}) = {}",
            name_of(&tmp),
            describe(bytes)
        ));
        untracked_guard(&self.shared.temps).insert(tmp.clone(), ino);
        Ok(tmp)
    }

    fn sync_temp(&self, temp: &PathBuf) -> Result<()> {
        self.log(format!("fsyncs {}", name_of(temp)));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let entry = self.shared.entry(to, "rename")?;
        let Some(ino) = untracked_guard(&self.shared.temps).remove(from) else {
            return Err(Error::io(
                "rename",
                from,
                io::Error::from(io::ErrorKind::NotFound),
            ));
        };
        let old = entry.swap(ino, SeqCst);
        let over = if old == NO_INODE {
            String::new()
        } else {
            format!(", replacing ino {old}")
        };
        self.log(format!(
            "renames {} over {} (ino {ino}{over})",
            name_of(from),
            name_of(to)
        ));
        Ok(())
    }

    fn sync_dir(&self, _path: &Path) -> Result<()> {
        self.log("fsyncs the directory".to_owned());
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let removed = match self.shared.entries.get(path) {
            Some(entry) => entry.swap(NO_INODE, SeqCst),
            None => untracked_guard(&self.shared.temps)
                .remove(path)
                .unwrap_or(NO_INODE),
        };
        let what = if removed == NO_INODE {
            "no such file".to_owned()
        } else {
            format!("ino {removed}")
        };
        self.log(format!("unlinks {} ({what})", name_of(path)));
        Ok(())
    }

    /// Open, then truncate and write the first half in one step, then the
    /// checkpoint (where a crash leaves the half-written file), then the rest in a
    /// second step: a lock-free reader can observe the half-written inode.
    fn write_in_place(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let (first, _) = bytes.split_at(bytes.len() / 2);
        let inode = self.open_or_create(path, "open for in-place write")?;
        inode.write(first);
        self.log(format!(
            "truncates ino {} and writes {} of {} bytes",
            inode.ino,
            first.len(),
            bytes.len()
        ));
        self.checkpoint(Step::MidWrite)?;
        inode.write(bytes);
        self.log(format!(
            "finishes writing ino {} in place = {}",
            inode.ino,
            describe(bytes)
        ));
        Ok(())
    }

    fn identity(&self, path: &Path) -> Result<Option<FileId>> {
        let ino = self.shared.lookup(path).map(|inode| inode.ino);
        let what = ino.map_or_else(|| "no such file".to_owned(), |ino| format!("ino {ino}"));
        self.log(format!("stats {}: {what}", name_of(path)));
        Ok(ino.map(|ino| FileId {
            dev: MODEL_DEV,
            ino,
        }))
    }

    fn checkpoint(&self, step: Step) -> Result<()> {
        if self.crash_at == Some(step) {
            self.log(format!("dies at step {}", step.name()));
            return Err(Error::new(ErrorKind::Crashed { step: step.name() }));
        }
        Ok(())
    }
}

#[cfg(all(test, not(any(feature = "loom", feature = "shuttle"))))]
mod tests {
    //! The model's file-system semantics, one process at a time (on `std`). The
    //! faults the models must find depend on each of these.

    use super::*;

    fn store() -> (ModelFs, Paths) {
        let paths = Paths::for_data("secrets");
        let fs = ModelFs::new(&paths);
        fs.install(&paths.data, b"v1".to_vec()).unwrap();
        (fs, paths)
    }

    const WAIT: Duration = Duration::from_secs(1);

    #[test]
    fn rename_points_the_name_at_a_new_inode_and_leaves_the_old_lock_behind() {
        let (fs, paths) = store();
        let held = fs.process(0).lock(&paths.data, WAIT).unwrap();
        let old = fs.locked_identity(&held).unwrap();
        let tmp = fs.create_temp(&paths.data, b"v2").unwrap();
        fs.rename(&tmp, &paths.data).unwrap();
        let new = fs.identity(&paths.data).unwrap().unwrap();
        assert_ne!(old, new, "rename must give the name a new inode");
        // The renamed-in inode is unlocked: a second process gets in while the
        // first still holds its lock (the lock-data-file fault).
        let second = fs.process(1).lock(&paths.data, WAIT).unwrap();
        assert_eq!(fs.locked_identity(&second).unwrap(), new);
        assert_eq!(fs.held_locks().len(), 2);
        assert_eq!(fs.contents(&paths.data).unwrap(), b"v2");
        assert!(
            fs.names()
                .iter()
                .all(|n| !n.to_string_lossy().contains("tmp"))
        );
    }

    #[test]
    fn unlinking_the_lock_file_lets_a_new_lock_inode_be_created_beside_the_held_one() {
        let (fs, paths) = store();
        let first = fs.process(0).lock(&paths.lock, WAIT).unwrap();
        fs.remove(&paths.lock).unwrap();
        let second = fs.process(1).lock(&paths.lock, WAIT).unwrap();
        assert_ne!(
            fs.locked_identity(&first).unwrap(),
            fs.locked_identity(&second).unwrap()
        );
        assert_eq!(fs.held_locks().len(), 2, "two processes hold \"the lock\"");
    }

    #[test]
    fn dropping_a_lock_handle_releases_the_lock() {
        let (fs, paths) = store();
        let lock = fs.process(0).lock(&paths.lock, WAIT).unwrap();
        assert_eq!(fs.held_locks().len(), 1);
        drop(lock);
        assert!(fs.held_locks().is_empty());
        drop(fs.process(1).lock(&paths.lock, WAIT).unwrap());
        assert!(fs.held_locks().is_empty());
    }

    #[test]
    fn a_crash_at_mid_write_leaves_the_half_written_file_in_place() {
        let (fs, paths) = store();
        let dying = fs.process(0).crashing_at(Step::MidWrite);
        let err = dying.write_in_place(&paths.data, b"abcdef").unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::Crashed { step: "mid-write" }
        ));
        assert_eq!(fs.contents(&paths.data).unwrap(), b"abc");
    }

    #[test]
    fn the_trace_records_every_operation_in_order() {
        let (fs, paths) = store();
        let p = fs.process(3);
        drop(p.lock(&paths.lock, WAIT).unwrap());
        p.read(&paths.data).unwrap();
        let trace = fs.trace();
        let lines: Vec<&str> = trace.lines().map(str::trim).collect();
        assert_eq!(lines.len(), 5, "{trace}");
        assert!(
            lines[1].ends_with("p3: creates and opens secrets.lock (ino 2)"),
            "{trace}"
        );
        assert!(lines[4].contains("p3: reads secrets (ino 1)"), "{trace}");
    }
}
