//! Command-line glue for `clobber check`, `clobber gen` and `clobber bench`; the
//! `clobber` binary embeds these argument structs as subcommands.

use clap::Args;

/// `clobber check`: check a recorded history.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The history file.
    pub file: std::path::PathBuf,
}

/// Run `clobber check`; returns the process exit code.
#[must_use]
pub fn check_main(args: &CheckArgs) -> u8 {
    eprintln!("clobber check {}: not implemented yet", args.file.display());
    3
}
