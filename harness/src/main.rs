//! `clobber`: the command-line harness.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use clobber::html;
use clobber::nemesis::Kind as NemesisKind;
use clobber::run::{RunConfig, run};
use clobber::scenario::Mode;
use clobber::validate::{ValidateConfig, Validation, validate};

const EXIT_CODES: &str = "\
Exit codes:
  0  pass: every check passed
  1  violation: a lost write, stale read, torn read, damaged store, ...
  2  inconclusive: nothing could be concluded (never a pass)
  3  usage error          4  malformed scenario or adapter file
  5  setup error (store missing, hangs, crashes, not isolated in its scratch directory)
  6  I/O error (a file or the scratch disk: missing, unreadable, full)
  130  interrupted (Ctrl-C, SIGTERM): every process of the run is killed first";

/// `clobber run --help`'s epilogue: what makes a run inconclusive, and the exit codes.
const RUN_HELP: &str = "\
Never a pass without evidence: the run is inconclusive (exit 2) when a check runs out
of budget, an integrity command crashes or hangs, the store stops answering, nothing
was observed, or more than 10% of one kind of operation has an unknown outcome (above
5% the report warns and shows the store's commonest messages for them).

Exit codes:
  0  pass: every check passed
  1  violation: a lost write, stale read, torn read, damaged store, ...
  2  inconclusive: nothing could be concluded (never a pass)
  3  usage error          4  malformed scenario or adapter file
  5  setup error (store missing, hangs, crashes, not isolated in its scratch directory)
  6  I/O error (a file or the scratch disk: missing, unreadable, full)
  130  interrupted (Ctrl-C, SIGTERM): every process of the run is killed first";

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
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Check a recorded history for linearizability and lost writes.
    Check(CheckCmd),
    /// Run every shipped scenario N times against a store: one matrix, one exit code.
    #[command(after_help = validate_help())]
    Validate(ValidateArgs),
    /// Generate a synthetic history (for testing and benchmarking the checker).
    Gen(clobber_check::cli::GenArgs),
    /// Benchmark the linearizability checker.
    Bench(clobber_check::cli::BenchArgs),
    /// Measure cli vs lib throughput and the per-operation cost of cli mode.
    #[command(after_help = EXIT_CODES)]
    Perf(PerfArgs),
    /// Internal: run a store command under the syscall perturber.
    #[command(name = "__perturb", hide = true)]
    Perturb(clobber_perturb::cli::Args),
    /// Internal: run a store command that dies with clobber (see `guard_main`).
    #[command(name = "__guard", hide = true)]
    Guard {
        /// The clobber process it must not outlive.
        parent: u32,
        /// The store command.
        #[arg(last = true, required = true)]
        argv: Vec<std::ffi::OsString>,
    },
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
    /// Per-operation timeout in cli mode, 1..=86400000 (default: the scenario's).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=clobber::scenario::MAX_MS))]
    op_timeout_ms: Option<u64>,
    /// Stop the run after this long, 1..=86400000 (default: the scenario's).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=clobber::scenario::MAX_MS))]
    max_duration_ms: Option<u64>,
    /// Write a self-contained HTML report (checks, witness timelines) to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Run store processes (cli mode) under the syscall perturber, which delays
    /// chosen file-system calls to widen race windows; results are never changed.
    /// SCHEDULE: `pct[:ONE_IN[:DELAY_MS]]` (default `pct:3:150`: one command in ONE_IN
    /// gets one DELAY_MS delay before a rename or write, between unlock and unlink, or
    /// between open and lock, or at its first write-back if it takes no lock; the
    /// others run untraced), `noise[:MAX_US]` (every call a small random delay),
    /// `count` (no delays, counters only), or `off` (overrides the scenario's
    /// `perturb`).
    /// Needs ptrace (exit 5 naming the fix where it is not permitted).
    #[arg(long, value_name = "SCHEDULE", num_args = 0..=1, default_missing_value = "default")]
    perturb: Option<String>,
    /// Inject faults while the workload runs (cli mode). `kill`: SIGKILL one running
    /// store process after every 30-60 completed operations. `power-loss`: the
    /// store directory is a FUSE mount that keeps everything not fsynced in memory;
    /// after every 30-60 completed operations per process it last killed, every
    /// store process is SIGKILLed and all that is not durable is dropped, and once
    /// more after the workload. The counts come from --seed; acknowledged writes
    /// must survive, killed operations are unknown.
    #[arg(long, value_enum, default_value = "none")]
    nemesis: NemesisArg,
}

/// `clobber check` plus `--html` (the checker's own flags live in clobber-check).
#[derive(clap::Args, Debug)]
struct CheckCmd {
    #[command(flatten)]
    args: clobber_check::cli::CheckArgs,
    /// Write a self-contained HTML report (partitions, witness timelines) to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// `clobber validate --help`'s epilogue; the variants come from their table.
fn validate_help() -> String {
    let mut s = String::from(
        "Variants (--variants; default: every variant marked (default) that applies):\n",
    );
    for v in clobber::validate::VARIANTS {
        s.push_str(&format!(
            "  {:8} {:10} {}\n",
            v.name,
            if v.default { "(default)" } else { "" },
            v.about
        ));
    }
    s.push_str(
        "\nBefore it starts, validate times a few operations of the store and prints how\n\
         long the matrix should take if every run goes to its end (a run stops at its\n\
         first violation, so a lossy store finishes sooner; a machine busier than while\n\
         it timed makes it take longer); then one line per run: scenario k of n, and\n\
         the time left, corrected by how the runs so far compared with their estimates.\n\
         \n\
         Exit code: 0 only if every run passed. Otherwise the worst run's, in this order:\n\
         \x20 1 (a run proved a violation) beats 3-6 (a run could not be carried out: the\n\
         \x20 first such code) beats 2 (a run was inconclusive). Usage, malformed-file and\n\
         \x20 setup errors found before the first run exit at once with 3, 4 or 5;\n\
         \x20 130 when interrupted (Ctrl-C, SIGTERM), every process of the run killed.",
    );
    s
}

#[derive(clap::Args, Debug)]
struct ValidateArgs {
    /// The store: an adapter file (adapters/*.toml), `reference`, or
    /// `reference:<fault>`.
    adapter: String,
    /// Runs per scenario and variant (each with its own seed).
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// Run every *.toml in DIR instead of the scenarios shipped with clobber (those
    /// are written to $TMPDIR/clobber-scenarios-<version>-<uid>/, 0700, for replay
    /// lines; a directory there owned by another user is refused).
    #[arg(long, value_name = "DIR")]
    scenarios: Option<PathBuf>,
    /// Comma-separated variants to run, or `all` (see below).
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// Seed of run 1 (run r uses SEED + r - 1; default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Write every run's report, and the matrix, as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write JUnit XML to FILE: a test suite per scenario, a test case per run.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a self-contained HTML report (matrix, witness timelines) to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// No progress lines or bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum NemesisArg {
    /// No fault injection.
    None,
    /// SIGKILL random store processes mid-operation.
    Kill,
    /// Crash every store process and drop all that was not fsynced (needs /dev/fuse).
    PowerLoss,
}

#[derive(clap::Args, Debug)]
struct PerfArgs {
    /// The throughput scenario (default: the one shipped with clobber, so that
    /// `clobber perf` works from any directory).
    scenario: Option<PathBuf>,
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
    if let Ok(exe) = std::env::current_exe() {
        clobber::run::supervise::enable_guard(exe);
    }
    match cli.command {
        Command::Guard { parent, argv } => {
            let code = clobber::run::supervise::guard_main(parent, &argv);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Check(cmd) => check_command(&cmd),
        Command::Validate(args) => validate_command(&args),
        Command::Gen(args) => ExitCode::from(clobber_check::cli::gen_main(&args)),
        Command::Bench(args) => ExitCode::from(clobber_check::cli::bench_main(&args)),
        Command::Worker { spec } => match clobber::worker::worker_main(&spec) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => {
                clobber::worker::note(&format!("clobber worker: {e}"));
                ExitCode::from(e.exit_code())
            }
        },
        Command::Perf(args) => perf_command(&args),
        Command::Run(args) => run_command(&args),
        Command::Perturb(args) => {
            let exe = std::env::current_exe().unwrap_or_else(|_| "clobber".into());
            clobber_perturb::cli::main(args, &[exe.into(), "__perturb".into(), "--exec".into()])
        }
    }
}

fn perf_command(args: &PerfArgs) -> ExitCode {
    let scenario = match &args.scenario {
        Some(s) => Ok(s.clone()),
        None => clobber::validate::shipped_scenario("throughput.toml"),
    };
    match scenario.and_then(|s: PathBuf| Ok((clobber::perf::perf(&s, args.samples)?, s))) {
        Ok((p, scenario)) => {
            print!("{}", p.render_text(args.samples, &scenario));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("clobber perf: {e}");
            ExitCode::from(e.exit_code())
        }
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
        perturb: args.perturb.clone(),
        nemesis: match args.nemesis {
            NemesisArg::None => NemesisKind::None,
            NemesisArg::Kill => NemesisKind::Kill,
            NemesisArg::PowerLoss => NemesisKind::PowerLoss,
        },
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
    if let Some(path) = &args.html {
        let history = html::sources::run_history(&report);
        let page = html::sources::run_page(&report, history.as_deref());
        if let Err(code) = write_out("--html", path, &page.render()) {
            return code;
        }
    }
    ExitCode::from(report.verdict.exit_code())
}

/// Write an output file; on failure say which and return exit code 6.
fn write_out(flag: &str, path: &Path, text: &str) -> Result<(), ExitCode> {
    std::fs::write(path, text).map_err(|e| {
        eprintln!("clobber: writing {flag} {}: {e}", path.display());
        ExitCode::from(6)
    })
}

fn check_command(cmd: &CheckCmd) -> ExitCode {
    let Some(html_path) = &cmd.html else {
        return ExitCode::from(clobber_check::cli::check_main(&cmd.args));
    };
    let args = &cmd.args;
    let report = match clobber_check::cli::check_file(
        &args.file,
        args.format,
        args.model,
        &args.options(),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clobber check: {e}");
            return ExitCode::from(clobber_check::cli::exit_code(&e));
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("clobber check: writing the report: {e}");
                return ExitCode::from(clobber_check::cli::EXIT_IO);
            }
        }
    } else {
        print!("{}", report.render_text());
    }
    // The context around each witness comes from the file itself (clobber's format).
    let history = (args.format == clobber_check::cli::FormatArg::Jsonl)
        .then(|| std::fs::File::open(&args.file).ok())
        .flatten()
        .and_then(|f| clobber_check::history::read_jsonl(std::io::BufReader::new(f)).ok());
    let page = html::sources::check_page(
        &args.file.display().to_string(),
        &report,
        history.as_deref(),
    );
    if let Err(code) = write_out("--html", html_path, &page.render()) {
        return code;
    }
    ExitCode::from(report.verdict().exit_code())
}

fn validate_command(args: &ValidateArgs) -> ExitCode {
    let config = ValidateConfig {
        store: args.adapter.clone(),
        runs: args.runs,
        scenarios: args.scenarios.clone(),
        variants: args.variants.clone(),
        seed: args.seed,
        progress: !args.quiet,
    };
    let v = match validate(&config) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("clobber validate: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    print!("{}", v.render_text());
    type Render = fn(&Validation) -> String;
    let outputs: [(&str, &Option<PathBuf>, Render); 3] = [
        ("--json", &args.json, Validation::render_json),
        ("--junit", &args.junit, Validation::render_junit),
        ("--html", &args.html, |v| {
            html::sources::validate_page(v).render()
        }),
    ];
    for (flag, path, render) in outputs {
        if let Some(path) = path
            && let Err(code) = write_out(flag, path, &render(&v))
        {
            return code;
        }
    }
    ExitCode::from(v.exit_code())
}
