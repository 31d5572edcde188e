//! `clobber validate` and the `--html` reports, end to end: the real `clobber`
//! binary against the real `clobber-store`, and the HTML opened in a real browser
//! (Debian's `chromium`, headless) when one is installed.

use crate::common::{clobber_bin, clobber_env as clobber, root, store_bin, text};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test's directory");
    dir
}

fn shipped_scenarios() -> usize {
    std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios/ exists")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "toml"))
        })
        .count()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written"))
        .expect("valid JSON")
}

#[test]
fn validate_passes_the_reference_store_adapter_on_every_shipped_scenario() {
    let dir = out_dir("validate-pass");
    let (j, x) = (dir.join("v.json"), dir.join("v.xml"));
    let out = clobber(
        &[
            "validate",
            "adapters/clobber-store.toml",
            "--seed",
            "11",
            "--json",
            j.to_str().unwrap(),
            "--junit",
            x.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let n = shipped_scenarios();
    assert!(stderr.contains("estimated"), "{}", text(&out));
    assert!(
        stderr.contains(&format!("scenario {n} of {n}")),
        "{}",
        text(&out)
    );
    let v = json(&j);
    let cells = v["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), n, "one run of each shipped scenario");
    for c in cells {
        assert_eq!(c["verdict"], "pass", "{c}");
        assert!(c["acknowledged"].as_u64().unwrap() > 0, "{c}");
        assert_eq!(c["lost"], 0, "{c}");
    }
    let junit = std::fs::read_to_string(&x).expect("junit written");
    assert_eq!(junit.matches("<testcase ").count(), n, "{junit}");
    assert!(junit.contains("failures=\"0\" errors=\"0\""), "{junit}");
    // The shipped scenarios were written to this user's own private directory.
    let uid = std::fs::metadata(&j)
        .map(|m| m.uid())
        .expect("our own file");
    let mine = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "clobber-scenarios-{}-{uid}",
        env!("CARGO_PKG_VERSION")
    ));
    let meta = std::fs::metadata(&mine).expect("the per-user scenario directory");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o700));
    for c in cells {
        let file = PathBuf::from(c["scenario_file"].as_str().expect("a file"));
        assert_eq!(file.parent(), Some(mine.as_path()), "{c}");
        let name = file.file_name().expect("a name");
        assert_eq!(
            std::fs::read_to_string(&file).ok(),
            std::fs::read_to_string(root().join("scenarios").join(name)).ok(),
            "the copy is the shipped scenario"
        );
    }
}

#[test]
fn validate_fails_with_exit_1_on_every_scenario_when_the_store_keeps_a_stale_snapshot() {
    let dir = out_dir("validate-stale");
    let (j, x, h) = (dir.join("v.json"), dir.join("v.xml"), dir.join("v.html"));
    let out = clobber(
        &[
            "validate",
            "adapters/clobber-store.toml",
            "--quiet",
            "--seed",
            "3",
            "--json",
            j.to_str().unwrap(),
            "--junit",
            x.to_str().unwrap(),
            "--html",
            h.to_str().unwrap(),
        ],
        &[("CLOBBER_STORE_UNSAFE_PROTOCOL", "stale-snapshot")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict: VIOLATION (exit 1)"), "{stdout}");
    assert!(
        stdout.contains("replay: ") && stdout.contains(" clobber run "),
        "{stdout}"
    );
    let v = json(&j);
    // Every scenario catches it, but seed-loop: its two processes overlap too rarely
    // to catch the fault in every run without --perturb (README); there a pass is
    // possible, never anything else.
    let mut caught = 0;
    for c in v["cells"].as_array().expect("cells") {
        if c["scenario"]
            .as_str()
            .is_some_and(|n| n.contains("seed-loop"))
        {
            assert!(
                c["verdict"] == "violation" || c["verdict"] == "pass",
                "seed-loop: {c}"
            );
        } else {
            assert_eq!(c["verdict"], "violation", "every scenario catches it: {c}");
        }
        caught += usize::from(c["verdict"] == "violation");
    }
    assert!(caught >= shipped_scenarios() - 1, "{caught}");
    let junit = std::fs::read_to_string(&x).expect("junit written");
    assert_eq!(junit.matches("<failure ").count(), caught, "{junit}");
    let html = std::fs::read_to_string(&h).expect("html written");
    assert!(html.contains("id=\"v1w1\""), "a witness is drawn");
    // A printed replay command works as printed: its leading VAR=value words
    // are its environment, and it names the per-user copy of the shipped scenario.
    let replay = v["cells"][0]["replay"].as_str().expect("a replay command");
    let words: Vec<&str> = replay.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "clobber")
        .expect("a clobber command");
    let env: Vec<(&str, &str)> = words[..at]
        .iter()
        .map(|w| w.split_once('=').expect("VAR=value"))
        .collect();
    assert_eq!(words.get(at + 1), Some(&"run"), "{replay}");
    assert!(words[at + 2].contains("/clobber-scenarios-"), "{replay}");
    let mut args = words[at + 1..].to_vec();
    args.push("--quiet");
    let replayed = clobber(&args, &env);
    // It ran the scenario; a replay may not repeat the race, so 0 or 1.
    assert!(
        matches!(replayed.status.code(), Some(0 | 1)),
        "{replay}: {}",
        text(&replayed)
    );
    assert!(
        String::from_utf8_lossy(&replayed.stdout).contains("Lost: "),
        "{}",
        text(&replayed)
    );
}

#[test]
fn validate_refuses_bad_input_before_running_anything() {
    let dir = out_dir("validate-bad");
    let out = clobber(&["validate", "reference", "--runs", "0"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = clobber(&["validate", "reference", "--variants", "bogus"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("bogus"), "{}", text(&out));
    let out = clobber(&["validate", "adapters/thv.toml", "--variants", "lib"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    std::fs::write(dir.join("bad.toml"), "description = \"x\"\nbogus = 1\n").unwrap();
    let out = clobber(
        &[
            "validate",
            "reference",
            "--scenarios",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("bad.toml"), "{}", text(&out));
    let out = clobber(
        &["validate", "adapters/clobber-store.toml"],
        &[("CLOBBER_STORE_BIN", "/nonexistent/clobber-store")],
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("scenario 1 of"),
        "a missing store is found before the first run: {}",
        text(&out)
    );
}

/// The `chromium` on PATH, or `None` (with a loud note) when it is not installed.
fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            return Some(PathBuf::from(path));
        }
    }
    eprintln!(
        "SKIPPED: no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
    );
    None
}

/// Open `page` in headless Chromium; returns (the DOM after scripts ran, stderr).
fn open_in_chromium(browser: &Path, page: &Path, profile: &Path) -> (String, String) {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", text(&out));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn html_of_a_failing_run_opens_in_headless_chromium_with_its_witness_and_no_console_error() {
    let dir = out_dir("html-run");
    let (h, j) = (dir.join("run.html"), dir.join("run.json"));
    let out = clobber(
        &[
            "run",
            "scenarios/oauth-churn.toml",
            "--store",
            "reference:stale-snapshot",
            "--seed",
            "7",
            "--quiet",
            "--html",
            h.to_str().unwrap(),
            "--json",
            j.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let html = std::fs::read_to_string(&h).expect("html written");
    // Self-contained: nothing to fetch.
    for needle in ["<link", "src=", "http://", "https://", "@import", "url("] {
        assert!(!html.contains(needle), "the page references {needle}");
    }
    let report = json(&j);
    let witness = report["violations"][0]["witness"]
        .as_array()
        .expect("a witness")
        .clone();
    assert!(!witness.is_empty());
    let Some(browser) = chromium() else { return };
    let (dom, log) = open_in_chromium(&browser, &h, &dir.join("profile"));
    assert!(
        dom.contains("data-rendered=\"ok\""),
        "the page's script ran to the end: {}",
        &dom[..dom.len().min(400)]
    );
    for line in log.lines() {
        assert!(
            !line.contains("CONSOLE") && !line.contains("Uncaught"),
            "console message: {line}"
        );
    }
    // Every witness operation is a numbered row and a bar of timeline 1.
    for n in 1..=witness.len() {
        assert!(dom.contains(&format!("id=\"v1w{n}\"")), "bar {n} is drawn");
        let row = format!("<tr data-op=\"v1w{n}\">");
        assert!(dom.contains(&row), "row {n} is listed");
    }
    let rows: Vec<&str> = dom.split("<tr data-op=\"v1w").skip(1).collect();
    for w in &witness {
        let process = format!("<td>p{}</td>", w["process"]);
        let what = w["value"]
            .as_str()
            .or(w["key"].as_str())
            .unwrap_or(w["op"].as_str().unwrap());
        assert!(
            rows.iter()
                .any(|r| r.contains(&process) && r.contains(what)),
            "witness op {w} is in the DOM"
        );
    }
}

#[test]
fn html_of_a_checked_history_stays_small_and_draws_the_planted_lost_write() {
    let dir = out_dir("html-check");
    let (history, page) = (dir.join("h.jsonl"), dir.join("h.html"));
    let out = clobber(
        &[
            "gen",
            "--ops",
            "50000",
            "--keys",
            "50",
            "--inject",
            "lost-write",
            "--seed",
            "2",
            "-o",
            history.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = clobber(
        &[
            "check",
            history.to_str().unwrap(),
            "--html",
            page.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let html = std::fs::read_to_string(&page).expect("html written");
    assert!(
        html.len() < 200_000,
        "a 50k-operation history gives {} bytes",
        html.len()
    );
    assert!(
        html.contains("lost write on key"),
        "the loss has a timeline"
    );
    assert!(html.contains("acknowledged write") && html.contains("id=\"v1w2\""));
    let Some(browser) = chromium() else { return };
    let (dom, _) = open_in_chromium(&browser, &page, &dir.join("profile"));
    assert!(dom.contains("data-rendered=\"ok\""));
    assert!(dom.contains("<tr data-op=\"v1w1\">"));
}

#[test]
fn perf_runs_from_outside_the_repository_with_the_shipped_throughput_scenario() {
    let dir = out_dir("perf-elsewhere");
    let out = Command::new(clobber_bin())
        .args(["perf", "--samples", "3"])
        .current_dir(&dir)
        .env("CLOBBER_STORE_BIN", store_bin())
        .env("TMPDIR", &dir)
        .output()
        .expect("clobber runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("throughput.toml") && stdout.contains("ops/s"),
        "{stdout}"
    );
}

fn store(args: &[&str], stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(store_bin())
        .args(args)
        .env("CLOBBER_STORE_PASSPHRASE", "test")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("clobber-store runs");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("clobber-store ends")
}

#[test]
fn store_set_with_a_value_argument_says_the_value_comes_from_stdin() {
    let dir = out_dir("store-set-argv");
    let path = dir.join("s");
    let out = store(
        &["--store", path.to_str().unwrap(), "set", "NAME", "VALUE"],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("standard input"), "{stderr}");
    assert!(!path.exists(), "nothing was written");
}

#[test]
fn store_reading_a_path_whose_directory_does_not_exist_says_the_store_does_not_exist() {
    let out = store(&["--store", "/nonexistent/dir/s", "get", "x"], "");
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not exist") && !stderr.contains("secret not found"),
        "{stderr}"
    );
    // A store file not created yet, in a directory that exists, is an empty store:
    // the name is not found (exit 1, the contract adapters rely on), and it says so.
    let dir = out_dir("store-not-yet");
    let path = dir.join("s");
    let out = store(&["--store", path.to_str().unwrap(), "get", "x"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("secret not found: x"),
        "{}",
        text(&out)
    );
}
