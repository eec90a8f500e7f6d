//! The pure decision: configuration + request + provider state + time +
//! random bytes → what the filter does. No host calls here; the filter
//! performs the HTTP calls a decision asks for and hands the answers back.

use crate::config::{OidcConfig, Validated};
use crate::cookie::{self, ChunkError, CookieWriter};
use crate::discovery::Endpoints;
use crate::exchange::{Client, ExchangeError, TokenRequest, TokenResponse};
use crate::idtoken::{self, IdTokenError, Nonce};
use crate::login::{safe_return_to, Entropy, LoginState};
use crate::replay::ReplayGuard;
use crate::seal::{KeyRing, OpenError};
use crate::session::Session;
use crate::urlenc;
use jwt_auth::config::{Provider, Url};
use jwt_auth::jwk::KeySet;
use jwt_auth::verify::VerifiedToken;
use sdk_ext::identity::VerifiedIdentity;
use sdk_ext::{ConfigError, Denial, RequestView};

/// `method` of identities handed off by this plugin.
pub const METHOD_OIDC: &str = "oidc";

/// Every code a local reply can carry (metrics are defined for each).
pub const REPLY_CODES: &[&str] = &[
    "oidc_login_redirect",
    "oidc_login_complete",
    "oidc_logout",
    "oidc_login_required",
    "oidc_session_invalid",
    "oidc_session_expired",
    "oidc_refresh_failed",
    "oidc_state_missing",
    "oidc_login_state_missing",
    "oidc_login_state_invalid",
    "oidc_state_mismatch",
    "oidc_state_replayed",
    "oidc_login_expired",
    "oidc_code_missing",
    "oidc_provider_error",
    "oidc_code_refused",
    "oidc_token_exchange_failed",
    "oidc_id_token_invalid",
    "oidc_nonce_mismatch",
    "oidc_provider_unavailable",
    "oidc_session_too_large",
];

/// What the provider state offers at decision time.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProviderState<'a> {
    /// The discovered endpoints (`None` until discovery succeeded).
    pub endpoints: Option<&'a Endpoints>,
    /// The signing keys (`None` until fetched).
    pub keys: Option<&'a KeySet>,
}

/// Request header changes and the identity for a request that continues.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Forward {
    /// Headers removed (incoming identity headers).
    pub remove: Vec<String>,
    /// Headers set (tokens, the cookie header without the session).
    pub set: Vec<(String, String)>,
    /// The identity for later filters.
    pub identity: Option<VerifiedIdentity>,
    /// `Set-Cookie` values for the response (after a refresh).
    pub response_cookies: Vec<String>,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Let it through with these changes.
    Continue(Forward),
    /// Answer locally (a redirect or a refusal).
    Respond(Denial),
    /// Exchange the code at the token endpoint, then [`Oidc::complete_login`].
    Exchange {
        /// The login being finished.
        login: LoginState,
        /// The token request to send.
        request: TokenRequest,
    },
    /// Refresh at the token endpoint, then [`Oidc::complete_refresh`].
    Refresh {
        /// The session being refreshed.
        session: Session,
        /// The token request to send.
        request: TokenRequest,
    },
}

/// Why a request has no usable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoSession {
    Absent,
    Invalid,
    Expired,
    RefreshFailed,
}

impl NoSession {
    fn code(self) -> &'static str {
        match self {
            NoSession::Absent => "oidc_login_required",
            NoSession::Invalid => "oidc_session_invalid",
            NoSession::Expired => "oidc_session_expired",
            NoSession::RefreshFailed => "oidc_refresh_failed",
        }
    }
    fn message(self) -> &'static str {
        match self {
            NoSession::Absent => "log in first: no session",
            NoSession::Invalid => "the session cookie is invalid (tampered, forged, incomplete or sealed with a retired key); log in again",
            NoSession::Expired => "the session has expired; log in again",
            NoSession::RefreshFailed => {
                "the provider refused to refresh the session (it ended there); log in again"
            }
        }
    }
}

/// The request as the policy reads it.
pub struct Incoming<'a> {
    /// The request view.
    pub view: &'a RequestView,
    /// Its cookies.
    pub cookies: Vec<(String, String)>,
}

impl<'a> Incoming<'a> {
    /// Reads the cookies of `view`.
    pub fn new(view: &'a RequestView) -> Incoming<'a> {
        let values: Vec<&str> = view
            .headers
            .iter()
            .filter(|(n, _)| *n == "cookie")
            .map(|(_, v)| v)
            .collect();
        Incoming {
            view,
            cookies: cookie::parse_cookie_header(&values),
        }
    }
}

/// The configured plugin.
#[derive(Debug, Clone)]
pub struct Oidc {
    config: OidcConfig,
    issuer_url: Url,
    keys: KeyRing,
    provider: Provider,
    login_cookie: String,
}

impl Oidc {
    /// From configuration bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Oidc, ConfigError> {
        Ok(Oidc::new(OidcConfig::from_json(bytes)?))
    }

    /// From a validated configuration.
    pub fn new(v: Validated) -> Oidc {
        Oidc {
            provider: idtoken::provider(&v.config.issuer, &v.config.client_id),
            login_cookie: format!("{}_login", v.config.cookie.name),
            config: v.config,
            issuer_url: v.issuer_url,
            keys: v.keys,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The issuer as cluster authority and path.
    pub fn issuer_url(&self) -> &Url {
        &self.issuer_url
    }

    fn writer(&self) -> CookieWriter<'_> {
        CookieWriter::new(&self.config.cookie)
    }

    fn client(&self) -> Client<'_> {
        Client {
            id: &self.config.client_id,
            secret: &self.config.client_secret,
            method: self.config.token_endpoint_auth_method,
        }
    }

    /// Headers removed from every request before anything else.
    fn stripped(&self) -> Vec<String> {
        let mut out = self.config.strip_headers.clone();
        if self.config.forward.access_token {
            out.push("authorization".into());
        }
        if let Some(h) = &self.config.forward.id_token_header {
            out.push(h.clone());
        }
        out
    }

    fn present_chunks(&self, req: &Incoming<'_>) -> usize {
        cookie::chunks_present(
            &req.cookies,
            &self.config.cookie.name,
            self.config.cookie.max_chunks,
        )
    }

    /// Decides a request.
    pub fn decide(
        &self,
        req: &Incoming<'_>,
        provider: ProviderState<'_>,
        replay: &mut ReplayGuard,
        entropy: &Entropy,
        now: u64,
    ) -> Decision {
        let path = req.view.path_only();
        if path == self.config.redirect_path {
            return self.callback(req, provider, replay, now);
        }
        if self.config.logout_path.as_deref() == Some(path) {
            return self.logout(req, provider, true);
        }
        if self.config.local_logout_path.as_deref() == Some(path) {
            return self.logout(req, provider, false);
        }
        if self.config.pass_through.iter().any(|m| m.matches(req.view)) {
            return Decision::Continue(Forward {
                remove: self.stripped(),
                ..Forward::default()
            });
        }
        let session = match self.open_session(req) {
            Ok(s) => s,
            Err(why) => return self.login_needed(why, req, provider, entropy, now),
        };
        if now
            >= session
                .started_at
                .saturating_add(self.config.session_max_age.get().as_secs())
        {
            return self.login_needed(NoSession::Expired, req, provider, entropy, now);
        }
        let refresh_at = session
            .expires_at
            .saturating_sub(self.config.refresh_before_expiry.get().as_secs());
        if now >= refresh_at {
            if let (Some(rt), Some(ep)) = (&session.refresh_token, provider.endpoints) {
                let request = self.client().refresh_request(&ep.token, rt);
                return Decision::Refresh { session, request };
            }
            if now >= session.expires_at {
                return self.login_needed(NoSession::Expired, req, provider, entropy, now);
            }
        }
        self.forward(req, &session, Vec::new())
    }

    fn open_session(&self, req: &Incoming<'_>) -> Result<Session, NoSession> {
        let c = &self.config.cookie;
        let sealed = match cookie::reassemble(&req.cookies, &c.name, c.max_chunks) {
            Ok(v) => v,
            Err(ChunkError::Absent) => return Err(NoSession::Absent),
            Err(ChunkError::Incomplete) => return Err(NoSession::Invalid),
        };
        let plain = self
            .keys
            .open(&c.name, &sealed)
            .map_err(|_: OpenError| NoSession::Invalid)?;
        Session::from_json(&plain).ok_or(NoSession::Invalid)
    }

    /// The request continues with `session`'s identity and tokens.
    fn forward(
        &self,
        req: &Incoming<'_>,
        session: &Session,
        response_cookies: Vec<String>,
    ) -> Decision {
        let mut fwd = Forward {
            remove: self.stripped(),
            response_cookies,
            ..Forward::default()
        };
        if self.config.forward.access_token {
            fwd.set.push((
                "authorization".into(),
                format!("Bearer {}", session.access_token),
            ));
        }
        if let Some(h) = &self.config.forward.id_token_header {
            fwd.set.push((h.clone(), session.id_token.clone()));
        }
        // The upstream sees the other cookies, never the sealed session.
        let base = format!("{}.", self.config.cookie.name);
        let others: Vec<String> = req
            .cookies
            .iter()
            .filter(|(n, _)| !n.starts_with(&base) && *n != self.login_cookie)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        fwd.remove.push("cookie".into());
        if !others.is_empty() {
            fwd.set.push(("cookie".into(), others.join("; ")));
        }
        fwd.identity = identity_of(&session.id_token, &self.config.provider_name);
        Decision::Continue(fwd)
    }

    /// No usable session: a browser is sent to log in (GET and HEAD only, so
    /// no request body is lost), a program gets 401.
    fn login_needed(
        &self,
        why: NoSession,
        req: &Incoming<'_>,
        provider: ProviderState<'_>,
        entropy: &Entropy,
        now: u64,
    ) -> Decision {
        let present = self.present_chunks(req);
        let clear = if why == NoSession::Absent {
            Vec::new()
        } else {
            self.writer()
                .clear_chunks(&self.config.cookie.name, present)
        };
        let is_api = self.config.api_clients.iter().any(|m| m.matches(req.view));
        let navigable = matches!(req.view.method.as_str(), "GET" | "HEAD");
        if is_api || !navigable {
            let mut d = Denial::new(401, why.code(), why.message()).with_header(
                "www-authenticate",
                format!("Bearer realm=\"{}\"", self.config.client_id),
            );
            for c in clear {
                d = d.with_header("set-cookie", c);
            }
            return Decision::Respond(d);
        }
        let Some(ep) = provider.endpoints else {
            return Decision::Respond(unavailable());
        };
        let login = LoginState::new(
            entropy,
            &safe_return_to(&req.view.path),
            &self.redirect_uri(req.view),
            now,
        );
        let sealed = self.keys.seal(
            &self.login_cookie,
            &serde_json::to_vec(&login).unwrap_or_default(),
            &entropy.seal_nonce(),
        );
        let url = login.authorization_url(
            &ep.authorization,
            &self.config.client_id,
            &self.config.scopes,
        );
        let mut d = Denial::new(302, "oidc_login_redirect", why.message())
            .with_header("location", url)
            .with_header("cache-control", "no-store")
            .with_header(
                "set-cookie",
                self.writer().set_login(
                    &self.login_cookie,
                    &sealed,
                    self.config.login_timeout.get().as_secs(),
                ),
            );
        for c in clear {
            d = d.with_header("set-cookie", c);
        }
        Decision::Respond(d)
    }

    fn redirect_uri(&self, view: &RequestView) -> String {
        if let Some(u) = &self.config.redirect_uri {
            return u.clone();
        }
        let scheme = if view.scheme.is_empty() {
            "https"
        } else {
            view.scheme.as_str()
        };
        format!("{scheme}://{}{}", view.host, self.config.redirect_path)
    }

    fn callback(
        &self,
        req: &Incoming<'_>,
        provider: ProviderState<'_>,
        replay: &mut ReplayGuard,
        now: u64,
    ) -> Decision {
        let query = req.view.query().unwrap_or("");
        let refuse = |status: u16, code: &'static str, msg: String| {
            Decision::Respond(
                Denial::new(status, code, msg)
                    .with_header("set-cookie", self.writer().clear(&self.login_cookie)),
            )
        };
        if let Some(err) = urlenc::query_param(query, "error") {
            let err: String = err.chars().take(64).collect();
            return refuse(
                401,
                "oidc_provider_error",
                format!("the provider refused the login: {err}"),
            );
        }
        let Some(state) = urlenc::query_param(query, "state") else {
            return refuse(
                400,
                "oidc_state_missing",
                "the callback has no state parameter".into(),
            );
        };
        let Some(sealed) = cookie::find(&req.cookies, &self.login_cookie) else {
            return refuse(
                400,
                "oidc_login_state_missing",
                "no login in progress in this browser (the callback was replayed, or the login cookie expired or was blocked)".into(),
            );
        };
        let login = match self
            .keys
            .open(&self.login_cookie, sealed)
            .ok()
            .and_then(|p| serde_json::from_slice::<LoginState>(&p).ok())
        {
            Some(l) => l,
            None => {
                return refuse(
                    400,
                    "oidc_login_state_invalid",
                    "the login cookie is invalid (tampered or forged)".into(),
                )
            }
        };
        if login.state != state {
            return refuse(
                400,
                "oidc_state_mismatch",
                "the callback's state is not the one of this browser's login".into(),
            );
        }
        let timeout = self.config.login_timeout.get().as_secs();
        if now >= login.started_at.saturating_add(timeout) {
            return refuse(
                400,
                "oidc_login_expired",
                "the login took too long; start again".into(),
            );
        }
        if !replay.consume(&state, login.started_at.saturating_add(timeout), now) {
            return refuse(
                400,
                "oidc_state_replayed",
                "this login's callback was already used".into(),
            );
        }
        let Some(code) = urlenc::query_param(query, "code") else {
            return refuse(
                400,
                "oidc_code_missing",
                "the callback has no code parameter".into(),
            );
        };
        let Some(ep) = provider.endpoints else {
            return Decision::Respond(unavailable());
        };
        let request =
            self.client()
                .code_request(&ep.token, &code, &login.redirect_uri, &login.code_verifier);
        Decision::Exchange { login, request }
    }

    /// Finishes a login with the token endpoint's answer: validates the ID
    /// token (`Err` with the error when fresh keys may help), seals the
    /// session and redirects to where the login started.
    pub fn complete_login(
        &self,
        req: &Incoming<'_>,
        login: &LoginState,
        tokens: Result<TokenResponse, ExchangeError>,
        keys: Option<&KeySet>,
        entropy: &Entropy,
        now: u64,
    ) -> Result<Denial, IdTokenError> {
        let clear_login = self.writer().clear(&self.login_cookie);
        let tokens = match tokens {
            Ok(t) => t,
            Err(e) => {
                let (status, code) = match e {
                    ExchangeError::Refused { .. } => (401, "oidc_code_refused"),
                    _ => (502, "oidc_token_exchange_failed"),
                };
                return Ok(
                    Denial::new(status, code, e.to_string()).with_header("set-cookie", clear_login)
                );
            }
        };
        let Some(id_token) = tokens.id_token.clone() else {
            return Ok(Denial::new(
                502,
                "oidc_token_exchange_failed",
                "the token response has no id_token",
            )
            .with_header("set-cookie", clear_login));
        };
        let verified = match idtoken::validate(
            &id_token,
            &self.provider,
            keys,
            Nonce::Required(&login.nonce),
            &self.config.client_id,
            now,
        ) {
            Ok(v) => v,
            Err(e) if e.wants_keys() => return Err(e),
            Err(e) => {
                return Ok(self
                    .id_token_refused(&e)
                    .with_header("set-cookie", clear_login))
            }
        };
        let session = Session {
            expires_at: expiry(&tokens, &verified, now),
            id_token,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            started_at: now,
            nonce: login.nonce.clone(),
        };
        let cookies = match self.session_cookies(req, &session, entropy, now) {
            Ok(c) => c,
            Err(d) => return Ok(d.with_header("set-cookie", clear_login)),
        };
        let mut d = Denial::new(302, "oidc_login_complete", "logged in")
            .with_header("location", safe_return_to(&login.return_to))
            .with_header("cache-control", "no-store")
            .with_header("set-cookie", clear_login);
        for c in cookies {
            d = d.with_header("set-cookie", c);
        }
        Ok(d)
    }

    fn id_token_refused(&self, e: &IdTokenError) -> Denial {
        let code = match e {
            IdTokenError::NonceMismatch => "oidc_nonce_mismatch",
            _ => "oidc_id_token_invalid",
        };
        Denial::new(401, code, e.to_string())
    }

    /// The `Set-Cookie` values that store `session` (chunked), or the
    /// refusal when it needs more chunks than allowed.
    fn session_cookies(
        &self,
        req: &Incoming<'_>,
        session: &Session,
        entropy: &Entropy,
        now: u64,
    ) -> Result<Vec<String>, Denial> {
        let c = &self.config.cookie;
        let sealed = self
            .keys
            .seal(&c.name, &session.to_json(), &entropy.seal_nonce());
        let Some(chunks) = cookie::split(&sealed, c.max_chunks) else {
            return Err(Denial::new(
                500,
                "oidc_session_too_large",
                format!(
                    "the session needs more than cookie.max_chunks = {} cookies; raise it or request fewer claims",
                    c.max_chunks
                ),
            ));
        };
        let left = session
            .started_at
            .saturating_add(self.config.session_max_age.get().as_secs())
            .saturating_sub(now);
        Ok(self
            .writer()
            .set_chunks(&c.name, &chunks, self.present_chunks(req), left.max(1)))
    }

    /// Continues a request after a refresh: new tokens (the refreshed ID
    /// token validated, `Err` when fresh keys may help) and new cookies, or
    /// a new login when the refresh failed.
    #[allow(clippy::too_many_arguments)]
    pub fn complete_refresh(
        &self,
        req: &Incoming<'_>,
        old: &Session,
        tokens: Result<TokenResponse, ExchangeError>,
        provider: ProviderState<'_>,
        entropy: &Entropy,
        now: u64,
    ) -> Result<Decision, IdTokenError> {
        let Ok(tokens) = tokens else {
            return Ok(self.login_needed(NoSession::RefreshFailed, req, provider, entropy, now));
        };
        let (id_token, expires_at) = match &tokens.id_token {
            Some(t) => match idtoken::validate(
                t,
                &self.provider,
                provider.keys,
                Nonce::IfPresent(Some(&old.nonce)),
                &self.config.client_id,
                now,
            ) {
                Ok(v) => (t.clone(), expiry(&tokens, &v, now)),
                Err(e) if e.wants_keys() => return Err(e),
                Err(e) => return Ok(Decision::Respond(self.id_token_refused(&e))),
            },
            None => (
                old.id_token.clone(),
                now.saturating_add(tokens.expires_in.unwrap_or(60)),
            ),
        };
        let session = Session {
            id_token,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token.or_else(|| old.refresh_token.clone()),
            expires_at,
            started_at: old.started_at,
            nonce: old.nonce.clone(),
        };
        match self.session_cookies(req, &session, entropy, now) {
            Ok(cookies) => Ok(self.forward(req, &session, cookies)),
            Err(d) => Ok(Decision::Respond(d)),
        }
    }

    /// Logout: the session cookies are cleared; RP-initiated logout then
    /// sends the browser to the provider's `end_session_endpoint` (with the
    /// ID token as hint), local logout to `post_logout_redirect_uri` or `/`.
    fn logout(
        &self,
        req: &Incoming<'_>,
        provider: ProviderState<'_>,
        at_provider: bool,
    ) -> Decision {
        let session = self.open_session(req).ok();
        let after = self
            .config
            .post_logout_redirect_uri
            .clone()
            .unwrap_or_else(|| "/".into());
        let end_session = provider.endpoints.and_then(|e| e.end_session.as_deref());
        let location = match (at_provider, end_session) {
            (true, Some(endpoint)) => {
                let mut params = vec![("client_id", self.config.client_id.as_str())];
                if let Some(s) = &session {
                    params.push(("id_token_hint", s.id_token.as_str()));
                }
                if let Some(uri) = &self.config.post_logout_redirect_uri {
                    params.push(("post_logout_redirect_uri", uri.as_str()));
                }
                let sep = if endpoint.contains('?') { '&' } else { '?' };
                format!("{endpoint}{sep}{}", urlenc::form(&params))
            }
            _ => after,
        };
        let mut d = Denial::new(302, "oidc_logout", "logged out")
            .with_header("location", location)
            .with_header("cache-control", "no-store");
        for c in self
            .writer()
            .clear_chunks(&self.config.cookie.name, self.present_chunks(req))
        {
            d = d.with_header("set-cookie", c);
        }
        Decision::Respond(d)
    }

    /// The jwt-auth provider that validates ID tokens.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }
}

fn unavailable() -> Denial {
    Denial::new(
        503,
        "oidc_provider_unavailable",
        "the identity provider's configuration is not loaded yet; retry shortly",
    )
    .with_header("retry-after", "1")
}

/// When the access token expires: `expires_in`, else the ID token's `exp`.
fn expiry(tokens: &TokenResponse, id: &VerifiedToken, now: u64) -> u64 {
    match (tokens.expires_in, id.expires_at) {
        (Some(s), _) => now.saturating_add(s),
        (None, Some(e)) => e,
        (None, None) => now.saturating_add(300),
    }
}

/// The identity of a session's ID token (validated when it was received,
/// and since kept sealed), in the shape jwt-auth hands off.
pub fn identity_of(id_token: &str, provider_name: &str) -> Option<VerifiedIdentity> {
    let t = jwt_auth::token::parse(id_token).ok()?;
    let claims = t.payload;
    let str_claim = |n: &str| claims.get(n).and_then(|v| v.as_str()).map(str::to_string);
    let audiences = match claims.get("aud") {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .take(64)
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    Some(VerifiedIdentity {
        provider: provider_name.to_string(),
        issuer: str_claim("iss").unwrap_or_default(),
        subject: str_claim("sub"),
        audiences,
        method: Some(METHOD_OIDC.into()),
        consumer: None,
        claims,
    })
}
