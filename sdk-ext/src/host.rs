//! Proxy-Wasm glue shared by the plugins' filters (compiled for wasm32 only:
//! it calls host imports that do not exist in a native build).
//!
//! Everything here reads from or acts on the host and never panics: the
//! Rust SDK's string accessors (`get_http_request_headers`, ...) `unwrap` a
//! UTF-8 conversion and so trap on a header value with obs-text bytes, which
//! Envoy lets through. These helpers use the byte accessors and convert
//! lossily instead.

use crate::config::ConfigError;
use crate::deny::Denial;
use crate::header_map;
use crate::headers::Headers;
use crate::identity::{IdentityError, VerifiedIdentity, IDENTITY_PROPERTY};
use crate::request::{parse_socket_address, PeerIdentity, RequestView};
use crate::utf8::{lossy, lossy_owned, push_lossy};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::HttpContext;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// Upper bound on the number of request headers read into a view; Envoy's
/// own default limit is 100, so this only guards against a misconfigured
/// proxy.
pub const MAX_HEADERS: usize = 512;

/// Which parts of the request view a policy needs. Each costs a host call
/// per request (in Envoy's V8, a microsecond or more of CPU), so policies
/// ask only for what their configuration reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewNeeds {
    /// Read the header map (headers, pseudo-headers, `x-request-id`); one
    /// host call. Without it the view's method, path, host, scheme,
    /// headers and request id are empty.
    pub headers: bool,
    /// Read `source.address`.
    pub source: bool,
    /// Read the peer certificate properties.
    pub peer: bool,
}

impl ViewNeeds {
    /// Nothing.
    pub const NONE: ViewNeeds = ViewNeeds {
        headers: false,
        source: false,
        peer: false,
    };
    /// The header map only.
    pub const HEADERS: ViewNeeds = ViewNeeds {
        headers: true,
        source: false,
        peer: false,
    };

    /// Everything.
    pub const ALL: ViewNeeds = ViewNeeds {
        headers: true,
        source: true,
        peer: true,
    };
}

/// Reads the whole request view of the current stream from the host (in a
/// request-headers callback or later).
pub fn request_view() -> RequestView {
    request_view_with(ViewNeeds::ALL)
}

/// Reads the request view of the current stream, skipping the parts
/// `needs` rules out.
pub fn request_view_with(needs: ViewNeeds) -> RequestView {
    let mut view = RequestView::default();
    complete_view(&mut view, ViewNeeds::NONE, needs);
    view
}

/// Reads into `view`, read earlier with `read`, the parts `want` names that
/// it lacks — e.g. what a denial's response and log line need beyond what
/// the decision read. Parts already read are not read again.
pub fn complete_view(view: &mut RequestView, read: ViewNeeds, want: ViewNeeds) {
    if want.headers && !read.headers {
        read_headers(view);
    }
    if want.source && !read.source {
        view.source = source_address();
    }
    if want.peer && !read.peer {
        view.peer = peer_identity();
    }
}

/// Fills the view's header parts (method, path, host, scheme, headers,
/// request id) from the header map: one host call, and one copy of each
/// name and value (into the string the view keeps).
fn read_headers(view: &mut RequestView) {
    let Some(buf) = request_header_map() else {
        return;
    };
    let pairs = header_map::pairs(&buf).take(MAX_HEADERS);
    // Every regular name and value goes into one string (see `Headers`);
    // the buffer's size bounds their total unless bytes need replacing.
    view.headers = Headers::with_capacity(pairs.size_hint().1.unwrap_or(0), buf.len());
    for (name, value) in pairs {
        match name {
            b":method" => view.method = lossy(value),
            b":path" => view.path = lossy(value),
            b":authority" => view.host = lossy(value),
            b":scheme" => view.scheme = lossy(value),
            n if n.starts_with(b":") => {}
            _ => {
                if name == b"x-request-id" && view.request_id.is_empty() {
                    view.request_id = lossy(value);
                }
                view.headers.push_with(
                    |text| push_lossy(text, name),
                    |text| push_lossy(text, value),
                );
            }
        }
    }
    if view.host.is_empty() {
        if let Some(h) = view.header("host") {
            view.host = h.to_string();
        }
    }
}

/// The request header map as the host serialized it, or `None` when the
/// host refuses (e.g. outside a request callback).
fn request_header_map() -> Option<Vec<u8>> {
    mod raw {
        extern "C" {
            pub fn proxy_get_header_map_pairs(
                map_type: u32,
                return_map_data: *mut *mut u8,
                return_map_size: *mut usize,
            ) -> u32;
        }
    }
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host fills `data` and `size` with a buffer it allocated
    // through the module's `proxy_on_memory_allocate` — the SDK's, a `Vec<u8>`
    // of capacity `size` — and hands it over; taking it back as a `Vec` is
    // what the SDK's own `get_map_bytes` does.
    unsafe {
        let status = raw::proxy_get_header_map_pairs(
            MapType::HttpRequestHeaders as u32,
            &mut data,
            &mut size,
        );
        if status != 0 || data.is_null() {
            return None;
        }
        Some(Vec::from_raw_parts(data, size, size))
    }
}

/// The downstream (client) address, `source.address`.
pub fn source_address() -> Option<SocketAddr> {
    property_string(&["source", "address"]).and_then(|s| parse_socket_address(&s))
}

/// The downstream TLS identity Envoy reports (empty without mTLS).
pub fn peer_identity() -> PeerIdentity {
    let non_empty = |p: &[&str]| property_string(p).filter(|s| !s.is_empty());
    PeerIdentity {
        uri_sans: non_empty(&["connection", "uri_san_peer_certificate"])
            .into_iter()
            .collect(),
        dns_sans: non_empty(&["connection", "dns_san_peer_certificate"])
            .into_iter()
            .collect(),
        subject: non_empty(&["connection", "subject_peer_certificate"]),
    }
}

/// A property as (lossy) UTF-8, `None` when absent or unreadable. (The SDK's
/// `Context::get_property` unwraps host errors; this does not.)
pub fn property_string(path: &[&str]) -> Option<String> {
    hostcalls::get_property(path.to_vec())
        .ok()
        .flatten()
        .map(lossy_owned)
}

/// The identity an earlier filter (jwt-auth) verified for this stream:
/// `None` when there is none, `Some(Err)` when the property holds something
/// unreadable.
pub fn verified_identity() -> Option<Result<VerifiedIdentity, IdentityError>> {
    hostcalls::get_property(vec![IDENTITY_PROPERTY])
        .ok()
        .flatten()
        .map(|bytes| VerifiedIdentity::from_json(&bytes))
}

/// The verified identity as a plugin that trusts only a readable one uses
/// it: an unreadable property counts as no identity and is logged as a
/// warning naming `plugin` (`<plugin>: ignoring the verified identity: …`).
pub fn verified_identity_or_none(plugin: &str) -> Option<VerifiedIdentity> {
    match verified_identity()? {
        Ok(id) => Some(id),
        Err(e) => {
            log(
                LogLevel::Warn,
                &format!("{plugin}: ignoring the verified identity: {e}"),
            );
            None
        }
    }
}

/// Sends the plugin's deny response for the current request.
pub fn send_denial<C: HttpContext + ?Sized>(ctx: &C, denial: &Denial, request_id: &str) {
    let body = denial.body(request_id);
    ctx.send_http_response(
        u32::from(denial.status),
        denial.response_headers(),
        Some(&body),
    );
}

/// Logs, once at configure time, which plugin build is running.
pub fn log_configured(plugin: &str, version: &str, summary: &str) {
    log(
        LogLevel::Info,
        &format!(
            "{plugin} {version} (commit {}): {summary}",
            crate::BUILD_COMMIT
        ),
    );
}

/// Logs a refused configuration at error level, prefixed with the plugin.
pub fn log_config_error(plugin: &str, err: &ConfigError) {
    log(LogLevel::Error, &format!("{plugin}: {err}"));
}

/// Logs a message; logging failures are ignored (there is nowhere to report
/// them).
pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// A counter defined with `proxy_define_metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter(Option<u32>);

impl Counter {
    /// Defines (or finds) the counter `name`. If the host refuses, the
    /// counter is inert and the refusal is logged: metrics never stop traffic.
    pub fn define(name: &str) -> Counter {
        match hostcalls::define_metric(MetricType::Counter, name) {
            Ok(id) => Counter(Some(id)),
            Err(status) => {
                log(
                    LogLevel::Warn,
                    &format!("cannot define metric {name}: host returned {status:?}"),
                );
                Counter(None)
            }
        }
    }

    /// Adds one.
    pub fn inc(&self) {
        if let Some(id) = self.0 {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

/// The host's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostClock;

impl crate::clock::Clock for HostClock {
    fn now(&self) -> SystemTime {
        hostcalls::get_current_time().unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Sends an HTTP call through `cluster` and gives its token. A refusal
/// (usually: the cluster does not exist) gives `None` and is logged as a
/// warning: `<plugin>: cannot send the <what> to cluster "<cluster>" (…)`.
pub fn dispatch_http_call(
    plugin: &str,
    what: &str,
    cluster: &str,
    headers: Vec<(&str, &str)>,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Option<u32> {
    match hostcalls::dispatch_http_call(cluster, headers, body, vec![], timeout) {
        Ok(token) => Some(token),
        Err(status) => {
            log(
                LogLevel::Warn,
                &format!(
                    "{plugin}: cannot send the {what} to cluster {cluster:?} (host returned {status:?}); check that the cluster exists"
                ),
            );
            None
        }
    }
}

/// The `:status` and body of the HTTP call response being delivered, the
/// body read to at most `max_body` + 1 bytes: one more than a caller
/// accepts, so it refuses an oversize body instead of reading a cut one.
pub fn http_call_response(body_size: usize, max_body: usize) -> (Option<u16>, Vec<u8>) {
    let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse::<u16>().ok());
    let body = hostcalls::get_buffer(
        BufferType::HttpCallResponseBody,
        0,
        body_size.min(max_body.saturating_add(1)),
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    (status, body)
}

/// The tick period of a root context that fetches in the background
/// (discovery, key sets): quick until everything is loaded, so the first
/// requests wait little, then steady for refreshes. The default does not
/// tick (a root context not yet configured).
#[derive(Debug)]
pub struct FetchTicks {
    steady: bool,
}

impl FetchTicks {
    /// The period until everything is loaded.
    pub const STARTUP: Duration = Duration::from_millis(200);
    /// The period afterwards.
    pub const STEADY: Duration = Duration::from_secs(1);

    /// Starts ticking at [`FetchTicks::STARTUP`].
    pub fn start() -> FetchTicks {
        let _ = hostcalls::set_tick_period(Self::STARTUP);
        FetchTicks { steady: false }
    }

    /// No background fetches: no ticks.
    pub fn none() -> FetchTicks {
        FetchTicks { steady: true }
    }

    /// Once `loaded`, switches to [`FetchTicks::STEADY`] (once).
    pub fn settle(&mut self, loaded: bool) {
        if loaded && !self.steady {
            self.steady = true;
            let _ = hostcalls::set_tick_period(Self::STEADY);
        }
    }
}

impl Default for FetchTicks {
    fn default() -> FetchTicks {
        FetchTicks::none()
    }
}
