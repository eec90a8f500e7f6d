//! Errors of rule loading: every one names the source and line it is about.

use std::fmt;

/// Where a directive came from: a file name (or config source name) and the
/// 1-based line its directive starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File or source name, e.g. `REQUEST-942-APPLICATION-ATTACK-SQLI.conf`.
    pub source: String,
    /// 1-based line number of the directive's first line.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.line)
    }
}

/// A rule source the engine refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Where the offending directive is.
    pub location: Location,
    /// What is wrong, in words a rule author can act on.
    pub reason: String,
}

impl RuleError {
    /// An error at `source:line`.
    pub fn new(source: &str, line: usize, reason: impl Into<String>) -> Self {
        RuleError {
            location: Location {
                source: source.to_string(),
                line,
            },
            reason: reason.into(),
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}

impl std::error::Error for RuleError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_and_line() {
        let e = RuleError::new("x.conf", 12, "unknown operator `@nope`");
        assert_eq!(e.to_string(), "x.conf:12: unknown operator `@nope`");
    }
}
