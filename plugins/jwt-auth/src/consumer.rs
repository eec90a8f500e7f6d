//! Consumers: named identities with attributes, authenticated by HTTP Basic
//! (a salted Argon2id hash) or by API keys (SHA-256 digests, at most two per
//! consumer so keys can be rotated without downtime).
//!
//! ```json
//! "consumers": {
//!   "billing-bot": {
//!     "groups": ["billing"],
//!     "attributes": { "tenant": "acme" },
//!     "basic_auth": { "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$...$..." },
//!     "api_keys": ["sha256:5e88...", "sha256:a665..."]
//!   }
//! }
//! ```
//!
//! Configurations hold no secrets in clear: `palisade-consumer` prints such
//! an entry from a password read on standard input, or from a key it
//! generates.

use crate::password::PasswordHash;
use sdk_ext::identity::{VerifiedIdentity, CONSUMER_ISSUER};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::fmt;

/// Most API keys one consumer may hold (the current one and the next).
pub const MAX_KEYS_PER_CONSUMER: usize = 2;
/// Most consumers in one configuration.
pub const MAX_CONSUMERS: usize = 10_000;
/// Most groups per consumer.
pub const MAX_GROUPS: usize = 64;

/// One consumer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// Groups, handed on as the claim `groups` (a list).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Other attributes (e.g. `tenant`), handed on as claims of the same
    /// name; `sub` and `groups` are reserved.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// HTTP Basic credentials; the username is the consumer name.
    #[serde(default)]
    pub basic_auth: Option<BasicCredential>,
    /// API key digests, `"sha256:<64 hex digits>"`; at most two.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyDigest>,
}

/// A consumer's Basic password, stored as a PHC-format Argon2id hash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    /// `$argon2id$v=19$m=…,t=…,p=…$salt$hash`.
    pub password_hash: PasswordHash,
}

/// The SHA-256 digest of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyDigest(pub [u8; 32]);

impl ApiKeyDigest {
    /// Parses `sha256:<64 hex digits>`.
    pub fn parse(text: &str) -> Result<ApiKeyDigest, String> {
        let hex = text.strip_prefix("sha256:").ok_or_else(|| {
            "an API key is stored as \"sha256:<64 hex digits>\" (print one with palisade-consumer)"
                .to_string()
        })?;
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(format!(
                "the digest has {} hex digits, SHA-256 has 64",
                bytes.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hi = hex_value(pair[0]);
            let lo = hex_value(pair[1]);
            match (hi, lo, out.get_mut(i)) {
                (Some(h), Some(l), Some(slot)) => *slot = h << 4 | l,
                _ => return Err("the digest is not hexadecimal".into()),
            }
        }
        Ok(ApiKeyDigest(out))
    }

    /// `sha256:<hex>`.
    pub fn to_config_string(&self) -> String {
        let mut s = String::from("sha256:");
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl<'de> Deserialize<'de> for ApiKeyDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ApiKeyDigest::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Consumer {
    /// Checks what serde cannot: reserved attribute names, bounds. Returns
    /// the reason and the field it is about.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for reserved in ["sub", "groups"] {
            if self.attributes.contains_key(reserved) {
                return Err((
                    "attributes",
                    format!("`{reserved}` is set by the plugin; use `groups` for groups and the consumer name for `sub`"),
                ));
            }
        }
        if self.groups.len() > MAX_GROUPS || self.groups.iter().any(|g| g.is_empty()) {
            return Err((
                "groups",
                format!("at most {MAX_GROUPS} non-empty group names"),
            ));
        }
        if self.api_keys.len() > MAX_KEYS_PER_CONSUMER {
            return Err((
                "api_keys",
                format!(
                    "at most {MAX_KEYS_PER_CONSUMER} keys (the current and the next, for rotation)"
                ),
            ));
        }
        if self.api_keys.len() == 2 && self.api_keys[0] == self.api_keys[1] {
            return Err(("api_keys", "the two keys are the same".into()));
        }
        if self.basic_auth.is_none() && self.api_keys.is_empty() {
            return Err((
                "basic_auth",
                "a consumer needs `basic_auth` or `api_keys` to authenticate".into(),
            ));
        }
        Ok(())
    }

    /// The identity handed to later filters when consumer `name`
    /// authenticated with `method` (`basic_auth` or `api_key`).
    pub fn identity(&self, name: &str, method: &str) -> VerifiedIdentity {
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::String(name.to_string()));
        claims.insert(
            "groups".into(),
            Value::Array(self.groups.iter().cloned().map(Value::String).collect()),
        );
        for (k, v) in &self.attributes {
            claims.insert(k.clone(), v.clone());
        }
        VerifiedIdentity {
            provider: method.to_string(),
            issuer: CONSUMER_ISSUER.to_string(),
            subject: Some(name.to_string()),
            audiences: Vec::new(),
            claims,
            method: Some(method.to_string()),
            consumer: Some(name.to_string()),
        }
    }
}

/// Why consumer credentials were refused. The text never quotes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialError {
    /// An `Authorization: Basic` header that cannot be read.
    BasicMalformed(&'static str),
    /// An `Authorization: Basic` header over the size limit.
    BasicTooLarge(usize),
    /// No consumer of that name has a Basic password.
    BasicUnknownUser,
    /// The password is wrong for this consumer (index).
    BasicWrongPassword(usize),
    /// A key over `api_key.max_key_bytes`.
    ApiKeyTooLarge(usize),
    /// A key that is no consumer's.
    ApiKeyUnknown,
}

impl CredentialError {
    /// The stable denial code.
    pub fn code(&self) -> &'static str {
        match self {
            CredentialError::BasicMalformed(_) => "basic_malformed",
            CredentialError::BasicTooLarge(_) => "basic_too_large",
            CredentialError::BasicUnknownUser | CredentialError::BasicWrongPassword(_) => {
                "basic_invalid_credentials"
            }
            CredentialError::ApiKeyTooLarge(_) => "api_key_too_large",
            CredentialError::ApiKeyUnknown => "api_key_invalid",
        }
    }

    /// True for Basic failures, false for API-key failures.
    pub fn is_basic(&self) -> bool {
        matches!(
            self,
            CredentialError::BasicMalformed(_)
                | CredentialError::BasicTooLarge(_)
                | CredentialError::BasicUnknownUser
                | CredentialError::BasicWrongPassword(_)
        )
    }

    /// The consumer the failure is about, when known.
    pub fn consumer(&self) -> Option<usize> {
        match self {
            CredentialError::BasicWrongPassword(i) => Some(*i),
            _ => None,
        }
    }

    /// What the client is told: the same for an unknown user and a wrong
    /// password, so responses do not reveal which names exist.
    pub fn public_message(&self) -> &'static str {
        match self {
            CredentialError::BasicMalformed(_) => "the Basic credentials cannot be read",
            CredentialError::BasicTooLarge(_) => "the Authorization header is too large",
            CredentialError::BasicUnknownUser | CredentialError::BasicWrongPassword(_) => {
                "invalid user or password"
            }
            CredentialError::ApiKeyTooLarge(_) => "the API key is too large",
            CredentialError::ApiKeyUnknown => "invalid API key",
        }
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialError::BasicMalformed(why) => write!(f, "malformed Basic credentials: {why}"),
            CredentialError::BasicTooLarge(n) => write!(
                f,
                "Basic authorization header of {n} bytes is over the {} byte limit",
                crate::basic::MAX_BASIC_HEADER_BYTES
            ),
            CredentialError::BasicUnknownUser => {
                f.write_str("no consumer with Basic credentials has that user name")
            }
            CredentialError::BasicWrongPassword(_) => f.write_str("wrong password"),
            CredentialError::ApiKeyTooLarge(n) => {
                write!(
                    f,
                    "API key of {n} bytes is over the configured max_key_bytes"
                )
            }
            CredentialError::ApiKeyUnknown => f.write_str("the API key is no consumer's"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdk_ext::identity::METHOD_API_KEY;
    use serde_json::json;

    #[test]
    fn digests_parse_and_print() {
        let text = format!("sha256:{}", "ab".repeat(32));
        let d = ApiKeyDigest::parse(&text).unwrap();
        assert_eq!(d.0, [0xab; 32]);
        assert_eq!(d.to_config_string(), text);
        assert!(ApiKeyDigest::parse(&"ab".repeat(32)).is_err());
        assert!(ApiKeyDigest::parse("sha256:abc").is_err());
        assert!(ApiKeyDigest::parse(&format!("sha256:{}", "zz".repeat(32))).is_err());
    }

    #[test]
    fn identity_claims_carry_groups_and_attributes() {
        let c: Consumer = serde_json::from_value(json!({
            "groups": ["billing"], "attributes": {"tenant": "acme"},
            "api_keys": [format!("sha256:{}", "00".repeat(32))]
        }))
        .unwrap();
        c.check().unwrap();
        let id = c.identity("bot", METHOD_API_KEY);
        assert_eq!(id.subject.as_deref(), Some("bot"));
        assert_eq!(id.consumer.as_deref(), Some("bot"));
        assert_eq!(id.method.as_deref(), Some(METHOD_API_KEY));
        assert_eq!(
            serde_json::Value::Object(id.claims),
            json!({"sub": "bot", "groups": ["billing"], "tenant": "acme"})
        );
    }

    #[test]
    fn checks_reserved_names_and_key_count() {
        let key = |b: &str| format!("sha256:{}", b.repeat(32));
        let c: Consumer = serde_json::from_value(json!({
            "attributes": {"groups": "x"}, "api_keys": [key("00")]
        }))
        .unwrap();
        assert_eq!(c.check().unwrap_err().0, "attributes");
        let c: Consumer = serde_json::from_value(json!({
            "api_keys": [key("00"), key("01"), key("02")]
        }))
        .unwrap();
        assert_eq!(c.check().unwrap_err().0, "api_keys");
        let c: Consumer = serde_json::from_value(json!({"groups": ["a"]})).unwrap();
        assert_eq!(c.check().unwrap_err().0, "basic_auth");
    }
}
