//! The session kept in the sealed cookie: the tokens, when they expire,
//! when the session started, and the login's nonce (checked again on
//! refreshed ID tokens).

use serde::{Deserialize, Serialize};

/// Largest serialized session accepted when opening a cookie.
pub const MAX_SESSION_BYTES: usize = 64 * 1024;

/// A logged-in session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The last ID token (validated when received).
    pub id_token: String,
    /// The access token.
    pub access_token: String,
    /// The refresh token, if the provider issued one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds when the access token expires.
    pub expires_at: u64,
    /// Unix seconds of the login (bounds the session's life).
    pub started_at: u64,
    /// The login's nonce.
    pub nonce: String,
}

impl Session {
    /// JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads [`Session::to_json`] output.
    pub fn from_json(bytes: &[u8]) -> Option<Session> {
        if bytes.len() > MAX_SESSION_BYTES {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = Session {
            id_token: "i".into(),
            access_token: "a".into(),
            refresh_token: None,
            expires_at: 10,
            started_at: 1,
            nonce: "n".into(),
        };
        assert_eq!(Session::from_json(&s.to_json()), Some(s));
        assert_eq!(Session::from_json(b"{}"), None);
    }
}
