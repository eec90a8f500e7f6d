//! Proxy-Wasm glue: shared data as the bucket store, the host clock, and the
//! request/response hooks.

use crate::config::FailureMode;
use crate::policy::{Decision, RateLimiter};
use crate::rls;
use crate::table::{SharedStore, StoreError, TableError};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, Status};
use sdk_ext::host::{self, Counter, HostClock, ViewNeeds};
use sdk_ext::metrics::metric_name;
use sdk_ext::Clock;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(RateLimitRoot::default()) });
}}

/// Largest RLS response read; real ones are a few hundred bytes.
const MAX_RLS_RESPONSE: usize = 64 * 1024;

/// Proxy-Wasm shared data (one store per VM id, shared by all workers).
struct HostStore;

fn status_error(s: Status) -> StoreError {
    match s {
        Status::CasMismatch => StoreError::CasMismatch,
        other => StoreError::Host(other as u32),
    }
}

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        hostcalls::get_shared_data(key).map_err(status_error)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(status_error)
    }
}

/// Counters of calls to the rate limit service.
struct GlobalMetrics {
    calls: Counter,
    failures_denied: Counter,
    failures_allowed: Counter,
}

struct RuleMetrics {
    allowed: Counter,
    limited: Counter,
    shadow_limited: Counter,
    overflow: Counter,
    errors: Counter,
}

struct Loaded {
    limiter: RateLimiter,
    rules: Vec<RuleMetrics>,
    global: GlobalMetrics,
    /// What the decision reads of the request (worked out once, at
    /// configure time).
    needs: ViewNeeds,
    /// Whether some rule keys on the verified identity.
    needs_identity: bool,
}

#[derive(Default)]
struct RateLimitRoot {
    loaded: Option<Rc<Loaded>>,
}

impl Context for RateLimitRoot {}

impl RootContext for RateLimitRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let limiter = match RateLimiter::from_json(&bytes) {
            Ok(l) => l,
            Err(e) => {
                host::log_config_error("rate-limit", &e);
                self.loaded = None;
                return false;
            }
        };
        if let Err(e) = limiter.create_slots(&HostStore) {
            host::log(
                LogLevel::Error,
                &format!("rate-limit: cannot create the bucket table in shared data: {e:?}"),
            );
            self.loaded = None;
            return false;
        }
        let rules = limiter
            .rules()
            .iter()
            .map(|r| {
                let m = |what: &str| {
                    Counter::define(&metric_name("ratelimit", &["rule", r.name.as_str(), what]))
                };
                RuleMetrics {
                    allowed: m("allowed"),
                    limited: m("limited"),
                    shadow_limited: m("shadow_limited"),
                    overflow: m("key_overflow"),
                    errors: m("errors"),
                }
            })
            .collect();
        let g = |what: &str| Counter::define(&metric_name("ratelimit", &["global", what]));
        let global = GlobalMetrics {
            calls: g("calls"),
            failures_denied: g("failures_denied"),
            failures_allowed: g("failures_allowed"),
        };
        host::log_configured(
            "rate-limit",
            env!("CARGO_PKG_VERSION"),
            &format!("configured with {} rules", limiter.rules().len()),
        );
        let needs = ViewNeeds {
            headers: limiter.needs_headers(),
            source: limiter.needs_source(),
            peer: false,
        };
        let needs_identity = limiter.needs_identity();
        self.loaded = Some(Rc::new(Loaded {
            limiter,
            rules,
            global,
            needs,
            needs_identity,
        }));
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RateLimitFilter {
            loaded: self.loaded.clone(),
            response_headers: Vec::new(),
            pending: None,
        }))
    }
}

struct RateLimitFilter {
    loaded: Option<Rc<Loaded>>,
    /// Headers to add to the upstream's response.
    response_headers: Vec<(String, String)>,
    /// A call to the rate limit service in flight.
    pending: Option<PendingCall>,
}

/// What the filter remembers while the rate limit service answers.
struct PendingCall {
    token: u32,
    rules: Vec<usize>,
    request_id: String,
    method: String,
    path: String,
}

fn now_ns() -> u64 {
    HostClock.unix_nanos()
}

fn count(loaded: &Loaded, d: &Decision) {
    for o in &d.outcomes {
        let Some(m) = loaded.rules.get(o.rule) else {
            continue;
        };
        let shadow = loaded.limiter.rules().get(o.rule).is_some_and(|r| r.shadow);
        match &o.checked {
            Ok(c) => {
                if c.overflow {
                    m.overflow.inc();
                }
                match (c.verdict.allowed, shadow) {
                    (true, _) => m.allowed.inc(),
                    (false, true) => m.shadow_limited.inc(),
                    (false, false) => m.limited.inc(),
                }
            }
            Err(TableError::Contention) | Err(TableError::Store(_)) => m.errors.inc(),
        }
    }
}

impl HttpContext for RateLimitFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Unconfigured: the header map, for the denial's request id.
        let needs = self.loaded.as_ref().map_or(ViewNeeds::HEADERS, |l| l.needs);
        let mut view = host::request_view_with(needs);
        let Some(loaded) = self.loaded.clone() else {
            let d = sdk_ext::Denial::new(
                500,
                "rate_limit_unconfigured",
                "the rate-limit filter has no valid configuration",
            );
            host::send_denial(self, &d, &view.request_id);
            return Action::Pause;
        };
        // Unreadable counts as unauthenticated (the shared anonymous
        // bucket), never as a fresh key.
        let identity = if loaded.needs_identity {
            host::verified_identity_or_none("rate-limit")
        } else {
            None
        };
        let decision =
            loaded
                .limiter
                .check_with_identity(&HostStore, &view, identity.as_ref(), now_ns());
        count(&loaded, &decision);
        match loaded.limiter.denial(&decision) {
            Some(denial) => {
                // The decision read only what the rules need; the deny
                // response and log line name the request.
                let named = ViewNeeds {
                    peer: false,
                    ..ViewNeeds::ALL
                };
                host::complete_view(&mut view, needs, named);
                let line = serde_json::json!({
                    "plugin": "rate-limit",
                    "decision": "deny",
                    "status": denial.status,
                    "reason": denial.message,
                    "method": view.method,
                    "path": view.path_only(),
                    "source": view.source_ip().map(|ip| ip.to_string()),
                    "request_id": view.request_id,
                });
                host::log(LogLevel::Info, &line.to_string());
                host::send_denial(self, &denial, &view.request_id);
                Action::Pause
            }
            None => {
                self.response_headers = loaded.limiter.response_headers(&decision);
                self.ask_global(&loaded, &view, identity.as_ref())
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (k, v) in std::mem::take(&mut self.response_headers) {
            let _ =
                hostcalls::add_map_value(proxy_wasm::types::MapType::HttpResponseHeaders, &k, &v);
        }
        Action::Continue
    }
}

impl RateLimitFilter {
    /// Sends the RLS request for the matching global rules and pauses, or
    /// continues when none match.
    fn ask_global(
        &mut self,
        loaded: &Loaded,
        view: &sdk_ext::RequestView,
        identity: Option<&sdk_ext::identity::VerifiedIdentity>,
    ) -> Action {
        let (Some(service), Some((message, rules))) = (
            loaded.limiter.global_service(),
            loaded.limiter.global_request(view, identity),
        ) else {
            return Action::Continue;
        };
        loaded.global.calls.inc();
        let bytes = prost::Message::encode_to_vec(&message);
        match self.dispatch_grpc_call(
            &service.cluster,
            rls::SERVICE,
            rls::METHOD,
            Vec::new(),
            Some(&bytes),
            service.timeout.get(),
        ) {
            Ok(token) => {
                self.pending = Some(PendingCall {
                    token,
                    rules,
                    request_id: view.request_id.clone(),
                    method: view.method.clone(),
                    path: view.path_only().to_string(),
                });
                Action::Pause
            }
            Err(status) => {
                let reason = format!("the call could not be dispatched ({status:?})");
                let (request_id, method, path) = (
                    view.request_id.clone(),
                    view.method.clone(),
                    view.path_only().to_string(),
                );
                if self.global_failed(loaded, &reason, &request_id, &method, &path) {
                    Action::Continue
                } else {
                    Action::Pause
                }
            }
        }
    }

    /// Applies the failure mode; true when the request may continue.
    fn global_failed(
        &self,
        loaded: &Loaded,
        reason: &str,
        request_id: &str,
        method: &str,
        path: &str,
    ) -> bool {
        let allow = loaded
            .limiter
            .global_service()
            .is_some_and(|g| g.failure_mode == FailureMode::Allow);
        let line = serde_json::json!({
            "plugin": "rate-limit",
            "event": "rate_limit_service_failure",
            "failure_mode": if allow { "allow" } else { "deny" },
            "reason": reason,
            "method": method,
            "path": path,
            "request_id": request_id,
        });
        host::log(LogLevel::Warn, &line.to_string());
        if allow {
            loaded.global.failures_allowed.inc();
            true
        } else {
            loaded.global.failures_denied.inc();
            host::send_denial(
                self,
                &loaded.limiter.global_failure_denial(reason),
                request_id,
            );
            false
        }
    }
}

impl Context for RateLimitFilter {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        let Some(pending) = self.pending.take_if(|p| p.token == token_id) else {
            return;
        };
        let Some(loaded) = self.loaded.clone() else {
            return;
        };
        let PendingCall {
            rules,
            request_id,
            method,
            path,
            ..
        } = pending;
        let answer = if status_code != 0 {
            Err(format!("gRPC status {status_code}"))
        } else {
            let body = self
                .get_grpc_call_response_body(0, response_size.min(MAX_RLS_RESPONSE))
                .unwrap_or_default();
            rls::decode_response(&body)
        };
        let outcome = answer.map(|resp| loaded.limiter.global_outcome(&rules, &resp));
        let outcome = match outcome {
            Ok(o) if o.error.is_none() => o,
            Ok(o) => {
                let reason = o.error.unwrap_or_default();
                if self.global_failed(&loaded, &reason, &request_id, &method, &path) {
                    self.resume_http_request();
                }
                return;
            }
            Err(reason) => {
                if self.global_failed(&loaded, &reason, &request_id, &method, &path) {
                    self.resume_http_request();
                }
                return;
            }
        };
        for &r in &outcome.limited {
            if let Some(m) = loaded.rules.get(r) {
                m.limited.inc();
            }
        }
        for &r in &outcome.shadow_limited {
            if let Some(m) = loaded.rules.get(r) {
                m.shadow_limited.inc();
            }
        }
        match outcome.denial {
            Some(denial) => {
                let line = serde_json::json!({
                    "plugin": "rate-limit",
                    "decision": "deny",
                    "status": denial.status,
                    "reason": denial.message,
                    "method": method,
                    "path": path,
                    "request_id": request_id,
                });
                host::log(LogLevel::Info, &line.to_string());
                host::send_denial(self, &denial, &request_id);
            }
            None => {
                for &r in &rules {
                    if let Some(m) = loaded.rules.get(r) {
                        if !outcome.shadow_limited.contains(&r) {
                            m.allowed.inc();
                        }
                    }
                }
                self.resume_http_request();
            }
        }
    }
}
