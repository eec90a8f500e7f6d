//! Sets of HTTP methods.

use serde::{Deserialize, Deserializer};

/// A non-empty set of HTTP methods, stored upper-case. Matching is exact
/// (methods are case-sensitive tokens, RFC 9110 §9.1), so a request with
/// `get` does not match `GET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSet(Vec<String>);

impl MethodSet {
    /// Builds a set from method names, refusing empty sets and non-tokens.
    pub fn new<I, S>(methods: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out: Vec<String> = Vec::new();
        for m in methods {
            let m = m.as_ref();
            if m.is_empty() || !m.bytes().all(is_tchar) {
                return Err(format!(
                    "invalid HTTP method {m:?}: expected a token such as \"GET\""
                ));
            }
            let up = m.to_ascii_uppercase();
            if !out.contains(&up) {
                out.push(up);
            }
        }
        if out.is_empty() {
            return Err(
                "the method list is empty; list at least one method or leave the field out".into(),
            );
        }
        Ok(MethodSet(out))
    }

    /// True when `method` is in the set.
    pub fn contains(&self, method: &str) -> bool {
        self.0.iter().any(|m| m == method)
    }

    /// The methods, upper-case.
    pub fn methods(&self) -> &[String] {
        &self.0
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl<'de> Deserialize<'de> for MethodSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        MethodSet::new(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_matches_exactly() {
        let s = MethodSet::new(["get", "POST", "GET"]).unwrap();
        assert_eq!(s.methods(), ["GET", "POST"]);
        assert!(s.contains("GET"));
        assert!(!s.contains("get"));
        assert!(!s.contains("PUT"));
    }

    #[test]
    fn refuses_empty_and_bad_tokens() {
        assert!(MethodSet::new(Vec::<String>::new()).is_err());
        assert!(MethodSet::new(["GE T"])
            .unwrap_err()
            .contains("invalid HTTP method"));
        assert!(serde_json::from_str::<MethodSet>(r#"["GET", ""]"#).is_err());
    }
}
