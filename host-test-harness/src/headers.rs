//! Header maps with Envoy's semantics, and the Proxy-Wasm pairs encoding.

/// An ordered header map; names are stored lower-case, repeats allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(String, String)>,
}

impl HeaderMap {
    /// An empty map.
    pub fn new() -> HeaderMap {
        HeaderMap::default()
    }

    /// Builds a map from pairs (names lower-cased).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.add(k.as_ref(), v.as_ref());
        }
        map
    }

    /// All entries in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first value of `name`, as Envoy's `getHeaderMapValue` returns.
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.entries
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of `name` in order.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.entries
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Appends an entry. Pseudo-headers (`:x`) go after the existing
    /// pseudo-headers and before regular ones, as in Envoy's header map.
    pub fn add(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        if name.starts_with(':') {
            let at = self
                .entries
                .iter()
                .position(|(k, _)| !k.starts_with(':'))
                .unwrap_or(self.entries.len());
            self.entries.insert(at, (name, value.to_string()));
        } else {
            self.entries.push((name, value.to_string()));
        }
    }

    /// Envoy's `setCopy`: replaces the value of the first entry named `name`
    /// (later repeats stay), or appends when absent.
    pub fn replace(&mut self, name: &str, value: &str) {
        let lower = name.to_ascii_lowercase();
        match self.entries.iter_mut().find(|(k, _)| *k == lower) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.add(&lower, value),
        }
    }

    /// Removes every entry named `name`.
    pub fn remove(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        self.entries.retain(|(k, _)| *k != name);
    }

    /// Replaces the whole map.
    pub fn set_all(&mut self, pairs: Vec<(String, String)>) {
        self.entries.clear();
        for (k, v) in pairs {
            self.add(&k, &v);
        }
    }
}

/// Encodes pairs the Proxy-Wasm way: count, then (name length, value
/// length) per pair, then each name and value followed by a NUL byte.
pub fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Decodes the Proxy-Wasm pairs encoding; `None` when it is malformed.
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0)?;
    let mut sizes = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        sizes.push((word(4 + i * 8)?, word(8 + i * 8)?));
    }
    let mut at = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut out = Vec::with_capacity(sizes.len());
    for (kl, vl) in sizes {
        let k = bytes.get(at..at.checked_add(kl)?)?;
        at += kl + 1;
        let v = bytes.get(at..at.checked_add(vl)?)?;
        at += vl + 1;
        out.push((
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_returns_the_first_of_repeated_headers() {
        let mut m = HeaderMap::from_pairs(&[("X-A", "1"), ("x-a", "2")]);
        assert_eq!(m.get("x-a"), Some("1"));
        assert_eq!(m.get_all("X-A"), ["1", "2"]);
        m.replace("x-a", "3");
        assert_eq!(m.get_all("x-a"), ["3", "2"]);
        m.remove("x-a");
        assert!(m.is_empty());
    }

    #[test]
    fn pseudo_headers_stay_in_front() {
        let mut m = HeaderMap::from_pairs(&[(":path", "/"), ("x", "1")]);
        m.add(":method", "GET");
        let names: Vec<_> = m.pairs().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, [":path", ":method", "x"]);
    }

    #[test]
    fn pairs_round_trip() {
        let pairs = vec![("a".to_string(), "1".to_string()), ("bb".into(), "".into())];
        assert_eq!(decode_pairs(&encode_pairs(&pairs)), Some(pairs));
        assert_eq!(decode_pairs(&[5, 0, 0, 0]), None);
        assert_eq!(decode_pairs(&[]), Some(vec![]));
    }
}
