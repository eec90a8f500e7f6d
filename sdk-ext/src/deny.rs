//! Deny responses: the same shape from every plugin.
//!
//! Body: `{"error": "<message>", "code": "<stable_code>", "request_id": "<id>"}`
//! with `content-type: application/json`. Codes are stable identifiers that
//! clients and dashboards may rely on; messages are for people.

use serde::Serialize;

/// A local response a plugin sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// HTTP status (403, 401, 429, ...).
    pub status: u16,
    /// Stable machine-readable code, e.g. `rbac_denied`.
    pub code: &'static str,
    /// Human-readable reason; must never contain secrets.
    pub message: String,
    /// Extra response headers (e.g. `www-authenticate`, `retry-after`).
    pub headers: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    code: &'a str,
    request_id: &'a str,
}

impl Denial {
    /// A denial with no extra headers.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Denial {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The JSON body for the request with id `request_id`.
    pub fn body(&self, request_id: &str) -> Vec<u8> {
        serde_json::to_vec(&Body {
            error: &self.message,
            code: self.code,
            request_id,
        })
        .unwrap_or_default()
    }

    /// All response headers: `content-type` first, then the extra ones.
    pub fn response_headers(&self) -> Vec<(&str, &str)> {
        let mut out = vec![("content-type", "application/json")];
        out.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_shared_shape() {
        let d = Denial::new(403, "rbac_denied", "denied by policy \"x\"");
        let v: serde_json::Value = serde_json::from_slice(&d.body("req-1")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "denied by policy \"x\"", "code": "rbac_denied", "request_id": "req-1"})
        );
    }

    #[test]
    fn headers_start_with_content_type() {
        let d = Denial::new(401, "jwt_missing", "m").with_header("www-authenticate", "Bearer");
        assert_eq!(
            d.response_headers(),
            vec![
                ("content-type", "application/json"),
                ("www-authenticate", "Bearer")
            ]
        );
    }
}
