//! The store-file integrity check after the run: does the store still open, and
//! did it leave temporary files behind?
//!
//! For the built-in reference store clobber opens the file itself; for another
//! store it runs the adapter's `integrity` command, if there is one.

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
/// `integrity` command.
pub(crate) fn check_integrity(
    adapter: &Adapter,
    scratch: &Path,
    store_path: &Path,
    passphrase: &str,
    timeout_ms: u64,
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
            (Ok(_), false) => Integrity {
                status: Status::Violation,
                detail: format!("temporary files left behind: {leftovers:?}"),
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
            Ok(out) => Integrity {
                status: Status::Violation,
                detail: format!("`{}`: {}", argv.join(" "), describe_exit(&out)),
            },
            Err(e) => Integrity {
                status: Status::Violation,
                detail: e,
            },
        },
    }
}
