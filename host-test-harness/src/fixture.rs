//! Fixture files: requests in, expected outcomes out.
//!
//! One fixture file is run by two runners — the wasmtime harness and real
//! Envoy — and both must produce the same results. A file looks like this:
//!
//! ```yaml
//! name: rbac basics
//! config:                      # the plugin configuration (any JSON value)
//!   policies: [...]
//! cases:
//!   - name: ops may read /admin
//!     request:
//!       method: GET            # default GET
//!       path: /admin/users     # default /
//!       authority: api.local   # default example.com
//!       headers:               # ordered; repeated names allowed
//!         - [x-team, ops]
//!       body: ""               # optional request body (UTF-8)
//!       source: 127.0.0.7      # client IP; Envoy runner binds to it (loopback)
//!     expect:
//!       status: 200            # 200 = the echo upstream answered
//!       forwarded: true        # the request reached the upstream
//!       upstream_headers:      # headers the upstream saw; null = absent
//!         x-team: ops
//!       headers:               # response headers the client saw; null = absent
//!         content-type: application/json
//!       body_json:             # subset match of the JSON response body
//!         code: rbac_denied
//!       body_contains: denied  # substring of the response body
//! ```
//!
//! A file may instead declare that its configuration must be refused:
//!
//! ```yaml
//! name: bad cidr
//! config: { policies: [ ... ] }
//! config_error: "policies[0].rules[0].source_cidrs[0]"
//! ```
//!
//! Both runners then check that the plugin refuses to configure and that the
//! log (harness) or Envoy's output (Envoy runner) contains that text.
//!
//! Answers to the plugin's callouts are given per cluster; the cluster then
//! exists in both runners (in Envoy it points at a server the runner starts):
//!
//! ```yaml
//! callouts:
//!   httpbin:                   # proxy_http_call to cluster "httpbin"
//!     http: { status: 200, headers: [[content-type, text/plain]], body: "ok" }
//!   rls:                       # proxy_grpc_call to cluster "rls"
//!     grpc: { status: 14, message: unavailable }   # or status 0 + body_hex
//!   grpc-echo:                 # proxy_grpc_stream to cluster "grpc-echo"
//!     grpc_stream:
//!       initial_metadata: [[x-stream-tag, blue]]
//!       messages: ["6f6b"]     # hex; the n-th answers the module's n-th message
//!       trailing_metadata: [[x-stream-end, done]]
//!       status: 0              # closes after the last message
//!       message: ""
//! ```
//!
//! A file whose plugin depends on how Envoy's HTTP connection manager is
//! deployed says so; both runners then emulate or configure it (the default
//! is Envoy's default):
//!
//! ```yaml
//! connection_manager:
//!   use_remote_address: true                          # default false
//!   forward_client_cert_details: ALWAYS_FORWARD_ONLY  # default SANITIZE
//! ```
//!
//! Of the `grpc` (unary call) answers only *failures* with status 14
//! (`UNAVAILABLE`, the cluster's upstream refuses connections) can be
//! reproduced in Envoy; a file with any other `grpc` answer runs in the
//! harness only. `grpc_stream` answers run in both: the Envoy runner serves
//! them from a small HTTP/2 gRPC server.
//!
//! The upstream in both runners is an *echo*: it answers 200 with header
//! `x-palisade-echo: 1` and a JSON body describing the request it received
//! (see [`EchoedRequest`]), so a case can assert what was forwarded.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Response header the echo upstream sets, so a runner can tell an upstream
/// answer from a local (plugin or proxy) response.
pub const ECHO_HEADER: &str = "x-palisade-echo";

/// A parsed fixture file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureFile {
    /// Human name of the file, shown in reports.
    pub name: String,
    /// Plugin configuration, passed to the module as JSON bytes.
    #[serde(default)]
    pub config: serde_json::Value,
    /// When set, the configuration must be refused and the log must contain
    /// this text.
    #[serde(default)]
    pub config_error: Option<String>,
    /// Answers to the plugin's http and gRPC calls, by cluster name.
    #[serde(default)]
    pub callouts: BTreeMap<String, Callout>,
    /// Envoy HTTP connection manager settings both runners apply; `None`
    /// is Envoy's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_manager: Option<ConnectionManagerSettings>,
    /// Request cases, run in order on one plugin instance.
    #[serde(default)]
    pub cases: Vec<Case>,
    /// Where the file was read from (not part of the YAML).
    #[serde(skip)]
    pub path: PathBuf,
}

/// The fixture's `connection_manager:` section: the two settings of Envoy's
/// HTTP connection manager that change what a filter sees.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionManagerSettings {
    /// Envoy's `use_remote_address`.
    #[serde(default)]
    pub use_remote_address: bool,
    /// Envoy's `forward_client_cert_details` (the two values that matter
    /// on a plain-HTTP listener).
    #[serde(default)]
    pub forward_client_cert_details: ForwardClientCertDetails,
}

/// Envoy's `forward_client_cert_details` on a plain-HTTP listener.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ForwardClientCertDetails {
    /// A client's `x-forwarded-client-cert` is removed (Envoy's default).
    #[default]
    Sanitize,
    /// A client's `x-forwarded-client-cert` is passed on unchanged.
    AlwaysForwardOnly,
}

impl From<ConnectionManagerSettings> for crate::host::ConnectionManager {
    fn from(s: ConnectionManagerSettings) -> Self {
        crate::host::ConnectionManager {
            use_remote_address: s.use_remote_address,
            forward_client_cert: s.forward_client_cert_details
                == ForwardClientCertDetails::AlwaysForwardOnly,
        }
    }
}

/// How a callout cluster answers every call made to it: give exactly one
/// of `http`, `grpc` or `grpc_stream`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Callout {
    /// An HTTP answer to `proxy_http_call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpAnswer>,
    /// A gRPC answer to `proxy_grpc_call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcAnswer>,
    /// How the server answers a `proxy_grpc_stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_stream: Option<GrpcStreamAnswer>,
}

/// A canned HTTP response.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpAnswer {
    /// Status code.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Response headers in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Response body.
    #[serde(default)]
    pub body: String,
}

fn default_status() -> u16 {
    200
}

/// A canned gRPC answer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrpcAnswer {
    /// gRPC status: 0 delivers `body_hex`, anything else fails the call.
    #[serde(default)]
    pub status: u32,
    /// The status message of a failure.
    #[serde(default)]
    pub message: String,
    /// The serialized response message, in hex.
    #[serde(default)]
    pub body_hex: String,
}

impl GrpcAnswer {
    /// The response message bytes, or why `body_hex` is not hex.
    pub fn body(&self) -> Result<Vec<u8>, String> {
        hex("body_hex", &self.body_hex)
    }
}

/// A canned gRPC stream: the server sends `initial_metadata`, answers the
/// module's n-th message with the n-th of `messages`, and closes with
/// `trailing_metadata` and `status`/`message` after its last message (at
/// once when there is none, or when the module ends its side first). See
/// [`GrpcStreamScript`](crate::grpc_stream::GrpcStreamScript).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrpcStreamAnswer {
    /// Response headers after `:status` and `content-type`.
    #[serde(default)]
    pub initial_metadata: Vec<(String, String)>,
    /// Serialized response messages, in hex, one per module message.
    #[serde(default)]
    pub messages: Vec<String>,
    /// Trailers after `grpc-status` and `grpc-message`.
    #[serde(default)]
    pub trailing_metadata: Vec<(String, String)>,
    /// gRPC status the stream closes with (0 = OK).
    #[serde(default)]
    pub status: u32,
    /// Status message (`grpc-message`).
    #[serde(default)]
    pub message: String,
}

impl GrpcStreamAnswer {
    /// The response messages' bytes, or why one is not hex.
    pub fn message_bytes(&self) -> Result<Vec<Vec<u8>>, String> {
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| hex(&format!("messages[{i}]"), m))
            .collect()
    }
}

/// Bytes written as hex in the field `field`, or why they are not.
fn hex(field: &str, text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    if t.len() % 2 != 0 {
        return Err(format!("{field} has an odd length ({})", t.len()));
    }
    (0..t.len())
        .step_by(2)
        .map(|i| {
            t.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("{field} has a non-hex pair at {i}"))
        })
        .collect()
}

/// One request and its expected outcome.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Human name, shown in reports.
    pub name: String,
    /// The request the client sends.
    pub request: Request,
    /// What the client (and the upstream) must see.
    pub expect: Expect,
}

/// A client request.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Path including any query string.
    #[serde(default = "default_path")]
    pub path: String,
    /// `:authority` / Host.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// Request headers in order; names are lower-cased by the runners.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Request body, if any.
    #[serde(default)]
    pub body: Option<String>,
    /// Client IP address. Loopback addresses work in both runners.
    #[serde(default)]
    pub source: Option<IpAddr>,
}

fn default_method() -> String {
    "GET".to_string()
}
fn default_path() -> String {
    "/".to_string()
}
fn default_authority() -> String {
    "example.com".to_string()
}

impl Default for Request {
    fn default() -> Self {
        Request {
            method: default_method(),
            path: default_path(),
            authority: default_authority(),
            headers: Vec::new(),
            body: None,
            source: None,
        }
    }
}

/// Expected outcome; every field is optional and only given fields are checked.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Response status the client sees.
    #[serde(default)]
    pub status: Option<u16>,
    /// Whether the request reached the upstream.
    #[serde(default)]
    pub forwarded: Option<bool>,
    /// Headers the upstream received: value `null` means "absent".
    #[serde(default)]
    pub upstream_headers: BTreeMap<String, Option<String>>,
    /// Headers of the response the client sees: value `null` means "absent".
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    /// Subset of the JSON response body (objects compared key by key).
    #[serde(default)]
    pub body_json: Option<serde_json::Value>,
    /// Text the response body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
}

/// The request as the echo upstream received it (its JSON response body).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct EchoedRequest {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Headers in order, names lower-case (`:authority` is given as `host`).
    pub headers: Vec<(String, String)>,
    /// Body as (lossy) UTF-8.
    pub body: String,
}

/// What a runner observed for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Status the client saw.
    pub status: u16,
    /// Response headers the client saw, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Response body the client saw.
    pub body: Vec<u8>,
    /// The request as the upstream saw it; `None` when it never got there.
    pub upstream: Option<EchoedRequest>,
}

impl Outcome {
    /// First value of a response header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        first(&self.headers, name)
    }
}

fn first<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One difference between what a case expected and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Which expectation (e.g. `status`, `upstream_headers.x-team`).
    pub field: String,
    /// What the fixture asked for.
    pub expected: String,
    /// What the runner saw.
    pub actual: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.field, self.expected, self.actual
        )
    }
}

/// Errors reading a fixture file.
#[derive(Debug)]
pub enum FixtureError {
    /// The file could not be read.
    Io(PathBuf, std::io::Error),
    /// The YAML is not a valid fixture file.
    Parse(PathBuf, String),
}

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FixtureError::Io(p, e) => write!(f, "cannot read fixture {}: {e}", p.display()),
            FixtureError::Parse(p, e) => {
                write!(f, "fixture {} is not valid: {e}", p.display())
            }
        }
    }
}

impl std::error::Error for FixtureError {}

impl FixtureFile {
    /// Reads and parses a fixture file.
    pub fn load(path: impl AsRef<Path>) -> Result<FixtureFile, FixtureError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| FixtureError::Io(path.to_path_buf(), e))?;
        let mut file =
            FixtureFile::parse(&text).map_err(|e| FixtureError::Parse(path.to_path_buf(), e))?;
        file.path = path.to_path_buf();
        Ok(file)
    }

    /// Loads every `*.yaml` file of a directory, in file-name order.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Vec<FixtureFile>, FixtureError> {
        let dir = dir.as_ref();
        let entries = std::fs::read_dir(dir).map_err(|e| FixtureError::Io(dir.to_path_buf(), e))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        paths.sort();
        paths.iter().map(FixtureFile::load).collect()
    }

    /// Parses fixture YAML text.
    pub fn parse(text: &str) -> Result<FixtureFile, String> {
        let file: FixtureFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if file.config_error.is_some() && !file.cases.is_empty() {
            return Err("a file with `config_error` cannot also have `cases`".into());
        }
        if file.config_error.is_none() && file.cases.is_empty() {
            return Err("a fixture file needs `cases` or `config_error`".into());
        }
        for (cluster, callout) in &file.callouts {
            match (&callout.http, &callout.grpc, &callout.grpc_stream) {
                (Some(_), None, None) => {}
                (None, Some(g), None) => {
                    g.body()
                        .map_err(|e| format!("callouts.{cluster}.grpc: {e}"))?;
                }
                (None, None, Some(s)) => {
                    s.message_bytes()
                        .map_err(|e| format!("callouts.{cluster}.grpc_stream: {e}"))?;
                }
                _ => {
                    return Err(format!(
                        "callouts.{cluster}: give exactly one of `http`, `grpc` or `grpc_stream`"
                    ))
                }
            }
        }
        Ok(file)
    }

    /// The plugin configuration as the bytes handed to the module.
    pub fn config_bytes(&self) -> Vec<u8> {
        if self.config.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&self.config).expect("a JSON value always serializes")
        }
    }
}

/// Checks an outcome against a case's expectations; empty means it passed.
pub fn check(expect: &Expect, outcome: &Outcome) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut push = |field: String, expected: String, actual: String| {
        out.push(Mismatch {
            field,
            expected,
            actual,
        })
    };
    if let Some(status) = expect.status {
        if status != outcome.status {
            push(
                "status".into(),
                status.to_string(),
                outcome.status.to_string(),
            );
        }
    }
    if let Some(fwd) = expect.forwarded {
        let actual = outcome.upstream.is_some();
        if fwd != actual {
            push("forwarded".into(), fwd.to_string(), actual.to_string());
        }
    }
    for (name, want) in &expect.upstream_headers {
        let got = outcome
            .upstream
            .as_ref()
            .and_then(|u| first(&u.headers, name));
        if want.as_deref() != got {
            push(
                format!("upstream_headers.{name}"),
                show(want.as_deref()),
                show(got),
            );
        }
    }
    for (name, want) in &expect.headers {
        let got = outcome.header(name);
        if want.as_deref() != got {
            push(format!("headers.{name}"), show(want.as_deref()), show(got));
        }
    }
    if let Some(want) = &expect.body_json {
        match serde_json::from_slice::<serde_json::Value>(&outcome.body) {
            Ok(got) => {
                if !json_subset(want, &got) {
                    push("body_json".into(), want.to_string(), got.to_string());
                }
            }
            Err(_) => push(
                "body_json".into(),
                want.to_string(),
                format!("non-JSON body {:?}", String::from_utf8_lossy(&outcome.body)),
            ),
        }
    }
    if let Some(text) = &expect.body_contains {
        let body = String::from_utf8_lossy(&outcome.body);
        if !body.contains(text.as_str()) {
            push(
                "body_contains".into(),
                format!("{text:?}"),
                format!("{body:?}"),
            );
        }
    }
    out
}

fn show(v: Option<&str>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "<absent>".to_string(),
    }
}

/// `want` is contained in `got`: objects by key (recursively), everything
/// else by equality.
pub fn json_subset(want: &serde_json::Value, got: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| json_subset(wv, gv))),
        _ => want == got,
    }
}

/// The result of one case in one runner.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// Case name.
    pub name: String,
    /// What happened (absent if the runner failed before an outcome).
    pub outcome: Option<Outcome>,
    /// Differences from the expectation; empty = passed.
    pub mismatches: Vec<Mismatch>,
    /// A runner failure (not a mismatch), e.g. the connection broke.
    pub error: Option<String>,
}

impl CaseReport {
    /// True when the case behaved as expected.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.mismatches.is_empty()
    }
}

/// The result of one fixture file in one runner.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// Fixture file name.
    pub name: String,
    /// Which runner produced it (`harness`, `envoy`).
    pub runner: String,
    /// Per case, in file order. For a `config_error` file, one pseudo-case.
    pub cases: Vec<CaseReport>,
}

impl FileReport {
    /// Number of passing cases.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed()).count()
    }
    /// Number of failing cases.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[{}] {}", self.runner, self.name)?;
        for c in &self.cases {
            if c.passed() {
                writeln!(f, "  ok   {}", c.name)?;
            } else {
                writeln!(f, "  FAIL {}", c.name)?;
                if let Some(e) = &c.error {
                    writeln!(f, "       error: {e}")?;
                }
                for m in &c.mismatches {
                    writeln!(f, "       {m}")?;
                }
            }
        }
        write!(f, "  {} passed, {} failed", self.passed(), self.failed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
name: sample
config: { a: 1 }
cases:
  - name: one
    request:
      path: /x
      headers: [[x-a, "1"], [x-a, "2"]]
      source: 127.0.0.9
    expect:
      status: 403
      upstream_headers: { x-gone: null }
      body_json: { code: denied }
"#;

    #[test]
    fn parses_defaults_and_repeated_headers() {
        let f = FixtureFile::parse(SAMPLE).unwrap();
        let r = &f.cases[0].request;
        assert_eq!(r.method, "GET");
        assert_eq!(r.authority, "example.com");
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.source, Some("127.0.0.9".parse().unwrap()));
        assert_eq!(f.config_bytes(), br#"{"a":1}"#.to_vec());
    }

    #[test]
    fn refuses_unknown_fields() {
        let err = FixtureFile::parse("name: x\ncases: []\nbogus: 1\n").unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn connection_manager_settings_parse_and_refuse_other_values() {
        let f = FixtureFile::parse(
            "name: x\nconnection_manager:\n  use_remote_address: true\n  \
             forward_client_cert_details: ALWAYS_FORWARD_ONLY\nconfig_error: f\n",
        )
        .unwrap();
        let cm: crate::host::ConnectionManager = f.connection_manager.unwrap().into();
        assert!(cm.use_remote_address && cm.forward_client_cert);
        let f = FixtureFile::parse("name: x\nconnection_manager: {}\nconfig_error: f\n").unwrap();
        assert_eq!(
            crate::host::ConnectionManager::from(f.connection_manager.unwrap()),
            crate::host::ConnectionManager::default()
        );
        let err = FixtureFile::parse(
            "name: x\nconnection_manager: {forward_client_cert_details: APPEND_FORWARD}\nconfig_error: f\n",
        )
        .unwrap_err();
        assert!(err.contains("APPEND_FORWARD"), "{err}");
    }

    #[test]
    fn requires_cases_or_config_error() {
        assert!(FixtureFile::parse("name: x\n").is_err());
        assert!(FixtureFile::parse("name: x\nconfig_error: f\n").is_ok());
    }

    #[test]
    fn check_reports_each_mismatch() {
        let f = FixtureFile::parse(SAMPLE).unwrap();
        let outcome = Outcome {
            status: 200,
            headers: vec![],
            body: br#"{"code":"other","request_id":"r"}"#.to_vec(),
            upstream: Some(EchoedRequest {
                headers: vec![("x-gone".into(), "v".into())],
                ..Default::default()
            }),
        };
        let m = check(&f.cases[0].expect, &outcome);
        let fields: Vec<_> = m.iter().map(|m| m.field.as_str()).collect();
        assert_eq!(fields, ["status", "upstream_headers.x-gone", "body_json"]);
    }

    #[test]
    fn check_passes_matching_outcome() {
        let f = FixtureFile::parse(SAMPLE).unwrap();
        let outcome = Outcome {
            status: 403,
            headers: vec![],
            body: br#"{"code":"denied","request_id":"r"}"#.to_vec(),
            upstream: None,
        };
        assert!(check(&f.cases[0].expect, &outcome).is_empty());
    }

    #[test]
    fn load_dir_reads_yaml_in_name_order() {
        let dir = std::env::temp_dir().join(format!("fixture-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.yaml"), "name: b\nconfig_error: x\n").unwrap();
        std::fs::write(dir.join("a.yaml"), "name: a\nconfig_error: y\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let files = FixtureFile::load_dir(&dir).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(files[0].path.ends_with("a.yaml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn callouts_parse_per_cluster_and_check_hex() {
        let f = FixtureFile::parse(
            "name: c\ncallouts:\n  idp: { http: { body: k } }\n  rls: { grpc: { body_hex: 0a0b } }\ncases: [{ name: a, request: {}, expect: {} }]\n",
        )
        .unwrap();
        assert_eq!(
            f.callouts["idp"].http,
            Some(HttpAnswer {
                status: 200,
                headers: vec![],
                body: "k".into()
            })
        );
        let grpc = f.callouts["rls"].grpc.as_ref().unwrap();
        assert_eq!(grpc.body().unwrap(), [0x0a, 0x0b]);
        let err =
            FixtureFile::parse("name: c\ncallouts: { x: {} }\nconfig_error: x\n").unwrap_err();
        assert!(err.contains("exactly one"), "{err}");
        let err = FixtureFile::parse(
            "name: c\ncallouts: { rls: { grpc: { body_hex: zz } } }\nconfig_error: x\n",
        )
        .unwrap_err();
        assert!(err.contains("callouts.rls.grpc"), "{err}");
    }

    #[test]
    fn json_subset_is_recursive() {
        let got = serde_json::json!({"a": {"b": 1, "c": 2}, "d": [1]});
        assert!(json_subset(&serde_json::json!({"a": {"b": 1}}), &got));
        assert!(!json_subset(&serde_json::json!({"a": {"b": 2}}), &got));
        assert!(!json_subset(&serde_json::json!({"d": [2]}), &got));
    }
}
