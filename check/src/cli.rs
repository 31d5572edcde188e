//! Command-line glue for `clobber check`, `clobber gen` and `clobber bench`; the
//! `clobber` binary embeds these argument structs as subcommands. Each `*_main`
//! returns the process exit code.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::check::{CheckOptions, check_kv_history};
use crate::model::kv::KvHistory;
use crate::report::CheckReport;

/// Which model to check against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// The secret store: set / get / delete / list / clear, per key.
    Kv,
    /// One register: read / write / compare-and-set.
    Register,
}

/// The input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// clobber's JSON lines (one record per operation).
    Jsonl,
    /// Jepsen's log lines, one event per line (`INFO  jepsen.util - 3 :invoke :write 4`).
    Jepsen,
    /// EDN maps, one per line (`{:process 0, :type :invoke, :f :get, ...}`).
    Edn,
}

/// `clobber check`: check a recorded history.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The history file.
    pub file: PathBuf,
    /// The model (default: `kv` for jsonl and edn, `register` for jepsen).
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// The input format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FormatArg,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Time budget in seconds; past it, undecided keys are reported unknown.
    #[arg(long, default_value_t = 60.0)]
    pub time_budget: f64,
    /// Memory budget for the search caches, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory_budget: usize,
    /// Do not shrink witnesses.
    #[arg(long)]
    pub no_shrink: bool,
    /// Do not use the unique-value fast path (search every key).
    #[arg(long)]
    pub no_fast_path: bool,
}

impl CheckArgs {
    /// The check options these flags ask for.
    #[must_use]
    pub fn options(&self) -> CheckOptions {
        CheckOptions {
            time_budget: Duration::from_secs_f64(self.time_budget.max(0.0)),
            memory_budget: self.memory_budget << 20,
            shrink: !self.no_shrink,
            fast_path: !self.no_fast_path,
        }
    }
}

/// Exit code for bad input or usage.
pub const EXIT_BAD_INPUT: u8 = 3;

/// Run `clobber check`; returns the process exit code (0 ok, 1 violation, 2
/// unknown, 3 bad input).
#[must_use]
pub fn check_main(args: &CheckArgs) -> u8 {
    match run_check(args) {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            let printed = if args.json {
                serde_json::to_writer_pretty(&mut out, &report)
                    .map_err(std::io::Error::other)
                    .and_then(|()| writeln!(out))
            } else {
                write!(out, "{}", report.render_text())
            };
            if let Err(e) = printed {
                eprintln!("clobber check: writing the report: {e}");
                return EXIT_BAD_INPUT;
            }
            report.verdict().exit_code()
        }
        Err(e) => {
            eprintln!("clobber check: {e}");
            EXIT_BAD_INPUT
        }
    }
}

fn run_check(args: &CheckArgs) -> Result<CheckReport, crate::Error> {
    let open = || {
        File::open(&args.file)
            .map(BufReader::new)
            .map_err(|e| crate::Error::io(&args.file, e))
    };
    let options = args.options();
    match (args.format, args.model) {
        (FormatArg::Jsonl, None | Some(ModelArg::Kv)) => {
            let h =
                KvHistory::read_jsonl(open()?).map_err(|e| crate::Error::parse(&args.file, e))?;
            Ok(check_kv_history(&h, &options))
        }
        (format, model) => Err(crate::Error::usage(format!(
            "format {format:?} with model {model:?} is not supported"
        ))),
    }
}
