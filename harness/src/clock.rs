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
    fn monotonic_clock_never_goes_back() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
        assert!(a > 0);
    }
}
