//! The floor of evidence under a pass.
//!
//! A run can only prove "nothing was lost" through reads that saw values: a lost
//! write shows as a read that finds a key absent (or an older value) after the write
//! was acknowledged, and a read can only be compared when something else was seen.
//! A store so slow that almost every read overlaps a `clear` (or a run stopped
//! before its readers got going) observes almost nothing, and its "no violation"
//! means nothing. Such a run is inconclusive (exit 2) with the figures, never PASS.

use clobber_check::history::{Op, Outcome, Record};

/// Fewer values read than this in a run: inconclusive.
pub const MIN_VALUES_READ: usize = 10;
/// A smaller share of reads seeing a value than this (percent): inconclusive.
pub const MIN_PERCENT_SEEING_A_VALUE: f64 = 10.0;

/// What the run's reads observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// `get`s that answered (a value or "not found").
    pub answered: usize,
    /// `get`s that returned a value.
    pub values: usize,
}

impl Reads {
    /// Count the answered `get`s of `workload`.
    #[must_use]
    pub fn of<'a>(workload: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut r = Reads {
            answered: 0,
            values: 0,
        };
        for rec in workload {
            if rec.op != Op::Get {
                continue;
            }
            match rec.outcome {
                Outcome::Ok => {
                    r.answered += 1;
                    r.values += 1;
                }
                Outcome::NotFound => r.answered += 1,
                _ => {}
            }
        }
        r
    }

    /// Why these reads are too little evidence for a pass, with the figures; `None`
    /// if they are enough.
    #[must_use]
    pub fn too_little(&self) -> Option<String> {
        let pct = if self.answered == 0 {
            0.0
        } else {
            self.values as f64 * 100.0 / self.answered as f64
        };
        (self.values < MIN_VALUES_READ || pct < MIN_PERCENT_SEEING_A_VALUE).then(|| {
            format!(
                "too little observed to pass: {} of {} reads saw a value ({pct:.0}%; a pass \
                 needs at least {MIN_VALUES_READ} values and {MIN_PERCENT_SEEING_A_VALUE:.0}% \
                 of reads). With a store this slow the scenario's pauses may be too short: \
                 give them as multiples of the store's latency (`pause_ms = \"3x set\"`)",
                self.values, self.answered
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(outcome: Outcome) -> Record {
        let value = (outcome == Outcome::Ok).then(|| "v".to_owned());
        serde_json::from_value(serde_json::json!({
            "process": 1, "op": "get", "key": "k", "value": value,
            "outcome": outcome.name(), "invoke_ns": 1, "complete_ns": 2
        }))
        .unwrap()
    }

    fn reads(values: usize, absent: usize) -> Reads {
        let mut h = vec![get(Outcome::Ok); values];
        h.extend(vec![get(Outcome::NotFound); absent]);
        h.push(get(Outcome::Unknown));
        Reads::of(&h)
    }

    #[test]
    fn a_run_that_saw_few_values_is_too_little_evidence() {
        // The slow clear-vs-set run that used to PASS: 3 of 121 reads saw a value.
        let r = reads(3, 118);
        assert_eq!(
            r,
            Reads {
                answered: 121,
                values: 3
            }
        );
        let why = r.too_little().unwrap();
        assert!(why.contains("3 of 121 reads saw a value (2%"), "{why}");
        assert!(reads(9, 0).too_little().is_some());
        assert!(reads(25, 300).too_little().is_some(), "under 10%");
    }

    #[test]
    fn enough_values_read_is_enough() {
        assert_eq!(reads(10, 0).too_little(), None);
        assert_eq!(reads(30, 200).too_little(), None);
    }
}
