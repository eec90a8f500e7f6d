//! The virtual clock owned by the host: tests set and advance it; the module
//! reads it through `clock_time_get` and `proxy_get_current_time_nanoseconds`.

use std::time::Duration;

/// A clock that only moves when the test moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtualClock {
    /// Wall-clock time in nanoseconds since the Unix epoch.
    wall_nanos: u64,
    /// Monotonic time in nanoseconds since the host started.
    monotonic_nanos: u64,
}

/// 2026-01-01T00:00:00Z, the default start of the virtual clock.
pub const DEFAULT_START_NANOS: u64 = 1_767_225_600_000_000_000;

impl Default for VirtualClock {
    fn default() -> Self {
        VirtualClock::starting_at(DEFAULT_START_NANOS)
    }
}

impl VirtualClock {
    /// A clock whose wall time starts at `wall_nanos` since the Unix epoch.
    pub fn starting_at(wall_nanos: u64) -> VirtualClock {
        VirtualClock {
            wall_nanos,
            monotonic_nanos: 0,
        }
    }

    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub fn wall_nanos(&self) -> u64 {
        self.wall_nanos
    }

    /// Monotonic time, nanoseconds since the clock started.
    pub fn monotonic_nanos(&self) -> u64 {
        self.monotonic_nanos
    }

    /// Moves both clocks forward.
    pub fn advance(&mut self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.wall_nanos = self.wall_nanos.saturating_add(nanos);
        self.monotonic_nanos = self.monotonic_nanos.saturating_add(nanos);
    }

    /// Sets the wall-clock time (the monotonic clock is unaffected, like a
    /// real clock adjustment).
    pub fn set_wall_nanos(&mut self, nanos: u64) {
        self.wall_nanos = nanos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_both_clocks() {
        let mut c = VirtualClock::starting_at(1_000);
        c.advance(Duration::from_nanos(500));
        assert_eq!((c.wall_nanos(), c.monotonic_nanos()), (1_500, 500));
        c.set_wall_nanos(10);
        assert_eq!((c.wall_nanos(), c.monotonic_nanos()), (10, 500));
    }
}
