//! go-ftw's test format: loading CRS's regression YAML and building the
//! request each test sends, shared by the native, the harness and the
//! Envoy runners.

#![allow(dead_code)] // each test binary uses part of it

use host_test_harness::fixture::Request as FixtureRequest;
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use waf::body::BodyLimits;
use waf::compile::{compile, CompileOptions};
use waf::config::{Mode, WafConfig};
use waf::{Transaction, Waf};

pub const SETUP_900005: &str = r#"SecAction "id:900005,\
  phase:1,\
  nolog,\
  pass,\
  ctl:ruleEngine=DetectionOnly,\
  ctl:ruleRemoveById=910000,\
  setvar:tx.blocking_paranoia_level=4,\
  setvar:tx.crs_validate_utf8_encoding=1,\
  setvar:tx.arg_name_length=100,\
  setvar:tx.arg_length=400,\
  setvar:tx.total_arg_length=64000,\
  setvar:tx.max_num_args=255,\
  setvar:tx.max_file_size=64100,\
  setvar:tx.combined_file_sizes=65535"
"#;

pub fn crs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs-4.25.0")
}

pub fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml") {
            out.push(p);
        }
    }
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &[u8]) -> String {
    let mut out = String::new();
    for &b in s {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// go-ftw's `encodeDataParameters`: unescaped form data gets its keys and
/// values escaped.
pub fn encode_form(data: &[u8]) -> Vec<u8> {
    let unescape_changes = data.iter().any(|&b| b == b'%' || b == b'+');
    if unescape_changes {
        return data.to_vec();
    }
    let parts: Vec<String> = data
        .split(|&b| b == b'&')
        .map(|tok| match tok.iter().position(|&b| b == b'=') {
            Some(i) => format!(
                "{}={}",
                query_escape(&tok[..i]),
                query_escape(&tok[i + 1..])
            ),
            None => query_escape(tok),
        })
        .collect();
    parts.join("&").into_bytes()
}

/// The request one test stage sends.
pub struct Input {
    pub method: String,
    pub uri: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn base64(s: &str) -> Vec<u8> {
    waf::transforms::Transform::Base64Decode
        .apply(s.as_bytes())
        .into_owned()
}

pub fn parse_raw(raw: &[u8]) -> Option<Input> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))?;
    let head = String::from_utf8_lossy(&raw[..split.0]).into_owned();
    let body = raw[split.0 + split.1..].to_vec();
    let mut lines = head.lines();
    let mut rl = lines.next()?.splitn(3, ' ');
    let method = rl.next()?.to_string();
    let uri = rl.next().unwrap_or("/").to_string();
    let version = rl.next().unwrap_or("HTTP/1.1").trim().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Input {
        method,
        uri,
        version,
        headers,
        body,
    })
}

pub fn build_input(input: &Value) -> Result<Input, String> {
    if let Some(enc) = input.get("encoded_request").and_then(scalar) {
        return parse_raw(&base64(&enc))
            .ok_or_else(|| "encoded_request does not parse as HTTP".to_string());
    }
    if input.get("raw_request").is_some() {
        return Err("raw_request is not emulated".to_string());
    }
    let method = input
        .get("method")
        .and_then(scalar)
        .unwrap_or_else(|| "GET".into());
    let uri = input
        .get("uri")
        .and_then(scalar)
        .unwrap_or_else(|| "/".into());
    let version = input
        .get("version")
        .and_then(scalar)
        .unwrap_or_else(|| "HTTP/1.1".into());
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(Value::Mapping(m)) = input.get("headers") {
        for (k, v) in m {
            if let (Some(k), Some(v)) = (scalar(k), scalar(v)) {
                headers.push((k, v));
            }
        }
    }
    let mut body = match input.get("data") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => scalar(v).ok_or("data is not a string")?.into_bytes(),
    };
    let autocomplete = input
        .get("autocomplete_headers")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let has = |h: &[(String, String)], n: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if autocomplete {
        if !body.is_empty() {
            if !has(&headers, "content-type") {
                headers.push((
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ));
            }
            if headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("content-type") && v == "application/x-www-form-urlencoded"
            }) {
                body = encode_form(&body);
            }
        }
        let ct = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone());
        if ct.is_some_and(|c| c.starts_with("multipart/form-data;")) {
            let mut out = Vec::with_capacity(body.len());
            for &b in &body {
                if b == b'\n' {
                    out.push(b'\r');
                }
                out.push(b);
            }
            body = out;
        }
        if !has(&headers, "connection") {
            headers.push(("Connection".into(), "close".into()));
        }
        let body_method = method.starts_with("POST")
            || method.contains("PUT")
            || method.contains("PATCH")
            || method.ends_with("DELETE");
        if (!body.is_empty() || body_method) && !has(&headers, "content-length") {
            headers.push(("Content-Length".into(), body.len().to_string()));
        }
    }
    Ok(Input {
        method,
        uri,
        version,
        headers,
        body,
    })
}

/// The response the CRS test backend (albedo) sends for `POST /reflect`:
/// status, headers and body taken from the JSON request body (`body`, or
/// base64 `encodedBody`); Go's default content type when none is given.
pub type Reflected = (u16, Vec<(String, String)>, Vec<u8>);

pub fn reflect(uri: &str, body: &[u8]) -> Option<Reflected> {
    if uri != "/reflect" {
        return None;
    }
    let spec: serde_json::Value = serde_json::from_slice(body).ok()?;
    let status = spec
        .get("status")
        .and_then(serde_json::Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(200);
    let mut headers: Vec<(String, String)> = spec
        .get("headers")
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let body = match (spec.get("encodedBody"), spec.get("body")) {
        (Some(serde_json::Value::String(e)), _) => base64(e),
        (_, Some(serde_json::Value::String(b))) => b.clone().into_bytes(),
        _ => Vec::new(),
    };
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
    }
    Some((status, headers, body))
}

pub fn ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Sequence(s)) => s
            .iter()
            .filter_map(|x| x.as_u64())
            .map(|x| x as u32)
            .collect(),
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// CRS with `crs-setup.conf.example` plus rule 900005 from the suite's
/// README, compiled into the plugin configuration (in `mode`).
pub fn compile_crs(tmp: &Path, mode: Mode) -> WafConfig {
    std::fs::create_dir_all(tmp).unwrap();
    let setup_900005 = tmp.join("900005.conf");
    std::fs::write(&setup_900005, SETUP_900005).unwrap();
    let mut opts = CompileOptions::new(crs_dir());
    opts.before.push(setup_900005);
    opts.mode = mode;
    compile(&opts).unwrap_or_else(|e| panic!("CRS does not load: {e}"))
}

/// Test stages of every YAML file: (rule file family, test label, stages).
pub fn all_tests() -> Vec<(String, String, Vec<Value>)> {
    let mut files = Vec::new();
    yaml_files(&crs_dir().join("tests/regression/tests"), &mut files);
    assert!(
        !files.is_empty(),
        "no CRS tests under {}",
        crs_dir().display()
    );
    let mut out = Vec::new();
    for f in &files {
        let family = f
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = f
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(f).unwrap();
        let doc: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", f.display()));
        let Some(Value::Sequence(tests)) = doc.get("tests") else {
            continue;
        };
        for t in tests {
            let tid = t
                .get("test_id")
                .and_then(scalar)
                .or_else(|| t.get("test_title").and_then(scalar))
                .unwrap_or_default();
            let Some(Value::Sequence(stages)) = t.get("stages") else {
                continue;
            };
            out.push((family.clone(), format!("{name}-{tid}"), stages.clone()));
        }
    }
    out
}

/// A stage's `expect_ids` and `no_expect_ids`.
pub fn expectations(stage: &Value) -> (Vec<u32>, Vec<u32>) {
    let stage = stage.get("stage").unwrap_or(stage);
    let log = stage.get("output").and_then(|o| o.get("log"));
    (
        ids(log.and_then(|l| l.get("expect_ids"))),
        ids(log.and_then(|l| l.get("no_expect_ids"))),
    )
}

/// The expected ids `logged` misses and the unwanted ids it has; both empty
/// when the stage passes.
pub fn compare(expect: &[u32], no_expect: &[u32], logged: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let missing = expect
        .iter()
        .copied()
        .filter(|i| !logged.contains(i))
        .collect();
    let unexpected = no_expect
        .iter()
        .copied()
        .filter(|i| logged.contains(i))
        .collect();
    (missing, unexpected)
}

/// Runs `input` through phases 1-5 of the native engine (answering
/// `POST /reflect` like albedo) and returns the ids of the rules it logged.
pub fn native_logged_ids(waf: &Waf, input: Input) -> Vec<u32> {
    let limits = BodyLimits::default();
    let mut req = waf::Request::new(
        &input.method,
        &input.uri,
        &input.version,
        input.headers,
        limits,
    );
    req.remote_addr = "127.0.0.1".into();
    req.unique_id = "aBcDeF0123456789".into();
    req.set_body(input.body, 1024 * 1024);
    let reflected = reflect(&input.uri, &req.body);
    let mut tx = Transaction::new(
        std::sync::Arc::clone(&waf.rules),
        req,
        waf.engine_mode(),
        limits,
    );
    tx.process_request_headers();
    tx.process_request_body();
    let (status, headers, body) = reflected.unwrap_or_else(|| {
        (
            200,
            vec![("Content-Type".into(), "text/html".into())],
            Vec::new(),
        )
    });
    tx.process_response_headers(status, "HTTP/1.1", headers);
    tx.process_response_body(body);
    tx.process_logging();
    tx.logged_ids()
}

/// The fixture request for a CRS test input, when the harness and Envoy
/// clients can send it as go-ftw would (plain methods, HTTP/1.1, printable
/// URI, the same framing, token header names, ASCII header values, UTF-8
/// body); otherwise what they cannot express.
pub fn as_fixture(input: &Input) -> Result<FixtureRequest, String> {
    let printable = |s: &str| s.bytes().all(|b| (0x21..0x7f).contains(&b));
    if !matches!(
        input.method.as_str(),
        "GET" | "POST" | "PUT" | "HEAD" | "OPTIONS"
    ) {
        return Err(format!(
            "method {:?} is not sent by the client",
            input.method
        ));
    }
    if input.version != "HTTP/1.1" {
        return Err(format!("version {:?} is not HTTP/1.1", input.version));
    }
    if !input.uri.starts_with('/') || !printable(&input.uri) {
        return Err("URI is not origin-form printable ASCII".to_string());
    }
    if let Some(why) = framing_difference(input) {
        return Err(why);
    }
    let mut authority = "localhost".to_string();
    let mut headers = Vec::new();
    for (k, v) in &input.headers {
        let lk = k.to_ascii_lowercase();
        if !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("header name {k:?} is not a plain token"));
        }
        if !v.is_ascii() {
            return Err(format!("header {k} has non-ASCII bytes"));
        }
        match lk.as_str() {
            "host" => authority = v.clone(),
            "connection" => {}
            _ => headers.push((lk, v.clone())),
        }
    }
    let body =
        String::from_utf8(input.body.clone()).map_err(|_| "body is not UTF-8".to_string())?;
    Ok(FixtureRequest {
        method: input.method.clone(),
        path: input.uri.clone(),
        authority,
        headers,
        body: (!body.is_empty()).then_some(body),
        ..Default::default()
    })
}

/// Why the framing and hop-by-hop headers a test sends differ from the
/// ones the clients and the proxy produce, if they do: `content-length`
/// must match the body (and be there when it is not empty; it is sent
/// as is), and there must be no `transfer-encoding`, `expect` or
/// `connection` other than go-ftw's `close` (the proxy consumes it; the
/// fixture request leaves it out).
fn framing_difference(input: &Input) -> Option<String> {
    let header = |name: &str| {
        input
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    for name in ["transfer-encoding", "expect"] {
        if let Some(v) = header(name) {
            return Some(format!(
                "sends {name}: {v}, which the client and proxy handle"
            ));
        }
    }
    if let Some(v) = header("connection").filter(|v| !v.eq_ignore_ascii_case("close")) {
        return Some(format!(
            "sends connection: {v}, a hop-by-hop header the proxy removes"
        ));
    }
    let length = input.body.len();
    match header("content-length") {
        Some(v) if v.trim() != length.to_string() => Some(format!(
            "sends content-length: {v} with a {length}-byte body"
        )),
        None if length > 0 => Some(format!(
            "sends a {length}-byte body without content-length; the client adds it"
        )),
        _ => None,
    }
}

/// A CRS test one fixture request expresses: a single request-phase stage
/// whose expectations the filter's audit line can show.
pub struct FixtureCase {
    /// The request as go-ftw sends it (for the native engine).
    pub input: Input,
    /// The same request for the harness and Envoy clients.
    pub request: FixtureRequest,
    /// Rule ids that must be logged.
    pub expect: Vec<u32>,
    /// Rule ids that must not be logged.
    pub no_expect: Vec<u32>,
}

/// The fixture case for a test of rule file `family`, or why a fixture
/// request and the detection-only audit line (written after the request
/// phases) cannot express it.
pub fn fixture_case(family: &str, stages: &[Value]) -> Result<FixtureCase, String> {
    if !family.starts_with("REQUEST-") {
        return Err(
            "tests response rules, which the request-phase audit line does not show".into(),
        );
    }
    let [stage] = stages else {
        return Err(format!(
            "has {} stages (a fixture request is one)",
            stages.len()
        ));
    };
    let stage = stage.get("stage").unwrap_or(stage);
    let (expect, no_expect) = expectations(stage);
    if expect.is_empty() && no_expect.is_empty() {
        return Err("has no rule-id expectations".into());
    }
    if expect.iter().any(|&i| i >= 950000) {
        return Err("expects a response or correlation rule (95xxxx)".into());
    }
    let input = build_input(stage.get("input").ok_or("stage without input")?)?;
    let request = as_fixture(&input)?;
    Ok(FixtureCase {
        input,
        request,
        expect,
        no_expect,
    })
}

/// Rule ids in one line when it is the WAF's audit line, else none.
pub fn audit_ids(line: &str) -> Vec<u32> {
    let Some(start) = line.find(r#"{"plugin":"waf""#) else {
        return Vec::new();
    };
    let v: serde_json::Value =
        serde_json::from_str(line.get(start..).unwrap_or("")).unwrap_or_default();
    v["rule_ids"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|i| i.as_u64())
                .map(|i| i as u32)
                .collect()
        })
        .unwrap_or_default()
}

/// Rule ids in the audit lines logged after `from` bytes of Envoy's log.
pub fn logged_ids(log: &str, from: usize) -> Vec<u32> {
    log.get(from..)
        .unwrap_or("")
        .lines()
        .flat_map(audit_ids)
        .collect()
}
