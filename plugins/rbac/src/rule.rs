//! Rules in the shape of Istio's AuthorizationPolicy `Rule`: `from`
//! (sources), `to` (operations), `when` (conditions), plus the v1 request
//! fields (`methods`, `paths`, `hosts`, `headers`, `source_cidrs`), kept so
//! version-1 configurations still work.
//!
//! A rule matches when every part that is set matches: any `from` entry,
//! any `to` entry, every `when` condition, every v1 field. Inside a source
//! or an operation every field that is set must match; a field matches when
//! any of its values matches, its `not_` variant when none does. An
//! attribute that is absent (no principal, no token) matches no value, so
//! it fails a positive field and passes a `not_` field.
//!
//! Field names are snake_case (`not_principals`, `ip_blocks`); Istio's
//! camelCase spellings (`notPrincipals`, `ipBlocks`) are accepted as
//! aliases, so a policy can be pasted from Istio.

use crate::attributes::{Attributes, FactNeeds};
use crate::value::{self, Patterns};
use sdk_ext::matcher::{Cidr, HeaderMatcher, MethodSet, PathMatcher, RequestMatch, StringMatcher};
use serde::{Deserialize, Deserializer};
use std::net::IpAddr;

/// Most nested names in a `request.auth.claims[..]` key.
const MAX_CLAIM_DEPTH: usize = 16;
/// Most elements of a list claim looked at.
const MAX_CLAIM_VALUES: usize = 1024;

/// `from[]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct From {
    /// The source conditions.
    pub source: Source,
}

/// `to[]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct To {
    /// The operation conditions.
    pub operation: Operation,
}

/// Who sends the request (Istio `Source`), plus trust domains.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Workload principals (`cluster.local/ns/a/sa/b`).
    #[serde(default, deserialize_with = "value::plain")]
    pub principals: Patterns,
    /// Not any of these principals.
    #[serde(default, alias = "notPrincipals", deserialize_with = "value::plain")]
    pub not_principals: Patterns,
    /// `iss/sub` of the verified token.
    #[serde(
        default,
        alias = "requestPrincipals",
        deserialize_with = "value::plain"
    )]
    pub request_principals: Patterns,
    /// Not any of these request principals.
    #[serde(
        default,
        alias = "notRequestPrincipals",
        deserialize_with = "value::plain"
    )]
    pub not_request_principals: Patterns,
    /// Namespace of the principal's SPIFFE id.
    #[serde(default, deserialize_with = "value::plain")]
    pub namespaces: Patterns,
    /// Not any of these namespaces.
    #[serde(default, alias = "notNamespaces", deserialize_with = "value::plain")]
    pub not_namespaces: Patterns,
    /// Trust domain of the principal's SPIFFE id (Palisade extension).
    #[serde(default, alias = "trustDomains", deserialize_with = "value::plain")]
    pub trust_domains: Patterns,
    /// Not any of these trust domains.
    #[serde(default, alias = "notTrustDomains", deserialize_with = "value::plain")]
    pub not_trust_domains: Patterns,
    /// Direct peer address ranges (`source.ip`).
    #[serde(default, alias = "ipBlocks")]
    pub ip_blocks: Vec<Cidr>,
    /// Not in these ranges.
    #[serde(default, alias = "notIpBlocks")]
    pub not_ip_blocks: Vec<Cidr>,
    /// Original client address ranges (`remote.ip`).
    #[serde(default, alias = "remoteIpBlocks")]
    pub remote_ip_blocks: Vec<Cidr>,
    /// Not in these ranges.
    #[serde(default, alias = "notRemoteIpBlocks")]
    pub not_remote_ip_blocks: Vec<Cidr>,
}

/// What is requested (Istio `Operation`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// Host without port, case-insensitive.
    #[serde(default, deserialize_with = "value::lower")]
    pub hosts: Patterns,
    /// Not any of these hosts.
    #[serde(default, alias = "notHosts", deserialize_with = "value::lower")]
    pub not_hosts: Patterns,
    /// Destination (listener) ports.
    #[serde(default, deserialize_with = "ports")]
    pub ports: Vec<u16>,
    /// Not any of these ports.
    #[serde(default, alias = "notPorts", deserialize_with = "ports")]
    pub not_ports: Vec<u16>,
    /// Methods.
    #[serde(default, deserialize_with = "value::plain")]
    pub methods: Patterns,
    /// Not any of these methods.
    #[serde(default, alias = "notMethods", deserialize_with = "value::plain")]
    pub not_methods: Patterns,
    /// Paths without query, with `{*}`/`{**}` templates.
    #[serde(default, deserialize_with = "value::paths")]
    pub paths: Patterns,
    /// Not any of these paths.
    #[serde(default, alias = "notPaths", deserialize_with = "value::paths")]
    pub not_paths: Patterns,
}

fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Num(u64),
        Text(String),
    }
    let raw = Vec::<Port>::deserialize(d)?;
    if raw.is_empty() {
        return Err(serde::de::Error::custom(
            "an empty port list: list at least one port or leave the field out",
        ));
    }
    raw.into_iter()
        .map(|p| {
            let text = match p {
                Port::Num(n) => n.to_string(),
                Port::Text(t) => t,
            };
            text.parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("invalid port {text:?}: expected 1 to 65535"))
        })
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

/// The attribute a `when` condition reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `request.headers[<name>]` (repeated headers joined with `,`).
    RequestHeader(String),
    /// `source.ip`.
    SourceIp,
    /// `remote.ip`.
    RemoteIp,
    /// `destination.ip`.
    DestinationIp,
    /// `destination.port`.
    DestinationPort,
    /// `source.principal`.
    SourcePrincipal,
    /// `source.namespace`.
    SourceNamespace,
    /// `request.auth.principal`.
    AuthPrincipal,
    /// `request.auth.audiences`.
    AuthAudiences,
    /// `request.auth.presenter` (the `azp` claim).
    AuthPresenter,
    /// `request.auth.claims[a][b]…`.
    AuthClaim(Vec<String>),
    /// `connection.sni`.
    ConnectionSni,
}

impl Key {
    /// Parses an Istio condition key.
    pub fn parse(key: &str) -> Result<Key, String> {
        Ok(match key {
            "source.ip" => Key::SourceIp,
            "remote.ip" => Key::RemoteIp,
            "destination.ip" => Key::DestinationIp,
            "destination.port" => Key::DestinationPort,
            "source.principal" => Key::SourcePrincipal,
            "source.namespace" => Key::SourceNamespace,
            "request.auth.principal" => Key::AuthPrincipal,
            "request.auth.audiences" => Key::AuthAudiences,
            "request.auth.presenter" => Key::AuthPresenter,
            "connection.sni" => Key::ConnectionSni,
            _ => {
                if let Some(rest) = key.strip_prefix("request.headers") {
                    let names = brackets(rest).ok_or_else(|| bad_key(key))?;
                    let [name] = names.as_slice() else {
                        return Err(bad_key(key));
                    };
                    let name = name.to_ascii_lowercase();
                    let ok = name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                    if !ok {
                        return Err(format!("invalid header name in condition key {key:?}"));
                    }
                    Key::RequestHeader(name)
                } else if let Some(rest) = key.strip_prefix("request.auth.claims") {
                    let names = brackets(rest).ok_or_else(|| bad_key(key))?;
                    if names.len() > MAX_CLAIM_DEPTH {
                        return Err(format!(
                            "claim path in {key:?} is deeper than {MAX_CLAIM_DEPTH} names"
                        ));
                    }
                    Key::AuthClaim(names)
                } else {
                    return Err(bad_key(key));
                }
            }
        })
    }

    /// The host fact this key reads, if any.
    pub fn needs(&self) -> FactNeeds {
        let none = FactNeeds::default();
        match self {
            Key::RequestHeader(_) => none,
            // remote.ip falls back to the peer address.
            Key::SourceIp | Key::RemoteIp => FactNeeds {
                source: true,
                ..none
            },
            Key::DestinationIp | Key::DestinationPort => FactNeeds {
                destination: true,
                ..none
            },
            Key::SourcePrincipal | Key::SourceNamespace => FactNeeds { peer: true, ..none },
            Key::AuthPrincipal | Key::AuthAudiences | Key::AuthPresenter | Key::AuthClaim(_) => {
                FactNeeds {
                    identity: true,
                    ..none
                }
            }
            Key::ConnectionSni => FactNeeds { sni: true, ..none },
        }
    }

    fn is_ip(&self) -> bool {
        matches!(self, Key::SourceIp | Key::RemoteIp | Key::DestinationIp)
    }
}

fn bad_key(key: &str) -> String {
    format!(
        "unsupported condition key {key:?}: use request.headers[<name>], source.ip, remote.ip, destination.ip, destination.port, source.principal, source.namespace, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[<name>]…, connection.sni"
    )
}

/// `[a][b]` → `["a", "b"]`; `None` unless it is one or more non-empty
/// bracketed names.
fn brackets(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        let name = &inner[..end];
        if name.is_empty() || name.contains('[') {
            return None;
        }
        out.push(name.to_string());
        rest = &inner[end + 1..];
    }
    (!out.is_empty()).then_some(out)
}

/// The values of a condition, typed by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Values {
    /// String patterns.
    Patterns(Patterns),
    /// Address ranges (IP keys).
    Cidrs(Vec<Cidr>),
    /// Port numbers (`destination.port`).
    Ports(Vec<u16>),
}

impl Values {
    fn is_empty(&self) -> bool {
        match self {
            Values::Patterns(p) => p.is_empty(),
            Values::Cidrs(c) => c.is_empty(),
            Values::Ports(p) => p.is_empty(),
        }
    }
}

/// A `when` condition: `key` plus `values` and/or `not_values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The attribute.
    pub key: Key,
    /// The key as written.
    pub key_text: String,
    /// Any of these matches (empty: not set).
    pub values: Values,
    /// None of these matches (empty: not set).
    pub not_values: Values,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    key: String,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default, alias = "notValues")]
    not_values: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = RawCondition::deserialize(d)?;
        let key = Key::parse(&raw.key).map_err(D::Error::custom)?;
        let typed = |list: Option<Vec<String>>| -> Result<Values, String> {
            let list = list.unwrap_or_default();
            Ok(if key.is_ip() {
                Values::Cidrs(list.iter().map(|s| s.parse()).collect::<Result<_, _>>()?)
            } else if key == Key::DestinationPort {
                Values::Ports(
                    list.iter()
                        .map(|s| {
                            s.parse::<u16>()
                                .map_err(|_| format!("invalid port {s:?}: expected 1 to 65535"))
                        })
                        .collect::<Result<_, _>>()?,
                )
            } else {
                Values::Patterns(Patterns(
                    list.iter()
                        .map(|s| ValueMatchParse::parse(&key, s))
                        .collect::<Result<_, _>>()?,
                ))
            })
        };
        if raw.values.as_ref().is_none_or(Vec::is_empty)
            && raw.not_values.as_ref().is_none_or(Vec::is_empty)
        {
            return Err(D::Error::custom(format!(
                "condition {:?} needs `values` or `not_values`",
                raw.key
            )));
        }
        Ok(Condition {
            values: typed(raw.values).map_err(D::Error::custom)?,
            not_values: typed(raw.not_values).map_err(D::Error::custom)?,
            key,
            key_text: raw.key,
        })
    }
}

/// Pattern parsing per key (case-insensitive where the attribute is).
struct ValueMatchParse;

impl ValueMatchParse {
    fn parse(key: &Key, s: &str) -> Result<value::ValueMatch, String> {
        match key {
            Key::ConnectionSni => value::ValueMatch::parse(&s.to_ascii_lowercase(), false),
            _ => value::ValueMatch::parse(s, false),
        }
    }
}

/// One rule; see the module docs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "RawRule")]
pub struct Rule {
    /// Any of these sources (empty: any).
    pub from: Vec<From>,
    /// Any of these operations (empty: any).
    pub to: Vec<To>,
    /// All of these conditions.
    pub when: Vec<Condition>,
    /// Version-1 request fields, all of which must hold.
    pub legacy: RequestMatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    from: Vec<From>,
    #[serde(default)]
    to: Vec<To>,
    #[serde(default)]
    when: Vec<Condition>,
    #[serde(default)]
    methods: Option<MethodSet>,
    #[serde(default)]
    paths: Vec<PathMatcher>,
    #[serde(default)]
    hosts: Vec<StringMatcher>,
    #[serde(default)]
    headers: Vec<HeaderMatcher>,
    #[serde(default)]
    source_cidrs: Vec<Cidr>,
}

impl std::convert::From<RawRule> for Rule {
    fn from(r: RawRule) -> Rule {
        Rule {
            from: r.from,
            to: r.to,
            when: r.when,
            legacy: RequestMatch {
                methods: r.methods,
                paths: r.paths,
                hosts: r
                    .hosts
                    .into_iter()
                    .map(StringMatcher::ignoring_case)
                    .collect(),
                headers: r.headers,
                source_cidrs: r.source_cidrs,
            },
        }
    }
}

impl Rule {
    /// True when the rule uses any version-1 field.
    pub fn has_legacy_fields(&self) -> bool {
        let l = &self.legacy;
        l.methods.is_some()
            || !l.paths.is_empty()
            || !l.hosts.is_empty()
            || !l.headers.is_empty()
            || !l.source_cidrs.is_empty()
    }

    /// The host facts matching this rule may read.
    pub fn needs(&self) -> FactNeeds {
        let legacy = FactNeeds {
            source: !self.legacy.source_cidrs.is_empty(),
            ..FactNeeds::default()
        };
        self.from
            .iter()
            .map(|f| f.source.needs())
            .chain(self.to.iter().map(|t| t.operation.needs()))
            .chain(self.when.iter().map(|c| c.key.needs()))
            .fold(legacy, FactNeeds::union)
    }

    /// True when the request matches the rule.
    pub fn matches(&self, a: &Attributes<'_>) -> bool {
        (self.from.is_empty() || self.from.iter().any(|f| f.source.matches(a)))
            && (self.to.is_empty() || self.to.iter().any(|t| t.operation.matches(a)))
            && self.when.iter().all(|c| c.matches(a))
            && self.legacy.matches(a.view)
    }
}

/// A positive field (`values`) and its negation (`not`) over the
/// attribute's values: unset fields pass.
fn field<'v>(
    values: &Patterns,
    not: &Patterns,
    attr: impl Iterator<Item = &'v str> + Clone,
) -> bool {
    (values.is_empty() || values.any_match(attr.clone()))
        && (not.is_empty() || !not.any_match(attr))
}

fn cidrs(values: &[Cidr], not: &[Cidr], ip: Option<IpAddr>) -> bool {
    let hit = |list: &[Cidr]| ip.is_some_and(|ip| list.iter().any(|c| c.contains(ip)));
    (values.is_empty() || hit(values)) && (not.is_empty() || !hit(not))
}

fn ports_match(values: &[u16], not: &[u16], port: Option<u16>) -> bool {
    let hit = |list: &[u16]| port.is_some_and(|p| list.contains(&p));
    (values.is_empty() || hit(values)) && (not.is_empty() || !hit(not))
}

impl Source {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.principals.is_empty()
            && self.not_principals.is_empty()
            && self.request_principals.is_empty()
            && self.not_request_principals.is_empty()
            && self.namespaces.is_empty()
            && self.not_namespaces.is_empty()
            && self.trust_domains.is_empty()
            && self.not_trust_domains.is_empty()
            && self.ip_blocks.is_empty()
            && self.not_ip_blocks.is_empty()
            && self.remote_ip_blocks.is_empty()
            && self.not_remote_ip_blocks.is_empty()
    }

    /// The host facts this source's fields read.
    pub fn needs(&self) -> FactNeeds {
        FactNeeds {
            source: !(self.ip_blocks.is_empty()
                && self.not_ip_blocks.is_empty()
                && self.remote_ip_blocks.is_empty()
                && self.not_remote_ip_blocks.is_empty()),
            peer: !(self.principals.is_empty()
                && self.not_principals.is_empty()
                && self.namespaces.is_empty()
                && self.not_namespaces.is_empty()
                && self.trust_domains.is_empty()
                && self.not_trust_domains.is_empty()),
            identity: !(self.request_principals.is_empty()
                && self.not_request_principals.is_empty()),
            ..FactNeeds::default()
        }
    }

    /// True when every field that is set matches.
    pub fn matches(&self, a: &Attributes<'_>) -> bool {
        let principal = a.principal_name.as_deref().into_iter();
        let ns = a.principal.as_ref().and_then(|p| p.namespace()).into_iter();
        let td = a.principal.as_ref().map(|p| p.trust_domain()).into_iter();
        let rp = a.request_principal.as_deref().into_iter();
        field(&self.principals, &self.not_principals, principal)
            && field(&self.request_principals, &self.not_request_principals, rp)
            && field(&self.namespaces, &self.not_namespaces, ns)
            && field(&self.trust_domains, &self.not_trust_domains, td)
            && cidrs(&self.ip_blocks, &self.not_ip_blocks, a.source_ip)
            && cidrs(
                &self.remote_ip_blocks,
                &self.not_remote_ip_blocks,
                a.remote_ip,
            )
    }
}

impl Operation {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.not_hosts.is_empty()
            && self.ports.is_empty()
            && self.not_ports.is_empty()
            && self.methods.is_empty()
            && self.not_methods.is_empty()
            && self.paths.is_empty()
            && self.not_paths.is_empty()
    }

    /// The host facts this operation's fields read (ports only: hosts,
    /// methods and paths are in the request view).
    pub fn needs(&self) -> FactNeeds {
        FactNeeds {
            destination: !(self.ports.is_empty() && self.not_ports.is_empty()),
            ..FactNeeds::default()
        }
    }

    /// True when every field that is set matches.
    pub fn matches(&self, a: &Attributes<'_>) -> bool {
        // The lower-cased host is a copy: made only when a host field is set.
        let hosts_hold = (self.hosts.is_empty() && self.not_hosts.is_empty()) || {
            let host = a.host();
            field(&self.hosts, &self.not_hosts, std::iter::once(host.as_str()))
        };
        hosts_hold
            && ports_match(&self.ports, &self.not_ports, a.destination_port())
            && field(
                &self.methods,
                &self.not_methods,
                std::iter::once(a.view.method.as_str()),
            )
            && field(
                &self.paths,
                &self.not_paths,
                std::iter::once(a.view.path_only()),
            )
    }
}

impl Condition {
    /// True when the condition holds.
    pub fn matches(&self, a: &Attributes<'_>) -> bool {
        match (&self.values, &self.not_values) {
            (Values::Cidrs(v), Values::Cidrs(n)) => {
                let ip = match self.key {
                    Key::SourceIp => a.source_ip,
                    Key::RemoteIp => a.remote_ip,
                    _ => a.facts.destination.map(|d| d.ip()),
                };
                cidrs(v, n, ip)
            }
            (Values::Ports(v), Values::Ports(n)) => ports_match(v, n, a.destination_port()),
            (Values::Patterns(v), Values::Patterns(n)) => {
                let attr = self.strings(a);
                field(v, n, attr.iter().map(String::as_str))
            }
            _ => false,
        }
    }

    /// The attribute's string values (several for list claims and
    /// audiences, none when absent).
    fn strings(&self, a: &Attributes<'_>) -> Vec<String> {
        let one = |s: Option<&str>| s.map(str::to_string).into_iter().collect();
        match &self.key {
            Key::RequestHeader(name) => one(a.view.header_joined(name).as_deref()),
            Key::SourcePrincipal => one(a.principal_name.as_deref()),
            Key::SourceNamespace => one(a.principal.as_ref().and_then(|p| p.namespace())),
            Key::AuthPrincipal => one(a.request_principal.as_deref()),
            Key::AuthAudiences => a
                .identity
                .map(|id| {
                    id.audiences
                        .iter()
                        .take(MAX_CLAIM_VALUES)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            Key::AuthPresenter => a
                .identity
                .and_then(|id| id.claims.get("azp"))
                .map(claim_strings)
                .unwrap_or_default(),
            Key::AuthClaim(path) => a
                .identity
                .and_then(|id| {
                    let (first, rest) = path.split_first()?;
                    rest.iter()
                        .try_fold(id.claims.get(first.as_str())?, |v, name| {
                            v.get(name.as_str())
                        })
                })
                .map(claim_strings)
                .unwrap_or_default(),
            Key::ConnectionSni => one(a
                .facts
                .sni
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()),
            Key::SourceIp | Key::RemoteIp | Key::DestinationIp | Key::DestinationPort => Vec::new(),
        }
    }

    /// True when neither list is set (never: refused at load).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.not_values.is_empty()
    }
}

/// A claim as strings: a string is itself, a list each of its scalar
/// elements, a number or boolean its JSON text; objects and null nothing.
fn claim_strings(v: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    };
    match v {
        Value::Array(items) => items
            .iter()
            .take(MAX_CLAIM_VALUES)
            .filter_map(scalar)
            .collect(),
        other => scalar(other).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{HostFacts, IdentitySources};
    use sdk_ext::identity::VerifiedIdentity;
    use sdk_ext::{Headers, PeerIdentity, RequestView};

    fn rule(json: &str) -> Rule {
        serde_json::from_str(json).unwrap()
    }

    fn view() -> RequestView {
        RequestView {
            method: "GET".into(),
            path: "/api/v1/items?x=1".into(),
            host: "Shop.Example:8443".into(),
            headers: Headers::from(vec![("x-env".into(), "prod".into())]),
            source: Some("10.1.2.3:5000".parse().unwrap()),
            peer: PeerIdentity {
                uri_sans: vec!["spiffe://cluster.local/ns/shop/sa/web".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn facts() -> HostFacts {
        let claims = serde_json::json!({
            "groups": ["dev", "admins"], "org": {"team": "pay", "level": 3}, "azp": "cli"
        });
        HostFacts {
            destination: Some("10.0.0.1:8443".parse().unwrap()),
            sni: Some("Shop.Example".into()),
            identity: Some(VerifiedIdentity {
                issuer: "https://idp".into(),
                subject: Some("alice".into()),
                audiences: vec!["api".into(), "web".into()],
                claims: claims.as_object().unwrap().clone(),
                ..Default::default()
            }),
        }
    }

    fn check(json: &str) -> bool {
        let (v, f) = (view(), facts());
        rule(json).matches(&Attributes::resolve(&v, &f, &IdentitySources::default()))
    }

    #[test]
    fn sources() {
        assert!(check(
            r#"{"from":[{"source":{"principals":["cluster.local/ns/shop/sa/web"]}}]}"#
        ));
        assert!(check(
            r#"{"from":[{"source":{"principals":["cluster.local/ns/shop/*"]}}]}"#
        ));
        assert!(!check(
            r#"{"from":[{"source":{"notPrincipals":["*/sa/web"]}}]}"#
        ));
        assert!(check(
            r#"{"from":[{"source":{"namespaces":["shop"],"trust_domains":["cluster.local"]}}]}"#
        ));
        assert!(check(
            r#"{"from":[{"source":{"requestPrincipals":["https://idp/alice"]}}]}"#
        ));
        assert!(check(
            r#"{"from":[{"source":{"ipBlocks":["10.0.0.0/8"],"not_remote_ip_blocks":["10.1.2.3"]}},{"source":{"namespaces":["shop"]}}]}"#
        ));
        assert!(!check(
            r#"{"from":[{"source":{"ipBlocks":["10.0.0.0/8"],"not_remote_ip_blocks":["10.1.2.3"]}}]}"#
        ));
    }

    #[test]
    fn operations() {
        assert!(check(
            r#"{"to":[{"operation":{"hosts":["SHOP.example"],"ports":["8443"],"methods":["GET"],"paths":["/api/{*}/items"]}}]}"#
        ));
        assert!(!check(r#"{"to":[{"operation":{"notPorts":[8443]}}]}"#));
        assert!(!check(r#"{"to":[{"operation":{"notPaths":["/api/*"]}}]}"#));
        assert!(check(
            r#"{"to":[{"operation":{"paths":["*/items"],"not_hosts":["*.internal"]}}]}"#
        ));
    }

    #[test]
    fn conditions() {
        assert!(check(
            r#"{"when":[{"key":"request.auth.claims[groups]","values":["admins"]}]}"#
        ));
        assert!(!check(
            r#"{"when":[{"key":"request.auth.claims[groups]","notValues":["dev"]}]}"#
        ));
        assert!(check(
            r#"{"when":[{"key":"request.auth.claims[org][team]","values":["pay"]}]}"#
        ));
        assert!(check(
            r#"{"when":[{"key":"request.auth.claims[org][level]","values":["3"]}]}"#
        ));
        assert!(!check(
            r#"{"when":[{"key":"request.auth.claims[org]","values":["*"]}]}"#
        ));
        assert!(check(
            r#"{"when":[{"key":"request.auth.audiences","values":["web"]}]}"#
        ));
        assert!(check(
            r#"{"when":[{"key":"request.auth.presenter","values":["cli"]}]}"#
        ));
        assert!(check(
            r#"{"when":[{"key":"request.auth.principal","values":["*/alice"]}]}"#
        ));
        assert!(check(
            r#"{"when":[{"key":"request.headers[X-Env]","values":["prod"]},{"key":"connection.sni","values":["shop.example"]}]}"#
        ));
        assert!(check(
            r#"{"when":[{"key":"source.ip","values":["10.1.0.0/16"]},{"key":"destination.port","values":["8443"]},{"key":"destination.ip","not_values":["10.9.9.9"]}]}"#
        ));
        assert!(check(
            r#"{"when":[{"key":"source.namespace","values":["shop"]},{"key":"source.principal","values":["*/web"]}]}"#
        ));
        assert!(check(
            r#"{"when":[{"key":"request.headers[x-missing]","notValues":["a"]}]}"#
        ));
        assert!(!check(
            r#"{"when":[{"key":"request.headers[x-missing]","values":["*"]}]}"#
        ));
    }

    #[test]
    fn legacy_fields_still_apply() {
        assert!(check(r#"{"methods":["GET"],"paths":[{"prefix":"/api"}]}"#));
        assert!(!check(
            r#"{"methods":["GET"],"paths":[{"prefix":"/admin"}]}"#
        ));
        assert!(rule(r#"{"methods":["GET"]}"#).has_legacy_fields());
        assert!(
            !rule(r#"{"when":[{"key":"source.ip","values":["1.1.1.1"]}]}"#).has_legacy_fields()
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            r#"{"when":[{"key":"request.auth.claims","values":["a"]}]}"#,
            r#"{"when":[{"key":"request.headers[a][b]","values":["a"]}]}"#,
            r#"{"when":[{"key":"request.regex","values":["a"]}]}"#,
            r#"{"when":[{"key":"source.ip","values":["x"]}]}"#,
            r#"{"when":[{"key":"source.ip"}]}"#,
            r#"{"to":[{"operation":{"ports":["0"]}}]}"#,
            r#"{"to":[{"operation":{"paths":[]}}]}"#,
            r#"{"from":[{"source":{"principal":["a"]}}]}"#,
        ] {
            assert!(serde_json::from_str::<Rule>(bad).is_err(), "{bad}");
        }
    }
}
