//! Istio's string match for AuthorizationPolicy fields.
//!
//! Every string in `principals`, `hosts`, `paths`, `methods`, `values`, …
//! is one of (Istio, "Authorization Policy" reference, *Rule*):
//! - exact: `abc`;
//! - prefix: `abc*`;
//! - suffix: `*abc`;
//! - presence: `*` (any non-empty value).
//!
//! Paths additionally accept templates with `{*}` (one segment) and `{**}`
//! (the rest, last only), as Istio's path templating does. A `*` anywhere
//! else is refused rather than taken literally.
//!
//! [`ValueMatch::covers`] and [`ValueMatch::disjoint`] are the *provable*
//! relations the team guardrails rely on: `true` only when it holds for
//! every string; `false` when it does not or cannot be shown.

use sdk_ext::matcher::PathTemplate;
use serde::{Deserialize, Deserializer};

/// Longest pattern accepted.
const MAX_PATTERN_BYTES: usize = 4096;

/// One Istio string pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueMatch {
    /// As written in the configuration (lower-cased for hosts).
    pub raw: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Presence,
    Template(PathTemplate),
}

impl ValueMatch {
    /// Parses a pattern; `templates` allows `{*}`/`{**}` path templates.
    pub fn parse(raw: &str, templates: bool) -> Result<ValueMatch, String> {
        if raw.len() > MAX_PATTERN_BYTES {
            return Err(format!(
                "pattern is {} bytes, more than {MAX_PATTERN_BYTES}",
                raw.len()
            ));
        }
        let kind = if templates && raw.contains('{') {
            Kind::Template(PathTemplate::parse(raw)?)
        } else if raw == "*" {
            Kind::Presence
        } else if let Some(p) = raw.strip_suffix('*') {
            Kind::Prefix(p.to_string())
        } else if let Some(s) = raw.strip_prefix('*') {
            Kind::Suffix(s.to_string())
        } else {
            Kind::Exact(raw.to_string())
        };
        let inner = match &kind {
            Kind::Prefix(s) | Kind::Suffix(s) | Kind::Exact(s) => s.as_str(),
            Kind::Presence | Kind::Template(_) => "",
        };
        if inner.contains('*') {
            return Err(format!(
                "invalid pattern {raw:?}: `*` may only be the whole value, its first or its last character{}",
                if templates { " (or `{*}`/`{**}` in a path template)" } else { "" }
            ));
        }
        if raw.is_empty() {
            return Err("empty pattern: use `*` for \"any value\"".into());
        }
        Ok(ValueMatch {
            raw: raw.to_string(),
            kind,
        })
    }

    /// True when `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match &self.kind {
            Kind::Exact(s) => value == s,
            Kind::Prefix(p) => value.starts_with(p.as_str()),
            Kind::Suffix(s) => value.ends_with(s.as_str()),
            Kind::Presence => !value.is_empty(),
            Kind::Template(t) => t.matches(value),
        }
    }

    /// The literal text every matching value starts with.
    fn literal_prefix(&self) -> Option<&str> {
        match &self.kind {
            Kind::Exact(s) | Kind::Prefix(s) => Some(s),
            Kind::Template(_) => {
                let end = self.raw.find('{').unwrap_or(self.raw.len());
                Some(&self.raw[..end])
            }
            Kind::Suffix(_) | Kind::Presence => None,
        }
    }

    /// Provably: every value `inner` matches, `self` matches too.
    pub fn covers(&self, inner: &ValueMatch) -> bool {
        match (&self.kind, &inner.kind) {
            (Kind::Presence, Kind::Exact(s)) => !s.is_empty(),
            (Kind::Presence, Kind::Prefix(s) | Kind::Suffix(s)) => !s.is_empty(),
            (Kind::Presence, Kind::Presence | Kind::Template(_)) => true,
            (Kind::Exact(a), Kind::Exact(b)) => a == b,
            (Kind::Prefix(p), Kind::Exact(s) | Kind::Prefix(s)) => s.starts_with(p.as_str()),
            (Kind::Prefix(p), Kind::Template(_)) => inner
                .literal_prefix()
                .is_some_and(|lp| lp.starts_with(p.as_str())),
            (Kind::Suffix(x), Kind::Exact(s) | Kind::Suffix(s)) => s.ends_with(x.as_str()),
            (Kind::Template(t), Kind::Exact(s)) => t.matches(s),
            (Kind::Template(_), Kind::Template(_)) => self.raw == inner.raw,
            _ => false,
        }
    }

    /// Provably: no value matches both.
    pub fn disjoint(&self, other: &ValueMatch) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::Exact(a), _) => !other.matches(a),
            (_, Kind::Exact(b)) => !self.matches(b),
            (Kind::Suffix(a), Kind::Suffix(b)) => {
                !a.ends_with(b.as_str()) && !b.ends_with(a.as_str())
            }
            _ => match (self.literal_prefix(), other.literal_prefix()) {
                (Some(a), Some(b)) => !a.starts_with(b) && !b.starts_with(a),
                _ => false,
            },
        }
    }
}

/// A list of patterns for one field (any may match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns(pub Vec<ValueMatch>);

impl Patterns {
    /// True when no pattern is set (the field is unset).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when any pattern matches any of `values`.
    pub fn any_match<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> bool {
        values
            .into_iter()
            .any(|v| self.0.iter().any(|p| p.matches(v)))
    }

    /// Provably: every value some pattern of `inner` matches is matched by
    /// a pattern of `self`. An empty `inner` (any value) is covered by
    /// nothing but an empty `self`.
    pub fn covers(&self, inner: &Patterns) -> bool {
        if self.is_empty() {
            return true;
        }
        !inner.is_empty() && inner.0.iter().all(|i| self.0.iter().any(|o| o.covers(i)))
    }

    /// Provably: no value is matched by both lists (both non-empty).
    pub fn disjoint(&self, other: &Patterns) -> bool {
        !self.is_empty()
            && !other.is_empty()
            && self.0.iter().all(|a| other.0.iter().all(|b| a.disjoint(b)))
    }
}

fn patterns<'de, D: Deserializer<'de>>(
    d: D,
    templates: bool,
    lower: bool,
) -> Result<Patterns, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    if raw.is_empty() {
        return Err(serde::de::Error::custom(
            "an empty list matches nothing useful: list at least one value or leave the field out",
        ));
    }
    raw.iter()
        .map(|s| {
            let s = if lower {
                s.to_ascii_lowercase()
            } else {
                s.clone()
            };
            ValueMatch::parse(&s, templates)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Patterns)
        .map_err(serde::de::Error::custom)
}

/// Deserializes plain patterns (exact, `prefix*`, `*suffix`, `*`).
pub fn plain<'de, D: Deserializer<'de>>(d: D) -> Result<Patterns, D::Error> {
    patterns(d, false, false)
}

/// Deserializes patterns compared case-insensitively (hosts).
pub fn lower<'de, D: Deserializer<'de>>(d: D) -> Result<Patterns, D::Error> {
    patterns(d, false, true)
}

/// Deserializes path patterns (plain or `{*}`/`{**}` templates).
pub fn paths<'de, D: Deserializer<'de>>(d: D) -> Result<Patterns, D::Error> {
    patterns(d, true, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ValueMatch {
        ValueMatch::parse(s, true).unwrap()
    }

    #[test]
    fn istio_forms() {
        assert!(v("abc").matches("abc") && !v("abc").matches("abcd"));
        assert!(v("/api/*").matches("/api/x") && !v("/api/*").matches("/ap"));
        assert!(v("*.json").matches("a.json") && !v("*.json").matches("a.xml"));
        assert!(v("*").matches("x") && !v("*").matches(""));
        assert!(v("/a/{*}/c").matches("/a/b/c") && !v("/a/{*}/c").matches("/a/b/b/c"));
        assert!(v("/a/{**}").matches("/a/b/c/d"));
        for bad in ["a*b", "**x", "", "/a/{***}"] {
            assert!(ValueMatch::parse(bad, true).is_err(), "{bad}");
        }
        // Without templates, braces are literal text.
        assert!(ValueMatch::parse("{x}", false).unwrap().matches("{x}"));
    }

    #[test]
    fn coverage_is_sound() {
        assert!(v("/api/*").covers(&v("/api/v1/*")));
        assert!(v("/api/*").covers(&v("/api/x")));
        assert!(v("/api/*").covers(&v("/api/{*}/x")));
        assert!(!v("/api/v1/*").covers(&v("/api/*")));
        assert!(v("*").covers(&v("/x")));
        assert!(!v("/x").covers(&v("*")));
        assert!(v("*.json").covers(&v("*.a.json")));
        assert!(v("/a/{*}").covers(&v("/a/b")));
        assert!(!v("/a/{*}").covers(&v("/a/*")));
        assert!(!v("*.json").covers(&v("/a*")));
    }

    #[test]
    fn disjointness_is_sound() {
        assert!(v("/a/*").disjoint(&v("/b/*")));
        assert!(!v("/a/*").disjoint(&v("/a/b*")));
        assert!(v("/a").disjoint(&v("/b*")));
        assert!(!v("/b/x").disjoint(&v("/b*")));
        assert!(v("/x/{*}").disjoint(&v("/admin*")));
        assert!(!v("*.json").disjoint(&v("/a*")));
        assert!(!v("*").disjoint(&v("/a")));
    }

    #[test]
    fn lists() {
        let a = Patterns(vec![v("/a/*"), v("/b")]);
        assert!(a.covers(&Patterns(vec![v("/a/x"), v("/b")])));
        assert!(!a.covers(&Patterns(vec![v("/a/x"), v("/c")])));
        assert!(!a.covers(&Patterns::default()));
        assert!(Patterns::default().covers(&a));
        assert!(a.any_match(["/q", "/b"]));
        assert!(a.disjoint(&Patterns(vec![v("/c*")])));
    }
}
