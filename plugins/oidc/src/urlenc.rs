//! `application/x-www-form-urlencoded` and query-string encoding and
//! decoding (RFC 3986 unreserved characters pass as they are).

/// Percent-encodes everything but the unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&k=v` with both sides encoded.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes percent escapes and `+`; `None` for a bad escape or non-UTF-8 result.
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The first value of parameter `name` in a query string (decoded).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .take(256)
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .find(|(k, _)| decode(k).as_deref() == Some(name))
        .and_then(|(_, v)| decode(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes() {
        assert_eq!(encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(decode("a%20b+c").unwrap(), "a b c");
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(form(&[("a", "1 2"), ("b&", "=")]), "a=1%202&b%26=%3D");
    }

    #[test]
    fn finds_query_params() {
        let q = "code=abc&state=x%2By&flag";
        assert_eq!(query_param(q, "code").unwrap(), "abc");
        assert_eq!(query_param(q, "state").unwrap(), "x+y");
        assert_eq!(query_param(q, "flag").unwrap(), "");
        assert_eq!(query_param(q, "nonce"), None);
    }
}
