//! The request as the rules see it, built from a [`sdk_ext::RequestView`]
//! (or any method/URI/headers) plus the buffered body.
//!
//! Parsing follows ModSecurity: the query string and urlencoded bodies
//! split on `&`; cookies split on `;`; `REQUEST_FILENAME` is the raw path
//! without the query; `REQUEST_BASENAME` its last segment. The body is
//! parsed by the processor `REQBODY_PROCESSOR` names when phase 2 starts
//! (rules in phase 1 may change it with `ctl:requestBodyProcessor`).

use crate::body::{self, BodyLimits, Pairs};
use sdk_ext::RequestView;

/// Everything about one request the engine reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Method as sent.
    pub method: String,
    /// Request target as sent (path and query).
    pub uri: String,
    /// `HTTP/1.1` and so on.
    pub protocol: String,
    /// Headers in arrival order.
    pub headers: Vec<(String, String)>,
    /// The client address, if known.
    pub remote_addr: String,
    /// A unique id for the transaction (the request id).
    pub unique_id: String,
    /// The buffered body (at most the configured limit).
    pub body: Vec<u8>,
    /// True when the body was cut at the limit.
    pub body_truncated: bool,
    /// Query arguments (parsed once).
    pub args_get: Pairs,
    /// Cookies (parsed once).
    pub cookies: Pairs,
    /// True when some query arguments were dropped at the limit.
    pub args_truncated: bool,
}

/// Body-derived variables, filled when phase 2 starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedBody {
    /// The processor that ran (`URLENCODED`, `JSON`, ...), if any.
    pub processor: Option<String>,
    /// `ARGS_POST`.
    pub args_post: Pairs,
    /// `REQBODY_ERROR`: 1 when the processor failed.
    pub error: bool,
    /// The processor's error message, for the audit log.
    pub error_msg: String,
    /// Multipart files and part headers (`FILES*`, `MULTIPART_PART_HEADERS`).
    pub multipart: body::multipart::Multipart,
    /// XML text nodes and attribute values.
    pub xml: body::xml::XmlValues,
}

impl Request {
    /// Builds the request from its parts and parses query and cookies.
    pub fn new(
        method: &str,
        uri: &str,
        protocol: &str,
        headers: Vec<(String, String)>,
        limits: BodyLimits,
    ) -> Request {
        let mut r = Request {
            method: method.to_string(),
            uri: uri.to_string(),
            protocol: protocol.to_string(),
            headers,
            ..Default::default()
        };
        if let Some(q) = r.query() {
            let q = q.as_bytes().to_vec();
            r.args_truncated = body::urlencoded::parse(&q, limits.max_args, &mut r.args_get);
        }
        let mut cookies = Vec::new();
        for (_, v) in r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        {
            parse_cookies(v, limits.max_args, &mut cookies);
        }
        r.cookies = cookies;
        r
    }

    /// Builds the request from the shared request view.
    pub fn from_view(view: &RequestView, protocol: &str, limits: BodyLimits) -> Request {
        let mut r = Request::new(
            &view.method,
            &view.path,
            protocol,
            view.headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            limits,
        );
        if !view.host.is_empty() && r.header("host").is_none() {
            r.headers.insert(0, ("host".to_string(), view.host.clone()));
        }
        r.remote_addr = view
            .source_ip()
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        r.unique_id = view.request_id.clone();
        r
    }

    /// Sets the body, keeping at most `limit` bytes.
    pub fn set_body(&mut self, mut body: Vec<u8>, limit: usize) {
        if body.len() > limit {
            body.truncate(limit);
            self.body_truncated = true;
        }
        self.body = body;
    }

    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query string.
    pub fn filename(&self) -> &str {
        let end = self.uri.find('?').unwrap_or(self.uri.len());
        self.uri.get(..end).unwrap_or("")
    }

    /// The last path segment.
    pub fn basename(&self) -> &str {
        let f = self.filename();
        f.rsplit(['/', '\\']).next().unwrap_or(f)
    }

    /// The query string without `?`.
    pub fn query(&self) -> Option<&str> {
        self.uri.split_once('?').map(|(_, q)| q)
    }

    /// `METHOD URI PROTOCOL`.
    pub fn line(&self) -> String {
        format!("{} {} {}", self.method, self.uri, self.protocol)
    }

    /// The processor the `Content-Type` selects.
    pub fn default_processor(&self) -> Option<&'static str> {
        self.header("content-type").and_then(body::processor_for)
    }

    /// Runs the body processor `processor` over the body.
    pub fn parse_body(&self, processor: Option<&str>, limits: BodyLimits) -> ParsedBody {
        let mut parsed = ParsedBody {
            processor: processor.map(str::to_string),
            ..Default::default()
        };
        match processor {
            Some("URLENCODED") => {
                let truncated =
                    body::urlencoded::parse(&self.body, limits.max_args, &mut parsed.args_post);
                if truncated {
                    parsed.error_msg = format!("more than {} body arguments", limits.max_args);
                }
            }
            Some("MULTIPART") => {
                let ct = self.header("content-type").unwrap_or("");
                if let Err(e) =
                    body::multipart::parse(&self.body, ct, limits, &mut parsed.multipart)
                {
                    parsed.error = true;
                    parsed.error_msg = e.to_string();
                }
                parsed.args_post = std::mem::take(&mut parsed.multipart.args);
            }
            Some("XML") => match body::xml::parse(&self.body, limits) {
                Ok(v) => parsed.xml = v,
                Err(e) => {
                    parsed.error = true;
                    parsed.error_msg = e.to_string();
                }
            },
            Some("JSON") if !self.body.is_empty() => {
                if let Err(e) = body::json::parse(&self.body, limits, &mut parsed.args_post) {
                    parsed.error = true;
                    parsed.error_msg = e.to_string();
                }
            }
            _ => {}
        }
        parsed
    }
}

/// `Cookie: a=1; b=2` into pairs (values are not decoded).
fn parse_cookies(header: &str, max: usize, out: &mut Pairs) {
    for part in header.split(';') {
        if out.len() >= max {
            return;
        }
        let part = part.trim_start();
        if part.is_empty() {
            continue;
        }
        let (n, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((n.as_bytes().to_vec(), v.as_bytes().to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, headers: &[(&str, &str)]) -> Request {
        Request::new(
            "GET",
            uri,
            "HTTP/1.1",
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            BodyLimits::default(),
        )
    }

    #[test]
    fn uri_parts() {
        let r = req("/a/b.php?x=1&y=%27", &[]);
        assert_eq!(r.filename(), "/a/b.php");
        assert_eq!(r.basename(), "b.php");
        assert_eq!(r.query(), Some("x=1&y=%27"));
        assert_eq!(r.args_get[1], (b"y".to_vec(), b"'".to_vec()));
        assert_eq!(r.line(), "GET /a/b.php?x=1&y=%27 HTTP/1.1");
    }

    #[test]
    fn cookies_split() {
        let r = req("/", &[("Cookie", "a=1; b; c=x=y")]);
        assert_eq!(r.cookies.len(), 3);
        assert_eq!(r.cookies[2], (b"c".to_vec(), b"x=y".to_vec()));
    }

    #[test]
    fn bodies() {
        let mut r = req("/", &[("content-type", "application/json")]);
        r.set_body(br#"{"q":"x"}"#.to_vec(), 4);
        assert!(r.body_truncated);
        r.set_body(br#"{"q":"x"}"#.to_vec(), 100);
        let p = r.parse_body(r.default_processor(), BodyLimits::default());
        assert_eq!(p.args_post, vec![(b"json.q".to_vec(), b"x".to_vec())]);
        r.set_body(b"{".to_vec(), 100);
        assert!(r.parse_body(Some("JSON"), BodyLimits::default()).error);
    }

    #[test]
    fn from_view_keeps_host_and_id() {
        let view = RequestView {
            method: "POST".into(),
            path: "/x?a=b".into(),
            host: "h".into(),
            request_id: "rid".into(),
            ..Default::default()
        };
        let r = Request::from_view(&view, "HTTP/2", BodyLimits::default());
        assert_eq!(r.header("host"), Some("h"));
        assert_eq!(r.unique_id, "rid");
        assert_eq!(r.args_get.len(), 1);
    }
}
