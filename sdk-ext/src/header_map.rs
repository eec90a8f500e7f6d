//! The Proxy-Wasm header-map wire format, read in place.
//!
//! `proxy_get_header_map_pairs` hands the module one buffer: the pair count
//! `n` (u32, little-endian), then `n` pairs of sizes (name size, value size,
//! u32 each), then each name and value followed by a NUL byte. The Rust SDK
//! copies every name and value into its own `Vec` before a plugin sees
//! them; [`pairs`] yields them as slices of the buffer, so a request view
//! copies each only once, into the string it keeps.

/// The `(name, value)` pairs of a serialized header map, in order, without
/// copying. A malformed buffer (truncated, sizes past its end, a missing NUL
/// terminator) yields the pairs before the damage and then stops: it never
/// panics.
pub fn pairs(buf: &[u8]) -> Pairs<'_> {
    let count = read_u32(buf, 0).unwrap_or(0);
    Pairs {
        buf,
        count,
        index: 0,
        data: 4usize.saturating_add((count as usize).saturating_mul(8)),
    }
}

/// Iterator over a serialized header map; see [`pairs`].
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    buf: &'a [u8],
    count: u32,
    index: u32,
    /// Where the next name starts.
    data: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        let sizes = 4 + self.index as usize * 8;
        let name_len = read_u32(self.buf, sizes)? as usize;
        let value_len = read_u32(self.buf, sizes + 4)? as usize;
        let name_end = self.data.checked_add(name_len)?;
        let value_start = name_end.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        let name = self.buf.get(self.data..name_end)?;
        let value = self.buf.get(value_start..value_end)?;
        if self.buf.get(name_end) != Some(&0) || self.buf.get(value_end) != Some(&0) {
            return None;
        }
        self.index += 1;
        self.data = value_end + 1;
        Some((name, value))
    }

    /// At most the pairs the count still promises, and at most one per two
    /// bytes left (each name and value ends in a NUL): a count a damaged
    /// buffer inflates does not inflate what a caller reserves.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let promised = self.count.saturating_sub(self.index) as usize;
        let room = self.buf.len().saturating_sub(self.data) / 2;
        (0, Some(promised.min(room)))
    }
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serializes `pairs` as a host does.
    fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
        for (name, value) in pairs {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        }
        for (name, value) in pairs {
            out.extend_from_slice(name);
            out.push(0);
            out.extend_from_slice(value);
            out.push(0);
        }
        out
    }

    const MAP: &[(&[u8], &[u8])] = &[
        (b":method", b"GET"),
        (b":path", b"/a?b=1"),
        (b"x-empty", b""),
        (b"x-bytes", b"caf\xe9"),
    ];

    #[test]
    fn pairs_come_back_in_order() {
        let buf = serialize(MAP);
        assert_eq!(pairs(&buf).collect::<Vec<_>>(), MAP);
    }

    #[test]
    fn an_empty_map_and_an_empty_buffer_have_no_pairs() {
        assert_eq!(pairs(&serialize(&[])).count(), 0);
        assert_eq!(pairs(&[]).count(), 0);
    }

    #[test]
    fn a_truncated_buffer_yields_the_whole_pairs_before_the_cut() {
        let buf = serialize(MAP);
        let mut seen = Vec::new();
        for cut in 0..buf.len() {
            let got: Vec<_> = pairs(&buf[..cut]).collect();
            assert!(got.len() < MAP.len(), "cut at {cut}");
            assert_eq!(got, MAP[..got.len()], "cut at {cut}");
            seen.push(got.len());
        }
        // Every prefix length shows up on the way.
        for n in 0..MAP.len() {
            assert!(seen.contains(&n), "{n} pairs");
        }
    }

    #[test]
    fn a_pair_without_its_terminators_is_damage() {
        let mut buf = serialize(MAP);
        // The NUL after the first name becomes a letter.
        let first_nul = 4 + MAP.len() * 8 + MAP[0].0.len();
        buf[first_nul] = b'x';
        assert_eq!(pairs(&buf).count(), 0);
    }

    #[test]
    fn sizes_past_the_end_stop_without_panicking() {
        let mut buf = serialize(MAP);
        // The first pair's name claims almost 4 GiB.
        buf[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(pairs(&buf).count(), 0);
        // A count far larger than the buffer.
        let mut buf = serialize(MAP);
        buf[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(pairs(&buf).count(), 0);
    }

    #[test]
    fn the_size_hint_bounds_what_comes_and_ignores_an_inflated_count() {
        let buf = serialize(MAP);
        let mut it = pairs(&buf);
        for left in (0..=MAP.len()).rev() {
            let (_, upper) = it.size_hint();
            assert!(upper.is_some_and(|u| u >= left), "{left} left: {upper:?}");
            it.next();
        }
        let mut buf = serialize(MAP);
        buf[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let (_, upper) = pairs(&buf).size_hint();
        assert!(upper.is_some_and(|u| u <= buf.len()), "{upper:?}");
    }
}
