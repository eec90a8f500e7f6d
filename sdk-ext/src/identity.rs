//! The verified identity one plugin hands to the plugins after it.
//!
//! jwt-auth writes a [`VerifiedIdentity`] as JSON to the per-stream property
//! [`IDENTITY_PROPERTY`] after it has verified a token; rbac, rate-limit and
//! later plugins read it back. The property path is a **single segment**
//! (`["palisade.identity"]`): Envoy 1.40 stores it as filter state
//! `wasm.palisade.identity` and a two-segment path does not read back.
//!
//! A client cannot forge it: filter state is not a header, and only a filter
//! running before the reader can write it.
//!
//! Every authentication method yields the same shape. For a JWT, `provider`
//! is the configured provider and `claims` the token's claims. For a
//! *consumer* (a named identity authenticated by HTTP Basic or an API key),
//! `provider` names the method (`basic_auth`, `api_key`), `issuer` the
//! consumer store ([`CONSUMER_ISSUER`]), `subject` and `consumer` the consumer
//! name, and `claims` hold `sub`, `groups` (a list) and the consumer's other
//! attributes, so a rule on `claims.groups` works whichever method ran.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The single-segment property path of the verified identity.
pub const IDENTITY_PROPERTY: &str = "palisade.identity";

/// Largest serialized identity accepted by [`VerifiedIdentity::from_json`].
pub const MAX_IDENTITY_BYTES: usize = 64 * 1024;

/// `issuer` of identities authenticated against configured consumers.
pub const CONSUMER_ISSUER: &str = "palisade:consumers";

/// `method` of an identity from a verified JWT.
pub const METHOD_JWT: &str = "jwt";
/// `method` of an identity from HTTP Basic credentials.
pub const METHOD_BASIC: &str = "basic_auth";
/// `method` of an identity from an API key.
pub const METHOD_API_KEY: &str = "api_key";

/// Who a request was verified to come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifiedIdentity {
    /// The configured name of the provider that verified the token.
    pub provider: String,
    /// `iss` of the verified token.
    pub issuer: String,
    /// `sub` of the verified token, when it has one.
    #[serde(default)]
    pub subject: Option<String>,
    /// `aud` of the verified token (a single string becomes one element).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The whole verified claim set (a JSON object).
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// How the request authenticated ([`METHOD_JWT`], [`METHOD_BASIC`],
    /// [`METHOD_API_KEY`]); absent in identities written before methods
    /// existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The configured consumer, for Basic and API-key identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
}

/// Why a serialized identity could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// Larger than [`MAX_IDENTITY_BYTES`].
    TooLarge(usize),
    /// Not the JSON this module writes.
    Malformed(String),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::TooLarge(n) => write!(
                f,
                "verified identity is {n} bytes, more than the {MAX_IDENTITY_BYTES} accepted; forward fewer claims"
            ),
            IdentityError::Malformed(e) => write!(
                f,
                "verified identity is not valid JSON from the same Palisade version: {e}"
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

impl VerifiedIdentity {
    /// Serializes to the JSON stored in the property.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads an identity written by [`VerifiedIdentity::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<VerifiedIdentity, IdentityError> {
        if bytes.len() > MAX_IDENTITY_BYTES {
            return Err(IdentityError::TooLarge(bytes.len()));
        }
        serde_json::from_slice(bytes).map_err(|e| IdentityError::Malformed(e.to_string()))
    }

    /// A claim by top-level name.
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.claims.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut claims = serde_json::Map::new();
        claims.insert("scope".into(), serde_json::json!("read write"));
        let id = VerifiedIdentity {
            provider: "corp".into(),
            issuer: "https://issuer.example".into(),
            subject: Some("alice".into()),
            audiences: vec!["api".into()],
            claims,
            method: Some(METHOD_JWT.into()),
            consumer: None,
        };
        let back = VerifiedIdentity::from_json(&id.to_json()).unwrap();
        assert_eq!(back, id);
        assert_eq!(back.claim("scope"), Some(&serde_json::json!("read write")));
    }

    #[test]
    fn consumer_identities_round_trip_and_older_json_still_parses() {
        let id = VerifiedIdentity {
            provider: METHOD_BASIC.into(),
            issuer: CONSUMER_ISSUER.into(),
            subject: Some("alice".into()),
            method: Some(METHOD_BASIC.into()),
            consumer: Some("alice".into()),
            ..Default::default()
        };
        assert_eq!(VerifiedIdentity::from_json(&id.to_json()).unwrap(), id);
        let old =
            VerifiedIdentity::from_json(br#"{"provider":"p","issuer":"i","claims":{}}"#).unwrap();
        assert_eq!((old.method, old.consumer), (None, None));
        let without = String::from_utf8(
            VerifiedIdentity {
                provider: "p".into(),
                ..Default::default()
            }
            .to_json(),
        )
        .unwrap();
        assert!(!without.contains("method"), "{without}");
    }

    #[test]
    fn refuses_garbage_and_oversize() {
        assert!(matches!(
            VerifiedIdentity::from_json(b"{\"issuer\":1}"),
            Err(IdentityError::Malformed(_))
        ));
        assert!(matches!(
            VerifiedIdentity::from_json(b"{\"provider\":\"p\",\"issuer\":\"i\",\"x\":1}"),
            Err(IdentityError::Malformed(_))
        ));
        let big = vec![b' '; MAX_IDENTITY_BYTES + 1];
        assert!(matches!(
            VerifiedIdentity::from_json(&big),
            Err(IdentityError::TooLarge(_))
        ));
    }
}
