//! Strict plugin configuration.
//!
//! Envoy hands a plugin its configuration as bytes; Palisade reads them as
//! JSON into the plugin's own `serde` types. Every struct is expected to use
//! `#[serde(deny_unknown_fields)]`, and value types (matchers, CIDRs, regexes)
//! validate while they deserialize, so one pass both parses and checks. Any
//! failure becomes a [`ConfigError`] naming the JSON path (`policies[0].name`)
//! and the reason, which the filter logs before refusing to start: a refused
//! configuration never turns into "allow everything".

use serde::de::DeserializeOwned;
use std::fmt;

/// A configuration the plugin refuses, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the offending field, e.g. `policies[0].rules[1].paths[0]`;
    /// empty for the document itself.
    pub path: String,
    /// Why it was refused, in words a user can act on.
    pub reason: String,
}

impl ConfigError {
    /// An error about the field at `path`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "invalid configuration: {}", self.reason)
        } else {
            write!(
                f,
                "invalid configuration at `{}`: {}",
                self.path, self.reason
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Checks a configured name (a policy, rule, provider or consumer name): 1
/// to `max_len` ASCII letters, digits, `-`, `_` or `.`, so it is safe in
/// metric names and log lines. `what` names it in the error, e.g.
/// `"rule name"`.
pub fn check_name(name: &str, what: &str, max_len: usize) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= max_len
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {name:?}: use 1 to {max_len} letters, digits, '-', '_' or '.'"
        ))
    }
}

/// Parses JSON configuration bytes into `T`, naming the failing path.
///
/// An empty configuration is refused: every Palisade plugin needs one, and
/// guessing a default for a security filter is how things get let through.
pub fn parse_config<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigError::new(
            "",
            "the plugin configuration is empty; a JSON object is required",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, strip_position(&e.into_inner().to_string()))
    })?;
    de.end()
        .map_err(|e| ConfigError::new("", strip_position(&e.to_string())))?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the path already locates the
/// field, and the position is of the single-line JSON Envoy passes, so keep
/// the message but say "in the JSON" rather than dropping it.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => format!("{} ({})", &msg[..i], &msg[i + 1..]),
        None => msg.to_string(),
    }
}

/// Builds JSON paths for errors found after deserialization (cross-field
/// checks), in the same `a[0].b` form serde errors use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// The document root.
    pub fn root() -> Self {
        FieldPath(String::new())
    }

    /// The named field below this path.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// The list element below this path.
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// An error about this field.
    pub fn error(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(self.0.clone(), reason)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn names_are_checked_with_their_kind_and_limit_in_the_error() {
        assert_eq!(check_name("api-v1.read_all", "rule name", 64), Ok(()));
        let e = check_name("", "rule name", 64).unwrap_err();
        assert_eq!(
            e,
            "invalid rule name \"\": use 1 to 64 letters, digits, '-', '_' or '.'"
        );
        assert!(check_name("a b", "name", 64).is_err());
        assert!(check_name(&"a".repeat(129), "policy name", 128)
            .unwrap_err()
            .contains("1 to 128"));
        assert_eq!(check_name(&"a".repeat(128), "policy name", 128), Ok(()));
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        n: u8,
    }

    #[test]
    fn unknown_field_names_its_path() {
        let err = parse_config::<Outer>(br#"{"items":[{"n":1},{"n":2,"bogus":3}]}"#).unwrap_err();
        assert_eq!(err.path, "items[1].bogus");
        assert!(err.reason.contains("unknown field `bogus`"), "{err}");
    }

    #[test]
    fn wrong_type_names_its_path() {
        let err = parse_config::<Outer>(br#"{"items":[{"n":"x"}]}"#).unwrap_err();
        assert_eq!(err.path, "items[0].n");
        assert!(err
            .to_string()
            .starts_with("invalid configuration at `items[0].n`"));
    }

    #[test]
    fn empty_and_trailing_input_refused() {
        assert!(parse_config::<Outer>(b"  ").is_err());
        let err = parse_config::<Outer>(br#"{"items":[]} x"#).unwrap_err();
        assert!(err.reason.contains("trailing"), "{err}");
    }

    #[test]
    fn missing_field_is_reported() {
        let err = parse_config::<Outer>(b"{}").unwrap_err();
        assert!(err.reason.contains("missing field `items`"), "{err}");
    }

    #[test]
    fn field_path_builds_serde_style_paths() {
        let p = FieldPath::root().field("policies").index(2).field("rules");
        assert_eq!(p.to_string(), "policies[2].rules");
        assert_eq!(p.error("empty").path, "policies[2].rules");
    }
}
