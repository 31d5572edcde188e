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
fn exit_codes_are_0_ok_1_violation_3_usage_4_malformed_6_io() {
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
        4
    );
    assert_eq!(
        check_main(&args(testdata("no-such-file.jsonl"), FormatArg::Jsonl)),
        6
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

/// A scratch file under the test target directory.
fn scratch(name: &str, text: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).expect("write scratch file");
    path
}

/// The error `check_file` gives, as text, for `path` read as `format`.
fn input_error(path: &Path, format: FormatArg) -> String {
    match clobber_check::cli::check_file(path, format, None, &CheckOptions::default()) {
        Ok(r) => panic!(
            "{} read as {format:?} gave a verdict:\n{}",
            path.display(),
            r.render_text()
        ),
        Err(e) => {
            assert_eq!(clobber_check::cli::exit_code(&e), 4, "{e}");
            e.to_string()
        }
    }
}

#[test]
fn a_file_the_chosen_format_cannot_read_is_malformed_input_never_ok() {
    // A clobber history read as a Jepsen log has no Jepsen event in it.
    let jsonl = testdata("lost-write.violation.jsonl");
    assert_eq!(check_main(&args(jsonl.clone(), FormatArg::Jepsen)), 4);
    let e = input_error(&jsonl, FormatArg::Jepsen);
    assert!(
        e.contains("lost-write.violation.jsonl") && e.contains("line 1:"),
        "{e}"
    );
    assert!(e.contains("--format"), "{e}");
    // Prose (the README) is not a history in any format.
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    assert_eq!(check_main(&args(readme.clone(), FormatArg::Jepsen)), 4);
    for format in [FormatArg::Jsonl, FormatArg::Edn] {
        assert_eq!(check_main(&args(readme.clone(), format)), 4, "{format:?}");
    }
}

#[test]
fn an_empty_history_is_malformed_input_naming_line_1_never_ok() {
    for (name, text) in [("empty.jsonl", ""), ("blank.jsonl", "\n  \n\n")] {
        let path = scratch(name, text);
        for format in [FormatArg::Jsonl, FormatArg::Jepsen, FormatArg::Edn] {
            assert_eq!(
                check_main(&args(path.clone(), format)),
                4,
                "{name} {format:?}"
            );
            let e = input_error(&path, format);
            assert!(
                e.contains(name) && e.contains("line 1:") && e.contains("empty"),
                "{e}"
            );
        }
    }
}

#[test]
fn a_history_with_no_operation_to_check_is_malformed_input_never_ok() {
    // Only a failed write and a read of unknown outcome: nothing constrains the store.
    let path = scratch(
        "nothing-to-check.jsonl",
        "\n{\"process\":1,\"op\":\"set\",\"key\":\"k\",\"value\":\"v\",\"outcome\":\"fail\",\"invoke_ns\":1,\"complete_ns\":2}\n\
         {\"process\":2,\"op\":\"get\",\"key\":\"k\",\"outcome\":\"unknown\",\"invoke_ns\":3,\"complete_ns\":null}\n",
    );
    assert_eq!(check_main(&args(path.clone(), FormatArg::Jsonl)), 4);
    let e = input_error(&path, FormatArg::Jsonl);
    assert!(
        e.contains("line 2:") && e.contains("none of the 2 operations"),
        "{e}"
    );
}

#[derive(clap::Parser, Debug)]
struct Cmd {
    #[command(subcommand)]
    sub: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    Check(CheckArgs),
    Gen(GenArgs),
    Bench(clobber_check::cli::BenchArgs),
}

#[test]
fn non_finite_negative_or_huge_time_budgets_are_usage_errors_not_panics() {
    use clap::Parser;
    for bad in ["inf", "-inf", "NaN", "-1", "1e300", "soon"] {
        let flag = format!("--time-budget={bad}");
        let e = Cmd::try_parse_from(["clobber", "check", "h.jsonl", &flag]).expect_err(bad);
        assert_eq!(
            e.kind(),
            clap::error::ErrorKind::ValueValidation,
            "{bad}: {e}"
        );
        assert!(
            e.to_string().contains("time budget") || e.to_string().contains("seconds"),
            "{e}"
        );
    }
    for bad in ["0", "-5", "99999999999999999999"] {
        assert!(
            Cmd::try_parse_from([
                "clobber",
                "check",
                "h.jsonl",
                &format!("--memory-budget={bad}")
            ])
            .is_err(),
            "--memory-budget {bad}"
        );
    }
    let Sub::Check(a) =
        Cmd::try_parse_from(["clobber", "check", "h.jsonl", "--time-budget", "1e9"])
            .expect("1e9 s is accepted")
            .sub
    else {
        panic!("check")
    };
    assert_eq!(a.options().time_budget, Duration::from_secs(1_000_000_000));
}

#[test]
fn check_gen_and_bench_help_list_their_exit_codes() {
    use clap::CommandFactory;
    let mut cmd = Cmd::command();
    for (sub, needles) in [
        (
            "check",
            &[
                "0  ok",
                "1  violation",
                "2  inconclusive",
                "3  usage",
                "4  malformed",
                "6  I/O",
                "130",
            ][..],
        ),
        (
            "gen",
            &[
                "0  history written",
                "3  usage",
                "5  setup",
                "6  I/O",
                "130",
            ][..],
        ),
        (
            "bench",
            &[
                "0  every",
                "1  some verdict",
                "3  usage",
                "5  setup",
                "6  I/O",
                "130",
            ][..],
        ),
    ] {
        let help = cmd
            .find_subcommand_mut(sub)
            .expect(sub)
            .render_long_help()
            .to_string();
        for n in needles {
            assert!(
                help.contains(n),
                "clobber {sub} --help lacks {n:?}:\n{help}"
            );
        }
    }
}
