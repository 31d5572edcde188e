//! The one sync shim: every shared primitive of the model file system comes from
//! here, and nowhere else.
//!
//! The paths mirror `std`'s one for one, so that code written against this module
//! reads like ordinary `std` code:
//!
//! | build | `sync::{Arc, Mutex, Condvar}`, `sync::atomic`, `sync::thread` | used by |
//! |---|---|---|
//! | default | `std::sync`, `std::thread` | unit tests of the model, production (which uses none of it) |
//! | `--features loom` | `loom::sync`, `loom::thread` | `tests/loom_protocol.rs`: every interleaving of ≤ 4 processes |
//! | `--features shuttle` | `shuttle::sync`, `shuttle::thread` | `tests/shuttle_protocol.rs`: randomised schedules of 8–32 processes |
//!
//! A model checker can only see the scheduling points it controls: a `std` mutex
//! hidden anywhere in the model would be invisible to it and would silently shrink
//! the set of interleavings explored. Routing everything through this module makes
//! that mistake a one-file review.

#[cfg(all(feature = "loom", feature = "shuttle"))]
compile_error!("choose one model checker: feature `loom` or feature `shuttle`, not both");

#[cfg(all(feature = "loom", not(feature = "shuttle")))]
pub use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(all(feature = "loom", not(feature = "shuttle")))]
pub use loom::{sync::atomic, thread};

#[cfg(all(feature = "shuttle", not(feature = "loom")))]
pub use shuttle::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(all(feature = "shuttle", not(feature = "loom")))]
pub use shuttle::{sync::atomic, thread};

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub use std::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub use std::{sync::atomic, thread};

/// What the model shares but the model checker must *not* see. Always `std`.
///
/// Every operation on a checked primitive is a scheduling point, and loom's
/// partial-order reduction treats two operations on the same object as racing
/// (except two atomic loads). Routing the diagnostic trace, the inode registry or a
/// reference count through loom would make every file-system call race with every
/// other one and multiply the interleavings without adding a single behaviour.
/// Three rules keep this sound:
///
/// 1. an untracked value either decides nothing (the trace; inode numbers, which
///    only need to be unique; reference counts), or is private to one process until
///    a checked operation publishes it (a temporary file's name);
/// 2. or every access to it comes right after a checked operation on the object it
///    belongs to, with no scheduling point in between, so the checker orders and
///    races the pair as one step (an inode's contents, behind its checked
///    generation counter);
/// 3. an untracked lock is never held across a checked operation (under loom and
///    shuttle all processes share one OS thread, so that would deadlock for real).
pub mod untracked {
    pub use std::sync::atomic::{AtomicU64, Ordering};
    pub use std::sync::{Arc, Mutex};
}

/// Which implementation this build uses: `"std"`, `"loom"` or `"shuttle"`.
pub const BACKEND: &str = if cfg!(feature = "loom") {
    "loom"
} else if cfg!(feature = "shuttle") {
    "shuttle"
} else {
    "std"
};
