//! Proxy-Wasm glue: discovery and key fetches from the root context, the
//! request view to the policy, the token endpoint calls a decision asks for
//! (`dispatch_http_call` to the provider cluster, bounded bodies), and the
//! decision's header changes, identity hand-off and local replies. Nothing
//! here unwraps.

use crate::exchange::{self, TokenRequest, MAX_TOKEN_RESPONSE_BYTES};
use crate::login::{Entropy, LoginState, ENTROPY_BYTES};
use crate::policy::{Decision, Forward, Incoming, Oidc, ProviderState, REPLY_CODES};
use crate::provider::ProviderFetch;
use crate::replay::ReplayGuard;
use crate::session::Session;
use jwt_auth::jwk::MAX_JWKS_BYTES;
use jwt_auth::jwks::{FetchKind, FetchRequest};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use sdk_ext::clock::Clock;
use sdk_ext::host::{self, Counter, FetchTicks, HostClock, ViewNeeds};
use sdk_ext::identity::IDENTITY_PROPERTY;
use sdk_ext::metrics::metric_name;
use sdk_ext::{Denial, RequestView};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(OidcRoot::default()) });
}}

const PLUGIN: &str = "oidc";
/// Most root fetches tracked at once.
const MAX_PENDING: usize = 16;

struct Metrics {
    allowed: Counter,
    denied: Counter,
    logins: Counter,
    refreshed: Counter,
    fetch_failed: Counter,
    per_code: Vec<(&'static str, Counter)>,
}

struct Shared {
    oidc: Oidc,
    fetch: ProviderFetch,
    replay: ReplayGuard,
    pending: HashMap<u32, FetchKind>,
    metrics: Metrics,
}

type SharedRc = Rc<RefCell<Shared>>;

fn now_ms() -> u64 {
    HostClock.unix_millis()
}

/// Random bytes from the host (WASI `random_get`).
fn entropy() -> Option<Entropy> {
    let mut buf = [0u8; ENTROPY_BYTES];
    getrandom::fill(&mut buf).ok()?;
    Some(Entropy(buf))
}

fn dispatch_token(cluster: &str, req: &TokenRequest, timeout: Duration) -> Option<u32> {
    let mut headers = vec![
        (":method", "POST"),
        (":path", req.path.as_str()),
        (":authority", req.authority.as_str()),
    ];
    headers.extend(req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    host::dispatch_http_call(
        PLUGIN,
        "token request",
        cluster,
        headers,
        Some(req.body.as_bytes()),
        timeout,
    )
}

/// Applies a root fetch response; returns the follow-up fetch.
fn apply_fetch(s: &mut Shared, kind: FetchKind, body_size: usize) -> Option<FetchRequest> {
    let now = now_ms();
    match kind {
        FetchKind::Discovery => {
            let (status, body) =
                host::http_call_response(body_size, crate::discovery::MAX_DISCOVERY_BYTES);
            match s.fetch.on_discovery(now, status, &body) {
                Ok(next) => {
                    host::log(LogLevel::Info, &format!("{PLUGIN}: provider discovered"));
                    next
                }
                Err(e) => {
                    s.metrics.fetch_failed.inc();
                    host::log(
                        LogLevel::Warn,
                        &format!("{PLUGIN}: discovery failed: {e}; retrying"),
                    );
                    None
                }
            }
        }
        FetchKind::Jwks => {
            let (status, body) = host::http_call_response(body_size, MAX_JWKS_BYTES);
            match s.fetch.on_keys(now, status, &body) {
                Ok(()) => host::log(LogLevel::Info, &format!("{PLUGIN}: signing keys fetched")),
                Err(e) => {
                    s.metrics.fetch_failed.inc();
                    host::log(LogLevel::Warn, &format!("{PLUGIN}: key fetch failed: {e}"));
                }
            }
            None
        }
    }
}

fn dispatch_tracked(s: &mut Shared, req: &FetchRequest) {
    if s.pending.len() >= MAX_PENDING {
        return;
    }
    match req.dispatch(PLUGIN) {
        Some(t) => {
            s.pending.insert(t, req.kind);
        }
        None => {
            let now = now_ms();
            let _ = match req.kind {
                FetchKind::Discovery => s
                    .fetch
                    .on_discovery(now, None, b"")
                    .map(|_| ())
                    .map_err(|_| ()),
                FetchKind::Jwks => s.fetch.on_keys(now, None, b"").map_err(|_| ()),
            };
        }
    }
}

#[derive(Default)]
struct OidcRoot {
    shared: Option<SharedRc>,
    ticks: FetchTicks,
}

impl Context for OidcRoot {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let mut s = shared.borrow_mut();
        let Some(kind) = s.pending.remove(&token) else {
            return;
        };
        if let Some(next) = apply_fetch(&mut s, kind, body_size) {
            dispatch_tracked(&mut s, &next);
        }
    }
}

impl RootContext for OidcRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let oidc = match Oidc::from_json(&bytes) {
            Ok(o) => o,
            Err(e) => {
                host::log_config_error(PLUGIN, &e);
                self.shared = None;
                return false;
            }
        };
        let c = |parts: &[&str]| Counter::define(&metric_name(PLUGIN, parts));
        let metrics = Metrics {
            allowed: c(&["allowed"]),
            denied: c(&["denied"]),
            logins: c(&["logins"]),
            refreshed: c(&["refreshed"]),
            fetch_failed: c(&["provider_fetch_failed"]),
            per_code: REPLY_CODES
                .iter()
                .map(|code| (*code, c(&["reply", code])))
                .collect(),
        };
        let cfg = oidc.config();
        let fetch = ProviderFetch::new(
            &cfg.issuer,
            oidc.issuer_url().clone(),
            &cfg.provider_cluster,
            cfg.timeout.get(),
            oidc.provider().clone(),
        );
        host::log_configured(
            PLUGIN,
            env!("CARGO_PKG_VERSION"),
            &format!("issuer {}, client {}", cfg.issuer, cfg.client_id),
        );
        self.shared = Some(Rc::new(RefCell::new(Shared {
            oidc,
            fetch,
            replay: ReplayGuard::default(),
            pending: HashMap::new(),
            metrics,
        })));
        self.ticks = FetchTicks::start();
        true
    }

    fn on_tick(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let mut s = shared.borrow_mut();
        if let Some(req) = s.fetch.due(now_ms()) {
            dispatch_tracked(&mut s, &req);
        }
        self.ticks.settle(s.fetch.ready());
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(OidcFilter {
            shared: self.shared.clone(),
            view: RequestView::default(),
            waiting: None,
            response_cookies: Vec::new(),
        }))
    }
}

/// What a paused stream waits for.
enum Waiting {
    /// The code exchange of a login.
    Login { token: u32, login: LoginState },
    /// A refresh.
    Refresh { token: u32, session: Session },
    /// Fresh keys, before validating `tokens` again.
    Keys {
        token: u32,
        tokens: exchange::TokenResponse,
        then: Box<Waiting>,
    },
}

impl Waiting {
    fn token(&self) -> u32 {
        match self {
            Waiting::Login { token, .. }
            | Waiting::Refresh { token, .. }
            | Waiting::Keys { token, .. } => *token,
        }
    }
}

struct OidcFilter {
    /// `None` only for a plugin whose configuration was refused; its
    /// streams are refused (fail closed).
    shared: Option<SharedRc>,
    view: RequestView,
    waiting: Option<Waiting>,
    response_cookies: Vec<String>,
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

impl OidcFilter {
    fn reply(&self, s: &Shared, d: &Denial) {
        if let Some((_, c)) = s.metrics.per_code.iter().find(|(code, _)| *code == d.code) {
            c.inc();
        }
        let body = if d.status >= 400 {
            s.metrics.denied.inc();
            let line = serde_json::json!({
                "plugin": PLUGIN, "status": d.status, "code": d.code, "reason": d.message,
                "method": self.view.method, "path": self.view.path_only(), "request_id": self.view.request_id,
            });
            host::log(LogLevel::Info, &line.to_string());
            d.body(&self.view.request_id)
        } else {
            if d.code == "oidc_login_complete" {
                s.metrics.logins.inc();
            }
            Vec::new()
        };
        let _ =
            hostcalls::send_http_response(u32::from(d.status), d.response_headers(), Some(&body));
    }

    fn forward(&mut self, s: &Shared, f: Forward) {
        for name in &f.remove {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
        }
        for (name, value) in &f.set {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
        }
        if let Some(id) = f.identity {
            if let Err(status) =
                hostcalls::set_property(vec![IDENTITY_PROPERTY], Some(&id.to_json()))
            {
                host::log(
                    LogLevel::Warn,
                    &format!("{PLUGIN}: cannot hand the identity to later filters: {status:?}"),
                );
            }
        }
        self.response_cookies = f.response_cookies;
        s.metrics.allowed.inc();
    }

    /// Acts on a decision: true when the request continues now.
    fn act(&mut self, s: &mut Shared, decision: Decision) -> bool {
        let cluster = s.oidc.config().provider_cluster.clone();
        let timeout = s.oidc.config().timeout.get();
        match decision {
            Decision::Continue(f) => {
                self.forward(s, f);
                true
            }
            Decision::Respond(d) => {
                self.reply(s, &d);
                false
            }
            Decision::Exchange { login, request } => {
                match dispatch_token(&cluster, &request, timeout) {
                    Some(token) => {
                        self.waiting = Some(Waiting::Login { token, login });
                        false
                    }
                    None => {
                        self.reply(s, &token_unreachable());
                        false
                    }
                }
            }
            Decision::Refresh { session, request } => {
                match dispatch_token(&cluster, &request, timeout) {
                    Some(token) => {
                        self.waiting = Some(Waiting::Refresh { token, session });
                        false
                    }
                    None => {
                        self.reply(s, &token_unreachable());
                        false
                    }
                }
            }
        }
    }

    /// Finishes a paused stream with token-endpoint `tokens`; may pause
    /// again for a key fetch (once).
    fn finish(
        &mut self,
        s: &mut Shared,
        then: Waiting,
        tokens: Result<exchange::TokenResponse, exchange::ExchangeError>,
        may_fetch_keys: bool,
    ) -> bool {
        let Some(entropy) = entropy() else {
            self.reply(s, &no_randomness());
            return false;
        };
        let now = now_secs();
        let req = Incoming::new(&self.view);
        let keys_result = match &then {
            Waiting::Login { login, .. } => s
                .oidc
                .complete_login(&req, login, tokens.clone(), s.fetch.keys(), &entropy, now)
                .map(Decision::Respond),
            Waiting::Refresh { session, .. } => {
                let provider = ProviderState {
                    endpoints: s.fetch.endpoints(),
                    keys: s.fetch.keys(),
                };
                let d =
                    s.oidc
                        .complete_refresh(&req, session, tokens.clone(), provider, &entropy, now);
                if matches!(d, Ok(Decision::Continue(_))) {
                    s.metrics.refreshed.inc();
                }
                d
            }
            Waiting::Keys { .. } => return false,
        };
        match keys_result {
            Ok(decision) => self.act(s, decision),
            Err(e) => {
                if may_fetch_keys {
                    if let (Some(req), Ok(t)) = (s.fetch.refetch_keys(now_ms()), tokens) {
                        if let Some(token) = req.dispatch(PLUGIN) {
                            self.waiting = Some(Waiting::Keys {
                                token,
                                tokens: t,
                                then: Box::new(then),
                            });
                            return false;
                        }
                    }
                }
                let d = Denial::new(401, "oidc_id_token_invalid", e.to_string());
                self.reply(s, &d);
                false
            }
        }
    }
}

fn token_unreachable() -> Denial {
    Denial::new(
        502,
        "oidc_token_exchange_failed",
        "the token endpoint cannot be reached",
    )
}

fn no_randomness() -> Denial {
    Denial::new(
        503,
        "oidc_provider_unavailable",
        "the host gave no random bytes",
    )
}

impl Context for OidcFilter {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if self.waiting.as_ref().map(Waiting::token) != Some(token) {
            return;
        }
        let Some(waiting) = self.waiting.take() else {
            return;
        };
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let mut s = shared.borrow_mut();
        let cont = match waiting {
            Waiting::Keys { tokens, then, .. } => {
                let _ = apply_fetch(&mut s, FetchKind::Jwks, body_size);
                self.finish(&mut s, *then, Ok(tokens), false)
            }
            then => {
                let (status, body) = host::http_call_response(body_size, MAX_TOKEN_RESPONSE_BYTES);
                let tokens = exchange::parse_response(status, &body);
                if let Err(e) = &tokens {
                    host::log(LogLevel::Warn, &format!("{PLUGIN}: {e}"));
                }
                self.finish(&mut s, then, tokens, true)
            }
        };
        if cont {
            let _ = hostcalls::resume_http_request();
        }
    }
}

impl HttpContext for OidcFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.view = host::request_view_with(ViewNeeds::HEADERS);
        let Some(shared) = self.shared.clone() else {
            let d = Denial::new(
                500,
                "oidc_provider_unavailable",
                "the oidc filter is not configured",
            );
            let _ = hostcalls::send_http_response(
                500,
                d.response_headers(),
                Some(&d.body(&self.view.request_id)),
            );
            return Action::Pause;
        };
        let Some(entropy) = entropy() else {
            let s = shared.borrow();
            self.reply(&s, &no_randomness());
            return Action::Pause;
        };
        let mut s = shared.borrow_mut();
        let s = &mut *s;
        let decision = {
            let req = Incoming::new(&self.view);
            let provider = ProviderState {
                endpoints: s.fetch.endpoints(),
                keys: s.fetch.keys(),
            };
            s.oidc
                .decide(&req, provider, &mut s.replay, &entropy, now_secs())
        };
        if self.act(s, decision) {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for c in std::mem::take(&mut self.response_cookies) {
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, "set-cookie", &c);
        }
        Action::Continue
    }
}
