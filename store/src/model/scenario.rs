//! The models: what each process does, and what must hold once they are done.
//!
//! Each process is a thread from [`crate::sync::thread`] with its own
//! [`Engine`] (the production protocol engine, unchanged) over its own
//! [`ModelFs`] handle and the plain codec. The main thread starts them, joins
//! them, and judges the outcome; a broken property becomes a [`Violation`] that
//! names every problem and prints the interleaving that produced it.
//!
//! Every check is exact, which the workloads make possible: writers set distinct
//! fresh keys, deleters delete distinct keys that exist, and `clear` is judged by
//! its return value (it must have removed exactly what it did not leave behind).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{ErrorKind, Result};
use crate::model::fs::{ModelFs, describe};
use crate::protocol::{Codec, Engine, Fs, Paths, PlainCodec, Protocol, Step};
use crate::secrets::{self, Secrets};
use crate::sync::{thread, untracked};

/// The store's data file in every model.
pub const DATA: &str = "secrets";

/// Longer than any model runs: the engine's time-dependent timeout branch is never
/// taken inside a model.
const LOCK_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A workload: what the processes do concurrently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `processes` processes each `set` a distinct fresh key: every key must be
    /// present at the end, with its value, and nothing else may change.
    DistinctSets {
        /// Number of processes.
        processes: usize,
    },
    /// `setters` processes set fresh keys while `deleters` processes each delete a
    /// distinct existing key: the end state is exactly "old keys minus the deleted
    /// ones, plus the set ones", and every delete found its key.
    SetVsDelete {
        /// Processes that set a fresh key.
        setters: usize,
        /// Processes that delete an existing key.
        deleters: usize,
    },
    /// `setters` processes set fresh keys while one process clears the store: no
    /// old key survives, and `clear` reports exactly the old keys plus the set keys
    /// missing at the end (those it removed), so no write vanishes unexplained.
    SetVsClear {
        /// Processes that set a fresh key.
        setters: usize,
    },
    /// `writers` processes set fresh keys while one process reads the store
    /// `reads` times without the lock: every read decodes, and shows the old map
    /// plus some of the written keys (never a torn file), growing from read to read.
    ReaderDuringWrites {
        /// Processes that set a fresh key.
        writers: usize,
        /// Lock-free reads by the reader.
        reads: usize,
    },
    /// Process `p0` sets a key and dies at `step`; `writers` other processes set
    /// their own keys. Afterwards no lock is held, the file decodes to the old or
    /// the new version (`p0`'s key present or not), every acknowledged write is
    /// there, and a later process can still write.
    CrashAt {
        /// Where `p0` dies (if its protocol passes there).
        step: Step,
        /// Processes that set a fresh key and do not die.
        writers: usize,
    },
    /// `processes` long-lived processes each set `sets_each` fresh keys in turn
    /// through one engine: a process whose last write is still the file reuses the
    /// map it wrote instead of decoding again (the map-reuse path), and one whose
    /// write was replaced decodes afresh. Every key must be there at the end.
    RepeatedSets {
        /// Number of processes.
        processes: usize,
        /// Sets per process.
        sets_each: usize,
    },
    /// `p0`, another program, locks the lock file, unlinks it and releases it
    /// (unlinking *while holding* the lock, the safe way to remove a lock file);
    /// `writers` processes set fresh keys. A writer that locked the old inode after
    /// the unlink must notice that the name has moved on (the lock-identity retry),
    /// or it would share "the lock" with a writer that created the new one.
    LockFileRemoved {
        /// Processes that set a fresh key.
        writers: usize,
    },
    /// `writers` processes set fresh keys with a zero lock wait: each either gets
    /// the lock at once or fails with a lock timeout, which is a definite failure:
    /// its key must not appear, and every acknowledged key must.
    Impatient {
        /// Processes that set a fresh key.
        writers: usize,
    },
}

/// One process's part.
#[derive(Debug, Clone)]
enum Op {
    Set { key: String, value: String },
    Delete { key: String },
    Clear,
    Read { times: usize },
    RemoveLockFile,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Set { key, value } => write!(f, "set {key}={value}"),
            Op::Delete { key } => write!(f, "delete {key}"),
            Op::Clear => f.write_str("clear"),
            Op::Read { times } => write!(f, "read ×{times}"),
            Op::RemoveLockFile => f.write_str("lock, unlink and release the lock file"),
        }
    }
}

/// What a process's operation returned.
#[derive(Debug)]
enum Outcome {
    Set(Result<()>),
    Delete(Result<bool>),
    Clear(Result<usize>),
    Read(Vec<Result<Secrets>>),
    RemovedLockFile(Result<()>),
    /// Not performed: the process died before.
    NotRun,
}

/// A model: a workload run on a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    /// What the processes do.
    pub scenario: Scenario,
    /// Which protocol every process runs.
    pub protocol: Protocol,
    /// Whether the lock file exists at the start, as it does once a store has been
    /// written. Without it the processes also race to create it, which multiplies
    /// the interleavings (see `store/MODELS.md` for the numbers).
    pub lock_file_exists: bool,
}

/// What a passing execution did (for the tests' bookkeeping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The crashing process really died (its protocol passed its crash step).
    pub crashed: bool,
    /// Some process reused the map it had written instead of decoding the file.
    pub reused: bool,
    /// Some process found its locked inode no longer named and locked again.
    pub retried: bool,
    /// Some process gave up on a busy lock (a lock timeout).
    pub timed_out: bool,
    /// Power-loss states judged in this execution (0 if the check is off).
    pub power_loss_states: u64,
}

/// A broken property, with the interleaving that broke it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The model's name ([`Model::name`]).
    pub model: String,
    /// Each problem found, one line each.
    pub problems: Vec<String>,
    /// The file-system operations of the failing execution, in order.
    pub trace: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "model violation in {}:", self.model)?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        writeln!(f, "interleaving (file-system operations, in order):")?;
        f.write_str(&self.trace)
    }
}

impl std::error::Error for Violation {}

fn key(p: usize) -> String {
    format!("k{p}")
}

fn value(p: usize) -> String {
    format!("v{p}")
}

fn old_key(i: usize) -> String {
    format!("old{i}")
}

const OLD_VALUE: &str = "old";

impl Scenario {
    /// How many processes (threads besides the main one) the scenario starts.
    #[must_use]
    pub fn processes(self) -> usize {
        match self {
            Scenario::DistinctSets { processes } => processes,
            Scenario::SetVsDelete { setters, deleters } => setters + deleters,
            Scenario::SetVsClear { setters } => setters + 1,
            Scenario::ReaderDuringWrites { writers, .. }
            | Scenario::CrashAt { writers, .. }
            | Scenario::LockFileRemoved { writers } => writers + 1,
            Scenario::RepeatedSets { processes, .. } => processes,
            Scenario::Impatient { writers } => writers,
        }
    }

    /// Whether a power loss is judged after every operation. Only where every
    /// write is a set of a fresh key, so that "every acknowledged write survives"
    /// is exact (under delete and clear a later operation may rightly remove it).
    #[must_use]
    pub fn checks_power_loss(self) -> bool {
        !matches!(
            self,
            Scenario::SetVsDelete { .. } | Scenario::SetVsClear { .. }
        )
    }

    /// The lock wait of every process: zero for [`Scenario::Impatient`] (a busy
    /// lock is a timeout), otherwise longer than any model runs.
    fn lock_wait(self) -> Duration {
        if matches!(self, Scenario::Impatient { .. }) {
            Duration::ZERO
        } else {
            LOCK_WAIT
        }
    }

    /// Number of keys in the store before the processes start.
    fn old_keys(self) -> usize {
        match self {
            Scenario::SetVsDelete { deleters, .. } => deleters.max(1),
            _ => 1,
        }
    }

    /// What each process does, in order.
    fn scripts(self) -> Vec<Vec<Op>> {
        match self {
            Scenario::RepeatedSets {
                processes,
                sets_each,
            } => (0..processes)
                .map(|p| {
                    (0..sets_each)
                        .map(|i| Op::Set {
                            key: format!("k{p}_{i}"),
                            value: format!("v{p}_{i}"),
                        })
                        .collect()
                })
                .collect(),
            _ => self.ops().into_iter().map(|op| vec![op]).collect(),
        }
    }

    /// One operation per process (every scenario but [`Scenario::RepeatedSets`]).
    fn ops(self) -> Vec<Op> {
        let set = |p: usize| Op::Set {
            key: key(p),
            value: value(p),
        };
        match self {
            Scenario::RepeatedSets { .. } => unreachable!("has a script per process"),
            Scenario::LockFileRemoved { writers } => std::iter::once(Op::RemoveLockFile)
                .chain((1..=writers).map(set))
                .collect(),
            Scenario::Impatient { writers } => (0..writers).map(set).collect(),
            Scenario::DistinctSets { processes } => (0..processes).map(set).collect(),
            Scenario::SetVsDelete { setters, deleters } => (0..setters)
                .map(set)
                .chain((0..deleters).map(|i| Op::Delete { key: old_key(i) }))
                .collect(),
            Scenario::SetVsClear { setters } => (0..setters)
                .map(set)
                .chain(std::iter::once(Op::Clear))
                .collect(),
            Scenario::ReaderDuringWrites { writers, reads } => (0..writers)
                .map(set)
                .chain(std::iter::once(Op::Read { times: reads }))
                .collect(),
            Scenario::CrashAt { writers, .. } => (0..=writers).map(set).collect(),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Scenario::DistinctSets { processes } => write!(f, "distinct-sets[{processes}]"),
            Scenario::SetVsDelete { setters, deleters } => {
                write!(f, "set-vs-delete[{setters}+{deleters}]")
            }
            Scenario::SetVsClear { setters } => write!(f, "set-vs-clear[{setters}+1]"),
            Scenario::ReaderDuringWrites { writers, reads } => {
                write!(f, "reader-during-writes[{writers}+1, {reads} reads]")
            }
            Scenario::CrashAt { step, writers } => {
                write!(f, "crash-at-{}[1+{writers}]", step.name())
            }
            Scenario::RepeatedSets {
                processes,
                sets_each,
            } => write!(f, "repeated-sets[{processes}x{sets_each}]"),
            Scenario::LockFileRemoved { writers } => {
                write!(f, "lock-file-removed[1+{writers}]")
            }
            Scenario::Impatient { writers } => write!(f, "impatient[{writers}]"),
        }
    }
}

impl Model {
    /// A model of `scenario` on `protocol`, starting from a store that has been
    /// written before: the data file (one old secret) and the lock file exist.
    #[must_use]
    pub fn new(scenario: Scenario, protocol: Protocol) -> Self {
        Self {
            scenario,
            protocol,
            lock_file_exists: true,
        }
    }

    /// The same model, starting without a lock file: the processes race to create
    /// it.
    #[must_use]
    pub fn without_lock_file(mut self) -> Self {
        self.lock_file_exists = false;
        self
    }

    /// `scenario/protocol`, e.g. `distinct-sets[3]/correct`, with `+no-lock-file`
    /// when the processes must create the lock file.
    #[must_use]
    pub fn name(&self) -> String {
        let start = if self.lock_file_exists {
            ""
        } else {
            "+no-lock-file"
        };
        format!("{}{start}/{}", self.scenario, self.protocol)
    }

    /// Run one execution; panic with the [`Violation`] if a property is broken.
    /// This is the closure loom and shuttle explore.
    ///
    /// # Panics
    /// On a violation (that is how a model checker learns of it).
    pub fn run(&self) -> Run {
        match self.try_run() {
            Ok(run) => run,
            Err(v) => panic!("{v}"),
        }
    }

    /// Run one execution and judge it.
    ///
    /// # Errors
    /// The [`Violation`], if a property is broken.
    pub fn try_run(&self) -> std::result::Result<Run, Violation> {
        let data = Path::new(DATA);
        let fs = ModelFs::new(&Paths::for_data(DATA));
        let old: Secrets = (0..self.scenario.old_keys())
            .map(|i| (old_key(i), Zeroizing::new(OLD_VALUE.to_owned())))
            .collect();
        fs.install(data, secrets::encode(&old).to_vec())
            .expect("the data file is one of the model's names");
        if self.lock_file_exists {
            fs.install(&Paths::for_data(DATA).lock, Vec::new())
                .expect("the lock file is one of the model's names");
        }

        if self.scenario.checks_power_loss() {
            fs.check_power_loss(&old);
        }

        let scripts = self.scenario.scripts();
        let crash = match self.scenario {
            Scenario::CrashAt { step, .. } => Some(step),
            _ => None,
        };
        let decodes = untracked::Arc::new(untracked::AtomicU64::new(0));
        let handles: Vec<_> = scripts
            .iter()
            .enumerate()
            .map(|(p, script)| {
                let mut handle = fs.process(p);
                if p == 0
                    && let Some(step) = crash
                {
                    handle = handle.crashing_at(step);
                }
                let script = script.clone();
                let protocol = self.protocol;
                let wait = self.scenario.lock_wait();
                let codec = CountingCodec {
                    decodes: untracked::Arc::clone(&decodes),
                };
                thread::spawn(move || {
                    let engine = Engine::new(handle, codec, Paths::for_data(DATA), protocol, wait);
                    perform(engine, script)
                })
            })
            .collect();
        let mut ops = Vec::new();
        let mut owner = Vec::new();
        let mut outcomes = Vec::new();
        for (p, (h, script)) in handles.into_iter().zip(&scripts).enumerate() {
            let mut done = h
                .join()
                .expect("model processes return their errors, never panic")
                .into_iter();
            for op in script {
                ops.push(op.clone());
                owner.push(p);
                outcomes.push(done.next().unwrap_or(Outcome::NotRun));
            }
        }
        let locks_taken = fs.locks_taken();
        let decoded = decodes.load(untracked::Ordering::Relaxed);

        let mut problems = Vec::new();
        self.judge(&fs, &ops, &owner, &outcomes, &old, &mut problems);
        if problems.is_empty() {
            let crashed = matches!(
                outcomes.first(),
                Some(Outcome::Set(Err(e))) if matches!(e.kind(), ErrorKind::Crashed { .. })
            );
            let updates = outcomes
                .iter()
                .filter(|o| {
                    matches!(
                        o,
                        Outcome::Set(Ok(_)) | Outcome::Delete(Ok(_)) | Outcome::Clear(Ok(_))
                    )
                })
                .count() as u64;
            let timed_out = outcomes.iter().any(|o| {
                matches!(o, Outcome::Set(Err(e)) if matches!(e.kind(), ErrorKind::LockTimeout { .. }))
            });
            let cleaners = ops
                .iter()
                .filter(|op| matches!(op, Op::RemoveLockFile))
                .count() as u64;
            Ok(Run {
                crashed,
                // Every update of the correct protocol decodes the file, unless it
                // reuses the map it wrote last.
                reused: self.protocol == Protocol::Correct && decoded < updates,
                retried: !timed_out && !crashed && locks_taken > updates + cleaners,
                timed_out,
                power_loss_states: fs.power_loss_states(),
            })
        } else {
            Err(Violation {
                model: self.name(),
                problems,
                trace: fs.trace(),
            })
        }
    }

    fn judge(
        &self,
        fs: &ModelFs,
        ops: &[Op],
        owner: &[usize],
        outcomes: &[Outcome],
        old: &Secrets,
        problems: &mut Vec<String>,
    ) {
        let data = Path::new(DATA);
        let crashed = |p: usize, e: &crate::Error| {
            p == 0
                && matches!(self.scenario, Scenario::CrashAt { .. })
                && matches!(e.kind(), ErrorKind::Crashed { .. })
        };

        // 1. Every operation succeeded (the crashing process may have died).
        let mut acknowledged = BTreeSet::new();
        let mut timed_out = BTreeSet::new();
        let mut died = false;
        let mut cleared = None;
        for (i, (op, outcome)) in ops.iter().zip(outcomes).enumerate() {
            let p = owner[i];
            let failed = match outcome {
                Outcome::Set(Ok(())) => {
                    acknowledged.insert(i);
                    None
                }
                Outcome::NotRun | Outcome::RemovedLockFile(Ok(())) => None,
                Outcome::Set(Err(e))
                    if matches!(self.scenario, Scenario::Impatient { .. })
                        && matches!(e.kind(), ErrorKind::LockTimeout { .. }) =>
                {
                    timed_out.insert(i);
                    None
                }
                Outcome::Delete(Ok(true)) => None,
                Outcome::Delete(Ok(false)) => Some("found nothing to delete".to_owned()),
                Outcome::Clear(Ok(n)) => {
                    cleared = Some(*n);
                    None
                }
                Outcome::Set(Err(e)) if crashed(p, e) => {
                    died = true;
                    None
                }
                Outcome::Set(Err(e)) => Some(format!("failed: {e}")),
                Outcome::Delete(Err(e))
                | Outcome::Clear(Err(e))
                | Outcome::RemovedLockFile(Err(e)) => Some(format!("failed: {e}")),
                Outcome::Read(reads) => {
                    judge_reads(p, ops, reads, old, problems);
                    None
                }
            };
            if let Some(why) = failed {
                problems.push(format!("p{p}'s {op} {why}"));
            }
        }

        // 2. Every state a power loss may have left, after any operation, decodes
        //    and holds every write acknowledged by then.
        if let Some(problem) = fs.power_loss_violation() {
            problems.push(problem);
        }

        // 3. No lock outlives its process.
        for (ino, p) in fs.held_locks() {
            problems.push(format!(
                "the lock on ino {ino} is still held by p{p} after every process ended"
            ));
        }

        // 4. No temporary file is left behind, except by a process that died.
        for name in fs.names() {
            let n = name.to_string_lossy();
            if n.starts_with(&crate::fs::temp_prefix(DATA)) && !(died && n.contains("-p0-")) {
                problems.push(format!("temporary file {n} was left behind"));
            }
        }

        // 5. The final file decodes, and holds exactly what the operations explain.
        let Some(bytes) = fs.contents(data) else {
            problems.push(format!("the store file {DATA} is gone"));
            return;
        };
        let map = match secrets::decode(&bytes) {
            Ok(map) => map,
            Err(e) => {
                problems.push(format!(
                    "the final store file does not decode ({e}): {}",
                    describe(&bytes)
                ));
                return;
            }
        };
        let got = |k: &str| map.get(k).map(|v| v.as_str());
        for (i, op) in ops.iter().enumerate() {
            let p = owner[i];
            if let Op::Set { key, value } = op {
                if timed_out.contains(&i) && got(key).is_some() {
                    problems.push(format!(
                        "p{p}'s {op} timed out, a definite failure, but {key} is in the store"
                    ));
                }
                let lost = acknowledged.contains(&i) && got(key) != Some(value.as_str());
                // Under clear, a set ordered before the clear is rightly gone.
                let cleared_away = cleared.is_some() && got(key).is_none();
                if lost && !cleared_away {
                    problems.push(format!(
                        "lost write: p{p}'s {op} was acknowledged, but the final store has {key}={:?}",
                        got(key)
                    ));
                }
                if let Some(v) = got(key)
                    && v != value
                {
                    problems.push(format!("{key} has value {v:?}, written by nobody"));
                }
            }
        }
        let deleted: BTreeSet<&str> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Delete { key } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        for (k, v) in old {
            let should_remain = cleared.is_none() && !deleted.contains(k.as_str());
            match (should_remain, got(k)) {
                (true, Some(got)) if got == v.as_str() => {}
                (true, other) => problems.push(format!(
                    "unrelated key lost: {k} was {:?} and nobody touched it, but the final store has {other:?}",
                    v.as_str()
                )),
                (false, None) => {}
                (false, Some(_)) => problems.push(format!(
                    "{k} is still present although it was removed by an acknowledged operation"
                )),
            }
        }
        let known: BTreeSet<String> = old
            .keys()
            .cloned()
            .chain(ops.iter().filter_map(|op| match op {
                Op::Set { key, .. } => Some(key.clone()),
                _ => None,
            }))
            .collect();
        for k in map.keys() {
            if !known.contains(k) {
                problems.push(format!("{k} appeared in the store, written by nobody"));
            }
        }
        if let Some(n) = cleared {
            // clear removed the old keys and every set ordered before it, which
            // are exactly the set keys missing now.
            let sets_gone = ops
                .iter()
                .filter(|op| matches!(op, Op::Set { key, .. } if got(key).is_none()))
                .count();
            let explained = old.len() + sets_gone;
            if n != explained {
                problems.push(format!(
                    "clear removed {n} secrets, but {explained} are gone ({} old + {sets_gone} set): a write vanished that clear never saw",
                    old.len()
                ));
            }
        }

        // 6. A dead process does not stop the living: a later write gets through,
        //    and removes the dead writer's temporary file.
        if died && problems.is_empty() {
            let mut later = Engine::new(
                fs.process(ModelFs::SETUP),
                PlainCodec,
                Paths::for_data(DATA),
                self.protocol,
                LOCK_WAIT,
            );
            let after = later.open().and_then(|()| {
                later.update(|m| {
                    m.insert("after".to_owned(), Zeroizing::new("crash".to_owned()));
                    Ok(())
                })
            });
            if let Err(e) = after {
                problems.push(format!("a write after the crash failed: {e}"));
            }
            let debris: Vec<String> = fs
                .names()
                .iter()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&crate::fs::temp_prefix(DATA)))
                .collect();
            if self.protocol.removes_dead_writers_temp_files() && !debris.is_empty() {
                problems.push(format!(
                    "the write after the crash left the dead writer's temporary files behind: {}",
                    debris.join(", ")
                ));
            }
        }
    }
}

fn judge_reads(
    p: usize,
    ops: &[Op],
    reads: &[Result<Secrets>],
    old: &Secrets,
    problems: &mut Vec<String>,
) {
    let written: Vec<(&str, &str)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Set { key, value } => Some((key.as_str(), value.as_str())),
            _ => None,
        })
        .collect();
    let mut previous: Option<&Secrets> = None;
    for (i, read) in reads.iter().enumerate() {
        let n = i + 1;
        let map = match read {
            Ok(map) => map,
            Err(e) => {
                problems.push(format!("torn read: p{p}'s read {n} failed: {e}"));
                continue;
            }
        };
        let old_intact = old.iter().all(|(k, v)| map.get(k) == Some(v));
        let only_writes = map
            .iter()
            .all(|(k, v)| old.get(k) == Some(v) || written.contains(&(k.as_str(), v.as_str())));
        if !old_intact || !only_writes {
            problems.push(format!(
                "torn read: p{p}'s read {n} saw {}, which no sequence of the writes produces",
                describe(&secrets::encode(map))
            ));
        }
        if let Some(prev) = previous
            && let Some((k, _)) = prev.iter().find(|(k, _)| !map.contains_key(*k))
        {
            problems.push(format!(
                "p{p}'s read {n} no longer shows {k}, which read {i} showed: a write was undone"
            ));
        }
        previous = Some(map);
    }
}

/// The plain codec, counting decodes (shared by every process of a model): an
/// update that decodes nothing reused the map it wrote last.
struct CountingCodec {
    decodes: untracked::Arc<untracked::AtomicU64>,
}

impl Codec for CountingCodec {
    type Meta = ();

    fn decode(&mut self, bytes: &[u8]) -> Result<(Secrets, ())> {
        self.decodes.fetch_add(1, untracked::Ordering::Relaxed);
        PlainCodec.decode(bytes)
    }

    fn encode(&mut self, secrets: &Secrets, previous: Option<&()>) -> Result<Vec<u8>> {
        PlainCodec.encode(secrets, previous)
    }
}

/// One process: open the store (where `stale-snapshot` takes its snapshot), then
/// do its operations in turn through one engine, exactly as `Store`'s wrappers do.
/// A process that dies stops there.
fn perform(mut engine: Engine<ModelFs, CountingCodec>, script: Vec<Op>) -> Vec<Outcome> {
    if let Err(e) = engine.open() {
        // The first operation reports the failed open; the rest never run.
        let failed = match script.first() {
            Some(Op::Set { .. }) | None => Outcome::Set(Err(e)),
            Some(Op::Delete { .. }) => Outcome::Delete(Err(e)),
            Some(Op::Clear) => Outcome::Clear(Err(e)),
            Some(Op::Read { .. }) => Outcome::Read(vec![Err(e)]),
            Some(Op::RemoveLockFile) => Outcome::RemovedLockFile(Err(e)),
        };
        return vec![failed];
    }
    let mut outcomes = Vec::new();
    for op in script {
        let outcome = perform_one(&mut engine, op);
        let died = matches!(
            &outcome,
            Outcome::Set(Err(e)) | Outcome::Delete(Err(e)) | Outcome::Clear(Err(e))
                if matches!(e.kind(), ErrorKind::Crashed { .. })
        );
        outcomes.push(outcome);
        if died {
            break;
        }
    }
    outcomes
}

fn perform_one(engine: &mut Engine<ModelFs, CountingCodec>, op: Op) -> Outcome {
    match op {
        Op::Set { key, value } => {
            let result = engine.update(|map| {
                map.insert(key.clone(), Zeroizing::new(value.clone()));
                Ok(())
            });
            if result.is_ok() {
                engine.fs().acknowledge(&key, &value);
            }
            Outcome::Set(result)
        }
        Op::Delete { key } => Outcome::Delete(engine.update(|map| Ok(map.remove(&key).is_some()))),
        Op::Clear => Outcome::Clear(engine.update(|map| {
            let n = map.len();
            map.clear();
            Ok(n)
        })),
        Op::Read { times } => Outcome::Read((0..times).map(|_| engine.read()).collect()),
        Op::RemoveLockFile => {
            let fs = engine.fs();
            let lock_path = engine.paths().lock.clone();
            Outcome::RemovedLockFile(fs.lock(&lock_path, LOCK_WAIT).and_then(|lock| {
                fs.remove(&lock_path)?;
                fs.unlock(lock)
            }))
        }
    }
}

#[cfg(all(test, not(any(feature = "loom", feature = "shuttle"))))]
mod tests {
    //! On `std` threads the scenarios prove nothing about interleavings (that is
    //! loom's and shuttle's job), but they must pass on the correct protocol in
    //! whatever schedule the OS picks, and their checks must fire on a broken
    //! outcome.

    use super::*;

    fn every_scenario() -> Vec<Scenario> {
        let mut all = vec![
            Scenario::DistinctSets { processes: 4 },
            Scenario::SetVsDelete {
                setters: 2,
                deleters: 2,
            },
            Scenario::SetVsClear { setters: 3 },
            Scenario::ReaderDuringWrites {
                writers: 3,
                reads: 3,
            },
            Scenario::RepeatedSets {
                processes: 3,
                sets_each: 3,
            },
            Scenario::LockFileRemoved { writers: 3 },
            Scenario::Impatient { writers: 3 },
        ];
        all.extend(
            Step::ALL
                .into_iter()
                .map(|step| Scenario::CrashAt { step, writers: 2 }),
        );
        all
    }

    #[test]
    fn every_scenario_passes_on_the_correct_protocol_with_std_threads() {
        for scenario in every_scenario() {
            for model in [
                Model::new(scenario, Protocol::Correct),
                Model::new(scenario, Protocol::Correct).without_lock_file(),
            ] {
                if let Err(v) = model.try_run() {
                    panic!("{v}");
                }
            }
        }
    }

    #[test]
    fn a_lone_writer_reuses_the_map_it_wrote_and_power_loss_is_judged_at_every_step() {
        let run = Model::new(
            Scenario::RepeatedSets {
                processes: 1,
                sets_each: 3,
            },
            Protocol::Correct,
        )
        .try_run()
        .unwrap_or_else(|v| panic!("{v}"));
        assert!(run.reused, "the second and third sets must reuse the map");
        assert!(run.power_loss_states >= 3 * 4, "{run:?}");
    }

    /// One process, so the schedule is fixed: the durability faults need no race.
    fn power_loss_violation(protocol: Protocol) -> Violation {
        Model::new(Scenario::DistinctSets { processes: 1 }, protocol)
            .try_run()
            .expect_err("a power loss must expose the missing sync")
    }

    #[test]
    fn no_fsync_leaves_an_empty_store_after_a_power_loss() {
        let v = power_loss_violation(Protocol::NoFsync);
        let text = v.to_string();
        eprintln!("{text}");
        assert!(text.contains("power loss after step"), "{text}");
        assert!(text.contains("unsynced data lost"), "{text}");
        assert!(text.contains("does not decode"), "{text}");
    }

    #[test]
    fn no_dir_fsync_brings_back_the_old_store_after_a_power_loss() {
        let v = power_loss_violation(Protocol::NoDirFsync);
        let text = v.to_string();
        assert!(
            text.contains("with 0 of") && text.contains("acknowledged k0=v0 lost"),
            "{text}"
        );
        assert!(text.contains("p0: set k0=v0 acknowledged"), "{text}");
    }

    #[test]
    fn a_crash_mid_write_in_place_is_reported_with_its_interleaving() {
        // Deterministic: p0 dies with the store half written, whatever the schedule.
        let model = Model::new(
            Scenario::CrashAt {
                step: Step::MidWrite,
                writers: 1,
            },
            Protocol::InPlace,
        );
        let violation = model
            .try_run()
            .expect_err("a half-written store must be caught");
        let text = violation.to_string();
        assert!(
            text.starts_with("model violation in crash-at-mid-write[1+1]/in-place"),
            "{text}"
        );
        assert!(text.contains("p0: dies at step mid-write"), "{text}");
        assert!(!violation.problems.is_empty());
    }
}
