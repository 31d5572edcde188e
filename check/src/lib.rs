//! # clobber-check: is this history of a key-value store linearizable?
//!
//! The history format ([`history`]) is the contract between the process harness,
//! which records it, and the checkers, which judge it. [`check_kv`] decides whether a
//! history of `set` / `get` / `delete` / `list` / `clear` operations is linearizable,
//! lists the acknowledged writes that were lost, and explains every violation with a
//! minimal witness.
//!
//! ```
//! use clobber_check::history::{Op, Outcome, Record};
//! use clobber_check::{CheckOptions, Verdict, check_kv};
//!
//! let op = |process, op, value: Option<&str>, outcome, invoke_ns, complete_ns| Record {
//!     process, op, key: Some("k".into()), value: value.map(Into::into), keys: None,
//!     outcome, invoke_ns, complete_ns: Some(complete_ns), error: None, detail: None,
//! };
//! // A writes k=a1 and is acknowledged; B then reads k and finds nothing.
//! let history = [
//!     op(1, Op::Set, Some("a1"), Outcome::Ok, 0, 10),
//!     op(2, Op::Get, None, Outcome::NotFound, 20, 30),
//! ];
//! let report = check_kv(&history, &CheckOptions::default());
//! assert_eq!(report.verdict(), Verdict::Violation);
//! assert_eq!(report.lost_summary(), "Lost: 1 / 1");
//! println!("{}", report.render_text());
//! ```
//!
//! ## How
//! - Per key ([`model::kv`]): a key-value map is linearizable iff each key is, so the
//!   history is split per key and the keys are checked in parallel, largest first.
//! - Fast path ([`fast`]): when every written value is unique, each read names its
//!   write and the check is an O(n log n) interval test (Gibbons & Korach).
//! - Search ([`search`]): otherwise, Wing & Gong's backtracking with Lowe's
//!   just-in-time linearization and a memo that holds only the pending window.
//! - Witnesses ([`shrink`]): a violating key is shrunk to the fewest operations that
//!   still cannot be linearized, removing only what cannot hide a violation.
//! - Lost writes ([`lost`]): acknowledged writes that a later read missed with
//!   nothing in between to explain it, summarised as "Lost: N / M".
//! - Budgets: time and memory; when exceeded the verdict is `Unknown`, never `Ok`.
//!
//! Other inputs: Jepsen register logs and EDN key-value logs ([`import`], checked
//! with [`check_register`] and [`check_model`]); synthetic histories that are
//! linearizable by construction, optionally with one planted violation
//! ([`generator`]). The command-line entry points (`clobber check`, `clobber gen`,
//! `clobber bench`) live in [`cli`].
//!
//! ## Limits
//! `list` and `clear` are checked per key (see [`model::kv`]), with a partial
//! cross-key check ([`joint`]); at most 128 operations
//! may be pending at once on one key; repeated values and compare-and-set go to the
//! search, which is exponential in the worst case and bounded by the budgets.

#![deny(missing_docs)]

mod check;
pub mod cli;
mod error;
pub mod fast;
pub mod generator;
pub mod history;
pub mod import;
pub mod intern;
pub mod joint;
pub mod lost;
pub mod model;
pub mod report;
pub mod search;
pub mod shrink;

pub use check::{CheckOptions, check_kv, check_kv_history, check_model, check_register};
pub use error::Error;
pub use report::{
    CheckReport, LostWrite, Observation, PartitionReport, Verdict, Witness, WitnessOp,
};
