//! Path matchers: the string matchers plus path templates.
//!
//! A path matcher always looks at the path *without* its query string, as
//! Envoy's RBAC `url_path` does, so `?x=/admin` cannot change a decision.
//!
//! Templates use the segment syntax of Istio's AuthorizationPolicy (and
//! Envoy's `uri_template`): `/api/{*}/items` where `{*}` (or `{name}`) is
//! exactly one non-empty segment, and `/files/{**}` where `{**}` (or
//! `{name=**}`) is zero or more segments and must come last.

use super::string::{RawStringMatcher, StringMatcher};
use serde::{Deserialize, Deserializer};

/// One segment of a [`PathTemplate`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

/// A compiled path template such as `/v1/{*}/items/{**}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Segment>,
}

impl PathTemplate {
    /// Parses a template; see the module docs for the syntax.
    pub fn parse(template: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid path template {template:?}: {why}");
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| bad("it must start with '/'"))?;
        let mut segments = Vec::new();
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let seg = if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
            {
                let op = match inner.split_once('=') {
                    Some((name, op)) => {
                        check_name(name).map_err(|w| bad(&w))?;
                        op
                    }
                    None if inner == "*" || inner == "**" => inner,
                    None => {
                        check_name(inner).map_err(|w| bad(&w))?;
                        "*"
                    }
                };
                match op {
                    "*" => Segment::One,
                    "**" if i + 1 == parts.len() => Segment::Rest,
                    "**" => return Err(bad("`{**}` may only be the last segment")),
                    other => {
                        return Err(bad(&format!("unknown operator {other:?}; use `*` or `**`")))
                    }
                }
            } else if part.contains(['{', '}', '*']) {
                return Err(bad(&format!(
                    "segment {part:?} mixes text and an operator; a segment is either text or one of `{{*}}`, `{{**}}`"
                )));
            } else {
                Segment::Literal(part.to_string())
            };
            segments.push(seg);
        }
        Ok(PathTemplate { segments })
    }

    /// True when `path` (already without query) fits the template.
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/');
        for seg in &self.segments {
            match seg {
                Segment::Rest => return true,
                Segment::One => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(lit) => match parts.next() {
                    Some(p) if p == lit => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(format!(
            "variable name {name:?} must be letters, digits or '_'"
        ))
    }
}

/// Matches a request path (without query) by string matcher or template.
#[derive(Debug, Clone)]
pub enum PathMatcher {
    /// `exact`, `prefix`, `suffix`, `contains` or `regex`.
    String(StringMatcher),
    /// `template`.
    Template(PathTemplate),
}

impl PathMatcher {
    /// True when the path (query already removed) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatcher::String(m) => m.matches(path),
            PathMatcher::Template(t) => t.matches(path),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPathMatcher {
    exact: Option<String>,
    prefix: Option<String>,
    suffix: Option<String>,
    contains: Option<String>,
    regex: Option<String>,
    template: Option<String>,
    #[serde(default)]
    ignore_case: bool,
}

impl<'de> Deserialize<'de> for PathMatcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawPathMatcher::deserialize(d)?;
        let built = match raw.template {
            Some(t) => {
                let others = [
                    &raw.exact,
                    &raw.prefix,
                    &raw.suffix,
                    &raw.contains,
                    &raw.regex,
                ];
                if others.iter().any(|o| o.is_some()) || raw.ignore_case {
                    Err(
                        "`template` cannot be combined with another matcher kind or `ignore_case`"
                            .to_string(),
                    )
                } else {
                    PathTemplate::parse(&t).map(PathMatcher::Template)
                }
            }
            None => RawStringMatcher {
                exact: raw.exact,
                prefix: raw.prefix,
                suffix: raw.suffix,
                contains: raw.contains,
                regex: raw.regex,
                ignore_case: raw.ignore_case,
            }
            .build()
            .map(PathMatcher::String)
            .map_err(|e| e.replace("`regex`", "`regex`, `template`")),
        };
        built.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> PathTemplate {
        PathTemplate::parse(s).unwrap()
    }

    #[test]
    fn single_segment_wildcard() {
        let p = t("/api/{*}/items");
        assert!(p.matches("/api/v1/items"));
        assert!(!p.matches("/api/v1/v2/items"));
        assert!(!p.matches("/api//items"));
        assert!(!p.matches("/api/v1/items/x"));
        assert!(t("/users/{id}").matches("/users/42"));
    }

    #[test]
    fn rest_wildcard() {
        let p = t("/files/{**}");
        assert!(p.matches("/files/a/b/c"));
        assert!(p.matches("/files/"));
        assert!(p.matches("/files"));
        assert!(!p.matches("/file"));
        assert!(t("/{path=**}").matches("/anything/at/all"));
    }

    #[test]
    fn literal_only_template() {
        assert!(t("/a/b").matches("/a/b"));
        assert!(!t("/a/b").matches("/a/b/"));
        assert!(!t("/a/b").matches("a/b"));
    }

    #[test]
    fn bad_templates_refused() {
        for bad in [
            "api",
            "/a/{**}/b",
            "/a/x{*}",
            "/a/{=*}",
            "/a/{x=***}",
            "/a/*",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matcher_json_forms() {
        let m: PathMatcher = serde_json::from_str(r#"{"template":"/a/{*}"}"#).unwrap();
        assert!(m.matches("/a/b"));
        let m: PathMatcher = serde_json::from_str(r#"{"prefix":"/admin"}"#).unwrap();
        assert!(m.matches("/admin/x"));
        let e = serde_json::from_str::<PathMatcher>(r#"{"template":"/a","prefix":"/b"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be combined"), "{e}");
        let e = serde_json::from_str::<PathMatcher>(r#"{}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`template`"), "{e}");
    }
}
