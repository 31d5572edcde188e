//! Verdicts a CI gate can trust: no false alarm, no silent pass, nothing left
//! behind. The misbehaving stores are `fixtures/fake-store.sh` with one switch on.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{clobber, clobber_bin, processes_with, root, store_bin, text};

/// The fake store's adapter with `env` added to its `[env]` and `drop` commands
/// removed, written into `dir`.
fn fake_adapter(dir: &Path, name: &str, env: &[(&str, &str)], drop: &[&str]) -> PathBuf {
    let fixtures = root().join("harness/tests/fixtures");
    let mut t = std::fs::read_to_string(fixtures.join("fake-store.toml"))
        .unwrap()
        .replace(
            "program = \"./fake-store.sh\"",
            &format!("program = \"{}\"", fixtures.join("fake-store.sh").display()),
        );
    let mut extra = String::new();
    for (k, v) in env {
        extra.push_str(&format!("{k} = \"{v}\"\n"));
    }
    t = t.replace("[env]\n", &format!("[env]\n{extra}"));
    for d in drop {
        t = t
            .lines()
            .filter(|l| !l.starts_with(&format!("{d} = ")))
            .collect::<Vec<_>>()
            .join("\n");
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, t).unwrap();
    path
}

fn run_with(adapter: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "scenarios/oauth-churn.toml",
        "--store",
        adapter.to_str().unwrap(),
        "--quiet",
        "--seed",
        "5",
    ];
    args.extend_from_slice(extra);
    clobber(&args)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_fake_store_passes_so_the_cases_below_test_only_their_switch() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = fake_adapter(dir.path(), "plain", &[], &[]);
    let out = run_with(&adapter, &["--max-duration-ms", "1500"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn killed_writers_temp_files_never_make_a_correct_store_a_violation() {
    // The reproduction: 40 ms op timeouts kill the reference store's
    // writers mid-write; their temporary files were blamed on the store (exit 1).
    for seed in ["11", "12", "13"] {
        let out = clobber(&[
            "run",
            "scenarios/oauth-churn.toml",
            "--store",
            "reference",
            "--op-timeout-ms",
            "40",
            "--seed",
            seed,
            "--quiet",
        ]);
        let t = text(&out);
        assert_ne!(out.status.code(), Some(1), "seed {seed}\n{t}");
        assert!(!t.contains("VIOLATION"), "seed {seed}\n{t}");
    }
}

#[test]
fn a_crashing_or_hanging_integrity_command_is_inconclusive_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (how, says) in [("crash", "crashed"), ("hang", "gave no answer")] {
        let adapter = fake_adapter(dir.path(), how, &[("FAKE_INTEGRITY", how)], &[]);
        let out = run_with(
            &adapter,
            &["--max-duration-ms", "1500", "--op-timeout-ms", "2000"],
        );
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{how}\n{t}");
        assert!(
            t.contains("verdict: INCONCLUSIVE (exit 2): unknown, never a pass: store integrity")
                && t.contains(says),
            "{how}\n{t}"
        );
    }
}

#[test]
fn statuses_never_contradict_their_figures() {
    let dir = tempfile::tempdir().unwrap();
    for (scenario, store) in [
        ("scenarios/parallel-churn.toml", "reference:stale-snapshot"),
        ("scenarios/oauth-churn.toml", "reference:stale-snapshot"),
        ("scenarios/delete-vs-set.toml", "reference:no-lock"),
    ] {
        let report = dir.path().join("r.json");
        let out = clobber(&[
            "run",
            scenario,
            "--store",
            store,
            "--seed",
            "3",
            "--full",
            "--max-duration-ms",
            "2000",
            "--quiet",
            "--json",
            report.to_str().unwrap(),
        ]);
        let t = text(&out);
        let r = json(&report);
        let lost = r["lost"].as_u64().unwrap();
        let lost_check = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "lost writes")
            .unwrap();
        assert_eq!(
            lost_check["status"] == "violation",
            lost > 0,
            "{scenario} {store}: lost writes status vs Lost: {lost}\n{t}"
        );
        let by: u64 = r["ops_by"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(by, r["ops"].as_u64().unwrap(), "header vs breakdown\n{t}");
        // Violations shown are numbered 1, 2, 3 of the distinct ones, no gaps.
        let distinct = r["distinct_violations"].as_u64().unwrap();
        let shown = distinct.min(3);
        for n in 1..=shown {
            assert!(
                t.contains(&format!("violation {n} of {distinct}: ")),
                "{scenario} {store}: violation {n} of {distinct}\n{t}"
            );
        }
        assert!(!t.contains(&format!("violation {} of ", shown + 1)), "{t}");
    }
}

#[test]
fn unknown_outcomes_are_counted_shown_with_their_messages_and_make_the_run_inconclusive() {
    // A store that loses every write of the victims' keys, and whose "not found"
    // message the adapter does not match: every delete of a (lost, so missing) key
    // is an unknown, and an unknown delete explains away the later absence. The
    // lost-write check cannot fire; the run must not pass.
    let dir = tempfile::tempdir().unwrap();
    let adapter = fake_adapter(
        dir.path(),
        "wrong-not-found",
        &[
            ("FAKE_NOT_FOUND", "cannot delete non-existent secret"),
            ("FAKE_DROP_PREFIX", "my-secret"),
        ],
        &[],
    );
    let report = dir.path().join("r.json");
    let out = run_with(
        &adapter,
        &[
            "--max-duration-ms",
            "2000",
            "--json",
            report.to_str().unwrap(),
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("`delete` operations have an unknown outcome")
            && t.contains("cannot delete non-existent secret: my-secret-"),
        "{t}"
    );
    assert!(t.contains("too many outcomes are unknown"), "{t}");
    let r = json(&report);
    let delete = r["unknowns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["op"] == "delete")
        .unwrap()
        .clone();
    assert!(delete["unknown"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(delete["inconclusive"], true, "{r}");
}

#[test]
fn a_store_that_is_not_isolated_is_refused_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    // `list` shows a key right after setup.
    let listed = fake_adapter(
        dir.path(),
        "listed",
        &[("FAKE_LIST_EXTRA", "real-secret")],
        &[],
    );
    let scratch = dir.path().join("s1");
    let out = run_with(&listed, &["--scratch", scratch.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains("not isolated")
            && t.contains("real-secret")
            && t.contains("nothing was written"),
        "{t}"
    );
    let kv: Vec<_> = std::fs::read_dir(scratch.join("kv")).unwrap().collect();
    assert!(kv.is_empty(), "nothing was written: {kv:?}");
    assert!(!scratch.join("history.jsonl").exists());
    // Without `list`, a probe key that is present.
    let probe = fake_adapter(
        dir.path(),
        "probe",
        &[("FAKE_PRESET", "__clobber_probe__")],
        &["list"],
    );
    let out = run_with(&probe, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains("not isolated") && t.contains("__clobber_probe__"),
        "{t}"
    );
}

#[test]
fn scratch_directories_are_0700_and_histories_0600() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("s");
    let hist = dir.path().join("h.jsonl");
    let out = clobber(&[
        "run",
        "scenarios/throughput.toml",
        "--mode",
        "lib",
        "--max-duration-ms",
        "300",
        "--quiet",
        "--scratch",
        scratch.to_str().unwrap(),
        "--history",
        hist.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&scratch), 0o700);
    assert_eq!(mode(&scratch.join("home")), 0o700);
    assert_eq!(mode(&scratch.join("history.jsonl")), 0o600);
    assert_eq!(mode(&scratch.join("history-1.jsonl")), 0o600);
    assert_eq!(mode(&scratch.join("worker-1.json")), 0o600);
    assert_eq!(mode(&hist), 0o600);
}

#[test]
fn the_reference_store_ignores_an_inherited_key_file_and_test_barrier() {
    let dir = tempfile::tempdir().unwrap();
    let barrier_dir = dir.path().join("barrier");
    let out = Command::new(clobber_bin())
        .args([
            "run",
            "scenarios/oauth-churn.toml",
            "--quiet",
            "--seed",
            "2",
            "--max-duration-ms",
            "1500",
        ])
        .current_dir(root())
        .env("CLOBBER_STORE_BIN", store_bin())
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .env("CLOBBER_STORE_KEY_FILE", dir.path().join("no-such-key"))
        .env(
            "CLOBBER_STORE_TEST_BARRIER",
            format!("after-read:2:50:{}", barrier_dir.display()),
        )
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(!barrier_dir.exists(), "the barrier wrote outside the run");
    assert!(
        !t.contains("CLOBBER_STORE_KEY_FILE="),
        "not in the replay: {t}"
    );
}

#[test]
fn the_replay_line_names_the_environment_and_the_exact_recheck() {
    let dir = tempfile::tempdir().unwrap();
    let hist = dir.path().join("h.jsonl");
    let out = Command::new(clobber_bin())
        .args([
            "run",
            "scenarios/oauth-churn.toml",
            "--store",
            "adapters/clobber-store.toml",
            "--quiet",
            "--seed",
            "4",
            "--history",
            hist.to_str().unwrap(),
        ])
        .current_dir(root())
        .env("CLOBBER_STORE_BIN", store_bin())
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .env("CLOBBER_STORE_UNSAFE_PROTOCOL", "stale-snapshot")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("replay: CLOBBER_STORE_BIN=")
            && t.contains(" CLOBBER_STORE_UNSAFE_PROTOCOL=stale-snapshot clobber run scenarios/oauth-churn.toml --store adapters/clobber-store.toml --mode cli --seed 4"),
        "{t}"
    );
    assert!(t.contains("not the OS's interleaving"), "{t}");
    let recheck = format!("re-check: clobber check {}", hist.display());
    assert!(t.contains(&recheck), "{t}");
    let again = clobber(&["check", hist.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
}

/// Start `clobber run` on a store that misbehaves per `env`, wait until `ready`
/// processes of the run exist (found by the scratch path), and return the child.
fn start_hanging(
    dir: &Path,
    name: &str,
    env: &[(&str, &str)],
    ready: usize,
) -> (std::process::Child, String) {
    let adapter = fake_adapter(dir, name, env, &[]);
    let scratch = dir.join(format!("scratch-{name}"));
    let child = Command::new(clobber_bin())
        .args([
            "run",
            "scenarios/oauth-churn.toml",
            "--store",
            adapter.to_str().unwrap(),
            "--quiet",
            "--op-timeout-ms",
            "600000",
            "--max-duration-ms",
            "1500",
            "--scratch",
            scratch.to_str().unwrap(),
        ])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let marker = scratch.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_with(&marker).len() < ready && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        processes_with(&marker).len() >= ready,
        "the run started: {:?}",
        processes_with(&marker)
    );
    (child, marker)
}

/// Wait up to `limit` for every process carrying `marker` to be gone.
fn survivors_after(marker: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = processes_with(marker);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigkill_of_clobber_mid_run_leaves_no_process_of_the_run_alive_two_seconds_later() {
    let dir = tempfile::tempdir().unwrap();
    // 8 workers plus hanging `set`s (each named after the scratch directory).
    let (mut child, marker) = start_hanging(dir.path(), "hang-set", &[("FAKE_HANG", "set")], 12);
    assert!(
        processes_with(&format!("fake-store-hang {marker}")).len() >= 2,
        "store processes hang: {:?}",
        processes_with(&marker)
    );
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let left = survivors_after(&marker, Duration::from_secs(2));
    assert_eq!(left, Vec::<String>::new(), "processes left behind");
}

#[test]
fn sigterm_during_the_final_state_list_kills_that_list() {
    let dir = tempfile::tempdir().unwrap();
    let (child, marker) = start_hanging(dir.path(), "hang-list", &[("FAKE_HANG", "list")], 0);
    // The workload ends at 1.5 s; then the final-state `list` hangs.
    let hang = format!("fake-store-hang {marker}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_with(&hang).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!processes_with(&hang).is_empty(), "the final list hangs");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = survivors_after(&marker, Duration::from_secs(2));
    assert_eq!(left, Vec::<String>::new(), "processes left behind");
}

#[test]
fn sigkill_of_clobber_during_the_final_state_list_leaves_no_store_process_alive() {
    // The final-state `list` is a store process clobber starts itself (not a
    // worker's): it runs under `clobber __guard`, which dies with clobber.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, marker) = start_hanging(dir.path(), "kill-list", &[("FAKE_HANG", "list")], 0);
    let hang = format!("fake-store-hang {marker}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_with(&hang).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!processes_with(&hang).is_empty(), "the final list hangs");
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let left = survivors_after(&marker, Duration::from_secs(2));
    assert_eq!(left, Vec::<String>::new(), "processes left behind");
}

/// `clobber check --json` on `history`: (verdict, lost, acknowledged).
fn check_json(history: &Path) -> (String, u64, u64) {
    let out = clobber(&["check", "--json", history.to_str().unwrap()]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("clobber check --json: {e}\n{}", text(&out)));
    (
        r["verdict"].as_str().unwrap_or_default().to_owned(),
        r["lost_writes"].as_array().map_or(0, |l| l.len() as u64),
        r["acknowledged_writes"].as_u64().unwrap_or(0),
    )
}

#[test]
fn run_and_check_agree_on_verdict_and_lost_count_for_every_scenario_and_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec!["reference".to_owned()];
    stores.extend(
        clobber_store::Protocol::FAULTS
            .iter()
            .map(|p| format!("reference:{}", p.name())),
    );
    let mut disagreements = Vec::new();
    let mut runs = 0;
    let mut violations = 0;
    for scenario in super::scenarios() {
        for store in &stores {
            let slug = format!("{}-{store}", scenario.replace('/', "_")).replace(':', "_");
            let hist = dir.path().join(format!("{slug}.jsonl"));
            let json_path = dir.path().join(format!("{slug}.json"));
            let out = clobber(&[
                "run",
                &scenario,
                "--store",
                store,
                "--seed",
                "9",
                "--max-duration-ms",
                "700",
                "--quiet",
                "--history",
                hist.to_str().unwrap(),
                "--json",
                json_path.to_str().unwrap(),
            ]);
            assert!(
                matches!(out.status.code(), Some(0..=2)),
                "{scenario} {store}\n{}",
                text(&out)
            );
            runs += 1;
            let r = json(&json_path);
            let run_verdict = r["verdict"].as_str().unwrap().to_owned();
            let (check_verdict, lost, acked) = check_json(&hist);
            if run_verdict == "violation" {
                violations += 1;
            }
            // The store file's integrity is not in the history: a run that fails
            // only that check is the one verdict `clobber check` cannot see.
            let only_integrity = r["checks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["status"] == "violation")
                .all(|c| c["name"] == "store integrity");
            let agree = match (run_verdict.as_str(), check_verdict.as_str()) {
                ("violation", "violation") | ("pass", "ok") => true,
                ("violation", _) => only_integrity,
                // Inconclusive runs (unknowns above the threshold, an unresponsive
                // store) are never a pass; the checker must not prove a violation.
                ("inconclusive", v) => v != "violation",
                _ => false,
            };
            if !agree
                || r["lost"].as_u64() != Some(lost)
                || r["acknowledged"].as_u64() != Some(acked)
            {
                disagreements.push(format!(
                    "{scenario} {store}: run {run_verdict} Lost {} / {}, check {check_verdict} \
                     Lost {lost} / {acked}",
                    r["lost"], r["acknowledged"]
                ));
            }
        }
    }
    assert!(runs >= 6 * 9, "{runs} runs");
    assert!(
        violations >= 6,
        "the faults were caught in {violations} runs"
    );
    assert_eq!(disagreements, Vec::<String>::new());
}

#[test]
fn audit_and_check_agree_on_lost_writes_over_generated_histories() {
    let dir = tempfile::tempdir().unwrap();
    let mut with_losses = 0;
    for seed in 1..=30 {
        let hist = dir.path().join(format!("gen-{seed}.jsonl"));
        let mut args = vec![
            "gen".to_owned(),
            "--ops".into(),
            "300".into(),
            "--keys".into(),
            "4".into(),
            "--clients".into(),
            "6".into(),
            "--delete".into(),
            "15".into(),
            "--list".into(),
            "3".into(),
            "--indeterminate".into(),
            "0.05".into(),
            "--seed".into(),
            seed.to_string(),
            "--output".into(),
            hist.to_str().unwrap().into(),
        ];
        if seed % 2 == 0 {
            args.extend(["--inject".into(), "lost-write".into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = clobber(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let records = clobber_check::history::read_jsonl(std::io::BufReader::new(
            std::fs::File::open(&hist).unwrap(),
        ))
        .unwrap();
        let audit = clobber::audit::audit(&records, &clobber::audit::Options::default());
        let (verdict, lost, acked) = check_json(&hist);
        assert_eq!(
            (audit.lost as u64, audit.acknowledged as u64),
            (lost, acked),
            "seed {seed}: audit Lost {} / {}, check Lost {lost} / {acked}",
            audit.lost,
            audit.acknowledged
        );
        if !audit.violations.is_empty() {
            assert_eq!(
                verdict, "violation",
                "seed {seed}: the audit found {:?}",
                audit.violations[0].message
            );
        }
        if lost > 0 {
            with_losses += 1;
        }
    }
    assert!(
        with_losses >= 5,
        "losses were planted and found: {with_losses}"
    );
}

#[test]
fn a_worker_that_cannot_write_its_history_exits_6_without_panicking() {
    use std::io::Write as _;
    // A full disk, as the worker sees it: its history and its log are /dev/full.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("secrets");
    let mut s = clobber_store::StoreOptions::new(
        &store,
        clobber_store::KeySource::passphrase("pw".to_owned()),
    )
    .new_store_params(clobber_store::KdfParams::CHEAP)
    .open()
    .unwrap();
    s.init().unwrap();
    let scenario = dir.path().join("one.toml");
    std::fs::write(
        &scenario,
        "description = \"x\"\n[[role]]\nname = \"w\"\niterations = 3\n\
         steps = [{ op = \"set\", key = \"k\", value = \"{tag}\" }]\n",
    )
    .unwrap();
    let role = clobber::scenario::Scenario::load(&scenario).unwrap().roles[0].clone();
    let spec = clobber::worker::WorkerSpec {
        process: 1,
        index: 1,
        role,
        seed: 1,
        driver: clobber::driver::DriverSpec::Lib {
            path: store,
            passphrase: "pw".into(),
            protocol: "correct".into(),
            lock_wait_ms: 5000,
            handle: clobber::scenario::Handle::PerOp,
        },
        history: PathBuf::from("/dev/full"),
        max_consecutive_unknown: 3,
        parent: 0,
    };
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let mut child = Command::new(clobber_bin())
        .arg("__worker")
        .arg(&spec_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "go {}", clobber::clock::now_ns()).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(6), "{status:?} (101 is a panic)");
}

#[test]
fn bad_numbers_and_missing_files_are_clear_errors_and_help_lists_exit_codes() {
    let out = clobber(&[
        "run",
        "scenarios/oauth-churn.toml",
        "--max-duration-ms",
        "18446744073709551615",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(
        t.contains("--max-duration-ms") && t.contains("1..=86400000"),
        "{t}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("huge.toml");
    std::fs::write(
        &bad,
        "description = \"x\"\n[[role]]\nname = \"r\"\niterations = 1\n\
         steps = [\n  { op = \"get\", key = \"k\" },\n  { pause_ms = 99999999999 },\n]\n",
    )
    .unwrap();
    let out = clobber(&["run", bad.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(
        t.contains(&format!("{}:7:", bad.display())) && t.contains("more than a day"),
        "{t}"
    );

    let out = clobber(&["run", "scenarios/oauth-churn.toml", "--store", "nonsense"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(
        t.contains("--store nonsense")
            && t.contains("reference:<fault>")
            && t.contains("stale-snapshot")
            && t.contains("adapters/thv.toml"),
        "{t}"
    );
    let out = clobber(&["run", "scenarios/no-such.toml"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(
        t.contains("scenarios/no-such.toml") && t.contains("scenarios/oauth-churn.toml"),
        "{t}"
    );

    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["validate", "--help"],
        &["perf", "--help"],
        &["check", "--help"],
        &["gen", "--help"],
        &["bench", "--help"],
    ] {
        let out = clobber(args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{t}");
        assert!(t.contains("130"), "{args:?} documents 130\n{t}");
        assert!(t.contains("xit code"), "{args:?} lists its exit codes\n{t}");
    }
}
