//! Slow stores (0.5 s per operation, like a Python CLI on a loaded machine):
//! `clear-vs-set` follows the store's speed, a lossy one is caught or inconclusive
//! and never passes, a correct one passes; and a run that observed too little is
//! inconclusive, never PASS.
//!
//! The stores are `fixtures/kv-file-store.sh` under flock (correct) or without a
//! lock (read, wait, write back: loses writes).

use crate::common::{root, text};
use std::process::{Command, Output};

fn run(scenario: &str, store: &str, seed: u64) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clobber"))
        .args([
            "run",
            scenario,
            "--store",
            store,
            "--seed",
            &seed.to_string(),
            "--max-duration-ms",
            "25000",
            "--quiet",
        ])
        .current_dir(root())
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("clobber runs")
}

const LOSSY: &str = "harness/tests/fixtures/slow-unlocked.toml";
const CORRECT: &str = "harness/tests/fixtures/slow-locked.toml";

#[test]
fn clear_vs_set_on_a_slow_lossy_store_is_caught_or_inconclusive_never_pass() {
    let out = run("scenarios/clear-vs-set.toml", LOSSY, 3);
    let t = text(&out);
    assert!(matches!(out.status.code(), Some(1 | 2)), "{t}");
    assert!(t.contains("store latency (median of 3): clear"), "{t}");
}

#[test]
fn clear_vs_set_on_a_slow_correct_store_passes() {
    let out = run("scenarios/clear-vs-set.toml", CORRECT, 3);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
}

#[test]
fn a_slow_run_whose_reads_saw_almost_nothing_is_inconclusive_not_pass() {
    // The pauses as they were (absolute): on a 0.5 s store almost every read
    // overlaps a clear. This used to PASS with 3 of 121 reads seeing a value.
    let out = run(
        "harness/tests/fixtures/clear-vs-set-literal.toml",
        CORRECT,
        3,
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("too little observed to pass") && t.contains("reads saw a value"),
        "{t}"
    );
}
