//! # clobber: prove that no write is ever lost
//!
//! Drives a store from many real OS processes, records every operation, and checks
//! the history.

#![deny(missing_docs)]

pub use clobber_check as check;
