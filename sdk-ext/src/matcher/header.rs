//! Header conditions in the shape of Envoy's `HeaderMatcher`.
//!
//! JSON: `{"name": "x-team", "string_match": {"exact": "ops"}}` or
//! `{"name": "x-key", "present_match": true}`, optionally with
//! `"invert_match": true`. Repeated headers are joined with `,` before a value
//! is matched (as Envoy does), so a second copy cannot smuggle a value.

use super::StringMatcher;
use crate::RequestView;
use serde::{Deserialize, Deserializer};

/// A condition on one request header, in the shape of Envoy's
/// `HeaderMatcher`. Repeated headers are joined with `,` before matching.
#[derive(Debug, Clone)]
pub struct HeaderMatcher {
    /// Lower-case header name.
    pub name: String,
    /// What the value must satisfy.
    pub test: HeaderTest,
    /// Negate the result (a missing header then matches a value test).
    pub invert: bool,
}

/// The test a [`HeaderMatcher`] applies.
#[derive(Debug, Clone)]
pub enum HeaderTest {
    /// The header is present (`present_match: true`) or absent (`false`).
    Present(bool),
    /// The joined value matches.
    Value(StringMatcher),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderMatcher {
    name: String,
    string_match: Option<StringMatcher>,
    present_match: Option<bool>,
    #[serde(default)]
    invert_match: bool,
}

impl<'de> Deserialize<'de> for HeaderMatcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = RawHeaderMatcher::deserialize(d)?;
        let name = raw.name.to_ascii_lowercase();
        if name.is_empty() || name.starts_with(':') || !name.bytes().all(is_header_char) {
            return Err(D::Error::custom(format!(
                "invalid header name {:?}: use a regular header name (match the method, path and host with `methods`, `paths` and `hosts`)",
                raw.name
            )));
        }
        let test = match (raw.string_match, raw.present_match) {
            (Some(m), None) => HeaderTest::Value(m),
            (None, Some(p)) => HeaderTest::Present(p),
            _ => {
                return Err(D::Error::custom(
                    "a header matcher needs exactly one of `string_match` or `present_match`",
                ))
            }
        };
        Ok(HeaderMatcher {
            name,
            test,
            invert: raw.invert_match,
        })
    }
}

fn is_header_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl HeaderMatcher {
    /// True when the request satisfies this condition.
    pub fn matches(&self, req: &RequestView) -> bool {
        let value = req.header_joined(&self.name);
        let hit = match &self.test {
            HeaderTest::Present(want) => value.is_some() == *want,
            HeaderTest::Value(m) => value.as_deref().is_some_and(|v| m.matches(v)),
        };
        hit != self.invert
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(json: &str) -> Result<HeaderMatcher, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    fn req(headers: &[(&str, &str)]) -> RequestView {
        RequestView {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn value_present_and_inverted() {
        let team = m(r#"{"name":"X-Team","string_match":{"exact":"ops"}}"#).unwrap();
        assert!(team.matches(&req(&[("x-team", "ops")])));
        assert!(!team.matches(&req(&[("x-team", "dev"), ("x-team", "ops")])));
        assert!(!team.matches(&req(&[])));
        let present = m(r#"{"name":"x-key","present_match":true}"#).unwrap();
        assert!(present.matches(&req(&[("x-key", "")])));
        let not_prod =
            m(r#"{"name":"x-env","string_match":{"exact":"prod"},"invert_match":true}"#).unwrap();
        assert!(not_prod.matches(&req(&[])));
        assert!(!not_prod.matches(&req(&[("x-env", "prod")])));
    }

    #[test]
    fn refuses_bad_forms() {
        assert!(m(r#"{"name":":path","present_match":true}"#)
            .unwrap_err()
            .contains("invalid header name"));
        assert!(m(r#"{"name":"x"}"#).unwrap_err().contains("exactly one of"));
        assert!(
            m(r#"{"name":"x","present_match":true,"string_match":{"exact":"a"}}"#)
                .unwrap_err()
                .contains("exactly one of")
        );
    }
}
