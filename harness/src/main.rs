//! `clobber`: the command-line harness.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use clobber::run::{RunConfig, run};
use clobber::scenario::Mode;

const EXIT_CODES: &str = "\
Exit codes:
  0  pass: every check passed
  1  violation: a lost write, stale read, torn read, damaged store, ...
  2  inconclusive: nothing could be concluded (never a pass)
  3  usage error          4  malformed scenario or adapter file
  5  setup error (store missing, hangs, crashes)   6  I/O error";

/// Prove that no write is ever lost: drive a store from many real processes and
/// check the history.
#[derive(Parser, Debug)]
#[command(name = "clobber", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum ModeArg {
    /// Spawn the store's CLI once per operation (every adapter).
    Cli,
    /// Call the reference store's library in a loop (reference store only).
    Lib,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario against a store and check that no write was lost.
    Run(RunArgs),
    /// Check a recorded history for linearizability and lost writes.
    Check(clobber_check::cli::CheckArgs),
    /// Generate a synthetic history (for testing and benchmarking the checker).
    Gen(clobber_check::cli::GenArgs),
    /// Benchmark the linearizability checker.
    Bench(clobber_check::cli::BenchArgs),
    /// Measure cli vs lib throughput and the per-operation cost of cli mode.
    Perf(PerfArgs),
    /// Internal: one worker process of `clobber run`.
    #[command(name = "__worker", hide = true)]
    Worker {
        /// The worker's spec file.
        spec: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The scenario file (scenarios/*.toml).
    scenario: PathBuf,
    /// The store: an adapter file (adapters/*.toml), `reference`, or
    /// `reference:<fault>` (stale-snapshot, no-lock, in-place, unlink-lock,
    /// lock-data-file, unlink-lock-polling, no-fsync, no-dir-fsync).
    #[arg(long, default_value = "reference")]
    store: String,
    /// Driving mode (default: the scenario's).
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Seed for every random choice (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the checks as JUnit XML to FILE (for CI dashboards).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the merged history (JSON lines) to FILE.
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Keep running after the first violation (default: stop at once).
    #[arg(long)]
    full: bool,
    /// Keep the scratch directory even if the run passes.
    #[arg(long)]
    keep: bool,
    /// Use DIR (new or empty) as the scratch directory.
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
    /// Per-operation timeout in cli mode (default: the scenario's).
    #[arg(long, value_name = "MS")]
    op_timeout_ms: Option<u64>,
    /// Stop the run after this long (default: the scenario's).
    #[arg(long, value_name = "MS")]
    max_duration_ms: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
struct PerfArgs {
    /// The throughput scenario.
    #[arg(default_value = "scenarios/throughput.toml")]
    scenario: PathBuf,
    /// Sequential samples for the per-operation figures.
    #[arg(long, default_value_t = 200)]
    samples: usize,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 3 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check(args) => ExitCode::from(clobber_check::cli::check_main(&args)),
        Command::Gen(args) => ExitCode::from(clobber_check::cli::gen_main(&args)),
        Command::Bench(args) => ExitCode::from(clobber_check::cli::bench_main(&args)),
        Command::Worker { spec } => match clobber::worker::worker_main(&spec) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => {
                eprintln!("clobber worker: {e}");
                ExitCode::from(e.exit_code())
            }
        },
        Command::Perf(args) => match clobber::perf::perf(&args.scenario, args.samples) {
            Ok(p) => {
                print!("{}", p.render_text(args.samples, &args.scenario));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("clobber perf: {e}");
                ExitCode::from(e.exit_code())
            }
        },
        Command::Run(args) => run_command(&args),
    }
}

fn run_command(args: &RunArgs) -> ExitCode {
    let config = RunConfig {
        scenario: args.scenario.clone(),
        store: args.store.clone(),
        mode: args.mode.map(|m| match m {
            ModeArg::Cli => Mode::Cli,
            ModeArg::Lib => Mode::Lib,
        }),
        seed: args.seed,
        full: args.full,
        keep: args.keep,
        scratch: args.scratch.clone(),
        op_timeout_ms: args.op_timeout_ms,
        max_duration_ms: args.max_duration_ms,
        progress: !args.quiet,
        history_out: args.history.clone(),
    };
    let report = match run(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clobber: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    print!("{}", report.render_text());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).expect("a report always serialises");
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("clobber: writing --json {}: {e}", path.display());
            return ExitCode::from(6);
        }
    }
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, report.render_junit())
    {
        eprintln!("clobber: writing --junit {}: {e}", path.display());
        return ExitCode::from(6);
    }
    ExitCode::from(report.verdict.exit_code())
}
