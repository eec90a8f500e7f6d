//! The request view: what a policy may know about a request, read once.
//!
//! The filter fills a [`RequestView`] from the host (headers and Envoy
//! properties) when request headers arrive; policies read only the view, so
//! they are plain functions that run natively in tests and benches.

use crate::headers::Headers;
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

/// The peer's TLS identity, as Envoy reports it for the downstream connection
/// (`connection.uri_san_peer_certificate` and friends).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// URI SANs of the verified client certificate (SPIFFE ids live here).
    pub uri_sans: Vec<String>,
    /// DNS SANs of the verified client certificate.
    pub dns_sans: Vec<String>,
    /// Subject of the verified client certificate.
    pub subject: Option<String>,
}

impl PeerIdentity {
    /// True when the connection presented no certificate identity at all.
    pub fn is_empty(&self) -> bool {
        self.uri_sans.is_empty() && self.dns_sans.is_empty() && self.subject.is_none()
    }
}

/// One request as policies see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestView {
    /// `:method`, as sent (upper-case for well-behaved clients).
    pub method: String,
    /// `:path`, including any query string.
    pub path: String,
    /// `:authority` (or Host).
    pub host: String,
    /// `:scheme`.
    pub scheme: String,
    /// Regular headers in arrival order, names lower-case; pseudo-headers
    /// are not repeated here.
    pub headers: Headers,
    /// Downstream (client) address, when the host reports one.
    pub source: Option<SocketAddr>,
    /// TLS identity of the downstream peer.
    pub peer: PeerIdentity,
    /// `x-request-id` (Envoy sets one before filters run).
    pub request_id: String,
}

impl RequestView {
    /// The path without its query string or fragment.
    pub fn path_only(&self) -> &str {
        // A byte scan: both delimiters are ASCII, so the cut is on a char
        // boundary (and, in wasm, far cheaper than a `char` pattern).
        let end = self
            .path
            .bytes()
            .position(|b| b == b'?' || b == b'#')
            .unwrap_or(self.path.len());
        &self.path[..end]
    }

    /// The query string (without `?`), if any.
    pub fn query(&self) -> Option<&str> {
        let q = &self.path[self.path.find('?')? + 1..];
        Some(q.split('#').next().unwrap_or(q))
    }

    /// The host without a port.
    pub fn host_without_port(&self) -> &str {
        let h = self.host.as_str();
        if h.starts_with('[') {
            // [v6]:port
            return match h.find(']') {
                Some(i) => &h[..=i],
                None => h,
            };
        }
        match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => h,
        }
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All values of a header joined with `,` — what Envoy's header matchers
    /// compare against, so a repeated header cannot hide a value. Borrows
    /// when the header appears once.
    pub fn header_joined(&self, name: &str) -> Option<Cow<'_, str>> {
        let mut values = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v);
        let first = values.next()?;
        let Some(second) = values.next() else {
            return Some(Cow::Borrowed(first));
        };
        let mut out = format!("{first},{second}");
        for v in values {
            out.push(',');
            out.push_str(v);
        }
        Some(Cow::Owned(out))
    }

    /// The client IP address, if known.
    pub fn source_ip(&self) -> Option<IpAddr> {
        self.source.map(|s| s.ip())
    }
}

/// Parses an Envoy `source.address` property value (`ip:port`, `[v6]:port`,
/// or a bare IP).
pub fn parse_socket_address(text: &str) -> Option<SocketAddr> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Some(sa);
    }
    text.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(path: &str, host: &str) -> RequestView {
        RequestView {
            path: path.into(),
            host: host.into(),
            headers: Headers::from([("x-a", "1"), ("X-B", "2"), ("x-a", "3")]),
            ..Default::default()
        }
    }

    #[test]
    fn path_and_query_split() {
        let v = view("/a/b?x=1#f", "h");
        assert_eq!(v.path_only(), "/a/b");
        assert_eq!(v.query(), Some("x=1"));
        assert_eq!(view("/a#f", "h").path_only(), "/a");
        assert_eq!(view("/a", "h").query(), None);
    }

    #[test]
    fn host_port_is_dropped() {
        assert_eq!(view("/", "api.local:8080").host_without_port(), "api.local");
        assert_eq!(view("/", "api.local").host_without_port(), "api.local");
        assert_eq!(view("/", "[::1]:80").host_without_port(), "[::1]");
    }

    #[test]
    fn headers_first_and_joined() {
        let v = view("/", "h");
        assert_eq!(v.header("X-A"), Some("1"));
        assert_eq!(v.header("x-b"), Some("2"));
        assert_eq!(v.header_joined("x-a").as_deref(), Some("1,3"));
        assert!(matches!(v.header_joined("x-b"), Some(Cow::Borrowed("2"))));
        assert_eq!(v.header_joined("x-c"), None);
    }

    #[test]
    fn socket_addresses_parse() {
        assert_eq!(
            parse_socket_address("127.0.0.7:5000"),
            Some("127.0.0.7:5000".parse().unwrap())
        );
        assert_eq!(
            parse_socket_address("[::1]:80"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            parse_socket_address("10.1.2.3").map(|s| s.ip()),
            Some("10.1.2.3".parse().unwrap())
        );
        assert_eq!(parse_socket_address("nope"), None);
    }
}
