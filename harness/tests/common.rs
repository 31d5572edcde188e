//! Helpers shared by every module of the `it` test binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (scenarios, adapters and fixtures are found from it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `clobber` binary under test.
pub fn clobber_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_clobber"))
}

/// The store binary next to `clobber` (or in the debug/release dir above it).
pub fn store_bin() -> PathBuf {
    let exe = clobber_bin();
    let dir = exe.parent().expect("clobber has a directory");
    for candidate in [dir.join("clobber-store"), dir.join("../clobber-store")] {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "clobber-store is not built next to {}: run `cargo build -p clobber-store` (or \
         `cargo build --workspace`) before `cargo test -p clobber`",
        exe.display()
    );
}

/// A finished command's stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `clobber ARGS...` from the repository root, with the store binary beside it and
/// `TMPDIR` in cargo's target directory (failing runs keep their scratch
/// directory: those stay out of /tmp).
pub fn clobber(args: &[&str]) -> Output {
    clobber_env(args, &[])
}

/// [`clobber`] with more environment variables (set last: they win).
pub fn clobber_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(clobber_bin())
        .args(args)
        .current_dir(root())
        .env("CLOBBER_STORE_BIN", store_bin())
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .envs(env.iter().copied())
        .output()
        .expect("clobber runs")
}
