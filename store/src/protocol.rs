//! The locking protocol, written once against the [`Fs`] trait.
//!
//! Production runs it on [`crate::fs::StdFs`]; the model checkers run the *same
//! code* on an in-memory, inode-level model file system. That is the point: a model
//! of a copy proves nothing about the original.
//!
//! # The correct protocol ([`Protocol::Correct`])
//!
//! ```text
//! update(f):
//!   lock   = flock(open_or_create("<store>.lock"))     // never the data file, never unlinked
//!   check  identity(path "<store>.lock") == identity(lock), else retry
//!   map    = decode(read("<store>"))                    // re-read INSIDE the lock
//!   f(&mut map)
//!   tmp    = create_0600(".<store>.tmp-…"); write; fsync(tmp)
//!   rename(tmp, "<store>"); fsync(dir)
//!   unlock
//! read():  decode(read("<store>"))                      // no lock: rename is atomic
//! ```
//!
//! # The faulty protocols
//!
//! Each reproduces a bug that shipped in a real store, so that every checker can be
//! shown to catch it. They are selected at run time and never by default.
//!
//! | protocol | what it does wrong | what goes wrong |
//! |---|---|---|
//! | `stale-snapshot` | reads the map when the store is opened, writes it back under the lock | concurrent writes are erased (the seed bug) |
//! | `no-lock` | no lock at all | concurrent read-modify-writes lose updates |
//! | `in-place` | truncates and rewrites the data file | lock-free readers see torn files; a crash corrupts the store |
//! | `unlink-lock` | unlinks the lock file after releasing it | two processes hold "the lock" on different inodes |
//! | `unlink-lock-polling` | as `unlink-lock`, but waits by polling a non-blocking `flock` every 100 ms (like Go's common flock library) | the same, in a much narrower window |
//! | `lock-data-file` | flocks the data file, which rename replaces | the lock moves with the old inode; two writers get in |
//! | `no-fsync` | renames a temporary file that was never fsynced | after a power loss the store name points at an empty or partial file |
//! | `no-dir-fsync` | never fsyncs the directory after the rename | after a power loss the old file is back: acknowledged writes are lost |

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::secrets::Secrets;

/// Identity of a file: (device, inode) on Unix, an inode number in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// A step of the protocol, at which [`Fs::checkpoint`] is called. Tests pause
/// processes there to force an interleaving; models inject crashes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// `stale-snapshot` only: the map was read when the store was opened.
    Snapshot,
    /// About to take the lock (every mutation passes here).
    BeforeLock,
    /// The lock is held (or, for `no-lock`, would be).
    Locked,
    /// The current map has been read and decoded (or taken from the snapshot).
    Read,
    /// The new file contents are encoded; nothing has been written yet.
    BeforeWrite,
    /// `in-place` only: half of the new contents are in the data file.
    MidWrite,
    /// The temporary file is written and synced, not yet renamed.
    Written,
    /// The new file is in place and durable; the lock is still held.
    Renamed,
    /// The lock is released (and, for `unlink-lock` and `unlink-lock-polling`, its
    /// file unlinked).
    Unlocked,
}

impl Step {
    /// Every step, in protocol order.
    pub const ALL: [Step; 9] = [
        Step::Snapshot,
        Step::BeforeLock,
        Step::Locked,
        Step::Read,
        Step::BeforeWrite,
        Step::MidWrite,
        Step::Written,
        Step::Renamed,
        Step::Unlocked,
    ];

    /// The step's name, as used in `CLOBBER_STORE_TEST_BARRIER`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Step::Snapshot => "snapshot",
            Step::BeforeLock => "before-lock",
            Step::Locked => "locked",
            Step::Read => "read",
            Step::BeforeWrite => "before-write",
            Step::MidWrite => "mid-write",
            Step::Written => "written",
            Step::Renamed => "renamed",
            Step::Unlocked => "unlocked",
        }
    }
}

impl FromStr for Step {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Step::ALL
            .into_iter()
            .find(|step| step.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Step::ALL.iter().map(|s| s.name()).collect();
                Error::invalid(format!(
                    "unknown protocol step {s:?}; expected one of: {}",
                    names.join(", ")
                ))
            })
    }
}

/// Which protocol a store runs: the correct one, or one of the historical bugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// Lock, re-read, modify, replace atomically, unlock.
    #[default]
    Correct,
    /// UNSAFE: read at open, write the stale map under the lock (the seed bug).
    StaleSnapshot,
    /// UNSAFE: read-modify-write with no lock.
    NoLock,
    /// UNSAFE: truncate and rewrite the data file in place.
    InPlace,
    /// UNSAFE: unlink the lock file after releasing it.
    UnlinkLock,
    /// UNSAFE: flock the data file, which the rename replaces.
    LockDataFile,
    /// UNSAFE: unlink the lock file after releasing it, and wait for the lock by
    /// polling a non-blocking `flock` every [`POLL_INTERVAL`] (ToolHive's current
    /// release: Go's common flock library polls; the race window is narrow).
    UnlinkLockPolling,
    /// UNSAFE: rename the temporary file over the store without fsyncing it first.
    NoFsync,
    /// UNSAFE: never fsync the directory after renaming over the store.
    NoDirFsync,
}

/// How often `unlink-lock-polling` retries a busy lock: the 100 ms retry delay of
/// the Go flock library's `TryLockContext` as ToolHive calls it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

impl Protocol {
    /// Every faulty protocol.
    pub const FAULTS: [Protocol; 8] = [
        Protocol::StaleSnapshot,
        Protocol::NoLock,
        Protocol::InPlace,
        Protocol::UnlinkLock,
        Protocol::LockDataFile,
        Protocol::UnlinkLockPolling,
        Protocol::NoFsync,
        Protocol::NoDirFsync,
    ];

    /// The protocol's name on the command line and in `CLOBBER_STORE_UNSAFE_PROTOCOL`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Correct => "correct",
            Protocol::StaleSnapshot => "stale-snapshot",
            Protocol::NoLock => "no-lock",
            Protocol::InPlace => "in-place",
            Protocol::UnlinkLock => "unlink-lock",
            Protocol::LockDataFile => "lock-data-file",
            Protocol::UnlinkLockPolling => "unlink-lock-polling",
            Protocol::NoFsync => "no-fsync",
            Protocol::NoDirFsync => "no-dir-fsync",
        }
    }

    /// True for every protocol but [`Protocol::Correct`].
    #[must_use]
    pub fn is_faulty(self) -> bool {
        self != Protocol::Correct
    }

    /// One line on what this protocol does wrong (empty for the correct one).
    #[must_use]
    pub fn flaw(self) -> &'static str {
        match self {
            Protocol::Correct => "",
            Protocol::StaleSnapshot => {
                "reads the store at open and writes that stale map back under the lock"
            }
            Protocol::NoLock => "read-modify-writes without any lock",
            Protocol::InPlace => "truncates and rewrites the data file in place",
            Protocol::UnlinkLock => "unlinks the lock file after releasing it",
            Protocol::LockDataFile => "locks the data file, which every write renames over",
            Protocol::UnlinkLockPolling => {
                "unlinks the lock file after releasing it, and polls for the lock every 100 ms"
            }
            Protocol::NoFsync => {
                "renames a temporary file over the store without fsyncing it (a power loss can leave an empty store)"
            }
            Protocol::NoDirFsync => {
                "never fsyncs the directory after the rename (a power loss can bring back the old store)"
            }
        }
    }

    /// True if this protocol's writers exclude each other, so that a writer holding
    /// the lock may remove every temporary file it finds (see [`Engine::update`]).
    #[must_use]
    pub fn removes_dead_writers_temp_files(self) -> bool {
        self.lock_file_is_checked()
    }

    fn lock_file_is_checked(self) -> bool {
        matches!(
            self,
            Protocol::Correct
                | Protocol::StaleSnapshot
                | Protocol::InPlace
                | Protocol::NoFsync
                | Protocol::NoDirFsync
        )
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        std::iter::once(Protocol::Correct)
            .chain(Protocol::FAULTS)
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Protocol::FAULTS.iter().map(|p| p.name()).collect();
                Error::invalid(format!(
                    "unknown protocol {s:?}; the faulty protocols are: {}",
                    names.join(", ")
                ))
            })
    }
}

/// Every file-system effect of the protocol. Implemented on `std::fs` for production
/// and on an inode-level model for the model checkers.
///
/// Paths are the store's data path, lock path and temporary paths; a model may treat
/// them as plain names in one directory.
pub trait Fs {
    /// A held exclusive lock. Dropping it releases the lock, like closing the
    /// descriptor releases a `flock`.
    type Lock;

    /// An open temporary file, written by [`Fs::create_temp`]; it names its path.
    type Temp: AsRef<Path>;

    /// Open (creating if missing, mode 0600) the file at `path` and take an exclusive
    /// lock on it, waiting at most `wait`.
    ///
    /// # Errors
    /// [`ErrorKind::LockTimeout`] after `wait`; I/O errors.
    fn lock(&self, path: &Path, wait: Duration) -> Result<Self::Lock>;

    /// The identity of the file a held lock is on.
    ///
    /// # Errors
    /// I/O errors.
    fn locked_identity(&self, lock: &Self::Lock) -> Result<FileId>;

    /// As [`Fs::lock`], but wait by retrying a non-blocking lock every `poll` (the
    /// `unlink-lock-polling` fault). The default ignores `poll`: a model explores
    /// every interleaving anyway, so how a waiter waits changes nothing there.
    ///
    /// # Errors
    /// As [`Fs::lock`].
    fn lock_polling(&self, path: &Path, wait: Duration, poll: Duration) -> Result<Self::Lock> {
        let _ = poll;
        self.lock(path, wait)
    }

    /// Release a lock explicitly (dropping it does the same).
    ///
    /// # Errors
    /// I/O errors.
    fn unlock(&self, lock: Self::Lock) -> Result<()>;

    /// The whole contents of the file at `path`, or `None` if there is none.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>>;

    /// Create a new temporary file next to `target` (mode 0600 from the start) and
    /// write `bytes` into it. The contents are *not* durable yet (see
    /// [`Fs::sync_temp`]). Leaves nothing behind on error.
    ///
    /// # Errors
    /// I/O errors.
    fn create_temp(&self, target: &Path, bytes: &[u8]) -> Result<Self::Temp>;

    /// Make a temporary file's contents durable (`fsync`).
    ///
    /// # Errors
    /// I/O errors.
    fn sync_temp(&self, temp: &Self::Temp) -> Result<()>;

    /// Atomically rename `from` over `to`. The rename is *not* durable yet (see
    /// [`Fs::sync_dir`]).
    ///
    /// # Errors
    /// I/O errors.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;

    /// Make the entries of the directory holding `path` durable (`fsync` of the
    /// directory): creates, renames and unlinks in it survive a power loss from now on.
    ///
    /// # Errors
    /// I/O errors.
    fn sync_dir(&self, path: &Path) -> Result<()>;

    /// The temporary files next to `target` (names starting with
    /// [`crate::fs::temp_prefix`]), as [`Fs::create_temp`] names them.
    ///
    /// # Errors
    /// I/O errors listing the directory.
    fn temp_files(&self, target: &Path) -> Result<Vec<PathBuf>>;

    /// Remove the name `path`; a missing file is not an error.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    fn remove(&self, path: &Path) -> Result<()>;

    /// `in-place` only: truncate the file at `path` (creating it, mode 0600) and write
    /// `bytes` into it, calling `checkpoint(Step::MidWrite)` halfway.
    ///
    /// # Errors
    /// I/O errors.
    fn write_in_place(&self, path: &Path, bytes: &[u8]) -> Result<()>;

    /// The identity of the file named `path`, or `None` if there is none.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    fn identity(&self, path: &Path) -> Result<Option<FileId>>;

    /// Called at every [`Step`]. Tests pause here; models inject crashes by
    /// returning an error.
    ///
    /// # Errors
    /// Whatever the implementation injects.
    fn checkpoint(&self, step: Step) -> Result<()> {
        let _ = step;
        Ok(())
    }
}

/// Turns the map into file contents and back. The real codec encrypts
/// ([`crate::format::Cipher`]); the model uses the plain encoding ([`PlainCodec`]).
pub trait Codec {
    /// What a decoded file tells the next write (the real codec: the header, so the
    /// salt and KDF parameters are kept).
    type Meta: Clone;

    /// Decode a whole file.
    ///
    /// # Errors
    /// Any format or key error.
    fn decode(&mut self, bytes: &[u8]) -> Result<(Secrets, Self::Meta)>;

    /// Decode a whole file that the caller no longer needs, so that the codec may
    /// work in place (the real codec decrypts in the read buffer).
    ///
    /// # Errors
    /// As [`Codec::decode`].
    fn decode_owned(&mut self, bytes: Vec<u8>) -> Result<(Secrets, Self::Meta)> {
        self.decode(&bytes)
    }

    /// Whether [`Codec::prepare`] does anything: if so, the engine calls it before
    /// taking the lock and checks [`Codec::is_prepared`] under it.
    fn needs_preparation(&self) -> bool {
        false
    }

    /// Do, outside the lock, the expensive work that decoding `file` (the store's
    /// current contents, `None` if there is none) or creating a store will need.
    /// The real codec derives the key here: Argon2id takes tens of milliseconds,
    /// and its parameters come from a header nobody has authenticated yet.
    ///
    /// # Errors
    /// Header errors (damage, bounds), and a wrong key.
    fn prepare(&mut self, file: Option<&[u8]>) -> Result<()> {
        let _ = file;
        Ok(())
    }

    /// Whether decoding `file` (or creating a store, if `None`) needs no work that
    /// [`Codec::prepare`] has not done.
    fn is_prepared(&self, file: Option<&[u8]>) -> bool {
        let _ = file;
        true
    }

    /// Encode a whole file; `previous` is the metadata of the file being replaced.
    /// Whatever `previous` says must carry over unchanged (the real codec keeps the
    /// salt and KDF parameters), so that it also describes the file just encoded.
    ///
    /// # Errors
    /// Any encoding error.
    fn encode(&mut self, secrets: &Secrets, previous: Option<&Self::Meta>) -> Result<Vec<u8>>;
}

/// The unencrypted codec: file contents are [`crate::secrets::encode`] of the map.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainCodec;

impl Codec for PlainCodec {
    type Meta = ();

    fn decode(&mut self, bytes: &[u8]) -> Result<(Secrets, ())> {
        Ok((crate::secrets::decode(bytes)?, ()))
    }

    fn encode(&mut self, secrets: &Secrets, _previous: Option<&()>) -> Result<Vec<u8>> {
        crate::secrets::check_limits(secrets)?;
        Ok(crate::secrets::encode(secrets).to_vec())
    }
}

/// The names a store uses: its data file and its sidecar lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The encrypted data file.
    pub data: PathBuf,
    /// The sidecar lock file, `<data>.lock`.
    pub lock: PathBuf,
}

impl Paths {
    /// The paths of the store whose data file is `data`.
    #[must_use]
    pub fn for_data(data: impl Into<PathBuf>) -> Self {
        let data = data.into();
        let mut lock = data.clone().into_os_string();
        lock.push(".lock");
        Self {
            data,
            lock: PathBuf::from(lock),
        }
    }
}

/// The protocol engine: one per process (the `stale-snapshot` fault keeps its
/// snapshot here, exactly like the seed's long-lived manager).
///
/// A long-lived engine also remembers the exact bytes it last wrote and the map they
/// encode. Inside the lock it always reads the file; only if the file still holds
/// exactly those bytes does it reuse that map instead of decrypting again (equal
/// bytes decode to an equal map). That saves a decryption per write for a process
/// that writes repeatedly, and can never go stale.
pub struct Engine<F: Fs, C: Codec> {
    fs: F,
    codec: C,
    paths: Paths,
    protocol: Protocol,
    lock_wait: Duration,
    snapshot: Option<(Secrets, Option<C::Meta>)>,
    last_written: Option<Written<C::Meta>>,
    /// Set by [`Engine::create`]: the update must find no store under the lock.
    creating: bool,
}

/// The exact file contents this engine last wrote, with the map they encode.
struct Written<M> {
    bytes: Vec<u8>,
    map: Secrets,
    meta: Option<M>,
}

/// Shows where and how, never what: the snapshot and the remembered map hold secrets.
impl<F: Fs + fmt::Debug, C: Codec> fmt::Debug for Engine<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("fs", &self.fs)
            .field("paths", &self.paths)
            .field("protocol", &self.protocol)
            .field("lock_wait", &self.lock_wait)
            .field(
                "snapshot",
                &self.snapshot.as_ref().map(|(m, _)| SecretCount(m.len())),
            )
            .field(
                "last_written",
                &self.last_written.as_ref().map(|w| SecretCount(w.map.len())),
            )
            .finish_non_exhaustive()
    }
}

/// Debug output for a map of secrets: how many, nothing else.
struct SecretCount(usize);

impl fmt::Debug for SecretCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} secrets>", self.0)
    }
}

impl<F: Fs, C: Codec> Engine<F, C> {
    /// An engine; nothing is read until [`Engine::open`] or the first operation.
    pub fn new(fs: F, codec: C, paths: Paths, protocol: Protocol, lock_wait: Duration) -> Self {
        Self {
            fs,
            codec,
            paths,
            protocol,
            lock_wait,
            snapshot: None,
            last_written: None,
            creating: false,
        }
    }

    /// Called when a store is opened. Only `stale-snapshot` does anything: it reads
    /// the whole map now, outside any lock, and will write it back later.
    ///
    /// # Errors
    /// Read and decode errors of the snapshot.
    pub fn open(&mut self) -> Result<()> {
        if self.protocol == Protocol::StaleSnapshot {
            let (map, meta) = self.load()?;
            self.snapshot = Some((map, meta));
            self.fs.checkpoint(Step::Snapshot)?;
        }
        Ok(())
    }

    /// The file system this engine runs on.
    pub fn fs(&self) -> &F {
        &self.fs
    }

    /// The store's paths.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The protocol this engine runs.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Read and decode the current map, without any lock. A missing file is an
    /// empty store.
    ///
    /// # Errors
    /// Read and decode errors; the file is never written here.
    pub fn read(&mut self) -> Result<Secrets> {
        Ok(self.load()?.0)
    }

    fn load(&mut self) -> Result<(Secrets, Option<C::Meta>)> {
        self.load_reusing(None)
    }

    /// Read and decode the current file; if it holds exactly the bytes of `written`,
    /// take `written`'s map instead of decoding again. Equal bytes decode to an equal
    /// map, so this can never be stale: the file is still read, inside the lock, every
    /// time. (Compare `stale-snapshot`, which never looks at the file at all.)
    fn load_reusing(
        &mut self,
        written: Option<Written<C::Meta>>,
    ) -> Result<(Secrets, Option<C::Meta>)> {
        let data = &self.paths.data;
        match self.fs.read(data)? {
            None => Ok((Secrets::new(), None)),
            // The lock-data-file protocol creates the data file to lock it.
            Some(bytes) if bytes.is_empty() && self.protocol == Protocol::LockDataFile => {
                Ok((Secrets::new(), None))
            }
            Some(bytes) if written.as_ref().is_some_and(|w| w.bytes == bytes) => {
                let written = written.expect("checked above");
                Ok((written.map, written.meta))
            }
            Some(bytes) => {
                let (map, meta) = self
                    .codec
                    .decode_owned(bytes)
                    .map_err(|e| e.with_path(data))?;
                Ok((map, Some(meta)))
            }
        }
    }

    fn acquire(&self) -> Result<F::Lock> {
        let path = if self.protocol == Protocol::LockDataFile {
            &self.paths.data
        } else {
            &self.paths.lock
        };
        let start = std::time::Instant::now();
        loop {
            let remaining = self.lock_wait.saturating_sub(start.elapsed());
            let lock = if self.protocol == Protocol::UnlinkLockPolling {
                self.fs.lock_polling(path, remaining, POLL_INTERVAL)?
            } else {
                self.fs.lock(path, remaining)?
            };
            if !self.protocol.lock_file_is_checked() {
                return Ok(lock);
            }
            // Our lock file is never unlinked, but another program might do it (or
            // replace it). If the name no longer points at the inode we locked, our
            // lock excludes nobody: drop it and lock whatever the name points at now.
            let held = self.fs.locked_identity(&lock)?;
            if self.fs.identity(path)? == Some(held) {
                return Ok(lock);
            }
            drop(lock);
            if start.elapsed() >= self.lock_wait {
                return Err(Error::at(
                    ErrorKind::LockTimeout {
                        waited: self.lock_wait,
                    },
                    path,
                ));
            }
        }
    }

    /// Replace the file `data` with `bytes`, atomically and durably: temporary file,
    /// fsync, rename, fsync of the directory. The two faults `no-fsync` and
    /// `no-dir-fsync` each skip one of the syncs; the models find both.
    fn replace(&self, data: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.fs.create_temp(data, bytes)?;
        if self.protocol != Protocol::NoFsync {
            // Durable before it becomes visible: otherwise a power loss after the
            // (durable) rename can leave the store name on an empty or partial file.
            if let Err(e) = self.fs.sync_temp(&tmp) {
                let _ = self.fs.remove(tmp.as_ref());
                return Err(e);
            }
        }
        self.fs.checkpoint(Step::Written)?;
        if let Err(e) = self.fs.rename(tmp.as_ref(), data) {
            let _ = self.fs.remove(tmp.as_ref());
            return Err(e);
        }
        drop(tmp);
        if self.protocol != Protocol::NoDirFsync {
            // The rename lives in the directory: until the directory is fsynced a
            // power loss can bring back the old file, losing an acknowledged write.
            self.fs.sync_dir(data)?;
        }
        Ok(())
    }

    /// Take the lock (none for `no-lock`) with the codec ready for the file as it
    /// is under the lock. The key is derived *before* locking, from the file as
    /// it is then (a damaged or out-of-bounds header, or a wrong key, fails here
    /// without ever holding the lock); under the lock, if the file's header has
    /// changed meanwhile (the store was re-created), the lock is released and the
    /// key derived again. So no key derivation runs while the lock is held, and
    /// none on the strength of a header read under it.
    fn lock_prepared(&mut self) -> Result<Option<F::Lock>> {
        let start = std::time::Instant::now();
        loop {
            if self.codec.needs_preparation() {
                let file = self.fs.read(&self.paths.data)?;
                let prepared = self.codec.prepare(file.as_deref());
                // A half-written file is what `in-place` readers see; its writer
                // will finish it, so only the decode under the lock may judge it.
                if self.protocol != Protocol::InPlace {
                    prepared.map_err(|e| e.with_path(&self.paths.data))?;
                }
            }
            let lock = if self.protocol == Protocol::NoLock {
                None
            } else {
                Some(self.acquire()?)
            };
            if !self.codec.needs_preparation() {
                return Ok(lock);
            }
            let file = self.fs.read(&self.paths.data)?;
            if self.codec.is_prepared(file.as_deref()) {
                return Ok(lock);
            }
            drop(lock);
            if start.elapsed() >= self.lock_wait {
                return Err(Error::at(
                    ErrorKind::LockTimeout {
                        waited: self.lock_wait,
                    },
                    &self.paths.lock,
                ));
            }
        }
    }

    /// Remove the temporary files of writers that died (kill -9, power loss).
    ///
    /// Why every temporary file found here is a dead writer's: a writer creates
    /// its temporary file only while it holds the lock (in [`Engine::replace`],
    /// between reading the map and the rename), and renames or removes it before
    /// releasing the lock. We hold the lock now, checked against the name (see
    /// `acquire`), so no living writer of a protocol that locks is between those two
    /// points: the file's creator died holding the lock, and nobody will ever
    /// rename it. Best effort: debris left behind costs disk, never correctness,
    /// so a failure here must not fail the write.
    fn remove_dead_writers_temp_files(&self) {
        if let Ok(orphans) = self.fs.temp_files(&self.paths.data) {
            for orphan in orphans {
                let _ = self.fs.remove(&orphan);
            }
        }
    }

    /// The one mutation path: lock, re-read, apply `f`, replace, unlock. If `f`
    /// returns an error nothing is written.
    ///
    /// # Errors
    /// Lock timeout, read/decode errors (the file is then never written), `f`'s
    /// error, encode and write errors.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut Secrets) -> Result<R>) -> Result<R> {
        self.fs.checkpoint(Step::BeforeLock)?;
        let lock = self.lock_prepared()?;
        self.fs.checkpoint(Step::Locked)?;
        if lock.is_some() && self.protocol.removes_dead_writers_temp_files() {
            self.remove_dead_writers_temp_files();
        }
        let written = self.last_written.take();
        let (mut map, meta) = match self.snapshot.take() {
            Some(snapshot) if self.protocol == Protocol::StaleSnapshot => snapshot,
            _ => self.load_reusing(written)?,
        };
        self.fs.checkpoint(Step::Read)?;
        if self.creating && meta.is_some() {
            // Another init got there first: checked under the lock, so of many
            // concurrent inits exactly one writes the store.
            return Err(Error::at(ErrorKind::AlreadyExists, &self.paths.data));
        }
        let result = f(&mut map)?;
        let bytes = self.codec.encode(&map, meta.as_ref())?;
        self.fs.checkpoint(Step::BeforeWrite)?;
        let data = self.paths.data.clone();
        if self.protocol == Protocol::InPlace {
            self.fs.write_in_place(&data, &bytes)?;
        } else {
            self.replace(&data, &bytes)?;
        }
        self.fs.checkpoint(Step::Renamed)?;
        if self.protocol == Protocol::StaleSnapshot {
            // The seed's manager kept its in-memory map and went on using it.
            self.snapshot = Some((map, meta));
        } else if meta.is_some() {
            // Remember what we wrote: if the file still holds exactly these bytes at
            // our next update, decrypting them again would give back this very map.
            // (`meta` describes the file we replaced, and the codec carries it over
            // unchanged; a store this write created has none yet, so the next update
            // decodes the file and learns it.)
            self.last_written = Some(Written { bytes, map, meta });
        }
        if let Some(lock) = lock {
            self.fs.unlock(lock)?;
            if matches!(
                self.protocol,
                Protocol::UnlinkLock | Protocol::UnlinkLockPolling
            ) {
                self.fs.remove(&self.paths.lock)?;
            }
        }
        self.fs.checkpoint(Step::Unlocked)?;
        Ok(result)
    }

    /// Create an empty store; fails if one exists.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`], or any [`Engine::update`] error.
    pub fn create(&mut self) -> Result<()> {
        let data = self.paths.data.clone();
        let exists = self.fs.identity(&data)?.is_some();
        if exists
            && !(self.protocol == Protocol::LockDataFile
                && self.fs.read(&data)?.is_some_and(|b| b.is_empty()))
        {
            return Err(Error::at(ErrorKind::AlreadyExists, &data));
        }
        self.creating = true;
        let created = self.update(|map| {
            if map.is_empty() {
                Ok(())
            } else {
                Err(Error::at(ErrorKind::AlreadyExists, &data))
            }
        });
        self.creating = false;
        created
    }
}
