//! Shared inputs for Palisade's benchmarks: realistic request views, so every
//! bench measures the same traffic, and the plugin inputs more than one
//! bench needs.
//!
//! - [`crs`]: the OWASP CRS configuration the waf benches load;
//! - [`harness_cases`]: one request per plugin module through the harness;
//! - [`oidc_session`]: an oidc configuration and a sealed session cookie;
//! - [`tokens`]: the jwt-auth fixtures' HS256 key set and token.

pub mod crs;
pub mod harness_cases;
pub mod oidc_session;
pub mod tokens;

use sdk_ext::{Headers, RequestView};

/// A browser-like GET with the headers a real client sends.
pub fn typical_request(path: &str, extra: &[(&str, &str)]) -> RequestView {
    let mut headers: Headers = [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.7"),
        ("accept-encoding", "gzip, deflate, br"),
        ("x-request-id", "3f1c2a7e-58b1-4a8e-9b36-0c1d2e3f4a5b"),
        ("x-forwarded-proto", "https"),
    ]
    .into_iter()
    .collect();
    headers.extend(extra.iter().copied());
    RequestView {
        method: "GET".into(),
        path: path.into(),
        host: "api.example.com".into(),
        scheme: "https".into(),
        headers,
        source: Some("10.1.2.3:51234".parse().expect("literal address")),
        request_id: "3f1c2a7e-58b1-4a8e-9b36-0c1d2e3f4a5b".into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typical_request_carries_extra_headers() {
        let r = typical_request("/a?b=1", &[("x-team", "ops")]);
        assert_eq!(r.header("x-team"), Some("ops"));
        assert_eq!(r.path_only(), "/a");
        assert_eq!(
            r.source_ip().map(|i| i.to_string()).as_deref(),
            Some("10.1.2.3")
        );
    }
}
