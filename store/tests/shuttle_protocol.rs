//! shuttle: the same models as `loom_protocol.rs`, with 8 to 32 processes, under
//! randomised schedulers (PCT, which finds bugs of small depth with a provable
//! probability, and uniform random).
//!
//! ```text
//! cargo test -p clobber-store --release --features shuttle --test shuttle_protocol \
//!     -- --nocapture --test-threads=1
//! ```
//!
//! `CLOBBER_SHUTTLE_ITERATIONS` sets the schedules tried per model on the correct
//! protocol (default [`DEFAULT_ITERATIONS`]; a faulty protocol gets up to
//! [`FAULT_ITERATIONS`], and stops at the first violation);
//! `CLOBBER_SHUTTLE_DEPTH` the PCT bug depth (default [`DEFAULT_DEPTH`]);
//! `CLOBBER_SHUTTLE_SEED` the seed of every scheduler (default: from the clock).
//! Every model prints its seed; a failure also prints shuttle's schedule, which
//! `shuttle::replay(|| model.run(), "<schedule>")` runs again step for step.
#![cfg(feature = "shuttle")]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use shuttle::scheduler::{PctScheduler, RandomScheduler};
use shuttle::{Config, Runner};

use clobber_store::model::{Model, Run, Scenario};
use clobber_store::{Protocol, Step};

/// Schedules tried per model unless `CLOBBER_SHUTTLE_ITERATIONS` says otherwise.
const DEFAULT_ITERATIONS: usize = 1000;
/// At most this many schedules to find a faulty protocol's violation.
const FAULT_ITERATIONS: usize = 20_000;
/// PCT bug depth unless `CLOBBER_SHUTTLE_DEPTH` says otherwise.
const DEFAULT_DEPTH: usize = 3;

/// The seed of every scheduler in this run: `CLOBBER_SHUTTLE_SEED`, or the clock.
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        std::env::var("CLOBBER_SHUTTLE_SEED").map_or_else(
            |_| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            },
            |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("CLOBBER_SHUTTLE_SEED must be a number, not {v:?}"))
            },
        )
    })
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

#[derive(Debug, Clone, Copy)]
enum Scheduler {
    Pct,
    Random,
}

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

struct Explored {
    iterations: usize,
    crashes: usize,
    /// Executions in which a process reused the map it wrote last.
    reused: usize,
    /// Executions in which a process retried after a lock-identity mismatch.
    retried: usize,
    /// Executions in which a process's lock wait timed out.
    timed_out: usize,
    failure: Option<String>,
}

fn explore(model: Model, scheduler: Scheduler, iterations: usize) -> Explored {
    let seed = seed();
    let depth = env_or("CLOBBER_SHUTTLE_DEPTH", DEFAULT_DEPTH);
    // Plain std atomics, outside the model: bookkeeping that shuttle must not see.
    let count = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Tally::default());
    let (counter, tallied) = (Arc::clone(&count), Arc::clone(&tally));
    let body = move || {
        counter.fetch_add(1, Ordering::Relaxed);
        tallied.add(model.run());
    };
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| match scheduler {
        Scheduler::Pct => {
            let pct = PctScheduler::new_from_seed(seed, depth, iterations);
            Runner::new(pct, Config::new()).run(body);
        }
        Scheduler::Random => {
            let random = RandomScheduler::new_from_seed(seed, iterations);
            Runner::new(random, Config::new()).run(body);
        }
    }));
    let seconds = start.elapsed().as_secs_f64();
    let done = count.load(Ordering::Relaxed);
    let failure = result.err().map(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "<non-string panic>".to_owned())
    });
    let how = match scheduler {
        Scheduler::Pct => format!("pct(depth={depth})"),
        Scheduler::Random => "random".to_owned(),
    };
    eprintln!(
        "MODEL shuttle {:<44} processes={} scheduler={how} seed={seed} iterations={done} power-loss-states={} time={seconds:.2}s result={}",
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
        iterations: done,
        crashes: tally.crashed.load(Ordering::Relaxed),
        reused: tally.reused.load(Ordering::Relaxed),
        retried: tally.retried.load(Ordering::Relaxed),
        timed_out: tally.timed_out.load(Ordering::Relaxed),
        failure,
    }
}

/// The correct protocol must pass `scenario` under both schedulers.
fn holds(scenario: Scenario) -> Vec<Explored> {
    let model = Model::new(scenario, Protocol::Correct);
    [Scheduler::Pct, Scheduler::Random]
        .into_iter()
        .map(|scheduler| {
            let iterations = env_or("CLOBBER_SHUTTLE_ITERATIONS", DEFAULT_ITERATIONS);
            let explored = explore(model, scheduler, iterations);
            if let Some(failure) = &explored.failure {
                panic!("the correct protocol failed a model:\n{failure}");
            }
            assert!(explored.iterations > 0, "shuttle explored nothing");
            explored
        })
        .collect()
}

/// shuttle, with each scheduler, must find a violation of `scenario` under the
/// faulty `protocol`; the violation must be a broken property.
fn found(scenario: Scenario, protocol: Protocol) {
    assert!(protocol.is_faulty());
    let model = Model::new(scenario, protocol);
    for scheduler in [Scheduler::Pct, Scheduler::Random] {
        let explored = explore(model, scheduler, FAULT_ITERATIONS);
        let failure = explored.failure.unwrap_or_else(|| {
            panic!(
                "shuttle ({scheduler:?}) did not find the {protocol} fault with {} in {FAULT_ITERATIONS} schedules",
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
            "shuttle ({scheduler:?}) found the {protocol} fault after {} schedules: {first}",
            explored.iterations
        );
    }
}

// ---- the correct protocol holds --------------------------------------------------

#[test]
fn eight_to_thirty_two_processes_setting_distinct_keys_never_lose_a_write() {
    for processes in [8, 16, 32] {
        holds(Scenario::DistinctSets { processes });
    }
}

#[test]
fn sets_racing_deletes_of_other_keys_lose_nothing_unrelated() {
    holds(Scenario::SetVsDelete {
        setters: 8,
        deleters: 8,
    });
}

#[test]
fn sets_racing_clear_lose_nothing_that_clear_did_not_remove() {
    holds(Scenario::SetVsClear { setters: 15 });
}

#[test]
fn lock_free_reader_never_sees_a_torn_map_among_many_writers() {
    holds(Scenario::ReaderDuringWrites {
        writers: 15,
        reads: 4,
    });
}

#[test]
fn process_dying_at_any_step_among_many_releases_the_lock_and_keeps_acknowledged_writes() {
    let not_on_path = [Step::Snapshot, Step::MidWrite];
    for step in Step::ALL {
        for explored in holds(Scenario::CrashAt { step, writers: 7 }) {
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
fn long_lived_processes_among_many_reuse_their_map_and_never_lose_a_write() {
    for explored in holds(Scenario::RepeatedSets {
        processes: 8,
        sets_each: 3,
    }) {
        assert!(explored.reused > 0, "no schedule reused a map");
    }
}

#[test]
fn writers_holding_a_removed_lock_file_lock_again_and_lose_nothing() {
    let runs = holds(Scenario::LockFileRemoved { writers: 7 });
    assert!(
        runs.iter().any(|e| e.retried > 0),
        "no schedule took the lock-identity retry"
    );
}

#[test]
fn writers_that_time_out_on_the_lock_write_nothing_and_lose_nothing() {
    for explored in holds(Scenario::Impatient { writers: 8 }) {
        assert!(explored.timed_out > 0, "no schedule timed out");
    }
}

// ---- every faulty protocol is found, with many processes ------------------------------

/// The model that exposes each fault. The match has no wildcard: a new protocol
/// does not compile until it has a model that finds it.
fn exposing(protocol: Protocol) -> Scenario {
    match protocol {
        Protocol::StaleSnapshot
        | Protocol::NoLock
        | Protocol::UnlinkLock
        | Protocol::UnlinkLockPolling
        | Protocol::LockDataFile => Scenario::DistinctSets { processes: 8 },
        Protocol::InPlace => Scenario::ReaderDuringWrites {
            writers: 7,
            reads: 2,
        },
        // Lose writes only on a power loss, which the model checks at every step.
        Protocol::NoFsync | Protocol::NoDirFsync => Scenario::DistinctSets { processes: 8 },
        Protocol::Correct => unreachable!("the correct protocol has no fault to expose"),
    }
}

#[test]
fn shuttle_finds_stale_snapshot_erasing_a_concurrent_write() {
    found(exposing(Protocol::StaleSnapshot), Protocol::StaleSnapshot);
}

#[test]
fn shuttle_finds_no_lock_losing_an_update() {
    found(exposing(Protocol::NoLock), Protocol::NoLock);
}

#[test]
fn shuttle_finds_in_place_showing_a_torn_file_to_a_reader() {
    found(exposing(Protocol::InPlace), Protocol::InPlace);
}

#[test]
fn shuttle_finds_unlink_lock_letting_two_processes_hold_the_lock() {
    found(exposing(Protocol::UnlinkLock), Protocol::UnlinkLock);
}

#[test]
fn shuttle_finds_lock_data_file_letting_two_writers_in_after_a_rename() {
    found(exposing(Protocol::LockDataFile), Protocol::LockDataFile);
}

#[test]
fn shuttle_finds_unlink_lock_polling_letting_two_processes_hold_the_lock() {
    found(
        exposing(Protocol::UnlinkLockPolling),
        Protocol::UnlinkLockPolling,
    );
}

#[test]
fn shuttle_finds_no_fsync_leaving_an_unreadable_store_after_a_power_loss() {
    found(exposing(Protocol::NoFsync), Protocol::NoFsync);
}

#[test]
fn shuttle_finds_no_dir_fsync_losing_an_acknowledged_write_after_a_power_loss() {
    found(exposing(Protocol::NoDirFsync), Protocol::NoDirFsync);
}
