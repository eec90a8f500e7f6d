//! Outgoing HTTP calls (`proxy_http_call`): recorded for the test, which
//! answers them.

/// A call a module made, waiting for the test's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Token the module got back; pass it to [`Host::respond`](crate::Host::respond).
    pub token: u32,
    /// Name of the plugin that made the call.
    pub plugin: String,
    /// Cluster (upstream) name.
    pub cluster: String,
    /// Request headers, including `:method`, `:path`, `:authority`.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Request trailers.
    pub trailers: Vec<(String, String)>,
    /// Timeout the module asked for, in milliseconds.
    pub timeout_ms: u32,
}

impl HttpCall {
    /// First value of a request header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to an [`HttpCall`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallResponse {
    /// Response headers; give `:status` here (see [`CallResponse::new`]).
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
    /// Response trailers.
    pub trailers: Vec<(String, String)>,
}

impl CallResponse {
    /// A response with `:status` and a body.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> CallResponse {
        CallResponse {
            headers: vec![(":status".to_string(), status.to_string())],
            body: body.into(),
            trailers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> CallResponse {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// What Envoy delivers when a call fails (reset, timeout, no healthy
    /// upstream): no headers, no body.
    pub fn failure() -> CallResponse {
        CallResponse::default()
    }
}
