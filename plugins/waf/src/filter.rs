//! Proxy-Wasm glue: build the [`Request`] from the host, buffer the body up
//! to the limit, run the phases, act on the verdict.
//!
//! - request headers: phase 1; a request with no body also runs phase 2;
//!   otherwise the headers continue (Envoy only delivers the body to a
//!   filter that did not pause its headers);
//! - request body: buffered (`Pause`) until complete or over
//!   `request_body_limit`, then phase 2 ([`BodyOverflow`] decides what
//!   happens past the limit);
//! - response headers: phase 3, before the headers go downstream;
//! - stream end: phase 5.
//!
//! Phase 4 (response body) is not run by the filter (see the README).
//! Every host call that can fail is handled; nothing here panics.

use crate::audit::{self, AuditAction, AuditRecord};
use crate::config::{inbound_anomaly_score, BodyStep, Mode, Waf};
use crate::request::Request;
use crate::transaction::{Interruption, Transaction};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use sdk_ext::host::{self, Counter, ViewNeeds};
use sdk_ext::metrics::metric_name;
use sdk_ext::Denial;
use std::collections::HashMap;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(WafRoot::default()) });
}}

/// Metrics, defined once at configure time.
struct Metrics {
    requests: Counter,
    blocked: Counter,
    detected: Counter,
    body_overflow: Counter,
    /// One counter per rule file family, by rule id.
    family_by_rule: HashMap<u32, Counter>,
}

impl Metrics {
    fn define(waf: &Waf) -> Metrics {
        let mut families: HashMap<&str, Counter> = HashMap::new();
        let mut family_by_rule = HashMap::new();
        for rule in &waf.rules.rules {
            let family = audit::rule_family(&rule.source);
            let counter = *families.entry(family).or_insert_with(|| {
                Counter::define(&metric_name("waf", &["family", family, "matched"]))
            });
            family_by_rule.insert(rule.id, counter);
        }
        Metrics {
            requests: Counter::define(&metric_name("waf", &["requests"])),
            blocked: Counter::define(&metric_name("waf", &["blocked"])),
            detected: Counter::define(&metric_name("waf", &["detected"])),
            body_overflow: Counter::define(&metric_name("waf", &["body_overflow"])),
            family_by_rule,
        }
    }
}

struct Loaded {
    waf: Waf,
    metrics: Metrics,
}

#[derive(Default)]
struct WafRoot {
    loaded: Option<Rc<Loaded>>,
}

impl Context for WafRoot {}

impl RootContext for WafRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        match Waf::from_json(&bytes) {
            Ok(waf) => {
                let metrics = Metrics::define(&waf);
                host::log_configured(
                    "waf",
                    env!("CARGO_PKG_VERSION"),
                    &format!(
                        "configured with {} rules, mode {:?}, request body limit {} bytes, linear memory {} bytes",
                        waf.rules.rules.len(),
                        waf.mode,
                        waf.request_body_limit,
                        core::arch::wasm32::memory_size(0) * 65536
                    ),
                );
                self.loaded = Some(Rc::new(Loaded { waf, metrics }));
                true
            }
            Err(e) => {
                host::log(LogLevel::Error, &format!("waf: {e}"));
                self.loaded = None;
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(WafFilter {
            loaded: self.loaded.clone(),
            tx: None,
            stage: Stage::Headers,
        }))
    }
}

/// Where the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for request headers.
    Headers,
    /// Buffering the request body.
    Body,
    /// Request phases done; the request went upstream.
    Forwarded,
    /// A local response was sent.
    Stopped,
}

struct WafFilter {
    /// `None` only if the host creates streams for a plugin whose
    /// configuration was refused; such streams are denied (fail closed).
    loaded: Option<Rc<Loaded>>,
    tx: Option<Transaction>,
    stage: Stage,
}

impl Context for WafFilter {}

impl WafFilter {
    /// Counts the families of the matched rules and writes the audit line.
    fn report(&self, loaded: &Loaded, tx: &Transaction, action: AuditAction) {
        for m in &tx.matches {
            if let Some(c) = loaded.metrics.family_by_rule.get(&m.id) {
                c.inc();
            }
        }
        let req = tx.request();
        let record = AuditRecord::new(
            action,
            tx.interruption,
            &tx.matches,
            inbound_anomaly_score(tx),
            (&req.unique_id, &req.method, &req.uri),
        );
        host::log(LogLevel::Info, &record.to_json());
    }

    /// Acts on the outcome of a request phase: deny, or go on.
    fn after_request_phase(&mut self, interruption: Option<Interruption>, last: bool) -> Action {
        let (Some(loaded), Some(tx)) = (self.loaded.clone(), self.tx.as_ref()) else {
            return Action::Continue;
        };
        if let Some(i) = interruption {
            loaded.metrics.blocked.inc();
            self.report(&loaded, tx, AuditAction::Deny);
            let rid = tx.request().unique_id.clone();
            self.stop(&audit::blocked(i), &rid);
            return Action::Pause;
        }
        if !last {
            // Envoy does not deliver the body to a Wasm filter whose
            // headers callback paused (it maps to StopAllIteration), so the
            // headers go on and the body is held in `on_http_request_body`.
            // The upstream sees the headers (already inspected by phase 1)
            // and is reset if phase 2 blocks.
            return Action::Continue;
        }
        if loaded.waf.mode == Mode::DetectionOnly && !tx.logged_ids().is_empty() {
            loaded.metrics.detected.inc();
            self.report(&loaded, tx, AuditAction::Detect);
        }
        self.stage = Stage::Forwarded;
        Action::Continue
    }

    fn stop(&mut self, denial: &Denial, request_id: &str) {
        self.stage = Stage::Stopped;
        host::send_denial(self, denial, request_id);
    }
}

impl HttpContext for WafFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let needs = ViewNeeds {
            headers: true,
            source: true,
            peer: false,
        };
        let view = host::request_view_with(needs);
        let Some(loaded) = self.loaded.clone() else {
            let d = Denial::new(
                500,
                audit::UNCONFIGURED_CODE,
                "the WAF filter has no valid configuration",
            );
            self.stop(&d, &view.request_id);
            return Action::Pause;
        };
        loaded.metrics.requests.inc();
        let protocol = host::property_string(&["request", "protocol"])
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "HTTP/1.1".to_string());
        let req = Request::from_view(&view, &protocol, loaded.waf.limits);
        let mut tx = loaded.waf.transaction(req);
        let mut interruption = tx.process_request_headers();
        if interruption.is_none() && end_of_stream {
            interruption = tx.process_request_body();
        }
        self.tx = Some(tx);
        self.stage = Stage::Body;
        self.after_request_phase(interruption, end_of_stream)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.stage != Stage::Body {
            return Action::Continue;
        }
        let Some(loaded) = self.loaded.clone() else {
            return Action::Continue;
        };
        let waf = &loaded.waf;
        let limit = waf.request_body_limit;
        match waf.body_overflow.step(body_size, end_of_stream, limit) {
            BodyStep::Wait => Action::Pause,
            BodyStep::Reject => {
                loaded.metrics.body_overflow.inc();
                let rid = self
                    .tx
                    .as_ref()
                    .map(|t| t.request().unique_id.clone())
                    .unwrap_or_default();
                let record = AuditRecord::new(
                    AuditAction::BodyTooLarge,
                    Some(Interruption {
                        rule_id: 0,
                        status: 413,
                    }),
                    &[],
                    0,
                    self.tx.as_ref().map_or(("", "", ""), |t| {
                        let r = t.request();
                        (&r.unique_id, &r.method, &r.uri)
                    }),
                );
                host::log(LogLevel::Info, &record.to_json());
                self.stop(&audit::body_too_large(limit), &rid);
                Action::Pause
            }
            BodyStep::Inspect { take, truncated } => {
                if truncated {
                    loaded.metrics.body_overflow.inc();
                }
                let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, take)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let interruption = self.tx.as_mut().and_then(|tx| {
                    tx.set_request_body(body, limit);
                    tx.process_request_body()
                });
                self.after_request_phase(interruption, true)
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.stage != Stage::Forwarded {
            return Action::Continue;
        }
        let Some(loaded) = self.loaded.clone() else {
            return Action::Continue;
        };
        let Some(tx) = self.tx.as_mut() else {
            return Action::Continue;
        };
        let mut status = 0u16;
        let mut headers = Vec::new();
        let pairs = hostcalls::get_map_bytes(MapType::HttpResponseHeaders).unwrap_or_default();
        for (name, value) in pairs.into_iter().take(host::MAX_HEADERS) {
            let value = String::from_utf8_lossy(&value).into_owned();
            if name == ":status" {
                status = value.parse().unwrap_or(0);
            } else if !name.starts_with(':') {
                headers.push((name, value));
            }
        }
        let protocol = tx.request().protocol.clone();
        let Some(i) = tx.process_response_headers(status, &protocol, headers) else {
            return Action::Continue;
        };
        let Some(tx) = self.tx.as_ref() else {
            return Action::Continue;
        };
        loaded.metrics.blocked.inc();
        self.report(&loaded, tx, AuditAction::Deny);
        let rid = tx.request().unique_id.clone();
        self.stop(&audit::blocked(i), &rid);
        Action::Pause
    }

    fn on_log(&mut self) {
        if let Some(tx) = self.tx.as_mut() {
            tx.process_logging();
        }
    }
}
