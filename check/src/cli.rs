//! Command-line glue for `clobber check`, `clobber gen` and `clobber bench`; the
//! `clobber` binary embeds these argument structs as subcommands. Each `*_main`
//! returns the process exit code.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::check::{CheckOptions, check_kv_history};
use crate::generator::{GenOptions, Inject, Mix, generate};
use crate::history::write_record;
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

/// Exit codes of `clobber check`, shown by `clobber check --help`.
pub const CHECK_EXIT_CODES: &str = "\
Exit codes:
  0  ok: linearizable, no write lost
  1  violation: a lost write, stale read, torn/damaged read, ... (with a witness)
  2  inconclusive: a budget ran out before a verdict (never a pass)
  3  usage error (bad flag or value)
  4  malformed input: a bad line, an empty history, a file the --format could not
     read, or a history with no operation to check (the error names file and line)
  6  I/O error (missing or unreadable file)
  130 interrupted";

/// Exit codes of `clobber gen`, shown by `clobber gen --help`.
pub const GEN_EXIT_CODES: &str = "\
Exit codes:
  0  history written
  3  usage error (bad flag or value)
  5  setup: the generated history has no place to plant the violation asked for
     (try another --seed)
  6  I/O error writing the output
  130 interrupted";

/// Exit codes of `clobber bench`, shown by `clobber bench --help`.
pub const BENCH_EXIT_CODES: &str = "\
Exit codes:
  0  every history measured, every verdict as expected
  1  some verdict differs from the expected one (the row says WRONG)
  3  usage error (bad flag or value)
  5  setup: cannot run myself, or a history cannot be generated or imported
  6  I/O error (the --dir cannot be created)
  130 interrupted";

/// Exit code: usage error.
pub const EXIT_USAGE: u8 = 3;
/// Exit code: malformed input (bad line, empty history, nothing to check).
pub const EXIT_MALFORMED: u8 = 4;
/// Exit code: setup error.
pub const EXIT_SETUP: u8 = 5;
/// Exit code: I/O error.
pub const EXIT_IO: u8 = 6;

/// The largest budget in seconds (about 31 years): past it a budget means nothing.
const MAX_SECONDS: f64 = 1e9;

/// Parse a time budget in seconds: a finite number, 0 or more, at most 1e9.
///
/// # Errors
/// [`crate::Error::Usage`] saying what is wrong with it.
pub fn parse_seconds(s: &str) -> Result<f64, crate::Error> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| crate::Error::usage(format!("{s:?} is not a number of seconds")))?;
    if !v.is_finite() || !(0.0..=MAX_SECONDS).contains(&v) {
        return Err(crate::Error::usage(format!(
            "{s:?}: a time budget is a number of seconds from 0 to {MAX_SECONDS:e} \
             (use a large finite value for \"no limit\")"
        )));
    }
    Ok(v)
}

/// `clobber check`: check a recorded history.
#[derive(Args, Debug)]
#[command(after_help = CHECK_EXIT_CODES)]
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
    /// Time budget in seconds (finite, 0 to 1e9); past it, undecided keys are
    /// reported unknown.
    #[arg(long, default_value_t = 60.0, value_parser = parse_seconds)]
    pub time_budget: f64,
    /// Memory budget for the search, in MiB (1 to 1048576); past it, undecided keys
    /// are reported unknown.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub memory_budget: u64,
    /// Do not shrink witnesses.
    #[arg(long)]
    pub no_shrink: bool,
    /// Do not use the unique-value fast path (search every key).
    #[arg(long)]
    pub no_fast_path: bool,
    /// Print timings and the peak resident memory to stderr.
    #[arg(long)]
    pub stats: bool,
}

impl CheckArgs {
    /// The check options these flags ask for.
    #[must_use]
    pub fn options(&self) -> CheckOptions {
        CheckOptions {
            time_budget: Duration::from_secs_f64(self.time_budget.clamp(0.0, MAX_SECONDS)),
            memory_budget: usize::try_from(self.memory_budget.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            shrink: !self.no_shrink,
            fast_path: !self.no_fast_path,
        }
    }
}

/// The exit code for an error of this crate: 6 I/O, 4 malformed input, 3 usage.
#[must_use]
pub fn exit_code(e: &crate::Error) -> u8 {
    match e {
        crate::Error::Io { .. } => EXIT_IO,
        crate::Error::Parse { .. } => EXIT_MALFORMED,
        crate::Error::Usage(_) => EXIT_USAGE,
    }
}

/// Run `clobber check`; returns the process exit code ([`CHECK_EXIT_CODES`]).
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
                return EXIT_IO;
            }
            report.verdict().exit_code()
        }
        Err(e) => {
            eprintln!("clobber check: {e}");
            exit_code(&e)
        }
    }
}

fn run_check(args: &CheckArgs) -> Result<CheckReport, crate::Error> {
    let started = Instant::now();
    let report = load_and_check(args)?;
    if args.stats {
        let total = started.elapsed().as_secs_f64() * 1e3;
        eprintln!(
            "stats: ops={} parse_ms={:.0} check_ms={:.0} total_ms={:.0} cpu_ms={} peak_rss_mib={}",
            report.operations,
            total - report.elapsed_ms,
            report.elapsed_ms,
            total,
            cpu_ms().map_or_else(|| "?".to_owned(), |m| m.to_string()),
            peak_rss_mib().map_or_else(|| "?".to_owned(), |m| m.to_string())
        );
    }
    Ok(report)
}

/// CPU time (user + system) used by this process so far, in ms (Linux).
#[must_use]
pub fn cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 100 per second on Linux.
    Some((utime + stime) * 10)
}

/// The peak resident set size of this process (VmHWM), in MiB.
#[must_use]
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn load_and_check(args: &CheckArgs) -> Result<CheckReport, crate::Error> {
    check_file(&args.file, args.format, args.model, &args.options())
}

/// Read a history file in `format` and check it against `model` (the format's
/// default model when `None`).
///
/// # Errors
/// The file cannot be read ([`crate::Error::Io`]); a line is malformed, or the file
/// holds no operation the checker can use (empty, another format, or only failed
/// operations and reads of unknown outcome) ([`crate::Error::Parse`]); or the model
/// does not fit the format ([`crate::Error::Usage`]).
pub fn check_file(
    path: &std::path::Path,
    format: FormatArg,
    model: Option<ModelArg>,
    options: &CheckOptions,
) -> Result<CheckReport, crate::Error> {
    let open = || {
        File::open(path)
            .map(BufReader::new)
            .map_err(|e| crate::Error::io(path, e))
    };
    match (format, model) {
        (FormatArg::Jsonl, None | Some(ModelArg::Kv)) => {
            let h = KvHistory::read_jsonl(open()?).map_err(|e| crate::Error::parse(path, e))?;
            let checked = h.ops.iter().filter(|o| kv_checked(o.op, o.outcome)).count();
            nothing_to_check(path, format, h.ops.len(), checked)?;
            Ok(check_kv_history(&h, options))
        }
        (FormatArg::Jepsen, None | Some(ModelArg::Register)) => {
            let h = crate::import::jepsen_register(open()?)
                .map_err(|e| crate::Error::parse(path, e))?;
            nothing_to_check(path, format, h.entries.len(), h.entries.len())?;
            Ok(crate::check_register(&h, options))
        }
        (FormatArg::Edn, None | Some(ModelArg::Kv)) => {
            let h = crate::import::edn_kv(open()?).map_err(|e| crate::Error::parse(path, e))?;
            nothing_to_check(path, format, h.len(), h.len())?;
            let mut report = crate::check_model(
                &crate::model::strkv::StrKv,
                "kv (get/put/append)",
                &h,
                options,
            );
            report.times_are_lines = h.iter().all(|e| e.invoke == e.source as u64);
            Ok(report)
        }
        (format, Some(model)) => Err(crate::Error::usage(format!(
            "the {} format cannot be checked against the {} model (jsonl and edn: kv; jepsen: register)",
            format!("{format:?}").to_lowercase(),
            format!("{model:?}").to_lowercase()
        ))),
    }
}

/// Does a record with this op and outcome constrain the check? Failed operations did
/// not happen and reads of unknown outcome saw nothing; everything else counts
/// (damaged reads too: each is a violation).
fn kv_checked(op: crate::history::Op, outcome: crate::history::Outcome) -> bool {
    use crate::history::{Op, Outcome};
    !matches!(
        (op, outcome),
        (_, Outcome::Fail) | (Op::Get | Op::List, Outcome::Unknown)
    )
}

/// Never a pass without evidence: a history with no operation to check is an
/// input error naming the file and a line (the first non-blank one, or line 1).
fn nothing_to_check(
    path: &std::path::Path,
    format: FormatArg,
    read: usize,
    checked: usize,
) -> Result<(), crate::Error> {
    if checked > 0 {
        return Ok(());
    }
    let text = std::fs::read(path).map_err(|e| crate::Error::io(path, e))?;
    let text = String::from_utf8_lossy(&text);
    let first = text.lines().enumerate().find(|(_, l)| !l.trim().is_empty());
    let format_name = format!("{format:?}").to_lowercase();
    let (line, message) = match first {
        None => (
            1,
            "the history is empty: nothing to check, so no verdict".to_owned(),
        ),
        Some((i, l)) if read == 0 => {
            let mut shown: String = l.trim().chars().take(60).collect();
            if l.trim().chars().count() > 60 {
                shown.push_str("...");
            }
            (
                i + 1,
                format!(
                    "no {format_name} operation in the file (this line reads {shown:?}); \
                     is --format right? (jsonl, jepsen, edn)"
                ),
            )
        }
        Some((i, _)) => (
            i + 1,
            format!(
                "none of the {read} operations can be checked (every one failed, or is a read \
                 of unknown outcome): no verdict"
            ),
        ),
    };
    Err(crate::Error::parse(
        path,
        crate::history::ParseError { line, message },
    ))
}

/// `clobber gen`: write a synthetic history that is linearizable by construction
/// (optionally with one planted violation) as JSON lines.
#[derive(Args, Debug, Clone)]
#[command(after_help = GEN_EXIT_CODES)]
pub struct GenArgs {
    /// Number of operations.
    #[arg(long, default_value_t = 1000)]
    pub ops: usize,
    /// Number of keys.
    #[arg(long, default_value_t = 10)]
    pub keys: usize,
    /// Number of concurrent clients.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Zipf exponent of key popularity (0 = uniform; 1.0 = a few hot keys).
    #[arg(long, default_value_t = 0.0)]
    pub zipf: f64,
    /// Weight of `set` in the mix.
    #[arg(long, default_value_t = 45.0)]
    pub set: f64,
    /// Weight of `get`.
    #[arg(long, default_value_t = 45.0)]
    pub get: f64,
    /// Weight of `delete`.
    #[arg(long, default_value_t = 10.0)]
    pub delete: f64,
    /// Weight of `list`.
    #[arg(long, default_value_t = 0.0)]
    pub list: f64,
    /// Weight of `clear`.
    #[arg(long, default_value_t = 0.0)]
    pub clear: f64,
    /// Mean latency of an operation, in ms.
    #[arg(long, default_value_t = 2.0)]
    pub latency_ms: f64,
    /// Mean think time between a client's operations, in ms.
    #[arg(long, default_value_t = 1.0)]
    pub think_ms: f64,
    /// Probability that an operation's outcome is unknown.
    #[arg(long, default_value_t = 0.0)]
    pub indeterminate: f64,
    /// Probability that a set rewrites a value already written to its key.
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Random seed (printed; the same seed gives the same history).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Plant one violation.
    #[arg(long, value_enum)]
    pub inject: Option<InjectArg>,
    /// Output file (default: stdout).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// The command line's defaults (`clobber gen` with no flags), so that code building
/// a `GenArgs` can never drift from what users get.
impl Default for GenArgs {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: GenArgs,
        }
        <Defaults as clap::Parser>::parse_from(["gen"]).args
    }
}

/// A violation to plant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InjectArg {
    /// A read misses an acknowledged write (sees the state before it).
    LostWrite,
    /// A read returns a value overwritten before it began.
    StaleRead,
}

impl GenArgs {
    /// The generator options these flags ask for.
    #[must_use]
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn options(&self) -> GenOptions {
        GenOptions {
            ops: self.ops,
            keys: self.keys,
            clients: self.clients,
            zipf: self.zipf,
            mix: Mix {
                set: self.set,
                get: self.get,
                delete: self.delete,
                list: self.list,
                clear: self.clear,
            },
            latency_ns: (self.latency_ms * 1e6) as u64,
            think_ns: (self.think_ms * 1e6) as u64,
            indeterminate: self.indeterminate,
            duplicates: self.duplicates,
            seed: self.seed,
            inject: self.inject.map(|i| match i {
                InjectArg::LostWrite => Inject::LostWrite,
                InjectArg::StaleRead => Inject::StaleRead,
            }),
        }
    }
}

/// Run `clobber gen`; returns the process exit code.
#[must_use]
pub fn gen_main(args: &GenArgs) -> u8 {
    let g = generate(&args.options());
    eprintln!(
        "clobber gen: seed {} ({} operations)",
        args.seed,
        g.records.len()
    );
    if args.inject.is_some() {
        match g.injected_at {
            Some(i) => eprintln!("clobber gen: planted violation at record #{i}"),
            None => {
                eprintln!("clobber gen: found no place to plant the violation; try another seed");
                return EXIT_SETUP;
            }
        }
    }
    let result = match &args.output {
        Some(path) => File::create(path).and_then(|f| write_all(BufWriter::new(f), &g.records)),
        None => write_all(BufWriter::new(std::io::stdout().lock()), &g.records),
    };
    if let Err(e) = result {
        eprintln!("clobber gen: {e}");
        return EXIT_IO;
    }
    0
}

fn write_all(mut out: impl Write, records: &[crate::history::Record]) -> std::io::Result<()> {
    for r in records {
        write_record(&mut out, r)?;
    }
    out.flush()
}

/// `clobber bench`: generate the reference histories (cached in `--dir`) and time
/// `clobber check` on each in a fresh process, parse included, with its peak memory.
#[derive(Args, Debug, Clone)]
#[command(after_help = BENCH_EXIT_CODES)]
pub struct BenchArgs {
    /// Where to keep the generated histories.
    #[arg(long, default_value = "target/clobber-bench")]
    pub dir: PathBuf,
    /// Run only the scenarios whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Runs per scenario (the fastest is reported).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Small sizes (a smoke test of the command, not a measurement).
    #[arg(long)]
    pub quick: bool,
    /// Porcupine's key/value histories and their expected verdicts
    /// (`expected.tsv`); skipped with a note when absent.
    #[arg(long, default_value = "check/testdata/porcupine-kv")]
    pub porcupine: PathBuf,
}

/// The rows of a Porcupine `expected.tsv`: (file, expected exit code).
fn porcupine_rows(dir: &std::path::Path) -> Option<Vec<(String, u8)>> {
    let table = std::fs::read_to_string(dir.join("expected.tsv")).ok()?;
    Some(
        table
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let mut cols = l.split('\t');
                let file = cols.next()?.to_owned();
                let code = match cols.next()? {
                    "ok" => 0,
                    "violation" => 1,
                    _ => return None,
                };
                Some((file, code))
            })
            .collect(),
    )
}

/// One benchmark scenario.
struct Scenario {
    name: String,
    target: &'static str,
    history: GenArgs,
}

fn gen_args(ops: usize, keys: usize, clients: usize) -> GenArgs {
    GenArgs {
        ops,
        keys,
        clients,
        ..GenArgs::default()
    }
}

fn scenarios(quick: bool) -> Vec<Scenario> {
    let k = |n: usize| if quick { n / 100 } else { n };
    let mut lost = gen_args(k(1_000_000), 1000, 16);
    lost.inject = Some(InjectArg::LostWrite);
    let mut hot = gen_args(k(1_000_000), 1000, 16);
    hot.zipf = 1.2;
    let mut indet = gen_args(k(1_000_000), 1000, 16);
    indet.indeterminate = 0.01;
    vec![
        scenario("", "< 1 s, < 200 MB", gen_args(k(1_000_000), 1000, 16)),
        scenario("", "seconds, no OOM", gen_args(k(1_000_000), 10, 16)),
        scenario("", "< 2 s", gen_args(k(100_000), 1, 16)),
        scenario("", "< 1 s, < 100 MB", gen_args(k(200_000), 1, 2)),
        scenario(", one lost write", "found in < 1 s", lost),
        scenario(", zipf 1.2 (hot keys)", "(Porcupine: OOM)", hot),
        scenario(", 1% indeterminate", "", indet),
    ]
}

fn scenario(suffix: &str, target: &'static str, history: GenArgs) -> Scenario {
    let n = |x: usize| match x {
        x if x >= 1_000_000 && x % 1_000_000 == 0 => format!("{}M", x / 1_000_000),
        x if x >= 1000 && x % 1000 == 0 => format!("{}k", x / 1000),
        x => x.to_string(),
    };
    let name = format!(
        "{} ops, {} key{}, {} clients{suffix}",
        n(history.ops),
        history.keys,
        if history.keys == 1 { "" } else { "s" },
        history.clients
    );
    Scenario {
        name,
        target,
        history,
    }
}

fn gen_command(g: &GenArgs, file: &std::path::Path) -> String {
    let mut c = format!(
        "clobber gen --ops {} --keys {} --clients {} --seed {}",
        g.ops, g.keys, g.clients, g.seed
    );
    if g.zipf != 0.0 {
        c += &format!(" --zipf {}", g.zipf);
    }
    if g.indeterminate != 0.0 {
        c += &format!(" --indeterminate {}", g.indeterminate);
    }
    if let Some(i) = g.inject {
        c += match i {
            InjectArg::LostWrite => " --inject lost-write",
            InjectArg::StaleRead => " --inject stale-read",
        };
    }
    c + &format!(" -o {}", file.display())
}

/// Run `clobber bench`; returns the process exit code.
#[must_use]
pub fn bench_main(args: &BenchArgs) -> u8 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("clobber bench: cannot find my own executable: {e}");
            return EXIT_SETUP;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!("clobber bench: {}: {e}", args.dir.display());
        return EXIT_IO;
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!(
            "{} CPUs, load average {} (other work skews wall times; cpu ms does not)",
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            load.join(" ")
        );
    }
    println!(
        "{:<52} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}  target",
        "scenario", "ops", "verdict", "wall ms", "parse ms", "check ms", "cpu ms", "peak MiB"
    );
    let mut commands = Vec::new();
    let mut wrong = 0;
    // (name, file, extra flags, target, expected exit code)
    type Row = (String, PathBuf, Vec<&'static str>, String, Option<u8>);
    let mut rows: Vec<Row> = Vec::new();
    for s in scenarios(args.quick) {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !s.name.contains(o.as_str()))
        {
            continue;
        }
        let slug: String = s
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let file = args.dir.join(format!("{slug}-{}.jsonl", s.history.ops));
        if !file.exists() {
            let mut g = s.history.clone();
            g.output = Some(file.clone());
            eprintln!("generating {}", file.display());
            if gen_main(&g) != 0 {
                return EXIT_SETUP;
            }
        }
        commands.push(format!(
            "{}\n/usr/bin/time -v clobber check {} --stats",
            gen_command(&s.history, &file),
            file.display()
        ));
        let expected = s.history.inject.map(|_| 1);
        rows.push((s.name, file, Vec::new(), s.target.to_owned(), expected));
    }
    match porcupine_rows(&args.porcupine) {
        Some(table) => {
            for (file, code) in table {
                let name = format!("Porcupine kv {file}");
                if args
                    .only
                    .as_ref()
                    .is_some_and(|o| !name.contains(o.as_str()))
                {
                    continue;
                }
                let path = args.porcupine.join(&file);
                commands.push(format!(
                    "/usr/bin/time -v clobber check --format edn {} --stats",
                    path.display()
                ));
                let target = format!("{}, < 1 s", if code == 0 { "ok" } else { "violation" });
                rows.push((name, path, vec!["--format", "edn"], target, Some(code)));
            }
        }
        None => eprintln!(
            "clobber bench: no {}/expected.tsv: Porcupine's histories skipped (--porcupine DIR)",
            args.porcupine.display()
        ),
    }
    for (name, file, extra, target, expected) in rows {
        let mut best: Option<(f64, String, u8)> = None;
        for _ in 0..args.runs.max(1) {
            let started = Instant::now();
            let out = std::process::Command::new(&exe)
                .arg("check")
                .arg(&file)
                .args(&extra)
                .arg("--stats")
                .stdout(std::process::Stdio::null())
                .output();
            let wall = started.elapsed().as_secs_f64() * 1e3;
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("clobber bench: running {}: {e}", exe.display());
                    return EXIT_SETUP;
                }
            };
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stats = stderr
                .lines()
                .find(|l| l.starts_with("stats:"))
                .unwrap_or("")
                .to_owned();
            let code = u8::try_from(out.status.code().unwrap_or(255)).unwrap_or(255);
            if best.as_ref().is_none_or(|b| wall < b.0) {
                best = Some((wall, stats, code));
            }
        }
        let (wall, stats, code) = best.expect("at least one run");
        let field = |k: &str| {
            stats
                .split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .unwrap_or("?")
                .to_owned()
        };
        let mut verdict = match code {
            0 => "ok",
            1 => "violation",
            2 => "unknown",
            _ => "error",
        }
        .to_owned();
        if expected.is_some_and(|e| e != code) || (expected.is_none() && code != 0) {
            verdict = format!("WRONG:{verdict}");
            wrong += 1;
        }
        println!(
            "{:<52} {:>9} {:>10} {:>9.0} {:>9} {:>9} {:>9} {:>9}  {}",
            name,
            field("ops="),
            verdict,
            wall,
            field("parse_ms="),
            field("check_ms="),
            field("cpu_ms="),
            field("peak_rss_mib="),
            target
        );
    }
    println!("\nTo reproduce one row:");
    for c in commands {
        println!("{c}");
    }
    if wrong > 0 {
        eprintln!("clobber bench: {wrong} verdict(s) differ from the expected one");
        return 1;
    }
    0
}
