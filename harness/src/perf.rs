//! `clobber perf`: the two performance ratios, measured in one command.
//!
//! 1. `cli` mode's cost per operation against the floor of any CLI-driven harness:
//!    spawning the store binary with `--help` (same process start, no store work).
//! 2. Operations per second of one throughput scenario in `lib` mode against `cli`
//!    mode, on the same machine, one after the other.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use clobber_check::history::Op;
use clobber_perturb::Schedule;

use crate::adapter::Adapter;
use crate::driver::{Call, Driver, DriverSpec};
use crate::error::{Error, Result};
use crate::run::{RunConfig, run};
use crate::scenario::Mode;

/// What `clobber perf` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Perf {
    /// Mean milliseconds to spawn `clobber-store --help`.
    pub help_spawn_ms: f64,
    /// Mean milliseconds of one `cli` `get`, measured through the harness's driver.
    pub cli_get_ms: f64,
    /// Mean milliseconds of one `cli` `set`.
    pub cli_set_ms: f64,
    /// `cli` operations per second in the throughput scenario, scratch on disk.
    pub cli_ops_per_s: f64,
    /// `lib` operations per second in the throughput scenario, scratch on disk.
    pub lib_ops_per_s: f64,
    /// The same two figures with the scratch directory on tmpfs (`/dev/shm`), where
    /// fsync is free and what remains is the cost of each mode itself.
    pub tmpfs: Option<(f64, f64)>,
    /// Mean milliseconds of a `cli` operation (set and get) under `--perturb` with
    /// the named schedule (`count`: stopped, never delayed; `pct:N:0`: the default's
    /// choices and stops, no delay; `pct`: the default).
    pub perturbed_op_ms: Vec<(String, f64)>,
}

impl Perf {
    /// The report.
    #[must_use]
    pub fn render_text(&self, samples: usize, scenario: &Path) -> String {
        let per_op = f64::midpoint(self.cli_get_ms, self.cli_set_ms);
        format!(
            "per-operation cost ({samples} sequential samples each):\n\
             \x20 spawn `clobber-store --help`      {:8.3} ms\n\
             \x20 cli get (through the harness)     {:8.3} ms\n\
             \x20 cli set (through the harness)     {:8.3} ms\n\
             \x20 cli op / --help spawn             {:8.2}x   (target <= 1.5x)\n\
             throughput, {}, scratch store on disk (two fsyncs per write):\n\
             \x20 cli mode                          {:8.0} ops/s\n\
             \x20 lib mode                          {:8.0} ops/s\n\
             \x20 lib / cli                         {:8.1}x   (target >= 10x)\n{}",
            self.help_spawn_ms,
            self.cli_get_ms,
            self.cli_set_ms,
            per_op / self.help_spawn_ms,
            scenario.display(),
            self.cli_ops_per_s,
            self.lib_ops_per_s,
            self.lib_ops_per_s / self.cli_ops_per_s.max(1e-9),
            self.tmpfs.map_or(String::new(), |(c, l)| format!(
                "throughput, scratch store on tmpfs (/dev/shm: fsync is free):\n\
                 \x20 cli mode                          {c:8.0} ops/s\n\
                 \x20 lib mode                          {l:8.0} ops/s\n\
                 \x20 lib / cli                         {:8.1}x   (target >= 10x)\n",
                l / c.max(1e-9)
            )),
        ) + &self.render_perturbed(per_op)
    }

    fn render_perturbed(&self, plain_ms: f64) -> String {
        let mut s = String::from("per-operation cost under --perturb (cli set and get, mean):\n");
        for (schedule, ms) in &self.perturbed_op_ms {
            s.push_str(&format!(
                "  --perturb {schedule:<8}                {ms:8.3} ms   (+{:.3} ms, {:.2}x)\n",
                ms - plain_ms,
                ms / plain_ms.max(1e-9)
            ));
        }
        s
    }
}

/// Measure.
///
/// # Errors
/// The store program is missing; setup or run errors.
pub fn perf(scenario: &Path, samples: usize) -> Result<Perf> {
    let adapter = Adapter::resolve("reference")?;
    let program = adapter.require_program()?.to_path_buf();
    let scratch = std::env::temp_dir().join(format!("clobber-perf-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .map_err(|e| Error::io("create scratch directory", &scratch, e))?;
    let result = measure(&adapter, &program, &scratch, scenario, samples);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn measure(
    adapter: &Adapter,
    program: &Path,
    scratch: &Path,
    scenario: &Path,
    samples: usize,
) -> Result<Perf> {
    let samples = samples.max(1);
    // Warm the page cache for both paths first.
    for _ in 0..3 {
        spawn_help(program)?;
    }
    let t = Instant::now();
    for _ in 0..samples {
        spawn_help(program)?;
    }
    let help_spawn_ms = t.elapsed().as_secs_f64() * 1e3 / samples as f64;

    let setup = adapter
        .setup_argvs(scratch)
        .pop()
        .ok_or_else(|| Error::setup("reference adapter has no setup command"))?;
    let status = adapter
        .command(&setup, scratch)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| Error::setup(format!("running {}: {e}", setup.join(" "))))?;
    if !status.success() {
        return Err(Error::setup(format!(
            "{} failed: {status}",
            setup.join(" ")
        )));
    }
    let cli_driver = |perturb: Option<&str>| {
        Driver::new(DriverSpec::Cli {
            adapter: Box::new(adapter.clone()),
            scratch: scratch.to_path_buf(),
            op_timeout_ms: 10_000,
            perturb: perturb.map(|schedule| {
                Box::new(crate::perturbation::PerturbSpec {
                    schedule: schedule.into(),
                    seed: 1,
                    process: 1,
                    log: scratch.join(crate::perturbation::LOG),
                })
            }),
        })
    };
    let mut driver = cli_driver(None)?;
    let cli_set_ms = time_ops(&mut driver, Op::Set, Some("value"), samples)?;
    let cli_get_ms = time_ops(&mut driver, Op::Get, None, samples)?;
    // The same operations under the perturber: stopping only, and the default schedule.
    let mut perturbed = Vec::new();
    // `pct:ONE_IN:0`: the default's choices and stops without its delays (the cost
    // of aiming alone).
    let Schedule::Pct { one_in, .. } = Schedule::DEFAULT else {
        unreachable!("the default schedule is pct")
    };
    let aim = format!("pct:{one_in}:0");
    for schedule in ["count", aim.as_str(), "pct"] {
        let mut driver = cli_driver(Some(schedule))?;
        let set = time_ops(&mut driver, Op::Set, Some("value"), samples)?;
        let get = time_ops(&mut driver, Op::Get, None, samples)?;
        perturbed.push((schedule, f64::midpoint(set, get)));
    }

    let disk = throughput(scenario, None)?;
    let shm = Path::new("/dev/shm");
    let tmpfs = if shm.is_dir() {
        let base = shm.join(format!("clobber-perf-{}", std::process::id()));
        let r = throughput(scenario, Some(&base));
        let _ = std::fs::remove_dir_all(&base);
        Some(r?)
    } else {
        None
    };
    Ok(Perf {
        help_spawn_ms,
        cli_get_ms,
        cli_set_ms,
        cli_ops_per_s: disk.0,
        lib_ops_per_s: disk.1,
        tmpfs,
        perturbed_op_ms: perturbed
            .into_iter()
            .map(|(s, ms)| (s.to_owned(), ms))
            .collect(),
    })
}

/// Mean milliseconds of `samples` sequential `op`s on one key through `driver`.
fn time_ops(driver: &mut Driver, op: Op, value: Option<&str>, samples: usize) -> Result<f64> {
    let t = Instant::now();
    for i in 0..samples {
        let call = Call {
            op,
            key: Some("perf-key".into()),
            value: value.map(|v| format!("{v}-{i}")),
        };
        let done = driver.exec(&call);
        if done.outcome != clobber_check::history::Outcome::Ok {
            return Err(Error::setup(format!("perf {op} failed: {:?}", done.error)));
        }
    }
    Ok(t.elapsed().as_secs_f64() * 1e3 / samples as f64)
}

/// Operations per second of `scenario` in cli and in lib mode.
fn throughput(scenario: &Path, base: Option<&Path>) -> Result<(f64, f64)> {
    let mut ops = [0.0; 2];
    for (i, mode) in [Mode::Cli, Mode::Lib].into_iter().enumerate() {
        let report = run(&RunConfig {
            scenario: scenario.to_path_buf(),
            store: "reference".into(),
            mode: Some(mode),
            seed: Some(1),
            full: false,
            keep: false,
            scratch: base.map(|b| b.join(mode.name())),
            op_timeout_ms: None,
            max_duration_ms: None,
            progress: false,
            history_out: None,
            perturb: None,
            nemesis: crate::nemesis::Kind::None,
        })?;
        if report.verdict != crate::report::Verdict::Pass {
            return Err(Error::setup(format!(
                "the throughput scenario did not pass in {} mode:\n{}",
                mode.name(),
                report.render_text()
            )));
        }
        ops[i] = report.ops_per_s;
    }
    Ok((ops[0], ops[1]))
}

fn spawn_help(program: &Path) -> Result<()> {
    let out = Command::new(program)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::setup(format!("spawning {} --help: {e}", program.display())))?;
    if !out.status.success() {
        return Err(Error::setup(format!("{} --help failed", program.display())));
    }
    Ok(())
}
