//! An oidc session as the plugin keeps it: a configuration, and a session
//! cookie sealed and chunked with the plugin's own code (`oidc::seal`,
//! `oidc::cookie`), holding [`HS256_TOKEN`] as its ID token.

use crate::tokens::HS256_TOKEN;
use oidc::config::OidcConfig;
use oidc::cookie;
use oidc::session::Session;

/// The session cookie's base name (the plugin's default).
pub const COOKIE: &str = "palisade_session";
/// The path [`config_json`] lets through without a session.
pub const PASS_THROUGH_PATH: &str = "/healthz";
/// When the session's access token expires: 2100-01-01, so no bench
/// request is ever sent to refresh.
pub const EXPIRES_AT: u64 = 4_102_444_800;
/// The session's access token, forwarded upstream as `Bearer`.
pub const ACCESS_TOKEN: &str = "at-7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f";
/// The header [`config_json`] forwards the ID token in.
pub const ID_TOKEN_HEADER: &str = "x-id-token";

/// A configuration in the shape the README shows: one pass-through path,
/// the access token and the ID token forwarded, default cookie and
/// session lifetime (8 h).
pub fn config_json() -> String {
    format!(
        r#"{{
  "issuer": "https://issuer.test",
  "provider_cluster": "idp",
  "client_id": "api",
  "client_secret": "bench-client-secret",
  "session_keys": {{"current": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}},
  "pass_through": [{{"paths": [{{"exact": "{PASS_THROUGH_PATH}"}}]}}],
  "forward": {{"access_token": true, "id_token_header": "{ID_TOKEN_HEADER}"}},
  "logout_path": "/logout"
}}"#
    )
}

/// A `Cookie` header value: the session started at `started_at` (Unix
/// seconds), sealed for [`config_json`]'s key, plus an unrelated cookie the
/// upstream keeps.
pub fn session_cookie(started_at: u64) -> String {
    let v = OidcConfig::from_json(config_json().as_bytes())
        .unwrap_or_else(|e| panic!("the bench oidc configuration is invalid: {e}"));
    let session = Session {
        id_token: HS256_TOKEN.into(),
        access_token: ACCESS_TOKEN.into(),
        refresh_token: Some("rt-0f1e2d3c4b5a69788796a5b4c3d2e1f0".into()),
        expires_at: EXPIRES_AT,
        started_at,
        nonce: "n-3f1c2a7e58b14a8e".into(),
    };
    let sealed = v.keys.seal(COOKIE, &session.to_json(), &[7u8; 12]);
    let chunks = cookie::split(&sealed, v.config.cookie.max_chunks)
        .expect("a one-token session fits the default chunk count");
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{COOKIE}.{i}={c}"))
        .chain(std::iter::once("theme=dark".to_string()))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use oidc::login::{Entropy, ENTROPY_BYTES};
    use oidc::policy::{Incoming, ProviderState};
    use oidc::replay::ReplayGuard;
    use oidc::{Decision, Oidc};
    use sdk_ext::{Headers, RequestView};

    fn decide(oidc: &Oidc, view: &RequestView, now: u64) -> Decision {
        oidc.decide(
            &Incoming::new(view),
            ProviderState::default(),
            &mut ReplayGuard::default(),
            &Entropy([1; ENTROPY_BYTES]),
            now,
        )
    }

    fn view(path: &str, cookie: &str) -> RequestView {
        RequestView {
            method: "GET".into(),
            path: path.into(),
            host: "app.test".into(),
            scheme: "https".into(),
            headers: Headers::from(vec![("cookie".into(), cookie.into())]),
            ..RequestView::default()
        }
    }

    #[test]
    fn the_sealed_session_opens_and_forwards_its_identity() {
        let oidc = Oidc::from_json(config_json().as_bytes()).expect("valid");
        let Decision::Continue(f) = decide(&oidc, &view("/orders", &session_cookie(1_000)), 1_060)
        else {
            panic!("a valid session continues");
        };
        let identity = f.identity.expect("identity handed off");
        assert_eq!(identity.subject.as_deref(), Some("alice"));
        assert_eq!(identity.issuer, "https://issuer.test");
        assert!(f
            .set
            .contains(&("cookie".to_string(), "theme=dark".to_string())));
        assert!(f.set.iter().any(|(n, _)| n == ID_TOKEN_HEADER));
        assert!(f.set.contains(&(
            "authorization".to_string(),
            format!("Bearer {ACCESS_TOKEN}")
        )));
    }

    #[test]
    fn an_expired_session_is_refused() {
        let oidc = Oidc::from_json(config_json().as_bytes()).expect("valid");
        let nine_hours = 9 * 3600;
        let mut program = view("/orders", &session_cookie(1_000));
        program.headers.push("accept", "application/json");
        let d = decide(&oidc, &program, 1_000 + nine_hours);
        assert!(
            matches!(d, Decision::Respond(ref r) if r.code == "oidc_session_expired"),
            "{d:?}"
        );
    }

    #[test]
    fn the_pass_through_path_needs_no_session() {
        let oidc = Oidc::from_json(config_json().as_bytes()).expect("valid");
        let d = decide(&oidc, &view(PASS_THROUGH_PATH, "theme=dark"), 1_000);
        assert!(
            matches!(d, Decision::Continue(ref f) if f.identity.is_none()),
            "{d:?}"
        );
    }
}
