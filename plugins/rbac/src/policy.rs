//! The RBAC decision: configuration + request attributes → [`Evaluation`].
//! No host calls, so it runs natively in tests and benches.
//!
//! Istio's order over the policies that apply to the request (the base
//! policies, plus the policies of every team whose scope covers it), dry-run
//! policies left out:
//! 1. any matching `DENY` policy → deny;
//! 2. no `ALLOW` policy applies → allow;
//! 3. a matching `ALLOW` policy → allow;
//! 4. otherwise deny.
//!
//! `AUDIT` policies never change the decision; every matching one is
//! reported. Dry-run policies are evaluated too: each match is reported,
//! and the *shadow* decision (the same order with dry-run policies
//! enforced) says what would happen if they were.

use crate::attributes::{Attributes, FactNeeds, HostFacts, IdentitySources};
use crate::config::{Action, Policy, RbacConfig};
use crate::rule::Rule;
use sdk_ext::config::ConfigError;
use sdk_ext::{Denial, RequestView};
use serde::Serialize;

/// Stable error code of every RBAC denial.
pub const DENY_CODE: &str = "rbac_denied";

/// One policy, wherever it was configured.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The policy.
    pub policy: Policy,
    /// Index into [`RbacConfig::teams`] for team policies.
    pub team: Option<usize>,
}

/// The compiled policy set.
#[derive(Debug, Clone)]
pub struct Rbac {
    entries: Vec<Entry>,
    config: RbacConfig,
    sources: IdentitySources,
    needs: FactNeeds,
}

/// A policy rule that matched: indexes into [`Rbac::entries`] and the
/// policy's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Entry index.
    pub policy: usize,
    /// Rule index within the policy.
    pub rule: usize,
}

/// Why a request was allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by this ALLOW rule, or (`None`) because no ALLOW policy
    /// applies and no DENY policy matched.
    Allow {
        /// The matching ALLOW rule.
        by: Option<Hit>,
    },
    /// Denied by this DENY rule, or (`None`) because ALLOW policies apply
    /// and none matched.
    Deny {
        /// The matching DENY rule.
        by: Option<Hit>,
    },
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The deciding rule, if one decided.
    pub fn hit(&self) -> Option<Hit> {
        match self {
            Decision::Allow { by } | Decision::Deny { by } => *by,
        }
    }
}

/// Everything the evaluation found for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The enforced decision.
    pub decision: Decision,
    /// Matching AUDIT policies (enforced ones; dry-run ones are in
    /// `dry_run`).
    pub audits: Vec<Hit>,
    /// Matching dry-run policies of any action.
    pub dry_run: Vec<Hit>,
    /// The decision with dry-run policies enforced, when any applies.
    pub shadow: Option<Decision>,
}

impl Evaluation {
    /// True when [`Rbac::records`] has lines for it: a denial, an audit
    /// match or a dry-run match.
    pub fn is_logged(&self) -> bool {
        !self.decision.is_allow() || !self.audits.is_empty() || !self.dry_run.is_empty()
    }
}

/// One structured log line: a denial, an audit match or a dry-run match.
#[derive(Debug, Serialize)]
pub struct DecisionRecord<'a> {
    /// Always `rbac`.
    pub plugin: &'static str,
    /// `deny`, `audit` or `dry_run`.
    pub decision: &'static str,
    /// The policy that matched, or `null` when no ALLOW policy matched.
    pub policy: Option<&'a str>,
    /// The team owning the policy, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<&'a str>,
    /// The policy's action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// The matching rule's index.
    pub rule: Option<usize>,
    /// For dry-run lines: what the shadow evaluation decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would: Option<&'static str>,
    /// Human reason.
    pub reason: &'static str,
    /// Workload principal (SPIFFE id without the scheme).
    pub principal: Option<&'a str>,
    /// `iss/sub` of the verified token.
    pub request_principal: Option<&'a str>,
    /// Request method.
    pub method: &'a str,
    /// Request path without query.
    pub path: &'a str,
    /// Host.
    pub host: &'a str,
    /// Client IP, if known.
    pub source: Option<String>,
    /// `x-request-id`.
    pub request_id: &'a str,
}

impl Rbac {
    /// Parses and validates a JSON configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Rbac, ConfigError> {
        Ok(Rbac::new(RbacConfig::from_json(bytes)?))
    }

    /// Compiles an already validated configuration.
    pub fn new(config: RbacConfig) -> Rbac {
        let mut entries: Vec<Entry> = config
            .policies
            .iter()
            .map(|p| Entry {
                policy: p.clone(),
                team: None,
            })
            .collect();
        for (i, t) in config.teams.iter().enumerate() {
            entries.extend(t.policies.iter().map(|p| Entry {
                policy: p.clone(),
                team: Some(i),
            }));
        }
        let sources = IdentitySources {
            xfcc_trusted_proxies: config.xfcc_trusted_proxies.clone(),
            num_trusted_proxies: usize::from(config.num_trusted_proxies),
        };
        let needs = entries
            .iter()
            .flat_map(|e| &e.policy.rules)
            .map(Rule::needs)
            .fold(sources.needs(), FactNeeds::union);
        Rbac {
            entries,
            config,
            sources,
            needs,
        }
    }

    /// Every policy (base first, then each team's), in evaluation order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// How principals and the remote IP are found.
    pub fn sources(&self) -> &IdentitySources {
        &self.sources
    }

    /// The host facts some rule (or the identity sources) may read; the
    /// filter reads only these for the decision.
    pub fn needs(&self) -> FactNeeds {
        self.needs
    }

    /// The team name of an entry, if it belongs to one.
    pub fn team_name(&self, entry: usize) -> Option<&str> {
        let team = self.entries.get(entry)?.team?;
        Some(self.config.teams.get(team)?.name.as_str())
    }

    /// Resolves the attributes and evaluates: the one call the filter makes.
    pub fn authorize(&self, view: &RequestView, facts: &HostFacts) -> Evaluation {
        self.evaluate(&Attributes::resolve(view, facts, &self.sources))
    }

    /// The enforced decision for a request without host facts (no verified
    /// identity, destination or SNI), e.g. in benches.
    pub fn decide(&self, view: &RequestView) -> Decision {
        self.authorize(view, &HostFacts::default()).decision
    }

    /// Evaluates resolved attributes; see the module docs for the order.
    pub fn evaluate(&self, a: &Attributes<'_>) -> Evaluation {
        // Per entry: `None` when it does not apply to the request (a team
        // entry out of scope), else the index of its first matching rule.
        // One vector, indexed like `entries`: this runs on every request.
        let outcome: Vec<Option<Option<usize>>> = self
            .entries
            .iter()
            .map(|e| {
                let applies = match e.team {
                    None => true,
                    Some(t) => self.config.teams.get(t).is_some_and(|t| {
                        // Read only for team entries: most policy sets
                        // have none, and this runs on every request.
                        t.in_scope(a.view.host_without_port(), a.view.path_only())
                    }),
                };
                applies.then(|| e.policy.rules.iter().position(|r| r.matches(a)))
            })
            .collect();
        let applicable = || (0..self.entries.len()).filter(|&i| outcome[i].is_some());
        let matched = |i: usize| outcome[i].flatten().map(|rule| Hit { policy: i, rule });
        let decide = |with_dry_run: bool| {
            let with_action = |action| {
                applicable().filter(move |&i| {
                    let p = &self.entries[i].policy;
                    (with_dry_run || !p.dry_run) && p.action == action
                })
            };
            if let Some(hit) = with_action(Action::Deny).find_map(matched) {
                return Decision::Deny { by: Some(hit) };
            }
            if with_action(Action::Allow).next().is_none() {
                return Decision::Allow { by: None };
            }
            match with_action(Action::Allow).find_map(matched) {
                Some(hit) => Decision::Allow { by: Some(hit) },
                None => Decision::Deny { by: None },
            }
        };
        let is_dry = |i: usize| self.entries[i].policy.dry_run;
        let audits = applicable()
            .filter(|&i| !is_dry(i) && self.entries[i].policy.action == Action::Audit)
            .filter_map(matched)
            .collect();
        let dry_run: Vec<Hit> = applicable()
            .filter(|&i| is_dry(i))
            .filter_map(matched)
            .collect();
        let shadow = applicable().any(is_dry).then(|| decide(true));
        Evaluation {
            decision: decide(false),
            audits,
            dry_run,
            shadow,
        }
    }

    /// The response for a denial. The policy name is not sent to the client
    /// (it is in the log line): a deny should not map out the policy set.
    pub fn denial(&self) -> Denial {
        Denial::new(403, DENY_CODE, "access denied by RBAC policy")
    }

    /// The log lines of an evaluation: one per denial, AUDIT match and
    /// dry-run match.
    pub fn records<'a>(
        &'a self,
        ev: &Evaluation,
        a: &'a Attributes<'a>,
    ) -> Vec<DecisionRecord<'a>> {
        let mut out = Vec::new();
        if let Decision::Deny { by } = ev.decision {
            let reason = if by.is_some() {
                "a DENY policy matched"
            } else {
                "no ALLOW policy matched"
            };
            out.push(self.record("deny", by, None, reason, a));
        }
        for hit in &ev.audits {
            out.push(self.record("audit", Some(*hit), None, "an AUDIT policy matched", a));
        }
        let would = ev
            .shadow
            .map(|d| if d.is_allow() { "allow" } else { "deny" });
        for hit in &ev.dry_run {
            out.push(self.record(
                "dry_run",
                Some(*hit),
                would,
                "a dry-run policy matched (not enforced)",
                a,
            ));
        }
        out
    }

    fn record<'a>(
        &'a self,
        decision: &'static str,
        hit: Option<Hit>,
        would: Option<&'static str>,
        reason: &'static str,
        a: &'a Attributes<'a>,
    ) -> DecisionRecord<'a> {
        let entry = hit.and_then(|h| self.entries.get(h.policy));
        DecisionRecord {
            plugin: "rbac",
            decision,
            policy: entry.map(|e| e.policy.name.as_str()),
            team: hit.and_then(|h| self.team_name(h.policy)),
            action: entry.map(|e| e.policy.action.as_str()),
            rule: hit.map(|h| h.rule),
            would,
            reason,
            principal: a.principal_name.as_deref(),
            request_principal: a.request_principal.as_deref(),
            method: &a.view.method,
            path: a.view.path_only(),
            host: &a.view.host,
            source: a.source_ip.map(|ip| ip.to_string()),
            request_id: &a.view.request_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdk_ext::identity::VerifiedIdentity;
    use sdk_ext::PeerIdentity;

    const CONFIG: &str = r#"{"policies":[
      {"name":"no-admin-writes","action":"DENY","rules":[{"methods":["POST","DELETE"],"paths":[{"prefix":"/admin"}]}]},
      {"name":"blocked-net","action":"DENY","rules":[{"source_cidrs":["10.66.0.0/16"]}]},
      {"name":"ops-admin","action":"ALLOW","rules":[{"paths":[{"prefix":"/admin"}],
         "headers":[{"name":"x-team","string_match":{"exact":"ops"}}]}]},
      {"name":"public","action":"ALLOW","rules":[{"paths":[{"template":"/public/{**}"}]},{"hosts":[{"exact":"open.local"}]}]}
    ]}"#;

    fn rbac(json: &str) -> Rbac {
        Rbac::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn reads_only_the_host_facts_some_rule_needs() {
        let none = FactNeeds::default();
        let paths_and_headers = r#"{"policies":[{"name":"p","action":"ALLOW","rules":[
            {"paths":[{"prefix":"/a"}],"headers":[{"name":"x-team","string_match":{"exact":"ops"}}]},
            {"to":[{"operation":{"methods":["GET"],"hosts":["a.local"]}}],
             "when":[{"key":"request.headers[x-a]","values":["1"]}]}]}]}"#;
        assert_eq!(rbac(paths_and_headers).needs(), none);
        // The example policy set has a source_cidrs rule.
        assert_eq!(
            rbac(CONFIG).needs(),
            FactNeeds {
                source: true,
                ..none
            }
        );
        let cases = [
            (
                r#"{"from":[{"source":{"principals":["a"]}}]}"#,
                FactNeeds { peer: true, ..none },
            ),
            (
                r#"{"from":[{"source":{"not_namespaces":["a"]}}]}"#,
                FactNeeds { peer: true, ..none },
            ),
            (
                r#"{"from":[{"source":{"request_principals":["*"]}}]}"#,
                FactNeeds {
                    identity: true,
                    ..none
                },
            ),
            (
                r#"{"from":[{"source":{"remote_ip_blocks":["10.0.0.0/8"]}}]}"#,
                FactNeeds {
                    source: true,
                    ..none
                },
            ),
            (
                r#"{"to":[{"operation":{"not_ports":["8080"]}}]}"#,
                FactNeeds {
                    destination: true,
                    ..none
                },
            ),
            (
                r#"{"when":[{"key":"destination.ip","values":["10.0.0.1"]}]}"#,
                FactNeeds {
                    destination: true,
                    ..none
                },
            ),
            (
                r#"{"when":[{"key":"connection.sni","values":["a"]}]}"#,
                FactNeeds { sni: true, ..none },
            ),
            (
                r#"{"when":[{"key":"request.auth.claims[groups]","values":["a"]}]}"#,
                FactNeeds {
                    identity: true,
                    ..none
                },
            ),
            (
                r#"{"when":[{"key":"source.namespace","values":["a"]}]}"#,
                FactNeeds { peer: true, ..none },
            ),
        ];
        for (rule, want) in cases {
            let json =
                format!(r#"{{"policies":[{{"name":"p","action":"DENY","rules":[{rule}]}}]}}"#);
            assert_eq!(rbac(&json).needs(), want, "{rule}");
        }
        // With trusted proxies the peer address decides whether XFCC is
        // believed or removed, whatever the rules read.
        let trusted = r#"{"xfcc_trusted_proxies":["10.0.0.0/8"],"policies":[{"name":"p","action":"DENY","rules":[{"paths":[{"prefix":"/x"}]}]}]}"#;
        assert_eq!(
            rbac(trusted).needs(),
            FactNeeds {
                source: true,
                ..none
            }
        );
    }

    #[test]
    fn evaluations_with_log_lines_say_so() {
        let r = rbac(CONFIG);
        let check = |v: RequestView| {
            let facts = HostFacts::default();
            let ev = r.authorize(&v, &facts);
            let a = Attributes::resolve(&v, &facts, r.sources());
            assert_eq!(ev.is_logged(), !r.records(&ev, &a).is_empty());
            ev.is_logged()
        };
        assert!(!check(req("GET", "/public/x", &[])));
        assert!(check(req("DELETE", "/admin/x", &[])));
        assert!(check(req("GET", "/elsewhere", &[])));
    }

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestView {
        RequestView {
            method: method.into(),
            path: path.into(),
            host: "api.local".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            source: Some("127.0.0.1:4000".parse().unwrap()),
            request_id: "rid".into(),
            ..Default::default()
        }
    }

    fn decide(r: &Rbac, v: &RequestView) -> Decision {
        r.decide(v)
    }

    fn hit(policy: usize) -> Option<Hit> {
        Some(Hit { policy, rule: 0 })
    }

    #[test]
    fn version_one_configs_decide_as_before() {
        let r = rbac(CONFIG);
        let d = |m, p, h: &[(&str, &str)]| decide(&r, &req(m, p, h));
        assert_eq!(
            d("GET", "/admin/users", &[("x-team", "ops")]),
            Decision::Allow { by: hit(2) }
        );
        assert_eq!(
            d("POST", "/admin/users", &[("x-team", "ops")]),
            Decision::Deny { by: hit(0) }
        );
        assert_eq!(
            d("GET", "/admin", &[("x-team", "dev")]),
            Decision::Deny { by: None }
        );
        assert!(!d("GET", "/private?x=/public/a", &[]).is_allow());
        assert!(d("GET", "/public/a?x=1", &[]).is_allow());
        assert!(!d("GET", "/admin", &[("x-team", "dev"), ("x-team", "ops")]).is_allow());
        let mut v = req("GET", "/public/x", &[]);
        v.source = Some("10.66.1.2:1".parse().unwrap());
        assert_eq!(decide(&r, &v), Decision::Deny { by: hit(1) });
        v.host = "OPEN.local:8080".into();
        v.path = "/x".into();
        v.source = None;
        assert_eq!(
            decide(&r, &v),
            Decision::Allow {
                by: Some(Hit { policy: 3, rule: 1 })
            }
        );
    }

    #[test]
    fn istio_order_with_audit_and_allow_nothing() {
        let only_deny = rbac(
            r#"{"policies":[{"name":"d","action":"DENY","rules":[{"to":[{"operation":{"paths":["/x"]}}]}]},
            {"name":"a","action":"AUDIT","rules":[{}]}]}"#,
        );
        let ev = only_deny.authorize(&req("GET", "/y", &[]), &HostFacts::default());
        assert_eq!(ev.decision, Decision::Allow { by: None });
        assert_eq!(ev.audits, vec![Hit { policy: 1, rule: 0 }]);
        assert_eq!(
            decide(&only_deny, &req("GET", "/x", &[])),
            Decision::Deny { by: hit(0) }
        );
        let nothing = rbac(r#"{"policies":[{"name":"allow-nothing","action":"ALLOW"}]}"#);
        assert_eq!(
            decide(&nothing, &req("GET", "/", &[])),
            Decision::Deny { by: None }
        );
    }

    #[test]
    fn dry_run_is_reported_not_enforced() {
        let r = rbac(
            r#"{"policies":[
            {"name":"try-deny","action":"DENY","dry_run":true,"rules":[{"to":[{"operation":{"methods":["DELETE"]}}]}]},
            {"name":"try-allow","action":"ALLOW","dry_run":true,"rules":[{"to":[{"operation":{"paths":["/ok"]}}]}]},
            {"name":"deny-x","action":"DENY","rules":[{"to":[{"operation":{"paths":["/x"]}}]}]}]}"#,
        );
        let ev = r.authorize(&req("DELETE", "/ok", &[]), &HostFacts::default());
        assert_eq!(ev.decision, Decision::Allow { by: None });
        assert_eq!(ev.dry_run.len(), 2);
        assert_eq!(ev.shadow, Some(Decision::Deny { by: hit(0) }));
        let ev = r.authorize(&req("GET", "/other", &[]), &HostFacts::default());
        assert!(ev.decision.is_allow());
        assert!(ev.dry_run.is_empty());
        assert_eq!(ev.shadow, Some(Decision::Deny { by: None }));
        let v = req("DELETE", "/ok", &[]);
        let f = HostFacts::default();
        let a = Attributes::resolve(&v, &f, r.sources());
        let recs = r.records(&r.evaluate(&a), &a);
        assert_eq!(recs.len(), 2);
        let line = serde_json::to_value(&recs[0]).unwrap();
        assert_eq!(line["decision"], "dry_run");
        assert_eq!(line["policy"], "try-deny");
        assert_eq!(line["would"], "deny");
    }

    #[test]
    fn team_policies_apply_in_scope_only() {
        let r = rbac(
            r#"{"policies":[{"name":"base-deny","action":"DENY","rules":[{"to":[{"operation":{"paths":["*/debug"]}}]}]}],
            "teams":[{"name":"pay","path_prefixes":["/pay/"],"policies":[
              {"name":"pay-allow","action":"ALLOW","rules":[{"when":[{"key":"request.auth.claims[groups]","values":["pay"]}]}]}]}]}"#,
        );
        let with_groups = |g: &str| HostFacts {
            identity: Some(VerifiedIdentity {
                issuer: "i".into(),
                claims: serde_json::json!({"groups": [g]})
                    .as_object()
                    .unwrap()
                    .clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let ev = |path, g| {
            r.authorize(&req("GET", path, &[]), &with_groups(g))
                .decision
        };
        assert_eq!(ev("/pay/a", "pay"), Decision::Allow { by: hit(1) });
        assert_eq!(ev("/pay/a", "dev"), Decision::Deny { by: None });
        assert_eq!(ev("/other", "dev"), Decision::Allow { by: None });
        assert_eq!(ev("/pay/debug", "pay"), Decision::Deny { by: hit(0) });
        assert_eq!(r.team_name(1), Some("pay"));
    }

    #[test]
    fn team_host_scope_ignores_case_port_and_query() {
        let r = rbac(
            r#"{"policies":[{"name":"base-audit","action":"AUDIT","rules":[{"paths":[{"exact":"/never"}]}]}],
            "teams":[{"name":"shop","hosts":["Shop.Local"],"path_prefixes":["/api"],"policies":[
              {"name":"shop-deny","action":"DENY","rules":[{}]}]}]}"#,
        );
        let at = |host: &str, path: &str| {
            let mut v = req("GET", path, &[]);
            v.host = host.into();
            decide(&r, &v)
        };
        let denied = Decision::Deny { by: hit(1) };
        assert_eq!(at("shop.local", "/api/x"), denied);
        assert_eq!(at("SHOP.LOCAL:8443", "/api?q=1"), denied);
        assert_eq!(
            at("shop.local.evil", "/api/x"),
            Decision::Allow { by: None }
        );
        assert_eq!(at("shop.local", "/web?/api"), Decision::Allow { by: None });
    }

    #[test]
    fn principals_from_peer_certificate() {
        let r = rbac(
            r#"{"policies":[{"name":"web","action":"ALLOW","rules":[{"from":[{"source":{"principals":["cluster.local/ns/shop/sa/web"]}}]}]}]}"#,
        );
        let mut v = req("GET", "/", &[]);
        assert!(!decide(&r, &v).is_allow());
        v.peer = PeerIdentity {
            uri_sans: vec!["spiffe://cluster.local/ns/shop/sa/web".into()],
            ..Default::default()
        };
        assert!(decide(&r, &v).is_allow());
        v.peer.uri_sans = vec!["spiffe://cluster.local/ns/shop/sa/other".into()];
        assert!(!decide(&r, &v).is_allow());
    }

    #[test]
    fn denial_and_record() {
        let r = rbac(CONFIG);
        let v = req("POST", "/admin/x?q=1", &[]);
        let f = HostFacts::default();
        let a = Attributes::resolve(&v, &f, r.sources());
        let ev = r.evaluate(&a);
        let rec = serde_json::to_value(&r.records(&ev, &a)[0]).unwrap();
        assert_eq!(rec["policy"], "no-admin-writes");
        assert_eq!(rec["decision"], "deny");
        assert_eq!(rec["action"], "deny");
        assert_eq!(rec["rule"], 0);
        assert_eq!(rec["path"], "/admin/x");
        assert_eq!(rec["source"], "127.0.0.1");
        assert!(rec.get("team").is_none());
        let body: serde_json::Value = serde_json::from_slice(&r.denial().body("rid")).unwrap();
        assert_eq!(body["code"], DENY_CODE);
        assert_eq!(r.denial().status, 403);
    }
}
