//! RBAC configuration (JSON).
//!
//! ```json
//! {
//!   "policies": [
//!     { "name": "no-admin-writes", "action": "DENY",
//!       "rules": [ { "methods": ["POST", "DELETE"], "paths": [ { "prefix": "/admin" } ] } ] },
//!     { "name": "ops-admin", "action": "ALLOW",
//!       "rules": [ { "paths": [ { "prefix": "/admin" } ],
//!                    "headers": [ { "name": "x-team", "string_match": { "exact": "ops" } } ] } ] }
//!   ]
//! }
//! ```
//!
//! A policy matches when any of its rules matches; a rule matches when every
//! field it sets matches (an unset field matches anything; inside a list, any
//! element may match). `{}` as a rule matches every request.

use crate::rule::Rule;
use sdk_ext::config::{parse_config, ConfigError, FieldPath};
use sdk_ext::matcher::Cidr;
use sdk_ext::metrics::metric_name;
use serde::{Deserialize, Deserializer};

/// Most policies in one configuration (base and teams together), and most
/// rules per policy: evaluation cost stays bounded.
pub const MAX_POLICIES: usize = 256;
/// Most rules in one policy.
pub const MAX_RULES: usize = 256;

/// The whole plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacConfig {
    /// The platform's (base) policies, in order; at least one.
    pub policies: Vec<Policy>,
    /// Team bundles, each applying to requests in its scope and only able
    /// to narrow what the base allows (see `guardrail`).
    #[serde(default)]
    pub teams: Vec<Team>,
    /// Direct peers (CIDRs) whose `x-forwarded-client-cert` header names
    /// the client workload. Empty: the header is never believed.
    #[serde(default)]
    pub xfcc_trusted_proxies: Vec<Cidr>,
    /// How many proxies in front of Envoy append to `x-forwarded-for`;
    /// `remote.ip` is the entry that many hops before the direct peer.
    #[serde(default)]
    pub num_trusted_proxies: u8,
}

/// What a matching policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Action {
    /// The request may pass (if no DENY policy matches).
    #[serde(rename = "ALLOW")]
    Allow,
    /// The request is refused with 403.
    #[serde(rename = "DENY")]
    Deny,
    /// The match is logged and counted; the decision is unchanged.
    #[serde(rename = "AUDIT")]
    Audit,
}

impl Action {
    /// `allow`, `deny`, `audit`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Audit => "audit",
        }
    }
}

/// A named policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Unique name: letters, digits, `-`, `_`, `.`; used in logs and metrics.
    pub name: PolicyName,
    /// ALLOW, DENY or AUDIT.
    pub action: Action,
    /// The policy matches when any rule matches. No rules: an ALLOW policy
    /// allows nothing (Istio's "allow-nothing"), a DENY or AUDIT policy
    /// matches nothing.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Evaluate, log and count, but do not enforce (Istio's
    /// `istio.io/dry-run` annotation).
    #[serde(default)]
    pub dry_run: bool,
}

/// A team's policy bundle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    /// Team name (same characters as policy names).
    pub name: PolicyName,
    /// Hosts (exact, case-insensitive, without port) the bundle applies
    /// to; empty: any host.
    #[serde(default, deserialize_with = "lower_hosts")]
    pub hosts: Vec<String>,
    /// Path prefixes the bundle applies to; empty: any path. At least one
    /// of `hosts` and `path_prefixes` is required.
    #[serde(default)]
    pub path_prefixes: Vec<String>,
    /// The team's policies.
    pub policies: Vec<Policy>,
}

fn lower_hosts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Vec::<String>::deserialize(d)?
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect())
}

impl Team {
    /// True when a request for `host` (without port, any case) and `path`
    /// (without query) is in the team's scope.
    pub fn in_scope(&self, host: &str, path: &str) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
            && (self.path_prefixes.is_empty()
                || self
                    .path_prefixes
                    .iter()
                    .any(|p| path.starts_with(p.as_str())))
    }
}

/// A validated policy name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyName(String);

impl PolicyName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for PolicyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        sdk_ext::config::check_name(&s, "policy name", 128).map_err(serde::de::Error::custom)?;
        Ok(PolicyName(s))
    }
}

impl RbacConfig {
    /// Parses and validates configuration bytes (including the team
    /// guardrails).
    pub fn from_json(bytes: &[u8]) -> Result<RbacConfig, ConfigError> {
        let config: RbacConfig = parse_config(bytes)?;
        config.validate()?;
        crate::guardrail::check(&config)?;
        Ok(config)
    }

    /// Checks what a single field cannot: at least one policy, bounded
    /// sizes, no empty source or operation, and names unique (also as
    /// metric names) across the base and all teams.
    fn validate(&self) -> Result<(), ConfigError> {
        let root = FieldPath::root();
        if self.policies.is_empty() {
            return Err(root.field("policies").error(
                "at least one policy is required (an RBAC filter without policies would decide nothing; remove the filter instead)",
            ));
        }
        let total =
            self.policies.len() + self.teams.iter().map(|t| t.policies.len()).sum::<usize>();
        if total > MAX_POLICIES {
            return Err(root
                .field("policies")
                .error(format!("{total} policies in all, more than {MAX_POLICIES}")));
        }
        let mut seen: Vec<(String, String)> = Vec::new();
        check_policies(&self.policies, &root.field("policies"), &mut seen)?;
        for (i, team) in self.teams.iter().enumerate() {
            let here = root.field("teams").index(i);
            if team.hosts.is_empty() && team.path_prefixes.is_empty() {
                return Err(here.error(
                    "a team bundle needs `hosts` or `path_prefixes`: its scope cannot be every request",
                ));
            }
            if let Some((j, p)) = team
                .path_prefixes
                .iter()
                .enumerate()
                .find(|(_, p)| !p.starts_with('/'))
            {
                return Err(here
                    .field("path_prefixes")
                    .index(j)
                    .error(format!("path prefix {p:?} must start with '/'")));
            }
            if self.teams[..i].iter().any(|t| t.name == team.name) {
                return Err(here
                    .field("name")
                    .error(format!("team name {:?} is used twice", team.name.as_str())));
            }
            check_policies(&team.policies, &here.field("policies"), &mut seen)?;
        }
        Ok(())
    }
}

fn check_policies(
    policies: &[Policy],
    at: &FieldPath,
    seen: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    for (i, p) in policies.iter().enumerate() {
        let here = at.index(i);
        if p.rules.len() > MAX_RULES {
            return Err(here
                .field("rules")
                .error(format!("more than {MAX_RULES} rules")));
        }
        for (r, rule) in p.rules.iter().enumerate() {
            let rule_at = here.field("rules").index(r);
            if let Some(f) = rule.from.iter().position(|f| f.source.is_empty()) {
                return Err(rule_at.field("from").index(f).field("source").error(
                    "an empty source would match every request: set at least one field or drop `from`",
                ));
            }
            if let Some(t) = rule.to.iter().position(|t| t.operation.is_empty()) {
                return Err(rule_at.field("to").index(t).field("operation").error(
                    "an empty operation would match every request: set at least one field or drop `to`",
                ));
            }
        }
        let metric = metric_name("rbac", &[p.name.as_str()]);
        if let Some((_, other)) = seen.iter().find(|(m, _)| *m == metric) {
            return Err(here.field("name").error(format!(
                "policy name {:?} is already used by {other} (names must be unique across the base and all teams, ignoring case and '-'/'.' versus '_')",
                p.name.as_str()
            )));
        }
        seen.push((metric, here.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> ConfigError {
        RbacConfig::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn full_example_parses() {
        let c = RbacConfig::from_json(
            br#"{"policies":[
              {"name":"a","action":"DENY","rules":[{"methods":["POST"],"paths":[{"prefix":"/admin"}]}]},
              {"name":"b","action":"ALLOW","rules":[{"hosts":[{"exact":"API.local"}],
                "headers":[{"name":"X-Team","string_match":{"exact":"ops"}},{"name":"x-k","present_match":true,"invert_match":true}],
                "source_cidrs":["10.0.0.0/8","::1"]}]}]}"#,
        )
        .unwrap();
        assert_eq!(c.policies.len(), 2);
        assert_eq!(c.policies[1].rules[0].legacy.headers[0].name, "x-team");
        assert!(c.policies[1].rules[0].legacy.hosts[0].matches("api.local"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(
            r#"{"policies":[{"name":"a","action":"ALLOW","rules":[{"source_cidrs":["10.0.0.0/8","10.0.0.300/8"]}]}]}"#,
        );
        assert_eq!(e.path, "policies[0].rules[0].source_cidrs[1]");
        assert!(e.reason.contains("invalid CIDR"), "{e}");

        let e = err(
            r#"{"policies":[{"name":"a","action":"ALLOW","rules":[{"paths":[{"regex":"(["}]}]}]}"#,
        );
        assert_eq!(e.path, "policies[0].rules[0].paths[0]");
        assert!(e.reason.contains("invalid regex"), "{e}");

        let e = err(r#"{"policies":[{"name":"a","action":"ALLOW","rules":[{}],"bogus":1}]}"#);
        assert_eq!(e.path, "policies[0].bogus");

        let e = err(r#"{"policies":[{"name":"a","action":"PERMIT","rules":[{}]}]}"#);
        assert_eq!(e.path, "policies[0].action");
        assert!(e.reason.contains("ALLOW"), "{e}");

        let e = err(
            r#"{"policies":[{"name":"a","action":"ALLOW","rules":[{"headers":[{"name":":path","present_match":true}]}]}]}"#,
        );
        assert_eq!(e.path, "policies[0].rules[0].headers[0]");
    }

    #[test]
    fn the_readme_example_is_accepted() {
        let readme = include_str!("../README.md");
        let start = readme.find("```json\n").expect("a json block") + 8;
        let end = start + readme[start..].find("```").unwrap();
        let c = RbacConfig::from_json(&readme.as_bytes()[start..end]).unwrap();
        assert_eq!((c.policies.len(), c.teams.len()), (4, 1));
    }

    #[test]
    fn structural_checks() {
        assert_eq!(err(r#"{"policies":[]}"#).path, "policies");
        assert_eq!(
            err(
                r#"{"policies":[{"name":"a","action":"ALLOW","rules":[{"from":[{"source":{}}]}]}]}"#
            )
            .path,
            "policies[0].rules[0].from[0].source"
        );
        assert_eq!(
            err(r#"{"policies":[{"name":"a","action":"ALLOW","rules":[{"to":[{"operation":{}}]}]}]}"#).path,
            "policies[0].rules[0].to[0].operation"
        );
        let e = err(
            r#"{"policies":[{"name":"a","action":"ALLOW"}],"teams":[{"name":"t","hosts":["x"],"policies":[{"name":"A","action":"DENY"}]}]}"#,
        );
        assert_eq!(e.path, "teams[0].policies[0].name");
        assert!(e.reason.contains("policies[0]"), "{e}");
        assert_eq!(
            err(r#"{"policies":[{"name":"a","action":"ALLOW"}],"teams":[{"name":"t","policies":[]}]}"#).path,
            "teams[0]"
        );
        assert_eq!(
            err(r#"{"policies":[{"name":"a","action":"ALLOW"}],"teams":[{"name":"t","path_prefixes":["pay"],"policies":[]}]}"#).path,
            "teams[0].path_prefixes[0]"
        );
        let e = err(
            r#"{"policies":[{"name":"a-b","action":"ALLOW","rules":[{}]},{"name":"a_b","action":"DENY","rules":[{}]}]}"#,
        );
        assert_eq!(e.path, "policies[1].name");
        assert_eq!(
            err(r#"{"policies":[{"name":"a b","action":"ALLOW","rules":[{}]}]}"#).path,
            "policies[0].name"
        );
        assert!(err("{}").reason.starts_with("missing field `policies`"));
    }

    #[test]
    fn header_matcher_needs_one_test() {
        let e = err(
            r#"{"policies":[{"name":"a","action":"ALLOW","rules":[{"headers":[{"name":"x"}]}]}]}"#,
        );
        assert!(e.reason.contains("exactly one of"), "{e}");
    }
}
