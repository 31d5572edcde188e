//! The system calls that can be delayed, and their numbers on this architecture.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A file-system call the perturber can stop and delay. Where an architecture has
/// several system calls for one job (`rename`, `renameat`, `renameat2`) each is its
/// own variant, so that counters say exactly what the program called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Call {
    /// `open` (x86_64 only; aarch64 has only `openat`).
    Open,
    /// `openat`.
    Openat,
    /// `read`.
    Read,
    /// `pread64`.
    Pread64,
    /// `write`.
    Write,
    /// `pwrite64`.
    Pwrite64,
    /// `fsync`.
    Fsync,
    /// `fdatasync`.
    Fdatasync,
    /// `rename` (x86_64 only).
    Rename,
    /// `renameat`.
    Renameat,
    /// `renameat2`.
    Renameat2,
    /// `unlink` (x86_64 only).
    Unlink,
    /// `unlinkat`.
    Unlinkat,
    /// `flock`.
    Flock,
    /// `fcntl`, lock commands only (`F_SETLK`, `F_SETLKW`, `F_OFD_SETLK`, `F_OFD_SETLKW`):
    /// the filter looks at the command, so `F_GETFL` and friends never stop.
    FcntlLock,
    /// `close`.
    Close,
    /// `mkdir` (x86_64 only).
    Mkdir,
    /// `mkdirat`.
    Mkdirat,
    /// `link` (x86_64 only).
    Link,
    /// `linkat`.
    Linkat,
}

/// The `fcntl` commands that take or release a record lock.
pub(crate) const FCNTL_LOCK_COMMANDS: [i32; 4] = [
    libc::F_SETLK,
    libc::F_SETLKW,
    libc::F_OFD_SETLK,
    libc::F_OFD_SETLKW,
];

impl Call {
    /// Every call this architecture has, in a fixed order.
    #[must_use]
    pub fn all() -> Vec<Call> {
        crate::arch::CALLS.iter().map(|(c, _)| *c).collect()
    }

    /// The system call's name (`fcntl` lock commands: `fcntl`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Call::Open => "open",
            Call::Openat => "openat",
            Call::Read => "read",
            Call::Pread64 => "pread64",
            Call::Write => "write",
            Call::Pwrite64 => "pwrite64",
            Call::Fsync => "fsync",
            Call::Fdatasync => "fdatasync",
            Call::Rename => "rename",
            Call::Renameat => "renameat",
            Call::Renameat2 => "renameat2",
            Call::Unlink => "unlink",
            Call::Unlinkat => "unlinkat",
            Call::Flock => "flock",
            Call::FcntlLock => "fcntl",
            Call::Close => "close",
            Call::Mkdir => "mkdir",
            Call::Mkdirat => "mkdirat",
            Call::Link => "link",
            Call::Linkat => "linkat",
        }
    }

    /// The system call number on this architecture.
    #[must_use]
    pub fn number(self) -> Option<i64> {
        crate::arch::CALLS
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, n)| *n)
    }

    /// The call with this system call number, if it is one of ours.
    #[must_use]
    pub fn from_number(nr: i64) -> Option<Call> {
        crate::arch::CALLS
            .iter()
            .find(|(_, n)| *n == nr)
            .map(|(c, _)| *c)
    }

    /// A rename of any flavour.
    #[must_use]
    pub fn is_rename(self) -> bool {
        matches!(self, Call::Rename | Call::Renameat | Call::Renameat2)
    }

    /// An unlink of any flavour.
    #[must_use]
    pub fn is_unlink(self) -> bool {
        matches!(self, Call::Unlink | Call::Unlinkat)
    }

    /// A write of any flavour.
    #[must_use]
    pub fn is_write(self) -> bool {
        matches!(self, Call::Write | Call::Pwrite64)
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of calls: what the seccomp filter stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSet(Vec<Call>);

impl CallSet {
    /// Every call this architecture has.
    #[must_use]
    pub fn all() -> Self {
        CallSet(Call::all())
    }

    /// The calls, in a fixed order.
    #[must_use]
    pub fn calls(&self) -> &[Call] {
        &self.0
    }

    /// The calls of this set that are also in `keep`.
    #[must_use]
    pub fn only(&self, keep: &[Call]) -> CallSet {
        CallSet(
            self.0
                .iter()
                .copied()
                .filter(|c| keep.contains(c))
                .collect(),
        )
    }
}

impl Default for CallSet {
    fn default() -> Self {
        Self::all()
    }
}

impl fmt::Display for CallSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.0.iter().map(|c| c.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// `all`, or a comma-separated list of names: `openat,rename,flock`. A name that
/// covers several calls (`rename`) selects every flavour this architecture has
/// (`rename`, `renameat`, `renameat2`).
impl FromStr for CallSet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "all" {
            return Ok(Self::all());
        }
        let mut out = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let family: Vec<Call> = Call::all()
                .into_iter()
                .filter(|c| {
                    let n = c.name();
                    n == name
                        || (n.starts_with(name) && matches!(&n[name.len()..], "at" | "at2" | "64"))
                })
                .collect();
            if family.is_empty() {
                let names: Vec<_> = Call::all().iter().map(|c| c.name()).collect();
                return Err(Error::invalid(
                    "call",
                    name,
                    format!("expected `all` or some of: {}", names.join(", ")),
                ));
            }
            for c in family {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        if out.is_empty() {
            return Err(Error::invalid("call list", s, "names no call"));
        }
        out.sort();
        Ok(CallSet(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_name_selects_every_flavour() {
        let set: CallSet = "rename,unlink".parse().unwrap();
        assert!(set.calls().contains(&Call::Renameat2));
        assert!(set.calls().contains(&Call::Unlinkat));
        assert!(!set.calls().contains(&Call::Openat));
    }

    #[test]
    fn an_unknown_call_is_rejected_with_the_choices() {
        let e = "rename,bogus".parse::<CallSet>().unwrap_err().to_string();
        assert!(e.contains("bogus") && e.contains("openat"), "{e}");
    }

    #[test]
    fn numbers_round_trip() {
        for c in Call::all() {
            assert_eq!(Call::from_number(c.number().unwrap()), Some(c));
        }
    }
}
