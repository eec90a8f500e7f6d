//! Sealing cookie values with AES-256-GCM: `base64url(key_id || nonce ||
//! ciphertext+tag)`. The cookie's base name is the associated data, so a
//! login-state value cannot be replayed as a session and the other way
//! round. The current key seals; the current and the previous keys open (key
//! rotation without logging everybody out). The 12-byte nonce is random
//! (taken as input: the filter draws it from the host).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

/// Bytes of a nonce.
pub const NONCE_BYTES: usize = 12;
/// Bytes of a key id (a prefix of the key's SHA-256).
const KEY_ID_BYTES: usize = 4;

/// One AEAD key.
#[derive(Clone)]
pub struct SessionKey {
    id: [u8; KEY_ID_BYTES],
    cipher: Aes256Gcm,
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey(id {:02x?})", self.id)
    }
}

impl SessionKey {
    /// A key from 32 bytes.
    pub fn new(bytes: &[u8; 32]) -> SessionKey {
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; KEY_ID_BYTES];
        id.copy_from_slice(&digest[..KEY_ID_BYTES]);
        SessionKey {
            id,
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }

    /// A key from base64 (standard or url-safe, padded or not) of 32 bytes.
    pub fn from_base64(text: &str) -> Result<SessionKey, String> {
        let t = text.trim();
        let bytes = STANDARD
            .decode(t)
            .or_else(|_| URL_SAFE.decode(t))
            .or_else(|_| URL_SAFE_NO_PAD.decode(t))
            .map_err(|_| "not base64 (generate one with: openssl rand -base64 32)".to_string())?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "{} bytes; an AES-256 key is 32 (openssl rand -base64 32)",
                bytes.len()
            )
        })?;
        Ok(SessionKey::new(&key))
    }
}

/// The keys in use.
#[derive(Debug, Clone)]
pub struct KeyRing {
    /// Seals and opens.
    pub current: SessionKey,
    /// Open only.
    pub previous: Vec<SessionKey>,
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not base64url, or too short.
    Malformed,
    /// Sealed with a key that is not configured (any more).
    UnknownKey,
    /// The tag does not verify: tampered, or sealed for another cookie.
    Tampered,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenError::Malformed => "the cookie is not a sealed value",
            OpenError::UnknownKey => {
                "the cookie was sealed with a key that is no longer configured"
            }
            OpenError::Tampered => "the cookie does not authenticate (tampered or forged)",
        })
    }
}

impl KeyRing {
    /// Seals `plaintext` for cookie `name` with `nonce`.
    pub fn seal(&self, name: &str, plaintext: &[u8], nonce: &[u8; NONCE_BYTES]) -> String {
        let ct = self
            .current
            .cipher
            .encrypt(
                &Nonce::from(*nonce),
                Payload {
                    msg: plaintext,
                    aad: name.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(KEY_ID_BYTES + NONCE_BYTES + ct.len());
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&ct);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a value sealed by [`KeyRing::seal`] for cookie `name`.
    pub fn open(&self, name: &str, sealed: &str) -> Result<Vec<u8>, OpenError> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed.trim())
            .map_err(|_| OpenError::Malformed)?;
        if raw.len() < KEY_ID_BYTES + NONCE_BYTES + 16 {
            return Err(OpenError::Malformed);
        }
        let (id, rest) = raw.split_at(KEY_ID_BYTES);
        let (nonce, ct) = rest.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| OpenError::Malformed)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or(OpenError::UnknownKey)?;
        key.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(current: u8, previous: &[u8]) -> KeyRing {
        KeyRing {
            current: SessionKey::new(&[current; 32]),
            previous: previous
                .iter()
                .map(|b| SessionKey::new(&[*b; 32]))
                .collect(),
        }
    }

    #[test]
    fn round_trip() {
        let r = ring(1, &[]);
        let s = r.seal("c", b"hello", &[7; 12]);
        assert_eq!(r.open("c", &s).unwrap(), b"hello");
        assert!(!s.contains("hello"));
    }

    #[test]
    fn previous_key_opens_after_rotation_and_unknown_key_is_refused() {
        let old = ring(1, &[]);
        let sealed = old.seal("c", b"x", &[0; 12]);
        assert_eq!(ring(2, &[1]).open("c", &sealed).unwrap(), b"x");
        assert_eq!(ring(2, &[]).open("c", &sealed), Err(OpenError::UnknownKey));
    }

    #[test]
    fn tampering_and_cookie_swap_are_detected() {
        let r = ring(1, &[]);
        let sealed = r.seal("session", b"payload", &[3; 12]);
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(r.open("session", &tampered), Err(OpenError::Tampered));
        assert_eq!(r.open("login", &sealed), Err(OpenError::Tampered));
        assert_eq!(r.open("session", "%%%"), Err(OpenError::Malformed));
        assert_eq!(r.open("session", "AAAA"), Err(OpenError::Malformed));
    }

    #[test]
    fn keys_parse_from_base64() {
        assert!(SessionKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").is_ok());
        assert!(SessionKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").is_ok());
        assert!(SessionKey::from_base64("c2hvcnQ=")
            .unwrap_err()
            .contains("32"));
    }
}
