//! jwt-auth configuration (JSON), validated while it is read.
//!
//! ```json
//! {
//!   "providers": {
//!     "corp": {
//!       "issuer": "https://idp.example",
//!       "audiences": ["api"],
//!       "remote_jwks": { "http_uri": { "uri": "https://idp.example/jwks", "cluster": "idp", "timeout": "2s" },
//!                        "cache_duration": "600s" },
//!       "claim_to_headers": [ { "header_name": "x-user", "claim_name": "sub" } ]
//!     }
//!   },
//!   "rules": [
//!     { "match": { "paths": [ { "prefix": "/public" } ] } },
//!     { "match": { "paths": [ { "prefix": "/" } ] }, "requires": { "provider_name": "corp" } }
//!   ]
//! }
//! ```
//!
//! Field names follow Envoy's `jwt_authn` where it has the concept. See the
//! crate README for every field and default.

use crate::apikey::{ApiKeyConfig, KeyIndex, MAX_KEY_BYTES_LIMIT};
use crate::basic::BasicAuthConfig;
use crate::consumer::{Consumer, MAX_CONSUMERS};
use crate::jwk::{JwksError, KeySet};
use sdk_ext::config::{parse_config, ConfigError, FieldPath};
use sdk_ext::duration::ConfigDuration;
use sdk_ext::matcher::{RequestMatch, StringMatcher};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::time::Duration;

/// Deepest nesting of `requires_any` / `requires_all` accepted.
pub const MAX_REQUIREMENT_DEPTH: usize = 8;
/// Largest `max_token_bytes` accepted.
pub const MAX_TOKEN_BYTES_LIMIT: usize = 64 * 1024;
/// Largest `token_cache_size` accepted.
pub const MAX_CACHE_SIZE: usize = 4096;

/// The whole plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthConfig {
    /// Token issuers by name (letters, digits, `-`, `_`, `.`). At least one
    /// provider or one consumer is required.
    #[serde(default)]
    pub providers: BTreeMap<ProviderName, Provider>,
    /// Named identities authenticated by HTTP Basic or API keys.
    #[serde(default)]
    pub consumers: BTreeMap<ProviderName, Consumer>,
    /// Settings of HTTP Basic (the credentials are in `consumers`).
    #[serde(default)]
    pub basic_auth: BasicAuthConfig,
    /// Where API keys are read (the key digests are in `consumers`).
    #[serde(default)]
    pub api_key: ApiKeyConfig,
    /// Requirements per route; the first rule whose `match` matches applies.
    /// Without `rules`, every request needs a token from any provider.
    #[serde(default)]
    pub rules: Option<Vec<Rule>>,
    /// Let CORS preflight requests (OPTIONS with `origin` and
    /// `access-control-request-method`) through without a token.
    #[serde(default)]
    pub bypass_cors_preflight: bool,
    /// Tokens longer than this are refused without being parsed.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Verified tokens remembered (per VM); 0 turns the cache off.
    #[serde(default = "default_cache_size")]
    pub token_cache_size: usize,
    /// The `realm` of `WWW-Authenticate`.
    #[serde(default = "default_realm")]
    pub realm: String,
}

fn default_max_token_bytes() -> usize {
    8192
}
fn default_cache_size() -> usize {
    256
}
fn default_realm() -> String {
    "palisade".into()
}
fn default_true() -> bool {
    true
}
fn default_skew() -> u32 {
    60
}
fn default_separator() -> String {
    ",".into()
}

/// A validated provider or consumer name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProviderName(String);

impl ProviderName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ProviderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        sdk_ext::config::check_name(&s, "name", 64).map_err(serde::de::Error::custom)?;
        Ok(ProviderName(s))
    }
}

/// One token issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Required `iss` (exact match).
    pub issuer: String,
    /// The token's `aud` must contain one of these; empty: any audience.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The token's `sub` must match.
    #[serde(default)]
    pub subject: Option<StringMatcher>,
    /// Refuse tokens without `exp` (default true).
    #[serde(default = "default_true")]
    pub require_expiration: bool,
    /// Refuse tokens whose lifetime (`exp` − `iat`, or − now without `iat`)
    /// is longer; implies `exp` is required.
    #[serde(default)]
    pub max_lifetime: Option<ConfigDuration>,
    /// Tolerated clock difference for `exp`, `nbf` and `iat`, seconds.
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u32,
    /// Keys written in the configuration.
    #[serde(default)]
    pub local_jwks: Option<LocalJwks>,
    /// Keys fetched from an Envoy cluster.
    #[serde(default)]
    pub remote_jwks: Option<RemoteJwks>,
    /// Headers that may carry the token, with a value prefix.
    #[serde(default)]
    pub from_headers: Vec<HeaderSource>,
    /// Query parameters that may carry the token.
    #[serde(default)]
    pub from_params: Vec<String>,
    /// Cookies that may carry the token.
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// Keep the token in the request sent upstream (default: strip it).
    #[serde(default)]
    pub forward: bool,
    /// Send the verified payload upstream in this header (base64url JSON).
    #[serde(default)]
    pub forward_payload_header: Option<HeaderName>,
    /// Copy claims into request headers.
    #[serde(default)]
    pub claim_to_headers: Vec<ClaimToHeader>,
}

impl Provider {
    /// Where to look for tokens: the configured sources, or
    /// `Authorization: Bearer` when none is configured.
    pub fn header_sources(&self) -> Vec<HeaderSource> {
        if self.from_headers.is_empty()
            && self.from_params.is_empty()
            && self.from_cookies.is_empty()
        {
            vec![HeaderSource {
                name: HeaderName("authorization".into()),
                value_prefix: Some("Bearer ".into()),
            }]
        } else {
            self.from_headers.clone()
        }
    }

    /// The clock skew as seconds.
    pub fn skew(&self) -> u64 {
        u64::from(self.clock_skew_seconds)
    }
}

/// A lower-cased, valid, non-pseudo HTTP header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderName(pub String);

impl HeaderName {
    /// The (lower-case) name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if ok {
            Ok(HeaderName(s.to_ascii_lowercase()))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid header name {s:?}: use an HTTP token (letters, digits, '-', ...); pseudo-headers cannot be used"
            )))
        }
    }
}

/// A header that may carry a token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSource {
    /// Header name.
    pub name: HeaderName,
    /// Text before the token (compared ignoring ASCII case), e.g. `"Bearer "`.
    #[serde(default)]
    pub value_prefix: Option<String>,
}

/// Keys written in the configuration: exactly one of `inline_string` (a
/// JWKS as a JSON string, Envoy's form) or `inline` (the JWKS object).
#[derive(Debug, Clone)]
pub struct LocalJwks(pub KeySet);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocalJwks {
    #[serde(default)]
    inline_string: Option<String>,
    #[serde(default)]
    inline: Option<serde_json::Value>,
}

impl<'de> Deserialize<'de> for LocalJwks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawLocalJwks::deserialize(d)?;
        let text = match (raw.inline_string, raw.inline) {
            (Some(s), None) => s.into_bytes(),
            (None, Some(v)) => serde_json::to_vec(&v).map_err(serde::de::Error::custom)?,
            _ => {
                return Err(serde::de::Error::custom(
                    "set exactly one of `inline_string` and `inline`",
                ))
            }
        };
        let set = KeySet::from_json(&text).map_err(serde::de::Error::custom)?;
        if !set.skipped.is_empty() {
            return Err(serde::de::Error::custom(JwksError::NoUsableKey(
                set.skipped,
            )));
        }
        Ok(LocalJwks(set))
    }
}

/// Keys fetched with `dispatch_http_call` from an Envoy cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteJwks {
    /// Where to fetch. Without `uri`, the JWKS address is discovered from
    /// `{issuer}/.well-known/openid-configuration` through the same cluster.
    pub http_uri: HttpUri,
    /// How long fetched keys are used before they are fetched again.
    #[serde(default = "default_cache_duration")]
    pub cache_duration: ConfigDuration,
    /// A token with an unknown `kid` causes at most one refetch per
    /// interval.
    #[serde(default = "default_refetch_interval")]
    pub unknown_kid_refetch_interval: ConfigDuration,
    /// After a failed fetch, try again after this long.
    #[serde(default = "default_retry_interval")]
    pub retry_interval: ConfigDuration,
}

fn default_cache_duration() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(600))
}
fn default_refetch_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30))
}
fn default_retry_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}
fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

/// An HTTP address reached through a named Envoy cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpUri {
    /// `http(s)://authority/path`; the authority becomes `:authority`.
    #[serde(default)]
    pub uri: Option<Url>,
    /// The Envoy cluster the request is sent to.
    pub cluster: String,
    /// Request timeout.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
}

/// An `http`/`https` URL split into what `dispatch_http_call` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `:authority`.
    pub authority: String,
    /// `:path` (with query), at least `/`.
    pub path: String,
}

impl Url {
    /// Parses `http(s)://authority[/path]`.
    pub fn parse(text: &str) -> Result<Url, String> {
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| format!("{text:?} is not an http(s) URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = path.split('#').next().unwrap_or("/");
        if authority.is_empty()
            || authority.contains('@')
            || !authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        {
            return Err(format!("{text:?} has no valid host"));
        }
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!("{text:?} has spaces or control characters"));
        }
        Ok(Url {
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }
}

impl<'de> Deserialize<'de> for Url {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Url::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Copies one claim into a request header.
#[derive(Debug, Clone)]
pub struct ClaimToHeader {
    /// The header set upstream (any client-sent copy is removed first).
    pub header_name: HeaderName,
    /// Path into the claims: from `claim_name` split at `.`, or
    /// `claim_path` as written (for claim names that contain dots).
    pub path: Vec<String>,
    /// Joins array elements (default `,`).
    pub separator: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimToHeader {
    header_name: HeaderName,
    #[serde(default)]
    claim_name: Option<String>,
    #[serde(default)]
    claim_path: Option<Vec<String>>,
    #[serde(default = "default_separator")]
    separator: String,
}

impl<'de> Deserialize<'de> for ClaimToHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawClaimToHeader::deserialize(d)?;
        let path: Vec<String> = match (raw.claim_name, raw.claim_path) {
            (Some(n), None) => n.split('.').map(str::to_string).collect(),
            (None, Some(p)) => p,
            _ => {
                return Err(serde::de::Error::custom(
                    "set exactly one of `claim_name` (nested with '.') and `claim_path` (a list of names, for names containing '.')",
                ))
            }
        };
        if path.is_empty() || path.len() > 16 || path.iter().any(String::is_empty) {
            return Err(serde::de::Error::custom(
                "the claim path needs 1 to 16 non-empty names",
            ));
        }
        if raw.separator.bytes().any(|b| b.is_ascii_control()) {
            return Err(serde::de::Error::custom(
                "the separator cannot contain control characters",
            ));
        }
        Ok(ClaimToHeader {
            header_name: raw.header_name,
            path,
            separator: raw.separator,
        })
    }
}

/// A route and what it requires.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Which requests (paths exact/prefix/regex/template, methods, ...).
    #[serde(rename = "match")]
    pub matcher: RequestMatch,
    /// What they need; absent: nothing (the route is public).
    #[serde(default)]
    pub requires: Option<Requirement>,
}

/// What a request must present (Envoy's `JwtRequirement`, plus the
/// consumer methods `basic_auth` and `api_key`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Requirement {
    /// A valid token from this provider.
    ProviderName(String),
    /// Any one of these.
    RequiresAny(Vec<Requirement>),
    /// All of these.
    RequiresAll(Vec<Requirement>),
    /// No token, or a token valid for some provider.
    AllowMissing(Empty),
    /// Anything; valid tokens still yield an identity.
    AllowMissingOrFailed(Empty),
    /// HTTP Basic credentials of a consumer.
    BasicAuth(Empty),
    /// An API key of a consumer.
    ApiKey(Empty),
}

/// `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

impl JwtAuthConfig {
    /// Parses and validates configuration bytes.
    pub fn from_json(bytes: &[u8]) -> Result<JwtAuthConfig, ConfigError> {
        let config: JwtAuthConfig = parse_config(bytes)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let root = FieldPath::root();
        if self.providers.is_empty() && self.consumers.is_empty() {
            return Err(root
                .field("providers")
                .error("configure at least one provider (JWT) or one consumer (Basic, API key)"));
        }
        self.validate_consumers(&root)?;
        if self.max_token_bytes == 0 || self.max_token_bytes > MAX_TOKEN_BYTES_LIMIT {
            return Err(root
                .field("max_token_bytes")
                .error(format!("must be between 1 and {MAX_TOKEN_BYTES_LIMIT}")));
        }
        if self.token_cache_size > MAX_CACHE_SIZE {
            return Err(root
                .field("token_cache_size")
                .error(format!("at most {MAX_CACHE_SIZE}")));
        }
        if self.realm.is_empty()
            || self
                .realm
                .bytes()
                .any(|b| b == b'"' || b == b'\\' || b.is_ascii_control())
        {
            return Err(root
                .field("realm")
                .error("a non-empty realm without quotes, backslashes or control characters"));
        }
        for (name, p) in &self.providers {
            let here = root.field("providers").field(name.as_str());
            if p.issuer.is_empty() {
                return Err(here.field("issuer").error("the issuer cannot be empty"));
            }
            match (&p.local_jwks, &p.remote_jwks) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => return Err(here.error("set exactly one of `local_jwks` and `remote_jwks`")),
            }
            if let Some(r) = &p.remote_jwks {
                let uri = here.field("remote_jwks").field("http_uri");
                if r.http_uri.cluster.is_empty() {
                    return Err(uri.field("cluster").error("name the Envoy cluster"));
                }
                if r.http_uri.uri.is_none() && Url::parse(&p.issuer).is_err() {
                    return Err(uri.field("uri").error(
                        "without `uri` the JWKS is discovered from the issuer, which must then be an http(s) URL",
                    ));
                }
                if r.cache_duration.get() < Duration::from_secs(1) {
                    return Err(here
                        .field("remote_jwks")
                        .field("cache_duration")
                        .error("at least 1s"));
                }
            }
            check_source_names(&p.from_params, &p.from_cookies, &here)?;
        }
        if let Some(rules) = &self.rules {
            for (i, r) in rules.iter().enumerate() {
                if let Some(req) = &r.requires {
                    self.check_requirement(
                        req,
                        &root.field("rules").index(i).field("requires"),
                        0,
                    )?;
                }
            }
        }
        Ok(())
    }

    fn validate_consumers(&self, root: &FieldPath) -> Result<(), ConfigError> {
        let here = root.field("consumers");
        if self.consumers.len() > MAX_CONSUMERS {
            return Err(here.error(format!("at most {MAX_CONSUMERS} consumers")));
        }
        for (name, c) in &self.consumers {
            if let Err((field, reason)) = c.check() {
                return Err(here.field(name.as_str()).field(field).error(reason));
            }
        }
        if let Err(d) = KeyIndex::new(self.consumer_keys()) {
            let owner = self
                .consumers
                .iter()
                .find(|(_, c)| c.api_keys.contains(&d))
                .map(|(n, _)| n.as_str())
                .unwrap_or_default();
            return Err(here
                .field(owner)
                .field("api_keys")
                .error("this key is also another consumer's: every key belongs to one consumer"));
        }
        if self.basic_auth.cache_size > MAX_CACHE_SIZE {
            return Err(root
                .field("basic_auth")
                .field("cache_size")
                .error(format!("at most {MAX_CACHE_SIZE}")));
        }
        let k = &self.api_key;
        if k.max_key_bytes == 0 || k.max_key_bytes > MAX_KEY_BYTES_LIMIT {
            return Err(root
                .field("api_key")
                .field("max_key_bytes")
                .error(format!("must be between 1 and {MAX_KEY_BYTES_LIMIT}")));
        }
        check_source_names(&k.from_params, &k.from_cookies, &root.field("api_key"))
    }

    /// Every configured API key digest with its consumer's index (the
    /// order of the consumer names).
    pub fn consumer_keys(&self) -> Vec<(crate::consumer::ApiKeyDigest, usize)> {
        self.consumers
            .values()
            .enumerate()
            .flat_map(|(i, c)| c.api_keys.iter().map(move |d| (*d, i)))
            .collect()
    }

    /// True when some consumer has a Basic password.
    pub fn has_basic_consumers(&self) -> bool {
        self.consumers.values().any(|c| c.basic_auth.is_some())
    }

    /// True when some consumer has an API key.
    pub fn has_api_key_consumers(&self) -> bool {
        self.consumers.values().any(|c| !c.api_keys.is_empty())
    }

    fn check_requirement(
        &self,
        req: &Requirement,
        here: &FieldPath,
        depth: usize,
    ) -> Result<(), ConfigError> {
        if depth > MAX_REQUIREMENT_DEPTH {
            return Err(here.error(format!(
                "requirements nest at most {MAX_REQUIREMENT_DEPTH} deep"
            )));
        }
        match req {
            Requirement::ProviderName(n) => {
                if !self.providers.keys().any(|k| k.as_str() == n) {
                    return Err(here
                        .field("provider_name")
                        .error(format!("no provider is named {n:?}")));
                }
            }
            Requirement::RequiresAny(list) | Requirement::RequiresAll(list) => {
                let field = if matches!(req, Requirement::RequiresAny(_)) {
                    "requires_any"
                } else {
                    "requires_all"
                };
                if list.is_empty() {
                    return Err(here.field(field).error("list at least one requirement"));
                }
                for (i, r) in list.iter().enumerate() {
                    self.check_requirement(r, &here.field(field).index(i), depth + 1)?;
                }
            }
            Requirement::AllowMissing(_) | Requirement::AllowMissingOrFailed(_) => {}
            Requirement::BasicAuth(_) => {
                if !self.has_basic_consumers() {
                    return Err(here
                        .field("basic_auth")
                        .error("no consumer has `basic_auth` credentials"));
                }
            }
            Requirement::ApiKey(_) => {
                if !self.has_api_key_consumers() {
                    return Err(here.field("api_key").error("no consumer has `api_keys`"));
                }
            }
        }
        Ok(())
    }
}

/// Query parameter and cookie names must be plain tokens.
fn check_source_names(
    params: &[String],
    cookies: &[String],
    here: &FieldPath,
) -> Result<(), ConfigError> {
    for (i, s) in params.iter().chain(cookies).enumerate() {
        if s.is_empty()
            || s.bytes()
                .any(|b| b"=;&, ".contains(&b) || b.is_ascii_control())
        {
            return Err(here.error(format!(
                "source {i} ({s:?}) in from_params/from_cookies is not a valid name"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys::JWKS_ALL;

    /// A config with provider `a`: `extra` ends the provider object and may
    /// add root fields after it (`}},"rules":[...]`), or just `}}`.
    fn provider(extra: &str) -> String {
        format!(
            r#"{{"providers":{{"a":{{"issuer":"https://iss","local_jwks":{{"inline_string":{}}}{extra}}}"#,
            serde_json::to_string(JWKS_ALL).unwrap()
        )
    }

    fn err(json: &str) -> ConfigError {
        JwtAuthConfig::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn full_config_parses_with_defaults() {
        let c = JwtAuthConfig::from_json(
            provider(r#","audiences":["x"],"subject":{"prefix":"u-"},"from_params":["access_token"],
              "claim_to_headers":[{"header_name":"X-Roles","claim_path":["https://ex.com/roles"],"separator":" "}]}},
              "rules":[{"match":{"paths":[{"prefix":"/p"}],"methods":["GET"]},"requires":{"requires_any":[{"provider_name":"a"},{"allow_missing":{}}]}}]"#)
            .as_bytes(),
        )
        .unwrap();
        let p = &c.providers[&ProviderName("a".into())];
        assert_eq!(p.clock_skew_seconds, 60);
        assert!(p.require_expiration);
        assert_eq!(p.claim_to_headers[0].header_name.as_str(), "x-roles");
        assert_eq!(p.claim_to_headers[0].path, vec!["https://ex.com/roles"]);
        assert_eq!(c.max_token_bytes, 8192);
        assert_eq!(c.realm, "palisade");
        assert!(
            p.header_sources().is_empty(),
            "from_params only: no default header"
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err(&provider(r#","bogus":1}}"#)).path, "providers.a.bogus");
        assert_eq!(
            err(&provider(
                r#"}},"rules":[{"match":{},"requires":{"provider_name":"b"}}]"#
            ))
            .path,
            "rules[0].requires.provider_name"
        );
        assert_eq!(
            err(&provider(
                r#"}},"rules":[{"match":{},"requires":{"requires_all":[]}}]"#
            ))
            .path,
            "rules[0].requires.requires_all"
        );
        assert_eq!(
            err(&provider(
                r#","claim_to_headers":[{"header_name":"x","claim_name":"a","claim_path":["a"]}]}}"#
            ))
            .path,
            "providers.a.claim_to_headers[0]"
        );
        assert_eq!(
            err(&provider(
                r#","claim_to_headers":[{"header_name":":path","claim_name":"a"}]}}"#
            ))
            .path,
            "providers.a.claim_to_headers[0].header_name"
        );
        assert_eq!(
            err(&provider(r#"}},"max_token_bytes":0"#)).path,
            "max_token_bytes"
        );
        assert_eq!(err(r#"{"providers":{}}"#).path, "providers");
        assert_eq!(
            err(r#"{"providers":{"a":{"issuer":"i"}}}"#).path,
            "providers.a"
        );
        let e = err(
            r#"{"providers":{"a":{"issuer":"i","local_jwks":{"inline_string":"{\"keys\":[]}"}}}}"#,
        );
        assert_eq!(e.path, "providers.a.local_jwks");
        assert!(e.reason.contains("no keys"), "{e}");
        let e = err(
            r#"{"providers":{"a":{"issuer":"not-a-url","remote_jwks":{"http_uri":{"cluster":"c"}}}}}"#,
        );
        assert_eq!(e.path, "providers.a.remote_jwks.http_uri.uri");
        let e = err(
            r#"{"providers":{"a":{"issuer":"i","remote_jwks":{"http_uri":{"uri":"ftp://x","cluster":"c"}}}}}"#,
        );
        assert_eq!(e.path, "providers.a.remote_jwks.http_uri.uri");
        assert_eq!(err(r#"{"providers":{"a b":{}}}"#).path, "providers.a b");
    }

    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../README.md");
        let start = readme.find("```json\n").map(|i| i + 8).unwrap();
        let len = readme[start..].find("```").unwrap();
        let c = JwtAuthConfig::from_json(&readme.as_bytes()[start..start + len]).unwrap();
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.rules.map(|r| r.len()), Some(3));
    }

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("https://idp.local:8443/a/jwks?x=1").unwrap(),
            Url {
                authority: "idp.local:8443".into(),
                path: "/a/jwks?x=1".into()
            }
        );
        assert_eq!(Url::parse("http://idp").unwrap().path, "/");
        assert!(Url::parse("https://u@idp/").is_err());
        assert!(Url::parse("https:///x").is_err());
    }
}
