//! Request conditions shared by every plugin's rules.
//!
//! JSON: any of `methods`, `paths`, `hosts`, `headers`, `source_cidrs`; a
//! request matches when **every** field that is set matches, and inside a
//! list any element may match. `{}` matches every request.

use super::{Cidr, HeaderMatcher, MethodSet, PathMatcher, StringMatcher};
use crate::RequestView;
use serde::{Deserialize, Deserializer};

/// Conditions on a request, all of which must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMatch {
    /// Request method is one of these.
    #[serde(default)]
    pub methods: Option<MethodSet>,
    /// Path (without query) matches any of these.
    #[serde(default)]
    pub paths: Vec<PathMatcher>,
    /// Host (`:authority` without port; literal matchers compare
    /// case-insensitively) matches any of these.
    #[serde(default, deserialize_with = "hosts_ignoring_case")]
    pub hosts: Vec<StringMatcher>,
    /// Every header condition holds.
    #[serde(default)]
    pub headers: Vec<HeaderMatcher>,
    /// Client address lies in any of these ranges; an unknown client
    /// address never matches.
    #[serde(default)]
    pub source_cidrs: Vec<Cidr>,
}

fn hosts_ignoring_case<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<StringMatcher>, D::Error> {
    let hosts = Vec::<StringMatcher>::deserialize(d)?;
    Ok(hosts
        .into_iter()
        .map(StringMatcher::ignoring_case)
        .collect())
}

impl RequestMatch {
    /// True when every condition that is set holds for `req`.
    pub fn matches(&self, req: &RequestView) -> bool {
        if let Some(methods) = &self.methods {
            if !methods.contains(&req.method) {
                return false;
            }
        }
        if !self.paths.is_empty() {
            let path = req.path_only();
            if !self.paths.iter().any(|m| m.matches(path)) {
                return false;
            }
        }
        if !self.hosts.is_empty() {
            let host = req.host_without_port();
            if !self.hosts.iter().any(|m| m.matches(host)) {
                return false;
            }
        }
        if !self.headers.iter().all(|h| h.matches(req)) {
            return false;
        }
        if !self.source_cidrs.is_empty() {
            match req.source_ip() {
                Some(ip) if self.source_cidrs.iter().any(|c| c.contains(ip)) => {}
                _ => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(json: &str) -> RequestMatch {
        serde_json::from_str(json).unwrap()
    }

    fn req(method: &str, path: &str, host: &str, src: Option<&str>) -> RequestView {
        RequestView {
            method: method.into(),
            path: path.into(),
            host: host.into(),
            source: src.map(|s| s.parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn empty_matches_everything() {
        assert!(m("{}").matches(&req("GET", "/", "h", None)));
    }

    #[test]
    fn all_fields_must_hold() {
        let r = m(
            r#"{"methods":["GET"],"paths":[{"prefix":"/a"}],"hosts":[{"exact":"API.local"}],"source_cidrs":["10.0.0.0/8"]}"#,
        );
        assert!(r.matches(&req("GET", "/a/b?x", "api.LOCAL:80", Some("10.1.1.1:9"))));
        assert!(!r.matches(&req("POST", "/a/b", "api.local", Some("10.1.1.1:9"))));
        assert!(!r.matches(&req("GET", "/b?/a", "api.local", Some("10.1.1.1:9"))));
        assert!(!r.matches(&req("GET", "/a", "other", Some("10.1.1.1:9"))));
        assert!(!r.matches(&req("GET", "/a", "api.local", Some("11.1.1.1:9"))));
        assert!(!r.matches(&req("GET", "/a", "api.local", None)));
    }

    #[test]
    fn unknown_fields_refused() {
        assert!(serde_json::from_str::<RequestMatch>(r#"{"method":["GET"]}"#).is_err());
    }
}
