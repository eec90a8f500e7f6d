//! Bytes from the host as text.
//!
//! Envoy passes header values as bytes (obs-text is allowed), so a request
//! view takes them as UTF-8 with invalid sequences replaced by U+FFFD, as
//! `String::from_utf8_lossy` does. Both functions check for ASCII first:
//! nearly every header and property is ASCII, and in wasm `is_ascii` costs
//! well under half the operations of `str::from_utf8` on header-sized
//! values (counted with `wasm-fuel`), which matters on every request.

/// `bytes` as a string, invalid UTF-8 replaced by U+FFFD. (Not written as
/// [`push_lossy`] into a new string: `to_vec` is ≈ 250 wasm operations
/// cheaper per request in rbac, counted with `wasm-fuel`.)
pub fn lossy(bytes: &[u8]) -> String {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        return unsafe { String::from_utf8_unchecked(bytes.to_vec()) };
    }
    String::from_utf8_lossy(bytes).into_owned()
}

/// [`lossy`] for a buffer the caller hands over: ASCII becomes the string
/// without a copy.
pub fn lossy_owned(bytes: Vec<u8>) -> String {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        return unsafe { String::from_utf8_unchecked(bytes) };
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Appends `bytes` to `out` as [`lossy`] reads them.
pub fn push_lossy(out: &mut String, bytes: &[u8]) {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        out.push_str(unsafe { std::str::from_utf8_unchecked(bytes) });
    } else {
        out.push_str(&String::from_utf8_lossy(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::{lossy, lossy_owned, push_lossy};

    #[test]
    fn keeps_valid_text_and_replaces_only_invalid_bytes() {
        let cases: [(&[u8], &str); 6] = [
            (b"", ""),
            (b"x-team: ops", "x-team: ops"),
            ("caf\u{e9} \u{2603}".as_bytes(), "caf\u{e9} \u{2603}"),
            (b"caf\xe9", "caf\u{fffd}"),
            (b"\x00\x7f\x80", "\u{0}\u{7f}\u{fffd}"),
            (b"\xf0\x9f\x98", "\u{fffd}"),
        ];
        for (bytes, text) in cases {
            assert_eq!(lossy(bytes), text, "{bytes:?}");
            assert_eq!(lossy_owned(bytes.to_vec()), text, "{bytes:?}");
            let mut out = String::from("<");
            push_lossy(&mut out, bytes);
            assert_eq!(out, format!("<{text}"), "{bytes:?}");
        }
    }

    #[test]
    fn agrees_with_from_utf8_lossy_on_every_byte() {
        for b in 0..=255u8 {
            let bytes = [b'a', b, b'z'];
            let want = String::from_utf8_lossy(&bytes);
            assert_eq!(lossy(&bytes), want, "{b:#04x}");
            assert_eq!(lossy_owned(bytes.to_vec()), want, "{b:#04x}");
            let mut out = String::new();
            push_lossy(&mut out, &bytes);
            assert_eq!(out, want, "{b:#04x}");
        }
    }
}
