//! API keys: where they are read (headers, query parameters, cookies) and
//! the index of configured key digests.
//!
//! Keys are stored as SHA-256 digests. That is enough for keys with at
//! least 128 bits of entropy (what `palisade-consumer` generates): such a
//! key cannot be found from its digest by guessing, so a slow hash would
//! only cost every request time. The lookup goes by digest, so its timing
//! tells nothing about any stored key.

use crate::config::{HeaderName, HeaderSource};
use crate::consumer::ApiKeyDigest;
use crate::extract::{self, Found};
use sdk_ext::RequestView;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Largest `max_key_bytes` accepted.
pub const MAX_KEY_BYTES_LIMIT: usize = 4096;

/// Where API keys are read, and whether they go upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Headers that may carry a key (with an optional value prefix).
    /// Without any source: the header `x-api-key`.
    #[serde(default)]
    pub from_headers: Vec<HeaderSource>,
    /// Query parameters that may carry a key.
    #[serde(default)]
    pub from_params: Vec<String>,
    /// Cookies that may carry a key.
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// Keep the key in the request sent upstream (default: remove it).
    #[serde(default)]
    pub forward: bool,
    /// Longer keys are refused without being hashed.
    #[serde(default = "default_max_key_bytes")]
    pub max_key_bytes: usize,
}

fn default_max_key_bytes() -> usize {
    256
}

impl Default for ApiKeyConfig {
    fn default() -> Self {
        ApiKeyConfig {
            from_headers: Vec::new(),
            from_params: Vec::new(),
            from_cookies: Vec::new(),
            forward: false,
            max_key_bytes: default_max_key_bytes(),
        }
    }
}

impl ApiKeyConfig {
    /// The key candidates in `req`.
    pub fn candidates(&self, req: &RequestView) -> Vec<Found> {
        let default_header;
        let headers: &[HeaderSource] = if self.from_headers.is_empty()
            && self.from_params.is_empty()
            && self.from_cookies.is_empty()
        {
            default_header = [HeaderSource {
                name: HeaderName("x-api-key".into()),
                value_prefix: None,
            }];
            &default_header
        } else {
            &self.from_headers
        };
        extract::tokens_in(headers, &self.from_params, &self.from_cookies, req)
    }
}

/// The SHA-256 digest of a presented key.
pub fn digest(key: &str) -> ApiKeyDigest {
    ApiKeyDigest(Sha256::digest(key.as_bytes()).into())
}

/// Consumers by key digest.
#[derive(Debug, Clone, Default)]
pub struct KeyIndex {
    by_digest: HashMap<ApiKeyDigest, usize>,
}

impl KeyIndex {
    /// Indexes `(digest, consumer)` pairs; `Err` names the first digest
    /// given to two consumers.
    pub fn new(
        keys: impl IntoIterator<Item = (ApiKeyDigest, usize)>,
    ) -> Result<KeyIndex, ApiKeyDigest> {
        let mut by_digest = HashMap::new();
        for (d, consumer) in keys {
            if let Some(other) = by_digest.insert(d, consumer) {
                if other != consumer {
                    return Err(d);
                }
            }
        }
        Ok(KeyIndex { by_digest })
    }

    /// The consumer whose key this is.
    pub fn consumer(&self, key: &str) -> Option<usize> {
        self.by_digest.get(&digest(key)).copied()
    }

    /// True when no consumer has a key.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Location;
    use sdk_ext::Headers;

    #[test]
    fn digests_match_sha256() {
        assert_eq!(
            digest("abc").to_config_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn index_finds_both_keys_of_a_consumer() {
        let idx = KeyIndex::new([(digest("k1"), 0), (digest("k2"), 0), (digest("k3"), 1)]).unwrap();
        assert_eq!(idx.consumer("k1"), Some(0));
        assert_eq!(idx.consumer("k2"), Some(0));
        assert_eq!(idx.consumer("k3"), Some(1));
        assert_eq!(idx.consumer("k4"), None);
        assert_eq!(
            KeyIndex::new([(digest("k1"), 0), (digest("k1"), 1)]).unwrap_err(),
            digest("k1")
        );
    }

    #[test]
    fn default_source_is_x_api_key() {
        let req = RequestView {
            path: "/?api_key=q".into(),
            headers: Headers::from(vec![("X-Api-Key".into(), "k".into())]),
            ..Default::default()
        };
        let found = ApiKeyConfig::default().candidates(&req);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].location, Location::Header("x-api-key".into()));
        let params = ApiKeyConfig {
            from_params: vec!["api_key".into()],
            ..Default::default()
        };
        assert_eq!(params.candidates(&req)[0].token, "q");
    }
}
