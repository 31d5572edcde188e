//! Every integration test of the `clobber` binary, one module per area. They run
//! the built binaries (`clobber`, `clobber-store`) as real processes.
//!
//! Run one area with `cargo test -p clobber --test it cli::` (or `perturb::`,
//! `validate::`, ...).

mod common;

mod adapters;
mod cli;
mod nemesis;
mod perturb;
mod real_stores;
mod slow_stores;
mod validate;
