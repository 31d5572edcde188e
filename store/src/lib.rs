//! # clobber-store: a reference encrypted secret store that never loses a write
//!
//! Many local tools keep secrets in one encrypted file and let several processes
//! write it. The classic bug: a process reads the file into memory, later takes the
//! file lock, and writes its *stale* map back, erasing what another process wrote in
//! between. The lock serialised the writes, not the read-modify-write.
//!
//! This crate is the correct version, kept small enough to read in one sitting:
//!
//! - **One mutation path.** [`Store::update`] takes an exclusive `flock` on a sidecar
//!   lock file, re-reads and decrypts the file *inside* the lock, applies the
//!   closure, encrypts, replaces the file, and unlocks. `set`, `delete` and `clear`
//!   are thin wrappers. There is no long-lived copy to go stale.
//! - **The lock** is on `<store>.lock`, which is never unlinked and is never the data
//!   file (a rename would move the lock away with the old inode). Waiting is bounded
//!   (default 5 s) and ends with a clear "lock busy" error.
//! - **Crash-safe replace:** a temporary file in the same directory, created 0600,
//!   written and fsynced, renamed over the store, then the directory fsynced.
//! - **Format** ([`mod@format`]): a header with magic, version, KDF parameters, salt and
//!   nonce, bound as AES-256-GCM associated data, then the ciphertext. Wrong key,
//!   tampering, truncation and unknown versions are distinct errors, and a file that
//!   fails to decrypt is never overwritten.
//! - **Keys** ([`key`]): Argon2id from a passphrase (parameters in the header), or a
//!   raw 32-byte key file. Keys, passphrases and plaintext are zeroized.
//!
//! ```
//! use clobber_store::{KdfParams, KeySource, StoreOptions};
//! # let dir = tempfile::tempdir().unwrap();
//! let mut store = StoreOptions::new(dir.path().join("secrets"), KeySource::passphrase("pw"))
//!     .new_store_params(KdfParams::CHEAP) // tests only: cheap Argon2id
//!     .open()?;
//! store.set("github", "ghp_example")?;
//! assert_eq!(store.get("github")?.as_deref().map(String::as_str), Some("ghp_example"));
//! store.update(|secrets| {
//!     secrets.remove("github");
//!     Ok(())
//! })?;
//! assert!(store.list()?.is_empty());
//! # Ok::<(), clobber_store::Error>(())
//! ```
//!
//! # The protocol, and its faulty twins
//!
//! The protocol is written once, in [`protocol`], against the [`Fs`] trait: [`StdFs`]
//! runs it on the real file system, and the model checkers run the very same code on
//! an in-memory inode-level model. [`Protocol`] also selects, at run time, the
//! historical bugs (`stale-snapshot`, `no-lock`, `in-place`, `unlink-lock`,
//! `lock-data-file`, `unlink-lock-polling`), so that every checker can be shown to catch them. They are
//! never the default and the CLI warns loudly when one is in use.

#![deny(missing_docs)]

pub mod barrier;
mod error;
pub mod format;
pub mod fs;
pub mod key;
pub mod model;
pub mod protocol;
pub mod secrets;
mod store;
pub mod sync;

pub use error::{Error, ErrorKind, Result};
pub use fs::StdFs;
pub use key::{KdfParams, Key, KeySource};
pub use protocol::{Codec, Engine, FileId, Fs, Paths, PlainCodec, Protocol, Step};
pub use secrets::{Secret, Secrets};
pub use store::{DEFAULT_LOCK_WAIT, Store, StoreOptions};
