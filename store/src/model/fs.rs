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
//! - **durability**: each inode's data as a power loss would leave it (set at its
//!   `fsync`), and the directory as a power loss would leave it (set at the
//!   directory's `fsync`) with the operations made since, in order. That is what
//!   tells `no-fsync` and `no-dir-fsync` from the correct protocol.
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
    /// What a power loss leaves of `contents`: set at `fsync` of the file. Read only
    /// by the power-loss check, which decides nothing about the schedule.
    durable: untracked::Mutex<Vec<u8>>,
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

    /// `fsync`: the contents as they are now survive a power loss.
    fn sync(&self) {
        self.generation.load(SeqCst);
        let contents = untracked_guard(&self.contents).clone();
        *untracked_guard(&self.durable) = contents;
    }
}

/// A change to the directory, volatile until the directory is fsynced.
#[derive(Debug, Clone)]
enum DirOp {
    /// `name` now points at `ino` (a create).
    Link { name: PathBuf, ino: u64 },
    /// `name` is gone (an unlink).
    Unlink { name: PathBuf },
    /// `from` moved over `to`, atomically.
    Rename {
        from: PathBuf,
        to: PathBuf,
        ino: u64,
    },
}

impl DirOp {
    fn apply(&self, dir: &mut BTreeMap<PathBuf, u64>) {
        match self {
            DirOp::Link { name, ino } => {
                dir.insert(name.clone(), *ino);
            }
            DirOp::Unlink { name } => {
                dir.remove(name);
            }
            DirOp::Rename { from, to, ino } => {
                dir.remove(from);
                dir.insert(to.clone(), *ino);
            }
        }
    }
}

/// The power-loss check: what must survive, and the first state that did not.
#[derive(Debug, Default)]
struct PowerLoss {
    /// Every secret that must be in the store after a power loss at this point: the
    /// store's durable contents at the start, and every acknowledged write since.
    must_survive: Vec<(String, String)>,
    /// The first violation found (later ones add nothing to the witness).
    violation: Option<String>,
    /// Crash states judged so far.
    states: u64,
}

type InodeRef = untracked::Arc<Inode>;

#[derive(Debug)]
struct Shared {
    /// The shared names (data file, lock file): each a checked inode number.
    entries: BTreeMap<PathBuf, AtomicU64>,
    /// Temporary names → inode numbers. Accessed only right after a checked
    /// operation on `temps_generation` (bumped by every change, loaded by every
    /// listing): a writer lists them under the lock to remove dead writers' files.
    temps: untracked::Mutex<BTreeMap<PathBuf, u64>>,
    temps_generation: AtomicU64,
    /// The data file's name: what the power-loss check looks at.
    data: PathBuf,
    /// The directory as a power loss would leave it if no pending operation had
    /// reached the disk: updated at every fsync of the directory.
    durable_dir: untracked::Mutex<BTreeMap<PathBuf, u64>>,
    /// Directory operations since the last fsync of the directory, in order.
    pending_dir: untracked::Mutex<Vec<DirOp>>,
    /// `Some` once the power-loss check is on ([`ModelFs::check_power_loss`]).
    power: untracked::Mutex<Option<PowerLoss>>,
    /// Locks taken, by every process (a lock-identity retry takes one more).
    locks_taken: untracked::AtomicU64,
    /// Every inode ever created, by number (inodes are never freed: a lock handle
    /// or a reader may still hold an unnamed one).
    inodes: untracked::Mutex<BTreeMap<u64, InodeRef>>,
    next_ino: untracked::AtomicU64,
    trace: untracked::Mutex<Vec<String>>,
}

impl Shared {
    /// A new inode; its contents are durable only if `durable` (set-up files).
    fn create_inode(&self, contents: Vec<u8>, durable: bool) -> InodeRef {
        let ino = self.next_ino.fetch_add(1, untracked::Ordering::Relaxed) + 1;
        let inode = untracked::Arc::new(Inode {
            ino,
            generation: AtomicU64::new(0),
            durable: untracked::Mutex::new(if durable {
                contents.clone()
            } else {
                Vec::new()
            }),
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

    /// Append to the trace.
    fn log(&self, process: usize, event: String) {
        self.trace_len_after(process, event);
    }

    fn trace_len_after(&self, process: usize, event: String) -> usize {
        let mut trace = untracked_guard(&self.trace);
        trace.push(format!("{}: {event}", process_name(process)));
        trace.len()
    }

    /// Append to the trace, then judge a power loss right after this operation.
    /// Called after every operation that can make a power loss worse: a change to
    /// the directory or to a file's data, and an acknowledgement. The others read,
    /// lock, or make something durable, which only removes states.
    fn log_then_power_loss(&self, process: usize, event: String) {
        let step = self.trace_len_after(process, event);
        self.check_power_loss(step);
    }

    fn dir_op(&self, op: DirOp) {
        untracked_guard(&self.pending_dir).push(op);
    }

    /// Every state a power loss right now may leave the data file in, judged
    /// against what must survive. The ordering rules (as ALICE states them for a
    /// journaling file system such as ext4, Pillai et al., OSDI 2014): directory
    /// operations reach the disk in the order they were made, so any prefix of the
    /// pending ones may have; all of them have once the directory is fsynced. A
    /// file's data reaches it at its fsync, and unsynced data may or may not have
    /// (a partial write decodes no better than an empty file).
    fn check_power_loss(&self, step: usize) {
        let mut power = untracked_guard(&self.power);
        let Some(power) = power.as_mut() else {
            return;
        };
        if power.violation.is_some() {
            return;
        }
        let durable = untracked_guard(&self.durable_dir).clone();
        let pending = untracked_guard(&self.pending_dir).clone();
        // The data file's inode once `persisted` pending operations reached the disk.
        let data_after = |persisted: usize| {
            let mut dir = durable.clone();
            for op in &pending[..persisted] {
                op.apply(&mut dir);
            }
            dir.get(&self.data).copied()
        };
        // Without a power loss first: a write lost even then is not the disk's doing.
        let now = data_after(pending.len());
        let contents = now.map(|ino| untracked_guard(&self.inode(ino).contents).clone());
        power.states += 1;
        if let Some(problem) = judge_power_loss(contents.as_deref(), &power.must_survive) {
            power.violation = Some(format!(
                "after step {step}, without any power loss: {problem}"
            ));
            return;
        }
        for persisted in 0..=pending.len() {
            let mut states = Vec::new();
            match data_after(persisted) {
                None => states.push((None, String::new())),
                Some(ino) => {
                    let inode = self.inode(ino);
                    let durable = untracked_guard(&inode.durable).clone();
                    let contents = untracked_guard(&inode.contents).clone();
                    if contents == durable {
                        states.push((Some(durable), format!(" (ino {ino}, synced)")));
                    } else {
                        states.push((Some(contents), format!(" (ino {ino}, unsynced data kept)")));
                        states.push((Some(durable), format!(" (ino {ino}, unsynced data lost)")));
                    }
                }
            }
            for (contents, how) in states {
                power.states += 1;
                if let Some(problem) = judge_power_loss(contents.as_deref(), &power.must_survive) {
                    power.violation = Some(format!(
                        "power loss after step {step}, with {persisted} of {} unsynced directory operations on disk, leaves {}{how}: {problem}",
                        pending.len(),
                        name_of(&self.data),
                    ));
                    return;
                }
            }
        }
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

    /// The inode named `path` (checked entry, or temporary name: only its creator
    /// looks one up).
    fn lookup(&self, path: &Path) -> Option<InodeRef> {
        let ino = match self.entries.get(path) {
            Some(entry) => entry.load(SeqCst),
            None => *untracked_guard(&self.temps).get(path)?,
        };
        (ino != NO_INODE).then(|| self.inode(ino))
    }
}

/// What is wrong with a store file a power loss left behind, if anything.
fn judge_power_loss(contents: Option<&[u8]>, must_survive: &[(String, String)]) -> Option<String> {
    let Some(bytes) = contents else {
        return Some("the store file is gone".to_owned());
    };
    let map = match crate::secrets::decode(bytes) {
        Ok(map) => map,
        Err(e) => {
            return Some(format!(
                "the store does not decode ({e}): {}",
                describe(bytes)
            ));
        }
    };
    let lost: Vec<String> = must_survive
        .iter()
        .filter(|(k, v)| map.get(k).map(|s| s.as_str()) != Some(v.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    (!lost.is_empty()).then(|| {
        format!(
            "acknowledged {} lost (the store holds {})",
            lost.join(", "),
            describe(bytes)
        )
    })
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
                temps_generation: AtomicU64::new(0),
                data: paths.data.clone(),
                durable_dir: untracked::Mutex::new(BTreeMap::new()),
                pending_dir: untracked::Mutex::new(Vec::new()),
                power: untracked::Mutex::new(None),
                locks_taken: untracked::AtomicU64::new(0),
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
        let ino = self.shared.create_inode(contents, true).ino;
        entry.store(ino, SeqCst);
        untracked_guard(&self.shared.durable_dir).insert(path.to_path_buf(), ino);
        self.log(format!(
            "installs {} (ino {ino}) = {summary}",
            name_of(path)
        ));
        Ok(())
    }

    /// Judge a power loss after every file-system operation from now on: in every
    /// state the ordering rules allow, the store must decode and hold `must_survive`
    /// and every write acknowledged (through [`ModelFs::acknowledge`]) so far.
    pub fn check_power_loss(&self, must_survive: &crate::secrets::Secrets) {
        let must_survive = must_survive
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
            .collect();
        *untracked_guard(&self.shared.power) = Some(PowerLoss {
            must_survive,
            ..PowerLoss::default()
        });
        self.log_checked("turns on the power-loss check".to_owned());
    }

    /// The process's `set key=value` returned success: from now on it must survive
    /// a power loss.
    pub fn acknowledge(&self, key: &str, value: &str) {
        if let Some(power) = untracked_guard(&self.shared.power).as_mut() {
            power.must_survive.push((key.to_owned(), value.to_owned()));
        }
        self.log_checked(format!("set {key}={value} acknowledged"));
    }

    /// The first power-loss state that lost an acknowledged write or left an
    /// unreadable store, with the step after which the power failed.
    #[must_use]
    pub fn power_loss_violation(&self) -> Option<String> {
        untracked_guard(&self.shared.power)
            .as_ref()
            .and_then(|p| p.violation.clone())
    }

    /// How many power-loss states have been judged.
    #[must_use]
    pub fn power_loss_states(&self) -> u64 {
        untracked_guard(&self.shared.power)
            .as_ref()
            .map_or(0, |p| p.states)
    }

    /// How many locks every process together has taken (one per update, plus one
    /// per lock-identity retry).
    #[must_use]
    pub fn locks_taken(&self) -> u64 {
        self.shared.locks_taken.load(untracked::Ordering::Relaxed)
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

    /// Log an operation that can make a power loss worse, then judge one.
    fn log_checked(&self, event: String) {
        self.shared.log_then_power_loss(self.process, event);
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
        let fresh = self.shared.create_inode(Vec::new(), false);
        match entry.compare_exchange(NO_INODE, fresh.ino, SeqCst, SeqCst) {
            Ok(_) => {
                self.shared.dir_op(DirOp::Link {
                    name: path.to_path_buf(),
                    ino: fresh.ino,
                });
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
    /// is free and take it. Time is not modelled: a zero `wait` tries once and
    /// times out if the lock is held (the engine's lock-timeout path), any other
    /// wait is unbounded (give the engine a lock wait far longer than any model runs).
    fn lock(&self, path: &Path, wait: Duration) -> Result<ModelLock> {
        let inode = self.open_or_create(path, "open lock file")?;
        // open(2) and flock(2) are two calls: anything may happen in between.
        let mut flock = guard(&inode.flock);
        if wait.is_zero() && flock.holder.is_some() {
            drop(flock);
            self.log(format!("gives up on the busy lock on ino {}", inode.ino));
            return Err(Error::at(ErrorKind::LockTimeout { waited: wait }, path));
        }
        while flock.holder.is_some() {
            flock.waiters += 1;
            flock = inode
                .released
                .wait(flock)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            flock.waiters -= 1;
        }
        flock.holder = Some(self.process);
        self.shared
            .locks_taken
            .fetch_add(1, untracked::Ordering::Relaxed);
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
        let ino = self.shared.create_inode(bytes.to_vec(), false).ino;
        let tmp = target.with_file_name(format!(
            "{}{}-{ino}",
            crate::fs::temp_prefix(&name_of(target)),
            process_name(self.process),
        ));
        self.shared.temps_generation.fetch_add(1, SeqCst);
        untracked_guard(&self.shared.temps).insert(tmp.clone(), ino);
        self.shared.dir_op(DirOp::Link {
            name: tmp.clone(),
            ino,
        });
        self.log(format!(
            "writes {} (ino {ino}) = {}",
            name_of(&tmp),
            describe(bytes)
        ));
        Ok(tmp)
    }

    /// Only the creator knows a temporary file's name until it is renamed, so
    /// looking it up needs no checked operation; the sync itself is one step.
    fn sync_temp(&self, temp: &PathBuf) -> Result<()> {
        let ino = untracked_guard(&self.shared.temps).get(temp).copied();
        let Some(ino) = ino else {
            return Err(Error::io(
                "fsync temporary file",
                temp,
                io::Error::from(io::ErrorKind::NotFound),
            ));
        };
        self.shared.inode(ino).sync();
        self.log(format!("fsyncs {} (ino {ino})", name_of(temp)));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let entry = self.shared.entry(to, "rename")?;
        self.shared.temps_generation.fetch_add(1, SeqCst);
        let Some(ino) = untracked_guard(&self.shared.temps).remove(from) else {
            return Err(Error::io(
                "rename",
                from,
                io::Error::from(io::ErrorKind::NotFound),
            ));
        };
        let old = entry.swap(ino, SeqCst);
        self.shared.dir_op(DirOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            ino,
        });
        let over = if old == NO_INODE {
            String::new()
        } else {
            format!(", replacing ino {old}")
        };
        self.log_checked(format!(
            "renames {} over {} (ino {ino}{over})",
            name_of(from),
            name_of(to)
        ));
        Ok(())
    }

    /// Reads every entry (checked: it orders against every change of the
    /// directory), then makes every pending directory operation durable.
    fn sync_dir(&self, _path: &Path) -> Result<()> {
        for entry in self.shared.entries.values() {
            entry.load(SeqCst);
        }
        self.shared.temps_generation.load(SeqCst);
        let pending: Vec<DirOp> = untracked_guard(&self.shared.pending_dir)
            .drain(..)
            .collect();
        {
            let mut durable = untracked_guard(&self.shared.durable_dir);
            for op in &pending {
                op.apply(&mut durable);
            }
        }
        self.log(format!(
            "fsyncs the directory ({} operations made durable)",
            pending.len()
        ));
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let removed = match self.shared.entries.get(path) {
            Some(entry) => entry.swap(NO_INODE, SeqCst),
            None => {
                self.shared.temps_generation.fetch_add(1, SeqCst);
                untracked_guard(&self.shared.temps)
                    .remove(path)
                    .unwrap_or(NO_INODE)
            }
        };
        let what = if removed == NO_INODE {
            "no such file".to_owned()
        } else {
            self.shared.dir_op(DirOp::Unlink {
                name: path.to_path_buf(),
            });
            format!("ino {removed}")
        };
        self.log_checked(format!("unlinks {} ({what})", name_of(path)));
        Ok(())
    }

    fn temp_files(&self, target: &Path) -> Result<Vec<PathBuf>> {
        let prefix = crate::fs::temp_prefix(&name_of(target));
        self.shared.temps_generation.load(SeqCst);
        let found: Vec<PathBuf> = untracked_guard(&self.shared.temps)
            .keys()
            .filter(|name| name_of(name).starts_with(&prefix))
            .cloned()
            .collect();
        self.log(format!(
            "lists the directory: {} temporary files",
            found.len()
        ));
        Ok(found)
    }

    /// Open, then truncate and write the first half in one step, then the
    /// checkpoint (where a crash leaves the half-written file), then the rest in a
    /// second step: a lock-free reader can observe the half-written inode.
    fn write_in_place(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let (first, _) = bytes.split_at(bytes.len() / 2);
        let inode = self.open_or_create(path, "open for in-place write")?;
        inode.write(first);
        self.log_checked(format!(
            "truncates ino {} and writes {} of {} bytes",
            inode.ino,
            first.len(),
            bytes.len()
        ));
        self.checkpoint(Step::MidWrite)?;
        inode.write(bytes);
        // As on the real file system: faulty, but not needlessly so.
        inode.sync();
        self.log_checked(format!(
            "finishes writing ino {} in place and fsyncs it = {}",
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
