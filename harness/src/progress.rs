//! Where a run is: done / total and an ETA for the progress bar.
//!
//! A run ends when its last *finite* role ends (the others churn until then), or
//! at the scenario's maximum duration. So the run's progress is that of its
//! slowest finite worker — operations done of `iterations ×` operations per
//! iteration, or time spent of `duration_ms` — and never less than the share of
//! the maximum duration already spent. The ETA extrapolates the elapsed time
//! from that fraction.

use crate::scenario::{Role, Step};

/// One worker as the progress line sees it.
#[derive(Debug, Clone, Copy)]
pub struct WorkerProgress<'a> {
    /// Its role.
    pub role: &'a Role,
    /// Operations it has recorded so far.
    pub ops: usize,
    /// It has exited.
    pub exited: bool,
}

/// The fraction (0..=1) of the run done, and what it is measured in.
#[must_use]
pub fn fraction(
    workers: &[WorkerProgress<'_>],
    elapsed_s: f64,
    max_duration_s: f64,
) -> (f64, String) {
    let mut slowest: Option<(f64, String)> = None;
    for w in workers.iter().filter(|w| w.role.is_finite()) {
        let (f, what) = if w.exited {
            (1.0, String::new())
        } else if let Some(d) = w.role.duration_ms {
            let d = d as f64 / 1e3;
            let spent = (elapsed_s - w.role.start_ms as f64 / 1e3).max(0.0);
            (
                (spent / d).min(1.0),
                format!("{spent:.1}/{d:.0} s of {}", w.role.name),
            )
        } else {
            let per = w
                .role
                .steps
                .iter()
                .filter(|s| matches!(s, Step::Op { .. }))
                .count()
                .max(1);
            let total = w.role.iterations.unwrap_or(1) as usize * per;
            (
                (w.ops as f64 / total as f64).min(1.0),
                format!("{}/{total} ops of {}", w.ops.min(total), w.role.name),
            )
        };
        if slowest.as_ref().is_none_or(|(s, _)| f < *s) {
            slowest = Some((f, what));
        }
    }
    let by_time = if max_duration_s > 0.0 {
        (elapsed_s / max_duration_s).min(1.0)
    } else {
        0.0
    };
    match slowest {
        Some((f, what)) if f < 1.0 => (f.max(by_time), what),
        Some(_) => (1.0, "finite roles done".to_owned()),
        None => (
            by_time,
            format!("{elapsed_s:.0}/{max_duration_s:.0} s (maximum duration)"),
        ),
    }
}

/// `[#######-------------]  35%  3.2 s, ETA 5.9 s  (412/1200 ops of victim)`.
#[must_use]
pub fn line(workers: &[WorkerProgress<'_>], elapsed_s: f64, max_duration_s: f64) -> String {
    let (f, what) = fraction(workers, elapsed_s, max_duration_s);
    let filled = (f * 20.0).round() as usize;
    let eta = if f > 0.01 {
        format!(
            "ETA {:.1} s",
            (elapsed_s * (1.0 - f) / f)
                .min(max_duration_s - elapsed_s)
                .max(0.0)
        )
    } else {
        "ETA ?".to_owned()
    };
    format!(
        "[{}{}] {:3.0}%  {elapsed_s:.1} s, {eta}  ({what})",
        "#".repeat(filled.min(20)),
        "-".repeat(20 - filled.min(20)),
        f * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Handle;
    use clobber_check::history::Op;

    fn role(iterations: Option<u64>, duration_ms: Option<u64>) -> Role {
        Role {
            name: "r".into(),
            processes: 1,
            iterations,
            duration_ms,
            start_ms: 0,
            handle: Handle::PerOp,
            sentinel: false,
            steps: vec![
                Step::Op {
                    op: Op::Set,
                    key: Some("k".into()),
                    value: Some("{tag}".into()),
                    pad_to: 0,
                },
                Step::Pause {
                    ms: 10,
                    jitter_ms: 0,
                },
                Step::Op {
                    op: Op::Get,
                    key: Some("k".into()),
                    value: None,
                    pad_to: 0,
                },
            ],
        }
    }

    #[test]
    fn the_slowest_finite_worker_sets_the_fraction_and_churners_do_not_count() {
        let (fast, slow, churn) = (role(Some(10), None), role(Some(10), None), role(None, None));
        let workers = [
            WorkerProgress {
                role: &fast,
                ops: 20,
                exited: true,
            },
            WorkerProgress {
                role: &slow,
                ops: 5,
                exited: false,
            },
            WorkerProgress {
                role: &churn,
                ops: 999,
                exited: false,
            },
        ];
        let (f, what) = fraction(&workers, 1.0, 60.0);
        assert!((f - 0.25).abs() < 1e-9, "{f}");
        assert_eq!(what, "5/20 ops of r");
        let text = line(&workers, 1.0, 60.0);
        assert!(
            text.contains(" 25%") && text.contains("ETA 3.0 s"),
            "{text}"
        );
    }

    #[test]
    fn time_bounded_roles_and_the_maximum_duration_bound_the_fraction_from_below() {
        let timed = role(None, Some(4000));
        let workers = [WorkerProgress {
            role: &timed,
            ops: 0,
            exited: false,
        }];
        let (f, _) = fraction(&workers, 1.0, 60.0);
        assert!((f - 0.25).abs() < 1e-9, "{f}");
        let stuck = role(Some(100), None);
        let workers = [WorkerProgress {
            role: &stuck,
            ops: 0,
            exited: false,
        }];
        let (f, what) = fraction(&workers, 30.0, 60.0);
        assert!(
            (f - 0.5).abs() < 1e-9 && what == "0/200 ops of r",
            "{f} {what}"
        );
        let churn = role(None, None);
        let workers = [WorkerProgress {
            role: &churn,
            ops: 7,
            exited: false,
        }];
        let (f, what) = fraction(&workers, 15.0, 60.0);
        assert!(
            (f - 0.25).abs() < 1e-9 && what.contains("maximum duration"),
            "{f} {what}"
        );
    }
}
