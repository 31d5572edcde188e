//! The `clobber-store` CLI, run as a real process in a fresh directory per test.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use predicates::prelude::*;

/// A scratch store in its own temporary directory.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A cheap (8 KiB Argon2id) store, initialised.
    fn init() -> Self {
        let s = Self::new();
        s.cmd()
            .args(["init", "--kdf-memory-kib", "8", "--kdf-iterations", "1"])
            .assert()
            .success();
        s
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("secrets_encrypted")
    }

    fn cmd(&self) -> Command {
        self.cmd_with("correct-horse")
    }

    fn cmd_with(&self, passphrase: &str) -> Command {
        let mut c = Command::cargo_bin("clobber-store").unwrap();
        c.env_clear()
            .env("CLOBBER_STORE_PATH", self.path())
            .env("CLOBBER_STORE_PASSPHRASE", passphrase)
            .current_dir(self.dir.path());
        c
    }

    fn set(&self, name: &str, value: &str) {
        self.cmd()
            .args(["set", name])
            .write_stdin(value)
            .assert()
            .success();
    }

    fn list(&self) -> Vec<String> {
        let out = self.cmd().arg("list").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn temp_files(&self) -> Vec<PathBuf> {
        clobber_store::fs::leftover_temp_files(&self.path()).unwrap()
    }
}

#[test]
fn set_then_get_round_trips() {
    let s = Scratch::init();
    s.set("github", "ghp_123\n");
    s.cmd()
        .args(["get", "github"])
        .assert()
        .success()
        .stdout("ghp_123\n");
}

#[test]
fn set_trims_exactly_one_trailing_newline() {
    let s = Scratch::init();
    s.set("a", "two\n\n");
    s.cmd()
        .args(["get", "a"])
        .assert()
        .success()
        .stdout("two\n\n");
    s.set("b", "none");
    s.cmd()
        .args(["get", "b"])
        .assert()
        .success()
        .stdout("none\n");
}

#[test]
fn set_creates_a_missing_store() {
    let s = Scratch::new();
    s.set("k", "v");
    assert_eq!(s.list(), ["k"]);
}

#[test]
fn missing_secret_is_exit_1_with_toolhive_message() {
    let s = Scratch::init();
    s.cmd()
        .args(["get", "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("secret not found: nope"));
    s.cmd()
        .args(["delete", "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("secret not found: nope"));
}

#[test]
fn delete_list_and_clear_do_what_they_say() {
    let s = Scratch::init();
    for k in ["b", "a", "c"] {
        s.set(k, "v");
    }
    assert_eq!(s.list(), ["a", "b", "c"]);
    s.cmd().args(["delete", "b"]).assert().success();
    assert_eq!(s.list(), ["a", "c"]);
    s.cmd().arg("clear").assert().success();
    assert!(s.list().is_empty());
}

#[test]
fn empty_name_and_empty_value_are_rejected_without_writing() {
    let s = Scratch::init();
    let before = fs::read(s.path()).unwrap();
    s.cmd()
        .args(["set", ""])
        .write_stdin("v")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("name must not be empty"));
    for empty in ["", "\n"] {
        s.cmd()
            .args(["set", "k"])
            .write_stdin(empty)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("must not be empty"));
    }
    assert_eq!(fs::read(s.path()).unwrap(), before);
}

#[test]
fn file_holds_no_plaintext_name_or_value() {
    let s = Scratch::init();
    s.set("PLAINTEXT_NAME_MARKER", "PLAINTEXT_VALUE_MARKER");
    let bytes = fs::read(s.path()).unwrap();
    for needle in [&b"PLAINTEXT_NAME_MARKER"[..], b"PLAINTEXT_VALUE_MARKER"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "plaintext found in the store file"
        );
    }
}

#[test]
fn store_and_lock_files_are_mode_0600() {
    let s = Scratch::init();
    s.set("k", "v");
    for p in [
        s.path(),
        PathBuf::from(format!("{}.lock", s.path().display())),
    ] {
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
}

#[test]
fn missing_key_or_path_is_a_usage_error() {
    let s = Scratch::init();
    s.cmd()
        .env_remove("CLOBBER_STORE_PASSPHRASE")
        .arg("list")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("CLOBBER_STORE_PASSPHRASE"));
    s.cmd()
        .env_remove("CLOBBER_STORE_PATH")
        .arg("list")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--store"));
}

#[test]
fn init_refuses_to_overwrite_a_store() {
    let s = Scratch::init();
    s.set("k", "v");
    s.cmd()
        .arg("init")
        .assert()
        .code(7)
        .stderr(predicate::str::contains("already exists"));
    assert_eq!(s.list(), ["k"]);
}

#[test]
fn key_files_raw_and_hex_work_and_wrong_ones_fail() {
    let s = Scratch::new();
    let hex = s.dir.path().join("key.hex");
    fs::write(&hex, format!("{}\n", "ab".repeat(32))).unwrap();
    let raw = s.dir.path().join("key.raw");
    fs::write(&raw, [0xab; 32]).unwrap();
    let with_key = |key: &Path| {
        let mut c = s.cmd();
        c.env_remove("CLOBBER_STORE_PASSPHRASE")
            .arg("--key-file")
            .arg(key);
        c
    };
    with_key(&hex)
        .args(["set", "k"])
        .write_stdin("v")
        .assert()
        .success();
    // The same 32 bytes written raw open the store too.
    with_key(&raw)
        .args(["get", "k"])
        .assert()
        .success()
        .stdout("v\n");

    let other = s.dir.path().join("other.raw");
    fs::write(&other, [0xcd; 32]).unwrap();
    with_key(&other).args(["get", "k"]).assert().code(4);

    let bad = s.dir.path().join("bad.key");
    fs::write(&bad, "not a key").unwrap();
    with_key(&bad)
        .args(["get", "k"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad key file").and(predicate::str::contains("bad.key")));
    // A passphrase cannot open a key-file store.
    s.cmd().args(["get", "k"]).assert().code(4);
}

#[test]
fn lock_held_elsewhere_times_out_with_exit_3() {
    let s = Scratch::init();
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("{}.lock", s.path().display()))
        .unwrap();
    lock.lock().unwrap();
    let before = fs::read(s.path()).unwrap();
    s.cmd()
        .args(["--lock-timeout-ms", "200", "set", "k"])
        .write_stdin("v")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("failed to acquire lock"));
    assert_eq!(fs::read(s.path()).unwrap(), before);
    // Reads never need the lock.
    assert!(s.list().is_empty());
    lock.unlock().unwrap();
    s.set("k", "v");
}

#[test]
fn unsafe_protocols_warn_loudly_and_unknown_ones_are_rejected() {
    let s = Scratch::init();
    s.cmd()
        .args(["--unsafe-protocol", "stale-snapshot", "list"])
        .assert()
        .success()
        .stderr(predicate::str::contains("WARNING").and(predicate::str::contains("UNSAFE")));
    s.cmd()
        .env("CLOBBER_STORE_UNSAFE_PROTOCOL", "no-lock")
        .arg("list")
        .assert()
        .success()
        .stderr(predicate::str::contains("no-lock"));
    s.cmd()
        .args(["--unsafe-protocol", "bogus", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("stale-snapshot"));
}

#[test]
fn durability_faults_are_selectable_and_behave_like_a_store_until_power_is_lost() {
    // no-fsync and no-dir-fsync lose writes only when the machine loses power (the
    // models and `clobber run --nemesis power-loss` show that); without a power loss
    // they must read and write like the correct store, or a checker that flags them
    // without one would be flagging something else.
    for fault in ["no-fsync", "no-dir-fsync"] {
        let s = Scratch::init();
        s.cmd()
            .env("CLOBBER_STORE_UNSAFE_PROTOCOL", fault)
            .args(["set", "k"])
            .write_stdin("v1")
            .assert()
            .success()
            .stderr(predicate::str::contains("UNSAFE").and(predicate::str::contains(fault)));
        s.cmd()
            .args(["--unsafe-protocol", fault, "get", "k"])
            .assert()
            .success()
            .stdout("v1\n");
        assert!(s.temp_files().is_empty(), "{fault} left a temporary file");
    }
}

/// Damage the store file, then check that every command reports the damage with
/// its own exit code and message, and that no command changes a single byte.
fn assert_damage_is_reported(damage: impl Fn(&mut Vec<u8>), code: i32, message: &str) {
    let s = Scratch::init();
    s.set("k", "v");
    let mut bytes = fs::read(s.path()).unwrap();
    damage(&mut bytes);
    fs::write(s.path(), &bytes).unwrap();
    let attempts: [(&[&str], &str); 5] = [
        (&["get", "k"], ""),
        (&["list"], ""),
        (&["set", "k2"], "v2"),
        (&["delete", "k"], ""),
        (&["clear"], ""),
    ];
    for (args, stdin) in attempts {
        s.cmd()
            .args(args)
            .write_stdin(stdin)
            .assert()
            .code(code)
            .stderr(predicate::str::contains(message));
        assert_eq!(
            fs::read(s.path()).unwrap(),
            bytes,
            "{args:?} changed the file"
        );
    }
    assert!(s.temp_files().is_empty());
}

#[test]
fn wrong_passphrase_is_exit_4_and_leaves_the_file_untouched() {
    let s = Scratch::init();
    s.set("k", "v");
    let before = fs::read(s.path()).unwrap();
    for args in [&["get", "k"][..], &["list"], &["clear"]] {
        s.cmd_with("wrong")
            .args(args)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("wrong passphrase"));
    }
    s.cmd_with("wrong")
        .args(["set", "k"])
        .write_stdin("x")
        .assert()
        .code(4);
    assert_eq!(fs::read(s.path()).unwrap(), before);
}

#[test]
fn flipped_byte_is_reported_as_tampering() {
    assert_damage_is_reported(
        |b| *b.last_mut().unwrap() ^= 0x01,
        5,
        "failed authentication",
    );
}

#[test]
fn flipped_header_byte_is_reported_as_damage() {
    assert_damage_is_reported(|b| b[30] ^= 0x01, 5, "header checksum");
}

#[test]
fn truncated_file_is_reported_as_truncated() {
    assert_damage_is_reported(|b| b.truncate(b.len() - 5), 5, "truncated");
}

#[test]
fn unknown_version_is_reported_as_such() {
    assert_damage_is_reported(|b| b[8] = 42, 5, "version 42");
}

#[test]
fn garbage_file_is_reported_as_not_a_store() {
    assert_damage_is_reported(
        |b| *b = br#"{"secrets":{"k":"v"}}"#.to_vec(),
        5,
        "not a clobber store",
    );
}

// ---------------------------------------------------------------------------
// Many processes at once.
// ---------------------------------------------------------------------------

const PROCESSES: usize = 8;
const KEYS_EACH: usize = 30;

/// `PROCESSES` concurrent workers each set `KEYS_EACH` distinct keys, one
/// `clobber-store set` process per key, with the test barrier configured by
/// `barrier` (`<step>:<parties>:<timeout-ms>`). Returns the keys that are missing
/// at the end.
fn lost_keys(protocol: &str, barrier: &str) -> Vec<String> {
    let s = Arc::new(Scratch::init());
    let barrier_dir = s.dir.path().join("barrier");
    fs::create_dir(&barrier_dir).unwrap();
    let spec = format!("{barrier}:{}", barrier_dir.display());
    let workers: Vec<_> = (0..PROCESSES)
        .map(|w| {
            let s = Arc::clone(&s);
            let spec = spec.clone();
            let protocol = protocol.to_owned();
            std::thread::spawn(move || {
                for i in 0..KEYS_EACH {
                    let out = s
                        .cmd()
                        .env("CLOBBER_STORE_UNSAFE_PROTOCOL", &protocol)
                        .env("CLOBBER_STORE_TEST_BARRIER", &spec)
                        .args(["--lock-timeout-ms", "60000", "set", &format!("w{w}_k{i}")])
                        .write_stdin(format!("value-{w}-{i}"))
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "worker {w} key {i}: {out:?}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert!(s.temp_files().is_empty(), "temporary files left behind");
    let present = s.list();
    (0..PROCESSES)
        .flat_map(|w| (0..KEYS_EACH).map(move |i| format!("w{w}_k{i}")))
        .filter(|k| !present.contains(k))
        .collect()
}

#[test]
fn correct_protocol_keeps_all_240_keys_under_forced_contention() {
    // Every generation of 8 processes reaches the lock at the same moment.
    let lost = lost_keys("", &format!("before-lock:{PROCESSES}:10000"));
    assert_eq!(lost, Vec::<String>::new());
}

#[test]
fn correct_protocol_keeps_all_keys_when_critical_sections_are_stretched() {
    // Each writer waits inside the lock for a partner that can never arrive.
    let lost = lost_keys("", "read:2:15");
    assert_eq!(lost, Vec::<String>::new());
}

#[test]
fn stale_snapshot_loses_writes() {
    // All 8 snapshots are taken before any write: 7 of every 8 writes vanish.
    let lost = lost_keys("stale-snapshot", &format!("before-lock:{PROCESSES}:10000"));
    eprintln!(
        "stale-snapshot lost {} / {}",
        lost.len(),
        PROCESSES * KEYS_EACH
    );
    // Exactly one write of each generation of 8 survives: the deterministic loss.
    assert_eq!(lost.len(), (PROCESSES - 1) * KEYS_EACH, "{lost:?}");
}

#[test]
fn no_lock_loses_writes() {
    // All 8 read before any writes, with no lock to order them.
    let lost = lost_keys("no-lock", &format!("before-write:{PROCESSES}:10000"));
    eprintln!("no-lock lost {} / {}", lost.len(), PROCESSES * KEYS_EACH);
    // Exactly one write of each generation of 8 survives: the deterministic loss.
    assert_eq!(lost.len(), (PROCESSES - 1) * KEYS_EACH, "{lost:?}");
}

#[test]
fn unlink_lock_loses_writes() {
    // A writer lingers inside its critical section; a process that opens the lock
    // path after the previous holder unlinked it locks a fresh inode and joins it.
    let lost = lost_keys("unlink-lock", "read:2:50");
    eprintln!(
        "unlink-lock lost {} / {}",
        lost.len(),
        PROCESSES * KEYS_EACH
    );
    assert!(!lost.is_empty());
}

#[test]
fn unlink_lock_polling_loses_writes() {
    // As unlink-lock, but a waiter polls its (old) lock inode every 100 ms: one that
    // wakes after the holder unlinked the file still gets that inode while a newcomer
    // locks a fresh one.
    let lost = lost_keys("unlink-lock-polling", "read:2:50");
    eprintln!(
        "unlink-lock-polling lost {} / {}",
        lost.len(),
        PROCESSES * KEYS_EACH
    );
    assert!(!lost.is_empty());
}

#[test]
fn lock_data_file_loses_writes() {
    let lost = lost_keys("lock-data-file", "read:2:50");
    eprintln!(
        "lock-data-file lost {} / {}",
        lost.len(),
        PROCESSES * KEYS_EACH
    );
    assert!(!lost.is_empty());
}

// ---------------------------------------------------------------------------
// Hardening: hostile headers, symbolic links, concurrent init, sizes, debris.
// ---------------------------------------------------------------------------

/// Hold the store's lock from this test process until the returned file drops.
fn hold_lock(s: &Scratch) -> fs::File {
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(format!("{}.lock", s.path().display()))
        .unwrap();
    lock.lock().unwrap();
    lock
}

#[test]
fn forged_kdf_iterations_are_damage_reported_at_once_without_taking_the_lock() {
    use sha2::Digest as _;
    let s = Scratch::init();
    s.set("k", "v");
    let mut bytes = fs::read(s.path()).unwrap();
    // The header checksum is not keyed: anyone who can write the file can
    // recompute it. 2^32-1 passes of Argon2id would run for days.
    bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    let check = sha2::Sha256::digest(&bytes[..76]);
    bytes[76..84].copy_from_slice(&check[..8]);
    fs::write(s.path(), &bytes).unwrap();
    // The lock is held here for the whole test: a command that tried to take it
    // would wait 60 s and exit 3, not 5.
    let _held = hold_lock(&s);
    for args in [&["get", "k"][..], &["set", "k"], &["list"]] {
        let start = std::time::Instant::now();
        let out = s
            .cmd()
            .args(["--lock-timeout-ms", "60000"])
            .args(args)
            .write_stdin("v2")
            .output()
            .unwrap();
        let took = start.elapsed();
        eprintln!("{args:?}: exit {:?} in {took:?}", out.status.code());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {stderr}");
        assert!(
            stderr.contains("iterations 4294967295 exceeds the limit of 16"),
            "{stderr}"
        );
        // Far below both the lock wait and any derivation with 2^32-1 passes.
        assert!(
            took < std::time::Duration::from_secs(30),
            "{args:?} took {took:?}"
        );
    }
    assert_eq!(
        fs::read(s.path()).unwrap(),
        bytes,
        "the file was not touched"
    );
}

#[test]
fn a_symlinked_store_path_is_followed_and_the_target_replaced_in_its_own_directory() {
    let s = Scratch::init();
    s.set("before", "1");
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("link-to-store");
    std::os::unix::fs::symlink(s.path(), &link).unwrap();
    let via_link = |args: &[&str], stdin: &str| {
        s.cmd()
            .env("CLOBBER_STORE_PATH", &link)
            .args(args)
            .write_stdin(stdin.to_owned())
            .assert()
    };
    via_link(&["set", "through-link"], "2").success();
    // The link is still a link, to the same file; no split into two stores.
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(&link).unwrap(), s.path());
    assert_eq!(s.list(), ["before", "through-link"]);
    s.set("direct", "3");
    via_link(&["get", "direct"], "").success().stdout("3\n");
    // The lock and temporary files live beside the target, not beside the link.
    let beside_link: Vec<_> = fs::read_dir(elsewhere.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside_link, ["link-to-store"]);
}

#[test]
fn of_many_concurrent_inits_exactly_one_succeeds() {
    const INITS: usize = 12;
    for trial in 0..5 {
        let s = Arc::new(Scratch::new());
        let start = Arc::new(std::sync::Barrier::new(INITS));
        let runs: Vec<_> = (0..INITS)
            .map(|_| {
                let (s, start) = (Arc::clone(&s), Arc::clone(&start));
                std::thread::spawn(move || {
                    let mut cmd = s.cmd();
                    cmd.args(["--lock-timeout-ms", "60000", "init"]).args([
                        "--kdf-memory-kib",
                        "8",
                        "--kdf-iterations",
                        "1",
                    ]);
                    start.wait();
                    cmd.output().unwrap()
                })
            })
            .collect();
        let codes: Vec<Option<i32>> = runs
            .into_iter()
            .map(|r| r.join().unwrap().status.code())
            .collect();
        let ok = codes.iter().filter(|c| **c == Some(0)).count();
        let exists = codes.iter().filter(|c| **c == Some(7)).count();
        assert_eq!((ok, exists), (1, INITS - 1), "trial {trial}: {codes:?}");
        assert!(s.list().is_empty());
    }
}

#[test]
fn a_value_over_one_mib_is_refused_with_the_limit_and_nothing_is_written() {
    let s = Scratch::init();
    s.set("k", "v");
    let before = fs::read(s.path()).unwrap();
    let limit = clobber_store::secrets::MAX_VALUE_LEN;
    s.cmd()
        .args(["set", "big"])
        .write_stdin("x".repeat(limit + 1))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "is {} bytes long; the limit is {limit} bytes",
            limit + 1
        )));
    assert_eq!(fs::read(s.path()).unwrap(), before);
    s.set("big", &"x".repeat(limit));
    assert_eq!(s.list(), ["big", "k"]);
}

#[test]
fn a_writer_removes_temporary_files_left_by_dead_writers() {
    let s = Scratch::init();
    let debris = s
        .dir
        .path()
        .join(".secrets_encrypted.tmp-4242-00000000deadbeef");
    fs::write(&debris, b"a complete copy of old secrets").unwrap();
    assert_eq!(s.temp_files().len(), 1);
    // Readers do not touch it (they take no lock, so they cannot know it is dead).
    assert!(s.list().is_empty());
    assert_eq!(s.temp_files().len(), 1);
    s.set("k", "v");
    assert!(s.temp_files().is_empty(), "the writer left the debris");
}

// ---------------------------------------------------------------------------
// Kill storm: many concurrent writers, SIGKILLed at random moments.
// ---------------------------------------------------------------------------

/// xorshift64*: enough randomness for kill timing, seeded and printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn kill_storm_of_2000_sets_loses_no_acknowledged_write_and_leaves_no_pile_of_temp_files() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const WRITERS: usize = 8;
    const SETS_EACH: usize = 250;
    let seed = std::env::var("CLOBBER_KILL_STORM_SEED").map_or_else(
        |_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        },
        |v| v.parse().unwrap(),
    );
    eprintln!("kill storm seed {seed} (CLOBBER_KILL_STORM_SEED={seed} replays the kill timing)");
    let s = Arc::new(Scratch::init());
    let alive = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let killed = Arc::new(AtomicUsize::new(0));
    let bin = assert_cmd::cargo::cargo_bin("clobber-store");

    // Samples the directory: (temp files seen, writers alive around the listing).
    let sampler = {
        let (s, alive, done) = (Arc::clone(&s), Arc::clone(&alive), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut worst = (0usize, 0usize);
            let mut samples: u64 = 0;
            let mut unreadable = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let before = alive.load(Ordering::SeqCst);
                let temps = s.temp_files().len();
                let after = alive.load(Ordering::SeqCst);
                let writers = before.max(after);
                // A writer SIGKILLed while holding the lock leaves its temporary
                // file until the next lock holder removes it: at most one such
                // file at a time, beside the live holder's own.
                assert!(
                    temps <= 2 && temps <= writers + 1,
                    "{temps} temporary files with {writers} writers alive"
                );
                if temps > worst.0 {
                    worst = (temps, writers);
                }
                samples += 1;
                if samples.is_multiple_of(20) {
                    let out = s.cmd().arg("list").output().unwrap();
                    if !out.status.success() {
                        unreadable.push(String::from_utf8_lossy(&out.stderr).into_owned());
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            (worst, samples, unreadable)
        })
    };

    let start = std::time::Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (s, alive, ack, killed, bin) = (
                Arc::clone(&s),
                Arc::clone(&alive),
                Arc::clone(&acknowledged),
                Arc::clone(&killed),
                bin.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                for i in 0..SETS_EACH {
                    let key = format!("w{w}_{i}");
                    let value = format!("value-{w}-{i}");
                    alive.fetch_add(1, Ordering::SeqCst);
                    let mut child = std::process::Command::new(&bin)
                        .env_clear()
                        .env("CLOBBER_STORE_PATH", s.path())
                        .env("CLOBBER_STORE_PASSPHRASE", "correct-horse")
                        .args(["--lock-timeout-ms", "60000", "set", &key])
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .unwrap();
                    {
                        use std::io::Write as _;
                        let mut stdin = child.stdin.take().unwrap();
                        let _ = stdin.write_all(value.as_bytes());
                    }
                    // One set in three is SIGKILLed after a random 0-8 ms.
                    if rng.next().is_multiple_of(3) {
                        std::thread::sleep(std::time::Duration::from_micros(rng.next() % 8000));
                        if child.kill().is_ok() {
                            killed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    let status = child.wait().unwrap();
                    alive.fetch_sub(1, Ordering::SeqCst);
                    if status.success() {
                        ack.lock().unwrap().push((key, value));
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let ((worst, worst_alive), samples, unreadable) = sampler.join().unwrap();
    let took = start.elapsed();

    let acknowledged = acknowledged.lock().unwrap().clone();
    let out = s.cmd().arg("list").output().unwrap();
    assert!(out.status.success(), "the store is unreadable: {out:?}");
    let present: std::collections::BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !present.contains(*k))
        .collect();
    // Spot-check values too (every 50th acknowledged write, each a process).
    for (k, v) in acknowledged.iter().step_by(50) {
        s.cmd()
            .args(["get", k])
            .assert()
            .success()
            .stdout(format!("{v}\n"));
    }
    let leftover = s.temp_files().len();
    eprintln!(
        "kill storm: {} sets, {} SIGKILLed, {} acknowledged, {} lost, {} unreadable reads, \
         most temporary files seen {worst} (with {worst_alive} writers alive) in {samples} samples, \
         {leftover} left at the end, {:.1} s",
        WRITERS * SETS_EACH,
        killed.load(Ordering::SeqCst),
        acknowledged.len(),
        lost.len(),
        unreadable.len(),
        took.as_secs_f64()
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(
        unreadable.is_empty(),
        "unreadable store during the storm: {unreadable:?}"
    );
    assert!(killed.load(Ordering::SeqCst) > 0, "no writer was killed");
    // The next writer removes whatever the last dead writer left.
    s.set("after-the-storm", "v");
    assert!(
        s.temp_files().is_empty(),
        "temporary files left after a clean write"
    );
}

#[test]
fn the_key_is_derived_and_checked_before_the_lock_so_a_wrong_passphrase_never_waits_for_it() {
    let s = Scratch::init();
    s.set("k", "v");
    // Held for the whole test: a set that derived its key under the lock would
    // wait 60 s for it and exit 3; deriving first, it learns the key is wrong.
    let _held = hold_lock(&s);
    s.cmd_with("wrong-horse")
        .args(["--lock-timeout-ms", "60000", "set", "k"])
        .write_stdin("v2")
        .assert()
        .code(4);
}
