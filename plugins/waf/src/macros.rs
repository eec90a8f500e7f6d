//! Macro expansion: `%{tx.anomaly_score}`, `%{MATCHED_VAR}`, `%{rule.id}`.
//!
//! A [`Template`] is parsed once when rules load; expansion asks a
//! [`MacroSource`] for each reference. An unknown reference expands to the
//! empty string, as in ModSecurity.

use std::borrow::Cow;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// Collection or variable name (lower-case) and optional key
    /// (lower-case, as collection keys are case-insensitive).
    Ref(String, Option<String>),
}

/// Text with `%{...}` references.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Resolves macro references during expansion.
pub trait MacroSource {
    /// The value of `name` (lower-case, e.g. `tx`, `matched_var`) with the
    /// optional lower-case `key`.
    fn lookup(&self, name: &str, key: Option<&str>) -> Option<String>;
}

impl Template {
    /// Parses text; an unterminated `%{` is kept literally.
    pub fn parse(text: &str) -> Template {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut lit = String::new();
        while let Some(start) = rest.find("%{") {
            let Some(len) = rest[start + 2..].find('}') else {
                break;
            };
            lit.push_str(&rest[..start]);
            let inner = &rest[start + 2..start + 2 + len];
            if !lit.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut lit)));
            }
            let (name, key) = match inner.split_once(['.', ':']) {
                Some((n, k)) => (n, Some(k.to_ascii_lowercase())),
                None => (inner, None),
            };
            pieces.push(Piece::Ref(name.to_ascii_lowercase(), key));
            rest = &rest[start + 2 + len + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Template { pieces }
    }

    /// True when the template has no references.
    pub fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    /// Expands the template.
    pub fn expand(&self, src: &dyn MacroSource) -> Cow<'_, str> {
        match self.pieces.as_slice() {
            [] => Cow::Borrowed(""),
            [Piece::Text(t)] => Cow::Borrowed(t.as_str()),
            pieces => {
                let mut out = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Ref(n, k) => {
                            if let Some(v) = src.lookup(n, k.as_deref()) {
                                out.push_str(&v);
                            }
                        }
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Src;
    impl MacroSource for Src {
        fn lookup(&self, name: &str, key: Option<&str>) -> Option<String> {
            match (name, key) {
                ("tx", Some("a")) => Some("5".into()),
                ("matched_var", None) => Some("m".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn expands_references() {
        let t = Template::parse("x=%{TX.A},%{MATCHED_VAR}%{tx.none}!");
        assert_eq!(t.expand(&Src), "x=5,m!");
        assert!(!t.is_literal());
        assert!(Template::parse("plain").is_literal());
        assert_eq!(Template::parse("50%{").expand(&Src), "50%{");
    }
}
