//! loom: every interleaving of up to four processes running the production
//! protocol engine on the inode-level model file system.
//!
//! ```text
//! cargo test -p clobber-store --release --features loom --test loom_protocol \
//!     -- --nocapture --test-threads=1
//! ```
//!
//! Each test prints one line per model: processes, preemption bound, iterations
//! explored and wall time. Models without a bound are exhaustive. The environment
//! variables of loom apply (`LOOM_MAX_PREEMPTIONS` bounds *every* model, including
//! the exhaustive ones; `LOOM_LOG=1` logs each step of a failing execution), and
//! `CLOBBER_LOOM_EXHAUSTIVE=1` drops the bounds written here (the 4-process model
//! then takes far longer than CI allows).
//!
//! The second half of the file runs each faulty protocol and asserts that loom
//! *finds* its violation, printing the interleaving: a model that cannot fail
//! proves nothing.
#![cfg(feature = "loom")]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clobber_store::model::{Model, Run, Scenario};
use clobber_store::{Protocol, Step};

/// The preemption bound of the four-process model when `LOOM_MAX_PREEMPTIONS` is
/// not set (four processes are too many to explore exhaustively in CI).
const FOUR_PROCESS_BOUND: usize = 2;

/// The preemption bound of three processes that also race to create the lock file
/// (exhaustive exploration of that takes minutes; see `store/MODELS.md`).
const THREE_FRESH_PROCESS_BOUND: usize = 3;

/// How many executions took each path; plain std atomics, outside the model.
#[derive(Default)]
struct Tally {
    crashed: AtomicUsize,
    reused: AtomicUsize,
    retried: AtomicUsize,
    timed_out: AtomicUsize,
    power_loss_states: AtomicUsize,
}

impl Tally {
    fn add(&self, run: Run) {
        for (flag, counter) in [
            (run.crashed, &self.crashed),
            (run.reused, &self.reused),
            (run.retried, &self.retried),
            (run.timed_out, &self.timed_out),
        ] {
            counter.fetch_add(usize::from(flag), Ordering::Relaxed);
        }
        self.power_loss_states.fetch_add(
            usize::try_from(run.power_loss_states).unwrap_or(usize::MAX),
            Ordering::Relaxed,
        );
    }
}

/// The preemption bound of two writers racing a process that removes the lock
/// file (they race to create a new one, as in the fresh-lock-file model).
const LOCK_FILE_REMOVED_BOUND: usize = 2;

struct Explored {
    iterations: usize,
    /// Executions in which the crashing process really died.
    crashes: usize,
    /// Executions in which a process reused the map it wrote last.
    reused: usize,
    /// Executions in which a process retried after a lock-identity mismatch.
    retried: usize,
    /// Executions in which a process's lock wait timed out.
    timed_out: usize,
    failure: Option<String>,
}

/// Explore `model` with loom (exhaustively unless `bound` or `LOOM_MAX_PREEMPTIONS`
/// sets a preemption bound) and print the measurements.
fn explore(model: Model, bound: Option<usize>) -> Explored {
    let mut builder = loom::model::Builder::new();
    let exhaustive = std::env::var_os("CLOBBER_LOOM_EXHAUSTIVE").is_some();
    if builder.preemption_bound.is_none() && !exhaustive {
        builder.preemption_bound = bound;
    }
    let bound = builder
        .preemption_bound
        .map_or_else(|| "none (exhaustive)".to_owned(), |b| b.to_string());
    // Plain std atomics, outside the model: bookkeeping that loom must not see.
    let count = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Tally::default());
    let (counter, tallied) = (Arc::clone(&count), Arc::clone(&tally));
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| {
        builder.check(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            tallied.add(model.run());
        });
    }));
    let seconds = start.elapsed().as_secs_f64();
    let iterations = count.load(Ordering::Relaxed);
    let failure = result.err().map(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "<non-string panic>".to_owned())
    });
    eprintln!(
        "MODEL loom {:<44} processes={} bound={bound} iterations={iterations} power-loss-states={} time={seconds:.2}s result={}",
        model.name(),
        model.scenario.processes(),
        tally.power_loss_states.load(Ordering::Relaxed),
        if failure.is_some() {
            "VIOLATION"
        } else {
            "pass"
        },
    );
    Explored {
        iterations,
        crashes: tally.crashed.load(Ordering::Relaxed),
        reused: tally.reused.load(Ordering::Relaxed),
        retried: tally.retried.load(Ordering::Relaxed),
        timed_out: tally.timed_out.load(Ordering::Relaxed),
        failure,
    }
}

/// The correct protocol must pass `model` in every interleaving explored.
fn holds(model: Model, bound: Option<usize>) -> Explored {
    assert_eq!(model.protocol, Protocol::Correct);
    let explored = explore(model, bound);
    if let Some(failure) = &explored.failure {
        panic!("the correct protocol failed a model:\n{failure}");
    }
    assert!(explored.iterations > 0, "loom explored nothing");
    explored
}

fn correct(scenario: Scenario) -> Model {
    Model::new(scenario, Protocol::Correct)
}

/// loom must find a violation of `scenario` under the faulty `protocol`, and the
/// violation must be a broken property (not a crash of the model itself).
fn found(scenario: Scenario, protocol: Protocol) {
    assert!(protocol.is_faulty());
    let model = Model::new(scenario, protocol);
    let explored = explore(model, None);
    assert!(explored.iterations > 0, "loom explored nothing");
    let failure = explored.failure.unwrap_or_else(|| {
        panic!(
            "loom did not find the {protocol} fault with {}",
            model.name()
        )
    });
    assert!(
        failure.starts_with("model violation in"),
        "the model failed for another reason than a broken property:\n{failure}"
    );
    // The panic message, with the interleaving, was printed where it was raised.
    let first = failure.lines().nth(1).unwrap_or_default().trim();
    eprintln!(
        "loom found the {protocol} fault after {} iterations: {first}",
        explored.iterations
    );
}

// ---- the correct protocol holds ------------------------------------------------

#[test]
fn two_processes_setting_distinct_keys_never_lose_a_write() {
    holds(correct(Scenario::DistinctSets { processes: 2 }), None);
}

#[test]
fn three_processes_setting_distinct_keys_never_lose_a_write() {
    holds(correct(Scenario::DistinctSets { processes: 3 }), None);
}

#[test]
fn processes_racing_to_create_the_lock_file_never_lose_a_write() {
    let fresh = |processes| correct(Scenario::DistinctSets { processes }).without_lock_file();
    holds(fresh(2), None);
    holds(fresh(3), Some(THREE_FRESH_PROCESS_BOUND));
}

#[test]
fn four_processes_setting_distinct_keys_never_lose_a_write_within_the_preemption_bound() {
    holds(
        correct(Scenario::DistinctSets { processes: 4 }),
        Some(FOUR_PROCESS_BOUND),
    );
}

#[test]
fn set_racing_a_delete_of_another_key_loses_nothing_unrelated() {
    for (setters, deleters) in [(1, 1), (2, 1), (1, 2)] {
        holds(correct(Scenario::SetVsDelete { setters, deleters }), None);
    }
}

#[test]
fn set_racing_clear_loses_nothing_that_clear_did_not_remove() {
    for setters in [1, 2] {
        holds(correct(Scenario::SetVsClear { setters }), None);
    }
}

#[test]
fn lock_free_reader_sees_the_old_or_the_new_map_never_a_torn_one() {
    for writers in [1, 2] {
        holds(
            correct(Scenario::ReaderDuringWrites { writers, reads: 2 }),
            None,
        );
    }
}

#[test]
fn process_dying_at_any_step_releases_the_lock_and_keeps_every_acknowledged_write() {
    // The correct protocol passes every step but these two (they belong to
    // stale-snapshot and in-place); at the others the process must really die.
    let not_on_path = [Step::Snapshot, Step::MidWrite];
    for step in Step::ALL {
        for writers in [1, 2] {
            let explored = holds(correct(Scenario::CrashAt { step, writers }), None);
            if not_on_path.contains(&step) {
                assert_eq!(explored.crashes, 0, "the correct protocol passed {step:?}");
            } else {
                assert_eq!(
                    explored.crashes, explored.iterations,
                    "p0 did not die at {step:?} in every execution"
                );
            }
        }
    }
}

#[test]
fn long_lived_processes_reuse_their_map_and_never_lose_a_write() {
    // Two processes, two sets each: the map-reuse path (the file still holds what
    // this process wrote) and the decode path (another write came between) both run.
    let explored = holds(
        correct(Scenario::RepeatedSets {
            processes: 2,
            sets_each: 2,
        }),
        None,
    );
    assert!(explored.reused > 0, "no execution reused a map");
    assert!(
        explored.reused < explored.iterations,
        "every execution reused"
    );
}

#[test]
fn a_writer_holding_a_removed_lock_file_locks_again_and_loses_nothing() {
    // One writer, exhaustively: it may lock the removed inode and must retry. Two
    // writers, within the bound: the retry must also keep them apart.
    let one = holds(correct(Scenario::LockFileRemoved { writers: 1 }), None);
    assert!(one.retried > 0, "no execution took the lock-identity retry");
    let two = holds(
        correct(Scenario::LockFileRemoved { writers: 2 }),
        Some(LOCK_FILE_REMOVED_BOUND),
    );
    assert!(two.retried > 0, "no execution took the lock-identity retry");
}

#[test]
fn a_writer_that_times_out_on_the_lock_writes_nothing_and_loses_nothing() {
    let explored = holds(correct(Scenario::Impatient { writers: 3 }), None);
    assert!(explored.timed_out > 0, "no execution timed out");
    assert!(
        explored.timed_out < explored.iterations,
        "every execution timed out"
    );
}

// ---- every faulty protocol is found ----------------------------------------------

/// The model that exposes each fault. The match has no wildcard: a new protocol
/// does not compile until it has a model that finds it.
fn exposing(protocol: Protocol) -> Scenario {
    match protocol {
        // Both open (snapshot) before either writes: the later write erases the other.
        Protocol::StaleSnapshot | Protocol::NoLock => Scenario::DistinctSets { processes: 2 },
        // A lock-free reader catches the half-written file.
        Protocol::InPlace => Scenario::ReaderDuringWrites {
            writers: 1,
            reads: 1,
        },
        // Needs a third process: one waits on the old lock inode while another
        // locks the new one (unlink-lock) or the renamed-in data inode.
        Protocol::UnlinkLock | Protocol::UnlinkLockPolling | Protocol::LockDataFile => {
            Scenario::DistinctSets { processes: 3 }
        }
        // Lose writes only on a power loss, which the model judges after every
        // operation: one writer is enough, a second shows it under concurrency.
        Protocol::NoFsync | Protocol::NoDirFsync => Scenario::DistinctSets { processes: 2 },
        Protocol::Correct => unreachable!("the correct protocol has no fault to expose"),
    }
}

#[test]
fn loom_finds_stale_snapshot_erasing_a_concurrent_write() {
    found(exposing(Protocol::StaleSnapshot), Protocol::StaleSnapshot);
}

#[test]
fn loom_finds_no_lock_losing_an_update() {
    found(exposing(Protocol::NoLock), Protocol::NoLock);
}

#[test]
fn loom_finds_in_place_showing_a_torn_file_to_a_reader() {
    found(exposing(Protocol::InPlace), Protocol::InPlace);
}

#[test]
fn loom_finds_in_place_corrupting_the_store_when_a_writer_dies_mid_write() {
    found(
        Scenario::CrashAt {
            step: Step::MidWrite,
            writers: 1,
        },
        Protocol::InPlace,
    );
}

#[test]
fn loom_finds_unlink_lock_letting_two_processes_hold_the_lock() {
    found(exposing(Protocol::UnlinkLock), Protocol::UnlinkLock);
}

#[test]
fn loom_finds_lock_data_file_letting_two_writers_in_after_a_rename() {
    found(exposing(Protocol::LockDataFile), Protocol::LockDataFile);
}

#[test]
fn loom_finds_unlink_lock_polling_letting_two_processes_hold_the_lock() {
    found(
        exposing(Protocol::UnlinkLockPolling),
        Protocol::UnlinkLockPolling,
    );
}

#[test]
fn loom_finds_no_fsync_leaving_an_unreadable_store_after_a_power_loss() {
    found(exposing(Protocol::NoFsync), Protocol::NoFsync);
}

#[test]
fn loom_finds_no_dir_fsync_losing_an_acknowledged_write_after_a_power_loss() {
    found(exposing(Protocol::NoDirFsync), Protocol::NoDirFsync);
}
