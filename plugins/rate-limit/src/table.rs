//! The bounded key table in proxy shared data.
//!
//! Proxy-Wasm shared data is one key-value store per VM id, shared by every
//! worker's VM, with compare-and-swap and **no delete**. So the key space must
//! be bounded up front: each rule owns `max_keys` slots named
//! `palisade.rl.<rule>.<n>`, each holding 16 bytes — a fingerprint of the
//! bucket key and the bucket's TAT (see [`crate::gcra`]).
//!
//! A bucket key hashes (SipHash, keyed from the configuration) to a home slot
//! and probes up to [`PROBES`] slots from there. A slot is usable when it is
//! empty, already holds this key, or is *idle* — its TAT is in the past, so
//! its bucket is full and forgetting it changes nothing. That is the eviction
//! rule: no tick and no delete are needed, and a key is only ever forgotten
//! when forgetting it is exact. If every probed slot holds another live key,
//! the request shares the home slot's bucket ("overflow"): limits then get
//! stricter for the keys involved, never looser, and the overflow is counted.
//!
//! Slots are created empty when the plugin starts (before traffic), so every
//! later write is a compare-and-swap: two workers updating one bucket at once
//! retry instead of losing an update. After [`CAS_RETRIES`] failed swaps the
//! check fails and the filter fails closed.

use crate::gcra::{Gcra, Verdict};
use siphasher::sip::SipHasher13;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::hash::Hasher;

/// Slots probed from a key's home slot.
pub const PROBES: u32 = 4;
/// Compare-and-swap attempts on one slot before giving up.
pub const CAS_RETRIES: u32 = 64;

/// Failures of the shared store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The CAS token did not match (someone wrote in between).
    CasMismatch,
    /// Any other host failure.
    Host(u32),
}

/// The shared key-value store (Proxy-Wasm shared data in the filter; a map
/// in tests).
pub trait SharedStore {
    /// Value and CAS token of `key`; `(None, None)` when absent.
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError>;
    /// Writes `key` if `cas` still matches (`None` writes unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// Why a check could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    /// Too many concurrent writers on one slot.
    Contention,
    /// The store failed.
    Store(StoreError),
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Contention => write!(
                f,
                "the bucket stayed contended for {CAS_RETRIES} compare-and-swap attempts"
            ),
            TableError::Store(StoreError::CasMismatch) => write!(f, "compare-and-swap mismatch"),
            TableError::Store(StoreError::Host(s)) => {
                write!(f, "shared data call failed with status {s}")
            }
        }
    }
}

/// The result of a check, with how the key found its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The bucket verdict.
    pub verdict: Verdict,
    /// True when every probed slot was busy and the home bucket was shared.
    pub overflow: bool,
}

const EMPTY: [u8; 16] = [0; 16];

/// One rule's slots.
#[derive(Debug, Clone)]
pub struct Table {
    prefix: String,
    slots: u32,
    seed: (u64, u64),
}

impl Table {
    /// The table of rule `rule` with `slots` slots, keyed by `seed`.
    pub fn new(rule: &str, slots: u32, seed: (u64, u64)) -> Table {
        Table {
            prefix: format!("palisade.rl.{rule}."),
            slots: slots.max(1),
            seed,
        }
    }

    fn slot_key(&self, n: u32) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 10);
        key.push_str(&self.prefix);
        crate::text::push_decimal(&mut key, u64::from(n));
        key
    }

    /// Creates missing slots (empty). Call before traffic: concurrent
    /// creators only ever write the same empty value.
    pub fn create_slots(&self, store: &dyn SharedStore) -> Result<u32, StoreError> {
        let mut created = 0;
        for n in 0..self.slots {
            let key = self.slot_key(n);
            if store.get(&key)?.0.is_none() {
                store.set(&key, &EMPTY, None)?;
                created += 1;
            }
        }
        Ok(created)
    }

    fn hash(&self, bucket_key: &str) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.seed.0, self.seed.1);
        h.write(bucket_key.as_bytes());
        h.finish()
    }

    /// Checks one request for `bucket_key` at `now_ns`.
    pub fn check(
        &self,
        store: &dyn SharedStore,
        gcra: &Gcra,
        bucket_key: &str,
        now_ns: u64,
    ) -> Result<Checked, TableError> {
        let h = self.hash(bucket_key);
        // Fingerprint 0 marks an empty slot.
        let fp = (h.rotate_left(32)) | 1;
        let home = (h % u64::from(self.slots)) as u32;
        for probe in 0..PROBES.min(self.slots) {
            let n = (home + probe) % self.slots;
            if let Some(verdict) = self.try_slot(store, gcra, n, fp, now_ns, false)? {
                return Ok(Checked {
                    verdict,
                    overflow: false,
                });
            }
        }
        let verdict = self
            .try_slot(store, gcra, home, fp, now_ns, true)?
            .ok_or(TableError::Contention)?;
        Ok(Checked {
            verdict,
            overflow: true,
        })
    }

    /// Returns `None` when the slot belongs to another live key (and
    /// `share` is false).
    fn try_slot(
        &self,
        store: &dyn SharedStore,
        gcra: &Gcra,
        n: u32,
        fp: u64,
        now_ns: u64,
        share: bool,
    ) -> Result<Option<Verdict>, TableError> {
        let key = self.slot_key(n);
        for _ in 0..CAS_RETRIES {
            let (value, cas) = store.get(&key).map_err(TableError::Store)?;
            let (owner, tat) = decode(value.as_deref());
            let mine = owner == fp;
            let idle = owner == 0 || tat <= now_ns;
            if !(mine || idle || share) {
                return Ok(None);
            }
            let current = if mine || share { Some(tat) } else { None };
            let verdict = gcra.check(current, now_ns);
            if !verdict.allowed {
                return Ok(Some(verdict));
            }
            let new_owner = if share && !mine && !idle { owner } else { fp };
            match store.set(&key, &encode(new_owner, verdict.new_tat), cas) {
                Ok(()) => return Ok(Some(verdict)),
                Err(StoreError::CasMismatch) => continue,
                Err(e) => return Err(TableError::Store(e)),
            }
        }
        Err(TableError::Contention)
    }
}

fn encode(owner: u64, tat: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&owner.to_le_bytes());
    out[8..].copy_from_slice(&tat.to_le_bytes());
    out
}

/// `(owner, tat)`; anything malformed reads as an empty slot.
fn decode(value: Option<&[u8]>) -> (u64, u64) {
    match value {
        Some(v) if v.len() == 16 => {
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a.copy_from_slice(&v[..8]);
            b.copy_from_slice(&v[8..]);
            (u64::from_le_bytes(a), u64::from_le_bytes(b))
        }
        _ => (0, 0),
    }
}

/// A seed for [`Table`] derived from the configuration bytes, so every worker
/// VM of one configuration hashes keys alike.
pub fn seed_from_config(config: &[u8]) -> (u64, u64) {
    let mut a = SipHasher13::new_with_keys(0x7061_6c69_7361_6465, 0x726c_2d73_6565_6431);
    a.write(config);
    let k0 = a.finish();
    let mut b = SipHasher13::new_with_keys(k0, 0x5eed);
    b.write(config);
    (k0, b.finish())
}

/// Shared data as Envoy keeps it — a CAS counter per key, bumped on every
/// write — in process memory: for native tests and benchmarks of the policy.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    steal: Cell<u32>,
}

impl MemoryStore {
    /// Makes the next `n` CAS writes fail as if another worker had won.
    pub fn fail_next_cas_writes(&self, n: u32) {
        self.steal.set(n);
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        Ok(match self.map.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        })
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut map = self.map.borrow_mut();
        let current = map.get(key).map(|(_, c)| *c).unwrap_or(0);
        if let Some(c) = cas {
            if self.steal.get() > 0 {
                self.steal.set(self.steal.get() - 1);
                return Err(StoreError::CasMismatch);
            }
            if c != current {
                return Err(StoreError::CasMismatch);
            }
        }
        map.insert(key.to_string(), (value.to_vec(), current + 1));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const NOW: u64 = 1_700_000_000_000_000_000;

    fn table(slots: u32) -> (Table, MemoryStore) {
        let t = Table::new("r", slots, seed_from_config(b"{}"));
        let s = MemoryStore::default();
        assert_eq!(t.create_slots(&s).unwrap(), slots);
        assert_eq!(t.create_slots(&s).unwrap(), 0);
        (t, s)
    }

    #[test]
    fn one_bucket_per_key() {
        let (t, s) = table(64);
        let g = Gcra::new(2, Duration::from_secs(60), 2);
        let allowed = |k: &str| t.check(&s, &g, k, NOW).unwrap().verdict.allowed;
        assert!(allowed("a") && allowed("a") && !allowed("a"));
        assert!(allowed("b") && allowed("b") && !allowed("b"));
    }

    #[test]
    fn cas_conflicts_are_retried_not_lost() {
        let (t, s) = table(8);
        let g = Gcra::new(3, Duration::from_secs(60), 3);
        s.fail_next_cas_writes(5);
        for _ in 0..3 {
            assert!(t.check(&s, &g, "k", NOW).unwrap().verdict.allowed);
        }
        assert!(!t.check(&s, &g, "k", NOW).unwrap().verdict.allowed);
    }

    #[test]
    fn endless_contention_fails_closed() {
        let (t, s) = table(1);
        let g = Gcra::new(3, Duration::from_secs(60), 3);
        s.fail_next_cas_writes(u32::MAX);
        assert_eq!(t.check(&s, &g, "k", NOW), Err(TableError::Contention));
    }

    #[test]
    fn full_table_shares_the_home_bucket_and_says_so() {
        let (t, s) = table(2);
        let g = Gcra::new(1, Duration::from_secs(60), 2);
        assert!(!t.check(&s, &g, "a", NOW).unwrap().overflow);
        assert!(!t.check(&s, &g, "b", NOW).unwrap().overflow);
        // Two live keys fill both slots; a third key shares, never gets a fresh bucket.
        let mut shared = 0;
        for _ in 0..4 {
            let c = t.check(&s, &g, "c", NOW).unwrap();
            assert!(c.overflow);
            if c.verdict.allowed {
                shared += 1;
            }
        }
        assert!(shared <= 1, "{shared}");
    }

    #[test]
    fn idle_slots_are_reused() {
        let (t, s) = table(1);
        let g = Gcra::new(1, Duration::from_secs(1), 1);
        assert!(t.check(&s, &g, "a", NOW).unwrap().verdict.allowed);
        // One second later a's bucket is full again: b takes the slot exactly.
        let c = t.check(&s, &g, "b", NOW + 1_000_000_000).unwrap();
        assert!(c.verdict.allowed && !c.overflow);
        let c = t.check(&s, &g, "b", NOW + 1_000_000_000).unwrap();
        assert!(!c.verdict.allowed);
    }

    #[test]
    fn malformed_slot_reads_as_empty() {
        assert_eq!(decode(Some(b"short")), (0, 0));
        assert_eq!(decode(None), (0, 0));
        assert_eq!(decode(Some(&encode(5, 9))), (5, 9));
    }

    #[test]
    fn seeds_depend_on_config() {
        assert_eq!(seed_from_config(b"a"), seed_from_config(b"a"));
        assert_ne!(seed_from_config(b"a"), seed_from_config(b"b"));
    }
}
