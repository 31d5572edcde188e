//! The checker's commands on their own, as the `clobber` binary embeds them:
//! `cargo run --release -p clobber-check --example checker -- check FILE`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Check, generate and benchmark histories.
#[derive(Parser, Debug)]
#[command(name = "checker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a history.
    Check(clobber_check::cli::CheckArgs),
    /// Generate a history.
    Gen(clobber_check::cli::GenArgs),
    /// Time the checker on generated histories.
    Bench(clobber_check::cli::BenchArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(a) => ExitCode::from(clobber_check::cli::check_main(&a)),
        Command::Gen(a) => ExitCode::from(clobber_check::cli::gen_main(&a)),
        Command::Bench(a) => ExitCode::from(clobber_check::cli::bench_main(&a)),
    }
}
