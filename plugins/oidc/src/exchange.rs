//! The token endpoint: the authorization-code and refresh-token grant
//! requests (client authentication `client_secret_basic` or
//! `client_secret_post`) and the token response.

use crate::config::AuthMethod;
use crate::urlenc;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jwt_auth::config::Url;
use serde::Deserialize;
use std::fmt;

/// Largest token response accepted.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// A POST to the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `:authority`.
    pub authority: String,
    /// `:path`.
    pub path: String,
    /// Headers besides the pseudo-headers.
    pub headers: Vec<(String, String)>,
    /// The form body.
    pub body: String,
}

/// The client's credentials.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// `client_id`.
    pub id: &'a str,
    /// `client_secret`.
    pub secret: &'a str,
    /// How they are sent.
    pub method: AuthMethod,
}

impl Client<'_> {
    fn request<'p>(&'p self, endpoint: &Url, mut params: Vec<(&'p str, &'p str)>) -> TokenRequest {
        let mut headers = vec![
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("accept".to_string(), "application/json".to_string()),
        ];
        match self.method {
            AuthMethod::ClientSecretBasic => {
                // RFC 6749 §2.3.1: both parts form-url-encoded first.
                let creds = format!(
                    "{}:{}",
                    urlenc::encode(self.id),
                    urlenc::encode(self.secret)
                );
                headers.push((
                    "authorization".to_string(),
                    format!("Basic {}", STANDARD.encode(creds)),
                ));
            }
            AuthMethod::ClientSecretPost => {
                params.push(("client_id", self.id));
                params.push(("client_secret", self.secret));
            }
        }
        TokenRequest {
            authority: endpoint.authority.clone(),
            path: endpoint.path.clone(),
            headers,
            body: urlenc::form(&params),
        }
    }

    /// Exchanges an authorization code (with the PKCE verifier).
    pub fn code_request<'p>(
        &'p self,
        endpoint: &Url,
        code: &'p str,
        redirect_uri: &'p str,
        verifier: &'p str,
    ) -> TokenRequest {
        self.request(
            endpoint,
            vec![
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ],
        )
    }

    /// Refreshes with a refresh token.
    pub fn refresh_request<'p>(&'p self, endpoint: &Url, refresh_token: &'p str) -> TokenRequest {
        self.request(
            endpoint,
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
    }
}

/// A successful token response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenResponse {
    /// `access_token`.
    pub access_token: String,
    /// `id_token` (required after a code exchange, optional on refresh).
    #[serde(default)]
    pub id_token: Option<String>,
    /// `refresh_token`.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// `expires_in`, seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// `token_type` (must be Bearer).
    pub token_type: String,
}

/// Why the token endpoint's answer is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeError {
    /// No response (timeout, reset, unknown cluster).
    NoResponse,
    /// An OAuth error response (`invalid_grant`, ...).
    Refused {
        /// HTTP status.
        status: u16,
        /// The `error` field.
        error: String,
    },
    /// Larger than [`MAX_TOKEN_RESPONSE_BYTES`].
    TooLarge,
    /// Not a token response.
    Malformed(String),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::NoResponse => f.write_str("no response from the token endpoint"),
            ExchangeError::Refused { status, error } => {
                write!(
                    f,
                    "the token endpoint refused the grant: HTTP {status} {error}"
                )
            }
            ExchangeError::TooLarge => f.write_str("the token response is over 64 KiB"),
            ExchangeError::Malformed(e) => write!(f, "unusable token response: {e}"),
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// Parses the token endpoint's answer.
pub fn parse_response(status: Option<u16>, body: &[u8]) -> Result<TokenResponse, ExchangeError> {
    let status = status.ok_or(ExchangeError::NoResponse)?;
    if body.len() > MAX_TOKEN_RESPONSE_BYTES {
        return Err(ExchangeError::TooLarge);
    }
    if status != 200 {
        let error = serde_json::from_slice::<ErrorBody>(body)
            .map(|e| e.error.chars().take(64).collect())
            .unwrap_or_else(|_| "no OAuth error".into());
        return Err(ExchangeError::Refused { status, error });
    }
    let r: TokenResponse =
        serde_json::from_slice(body).map_err(|e| ExchangeError::Malformed(e.to_string()))?;
    if !r.token_type.eq_ignore_ascii_case("bearer") {
        return Err(ExchangeError::Malformed(format!(
            "token_type {:?}, expected Bearer",
            r.token_type
        )));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Url {
        Url::parse("http://idp.test/token").unwrap()
    }

    #[test]
    fn basic_auth_code_request() {
        let c = Client {
            id: "app:1",
            secret: "s e",
            method: AuthMethod::ClientSecretBasic,
        };
        let r = c.code_request(&endpoint(), "C", "http://app/cb", "V");
        assert_eq!(r.path, "/token");
        assert_eq!(r.authority, "idp.test");
        assert_eq!(
            r.body,
            "grant_type=authorization_code&code=C&redirect_uri=http%3A%2F%2Fapp%2Fcb&code_verifier=V"
        );
        let auth = &r
            .headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .unwrap()
            .1;
        let decoded = STANDARD
            .decode(auth.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"app%3A1:s%20e");
    }

    #[test]
    fn post_auth_refresh_request() {
        let c = Client {
            id: "app",
            secret: "s",
            method: AuthMethod::ClientSecretPost,
        };
        let r = c.refresh_request(&endpoint(), "R");
        assert_eq!(
            r.body,
            "grant_type=refresh_token&refresh_token=R&client_id=app&client_secret=s"
        );
        assert!(!r.headers.iter().any(|(n, _)| n == "authorization"));
    }

    #[test]
    fn parses_responses() {
        let ok = br#"{"access_token":"a","id_token":"i","refresh_token":"r","expires_in":60,"token_type":"Bearer","scope":"openid"}"#;
        let r = parse_response(Some(200), ok).unwrap();
        assert_eq!(r.expires_in, Some(60));
        assert_eq!(
            parse_response(Some(400), br#"{"error":"invalid_grant"}"#),
            Err(ExchangeError::Refused {
                status: 400,
                error: "invalid_grant".into()
            })
        );
        assert_eq!(parse_response(None, b""), Err(ExchangeError::NoResponse));
        assert!(matches!(
            parse_response(Some(200), br#"{"access_token":"a","token_type":"mac"}"#),
            Err(ExchangeError::Malformed(_))
        ));
    }
}
