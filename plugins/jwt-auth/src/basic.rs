//! HTTP Basic (RFC 7617): reading `Authorization: Basic <base64(user:pass)>`
//! (bounded), and the bounded cache of recent successful checks.
//!
//! A password check is a slow Argon2id hash by design. The cache remembers,
//! per consumer, a keyed hash (HMAC-SHA-256 under a random per-VM key) of
//! the credentials that last verified. A hit therefore still needs the right
//! password: the presented credentials are hashed with the same key and
//! compared in constant time. The key never leaves the VM, so the cache
//! holds nothing an attacker could use offline without it.

use crate::cache::BoundedMap;
use base64::Engine;
use hmac::{KeyInit, Mac};
use sdk_ext::duration::ConfigDuration;
use sdk_ext::RequestView;
use serde::Deserialize;
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

/// Longest `Authorization: Basic` value read (scheme and base64 included).
pub const MAX_BASIC_HEADER_BYTES: usize = 1024;
/// Most `authorization` headers looked at.
const MAX_AUTHORIZATION_HEADERS: usize = 4;

/// Settings of HTTP Basic; the passwords are in the consumers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// Consumers whose last successful check is remembered (per VM);
    /// 0 turns the cache off.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// How long a successful check is remembered.
    #[serde(default = "default_cache_duration")]
    pub cache_duration: ConfigDuration,
    /// Keep the `Authorization` header in the request sent upstream
    /// (default: remove it).
    #[serde(default)]
    pub forward: bool,
}

fn default_cache_size() -> usize {
    256
}

fn default_cache_duration() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(300))
}

impl Default for BasicAuthConfig {
    fn default() -> Self {
        BasicAuthConfig {
            cache_size: default_cache_size(),
            cache_duration: default_cache_duration(),
            forward: false,
        }
    }
}

/// Credentials from a Basic header. `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user id (the consumer name).
    pub username: String,
    /// The password, as sent.
    pub password: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a request carries for Basic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasicHeader {
    /// No `Authorization: Basic` header.
    Missing,
    /// Well-formed credentials.
    Found(Credentials),
    /// A Basic header that cannot be read; the reason never quotes it.
    Malformed(&'static str),
    /// A Basic header longer than [`MAX_BASIC_HEADER_BYTES`].
    TooLarge(usize),
}

/// Reads the first `Authorization` header whose scheme is `Basic`.
pub fn read(req: &RequestView) -> BasicHeader {
    let values = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .take(MAX_AUTHORIZATION_HEADERS);
    for (_, value) in values {
        let v = value.trim();
        let Some(scheme) = v.get(..5) else { continue };
        if !scheme.eq_ignore_ascii_case("basic") {
            continue;
        }
        let rest = &v[5..];
        if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
            continue; // another scheme, e.g. "Basically"
        }
        if value.len() > MAX_BASIC_HEADER_BYTES {
            return BasicHeader::TooLarge(value.len());
        }
        return parse_payload(rest.trim());
    }
    BasicHeader::Missing
}

fn parse_payload(b64: &str) -> BasicHeader {
    if b64.is_empty() {
        return BasicHeader::Malformed("empty credentials");
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return BasicHeader::Malformed("the credentials are not base64");
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return BasicHeader::Malformed("the credentials have no ':' between user and password");
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    if user.is_empty() || password.is_empty() {
        return BasicHeader::Malformed("empty user or password");
    }
    match std::str::from_utf8(user) {
        Ok(u) if !u.bytes().any(|b| b.is_ascii_control()) => BasicHeader::Found(Credentials {
            username: u.to_string(),
            password: password.to_vec(),
        }),
        _ => BasicHeader::Malformed("the user is not printable UTF-8"),
    }
}

/// Recent successful Basic checks: at most one per consumer, at most
/// `capacity` consumers, each for `ttl_seconds`.
#[derive(Debug)]
pub struct CredentialCache {
    key: Option<[u8; 32]>,
    ttl_seconds: u64,
    /// Consumer → (keyed hash of the credentials, expiry).
    entries: BoundedMap<usize, ([u8; 32], u64)>,
}

impl CredentialCache {
    /// A cache keyed by `key` (`None`, or capacity 0: caching is off).
    pub fn new(capacity: usize, ttl_seconds: u64, key: Option<[u8; 32]>) -> CredentialCache {
        CredentialCache {
            key,
            ttl_seconds,
            entries: BoundedMap::new(capacity),
        }
    }

    /// A cache with a key from the operating system's (or the Wasm host's
    /// `random_get`) random source; off when none is available.
    pub fn with_random_key(capacity: usize, ttl_seconds: u64) -> CredentialCache {
        let mut key = [0u8; 32];
        let key = getrandom::fill(&mut key).ok().map(|()| key);
        CredentialCache::new(capacity, ttl_seconds, key)
    }

    fn mac(&self, consumer: usize, c: &Credentials) -> Option<[u8; 32]> {
        let key = self.key.as_ref()?;
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
        mac.update(&(consumer as u64).to_be_bytes());
        mac.update(&(c.username.len() as u64).to_be_bytes());
        mac.update(c.username.as_bytes());
        mac.update(&c.password);
        let out = mac.finalize().into_bytes();
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&out);
        Some(digest)
    }

    /// True when these credentials verified for `consumer` less than the
    /// TTL ago (constant-time comparison of the keyed hashes).
    pub fn hit(&self, consumer: usize, c: &Credentials, now: u64) -> bool {
        let Some((stored, expires)) = self.entries.get(&consumer) else {
            return false;
        };
        let Some(digest) = self.mac(consumer, c) else {
            return false;
        };
        now < *expires && bool::from(digest.ct_eq(stored))
    }

    /// Remembers that `c` verified for `consumer` at `now`.
    pub fn remember(&mut self, consumer: usize, c: &Credentials, now: u64) {
        if let Some(digest) = self.mac(consumer, c) {
            let expires = now.saturating_add(self.ttl_seconds);
            self.entries.insert(consumer, (digest, expires));
        }
    }

    /// Remembered checks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(values: &[&str]) -> RequestView {
        RequestView {
            headers: values
                .iter()
                .map(|v| ("authorization".to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.as_bytes().to_vec(),
        }
    }

    #[test]
    fn reads_basic_credentials() {
        let h = format!("basic {}", b64(b"alice:pa:ss"));
        assert_eq!(
            read(&req(&[&h])),
            BasicHeader::Found(creds("alice", "pa:ss"))
        );
        let both = req(&["Bearer x.y.z", &format!("Basic {}", b64(b"bob:pw"))]);
        assert_eq!(read(&both), BasicHeader::Found(creds("bob", "pw")));
        assert_eq!(read(&req(&[])), BasicHeader::Missing);
        assert_eq!(read(&req(&["Bearer abc"])), BasicHeader::Missing);
        assert_eq!(read(&req(&["Basically x"])), BasicHeader::Missing);
        let shown = format!("{:?}", creds("alice", "hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn refuses_malformed_and_oversized_headers() {
        for bad in [
            "Basic",
            "Basic ",
            "Basic !!!",
            &format!("Basic {}", b64(b"nocolon")),
            &format!("Basic {}", b64(b":pw")),
            &format!("Basic {}", b64(b"alice:")),
            &format!("Basic {}", b64(b"\xff\xfe:pw")),
            &format!("Basic {}", b64(b"a\nb:pw")),
        ] {
            assert!(
                matches!(read(&req(&[bad])), BasicHeader::Malformed(_)),
                "{bad:?}"
            );
        }
        let big = format!("Basic {}", "A".repeat(MAX_BASIC_HEADER_BYTES));
        assert!(matches!(read(&req(&[&big])), BasicHeader::TooLarge(_)));
    }

    #[test]
    fn cache_hits_need_the_same_password_and_are_bounded() {
        let mut c = CredentialCache::new(2, 60, Some([7; 32]));
        let alice = creds("alice", "right");
        c.remember(0, &alice, 100);
        assert!(c.hit(0, &alice, 159));
        assert!(!c.hit(0, &alice, 160), "expired");
        assert!(!c.hit(0, &creds("alice", "wrong"), 100));
        assert!(!c.hit(1, &alice, 100), "another consumer");
        c.remember(1, &creds("bob", "b"), 100);
        c.remember(2, &creds("carol", "c"), 100);
        assert_eq!(c.len(), 2);
        assert!(!c.hit(0, &alice, 100), "evicted");
        let mut off = CredentialCache::new(0, 60, Some([7; 32]));
        off.remember(0, &alice, 100);
        assert!(off.is_empty());
        let mut keyless = CredentialCache::new(4, 60, None);
        keyless.remember(0, &alice, 100);
        assert!(!keyless.hit(0, &alice, 100));
        let random = CredentialCache::with_random_key(4, 60);
        assert!(random.key.is_some_and(|k| k != [0; 32]));
    }
}
