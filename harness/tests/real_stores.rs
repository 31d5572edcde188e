//! The shipped adapters of real third-party stores, run for real: the stores that
//! serialise their read-modify-write pass, the ones that do not are caught.
//!
//! The stores are installed by `bash adapters/install.sh` (CI does it in `.ci/run`).
//! Where one is missing the test says so on stderr and skips — except under CI,
//! where a missing store is a failure, so that a broken install cannot turn these
//! tests into silent passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const SCENARIO: &str = "harness/tests/fixtures/short-delete-vs-set.toml";

/// The store's program as the adapter finds it, or `None` (after saying why).
fn installed(adapter: &str) -> bool {
    let a = clobber::adapter::Adapter::from_file(&root().join("adapters").join(adapter))
        .unwrap_or_else(|e| panic!("{e}"));
    match a.require_program() {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{e}: CI must install it (bash adapters/install.sh in .ci/run)"
            );
            eprintln!("SKIPPED {adapter}: {e}; run `bash adapters/install.sh`");
            false
        }
    }
}

fn run(adapter: &str, seed: u64) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clobber"))
        .args([
            "run",
            SCENARIO,
            "--store",
            &format!("adapters/{adapter}"),
            "--seed",
            &seed.to_string(),
            "--quiet",
        ])
        .current_dir(root())
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("clobber runs")
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn passes(adapter: &str) {
    if !installed(adapter) {
        return;
    }
    let out = run(adapter, 11);
    assert_eq!(out.status.code(), Some(0), "{adapter}: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Lost: 0 /"));
}

/// A lossy store loses a write in one of three short runs (each usually suffices).
fn loses_writes(adapter: &str) {
    if !installed(adapter) {
        return;
    }
    let mut seen = Vec::new();
    for seed in [21, 22, 23] {
        let out = run(adapter, seed);
        match out.status.code() {
            Some(1) => {
                let t = String::from_utf8_lossy(&out.stdout);
                assert!(t.contains("lost write"), "{adapter}: {}", text(&out));
                return;
            }
            // A short run that happened not to interleave badly.
            Some(0 | 2) => seen.push(text(&out)),
            _ => panic!("{adapter}: {}", text(&out)),
        }
    }
    panic!("{adapter}: no lost write in 3 runs:\n{}", seen.join("\n"));
}

#[test]
fn git_config_file_locking_loses_nothing() {
    passes("git-config.toml");
}

#[test]
fn sqlite3_transactions_lose_nothing() {
    passes("sqlite3.toml");
}

#[test]
fn crudini_lock_and_replace_loses_nothing() {
    passes("crudini.toml");
}

#[test]
fn python_dotenv_unlocked_rewrites_lose_writes() {
    loses_writes("python-dotenv.toml");
}

#[test]
fn keyring_plaintext_unlocked_rewrites_lose_writes() {
    loses_writes("keyring-plaintext.toml");
}
