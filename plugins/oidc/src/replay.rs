//! Consumed login states: a callback whose `state` was already used is
//! refused even when the browser still holds the login cookie (a replayed
//! or raced callback). Bounded: entries leave when their login would have
//! expired anyway, and the oldest leave first when full. Per VM (Envoy
//! worker); the provider's single-use codes cover the rest.

use std::collections::VecDeque;

/// Most remembered states.
pub const MAX_STATES: usize = 4096;

/// States seen at the callback, with when they stop mattering.
#[derive(Debug, Default, Clone)]
pub struct ReplayGuard {
    seen: VecDeque<(String, u64)>,
}

impl ReplayGuard {
    /// Records `state` (relevant until `until`); false if it was already
    /// recorded.
    pub fn consume(&mut self, state: &str, until: u64, now: u64) -> bool {
        while self.seen.front().is_some_and(|(_, t)| *t <= now) {
            self.seen.pop_front();
        }
        if self.seen.iter().any(|(s, _)| s == state) {
            return false;
        }
        if self.seen.len() >= MAX_STATES {
            self.seen.pop_front();
        }
        self.seen.push_back((state.to_string(), until));
        true
    }

    /// How many states are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when none is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_is_refused_until_expiry_and_size_is_bounded() {
        let mut g = ReplayGuard::default();
        assert!(g.consume("a", 100, 0));
        assert!(!g.consume("a", 100, 50));
        assert!(g.consume("a", 200, 100));
        for i in 0..MAX_STATES + 10 {
            g.consume(&i.to_string(), 1000, 150);
        }
        assert_eq!(g.len(), MAX_STATES);
    }
}
