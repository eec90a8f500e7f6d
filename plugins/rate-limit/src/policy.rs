//! The rate-limit decision: which rules apply to a request, each rule's
//! bucket check, and the combined outcome. Host access goes through
//! [`SharedStore`], so this runs natively in tests.

use crate::config::{GlobalService, KeyPart, RateLimitConfig, Rule};
use crate::gcra::Gcra;
use crate::headers::{rate_limit_headers, LimitState};
use crate::key::{bucket_key, descriptor_entries};
use crate::rls::{
    self, Entry, GlobalVerdict, RateLimitDescriptor, RateLimitRequest, RateLimitResponse,
};
use crate::table::{seed_from_config, Checked, SharedStore, StoreError, Table, TableError};
use sdk_ext::config::ConfigError;
use sdk_ext::identity::VerifiedIdentity;
use sdk_ext::{Denial, RequestView};

/// Stable code of a refusal by a limit.
pub const LIMITED_CODE: &str = "rate_limited";
/// Stable code when a bucket could not be checked (fail closed).
pub const UNAVAILABLE_CODE: &str = "rate_limit_unavailable";

/// A configured limiter.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    config: RateLimitConfig,
    /// Per rule: the bucket shape and table of a local rule, `None` for a
    /// global rule.
    gcras: Vec<Option<Gcra>>,
    tables: Vec<Option<Table>>,
}

/// What the rate limit service's answer means.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalOutcome {
    /// The response to send instead of forwarding, if any.
    pub denial: Option<Denial>,
    /// Enforced global rules over their limit.
    pub limited: Vec<usize>,
    /// Shadow global rules over their limit (reported only).
    pub shadow_limited: Vec<usize>,
    /// The answer made no sense (handled like a failed call).
    pub error: Option<String>,
}

/// One rule's part in a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome {
    /// Index of the rule.
    pub rule: usize,
    /// The bucket check.
    pub checked: Result<Checked, TableError>,
}

/// The combined decision for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Every rule that matched, in configuration order.
    pub outcomes: Vec<RuleOutcome>,
}

impl RateLimiter {
    /// Parses and validates configuration bytes.
    pub fn from_json(bytes: &[u8]) -> Result<RateLimiter, ConfigError> {
        let config = RateLimitConfig::from_json(bytes)?;
        let seed = seed_from_config(bytes);
        let gcras = config
            .rules
            .iter()
            .map(|r| {
                r.limit
                    .filter(|_| !r.global)
                    .map(|l| Gcra::new(l.requests, l.per.duration(), l.burst()))
            })
            .collect();
        let tables = config
            .rules
            .iter()
            .map(|r| (!r.global).then(|| Table::new(r.name.as_str(), r.max_keys, seed)))
            .collect();
        Ok(RateLimiter {
            config,
            gcras,
            tables,
        })
    }

    /// True when some rule keys on, or matches, the client address.
    pub fn needs_source(&self) -> bool {
        self.config.rules.iter().any(|r| {
            !r.matches.source_cidrs.is_empty() || r.key.contains(&crate::config::KeyPart::ClientIp)
        })
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.config.rules
    }

    /// True when the decision reads the request's header map: some rule
    /// matches on methods, paths, hosts or headers, or keys on the path, the
    /// method, a header or (behind trusted proxies, from
    /// `x-forwarded-for`) the client address; or a rate limit service is
    /// asked (its descriptors are built from the request). When false the
    /// filter skips that host call for requests it lets through.
    pub fn needs_headers(&self) -> bool {
        self.config.global.is_some()
            || self.config.rules.iter().any(|r| {
                let m = &r.matches;
                m.methods.is_some()
                    || !m.paths.is_empty()
                    || !m.hosts.is_empty()
                    || !m.headers.is_empty()
                    || r.key.iter().any(|k| match k {
                        KeyPart::Path | KeyPart::Method | KeyPart::Header(_) => true,
                        KeyPart::ClientIp => self.config.trusted_xff_hops > 0,
                        KeyPart::Consumer | KeyPart::Claim(_) => false,
                    })
            })
    }

    /// Creates every rule's slots in shared data (call at start-up).
    pub fn create_slots(&self, store: &dyn SharedStore) -> Result<u32, StoreError> {
        let mut n = 0;
        for t in self.tables.iter().flatten() {
            n += t.create_slots(store)?;
        }
        Ok(n)
    }

    /// True when some rule keys on the verified identity (`consumer`,
    /// `claim`), so the filter must read it.
    pub fn needs_identity(&self) -> bool {
        self.config
            .rules
            .iter()
            .any(|r| r.key.iter().any(KeyPart::needs_identity))
    }

    /// Checks `req` at `now_ns` against every matching local rule, for an
    /// unauthenticated request (identity key parts share one value).
    pub fn check(&self, store: &dyn SharedStore, req: &RequestView, now_ns: u64) -> Decision {
        self.check_with_identity(store, req, None, now_ns)
    }

    /// Checks `req`, verified by an earlier filter as `identity`, at
    /// `now_ns` against every matching local rule.
    pub fn check_with_identity(
        &self,
        store: &dyn SharedStore,
        req: &RequestView,
        identity: Option<&VerifiedIdentity>,
        now_ns: u64,
    ) -> Decision {
        let mut outcomes = Vec::new();
        for (i, rule) in self.config.rules.iter().enumerate() {
            let (Some(table), Some(gcra)) = (&self.tables[i], &self.gcras[i]) else {
                continue;
            };
            if !rule.matches.matches(req) {
                continue;
            }
            let key = bucket_key(
                rule.name.as_str(),
                &rule.key,
                req,
                identity,
                self.config.trusted_xff_hops,
            );
            let checked = table.check(store, gcra, &key, now_ns);
            outcomes.push(RuleOutcome { rule: i, checked });
        }
        Decision { outcomes }
    }

    /// The rate limit service to ask, if configured.
    pub fn global_service(&self) -> Option<&GlobalService> {
        self.config.global.as_ref()
    }

    /// The RLS request for the global rules `req` matches (one descriptor
    /// per rule, in order), with those rules' indexes; `None` when no global
    /// rule matches.
    pub fn global_request(
        &self,
        req: &RequestView,
        identity: Option<&VerifiedIdentity>,
    ) -> Option<(RateLimitRequest, Vec<usize>)> {
        let service = self.config.global.as_ref()?;
        let mut descriptors = Vec::new();
        let mut rules = Vec::new();
        for (i, rule) in self.config.rules.iter().enumerate() {
            if !rule.global || !rule.matches.matches(req) {
                continue;
            }
            let entries = descriptor_entries(
                rule.name.as_str(),
                &rule.key,
                req,
                identity,
                self.config.trusted_xff_hops,
            )
            .into_iter()
            .map(|(key, value)| Entry { key, value })
            .collect();
            descriptors.push(RateLimitDescriptor { entries });
            rules.push(i);
        }
        if rules.is_empty() {
            return None;
        }
        let request = RateLimitRequest {
            domain: service.domain.clone(),
            descriptors,
            hits_addend: 1,
        };
        Some((request, rules))
    }

    /// Interprets the service's answer for the global `rules` asked about
    /// (in descriptor order): over-limit descriptors of shadow rules are only
    /// reported.
    pub fn global_outcome(&self, rules: &[usize], resp: &RateLimitResponse) -> GlobalOutcome {
        let mut out = GlobalOutcome::default();
        let retry_all = match rls::verdict(resp) {
            Ok(GlobalVerdict::Allowed) => return out,
            Ok(GlobalVerdict::OverLimit { retry_after_secs }) => retry_after_secs,
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        };
        // (rule, seconds until its window resets) for each over-limit rule;
        // without statuses, the overall verdict covers every rule asked.
        let over: Vec<(usize, u64)> = if resp.statuses.is_empty() {
            rules.iter().map(|&r| (r, retry_all)).collect()
        } else {
            resp.statuses
                .iter()
                .zip(rules)
                .filter(|(st, _)| st.code == rls::Code::OverLimit as i32)
                .map(|(st, &r)| {
                    let wait = st
                        .duration_until_reset
                        .as_ref()
                        .map(|d| u64::try_from(d.seconds).unwrap_or(0) + u64::from(d.nanos > 0))
                        .unwrap_or(retry_all);
                    (r, wait.max(1))
                })
                .collect()
        };
        let mut wait = 0;
        for (rule, secs) in over {
            if self.config.rules.get(rule).is_some_and(|r| r.shadow) {
                out.shadow_limited.push(rule);
            } else {
                out.limited.push(rule);
                wait = wait.max(secs);
            }
        }
        if let Some(&first) = out.limited.first() {
            let name = self.config.rules[first].name.as_str();
            out.denial = Some(
                Denial::new(429, LIMITED_CODE, format!("rate limit \"{name}\" exceeded"))
                    .with_header("retry-after", wait.max(1).to_string()),
            );
        }
        out
    }

    /// The response when the rate limit service could not answer and the
    /// failure mode is `deny`.
    pub fn global_failure_denial(&self, reason: &str) -> Denial {
        Denial::new(
            503,
            UNAVAILABLE_CODE,
            format!("the rate limit service could not be asked: {reason}"),
        )
        .with_header("retry-after", "1")
    }

    /// The local response for a refused request, or `None` when it passes.
    /// Shadow rules never refuse; a failed check of an enforced rule refuses
    /// with 503 (fail closed).
    pub fn denial(&self, d: &Decision) -> Option<Denial> {
        let mut worst: Option<(u64, usize)> = None;
        for o in &d.outcomes {
            let rule = &self.config.rules[o.rule];
            if rule.shadow {
                continue;
            }
            match &o.checked {
                Err(e) => {
                    return Some(
                        Denial::new(
                            503,
                            UNAVAILABLE_CODE,
                            format!(
                                "rate limit \"{}\" could not be checked: {e}",
                                rule.name.as_str()
                            ),
                        )
                        .with_header("retry-after", "1"),
                    )
                }
                Ok(c) if !c.verdict.allowed => {
                    let wait = c.verdict.retry_after_secs;
                    if worst.is_none_or(|(w, _)| wait > w) {
                        worst = Some((wait, o.rule));
                    }
                }
                Ok(_) => {}
            }
        }
        let (wait, rule) = worst?;
        let mut denial = Denial::new(
            429,
            LIMITED_CODE,
            format!(
                "rate limit \"{}\" exceeded",
                self.config.rules[rule].name.as_str()
            ),
        )
        .with_header("retry-after", wait.to_string());
        for (k, v) in self.response_headers(d) {
            denial = denial.with_header(k, v);
        }
        Some(denial)
    }

    /// Informational headers for the most restrictive matching rule (lowest
    /// remaining), in the configured style.
    pub fn response_headers(&self, d: &Decision) -> Vec<(String, String)> {
        let best = d
            .outcomes
            .iter()
            .filter_map(|o| o.checked.as_ref().ok().map(|c| (o.rule, c)))
            .min_by_key(|(_, c)| (c.verdict.remaining, std::cmp::Reverse(c.verdict.reset_secs)));
        let Some((i, c)) = best else {
            return Vec::new();
        };
        let Some(g) = self.gcras.get(i).and_then(Option::as_ref) else {
            return Vec::new();
        };
        let state = LimitState {
            rule: self.config.rules[i].name.as_str().to_string(),
            requests: g.requests(),
            window_secs: g.period_secs(),
            remaining: c.verdict.remaining,
            reset_secs: c.verdict.reset_secs,
        };
        rate_limit_headers(self.config.response_headers, &state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::MemoryStore;

    const NOW: u64 = 1_700_000_000_000_000_000;
    const SEC: u64 = 1_000_000_000;

    fn limiter(json: &str) -> (RateLimiter, MemoryStore) {
        let rl = RateLimiter::from_json(json.as_bytes()).unwrap();
        let store = MemoryStore::default();
        rl.create_slots(&store).unwrap();
        (rl, store)
    }

    fn req(path: &str, src: &str) -> RequestView {
        RequestView {
            method: "GET".into(),
            path: path.into(),
            source: Some(src.parse().unwrap()),
            request_id: "rid".into(),
            ..Default::default()
        }
    }

    fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn per_client_limit_with_headers() {
        let (rl, s) = limiter(
            r#"{"response_headers":"both","rules":[{"name":"per-ip","key":["client_ip"],"limit":{"requests":2,"per":"minute"}}]}"#,
        );
        let a = req("/", "10.0.0.1:1");
        let d1 = rl.check(&s, &a, NOW);
        assert!(rl.denial(&d1).is_none());
        let h = rl.response_headers(&d1);
        assert_eq!(header(&h, "ratelimit-policy"), Some("\"per-ip\";q=2;w=60"));
        assert_eq!(header(&h, "ratelimit"), Some("\"per-ip\";r=1;t=30"));
        assert_eq!(header(&h, "x-ratelimit-remaining"), Some("1"));
        assert!(rl.denial(&rl.check(&s, &a, NOW)).is_none());
        let refused = rl.denial(&rl.check(&s, &a, NOW + SEC)).unwrap();
        assert_eq!(refused.status, 429);
        assert_eq!(refused.code, LIMITED_CODE);
        assert_eq!(header(&refused.headers, "retry-after"), Some("29"));
        assert_eq!(
            header(&refused.headers, "ratelimit"),
            Some("\"per-ip\";r=0;t=59")
        );
        // Another client has its own bucket.
        assert!(rl
            .denial(&rl.check(&s, &req("/", "10.0.0.2:1"), NOW))
            .is_none());
    }

    #[test]
    fn only_matching_rules_apply() {
        let (rl, s) = limiter(
            r#"{"rules":[{"name":"api","match":{"paths":[{"prefix":"/api"}]},"limit":{"requests":1,"per":"hour"}}]}"#,
        );
        for _ in 0..5 {
            assert!(rl
                .check(&s, &req("/web", "10.0.0.1:1"), NOW)
                .outcomes
                .is_empty());
        }
        assert!(rl
            .denial(&rl.check(&s, &req("/api/x", "10.0.0.1:1"), NOW))
            .is_none());
        assert!(rl
            .denial(&rl.check(&s, &req("/api/y", "10.0.0.9:1"), NOW))
            .is_some());
    }

    #[test]
    fn shadow_counts_but_never_refuses() {
        let (rl, s) = limiter(
            r#"{"rules":[{"name":"s","shadow":true,"limit":{"requests":1,"per":"second"}}]}"#,
        );
        let r = req("/", "10.0.0.1:1");
        assert!(rl.denial(&rl.check(&s, &r, NOW)).is_none());
        let d = rl.check(&s, &r, NOW);
        assert!(!d.outcomes[0].checked.as_ref().unwrap().verdict.allowed);
        assert!(rl.denial(&d).is_none());
    }

    #[test]
    fn strictest_rule_wins() {
        let (rl, s) = limiter(
            r#"{"rules":[{"name":"loose","limit":{"requests":100,"per":"second"}},{"name":"tight","limit":{"requests":1,"per":"minute"}}]}"#,
        );
        let r = req("/", "10.0.0.1:1");
        let h = rl.response_headers(&rl.check(&s, &r, NOW));
        assert_eq!(header(&h, "ratelimit"), Some("\"tight\";r=0;t=60"));
        let d = rl.denial(&rl.check(&s, &r, NOW)).unwrap();
        assert_eq!(header(&d.headers, "retry-after"), Some("60"));
        assert!(d.message.contains("tight"));
    }

    #[test]
    fn contention_fails_closed() {
        let (rl, s) = limiter(r#"{"rules":[{"name":"a","limit":{"requests":5,"per":"second"}}]}"#);
        s.fail_next_cas_writes(u32::MAX);
        let d = rl
            .denial(&rl.check(&s, &req("/", "10.0.0.1:1"), NOW))
            .unwrap();
        assert_eq!(d.status, 503);
        assert_eq!(d.code, UNAVAILABLE_CODE);
    }

    #[test]
    fn needs_headers_only_when_a_rule_reads_them() {
        let needs = |rules: &str| {
            limiter(&format!(r#"{{"rules":[{rules}]}}"#))
                .0
                .needs_headers()
        };
        let limit = r#""limit":{"requests":1,"per":"second"}"#;
        assert!(!needs(&format!(r#"{{"name":"a",{limit}}}"#)));
        assert!(!needs(&format!(
            r#"{{"name":"a","key":["client_ip","consumer"],{limit}}}"#
        )));
        assert!(!needs(&format!(
            r#"{{"name":"a","match":{{"source_cidrs":["10.0.0.0/8"]}},{limit}}}"#
        )));
        for key in [r#"["path"]"#, r#"["method"]"#, r#"[{"header":"x-tenant"}]"#] {
            assert!(
                needs(&format!(r#"{{"name":"a","key":{key},{limit}}}"#)),
                "{key}"
            );
        }
        for m in [
            r#"{"methods":["GET"]}"#,
            r#"{"paths":[{"prefix":"/a"}]}"#,
            r#"{"hosts":[{"exact":"a"}]}"#,
            r#"{"headers":[{"name":"x","present_match":true}]}"#,
        ] {
            assert!(
                needs(&format!(r#"{{"name":"a","match":{m},{limit}}}"#)),
                "{m}"
            );
        }
        let behind_proxies = format!(
            r#"{{"trusted_xff_hops":1,"rules":[{{"name":"a","key":["client_ip"],{limit}}}]}}"#
        );
        assert!(limiter(&behind_proxies).0.needs_headers());
    }

    #[test]
    fn needs_source_for_client_ip_keys() {
        let (rl, _) = limiter(
            r#"{"rules":[{"name":"a","key":["client_ip"],"limit":{"requests":1,"per":"second"}}]}"#,
        );
        assert!(rl.needs_source());
        let (rl, _) = limiter(
            r#"{"rules":[{"name":"a","key":["path"],"limit":{"requests":1,"per":"second"}}]}"#,
        );
        assert!(!rl.needs_source());
    }

    #[test]
    fn consumers_get_their_own_buckets_and_anonymous_requests_share_one() {
        let (rl, s) = limiter(
            r#"{"rules":[{"name":"per-consumer","key":["consumer"],"limit":{"requests":1,"per":"hour"}}]}"#,
        );
        assert!(rl.needs_identity());
        let r = req("/", "10.0.0.1:1");
        let who = |name: &str| VerifiedIdentity {
            provider: "basic_auth".into(),
            issuer: "palisade:consumers".into(),
            subject: Some(name.into()),
            consumer: Some(name.into()),
            ..Default::default()
        };
        let (alice, bob) = (who("alice"), who("bob"));
        let denied = |id: Option<&VerifiedIdentity>| {
            rl.denial(&rl.check_with_identity(&s, &r, id, NOW))
                .is_some()
        };
        assert!(!denied(Some(&alice)));
        assert!(denied(Some(&alice)), "alice used her one request");
        assert!(!denied(Some(&bob)), "bob has his own bucket");
        assert!(!denied(None));
        assert!(denied(None), "anonymous requests share one bucket");
    }

    #[test]
    fn an_empty_claim_name_is_refused_with_its_path() {
        let Err(e) = RateLimiter::from_json(
            br#"{"rules":[{"name":"a","key":[{"claim":""}],"limit":{"requests":1,"per":"second"}}]}"#,
        ) else {
            panic!("an empty claim name was accepted");
        };
        assert!(e.to_string().contains("rules[0].key[0].claim"), "{e}");
    }

    fn over(secs: i64) -> rls::DescriptorStatus {
        rls::DescriptorStatus {
            code: rls::Code::OverLimit as i32,
            current_limit: None,
            limit_remaining: 0,
            duration_until_reset: Some(rls::ProtoDuration {
                seconds: secs,
                nanos: 0,
            }),
        }
    }

    fn ok_status() -> rls::DescriptorStatus {
        rls::DescriptorStatus {
            code: rls::Code::Ok as i32,
            current_limit: None,
            limit_remaining: 5,
            duration_until_reset: None,
        }
    }

    const GLOBAL: &str = r#"{"global":{"cluster":"rls","domain":"edge"},"rules":[
        {"name":"g-ip","global":true,"key":["client_ip"]},
        {"name":"g-shadow","global":true,"shadow":true,"match":{"paths":[{"prefix":"/s"}]}},
        {"name":"local","limit":{"requests":100,"per":"second"}}]}"#;

    #[test]
    fn global_request_has_one_descriptor_per_matching_rule() {
        let (rl, s) = limiter(GLOBAL);
        let (msg, rules) = rl.global_request(&req("/s/x", "10.0.0.7:1"), None).unwrap();
        assert_eq!(msg.domain, "edge");
        assert_eq!(rules, [0, 1]);
        let first: Vec<(&str, &str)> = msg.descriptors[0]
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(first, [("rule", "g-ip"), ("client_ip", "10.0.0.7")]);
        let (_, rules) = rl
            .global_request(&req("/other", "10.0.0.7:1"), None)
            .unwrap();
        assert_eq!(rules, [0]);
        // Local checks ignore global rules.
        assert_eq!(
            rl.check(&s, &req("/s", "10.0.0.7:1"), NOW).outcomes.len(),
            1
        );
    }

    #[test]
    fn global_outcomes() {
        let (rl, _) = limiter(GLOBAL);
        let resp = |code: rls::Code, statuses| rls::RateLimitResponse {
            overall_code: code as i32,
            statuses,
        };
        let allowed = rl.global_outcome(
            &[0, 1],
            &resp(rls::Code::Ok, vec![ok_status(), ok_status()]),
        );
        assert!(allowed.denial.is_none() && allowed.error.is_none());
        let limited = rl.global_outcome(
            &[0, 1],
            &resp(rls::Code::OverLimit, vec![over(7), ok_status()]),
        );
        let d = limited.denial.unwrap();
        assert_eq!((d.status, d.code), (429, LIMITED_CODE));
        assert_eq!(d.headers, [("retry-after".to_string(), "7".to_string())]);
        assert_eq!(limited.limited, [0]);
        let shadow = rl.global_outcome(
            &[0, 1],
            &resp(rls::Code::OverLimit, vec![ok_status(), over(3)]),
        );
        assert!(shadow.denial.is_none());
        assert_eq!(shadow.shadow_limited, [1]);
        let nonsense = rl.global_outcome(&[0], &resp(rls::Code::Unknown, vec![]));
        assert!(nonsense.error.is_some());
        assert_eq!(rl.global_failure_denial("timeout").status, 503);
    }

    #[test]
    fn refill_over_time() {
        let (rl, s) =
            limiter(r#"{"rules":[{"name":"a","limit":{"requests":10,"per":"second","burst":1}}]}"#);
        let r = req("/", "10.0.0.1:1");
        assert!(rl.denial(&rl.check(&s, &r, NOW)).is_none());
        assert!(rl.denial(&rl.check(&s, &r, NOW + SEC / 20)).is_some());
        assert!(rl.denial(&rl.check(&s, &r, NOW + SEC / 10)).is_none());
    }
}
