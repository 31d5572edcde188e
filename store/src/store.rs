//! [`Store`]: the public face of the reference store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::Result;
use crate::format::Cipher;
use crate::fs::StdFs;
use crate::key::{KdfParams, KeySource};
use crate::protocol::{Engine, Paths, Protocol};
use crate::secrets::{self, Secret, Secrets};

/// How long a mutation waits for the lock by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Options for opening a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    path: PathBuf,
    key: KeySource,
    protocol: Protocol,
    lock_wait: Duration,
    new_params: KdfParams,
    honour_test_barrier: bool,
}

impl StoreOptions {
    /// Options for the store whose data file is `path`, opened with `key`.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>, key: KeySource) -> Self {
        Self {
            path: path.into(),
            key,
            protocol: Protocol::Correct,
            lock_wait: DEFAULT_LOCK_WAIT,
            new_params: KdfParams::DEFAULT,
            honour_test_barrier: false,
        }
    }

    /// Run a faulty protocol instead of the correct one. **Unsafe**: for testing
    /// checkers only.
    #[must_use]
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// How long a mutation waits for the lock (default 5 s).
    #[must_use]
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Argon2id cost for a store created by this handle (default 19 MiB, t = 2).
    /// An existing store keeps the parameters in its header.
    #[must_use]
    pub fn new_store_params(mut self, params: KdfParams) -> Self {
        self.new_params = params;
        self
    }

    /// Honour `CLOBBER_STORE_TEST_BARRIER` (see [`crate::barrier`]). Off by default.
    #[must_use]
    pub fn test_barrier_from_env(mut self, on: bool) -> Self {
        self.honour_test_barrier = on;
        self
    }

    /// Open the store. Nothing is read yet, except under the `stale-snapshot`
    /// protocol, which reads the whole map now (that is its bug).
    ///
    /// A store path that is a symbolic link is followed (through every link, like
    /// `open(2)`): the store is the file it names, replaced in *its* directory,
    /// with its lock file beside it. So a store reached through a link and through
    /// its real path is one store with one lock, and a write never turns the link
    /// into a regular file.
    ///
    /// # Errors
    /// A malformed test barrier; a symbolic link loop; for `stale-snapshot`, read
    /// and decode errors.
    pub fn open(self) -> Result<Store> {
        let path = resolve_symlinks(self.path.clone())?;
        let this = Self { path, ..self };
        this.open_resolved()
    }

    fn open_resolved(self) -> Result<Store> {
        let fs = if self.honour_test_barrier {
            StdFs::from_env()?
        } else {
            StdFs::new()
        };
        let mut engine = Engine::new(
            fs,
            Cipher::new(self.key, self.new_params),
            Paths::for_data(self.path),
            self.protocol,
            self.lock_wait,
        );
        engine.open()?;
        Ok(Store { engine })
    }
}

/// Follow `path` through symbolic links (at most 40, like Linux's `ELOOP` limit)
/// to the name of the file itself; the target need not exist yet.
fn resolve_symlinks(mut path: PathBuf) -> Result<PathBuf> {
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)
                    .map_err(|e| crate::Error::io("read symbolic link", &path, e))?;
                path = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(crate::Error::io(
        "follow symbolic links",
        &path,
        std::io::Error::other("more than 40 levels of symbolic links"),
    ))
}

/// An encrypted secret store in one file.
///
/// Every mutation goes through [`Store::update`], which holds an exclusive lock
/// across the whole read-modify-write; there is no cached copy that could go stale.
/// Reads decrypt the current file without the lock (the file is replaced
/// atomically, so a reader sees the old map or the new one).
#[derive(Debug)]
pub struct Store {
    engine: Engine<StdFs, Cipher>,
}

impl Store {
    /// Open the store at `path` with the correct protocol and default options.
    ///
    /// # Errors
    /// As [`StoreOptions::open`].
    pub fn open(path: impl Into<PathBuf>, key: KeySource) -> Result<Self> {
        StoreOptions::new(path, key).open()
    }

    /// The data file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.engine.paths().data
    }

    /// The sidecar lock file.
    #[must_use]
    pub fn lock_path(&self) -> &Path {
        &self.engine.paths().lock
    }

    /// The protocol this handle runs.
    #[must_use]
    pub fn protocol(&self) -> Protocol {
        self.engine.protocol()
    }

    /// Create an empty store file; fails if one exists.
    ///
    /// # Errors
    /// [`crate::ErrorKind::AlreadyExists`], lock and I/O errors.
    pub fn init(&mut self) -> Result<()> {
        self.engine.create()
    }

    /// Apply `f` to the current map under the exclusive lock and write the result.
    /// If `f` fails, nothing is written.
    ///
    /// # Errors
    /// Lock timeout; read/decrypt errors (the file is then left untouched); `f`'s
    /// error; write errors (no temporary file is left behind).
    pub fn update<R>(&mut self, f: impl FnOnce(&mut Secrets) -> Result<R>) -> Result<R> {
        self.engine.update(f)
    }

    /// Set `name` to `value`.
    ///
    /// # Errors
    /// Empty or invalid name, empty value, and any [`Store::update`] error.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        secrets::validate_name(name)?;
        secrets::validate_value(name, value)?;
        let value: Secret = Zeroizing::new(value.to_owned());
        self.update(|map| {
            map.insert(name.to_owned(), value);
            Ok(())
        })
    }

    /// Remove `name`; returns whether it was present.
    ///
    /// # Errors
    /// Any [`Store::update`] error.
    pub fn delete(&mut self, name: &str) -> Result<bool> {
        secrets::validate_name(name)?;
        self.update(|map| Ok(map.remove(name).is_some()))
    }

    /// Remove every secret; returns how many there were.
    ///
    /// # Errors
    /// Any [`Store::update`] error.
    pub fn clear(&mut self) -> Result<usize> {
        self.update(|map| {
            let n = map.len();
            map.clear();
            Ok(n)
        })
    }

    /// The value of `name`, if present (read without the lock).
    ///
    /// # Errors
    /// Read and decrypt errors.
    pub fn get(&mut self, name: &str) -> Result<Option<Secret>> {
        Ok(self.engine.read()?.remove(name))
    }

    /// Every secret name, sorted (read without the lock).
    ///
    /// # Errors
    /// Read and decrypt errors.
    pub fn list(&mut self) -> Result<Vec<String>> {
        Ok(self.engine.read()?.into_keys().collect())
    }

    /// The whole map (read without the lock).
    ///
    /// # Errors
    /// Read and decrypt errors.
    pub fn read_all(&mut self) -> Result<Secrets> {
        self.engine.read()
    }
}
