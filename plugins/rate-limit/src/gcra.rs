//! GCRA (generic cell rate algorithm): a token bucket kept as one number.
//!
//! The state of a bucket is its *theoretical arrival time* (TAT), in
//! nanoseconds since the Unix epoch. A bucket of capacity `burst` refilled at
//! one request per `interval` admits a request at `now` when
//! `max(TAT, now) - now <= (burst - 1) * interval`, and then moves the TAT one
//! `interval` on. A TAT at or before `now` means the bucket is full, which is
//! also why an idle key needs no state at all.

use std::time::Duration;

/// A bucket shape: `requests` per `period`, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    interval_ns: u64,
    tolerance_ns: u64,
    burst: u32,
    period_s: u64,
    requests: u32,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The request may pass.
    pub allowed: bool,
    /// The bucket state to store when allowed (unchanged when refused).
    pub new_tat: u64,
    /// Requests that would still pass right now after this one.
    pub remaining: u32,
    /// Seconds (rounded up) until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds (rounded up, at least 1) until a refused request would pass;
    /// 0 when allowed.
    pub retry_after_secs: u64,
}

const NS: u64 = 1_000_000_000;

fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(NS)
}

impl Gcra {
    /// A bucket for `requests` per `period` with capacity `burst` (both at
    /// least 1; zero is treated as 1).
    pub fn new(requests: u32, period: Duration, burst: u32) -> Gcra {
        let requests = requests.max(1);
        let burst = burst.max(1);
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        let interval_ns = (period_ns / u64::from(requests)).max(1);
        Gcra {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(burst) - 1),
            burst,
            period_s: period.as_secs(),
            requests,
        }
    }

    /// Sustained requests per period.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The period in seconds.
    pub fn period_secs(&self) -> u64 {
        self.period_s
    }

    /// The bucket capacity.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Checks one request at `now_ns` against a bucket whose stored TAT is
    /// `tat` (`None` = never seen, i.e. full).
    pub fn check(&self, tat: Option<u64>, now_ns: u64) -> Verdict {
        let tat = tat.unwrap_or(now_ns).max(now_ns);
        let ahead = tat - now_ns;
        if ahead > self.tolerance_ns {
            let wait = ahead - self.tolerance_ns;
            return Verdict {
                allowed: false,
                new_tat: tat,
                remaining: 0,
                reset_secs: ceil_secs(ahead),
                retry_after_secs: ceil_secs(wait).max(1),
            };
        }
        let new_tat = tat.saturating_add(self.interval_ns);
        let new_ahead = new_tat - now_ns;
        // Further requests k pass now while new_ahead + (k-1)*interval <= tolerance.
        let remaining = if new_ahead > self.tolerance_ns {
            0
        } else {
            (self.tolerance_ns - new_ahead) / self.interval_ns + 1
        };
        Verdict {
            allowed: true,
            new_tat,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX).min(self.burst),
            reset_secs: ceil_secs(new_ahead),
            retry_after_secs: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000 * NS;

    /// Runs `n` requests at `now` on one bucket, returning the verdicts.
    fn burst_at(g: &Gcra, tat: &mut Option<u64>, now: u64, n: usize) -> Vec<Verdict> {
        (0..n)
            .map(|_| {
                let v = g.check(*tat, now);
                if v.allowed {
                    *tat = Some(v.new_tat);
                }
                v
            })
            .collect()
    }

    #[test]
    fn full_bucket_admits_burst_then_refuses() {
        let g = Gcra::new(10, Duration::from_secs(1), 3);
        let mut tat = None;
        let v = burst_at(&g, &mut tat, T0, 4);
        assert_eq!(
            v.iter().map(|v| v.allowed).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert_eq!(
            v.iter().map(|v| v.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0]
        );
        assert_eq!(v[3].retry_after_secs, 1);
    }

    #[test]
    fn refill_is_one_per_interval() {
        let g = Gcra::new(10, Duration::from_secs(1), 1);
        let mut tat = None;
        assert!(burst_at(&g, &mut tat, T0, 1)[0].allowed);
        assert!(!g.check(tat, T0 + 99_000_000).allowed);
        assert!(g.check(tat, T0 + 100_000_000).allowed);
    }

    #[test]
    fn admitted_over_a_window_is_rate_plus_burst() {
        // 100 per second, burst 10, one request every millisecond for 2 s.
        let g = Gcra::new(100, Duration::from_secs(1), 10);
        let mut tat = None;
        let mut admitted = 0;
        for ms in 0..2000u64 {
            let v = g.check(tat, T0 + ms * 1_000_000);
            if v.allowed {
                tat = Some(v.new_tat);
                admitted += 1;
            }
        }
        // 10 from the full bucket, then one per 10 ms over 1.99 s.
        assert!((209..=210).contains(&admitted), "{admitted}");
    }

    #[test]
    fn retry_after_and_reset_for_minute_limits() {
        let g = Gcra::new(2, Duration::from_secs(60), 2);
        let mut tat = None;
        let v = burst_at(&g, &mut tat, T0, 3);
        assert!(v[0].allowed && v[1].allowed && !v[2].allowed);
        assert_eq!(v[0].reset_secs, 30);
        assert_eq!(v[1].reset_secs, 60);
        assert_eq!(v[2].retry_after_secs, 30);
        // After 30 s exactly one more passes.
        assert!(g.check(tat, T0 + 30 * NS).allowed);
    }

    #[test]
    fn idle_bucket_is_full_and_stale_state_is_harmless() {
        let g = Gcra::new(1, Duration::from_secs(1), 5);
        let old = Some(T0 - 3600 * NS);
        let v = g.check(old, T0);
        assert!(v.allowed);
        assert_eq!(v.remaining, 4);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let g = Gcra::new(u32::MAX, Duration::from_secs(3600), u32::MAX);
        let v = g.check(Some(u64::MAX - 1), u64::MAX - 1);
        assert!(v.allowed);
        let g = Gcra::new(0, Duration::ZERO, 0);
        let _ = g.check(None, 0);
        let _ = g.check(Some(u64::MAX), 0);
    }
}
