//! What the filter reports about a request: the audit log line, the deny
//! response and the rule-file family a rule counts under. Pure: the filter
//! only writes these out.

use crate::transaction::{Interruption, MatchedRule};
use sdk_ext::Denial;
use serde::Serialize;

/// Stable code in the deny body of a request a rule stopped.
pub const BLOCKED_CODE: &str = "waf_blocked";
/// Stable code in the deny body of a request whose body is over the limit
/// (`body_overflow: reject`).
pub const BODY_TOO_LARGE_CODE: &str = "waf_body_too_large";
/// Stable code when the plugin has no valid configuration.
pub const UNCONFIGURED_CODE: &str = "waf_unconfigured";

/// Most matched rules listed in one audit line (CRS rarely logs more than a
/// dozen per request; this bounds the line).
pub const MAX_LOGGED_RULES: usize = 64;

/// What happened to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// Stopped by a rule.
    Deny,
    /// Rules matched in detection-only mode; the request went on.
    Detect,
    /// Stopped because the body is over the limit.
    BodyTooLarge,
}

/// One matched rule in the audit line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRule {
    /// Rule id.
    pub id: u32,
    /// Expanded `msg`.
    pub msg: String,
    /// Expanded `logdata`, cut to 200 bytes.
    pub data: String,
}

/// The structured log line written once per denial (and per detection in
/// detection-only mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Always `waf`.
    pub plugin: &'static str,
    /// What happened.
    pub action: AuditAction,
    /// Response status sent (0 for detections).
    pub status: u16,
    /// The rule that stopped the request, if one did.
    pub rule_id: Option<u32>,
    /// Ids of every logging rule that matched, in order.
    pub rule_ids: Vec<u32>,
    /// Details of those rules (at most [`MAX_LOGGED_RULES`]).
    pub rules: Vec<AuditRule>,
    /// CRS's inbound anomaly score.
    pub anomaly_score: i64,
    /// The request id (`x-request-id`).
    pub request_id: String,
    /// Request method.
    pub method: String,
    /// Request path without the query (the query may carry secrets).
    pub path: String,
}

impl AuditRecord {
    /// Builds the record from the rules that matched.
    pub fn new(
        action: AuditAction,
        interruption: Option<Interruption>,
        matches: &[MatchedRule],
        anomaly_score: i64,
        request: (&str, &str, &str),
    ) -> AuditRecord {
        let (request_id, method, path) = request;
        let logged = matches.iter().filter(|m| m.logged);
        AuditRecord {
            plugin: "waf",
            action,
            status: interruption.map_or(0, |i| i.status),
            rule_id: interruption.map(|i| i.rule_id),
            rule_ids: logged.clone().map(|m| m.id).collect(),
            rules: logged
                .take(MAX_LOGGED_RULES)
                .map(|m| AuditRule {
                    id: m.id,
                    msg: m.msg.clone(),
                    data: truncate(&m.data, 200),
                })
                .collect(),
            anomaly_score,
            request_id: request_id.to_string(),
            method: method.to_string(),
            path: path.split('?').next().unwrap_or("").to_string(),
        }
    }

    /// The record as one JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("").to_string()
}

/// The response for a request a rule stopped.
pub fn blocked(interruption: Interruption) -> Denial {
    Denial::new(
        interruption.status,
        BLOCKED_CODE,
        "request blocked by the web application firewall",
    )
}

/// The response for a body over the limit.
pub fn body_too_large(limit: usize) -> Denial {
    Denial::new(
        413,
        BODY_TOO_LARGE_CODE,
        format!("request body is larger than the {limit} bytes the firewall inspects"),
    )
}

/// The family a rule file counts under in metrics: the file name without
/// `.conf` and its `REQUEST-`/`RESPONSE-` prefix, e.g.
/// `REQUEST-942-APPLICATION-ATTACK-SQLI.conf` -> `942-APPLICATION-ATTACK-SQLI`.
pub fn rule_family(source: &str) -> &str {
    let name = source.rsplit(['/', '\\']).next().unwrap_or(source);
    let name = name.strip_suffix(".conf").unwrap_or(name);
    name.strip_prefix("REQUEST-")
        .or_else(|| name.strip_prefix("RESPONSE-"))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u32, logged: bool) -> MatchedRule {
        MatchedRule {
            id,
            phase: 2,
            msg: format!("rule {id}"),
            data: "é".repeat(150),
            severity: None,
            logged,
        }
    }

    #[test]
    fn record_names_logged_rules_and_drops_the_query() {
        let i = Interruption {
            rule_id: 949110,
            status: 403,
        };
        let r = AuditRecord::new(
            AuditAction::Deny,
            Some(i),
            &[m(901, false), m(942100, true), m(949110, true)],
            5,
            ("rid", "GET", "/a?token=secret"),
        );
        assert_eq!(r.rule_ids, vec![942100, 949110]);
        assert_eq!(r.rule_id, Some(949110));
        assert_eq!(r.path, "/a");
        assert!(r.rules[0].data.len() <= 200);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["action"], "deny");
        assert_eq!(v["status"], 403);
        assert!(!r.to_json().contains("secret"));
    }

    #[test]
    fn denials_have_stable_codes() {
        let d = blocked(Interruption {
            rule_id: 1,
            status: 403,
        });
        assert_eq!((d.status, d.code), (403, BLOCKED_CODE));
        let d = body_too_large(10);
        assert_eq!((d.status, d.code), (413, BODY_TOO_LARGE_CODE));
    }

    #[test]
    fn families() {
        assert_eq!(
            rule_family("rules/REQUEST-942-APPLICATION-ATTACK-SQLI.conf"),
            "942-APPLICATION-ATTACK-SQLI"
        );
        assert_eq!(
            rule_family("RESPONSE-951-DATA-LEAKAGES-SQL.conf"),
            "951-DATA-LEAKAGES-SQL"
        );
        assert_eq!(rule_family("overrides"), "overrides");
    }
}
