//! Reading the `x-forwarded-client-cert` (XFCC) header in Envoy's format.
//!
//! A proxy that terminated mTLS describes the client certificate it verified
//! in one *element*: `;`-separated `Key=Value` pairs (`By`, `Hash`, `Cert`,
//! `Chain`, `Subject`, `URI`, `DNS`). Elements of successive hops are
//! separated by `,`; a value containing `,`, `;` or `=` is double-quoted with
//! `\"` and `\\` escapes. The last element is the one the nearest proxy
//! added. Only a proxy the receiver trusts may be believed: see the rbac
//! plugin's `trusted_proxies`.

use std::fmt;

/// Lower-case header name.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

/// Largest header value parsed.
pub const MAX_XFCC_BYTES: usize = 16 * 1024;
/// Most elements (hops) parsed.
pub const MAX_XFCC_ELEMENTS: usize = 16;
/// Most pairs per element.
pub const MAX_XFCC_PAIRS: usize = 64;

/// One hop's description of the client certificate it verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XfccElement {
    /// `Key=Value` pairs in order; keys as written.
    pub pairs: Vec<(String, String)>,
}

impl XfccElement {
    /// The first value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The first `URI` value (Envoy writes the first URI SAN there).
    pub fn uri(&self) -> Option<&str> {
        self.get("URI")
    }
}

/// Why an XFCC value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XfccError {
    /// Longer than [`MAX_XFCC_BYTES`].
    TooLong(usize),
    /// More than [`MAX_XFCC_ELEMENTS`] elements or [`MAX_XFCC_PAIRS`] pairs.
    TooMany,
    /// A pair without `=`, or an empty key.
    BadPair(String),
    /// A quoted value without its closing quote, or text after it.
    BadQuote,
}

impl fmt::Display for XfccError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XfccError::TooLong(n) => write!(f, "XFCC header is {n} bytes, over {MAX_XFCC_BYTES}"),
            XfccError::TooMany => write!(
                f,
                "XFCC header has more than {MAX_XFCC_ELEMENTS} elements or {MAX_XFCC_PAIRS} pairs in one"
            ),
            XfccError::BadPair(p) => write!(f, "XFCC pair {p:?} is not Key=Value"),
            XfccError::BadQuote => f.write_str("XFCC value has a broken quoted string"),
        }
    }
}

impl std::error::Error for XfccError {}

/// Parses a whole header value into its elements, first hop first.
pub fn parse_xfcc(value: &str) -> Result<Vec<XfccElement>, XfccError> {
    if value.len() > MAX_XFCC_BYTES {
        return Err(XfccError::TooLong(value.len()));
    }
    let mut elements = Vec::new();
    let mut current = XfccElement::default();
    let mut chars = value.chars().peekable();
    loop {
        // One pair: key up to '=', then a plain or quoted value.
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let key = key.trim().to_string();
        if chars.next_if_eq(&'=').is_none() || key.is_empty() {
            return Err(XfccError::BadPair(key));
        }
        let mut val = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => val.push(chars.next().ok_or(XfccError::BadQuote)?),
                    Some('"') => break,
                    Some(c) => val.push(c),
                    None => return Err(XfccError::BadQuote),
                }
            }
            while chars.next_if(|c| *c == ' ').is_some() {}
            if !matches!(chars.peek(), None | Some(';') | Some(',')) {
                return Err(XfccError::BadQuote);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ';' || c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
            val = val.trim().to_string();
        }
        if current.pairs.len() >= MAX_XFCC_PAIRS {
            return Err(XfccError::TooMany);
        }
        current.pairs.push((key, val));
        match chars.next() {
            Some(';') => {}
            Some(',') => {
                if elements.len() + 1 >= MAX_XFCC_ELEMENTS {
                    return Err(XfccError::TooMany);
                }
                elements.push(std::mem::take(&mut current));
            }
            _ => break,
        }
    }
    elements.push(current);
    Ok(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envoy_elements() {
        let v = r#"By=spiffe://cluster.local/ns/gw/sa/gw;Hash=abc;Subject="CN=client,O=Acme";URI=spiffe://cluster.local/ns/shop/sa/web;DNS=a.local;DNS=b.local,By=x;URI=spiffe://td/ns/b/sa/c"#;
        let els = parse_xfcc(v).unwrap();
        assert_eq!(els.len(), 2);
        assert_eq!(els[0].get("subject"), Some("CN=client,O=Acme"));
        assert_eq!(els[0].uri(), Some("spiffe://cluster.local/ns/shop/sa/web"));
        assert_eq!(els[0].pairs.len(), 6);
        assert_eq!(els[1].uri(), Some("spiffe://td/ns/b/sa/c"));
    }

    #[test]
    fn quoted_escapes() {
        let els = parse_xfcc(r#"Subject="a\"b\\c;d";URI=u"#).unwrap();
        assert_eq!(els[0].get("Subject"), Some(r#"a"b\c;d"#));
        assert_eq!(els[0].uri(), Some("u"));
    }

    #[test]
    fn refuses_malformed_and_oversize() {
        assert_eq!(parse_xfcc("URI"), Err(XfccError::BadPair("URI".into())));
        assert_eq!(parse_xfcc(""), Err(XfccError::BadPair(String::new())));
        assert_eq!(parse_xfcc("=x"), Err(XfccError::BadPair(String::new())));
        assert_eq!(parse_xfcc(r#"Subject="abc"#), Err(XfccError::BadQuote));
        assert_eq!(
            parse_xfcc(r#"Subject="a"b;URI=x"#),
            Err(XfccError::BadQuote)
        );
        assert!(matches!(
            parse_xfcc(&"a".repeat(MAX_XFCC_BYTES + 1)),
            Err(XfccError::TooLong(_))
        ));
        assert_eq!(parse_xfcc(&"URI=x,".repeat(40)), Err(XfccError::TooMany));
        assert_eq!(parse_xfcc(&"a=b;".repeat(70)), Err(XfccError::TooMany));
    }
}
