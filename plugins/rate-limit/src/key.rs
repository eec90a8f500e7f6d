//! Bucket keys: which parts of a request share a bucket.
//!
//! The client IP is the connection's address unless `trusted_xff_hops` is
//! N, greater than 0: then N proxies in front of Envoy each appended the address they saw
//! to `x-forwarded-for`, so the client is the N-th address from the right.
//! With fewer entries than N (the request skipped a proxy), or an entry that
//! is not an IP, the connection's address is used: a client cannot choose its
//! own key by writing the header.

use crate::config::KeyPart;
use sdk_ext::identity::VerifiedIdentity;
use sdk_ext::RequestView;
use std::net::IpAddr;

/// Separates key parts; cannot occur in header values Envoy accepts.
const SEP: char = '\u{1f}';

/// The client IP under `trusted_xff_hops`.
pub fn client_ip(req: &RequestView, trusted_xff_hops: u8) -> Option<IpAddr> {
    if trusted_xff_hops == 0 {
        return req.source_ip();
    }
    let xff = req.header_joined("x-forwarded-for");
    let from_xff = xff.as_deref().and_then(|xff| {
        let entries: Vec<&str> = xff.split(',').map(str::trim).collect();
        let n = usize::from(trusted_xff_hops);
        entries
            .len()
            .checked_sub(n)
            .and_then(|i| entries.get(i))
            .and_then(|e| e.parse::<IpAddr>().ok())
    });
    from_xff.or_else(|| req.source_ip())
}

/// The value of an identity key part (`consumer`, `claim`) for the
/// identity an earlier filter verified; `None` when there is no identity or
/// the claim is absent or not a string, number, boolean or list of them.
pub fn identity_value(part: &KeyPart, identity: Option<&VerifiedIdentity>) -> Option<String> {
    let id = identity?;
    match part {
        KeyPart::Consumer => id.consumer.clone().or_else(|| id.subject.clone()),
        KeyPart::Claim(name) => claim_text(id.claims.get(name)?),
        _ => None,
    }
}

fn claim_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Array(_) => None,
                other => claim_text(other),
            })
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

/// The bucket key of `req` for a rule named `rule` with `parts`; identity
/// parts read `identity` (what jwt-auth verified, if anything).
pub fn bucket_key(
    rule: &str,
    parts: &[KeyPart],
    req: &RequestView,
    identity: Option<&VerifiedIdentity>,
    trusted_xff_hops: u8,
) -> String {
    let mut key = String::with_capacity(64);
    key.push_str(rule);
    for part in parts {
        key.push(SEP);
        match part {
            KeyPart::ClientIp => match client_ip(req, trusted_xff_hops) {
                Some(ip) => crate::text::push_ip(&mut key, ip),
                None => key.push('-'),
            },
            KeyPart::Path => key.push_str(req.path_only()),
            KeyPart::Method => key.push_str(&req.method),
            KeyPart::Header(name) => match req.header_joined(name) {
                Some(v) => {
                    key.push('=');
                    key.push_str(&v);
                }
                None => key.push('-'),
            },
            KeyPart::Consumer | KeyPart::Claim(_) => match identity_value(part, identity) {
                Some(v) => {
                    key.push('=');
                    key.push_str(&v);
                }
                None => key.push('-'),
            },
        }
    }
    key
}

/// RLS descriptor entries for a global rule: `("rule", name)` then one
/// entry per key part (`client_ip`, `path`, `method`, `header.<name>`,
/// `consumer`, `claim.<name>`; a missing value is `-`).
pub fn descriptor_entries(
    rule: &str,
    parts: &[KeyPart],
    req: &RequestView,
    identity: Option<&VerifiedIdentity>,
    trusted_xff_hops: u8,
) -> Vec<(String, String)> {
    let mut out = vec![("rule".to_string(), rule.to_string())];
    for part in parts {
        out.push(match part {
            KeyPart::ClientIp => (
                "client_ip".to_string(),
                client_ip(req, trusted_xff_hops)
                    .map_or_else(|| "-".to_string(), |ip| ip.to_string()),
            ),
            KeyPart::Path => ("path".to_string(), req.path_only().to_string()),
            KeyPart::Method => ("method".to_string(), req.method.clone()),
            KeyPart::Header(name) => (
                format!("header.{name}"),
                req.header_joined(name)
                    .map_or_else(|| "-".to_string(), |v| v.into_owned()),
            ),
            KeyPart::Consumer => (
                "consumer".to_string(),
                identity_value(part, identity).unwrap_or_else(|| "-".to_string()),
            ),
            KeyPart::Claim(name) => (
                format!("claim.{name}"),
                identity_value(part, identity).unwrap_or_else(|| "-".to_string()),
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(src: &str, headers: &[(&str, &str)]) -> RequestView {
        RequestView {
            method: "GET".into(),
            path: "/a?x=1".into(),
            source: Some(src.parse().unwrap()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn client_ip_without_trusted_hops_ignores_xff() {
        let r = req("10.0.0.9:1", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_ip(&r, 0), Some("10.0.0.9".parse().unwrap()));
    }

    #[test]
    fn client_ip_counts_trusted_hops_from_the_right() {
        let r = req(
            "10.0.0.9:1",
            &[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")],
        );
        assert_eq!(client_ip(&r, 1), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(client_ip(&r, 2), Some("1.2.3.4".parse().unwrap()));
        // Too few entries or garbage: the connection address.
        assert_eq!(client_ip(&r, 4), Some("10.0.0.9".parse().unwrap()));
        let bad = req("10.0.0.9:1", &[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_ip(&bad, 1), Some("10.0.0.9".parse().unwrap()));
        // Repeated headers are one list.
        let rep = req(
            "10.0.0.9:1",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "1.2.3.4"),
            ],
        );
        assert_eq!(client_ip(&rep, 2), Some("6.6.6.6".parse().unwrap()));
    }

    #[test]
    fn keys_compose_and_separate() {
        let parts = [
            KeyPart::ClientIp,
            KeyPart::Header("x-tenant".into()),
            KeyPart::Path,
            KeyPart::Method,
        ];
        let a = bucket_key(
            "r",
            &parts,
            &req("10.0.0.1:1", &[("x-tenant", "t1")]),
            None,
            0,
        );
        let b = bucket_key(
            "r",
            &parts,
            &req("10.0.0.1:1", &[("x-tenant", "t2")]),
            None,
            0,
        );
        let missing = bucket_key("r", &parts, &req("10.0.0.1:1", &[]), None, 0);
        let empty = bucket_key(
            "r",
            &parts,
            &req("10.0.0.1:1", &[("x-tenant", "")]),
            None,
            0,
        );
        assert_ne!(a, b);
        assert_ne!(missing, empty);
        assert_eq!(a, "r\u{1f}10.0.0.1\u{1f}=t1\u{1f}/a\u{1f}GET");
        assert_eq!(bucket_key("r", &[], &req("10.0.0.1:1", &[]), None, 0), "r");
    }

    fn identity(
        consumer: Option<&str>,
        subject: &str,
        claims: serde_json::Value,
    ) -> VerifiedIdentity {
        VerifiedIdentity {
            provider: "p".into(),
            issuer: "i".into(),
            subject: Some(subject.into()),
            consumer: consumer.map(str::to_string),
            claims: claims.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn identity_parts_key_on_the_consumer_or_subject_and_claims() {
        let parts = [KeyPart::Consumer, KeyPart::Claim("tenant".into())];
        let r = req("10.0.0.1:1", &[]);
        let alice = identity(
            Some("alice"),
            "alice",
            serde_json::json!({"tenant": "acme"}),
        );
        let jwt = identity(None, "user-7", serde_json::json!({"tenant": 42}));
        assert_eq!(
            bucket_key("r", &parts, &r, Some(&alice), 0),
            "r\u{1f}=alice\u{1f}=acme"
        );
        assert_eq!(
            bucket_key("r", &parts, &r, Some(&jwt), 0),
            "r\u{1f}=user-7\u{1f}=42"
        );
        // No identity: one shared bucket, distinct from any consumer's.
        assert_eq!(bucket_key("r", &parts, &r, None, 0), "r\u{1f}-\u{1f}-");
        assert_eq!(
            descriptor_entries("r", &parts, &r, Some(&alice), 0),
            vec![
                ("rule".to_string(), "r".to_string()),
                ("consumer".to_string(), "alice".to_string()),
                ("claim.tenant".to_string(), "acme".to_string()),
            ]
        );
    }

    #[test]
    fn list_claims_join_and_objects_do_not_key() {
        let groups = KeyPart::Claim("groups".into());
        let id = identity(
            None,
            "s",
            serde_json::json!({"groups": ["a", "b"], "nested": {"x": 1}, "deep": [["a"]]}),
        );
        assert_eq!(identity_value(&groups, Some(&id)).as_deref(), Some("a,b"));
        assert_eq!(
            identity_value(&KeyPart::Claim("nested".into()), Some(&id)),
            None
        );
        assert_eq!(
            identity_value(&KeyPart::Claim("deep".into()), Some(&id)),
            None
        );
        assert_eq!(identity_value(&KeyPart::Path, Some(&id)), None);
    }
}
