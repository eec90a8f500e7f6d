//! Per-worker token leases: fewer shared-data round trips for busy buckets.
//!
//! Checking a bucket in shared data costs a read and a compare-and-swap write
//! per request. When a bucket has plenty of room, the worker that checks it
//! takes a few more tokens in the same write — a *lease* — and spends them
//! from its own memory on the next requests for that key, without touching
//! shared data. A lease is small by construction:
//!
//! - it is at most [`MAX_LEASE`] tokens and at most 1/[`LEASE_FRACTION`] of
//!   the tokens the bucket had free, so a bucket with fewer than
//!   2 × `LEASE_FRACTION` free tokens is never leased: near its limit every
//!   request is checked in shared data, exactly as without leases;
//! - it lasts [`LEASE_TTL_NS`]; tokens left over are handed back to the
//!   bucket on the worker's next check of that key (if the slot still
//!   belongs to the key), so other workers get them again.
//!
//! **What this changes in the limit.** Count the bucket's free tokens plus
//! every token leased out and not yet spent: each admitted request takes one
//! of them, and only the bucket's part refills (never past `burst`). So over
//! any time window a key admits at most what GCRA admits (`burst` + rate ×
//! window) plus the tokens leased out when the window starts — at most
//! `min(MAX_LEASE, burst / LEASE_FRACTION)` per worker. In the other
//! direction, tokens a worker holds are unavailable to other workers until it
//! spends them or hands them back.

use crate::gcra::Verdict;
use std::collections::HashMap;

/// Most tokens one lease holds (the request that takes it included).
pub const MAX_LEASE: u32 = 64;
/// A lease is at most this fraction of the bucket's free tokens.
pub const LEASE_FRACTION: u64 = 256;
/// How long a worker may spend a lease's tokens.
pub const LEASE_TTL_NS: u64 = 200_000_000;
/// Keys one worker holds leases for, per rule; more keys are checked in
/// shared data on every request.
pub const MAX_LEASED_KEYS: usize = 1024;

/// Tokens to take beyond the current request's, when the bucket has
/// `remaining` more free after it: 0 (no lease) below 2 × [`LEASE_FRACTION`]
/// free tokens.
pub fn extra_tokens(remaining: u32) -> u32 {
    let free = u64::from(remaining) + 1;
    let lease = (free / LEASE_FRACTION).min(u64::from(MAX_LEASE));
    // `lease` ≤ MAX_LEASE, so this fits.
    u32::try_from(lease.saturating_sub(1)).unwrap_or(0)
}

/// Tokens one worker holds for one bucket key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The table slot whose bucket the tokens came from.
    pub slot: u32,
    /// Tokens not yet spent.
    pub tokens: u32,
    /// When the lease was taken.
    pub taken_ns: u64,
    /// The bucket's TAT right after the lease was taken.
    pub tat: u64,
    /// Free tokens the bucket had left right after the lease was taken.
    pub bucket_remaining: u32,
}

impl Lease {
    /// Whether its tokens may be spent at `now_ns`.
    fn live(&self, now_ns: u64) -> bool {
        self.tokens > 0 && now_ns >= self.taken_ns && now_ns - self.taken_ns < LEASE_TTL_NS
    }
}

/// One worker's leases for one rule, keyed by the bucket key's fingerprint.
#[derive(Debug, Clone)]
pub struct LeaseBook {
    leases: HashMap<u64, Lease>,
    capacity: usize,
    /// While full of live leases: no room before this time.
    full_until_ns: u64,
}

impl Default for LeaseBook {
    fn default() -> LeaseBook {
        LeaseBook::with_capacity(MAX_LEASED_KEYS)
    }
}

impl LeaseBook {
    /// A book holding leases for at most `capacity` keys.
    pub fn with_capacity(capacity: usize) -> LeaseBook {
        LeaseBook {
            leases: HashMap::new(),
            capacity,
            full_until_ns: 0,
        }
    }

    /// Spends one token of key `fp`'s lease, if it has a live one: the
    /// verdict for the request. Its `remaining` is the lease's tokens plus
    /// what the bucket had left when the lease was taken (other workers may
    /// have spent some since), capped at `burst`.
    pub fn spend(&mut self, fp: u64, now_ns: u64, burst: u32) -> Option<Verdict> {
        let lease = self.leases.get_mut(&fp).filter(|l| l.live(now_ns))?;
        lease.tokens -= 1;
        Some(Verdict {
            allowed: true,
            new_tat: lease.tat,
            remaining: lease
                .tokens
                .saturating_add(lease.bucket_remaining)
                .min(burst),
            reset_secs: lease.tat.saturating_sub(now_ns).div_ceil(1_000_000_000),
            retry_after_secs: 0,
        })
    }

    /// Removes key `fp`'s lease (spent or expired): what to hand back to
    /// its bucket, `(slot, tokens)`, when tokens are left.
    pub fn end(&mut self, fp: u64) -> Option<(u32, u32)> {
        self.leases
            .remove(&fp)
            .filter(|l| l.tokens > 0)
            .map(|l| (l.slot, l.tokens))
    }

    /// Whether a lease for `fp` can be recorded at `now_ns`. When the book
    /// is full, expired leases are dropped (their tokens are not handed
    /// back: the buckets stay stricter until they refill).
    pub fn has_room(&mut self, fp: u64, now_ns: u64) -> bool {
        if self.leases.len() < self.capacity || self.leases.contains_key(&fp) {
            return true;
        }
        if now_ns < self.full_until_ns {
            return false;
        }
        self.leases.retain(|_, l| l.live(now_ns));
        if self.leases.len() < self.capacity {
            return true;
        }
        self.full_until_ns = self
            .leases
            .values()
            .map(|l| l.taken_ns.saturating_add(LEASE_TTL_NS))
            .min()
            .unwrap_or(now_ns);
        false
    }

    /// Records `lease` for key `fp` (call after [`has_room`](Self::has_room)).
    pub fn record(&mut self, fp: u64, lease: Lease) {
        if self.leases.len() < self.capacity || self.leases.contains_key(&fp) {
            self.leases.insert(fp, lease);
        }
    }

    /// Keys holding a lease (live or not yet cleaned up).
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether no key holds a lease.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000_000_000;

    fn lease(tokens: u32, taken_ns: u64) -> Lease {
        Lease {
            slot: 3,
            tokens,
            taken_ns,
            tat: taken_ns + 5_000_000_000,
            bucket_remaining: 100,
        }
    }

    #[test]
    fn lease_size_is_a_small_share_of_a_roomy_bucket() {
        // Below 2 × LEASE_FRACTION free tokens: no lease at all.
        assert_eq!(extra_tokens(0), 0);
        assert_eq!(extra_tokens(2 * LEASE_FRACTION as u32 - 2), 0);
        assert_eq!(extra_tokens(2 * LEASE_FRACTION as u32 - 1), 1);
        assert_eq!(extra_tokens(10 * LEASE_FRACTION as u32), 9);
        assert_eq!(extra_tokens(u32::MAX), MAX_LEASE - 1);
    }

    #[test]
    fn tokens_are_spent_until_gone_or_expired() {
        let mut book = LeaseBook::default();
        book.record(7, lease(2, T0));
        let v = book.spend(7, T0 + 1, 1000).unwrap();
        assert!(v.allowed);
        assert_eq!(v.remaining, 101);
        assert_eq!(v.reset_secs, 5);
        assert_eq!(book.spend(7, T0 + 2, 1000).unwrap().remaining, 100);
        assert_eq!(book.spend(7, T0 + 3, 1000), None);
        assert_eq!(book.spend(8, T0 + 3, 1000), None);
        // Spent: nothing to hand back.
        assert_eq!(book.end(7), None);

        book.record(7, lease(5, T0));
        assert_eq!(book.spend(7, T0 + LEASE_TTL_NS, 1000), None);
        // A clock that went backwards does not spend either.
        assert_eq!(book.spend(7, T0 - 1, 1000), None);
        assert_eq!(book.end(7), Some((3, 5)));
        assert!(book.is_empty());
    }

    #[test]
    fn remaining_is_capped_at_burst() {
        let mut book = LeaseBook::default();
        book.record(1, lease(9, T0));
        assert_eq!(book.spend(1, T0, 50).unwrap().remaining, 50);
    }

    #[test]
    fn a_full_book_makes_room_only_from_expired_leases() {
        let mut book = LeaseBook::with_capacity(2);
        book.record(1, lease(4, T0));
        book.record(2, lease(4, T0 + 1));
        assert!(book.has_room(1, T0), "a key with a lease may renew it");
        assert!(!book.has_room(3, T0 + 10));
        book.record(3, lease(4, T0 + 10));
        assert_eq!(book.len(), 2, "record never grows a full book");
        // The first lease expires: its place is free again.
        assert!(book.has_room(3, T0 + LEASE_TTL_NS));
        assert_eq!(book.len(), 1);
        book.record(3, lease(4, T0 + LEASE_TTL_NS));
        assert_eq!(book.len(), 2);
        assert!(book.spend(3, T0 + LEASE_TTL_NS + 1, 100).is_some());
    }
}
