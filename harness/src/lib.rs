//! # clobber: prove that no write is ever lost
//!
//! Drives a store from many real OS processes, records every operation in a
//! history ([`clobber_check::history`]), and checks it.
//!
//! - [`scenario`]: the workload, as data (`scenarios/*.toml`).
//! - [`adapter`]: how to drive a store's CLI (`adapters/*.toml`).
//! - [`driver`]: one operation, through the CLI (`cli` mode) or the reference
//!   store's library (`lib` mode), classified into the history's outcomes.
//! - [`worker`]: one worker process running one role's loop.
//! - [`run`]: `clobber run`: scratch store, process groups, live audit, early stop.
//! - [`nemesis`]: `--nemesis kill` and `--nemesis power-loss` (over [`faultfs`]).
//! - [`audit`]: the lost-write, stale-read and final-state audit.
//! - [`report`]: summary table, witnesses, JSON, exit codes.
//! - [`perf`]: `clobber perf`: operations per second in both modes, and the cost of
//!   one `cli` operation against spawning the store with `--help`.

#![deny(missing_docs)]

pub use clobber_check as check;

pub mod adapter;
pub mod audit;
pub mod clock;
pub mod driver;
mod error;
pub mod evidence;
pub mod html;
pub mod latency;
pub mod nemesis;
pub mod perf;
pub mod perturbation;
pub mod progress;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod template;
pub mod validate;
pub mod worker;

pub use error::{Error, ErrorKind, Result};
