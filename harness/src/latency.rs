//! Pre-flight latency: the store's median time per operation kind, so that a
//! scenario's pauses can follow the store's speed (`pause_ms = "400 + 4x clear"`).
//!
//! A pause written for a store that answers in 5 ms means something else for one
//! that takes 500 ms: a cleaner pausing 400 ms between clears then clears all the
//! time, almost every read overlaps a clear, and the run observes nothing. So
//! before the workers start, clobber times a few operations on a probe key and
//! fills the relative pauses in; the store is left as it was found (empty).

use std::time::Instant;

use clobber_check::history::Op;

use crate::driver::{Call, Driver};

/// The probe key (never one a scenario writes: scenarios cannot name keys with `__`
/// on both sides by accident).
pub const PROBE_KEY: &str = "__clobber_latency__";

/// Samples per operation kind.
pub const SAMPLES: usize = 3;

/// Median milliseconds per operation kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency(pub Vec<(Op, f64)>);

impl Latency {
    /// The median of `op` (0 if it was not measured).
    #[must_use]
    pub fn ms(&self, op: Op) -> f64 {
        self.0
            .iter()
            .find(|(o, _)| *o == op)
            .map_or(0.0, |(_, ms)| *ms)
    }

    /// `set 512 ms, get 480 ms`.
    #[must_use]
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(op, ms)| format!("{op} {ms:.0} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Time `SAMPLES` rounds of `ops` on the probe key (a round: set, get, list, clear
/// or delete), and return the median of each kind asked for.
pub fn measure(driver: &mut Driver, ops: &[Op]) -> Latency {
    let mut times: Vec<(Op, Vec<f64>)> = Vec::new();
    let mut time = |driver: &mut Driver, op: Op, key: bool| {
        let call = Call {
            op,
            key: key.then(|| PROBE_KEY.to_owned()),
            value: (op == Op::Set).then(|| "clobber-latency-probe".to_owned()),
        };
        let t = Instant::now();
        let _ = driver.exec(&call);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match times.iter_mut().find(|(o, _)| *o == op) {
            Some((_, v)) => v.push(ms),
            None => times.push((op, vec![ms])),
        }
    };
    for _ in 0..SAMPLES {
        time(driver, Op::Set, true);
        time(driver, Op::Get, true);
        if ops.contains(&Op::List) {
            time(driver, Op::List, false);
        }
        if ops.contains(&Op::Clear) {
            time(driver, Op::Clear, false);
            time(driver, Op::Set, true);
        }
        time(driver, Op::Delete, true);
    }
    Latency(
        times
            .into_iter()
            .filter(|(op, _)| ops.contains(op))
            .map(|(op, v)| (op, median(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_middle_sample() {
        assert!((median(vec![500.0, 3.0, 7.0]) - 7.0).abs() < 1e-9);
        let l = Latency(vec![(Op::Set, 512.4), (Op::Clear, 20.0)]);
        assert!((l.ms(Op::Set) - 512.4).abs() < 1e-9);
        assert!(l.ms(Op::Get).abs() < 1e-9);
        assert_eq!(l.describe(), "set 512 ms, clear 20 ms");
    }
}
