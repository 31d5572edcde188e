//! # clobber-check: is this history of a key-value store linearizable?
//!
//! The history format ([`history`]) is the contract between the process harness,
//! which records it, and the checkers, which judge it.

#![deny(missing_docs)]

pub mod history;
pub mod cli;
