//! Remote key sets: when to fetch, what a response does. Pure state, driven
//! by the filter with the host's time in milliseconds, so every rule is
//! tested natively:
//!
//! - fetched at start (first tick) and again every `cache_duration`;
//! - OIDC discovery first when no JWKS `uri` is configured;
//! - a token with an unknown `kid` causes at most one refetch per
//!   `unknown_kid_refetch_interval`;
//! - a failed fetch keeps the last good keys (stale-if-error) and is retried
//!   after `retry_interval`; an empty or unusable set is never installed.

use crate::config::{Provider, RemoteJwks, Url};
use crate::jwk::{JwksError, KeySet};
use crate::policy::ProviderKeys;
use serde::Deserialize;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

/// Largest discovery document accepted.
pub const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// Which document a fetch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchKind {
    /// `{issuer}/.well-known/openid-configuration`.
    Discovery,
    /// The JWKS itself.
    Jwks,
}

/// An HTTP GET to send through a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// What it fetches.
    pub kind: FetchKind,
    /// Envoy cluster.
    pub cluster: String,
    /// `:authority`.
    pub authority: String,
    /// `:path`.
    pub path: String,
    /// Timeout.
    pub timeout: Duration,
}

impl FetchKind {
    /// What the request is, for log lines: `discovery request`, `key request`.
    pub fn request_name(self) -> &'static str {
        match self {
            FetchKind::Discovery => "discovery request",
            FetchKind::Jwks => "key request",
        }
    }
}

impl FetchRequest {
    /// The request's headers: a GET of `path` from `authority`, asking for
    /// JSON.
    pub fn headers(&self) -> Vec<(&str, &str)> {
        vec![
            (":method", "GET"),
            (":path", self.path.as_str()),
            (":authority", self.authority.as_str()),
            ("accept", "application/json"),
        ]
    }

    /// Sends the request through its cluster and gives the call's token;
    /// `None` when the host refuses (logged, naming `plugin`).
    #[cfg(target_arch = "wasm32")]
    pub fn dispatch(&self, plugin: &str) -> Option<u32> {
        sdk_ext::host::dispatch_http_call(
            plugin,
            self.kind.request_name(),
            &self.cluster,
            self.headers(),
            None,
            self.timeout,
        )
    }
}

/// Why a fetch did not produce keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// No response (timeout, reset, cluster unknown).
    NoResponse,
    /// A status other than 200.
    Status(u16),
    /// The discovery document is unusable.
    Discovery(String),
    /// The JWKS is unusable.
    Jwks(JwksError),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::NoResponse => f.write_str(
                "no response from the key server (check the cluster name and that it is reachable)",
            ),
            FetchError::Status(s) => write!(f, "the key server answered HTTP {s}"),
            FetchError::Discovery(e) => write!(f, "unusable OpenID discovery document: {e}"),
            FetchError::Jwks(e) => write!(f, "{e}"),
        }
    }
}

/// The key state of one remote provider.
#[derive(Debug, Clone)]
pub struct RemoteKeys {
    config: RemoteJwks,
    issuer: String,
    jwks_url: Option<Url>,
    /// Current keys (the last good set).
    pub keys: ProviderKeys,
    next_fetch_ms: u64,
    in_flight_since: Option<u64>,
    last_kid_refetch_ms: Option<u64>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl RemoteKeys {
    /// State for a provider with `remote_jwks`; `None` for inline keys.
    pub fn new(provider: &Provider) -> Option<RemoteKeys> {
        let config = provider.remote_jwks.clone()?;
        Some(RemoteKeys {
            jwks_url: config.http_uri.uri.clone(),
            config,
            issuer: provider.issuer.clone(),
            keys: ProviderKeys::default(),
            next_fetch_ms: 0,
            in_flight_since: None,
            last_kid_refetch_ms: None,
        })
    }

    /// True while a fetch is outstanding (one that outlived twice its
    /// timeout is considered lost).
    pub fn in_flight(&self, now_ms: u64) -> bool {
        let limit = self.timeout_ms().saturating_mul(2).max(1000);
        self.in_flight_since
            .is_some_and(|t| now_ms.saturating_sub(t) < limit)
    }

    fn timeout_ms(&self) -> u64 {
        u64::try_from(self.config.http_uri.timeout.get().as_millis()).unwrap_or(u64::MAX)
    }

    fn request(&self) -> FetchRequest {
        let (kind, url) = match &self.jwks_url {
            Some(u) => (FetchKind::Jwks, u.clone()),
            None => {
                let base = Url::parse(&self.issuer).unwrap_or(Url {
                    authority: String::new(),
                    path: "/".into(),
                });
                let path = format!(
                    "{}/.well-known/openid-configuration",
                    base.path.trim_end_matches('/')
                );
                (
                    FetchKind::Discovery,
                    Url {
                        authority: base.authority,
                        path,
                    },
                )
            }
        };
        FetchRequest {
            kind,
            cluster: self.config.http_uri.cluster.clone(),
            authority: url.authority,
            path: url.path,
            timeout: self.config.http_uri.timeout.get(),
        }
    }

    /// The fetch due at `now_ms` (on a tick), if any; marks it in flight.
    pub fn due(&mut self, now_ms: u64) -> Option<FetchRequest> {
        if self.in_flight(now_ms) || now_ms < self.next_fetch_ms {
            return None;
        }
        self.in_flight_since = Some(now_ms);
        Some(self.request())
    }

    /// A refetch because a token named an unknown `kid` (or keys were
    /// missing): at most one per interval, never while one is in flight.
    pub fn refetch_for_unknown_kid(&mut self, now_ms: u64) -> Option<FetchRequest> {
        if self.in_flight(now_ms) {
            return None;
        }
        let interval = u64::try_from(self.config.unknown_kid_refetch_interval.get().as_millis())
            .unwrap_or(u64::MAX);
        if self
            .last_kid_refetch_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < interval)
        {
            return None;
        }
        self.last_kid_refetch_ms = Some(now_ms);
        self.in_flight_since = Some(now_ms);
        Some(self.request())
    }

    /// A fetch because a request found no keys at all yet (the start-up
    /// fetch has not happened, or failed): allowed when none is in flight
    /// and no retry is pending (a failed fetch waits `retry_interval`, so a
    /// down key server is not hammered); not counted against the
    /// unknown-`kid` budget.
    pub fn fetch_missing_keys(&mut self, now_ms: u64) -> Option<FetchRequest> {
        if self.keys.set.is_some() || self.in_flight(now_ms) || now_ms < self.next_fetch_ms {
            return None;
        }
        self.in_flight_since = Some(now_ms);
        Some(self.request())
    }

    /// Applies a response (`status` `None`: no response). `Ok(Some(req))`:
    /// discovery succeeded and the JWKS fetch `req` follows at once (still
    /// in flight). `Ok(None)`: new keys installed. `Err`: the last good keys
    /// stay, a retry is scheduled.
    pub fn on_response(
        &mut self,
        kind: FetchKind,
        now_ms: u64,
        status: Option<u16>,
        body: &[u8],
    ) -> Result<Option<FetchRequest>, FetchError> {
        self.in_flight_since = None;
        let result = self.apply(kind, now_ms, status, body);
        match &result {
            Ok(Some(_)) => self.in_flight_since = Some(now_ms),
            Ok(None) => {
                self.next_fetch_ms = now_ms.saturating_add(
                    u64::try_from(self.config.cache_duration.get().as_millis()).unwrap_or(u64::MAX),
                )
            }
            Err(_) => {
                self.next_fetch_ms = now_ms.saturating_add(
                    u64::try_from(self.config.retry_interval.get().as_millis()).unwrap_or(u64::MAX),
                )
            }
        }
        result
    }

    fn apply(
        &mut self,
        kind: FetchKind,
        now_ms: u64,
        status: Option<u16>,
        body: &[u8],
    ) -> Result<Option<FetchRequest>, FetchError> {
        let _ = now_ms;
        match status {
            None => return Err(FetchError::NoResponse),
            Some(200) => {}
            Some(s) => return Err(FetchError::Status(s)),
        }
        match kind {
            FetchKind::Discovery => {
                if body.len() > MAX_DISCOVERY_BYTES {
                    return Err(FetchError::Discovery("larger than 64 KiB".into()));
                }
                let d: Discovery = serde_json::from_slice(body)
                    .map_err(|e| FetchError::Discovery(e.to_string()))?;
                if d.issuer != self.issuer {
                    return Err(FetchError::Discovery(format!(
                        "it names issuer {:?}, the provider expects {:?}",
                        d.issuer, self.issuer
                    )));
                }
                let url = Url::parse(&d.jwks_uri).map_err(FetchError::Discovery)?;
                self.jwks_url = Some(url);
                Ok(Some(self.request()))
            }
            FetchKind::Jwks => {
                let set = KeySet::from_json(body).map_err(FetchError::Jwks)?;
                self.keys = ProviderKeys {
                    set: Some(Rc::new(set)),
                    generation: self.keys.generation.wrapping_add(1),
                };
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JwtAuthConfig;
    use crate::testkeys::{JWKS_ALL, JWKS_ROTATED};

    fn remote(http_uri: &str) -> RemoteKeys {
        let c = JwtAuthConfig::from_json(
            format!(
                r#"{{"providers":{{"a":{{"issuer":"https://idp.local/realm","remote_jwks":{{"http_uri":{http_uri},
                 "cache_duration":"60s","unknown_kid_refetch_interval":"10s","retry_interval":"2s"}}}}}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        RemoteKeys::new(c.providers.values().next().unwrap()).unwrap()
    }

    #[test]
    fn fetch_at_start_then_every_cache_duration() {
        let mut r = remote(r#"{"uri":"https://idp.local/jwks","cluster":"idp"}"#);
        let req = r.due(0).unwrap();
        assert_eq!(req.kind, FetchKind::Jwks);
        assert_eq!(
            (
                req.cluster.as_str(),
                req.authority.as_str(),
                req.path.as_str()
            ),
            ("idp", "idp.local", "/jwks")
        );
        assert_eq!(
            req.headers(),
            vec![
                (":method", "GET"),
                (":path", "/jwks"),
                (":authority", "idp.local"),
                ("accept", "application/json"),
            ]
        );
        assert_eq!(req.kind.request_name(), "key request");
        assert_eq!(FetchKind::Discovery.request_name(), "discovery request");
        assert!(r.due(10).is_none(), "one fetch in flight at a time");
        assert_eq!(
            r.on_response(FetchKind::Jwks, 100, Some(200), JWKS_ALL.as_bytes()),
            Ok(None)
        );
        assert_eq!(r.keys.generation, 1);
        assert!(r.due(59_000).is_none());
        assert!(r.due(60_100).is_some());
    }

    #[test]
    fn stale_if_error_and_never_empty() {
        let mut r = remote(r#"{"uri":"https://idp.local/jwks","cluster":"idp"}"#);
        r.due(0);
        assert!(matches!(
            r.on_response(FetchKind::Jwks, 0, None, b""),
            Err(FetchError::NoResponse)
        ));
        assert!(r.keys.set.is_none());
        assert!(r.due(1_000).is_none());
        assert!(r.due(2_000).is_some(), "retried after retry_interval");
        r.on_response(FetchKind::Jwks, 2_000, Some(200), JWKS_ALL.as_bytes())
            .unwrap();
        r.due(62_000).unwrap();
        assert!(matches!(
            r.on_response(FetchKind::Jwks, 62_000, Some(200), br#"{"keys":[]}"#),
            Err(FetchError::Jwks(JwksError::NoUsableKey(_)))
        ));
        r.due(64_000).unwrap();
        assert_eq!(
            r.on_response(FetchKind::Jwks, 64_000, Some(503), b""),
            Err(FetchError::Status(503))
        );
        let set = r.keys.set.as_ref().unwrap();
        assert!(set.has_kid("rsa1"), "last good keys kept");
        assert_eq!(r.keys.generation, 1);
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited() {
        let mut r = remote(r#"{"uri":"https://idp.local/jwks","cluster":"idp"}"#);
        r.due(0);
        r.on_response(FetchKind::Jwks, 0, Some(200), JWKS_ALL.as_bytes())
            .unwrap();
        assert!(r.refetch_for_unknown_kid(1_000).is_some());
        assert!(r.refetch_for_unknown_kid(1_001).is_none(), "in flight");
        r.on_response(FetchKind::Jwks, 1_100, Some(200), JWKS_ROTATED.as_bytes())
            .unwrap();
        assert!(r.keys.set.as_ref().unwrap().has_kid("rsa2"));
        assert_eq!(r.keys.generation, 2);
        assert!(
            r.refetch_for_unknown_kid(5_000).is_none(),
            "once per interval"
        );
        assert!(r.refetch_for_unknown_kid(11_000).is_some());
    }

    #[test]
    fn missing_keys_fetch_outside_the_kid_budget() {
        let mut r = remote(r#"{"uri":"https://idp.local/jwks","cluster":"idp"}"#);
        assert!(r.fetch_missing_keys(0).is_some());
        assert!(r.fetch_missing_keys(1).is_none(), "in flight");
        r.on_response(FetchKind::Jwks, 2, None, b"").unwrap_err();
        assert!(r.fetch_missing_keys(3).is_none(), "waits retry_interval");
        assert!(
            r.fetch_missing_keys(2_002).is_some(),
            "no keys: tries again"
        );
        r.on_response(FetchKind::Jwks, 2_004, Some(200), JWKS_ALL.as_bytes())
            .unwrap();
        assert!(r.fetch_missing_keys(2_005).is_none(), "keys present");
        assert!(
            r.refetch_for_unknown_kid(2_006).is_some(),
            "budget untouched"
        );
    }

    #[test]
    fn discovery_then_jwks() {
        let mut r = remote(r#"{"cluster":"idp","timeout":"1s"}"#);
        let req = r.due(0).unwrap();
        assert_eq!(req.kind, FetchKind::Discovery);
        assert_eq!(req.path, "/realm/.well-known/openid-configuration");
        assert_eq!(req.timeout, Duration::from_secs(1));
        let wrong = br#"{"issuer":"https://evil","jwks_uri":"https://idp.local/certs"}"#;
        assert!(matches!(
            r.on_response(FetchKind::Discovery, 5, Some(200), wrong),
            Err(FetchError::Discovery(_))
        ));
        let doc =
            br#"{"issuer":"https://idp.local/realm","jwks_uri":"https://idp.local/realm/certs"}"#;
        r.due(3_000).unwrap();
        let next = r
            .on_response(FetchKind::Discovery, 3_000, Some(200), doc)
            .unwrap()
            .unwrap();
        assert_eq!(
            (next.kind, next.path.as_str()),
            (FetchKind::Jwks, "/realm/certs")
        );
        assert!(r.in_flight(3_001));
        r.on_response(FetchKind::Jwks, 3_010, Some(200), JWKS_ALL.as_bytes())
            .unwrap();
        assert!(r.keys.set.is_some());
        assert!(!r.in_flight(3_011));
    }
}
