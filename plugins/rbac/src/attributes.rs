//! The request attributes rules look at, resolved once per request.
//!
//! The filter reads the [`RequestView`] and the [`HostFacts`] (Envoy
//! properties and the verified identity); [`Attributes::resolve`] turns them
//! into the values Istio's fields and conditions name:
//!
//! | Istio name | here | from |
//! | --- | --- | --- |
//! | `source.principal`, `principals` | [`Attributes::principal`] | the peer certificate's SPIFFE URI SAN, or the last XFCC element when the direct peer is a trusted proxy |
//! | `source.namespace`, `namespaces` | [`Attributes::principal`]'s `ns/<ns>` | the same SPIFFE id |
//! | `request.auth.principal`, `requestPrincipals` | [`Attributes::request_principal`] | `iss/sub` of the identity jwt-auth verified |
//! | `request.auth.*` | [`Attributes::identity`] | the property `palisade.identity` |
//! | `source.ip`, `ipBlocks` | [`Attributes::source_ip`] | Envoy's `source.address` |
//! | `remote.ip`, `remoteIpBlocks` | [`Attributes::remote_ip`] | `x-forwarded-for`, `num_trusted_proxies` hops before the peer |
//! | `destination.ip`/`.port`, `ports` | [`HostFacts::destination`] | Envoy's `destination.address` |
//! | `connection.sni` | [`HostFacts::sni`] | `connection.requested_server_name` |

use sdk_ext::identity::VerifiedIdentity;
use sdk_ext::matcher::Cidr;
use sdk_ext::spiffe::SpiffeId;
use sdk_ext::xfcc::{parse_xfcc, XFCC_HEADER};
use sdk_ext::RequestView;
use std::net::{IpAddr, SocketAddr};

/// Most `x-forwarded-for` entries looked at.
const MAX_XFF_ENTRIES: usize = 64;

/// What the host knows beyond the request view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFacts {
    /// Downstream connection local address (`destination.address`).
    pub destination: Option<SocketAddr>,
    /// SNI the client asked for (`connection.requested_server_name`).
    pub sni: Option<String>,
    /// The identity an earlier filter verified.
    pub identity: Option<VerifiedIdentity>,
}

/// Which facts beyond the request's headers a policy set reads. Each one
/// costs the filter a host call per request (a property read), so it
/// reads only those some rule can look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactNeeds {
    /// `source.address` (source and remote IPs, trusted-proxy checks).
    pub source: bool,
    /// The peer certificate (the workload principal).
    pub peer: bool,
    /// `destination.address` (destination IP and port).
    pub destination: bool,
    /// `connection.requested_server_name`.
    pub sni: bool,
    /// The verified identity (`request.auth.*`).
    pub identity: bool,
}

impl FactNeeds {
    /// Every fact: what decision log lines are built from.
    pub const ALL: FactNeeds = FactNeeds {
        source: true,
        peer: true,
        destination: true,
        sni: true,
        identity: true,
    };

    /// The facts either needs.
    pub fn union(self, other: FactNeeds) -> FactNeeds {
        FactNeeds {
            source: self.source || other.source,
            peer: self.peer || other.peer,
            destination: self.destination || other.destination,
            sni: self.sni || other.sni,
            identity: self.identity || other.identity,
        }
    }
}

/// How the workload principal and the remote IP are found.
#[derive(Debug, Clone, Default)]
pub struct IdentitySources {
    /// Direct peers whose `x-forwarded-client-cert` is believed. Empty: the
    /// header is never read.
    pub xfcc_trusted_proxies: Vec<Cidr>,
    /// Proxies in front of Envoy that append to `x-forwarded-for`.
    pub num_trusted_proxies: usize,
}

/// Where the workload principal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalSource {
    /// The downstream TLS peer certificate Envoy verified.
    PeerCertificate,
    /// The XFCC header of a trusted proxy.
    TrustedXfcc,
}

/// The resolved attributes of one request.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    /// The request.
    pub view: &'a RequestView,
    /// Host facts.
    pub facts: &'a HostFacts,
    /// The workload identity, if any.
    pub principal: Option<SpiffeId>,
    /// Where [`Attributes::principal`] came from.
    pub principal_source: Option<PrincipalSource>,
    /// `principal` without `spiffe://`, as Istio writes it.
    pub principal_name: Option<String>,
    /// `iss/sub` of the verified identity.
    pub request_principal: Option<String>,
    /// The verified identity.
    pub identity: Option<&'a VerifiedIdentity>,
    /// The direct peer's IP.
    pub source_ip: Option<IpAddr>,
    /// The original client IP.
    pub remote_ip: Option<IpAddr>,
    /// True when an XFCC header was present but its sender is not trusted:
    /// the filter removes it before forwarding.
    pub untrusted_xfcc: bool,
}

impl<'a> Attributes<'a> {
    /// Resolves the attributes of `view` + `facts` under `sources`.
    pub fn resolve(
        view: &'a RequestView,
        facts: &'a HostFacts,
        sources: &IdentitySources,
    ) -> Attributes<'a> {
        let source_ip = view.source_ip();
        let has_xfcc = view.header(XFCC_HEADER).is_some();
        let trusted_peer =
            source_ip.is_some_and(|ip| sources.xfcc_trusted_proxies.iter().any(|c| c.contains(ip)));
        let (principal, principal_source) = if trusted_peer {
            // A trusted proxy speaks for its client; its own certificate is
            // not the client's identity.
            let from_xfcc = view
                .header_joined(XFCC_HEADER)
                .and_then(|v| parse_xfcc(&v).ok())
                .and_then(|els| els.last().and_then(|e| e.uri().map(str::to_string)))
                .and_then(|uri| SpiffeId::parse(&uri).ok());
            let src = from_xfcc.as_ref().map(|_| PrincipalSource::TrustedXfcc);
            (from_xfcc, src)
        } else {
            let from_peer = view
                .peer
                .uri_sans
                .iter()
                .find_map(|u| SpiffeId::parse(u).ok());
            let src = from_peer.as_ref().map(|_| PrincipalSource::PeerCertificate);
            (from_peer, src)
        };
        let identity = facts.identity.as_ref();
        let request_principal = identity.map(|id| {
            format!(
                "{}/{}",
                id.issuer,
                id.subject.as_deref().unwrap_or_default()
            )
        });
        Attributes {
            view,
            facts,
            principal_name: principal.as_ref().map(SpiffeId::principal),
            principal,
            principal_source,
            request_principal,
            identity,
            source_ip,
            remote_ip: remote_ip(view, source_ip, sources.num_trusted_proxies),
            untrusted_xfcc: has_xfcc && !trusted_peer,
        }
    }

    /// The host without port, lower-case.
    pub fn host(&self) -> String {
        self.view.host_without_port().to_ascii_lowercase()
    }

    /// The destination port as text (Istio compares ports as strings).
    pub fn destination_port(&self) -> Option<u16> {
        self.facts.destination.map(|d| d.port())
    }
}

impl IdentitySources {
    /// Facts resolving attributes needs whatever the rules read: with
    /// trusted proxies, the peer address decides whether an XFCC header is
    /// believed (or removed).
    pub fn needs(&self) -> FactNeeds {
        FactNeeds {
            source: !self.xfcc_trusted_proxies.is_empty(),
            ..FactNeeds::default()
        }
    }
}

/// Istio's `remote.ip`: with `hops` trusted proxies in front of Envoy (and
/// Envoy appending the peer, `use_remote_address: true`), the client is the
/// entry `hops` places before the last of `x-forwarded-for`. With `hops` 0,
/// or too few entries, it is the direct peer.
fn remote_ip(view: &RequestView, peer: Option<IpAddr>, hops: usize) -> Option<IpAddr> {
    if hops == 0 {
        return peer;
    }
    let Some(xff) = view.header_joined("x-forwarded-for") else {
        return peer;
    };
    let entries: Vec<&str> = xff
        .rsplit(',')
        .take(MAX_XFF_ENTRIES)
        .map(str::trim)
        .collect();
    match entries.get(hops) {
        Some(e) => e.parse().ok(),
        None => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdk_ext::PeerIdentity;

    fn view(source: &str, headers: &[(&str, &str)], sans: &[&str]) -> RequestView {
        RequestView {
            source: Some(source.parse().unwrap()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            peer: PeerIdentity {
                uri_sans: sans.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn sources(trusted: &[&str], hops: usize) -> IdentitySources {
        IdentitySources {
            xfcc_trusted_proxies: trusted.iter().map(|c| c.parse().unwrap()).collect(),
            num_trusted_proxies: hops,
        }
    }

    #[test]
    fn peer_certificate_principal() {
        let v = view("10.0.0.1:1", &[], &["spiffe://td/ns/a/sa/b"]);
        let f = HostFacts::default();
        let a = Attributes::resolve(&v, &f, &sources(&[], 0));
        assert_eq!(a.principal_name.as_deref(), Some("td/ns/a/sa/b"));
        assert_eq!(a.principal_source, Some(PrincipalSource::PeerCertificate));
        let v = view("10.0.0.1:1", &[], &["https://not-spiffe"]);
        assert!(Attributes::resolve(&v, &f, &sources(&[], 0))
            .principal
            .is_none());
    }

    #[test]
    fn xfcc_only_from_trusted_proxies() {
        let xfcc = [(
            XFCC_HEADER,
            "By=x;URI=spiffe://td/ns/evil/sa/a,URI=spiffe://td/ns/shop/sa/web",
        )];
        let f = HostFacts::default();
        let v = view("10.9.0.1:1", &xfcc, &["spiffe://td/ns/proxy/sa/p"]);
        let a = Attributes::resolve(&v, &f, &sources(&["10.9.0.0/16"], 0));
        assert_eq!(a.principal_name.as_deref(), Some("td/ns/shop/sa/web"));
        assert_eq!(a.principal_source, Some(PrincipalSource::TrustedXfcc));
        assert!(!a.untrusted_xfcc);
        let a = Attributes::resolve(&v, &f, &sources(&["10.8.0.0/16"], 0));
        assert_eq!(a.principal_name.as_deref(), Some("td/ns/proxy/sa/p"));
        assert!(a.untrusted_xfcc);
        // A trusted proxy without XFCC gives no principal (not its own).
        let v = view("10.9.0.1:1", &[], &["spiffe://td/ns/proxy/sa/p"]);
        assert!(Attributes::resolve(&v, &f, &sources(&["10.9.0.0/16"], 0))
            .principal
            .is_none());
    }

    #[test]
    fn remote_ip_counts_trusted_hops() {
        let v = view(
            "10.0.0.9:1",
            &[("x-forwarded-for", "1.1.1.1, 2.2.2.2,10.0.0.9")],
            &[],
        );
        let f = HostFacts::default();
        assert_eq!(
            Attributes::resolve(&v, &f, &sources(&[], 0)).remote_ip,
            Some("10.0.0.9".parse().unwrap())
        );
        assert_eq!(
            Attributes::resolve(&v, &f, &sources(&[], 1)).remote_ip,
            Some("2.2.2.2".parse().unwrap())
        );
        assert_eq!(
            Attributes::resolve(&v, &f, &sources(&[], 5)).remote_ip,
            Some("10.0.0.9".parse().unwrap())
        );
        let v = view("10.0.0.9:1", &[("x-forwarded-for", "junk,10.0.0.9")], &[]);
        assert_eq!(
            Attributes::resolve(&v, &f, &sources(&[], 1)).remote_ip,
            None
        );
    }

    #[test]
    fn request_principal_is_iss_slash_sub() {
        let v = view("10.0.0.9:1", &[], &[]);
        let f = HostFacts {
            identity: Some(VerifiedIdentity {
                issuer: "https://idp".into(),
                subject: Some("alice".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let a = Attributes::resolve(&v, &f, &sources(&[], 0));
        assert_eq!(a.request_principal.as_deref(), Some("https://idp/alice"));
    }
}
