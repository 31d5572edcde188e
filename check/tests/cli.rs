//! The `clobber check` / `clobber gen` entry points: exit codes and budgets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clobber_check::cli::{CheckArgs, FormatArg, GenArgs, check_main, gen_main};
use clobber_check::generator::{GenOptions, generate};
use clobber_check::{CheckOptions, Verdict, check_kv};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn args(file: PathBuf, format: FormatArg) -> CheckArgs {
    CheckArgs {
        file,
        model: None,
        format,
        json: true,
        time_budget: 60.0,
        memory_budget: 1024,
        no_shrink: false,
        no_fast_path: false,
        stats: false,
    }
}

#[test]
fn exit_codes_are_0_ok_1_violation_3_bad_input() {
    assert_eq!(
        check_main(&args(
            testdata("read-during-overwrite.ok.jsonl"),
            FormatArg::Jsonl
        )),
        0
    );
    assert_eq!(
        check_main(&args(
            testdata("lost-write.violation.jsonl"),
            FormatArg::Jsonl
        )),
        1
    );
    assert_eq!(
        check_main(&args(
            testdata("register-read-after-cas.violation.jepsen"),
            FormatArg::Jepsen
        )),
        1
    );
    assert_eq!(
        check_main(&args(
            testdata("bad-syntax.error-line1.edn"),
            FormatArg::Edn
        )),
        3
    );
    assert_eq!(
        check_main(&args(testdata("no-such-file.jsonl"), FormatArg::Jsonl)),
        3
    );
    let mut wrong_model = args(testdata("kv-append.ok.edn"), FormatArg::Edn);
    wrong_model.model = Some(clobber_check::cli::ModelArg::Register);
    assert_eq!(check_main(&wrong_model), 3);
}

/// A busy single key with deletes needs the search; no time means no verdict.
fn busy_key() -> Vec<clobber_check::history::Record> {
    generate(&GenOptions {
        ops: 20_000,
        keys: 1,
        clients: 16,
        seed: 3,
        ..GenOptions::default()
    })
    .records
}

#[test]
fn an_exhausted_time_budget_is_unknown_never_ok() {
    let history = busy_key();
    let generous = check_kv(&history, &CheckOptions::default());
    assert_eq!(generous.verdict(), Verdict::Ok);
    let none = CheckOptions {
        time_budget: Duration::ZERO,
        ..CheckOptions::default()
    };
    let report = check_kv(&history, &none);
    assert_eq!(
        report.verdict(),
        Verdict::Unknown,
        "{}",
        report.render_text()
    );
    assert!(
        report.partitions[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("time budget")),
        "{:?}",
        report.partitions[0].reason
    );
    assert_eq!(report.verdict().exit_code(), 2);
}

#[test]
fn gen_writes_a_history_that_check_passes_and_replays_from_its_seed() {
    let dir = std::env::temp_dir().join(format!("clobber-check-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let g = |out: &str| GenArgs {
        ops: 500,
        keys: 3,
        clients: 4,
        indeterminate: 0.05,
        seed: 42,
        output: Some(dir.join(out)),
        ..GenArgs::default()
    };
    assert_eq!(gen_main(&g("a.jsonl")), 0);
    assert_eq!(gen_main(&g("b.jsonl")), 0);
    let a = std::fs::read(dir.join("a.jsonl")).unwrap();
    assert_eq!(
        a,
        std::fs::read(dir.join("b.jsonl")).unwrap(),
        "same seed, same history"
    );
    assert_eq!(check_main(&args(dir.join("a.jsonl"), FormatArg::Jsonl)), 0);
    let mut lost = g("c.jsonl");
    lost.inject = Some(clobber_check::cli::InjectArg::LostWrite);
    assert_eq!(gen_main(&lost), 0);
    assert_eq!(check_main(&args(dir.join("c.jsonl"), FormatArg::Jsonl)), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
