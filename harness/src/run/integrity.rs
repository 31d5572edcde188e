//! The store-file integrity check after the run: does the store still open, and
//! did it leave temporary files behind?
//!
//! For the built-in reference store clobber opens the file itself; for another
//! store it runs the adapter's `integrity` command, if there is one.
//!
//! Only what the store must answer for is a violation: a file that does not
//! decrypt, an integrity command that exits non-zero. Temporary files are blamed on
//! the store only when no operation of the run was killed or timed out (a killed
//! writer leaves its temporary file behind through no fault of the store);
//! otherwise they are a note. An integrity command that crashes, hangs or cannot
//! start proves nothing about the store: the check is `unknown` (inconclusive).

use std::path::Path;

use clobber_store::{KeySource, StoreOptions};

use super::preflight::{describe_exit, run_command};
use crate::adapter::Adapter;
use crate::report::Status;

/// The result of the integrity check.
#[derive(Debug, Clone)]
pub struct Integrity {
    /// Ok, violation or not checked.
    pub status: Status,
    /// What was checked and found.
    pub detail: String,
}

/// Check the store file at `store_path` (reference store) or run the adapter's
/// `integrity` command. `interrupted` counts the run's operations that were killed
/// or timed out (their outcome is unknown).
///
/// `nemesis_writers`, under `--nemesis`, is how many writers can be killed at once
/// (one per worker process): a store that removes dead writers' temporary files
/// never keeps more than that, so more is a violation even though operations were
/// killed.
pub(crate) fn check_integrity(
    adapter: &Adapter,
    scratch: &Path,
    store_path: &Path,
    passphrase: &str,
    timeout_ms: u64,
    interrupted: usize,
    nemesis_writers: Option<usize>,
) -> Integrity {
    if let Some(protocol) = adapter.reference {
        let opened = StoreOptions::new(store_path, KeySource::passphrase(passphrase.to_owned()))
            .protocol(protocol)
            .open()
            .and_then(|mut s| s.read_all());
        let leftovers = clobber_store::fs::leftover_temp_files(store_path).unwrap_or_default();
        return match (opened, leftovers.is_empty()) {
            (Ok(map), true) => Integrity {
                status: Status::Ok,
                detail: format!("decrypts ({} secrets), no temporary files left", map.len()),
            },
            (Err(e), _) => Integrity {
                status: Status::Violation,
                detail: format!("does not decrypt: {e}"),
            },
            (Ok(map), false) if nemesis_writers.is_some_and(|n| leftovers.len() > n) => Integrity {
                status: Status::Violation,
                detail: format!(
                    "decrypts ({} secrets), but {} temporary files are left behind, more \
                         than the {} writer(s) that can be killed at once (dead writers' files \
                         are never removed): {:?}",
                    map.len(),
                    leftovers.len(),
                    nemesis_writers.unwrap_or(0),
                    leftovers.iter().take(5).collect::<Vec<_>>()
                ),
            },
            (Ok(map), false) if interrupted > 0 => Integrity {
                status: Status::Ok,
                detail: format!(
                    "decrypts ({} secrets); note: temporary files left behind {leftovers:?}, \
                     not blamed on the store: {interrupted} operation(s) of this run were \
                     killed or timed out",
                    map.len()
                ),
            },
            (Ok(_), false) => Integrity {
                status: Status::Violation,
                detail: format!(
                    "temporary files left behind although no operation was killed or timed \
                     out: {leftovers:?}"
                ),
            },
        };
    }
    match adapter.argv("integrity", None, None, scratch) {
        None => Integrity {
            status: Status::NotChecked,
            detail: "the adapter has no integrity command".into(),
        },
        Some(argv) => match run_command(adapter, scratch, &argv, timeout_ms) {
            Ok(out) if out.status.success() => Integrity {
                status: Status::Ok,
                detail: format!("`{}` passed", argv.join(" ")),
            },
            Ok(out) if out.status.code().is_none() => Integrity {
                status: Status::Unknown,
                detail: format!(
                    "the integrity command `{}` crashed, which proves nothing about the \
                     store: {}",
                    argv.join(" "),
                    describe_exit(&out)
                ),
            },
            Ok(out) => Integrity {
                status: Status::Violation,
                detail: format!("`{}`: {}", argv.join(" "), describe_exit(&out)),
            },
            Err(e) => Integrity {
                status: Status::Unknown,
                detail: format!("the integrity command gave no answer: {e}"),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use clobber_store::KdfParams;

    use super::*;

    /// A real reference store in `dir` with one secret and a leftover temp file.
    fn store_with_leftover(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("secrets");
        let mut s = StoreOptions::new(&path, KeySource::passphrase("pw".to_owned()))
            .new_store_params(KdfParams::CHEAP)
            .open()
            .unwrap();
        s.init().unwrap();
        s.set("k", "v").unwrap();
        std::fs::write(dir.join(".secrets.tmp-killed"), b"half").unwrap();
        assert_eq!(
            clobber_store::fs::leftover_temp_files(&path).unwrap().len(),
            1,
            "the planted file is what the store calls a temporary file"
        );
        path
    }

    #[test]
    fn temp_files_are_a_note_when_an_operation_was_killed_and_a_violation_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_with_leftover(dir.path());
        let adapter = Adapter::resolve("reference").unwrap();
        let killed = check_integrity(&adapter, dir.path(), &path, "pw", 1000, 3, None);
        assert_eq!(killed.status, Status::Ok, "{}", killed.detail);
        assert!(
            killed.detail.contains("not blamed on the store") && killed.detail.contains('3'),
            "{}",
            killed.detail
        );
        let clean = check_integrity(&adapter, dir.path(), &path, "pw", 1000, 0, None);
        assert_eq!(clean.status, Status::Violation, "{}", clean.detail);
        assert!(clean.detail.contains("temporary files left behind"));
    }

    #[test]
    fn under_a_nemesis_more_temp_files_than_killable_writers_are_a_violation() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_with_leftover(dir.path());
        std::fs::write(dir.path().join(".secrets.tmp-killed-2"), b"half").unwrap();
        let adapter = Adapter::resolve("reference").unwrap();
        let within = check_integrity(&adapter, dir.path(), &path, "pw", 1000, 9, Some(2));
        assert_eq!(within.status, Status::Ok, "{}", within.detail);
        let beyond = check_integrity(&adapter, dir.path(), &path, "pw", 1000, 9, Some(1));
        assert_eq!(beyond.status, Status::Violation, "{}", beyond.detail);
        assert!(beyond.detail.contains("never removed"), "{}", beyond.detail);
    }

    fn adapter_with_integrity(script: &str) -> Adapter {
        let text = format!(
            "name = \"x\"\nprogram = \"/bin/sh\"\nvalue = \"stdin\"\n[commands]\n\
             set = [\"{{program}}\", \"{{key}}\"]\nget = [\"{{program}}\", \"{{key}}\"]\n\
             delete = [\"{{program}}\", \"{{key}}\"]\n\
             integrity = [\"{{program}}\", \"-c\", \"{script}\"]\n\
             [not_found]\nexit_code = 1\n"
        );
        Adapter::parse(Path::new("x.toml"), &text, None).unwrap()
    }

    #[test]
    fn a_crashing_or_hanging_integrity_command_is_unknown_and_a_failing_one_a_violation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none");
        let crash = check_integrity(
            // `$$` is a literal `$` in an adapter: the shell gets `$$`, its pid.
            &adapter_with_integrity("kill -SEGV $$$$"),
            dir.path(),
            &p,
            "",
            5000,
            0,
            None,
        );
        assert_eq!(crash.status, Status::Unknown, "{}", crash.detail);
        assert!(crash.detail.contains("crashed"), "{}", crash.detail);
        let hang = check_integrity(
            &adapter_with_integrity("exec sleep 30"),
            dir.path(),
            &p,
            "",
            300,
            0,
            None,
        );
        assert_eq!(hang.status, Status::Unknown, "{}", hang.detail);
        assert!(hang.detail.contains("gave no answer"), "{}", hang.detail);
        let fail = check_integrity(
            &adapter_with_integrity("echo torn >&2; exit 1"),
            dir.path(),
            &p,
            "",
            5000,
            0,
            None,
        );
        assert_eq!(fail.status, Status::Violation, "{}", fail.detail);
        assert!(fail.detail.contains("torn"), "{}", fail.detail);
    }
}
