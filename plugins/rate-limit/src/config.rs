//! Rate-limit configuration (JSON).
//!
//! ```json
//! {
//!   "trusted_xff_hops": 0,
//!   "response_headers": "draft",
//!   "rules": [
//!     { "name": "api-per-client",
//!       "match": { "paths": [ { "prefix": "/api" } ] },
//!       "key": [ "client_ip", { "header": "x-tenant" } ],
//!       "limit": { "requests": 100, "per": "minute", "burst": 20 },
//!       "shadow": false,
//!       "max_keys": 10000 }
//!   ]
//! }
//! ```

use sdk_ext::config::{parse_config, ConfigError, FieldPath};
use sdk_ext::duration::ConfigDuration;
use sdk_ext::matcher::RequestMatch;
use sdk_ext::metrics::metric_name;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Largest accepted `max_keys`: the table is created in shared data when the
/// plugin starts, one 16-byte entry per slot.
pub const MAX_KEYS_LIMIT: u32 = 100_000;

/// The whole plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Rules; every matching rule is checked.
    pub rules: Vec<Rule>,
    /// How many proxies in front of Envoy append to `x-forwarded-for`; 0
    /// uses the connection's address. See [`crate::key`].
    #[serde(default)]
    pub trusted_xff_hops: u8,
    /// Which informational headers to send.
    #[serde(default)]
    pub response_headers: HeaderStyle,
    /// The rate limit service that `global` rules ask.
    #[serde(default)]
    pub global: Option<GlobalService>,
}

/// An Envoy RLS v3 service (`envoy.service.ratelimit.v3.RateLimitService`)
/// reached through an Envoy cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalService {
    /// The Envoy cluster (HTTP/2) of the service.
    pub cluster: String,
    /// The limits' domain in the service's configuration.
    pub domain: String,
    /// How long to wait for an answer (default `100ms`).
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// What to do when the service fails or times out (default `deny`).
    #[serde(default)]
    pub failure_mode: FailureMode,
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(100))
}

/// Behaviour when the rate limit service cannot answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Refuse the request with 503 (fail closed).
    #[default]
    Deny,
    /// Let the request through.
    Allow,
}

/// Which rate-limit headers responses carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderStyle {
    /// IETF draft `RateLimit-Policy` and `RateLimit`.
    #[default]
    Draft,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`.
    Legacy,
    /// Both sets.
    Both,
    /// Only `Retry-After` on 429.
    None,
}

/// One limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique name: letters, digits, `-_.`; used in headers, logs, metrics
    /// and shared-data keys.
    pub name: RuleName,
    /// Which requests the rule applies to (default: all).
    #[serde(default, rename = "match")]
    pub matches: RequestMatch,
    /// The parts of the request that make a bucket key; empty = one bucket
    /// for every matching request.
    #[serde(default)]
    pub key: Vec<KeyPart>,
    /// The limit of a local rule. Global rules have none here: their limits
    /// live in the rate limit service's configuration.
    #[serde(default)]
    pub limit: Option<Limit>,
    /// Ask the rate limit service (`global`) instead of a local bucket.
    #[serde(default)]
    pub global: bool,
    /// Count and report, but never refuse.
    #[serde(default)]
    pub shadow: bool,
    /// Bound on distinct keys tracked at once (1..=100000, default 10000).
    #[serde(default = "default_max_keys")]
    pub max_keys: u32,
}

fn default_max_keys() -> u32 {
    10_000
}

/// A part of a bucket key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPart {
    /// The client IP (see `trusted_xff_hops`).
    ClientIp,
    /// The path without query.
    Path,
    /// The method.
    Method,
    /// A request header's value (lower-case name); a missing header is one
    /// shared value, so leaving it out never escapes the limit.
    Header(String),
    /// The authenticated consumer (Basic or API key, from jwt-auth), else
    /// the verified JWT's subject; unauthenticated requests share one value.
    Consumer,
    /// A top-level claim of the verified identity (for consumers: `sub`,
    /// `groups` and their attributes, e.g. `tenant`); a list is joined with
    /// `,`; a missing claim is one shared value.
    Claim(String),
}

impl KeyPart {
    /// True for parts read from the verified identity.
    pub fn needs_identity(&self) -> bool {
        matches!(self, KeyPart::Consumer | KeyPart::Claim(_))
    }
}

/// `requests` per `per`, at most `burst` at once.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Sustained requests per period (at least 1).
    pub requests: u32,
    /// The period.
    pub per: Period,
    /// Requests admitted at once from a full bucket; default `requests`.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl Limit {
    /// The bucket capacity.
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.requests)
    }
}

/// Limit periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
}

impl Period {
    /// The period's length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Period::Second => 1,
            Period::Minute => 60,
            Period::Hour => 3600,
        })
    }
}

/// A validated rule name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleName(String);

impl RuleName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RuleName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        sdk_ext::config::check_name(&s, "rule name", 64).map_err(serde::de::Error::custom)?;
        Ok(RuleName(s))
    }
}

impl RateLimitConfig {
    /// Parses and validates configuration bytes.
    pub fn from_json(bytes: &[u8]) -> Result<RateLimitConfig, ConfigError> {
        let config: RateLimitConfig = parse_config(bytes)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let rules = FieldPath::root().field("rules");
        if self.rules.is_empty() {
            return Err(rules.error("at least one rule is required"));
        }
        if self.trusted_xff_hops > 16 {
            return Err(FieldPath::root()
                .field("trusted_xff_hops")
                .error("at most 16 trusted proxy hops are supported"));
        }
        if let Some(g) = &self.global {
            let here = FieldPath::root().field("global");
            if g.cluster.is_empty() {
                return Err(here
                    .field("cluster")
                    .error("name the Envoy cluster of the rate limit service"));
            }
            if g.domain.is_empty() {
                return Err(here.field("domain").error("the domain must not be empty"));
            }
            if g.timeout.get().is_zero() {
                return Err(here.field("timeout").error("must be longer than zero"));
            }
        }
        let mut seen: Vec<String> = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let here = rules.index(i);
            let limit_path = here.field("limit");
            match (&r.limit, r.global) {
                (Some(_), true) => {
                    return Err(limit_path.error(
                        "a global rule takes its limit from the rate limit service's configuration; remove `limit`",
                    ))
                }
                (None, true) if self.global.is_none() => {
                    return Err(here.field("global").error(
                        "a global rule needs the top-level `global` section naming the rate limit service",
                    ))
                }
                (None, false) => return Err(limit_path.error("a local rule needs a `limit`")),
                (Some(limit), false) => {
                    if limit.requests == 0 {
                        return Err(limit_path
                            .field("requests")
                            .error("must be at least 1 (to block a route, use the rbac plugin)"));
                    }
                    if limit.burst == Some(0) {
                        return Err(limit_path.field("burst").error(
                            "must be at least 1 (leave it out for a burst equal to `requests`)",
                        ));
                    }
                }
                (None, true) => {}
            }
            if r.max_keys == 0 || r.max_keys > MAX_KEYS_LIMIT {
                return Err(here
                    .field("max_keys")
                    .error(format!("must be between 1 and {MAX_KEYS_LIMIT}")));
            }
            for (j, part) in r.key.iter().enumerate() {
                if let KeyPart::Claim(c) = part {
                    if c.is_empty() || c.len() > 128 {
                        return Err(here
                            .field("key")
                            .index(j)
                            .field("claim")
                            .error("a claim name must have 1 to 128 characters"));
                    }
                }
                if let KeyPart::Header(h) = part {
                    let ok = !h.is_empty()
                        && h.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                        });
                    if !ok {
                        return Err(here.field("key").index(j).field("header").error(format!(
                            "invalid header name {h:?}: use a lower-case header name"
                        )));
                    }
                }
            }
            let metric = metric_name("ratelimit", &[r.name.as_str()]);
            if seen.contains(&metric) {
                return Err(here.field("name").error(format!(
                    "rule name {:?} is already used (names must be unique, ignoring case and '-'/'.' versus '_')",
                    r.name.as_str()
                )));
            }
            seen.push(metric);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> ConfigError {
        RateLimitConfig::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn example_parses() {
        let c = RateLimitConfig::from_json(
            br#"{"trusted_xff_hops":1,"response_headers":"both","rules":[
              {"name":"api","match":{"paths":[{"prefix":"/api"}]},"key":["client_ip",{"header":"x-tenant"},"path","method"],
               "limit":{"requests":100,"per":"minute","burst":20},"shadow":true,"max_keys":50}]}"#,
        )
        .unwrap();
        let r = &c.rules[0];
        assert_eq!(r.key.len(), 4);
        let limit = r.limit.unwrap();
        assert_eq!(limit.burst(), 20);
        assert_eq!(limit.per.duration(), Duration::from_secs(60));
        assert_eq!(c.response_headers, HeaderStyle::Both);
    }

    #[test]
    fn defaults() {
        let c = RateLimitConfig::from_json(
            br#"{"rules":[{"name":"all","limit":{"requests":5,"per":"second"}}]}"#,
        )
        .unwrap();
        assert_eq!(c.rules[0].limit.unwrap().burst(), 5);
        assert_eq!(c.rules[0].max_keys, 10_000);
        assert_eq!(c.response_headers, HeaderStyle::Draft);
        assert!(c.rules[0].key.is_empty());
    }

    #[test]
    fn global_rules() {
        let c = RateLimitConfig::from_json(
            br#"{"global":{"cluster":"rls","domain":"edge","timeout":"50ms","failure_mode":"allow"},
                "rules":[{"name":"g","global":true,"key":["client_ip"]},{"name":"l","limit":{"requests":1,"per":"second"}}]}"#,
        )
        .unwrap();
        let g = c.global.unwrap();
        assert_eq!(g.timeout.get(), Duration::from_millis(50));
        assert_eq!(g.failure_mode, FailureMode::Allow);
        let d = RateLimitConfig::from_json(
            br#"{"global":{"cluster":"rls","domain":"edge"},"rules":[{"name":"g","global":true}]}"#,
        )
        .unwrap();
        assert_eq!(d.global.unwrap().failure_mode, FailureMode::Deny);
        assert_eq!(
            err(r#"{"rules":[{"name":"g","global":true}]}"#).path,
            "rules[0].global"
        );
        assert_eq!(
            err(r#"{"global":{"cluster":"rls","domain":"d"},"rules":[{"name":"g","global":true,"limit":{"requests":1,"per":"second"}}]}"#).path,
            "rules[0].limit"
        );
        assert_eq!(err(r#"{"rules":[{"name":"l"}]}"#).path, "rules[0].limit");
        assert_eq!(
            err(r#"{"global":{"cluster":"rls","domain":"d","timeout":"5"},"rules":[{"name":"g","global":true}]}"#).path,
            "global.timeout"
        );
        assert_eq!(
            err(r#"{"global":{"cluster":"","domain":"d"},"rules":[{"name":"g","global":true}]}"#)
                .path,
            "global.cluster"
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err(r#"{"rules":[]}"#).path, "rules");
        assert_eq!(
            err(r#"{"rules":[{"name":"a","limit":{"requests":0,"per":"second"}}]}"#).path,
            "rules[0].limit.requests"
        );
        assert_eq!(
            err(r#"{"rules":[{"name":"a","limit":{"requests":1,"per":"day"}}]}"#).path,
            "rules[0].limit.per"
        );
        assert_eq!(
            err(r#"{"rules":[{"name":"a","limit":{"requests":1,"per":"second","burst":0}}]}"#).path,
            "rules[0].limit.burst"
        );
        assert_eq!(
            err(r#"{"rules":[{"name":"a","max_keys":0,"limit":{"requests":1,"per":"second"}}]}"#)
                .path,
            "rules[0].max_keys"
        );
        assert_eq!(
            err(r#"{"rules":[{"name":"a","key":["ip"],"limit":{"requests":1,"per":"second"}}]}"#)
                .path,
            "rules[0].key[0]"
        );
        assert_eq!(
            err(r#"{"rules":[{"name":"a","key":[{"header":"X Y"}],"limit":{"requests":1,"per":"second"}}]}"#).path,
            "rules[0].key[0].header"
        );
        assert_eq!(
            err(r#"{"rules":[{"name":"a","limit":{"requests":1,"per":"second"}},{"name":"A","limit":{"requests":1,"per":"second"}}]}"#).path,
            "rules[1].name"
        );
        assert_eq!(
            err(r#"{"rules":[{"name":"a","limit":{"requests":1,"per":"second"},"bogus":1}]}"#).path,
            "rules[0].bogus"
        );
        assert_eq!(
            err(r#"{"trusted_xff_hops":17,"rules":[{"name":"a","limit":{"requests":1,"per":"second"}}]}"#).path,
            "trusted_xff_hops"
        );
    }
}
