//! Adapter features end to end, through the real `clobber` binary: capabilities,
//! program lookup errors, setup and teardown.

use crate::common::{clobber_env as clobber, root, text};
use std::path::{Path, PathBuf};

/// The fast fake store (no delay) without a `clear` command, in `dir`.
fn no_clear_adapter(dir: &Path, extra: &str) -> PathBuf {
    let fake = root().join("harness/tests/fixtures/kv-file-store.sh");
    let text = std::fs::read_to_string(root().join("harness/tests/fixtures/slow-locked.toml"))
        .unwrap()
        .replace(
            "\"kv-file-store.sh\"",
            &format!("{:?}", fake.display().to_string()),
        )
        .replace("clear = [\"{program}\", \"clear\"]\n", "")
        .replace("[commands]\n", &format!("[commands]\n{extra}\n"))
        .replace("${FAKE_STORE_DELAY:-0.5}", "0");
    let path = dir.join("no-clear.toml");
    std::fs::write(&path, format!("clear = \"none\"\n{text}")).unwrap();
    path
}

#[test]
fn run_refuses_a_scenario_needing_a_capability_the_store_lacks_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = no_clear_adapter(dir.path(), "");
    let out = clobber(
        &[
            "run",
            "scenarios/clear-vs-set.toml",
            "--store",
            adapter.to_str().unwrap(),
        ],
        &[],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("needs `clear`"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        line.contains("clear-vs-set") && line.contains("clear = \"none\""),
        "{t}"
    );
    // The same store runs a scenario that does not clear.
    let out = clobber(
        &[
            "run",
            "scenarios/delete-vs-set.toml",
            "--store",
            adapter.to_str().unwrap(),
            "--max-duration-ms",
            "1500",
            "--quiet",
        ],
        &[],
    );
    assert_ne!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn a_store_bin_variable_that_is_set_is_the_only_place_named() {
    let out = clobber(
        &["run", "scenarios/oauth-churn.toml", "--store", "reference"],
        &[("CLOBBER_STORE_BIN", "/nonexistent/clobber-store")],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains("CLOBBER_STORE_BIN=/nonexistent/clobber-store is not a file"),
        "{t}"
    );
    assert!(
        !t.contains("on PATH") && !t.contains("or set CLOBBER_STORE_BIN"),
        "{t}"
    );
}

#[test]
fn a_missing_wrapper_names_the_path_tried() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("w.toml");
    std::fs::write(
        &adapter,
        "name = \"w\"\nprogram = \"wrappers/missing.sh\"\nvalue = \"stdin\"\n[commands]\n\
         set = [\"{program}\", \"{key}\"]\nget = [\"{program}\", \"{key}\"]\n\
         delete = [\"{program}\", \"{key}\"]\n",
    )
    .unwrap();
    let out = clobber(
        &[
            "run",
            "scenarios/oauth-churn.toml",
            "--store",
            adapter.to_str().unwrap(),
        ],
        &[],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    let tried = dir.path().join("wrappers/missing.sh");
    assert!(t.contains(&format!("tried: {}", tried.display())), "{t}");
}

#[test]
fn teardown_runs_after_a_run_and_after_a_failed_setup() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("torn-down");
    let teardown = format!(
        "teardown = [[\"sh\", \"-c\", \"echo x >> {}\"]]",
        mark.display()
    );
    // A run that ends normally.
    let adapter = no_clear_adapter(dir.path(), &teardown);
    let out = clobber(
        &[
            "run",
            "scenarios/delete-vs-set.toml",
            "--store",
            adapter.to_str().unwrap(),
            "--max-duration-ms",
            "1000",
            "--quiet",
        ],
        &[],
    );
    assert!(matches!(out.status.code(), Some(0..=2)), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&mark).unwrap_or_default(), "x\n");
    // A run whose second setup command fails: the teardown still runs.
    let adapter = no_clear_adapter(
        dir.path(),
        &format!("{teardown}\nsetup = [[\"true\"], [\"false\"]]"),
    );
    let out = clobber(
        &[
            "run",
            "scenarios/delete-vs-set.toml",
            "--store",
            adapter.to_str().unwrap(),
        ],
        &[],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(t.contains("store setup `false` failed"), "{t}");
    assert_eq!(std::fs::read_to_string(&mark).unwrap_or_default(), "x\nx\n");
}
