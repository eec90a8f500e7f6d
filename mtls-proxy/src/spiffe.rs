//! SPIFFE ids (`spiffe://trust-domain/path`) and allow-list patterns over them.
//!
//! Pattern syntax: the trust domain is matched exactly (no wildcards there, so a
//! pattern can never widen to another trust domain). In the path, `*` inside a
//! segment matches any characters except `/`; a final segment `**` matches one or
//! more remaining segments. Examples: `spiffe://td/ns/*/sa/web`,
//! `spiffe://td/ns/prod/sa/api-*`, `spiffe://td/ns/prod/**`.

use std::fmt;

/// Why a SPIFFE id or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    /// The scheme is not `spiffe://`.
    #[error("{0:?} is not a SPIFFE id: it must start with \"spiffe://\"")]
    Scheme(String),
    /// The trust domain is empty or has characters SPIFFE does not allow.
    #[error("{0:?} has an invalid trust domain: use lowercase letters, digits, '.', '-' and '_'")]
    TrustDomain(String),
    /// The path is malformed (empty segment, `.`/`..`, trailing slash, bad char).
    #[error("{0:?} has an invalid path: segments must be non-empty, not '.' or '..', and use [A-Za-z0-9._-]")]
    Path(String),
    /// A `**` appears somewhere other than as the last segment.
    #[error("{0:?}: '**' is only allowed as the whole last path segment")]
    DoubleStar(String),
}

/// A validated SPIFFE id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

fn valid_td(td: &str) -> bool {
    !td.is_empty()
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn split_uri(s: &str) -> Result<(&str, &str), SpiffeError> {
    let rest = s
        .strip_prefix("spiffe://")
        .ok_or_else(|| SpiffeError::Scheme(s.to_string()))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    })
}

impl SpiffeId {
    /// Parses and validates a SPIFFE id per the SPIFFE-ID spec.
    pub fn parse(s: &str) -> Result<Self, SpiffeError> {
        let (td, path) = split_uri(s)?;
        if !valid_td(td) {
            return Err(SpiffeError::TrustDomain(s.to_string()));
        }
        if !path.is_empty() {
            for seg in path[1..].split('/') {
                let ok = !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !ok {
                    return Err(SpiffeError::Path(s.to_string()));
                }
            }
        }
        Ok(SpiffeId {
            trust_domain: td.to_string(),
            path: path.to_string(),
        })
    }

    /// The trust domain, e.g. `example.org`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path including its leading `/`, or empty.
    pub fn path(&self) -> &str {
        &self.path
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
    pub fn parse(s: &str) -> Result<Self, SpiffeError> {
        let (td, path) = split_uri(s)?;
        if !valid_td(td) {
            return Err(SpiffeError::TrustDomain(s.to_string()));
        }
        let mut segments: Vec<String> = if path.is_empty() {
            Vec::new()
        } else {
            path[1..].split('/').map(str::to_string).collect()
        };
        let mut tail_any = false;
        if segments.last().map(String::as_str) == Some("**") {
            segments.pop();
            tail_any = true;
        }
        for seg in &segments {
            if seg.contains("**") {
                return Err(SpiffeError::DoubleStar(s.to_string()));
            }
            let ok = !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-*".contains(&b));
            if !ok {
                return Err(SpiffeError::Path(s.to_string()));
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
        let segs: Vec<&str> = if id.path.is_empty() {
            Vec::new()
        } else {
            id.path[1..].split('/').collect()
        };
        let fixed = self.segments.len();
        let len_ok = if self.tail_any {
            segs.len() > fixed
        } else {
            segs.len() == fixed
        };
        len_ok
            && self
                .segments
                .iter()
                .zip(&segs)
                .all(|(p, s)| glob_segment(p.as_bytes(), s.as_bytes()))
    }
}

/// Matches one segment where `*` stands for any run of characters.
pub(crate) fn glob_segment(pat: &[u8], s: &[u8]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob_segment(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob_segment(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn parses_valid_ids() {
        let i = id("spiffe://td.example/ns/x/sa/y");
        assert_eq!(i.trust_domain(), "td.example");
        assert_eq!(i.path(), "/ns/x/sa/y");
        assert_eq!(i.to_string(), "spiffe://td.example/ns/x/sa/y");
        assert_eq!(id("spiffe://td").path(), "");
    }

    #[test]
    fn refuses_invalid_ids() {
        assert!(matches!(
            SpiffeId::parse("https://td/x"),
            Err(SpiffeError::Scheme(_))
        ));
        assert!(matches!(
            SpiffeId::parse("spiffe://TD/x"),
            Err(SpiffeError::TrustDomain(_))
        ));
        assert!(matches!(
            SpiffeId::parse("spiffe:///x"),
            Err(SpiffeError::TrustDomain(_))
        ));
        for bad in [
            "spiffe://td/",
            "spiffe://td/a//b",
            "spiffe://td/a/../b",
            "spiffe://td/a b",
        ] {
            assert!(
                matches!(SpiffeId::parse(bad), Err(SpiffeError::Path(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn exact_pattern() {
        let p = SpiffePattern::parse("spiffe://td/ns/x/sa/y").unwrap();
        assert!(p.matches(&id("spiffe://td/ns/x/sa/y")));
        assert!(!p.matches(&id("spiffe://td/ns/x/sa/z")));
        assert!(!p.matches(&id("spiffe://other/ns/x/sa/y")));
        assert!(!p.matches(&id("spiffe://td/ns/x/sa/y/extra")));
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
    fn double_star_tail() {
        let p = SpiffePattern::parse("spiffe://td/ns/prod/**").unwrap();
        assert!(p.matches(&id("spiffe://td/ns/prod/sa/web")));
        assert!(p.matches(&id("spiffe://td/ns/prod/x")));
        assert!(!p.matches(&id("spiffe://td/ns/prod")));
        assert!(!p.matches(&id("spiffe://td/ns/dev/sa/web")));
        assert!(matches!(
            SpiffePattern::parse("spiffe://td/**/web"),
            Err(SpiffeError::DoubleStar(_))
        ));
    }

    #[test]
    fn trust_domain_is_never_wildcarded() {
        assert!(matches!(
            SpiffePattern::parse("spiffe://*/ns/x"),
            Err(SpiffeError::TrustDomain(_))
        ));
    }
}
