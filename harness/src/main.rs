//! `clobber`: the command-line harness.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Prove that no write is ever lost: drive a store from many real processes and
/// check the history for linearizability and lost writes.
#[derive(Parser, Debug)]
#[command(name = "clobber", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a recorded history for linearizability and lost writes.
    Check(clobber_check::cli::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => ExitCode::from(clobber_check::cli::check_main(&args)),
    }
}
