//! Content digests (`sha256:<64 hex>`), the names OCI gives every blob and
//! manifest, and [`Blob`], bytes that carry their digest and media type.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// A SHA-256 content digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The 64 lowercase hex characters, without the `sha256:` prefix (the
    /// form Istio's and Envoy Gateway's `sha256` fields take).
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for b in self.0 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// Parses 64 lowercase hex characters (no prefix).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(DigestError::Malformed(hex.to_string()));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hi = nibble(pair[0]).ok_or_else(|| DigestError::Malformed(hex.to_string()))?;
            let lo = nibble(pair[1]).ok_or_else(|| DigestError::Malformed(hex.to_string()))?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Digest(out))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Parses `sha256:<64 lowercase hex>`.
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        match s.strip_prefix("sha256:") {
            Some(hex) => Digest::from_hex(hex),
            None => Err(DigestError::Algorithm(s.to_string())),
        }
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// Not `sha256:`; OCI allows others, but every tool here writes SHA-256.
    Algorithm(String),
    /// Not 64 lowercase hex characters.
    Malformed(String),
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::Algorithm(s) => {
                write!(f, "digest {s:?} is not of the form sha256:<64 hex>; only SHA-256 digests are supported")
            }
            DigestError::Malformed(s) => {
                write!(
                    f,
                    "{s:?} is not 64 lowercase hex characters (a SHA-256 digest)"
                )
            }
        }
    }
}

impl std::error::Error for DigestError {}

/// Bytes with their media type and digest: a config, a layer or a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// The OCI media type the descriptor of this blob carries.
    pub media_type: String,
    /// The content.
    pub bytes: Vec<u8>,
    /// The SHA-256 of `bytes`.
    pub digest: Digest,
}

impl Blob {
    /// A blob of `media_type` holding `bytes`.
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        let digest = Digest::of(&bytes);
        Blob {
            media_type: media_type.to_string(),
            bytes,
            digest,
        }
    }

    /// The size in bytes, as descriptors record it.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_of_empty_input() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_forms() {
        let d = Digest::of(b"palisade");
        assert_eq!(d.to_string().parse::<Digest>(), Ok(d));
        assert_eq!(Digest::from_hex(&d.hex()), Ok(d));
        assert!(matches!(
            "sha512:00".parse::<Digest>(),
            Err(DigestError::Algorithm(_))
        ));
        assert!(matches!(
            format!("sha256:{}", d.hex().to_uppercase()).parse::<Digest>(),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            Digest::from_hex("abc"),
            Err(DigestError::Malformed(_))
        ));
    }

    #[test]
    fn blob_records_size_and_digest() {
        let b = Blob::new("application/octet-stream", b"abc".to_vec());
        assert_eq!(b.size(), 3);
        assert_eq!(b.digest, Digest::of(b"abc"));
    }
}
