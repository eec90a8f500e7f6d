//! The provider's discovery document
//! (`{issuer}/.well-known/openid-configuration`): the endpoints this filter
//! uses.

use jwt_auth::config::Url;
use serde::Deserialize;
use std::fmt;

/// Largest discovery document accepted.
pub const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// The endpoints of the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Where browsers are sent to log in (full URL).
    pub authorization: String,
    /// The token endpoint, reached through the provider cluster.
    pub token: Url,
    /// The key set, reached through the provider cluster.
    pub jwks_uri: String,
    /// RP-initiated logout (full URL), when the provider has one.
    pub end_session: Option<String>,
}

/// Why a discovery document is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    /// No response or a non-200 status.
    Status(Option<u16>),
    /// Larger than [`MAX_DISCOVERY_BYTES`].
    TooLarge,
    /// Not the expected JSON.
    Malformed(String),
    /// It names another issuer (OpenID Connect Discovery §4.3).
    IssuerMismatch(String),
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryError::Status(None) => f.write_str(
                "no response from the provider (check provider_cluster and that it is reachable)",
            ),
            DiscoveryError::Status(Some(s)) => {
                write!(f, "the provider answered HTTP {s} to discovery")
            }
            DiscoveryError::TooLarge => f.write_str("the discovery document is over 64 KiB"),
            DiscoveryError::Malformed(e) => write!(f, "unusable discovery document: {e}"),
            DiscoveryError::IssuerMismatch(i) => write!(
                f,
                "the discovery document names issuer {i:?}; set `issuer` to exactly the provider's issuer"
            ),
        }
    }
}

#[derive(Deserialize)]
struct Document {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

/// The path of the discovery document under the issuer.
pub fn discovery_path(issuer: &Url) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.path.trim_end_matches('/')
    )
}

/// Parses a discovery response.
pub fn parse(issuer: &str, status: Option<u16>, body: &[u8]) -> Result<Endpoints, DiscoveryError> {
    if status != Some(200) {
        return Err(DiscoveryError::Status(status));
    }
    if body.len() > MAX_DISCOVERY_BYTES {
        return Err(DiscoveryError::TooLarge);
    }
    let d: Document =
        serde_json::from_slice(body).map_err(|e| DiscoveryError::Malformed(e.to_string()))?;
    if d.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch(d.issuer));
    }
    Url::parse(&d.authorization_endpoint)
        .map_err(|e| DiscoveryError::Malformed(format!("authorization_endpoint: {e}")))?;
    Url::parse(&d.jwks_uri).map_err(|e| DiscoveryError::Malformed(format!("jwks_uri: {e}")))?;
    let token = Url::parse(&d.token_endpoint)
        .map_err(|e| DiscoveryError::Malformed(format!("token_endpoint: {e}")))?;
    if let Some(e) = &d.end_session_endpoint {
        Url::parse(e)
            .map_err(|e| DiscoveryError::Malformed(format!("end_session_endpoint: {e}")))?;
    }
    Ok(Endpoints {
        authorization: d.authorization_endpoint,
        token,
        jwks_uri: d.jwks_uri,
        end_session: d.end_session_endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"issuer":"http://idp.test","authorization_endpoint":"http://idp.test/auth",
        "token_endpoint":"http://idp.test/token","jwks_uri":"http://idp.test/jwks",
        "end_session_endpoint":"http://idp.test/session/end","scopes_supported":["openid"]}"#;

    #[test]
    fn parses_the_endpoints() {
        let e = parse("http://idp.test", Some(200), DOC.as_bytes()).unwrap();
        assert_eq!(e.token.path, "/token");
        assert_eq!(e.token.authority, "idp.test");
        assert_eq!(
            e.end_session.as_deref(),
            Some("http://idp.test/session/end")
        );
        let issuer = Url::parse("http://idp.test/realms/x/").unwrap();
        assert_eq!(
            discovery_path(&issuer),
            "/realms/x/.well-known/openid-configuration"
        );
    }

    #[test]
    fn refuses_bad_documents() {
        assert_eq!(
            parse("http://idp.test", None, b""),
            Err(DiscoveryError::Status(None))
        );
        assert!(matches!(
            parse("http://other.test", Some(200), DOC.as_bytes()),
            Err(DiscoveryError::IssuerMismatch(_))
        ));
        assert!(matches!(
            parse("http://idp.test", Some(200), b"{}"),
            Err(DiscoveryError::Malformed(_))
        ));
        let big = vec![b' '; MAX_DISCOVERY_BYTES + 1];
        assert_eq!(
            parse("http://idp.test", Some(200), &big),
            Err(DiscoveryError::TooLarge)
        );
    }
}
