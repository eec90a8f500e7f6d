//! What a verified token turns into upstream: claim values for headers
//! (nested paths, arrays joined). The payload header carries the payload
//! segment exactly as received.

use serde_json::{Map, Value};

/// Longest header value produced; longer claims are not forwarded.
pub const MAX_HEADER_VALUE: usize = 8192;

/// The claim at `path` as a header value: strings as they are, numbers and
/// booleans as JSON, arrays joined with `separator` (elements that are not
/// strings as JSON), objects as JSON. `None` when absent, or when the value
/// would contain control characters or exceed [`MAX_HEADER_VALUE`].
pub fn claim_header_value(
    claims: &Map<String, Value>,
    path: &[String],
    separator: &str,
) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for name in rest {
        value = value.as_object()?.get(name)?;
    }
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .take(256)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(separator),
        other => other.to_string(),
    };
    let ok = text.len() <= MAX_HEADER_VALUE && !text.chars().any(char::is_control);
    ok.then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Map<String, Value> {
        serde_json::from_str(
            r#"{"sub":"alice","n":3,"ok":true,"roles":["a","b",7],
               "realm_access":{"roles":["x","y"]},"https://ex.com/tenant":"t1",
               "bad":"a\r\nx-injected: 1","nil":null,"obj":{"k":1}}"#,
        )
        .unwrap()
    }

    fn p(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values() {
        let c = claims();
        assert_eq!(
            claim_header_value(&c, &p(&["sub"]), ",").as_deref(),
            Some("alice")
        );
        assert_eq!(
            claim_header_value(&c, &p(&["n"]), ",").as_deref(),
            Some("3")
        );
        assert_eq!(
            claim_header_value(&c, &p(&["ok"]), ",").as_deref(),
            Some("true")
        );
        assert_eq!(
            claim_header_value(&c, &p(&["roles"]), ",").as_deref(),
            Some("a,b,7")
        );
        assert_eq!(
            claim_header_value(&c, &p(&["realm_access", "roles"]), " ").as_deref(),
            Some("x y")
        );
        assert_eq!(
            claim_header_value(&c, &p(&["https://ex.com/tenant"]), ",").as_deref(),
            Some("t1")
        );
        assert_eq!(
            claim_header_value(&c, &p(&["obj"]), ",").as_deref(),
            Some(r#"{"k":1}"#)
        );
        assert_eq!(claim_header_value(&c, &p(&["bad"]), ","), None);
        assert_eq!(claim_header_value(&c, &p(&["nil"]), ","), None);
        assert_eq!(claim_header_value(&c, &p(&["sub", "x"]), ","), None);
        assert_eq!(claim_header_value(&c, &p(&["missing"]), ","), None);
    }
}
