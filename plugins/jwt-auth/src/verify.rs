//! Verifying one token for one provider: claims first (cheap, no key), then
//! the key (by `kid` and algorithm family) and the signature.

use crate::config::Provider;
use crate::jwk::KeySet;
use crate::signature::{CheckTime, SignatureError};
use crate::token::{self, MalformedToken};
use serde_json::{Map, Value};
use std::fmt;

/// A token that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// The whole claim set.
    pub claims: Map<String, Value>,
    /// `iss`.
    pub issuer: String,
    /// `sub`, if present.
    pub subject: Option<String>,
    /// `aud` as a list.
    pub audiences: Vec<String>,
    /// `exp`, if present.
    pub expires_at: Option<u64>,
    /// `nbf`, if present.
    pub not_before: Option<u64>,
    /// The payload segment as received (base64url), forwarded as is.
    pub payload_b64: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than `max_token_bytes`.
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a well-formed JWS.
    Malformed(MalformedToken),
    /// A registered claim has the wrong type.
    BadClaim(&'static str),
    /// `iss` is not this provider's.
    IssuerMismatch,
    /// No `exp` but the provider requires one.
    MissingExpiration,
    /// `exp` is past (beyond the skew).
    Expired,
    /// `nbf` is in the future (beyond the skew).
    NotYetValid,
    /// `iat` is in the future (beyond the skew).
    IssuedInFuture,
    /// `exp` − `iat` exceeds `max_lifetime`.
    LifetimeTooLong,
    /// `aud` has none of the provider's audiences.
    AudienceMismatch,
    /// `sub` is missing or does not match.
    SubjectMismatch,
    /// The keys of this provider are not available (not fetched yet, or
    /// every fetch failed).
    KeysUnavailable,
    /// No key has the token's `kid`.
    UnknownKid,
    /// No key can verify the token's algorithm (algorithm confusion lands
    /// here: an HS256 token against RSA keys).
    NoMatchingKey,
    /// The signature does not verify.
    BadSignature,
    /// The verifier refused the token (its reason).
    Refused(String),
}

impl TokenError {
    /// Stable code for the deny body and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLarge { .. } => "jwt_too_large",
            TokenError::Malformed(_) | TokenError::BadClaim(_) => "jwt_malformed",
            TokenError::IssuerMismatch => "jwt_unknown_issuer",
            TokenError::MissingExpiration => "jwt_missing_expiration",
            TokenError::Expired => "jwt_expired",
            TokenError::NotYetValid | TokenError::IssuedInFuture => "jwt_not_yet_valid",
            TokenError::LifetimeTooLong => "jwt_lifetime_too_long",
            TokenError::AudienceMismatch => "jwt_audience_mismatch",
            TokenError::SubjectMismatch => "jwt_subject_mismatch",
            TokenError::KeysUnavailable => "jwt_keys_unavailable",
            TokenError::UnknownKid => "jwt_unknown_kid",
            TokenError::NoMatchingKey => "jwt_no_matching_key",
            TokenError::BadSignature | TokenError::Refused(_) => "jwt_bad_signature",
        }
    }

    /// 403 for a valid token that is not for this service; 401 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            TokenError::AudienceMismatch | TokenError::SubjectMismatch => 403,
            _ => 401,
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::TooLarge { len, max } => {
                write!(f, "the token is {len} bytes; at most {max} are accepted")
            }
            TokenError::Malformed(m) => write!(f, "the token is malformed: {m}"),
            TokenError::BadClaim(c) => write!(f, "the {c} claim has the wrong type"),
            TokenError::IssuerMismatch => f.write_str("the token's issuer is not accepted here"),
            TokenError::MissingExpiration => f.write_str("the token has no expiration (exp)"),
            TokenError::Expired => f.write_str("the token has expired"),
            TokenError::NotYetValid => f.write_str("the token is not valid yet (nbf)"),
            TokenError::IssuedInFuture => f.write_str("the token is issued in the future (iat)"),
            TokenError::LifetimeTooLong => {
                f.write_str("the token's lifetime is longer than allowed")
            }
            TokenError::AudienceMismatch => f.write_str("the token's audience is not allowed"),
            TokenError::SubjectMismatch => f.write_str("the token's subject is not allowed"),
            TokenError::KeysUnavailable => {
                f.write_str("the signing keys of the issuer are not available")
            }
            TokenError::UnknownKid => f.write_str("no signing key has the token's kid"),
            TokenError::NoMatchingKey => {
                f.write_str("no signing key can verify the token's algorithm")
            }
            TokenError::BadSignature => f.write_str("the token's signature does not verify"),
            TokenError::Refused(m) => write!(f, "the token was refused: {m}"),
        }
    }
}

impl std::error::Error for TokenError {}

/// Verifies `compact` for `provider` with `keys` at `now` (Unix seconds).
pub fn verify_token(
    compact: &str,
    provider: &Provider,
    keys: Option<&KeySet>,
    max_token_bytes: usize,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    if compact.len() > max_token_bytes {
        return Err(TokenError::TooLarge {
            len: compact.len(),
            max: max_token_bytes,
        });
    }
    let tok = token::parse(compact).map_err(TokenError::Malformed)?;
    let verified = check_claims(tok.payload.clone(), provider, now)?;
    let keys = keys.ok_or(TokenError::KeysUnavailable)?;
    if let Some(kid) = tok.kid.as_deref() {
        if !keys.has_kid(kid) {
            return Err(TokenError::UnknownKid);
        }
    }
    let time = CheckTime {
        now,
        skew: provider.skew(),
    };
    let mut last = TokenError::NoMatchingKey;
    for key in keys.candidates(tok.alg, tok.kid.as_deref()).take(8) {
        match key.verify(
            tok.compact,
            tok.signing_input.as_bytes(),
            &tok.signature,
            time,
        ) {
            Ok(()) => {
                let payload_b64 = tok.signing_input.split('.').nth(1).unwrap_or_default();
                return Ok(VerifiedToken {
                    payload_b64: payload_b64.to_string(),
                    ..verified
                });
            }
            Err(SignatureError::Mismatch) => last = TokenError::BadSignature,
            Err(SignatureError::Refused(m)) => last = TokenError::Refused(m),
        }
    }
    Err(last)
}

/// Checks the registered claims of a payload against a provider.
pub fn check_claims(
    claims: Map<String, Value>,
    provider: &Provider,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    let issuer = match claims.get("iss") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(TokenError::BadClaim("iss")),
        None => return Err(TokenError::IssuerMismatch),
    };
    if issuer != provider.issuer {
        return Err(TokenError::IssuerMismatch);
    }
    let subject = match claims.get("sub") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(TokenError::BadClaim("sub")),
    };
    let audiences = match claims.get("aud") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .take(64)
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(TokenError::BadClaim("aud"))?,
        Some(_) => return Err(TokenError::BadClaim("aud")),
    };
    let exp = numeric_date(&claims, "exp")?;
    let nbf = numeric_date(&claims, "nbf")?;
    let iat = numeric_date(&claims, "iat")?;
    let skew = provider.skew();
    let needs_exp = provider.require_expiration || provider.max_lifetime.is_some();
    match exp {
        None if needs_exp => return Err(TokenError::MissingExpiration),
        Some(e) if now > e.saturating_add(skew) => return Err(TokenError::Expired),
        _ => {}
    }
    if nbf.is_some_and(|n| n > now.saturating_add(skew)) {
        return Err(TokenError::NotYetValid);
    }
    if iat.is_some_and(|i| i > now.saturating_add(skew)) {
        return Err(TokenError::IssuedInFuture);
    }
    if let (Some(max), Some(e)) = (provider.max_lifetime, exp) {
        let start = iat.unwrap_or(now);
        if e.saturating_sub(start) > max.get().as_secs() {
            return Err(TokenError::LifetimeTooLong);
        }
    }
    if !provider.audiences.is_empty() && !audiences.iter().any(|a| provider.audiences.contains(a)) {
        return Err(TokenError::AudienceMismatch);
    }
    if let Some(m) = &provider.subject {
        if !subject.as_deref().is_some_and(|s| m.matches(s)) {
            return Err(TokenError::SubjectMismatch);
        }
    }
    Ok(VerifiedToken {
        claims,
        issuer,
        subject,
        audiences,
        expires_at: exp,
        not_before: nbf,
        payload_b64: String::new(),
    })
}

/// Re-checks only the time-dependent claims (for a cached token).
pub fn still_valid(t: &VerifiedToken, provider: &Provider, now: u64) -> bool {
    let skew = provider.skew();
    t.expires_at.is_none_or(|e| now <= e.saturating_add(skew))
        && t.not_before.is_none_or(|n| n <= now.saturating_add(skew))
}

/// A NumericDate: a non-negative integer (fractions are truncated).
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else {
                match n.as_f64() {
                    Some(f) if (0.0..1.8e19).contains(&f) => Ok(Some(f as u64)),
                    _ => Err(TokenError::BadClaim(name)),
                }
            }
        }
        Some(_) => Err(TokenError::BadClaim(name)),
    }
}
