//! Schedules: how the commands of a run are perturbed.
//!
//! A run executes many short commands (one per operation, like the seed's loop).
//! The [`Schedule`] is chosen once per run; [`Schedule::plan`] derives, from the
//! run's seed and the command's number, the [`Plan`] of one command. All randomness
//! flows from that seed, so a run replays exactly.
//!
//! - `pct` follows PCT (Burckhardt et al., ASPLOS 2010: a few randomly placed
//!   priority change points find a bug of depth d with probability at least
//!   1/(n·k^(d−1))): one command in `ONE_IN` is chosen, and gets *one* long delay at
//!   one point of the lock/write life cycle, chosen at random ([`Point`]). A long
//!   delay at the right point turns a microsecond window into a
//!   hundred-millisecond one. The other commands are not traced at all
//!   ([`Plan::Untraced`]): they run at full speed, with no tracer and no extra
//!   process, and a chosen command stops only at the calls its point needs
//!   ([`Point::calls`]), so that the perturbation costs little beyond its delays.
//! - `noise` gives every stopped call a small uniform random delay.
//! - `count` delays nothing: the counters alone (and the cost of stopping).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::calls::{Call, CallSet};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// How a run is perturbed. Text form: `pct[:ONE_IN[:DELAY_MS]]`,
/// `noise[:MAX_US]`, `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// One command in `one_in` gets one delay of `delay` at a random [`Point`].
    Pct {
        /// One command in this many is chosen.
        one_in: u32,
        /// The delay.
        delay: Duration,
    },
    /// Every stopped call is delayed by a uniform random time in `0..=max`.
    Noise {
        /// The largest delay.
        max: Duration,
    },
    /// Stop and count, never delay.
    Count,
}

impl Schedule {
    /// The default `pct`: one command in 3, 150 ms (longer than the 100 ms poll
    /// interval of common flock libraries, so a poller wakes inside the window).
    /// `pct:1:300` catches lock-free stores sooner, but a correct store that holds
    /// its lock through a delay then does so little in a short run that the run
    /// cannot pass (see the README).
    pub const PCT: Schedule = Schedule::Pct {
        one_in: 3,
        delay: Duration::from_millis(150),
    };
    /// The default `noise`: up to 2 ms per call.
    pub const NOISE: Schedule = Schedule::Noise {
        max: Duration::from_millis(2),
    };
    /// The schedule `clobber run --perturb` uses when none is named (see the README
    /// for the measurement behind the choice).
    pub const DEFAULT: Schedule = Schedule::PCT;

    /// The plan of command number `invocation` of a run with seed `seed`.
    #[must_use]
    pub fn plan(&self, seed: u64, invocation: u64) -> Plan {
        let mut rng = Rng::new(seed, invocation);
        match *self {
            Schedule::Count => Plan::Count,
            Schedule::Noise { max } => Plan::Noise {
                max,
                seed: rng.next_u64(),
            },
            Schedule::Pct { one_in, delay } => {
                if rng.below(u64::from(one_in.max(1))) != 0 {
                    return Plan::Untraced;
                }
                let i = usize::try_from(rng.below(Point::ALL.len() as u64)).unwrap_or(0);
                Plan::Point {
                    point: Point::ALL[i],
                    delay,
                }
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Pct { one_in, delay } => write!(f, "pct:{one_in}:{}", delay.as_millis()),
            Schedule::Noise { max } => write!(f, "noise:{}", max.as_micros()),
            Schedule::Count => f.write_str("count"),
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| {
            Error::invalid(
                "schedule",
                s,
                format!("{reason}; expected pct[:ONE_IN[:DELAY_MS]], noise[:MAX_US] or count"),
            )
        };
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or("");
        let nums: Vec<u64> = parts
            .map(|p| {
                p.parse::<u64>()
                    .map_err(|_| bad(&format!("{p:?} is not a number")))
            })
            .collect::<Result<_>>()?;
        match (kind, nums.as_slice()) {
            ("pct", n) if n.len() <= 2 => {
                let Schedule::Pct { one_in, delay } = Schedule::PCT else {
                    unreachable!()
                };
                let one_in = match n.first() {
                    Some(&0) => return Err(bad("ONE_IN must be at least 1")),
                    Some(&v) => u32::try_from(v).map_err(|_| bad("ONE_IN is too large"))?,
                    None => one_in,
                };
                let delay = n.get(1).map_or(delay, |&ms| Duration::from_millis(ms));
                Ok(Schedule::Pct { one_in, delay })
            }
            ("noise", [max]) => Ok(Schedule::Noise {
                max: Duration::from_micros(*max),
            }),
            ("noise", []) => Ok(Schedule::NOISE),
            ("count", []) => Ok(Schedule::Count),
            ("pct" | "noise" | "count", _) => Err(bad("too many numbers")),
            _ => Err(bad("unknown schedule")),
        }
    }
}

/// Where in a command's lock/write life cycle a `pct` delay lands: the first call
/// of the command that matches.
///
/// A *write-back* is a `rename*`, or a `write`/`pwrite64` to a descriptor above 2
/// that names a file (not a pipe, socket, event descriptor or device): the moment a
/// read-modify-write makes its (possibly stale) result visible. The two lock points
/// fall back to the first write-back when it comes before any lock attempt, so that
/// a store that takes no lock still gets its delay inside its read-to-write-back
/// window (the delay's point is then named `before-rename (no lock)` or
/// `before-write (no lock)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    /// Before the first `rename*`: the new file is written, the old one still in
    /// place (a reader-modifier-writer's stale map is about to win).
    BeforeRename,
    /// Before the first `write`/`pwrite64` to a file (a descriptor above 2 that is
    /// not a pipe, socket or device): the write-back of an in-place store, or a temp
    /// file's contents.
    BeforeWrite,
    /// Before the first `unlink*` that follows a lock release (`flock(LOCK_UN)`, or
    /// a locked descriptor that is no longer open): a lock file unlinked after
    /// release, which another process may have opened and locked meanwhile. Falls
    /// back to the first write-back if it comes before any lock attempt.
    UnlockUnlink,
    /// Before the first lock attempt (`flock` without `LOCK_UN`, or an `fcntl` lock
    /// command): the file is open but not locked; it may be renamed or unlinked now.
    /// Falls back to the first write-back if it comes before any lock attempt.
    OpenLock,
}

impl Point {
    /// Every point.
    pub const ALL: [Point; 4] = [
        Point::BeforeRename,
        Point::BeforeWrite,
        Point::UnlockUnlink,
        Point::OpenLock,
    ];

    /// The point's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Point::BeforeRename => "before-rename",
            Point::BeforeWrite => "before-write",
            Point::UnlockUnlink => "unlock-unlink",
            Point::OpenLock => "open-lock",
        }
    }

    /// The calls a command must stop at for this point to be found: its own, plus
    /// the write-backs its fallback needs. Nothing else stops, so a chosen
    /// command pays for a few stops, not for every file access of its start-up.
    #[must_use]
    pub fn calls(self) -> Vec<Call> {
        let renames = [Call::Rename, Call::Renameat, Call::Renameat2];
        let writes = [Call::Write, Call::Pwrite64];
        let locks = [Call::Flock, Call::FcntlLock];
        let unlinks = [Call::Unlink, Call::Unlinkat];
        let mut out: Vec<Call> = match self {
            Point::BeforeRename => renames.to_vec(),
            Point::BeforeWrite => writes.to_vec(),
            Point::UnlockUnlink => [&locks[..], &unlinks, &renames, &writes].concat(),
            Point::OpenLock => [&locks[..], &renames, &writes].concat(),
        };
        out.sort();
        out
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one command gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Not traced at all: `pct` left this command alone, so it runs directly, with
    /// no tracer and no trampoline (nothing to count, nothing to pay).
    Untraced,
    /// Stop and count only.
    Count,
    /// Every stopped call: a uniform random delay in `0..=max`, drawn from `seed`.
    Noise {
        /// The largest delay.
        max: Duration,
        /// This command's stream of random delays.
        seed: u64,
    },
    /// One delay, at the first call that matches `point`.
    Point {
        /// Where.
        point: Point,
        /// How long.
        delay: Duration,
    },
}

impl Plan {
    /// Is the command traced at all?
    #[must_use]
    pub fn is_traced(&self) -> bool {
        !matches!(self, Plan::Untraced)
    }

    /// The calls the command's seccomp filter stops: `configured` (what the user
    /// asked for), narrowed for a point plan to the calls that point needs
    /// ([`Point::calls`]). If the two have nothing in common, `configured`.
    #[must_use]
    pub fn calls(&self, configured: &CallSet) -> CallSet {
        match self {
            Plan::Point { point, .. } => {
                let narrowed = configured.only(&point.calls());
                if narrowed.calls().is_empty() {
                    configured.clone()
                } else {
                    narrowed
                }
            }
            _ => configured.clone(),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plan::Untraced => f.write_str("untraced"),
            Plan::Count => f.write_str("count"),
            Plan::Noise { max, .. } => write!(f, "noise up to {} us", max.as_micros()),
            Plan::Point { point, delay } => write!(f, "{} ms at {point}", delay.as_millis()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_round_trip_through_text() {
        for s in ["pct:3:150", "pct:1:300", "pct:1:20", "noise:500", "count"] {
            assert_eq!(s.parse::<Schedule>().unwrap().to_string(), s);
        }
        assert_eq!("pct".parse::<Schedule>().unwrap(), Schedule::PCT);
        assert_eq!("noise".parse::<Schedule>().unwrap(), Schedule::NOISE);
    }

    #[test]
    fn bad_schedules_are_rejected_with_the_grammar() {
        for s in ["", "pct:x", "pct:0", "noise:1:2", "chaos", "count:1"] {
            let e = s.parse::<Schedule>().unwrap_err().to_string();
            assert!(e.contains("pct[:ONE_IN"), "{s}: {e}");
        }
    }

    #[test]
    fn pct_chooses_about_one_command_in_n_and_every_point() {
        let s = Schedule::Pct {
            one_in: 4,
            delay: Duration::from_millis(1),
        };
        let plans: Vec<Plan> = (0..4000).map(|i| s.plan(7, i)).collect();
        let chosen = plans.iter().filter(|p| p.is_traced()).count();
        assert!((800..1200).contains(&chosen), "{chosen}");
        for point in Point::ALL {
            assert!(
                plans
                    .iter()
                    .any(|p| matches!(p, Plan::Point { point: q, .. } if *q == point))
            );
        }
    }

    #[test]
    fn pct_leaves_unchosen_commands_untraced_but_count_and_noise_trace_every_one() {
        let one_in_3: Schedule = "pct:3:150".parse().unwrap();
        let pct: Vec<Plan> = (0..300).map(|i| one_in_3.plan(5, i)).collect();
        assert!(pct.contains(&Plan::Untraced));
        assert!(!pct.contains(&Plan::Count), "pct never merely counts");
        for s in [
            Schedule::Count,
            Schedule::NOISE,
            "pct:1:300".parse().unwrap(),
        ] {
            assert!((0..300).all(|i| s.plan(5, i).is_traced()), "{s}");
        }
    }

    #[test]
    fn a_chosen_command_stops_only_at_the_calls_its_point_needs() {
        let all = CallSet::all();
        let plan = |point| Plan::Point {
            point,
            delay: Duration::from_millis(1),
        };
        let names = |p: Point| plan(p).calls(&all).to_string();
        let rename = plan(Point::BeforeRename).calls(&all);
        assert!(rename.calls().iter().all(|c| c.is_rename()), "{rename}");
        assert!(!rename.calls().is_empty());
        let write = plan(Point::BeforeWrite).calls(&all);
        assert!(write.calls().iter().all(|c| c.is_write()), "{write}");
        for p in [Point::UnlockUnlink, Point::OpenLock] {
            // The lock calls, and the write-backs of the no-lock fallback.
            let n = names(p);
            assert!(n.contains("flock") && n.contains("fcntl"), "{p}: {n}");
            assert!(n.contains("rename") && n.contains("write"), "{p}: {n}");
        }
        assert!(names(Point::UnlockUnlink).contains("unlink"));
        for p in Point::ALL {
            let n = names(p);
            for never in ["openat", "read", "close", "fsync", "mkdir"] {
                assert!(!n.contains(never), "{p} stops {never}: {n}");
            }
        }
        // What the user restricted stays restricted; count and noise keep it all.
        let only_flock: CallSet = "flock".parse().unwrap();
        assert_eq!(plan(Point::OpenLock).calls(&only_flock), only_flock);
        assert_eq!(Plan::Count.calls(&all), all);
    }

    #[test]
    fn plans_depend_only_on_seed_and_invocation() {
        let a: Vec<Plan> = (0..50).map(|i| Schedule::PCT.plan(1, i)).collect();
        let b: Vec<Plan> = (0..50).map(|i| Schedule::PCT.plan(1, i)).collect();
        let c: Vec<Plan> = (0..50).map(|i| Schedule::PCT.plan(2, i)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
