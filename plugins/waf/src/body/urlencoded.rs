//! `a=1&b=2` parsing, as ModSecurity does for the query string and
//! urlencoded bodies: split on `&`, then on the first `=`, URL-decode both
//! halves (`+` is a space); a part without `=` is a name with an empty value.

use super::Pairs;
use crate::transforms::Transform;

/// Parses `text` into at most `max_args` pairs; returns whether any were
/// dropped.
pub fn parse(text: &[u8], max_args: usize, out: &mut Pairs) -> bool {
    for part in text.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if out.len() >= max_args {
            return true;
        }
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (
                part.get(..i).unwrap_or_default(),
                part.get(i + 1..).unwrap_or_default(),
            ),
            None => (part, &b""[..]),
        };
        out.push((
            Transform::UrlDecode.apply(name).into_owned(),
            Transform::UrlDecode.apply(value).into_owned(),
        ));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_decodes() {
        let mut out = Vec::new();
        assert!(!parse(b"a=1+2&b&&c=%3D=x", 10, &mut out));
        assert_eq!(
            out,
            vec![
                (b"a".to_vec(), b"1 2".to_vec()),
                (b"b".to_vec(), b"".to_vec()),
                (b"c".to_vec(), b"==x".to_vec())
            ]
        );
    }

    #[test]
    fn bounded() {
        let mut out = Vec::new();
        assert!(parse(b"a=1&b=2&c=3", 2, &mut out));
        assert_eq!(out.len(), 2);
    }
}
