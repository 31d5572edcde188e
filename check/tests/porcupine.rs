//! Porcupine's own key/value histories (`testdata/porcupine-kv/`, MIT, see its
//! README for provenance), read through the EDN importer: the checker must give
//! Porcupine's verdict on each. The expected verdicts live in
//! `testdata/porcupine-kv/expected.tsv`, not here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clobber_check::cli::{FormatArg, check_file};
use clobber_check::model::Entry;
use clobber_check::model::strkv::{StrInput, StrKv, StrOutput};
use clobber_check::{CheckOptions, Verdict, check_model};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/porcupine-kv")
}

/// (file, expected verdict) rows of `expected.tsv`.
fn expected() -> Vec<(String, Verdict)> {
    let table = std::fs::read_to_string(dir().join("expected.tsv")).expect("expected.tsv");
    table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let verdict = match cols.get(1).copied() {
                Some("ok") => Verdict::Ok,
                Some("violation") => Verdict::Violation,
                other => panic!("expected.tsv: bad verdict {other:?} in {l:?}"),
            };
            (cols[0].to_owned(), verdict)
        })
        .collect()
}

#[test]
fn porcupine_kv_histories_get_porcupines_verdicts() {
    let rows = expected();
    assert_eq!(rows.len(), 6, "six histories in expected.tsv");
    for (file, want) in rows {
        let report = check_file(
            &dir().join(&file),
            FormatArg::Edn,
            None,
            &CheckOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(report.verdict(), want, "{file}:\n{}", report.render_text());
        match want {
            Verdict::Ok => assert!(
                report.partitions.iter().all(|p| p.verdict == Verdict::Ok),
                "{file}: every key decided"
            ),
            _ => {
                let bad = &report.partitions[0];
                let w = bad.witness.as_ref().expect("a violation has a witness");
                assert!(
                    !w.ops.is_empty() && w.ops.len() < bad.operations,
                    "{file}: the witness is a strict part of key {:?}",
                    bad.key
                );
            }
        }
    }
}

/// Appends of big values that no order can explain: a search that charged only a
/// fixed size per memo entry would hold hundreds of megabytes of strings under a
/// budget of a few.
#[test]
fn the_memory_budget_counts_the_strings_an_append_search_holds() {
    let big = |i: usize| format!("{i}{}", "x".repeat(100_000));
    let mut h: Vec<Entry<StrInput, StrOutput>> = (0..7)
        .map(|i| Entry {
            process: i as u64,
            invoke: 0,
            complete: Some(100),
            input: StrInput::Append {
                key: "k".into(),
                value: big(i),
            },
            output: StrOutput::Ok,
            source: i,
        })
        .collect();
    h.push(Entry {
        process: 99,
        invoke: 200,
        complete: Some(201),
        input: StrInput::Get { key: "k".into() },
        output: StrOutput::Value("no such string".into()),
        source: 99,
    });
    let options = CheckOptions {
        memory_budget: 4 << 20,
        time_budget: Duration::from_secs(60),
        shrink: false,
        ..CheckOptions::default()
    };
    let report = check_model(&StrKv, "kv", &h, &options);
    assert_eq!(
        report.verdict(),
        Verdict::Unknown,
        "{}",
        report.render_text()
    );
    let reason = report.partitions[0].reason.as_deref().unwrap_or("");
    assert!(reason.contains("memory budget"), "{reason}");
}
