//! A request's regular headers, names and values kept in one string.

use std::fmt;

/// Regular request headers in arrival order (pseudo-headers are fields of
/// the request view). Every name and value lives in one string, so reading
/// a request's headers costs two allocations rather than two per header:
/// in wasm each allocation and its free cost a few hundred operations, and
/// this runs for every request in every plugin.
///
/// Built from pairs (`Headers::from([("x-team", "ops")])`, or by
/// collecting an iterator of pairs) or with [`Headers::push`]; read with
/// [`Headers::iter`] or `for (name, value) in &headers`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    text: String,
    /// Per header, where its name ends and where its value ends in `text`;
    /// its name starts where the previous value ends.
    ends: Vec<(usize, usize)>,
}

impl Headers {
    /// No headers, with room for `headers` of `bytes` names and values in
    /// all (both are hints; more still fit).
    pub fn with_capacity(headers: usize, bytes: usize) -> Headers {
        Headers {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(headers),
        }
    }

    /// Adds a header after the others.
    pub fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name_end = self.text.len();
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len()));
    }

    /// Adds a header after the others, its name and value written straight
    /// into the shared string: `name` appends the name to the string it is
    /// given, then `value` appends the value (e.g. decoding host bytes
    /// without a copy of their own).
    pub fn push_with(&mut self, name: impl FnOnce(&mut String), value: impl FnOnce(&mut String)) {
        name(&mut self.text);
        let name_end = self.text.len();
        value(&mut self.text);
        self.ends.push((name_end, self.text.len()));
    }

    /// The headers in order, as `(name, value)`.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            text: &self.text,
            ends: self.ends.iter(),
            start: 0,
        }
    }

    /// How many headers there are (a repeated name counts each time).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Iterator over [`Headers`]: `(name, value)` in arrival order.
#[derive(Clone)]
pub struct Iter<'a> {
    text: &'a str,
    ends: std::slice::Iter<'a, (usize, usize)>,
    /// Where the next name starts.
    start: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let &(name_end, value_end) = self.ends.next()?;
        let pair = (
            &self.text[self.start..name_end],
            &self.text[name_end..value_end],
        );
        self.start = value_end;
        Some(pair)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Headers {
        let mut headers = Headers::default();
        headers.extend(pairs);
        headers
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for Headers {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, pairs: I) {
        for (name, value) in pairs {
            self.push(name.as_ref(), value.as_ref());
        }
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> From<[(K, V); N]> for Headers {
    fn from(pairs: [(K, V); N]) -> Headers {
        pairs.into_iter().collect()
    }
}

impl From<Vec<(String, String)>> for Headers {
    fn from(pairs: Vec<(String, String)>) -> Headers {
        pairs.into_iter().collect()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Headers;

    #[test]
    fn keeps_pairs_in_order_with_repeats_and_empty_parts() {
        let pairs = [
            ("x-a", "1"),
            ("x-empty", ""),
            ("", "nameless"),
            ("x-a", "caf\u{e9}"),
        ];
        let h = Headers::from(pairs);
        assert_eq!(h.len(), 4);
        assert!(!h.is_empty());
        assert_eq!(h.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(h.iter().len(), 4);
        assert_eq!((&h).into_iter().nth(3), Some(("x-a", "caf\u{e9}")));
        assert_eq!(format!("{h:?}"), format!("{:?}", pairs));
    }

    #[test]
    fn every_way_of_building_agrees() {
        let owned: Vec<(String, String)> = vec![("a".into(), "1".into()), ("b".into(), "2".into())];
        let mut pushed = Headers::with_capacity(1, 1);
        pushed.push("a", "1");
        pushed.push_with(|t| t.push('b'), |t| t.push('2'));
        assert_eq!(Headers::from(owned.clone()), pushed);
        assert_eq!(
            owned.iter().map(|(n, v)| (n, v)).collect::<Headers>(),
            pushed
        );
        assert_eq!(Headers::from([("a", "1"), ("b", "2")]), pushed);
        let mut extended = Headers::from([("a", "1")]);
        extended.extend([("b", "2")]);
        assert_eq!(extended, pushed);
    }

    #[test]
    fn empty() {
        let h = Headers::default();
        assert!(h.is_empty());
        assert_eq!(h.iter().next(), None);
        assert_eq!(format!("{h:?}"), "[]");
    }
}
