//! String matchers in the shape of Envoy's `StringMatcher`.
//!
//! JSON: exactly one of `exact`, `prefix`, `suffix`, `contains`, `regex`, and
//! optionally `ignore_case` (not with `regex`; use `(?i)` there). A regex must
//! match the whole value, as Envoy's `safe_regex` does.

use regex::Regex;
use serde::{Deserialize, Deserializer};

/// Largest compiled regex program accepted, so a config cannot make the VM
/// allocate without bound.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A compiled string matcher.
#[derive(Debug, Clone)]
pub struct StringMatcher {
    kind: Kind,
    ignore_case: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
}

impl StringMatcher {
    /// Matches the whole string.
    pub fn exact(s: impl Into<String>) -> Self {
        Self::plain(Kind::Exact(s.into()))
    }
    /// Matches strings starting with `s`.
    pub fn prefix(s: impl Into<String>) -> Self {
        Self::plain(Kind::Prefix(s.into()))
    }
    /// Matches strings ending with `s`.
    pub fn suffix(s: impl Into<String>) -> Self {
        Self::plain(Kind::Suffix(s.into()))
    }
    /// Matches strings containing `s`.
    pub fn contains(s: impl Into<String>) -> Self {
        Self::plain(Kind::Contains(s.into()))
    }
    /// Matches strings the regex matches entirely.
    pub fn regex(pattern: &str) -> Result<Self, String> {
        Ok(Self::plain(Kind::Regex(compile_full_match(pattern)?)))
    }

    fn plain(kind: Kind) -> Self {
        StringMatcher {
            kind,
            ignore_case: false,
        }
    }

    /// Makes a literal matcher compare ASCII case-insensitively; has no
    /// effect on a regex matcher (write `(?i)` in the pattern instead).
    pub fn ignoring_case(mut self) -> Self {
        if let Kind::Exact(s) | Kind::Prefix(s) | Kind::Suffix(s) | Kind::Contains(s) =
            &mut self.kind
        {
            *s = s.to_ascii_lowercase();
            self.ignore_case = true;
        }
        self
    }

    /// True when `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        if !self.ignore_case {
            return self.matches_kind(value);
        }
        // The pattern is stored lower-case; compare in place where the
        // kind allows (no copy of the value per request).
        let v = value.as_bytes();
        match &self.kind {
            Kind::Exact(s) => value.eq_ignore_ascii_case(s),
            Kind::Prefix(s) => v
                .get(..s.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(s.as_bytes())),
            Kind::Suffix(s) => v
                .len()
                .checked_sub(s.len())
                .is_some_and(|at| v[at..].eq_ignore_ascii_case(s.as_bytes())),
            Kind::Contains(_) | Kind::Regex(_) => self.matches_kind(&value.to_ascii_lowercase()),
        }
    }

    fn matches_kind(&self, v: &str) -> bool {
        match &self.kind {
            Kind::Exact(s) => v == s,
            Kind::Prefix(s) => v.starts_with(s.as_str()),
            Kind::Suffix(s) => v.ends_with(s.as_str()),
            Kind::Contains(s) => v.contains(s.as_str()),
            Kind::Regex(r) => r.is_match(v),
        }
    }
}

/// Compiles `pattern` so that it must match an entire value.
pub(crate) fn compile_full_match(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regex {pattern:?}: {e}"))
}

/// The JSON form, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStringMatcher {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
    #[serde(default)]
    pub ignore_case: bool,
}

impl RawStringMatcher {
    /// Validates into a matcher.
    pub(crate) fn build(self) -> Result<StringMatcher, String> {
        let mut kinds = Vec::new();
        if let Some(s) = self.exact {
            kinds.push(Kind::Exact(s));
        }
        if let Some(s) = self.prefix {
            kinds.push(Kind::Prefix(s));
        }
        if let Some(s) = self.suffix {
            kinds.push(Kind::Suffix(s));
        }
        if let Some(s) = self.contains {
            kinds.push(Kind::Contains(s));
        }
        let is_regex = self.regex.is_some();
        if let Some(p) = self.regex {
            kinds.push(Kind::Regex(compile_full_match(&p)?));
        }
        if kinds.len() != 1 {
            return Err(format!(
                "a string matcher needs exactly one of `exact`, `prefix`, `suffix`, `contains`, `regex` (found {})",
                kinds.len()
            ));
        }
        if is_regex && self.ignore_case {
            return Err(
                "`ignore_case` does not apply to `regex`; write `(?i)` in the pattern".into(),
            );
        }
        let m = StringMatcher::plain(kinds.remove(0));
        Ok(if self.ignore_case {
            m.ignoring_case()
        } else {
            m
        })
    }
}

impl<'de> Deserialize<'de> for StringMatcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawStringMatcher::deserialize(d)?
            .build()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<StringMatcher, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn literal_kinds() {
        assert!(parse(r#"{"exact":"a"}"#).unwrap().matches("a"));
        assert!(!parse(r#"{"exact":"a"}"#).unwrap().matches("ab"));
        assert!(parse(r#"{"prefix":"/api"}"#).unwrap().matches("/api/x"));
        assert!(parse(r#"{"suffix":".json"}"#).unwrap().matches("a.json"));
        assert!(parse(r#"{"contains":"mid"}"#).unwrap().matches("amidb"));
    }

    #[test]
    fn ignore_case() {
        let m = parse(r#"{"exact":"Ops","ignore_case":true}"#).unwrap();
        assert!(m.matches("OPS"));
        assert!(m.matches("ops"));
        assert!(!parse(r#"{"exact":"Ops"}"#).unwrap().matches("ops"));
    }

    #[test]
    fn ignore_case_every_literal_kind_agrees_with_lower_casing() {
        // Compared in place for exact, prefix and suffix: the same answers
        // as lower-casing the value first, including values shorter than
        // the pattern and non-ASCII bytes (which only match themselves).
        let values = [
            "",
            "/",
            "/API",
            "/api/x",
            "/Api/X.JSON",
            "x.Json",
            "é/API",
            "/APIé",
            "API",
            "ops",
            "OPS",
        ];
        for pattern in [
            r#"{"exact":"/Api","ignore_case":true}"#,
            r#"{"prefix":"/Api","ignore_case":true}"#,
            r#"{"suffix":".JSON","ignore_case":true}"#,
            r#"{"contains":"pI/","ignore_case":true}"#,
            r#"{"prefix":"é/a","ignore_case":true}"#,
            r#"{"suffix":"Ié","ignore_case":true}"#,
        ] {
            let m = parse(pattern).unwrap();
            for v in values {
                assert_eq!(
                    m.matches(v),
                    m.matches_kind(&v.to_ascii_lowercase()),
                    "{pattern} on {v:?}"
                );
            }
        }
        let m = parse(r#"{"prefix":"/Api","ignore_case":true}"#).unwrap();
        assert!(m.matches("/aPI/x") && !m.matches("/ap"));
        let m = parse(r#"{"suffix":".JSON","ignore_case":true}"#).unwrap();
        assert!(m.matches("a.json") && !m.matches("json"));
    }

    #[test]
    fn regex_matches_whole_value() {
        let m = parse(r#"{"regex":"[a-z]+"}"#).unwrap();
        assert!(m.matches("abc"));
        assert!(!m.matches("abc1"));
        let alt = StringMatcher::regex("a|b").unwrap();
        assert!(alt.matches("a") && alt.matches("b") && !alt.matches("ab"));
    }

    #[test]
    fn invalid_forms_refused() {
        assert!(parse(r#"{"regex":"("}"#)
            .unwrap_err()
            .contains("invalid regex"));
        assert!(parse(r#"{}"#).unwrap_err().contains("exactly one"));
        assert!(parse(r#"{"exact":"a","prefix":"b"}"#)
            .unwrap_err()
            .contains("exactly one"));
        assert!(parse(r#"{"regex":"a","ignore_case":true}"#)
            .unwrap_err()
            .contains("(?i)"));
        assert!(parse(r#"{"exakt":"a"}"#)
            .unwrap_err()
            .contains("unknown field"));
    }
}
