//! base64url helpers: strict for token segments, tolerant of padding for
//! JWK members (some providers pad them).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Decodes unpadded base64url (RFC 7515 §2); `None` on any other input.
pub fn decode_strict(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes base64url, accepting trailing `=` padding.
pub fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// Encodes unpadded base64url (tests build tokens with it).
#[cfg(test)]
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_refuses_padding_and_standard_alphabet() {
        assert_eq!(decode_strict("YWI").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode_strict("YWI="), None);
        assert_eq!(decode_strict("+/"), None);
        assert_eq!(decode_lenient("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(encode(b"ab"), "YWI");
    }
}
