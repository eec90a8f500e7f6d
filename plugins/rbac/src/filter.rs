//! Proxy-Wasm glue: read the request view and host facts, ask the policy,
//! log, count, act.

use crate::attributes::{Attributes, FactNeeds, HostFacts};
use crate::config::Action as PolicyAction;
use crate::policy::{Evaluation, Rbac};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use sdk_ext::host::{self, Counter, ViewNeeds};
use sdk_ext::metrics::metric_name;
use sdk_ext::request::parse_socket_address;
use sdk_ext::xfcc::XFCC_HEADER;
use sdk_ext::Denial;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(RbacRoot::default()) });
}}

/// Metrics, defined once at configure time.
struct Metrics {
    allowed: Counter,
    denied: Counter,
    /// Per entry: enforced matches (deciding rule or AUDIT match).
    matched: Vec<Counter>,
    /// Per entry: dry-run matches.
    dry_run_matched: Vec<Counter>,
    /// Per action (allow, deny, audit): enforced matches.
    action_matched: [Counter; 3],
    dry_run_total: Counter,
    shadow_denied: Counter,
    shadow_allowed: Counter,
}

impl Metrics {
    fn define(rbac: &Rbac) -> Metrics {
        let c = |parts: &[&str]| Counter::define(&metric_name("rbac", parts));
        let per = |suffix: &str| {
            rbac.entries()
                .iter()
                .map(|e| c(&["policy", e.policy.name.as_str(), suffix]))
                .collect()
        };
        Metrics {
            allowed: c(&["allowed"]),
            denied: c(&["denied"]),
            matched: per("matched"),
            dry_run_matched: per("dry_run_matched"),
            action_matched: [
                c(&["action", "allow", "matched"]),
                c(&["action", "deny", "matched"]),
                c(&["action", "audit", "matched"]),
            ],
            dry_run_total: c(&["dry_run_matched"]),
            shadow_denied: c(&["shadow_denied"]),
            shadow_allowed: c(&["shadow_allowed"]),
        }
    }

    fn count(&self, rbac: &Rbac, ev: &Evaluation) {
        let action = |i: usize| match rbac.entries()[i].policy.action {
            PolicyAction::Allow => 0,
            PolicyAction::Deny => 1,
            PolicyAction::Audit => 2,
        };
        for hit in ev.decision.hit().iter().chain(&ev.audits) {
            inc(&self.matched, hit.policy);
            self.action_matched[action(hit.policy)].inc();
        }
        for hit in &ev.dry_run {
            inc(&self.dry_run_matched, hit.policy);
            self.dry_run_total.inc();
        }
        if ev.decision.is_allow() {
            self.allowed.inc();
        } else {
            self.denied.inc();
        }
        match ev.shadow {
            Some(s) if s.is_allow() != ev.decision.is_allow() => {
                if s.is_allow() {
                    self.shadow_allowed.inc();
                } else {
                    self.shadow_denied.inc();
                }
            }
            _ => {}
        }
    }
}

fn inc(counters: &[Counter], i: usize) {
    if let Some(c) = counters.get(i) {
        c.inc();
    }
}

struct Loaded {
    rbac: Rbac,
    metrics: Metrics,
}

#[derive(Default)]
struct RbacRoot {
    loaded: Option<Rc<Loaded>>,
}

impl Context for RbacRoot {}

impl RootContext for RbacRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match Rbac::from_json(&bytes) {
            Ok(rbac) => {
                let metrics = Metrics::define(&rbac);
                host::log_configured(
                    "rbac",
                    env!("CARGO_PKG_VERSION"),
                    &format!("configured with {} policies", rbac.entries().len()),
                );
                self.loaded = Some(Rc::new(Loaded { rbac, metrics }));
                true
            }
            Err(e) => {
                host::log_config_error("rbac", &e);
                self.loaded = None;
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RbacFilter {
            loaded: self.loaded.clone(),
        }))
    }
}

struct RbacFilter {
    /// `None` only if the host creates streams for a plugin whose
    /// configuration was refused; such streams are denied (fail closed).
    loaded: Option<Rc<Loaded>>,
}

impl Context for RbacFilter {}

/// Reads into `facts`, read earlier with `read`, the facts `want` names
/// that the view does not hold — destination, SNI, verified identity — and
/// that it lacks (each a host call, so only when some rule or a log line
/// reads it). An unreadable identity counts as none (and is logged): rules
/// needing one then fail, `not_` rules pass, as for an anonymous request.
fn complete_facts(facts: &mut HostFacts, read: FactNeeds, want: FactNeeds) {
    if want.identity && !read.identity {
        facts.identity = host::verified_identity_or_none("rbac");
    }
    if want.destination && !read.destination {
        facts.destination = host::property_string(&["destination", "address"])
            .and_then(|s| parse_socket_address(&s));
    }
    if want.sni && !read.sni {
        facts.sni = host::property_string(&["connection", "requested_server_name"])
            .filter(|s| !s.is_empty());
    }
}

/// The view's parts `needs` names (the header map always).
fn view_needs(needs: FactNeeds) -> ViewNeeds {
    ViewNeeds {
        headers: true,
        source: needs.source,
        peer: needs.peer,
    }
}

impl RbacFilter {
    /// Logs one JSON line per denial, audit or dry-run match. The decision
    /// read only the facts its rules need; the log line names the
    /// principal, the token's principal and the client, so what is missing
    /// is read here (only for requests that are logged).
    fn log_records(&self, loaded: &Loaded, ev: &Evaluation, attrs: &Attributes<'_>) {
        let write = |attrs: &Attributes<'_>| {
            for record in loaded.rbac.records(ev, attrs) {
                if let Ok(line) = serde_json::to_string(&record) {
                    host::log(LogLevel::Info, &line);
                }
            }
        };
        let needs = loaded.rbac.needs();
        if needs == FactNeeds::ALL {
            write(attrs);
            return;
        }
        let mut view = attrs.view.clone();
        host::complete_view(&mut view, view_needs(needs), ViewNeeds::ALL);
        let mut facts = attrs.facts.clone();
        complete_facts(&mut facts, needs, FactNeeds::ALL);
        write(&Attributes::resolve(&view, &facts, loaded.rbac.sources()));
    }
}

impl HttpContext for RbacFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let needs = self
            .loaded
            .as_ref()
            .map_or(FactNeeds::default(), |l| l.rbac.needs());
        let view = host::request_view_with(view_needs(needs));
        let Some(loaded) = self.loaded.clone() else {
            let d = Denial::new(
                500,
                "rbac_unconfigured",
                "the RBAC filter has no valid configuration",
            );
            host::send_denial(self, &d, &view.request_id);
            return Action::Pause;
        };
        let mut facts = HostFacts::default();
        complete_facts(&mut facts, FactNeeds::default(), needs);
        let attrs = Attributes::resolve(&view, &facts, loaded.rbac.sources());
        if attrs.untrusted_xfcc {
            // Not from a trusted proxy: nobody downstream may believe it.
            self.set_http_request_header(XFCC_HEADER, None);
        }
        let ev = loaded.rbac.evaluate(&attrs);
        loaded.metrics.count(&loaded.rbac, &ev);
        if ev.is_logged() {
            self.log_records(&loaded, &ev, &attrs);
        }
        if ev.decision.is_allow() {
            return Action::Continue;
        }
        host::send_denial(self, &loaded.rbac.denial(), &view.request_id);
        Action::Pause
    }
}
