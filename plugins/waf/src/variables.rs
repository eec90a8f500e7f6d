//! Rule targets: `ARGS|!ARGS:foo|&TX:x|REQUEST_COOKIES:/^_ga/`.
//!
//! A target names a [`Collection`] (or a single-valued variable), an
//! optional [`Selector`] (a key, case-insensitive, or `/regex/` over keys),
//! and is either counted (`&`) or excluded (`!`).

use crate::operators::compile_regex;
use regex::bytes::Regex;

/// Every variable the engine can read. Collections hold name/value pairs;
/// the rest hold one value (or none when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Collection {
    Args,
    ArgsNames,
    ArgsGet,
    ArgsGetNames,
    ArgsPost,
    ArgsPostNames,
    RequestHeaders,
    RequestHeadersNames,
    RequestCookies,
    RequestCookiesNames,
    ResponseHeaders,
    ResponseHeadersNames,
    Tx,
    Files,
    FilesNames,
    FilesSizes,
    MultipartPartHeaders,
    Xml,
    MatchedVars,
    MatchedVarsNames,
    RequestMethod,
    RequestUri,
    RequestUriRaw,
    RequestFilename,
    RequestBasename,
    RequestLine,
    RequestProtocol,
    QueryString,
    RequestBody,
    RequestBodyLength,
    ReqbodyProcessor,
    ReqbodyError,
    RemoteAddr,
    UniqueId,
    ArgsCombinedSize,
    FilesCombinedSize,
    ResponseBody,
    ResponseStatus,
    ResponseProtocol,
    ResponseContentType,
    MatchedVar,
    MatchedVarName,
}

const NAMES: &[(&str, Collection)] = &[
    ("ARGS", Collection::Args),
    ("ARGS_NAMES", Collection::ArgsNames),
    ("ARGS_GET", Collection::ArgsGet),
    ("ARGS_GET_NAMES", Collection::ArgsGetNames),
    ("ARGS_POST", Collection::ArgsPost),
    ("ARGS_POST_NAMES", Collection::ArgsPostNames),
    ("REQUEST_HEADERS", Collection::RequestHeaders),
    ("REQUEST_HEADERS_NAMES", Collection::RequestHeadersNames),
    ("REQUEST_COOKIES", Collection::RequestCookies),
    ("REQUEST_COOKIES_NAMES", Collection::RequestCookiesNames),
    ("RESPONSE_HEADERS", Collection::ResponseHeaders),
    ("RESPONSE_HEADERS_NAMES", Collection::ResponseHeadersNames),
    ("TX", Collection::Tx),
    ("FILES", Collection::Files),
    ("FILES_NAMES", Collection::FilesNames),
    ("FILES_SIZES", Collection::FilesSizes),
    ("MULTIPART_PART_HEADERS", Collection::MultipartPartHeaders),
    ("XML", Collection::Xml),
    ("MATCHED_VARS", Collection::MatchedVars),
    ("MATCHED_VARS_NAMES", Collection::MatchedVarsNames),
    ("REQUEST_METHOD", Collection::RequestMethod),
    ("REQUEST_URI", Collection::RequestUri),
    ("REQUEST_URI_RAW", Collection::RequestUriRaw),
    ("REQUEST_FILENAME", Collection::RequestFilename),
    ("REQUEST_BASENAME", Collection::RequestBasename),
    ("REQUEST_LINE", Collection::RequestLine),
    ("REQUEST_PROTOCOL", Collection::RequestProtocol),
    ("QUERY_STRING", Collection::QueryString),
    ("REQUEST_BODY", Collection::RequestBody),
    ("REQUEST_BODY_LENGTH", Collection::RequestBodyLength),
    ("REQBODY_PROCESSOR", Collection::ReqbodyProcessor),
    ("REQBODY_ERROR", Collection::ReqbodyError),
    ("REMOTE_ADDR", Collection::RemoteAddr),
    ("UNIQUE_ID", Collection::UniqueId),
    ("ARGS_COMBINED_SIZE", Collection::ArgsCombinedSize),
    ("FILES_COMBINED_SIZE", Collection::FilesCombinedSize),
    ("RESPONSE_BODY", Collection::ResponseBody),
    ("RESPONSE_STATUS", Collection::ResponseStatus),
    ("RESPONSE_PROTOCOL", Collection::ResponseProtocol),
    ("RESPONSE_CONTENT_TYPE", Collection::ResponseContentType),
    ("MATCHED_VAR", Collection::MatchedVar),
    ("MATCHED_VAR_NAME", Collection::MatchedVarName),
];

impl Collection {
    /// Looks a variable up by its SecLang name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Collection> {
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, c)| *c)
    }

    /// The SecLang name, as used in `MATCHED_VAR_NAME`.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("UNKNOWN", |(n, _)| n)
    }
}

/// Which members of a collection a target means.
#[derive(Debug, Clone)]
pub enum Selector {
    /// All of them.
    All,
    /// The member with this key (compared case-insensitively).
    Key(String),
    /// Members whose key matches the regex.
    Regex(Box<Regex>),
}

impl Selector {
    /// True when a member with key `key` is selected.
    pub fn selects(&self, key: &[u8]) -> bool {
        match self {
            Selector::All => true,
            Selector::Key(k) => k.as_bytes().eq_ignore_ascii_case(key),
            Selector::Regex(re) => re.is_match(key),
        }
    }
}

/// One target of a rule.
#[derive(Debug, Clone)]
pub struct VarSpec {
    /// The variable.
    pub collection: Collection,
    /// Which members.
    pub selector: Selector,
    /// `&`: the number of selected members instead of their values.
    pub count: bool,
    /// `!`: removes selected members from the rule's other targets.
    pub exclude: bool,
}

impl VarSpec {
    /// True when this exclusion removes member `key` of `collection`.
    pub fn excludes(&self, collection: Collection, key: &[u8]) -> bool {
        self.exclude && self.collection == collection && self.selector.selects(key)
    }
}

/// Splits a target list on `|`, keeping `|` inside `/regex/` and quotes.
fn split_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_regex = false;
    let mut in_quote = false;
    let mut prev = '\0';
    for c in text.chars() {
        match c {
            '\'' if !in_regex => in_quote = !in_quote,
            '/' if !in_quote
                && prev != '\\'
                && (in_regex || (prev == ':' && !cur.to_ascii_uppercase().ends_with("XML:"))) =>
            {
                in_regex = !in_regex
            }
            '|' if !in_regex && !in_quote => {
                out.push(std::mem::take(&mut cur));
                prev = c;
                continue;
            }
            _ => {}
        }
        cur.push(c);
        prev = c;
    }
    out.push(cur);
    out
}

/// Parses one target such as `!REQUEST_COOKIES:/^_ga/`.
pub fn parse_target(text: &str) -> Result<VarSpec, String> {
    let mut t = text.trim();
    let exclude = t.starts_with('!');
    if exclude {
        t = &t[1..];
    }
    let count = t.starts_with('&');
    if count {
        t = &t[1..];
    }
    let (name, sel) = match t.split_once(':') {
        Some((n, s)) => (n, Some(s)),
        None => (t, None),
    };
    let collection = Collection::from_name(name.trim())
        .ok_or_else(|| format!("unknown variable `{}`", name.trim()))?;
    let selector = match sel.map(str::trim) {
        None | Some("") => Selector::All,
        Some(s) => {
            let s = s
                .strip_prefix('\'')
                .and_then(|x| x.strip_suffix('\''))
                .unwrap_or(s);
            match s.strip_prefix('/').and_then(|x| x.strip_suffix('/')) {
                Some(re) if s.len() >= 2 => Selector::Regex(Box::new(
                    compile_regex(&format!("(?i){re}"))
                        .map_err(|e| format!("target `{text}`: {e}"))?,
                )),
                _ => Selector::Key(s.to_string()),
            }
        }
    };
    Ok(VarSpec {
        collection,
        selector,
        count,
        exclude,
    })
}

/// Parses a `|`-separated target list.
pub fn parse_targets(text: &str) -> Result<Vec<VarSpec>, String> {
    split_targets(text)
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| parse_target(t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_target_forms() {
        let v = parse_targets("ARGS|!ARGS:foo|&TX:x|REQUEST_COOKIES:/^_ga(?:_\\w+|x)?$/|XML:/*")
            .unwrap();
        assert_eq!(v.len(), 5);
        assert!(matches!(v[0].selector, Selector::All));
        assert!(v[1].exclude && v[1].excludes(Collection::Args, b"FOO"));
        assert!(v[2].count);
        assert!(v[3].selector.selects(b"_ga_abc"));
        assert!(!v[3].selector.selects(b"ga"));
        assert_eq!(v[4].collection, Collection::Xml);
    }

    #[test]
    fn unknown_variable_is_refused() {
        assert!(parse_targets("ARGS|NOPE").unwrap_err().contains("NOPE"));
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(
            Collection::from_name("request_headers"),
            Some(Collection::RequestHeaders)
        );
        assert_eq!(Collection::RequestHeaders.name(), "REQUEST_HEADERS");
    }
}
