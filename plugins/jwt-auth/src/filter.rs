//! Proxy-Wasm glue: fetch remote keys, read the request view, ask the
//! policy, act. Every host call that can fail is checked; nothing here
//! unwraps.

use crate::cache::Caches;
use crate::jwk::MAX_JWKS_BYTES;
use crate::jwks::{FetchKind, FetchRequest, RemoteKeys};
use crate::policy::{Decision, HeaderChanges, JwtAuth, Method, ProviderKeys, DENY_CODES};
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

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(JwtRoot::default()) });
}}

/// Most outstanding key fetches tracked at once.
const MAX_PENDING: usize = 64;
/// Most streams paused waiting for a fetch in flight (more are refused).
const MAX_WAITERS: usize = 1024;

const PLUGIN: &str = "jwt-auth";

struct ProviderMetrics {
    allowed: Counter,
    denied: Counter,
    jwks_fetched: Counter,
    jwks_failed: Counter,
}

/// Allowed / denied counters of one method or one consumer.
struct Outcomes {
    allowed: Counter,
    denied: Counter,
}

impl Outcomes {
    fn define(parts: &[&str]) -> Outcomes {
        let c = |what: &str| {
            let mut p = parts.to_vec();
            p.push(what);
            Counter::define(&metric_name(PLUGIN, &p))
        };
        Outcomes {
            allowed: c("allowed"),
            denied: c("denied"),
        }
    }
}

struct Metrics {
    allowed: Counter,
    denied: Counter,
    per_code: Vec<(&'static str, Counter)>,
    per_provider: Vec<ProviderMetrics>,
    /// Indexed like [`Method::ALL`].
    per_method: Vec<Outcomes>,
    per_consumer: Vec<Outcomes>,
}

impl Metrics {
    fn method(&self, m: Method) -> Option<&Outcomes> {
        let i = Method::ALL.iter().position(|x| *x == m)?;
        self.per_method.get(i)
    }
}

/// Per-VM state shared by the root and the streams.
struct Shared {
    auth: JwtAuth,
    keys: Vec<ProviderKeys>,
    remote: Vec<Option<RemoteKeys>>,
    cache: Caches,
    metrics: Metrics,
    /// Outstanding fetches dispatched by the root: token → (provider, kind).
    pending: HashMap<u32, (usize, FetchKind)>,
    /// Streams paused until a fetch in flight ends: (context id, request).
    waiters: Vec<(u32, RequestView)>,
}

type SharedRc = Rc<RefCell<Shared>>;

fn now_ms() -> u64 {
    HostClock.unix_millis()
}

/// Reads the response of a key fetch (bounded) and applies it to provider
/// `i`. Returns a follow-up request to dispatch (after discovery).
fn apply_response(
    shared: &mut Shared,
    i: usize,
    kind: FetchKind,
    body_size: usize,
) -> Option<FetchRequest> {
    let (status, body) = host::http_call_response(body_size, MAX_JWKS_BYTES);
    let now = now_ms();
    let name = shared
        .auth
        .providers()
        .get(i)
        .map(|(n, _)| n.as_str().to_string())
        .unwrap_or_default();
    let remote = shared.remote.get_mut(i)?.as_mut()?;
    let result = remote.on_response(kind, now, status, &body);
    let keys = remote.keys.clone();
    if let Some(slot) = shared.keys.get_mut(i) {
        *slot = keys;
    }
    let m = shared.metrics.per_provider.get(i);
    match result {
        Ok(next) => {
            if next.is_none() {
                if let Some(m) = m {
                    m.jwks_fetched.inc();
                }
                host::log(
                    LogLevel::Info,
                    &format!("{PLUGIN}: provider {name:?}: signing keys fetched"),
                );
            }
            next
        }
        Err(e) => {
            if let Some(m) = m {
                m.jwks_failed.inc();
            }
            let kept = if shared.keys.get(i).is_some_and(|k| k.set.is_some()) {
                "the last good keys stay in use"
            } else {
                "no keys yet: its tokens are refused until a fetch succeeds"
            };
            host::log(
                LogLevel::Warn,
                &format!("{PLUGIN}: provider {name:?}: key fetch failed: {e}; {kept}"),
            );
            None
        }
    }
}

#[derive(Default)]
struct JwtRoot {
    shared: Option<SharedRc>,
    ticks: FetchTicks,
}

impl Context for JwtRoot {
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
        let Some((i, kind)) = s.pending.remove(&token) else {
            return;
        };
        match apply_response(&mut s, i, kind, body_size) {
            Some(next) => dispatch_tracked(&mut s, i, &next),
            None => release_waiters(&mut s),
        }
    }
}

fn dispatch_tracked(s: &mut Shared, i: usize, req: &FetchRequest) {
    if s.pending.len() >= MAX_PENDING {
        return;
    }
    match req.dispatch(PLUGIN) {
        Some(token) => {
            s.pending.insert(token, (i, req.kind));
        }
        None => {
            let now = now_ms();
            if let Some(Some(r)) = s.remote.get_mut(i) {
                let _ = r.on_response(req.kind, now, None, b"");
            }
        }
    }
}

impl RootContext for JwtRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let auth = match JwtAuth::from_json(&bytes) {
            Ok(a) => a,
            Err(e) => {
                host::log_config_error(PLUGIN, &e);
                self.shared = None;
                return false;
            }
        };
        let per_provider = auth
            .providers()
            .iter()
            .map(|(n, _)| {
                let c = |what: &str| {
                    Counter::define(&metric_name(PLUGIN, &["provider", n.as_str(), what]))
                };
                ProviderMetrics {
                    allowed: c("allowed"),
                    denied: c("denied"),
                    jwks_fetched: c("jwks_fetched"),
                    jwks_failed: c("jwks_fetch_failed"),
                }
            })
            .collect();
        let metrics = Metrics {
            allowed: Counter::define(&metric_name(PLUGIN, &["allowed"])),
            denied: Counter::define(&metric_name(PLUGIN, &["denied"])),
            per_code: DENY_CODES
                .iter()
                .map(|c| (*c, Counter::define(&metric_name(PLUGIN, &["denied", c]))))
                .collect(),
            per_provider,
            per_method: Method::ALL
                .iter()
                .map(|m| Outcomes::define(&["method", m.as_str()]))
                .collect(),
            per_consumer: auth
                .consumers()
                .iter()
                .map(|(n, _)| Outcomes::define(&["consumer", n.as_str()]))
                .collect(),
        };
        let remote: Vec<Option<RemoteKeys>> = auth
            .providers()
            .iter()
            .map(|(_, p)| RemoteKeys::new(p))
            .collect();
        let remote_count = remote.iter().filter(|r| r.is_some()).count();
        host::log_configured(
            PLUGIN,
            env!("CARGO_PKG_VERSION"),
            &format!(
                "{} providers ({remote_count} with remote keys), {} consumers",
                auth.providers().len(),
                auth.consumers().len()
            ),
        );
        self.shared = Some(Rc::new(RefCell::new(Shared {
            keys: auth.initial_keys(),
            cache: auth.new_cache(),
            auth,
            remote,
            metrics,
            pending: HashMap::new(),
            waiters: Vec::new(),
        })));
        self.ticks = if remote_count == 0 {
            FetchTicks::none()
        } else {
            FetchTicks::start()
        };
        true
    }

    fn on_tick(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let mut s = shared.borrow_mut();
        let now = now_ms();
        for i in 0..s.remote.len() {
            let due = match s.remote.get_mut(i) {
                Some(Some(r)) => r.due(now),
                _ => None,
            };
            if let Some(req) = due {
                dispatch_tracked(&mut s, i, &req);
            }
        }
        if !s.waiters.is_empty() && !s.remote.iter().flatten().any(|r| r.in_flight(now)) {
            release_waiters(&mut s);
        }
        let all_loaded = s
            .remote
            .iter()
            .zip(&s.keys)
            .all(|(r, k)| r.is_none() || k.set.is_some());
        self.ticks.settle(all_loaded);
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(JwtFilter {
            shared: self.shared.clone(),
            context_id,
            view: RequestView::default(),
            waiting: None,
        }))
    }
}

struct JwtFilter {
    /// `None` only if the host creates streams for a plugin whose
    /// configuration was refused; such streams are denied (fail closed).
    shared: Option<SharedRc>,
    context_id: u32,
    view: RequestView,
    /// A key refetch this stream is paused on: (token, provider, kind).
    waiting: Option<(u32, usize, FetchKind)>,
}

impl JwtFilter {
    /// Decides and acts. `may_refetch`: a request that found no keys, or an
    /// unknown `kid`, may pause for a key fetch (its own, or one in flight).
    fn run(&mut self, may_refetch: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            send_response(&JwtAuth::unconfigured(), &self.view.request_id);
            return Action::Pause;
        };
        let mut s = shared.borrow_mut();
        let s = &mut *s;
        let decision = s
            .auth
            .decide_with_clock(&self.view, &s.keys, &mut s.cache, &HostClock);
        if let (true, Decision::Deny { refetch, .. }) = (may_refetch, &decision) {
            let now_ms = now_ms();
            for &i in refetch {
                let Some(Some(r)) = s.remote.get_mut(i) else {
                    continue;
                };
                let missing = r.keys.set.is_none();
                if missing && r.in_flight(now_ms) {
                    // The start-up fetch is on its way: wait for it.
                    if s.waiters.len() < MAX_WAITERS {
                        s.waiters.push((self.context_id, self.view.clone()));
                        return Action::Pause;
                    }
                    continue;
                }
                let req = if missing {
                    r.fetch_missing_keys(now_ms)
                } else {
                    r.refetch_for_unknown_kid(now_ms)
                };
                let Some(req) = req else { continue };
                match req.dispatch(PLUGIN) {
                    Some(token) => {
                        self.waiting = Some((token, i, req.kind));
                        return Action::Pause;
                    }
                    None => {
                        let _ = r.on_response(req.kind, now_ms, None, b"");
                    }
                }
            }
        }
        if act(s, &self.view, decision) {
            Action::Continue
        } else {
            Action::Pause
        }
    }
}

/// Acts on a decision for the stream whose context is current: applies the
/// header changes and the identity (true: let the request continue), or
/// counts, logs and sends the denial (false).
fn act(s: &Shared, view: &RequestView, decision: Decision) -> bool {
    match decision {
        Decision::Allow {
            identity,
            headers,
            verified,
            consumer,
        } => {
            apply_headers(&headers);
            if let Some(id) = identity {
                if let Err(status) =
                    hostcalls::set_property(vec![IDENTITY_PROPERTY], Some(&id.to_json()))
                {
                    host::log(
                        LogLevel::Warn,
                        &format!("{PLUGIN}: cannot hand the identity to later filters: {status:?}"),
                    );
                }
            }
            s.metrics.allowed.inc();
            if !verified.is_empty() {
                if let Some(m) = s.metrics.method(Method::Jwt) {
                    m.allowed.inc();
                }
            }
            for i in verified {
                if let Some(m) = s.metrics.per_provider.get(i) {
                    m.allowed.inc();
                }
            }
            if let Some((method, c)) = consumer {
                if let Some(m) = s.metrics.method(method) {
                    m.allowed.inc();
                }
                if let Some(m) = s.metrics.per_consumer.get(c) {
                    m.allowed.inc();
                }
            }
            true
        }
        Decision::Deny {
            denial,
            provider,
            reason,
            method,
            consumer,
            ..
        } => {
            s.metrics.denied.inc();
            if let Some((_, c)) = s
                .metrics
                .per_code
                .iter()
                .find(|(code, _)| *code == denial.code)
            {
                c.inc();
            }
            if let Some(m) = provider.and_then(|i| s.metrics.per_provider.get(i)) {
                m.denied.inc();
            }
            if let Some(m) = method.and_then(|m| s.metrics.method(m)) {
                m.denied.inc();
            }
            if let Some(m) = consumer.and_then(|i| s.metrics.per_consumer.get(i)) {
                m.denied.inc();
            }
            let record = s
                .auth
                .denial_record(&denial, provider, method, consumer, &reason, view);
            if let Ok(line) = serde_json::to_string(&record) {
                host::log(LogLevel::Info, &line);
            }
            send_response(&denial, &view.request_id);
            false
        }
    }
}

/// Sends a deny response on the current stream.
fn send_response(denial: &Denial, request_id: &str) {
    let body = denial.body(request_id);
    let _ = hostcalls::send_http_response(
        u32::from(denial.status),
        denial.response_headers(),
        Some(&body),
    );
}

/// Decides again every stream that waits for a fetch in flight, now that a
/// fetch has ended (keys or not): each continues or is denied.
fn release_waiters(s: &mut Shared) {
    let waiters = std::mem::take(&mut s.waiters);
    for (context_id, view) in waiters {
        if hostcalls::set_effective_context(context_id).is_err() {
            continue; // the stream is gone
        }
        let decision = s
            .auth
            .decide_with_clock(&view, &s.keys, &mut s.cache, &HostClock);
        if act(s, &view, decision) {
            let _ = hostcalls::resume_http_request();
        }
    }
}

fn apply_headers(changes: &HeaderChanges) {
    for name in &changes.remove {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
    }
    for (name, value) in &changes.set {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
    }
    if let Some(path) = &changes.path {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, ":path", Some(path));
    }
}

impl Context for JwtFilter {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some((expected, i, kind)) = self.waiting else {
            return;
        };
        if expected != token {
            return;
        }
        self.waiting = None;
        let next = match &self.shared {
            Some(shared) => {
                let mut s = shared.borrow_mut();
                let next = apply_response(&mut s, i, kind, body_size);
                if next.is_none() {
                    release_waiters(&mut s);
                    // Back to this stream's context for what follows.
                    let _ = hostcalls::set_effective_context(self.context_id);
                }
                next
            }
            None => None,
        };
        if let Some(next) = next {
            // Discovery done: wait once more, for the key set itself.
            if let Some(t) = next.dispatch(PLUGIN) {
                self.waiting = Some((t, i, next.kind));
                return;
            }
        }
        if let Action::Continue = self.run(false) {
            let _ = hostcalls::resume_http_request();
        }
    }
}

impl HttpContext for JwtFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.view = host::request_view_with(ViewNeeds::HEADERS);
        self.run(true)
    }
}
