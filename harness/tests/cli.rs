//! Integration tests: run the real `clobber` binary against the real `clobber-store`
//! binary (built by `cargo build --workspace`, found next to `clobber`).

use crate::common::{clobber, clobber_bin, root, store_bin, text};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clobber_check::history::read_jsonl;

fn scenarios() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios/ exists")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_string_lossy().into_owned();
            (p.extension()? == "toml").then(|| format!("scenarios/{name}"))
        })
        .collect();
    names.sort();
    names
}

// Every shipped scenario passing on the reference store in both modes, and failing
// on every faulty protocol, is the scenario gate's job: `ci/gate.sh`, which
// `ci/test.sh` runs on full-length runs after these tests.

#[test]
fn the_seed_scenario_catches_every_faulty_protocol_with_a_witness_and_a_replay_line() {
    for fault in [
        "stale-snapshot",
        "no-lock",
        "unlink-lock",
        "lock-data-file",
        "in-place",
    ] {
        let store = format!("reference:{fault}");
        let out = clobber(&[
            "run",
            "scenarios/oauth-churn.toml",
            "--store",
            &store,
            "--seed",
            "11",
            "--quiet",
        ]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{fault}\n{t}");
        assert!(t.contains("verdict: VIOLATION (exit 1)"), "{t}");
        assert!(t.contains("time to detect: "), "{t}");
        assert!(t.contains("Lost: "), "{t}");
        assert!(t.contains("violation 1 of "), "{t}");
        assert!(
            t.contains(&format!(
                " clobber run scenarios/oauth-churn.toml --store {store} --mode cli --seed 11\n"
            )),
            "{t}"
        );
        if fault == "in-place" {
            // Writers hold the lock, so nothing is lost: readers see a half-written file.
            assert!(t.contains("torn read (damaged store) on key"), "{t}");
        } else {
            assert!(
                t.contains("lost write on key") || t.contains("stale read on key"),
                "{t}"
            );
        }
    }
}

#[test]
fn a_torn_read_is_dated_when_the_damaged_answer_returned_and_counted_once() {
    // Torn reads used to be dated at the damaged read's start, and the checker's own
    // report of the same damaged read was counted as a second violation.
    let dir = tempfile::tempdir().unwrap();
    let mut last = String::new();
    for seed in [21, 22, 23, 24, 25] {
        let json = dir.path().join(format!("report-{seed}.json"));
        let out = clobber(&[
            "run",
            "scenarios/oauth-churn.toml",
            "--store",
            "reference:in-place",
            "--seed",
            &seed.to_string(),
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ]);
        last = text(&out);
        if out.status.code() != Some(1) {
            continue;
        }
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let violations = report["violations"].as_array().unwrap();
        let torn: Vec<&serde_json::Value> = violations
            .iter()
            .filter(|v| v["kind"] == "damaged")
            .collect();
        if torn.is_empty() {
            continue;
        }
        for v in &torn {
            let damaged = v["witness"]
                .as_array()
                .unwrap()
                .iter()
                .find(|op| op["outcome"] == "damaged")
                .expect("the witness holds the damaged read");
            assert_eq!(v["detected_ns"], damaged["complete_ns"], "{v}");
            assert!(
                v["detected_ns"].as_u64() > damaged["invoke_ns"].as_u64(),
                "dated when it returned, not when it started: {v}"
            );
        }
        for v in violations {
            let rests_on_damaged = v["witness"]
                .as_array()
                .unwrap()
                .iter()
                .any(|op| op["outcome"] == "damaged");
            assert!(
                v["kind"] == "damaged" || !rests_on_damaged,
                "a damaged read is one violation, not two: {v}"
            );
        }
        let first = violations
            .iter()
            .filter_map(|v| v["detected_ns"].as_u64())
            .min()
            .unwrap();
        let epoch = report["epoch_ns"].as_u64().unwrap();
        let ttd = report["time_to_detect_s"].as_f64().unwrap();
        assert!(
            ((first - epoch) as f64 / 1e9 - ttd).abs() < 1e-3,
            "time to detect is the first proof: {report}"
        );
        return;
    }
    panic!("no seed showed a torn read on reference:in-place:\n{last}");
}

#[test]
fn json_report_and_history_file_are_written_and_the_history_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let junit = dir.path().join("junit.xml");
    let hist = dir.path().join("history.jsonl");
    let out = clobber(&[
        "run",
        "scenarios/parallel-churn.toml",
        "--store",
        "reference:stale-snapshot",
        "--seed",
        "3",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--history",
        hist.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["verdict"], "violation");
    assert_eq!(report["seed"], 3);
    assert!(report["lost"].as_u64().unwrap() >= 1, "{report}");
    let witness = report["violations"][0]["witness"].as_array().unwrap();
    assert!((1..=4).contains(&witness.len()), "{report}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuite name=\"clobber.parallel-churn.reference:stale-snapshot.cli\""),
        "{xml}"
    );
    assert!(xml.contains("<failure message=\"Lost: "), "{xml}");
    let records = read_jsonl(std::io::BufReader::new(std::fs::File::open(&hist).unwrap())).unwrap();
    assert!(records.len() > 10);
    let values: Vec<&str> = records
        .iter()
        .filter(|r| r.op == clobber_check::history::Op::Set)
        .filter_map(|r| r.value.as_deref())
        .collect();
    let unique: std::collections::HashSet<&&str> = values.iter().collect();
    assert_eq!(unique.len(), values.len(), "written values are unique");
    // The checker on the recorded history agrees with the harness: the verdict, and
    // the lost writes, one by one.
    let check = clobber(&["check", "--json", hist.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let checked: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(checked["verdict"], "violation", "{checked}");
    assert_eq!(
        checked["lost_writes"].as_array().unwrap().len() as u64,
        report["lost"].as_u64().unwrap(),
        "Lost: N agrees\n{checked}\n{report}"
    );
    assert_eq!(
        checked["acknowledged_writes"], report["acknowledged"],
        "Lost: / M agrees"
    );
    let mut lost_keys: Vec<&str> = checked["lost_writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    lost_keys.sort_unstable();
    lost_keys.dedup();
    let run_keys: Vec<&str> = report["lost_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(lost_keys, run_keys, "the same keys lost");
}

#[test]
fn a_passing_run_removes_its_scratch_directory_unless_kept() {
    let dir = tempfile::tempdir().unwrap();
    // A short run on a machine busy with other tests may read too little to pass
    // (exit 2, never 0): such a run is retried in a new directory, up to 3 times.
    let mut attempt = 0;
    let scratch = loop {
        attempt += 1;
        let scratch = dir.path().join(format!("scratch-{attempt}"));
        let out = clobber(&[
            "run",
            "scenarios/throughput.toml",
            "--mode",
            "lib",
            "--max-duration-ms",
            "1000",
            "--quiet",
            "--scratch",
            scratch.to_str().unwrap(),
        ]);
        match out.status.code() {
            Some(0) => break scratch,
            Some(2) if attempt < 3 && text(&out).contains("too little observed") => {}
            _ => panic!("{}", text(&out)),
        }
    };
    assert!(
        scratch.join("history.jsonl").is_file(),
        "an explicit --scratch is kept"
    );
    let again = clobber(&[
        "run",
        "scenarios/throughput.toml",
        "--quiet",
        "--scratch",
        scratch.to_str().unwrap(),
    ]);
    assert_eq!(
        again.status.code(),
        Some(3),
        "a non-empty scratch is refused\n{}",
        text(&again)
    );
    assert!(text(&again).contains("not empty"));
}

#[test]
fn malformed_scenario_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "description = \"x\"\n[[role]]\nname = \"r\"\niterations = 1\nproceses = 2\nsteps = [{ op = \"get\", key = \"k\" }]\n",
    )
    .unwrap();
    let out = clobber(&["run", bad.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains(&format!("{}:5:", bad.display())), "{t}");
    assert!(t.contains("proceses"), "{t}");
    std::fs::write(
        &bad,
        "description = \"x\"\n[[role]]\nname = \"r\"\niterations = 1\nsteps = [\n  { op = \"get\", key = \"k{nope}\" },\n]\n",
    )
    .unwrap();
    let t = text(&clobber(&["run", bad.to_str().unwrap()]));
    assert!(
        t.contains(":6:") && t.contains("field `key`") && t.contains("{nope}"),
        "{t}"
    );
}

#[test]
fn malformed_adapter_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text_in = std::fs::read_to_string(root().join("adapters/clobber-store.toml"))
        .unwrap()
        .replace("value = \"stdin\"", "value = \"stdin\"\nvalue_mode = 1");
    std::fs::write(&bad, text_in).unwrap();
    let out = clobber(&[
        "run",
        "scenarios/oauth-churn.toml",
        "--store",
        bad.to_str().unwrap(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(
        t.contains("bad.toml:11:") && t.contains("value_mode"),
        "{t}"
    );
}

#[test]
fn every_shipped_adapter_parses_and_a_missing_store_binary_is_a_setup_error() {
    for entry in std::fs::read_dir(root().join("adapters")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            clobber::adapter::Adapter::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let out = Command::new(clobber_bin())
        .args([
            "run",
            "scenarios/oauth-churn.toml",
            "--store",
            "adapters/thv.toml",
            "--quiet",
        ])
        .current_dir(root())
        .env("PATH", "/nonexistent")
        .env_remove("CLOBBER_THV_BIN")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains("store program `thv`") && t.contains("not found"),
        "{t}"
    );
}

#[test]
fn lib_mode_refuses_a_foreign_store() {
    let out = clobber(&[
        "run",
        "scenarios/oauth-churn.toml",
        "--store",
        "adapters/thv.toml",
        "--mode",
        "lib",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) && !cmd.contains("cargo") {
                found.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn fake_store(dir: &Path, name: &str, set_script: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"name = "{name}"
program = "/bin/sh"
value = "stdin"
[commands]
set = ["{{program}}", "-c", "{set_script}", "{{key}}"]
get = ["{{program}}", "-c", "echo 'secret not found' >&2; exit 1", "{{key}}"]
delete = ["{{program}}", "-c", "echo 'secret not found' >&2; exit 1", "{{key}}"]
[not_found]
exit_code = 1
stderr_contains = "secret not found"
"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_hanging_store_is_killed_with_every_process_and_the_run_is_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("clobber-hang-marker-{}", std::process::id());
    let adapter = fake_store(dir.path(), "hang", &format!("sleep 1000 # {marker}"));
    let t0 = Instant::now();
    let out = clobber(&[
        "run",
        "scenarios/oauth-churn.toml",
        "--store",
        adapter.to_str().unwrap(),
        "--op-timeout-ms",
        "300",
        "--quiet",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("stopped answering") && t.contains("timed out after 300 ms"),
        "{t}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t0.elapsed()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        processes_with(&marker),
        Vec::<String>::new(),
        "processes left behind"
    );

    // A store that hangs on its first call is a setup error.
    let adapter = dir.path().join("hang-probe.toml");
    std::fs::write(
        &adapter,
        std::fs::read_to_string(dir.path().join("hang.toml"))
            .unwrap()
            .replace(
                "echo 'secret not found' >&2; exit 1",
                &format!("sleep 1000 # {marker}"),
            ),
    )
    .unwrap();
    let out = clobber(&[
        "run",
        "scenarios/oauth-churn.toml",
        "--store",
        adapter.to_str().unwrap(),
        "--op-timeout-ms",
        "300",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(t.contains("the store hangs"), "{t}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        processes_with(&marker),
        Vec::<String>::new(),
        "processes left behind"
    );
}

#[test]
fn a_crashing_store_is_reported_and_the_run_is_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    // `$$` in an adapter is a literal `$`, so the shell sees `$$`, its own pid.
    let adapter = fake_store(dir.path(), "crash", "kill -SEGV $$$$");
    let out = clobber(&[
        "run",
        "scenarios/oauth-churn.toml",
        "--store",
        adapter.to_str().unwrap(),
        "--quiet",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("killed by signal 11"), "{t}");
}

#[test]
fn sigterm_kills_every_worker_and_store_process() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch-sigterm");
    let child = Command::new(clobber_bin())
        .args([
            "run",
            "scenarios/oauth-churn.toml",
            "--quiet",
            "--scratch",
            scratch.to_str().unwrap(),
        ])
        .current_dir(root())
        .env("CLOBBER_STORE_BIN", store_bin())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let marker = scratch.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&marker).len() < 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(processes_with(&marker).len() >= 8, "the workers started");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted: killed"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        processes_with(&marker),
        Vec::<String>::new(),
        "processes left behind"
    );
}

/// A key seen with a value, then gone with no delete, after a write whose answer was
/// unknown: no audit rule names it (no write was acknowledged), only the
/// linearizability checker. It must still count, stop the run, and be dated.
#[test]
fn a_violation_only_the_checker_finds_counts_stops_the_run_and_is_dated() {
    let out = clobber(&[
        "run",
        "harness/tests/fixtures/vanishing-key.toml",
        "--store",
        "harness/tests/fixtures/vanishing-store.toml",
        "--max-duration-ms",
        "30000",
        "--quiet",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The audit alone finds nothing here: the summary must not say so.
    assert!(stdout.contains("Lost: 0 / "), "{t}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("Lost: ") && l.contains("not linearizable: 1 key(s)")),
        "{t}"
    );
    assert!(
        stdout.contains("violation 1 of 1: not linearizable on key ghost-1"),
        "{t}"
    );
    // Stopped by the live check, not by the end of the scenario or its maximum.
    assert!(stdout.contains("stopped: first violation"), "{t}");
    assert!(stdout.contains("final state       not run"), "{t}");
    // Dated: when the read that found the key gone returned, within the run.
    let ttd: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("time to detect: "))
        .and_then(|l| l.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("no time to detect: {t}"));
    let line = stdout
        .lines()
        .find(|l| l.contains("<- completes the proof"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(line.contains("get ghost-1 -> not_found"), "{t}");
    let proof: f64 = line
        .split(" .. ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.trim_start_matches('+').trim_end_matches('s').parse().ok())
        .unwrap_or_else(|| panic!("{t}"));
    assert!((ttd - proof).abs() < 0.006, "{ttd} vs {proof}: {t}");
    let scratch = stdout
        .lines()
        .find_map(|l| l.strip_prefix("scratch (history.jsonl, store, worker logs): "))
        .unwrap_or_else(|| panic!("{t}"));
    let _ = std::fs::remove_dir_all(scratch);
}

/// The shipped scenarios are data; these tests pin what each one claims to be.
/// Trust: false alarms, silent passes, isolation, processes left behind.
#[path = "cli/trust.rs"]
mod trust;

mod scenario_files {
    use std::path::Path;

    use clobber::scenario::{Scenario, Step};
    use clobber_check::history::Op;

    fn load(name: &str) -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(name);
        Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ops(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Op { op, key, .. } => format!("{op} {}", key.as_deref().unwrap_or("")),
                Step::Pause { ms, jitter_ms } => format!("pause {ms}+{jitter_ms}"),
            })
            .collect()
    }

    #[test]
    fn oauth_churn_is_the_seed_loop() {
        let s = load("oauth-churn.toml");
        let churn = s.roles.iter().find(|r| r.name == "churn").unwrap();
        assert_eq!(
            ops(&churn.steps),
            [
                "set _churn_1",
                "set _churn_2",
                "set _churn_3",
                "set _churn_4",
                "set _churn_5",
                "pause 50+0"
            ]
        );
        assert!(
            !churn.is_finite(),
            "the churn runs until the victims are done"
        );
        let victim = s.roles.iter().find(|r| r.name == "victim").unwrap();
        assert_eq!(victim.iterations, Some(50));
        assert_eq!(
            ops(&victim.steps),
            [
                "delete my-secret-{index}",
                "set my-secret-{index}",
                "pause 100+0",
                "get my-secret-{index}"
            ]
        );
    }

    #[test]
    fn token_rotation_accumulates_refresh_tokens_and_bursts_on_resume() {
        let s = load("token-rotation.toml");
        let keys: Vec<String> = s.roles.iter().flat_map(|r| ops(&r.steps)).collect();
        assert!(
            keys.iter()
                .any(|k| k.contains("OAUTH_REFRESH_TOKEN_") && k.contains("{nanos}_{hex8}"))
        );
        assert!(keys.iter().any(|k| k.ends_with("_AT")));
        let burst = s.roles.iter().find(|r| r.name == "resume-burst").unwrap();
        assert!(burst.start_ms > 0 && burst.processes >= 5);
        assert!(
            s.roles
                .iter()
                .any(|r| r.handle == clobber::scenario::Handle::LongLived)
        );
        let refreshes: u64 = s
            .roles
            .iter()
            .filter(|r| r.name == "workload")
            .map(|r| u64::from(r.processes) * r.iterations.unwrap_or(0))
            .sum();
        assert!(
            refreshes >= 200,
            "hundreds of accumulated refresh-token keys: {refreshes}"
        );
    }

    #[test]
    fn parallel_churn_has_a_sentinel_and_delete_and_clear_scenarios_exercise_their_paths() {
        assert!(load("parallel-churn.toml").roles.iter().any(|r| r.sentinel));
        let uses = |name: &str, op: Op| {
            load(name)
                .roles
                .iter()
                .flat_map(|r| r.steps.clone())
                .any(|s| matches!(s, Step::Op { op: o, .. } if o == op))
        };
        assert!(uses("delete-vs-set.toml", Op::Delete));
        assert!(uses("clear-vs-set.toml", Op::Clear));
    }
}
