//! `clobber-perturb`: run a command with chosen file-system calls delayed.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use clobber_perturb::{CallSet, Invocation, Schedule, record};

/// Run PROGRAM with chosen file-system system calls delayed (ptrace + a seccomp
/// filter: works on static, dynamic, Python and Node programs alike). A delay never
/// changes a call's result. Exits as PROGRAM exits (its code, or its signal);
/// exit 5 if tracing is not permitted here, 127 if PROGRAM cannot be executed.
#[derive(Parser, Debug)]
#[command(name = "clobber-perturb", version)]
struct Args {
    /// How to delay: `pct[:ONE_IN[:DELAY_MS]]` (a command chosen with probability
    /// 1/ONE_IN gets one DELAY_MS delay at a random point of its lock/write life
    /// cycle: before-rename, before-write, unlock-unlink, open-lock), `noise[:MAX_US]`
    /// (every stopped call: a random delay up to MAX_US), or `count` (no delays).
    #[arg(long, default_value_t = Schedule::DEFAULT)]
    schedule: Schedule,
    /// The run's seed: with --invocation, picks this command's plan.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// This command's number within the run.
    #[arg(long, default_value_t = 0)]
    invocation: u64,
    /// The calls to stop: `all` or a list (`openat,rename,unlink,flock`); a family
    /// name selects every flavour (`rename` = rename, renameat, renameat2).
    #[arg(long, default_value = "all")]
    calls: CallSet,
    /// Append a JSON record (plan, exit status, counters, delays) to this file.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Print the record on stderr when the program ends.
    #[arg(long)]
    report: bool,
    /// A label for the record.
    #[arg(long)]
    tag: Option<String>,
    /// Internal: be the trampoline (become the traced program).
    #[arg(long, hide = true)]
    exec: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    command: Vec<OsString>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (program, rest) = args.command.split_first().context("no program given")?;
    if args.exec {
        clobber_perturb::trampoline::exec(program, rest, &args.calls);
    }
    let exe = std::env::current_exe().context("locating clobber-perturb")?;
    let inv = Invocation {
        schedule: args.schedule,
        seed: args.seed,
        invocation: args.invocation,
        calls: args.calls,
        tag: args.tag,
        log: args.log,
    };
    match record::trace_and_log(&[exe.into(), "--exec".into()], program, rest, &inv) {
        Ok(rec) => {
            if args.report {
                eprintln!("{}", serde_json::to_string(&rec)?);
            }
            record::exit_like(rec.traced.status)
        }
        Err(e @ clobber_perturb::Error::NotPermitted { .. }) => {
            eprintln!("clobber-perturb: {e}");
            std::process::exit(5)
        }
        Err(e @ clobber_perturb::Error::Exec { .. }) => {
            eprintln!("clobber-perturb: {e}");
            std::process::exit(127)
        }
        Err(e) => Err(e.into()),
    }
}
