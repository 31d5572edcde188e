//! The system-wide monotonic clock that every history time comes from.
//!
//! `CLOCK_MONOTONIC` is one clock for every process on a Linux machine, so the
//! invoke and completion times that different worker processes record can be
//! compared directly. (`std::time::Instant` reads the same clock but hides the
//! value.)

use nix::time::{ClockId, clock_gettime};

/// Nanoseconds on the system-wide monotonic clock.
#[must_use]
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always available");
    let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec()).unwrap_or(0);
    secs * 1_000_000_000 + nanos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_advances_by_at_least_a_sleep_and_keeps_whole_seconds() {
        // Fails if the seconds were dropped or scaled wrongly (the nanosecond part
        // alone wraps every second), or if the clock were not monotonic.
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = now_ns();
        let elapsed = b - a;
        assert!(elapsed >= 1_100_000_000, "{elapsed} ns for a 1.1 s sleep");
        assert!(elapsed < 60_000_000_000, "{elapsed} ns for a 1.1 s sleep");
    }
}
