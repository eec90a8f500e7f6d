//! The identity a peer certificate proves, and the allow-lists checked against it.

use std::fmt;

use x509_parser::prelude::*;

use crate::spiffe::{SpiffeError, SpiffeId, SpiffePattern};

/// What was read from a verified peer certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Subject in RFC 2253 form (last RDN first), as Envoy prints it in XFCC.
    pub subject: String,
    /// Common names in the subject.
    pub common_names: Vec<String>,
    /// URI SANs in certificate order (SPIFFE ids and others).
    pub uris: Vec<String>,
    /// DNS SANs in certificate order.
    pub dns_names: Vec<String>,
    /// Lowercase hex SHA-256 of the certificate's DER.
    pub sha256_hex: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before_unix: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after_unix: i64,
}

/// Why a certificate could not be read as an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The DER is not an X.509 certificate.
    #[error("certificate is not valid X.509 DER: {0}")]
    Parse(String),
}

fn attr_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "serialNumber",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        other => other,
    }
    .to_string()
}

/// Escapes an attribute value the RFC 2253 way.
fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == v.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Formats a name in RFC 2253 order (reverse of the encoded RDN sequence).
fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let key = attr_name(&atv.attr_type().to_id_string());
                    let val = atv.as_str().map(escape_rfc2253).unwrap_or_else(|_| {
                        let hex: String = atv
                            .attr_value()
                            .data
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect();
                        format!("#{hex}")
                    });
                    format!("{key}={val}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// Lowercase hex SHA-256 of `der`.
pub fn sha256_hex(der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl PeerIdentity {
    /// Reads the identity from a DER certificate. Does not verify anything:
    /// call it on certificates the TLS stack has already verified.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) =
            parse_x509_certificate(der).map_err(|e| IdentityError::Parse(e.to_string()))?;
        let mut uris = Vec::new();
        let mut dns_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for gn in &san.value.general_names {
                match gn {
                    GeneralName::URI(u) => uris.push(u.to_string()),
                    GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                    _ => {}
                }
            }
        }
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect();
        Ok(PeerIdentity {
            subject: rfc2253(cert.subject()),
            common_names,
            uris,
            dns_names,
            sha256_hex: sha256_hex(der),
            not_before_unix: cert.validity().not_before.timestamp(),
            not_after_unix: cert.validity().not_after.timestamp(),
        })
    }

    /// The first URI SAN that is a valid SPIFFE id (an X509-SVID has exactly one).
    pub fn spiffe_id(&self) -> Option<SpiffeId> {
        self.uris.iter().find_map(|u| SpiffeId::parse(u).ok())
    }
}

/// A DNS allow-list entry: exact (case-insensitive) or `*.suffix`, where `*`
/// stands for exactly one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPattern(String);

impl DnsPattern {
    /// Builds a pattern; the name is lowercased.
    pub fn new(s: &str) -> Self {
        DnsPattern(s.to_ascii_lowercase())
    }

    /// Whether this is a `*.suffix` pattern.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            Some(suffix) => match name.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest == suffix,
                None => false,
            },
            None => self.0 == name,
        }
    }
}

/// Who may connect. A peer is allowed when any entry of any list matches, or
/// when `allow_any_verified` is set (then only the CA decides).
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    /// SPIFFE id patterns matched against the certificate's SPIFFE URI SAN.
    pub spiffe_ids: Vec<SpiffePattern>,
    /// DNS patterns matched against DNS SANs.
    pub dns_names: Vec<DnsPattern>,
    /// Exact subject common names.
    pub common_names: Vec<String>,
    /// Allow every certificate that chains to the CA bundle.
    pub allow_any_verified: bool,
}

/// Why a verified certificate was still refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct IdentityRefused {
    /// The SPIFFE id presented, if any.
    pub spiffe_id: Option<String>,
    /// DNS SANs presented.
    pub dns_names: Vec<String>,
    /// Common names presented.
    pub common_names: Vec<String>,
}

impl fmt::Display for IdentityRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer identity not in allow-list (spiffe_id={}, dns={:?}, cn={:?}); add it to allow.spiffe_ids, allow.dns_names or allow.common_names",
            self.spiffe_id.as_deref().unwrap_or("none"),
            self.dns_names,
            self.common_names
        )
    }
}

impl AllowList {
    /// Builds an allow-list from config strings.
    pub fn new(
        spiffe_ids: &[String],
        dns_names: &[String],
        common_names: &[String],
        allow_any_verified: bool,
    ) -> Result<Self, SpiffeError> {
        Ok(AllowList {
            spiffe_ids: spiffe_ids
                .iter()
                .map(|s| SpiffePattern::parse(s))
                .collect::<Result<_, _>>()?,
            dns_names: dns_names.iter().map(|s| DnsPattern::new(s)).collect(),
            common_names: common_names.to_vec(),
            allow_any_verified,
        })
    }

    /// Whether the list admits nobody (a config mistake the loader refuses).
    pub fn is_empty(&self) -> bool {
        !self.allow_any_verified
            && self.spiffe_ids.is_empty()
            && self.dns_names.is_empty()
            && self.common_names.is_empty()
    }

    /// Checks a verified peer against the lists.
    pub fn check(&self, peer: &PeerIdentity) -> Result<(), IdentityRefused> {
        if self.allow_any_verified {
            return Ok(());
        }
        let spiffe = peer.spiffe_id();
        let ok = spiffe
            .as_ref()
            .is_some_and(|id| self.spiffe_ids.iter().any(|p| p.matches(id)))
            || peer
                .dns_names
                .iter()
                .any(|d| self.dns_names.iter().any(|p| p.matches(d)))
            || peer
                .common_names
                .iter()
                .any(|cn| self.common_names.iter().any(|c| c == cn));
        if ok {
            Ok(())
        } else {
            Err(IdentityRefused {
                spiffe_id: spiffe.map(|s| s.to_string()),
                dns_names: peer.dns_names.clone(),
                common_names: peer.common_names.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(cn: &str, sans: Vec<SanType>, org: Option<&str>) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(o) = org {
            p.distinguished_name.push(DnType::OrganizationName, o);
        }
        p.distinguished_name.push(DnType::CommonName, cn);
        p.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_sans_subject_and_hash() {
        let der = cert(
            "web, inc",
            vec![
                SanType::URI("spiffe://td/ns/a/sa/web".try_into().unwrap()),
                SanType::DnsName("web.example".try_into().unwrap()),
            ],
            Some("Org"),
        );
        let id = PeerIdentity::from_der(&der).unwrap();
        assert_eq!(id.subject, "CN=web\\, inc,O=Org");
        assert_eq!(id.common_names, vec!["web, inc"]);
        assert_eq!(id.uris, vec!["spiffe://td/ns/a/sa/web"]);
        assert_eq!(id.dns_names, vec!["web.example"]);
        assert_eq!(id.sha256_hex.len(), 64);
        assert_eq!(id.sha256_hex, sha256_hex(&der));
        assert_eq!(
            id.spiffe_id().unwrap().to_string(),
            "spiffe://td/ns/a/sa/web"
        );
    }

    #[test]
    fn dns_patterns() {
        assert!(DnsPattern::new("*.example.com").matches("a.example.com"));
        assert!(DnsPattern::new("*.example.com").matches("A.Example.com"));
        assert!(!DnsPattern::new("*.example.com").matches("a.b.example.com"));
        assert!(!DnsPattern::new("*.example.com").matches("example.com"));
        assert!(DnsPattern::new("api.example.com").matches("API.example.com"));
        assert!(!DnsPattern::new("api.example.com").matches("web.example.com"));
    }

    #[test]
    fn allow_list_by_each_kind() {
        let peer = PeerIdentity::from_der(&cert(
            "svc",
            vec![
                SanType::URI("spiffe://td/ns/a/sa/web".try_into().unwrap()),
                SanType::DnsName("web.example".try_into().unwrap()),
            ],
            None,
        ))
        .unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let by_spiffe = AllowList::new(&s(&["spiffe://td/ns/*/sa/web"]), &[], &[], false).unwrap();
        assert!(by_spiffe.check(&peer).is_ok());
        let by_dns = AllowList::new(&[], &s(&["*.example"]), &[], false).unwrap();
        assert!(by_dns.check(&peer).is_ok());
        let by_cn = AllowList::new(&[], &[], &s(&["svc"]), false).unwrap();
        assert!(by_cn.check(&peer).is_ok());
        let none =
            AllowList::new(&s(&["spiffe://td/ns/*/sa/db"]), &[], &s(&["other"]), false).unwrap();
        let err = none.check(&peer).unwrap_err();
        assert_eq!(err.spiffe_id.as_deref(), Some("spiffe://td/ns/a/sa/web"));
        assert!(err.to_string().contains("not in allow-list"));
        assert!(AllowList::default().is_empty());
        assert!(AllowList::new(&[], &[], &[], true)
            .unwrap()
            .check(&peer)
            .is_ok());
    }
}
