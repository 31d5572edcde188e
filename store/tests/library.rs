//! The library API: a model-based property test against a `BTreeMap`, and failure
//! injection at the file-system trait.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use clobber_store::format::{Cipher, Header};
use clobber_store::fs::leftover_temp_files;
use clobber_store::{
    Engine, Error, ErrorKind, FileId, Fs, KdfParams, KeySource, Paths, Protocol, Result, StdFs,
    Step, Store, StoreOptions,
};
use proptest::prelude::*;

fn open(path: &Path) -> Store {
    StoreOptions::new(path, KeySource::passphrase("pw"))
        .new_store_params(KdfParams::CHEAP)
        .open()
        .unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Set(String, String),
    Get(String),
    Delete(String),
    List,
    Clear,
    Reopen,
    /// Continue with the other of two long-lived handles on the same store.
    Switch,
}

fn op() -> impl Strategy<Value = Op> {
    let key = prop::sample::select(vec!["a", "b", "c", "d", "ünï"]).prop_map(str::to_owned);
    prop_oneof![
        4 => (key.clone(), "[a-z0-9 ]{1,8}").prop_map(|(k, v)| Op::Set(k, v)),
        3 => key.clone().prop_map(Op::Get),
        2 => key.prop_map(Op::Delete),
        1 => Just(Op::List),
        1 => Just(Op::Clear),
        1 => Just(Op::Reopen),
        2 => Just(Op::Switch),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn store_behaves_like_a_btreemap(ops in prop::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let mut handles = [open(&path), open(&path)];
        let mut cur = 0;
        let mut model: BTreeMap<String, String> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Set(k, v) => {
                    handles[cur].set(&k, &v).unwrap();
                    model.insert(k, v);
                }
                Op::Get(k) => {
                    let got = handles[cur].get(&k).unwrap().map(|v| v.to_string());
                    prop_assert_eq!(got, model.get(&k).cloned());
                }
                Op::Delete(k) => {
                    prop_assert_eq!(handles[cur].delete(&k).unwrap(), model.remove(&k).is_some());
                }
                Op::List => {
                    prop_assert_eq!(handles[cur].list().unwrap(), model.keys().cloned().collect::<Vec<_>>());
                }
                Op::Clear => {
                    prop_assert_eq!(handles[cur].clear().unwrap(), model.len());
                    model.clear();
                }
                Op::Reopen => handles[cur] = open(&path),
                Op::Switch => cur = 1 - cur,
            }
        }
        let all: BTreeMap<String, String> = open(&path)
            .read_all()
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        prop_assert_eq!(all, model);
        prop_assert!(leftover_temp_files(&path).unwrap().is_empty());
    }
}

#[test]
fn a_long_lived_handle_never_writes_back_what_another_process_replaced() {
    // A handle reuses the map it wrote only while the file holds exactly those bytes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut a = open(&path);
    let mut b = open(&path);
    a.set("a", "1").unwrap();
    a.set("a2", "1").unwrap();
    b.set("b", "2").unwrap();
    a.set("c", "3").unwrap();
    b.set("d", "4").unwrap();
    b.set("d", "5").unwrap();
    a.set("e", "6").unwrap();
    assert_eq!(open(&path).list().unwrap(), ["a", "a2", "b", "c", "d", "e"]);
    assert_eq!(open(&path).get("d").unwrap().unwrap().as_str(), "5");
}

#[test]
fn repeated_writes_keep_the_salt_and_kdf_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut store = open(&path);
    store.set("k", "0").unwrap();
    let first = Header::parse(&std::fs::read(&path).unwrap()).unwrap();
    for i in 1..4 {
        store.set("k", &i.to_string()).unwrap();
        let now = Header::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!((now.salt, now.params), (first.salt, first.params));
        assert_ne!(now.nonce, first.nonce);
    }
    open(&path).set("k", "other").unwrap();
    store.set("k", "again").unwrap();
    let last = Header::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!((last.salt, last.params), (first.salt, first.params));
}

#[test]
fn debug_output_never_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut store = open(&path);
    store.set("name", "SECRET_VALUE_MARKER").unwrap();
    store.set("other", "v").unwrap();
    let stale = StoreOptions::new(&path, KeySource::passphrase("pw"))
        .new_store_params(KdfParams::CHEAP)
        .protocol(Protocol::StaleSnapshot)
        .open()
        .unwrap();
    let key = KeySource::passphrase("PASSPHRASE_MARKER");
    let shown = format!("{store:?} {stale:?} {key:?}");
    assert!(!shown.contains("SECRET_VALUE_MARKER"), "{shown}");
    assert!(!shown.contains("PASSPHRASE_MARKER"), "{shown}");
    assert!(shown.contains("<2 secrets>"), "{shown}");
}

#[test]
fn a_failed_closure_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut store = open(&path);
    store.set("k", "v").unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = store
        .update(|map| {
            map.clear();
            Err::<(), _>(Error::invalid("changed my mind"))
        })
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Invalid { .. }));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn stale_snapshot_handle_erases_a_write_made_after_it_opened() {
    // The seed bug, in one process: the snapshot taken at open wins over a write that
    // landed in between.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut stale = StoreOptions::new(&path, KeySource::passphrase("pw"))
        .new_store_params(KdfParams::CHEAP)
        .protocol(Protocol::StaleSnapshot)
        .open()
        .unwrap();
    open(&path).set("my-secret", "value").unwrap();
    stale.set("_churn_1", "v1").unwrap();
    assert_eq!(open(&path).get("my-secret").unwrap(), None);

    // The correct protocol re-reads inside the lock.
    let mut fresh = open(&path);
    open(&path).set("my-secret", "value").unwrap();
    fresh.set("_churn_1", "v2").unwrap();
    assert!(open(&path).get("my-secret").unwrap().is_some());
}

/// `StdFs`, except that one operation fails.
struct FailingFs {
    inner: StdFs,
    fail_rename: bool,
    crash_at: Option<Step>,
}

impl Fs for FailingFs {
    type Lock = <StdFs as Fs>::Lock;
    type Temp = <StdFs as Fs>::Temp;
    fn lock(&self, path: &Path, wait: Duration) -> Result<Self::Lock> {
        self.inner.lock(path, wait)
    }
    fn locked_identity(&self, lock: &Self::Lock) -> Result<FileId> {
        self.inner.locked_identity(lock)
    }
    fn unlock(&self, lock: Self::Lock) -> Result<()> {
        self.inner.unlock(lock)
    }
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        self.inner.read(path)
    }
    fn create_temp(&self, target: &Path, bytes: &[u8]) -> Result<Self::Temp> {
        self.inner.create_temp(target, bytes)
    }
    fn sync_temp(&self, temp: &Self::Temp) -> Result<()> {
        self.inner.sync_temp(temp)
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        if self.fail_rename {
            return Err(Error::io("rename", to, std::io::Error::other("injected")));
        }
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> Result<()> {
        self.inner.sync_dir(path)
    }
    fn temp_files(&self, target: &Path) -> Result<Vec<std::path::PathBuf>> {
        self.inner.temp_files(target)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        self.inner.remove(path)
    }
    fn write_in_place(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.inner.write_in_place(path, bytes)
    }
    fn identity(&self, path: &Path) -> Result<Option<FileId>> {
        self.inner.identity(path)
    }
    fn checkpoint(&self, step: Step) -> Result<()> {
        if self.crash_at == Some(step) {
            return Err(Error::new(ErrorKind::Crashed { step: step.name() }));
        }
        Ok(())
    }
}

fn engine(path: &Path, fs: FailingFs) -> Engine<FailingFs, Cipher> {
    Engine::new(
        fs,
        Cipher::new(KeySource::passphrase("pw"), KdfParams::CHEAP),
        Paths::for_data(path),
        Protocol::Correct,
        Duration::from_secs(5),
    )
}

#[test]
fn a_failed_rename_leaves_no_temp_file_and_the_old_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    open(&path).set("k", "v").unwrap();
    let before = std::fs::read(&path).unwrap();
    let fs = FailingFs {
        inner: StdFs::new(),
        fail_rename: true,
        crash_at: None,
    };
    let err = engine(&path, fs)
        .update(|m| {
            m.clear();
            Ok(())
        })
        .unwrap_err();
    assert!(
        !err.is_definite(),
        "an I/O error during replace is indeterminate"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(leftover_temp_files(&path).unwrap().is_empty());
}

#[test]
fn a_crash_at_any_step_releases_the_lock_and_keeps_a_whole_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    open(&path).set("k", "v").unwrap();
    for step in Step::ALL {
        let fs = FailingFs {
            inner: StdFs::new(),
            fail_rename: false,
            crash_at: Some(step),
        };
        let _ = engine(&path, fs).update(|m| {
            m.insert("crash".into(), zeroize::Zeroizing::new(step.name().into()));
            Ok(())
        });
        // The store is whole (old or new), and the next writer gets the lock at once.
        let mut store = StoreOptions::new(&path, KeySource::passphrase("pw"))
            .lock_wait(Duration::from_millis(100))
            .open()
            .unwrap();
        assert!(store.get("k").unwrap().is_some(), "after crash at {step:?}");
        store.set("k", "v").unwrap();
    }
}

/// A valid store file, sealed with the cheapest KDF, holding a couple of secrets.
fn sealed_file() -> Vec<u8> {
    let mut map = clobber_store::Secrets::new();
    map.insert("name".into(), zeroize::Zeroizing::new("value".into()));
    map.insert("other".into(), zeroize::Zeroizing::new("x".repeat(40)));
    Cipher::new(KeySource::passphrase("pw"), KdfParams::CHEAP)
        .seal(&map, None)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Whatever the bytes, decoding returns a map or an error: it never panics, and
    /// never allocates by a length field it has not checked against the input.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = clobber_store::secrets::decode(&bytes);
        let _ = Header::parse(&bytes);
        let _ = Cipher::new(KeySource::passphrase("pw"), KdfParams::CHEAP).open(&bytes);
    }

    /// A real file with bytes changed, cut or appended: an error or the map, never a
    /// panic (the header checksum is recomputed half the time, as a forger would,
    /// so the KDF bounds and the key check are reached too).
    #[test]
    fn opening_a_damaged_store_file_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        tail in prop::collection::vec(any::<u8>(), 0..8),
        forge in any::<bool>(),
    ) {
        use sha2::Digest as _;
        let mut file = sealed_file();
        for (at, byte) in edits {
            let i = at.index(file.len());
            file[i] = byte;
        }
        if forge {
            let check = sha2::Sha256::digest(&file[..76]);
            file[76..84].copy_from_slice(&check[..8]);
        }
        file.truncate(cut.index(file.len() + 1));
        file.extend_from_slice(&tail);
        let _ = Cipher::new(KeySource::passphrase("pw"), KdfParams::CHEAP).open(&file);
    }
}

#[test]
fn a_map_over_the_limits_is_an_error_through_update_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut store = open(&path);
    store.set("k", "v").unwrap();
    let before = std::fs::read(&path).unwrap();
    let over = "x".repeat(clobber_store::secrets::MAX_VALUE_LEN + 1);
    let err = store
        .update(|map| {
            map.insert("huge".into(), zeroize::Zeroizing::new(over));
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Invalid { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing was written");
}
