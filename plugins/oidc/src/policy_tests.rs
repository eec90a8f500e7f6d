//! The whole decision natively: login, callback, session, refresh, logout
//! and every refusal, with ID tokens signed by a test key.

use crate::config::tests::sample;
use crate::discovery::Endpoints;
use crate::exchange::{ExchangeError, TokenResponse};
use crate::idtoken::tests::{claims, keys, sign};
use crate::login::{Entropy, LoginState, ENTROPY_BYTES};
use crate::policy::{Decision, Forward, Incoming, Oidc, ProviderState};
use crate::replay::ReplayGuard;
use crate::urlenc;
use jwt_auth::config::Url;
use jwt_auth::jwk::KeySet;
use sdk_ext::{Denial, Headers, RequestView};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const NOW: u64 = 1500;

fn oidc_with(patch: Value) -> Oidc {
    let mut cfg = sample();
    for (k, v) in patch.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    Oidc::from_json(cfg.to_string().as_bytes()).unwrap()
}

fn endpoints() -> Endpoints {
    Endpoints {
        authorization: "http://idp.test/auth".into(),
        token: Url::parse("http://idp.test/token").unwrap(),
        jwks_uri: "http://idp.test/jwks".into(),
        end_session: Some("http://idp.test/session/end".into()),
    }
}

fn entropy(seed: u8) -> Entropy {
    let mut e = [0u8; ENTROPY_BYTES];
    for (i, b) in e.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8);
    }
    Entropy(e)
}

/// A cookie jar that applies `Set-Cookie` headers.
#[derive(Default, Clone)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn apply(&mut self, headers: &[(String, String)]) {
        for (n, v) in headers {
            if n != "set-cookie" {
                continue;
            }
            let first = v.split(';').next().unwrap();
            let (name, value) = first.split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.into(), value.into());
            }
        }
    }
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn request(method: &str, path: &str, jar: &Jar, extra: &[(&str, &str)]) -> RequestView {
    let mut headers: Headers = extra.iter().copied().collect();
    if !jar.0.is_empty() {
        headers.push("cookie", &jar.header());
    }
    RequestView {
        method: method.into(),
        path: path.into(),
        host: "app.test".into(),
        scheme: "https".into(),
        headers,
        ..RequestView::default()
    }
}

struct World {
    oidc: Oidc,
    endpoints: Endpoints,
    keys: KeySet,
    replay: ReplayGuard,
}

impl World {
    fn new(patch: Value) -> World {
        World {
            oidc: oidc_with(patch),
            endpoints: endpoints(),
            keys: keys(),
            replay: ReplayGuard::default(),
        }
    }

    fn provider(&self) -> ProviderState<'_> {
        ProviderState {
            endpoints: Some(&self.endpoints),
            keys: Some(&self.keys),
        }
    }

    fn decide(&mut self, view: &RequestView, now: u64) -> Decision {
        let req = Incoming::new(view);
        let provider = ProviderState {
            endpoints: Some(&self.endpoints),
            keys: Some(&self.keys),
        };
        self.oidc
            .decide(&req, provider, &mut self.replay, &entropy(now as u8), now)
    }

    /// Starts a login for `path`; returns the login state and the URL.
    fn start(&mut self, jar: &mut Jar, path: &str) -> (LoginState, String) {
        let d = respond(self.decide(&request("GET", path, jar, &[]), NOW));
        assert_eq!((d.status, d.code), (302, "oidc_login_redirect"));
        jar.apply(&d.headers);
        let location = header(&d, "location");
        let state = urlenc::query_param(location.split_once('?').unwrap().1, "state").unwrap();
        let nonce = urlenc::query_param(location.split_once('?').unwrap().1, "nonce").unwrap();
        let login = LoginState {
            state,
            nonce,
            code_verifier: String::new(),
            return_to: path.into(),
            redirect_uri: String::new(),
            started_at: NOW,
        };
        (login, location)
    }

    /// The callback with `code`/`state`; finishes with an ID token carrying
    /// `nonce` and `extra` claims.
    fn callback(&mut self, jar: &mut Jar, query: &str, nonce: &str, extra: Value) -> Denial {
        let view = request("GET", &format!("/oauth2/callback?{query}"), jar, &[]);
        match self.decide(&view, NOW + 1) {
            Decision::Exchange { login, request } => {
                assert!(request.body.contains("grant_type=authorization_code"));
                assert!(request
                    .body
                    .contains(&format!("code_verifier={}", login.code_verifier)));
                let mut c = claims(nonce, NOW + 3600);
                for (k, v) in extra.as_object().unwrap() {
                    c[k] = v.clone();
                }
                let tokens = TokenResponse {
                    access_token: "AT1".into(),
                    id_token: Some(sign(c)),
                    refresh_token: Some("RT1".into()),
                    expires_in: Some(300),
                    token_type: "Bearer".into(),
                };
                let req = Incoming::new(&view);
                let d = self
                    .oidc
                    .complete_login(
                        &req,
                        &login,
                        Ok(tokens),
                        Some(&self.keys),
                        &entropy(9),
                        NOW + 1,
                    )
                    .unwrap();
                jar.apply(&d.headers);
                d
            }
            Decision::Respond(d) => d,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn login(&mut self, jar: &mut Jar, extra: Value) -> Denial {
        let (login, _) = self.start(jar, "/app?x=1");
        self.callback(
            jar,
            &format!("code=C&state={}", login.state),
            &login.nonce,
            extra,
        )
    }
}

fn respond(d: Decision) -> Denial {
    match d {
        Decision::Respond(d) => d,
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn forward(d: Decision) -> Forward {
    match d {
        Decision::Continue(f) => f,
        other => panic!("expected the request to continue, got {other:?}"),
    }
}

fn header(d: &Denial, name: &str) -> String {
    d.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[test]
fn pass_through_strips_identity_headers_without_a_session() {
    let mut w = World::new(json!({"strip_headers": ["X-User"]}));
    let f = forward(w.decide(
        &request("GET", "/healthz", &Jar::default(), &[("x-user", "admin")]),
        NOW,
    ));
    assert!(f.remove.contains(&"x-user".to_string()));
    assert!(f.remove.contains(&"authorization".to_string()));
    assert!(f.identity.is_none());
}

#[test]
fn browsers_are_redirected_and_programs_get_401() {
    let mut w = World::new(json!({}));
    let mut jar = Jar::default();
    let (_, location) = w.start(&mut jar, "/app?x=1");
    assert!(location.starts_with("http://idp.test/auth?response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.test%2Foauth2%2Fcallback"));
    assert!(location.contains("code_challenge_method=S256"));
    assert!(jar.0.contains_key("palisade_session_login"));
    let api = respond(w.decide(
        &request(
            "GET",
            "/api",
            &Jar::default(),
            &[("accept", "application/json")],
        ),
        NOW,
    ));
    assert_eq!((api.status, api.code), (401, "oidc_login_required"));
    let post = respond(w.decide(&request("POST", "/form", &Jar::default(), &[]), NOW));
    assert_eq!(
        post.status, 401,
        "a POST is never redirected (its body would be lost)"
    );
}

#[test]
fn without_discovery_a_login_cannot_start() {
    let w = World::new(json!({}));
    let view = request("GET", "/", &Jar::default(), &[]);
    let d = respond(w.oidc.decide(
        &Incoming::new(&view),
        ProviderState::default(),
        &mut ReplayGuard::default(),
        &entropy(1),
        NOW,
    ));
    assert_eq!((d.status, d.code), (503, "oidc_provider_unavailable"));
}

#[test]
fn login_then_access_hands_off_the_identity() {
    let mut w =
        World::new(json!({"forward": {"access_token": true, "id_token_header": "x-id-token"}}));
    let mut jar = Jar::default();
    let d = w.login(&mut jar, json!({}));
    assert_eq!((d.status, d.code), (302, "oidc_login_complete"));
    assert_eq!(header(&d, "location"), "/app?x=1");
    assert!(
        !jar.0.contains_key("palisade_session_login"),
        "the login cookie is cleared"
    );
    assert!(jar.0.contains_key("palisade_session.0"));
    let set = d
        .headers
        .iter()
        .find(|(n, v)| n == "set-cookie" && v.starts_with("palisade_session.0="))
        .unwrap();
    assert!(
        set.1.contains("HttpOnly") && set.1.contains("Secure") && set.1.contains("SameSite=Lax")
    );
    jar.0.insert("theme".into(), "dark".into());
    let view = request(
        "GET",
        "/app",
        &jar,
        &[("authorization", "Bearer forged"), ("x-id-token", "forged")],
    );
    let f = forward(w.decide(&view, NOW + 10));
    assert!(
        f.remove.contains(&"authorization".to_string())
            && f.remove.contains(&"x-id-token".to_string())
    );
    assert!(f
        .set
        .contains(&("authorization".into(), "Bearer AT1".into())));
    assert!(
        f.set.contains(&("cookie".into(), "theme=dark".into())),
        "{:?}",
        f.set
    );
    let id = f.identity.unwrap();
    assert_eq!(id.subject.as_deref(), Some("alice"));
    assert_eq!(id.issuer, "http://idp.test");
    assert_eq!(id.method.as_deref(), Some("oidc"));
    assert_eq!(id.claims["groups"], json!(["ops"]));
}

#[test]
fn callback_refusals() {
    let mut w = World::new(json!({}));
    let mut jar = Jar::default();
    let (login, _) = w.start(&mut jar, "/");
    let d = w.callback(&mut jar.clone(), "code=C", &login.nonce, json!({}));
    assert_eq!((d.status, d.code), (400, "oidc_state_missing"));
    let d = w.callback(
        &mut Jar::default(),
        &format!("code=C&state={}", login.state),
        &login.nonce,
        json!({}),
    );
    assert_eq!((d.status, d.code), (400, "oidc_login_state_missing"));
    let d = w.callback(
        &mut jar.clone(),
        "code=C&state=other",
        &login.nonce,
        json!({}),
    );
    assert_eq!((d.status, d.code), (400, "oidc_state_mismatch"));
    let d = w.callback(
        &mut jar.clone(),
        "error=access_denied&state=x",
        &login.nonce,
        json!({}),
    );
    assert_eq!((d.status, d.code), (401, "oidc_provider_error"));
    let mut forged = jar.clone();
    forged
        .0
        .insert("palisade_session_login".into(), "AAAA".into());
    let d = w.callback(
        &mut forged,
        &format!("code=C&state={}", login.state),
        &login.nonce,
        json!({}),
    );
    assert_eq!((d.status, d.code), (400, "oidc_login_state_invalid"));
    // The first real callback works; the same callback again is a replay.
    let replayed = jar.clone();
    let d = w.callback(
        &mut jar,
        &format!("code=C&state={}", login.state),
        &login.nonce,
        json!({}),
    );
    assert_eq!(d.code, "oidc_login_complete");
    let d = w.callback(
        &mut replayed.clone(),
        &format!("code=C&state={}", login.state),
        &login.nonce,
        json!({}),
    );
    assert_eq!((d.status, d.code), (400, "oidc_state_replayed"));
}

#[test]
fn a_late_callback_is_refused() {
    let mut w = World::new(json!({"login_timeout": "1s"}));
    let mut jar = Jar::default();
    let (login, _) = w.start(&mut jar, "/");
    let d = w.callback(
        &mut jar,
        &format!("code=C&state={}", login.state),
        &login.nonce,
        json!({}),
    );
    assert_eq!((d.status, d.code), (400, "oidc_login_expired"));
}

#[test]
fn a_wrong_nonce_is_refused() {
    let mut w = World::new(json!({}));
    let mut jar = Jar::default();
    let (login, _) = w.start(&mut jar, "/");
    let d = w.callback(
        &mut jar,
        &format!("code=C&state={}", login.state),
        "injected",
        json!({}),
    );
    assert_eq!((d.status, d.code), (401, "oidc_nonce_mismatch"));
    assert!(!jar.0.contains_key("palisade_session.0"));
}

#[test]
fn token_endpoint_failures_are_refused() {
    let w = World::new(json!({}));
    let view = request("GET", "/oauth2/callback", &Jar::default(), &[]);
    let login = LoginState {
        state: "s".into(),
        nonce: "n".into(),
        code_verifier: "v".into(),
        return_to: "/".into(),
        redirect_uri: "r".into(),
        started_at: NOW,
    };
    let refused = Err(ExchangeError::Refused {
        status: 400,
        error: "invalid_grant".into(),
    });
    let d = w
        .oidc
        .complete_login(
            &Incoming::new(&view),
            &login,
            refused,
            Some(&w.keys),
            &entropy(1),
            NOW,
        )
        .unwrap();
    assert_eq!((d.status, d.code), (401, "oidc_code_refused"));
    let d = w
        .oidc
        .complete_login(
            &Incoming::new(&view),
            &login,
            Err(ExchangeError::NoResponse),
            Some(&w.keys),
            &entropy(1),
            NOW,
        )
        .unwrap();
    assert_eq!((d.status, d.code), (502, "oidc_token_exchange_failed"));
    let ok = TokenResponse {
        access_token: "a".into(),
        id_token: Some(sign(claims("n", NOW + 60))),
        refresh_token: None,
        expires_in: None,
        token_type: "Bearer".into(),
    };
    let e = w
        .oidc
        .complete_login(
            &Incoming::new(&view),
            &login,
            Ok(ok),
            None,
            &entropy(1),
            NOW,
        )
        .unwrap_err();
    assert!(
        e.wants_keys(),
        "no keys yet: the filter fetches them and tries again"
    );
}

#[test]
fn tampered_incomplete_and_expired_sessions_are_refused() {
    let mut w = World::new(json!({"session_max_age": "1h"}));
    let mut jar = Jar::default();
    w.login(&mut jar, json!({}));
    let api = [("accept", "application/json")];
    let mut tampered = jar.clone();
    let v = tampered.0.get_mut("palisade_session.0").unwrap();
    let flipped = if v.ends_with('A') { 'B' } else { 'A' };
    v.pop();
    v.push(flipped);
    let d = respond(w.decide(&request("GET", "/app", &tampered, &api), NOW + 5));
    assert_eq!((d.status, d.code), (401, "oidc_session_invalid"));
    assert!(header(&d, "set-cookie").starts_with("palisade_session.0=;"));
    let d = respond(w.decide(&request("GET", "/app", &tampered, &[]), NOW + 5));
    assert_eq!(
        (d.status, d.code),
        (302, "oidc_login_redirect"),
        "a browser logs in again"
    );
    let mut gap = jar.clone();
    gap.0.insert("palisade_session.2".into(), "x".into());
    let d = respond(w.decide(&request("GET", "/app", &gap, &api), NOW + 5));
    assert_eq!(d.code, "oidc_session_invalid");
    let d = respond(w.decide(&request("GET", "/app", &jar, &api), NOW + 1 + 3600));
    assert_eq!((d.status, d.code), (401, "oidc_session_expired"));
}

#[test]
fn tokens_are_refreshed_before_expiry() {
    let mut w = World::new(json!({"refresh_before_expiry": "30s"}));
    let mut jar = Jar::default();
    w.login(&mut jar, json!({}));
    // Access token expires at NOW + 1 + 300: not yet in the window.
    forward(w.decide(&request("GET", "/app", &jar, &[]), NOW + 200));
    let view = request("GET", "/app", &jar, &[]);
    let (session, req) = match w.decide(&view, NOW + 280) {
        Decision::Refresh { session, request } => (session, request),
        other => panic!("{other:?}"),
    };
    assert_eq!(req.body, "grant_type=refresh_token&refresh_token=RT1");
    assert!(req
        .headers
        .iter()
        .any(|(n, v)| n == "authorization" && v.starts_with("Basic ")));
    let refreshed = |nonce: &str, refresh_token: Option<&str>| TokenResponse {
        access_token: "AT2".into(),
        id_token: Some(sign(claims(nonce, NOW + 4000))),
        refresh_token: refresh_token.map(str::to_string),
        expires_in: Some(300),
        token_type: "Bearer".into(),
    };
    let complete = |view: &RequestView, tokens: Result<TokenResponse, ExchangeError>| {
        w.oidc
            .complete_refresh(
                &Incoming::new(view),
                &session,
                tokens,
                w.provider(),
                &entropy(3),
                NOW + 280,
            )
            .unwrap()
    };
    let f = forward(complete(&view, Ok(refreshed(&session.nonce, Some("RT2")))));
    let bearer_at2 = ("authorization".to_string(), "Bearer AT2".to_string());
    assert!(f.set.contains(&bearer_at2));
    assert!(!f.response_cookies.is_empty());
    // A refused refresh sends a browser to log in again, a program gets 401.
    let api_view = request("GET", "/app", &jar, &[("accept", "application/json")]);
    let d = respond(complete(&api_view, Err(ExchangeError::NoResponse)));
    assert_eq!((d.status, d.code), (401, "oidc_refresh_failed"));
    let refused = Err(ExchangeError::Refused {
        status: 400,
        error: "invalid_grant".into(),
    });
    assert_eq!(
        respond(complete(&view, refused)).code,
        "oidc_login_redirect"
    );
    // A refreshed ID token with another nonce is refused.
    let d = respond(complete(&view, Ok(refreshed("other", None))));
    assert_eq!((d.status, d.code), (401, "oidc_nonce_mismatch"));
    // The new cookies carry the refreshed session.
    let mut jar2 = jar.clone();
    jar2.apply(
        &f.response_cookies
            .iter()
            .map(|c| ("set-cookie".to_string(), c.clone()))
            .collect::<Vec<_>>(),
    );
    let f = forward(w.decide(&request("GET", "/app", &jar2, &[]), NOW + 400));
    assert!(f.set.contains(&bearer_at2));
}

#[test]
fn a_large_session_is_chunked_and_reassembled() {
    let mut w = World::new(json!({}));
    let mut jar = Jar::default();
    let groups: Vec<String> = (0..400).map(|i| format!("group-number-{i:04}")).collect();
    let d = w.login(&mut jar, json!({"groups": groups}));
    assert_eq!(d.code, "oidc_login_complete");
    let chunks = jar
        .0
        .keys()
        .filter(|k| k.starts_with("palisade_session."))
        .count();
    assert!(chunks >= 3, "{chunks} chunks");
    assert!(d
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .all(|(_, v)| v.len() < 4000));
    let f = forward(w.decide(&request("GET", "/app", &jar, &[]), NOW + 5));
    assert_eq!(
        f.identity.unwrap().claims["groups"]
            .as_array()
            .unwrap()
            .len(),
        400
    );
    let mut small = World::new(json!({"cookie": {"max_chunks": 1}}));
    let d = small.login(&mut Jar::default(), json!({"groups": groups}));
    assert_eq!((d.status, d.code), (500, "oidc_session_too_large"));
}

#[test]
fn logout_clears_the_session_and_ends_it_at_the_provider() {
    let mut w = World::new(json!({"post_logout_redirect_uri": "https://app.test/bye"}));
    let mut jar = Jar::default();
    w.login(&mut jar, json!({}));
    let d = respond(w.decide(&request("GET", "/logout", &jar, &[]), NOW + 5));
    let location = header(&d, "location");
    assert!(
        location.starts_with("http://idp.test/session/end?client_id=app&id_token_hint=ey"),
        "{location}"
    );
    assert!(location.ends_with("&post_logout_redirect_uri=https%3A%2F%2Fapp.test%2Fbye"));
    let mut after = jar.clone();
    after.apply(&d.headers);
    assert!(!after.0.contains_key("palisade_session.0"));
    let d = respond(w.decide(&request("GET", "/local-logout", &jar, &[]), NOW + 5));
    assert_eq!(header(&d, "location"), "https://app.test/bye");
    assert!(header(&d, "set-cookie").ends_with("Max-Age=0"));
}

#[test]
fn sessions_sealed_with_the_previous_key_still_open() {
    let mut w = World::new(json!({}));
    let mut jar = Jar::default();
    w.login(&mut jar, json!({}));
    let mut rotated = World::new(json!({"session_keys": {
        "current": "HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=",
        "previous": ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]}}));
    forward(rotated.decide(&request("GET", "/app", &jar, &[]), NOW + 5));
    let mut retired = World::new(
        json!({"session_keys": {"current": "HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA="}}),
    );
    let d = respond(retired.decide(
        &request("GET", "/app", &jar, &[("accept", "application/json")]),
        NOW + 5,
    ));
    assert_eq!(d.code, "oidc_session_invalid");
}
