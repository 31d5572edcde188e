//! Nemeses: faults the harness injects into a running workload (`--nemesis`).
//!
//! - **`kill`**: at seeded random moments, SIGKILL one store process in the middle
//!   of its operation. Its operation becomes `unknown` (it may or may not have
//!   happened); the store must still never lose an acknowledged write nor be left
//!   unreadable.
//! - **`power-loss`**: the store's directory is a [`faultfs`] mount, which keeps
//!   file data and directory entries volatile until the matching fsync. At seeded
//!   random moments the harness SIGKILLs every store process, drops everything not
//!   durable (a power cut), remounts, and lets the workload go on; once the
//!   workload ends it cuts the power once more before the final read-back. Every
//!   write acknowledged before a crash must survive it.
//!
//! Both act on store processes only, in `cli` mode: every store process is a child
//! of a worker and shares the worker's process group, so a scan of `/proc` for the
//! workers' groups finds them (`nemesis/procs.rs`). Before it kills, the nemesis stops the
//! whole group (SIGSTOP): a stopped worker cannot reap a child, so no process id
//! it found can be reused under it, and no new store process can start mid-crash.
//!
//! What the checkers are told: nothing new. An operation killed in flight is
//! already `unknown` in the history (the driver classifies a signal death so); a
//! write acknowledged before the crash is an ordinary acknowledged write, and the
//! lost-write and linearizability checks demand that it survives. One relaxation,
//! for power loss only: a read that completed *before* a crash and returned the
//! value of a write that was *in flight at* that crash saw data that was never
//! durable; the power cut may take it back, and that is allowed (the write was
//! never acknowledged). Such reads are turned into `unknown` reads before checking
//! ([`excuse_reads_of_lost_inflight_writes`]) and counted in the report.

mod procs;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clobber_check::history::{Op, Outcome, Record};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::Serialize;

use crate::clock::now_ns;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The faultfs mount of the running power-loss nemesis, for the Ctrl-C handler.
static MOUNTED: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// Called by the Ctrl-C handler just before the process exits: detach the faultfs
/// mount (lazily), so no dead mount is left over the scratch directory.
pub(crate) fn detach_mount() {
    if let Some(dir) = MOUNTED.lock().ok().and_then(|mut m| m.take()) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&dir)
            .status();
    }
}

/// Which nemesis runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// No fault injection.
    #[default]
    None,
    /// SIGKILL one store process at a time, mid-operation.
    Kill,
    /// SIGKILL every store process and drop all that is not fsynced.
    PowerLoss,
}

impl Kind {
    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::None => "none",
            Kind::Kill => "kill",
            Kind::PowerLoss => "power-loss",
        }
    }

    /// Operations that must complete between two faults, per operation a fault
    /// makes `unknown` (drawn uniformly). The schedule counts completed
    /// operations, not milliseconds, so that a slow store (or a loaded machine)
    /// still makes progress between crashes; and it keeps unknown outcomes near
    /// 3% of each kind of operation, well below the share at which a run can no
    /// longer pass (an unknown write can explain a loss away).
    const GAP_OPS: (u64, u64) = (30, 60);
}

/// One injected fault.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Seconds since the workload started.
    pub at_s: f64,
    /// When, on the run's monotonic clock (nanoseconds).
    #[serde(skip)]
    pub at_ns: u64,
    /// Store processes killed.
    pub killed: usize,
    /// For a power loss: files whose unsynced data was dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_reverted: Option<usize>,
    /// For a power loss: directories whose unsynced entries were dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dirs_reverted: Option<usize>,
    /// The crash after the workload ended (before the final read-back).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub final_crash: bool,
}

/// What the nemesis did, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `kill` or `power-loss`.
    pub nemesis: String,
    /// Every fault, in order.
    pub events: Vec<Event>,
    /// Store processes killed in all.
    pub killed: usize,
    /// Moments at which no store process was running (nothing to kill).
    pub idle: usize,
    /// Reads excused because they saw a write that a power cut then took back
    /// before it was acknowledged.
    pub excused_reads: usize,
    /// fsyncs of files and of directories the store made (power loss only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsyncs: Option<(u64, u64)>,
}

impl Summary {
    /// One line for the text report.
    #[must_use]
    pub fn line(&self) -> String {
        let crashes = self.events.len();
        let what = if self.nemesis == "kill" {
            "kill(s)"
        } else {
            "power loss(es)"
        };
        let times: Vec<String> = self
            .events
            .iter()
            .take(12)
            .map(|e| format!("{:.2}s{}", e.at_s, if e.final_crash { "*" } else { "" }))
            .collect();
        let mut s = format!(
            "nemesis {}: {crashes} {what}, {} store process(es) killed",
            self.nemesis, self.killed
        );
        if self.nemesis == "power-loss" {
            let files: usize = self.events.iter().filter_map(|e| e.files_reverted).sum();
            let dirs: usize = self.events.iter().filter_map(|e| e.dirs_reverted).sum();
            s.push_str(&format!(
                "; dropped unsynced data of {files} file(s), unsynced entries of {dirs} director(ies)"
            ));
            if let Some((f, d)) = self.fsyncs {
                s.push_str(&format!("; store made {f} file and {d} directory fsyncs"));
            }
            if self.excused_reads > 0 {
                s.push_str(&format!(
                    "; {} read(s) of never-acknowledged data excused",
                    self.excused_reads
                ));
            }
        } else if self.idle > 0 {
            s.push_str(&format!("; {} moment(s) found no store process", self.idle));
        }
        if !times.is_empty() {
            s.push_str(&format!(
                "\n    at {}{}{}",
                times.join(" "),
                if crashes > times.len() { " ..." } else { "" },
                if self.events.iter().any(|e| e.final_crash) {
                    " (* after the workload)"
                } else {
                    ""
                }
            ));
        }
        s
    }
}

/// The nemesis of one run: its schedule, its mount, its record.
#[derive(Debug)]
pub struct Nemesis {
    kind: Kind,
    rng: Rng,
    epoch_ns: u64,
    /// The fault is due once this many operations have completed.
    next: Option<usize>,
    fs: Option<faultfs::FaultFs>,
    events: Vec<Event>,
    idle: usize,
}

impl Nemesis {
    /// Prepare `kind` for a run seeded with `seed`. For `power-loss`, mount faultfs
    /// over `store_dir` (the directory the store lives in; it should be empty).
    ///
    /// # Errors
    /// A setup error if faultfs cannot be mounted (no `/dev/fuse`, not root and
    /// no `fusermount3`).
    pub fn start(kind: Kind, seed: u64, store_dir: &Path) -> Result<Self> {
        let fs = if kind == Kind::PowerLoss {
            Some(faultfs::FaultFs::mount(store_dir).map_err(|e| {
                Error::setup(format!(
                    "--nemesis power-loss needs a FUSE mount over the store directory: {e}"
                ))
            })?)
        } else {
            None
        };
        if let (Some(fs), Ok(mut m)) = (&fs, MOUNTED.lock()) {
            *m = Some(fs.path().to_owned());
        }
        Ok(Nemesis {
            kind,
            rng: Rng::for_worker(seed, 0x006e_656d_6573_6973),
            epoch_ns: 0,
            next: None,
            fs,
            events: Vec::new(),
            idle: 0,
        })
    }

    /// The workload starts at `epoch_ns`; the first fault comes once a random
    /// number of operations have completed.
    pub fn begin(&mut self, epoch_ns: u64) {
        if self.kind == Kind::None {
            return;
        }
        self.epoch_ns = epoch_ns;
        self.next = Some(self.gap(1));
    }

    /// The next gap, for a fault that makes up to `victims` operations unknown.
    fn gap(&mut self, victims: usize) -> usize {
        let (lo, hi) = Kind::GAP_OPS;
        let per = usize::try_from(lo + self.rng.up_to(hi - lo)).unwrap_or(usize::MAX);
        per.saturating_mul(victims.max(1))
    }

    /// Inject a fault if one is due. `groups` are the live workers' process
    /// groups (each worker leads its own); `completed` counts the operations that
    /// have completed with a definite outcome so far.
    ///
    /// # Errors
    /// A setup error if the power cannot be cut (the mount stays busy).
    pub fn tick(&mut self, groups: &[i32], completed: usize) -> Result<()> {
        let Some(next) = self.next else {
            return Ok(());
        };
        if completed < next || groups.is_empty() {
            return Ok(());
        }
        // Each store process killed leaves one operation unknown.
        let victims = match self.kind {
            Kind::None => 0,
            Kind::Kill => usize::from(self.kill_one(groups)),
            Kind::PowerLoss => self.power_loss(groups, false)?,
        };
        self.next = Some(completed + self.gap(victims));
        Ok(())
    }

    /// The workload is over (every worker has stopped or been killed): for
    /// power loss, cut the power one last time so the final read-back sees only
    /// what was durable.
    ///
    /// # Errors
    /// As [`Nemesis::tick`].
    pub fn end(&mut self) -> Result<()> {
        self.next = None;
        if self.kind == Kind::PowerLoss {
            self.power_loss(&[], true)?;
        }
        Ok(())
    }

    /// Kill one store process of a random worker; whether there was one.
    fn kill_one(&mut self, groups: &[i32]) -> bool {
        let g = groups[self.rng.up_to(groups.len() as u64 - 1) as usize];
        let _ = killpg(Pid::from_raw(g), Signal::SIGSTOP);
        let victims = procs::members(&[g]);
        let found = !victims.is_empty();
        if victims.is_empty() {
            self.idle += 1;
        } else {
            let v = victims[self.rng.up_to(victims.len() as u64 - 1) as usize];
            let _ = kill(Pid::from_raw(v), Signal::SIGKILL);
            let at_ns = now_ns();
            self.events.push(Event {
                at_s: at_ns.saturating_sub(self.epoch_ns) as f64 / 1e9,
                at_ns,
                killed: 1,
                files_reverted: None,
                dirs_reverted: None,
                final_crash: false,
            });
        }
        let _ = killpg(Pid::from_raw(g), Signal::SIGCONT);
        found
    }

    /// Cut the power; returns how many store processes were killed.
    fn power_loss(&mut self, groups: &[i32], final_crash: bool) -> Result<usize> {
        for &g in groups {
            let _ = killpg(Pid::from_raw(g), Signal::SIGSTOP);
        }
        let victims = procs::members(groups);
        for &v in &victims {
            let _ = kill(Pid::from_raw(v), Signal::SIGKILL);
        }
        let at_ns = now_ns();
        procs::wait_gone(&victims, Duration::from_secs(5));
        let result = match self.fs.as_mut() {
            Some(fs) => fs.power_loss(),
            None => Ok(faultfs::Loss::default()),
        };
        for &g in groups {
            let _ = killpg(Pid::from_raw(g), Signal::SIGCONT);
        }
        let loss = result.map_err(|e| {
            Error::setup(format!(
                "power loss at {:.2}s: {e} (a store process outside its worker's process \
                 group may still use the store directory)",
                at_ns.saturating_sub(self.epoch_ns) as f64 / 1e9
            ))
        })?;
        self.events.push(Event {
            at_s: at_ns.saturating_sub(self.epoch_ns) as f64 / 1e9,
            at_ns,
            killed: victims.len(),
            files_reverted: Some(loss.files_reverted),
            dirs_reverted: Some(loss.dirs_reverted),
            final_crash,
        });
        Ok(victims.len())
    }

    /// Moments of the power cuts (empty for other nemeses).
    #[must_use]
    pub fn crash_times(&self) -> Vec<u64> {
        if self.kind == Kind::PowerLoss {
            self.events.iter().map(|e| e.at_ns).collect()
        } else {
            Vec::new()
        }
    }

    /// Unmount (writing the store's final contents back into its directory, so a
    /// kept scratch directory shows them) and summarise.
    ///
    /// # Errors
    /// A setup error if faultfs cannot be unmounted.
    pub fn finish(mut self, excused_reads: usize) -> Result<Option<Summary>> {
        if self.kind == Kind::None {
            return Ok(None);
        }
        let fsyncs = self.fs.as_ref().map(|fs| {
            let s = fs.stats();
            (s.file_syncs, s.dir_syncs)
        });
        if let Some(fs) = self.fs.take() {
            if let Ok(mut m) = MOUNTED.lock() {
                *m = None;
            }
            fs.unmount()
                .map_err(|e| Error::setup(format!("after the run: {e}")))?;
        }
        Ok(Some(Summary {
            nemesis: self.kind.name().to_owned(),
            killed: self.events.iter().map(|e| e.killed).sum(),
            events: self.events,
            idle: self.idle,
            excused_reads,
            fsyncs,
        }))
    }

    /// The mount point, while mounted.
    #[must_use]
    pub fn mount(&self) -> Option<PathBuf> {
        self.fs.as_ref().map(|fs| fs.path().to_owned())
    }
}

/// Turn into `unknown` every read that completed before a power cut and returned
/// a value whose write was in flight at that cut (it never completed): the value
/// was never acknowledged, so the cut may take it back. Returns how many reads
/// were excused. See the module docs.
pub fn excuse_reads_of_lost_inflight_writes(history: &mut [Record], crashes: &[u64]) -> usize {
    if crashes.is_empty() {
        return 0;
    }
    // Values of writes that never completed, with the first crash after their
    // invocation (the one that killed them).
    let mut inflight: std::collections::HashMap<(String, String), u64> =
        std::collections::HashMap::new();
    for r in history.iter() {
        if r.op == Op::Set
            && r.outcome == Outcome::Unknown
            && let (Some(k), Some(v)) = (&r.key, &r.value)
            && let Some(&crash) = crashes.iter().find(|&&c| c >= r.invoke_ns)
        {
            inflight.insert((k.clone(), v.clone()), crash);
        }
    }
    let mut excused = 0;
    for r in history.iter_mut() {
        if r.op != Op::Get || r.outcome != Outcome::Ok {
            continue;
        }
        let (Some(k), Some(v), Some(done)) = (&r.key, &r.value, r.complete_ns) else {
            continue;
        };
        if let Some(&crash) = inflight.get(&(k.clone(), v.clone()))
            && done <= crash
        {
            r.outcome = Outcome::Unknown;
            r.complete_ns = None;
            r.value = None;
            r.error = Some("read a write still in flight at a power loss (not judged)".into());
            excused += 1;
        }
    }
    excused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        process: u64,
        op: Op,
        v: Option<&str>,
        outcome: Outcome,
        t: (u64, Option<u64>),
    ) -> Record {
        Record {
            process,
            op,
            key: Some("k".into()),
            value: v.map(str::to_owned),
            keys: None,
            outcome,
            invoke_ns: t.0,
            complete_ns: t.1,
            error: None,
            detail: None,
        }
    }

    #[test]
    fn a_read_of_a_write_killed_by_a_power_loss_is_excused_only_before_that_crash() {
        let mut h = vec![
            rec(1, Op::Set, Some("v1"), Outcome::Unknown, (10, None)),
            rec(2, Op::Get, Some("v1"), Outcome::Ok, (20, Some(30))),
            rec(3, Op::Get, Some("v1"), Outcome::Ok, (60, Some(70))),
        ];
        assert_eq!(excuse_reads_of_lost_inflight_writes(&mut h, &[50]), 1);
        assert_eq!(h[1].outcome, Outcome::Unknown);
        assert_eq!(
            h[2].outcome,
            Outcome::Ok,
            "a read after the crash is still judged"
        );
    }

    #[test]
    fn reads_of_acknowledged_writes_are_never_excused() {
        let mut h = vec![
            rec(1, Op::Set, Some("v1"), Outcome::Ok, (10, Some(15))),
            rec(2, Op::Get, Some("v1"), Outcome::Ok, (20, Some(30))),
        ];
        assert_eq!(excuse_reads_of_lost_inflight_writes(&mut h, &[50]), 0);
        assert_eq!(excuse_reads_of_lost_inflight_writes(&mut h, &[]), 0);
        assert_eq!(h[1].outcome, Outcome::Ok);
    }
}
