//! A bounded cache of verified tokens, so a client sending the same token
//! repeatedly pays for one signature check. Entries remember the key-set
//! generation they were verified under; a new key set (rotation) makes them
//! misses. Time claims are re-checked on every hit by the caller.

use crate::basic::CredentialCache;
use crate::verify::VerifiedToken;
use std::collections::{HashMap, VecDeque};

/// The per-VM caches a decision may read and fill: verified tokens and
/// recent successful Basic checks.
#[derive(Debug)]
pub struct Caches {
    /// Verified tokens.
    pub tokens: TokenCache,
    /// Recent successful Basic checks.
    pub credentials: CredentialCache,
}

/// A map of at most `capacity` entries that forgets the oldest insertion
/// when full (capacity 0: remembers nothing).
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    capacity: usize,
    entries: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: std::hash::Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// An empty map holding at most `capacity` entries.
    pub fn new(capacity: usize) -> BoundedMap<K, V> {
        BoundedMap {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// Sets `key`, evicting the oldest entries beyond the capacity.
    pub fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        while self.entries.len() > self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Verified tokens by (provider index, token).
#[derive(Debug)]
pub struct TokenCache {
    entries: BoundedMap<(usize, String), (u64, VerifiedToken)>,
}

impl TokenCache {
    /// A cache holding at most `capacity` tokens (0: off).
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            entries: BoundedMap::new(capacity),
        }
    }

    /// The cached verification of `token` for `provider` under key-set
    /// `generation`.
    pub fn get(&self, provider: usize, token: &str, generation: u64) -> Option<&VerifiedToken> {
        let (g, v) = self.entries.get(&(provider, token.to_string()))?;
        (*g == generation).then_some(v)
    }

    /// Remembers a verification, evicting the oldest entry when full.
    pub fn insert(&mut self, provider: usize, token: &str, generation: u64, v: VerifiedToken) {
        self.entries
            .insert((provider, token.to_string()), (generation, v));
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(iss: &str) -> VerifiedToken {
        VerifiedToken {
            claims: Default::default(),
            issuer: iss.into(),
            subject: None,
            audiences: vec![],
            expires_at: None,
            not_before: None,
            payload_b64: String::new(),
        }
    }

    #[test]
    fn bounded_and_generation_aware() {
        let mut c = TokenCache::new(2);
        c.insert(0, "a", 1, v("a"));
        c.insert(0, "b", 1, v("b"));
        c.insert(0, "c", 1, v("c"));
        assert_eq!(c.len(), 2);
        assert!(c.get(0, "a", 1).is_none());
        assert_eq!(c.get(0, "c", 1).map(|t| t.issuer.as_str()), Some("c"));
        assert!(c.get(0, "c", 2).is_none());
        assert!(c.get(1, "c", 1).is_none());
        let mut off = TokenCache::new(0);
        off.insert(0, "a", 1, v("a"));
        assert!(off.is_empty());
    }
}
