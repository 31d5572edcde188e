//! `clobber run --perturb`: the real binary, the reference store, its faulty twins,
//! and small Python stores (tests/fixtures/fake_store.py) with narrow race windows.
//! Catch rates over many runs are measured by `ci/perturb-matrix.sh`; these tests
//! pin the behaviour of single runs.

use crate::common::{clobber, clobber_bin, root, store_bin, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> String {
    format!("harness/tests/fixtures/{name}")
}

/// The fixture's interpreter (its shebang): Debian's python3, not a version
/// manager's shim, whose own start-up would dwarf the store's work.
fn python_available() -> bool {
    let ok = Path::new("/usr/bin/python3").is_file();
    if !ok {
        eprintln!("SKIPPED: /usr/bin/python3 is not installed (.ci/run installs it)");
    }
    ok
}

/// Run `scenario` against `store` with `--perturb schedule`, writing the JSON report.
fn perturbed(
    scenario: &str,
    store: &str,
    schedule: &str,
    seed: &str,
) -> (Output, serde_json::Value) {
    let json = tempfile::NamedTempFile::new().unwrap();
    let json_path = json.path().to_str().unwrap().to_owned();
    let out = clobber(&[
        "run",
        scenario,
        "--store",
        store,
        "--mode",
        "cli",
        "--seed",
        seed,
        "--quiet",
        "--perturb",
        schedule,
        "--json",
        &json_path,
    ]);
    let report = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, report)
}

#[test]
fn a_perturbed_run_reports_its_counters_and_the_delays_before_each_violation() {
    let (out, report) = perturbed(
        "scenarios/parallel-churn.toml",
        "reference:unlink-lock-polling",
        "pct:1:150",
        "11",
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("perturbation: pct:1:150 over every store command"),
        "{t}"
    );
    assert!(
        t.contains("perturbation: delayed calls that preceded it:"),
        "{t}"
    );
    assert!(
        t.contains("--perturb pct:1:150"),
        "the replay line keeps the schedule: {t}"
    );
    let p = &report["perturbation"];
    assert!(p["commands"].as_u64().unwrap() > 0, "{p}");
    assert!(p["delayed_commands"].as_u64().unwrap() > 0, "{p}");
    let calls = p["counters"]["calls"].as_object().unwrap();
    // pct stops a chosen command only at the calls of its point (and the
    // write-backs of the lock points' fallback), never at every open or read.
    for call in ["rename", "flock", "unlink", "write"] {
        let stopped: u64 = calls
            .iter()
            .filter(|(k, _)| k.starts_with(call))
            .map(|(_, v)| v["stopped"].as_u64().unwrap())
            .sum();
        assert!(stopped > 0, "{call} never stopped: {p}");
    }
    for call in ["openat", "read", "close", "fsync"] {
        assert!(!calls.contains_key(call), "pct stopped {call}: {p}");
    }
    let first = p["preceding"][0].as_array().unwrap();
    assert!(
        !first.is_empty(),
        "no delay attributed to the first violation: {p}"
    );
}

#[test]
fn the_reference_store_passes_lock_storm_and_parallel_churn_under_perturbation() {
    for scenario in ["scenarios/lock-storm.toml", "scenarios/parallel-churn.toml"] {
        for schedule in ["pct:2:100", "noise:300"] {
            let (out, report) = perturbed(scenario, "reference", schedule, "5");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{scenario} {schedule}: {}",
                text(&out)
            );
            let delayed = report["perturbation"]["counters"]["calls"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v["delayed"].as_u64().unwrap())
                .sum::<u64>();
            assert!(
                delayed > 0,
                "{scenario} {schedule}: nothing was delayed, so this proves nothing"
            );
        }
    }
}

#[test]
fn lock_storm_catches_every_faulty_protocol_under_perturbation() {
    for fault in [
        "stale-snapshot",
        "no-lock",
        "in-place",
        "unlink-lock",
        "lock-data-file",
        "unlink-lock-polling",
    ] {
        let (out, _) = perturbed(
            "scenarios/lock-storm.toml",
            &format!("reference:{fault}"),
            "pct",
            "21",
        );
        assert_eq!(out.status.code(), Some(1), "{fault}: {}", text(&out));
    }
}

/// `seed-loop` (one churn loop, one victim) rarely overlaps its two processes: without
/// `--perturb` it caught `unlink-lock-polling` in 0 of 10 runs and `in-place` in 4
/// (README). With it, both are caught, and the reference store still passes.
#[test]
fn seed_loop_catches_the_narrow_window_faults_under_perturbation_and_passes_the_reference() {
    for fault in ["unlink-lock-polling", "in-place"] {
        let (out, report) = perturbed(
            "scenarios/seed-loop.toml",
            &format!("reference:{fault}"),
            "pct",
            "1001",
        );
        assert_eq!(out.status.code(), Some(1), "{fault}: {}", text(&out));
        assert_eq!(report["verdict"], "violation", "{fault}: {report}");
    }
    let (out, report) = perturbed("scenarios/seed-loop.toml", "reference", "pct", "1001");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let delayed = report["perturbation"]["counters"]["calls"]
        .as_object()
        .expect("perturbation counters")
        .values()
        .map(|v| v["delayed"].as_u64().unwrap())
        .sum::<u64>();
    assert!(
        delayed > 0,
        "nothing was delayed, so the pass proves nothing"
    );
}

#[test]
fn python_stores_lossy_ones_are_caught_and_the_correct_one_passes_under_perturbation() {
    if !python_available() {
        return;
    }
    for (store, expected) in [
        ("fake-no-lock.toml", 1),
        ("fake-unlink-lock-polling.toml", 1),
        ("fake-correct.toml", 0),
    ] {
        // One command in 3: the others run untraced.
        let (out, report) = perturbed(
            "scenarios/parallel-churn.toml",
            &fixture(store),
            "pct:3:150",
            "3",
        );
        assert_eq!(out.status.code(), Some(expected), "{store}: {}", text(&out));
        // Every store command is counted, traced or not; pct traces only the
        // chosen ones (one in 3), and the report says so.
        let p = &report["perturbation"];
        let commands = p["commands"].as_u64().unwrap();
        let traced = p["traced_commands"].as_u64().unwrap();
        assert!(0 < traced && traced < commands, "{store}: {p}");
        assert!(
            p["delayed_commands"].as_u64().unwrap() <= traced,
            "{store}: {p}"
        );
        if expected == 0 {
            // A run that went to the end: one record per operation.
            assert_eq!(commands, report["ops"].as_u64().unwrap(), "{store}: {p}");
        }
    }
}

#[test]
fn perturb_in_lib_mode_is_a_usage_error() {
    let out = clobber(&[
        "run",
        "scenarios/parallel-churn.toml",
        "--mode",
        "lib",
        "--perturb",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("--mode cli"), "{}", text(&out));
}

#[test]
fn a_bad_schedule_is_a_usage_error_and_a_bad_scenario_field_names_file_and_line() {
    let out = clobber(&[
        "run",
        "scenarios/parallel-churn.toml",
        "--perturb",
        "chaos",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("pct[:ONE_IN"), "{}", text(&out));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "description = \"x\"\nperturb = \"pct:zero\"\n[[role]]\nname = \"r\"\niterations = 1\nsteps = [{ op = \"get\", key = \"k\" }]\n",
    )
    .unwrap();
    let out = clobber(&["run", bad.to_str().unwrap(), "--quiet"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("bad.toml:2") && t.contains("perturb"), "{t}");
}

#[test]
fn where_ptrace_is_not_permitted_the_run_is_exit_5_naming_the_fix() {
    // Run clobber itself under the perturber: every process it starts is then already
    // traced, so the pre-flight's PTRACE_TRACEME fails with EPERM, exactly as under a
    // strict kernel.yama.ptrace_scope or in a container without CAP_SYS_PTRACE.
    let exe = clobber_bin();
    let out = Command::new(&exe)
        .args(["__perturb", "--schedule", "count", "--"])
        .arg(&exe)
        .args([
            "run",
            "scenarios/parallel-churn.toml",
            "--perturb",
            "--quiet",
            "--seed",
            "1",
        ])
        .current_dir(root())
        .env("CLOBBER_STORE_BIN", store_bin())
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains("ptrace is not permitted") && t.contains("kernel.yama.ptrace_scope"),
        "{t}"
    );
}

/// Build the static fixture store and write an adapter for it; returns the adapter.
fn static_store(dir: &Path) -> PathBuf {
    let bin = dir.join("static_store");
    let src = root().join("harness/tests/fixtures/static_store.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-o",
        ])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("running rustc");
    assert!(status.success(), "building the static fixture store failed");
    let adapter = dir.join("static-store.toml");
    std::fs::write(
        &adapter,
        format!(
            "name = \"static-store\"\nprogram = {:?}\nvalue = \"stdin\"\n\
             [env]\nSTATIC_STORE_DIR = \"{{scratch}}\"\n\
             [commands]\nset = [\"{{program}}\", \"set\", \"{{key}}\"]\n\
             get = [\"{{program}}\", \"get\", \"{{key}}\"]\n\
             delete = [\"{{program}}\", \"delete\", \"{{key}}\"]\n\
             list = [\"{{program}}\", \"list\"]\nclear = [\"{{program}}\", \"clear\"]\n\
             [not_found]\nexit_code = 1\nstderr_contains = \"secret not found\"\n",
            bin.to_str().unwrap()
        ),
    )
    .unwrap();
    adapter
}

#[test]
fn a_statically_linked_store_shows_its_calls_delayed_in_the_report_and_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = static_store(dir.path());
    // throughput: two writers for 3 s, a bounded cost.
    let (out, report) = perturbed(
        "scenarios/throughput.toml",
        adapter.to_str().unwrap(),
        "noise:300",
        "8",
    );
    let t = text(&out);
    // Delays never change a result: the correct store passes.
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("perturbation: noise:300 over every store command"),
        "{t}"
    );
    let calls = report["perturbation"]["counters"]["calls"]
        .as_object()
        .unwrap();
    for call in ["openat", "read", "write", "fsync", "rename", "flock"] {
        let (stopped, delayed): (u64, u64) = calls
            .iter()
            .filter(|(k, _)| k.starts_with(call))
            .fold((0, 0), |(s, d), (_, v)| {
                (
                    s + v["stopped"].as_u64().unwrap(),
                    d + v["delayed"].as_u64().unwrap(),
                )
            });
        assert!(
            stopped > 0 && delayed > 0,
            "{call}: stopped {stopped}, delayed {delayed}"
        );
    }
}
