//! Starting a login: PKCE (S256), `state` and `nonce` from random bytes the
//! caller draws from the host, the login state kept in a sealed cookie
//! until the provider calls back, and the authorization URL.

use crate::urlenc;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Random bytes for one login and one seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entropy(pub [u8; ENTROPY_BYTES]);

/// Bytes in [`Entropy`]: PKCE verifier 32, state 16, nonce 16, seal nonce 12.
pub const ENTROPY_BYTES: usize = 76;

impl Entropy {
    fn verifier(&self) -> &[u8] {
        &self.0[..32]
    }
    fn state(&self) -> &[u8] {
        &self.0[32..48]
    }
    fn nonce(&self) -> &[u8] {
        &self.0[48..64]
    }
    /// The AEAD nonce of the cookie sealed with this entropy.
    pub fn seal_nonce(&self) -> [u8; 12] {
        let mut n = [0u8; 12];
        n.copy_from_slice(&self.0[64..76]);
        n
    }
}

/// What the callback needs to finish a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE `code_verifier`.
    pub code_verifier: String,
    /// Where the user goes after login (path and query on this host).
    pub return_to: String,
    /// The redirect URI sent (sent again in the token request).
    pub redirect_uri: String,
    /// Unix seconds when the login started.
    pub started_at: u64,
}

impl LoginState {
    /// A new login from `entropy`.
    pub fn new(entropy: &Entropy, return_to: &str, redirect_uri: &str, now: u64) -> LoginState {
        LoginState {
            state: URL_SAFE_NO_PAD.encode(entropy.state()),
            nonce: URL_SAFE_NO_PAD.encode(entropy.nonce()),
            code_verifier: URL_SAFE_NO_PAD.encode(entropy.verifier()),
            return_to: return_to.to_string(),
            redirect_uri: redirect_uri.to_string(),
            started_at: now,
        }
    }

    /// The S256 `code_challenge` (RFC 7636 §4.2).
    pub fn code_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.code_verifier.as_bytes()))
    }

    /// The provider's authorization URL for this login.
    pub fn authorization_url(&self, endpoint: &str, client_id: &str, scopes: &[String]) -> String {
        let scope = scopes.join(" ");
        let challenge = self.code_challenge();
        let query = urlenc::form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", &self.redirect_uri),
            ("scope", &scope),
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        format!("{endpoint}{sep}{query}")
    }
}

/// A safe place to return to after login: a local path (never `//host`,
/// which a browser reads as another site), else `/`.
pub fn safe_return_to(path: &str) -> String {
    if path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 2048
        && path.bytes().all(|b| b > b' ' && b != 0x7f)
    {
        path.to_string()
    } else {
        "/".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_challenge() {
        let s = LoginState {
            state: String::new(),
            nonce: String::new(),
            code_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            return_to: "/".into(),
            redirect_uri: String::new(),
            started_at: 0,
        };
        assert_eq!(
            s.code_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn values_come_from_distinct_entropy() {
        let mut e = [0u8; ENTROPY_BYTES];
        for (i, b) in e.iter_mut().enumerate() {
            *b = i as u8;
        }
        let s = LoginState::new(&Entropy(e), "/a", "https://app/cb", 5);
        assert_eq!(s.code_verifier.len(), 43);
        assert_ne!(s.state, s.nonce);
        assert_eq!(Entropy(e).seal_nonce()[0], 64);
        let url = s.authorization_url(
            "https://idp/auth",
            "app",
            &["openid".into(), "email".into()],
        );
        assert!(url.starts_with("https://idp/auth?response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp%2Fcb&scope=openid%20email&state="));
        assert!(url.contains("&code_challenge_method=S256"));
        assert!(url.contains(&format!("nonce={}", s.nonce)));
        assert!(s
            .authorization_url("https://idp/auth?x=1", "app", &[])
            .contains("?x=1&response_type"));
    }

    #[test]
    fn return_to_is_local() {
        assert_eq!(safe_return_to("/app?x=1"), "/app?x=1");
        assert_eq!(safe_return_to("//evil.test/"), "/");
        assert_eq!(safe_return_to("/\\evil.test"), "/");
        assert_eq!(safe_return_to("https://evil.test"), "/");
    }
}
