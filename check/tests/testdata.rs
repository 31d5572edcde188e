//! Every file in `testdata/` is a history whose expected verdict is in its name:
//! `NAME.ok.EXT`, `NAME.violation.EXT`, or `NAME.error-lineN.EXT` (malformed input,
//! the error must name line N). `EXT` is the format: `jsonl`, `jepsen` or `edn`.

use std::path::Path;

use clobber_check::cli::{FormatArg, check_file};
use clobber_check::{CheckOptions, Verdict};

#[test]
fn every_testdata_history_gets_the_verdict_in_its_name() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e != "md"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "only {} histories in {}",
        files.len(),
        dir.display()
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let parts: Vec<&str> = name.split('.').collect();
        let [_, expected, ext] = parts.as_slice() else {
            panic!("{name}: expected NAME.VERDICT.FORMAT");
        };
        let format = match *ext {
            "jsonl" => FormatArg::Jsonl,
            "jepsen" => FormatArg::Jepsen,
            "edn" => FormatArg::Edn,
            other => panic!("{name}: unknown format {other}"),
        };
        for fast_path in [true, false] {
            let options = CheckOptions {
                fast_path,
                ..CheckOptions::default()
            };
            let result = check_file(path, format, None, &options);
            let ok = match (*expected, &result) {
                ("ok", Ok(r)) => r.verdict() == Verdict::Ok,
                ("violation", Ok(r)) => {
                    // A cross-key list witness names every key involved.
                    let p = &r.partitions[0];
                    let limit = if p.key.ends_with("(across keys)") {
                        8
                    } else {
                        4
                    };
                    r.verdict() == Verdict::Violation
                        && p.witness
                            .as_ref()
                            .is_some_and(|w| !w.ops.is_empty() && w.ops.len() <= limit)
                }
                // The error must name exactly that line ("line 2" is not "line 20").
                (e, Err(clobber_check::Error::Parse { source, .. }))
                    if e.starts_with("error-line") =>
                {
                    e["error-line".len()..].parse::<usize>() == Ok(source.line)
                }
                _ => false,
            };
            if !ok {
                let got = match &result {
                    Ok(r) => r.render_text(),
                    Err(e) => format!("error: {e}"),
                };
                failures.push(format!(
                    "{name} (fast path {fast_path}): expected {expected}, got:\n{got}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
