//! The perturber on real programs: a statically linked store, shells, threads,
//! signals, exit codes, and a tracer that is killed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use clobber_perturb::{Plan, Point, Record, Schedule, record};

const BIN: &str = env!("CARGO_BIN_EXE_clobber-perturb");

/// Build the static test store once per test binary (rustc from `$RUSTC` or PATH).
fn tiny_store() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tiny_store_static");
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_store.rs");
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
                .arg(&out)
                .arg(&src)
                .status()
                .expect("running rustc");
            assert!(status.success(), "building the static fixture failed");
            out
        })
        .clone()
}

/// True if the ELF file has no program interpreter (PT_INTERP): statically linked.
fn is_static(path: &Path) -> bool {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF");
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let phoff = usize::try_from(u64_at(0x20)).unwrap();
    let (size, num) = (usize::from(u16_at(0x36)), usize::from(u16_at(0x38)));
    (0..num).all(|i| u32_at(phoff + i * size) != 3)
}

fn perturbed(args: &[&str], program: &[&std::ffi::OsStr], log: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--log")
        .arg(log)
        .arg("--")
        .args(program)
        .output()
        .unwrap()
}

fn records(log: &Path) -> Vec<Record> {
    record::read_log(log).unwrap()
}

#[test]
fn a_static_binary_has_its_calls_delayed_and_its_results_unchanged() {
    let store = tiny_store();
    assert!(
        is_static(&store),
        "{} is not statically linked",
        store.display()
    );
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = Command::new(&store)
        .arg(plain_dir.path())
        .arg("5")
        .output()
        .unwrap();
    assert!(plain.status.success());

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.jsonl");
    let data = dir.path().join("store");
    std::fs::create_dir(&data).unwrap();
    let out = perturbed(
        &["--schedule", "noise:300", "--seed", "9"],
        &[store.as_os_str(), data.as_os_str(), "5".as_ref()],
        &log,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.stdout, plain.stdout,
        "a delay changed what the program saw"
    );
    assert_eq!(
        std::fs::read(data.join("data")).unwrap(),
        std::fs::read(plain_dir.path().join("data")).unwrap()
    );

    let recs = records(&log);
    assert_eq!(recs.len(), 1);
    let c = recs[0].counters();
    for call in [
        "openat", "read", "write", "fsync", "rename", "flock", "close", "unlink", "mkdir", "link",
    ] {
        let n = c
            .calls
            .iter()
            .filter(|(name, _)| name.starts_with(call))
            .map(|(_, n)| n.stopped)
            .sum::<u64>();
        assert!(n > 0, "no {call} stopped: {:?}", c.calls);
    }
    let total = c.total();
    assert!(total.delayed > 0 && total.delay_ns > 0, "{total:?}");
    assert!(
        c.tasks >= 5,
        "the 4 threads were not followed: {} tasks",
        c.tasks
    );
    assert!(!recs[0].delays().is_empty());
}

#[test]
fn pct_delays_one_call_at_the_planned_point() {
    let store = tiny_store();
    for point in Point::ALL {
        // Find an invocation number whose plan is this point.
        let schedule = Schedule::Pct {
            one_in: 1,
            delay: Duration::from_millis(30),
        };
        let inv = (0..1000)
            .find(|&i| matches!(schedule.plan(3, i), Plan::Point { point: p, .. } if p == point))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.jsonl");
        let out = perturbed(
            &[
                "--schedule",
                "pct:1:30",
                "--seed",
                "3",
                "--invocation",
                &inv.to_string(),
            ],
            &[store.as_os_str(), dir.path().as_os_str(), "2".as_ref()],
            &log,
        );
        assert!(out.status.success());
        let rec = &records(&log)[0];
        assert_eq!(rec.delays().len(), 1, "{point}: {:?}", rec.delays());
        let d = &rec.delays()[0];
        assert_eq!(d.point.as_deref(), Some(point.name()));
        assert_eq!(d.delay_ns, 30_000_000);
        let expected = match point {
            Point::BeforeRename => "rename",
            Point::BeforeWrite => "write",
            Point::UnlockUnlink => "unlink",
            Point::OpenLock => "flock",
        };
        assert!(d.call.starts_with(expected), "{point}: delayed {}", d.call);
    }
}

/// An invocation number whose `pct:1:30` plan (seed 3) is `point`.
fn invocation_for(point: Point) -> String {
    let schedule = Schedule::Pct {
        one_in: 1,
        delay: Duration::from_millis(30),
    };
    (0..1000)
        .find(|&i| matches!(schedule.plan(3, i), Plan::Point { point: p, .. } if p == point))
        .unwrap()
        .to_string()
}

#[test]
fn a_chosen_command_stops_only_at_the_calls_of_its_point() {
    let store = tiny_store();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.jsonl");
    let inv = invocation_for(Point::BeforeRename);
    let out = perturbed(
        &[
            "--schedule",
            "pct:1:30",
            "--seed",
            "3",
            "--invocation",
            &inv,
        ],
        &[store.as_os_str(), dir.path().as_os_str(), "2".as_ref()],
        &log,
    );
    assert!(out.status.success());
    let c = records(&log)[0].counters().clone();
    assert!(
        c.calls.keys().all(|k| k.starts_with("rename")),
        "a before-rename command stopped at other calls: {:?}",
        c.calls
    );
    assert_eq!(c.total().stopped, 2, "{:?}", c.calls);
}

#[test]
fn a_lock_point_in_a_store_that_takes_no_lock_delays_its_first_write_back() {
    let store = tiny_store();
    for point in [Point::UnlockUnlink, Point::OpenLock] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.jsonl");
        let inv = invocation_for(point);
        let out = perturbed(
            &[
                "--schedule",
                "pct:1:30",
                "--seed",
                "3",
                "--invocation",
                &inv,
            ],
            &[
                store.as_os_str(),
                dir.path().as_os_str(),
                "2".as_ref(),
                "nolock".as_ref(),
            ],
            &log,
        );
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "line 0\nline 1\n");
        let rec = &records(&log)[0];
        assert_eq!(rec.delays().len(), 1, "{point}: {:?}", rec.delays());
        let d = &rec.delays()[0];
        // The write to the pipe came first; the temp file's write is the write-back.
        assert_eq!(d.call, "write", "{point}");
        assert_eq!(
            d.point.as_deref(),
            Some("before-write (no lock)"),
            "{point}"
        );
    }
}

#[test]
fn before_write_ignores_writes_to_pipes_and_devices() {
    let store = tiny_store();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.jsonl");
    let inv = invocation_for(Point::BeforeWrite);
    let args = [
        store.as_os_str(),
        dir.path().as_os_str(),
        "1".as_ref(),
        "pipe".as_ref(),
    ];
    let out = perturbed(
        &[
            "--schedule",
            "pct:1:30",
            "--seed",
            "3",
            "--invocation",
            &inv,
        ],
        &args,
        &log,
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped x\n");
    let rec = &records(&log)[0];
    // The writes were seen (a pipe's and /dev/null's, above descriptor 2) ...
    assert!(
        rec.counters().calls["write"].stopped >= 2,
        "{:?}",
        rec.counters()
    );
    // ... and none of them is a write-back.
    assert!(rec.delays().is_empty(), "{:?}", rec.delays());
}

#[test]
fn a_command_pct_leaves_alone_runs_untraced_and_is_logged_as_such() {
    let schedule = Schedule::Pct {
        one_in: 4,
        delay: Duration::from_millis(30),
    };
    let unchosen = (0..100)
        .find(|&i| !schedule.plan(3, i).is_traced())
        .unwrap()
        .to_string();
    let chosen = (0..100)
        .find(|&i| schedule.plan(3, i).is_traced())
        .unwrap()
        .to_string();
    let script = "grep TracerPid /proc/self/status; exit 3";
    let mut tracers = Vec::new();
    for inv in [&unchosen, &chosen] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.jsonl");
        let out = perturbed(
            &["--schedule", "pct:4:30", "--seed", "3", "--invocation", inv],
            &["sh".as_ref(), "-c".as_ref(), script.as_ref()],
            &log,
        );
        assert_eq!(out.status.code(), Some(3));
        let rec = &records(&log)[0];
        tracers.push((
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            rec.untraced,
            rec.plan.clone(),
        ));
    }
    let (untraced_tracer, untraced, plan) = &tracers[0];
    assert_eq!(
        untraced_tracer, "TracerPid:\t0",
        "an unchosen command was traced"
    );
    assert!(*untraced && plan == "untraced", "{plan}");
    let (traced_tracer, untraced, _) = &tracers[1];
    assert_ne!(
        traced_tracer, "TracerPid:\t0",
        "a chosen command was not traced"
    );
    assert!(!*untraced);
}

#[test]
fn exit_codes_and_signals_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.jsonl");
    let out = perturbed(
        &["--schedule", "count"],
        &["sh".as_ref(), "-c".as_ref(), "exit 7".as_ref()],
        &log,
    );
    assert_eq!(out.status.code(), Some(7));
    // The shell's TERM is delivered (re-injected) and kills it; the tracer dies alike.
    let out = perturbed(
        &["--schedule", "count"],
        &[
            "sh".as_ref(),
            "-c".as_ref(),
            "kill -TERM $$; sleep 5".as_ref(),
        ],
        &log,
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(15), "{:?}", out.status);
    let out = perturbed(
        &["--schedule", "count"],
        &["/nonexistent/prog".as_ref()],
        &log,
    );
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn children_of_a_shell_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.jsonl");
    let script = "cd \"$1\" && echo a > f && mv f g && (echo b > h; mv h i) && cat g i";
    let out = perturbed(
        &["--schedule", "count"],
        &[
            "sh".as_ref(),
            "-c".as_ref(),
            script.as_ref(),
            "sh".as_ref(),
            dir.path().as_os_str(),
        ],
        &log,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n");
    let c = records(&log)[0].counters().clone();
    assert!(c.tasks >= 3, "{c:?}");
    let renames: u64 = c
        .calls
        .iter()
        .filter(|(k, _)| k.starts_with("rename"))
        .map(|(_, v)| v.stopped)
        .sum();
    assert_eq!(renames, 2, "{c:?}");
}

#[test]
fn killing_the_tracer_kills_the_traced_program() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut tracer = Command::new(BIN)
        .args([
            "--schedule",
            "count",
            "--",
            "sh",
            "-c",
            "echo $$ > \"$1\"; exec sleep 60",
            "sh",
        ])
        .arg(&pidfile)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let pid = loop {
        if let Ok(s) = std::fs::read_to_string(&pidfile)
            && let Ok(p) = s.trim().parse::<i32>()
        {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the program never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    tracer.kill().unwrap();
    tracer.wait().unwrap();
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let start = Instant::now();
    // Gone, or a zombie awaiting its reaper (init): either way no longer running.
    while proc.exists()
        && !std::fs::read_to_string(proc.join("stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the traced program outlived its tracer"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_program_that_may_not_be_traced_is_exit_5_naming_the_fix() {
    // The trampoline of an inner perturber is already traced by the outer one, so
    // its PTRACE_TRACEME fails with EPERM: the same error as under a strict Yama
    // policy or a container without CAP_SYS_PTRACE.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.jsonl");
    let out = perturbed(
        &["--schedule", "count"],
        &[BIN.as_ref(), "--".as_ref(), "true".as_ref()],
        &log,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("ptrace is not permitted") && stderr.contains("ptrace_scope"),
        "{stderr}"
    );
}

#[test]
fn node_with_its_worker_threads_is_followed_and_its_output_unchanged() {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("SKIPPED: node is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.jsonl");
    let script = "const fs = require('fs'); const p = process.argv[1]; \
                  fs.writeFileSync(p + '/a', 'node'); fs.renameSync(p + '/a', p + '/b'); \
                  console.log(fs.readFileSync(p + '/b', 'utf8'));";
    let out = perturbed(
        &["--schedule", "noise:200"],
        &[
            "node".as_ref(),
            "-e".as_ref(),
            script.as_ref(),
            dir.path().as_os_str(),
        ],
        &log,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "node\n");
    let c = records(&log)[0].counters().clone();
    assert!(c.tasks > 1, "node's threads were not followed: {c:?}");
    assert!(
        c.total().delayed > 0 && c.calls.keys().any(|k| k.starts_with("rename")),
        "{c:?}"
    );
}
