//! A test-only cross-process barrier at one protocol step, to force interleavings
//! deterministically instead of hoping for them.
//!
//! Set `CLOBBER_STORE_TEST_BARRIER=<step>:<parties>:<timeout-ms>:<dir>` (step names:
//! [`crate::protocol::Step::name`]). Each process reaching `<step>` claims the next
//! arrival slot (a file `arrive.<n>` created with `O_EXCL` in `<dir>`) and waits until
//! the `<parties>` slots of its generation are all claimed, or `<timeout-ms>` passes.
//!
//! With `N` processes that each perform the same number of operations and `parties =
//! N`, every generation holds exactly one arrival of each process: for example at
//! `before-lock`, all `N` processes have taken their snapshot before any of them
//! writes, so the `stale-snapshot` protocol loses `N - 1` writes per generation, every
//! time. Never set this in production: it only slows a store down.

use std::fs::OpenOptions;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::protocol::Step;

/// The environment variable that configures the barrier.
pub const ENV: &str = "CLOBBER_STORE_TEST_BARRIER";

/// A parsed barrier configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Barrier {
    step: Step,
    parties: usize,
    timeout: Duration,
    dir: PathBuf,
}

impl Barrier {
    /// Parse `<step>:<parties>:<timeout-ms>:<dir>`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Invalid`] naming the bad field.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |what: &str| {
            Error::invalid(format!(
                "{ENV}={spec:?}: {what}; expected <step>:<parties>:<timeout-ms>:<dir>"
            ))
        };
        let mut parts = spec.splitn(4, ':');
        let step = parts
            .next()
            .ok_or_else(|| bad("missing step"))?
            .parse::<Step>()?;
        let parties = parts
            .next()
            .and_then(|p| p.parse::<usize>().ok())
            .filter(|&p| p >= 1)
            .ok_or_else(|| bad("parties must be a positive integer"))?;
        let timeout_ms = parts
            .next()
            .and_then(|p| p.parse::<u64>().ok())
            .ok_or_else(|| bad("timeout must be milliseconds"))?;
        let dir = parts
            .next()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| bad("missing directory"))?;
        Ok(Self {
            step,
            parties,
            timeout: Duration::from_millis(timeout_ms),
            dir: PathBuf::from(dir),
        })
    }

    /// The barrier from the environment, if set.
    ///
    /// # Errors
    /// As [`Barrier::parse`].
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(ENV) {
            Ok(spec) if !spec.is_empty() => Self::parse(&spec).map(Some),
            _ => Ok(None),
        }
    }

    /// Called at every step; waits only at the configured one.
    ///
    /// # Errors
    /// I/O errors on the barrier directory.
    pub fn arrive(&self, step: Step) -> Result<()> {
        if step != self.step {
            return Ok(());
        }
        let mut slot = 0usize;
        loop {
            let path = self.dir.join(format!("arrive.{slot}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => slot += 1,
                Err(e) => return Err(Error::io("claim barrier slot", &path, e)),
            }
        }
        let last = (slot / self.parties + 1) * self.parties - 1;
        let last = self.dir.join(format!("arrive.{last}"));
        let start = Instant::now();
        while !last.exists() && start.elapsed() < self.timeout {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_spec_with_colons_in_the_directory() {
        let b = Barrier::parse("before-lock:8:5000:/tmp/a:b").unwrap();
        assert_eq!(b.step, Step::BeforeLock);
        assert_eq!(b.parties, 8);
        assert_eq!(b.dir, PathBuf::from("/tmp/a:b"));
    }

    #[test]
    fn rejects_malformed_specs() {
        for spec in [
            "",
            "nowhere:2:1:/d",
            "read:0:1:/d",
            "read:2:x:/d",
            "read:2:10:",
        ] {
            assert!(Barrier::parse(spec).is_err(), "{spec}");
        }
    }

    #[test]
    fn a_lone_party_does_not_wait() {
        let dir = tempfile::tempdir().unwrap();
        let b = Barrier::parse(&format!("read:1:60000:{}", dir.path().display())).unwrap();
        b.arrive(Step::Read).unwrap();
        b.arrive(Step::Locked).unwrap();
        assert!(dir.path().join("arrive.0").exists());
        assert!(!dir.path().join("arrive.1").exists());
    }
}
