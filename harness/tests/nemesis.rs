//! `clobber run --nemesis kill|power-loss` against the real reference store and its
//! faulty twins: the correct store keeps every acknowledged write through crashes,
//! and each nemesis finds a store that a crash breaks.

use crate::common::{root, store_bin, text};
use std::path::Path;
use std::process::{Command, Output};

/// `clobber run SCENARIO --store STORE --nemesis NEMESIS --seed SEED EXTRA...`;
/// returns the output and the JSON report.
fn run(
    scenario: &str,
    store: &str,
    nemesis: &str,
    seed: u64,
    extra: &[&str],
) -> (Output, serde_json::Value) {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let json = tmp.path().join("report.json");
    let seed = seed.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_clobber"))
        .args(["run", scenario, "--store", store, "--nemesis", nemesis])
        .args(["--seed", &seed, "--quiet", "--json"])
        .arg(&json)
        .args(extra)
        .current_dir(root())
        .env("CLOBBER_STORE_BIN", store_bin())
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("clobber runs");
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, report)
}

fn fuse() -> bool {
    let ok = Path::new("/dev/fuse").exists();
    if !ok {
        eprintln!("SKIPPED: /dev/fuse is absent, --nemesis power-loss cannot mount faultfs");
    }
    ok
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

const SEQUENTIAL: &str = "harness/tests/data/sequential.toml";

#[test]
fn power_loss_keeps_every_acknowledged_write_of_the_reference_store() {
    if !fuse() {
        return;
    }
    let (out, report) = run(
        "scenarios/oauth-churn.toml",
        "reference",
        "power-loss",
        11,
        &["--max-duration-ms", "6000"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let n = &report["nemesis"];
    assert_eq!(n["nemesis"], "power-loss");
    let events = n["events"].as_array().expect("events");
    assert!(
        events.len() >= 2,
        "at least one crash mid-run and the final one: {n}"
    );
    assert_eq!(events.last().unwrap()["final_crash"], true);
    assert!(
        n["fsyncs"][0].as_u64().unwrap() > 0 && n["fsyncs"][1].as_u64().unwrap() > 0,
        "the reference store fsyncs files and the directory: {n}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("--nemesis power-loss"),
        "replay line: {stdout}"
    );
    assert!(stdout.contains("nemesis power-loss: "), "{stdout}");
}

#[test]
fn kill_nemesis_never_loses_an_acknowledged_reference_write_nor_damages_the_store() {
    let (out, report) = run(SEQUENTIAL, "reference", "kill", 12, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        report["nemesis"]["killed"].as_u64().unwrap_or(0) >= 5,
        "{}",
        text(&out)
    );
    assert_eq!(report["lost"], 0, "{}", text(&out));
    assert_eq!(
        check(&report, "torn reads")["status"],
        "ok",
        "{}",
        text(&out)
    );
    assert_eq!(
        check(&report, "linearizability")["status"],
        "ok",
        "{}",
        text(&out)
    );
    let integrity = check(&report, "store integrity");
    assert!(
        integrity["detail"]
            .as_str()
            .unwrap_or("")
            .contains("decrypts"),
        "the store must stay readable: {integrity}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("--nemesis kill"),
        "replay line"
    );
}

#[test]
fn kill_nemesis_tears_the_in_place_store_that_passes_without_it() {
    let (calm, _) = run(
        SEQUENTIAL,
        "reference:in-place",
        "none",
        13,
        &["--max-duration-ms", "3000"],
    );
    assert_eq!(
        calm.status.code(),
        Some(0),
        "with one process and no kill nothing can tear it: {}",
        text(&calm)
    );
    // A kill tears the file only if it lands inside the rewrite (a few kills in
    // ten do); a run has dozens. Retry whole runs, so a loaded machine that slows
    // the store cannot make this flaky: one of three must find it.
    let mut outputs = Vec::new();
    for seed in [13, 14, 15] {
        let (out, report) = run(SEQUENTIAL, "reference:in-place", "kill", seed, &[]);
        if out.status.code() == Some(1) {
            assert_eq!(
                check(&report, "torn reads")["status"],
                "violation",
                "{}",
                text(&out)
            );
            return;
        }
        outputs.push(text(&out));
    }
    panic!(
        "three kill runs never tore the in-place store:\n{}",
        outputs.join("\n")
    );
}

#[test]
fn power_loss_in_lib_mode_is_a_usage_error() {
    let (out, _) = run(SEQUENTIAL, "reference", "power-loss", 1, &["--mode", "lib"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mode cli"));
}

#[test]
fn power_loss_catches_stores_missing_the_file_or_the_directory_fsync() {
    if !fuse() {
        return;
    }
    for (fault, check_name) in [
        ("reference:no-fsync", "store integrity"),
        ("reference:no-dir-fsync", "lost writes"),
    ] {
        let (calm, _) = run(
            SEQUENTIAL,
            fault,
            "none",
            14,
            &["--max-duration-ms", "3000"],
        );
        assert_eq!(
            calm.status.code(),
            Some(0),
            "{fault} loses nothing while the power stays on: {}",
            text(&calm)
        );
        let (out, report) = run(
            SEQUENTIAL,
            fault,
            "power-loss",
            14,
            &["--max-duration-ms", "3000"],
        );
        assert_eq!(out.status.code(), Some(1), "{fault}: {}", text(&out));
        assert_eq!(
            check(&report, check_name)["status"],
            "violation",
            "{fault}: {}",
            text(&out)
        );
    }
}
