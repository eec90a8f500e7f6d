//! SPIFFE ids (`spiffe://<trust domain>/<path>`) as workload identities.
//!
//! Istio names a workload by its SPIFFE id without the scheme, e.g.
//! `cluster.local/ns/default/sa/sleep` (its *principal*), and reads the
//! namespace from the `ns/<namespace>` segments of the path. [`SpiffeId`]
//! parses an id strictly (RFC-style trust domain, no empty, `.` or `..`
//! segments, no query or fragment) and gives those parts.

use std::fmt;

/// Longest SPIFFE id accepted (the SPIFFE spec's limit is 2048 bytes).
pub const MAX_SPIFFE_ID_BYTES: usize = 2048;

/// A parsed SPIFFE id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

/// Why a string is not a SPIFFE id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpiffeError {
    /// It does not start with `spiffe://`.
    Scheme,
    /// Longer than [`MAX_SPIFFE_ID_BYTES`].
    TooLong(usize),
    /// The trust domain is empty or has characters other than lower-case
    /// letters, digits, `.`, `-`, `_`.
    TrustDomain(String),
    /// The path has an empty, `.` or `..` segment, or characters outside
    /// letters, digits, `.`, `-`, `_`.
    Path(String),
}

impl fmt::Display for SpiffeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpiffeError::Scheme => f.write_str("a SPIFFE id starts with \"spiffe://\""),
            SpiffeError::TooLong(n) => write!(
                f,
                "SPIFFE id is {n} bytes, more than the {MAX_SPIFFE_ID_BYTES} allowed"
            ),
            SpiffeError::TrustDomain(td) => write!(
                f,
                "invalid SPIFFE trust domain {td:?}: use lower-case letters, digits, '.', '-', '_'"
            ),
            SpiffeError::Path(p) => write!(
                f,
                "invalid SPIFFE path {p:?}: segments are non-empty letters, digits, '.', '-', '_' (not '.' or '..')"
            ),
        }
    }
}

impl std::error::Error for SpiffeError {}

impl SpiffeId {
    /// Parses `spiffe://trust.domain/path/segments`.
    pub fn parse(s: &str) -> Result<SpiffeId, SpiffeError> {
        if s.len() > MAX_SPIFFE_ID_BYTES {
            return Err(SpiffeError::TooLong(s.len()));
        }
        let rest = s.strip_prefix("spiffe://").ok_or(SpiffeError::Scheme)?;
        let (td, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let td_ok = !td.is_empty()
            && td
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b));
        if !td_ok {
            return Err(SpiffeError::TrustDomain(td.to_string()));
        }
        if !path.is_empty() {
            let ok = path[1..].split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
            });
            if !ok {
                return Err(SpiffeError::Path(path.to_string()));
            }
        }
        Ok(SpiffeId {
            trust_domain: td.to_string(),
            path: path.to_string(),
        })
    }

    /// The trust domain, e.g. `cluster.local`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path with its leading `/`, or empty.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Istio's principal: the id without `spiffe://`
    /// (`cluster.local/ns/default/sa/sleep`).
    pub fn principal(&self) -> String {
        format!("{}{}", self.trust_domain, self.path)
    }

    /// The namespace Istio reads from the path: the segment after the first
    /// `ns` segment (`/ns/<namespace>/sa/<account>`).
    pub fn namespace(&self) -> Option<&str> {
        let mut segs = self.path.split('/').skip(1);
        while let Some(s) = segs.next() {
            if s == "ns" {
                return segs.next();
            }
        }
        None
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}{}", self.trust_domain, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istio_ids() {
        let id = SpiffeId::parse("spiffe://cluster.local/ns/shop/sa/web").unwrap();
        assert_eq!(id.trust_domain(), "cluster.local");
        assert_eq!(id.path(), "/ns/shop/sa/web");
        assert_eq!(id.principal(), "cluster.local/ns/shop/sa/web");
        assert_eq!(id.namespace(), Some("shop"));
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
        let bare = SpiffeId::parse("spiffe://example.org").unwrap();
        assert_eq!((bare.path(), bare.namespace()), ("", None));
    }

    #[test]
    fn refuses_malformed_ids() {
        for (bad, want) in [
            ("https://x/ns/a", SpiffeError::Scheme),
            ("spiffe://", SpiffeError::TrustDomain(String::new())),
            (
                "spiffe://Ex.org/a",
                SpiffeError::TrustDomain("Ex.org".into()),
            ),
            ("spiffe://e.org/a//b", SpiffeError::Path("/a//b".into())),
            ("spiffe://e.org/a/../b", SpiffeError::Path("/a/../b".into())),
            ("spiffe://e.org/a?x=1", SpiffeError::Path("/a?x=1".into())),
            ("spiffe://e.org/", SpiffeError::Path("/".into())),
        ] {
            assert_eq!(SpiffeId::parse(bad), Err(want), "{bad}");
        }
        let long = format!("spiffe://e.org/{}", "a".repeat(MAX_SPIFFE_ID_BYTES));
        assert!(matches!(
            SpiffeId::parse(&long),
            Err(SpiffeError::TooLong(_))
        ));
    }
}
