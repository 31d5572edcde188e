//! `set` on stores of 10 to 1000 secrets, against the floor: the same file-system
//! work (open a temp file, lock, write the same bytes, `sync_all`, rename, directory
//! fsync) with no crypto and no read. Two store cases: `store` (warm: the handle
//! wrote last, as in a long-lived process refreshing tokens) and `store-cold` (another
//! process wrote in between, so the file is decrypted again). Criterion gives each
//! case's distribution; the ratios to the floor are measured at the end, interleaved
//! in one loop (see `ratios`), and printed as a table.
//!
//! Run: `cargo bench -p clobber-benches --bench store`

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clobber_benches::{human, median};
use clobber_store::{KdfParams, KeySource, Store, StoreOptions};
use criterion::{BatchSize, BenchmarkId, Criterion};

const SIZES: [usize; 4] = [10, 100, 500, 1000];

/// A store pre-filled with `n` refresh-token-like secrets (the default 19 MiB
/// Argon2id: the key is derived once per handle, as in a long-lived process).
fn filled_store(dir: &Path, n: usize) -> Store {
    let mut store = StoreOptions::new(dir.join("secrets"), KeySource::passphrase("bench"))
        .new_store_params(KdfParams::DEFAULT)
        .open()
        .unwrap();
    store
        .update(|map| {
            for i in 0..n {
                map.insert(
                    format!(
                        "OAUTH_REFRESH_TOKEN_workload{}_{:019}_{:08x}",
                        i % 7,
                        i * 7919,
                        i
                    ),
                    format!("rt-{i:04}-{}", "x".repeat(96)).into(),
                );
            }
            Ok(())
        })
        .unwrap();
    store
}

/// The floor: replace `target` with `bytes` durably under the sidecar lock.
fn floor_replace(target: &Path, lock: &Path, tmp: &Path, bytes: &[u8]) {
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock)
        .unwrap();
    lock.lock().unwrap();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(tmp, target).unwrap();
    File::open(target.parent().unwrap())
        .unwrap()
        .sync_all()
        .unwrap();
    lock.unlock().unwrap();
}

fn bench_set(c: &mut Criterion) {
    let mut group = c.benchmark_group("set");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in SIZES {
        let dir = tempfile::tempdir().unwrap();
        let mut store = filled_store(dir.path(), n);
        let mut i = 0u64;
        group.bench_with_input(BenchmarkId::new("store", n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                store.set("_churn_1", &format!("v{i}")).unwrap();
            });
        });
        // Cold: another process wrote since this handle's last write, so the file
        // must be decrypted again (the setup, untimed, is that other write).
        let mut other = StoreOptions::new(store.path(), KeySource::passphrase("bench"))
            .open()
            .unwrap();
        let mut j = 0u64;
        group.bench_with_input(BenchmarkId::new("store-cold", n), &n, |b, _| {
            b.iter_batched(
                || {
                    j += 1;
                    other.set("_churn_2", &format!("o{j}")).unwrap();
                },
                |()| {
                    i += 1;
                    store.set("_churn_1", &format!("v{i}")).unwrap();
                },
                BatchSize::PerIteration,
            );
        });
        let bytes = std::fs::read(store.path()).unwrap();
        let target: PathBuf = dir.path().join("floor");
        let lock = dir.path().join("floor.lock");
        let tmp = dir.path().join(".floor.tmp");
        group.bench_with_input(BenchmarkId::new("floor", n), &n, |b, _| {
            b.iter(|| floor_replace(&target, &lock, &tmp, &bytes));
        });
    }
    group.finish();
}

/// The ratios, measured side by side: rounds of (warm set, cold set, floor), each
/// timed on its own, in one interleaved loop, so that drift in the disk's fsync
/// latency hits all three alike. Medians, because fsync has a long tail.
fn ratios(rounds: usize) {
    println!("\nset vs floor, interleaved, median of {rounds} rounds each");
    println!("  floor: lock + write + fsync + rename + dir fsync of the same bytes, no crypto");
    println!("  warm: this handle wrote last, the file still holds its bytes (no decryption)");
    println!("  cold: another process wrote in between (read, decrypt, modify, encrypt)");
    println!(
        "{:>8}  {:>11}  {:>11}  {:>11}  {:>6}  {:>6}",
        "secrets", "warm", "cold", "floor", "warm/f", "cold/f"
    );
    for n in SIZES {
        let dir = tempfile::tempdir().unwrap();
        let mut store = filled_store(dir.path(), n);
        let mut other = StoreOptions::new(store.path(), KeySource::passphrase("bench"))
            .open()
            .unwrap();
        let bytes = std::fs::read(store.path()).unwrap();
        let (target, lock, tmp) = (
            dir.path().join("floor"),
            dir.path().join("floor.lock"),
            dir.path().join(".floor.tmp"),
        );
        let (mut warm, mut cold, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        let time = |f: &mut dyn FnMut()| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e9
        };
        for i in 0..rounds {
            warm.push(time(&mut || {
                store.set("_churn_1", &format!("w{i}")).unwrap()
            }));
            other.set("_churn_2", &format!("o{i}")).unwrap();
            cold.push(time(&mut || {
                store.set("_churn_1", &format!("c{i}")).unwrap()
            }));
            floor.push(time(&mut || floor_replace(&target, &lock, &tmp, &bytes)));
        }
        let (w, c, f) = (median(&mut warm), median(&mut cold), median(&mut floor));
        println!(
            "{n:>8}  {:>11}  {:>11}  {:>11}  {:>5.2}x  {:>5.2}x",
            human(w),
            human(c),
            human(f),
            w / f,
            c / f
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_set(&mut c);
    c.final_summary();
    // `cargo bench -- --test` (CI's smoke run) only checks that everything runs.
    let smoke = std::env::args().any(|a| a == "--test");
    ratios(if smoke { 3 } else { 1000 });
}
