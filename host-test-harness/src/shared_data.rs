//! Shared data (`proxy_get_shared_data` / `proxy_set_shared_data`) with
//! Envoy's compare-and-swap semantics, and shared queues.

use crate::status::Status;
use std::collections::{BTreeMap, VecDeque};

/// Key-value store shared by every context of a host.
#[derive(Debug, Default)]
pub struct SharedData {
    entries: BTreeMap<String, (Vec<u8>, u32)>,
    queues: Vec<(String, VecDeque<Vec<u8>>)>,
}

impl SharedData {
    /// The value and its CAS token.
    pub fn get(&self, key: &str) -> Option<(&[u8], u32)> {
        self.entries.get(key).map(|(v, cas)| (v.as_slice(), *cas))
    }

    /// Sets a value. `cas` 0 always writes; otherwise it must equal the
    /// current token (Envoy: an absent key with a non-zero cas is a
    /// mismatch too).
    pub fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        match self.entries.get_mut(key) {
            Some((v, token)) => {
                if cas != 0 && cas != *token {
                    return Err(Status::CasMismatch);
                }
                *v = value.to_vec();
                *token = token.wrapping_add(1).max(1);
            }
            None => {
                if cas != 0 {
                    return Err(Status::CasMismatch);
                }
                self.entries.insert(key.to_string(), (value.to_vec(), 1));
            }
        }
        Ok(())
    }

    /// Registers (or finds) a queue; ids start at 1.
    pub fn register_queue(&mut self, name: &str) -> u32 {
        if let Some(i) = self.queues.iter().position(|(n, _)| n == name) {
            return i as u32 + 1;
        }
        self.queues.push((name.to_string(), VecDeque::new()));
        self.queues.len() as u32
    }

    /// Finds a queue by name.
    pub fn resolve_queue(&self, name: &str) -> Option<u32> {
        self.queues
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| i as u32 + 1)
    }

    fn queue(&mut self, id: u32) -> Result<&mut VecDeque<Vec<u8>>, Status> {
        let i = (id as usize).checked_sub(1).ok_or(Status::NotFound)?;
        self.queues
            .get_mut(i)
            .map(|(_, q)| q)
            .ok_or(Status::NotFound)
    }

    /// Appends to a queue.
    pub fn enqueue(&mut self, id: u32, data: &[u8]) -> Result<(), Status> {
        self.queue(id)?.push_back(data.to_vec());
        Ok(())
    }

    /// Takes the oldest item; `Empty` when there is none.
    pub fn dequeue(&mut self, id: u32) -> Result<Vec<u8>, Status> {
        self.queue(id)?.pop_front().ok_or(Status::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_semantics() {
        let mut s = SharedData::default();
        assert_eq!(s.set("k", b"a", 5), Err(Status::CasMismatch));
        s.set("k", b"a", 0).unwrap();
        let (_, cas) = s.get("k").unwrap();
        s.set("k", b"b", cas).unwrap();
        assert_eq!(s.set("k", b"c", cas), Err(Status::CasMismatch));
        assert_eq!(s.get("k").unwrap().0, b"b");
    }

    #[test]
    fn queues() {
        let mut s = SharedData::default();
        let q = s.register_queue("q");
        assert_eq!(s.resolve_queue("q"), Some(q));
        assert_eq!(s.dequeue(q), Err(Status::Empty));
        s.enqueue(q, b"x").unwrap();
        assert_eq!(s.dequeue(q), Ok(b"x".to_vec()));
        assert_eq!(s.enqueue(9, b"x"), Err(Status::NotFound));
    }
}
