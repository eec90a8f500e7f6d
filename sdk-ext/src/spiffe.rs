//! SPIFFE ids (`spiffe://<trust domain>/<path>`) as workload identities.
//!
//! Istio names a workload by its SPIFFE id without the scheme, e.g.
//! `cluster.local/ns/default/sa/sleep` (its *principal*), and reads the
//! namespace from the `ns/<namespace>` segments of the path. [`SpiffeId`]
//! parses an id strictly (RFC-style trust domain, no empty, `.` or `..`
//! segments, no query or fragment) and gives those parts.
//!
//! [`SpiffePattern`] is an allow-list entry over ids (the mTLS proxy's
//! `allow_spiffe`): the trust domain is matched exactly (no wildcards there,
//! so a pattern can never widen to another trust domain); in the path, `*`
//! inside a segment matches any characters except `/`, and a final segment
//! `**` matches one or more remaining segments. Examples:
//! `spiffe://td/ns/*/sa/web`, `spiffe://td/ns/prod/sa/api-*`,
//! `spiffe://td/ns/prod/**`.

use std::fmt;

/// Longest SPIFFE id accepted (the SPIFFE spec's limit is 2048 bytes).
pub const MAX_SPIFFE_ID_BYTES: usize = 2048;

/// A parsed SPIFFE id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

/// Why a string is not a SPIFFE id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpiffeError {
    /// It does not start with `spiffe://` (the string as given).
    Scheme(String),
    /// Longer than [`MAX_SPIFFE_ID_BYTES`].
    TooLong(usize),
    /// The trust domain is empty or has characters other than lower-case
    /// letters, digits, `.`, `-`, `_`.
    TrustDomain(String),
    /// The path has an empty, `.` or `..` segment, or characters outside
    /// letters, digits, `.`, `-`, `_` (and `*` in a pattern).
    Path(String),
    /// A pattern has `**` somewhere other than as its whole last segment
    /// (the pattern as given).
    DoubleStar(String),
}

impl fmt::Display for SpiffeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpiffeError::Scheme(s) => {
                write!(f, "{s:?} is not a SPIFFE id: it must start with \"spiffe://\"")
            }
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
            SpiffeError::DoubleStar(s) => write!(
                f,
                "invalid SPIFFE pattern {s:?}: '**' is only allowed as the whole last path segment"
            ),
        }
    }
}

impl std::error::Error for SpiffeError {}

/// Splits `spiffe://td/path` into a checked trust domain and the path (with
/// its leading `/`, or empty), refusing over-long input first.
fn split_uri(s: &str) -> Result<(&str, &str), SpiffeError> {
    if s.len() > MAX_SPIFFE_ID_BYTES {
        return Err(SpiffeError::TooLong(s.len()));
    }
    let rest = s
        .strip_prefix("spiffe://")
        .ok_or_else(|| SpiffeError::Scheme(s.to_string()))?;
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
    Ok((td, path))
}

/// The segments of a path with its leading `/` (none for an empty path).
fn path_segments(path: &str) -> impl Iterator<Item = &str> {
    path.get(1..).into_iter().flat_map(|p| p.split('/'))
}

/// A non-empty segment, not `.` or `..`, of letters, digits, `.`, `-`,
/// `_` and the `extra` bytes.
fn valid_segment(seg: &str, extra: &[u8]) -> bool {
    !seg.is_empty()
        && seg != "."
        && seg != ".."
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b) || extra.contains(&b))
}

impl SpiffeId {
    /// Parses `spiffe://trust.domain/path/segments`.
    pub fn parse(s: &str) -> Result<SpiffeId, SpiffeError> {
        let (td, path) = split_uri(s)?;
        let ok = path_segments(path).all(|seg| valid_segment(seg, b""));
        if !ok {
            return Err(SpiffeError::Path(path.to_string()));
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

/// An allow-list entry matching SPIFFE ids; see the module docs for syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffePattern {
    source: String,
    trust_domain: String,
    segments: Vec<String>,
    tail_any: bool,
}

impl SpiffePattern {
    /// Parses a pattern.
    pub fn parse(s: &str) -> Result<SpiffePattern, SpiffeError> {
        let (td, path) = split_uri(s)?;
        let mut segments: Vec<String> = path_segments(path).map(str::to_string).collect();
        let tail_any = segments.last().map(String::as_str) == Some("**");
        if tail_any {
            segments.pop();
        }
        for seg in &segments {
            if seg.contains("**") {
                return Err(SpiffeError::DoubleStar(s.to_string()));
            }
            if !valid_segment(seg, b"*") {
                return Err(SpiffeError::Path(path.to_string()));
            }
        }
        Ok(SpiffePattern {
            source: s.to_string(),
            trust_domain: td.to_string(),
            segments,
            tail_any,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `id` matches this pattern.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        if id.trust_domain != self.trust_domain {
            return false;
        }
        let fixed = self.segments.len();
        let count = path_segments(&id.path).count();
        let len_ok = if self.tail_any {
            count > fixed
        } else {
            count == fixed
        };
        len_ok
            && self
                .segments
                .iter()
                .zip(path_segments(&id.path))
                .all(|(p, s)| glob_segment(p.as_bytes(), s.as_bytes()))
    }
}

/// Matches one segment where `*` stands for any run of characters. Greedy
/// with one backtrack point (the last `*`), so time is at most
/// pattern × segment length whatever the number of `*`s.
fn glob_segment(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    // After the last `*` seen: where the pattern resumes, and where in `s`
    // that `*`'s run currently ends.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p + 1, i));
            p += 1;
        } else if p < pat.len() && pat[p] == s[i] {
            p += 1;
            i += 1;
        } else if let Some((resume, end)) = star {
            // Let the last `*` take one more character and retry.
            star = Some((resume, end + 1));
            p = resume;
            i = end + 1;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
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
            (
                "https://x/ns/a",
                SpiffeError::Scheme("https://x/ns/a".into()),
            ),
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

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn exact_pattern() {
        let p = SpiffePattern::parse("spiffe://td/ns/x/sa/y").unwrap();
        assert_eq!(p.as_str(), "spiffe://td/ns/x/sa/y");
        assert!(p.matches(&id("spiffe://td/ns/x/sa/y")));
        assert!(!p.matches(&id("spiffe://td/ns/x/sa/z")));
        assert!(!p.matches(&id("spiffe://other/ns/x/sa/y")));
        assert!(!p.matches(&id("spiffe://td/ns/x/sa/y/extra")));
        let bare = SpiffePattern::parse("spiffe://td").unwrap();
        assert!(bare.matches(&id("spiffe://td")));
        assert!(!bare.matches(&id("spiffe://td/x")));
    }

    #[test]
    fn segment_wildcards_stay_in_one_segment() {
        let p = SpiffePattern::parse("spiffe://td/ns/*/sa/web").unwrap();
        assert!(p.matches(&id("spiffe://td/ns/prod/sa/web")));
        assert!(!p.matches(&id("spiffe://td/ns/a/b/sa/web")));
        let p = SpiffePattern::parse("spiffe://td/ns/prod/sa/api-*").unwrap();
        assert!(p.matches(&id("spiffe://td/ns/prod/sa/api-v2")));
        assert!(p.matches(&id("spiffe://td/ns/prod/sa/api-")));
        assert!(!p.matches(&id("spiffe://td/ns/prod/sa/web")));
    }

    #[test]
    fn many_wildcards_in_one_segment() {
        let p = SpiffePattern::parse("spiffe://td/a*b*c*d*e*f*g*h*z").unwrap();
        let long = format!("spiffe://td/a{}", "bcdefgh".repeat(200));
        assert!(!p.matches(&id(&long)));
        assert!(p.matches(&id(&format!("{long}z"))));
        let p = SpiffePattern::parse("spiffe://td/*a*").unwrap();
        assert!(p.matches(&id("spiffe://td/xay")));
        assert!(p.matches(&id("spiffe://td/a")));
        assert!(!p.matches(&id("spiffe://td/xyz")));
    }

    #[test]
    fn double_star_tail() {
        let p = SpiffePattern::parse("spiffe://td/ns/prod/**").unwrap();
        assert!(p.matches(&id("spiffe://td/ns/prod/sa/web")));
        assert!(p.matches(&id("spiffe://td/ns/prod/x")));
        assert!(!p.matches(&id("spiffe://td/ns/prod")));
        assert!(!p.matches(&id("spiffe://td/ns/dev/sa/web")));
        assert_eq!(
            SpiffePattern::parse("spiffe://td/**/web"),
            Err(SpiffeError::DoubleStar("spiffe://td/**/web".into()))
        );
    }

    #[test]
    fn refuses_malformed_patterns() {
        for (bad, want) in [
            ("spiffe://*/ns/x", SpiffeError::TrustDomain("*".into())),
            ("td/ns/x", SpiffeError::Scheme("td/ns/x".into())),
            ("spiffe://td/ns//x", SpiffeError::Path("/ns//x".into())),
            ("spiffe://td/ns/../x", SpiffeError::Path("/ns/../x".into())),
            ("spiffe://td/ns/a b", SpiffeError::Path("/ns/a b".into())),
        ] {
            assert_eq!(SpiffePattern::parse(bad), Err(want), "{bad}");
        }
        let long = format!("spiffe://td/{}*", "a".repeat(MAX_SPIFFE_ID_BYTES));
        assert!(matches!(
            SpiffePattern::parse(&long),
            Err(SpiffeError::TooLong(_))
        ));
    }

    #[test]
    fn errors_name_the_input_and_the_rule() {
        let e = SpiffeId::parse("https://td/x").unwrap_err().to_string();
        assert!(
            e.contains("\"https://td/x\"") && e.contains("spiffe://"),
            "{e}"
        );
        let e = SpiffePattern::parse("spiffe://td/**/x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spiffe://td/**/x") && e.contains("last path segment"),
            "{e}"
        );
    }
}
