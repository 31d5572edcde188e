//! The model of the protocol: an inode-level file system ([`ModelFs`]) on which
//! the production [`crate::protocol::Engine`] runs unchanged, and the workloads
//! ([`Model`]) that loom and shuttle explore.
//!
//! # Why a model
//!
//! A stress test finds a race when the scheduler happens to produce it. A model
//! checker runs the same code under every interleaving (loom, for a few processes)
//! or under many adversarially chosen ones (shuttle, for many processes), so a
//! passing model is a proof for its bounds, and a faulty protocol is found every
//! time. The model checks the *same* engine that production runs: only the file
//! system underneath is swapped, through the [`crate::protocol::Fs`] trait.
//!
//! # What is modelled, and what is not
//!
//! Modelled: names and inodes, rename and unlink acting on names, one exclusive
//! lock per inode held through an open handle and released when the handle is
//! dropped (including when a process dies at any protocol step), half-written
//! in-place files, temporary files left by a dead process, and durability: file
//! data is durable at the file's `fsync`, directory entries (create, rename,
//! unlink) at the directory's. After every operation that could make it worse,
//! a power loss is judged in every state the ordering rules allow (see
//! [`ModelFs::check_power_loss`]).
//!
//! Not modelled: the real `flock(2)` (its semantics are assumed to be the above),
//! that `StdFs`'s sync calls really reach the disk (the FUSE file system of
//! `faultfs` tests that), I/O errors, and encryption (files hold the plain
//! encoding of the map). See `store/MODELS.md`.
//!
//! # Running
//!
//! ```text
//! cargo test -p clobber-store --release --features loom --test loom_protocol -- --nocapture
//! cargo test -p clobber-store --release --features shuttle --test shuttle_protocol -- --nocapture
//! ```
//!
//! Without either feature the module builds on `std` threads and primitives, which
//! keeps it compiled, linted and unit-tested in every build.

mod fs;
mod scenario;

pub use fs::{ModelFs, ModelLock, describe};
pub use scenario::{DATA, Model, Run, Scenario, Violation};
