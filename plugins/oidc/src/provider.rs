//! What the filter fetches from the provider, as pure state driven with the
//! host's time in milliseconds: the discovery document first (retried after
//! a failure), then the key set through jwt-auth's [`RemoteKeys`] (cached,
//! refetched on an unknown `kid`, stale-if-error).

use crate::discovery::{self, DiscoveryError, Endpoints};
use jwt_auth::config::{HttpUri, Provider, RemoteJwks, Url};
use jwt_auth::jwk::KeySet;
use jwt_auth::jwks::{FetchError, FetchKind, FetchRequest, RemoteKeys};
use sdk_ext::duration::ConfigDuration;
use std::time::Duration;

/// How long after a failed discovery it is tried again.
const DISCOVERY_RETRY_MS: u64 = 2000;

/// Discovery and key state of the one provider.
#[derive(Debug, Clone)]
pub struct ProviderFetch {
    issuer: String,
    issuer_url: Url,
    cluster: String,
    timeout: Duration,
    template: Provider,
    endpoints: Option<Endpoints>,
    remote: Option<RemoteKeys>,
    discovery_since: Option<u64>,
    next_discovery_ms: u64,
}

impl ProviderFetch {
    /// Nothing fetched yet. `template`: the ID-token provider (its key
    /// source is filled in after discovery).
    pub fn new(
        issuer: &str,
        issuer_url: Url,
        cluster: &str,
        timeout: Duration,
        template: Provider,
    ) -> Self {
        ProviderFetch {
            issuer: issuer.to_string(),
            issuer_url,
            cluster: cluster.to_string(),
            timeout,
            template,
            endpoints: None,
            remote: None,
            discovery_since: None,
            next_discovery_ms: 0,
        }
    }

    /// The endpoints, once discovered.
    pub fn endpoints(&self) -> Option<&Endpoints> {
        self.endpoints.as_ref()
    }

    /// The current keys, once fetched.
    pub fn keys(&self) -> Option<&KeySet> {
        self.remote.as_ref()?.keys.set.as_deref()
    }

    fn discovery_in_flight(&self, now_ms: u64) -> bool {
        let limit = u64::try_from(self.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(2)
            .max(1000);
        self.discovery_since
            .is_some_and(|t| now_ms.saturating_sub(t) < limit)
    }

    /// The fetch due now, if any (marked in flight).
    pub fn due(&mut self, now_ms: u64) -> Option<FetchRequest> {
        if self.endpoints.is_none() {
            if self.discovery_in_flight(now_ms) || now_ms < self.next_discovery_ms {
                return None;
            }
            self.discovery_since = Some(now_ms);
            return Some(FetchRequest {
                kind: FetchKind::Discovery,
                cluster: self.cluster.clone(),
                authority: self.issuer_url.authority.clone(),
                path: discovery::discovery_path(&self.issuer_url),
                timeout: self.timeout,
            });
        }
        self.remote.as_mut()?.due(now_ms)
    }

    /// A key refetch because an ID token named an unknown `kid` (rate
    /// limited by jwt-auth's rules).
    pub fn refetch_keys(&mut self, now_ms: u64) -> Option<FetchRequest> {
        let r = self.remote.as_mut()?;
        if r.keys.set.is_none() {
            r.fetch_missing_keys(now_ms)
        } else {
            r.refetch_for_unknown_kid(now_ms)
        }
    }

    /// True while a fetch is outstanding.
    pub fn in_flight(&self, now_ms: u64) -> bool {
        self.discovery_in_flight(now_ms)
            || self.remote.as_ref().is_some_and(|r| r.in_flight(now_ms))
    }

    /// True once endpoints and keys are both loaded.
    pub fn ready(&self) -> bool {
        self.endpoints.is_some() && self.keys().is_some()
    }

    /// Applies the discovery response; on success the key fetch follows at
    /// once (returned, in flight).
    pub fn on_discovery(
        &mut self,
        now_ms: u64,
        status: Option<u16>,
        body: &[u8],
    ) -> Result<Option<FetchRequest>, DiscoveryError> {
        self.discovery_since = None;
        match discovery::parse(&self.issuer, status, body) {
            Ok(e) => {
                let jwks = Url::parse(&e.jwks_uri).map_err(DiscoveryError::Malformed)?;
                let mut p = self.template.clone();
                p.remote_jwks = Some(RemoteJwks {
                    http_uri: HttpUri {
                        uri: Some(jwks),
                        cluster: self.cluster.clone(),
                        timeout: ConfigDuration(self.timeout),
                    },
                    cache_duration: ConfigDuration(Duration::from_secs(600)),
                    unknown_kid_refetch_interval: ConfigDuration(Duration::from_secs(30)),
                    retry_interval: ConfigDuration(Duration::from_secs(2)),
                });
                self.endpoints = Some(e);
                self.remote = RemoteKeys::new(&p);
                Ok(self.remote.as_mut().and_then(|r| r.due(now_ms)))
            }
            Err(err) => {
                self.next_discovery_ms = now_ms.saturating_add(DISCOVERY_RETRY_MS);
                Err(err)
            }
        }
    }

    /// Applies a key-set response.
    pub fn on_keys(
        &mut self,
        now_ms: u64,
        status: Option<u16>,
        body: &[u8],
    ) -> Result<(), FetchError> {
        match self.remote.as_mut() {
            Some(r) => r
                .on_response(FetchKind::Jwks, now_ms, status, body)
                .map(|_| ()),
            None => Err(FetchError::NoResponse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idtoken;

    const DOC: &str = r#"{"issuer":"http://idp.test","authorization_endpoint":"http://idp.test/auth",
        "token_endpoint":"http://idp.test/token","jwks_uri":"http://idp.test/jwks"}"#;

    fn fetch() -> ProviderFetch {
        ProviderFetch::new(
            "http://idp.test",
            Url::parse("http://idp.test").unwrap(),
            "idp",
            Duration::from_secs(1),
            idtoken::provider("http://idp.test", "app"),
        )
    }

    #[test]
    fn discovery_then_keys() {
        let mut f = fetch();
        let d = f.due(0).unwrap();
        assert_eq!(d.kind, FetchKind::Discovery);
        assert_eq!(d.path, "/.well-known/openid-configuration");
        assert!(f.due(10).is_none(), "one discovery in flight");
        let k = f
            .on_discovery(20, Some(200), DOC.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(
            (k.kind, k.path.as_str(), k.cluster.as_str()),
            (FetchKind::Jwks, "/jwks", "idp")
        );
        assert!(!f.ready());
        let jwks = br#"{"keys":[{"kty":"oct","kid":"k","alg":"HS256","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#;
        f.on_keys(30, Some(200), jwks).unwrap();
        assert!(f.ready());
        assert!(f.due(40).is_none());
        assert!(
            f.due(600_031).is_some(),
            "keys are fetched again after the cache duration"
        );
    }

    #[test]
    fn failed_discovery_is_retried_later() {
        let mut f = fetch();
        f.due(0).unwrap();
        assert!(f.on_discovery(5, Some(500), b"").is_err());
        assert!(f.due(10).is_none());
        assert!(f.due(DISCOVERY_RETRY_MS + 5).is_some());
        assert!(f.endpoints().is_none());
    }
}
