//! Team guardrails: a team bundle may only narrow what the base allows.
//!
//! # What "narrow" means
//!
//! A team bundle applies to the requests in its scope (`hosts` and/or
//! `path_prefixes`). For such a request the decision is Istio's order over
//! the enforced base policies **and** the team's policies together. The
//! bundle *narrows* the base when, for every request,
//! `decision(base + team) = allow` implies `decision(base) = allow`.
//!
//! # How it is checked (soundly: when in doubt, refuse)
//!
//! - Team `DENY` policies only add denials; `AUDIT` and dry-run policies do
//!   not change decisions. They are always accepted.
//! - Team `ALLOW` policies (dry-run ones too, so that turning dry-run off
//!   can never widen access):
//!   - if the base has no enforced `ALLOW` policy, the base allows every
//!     request no `DENY` matches, so a team `ALLOW` can only make in-scope
//!     requests that match none of them denied: accepted;
//!   - otherwise **every rule** of the team policy must be *provably
//!     contained* in **one** enforced base `ALLOW` rule: each field the base
//!     rule sets must be implied by the team rule's fields (or the team
//!     scope, for hosts and paths). Any request the team rule allows is then
//!     allowed by that base rule — unless a base `DENY` matches, which
//!     denies it in both. A rule that cannot be shown contained is refused,
//!     naming it (`teams[i].policies[j].rules[k]`).
//! - Implication per field (see [`crate::value`]): positive values must be
//!   covered value by value (`/api/v1/*` is inside `/api/*`; an exact
//!   value inside a prefix, suffix, template or `*`; a CIDR inside a CIDR;
//!   ports by equality); a base `not_` value must appear in (or be covered
//!   by) the team's own `not_` list, or be provably disjoint from every
//!   positive team value (`/payments/*` never matches `/admin*`). `from`
//!   entries: each team source must be implied by some base source (the
//!   base's `from` is any-of); `to` likewise; each base `when` condition
//!   must be implied by a team condition on the same key.
//! - Version-1 request fields (`methods`, `paths`, … at rule level) are not
//!   analysed: a team rule using them is refused, and a base rule using
//!   them never counts as containing anything.

use crate::config::{Action, Policy, RbacConfig, Team};
use crate::rule::{Condition, Operation, Rule, Source, Values};
use crate::value::{Patterns, ValueMatch};
use sdk_ext::config::{ConfigError, FieldPath};
use sdk_ext::matcher::Cidr;

/// Refuses team bundles that could widen what the base allows.
pub fn check(config: &RbacConfig) -> Result<(), ConfigError> {
    let enforced_allow = |p: &&Policy| p.action == Action::Allow && !p.dry_run;
    let base_has_allow = config.policies.iter().any(|p| enforced_allow(&p));
    let base_rules: Vec<&Rule> = config
        .policies
        .iter()
        .filter(enforced_allow)
        .flat_map(|p| &p.rules)
        .filter(|r| !r.has_legacy_fields())
        .collect();
    for (i, team) in config.teams.iter().enumerate() {
        for (j, policy) in team.policies.iter().enumerate() {
            for (k, rule) in policy.rules.iter().enumerate() {
                let at = FieldPath::root()
                    .field("teams")
                    .index(i)
                    .field("policies")
                    .index(j)
                    .field("rules")
                    .index(k);
                if policy.action == Action::Allow && rule.has_legacy_fields() {
                    return Err(at.error(
                        "team ALLOW rules must use `from`/`to`/`when`: version-1 fields (`methods`, `paths`, `hosts`, `headers`, `source_cidrs` at rule level) cannot be checked for narrowing",
                    ));
                }
                if policy.action != Action::Allow || !base_has_allow {
                    continue;
                }
                if !base_rules.iter().any(|b| rule_within(rule, team, b)) {
                    return Err(at.error(format!(
                        "team {:?}, policy {:?}: this ALLOW rule could allow requests the base policies do not allow — no enforced base ALLOW rule provably contains it (every field the base rule sets must be implied by this rule or the team scope). Narrow it to fit inside one base ALLOW rule, or use DENY",
                        team.name.as_str(),
                        policy.name.as_str()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Provably: every in-scope request `t` matches, `b` matches.
fn rule_within(t: &Rule, team: &Team, b: &Rule) -> bool {
    let from_ok = b.from.is_empty()
        || (!t.from.is_empty()
            && t.from.iter().all(|ts| {
                b.from
                    .iter()
                    .any(|bs| source_within(&ts.source, &bs.source))
            }));
    let scoped: Vec<Operation> = if t.to.is_empty() {
        vec![with_scope(&Operation::default(), team)]
    } else {
        t.to.iter()
            .map(|o| with_scope(&o.operation, team))
            .collect()
    };
    let to_ok = b.to.is_empty()
        || scoped
            .iter()
            .all(|to| b.to.iter().any(|bo| operation_within(to, &bo.operation)));
    let when_ok = b.when.iter().all(|bc| {
        t.when
            .iter()
            .any(|tc| tc.key == bc.key && condition_within(tc, bc))
    });
    from_ok && to_ok && when_ok
}

/// The operation narrowed by the team scope where it leaves hosts or paths
/// unset (a scope value that is not a plain literal is left out, which
/// only makes containment harder to show).
fn with_scope(op: &Operation, team: &Team) -> Operation {
    let mut op = op.clone();
    if op.hosts.is_empty() {
        op.hosts = literal_patterns(team.hosts.iter().map(String::clone));
    }
    if op.paths.is_empty() {
        op.paths = literal_patterns(team.path_prefixes.iter().map(|p| format!("{p}*")));
    }
    op
}

fn literal_patterns(raw: impl Iterator<Item = String>) -> Patterns {
    let parsed: Option<Vec<ValueMatch>> = raw
        .map(|s| {
            let body = s.strip_suffix('*').unwrap_or(&s);
            (!body.contains('*'))
                .then(|| ValueMatch::parse(&s, false).ok())
                .flatten()
        })
        .collect();
    Patterns(parsed.unwrap_or_default())
}

/// Positive and negative string fields: `t` (values `tv`, not `tn`) implies
/// `b` (values `bv`, not `bn`).
fn strings_within(tv: &Patterns, tn: &Patterns, bv: &Patterns, bn: &Patterns) -> bool {
    bv.covers(tv)
        && bn.0.iter().all(|n| {
            tn.0.iter().any(|x| x.covers(n) || x == n)
                || (!tv.is_empty() && tv.0.iter().all(|v| v.disjoint(n)))
        })
}

fn cidrs_within(tv: &[Cidr], tn: &[Cidr], bv: &[Cidr], bn: &[Cidr]) -> bool {
    let pos = bv.is_empty()
        || (!tv.is_empty() && tv.iter().all(|t| bv.iter().any(|b| b.contains_range(t))));
    pos && bn.iter().all(|n| {
        tn.iter().any(|x| x.contains_range(n))
            || (!tv.is_empty() && tv.iter().all(|v| !v.overlaps(n)))
    })
}

fn ports_within(tv: &[u16], tn: &[u16], bv: &[u16], bn: &[u16]) -> bool {
    let pos = bv.is_empty() || (!tv.is_empty() && tv.iter().all(|p| bv.contains(p)));
    pos && bn
        .iter()
        .all(|n| tn.contains(n) || (!tv.is_empty() && !tv.contains(n)))
}

fn source_within(t: &Source, b: &Source) -> bool {
    strings_within(
        &t.principals,
        &t.not_principals,
        &b.principals,
        &b.not_principals,
    ) && strings_within(
        &t.request_principals,
        &t.not_request_principals,
        &b.request_principals,
        &b.not_request_principals,
    ) && strings_within(
        &t.namespaces,
        &t.not_namespaces,
        &b.namespaces,
        &b.not_namespaces,
    ) && strings_within(
        &t.trust_domains,
        &t.not_trust_domains,
        &b.trust_domains,
        &b.not_trust_domains,
    ) && cidrs_within(
        &t.ip_blocks,
        &t.not_ip_blocks,
        &b.ip_blocks,
        &b.not_ip_blocks,
    ) && cidrs_within(
        &t.remote_ip_blocks,
        &t.not_remote_ip_blocks,
        &b.remote_ip_blocks,
        &b.not_remote_ip_blocks,
    )
}

fn operation_within(t: &Operation, b: &Operation) -> bool {
    strings_within(&t.hosts, &t.not_hosts, &b.hosts, &b.not_hosts)
        && ports_within(&t.ports, &t.not_ports, &b.ports, &b.not_ports)
        && strings_within(&t.methods, &t.not_methods, &b.methods, &b.not_methods)
        && strings_within(&t.paths, &t.not_paths, &b.paths, &b.not_paths)
}

fn condition_within(t: &Condition, b: &Condition) -> bool {
    match (&t.values, &t.not_values, &b.values, &b.not_values) {
        (
            Values::Patterns(tv),
            Values::Patterns(tn),
            Values::Patterns(bv),
            Values::Patterns(bn),
        ) => strings_within(tv, tn, bv, bn),
        (Values::Cidrs(tv), Values::Cidrs(tn), Values::Cidrs(bv), Values::Cidrs(bn)) => {
            cidrs_within(tv, tn, bv, bn)
        }
        (Values::Ports(tv), Values::Ports(tn), Values::Ports(bv), Values::Ports(bn)) => {
            ports_within(tv, tn, bv, bn)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::RbacConfig;

    const BASE: &str = r#"{"name":"mesh","action":"ALLOW","rules":[
        {"from":[{"source":{"namespaces":["shop","pay"]}}],
         "to":[{"operation":{"paths":["/payments/*","/shop/*"],"not_paths":["/payments/admin*"],"methods":["GET","POST"]}}]},
        {"to":[{"operation":{"paths":["/public/*"]}}]}]},
      {"name":"no-debug","action":"DENY","rules":[{"to":[{"operation":{"paths":["*/debug"]}}]}]}"#;

    fn config(team_policies: &str) -> Result<RbacConfig, sdk_ext::ConfigError> {
        RbacConfig::from_json(
            format!(
                r#"{{"policies":[{BASE}],"teams":[{{"name":"payments","path_prefixes":["/payments/"],"policies":[{team_policies}]}}]}}"#
            )
            .as_bytes(),
        )
    }

    #[test]
    fn narrowing_bundles_are_accepted() {
        for ok in [
            // Narrower source, paths inside the base's, method subset.
            r#"{"name":"t1","action":"ALLOW","rules":[{"from":[{"source":{"principals":["cluster.local/ns/pay/sa/api"],"namespaces":["pay"]}}],"to":[{"operation":{"methods":["GET"],"paths":["/payments/v1/*"]}}]}]}"#,
            // Paths left to the scope (/payments/*), which the base's
            // not_paths cannot be shown disjoint from: refused below, but
            // with the exclusion repeated it is accepted.
            r#"{"name":"t2","action":"ALLOW","rules":[{"from":[{"source":{"namespaces":["shop"]}}],"to":[{"operation":{"methods":["POST"],"not_paths":["/payments/admin*"]}}]}]}"#,
            // Inside the public rule, with extra conditions.
            r#"{"name":"t3","action":"ALLOW","rules":[{"to":[{"operation":{"paths":["/public/pay/*"]}}],"when":[{"key":"request.auth.claims[groups]","values":["pay"]}]}]}"#,
            // DENY and AUDIT are always narrowing; an empty ALLOW allows nothing.
            r#"{"name":"t4","action":"DENY","rules":[{}]},{"name":"t5","action":"AUDIT","rules":[{"methods":["GET"]}]},{"name":"t6","action":"ALLOW"}"#,
        ] {
            if let Err(e) = config(ok) {
                panic!("{ok}: {e}");
            }
        }
    }

    #[test]
    fn widening_rules_are_refused_by_path() {
        for (bad, path) in [
            // Any source.
            (
                r#"{"name":"w1","action":"ALLOW","rules":[{"to":[{"operation":{"paths":["/payments/x"]}}]}]}"#,
                "teams[0].policies[0].rules[0]",
            ),
            // A namespace the base does not allow.
            (
                r#"{"name":"w2","action":"ALLOW","rules":[{"from":[{"source":{"namespaces":["dev"]}}],"to":[{"operation":{"methods":["GET"]}}]}]}"#,
                "teams[0].policies[0].rules[0]",
            ),
            // DELETE is not in the base.
            (
                r#"{"name":"w3","action":"ALLOW","rules":[{"from":[{"source":{"namespaces":["pay"]}}],"to":[{"operation":{"methods":["DELETE"],"not_paths":["/payments/admin*"]}}]}]}"#,
                "teams[0].policies[0].rules[0]",
            ),
            // The base excludes /payments/admin*; the scope does not.
            (
                r#"{"name":"w4","action":"ALLOW","rules":[{"from":[{"source":{"namespaces":["pay"]}}],"to":[{"operation":{"methods":["GET"]}}]}]}"#,
                "teams[0].policies[0].rules[0]",
            ),
            // Second rule widens; dry-run does not excuse it.
            (
                r#"{"name":"w5","action":"ALLOW","dry_run":true,"rules":[{"to":[{"operation":{"paths":["/public/a"]}}]},{"from":[{"source":{"notNamespaces":["x"]}}],"to":[{"operation":{"paths":["/payments/a"]}}]}]}"#,
                "teams[0].policies[0].rules[1]",
            ),
            // Version-1 fields cannot be analysed.
            (
                r#"{"name":"w6","action":"ALLOW","rules":[{"methods":["GET"]}]}"#,
                "teams[0].policies[0].rules[0]",
            ),
        ] {
            let e = config(bad).expect_err(bad);
            assert_eq!(e.path, path, "{bad}: {e}");
        }
        let e = config(r#"{"name":"w1","action":"ALLOW","rules":[{}]}"#).unwrap_err();
        assert!(e.reason.contains("team \"payments\", policy \"w1\""), "{e}");
        assert!(e.reason.contains("could allow requests"), "{e}");
    }

    #[test]
    fn without_base_allow_any_team_allow_narrows() {
        let c = RbacConfig::from_json(
            br#"{"policies":[{"name":"d","action":"DENY","rules":[{"to":[{"operation":{"paths":["/x"]}}]}]},
                             {"name":"shadow","action":"ALLOW","dry_run":true,"rules":[]}],
                 "teams":[{"name":"t","hosts":["API.local"],"policies":[{"name":"a","action":"ALLOW","rules":[{}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(c.teams[0].hosts, ["api.local"]);
    }

    #[test]
    fn cidr_and_condition_containment() {
        let base = r#"{"policies":[{"name":"b","action":"ALLOW","rules":[{"from":[{"source":{"ip_blocks":["10.0.0.0/8"],"not_ip_blocks":["10.66.0.0/16"]}}],"when":[{"key":"request.auth.claims[groups]","values":["eng*"]}]}]}],"teams":[{"name":"t","hosts":["a"],"policies":[{"name":"a","action":"ALLOW","rules":[RULE]}]}]}"#;
        let run = |rule: &str| RbacConfig::from_json(base.replace("RULE", rule).as_bytes());
        assert!(run(r#"{"from":[{"source":{"ip_blocks":["10.1.0.0/16"]}}],"when":[{"key":"request.auth.claims[groups]","values":["eng-pay"]}]}"#).is_ok());
        assert!(run(r#"{"from":[{"source":{"ip_blocks":["10.0.0.0/8"],"not_ip_blocks":["10.66.0.0/16"]}}],"when":[{"key":"request.auth.claims[groups]","values":["eng"]}]}"#).is_ok());
        assert!(run(r#"{"from":[{"source":{"ip_blocks":["10.0.0.0/8"]}}],"when":[{"key":"request.auth.claims[groups]","values":["eng"]}]}"#).is_err());
        assert!(run(r#"{"from":[{"source":{"ip_blocks":["10.1.0.0/16"]}}],"when":[{"key":"request.auth.claims[groups]","values":["ops"]}]}"#).is_err());
        assert!(run(r#"{"from":[{"source":{"ip_blocks":["10.1.0.0/16"]}}]}"#).is_err());
    }
}
