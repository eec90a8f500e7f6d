//! ID token validation with jwt-auth's verifier: signature against the
//! provider's JWKS, `iss` = issuer, `aud` contains `client_id`, `exp`
//! required, then the OpenID Connect checks the verifier does not know:
//! `nonce` equals the one of the login, and `azp` (when several audiences)
//! is the client.

use jwt_auth::config::Provider;
use jwt_auth::jwk::KeySet;
use jwt_auth::verify::{verify_token, TokenError, VerifiedToken};
use serde_json::Value;
use std::fmt;

/// Largest ID token accepted.
pub const MAX_ID_TOKEN_BYTES: usize = 32 * 1024;

/// Why an ID token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdTokenError {
    /// The verifier refused it (signature, issuer, audience, expiry, ...).
    Token(TokenError),
    /// `nonce` missing or not the login's.
    NonceMismatch,
    /// Several audiences and `azp` is not the client.
    AuthorizedPartyMismatch,
}

impl IdTokenError {
    /// True when fresh keys might help (unknown `kid`, no keys yet).
    pub fn wants_keys(&self) -> bool {
        matches!(
            self,
            IdTokenError::Token(TokenError::UnknownKid | TokenError::KeysUnavailable)
        )
    }
}

impl fmt::Display for IdTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdTokenError::Token(e) => write!(f, "ID token refused: {e}"),
            IdTokenError::NonceMismatch => f.write_str(
                "the ID token's nonce is not the one of this login (replayed or injected)",
            ),
            IdTokenError::AuthorizedPartyMismatch => {
                f.write_str("the ID token's azp is not this client")
            }
        }
    }
}

/// The jwt-auth provider that checks this client's ID tokens (`exp`
/// required, 60 s of clock skew).
pub fn provider(issuer: &str, client_id: &str) -> Provider {
    Provider {
        issuer: issuer.to_string(),
        audiences: vec![client_id.to_string()],
        subject: None,
        require_expiration: true,
        max_lifetime: None,
        clock_skew_seconds: 60,
        local_jwks: None,
        remote_jwks: None,
        from_headers: Vec::new(),
        from_params: Vec::new(),
        from_cookies: Vec::new(),
        forward: false,
        forward_payload_header: None,
        claim_to_headers: Vec::new(),
    }
}

/// Validates `id_token`. `nonce`: the login's nonce (required to match), or
/// on refresh the session's nonce (checked when the token carries one).
pub fn validate(
    id_token: &str,
    provider: &Provider,
    keys: Option<&KeySet>,
    nonce: Nonce<'_>,
    client_id: &str,
    now: u64,
) -> Result<VerifiedToken, IdTokenError> {
    let t = verify_token(id_token, provider, keys, MAX_ID_TOKEN_BYTES, now)
        .map_err(IdTokenError::Token)?;
    let got = t.claims.get("nonce").and_then(Value::as_str);
    match nonce {
        Nonce::Required(want) if got != Some(want) => return Err(IdTokenError::NonceMismatch),
        Nonce::IfPresent(want) if got.is_some_and(|g| Some(g) != want) => {
            return Err(IdTokenError::NonceMismatch)
        }
        _ => {}
    }
    if t.audiences.len() > 1 {
        if let Some(azp) = t.claims.get("azp") {
            if azp.as_str() != Some(client_id) {
                return Err(IdTokenError::AuthorizedPartyMismatch);
            }
        }
    }
    Ok(t)
}

/// The nonce rule of a validation.
#[derive(Debug, Clone, Copy)]
pub enum Nonce<'a> {
    /// After login: must be exactly this.
    Required(&'a str),
    /// After refresh: when present, must be this (OIDC Core §12.2).
    IfPresent(Option<&'a str>),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jwt_simple::prelude::*;
    use serde_json::json;

    pub(crate) const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    pub(crate) fn keys() -> KeySet {
        let k = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, SECRET);
        KeySet::from_json(
            format!(r#"{{"keys":[{{"kty":"oct","kid":"k1","alg":"HS256","k":"{k}"}}]}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    pub(crate) fn sign(claims: serde_json::Value) -> String {
        let c: JWTClaims<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_value(claims).unwrap();
        HS256Key::from_bytes(SECRET)
            .with_key_id("k1")
            .authenticate(c)
            .unwrap()
    }

    pub(crate) fn claims(nonce: &str, exp: u64) -> serde_json::Value {
        json!({"iss": "http://idp.test", "aud": "app", "sub": "alice", "nonce": nonce,
               "iat": 1000, "exp": exp, "groups": ["ops"]})
    }

    fn check(token: &str, nonce: Nonce<'_>, now: u64) -> Result<VerifiedToken, IdTokenError> {
        validate(
            token,
            &provider("http://idp.test", "app"),
            Some(&keys()),
            nonce,
            "app",
            now,
        )
    }

    #[test]
    fn accepts_a_good_token() {
        let t = sign(claims("n1", 2000));
        let v = check(&t, Nonce::Required("n1"), 1500).unwrap();
        assert_eq!(v.subject.as_deref(), Some("alice"));
    }

    #[test]
    fn refuses_wrong_nonce_issuer_audience_expiry_and_signature() {
        let t = sign(claims("n1", 2000));
        assert_eq!(
            check(&t, Nonce::Required("n2"), 1500),
            Err(IdTokenError::NonceMismatch)
        );
        assert_eq!(
            check(&t, Nonce::IfPresent(Some("n2")), 1500),
            Err(IdTokenError::NonceMismatch)
        );
        assert!(check(&t, Nonce::IfPresent(Some("n1")), 1500).is_ok());
        let mut c = claims("n1", 2000);
        c["iss"] = json!("http://evil.test");
        assert_eq!(
            check(&sign(c), Nonce::Required("n1"), 1500),
            Err(IdTokenError::Token(TokenError::IssuerMismatch))
        );
        let mut c = claims("n1", 2000);
        c["aud"] = json!("other");
        assert_eq!(
            check(&sign(c), Nonce::Required("n1"), 1500),
            Err(IdTokenError::Token(TokenError::AudienceMismatch))
        );
        let mut c = claims("n1", 2000);
        c["aud"] = json!(["app", "other"]);
        c["azp"] = json!("other");
        assert_eq!(
            check(&sign(c), Nonce::Required("n1"), 1500),
            Err(IdTokenError::AuthorizedPartyMismatch)
        );
        assert_eq!(
            check(&t, Nonce::Required("n1"), 9000),
            Err(IdTokenError::Token(TokenError::Expired))
        );
        let forged = format!("{}x", &t[..t.len() - 1]);
        assert!(check(&forged, Nonce::Required("n1"), 1500).is_err());
        let err = validate(
            &t,
            &provider("http://idp.test", "app"),
            None,
            Nonce::Required("n1"),
            "app",
            1500,
        )
        .unwrap_err();
        assert!(err.wants_keys());
    }
}
