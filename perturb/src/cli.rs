//! The command line shared by the `clobber-perturb` binary and `clobber __perturb`:
//! one definition, so the two can never drift apart.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use crate::record::{self, Invocation};
use crate::{CallSet, Error, Schedule};

/// Exit code when tracing is not permitted here.
pub const EXIT_NOT_PERMITTED: i32 = 5;

/// Run PROGRAM with chosen file-system system calls delayed (ptrace + a seccomp
/// filter: works on static, dynamic, Python and Node programs alike). A delay never
/// changes a call's result. Exits as PROGRAM exits (its code, or its signal);
/// exit 5 if tracing is not permitted here, 127 if PROGRAM cannot be executed.
#[derive(Parser, Debug)]
#[command(name = "clobber-perturb", version)]
pub struct Args {
    /// How to delay: `pct[:ONE_IN[:DELAY_MS]]` (a command chosen with probability
    /// 1/ONE_IN gets one DELAY_MS delay at a random point of its lock/write life
    /// cycle: before-rename, before-write, unlock-unlink, open-lock; a lock point in a
    /// command that writes back before any lock falls back to that write-back; a
    /// command not chosen runs untraced), `noise[:MAX_US]` (every stopped call: a
    /// random delay up to MAX_US), or `count` (no delays).
    #[arg(long, default_value_t = Schedule::DEFAULT)]
    pub schedule: Schedule,
    /// The run's seed: with --invocation, picks this command's plan.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// This command's number within the run.
    #[arg(long, default_value_t = 0)]
    pub invocation: u64,
    /// The calls to stop: `all` or a list (`openat,rename,unlink,flock`); a family
    /// name selects every flavour (`rename` = rename, renameat, renameat2).
    #[arg(long, default_value = "all")]
    pub calls: CallSet,
    /// Append a JSON record (plan, exit status, counters, delays) to this file.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Print the record on stderr when the program ends.
    #[arg(long)]
    pub report: bool,
    /// A label for the record.
    #[arg(long)]
    pub tag: Option<String>,
    /// Internal: be the trampoline (become the traced program).
    #[arg(long, hide = true)]
    pub exec: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub command: Vec<OsString>,
}

/// Run as the command line says and end this process like the traced program.
/// `trampoline` is this program and the arguments that make it run `args` with
/// `--exec` (e.g. `[exe, "--exec"]` or `[exe, "__perturb", "--exec"]`).
pub fn main(args: Args, trampoline: &[OsString]) -> ! {
    let Some((program, rest)) = args.command.split_first() else {
        eprintln!("clobber-perturb: no program given");
        std::process::exit(2)
    };
    if args.exec {
        crate::trampoline::exec(program, rest, &args.calls);
    }
    let inv = Invocation {
        schedule: args.schedule,
        seed: args.seed,
        invocation: args.invocation,
        calls: args.calls,
        tag: args.tag,
        log: args.log,
    };
    match record::trace_and_log(trampoline, program, rest, &inv) {
        Ok(rec) => {
            if args.report {
                eprintln!(
                    "{}",
                    serde_json::to_string(&rec).expect("records serialize")
                );
            }
            record::exit_like(rec.traced.status)
        }
        Err(e) => {
            eprintln!("clobber-perturb: {e}");
            std::process::exit(match e {
                Error::NotPermitted { .. } => EXIT_NOT_PERMITTED,
                Error::Exec { .. } => crate::trampoline::EXIT_EXEC,
                _ => 1,
            })
        }
    }
}
