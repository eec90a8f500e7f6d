//! Clocks: policies take "now" from a [`Clock`] so tests can fix the time.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current wall-clock time.
pub trait Clock {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Whole seconds since the Unix epoch (0 for times before it).
    fn unix_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Milliseconds since the Unix epoch (0 for times before it).
    fn unix_millis(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    /// Nanoseconds since the Unix epoch (0 for times before it; saturates
    /// in the year 2554).
    fn unix_nanos(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// The system clock (inside a Proxy-Wasm VM, the host's clock via WASI).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until moved: for tests.
#[derive(Debug, Clone)]
pub struct FixedClock(Cell<SystemTime>);

impl FixedClock {
    /// A clock at `unix_seconds` after the epoch.
    pub fn at_unix(unix_seconds: u64) -> Self {
        FixedClock(Cell::new(UNIX_EPOCH + Duration::from_secs(unix_seconds)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.set(self.0.get() + by);
    }

    /// Sets the clock.
    pub fn set(&self, t: SystemTime) {
        self.0.set(t);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let c = FixedClock::at_unix(1_000);
        assert_eq!(c.unix_seconds(), 1_000);
        c.advance(Duration::from_millis(2_500));
        assert_eq!(c.unix_seconds(), 1_002);
        assert_eq!(c.unix_millis(), 1_002_500);
        assert_eq!(c.unix_nanos(), 1_002_500_000_000);
        c.set(UNIX_EPOCH);
        assert_eq!(c.unix_seconds(), 0);
        assert_eq!(c.unix_millis(), 0);
    }

    #[test]
    fn times_before_the_epoch_read_as_zero() {
        let c = FixedClock::at_unix(0);
        c.set(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(
            (c.unix_seconds(), c.unix_millis(), c.unix_nanos()),
            (0, 0, 0)
        );
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.unix_seconds() > 1_577_836_800);
    }
}
