//! XML bodies for `XML:/*` (text nodes) and `XML://@*` (attribute values).
//!
//! A small, bounded scanner, not a validating parser: it reads elements,
//! attributes, text, CDATA, comments, processing instructions and a
//! DOCTYPE (skipped, so no external entities are ever resolved), decodes
//! the five predefined entities and character references, and reports
//! malformed input (unterminated constructs, mismatched end tags, no root
//! element) as an error so `REQBODY_ERROR` is set. Each text node and each
//! attribute value becomes one value, as Coraza does.

use super::BodyLimits;

/// Values extracted from an XML body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlValues {
    /// Non-blank text and CDATA nodes, in document order.
    pub texts: Vec<Vec<u8>>,
    /// Attribute values, in document order.
    pub attrs: Vec<Vec<u8>>,
}

/// Why an XML body was not (fully) read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlError {
    /// A construct is not closed before the end of the body.
    Unterminated(&'static str),
    /// An end tag does not match the open element.
    Mismatch(String),
    /// Nested deeper than the limit.
    TooDeep(usize),
    /// More values than the argument limit.
    TooManyValues(usize),
    /// No element at all.
    NoRoot,
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XmlError::Unterminated(what) => write!(f, "the XML body has an unterminated {what}"),
            XmlError::Mismatch(name) => write!(f, "the XML body has a mismatched end tag `{name}`"),
            XmlError::TooDeep(d) => write!(f, "the XML body nests deeper than {d} levels"),
            XmlError::TooManyValues(n) => write!(f, "the XML body has more than {n} values"),
            XmlError::NoRoot => write!(f, "the XML body has no root element"),
        }
    }
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Decodes `&lt; &gt; &amp; &quot; &apos; &#N; &#xH;`; other references
/// are kept as written.
pub fn decode_entities(raw: &[u8]) -> Vec<u8> {
    if !raw.contains(&b'&') {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'&' {
            if let Some(end) = raw
                .get(i + 1..)
                .and_then(|r| r.iter().take(12).position(|&c| c == b';'))
            {
                let name = raw.get(i + 1..i + 1 + end).unwrap_or_default();
                let decoded: Option<char> = match name {
                    b"lt" => Some('<'),
                    b"gt" => Some('>'),
                    b"amp" => Some('&'),
                    b"quot" => Some('"'),
                    b"apos" => Some('\''),
                    [b'#', b'x' | b'X', hex @ ..] => std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32),
                    [b'#', dec @ ..] => std::str::from_utf8(dec)
                        .ok()
                        .and_then(|d| d.parse::<u32>().ok())
                        .and_then(char::from_u32),
                    _ => None,
                };
                if let Some(c) = decoded {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += end + 2;
                    continue;
                }
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Scans an XML body.
pub fn parse(body: &[u8], limits: BodyLimits) -> Result<XmlValues, XmlError> {
    let mut v = XmlValues::default();
    let mut stack: Vec<&[u8]> = Vec::new();
    let mut seen_root = false;
    let mut i = 0;
    let push = |list: &mut Vec<Vec<u8>>, count: usize, value: Vec<u8>| {
        if count >= limits.max_args {
            return Err(XmlError::TooManyValues(limits.max_args));
        }
        list.push(value);
        Ok(())
    };
    while i < body.len() {
        let rest = body.get(i..).unwrap_or_default();
        if rest.starts_with(b"<!--") {
            i = find(body, i + 4, b"-->").ok_or(XmlError::Unterminated("comment"))? + 3;
        } else if rest.starts_with(b"<![CDATA[") {
            let end = find(body, i + 9, b"]]>").ok_or(XmlError::Unterminated("CDATA section"))?;
            let text = body.get(i + 9..end).unwrap_or_default().to_vec();
            let n = v.texts.len() + v.attrs.len();
            push(&mut v.texts, n, text)?;
            i = end + 3;
        } else if rest.starts_with(b"<?") {
            i = find(body, i + 2, b"?>").ok_or(XmlError::Unterminated("processing instruction"))?
                + 2;
        } else if rest.starts_with(b"<!") {
            // DOCTYPE, possibly with an internal subset in brackets.
            let mut depth = 0usize;
            let mut j = i + 2;
            loop {
                match body.get(j) {
                    None => return Err(XmlError::Unterminated("DOCTYPE")),
                    Some(b'[') => depth += 1,
                    Some(b']') => depth = depth.saturating_sub(1),
                    Some(b'>') if depth == 0 => break,
                    _ => {}
                }
                j += 1;
            }
            i = j + 1;
        } else if rest.starts_with(b"</") {
            let end = find(body, i + 2, b">").ok_or(XmlError::Unterminated("end tag"))?;
            let name = body.get(i + 2..end).unwrap_or_default().trim_ascii();
            match stack.pop() {
                Some(open) if open == name => {}
                _ => {
                    return Err(XmlError::Mismatch(
                        String::from_utf8_lossy(name).into_owned(),
                    ))
                }
            }
            i = end + 1;
        } else if rest.starts_with(b"<") {
            i = start_tag(body, i + 1, &mut stack, &mut v, limits)?;
            seen_root = true;
        } else {
            let end = find(body, i, b"<").unwrap_or(body.len());
            let raw = body.get(i..end).unwrap_or_default();
            if !raw.trim_ascii().is_empty() {
                let n = v.texts.len() + v.attrs.len();
                push(&mut v.texts, n, decode_entities(raw))?;
            }
            i = end;
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Unterminated("element"));
    }
    if !seen_root {
        return Err(XmlError::NoRoot);
    }
    Ok(v)
}

/// Reads a start tag from just after `<`; returns the index after `>`.
fn start_tag<'b>(
    body: &'b [u8],
    mut i: usize,
    stack: &mut Vec<&'b [u8]>,
    v: &mut XmlValues,
    limits: BodyLimits,
) -> Result<usize, XmlError> {
    let name_start = i;
    while body
        .get(i)
        .is_some_and(|&c| !c.is_ascii_whitespace() && c != b'>' && c != b'/')
    {
        i += 1;
    }
    let name = body.get(name_start..i).unwrap_or_default();
    loop {
        while body.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        match body.get(i) {
            None => return Err(XmlError::Unterminated("start tag")),
            Some(b'>') => {
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep(limits.max_depth));
                }
                stack.push(name);
                return Ok(i + 1);
            }
            Some(b'/') => {
                return match body.get(i + 1) {
                    Some(b'>') => Ok(i + 2),
                    _ => Err(XmlError::Unterminated("start tag")),
                };
            }
            Some(_) => {
                // attribute: name = "value"
                while body
                    .get(i)
                    .is_some_and(|&c| c != b'=' && c != b'>' && !c.is_ascii_whitespace())
                {
                    i += 1;
                }
                while body.get(i).is_some_and(u8::is_ascii_whitespace) {
                    i += 1;
                }
                if body.get(i) != Some(&b'=') {
                    continue;
                }
                i += 1;
                while body.get(i).is_some_and(u8::is_ascii_whitespace) {
                    i += 1;
                }
                let Some(&quote) = body.get(i).filter(|&&q| q == b'"' || q == b'\'') else {
                    return Err(XmlError::Unterminated("attribute value"));
                };
                let end = body
                    .get(i + 1..)
                    .and_then(|r| r.iter().position(|&c| c == quote))
                    .map(|p| i + 1 + p)
                    .ok_or(XmlError::Unterminated("attribute value"))?;
                if v.texts.len() + v.attrs.len() >= limits.max_args {
                    return Err(XmlError::TooManyValues(limits.max_args));
                }
                v.attrs
                    .push(decode_entities(body.get(i + 1..end).unwrap_or_default()));
                i = end + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_attributes() {
        let x = br#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><a k="v&amp;1"><!-- c --><b>one &lt;two&gt;</b><c x='y'/><![CDATA[<raw>]]>
</a>"#;
        let v = parse(x, BodyLimits::default()).unwrap();
        assert_eq!(v.texts, vec![b"one <two>".to_vec(), b"<raw>".to_vec()]);
        assert_eq!(v.attrs, vec![b"v&1".to_vec(), b"y".to_vec()]);
    }

    #[test]
    fn malformed_is_an_error() {
        let l = BodyLimits::default();
        assert_eq!(parse(b"<a><b></a>", l), Err(XmlError::Mismatch("a".into())));
        assert_eq!(parse(b"<a>", l), Err(XmlError::Unterminated("element")));
        assert_eq!(parse(b"just text", l), Err(XmlError::NoRoot));
        assert!(parse(b"<a x=\"1></a>", l).is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(parse(deep.as_bytes(), l), Err(XmlError::TooDeep(64)));
    }

    #[test]
    fn character_references() {
        assert_eq!(
            decode_entities(b"&#65;&#x42;&unknown;&"),
            b"AB&unknown;&".to_vec()
        );
    }
}
