//! The shipped adapters of real third-party stores, validated for real with
//! `clobber validate`: the stores that serialise their read-modify-write exit 0,
//! the ones that do not exit 1.
//!
//! Each test runs `clobber validate adapters/<store>.toml --scenarios
//! harness/tests/data/real-stores --runs 1` with a fixed seed: two short scenarios
//! (a delete-vs-set and an 8-writer lock storm, small enough for stores that start
//! a Python interpreter per operation).
//!
//! A correct store gets the default variant (`cli`, the stores as users run them)
//! and must pass both runs first time, no retry. (Under `perturb`, git config
//! refuses most writes on its busy lock, so the victims observe too little for a
//! pass: inconclusive, rightly, and no evidence either way.)
//!
//! A lossy store is caught only if some run actually loses a write, which depends
//! on the OS's interleaving; so it also gets the `perturb` variant, which widens
//! every store's read-modify-write window the same way whatever the store: four
//! runs, each of which usually loses several writes. If none does, the whole
//! validation is repeated once with the next seed (a bounded retry); two
//! validations in a row that catch nothing fail the test.
//!
//! The stores are installed by `bash adapters/install.sh` (CI does it in `.ci/run`).
//! Where one is missing the test says so on stderr and skips — except under CI,
//! where a missing store is a failure, so that a broken install cannot turn these
//! tests into silent passes.

use crate::common::{root, text};
use std::path::PathBuf;
use std::process::{Command, Output};

/// Short scenarios for slow real stores (see the files' comments).
const SCENARIOS: &str = "harness/tests/data/real-stores";

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

/// `clobber validate` of one adapter: its output and its JSON report.
fn validate(adapter: &str, variants: &str, seed: u64) -> (Output, serde_json::Value) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("real-{adapter}-{seed}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test's directory");
    let json = dir.join("v.json");
    let out = Command::new(env!("CARGO_BIN_EXE_clobber"))
        .args([
            "validate",
            &format!("adapters/{adapter}"),
            "--scenarios",
            SCENARIOS,
            "--runs",
            "1",
            "--variants",
            variants,
            "--seed",
            &seed.to_string(),
            "--quiet",
            "--json",
            json.to_str().expect("a UTF-8 path"),
        ])
        .current_dir(root())
        // Failing runs keep their scratch directory: keep those out of /tmp.
        .env("TMPDIR", &dir)
        .output()
        .expect("clobber runs");
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("{adapter}: no JSON report: {}", text(&out)));
    (out, report)
}

/// The matrix's cells: 2 scenarios x `variants` x 1 run.
fn cells(report: &serde_json::Value, variants: usize) -> &Vec<serde_json::Value> {
    let cells = report["cells"].as_array().expect("cells");
    assert_eq!(
        cells.len(),
        2 * variants,
        "one run per scenario and variant: {report}"
    );
    cells
}

/// Exit 0, and every run ran, passed, and had acknowledged writes to check.
fn passes(adapter: &str) {
    if !installed(adapter) {
        return;
    }
    let (out, report) = validate(adapter, "cli", 11);
    assert_eq!(out.status.code(), Some(0), "{adapter}: {}", text(&out));
    for c in cells(&report, 1) {
        assert_eq!(c["verdict"], "pass", "{adapter}: {c}");
        assert_eq!(c["lost"], 0, "{adapter}: {c}");
        assert!(
            c["acknowledged"].as_u64().unwrap_or(0) > 0,
            "{adapter}: {c}"
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict: PASS (exit 0)"), "{stdout}");
}

/// Exit 1, with each violation's replay command; one retry with the next seed
/// when no run of the first validation happened to lose a write.
fn loses_writes(adapter: &str) {
    if !installed(adapter) {
        return;
    }
    let mut missed = Vec::new();
    for seed in [21, 22] {
        let (out, report) = validate(adapter, "cli,perturb", seed);
        for c in cells(&report, 2) {
            assert!(
                c["exit_code"].as_u64().is_some_and(|e| e <= 2),
                "{adapter}: a run could not be carried out: {c}"
            );
        }
        match out.status.code() {
            Some(1) => {
                let caught: Vec<_> = cells(&report, 2)
                    .iter()
                    .filter(|c| c["verdict"] == "violation")
                    .collect();
                assert!(!caught.is_empty(), "{adapter}: {report}");
                for c in caught {
                    let violations = c["report"]["violations"].as_array();
                    assert!(violations.is_some_and(|v| !v.is_empty()), "{c}");
                    assert!(c["replay"].as_str().is_some_and(|r| r.contains(" run ")));
                }
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(stdout.contains("verdict: VIOLATION (exit 1)"), "{stdout}");
                return;
            }
            // Four short runs that happened not to interleave badly.
            Some(0 | 2) => missed.push(text(&out)),
            _ => panic!("{adapter}: {}", text(&out)),
        }
    }
    panic!(
        "{adapter}: no violation in 2 validations:\n{}",
        missed.join("\n")
    );
}

#[test]
fn git_config_file_locking_validates_with_exit_0() {
    passes("git-config.toml");
}

#[test]
fn sqlite3_transactions_validate_with_exit_0() {
    passes("sqlite3.toml");
}

#[test]
fn crudini_lock_and_replace_validates_with_exit_0() {
    passes("crudini.toml");
}

#[test]
fn python_dotenv_unlocked_rewrites_fail_validation_with_exit_1() {
    loses_writes("python-dotenv.toml");
}

#[test]
fn keyring_plaintext_unlocked_rewrites_fail_validation_with_exit_1() {
    loses_writes("keyring-plaintext.toml");
}
