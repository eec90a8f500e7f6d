//! Operators (`@rx`, `@pm`, `@lt`, ...): the test a rule applies to each
//! transformed value.
//!
//! Every operator CRS 4.25 uses is here (counts in the crate README), plus
//! `@le`, `@pmf`, `@strmatch`-free basics. Arguments that may hold macros
//! (`@lt %{tx.arg_length}`) are expanded per evaluation. An operator that
//! cannot be built (bad regex, missing data file) is a load-time error.

mod phrases;
mod validate;

use crate::macros::{MacroSource, Template};
use phrases::PhraseSet;
use regex::bytes::{Regex, RegexBuilder};
use sdk_ext::matcher::Cidr;
use std::collections::HashMap;
use std::net::IpAddr;

/// Upper bound on a compiled regex program (CRS's largest need ~2 MB).
const REGEX_SIZE_LIMIT: usize = 32 * 1024 * 1024;

/// Numeric comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `@eq`.
    Eq,
    /// `@lt`.
    Lt,
    /// `@le`.
    Le,
    /// `@gt`.
    Gt,
    /// `@ge`.
    Ge,
}

/// A compiled operator.
#[derive(Debug, Clone)]
pub enum Operator {
    /// `@rx`: a regular expression (PCRE `DOTALL` semantics).
    Rx(Box<Regex>),
    /// `@pm` / `@pmFromFile`: case-insensitive phrase match.
    Pm(Box<PhraseSet>),
    /// `@eq`, `@lt`, ...: integer comparison with a (macro) argument.
    Num(Cmp, Template),
    /// `@streq`.
    StrEq(Template),
    /// `@within`: the value is a substring of the argument.
    Within(Template),
    /// `@contains`.
    Contains(Template),
    /// `@beginsWith`.
    BeginsWith(Template),
    /// `@endsWith`.
    EndsWith(Template),
    /// `@validateByteRange`: matches when a byte is outside the ranges.
    ValidateByteRange(Box<[bool; 256]>),
    /// `@validateUtf8Encoding`: matches invalid UTF-8.
    ValidateUtf8,
    /// `@validateUrlEncoding`: matches a bad `%` escape.
    ValidateUrlEncoding,
    /// `@ipMatch`.
    IpMatch(Vec<Cidr>),
    /// `@detectSQLi` (libinjection).
    DetectSqli,
    /// `@detectXSS` (libinjection).
    DetectXss,
    /// `@unconditionalMatch`.
    Unconditional,
}

/// The outcome of a match: captured groups (`TX.0`..`TX.9`) when asked.
pub type Captures = Vec<Vec<u8>>;

/// Reads a `.data` file body into its phrases (comments and blank lines
/// dropped).
pub fn data_file_phrases(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Compiles a regex the way ModSecurity's PCRE build reads it: `.` matches
/// newlines, and byte semantics first (so `\xff` means the byte), falling
/// back to Unicode semantics for patterns that need them.
pub fn compile_regex(pattern: &str) -> Result<Regex, String> {
    let build = |unicode: bool| {
        RegexBuilder::new(pattern)
            .dot_matches_new_line(true)
            .unicode(unicode)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
    };
    build(false)
        .or_else(|_| build(true))
        .map_err(|e| format!("regex does not compile: {e}"))
}

impl Operator {
    /// Builds an operator from its name (without `@`) and argument;
    /// `data_files` maps `.data` file names to their contents.
    pub fn compile(
        name: &str,
        arg: &str,
        data_files: &HashMap<String, String>,
    ) -> Result<Operator, String> {
        let t = || Template::parse(arg);
        Ok(match name.to_ascii_lowercase().as_str() {
            "rx" => Operator::Rx(Box::new(compile_regex(arg)?)),
            "pm" => Operator::Pm(Box::new(PhraseSet::new(
                arg.split_whitespace().map(str::to_string).collect(),
            )?)),
            "pmfromfile" | "pmf" => {
                let mut phrases = Vec::new();
                for file in arg.split_whitespace() {
                    let base = file.rsplit('/').next().unwrap_or(file);
                    let text = data_files.get(base).ok_or_else(|| {
                        format!(
                            "data file `{base}` is not loaded (it must sit beside the rule files)"
                        )
                    })?;
                    phrases.extend(data_file_phrases(text));
                }
                Operator::Pm(Box::new(PhraseSet::new(phrases)?))
            }
            "eq" => Operator::Num(Cmp::Eq, t()),
            "lt" => Operator::Num(Cmp::Lt, t()),
            "le" => Operator::Num(Cmp::Le, t()),
            "gt" => Operator::Num(Cmp::Gt, t()),
            "ge" => Operator::Num(Cmp::Ge, t()),
            "streq" => Operator::StrEq(t()),
            "within" => Operator::Within(t()),
            "contains" => Operator::Contains(t()),
            "beginswith" => Operator::BeginsWith(t()),
            "endswith" => Operator::EndsWith(t()),
            "validatebyterange" => {
                Operator::ValidateByteRange(Box::new(validate::byte_ranges(arg)?))
            }
            "validateutf8encoding" => Operator::ValidateUtf8,
            "validateurlencoding" => Operator::ValidateUrlEncoding,
            "ipmatch" => Operator::IpMatch(
                arg.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.parse::<Cidr>())
                    .collect::<Result<_, _>>()?,
            ),
            "detectsqli" => Operator::DetectSqli,
            "detectxss" => Operator::DetectXss,
            "unconditionalmatch" => Operator::Unconditional,
            other => return Err(format!("unknown operator `@{other}`")),
        })
    }

    /// Tests `value`. `Some(captures)` on a match; captures are filled only
    /// when `capture` is set.
    pub fn matches(
        &self,
        value: &[u8],
        macros: &dyn MacroSource,
        capture: bool,
    ) -> Option<Captures> {
        let yes = |b: bool| if b { Some(Vec::new()) } else { None };
        match self {
            Operator::Rx(re) => {
                if !capture {
                    return yes(re.is_match(value));
                }
                let caps = re.captures(value)?;
                Some(
                    (0..caps.len().min(10))
                        .map(|i| {
                            caps.get(i)
                                .map(|m| m.as_bytes().to_vec())
                                .unwrap_or_default()
                        })
                        .collect(),
                )
            }
            Operator::Pm(set) => set.find(value).map(|m| vec![m.to_vec()]),
            Operator::Num(cmp, arg) => {
                let a = atoi(value);
                let b = atoi(arg.expand(macros).as_bytes());
                yes(match cmp {
                    Cmp::Eq => a == b,
                    Cmp::Lt => a < b,
                    Cmp::Le => a <= b,
                    Cmp::Gt => a > b,
                    Cmp::Ge => a >= b,
                })
            }
            Operator::StrEq(arg) => yes(arg.expand(macros).as_bytes() == value),
            Operator::Within(arg) => {
                let hay = arg.expand(macros);
                yes(contains(hay.as_bytes(), value))
            }
            Operator::Contains(arg) => yes(contains(value, arg.expand(macros).as_bytes())),
            Operator::BeginsWith(arg) => yes(value.starts_with(arg.expand(macros).as_bytes())),
            Operator::EndsWith(arg) => yes(value.ends_with(arg.expand(macros).as_bytes())),
            Operator::ValidateByteRange(allowed) => {
                yes(value.iter().any(|&b| !allowed[usize::from(b)]))
            }
            Operator::ValidateUtf8 => yes(std::str::from_utf8(value).is_err()),
            Operator::ValidateUrlEncoding => yes(validate::bad_url_encoding(value)),
            Operator::IpMatch(nets) => {
                let ip = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.trim().parse::<IpAddr>().ok())?;
                yes(nets.iter().any(|n| n.contains(ip)))
            }
            Operator::DetectSqli => {
                let r = libinjectionrs::detect_sqli(value);
                if !r.is_injection() {
                    return None;
                }
                let fp = r.fingerprint.map(|f| f.to_string()).unwrap_or_default();
                Some(vec![fp.into_bytes()])
            }
            Operator::DetectXss => yes(libinjectionrs::detect_xss(value).is_injection()),
            Operator::Unconditional => Some(Vec::new()),
        }
    }
}

/// C `atoi`: optional sign and leading digits; anything else is 0.
fn atoi(v: &[u8]) -> i64 {
    let s = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let v = v.get(s..).unwrap_or_default();
    let (neg, digits) = match v.first() {
        Some(b'-') => (true, v.get(1..).unwrap_or_default()),
        Some(b'+') => (false, v.get(1..).unwrap_or_default()),
        _ => (false, v),
    };
    let mut n: i64 = 0;
    for &d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tx;
    impl MacroSource for Tx {
        fn lookup(&self, name: &str, key: Option<&str>) -> Option<String> {
            (name == "tx" && key == Some("limit")).then(|| "10".to_string())
        }
    }

    fn op(name: &str, arg: &str) -> Operator {
        Operator::compile(name, arg, &HashMap::new()).unwrap()
    }

    fn hit(o: &Operator, v: &str) -> bool {
        o.matches(v.as_bytes(), &Tx, false).is_some()
    }

    #[test]
    fn regex_with_captures() {
        let o = op("rx", "^(a+)(b)?");
        let caps = o.matches(b"aac", &Tx, true).unwrap();
        assert_eq!(caps[0], b"aa");
        assert_eq!(caps[1], b"aa");
        assert_eq!(caps[2], b"");
        assert!(hit(&op("rx", "a.b"), "a\nb"));
        assert!(
            hit(&op("rx", r"\xff"), "\u{ff}")
                || op("rx", r"\xff").matches(b"\xff", &Tx, false).is_some()
        );
    }

    #[test]
    fn numbers_use_macros() {
        let o = op("lt", "%{tx.limit}");
        assert!(hit(&o, "9"));
        assert!(!hit(&o, "10"));
        assert!(hit(&op("eq", "0"), "abc"));
        assert!(hit(&op("ge", "-1"), "-1"));
    }

    #[test]
    fn string_operators() {
        assert!(hit(&op("within", "GET POST"), "POST"));
        assert!(!hit(&op("within", "GET POST"), "PUT"));
        assert!(hit(&op("streq", "x"), "x"));
        assert!(hit(&op("contains", "b"), "abc"));
        assert!(hit(&op("beginsWith", "a"), "abc"));
        assert!(hit(&op("endsWith", "c"), "abc"));
    }

    #[test]
    fn phrases_ignore_case() {
        let o = op("pm", "select union");
        assert_eq!(o.matches(b"x UNION y", &Tx, true).unwrap()[0], b"UNION");
        assert!(!hit(&o, "nothing"));
    }

    #[test]
    fn pm_from_file_reads_data() {
        let mut files = HashMap::new();
        files.insert("x.data".to_string(), "# c\n\nfoo\nbar\n".to_string());
        let o = Operator::compile("pmFromFile", "x.data", &files).unwrap();
        assert!(hit(&o, "a FOO"));
        assert!(Operator::compile("pmFromFile", "y.data", &files).is_err());
    }

    #[test]
    fn validators_and_ips() {
        assert!(hit(&op("validateByteRange", "32-126"), "a\tb"));
        assert!(!hit(&op("validateByteRange", "9,32-126"), "a\tb"));
        assert!(op("validateUtf8Encoding", "")
            .matches(b"\xff", &Tx, false)
            .is_some());
        assert!(hit(&op("validateUrlEncoding", ""), "%zz"));
        assert!(!hit(&op("validateUrlEncoding", ""), "%41"));
        assert!(hit(&op("ipMatch", "127.0.0.1,::1"), "127.0.0.1"));
        assert!(!hit(&op("ipMatch", "10.0.0.0/8"), "11.0.0.1"));
    }

    #[test]
    fn libinjection() {
        assert!(hit(&op("detectSQLi", ""), "1' or '1'='1"));
        assert!(!hit(&op("detectSQLi", ""), "hello world"));
        assert!(hit(&op("detectXSS", ""), "<script>alert(1)</script>"));
    }

    #[test]
    fn unknown_operator_is_refused() {
        assert!(Operator::compile("fuzzyHash", "", &HashMap::new()).is_err());
        assert!(Operator::compile("rx", "(", &HashMap::new()).is_err());
    }
}
