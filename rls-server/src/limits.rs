//! The limits file, in the shape of envoyproxy/ratelimit's configuration:
//!
//! ```yaml
//! domain: edge
//! descriptors:
//!   - key: rule
//!     value: per-client
//!     descriptors:
//!       - key: client_ip
//!         rate_limit: { unit: second, requests_per_unit: 10 }
//! ```
//!
//! A request descriptor (an ordered list of key/value entries) walks the
//! tree one entry per level: a node with the same key and value wins over a
//! node with the same key and no value (which matches any value). The limit
//! is the `rate_limit` of the node the last entry reached; a descriptor that
//! leaves the tree, or ends on a node without a limit, is not limited.

use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// Window units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day.
    Day,
}

impl Unit {
    /// Window length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
        }
    }

    /// The RLS protobuf enum value.
    pub fn proto(self) -> i32 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
        }
    }
}

/// A limit: `requests_per_unit` per fixed `unit` window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Window.
    pub unit: Unit,
    /// Hits allowed per window.
    pub requests_per_unit: u32,
}

/// One node of the descriptor tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Entry key to match.
    pub key: String,
    /// Entry value to match; absent matches any value.
    #[serde(default)]
    pub value: Option<String>,
    /// The limit when a descriptor ends here.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Deeper levels.
    #[serde(default)]
    pub descriptors: Vec<Node>,
}

/// A limits file: one domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The domain requests name.
    pub domain: String,
    /// Top-level nodes.
    pub descriptors: Vec<Node>,
}

/// A limits file that cannot be used.
#[derive(Debug)]
pub enum LimitsError {
    /// The file could not be read.
    Read(String, std::io::Error),
    /// The YAML is not a limits file.
    Parse(String),
    /// A value is out of range.
    Invalid(String),
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitsError::Read(p, e) => write!(f, "cannot read limits file {p}: {e}"),
            LimitsError::Parse(e) => write!(f, "invalid limits file: {e}"),
            LimitsError::Invalid(e) => write!(f, "invalid limits file: {e}"),
        }
    }
}

impl std::error::Error for LimitsError {}

impl Limits {
    /// Reads and checks a limits file.
    pub fn load(path: &Path) -> Result<Limits, LimitsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LimitsError::Read(path.display().to_string(), e))?;
        Limits::parse(&text)
    }

    /// Parses and checks limits YAML.
    pub fn parse(text: &str) -> Result<Limits, LimitsError> {
        let limits: Limits =
            serde_yaml::from_str(text).map_err(|e| LimitsError::Parse(e.to_string()))?;
        if limits.domain.is_empty() {
            return Err(LimitsError::Invalid("`domain` must not be empty".into()));
        }
        check_nodes(&limits.descriptors, "descriptors")?;
        Ok(limits)
    }

    /// The limit for a descriptor's entries, if any.
    pub fn lookup<'a, I>(&self, entries: I) -> Option<RateLimit>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut level = &self.descriptors;
        let mut reached: Option<&Node> = None;
        for (key, value) in entries {
            let node = level
                .iter()
                .find(|n| n.key == key && n.value.as_deref() == Some(value))
                .or_else(|| level.iter().find(|n| n.key == key && n.value.is_none()))?;
            reached = Some(node);
            level = &node.descriptors;
        }
        reached.and_then(|n| n.rate_limit)
    }
}

fn check_nodes(nodes: &[Node], path: &str) -> Result<(), LimitsError> {
    for (i, n) in nodes.iter().enumerate() {
        let here = format!("{path}[{i}]");
        if n.key.is_empty() {
            return Err(LimitsError::Invalid(format!(
                "{here}.key must not be empty"
            )));
        }
        if n.rate_limit.is_some_and(|l| l.requests_per_unit == 0) {
            return Err(LimitsError::Invalid(format!(
                "{here}.rate_limit.requests_per_unit must be at least 1"
            )));
        }
        check_nodes(&n.descriptors, &format!("{here}.descriptors"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
domain: edge
descriptors:
  - key: rule
    value: per-client
    descriptors:
      - key: client_ip
        value: 10.0.0.1
        rate_limit: { unit: minute, requests_per_unit: 100 }
      - key: client_ip
        rate_limit: { unit: second, requests_per_unit: 5 }
  - key: rule
    value: open
"#;

    #[test]
    fn specific_value_wins_over_wildcard() {
        let l = Limits::parse(FILE).unwrap();
        let specific = l
            .lookup([("rule", "per-client"), ("client_ip", "10.0.0.1")])
            .unwrap();
        assert_eq!(
            (specific.unit, specific.requests_per_unit),
            (Unit::Minute, 100)
        );
        let any = l
            .lookup([("rule", "per-client"), ("client_ip", "10.9.9.9")])
            .unwrap();
        assert_eq!((any.unit, any.requests_per_unit), (Unit::Second, 5));
    }

    #[test]
    fn unmatched_or_limitless_descriptors_are_not_limited() {
        let l = Limits::parse(FILE).unwrap();
        assert_eq!(l.lookup([("rule", "open")]), None);
        assert_eq!(l.lookup([("rule", "other")]), None);
        assert_eq!(l.lookup([("rule", "per-client")]), None);
        assert_eq!(l.lookup(Vec::<(&str, &str)>::new()), None);
        assert_eq!(
            l.lookup([("rule", "per-client"), ("client_ip", "x"), ("deeper", "y")]),
            None
        );
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert!(Limits::parse("domain: ''\ndescriptors: []\n")
            .unwrap_err()
            .to_string()
            .contains("domain"));
        let e = Limits::parse("domain: d\ndescriptors:\n  - key: a\n    rate_limit: { unit: second, requests_per_unit: 0 }\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("descriptors[0].rate_limit.requests_per_unit"),
            "{e}"
        );
        let e = Limits::parse("domain: d\ndescriptors:\n  - key: a\n    rate_limit: { unit: fortnight, requests_per_unit: 1 }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fortnight"), "{e}");
        assert!(Limits::parse("domain: d\ndescriptors: []\nextra: 1\n").is_err());
    }
}
