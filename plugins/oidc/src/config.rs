//! The JSON configuration, validated while it is read: a configuration that
//! would let a request through by mistake (no keys, a key of the wrong size,
//! an issuer that is not a URL, paths that overlap) is refused at load with
//! the JSON path and the reason.

use crate::seal::{KeyRing, SessionKey};
use jwt_auth::config::Url;
use sdk_ext::config::{parse_config, ConfigError};
use sdk_ext::duration::ConfigDuration;
use sdk_ext::matcher::{HeaderMatcher, HeaderTest, RequestMatch, StringMatcher};
use serde::Deserialize;
use std::time::Duration;

/// Most cookie chunks a session may be split into.
pub const MAX_CHUNKS_LIMIT: usize = 16;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The OpenID provider's issuer (`iss`), `http(s)://host[/path]`; its
    /// discovery document is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The Envoy cluster that reaches the provider (discovery, token
    /// endpoint, JWKS).
    pub provider_cluster: String,
    /// Timeout of each call to the provider.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// The registered client id (also the ID token's required `aud`).
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// How the client authenticates at the token endpoint.
    #[serde(default)]
    pub token_endpoint_auth_method: AuthMethod,
    /// The callback path registered as redirect URI (on every host).
    #[serde(default = "default_redirect_path")]
    pub redirect_path: String,
    /// The full redirect URI; default: `{scheme}://{host}{redirect_path}` of
    /// the request.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// Scopes requested; `openid` is added when missing.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The session cookie.
    #[serde(default)]
    pub cookie: CookieConfig,
    /// AEAD keys of the session cookie.
    pub session_keys: SessionKeys,
    /// A session ends this long after login, whatever the refreshes.
    #[serde(default = "default_session_max_age")]
    pub session_max_age: ConfigDuration,
    /// A login must come back to the callback within this long.
    #[serde(default = "default_login_timeout")]
    pub login_timeout: ConfigDuration,
    /// Tokens are refreshed when they expire within this long.
    #[serde(default = "default_refresh_before")]
    pub refresh_before_expiry: ConfigDuration,
    /// Requests that pass without a session (health checks); the identity
    /// headers are still stripped.
    #[serde(default)]
    pub pass_through: Vec<RequestMatch>,
    /// Requests from programs: they get 401, never a login redirect.
    /// Default: `Accept` contains `application/json`.
    #[serde(default = "default_api_clients")]
    pub api_clients: Vec<RequestMatch>,
    /// RP-initiated logout: clears the session and redirects to the
    /// provider's `end_session_endpoint`.
    #[serde(default)]
    pub logout_path: Option<String>,
    /// Local logout: clears the session and redirects to
    /// `post_logout_redirect_uri` (or `/`), leaving the provider's session.
    #[serde(default)]
    pub local_logout_path: Option<String>,
    /// Where the provider sends the user after logout.
    #[serde(default)]
    pub post_logout_redirect_uri: Option<String>,
    /// What is sent upstream.
    #[serde(default)]
    pub forward: ForwardConfig,
    /// Extra request headers removed from every request (identity headers
    /// a client must not set). The forwarded token headers are always
    /// stripped.
    #[serde(default)]
    pub strip_headers: Vec<String>,
    /// The provider name in the handed-off identity.
    #[serde(default = "default_provider_name")]
    pub provider_name: String,
}

/// `client_secret_basic` or `client_secret_post`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the url-encoded id and secret.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// `SameSite` of the cookies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SameSite {
    /// `Lax` (default: the callback is a top-level GET from the provider).
    #[default]
    Lax,
    /// `Strict` (the login-state cookie still uses `Lax`, or the callback
    /// from the provider would arrive without it).
    Strict,
    /// `None` (requires `secure`).
    None,
}

impl SameSite {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// Cookie settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieConfig {
    /// Base name; chunks are `{name}.0`, `{name}.1`, ...; the login state
    /// is `{name}_login`.
    #[serde(default = "default_cookie_name")]
    pub name: String,
    /// `Domain` attribute; none: host-only.
    #[serde(default)]
    pub domain: Option<String>,
    /// `Path` attribute.
    #[serde(default = "default_cookie_path")]
    pub path: String,
    /// `Secure` attribute (default true).
    #[serde(default = "default_true")]
    pub secure: bool,
    /// `SameSite` attribute.
    #[serde(default)]
    pub same_site: SameSite,
    /// Most chunks of one session (each at most [`crate::cookie::CHUNK_BYTES`]).
    #[serde(default = "default_max_chunks")]
    pub max_chunks: usize,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            name: default_cookie_name(),
            domain: None,
            path: default_cookie_path(),
            secure: true,
            same_site: SameSite::default(),
            max_chunks: default_max_chunks(),
        }
    }
}

/// The AEAD keys: `current` seals, `current` and `previous` open.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionKeys {
    /// Base64 (standard or url-safe) of 32 random bytes.
    pub current: String,
    /// Keys of before the last rotation, still accepted to open.
    #[serde(default)]
    pub previous: Vec<String>,
}

/// What goes upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Send the access token as `Authorization: Bearer` (default true).
    #[serde(default = "default_true")]
    pub access_token: bool,
    /// Send the ID token in this header.
    #[serde(default)]
    pub id_token_header: Option<String>,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            access_token: true,
            id_token_header: None,
        }
    }
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}
fn default_redirect_path() -> String {
    "/oauth2/callback".into()
}
fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}
fn default_session_max_age() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(8 * 3600))
}
fn default_login_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(600))
}
fn default_refresh_before() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}
fn default_api_clients() -> Vec<RequestMatch> {
    vec![RequestMatch {
        headers: vec![HeaderMatcher {
            name: "accept".into(),
            test: HeaderTest::Value(StringMatcher::contains("application/json")),
            invert: false,
        }],
        ..RequestMatch::default()
    }]
}
fn default_cookie_name() -> String {
    "palisade_session".into()
}
fn default_cookie_path() -> String {
    "/".into()
}
fn default_true() -> bool {
    true
}
fn default_max_chunks() -> usize {
    8
}
fn default_provider_name() -> String {
    "oidc".into()
}

/// A configuration checked beyond its shape.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The configuration.
    pub config: OidcConfig,
    /// The issuer as cluster authority and path.
    pub issuer_url: Url,
    /// The decoded keys.
    pub keys: KeyRing,
}

impl OidcConfig {
    /// Parses and validates configuration bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Validated, ConfigError> {
        let mut config: OidcConfig = parse_config(bytes)?;
        let issuer_url = Url::parse(&config.issuer)
            .map_err(|e| ConfigError::new("issuer", format!("not an http(s) URL: {e}")))?;
        for (field, value) in [
            ("client_id", &config.client_id),
            ("client_secret", &config.client_secret),
            ("provider_cluster", &config.provider_cluster),
        ] {
            if value.is_empty() {
                return Err(ConfigError::new(field, "must not be empty"));
            }
        }
        check_path("redirect_path", &config.redirect_path)?;
        if let Some(uri) = &config.redirect_uri {
            Url::parse(uri)
                .map_err(|e| ConfigError::new("redirect_uri", format!("not a URL: {e}")))?;
        }
        if let Some(uri) = &config.post_logout_redirect_uri {
            Url::parse(uri).map_err(|e| {
                ConfigError::new("post_logout_redirect_uri", format!("not a URL: {e}"))
            })?;
        }
        for (field, p) in [
            ("logout_path", &config.logout_path),
            ("local_logout_path", &config.local_logout_path),
        ] {
            if let Some(p) = p {
                check_path(field, p)?;
                if *p == config.redirect_path {
                    return Err(ConfigError::new(field, "must differ from redirect_path"));
                }
            }
        }
        if !config.scopes.iter().any(|s| s == "openid") {
            config.scopes.insert(0, "openid".into());
        }
        for (i, s) in config.scopes.iter().enumerate() {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
                return Err(ConfigError::new(
                    format!("scopes[{i}]"),
                    "a scope is printable ASCII without spaces or quotes",
                ));
            }
        }
        let c = &config.cookie;
        if c.name.is_empty()
            || !c
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::new(
                "cookie.name",
                "use letters, digits, '_' and '-' only",
            ));
        }
        check_path("cookie.path", &c.path)?;
        if let Some(d) = &c.domain {
            if d.is_empty()
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
            {
                return Err(ConfigError::new("cookie.domain", "not a domain name"));
            }
        }
        if c.same_site == SameSite::None && !c.secure {
            return Err(ConfigError::new(
                "cookie.same_site",
                "SameSite=None requires secure: true (browsers drop such cookies otherwise)",
            ));
        }
        if c.max_chunks == 0 || c.max_chunks > MAX_CHUNKS_LIMIT {
            return Err(ConfigError::new(
                "cookie.max_chunks",
                format!("between 1 and {MAX_CHUNKS_LIMIT}"),
            ));
        }
        let current = SessionKey::from_base64(&config.session_keys.current)
            .map_err(|e| ConfigError::new("session_keys.current", e))?;
        let mut previous = Vec::new();
        for (i, k) in config.session_keys.previous.iter().enumerate().take(8) {
            previous.push(
                SessionKey::from_base64(k)
                    .map_err(|e| ConfigError::new(format!("session_keys.previous[{i}]"), e))?,
            );
        }
        if config.session_keys.previous.len() > 8 {
            return Err(ConfigError::new(
                "session_keys.previous",
                "at most 8 previous keys",
            ));
        }
        if config.login_timeout.get().is_zero() || config.session_max_age.get().is_zero() {
            return Err(ConfigError::new(
                "login_timeout",
                "login_timeout and session_max_age must be positive",
            ));
        }
        for (i, h) in config.strip_headers.iter_mut().enumerate() {
            *h = h.to_ascii_lowercase();
            if h.is_empty() || h.starts_with(':') {
                return Err(ConfigError::new(
                    format!("strip_headers[{i}]"),
                    "a regular header name",
                ));
            }
        }
        if let Some(h) = &mut config.forward.id_token_header {
            *h = h.to_ascii_lowercase();
            if h.is_empty() || h.starts_with(':') {
                return Err(ConfigError::new(
                    "forward.id_token_header",
                    "a regular header name",
                ));
            }
        }
        Ok(Validated {
            config,
            issuer_url,
            keys: KeyRing { current, previous },
        })
    }
}

fn check_path(field: &str, p: &str) -> Result<(), ConfigError> {
    if !p.starts_with('/') || p.contains('?') || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(ConfigError::new(
            field,
            "an absolute path starting with '/', without query",
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{json, Value};

    pub(crate) fn sample() -> Value {
        json!({
            "issuer": "http://idp.test",
            "provider_cluster": "idp",
            "client_id": "app",
            "client_secret": "s3cret",
            "session_keys": {"current": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
            "logout_path": "/logout",
            "local_logout_path": "/local-logout",
            "pass_through": [{"paths": [{"exact": "/healthz"}]}]
        })
    }

    fn load(v: Value) -> Result<Validated, ConfigError> {
        OidcConfig::from_json(v.to_string().as_bytes())
    }

    #[test]
    fn sample_loads_with_defaults() {
        let v = load(sample()).unwrap();
        assert_eq!(v.config.scopes[0], "openid");
        assert_eq!(v.config.cookie.name, "palisade_session");
        assert!(v.config.cookie.secure);
        assert_eq!(v.issuer_url.authority, "idp.test");
        assert_eq!(
            v.config.token_endpoint_auth_method,
            AuthMethod::ClientSecretBasic
        );
        assert_eq!(v.config.api_clients.len(), 1);
    }

    #[test]
    fn openid_scope_is_added() {
        let mut s = sample();
        s["scopes"] = json!(["email"]);
        assert_eq!(load(s).unwrap().config.scopes, vec!["openid", "email"]);
    }

    #[test]
    fn refusals_name_the_path() {
        let cases = [
            ("issuer", json!("ftp://x"), "issuer"),
            ("client_id", json!(""), "client_id"),
            (
                "session_keys",
                json!({"current": "c2hvcnQ="}),
                "session_keys.current",
            ),
            (
                "session_keys",
                json!({"current": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "previous": ["!!"]}),
                "session_keys.previous[0]",
            ),
            ("cookie", json!({"max_chunks": 0}), "cookie.max_chunks"),
            ("cookie", json!({"name": "a b"}), "cookie.name"),
            (
                "cookie",
                json!({"same_site": "none", "secure": false}),
                "cookie.same_site",
            ),
            ("redirect_path", json!("relative"), "redirect_path"),
            ("logout_path", json!("/oauth2/callback"), "logout_path"),
            (
                "token_endpoint_auth_method",
                json!("private_key_jwt"),
                "token_endpoint_auth_method",
            ),
        ];
        for (ptr, value, path) in cases {
            let mut s = sample();
            s[ptr] = value;
            let e = load(s).unwrap_err();
            assert_eq!(e.path, path, "{e}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut s = sample();
        s["client_secrets"] = json!("x");
        assert!(load(s).is_err());
    }
}
