//! `clobber-perturb`: run a command with chosen file-system calls delayed.

use clap::Parser;
use clobber_perturb::cli::{self, Args};

fn main() {
    let args = Args::parse();
    let exe = std::env::current_exe().unwrap_or_else(|_| "clobber-perturb".into());
    cli::main(args, &[exe.into(), "--exec".into()])
}
