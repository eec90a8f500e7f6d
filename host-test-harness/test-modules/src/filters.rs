//! The filters (wasm32 only).

use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::rc::Rc;
use std::time::Duration;

macro_rules! log_at {
    ($level:ident, $($arg:tt)*) => {
        let _ = proxy_wasm::hostcalls::log(LogLevel::$level, &format!($($arg)*));
    };
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Clone, Default)]
struct Settings {
    mode: String,
    header: String,
    value: String,
    write: Option<String>,
    read: bool,
    /// `stream` mode: messages to send, one per reply (default 1).
    sends: u32,
    /// `stream` mode: cancel the stream at the first reply.
    cancel: bool,
    /// `host-calls` mode: which calls each request makes (shared by the
    /// streams, so a stream costs no copy of it).
    calls: Rc<HostCalls>,
}

/// The host calls a `host-calls` filter makes per request, as a plugin's
/// request path would (none by default).
#[derive(Default)]
struct HostCalls {
    /// Read the request header map (`proxy_get_header_map_pairs`).
    header_map: bool,
    /// Read the clock (`proxy_get_current_time_nanoseconds`).
    clock: bool,
    /// Read shared data `host_calls` and write it back with its CAS token.
    shared_cas: bool,
    /// Counters `host_calls_0` .. `host_calls_<n-1>`, each incremented once.
    counters: Vec<u32>,
}

/// Most counters a `host-calls` filter defines.
const MAX_PROBE_COUNTERS: u64 = 16;

#[derive(Default)]
struct Root {
    settings: Settings,
    ticks: Option<u32>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        log_at!(Info, "test module vm started");
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        let Some(obj) = parsed.as_ref().and_then(|v| v.as_object()) else {
            log_at!(Error, "test module refuses its configuration");
            return false;
        };
        let text = |k: &str| obj.get(k).and_then(|v| v.as_str()).map(str::to_string);
        self.settings = Settings {
            mode: text("mode").unwrap_or_else(|| "headers".to_string()),
            header: text("header").unwrap_or_default(),
            value: text("value").unwrap_or_default(),
            write: text("write"),
            read: obj.get("read").and_then(|v| v.as_bool()).unwrap_or(false),
            sends: obj
                .get("sends")
                .and_then(|v| v.as_u64())
                .map_or(1, |n| n as u32),
            cancel: obj.get("cancel").and_then(|v| v.as_bool()).unwrap_or(false),
            calls: Rc::default(),
        };
        if self.settings.mode == "host-calls" {
            let flag = |k: &str| obj.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
            let counters = obj.get("counters").and_then(|v| v.as_u64()).unwrap_or(0);
            self.settings.calls = Rc::new(HostCalls {
                header_map: flag("header_map"),
                clock: flag("clock"),
                shared_cas: flag("shared_cas"),
                counters: (0..counters.min(MAX_PROBE_COUNTERS))
                    .filter_map(|i| {
                        define_metric(MetricType::Counter, &format!("host_calls_{i}")).ok()
                    })
                    .collect(),
            });
        }
        if self.settings.mode == "tick" {
            self.ticks = define_metric(MetricType::Counter, "ticks").ok();
            self.set_tick_period(Duration::from_secs(1));
        }
        log_at!(
            Info,
            "test module configured in mode {}",
            self.settings.mode
        );
        true
    }

    fn on_tick(&mut self) {
        if let Some(id) = self.ticks {
            let _ = increment_metric(id, 1);
        }
        log_at!(Debug, "tick");
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        if self.settings.mode == "pass" {
            return Some(Box::new(Pass));
        }
        if self.settings.mode == "host-calls" {
            return Some(Box::new(MakeHostCalls(Rc::clone(&self.settings.calls))));
        }
        let s = self.settings.clone();
        Some(match s.mode.as_str() {
            "body" => Box::new(UpperBody),
            "auth" => Box::new(HttpAuthRandom),
            "counter" => Box::new(Counter {
                metric: define_metric(MetricType::Counter, "requests_total").ok(),
            }),
            "state" => Box::new(State(s)),
            "props" => Box::new(Props),
            "config" => Box::new(AddHeader(s)),
            "stream" => Box::new(StreamCheck::new(s)),
            _ => Box::new(HttpHeaders { context_id }),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Does nothing: every callback takes the SDK's default (continue). The
/// Envoy load bench runs it as the floor of any Proxy-Wasm filter.
struct Pass;

impl Context for Pass {}

impl HttpContext for Pass {}

/// Makes the configured host calls and continues: what those calls cost a
/// filter, measured by the Envoy load bench against the plugins that make
/// them. A header-map read that finds no `:path` answers 500, so a read
/// that silently failed cannot pass for a cheap one.
struct MakeHostCalls(Rc<HostCalls>);

impl Context for MakeHostCalls {}

impl HttpContext for MakeHostCalls {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let calls = &self.0;
        if calls.header_map {
            let headers = self.get_http_request_headers_bytes();
            if !headers.iter().any(|(name, _)| name == ":path") {
                self.send_http_response(500, vec![], Some(b"no :path in the header map\n"));
                return Action::Pause;
            }
        }
        if calls.clock {
            let _ = proxy_wasm::hostcalls::get_current_time();
        }
        if calls.shared_cas {
            let (data, cas) = self.get_shared_data("host_calls");
            let n = data
                .and_then(|d| <[u8; 8]>::try_from(d.as_slice()).ok())
                .map_or(0, u64::from_le_bytes);
            // One attempt, as a plugin's uncontended update makes.
            let _ = self.set_shared_data("host_calls", Some(&(n + 1).to_le_bytes()), cas);
        }
        for id in &calls.counters {
            let _ = increment_metric(*id, 1);
        }
        Action::Continue
    }
}

fn define_metric(kind: MetricType, name: &str) -> Result<u32, Status> {
    proxy_wasm::hostcalls::define_metric(kind, name)
}

fn increment_metric(id: u32, by: i64) -> Result<(), Status> {
    proxy_wasm::hostcalls::increment_metric(id, by)
}

struct HttpHeaders {
    context_id: u32,
}

impl Context for HttpHeaders {}

impl HttpContext for HttpHeaders {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        for (name, value) in &self.get_http_request_headers() {
            log_at!(Info, "#{} -> {}: {}", self.context_id, name, value);
        }
        match self.get_http_request_header(":path") {
            Some(path) if path == "/hello" => {
                self.send_http_response(
                    200,
                    vec![("hello", "World"), ("powered-by", "proxy-wasm")],
                    Some(b"Hello, World!\n"),
                );
                Action::Pause
            }
            _ => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.set_http_response_header("powered-by", Some("proxy-wasm"));
        Action::Continue
    }

    fn on_log(&mut self) {
        log_at!(Info, "#{} completed.", self.context_id);
    }
}

struct UpperBody;

impl Context for UpperBody {}

impl HttpContext for UpperBody {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.set_http_request_header("content-length", None);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        if let Some(body) = self.get_http_request_body(0, body_size) {
            let upper = String::from_utf8_lossy(&body).to_uppercase();
            self.set_http_request_body(0, body_size, upper.as_bytes());
        }
        Action::Continue
    }
}

struct HttpAuthRandom;

impl Context for HttpAuthRandom {
    fn on_http_call_response(&mut self, _: u32, _: usize, body_size: usize, _: usize) {
        if let Some(body) = self.get_http_call_response_body(0, body_size) {
            if !body.is_empty() && body[0] % 2 == 0 {
                log_at!(Info, "Access granted.");
                self.resume_http_request();
                return;
            }
        }
        log_at!(Info, "Access forbidden.");
        self.send_http_response(
            403,
            vec![("powered-by", "proxy-wasm")],
            Some(b"Access forbidden.\n"),
        );
    }
}

impl HttpContext for HttpAuthRandom {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        match self.dispatch_http_call(
            "httpbin",
            vec![
                (":method", "GET"),
                (":path", "/bytes/1"),
                (":authority", "httpbin.org"),
            ],
            None,
            vec![],
            Duration::from_secs(1),
        ) {
            Ok(_) => Action::Pause,
            Err(status) => {
                log_at!(Error, "dispatch failed: {status:?}");
                self.send_http_response(503, vec![], Some(b"no auth service\n"));
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.set_http_response_header("powered-by", Some("proxy-wasm"));
        Action::Continue
    }
}

struct AddHeader(Settings);

impl Context for AddHeader {}

impl HttpContext for AddHeader {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.add_http_request_header(&self.0.header, &self.0.value);
        Action::Continue
    }
}

struct Counter {
    metric: Option<u32>,
}

impl Context for Counter {}

impl HttpContext for Counter {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(id) = self.metric {
            let _ = increment_metric(id, 1);
        }
        let hits = loop {
            let (data, cas) = self.get_shared_data("hits");
            let current: u64 = data
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let next = (current + 1).to_string();
            match self.set_shared_data("hits", Some(next.as_bytes()), cas) {
                Ok(()) => break current + 1,
                Err(Status::CasMismatch) => continue,
                Err(_) => break 0,
            }
        };
        self.set_http_request_header("x-hits", Some(&hits.to_string()));
        Action::Continue
    }
}

struct State(Settings);

impl Context for State {}

impl HttpContext for State {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(value) = &self.0.write {
            self.set_property(vec!["palisade.identity"], Some(value.as_bytes()));
            self.set_property(vec!["palisade", "pair"], Some(value.as_bytes()));
        }
        if self.0.read {
            let show = |v: Option<Vec<u8>>| {
                v.map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_else(|| "absent".to_string())
            };
            let single = show(self.get_property(vec!["palisade.identity"]));
            let pair = show(self.get_property(vec!["palisade", "pair"]));
            self.set_http_request_header("x-single", Some(&single));
            self.set_http_request_header("x-pair", Some(&pair));
        }
        Action::Continue
    }
}

struct Props;

impl Context for Props {}

impl HttpContext for Props {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        for (header, path) in [
            ("x-prop-path", vec!["request", "path"]),
            ("x-prop-id", vec!["request", "id"]),
            ("x-prop-source", vec!["source", "address"]),
            ("x-prop-plugin", vec!["plugin_name"]),
        ] {
            let value = self
                .get_property(path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|| "absent".to_string());
            self.set_http_request_header(header, Some(&value));
        }
        Action::Continue
    }
}

/// Asks a streaming gRPC service about each request: opens a stream to
/// cluster `grpc-echo`, sends the path (`<path>#1`), sends the next message
/// after each reply until `sends` were sent, and decides when the server
/// closes: a `deny` reply answers 403, a non-zero status 503, otherwise the
/// request continues with what the stream said in `x-stream-*` headers.
/// With `cancel`, it cancels the stream at the first reply and continues.
struct StreamCheck {
    settings: Settings,
    path: String,
    token: Option<u32>,
    sent: u32,
    tag: Option<String>,
    replies: Vec<String>,
    end: Option<String>,
    decided: bool,
}

impl StreamCheck {
    fn new(settings: Settings) -> StreamCheck {
        StreamCheck {
            settings,
            path: String::new(),
            token: None,
            sent: 0,
            tag: None,
            replies: Vec::new(),
            end: None,
            decided: false,
        }
    }

    fn send_next(&mut self, token: u32) {
        self.sent += 1;
        let message = format!("{}#{}", self.path, self.sent);
        self.send_grpc_stream_message(token, Some(message.as_bytes()), false);
    }

    fn decide(&mut self, status: Option<u32>) {
        if self.decided {
            return;
        }
        self.decided = true;
        if self.replies.iter().any(|r| r == "deny") {
            self.send_http_response(403, vec![], Some(b"denied by stream\n"));
            return;
        }
        if let Some(code) = status.filter(|c| *c != 0) {
            let body = format!("stream closed with status {code}\n");
            self.send_http_response(503, vec![], Some(body.as_bytes()));
            return;
        }
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".to_string());
        let token = self.token.map(|t| t.to_string()).unwrap_or_default();
        self.set_http_request_header("x-stream-replies", Some(&self.replies.join(",")));
        self.set_http_request_header("x-stream-tag", Some(&show(&self.tag)));
        self.set_http_request_header("x-stream-end", Some(&show(&self.end)));
        self.set_http_request_header("x-stream-token", Some(&token));
        self.resume_http_request();
    }
}

fn text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
}

impl Context for StreamCheck {
    fn on_grpc_stream_initial_metadata(&mut self, token_id: u32, num_elements: u32) {
        self.tag = text(self.get_grpc_stream_initial_metadata_value("x-stream-tag"));
        log_at!(Info, "stream {token_id}: initial metadata ({num_elements})");
    }

    fn on_grpc_stream_message(&mut self, token_id: u32, message_size: usize) {
        let reply = text(self.get_grpc_stream_message(0, message_size)).unwrap_or_default();
        log_at!(Info, "stream {token_id}: message {reply}");
        self.replies.push(reply);
        if self.settings.cancel {
            self.cancel_grpc_stream(token_id);
            log_at!(Info, "stream {token_id}: cancelled");
            self.decide(None);
        } else if self.sent < self.settings.sends {
            self.send_next(token_id);
        }
    }

    fn on_grpc_stream_trailing_metadata(&mut self, token_id: u32, num_elements: u32) {
        self.end = text(self.get_grpc_stream_trailing_metadata_value("x-stream-end"));
        log_at!(
            Info,
            "stream {token_id}: trailing metadata ({num_elements})"
        );
    }

    fn on_grpc_stream_close(&mut self, token_id: u32, status_code: u32) {
        let (_, message) = self.get_grpc_status();
        log_at!(
            Info,
            "stream {token_id}: closed with status {status_code} {}",
            message.unwrap_or_default()
        );
        self.decide(Some(status_code));
    }
}

impl HttpContext for StreamCheck {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.path = self.get_http_request_header(":path").unwrap_or_default();
        match self.open_grpc_stream(
            "grpc-echo",
            "palisade.test.Echo",
            "Chat",
            vec![("x-stream-client", b"test-module")],
        ) {
            Ok(token) => {
                self.token = Some(token);
                self.send_next(token);
                Action::Pause
            }
            Err(status) => {
                log_at!(Error, "stream open failed: {status:?}");
                self.send_http_response(503, vec![], Some(b"no stream service\n"));
                Action::Pause
            }
        }
    }
}
