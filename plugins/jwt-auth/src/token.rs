//! Compact JWS parsing, before any key is involved: three base64url
//! segments, a JSON-object header naming a supported algorithm, a JSON-object
//! payload. Every length is bounded, nothing here panics on any input.

use crate::alg::Algorithm;
use crate::b64;
use serde_json::{Map, Value};
use std::fmt;

/// Largest encoded header accepted.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Longest `kid` accepted.
pub const MAX_KID_BYTES: usize = 256;

/// A token split and decoded, not yet verified.
#[derive(Debug, Clone)]
pub struct UnverifiedToken<'a> {
    /// The compact serialization as received.
    pub compact: &'a str,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    /// The `alg` header.
    pub alg: Algorithm,
    /// The `kid` header, if any.
    pub kid: Option<String>,
    /// The decoded payload, a JSON object.
    pub payload: Map<String, Value>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Why a token could not even be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MalformedToken {
    /// Not three dot-separated segments.
    Segments(usize),
    /// A segment is not unpadded base64url.
    Base64(&'static str),
    /// The header is longer than [`MAX_HEADER_BYTES`].
    HeaderTooLarge,
    /// Header or payload is not a JSON object.
    NotJsonObject(&'static str),
    /// `alg` is missing, `none`, or not supported.
    Algorithm(String),
    /// `kid` is not a short printable string.
    KeyId,
    /// A header this filter never honours (`jku`, `x5u`, `jwk`, `x5c`) or a
    /// `crit` extension it does not understand.
    ForbiddenHeader(&'static str),
    /// The signature segment is empty.
    NoSignature,
}

impl fmt::Display for MalformedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedToken::Segments(n) => {
                write!(f, "a JWT has 3 dot-separated parts, this one has {n}")
            }
            MalformedToken::Base64(part) => write!(f, "the {part} is not base64url"),
            MalformedToken::HeaderTooLarge => {
                write!(f, "the header is longer than {MAX_HEADER_BYTES} bytes")
            }
            MalformedToken::NotJsonObject(part) => write!(f, "the {part} is not a JSON object"),
            MalformedToken::Algorithm(a) => write!(f, "algorithm {a:?} is not accepted"),
            MalformedToken::KeyId => write!(
                f,
                "the kid header must be a printable string of at most {MAX_KID_BYTES} bytes"
            ),
            MalformedToken::ForbiddenHeader(h) => {
                write!(
                    f,
                    "the {h} header is not accepted (keys come only from configuration)"
                )
            }
            MalformedToken::NoSignature => f.write_str("the token has no signature"),
        }
    }
}

/// Splits and decodes a compact JWS.
pub fn parse(compact: &str) -> Result<UnverifiedToken<'_>, MalformedToken> {
    let mut parts = compact.splitn(4, '.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        let n = compact.split('.').take(64).count();
        return Err(MalformedToken::Segments(n));
    };
    if h.len() > MAX_HEADER_BYTES {
        return Err(MalformedToken::HeaderTooLarge);
    }
    let header = b64::decode_strict(h).ok_or(MalformedToken::Base64("header"))?;
    let header: Map<String, Value> =
        serde_json::from_slice(&header).map_err(|_| MalformedToken::NotJsonObject("header"))?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => {
            Algorithm::from_name(a).ok_or_else(|| MalformedToken::Algorithm(truncate(a)))?
        }
        Some(other) => return Err(MalformedToken::Algorithm(truncate(&other.to_string()))),
        None => return Err(MalformedToken::Algorithm(String::new())),
    };
    for forbidden in ["jku", "x5u", "jwk", "x5c"] {
        if header.contains_key(forbidden) {
            return Err(MalformedToken::ForbiddenHeader(forbidden));
        }
    }
    match header.get("crit") {
        None => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => return Err(MalformedToken::ForbiddenHeader("crit")),
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k))
            if !k.is_empty() && k.len() <= MAX_KID_BYTES && k.chars().all(|c| !c.is_control()) =>
        {
            Some(k.clone())
        }
        Some(_) => return Err(MalformedToken::KeyId),
    };
    let payload = b64::decode_strict(p).ok_or(MalformedToken::Base64("payload"))?;
    let payload: Map<String, Value> =
        serde_json::from_slice(&payload).map_err(|_| MalformedToken::NotJsonObject("payload"))?;
    if s.is_empty() {
        return Err(MalformedToken::NoSignature);
    }
    let signature = b64::decode_strict(s).ok_or(MalformedToken::Base64("signature"))?;
    Ok(UnverifiedToken {
        compact,
        signing_input: &compact[..h.len() + 1 + p.len()],
        alg,
        kid,
        payload,
        signature,
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(header: &str, payload: &str, sig: &str) -> String {
        format!(
            "{}.{}.{}",
            b64::encode(header.as_bytes()),
            b64::encode(payload.as_bytes()),
            sig
        )
    }

    #[test]
    fn reads_a_token() {
        let t = tok(r#"{"alg":"ES256","kid":"k1"}"#, r#"{"iss":"a"}"#, "AAAA");
        let u = parse(&t).unwrap();
        assert_eq!(u.alg, Algorithm::Es256);
        assert_eq!(u.kid.as_deref(), Some("k1"));
        assert_eq!(u.payload["iss"], "a");
        assert_eq!(u.signature, vec![0, 0, 0]);
        assert_eq!(u.signing_input.matches('.').count(), 1);
    }

    #[test]
    fn refusals() {
        let p = r#"{"iss":"a"}"#;
        let cases = [
            (tok(r#"{"alg":"none"}"#, p, "AAAA"), "algorithm"),
            (
                tok(r#"{"alg":"RS256","jku":"https://x"}"#, p, "AAAA"),
                "jku",
            ),
            (
                tok(r#"{"alg":"RS256","x5u":"https://x"}"#, p, "AAAA"),
                "x5u",
            ),
            (tok(r#"{"alg":"RS256","crit":["b64"]}"#, p, "AAAA"), "crit"),
            (tok(r#"{"alg":"RS256","kid":7}"#, p, "AAAA"), "kid"),
            (tok(r#"{"alg":"RS256"}"#, p, ""), "no signature"),
            (tok(r#"{"alg":"RS256"}"#, "[1]", "AAAA"), "payload"),
            (tok("[]", p, "AAAA"), "header"),
            ("a.b".to_string(), "3 dot-separated"),
            ("a.b.c.d.e".to_string(), "3 dot-separated"),
            (tok(r#"{"alg":"RS256"}"#, p, "AA=="), "base64url"),
        ];
        for (t, want) in cases {
            let e = parse(&t).unwrap_err().to_string();
            assert!(e.contains(want), "{t}: {e}");
        }
    }
}
