//! The `x-forwarded-client-cert` header in Envoy's format.
//!
//! One element per proxy hop, `;`-separated `Key=Value` pairs with keys `By`,
//! `Hash`, `Subject`, `URI` and `DNS` (repeated for each DNS SAN). As in Envoy,
//! `Subject` is always double-quoted, other values are quoted only when they
//! contain `,`, `;` or `=`, and a `"` inside quotes is escaped as `\"`.
//! The proxy always *replaces* the header (Envoy's `SANITIZE_SET`): whatever a
//! client sent is removed first, so a client can never forge an identity.
//! Reading the header is `sdk_ext::xfcc::parse_xfcc` (what the rbac plugin
//! uses); the tests here read what this module writes with it.

use crate::identity::PeerIdentity;

/// Lowercase header name.
pub const HEADER: &str = sdk_ext::xfcc::XFCC_HEADER;

/// One XFCC element describing the verified peer of this hop.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// URI SAN of this proxy's own certificate.
    pub by: Option<String>,
    /// SHA-256 hex of the peer certificate's DER.
    pub hash: String,
    /// Peer subject (RFC 2253).
    pub subject: String,
    /// First URI SAN of the peer (Envoy puts only one).
    pub uri: Option<String>,
    /// DNS SANs of the peer.
    pub dns: Vec<String>,
}

fn quote(v: &str, always: bool) -> String {
    if always || v.contains([',', ';', '=', '"']) {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

impl Element {
    /// Builds the element for `peer`, seen by a proxy whose own certificate
    /// has URI SAN `by`.
    pub fn for_peer(peer: &PeerIdentity, by: Option<&str>) -> Self {
        Element {
            by: by.map(str::to_string),
            hash: peer.sha256_hex.clone(),
            subject: peer.subject.clone(),
            uri: peer.uris.first().cloned(),
            dns: peer.dns_names.clone(),
        }
    }

    /// The header value for this element.
    pub fn to_header_value(&self) -> String {
        let mut parts = Vec::new();
        if let Some(by) = &self.by {
            parts.push(format!("By={}", quote(by, false)));
        }
        parts.push(format!("Hash={}", self.hash));
        parts.push(format!("Subject={}", quote(&self.subject, true)));
        if let Some(uri) = &self.uri {
            parts.push(format!("URI={}", quote(uri, false)));
        }
        for d in &self.dns {
            parts.push(format!("DNS={}", quote(d, false)));
        }
        parts.join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdk_ext::xfcc::{parse_xfcc, XfccError};

    fn sample() -> Element {
        Element {
            by: Some("spiffe://td/ns/edge/sa/mtls-proxy".into()),
            hash: "ab".repeat(32),
            subject: "CN=web,O=Acme \"X\"".into(),
            uri: Some("spiffe://td/ns/a/sa/web".into()),
            dns: vec!["web.example".into(), "web2.example".into()],
        }
    }

    #[test]
    fn envoy_format() {
        let v = sample().to_header_value();
        assert_eq!(
            v,
            format!(
                "By=spiffe://td/ns/edge/sa/mtls-proxy;Hash={};Subject=\"CN=web,O=Acme \\\"X\\\"\";URI=spiffe://td/ns/a/sa/web;DNS=web.example;DNS=web2.example",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn parse_round_trips() {
        let v = sample().to_header_value();
        let els = parse_xfcc(&v).unwrap();
        assert_eq!(els.len(), 1);
        let get = |k: &str| {
            els[0]
                .pairs
                .iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("Subject"), vec!["CN=web,O=Acme \"X\""]);
        assert_eq!(get("URI"), vec!["spiffe://td/ns/a/sa/web"]);
        assert_eq!(get("DNS"), vec!["web.example", "web2.example"]);
        assert_eq!(get("By"), vec!["spiffe://td/ns/edge/sa/mtls-proxy"]);
    }

    #[test]
    fn a_peer_cannot_break_out_of_a_quoted_value() {
        let mut e = sample();
        e.subject = "CN=x\\\";URI=spiffe://td/ns/admin".into();
        e.uri = None;
        let els = parse_xfcc(&e.to_header_value()).unwrap();
        assert_eq!(els.len(), 1);
        assert_eq!(els[0].get("Subject"), Some(e.subject.as_str()));
        assert_eq!(els[0].uri(), None);
        assert_eq!(parse_xfcc("By=\"x"), Err(XfccError::BadQuote));
    }

    #[test]
    fn no_by_when_proxy_has_no_uri() {
        let mut e = sample();
        e.by = None;
        e.dns.clear();
        assert!(e.to_header_value().starts_with("Hash="));
        assert!(!e.to_header_value().contains("DNS="));
    }
}
