//! [`Host`]: Envoy's role for a chain of Proxy-Wasm HTTP filters — plugin
//! lifecycle, streams through the filters and the echo upstream, http calls,
//! ticks on a virtual clock.

use crate::fixture::{EchoedRequest, Outcome, Request, ECHO_HEADER};
use crate::grpc_call::{GrpcCall, GrpcResponse};
use crate::grpc_stream::{GrpcStream, GrpcStreamEvent};
use crate::headers::HeaderMap;
use crate::http_call::{CallResponse, HttpCall};
use crate::log::{render, LogEntry};
use crate::metrics::Metric;
use crate::module::Module;
use crate::plugin::Plugin;
use crate::stream::{events, Direction, Event, Flow, StreamData, StreamId};
use crate::world::{lock, PluginInfo, SharedWorld, World};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Errors of the host: loading, configuring, running a module.
#[derive(Debug)]
pub enum HostError {
    /// The module imports functions Envoy does not provide.
    MissingImports {
        /// Plugin name.
        plugin: String,
        /// `module::name` of each missing import.
        imports: Vec<String>,
    },
    /// wasmtime refused to instantiate the module (e.g. an import with the
    /// wrong signature, or a trap in a start function).
    Instantiate {
        /// Plugin name.
        plugin: String,
        /// wasmtime's message.
        message: String,
    },
    /// `proxy_on_vm_start` returned false.
    VmStartFailed {
        /// Plugin name.
        plugin: String,
        /// Everything logged so far.
        logs: String,
    },
    /// `proxy_on_configure` returned false: the plugin refused its
    /// configuration.
    ConfigureFailed {
        /// Plugin name.
        plugin: String,
        /// Everything logged so far (the module's reason should be here).
        logs: String,
    },
    /// The module trapped (a Rust panic, `unreachable`, a WASI call Envoy
    /// fails on...).
    Trap {
        /// Plugin name.
        plugin: String,
        /// The callback that was running.
        callback: String,
        /// The trap.
        message: String,
        /// Everything logged so far (the SDK logs panics at `critical`).
        logs: String,
    },
    /// [`Host::send`] could not finish the stream: filters stopped and
    /// nothing will resume them without the test's help.
    Stalled {
        /// The stream.
        stream: StreamId,
        /// Plugins that stopped iteration.
        stopped: Vec<String>,
        /// Http calls waiting for an answer.
        pending_calls: Vec<HttpCall>,
        /// gRPC calls waiting for an answer.
        pending_grpc_calls: Vec<GrpcCall>,
        /// gRPC streams the server side has not closed.
        open_grpc_streams: Vec<GrpcStream>,
    },
    /// A module closed (reset) the stream with `proxy_close_stream`.
    StreamReset {
        /// The stream.
        stream: StreamId,
    },
    /// No pending http call has this token.
    UnknownCall {
        /// The token.
        token: u32,
    },
    /// No stream has this id.
    UnknownStream {
        /// The stream.
        stream: StreamId,
    },
    /// No gRPC stream the server side may still answer has this token.
    UnknownGrpcStream {
        /// The token.
        token: u32,
    },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::MissingImports { plugin, imports } => write!(
                f,
                "{plugin} imports functions Envoy does not provide: {}; \
                 remove their use from the module",
                imports.join(", ")
            ),
            HostError::Instantiate { plugin, message } => {
                write!(f, "cannot instantiate {plugin}: {message}")
            }
            HostError::VmStartFailed { plugin, logs } => {
                write!(f, "{plugin}: proxy_on_vm_start returned false; logs:\n{logs}")
            }
            HostError::ConfigureFailed { plugin, logs } => write!(
                f,
                "{plugin} refused its configuration (proxy_on_configure returned false); logs:\n{logs}"
            ),
            HostError::Trap {
                plugin,
                callback,
                message,
                logs,
            } => write!(f, "{plugin} trapped in {callback}: {message}\nlogs:\n{logs}"),
            HostError::Stalled {
                stream,
                stopped,
                pending_calls,
                pending_grpc_calls,
                open_grpc_streams,
            } => {
                write!(
                    f,
                    "stream {} cannot finish: stopped by [{}]",
                    stream.0,
                    stopped.join(", ")
                )?;
                for c in pending_calls {
                    write!(
                        f,
                        "; http call {} to cluster {:?} waits for an answer \
                         (use Host::begin and Host::respond)",
                        c.token, c.cluster
                    )?;
                }
                for c in pending_grpc_calls {
                    write!(
                        f,
                        "; gRPC call {} to {}/{} on cluster {:?} waits for an answer \
                         (use HostBuilder::grpc_responder or Host::respond_grpc)",
                        c.token, c.service, c.method, c.cluster
                    )?;
                }
                for s in open_grpc_streams {
                    write!(
                        f,
                        "; gRPC stream {} to {}/{} on cluster {:?} is open, {} message(s) sent, \
                         {} event(s) answered (use HostBuilder::grpc_stream_responder or \
                         Host::respond_grpc_stream)",
                        s.token,
                        s.service,
                        s.method,
                        s.cluster,
                        s.messages.len(),
                        s.delivered.len()
                    )?;
                }
                Ok(())
            }
            HostError::StreamReset { stream } => {
                write!(f, "stream {} was reset by a module (proxy_close_stream)", stream.0)
            }
            HostError::UnknownCall { token } => {
                write!(f, "no pending http call has token {token}")
            }
            HostError::UnknownStream { stream } => write!(f, "no stream {}", stream.0),
            HostError::UnknownGrpcStream { token } => write!(
                f,
                "no open gRPC stream has token {token}: the module never opened it, \
                 cancelled it, or the server side already closed it"
            ),
        }
    }
}

impl std::error::Error for HostError {}

/// How one filter of the chain is set up.
#[derive(Debug, Clone)]
struct FilterSpec {
    module: Module,
    name: String,
    root_id: String,
    vm_config: Vec<u8>,
    plugin_config: Vec<u8>,
}

/// Answers http calls during [`Host::send`]; `None` leaves a call pending.
type ResponderFn = dyn Fn(&HttpCall) -> Option<CallResponse> + Send + Sync;

#[derive(Clone)]
struct Responder(Arc<ResponderFn>);

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Responder")
    }
}

/// Answers gRPC calls during [`Host::send`]; `None` leaves a call pending.
type GrpcResponderFn = dyn Fn(&GrpcCall) -> Option<GrpcResponse> + Send + Sync;

#[derive(Clone)]
struct GrpcResponder(Arc<GrpcResponderFn>);

impl fmt::Debug for GrpcResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GrpcResponder")
    }
}

/// Answers gRPC streams during [`Host::send`]: the events to deliver now.
type GrpcStreamResponderFn = dyn Fn(&GrpcStream) -> Vec<GrpcStreamEvent> + Send + Sync;

#[derive(Clone)]
struct GrpcStreamResponder(Arc<GrpcStreamResponderFn>);

impl fmt::Debug for GrpcStreamResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GrpcStreamResponder")
    }
}

/// The HTTP connection manager settings the host emulates; the default is
/// Envoy's default. They decide what filters see as `source.address` and
/// whether a client's `x-forwarded-client-cert` reaches them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionManager {
    /// `use_remote_address: true`: `source.address` is the connection peer,
    /// which Envoy appends to `x-forwarded-for` before the filters run.
    /// `false` (Envoy's default): the last `x-forwarded-for` address, when
    /// it is an IP.
    pub use_remote_address: bool,
    /// `forward_client_cert_details: ALWAYS_FORWARD_ONLY`: a client's
    /// `x-forwarded-client-cert` reaches the filters. `false` (Envoy's
    /// default, `SANITIZE`): it is removed first.
    pub forward_client_cert: bool,
}

/// Default for [`HostBuilder::callback_fuel`]: wasmtime fuel (about one unit
/// per wasm instruction) one callback may burn. Far above what any of
/// Palisade's plugins uses in a callback, including the waf compiling OWASP
/// CRS in `proxy_on_configure`; an unbounded loop reaches it in seconds.
pub const DEFAULT_CALLBACK_FUEL: u64 = 20_000_000_000;

/// Builds a [`Host`]; see [`Host::builder`].
#[derive(Debug, Clone)]
pub struct HostBuilder {
    filters: Vec<FilterSpec>,
    responder: Option<Responder>,
    grpc_responder: Option<GrpcResponder>,
    grpc_stream_responder: Option<GrpcStreamResponder>,
    properties: BTreeMap<Vec<u8>, Vec<u8>>,
    clusters: Vec<String>,
    start_nanos: Option<u64>,
    seed: u64,
    connection_manager: ConnectionManager,
    callback_fuel: u64,
}

impl HostBuilder {
    fn last(&mut self) -> &mut FilterSpec {
        self.filters
            .last_mut()
            .expect("a builder always has a filter")
    }

    /// Plugin configuration bytes of the last added filter.
    pub fn plugin_config(mut self, bytes: impl Into<Vec<u8>>) -> HostBuilder {
        self.last().plugin_config = bytes.into();
        self
    }

    /// VM configuration bytes of the last added filter.
    pub fn vm_config(mut self, bytes: impl Into<Vec<u8>>) -> HostBuilder {
        self.last().vm_config = bytes.into();
        self
    }

    /// Name of the last added filter (`plugin_name`; default: module name).
    pub fn name(mut self, name: &str) -> HostBuilder {
        self.last().name = name.to_string();
        self
    }

    /// Root id of the last added filter (`plugin_root_id`).
    pub fn root_id(mut self, root_id: &str) -> HostBuilder {
        self.last().root_id = root_id.to_string();
        self
    }

    /// Adds another filter after the previous ones (an Envoy HTTP filter
    /// chain: requests visit filters in order, responses in reverse).
    pub fn then(mut self, module: &Module) -> HostBuilder {
        self.filters.push(FilterSpec::new(module));
        self
    }

    /// A property the modules can read (`proxy_get_property`), e.g.
    /// `&["connection", "subject_peer_certificate"]`.
    pub fn property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> HostBuilder {
        self.properties
            .insert(path.join("\0").into_bytes(), value.into());
        self
    }

    /// A cluster `proxy_http_call` may target (Envoy refuses unknown ones
    /// with `BadArgument`). `upstream` always exists.
    pub fn cluster(mut self, name: &str) -> HostBuilder {
        self.clusters.push(name.to_string());
        self
    }

    /// Answers http calls automatically during [`Host::send`] (like a
    /// cluster that always answers); calls it returns `None` for stay
    /// pending. Without a responder, a request waiting for a call makes
    /// `send` fail with [`HostError::Stalled`].
    pub fn http_responder(
        mut self,
        responder: impl Fn(&HttpCall) -> Option<CallResponse> + Send + Sync + 'static,
    ) -> HostBuilder {
        self.responder = Some(Responder(Arc::new(responder)));
        self
    }

    /// Answers gRPC calls automatically during [`Host::send`] (like a
    /// cluster whose service always answers); calls it returns `None` for
    /// stay pending. The call's cluster must exist ([`HostBuilder::cluster`]):
    /// Envoy refuses a call to an unknown cluster name with `ParseFailure`.
    pub fn grpc_responder(
        mut self,
        responder: impl Fn(&GrpcCall) -> Option<GrpcResponse> + Send + Sync + 'static,
    ) -> HostBuilder {
        self.grpc_responder = Some(GrpcResponder(Arc::new(responder)));
        self
    }

    /// Answers gRPC streams automatically during [`Host::send`] (like a
    /// cluster whose streaming service always answers): called for every
    /// stream the server side has not closed, it returns the events to
    /// deliver now (none: the stream waits), e.g.
    /// [`GrpcStreamScript::events_for`](crate::GrpcStreamScript::events_for).
    /// The stream's cluster must exist ([`HostBuilder::cluster`]).
    pub fn grpc_stream_responder(
        mut self,
        responder: impl Fn(&GrpcStream) -> Vec<GrpcStreamEvent> + Send + Sync + 'static,
    ) -> HostBuilder {
        self.grpc_stream_responder = Some(GrpcStreamResponder(Arc::new(responder)));
        self
    }

    /// [`HostBuilder::grpc_stream_responder`] unless one is set already
    /// (the fuzzer's default: a fixture's stream answers win).
    pub(crate) fn default_grpc_stream_responder(
        self,
        responder: impl Fn(&GrpcStream) -> Vec<GrpcStreamEvent> + Send + Sync + 'static,
    ) -> HostBuilder {
        if self.grpc_stream_responder.is_some() {
            return self;
        }
        self.grpc_stream_responder(responder)
    }

    /// Start of the virtual wall clock, nanoseconds since the Unix epoch.
    pub fn start_time_nanos(mut self, nanos: u64) -> HostBuilder {
        self.start_nanos = Some(nanos);
        self
    }

    /// Seed of the deterministic random generator (WASI `random_get`,
    /// request ids).
    pub fn seed(mut self, seed: u64) -> HostBuilder {
        self.seed = seed;
        self
    }

    /// Emulates these connection manager settings instead of Envoy's
    /// defaults (for fixtures run in an Envoy configured the same way).
    pub fn connection_manager(mut self, settings: ConnectionManager) -> HostBuilder {
        self.connection_manager = settings;
        self
    }

    /// Wasmtime fuel one callback may burn (default
    /// [`DEFAULT_CALLBACK_FUEL`]). A callback that burns it all is stopped
    /// and reported as [`HostError::Trap`] naming the callback: a loop that
    /// never ends fails the test instead of hanging it. Envoy has no such
    /// limit; a plugin looping there stalls its worker.
    pub fn callback_fuel(mut self, fuel: u64) -> HostBuilder {
        self.callback_fuel = fuel;
        self
    }

    /// Instantiates every filter, then starts and configures each like
    /// Envoy: `_initialize`/`_start`, `proxy_on_context_create` for the root
    /// context, `proxy_on_vm_start`, `proxy_on_configure`.
    pub fn build(self) -> Result<Host, HostError> {
        let mut w = World {
            rng: self.seed,
            properties: self.properties,
            ..World::default()
        };
        if let Some(n) = self.start_nanos {
            w.clock = crate::clock::VirtualClock::starting_at(n);
        }
        w.clusters.insert("upstream".to_string());
        w.clusters.extend(self.clusters);
        for f in &self.filters {
            w.plugins.push(PluginInfo {
                name: f.name.clone(),
                root_id: f.root_id.clone(),
                vm_id: String::new(),
                vm_config: f.vm_config.clone(),
                plugin_config: f.plugin_config.clone(),
                root_context_id: 0,
                tick_period_ms: 0,
                next_tick_nanos: 0,
                contexts: BTreeMap::new(),
                done_called: false,
            });
        }
        let world: SharedWorld = Arc::new(Mutex::new(w));
        let mut plugins = Vec::new();
        for (i, f) in self.filters.iter().enumerate() {
            plugins.push(Plugin::instantiate(
                &f.module,
                &f.name,
                i,
                world.clone(),
                self.callback_fuel,
            )?);
        }
        let mut host = Host {
            world,
            plugins,
            responder: self.responder,
            grpc_responder: self.grpc_responder,
            grpc_stream_responder: self.grpc_stream_responder,
            streams: BTreeMap::new(),
            next_stream: 1,
            connection_manager: self.connection_manager,
        };
        for (i, f) in self.filters.iter().enumerate() {
            host.start_plugin(i, f)?;
        }
        Ok(host)
    }
}

impl FilterSpec {
    fn new(module: &Module) -> FilterSpec {
        FilterSpec {
            module: module.clone(),
            name: module.name().to_string(),
            root_id: String::new(),
            vm_config: Vec::new(),
            plugin_config: Vec::new(),
        }
    }
}

/// Host-side progress of one stream.
#[derive(Debug)]
struct StreamState {
    /// Context id of the stream in each plugin.
    contexts: Vec<u32>,
    request: Flow,
    response: Option<Flow>,
    upstream: Option<EchoedRequest>,
    local_reply_sent: bool,
    reset: bool,
    done: bool,
    outcome: Option<Outcome>,
}

/// An emulated Envoy running a chain of Proxy-Wasm HTTP filters.
///
/// ```no_run
/// use host_test_harness::{fixture::Request, Host, Module};
/// let module = Module::from_file("target/wasm32-wasip1/release/rbac.wasm")?;
/// let mut host = Host::builder(&module).plugin_config(br#"{"policies":[]}"#.to_vec()).build()?;
/// let outcome = host.send(&Request::default())?;
/// assert_eq!(outcome.status, 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Host {
    world: SharedWorld,
    plugins: Vec<Plugin>,
    responder: Option<Responder>,
    grpc_responder: Option<GrpcResponder>,
    grpc_stream_responder: Option<GrpcStreamResponder>,
    streams: BTreeMap<u64, StreamState>,
    next_stream: u64,
    connection_manager: ConnectionManager,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.plugins.iter().map(|p| p.name.as_str()).collect();
        f.debug_struct("Host").field("plugins", &names).finish()
    }
}

/// Proxy-Wasm `Action::Continue`.
const CONTINUE: i32 = 0;

/// `WasmResult::BrokenConnection`: the status of a failed http call.
const BROKEN_CONNECTION: u32 = 11;

impl Host {
    /// Starts building a host whose first (or only) filter is `module`.
    pub fn builder(module: &Module) -> HostBuilder {
        HostBuilder {
            filters: vec![FilterSpec::new(module)],
            responder: None,
            grpc_responder: None,
            grpc_stream_responder: None,
            properties: BTreeMap::new(),
            clusters: Vec::new(),
            start_nanos: None,
            seed: 0x5eed,
            connection_manager: ConnectionManager::default(),
            callback_fuel: DEFAULT_CALLBACK_FUEL,
        }
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        lock(&self.world)
    }

    fn start_plugin(&mut self, i: usize, f: &FilterSpec) -> Result<(), HostError> {
        let p = &mut self.plugins[i];
        if p.exports("_initialize") {
            p.call("_initialize", 0, &[])?;
        } else if p.exports("_start") {
            p.call("_start", 0, &[])?;
        }
        let root = p.new_context_id();
        lock(&self.world).plugins[i].root_context_id = root;
        p.call("proxy_on_context_create", root, &[root as i32, 0])?;
        let ok = p.call(
            "proxy_on_vm_start",
            root,
            &[root as i32, f.vm_config.len() as i32],
        )?;
        if ok == Some(0) {
            return Err(HostError::VmStartFailed {
                plugin: f.name.clone(),
                logs: render(&self.world().logs),
            });
        }
        let ok = p.call(
            "proxy_on_configure",
            root,
            &[root as i32, f.plugin_config.len() as i32],
        )?;
        if ok == Some(0) {
            return Err(HostError::ConfigureFailed {
                plugin: f.name.clone(),
                logs: render(&self.world().logs),
            });
        }
        self.settle()
    }

    /// Sends a request through the chain and the echo upstream and returns
    /// what the client sees. Fails with [`HostError::Stalled`] when filters
    /// stop and wait (e.g. for an http call nobody answers: see
    /// [`HostBuilder::http_responder`], or drive the stream with
    /// [`Host::begin`], [`Host::respond`], [`Host::finish`]).
    pub fn send(&mut self, request: &Request) -> Result<Outcome, HostError> {
        let id = self.begin(request)?;
        while !self.is_complete(id) && self.answer_pending()? {}
        self.finish(id)
    }

    /// Answers pending http and gRPC calls with the responders; true when
    /// at least one was answered.
    fn answer_pending(&mut self) -> Result<bool, HostError> {
        let mut answered = false;
        if let Some(responder) = self.responder.clone() {
            for call in self.pending_calls() {
                if let Some(response) = (responder.0)(&call) {
                    self.respond(call.token, response)?;
                    answered = true;
                }
            }
        }
        if let Some(responder) = self.grpc_responder.clone() {
            for call in self.pending_grpc_calls() {
                if let Some(response) = (responder.0)(&call) {
                    self.respond_grpc(call.token, response)?;
                    answered = true;
                }
            }
        }
        if let Some(responder) = self.grpc_stream_responder.clone() {
            for stream in self.grpc_streams() {
                if stream.remote_closed {
                    continue;
                }
                for event in (responder.0)(&stream) {
                    match self.respond_grpc_stream(stream.token, event) {
                        Ok(()) => answered = true,
                        // The module cancelled it in a callback.
                        Err(HostError::UnknownGrpcStream { .. }) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(answered)
    }

    /// Names of the filters that stopped the stream and wait to be resumed
    /// (empty when it completed or is unknown).
    pub fn stopped_filters(&self, id: StreamId) -> Vec<String> {
        let Some(st) = self.streams.get(&id.0).filter(|s| !s.done) else {
            return Vec::new();
        };
        let flow = st.response.as_ref().unwrap_or(&st.request);
        flow.stopped_plugins()
            .iter()
            .map(|p| self.plugins[*p].name.clone())
            .collect()
    }

    /// The outcome of a stream that completed, or why it has not.
    pub fn finish(&mut self, id: StreamId) -> Result<Outcome, HostError> {
        let st = self
            .streams
            .get(&id.0)
            .ok_or(HostError::UnknownStream { stream: id })?;
        if st.reset {
            self.streams.remove(&id.0);
            return Err(HostError::StreamReset { stream: id });
        }
        if !st.done {
            return Err(HostError::Stalled {
                stream: id,
                stopped: self.stopped_filters(id),
                pending_calls: self.pending_calls(),
                pending_grpc_calls: self.pending_grpc_calls(),
                open_grpc_streams: self
                    .grpc_streams()
                    .into_iter()
                    .filter(|s| !s.remote_closed)
                    .collect(),
            });
        }
        let st = self.streams.remove(&id.0).expect("checked above");
        Ok(st.outcome.unwrap_or_default())
    }

    /// Starts a stream and runs it as far as the filters let it; it may
    /// complete at once ([`Host::is_complete`]) or wait for the test
    /// (answers to http calls, ticks).
    pub fn begin(&mut self, request: &Request) -> Result<StreamId, HostError> {
        let sid = self.next_stream;
        self.next_stream += 1;
        let mut data = StreamData::default();
        let cm = self.connection_manager;
        {
            let mut w = self.world();
            let mut h = HeaderMap::new();
            h.add(":authority", &request.authority);
            h.add(":path", &request.path);
            h.add(":method", &request.method);
            h.add(":scheme", "http");
            for (k, v) in &request.headers {
                h.add(k, v);
            }
            let body = request.body.clone().unwrap_or_default();
            if !body.is_empty()
                && h.get("content-length").is_none()
                && h.get("transfer-encoding").is_none()
            {
                h.add("content-length", &body.len().to_string());
            }
            if h.get("x-forwarded-proto").is_none() {
                h.add("x-forwarded-proto", "http");
            }
            if h.get("x-request-id").is_none() {
                let id = w.uuid();
                h.add("x-request-id", &id);
            }
            // Envoy quirk: forward_client_cert_details defaults to SANITIZE,
            // so a client's x-forwarded-client-cert never reaches a filter.
            if !cm.forward_client_cert {
                h.remove("x-forwarded-client-cert");
            }
            let ip = request.source.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            let port = 32768 + (w.random_u64() % 28000) as u16;
            if cm.use_remote_address {
                // Envoy quirk: a peer at exactly 127.0.0.1 (or ::1) is
                // appended as the proxy's own address; and with no
                // internal_address_config no peer is internal, so every
                // request gets x-envoy-external-address.
                let appended = if crate::local_address::is_envoy_loopback(ip) {
                    crate::local_address::local_address(ip)
                } else {
                    ip
                };
                let xff = match h.get("x-forwarded-for") {
                    Some(v) => format!("{v},{appended}"),
                    None => appended.to_string(),
                };
                h.remove("x-forwarded-for");
                h.add("x-forwarded-for", &xff);
                h.remove("x-envoy-external-address");
                h.add("x-envoy-external-address", &ip.to_string());
            }
            // Envoy quirk: without use_remote_address (the default) the
            // downstream remote address is the last X-Forwarded-For entry
            // when it is an IP (port 0): `source.address` follows it.
            data.source = Some(match last_xff_address(&h) {
                Some(xff) if !cm.use_remote_address => SocketAddr::new(xff, 0),
                _ => SocketAddr::new(ip, port),
            });
            data.request_headers = h;
            data.request_body = body.into_bytes();
            data.connection_id = sid;
            w.streams.insert(sid, data);
        }
        let has_body = request.body.as_deref().is_some_and(|b| !b.is_empty());
        let n = self.plugins.len();
        let mut contexts = Vec::with_capacity(n);
        for i in 0..n {
            let ctx = self.plugins[i].new_context_id();
            let root = {
                let mut w = self.world();
                w.plugins[i].contexts.insert(ctx, sid);
                w.plugins[i].root_context_id
            };
            contexts.push(ctx);
            self.plugins[i].call("proxy_on_context_create", ctx, &[ctx as i32, root as i32])?;
        }
        self.streams.insert(
            sid,
            StreamState {
                contexts,
                request: Flow::new((0..n).collect(), events(has_body, false)),
                response: None,
                upstream: None,
                local_reply_sent: false,
                reset: false,
                done: false,
                outcome: None,
            },
        );
        self.drive(sid)?;
        self.settle()?;
        Ok(StreamId(sid))
    }

    /// True when the stream's response reached the client (or it was reset).
    pub fn is_complete(&self, id: StreamId) -> bool {
        self.streams.get(&id.0).is_some_and(|s| s.done)
    }

    /// Calls into plugin `p` for an event; returns true for Continue.
    fn deliver(
        &mut self,
        sid: u64,
        p: usize,
        dir: Direction,
        ev: Event,
    ) -> Result<bool, HostError> {
        let ctx = self.streams[&sid].contexts[p];
        let (name, size, end) = {
            let w = self.world();
            let s = &w.streams[&sid];
            let (headers, body, trailers) = match dir {
                Direction::Request => (&s.request_headers, &s.request_body, &s.request_trailers),
                Direction::Response => {
                    (&s.response_headers, &s.response_body, &s.response_trailers)
                }
            };
            let prefix = match dir {
                Direction::Request => "proxy_on_request",
                Direction::Response => "proxy_on_response",
            };
            match ev {
                Event::Headers { end } => (format!("{prefix}_headers"), headers.len(), Some(end)),
                Event::Body { end } => (format!("{prefix}_body"), body.len(), Some(end)),
                Event::Trailers => (format!("{prefix}_trailers"), trailers.len(), None),
            }
        };
        let mut args = vec![ctx as i32, size as i32];
        if let Some(end) = end {
            args.push(end as i32);
        }
        let action = self.plugins[p].call(&name, ctx, &args)?;
        Ok(action.unwrap_or(CONTINUE) == CONTINUE)
    }

    /// Runs a stream until it completes or every filter waits.
    fn drive(&mut self, sid: u64) -> Result<(), HostError> {
        loop {
            let Some(st) = self.streams.get_mut(&sid) else {
                return Ok(());
            };
            if st.done {
                return Ok(());
            }
            let dir = if st.response.is_some() {
                Direction::Response
            } else {
                Direction::Request
            };
            let flow = st.response.as_mut().unwrap_or(&mut st.request);
            if let Some((pos, ev)) = flow.next_delivery() {
                let plugin = flow.order[pos];
                let go_on = self.deliver(sid, plugin, dir, ev)?;
                let st = self.streams.get_mut(&sid).expect("stream exists");
                let flow = match dir {
                    Direction::Request => &mut st.request,
                    Direction::Response => st.response.as_mut().expect("response flow"),
                };
                flow.answered(pos, ev, go_on);
                // Envoy quirk: a local reply sent while the client is still
                // sending the request (from the request-headers callback
                // of a request with a body) closes the HTTP/1.1 connection:
                // the response carries `connection: close`.
                let mid_request =
                    dir == Direction::Request && ev == (Event::Headers { end: false });
                self.after_callback_with(sid, mid_request)?;
                continue;
            }
            if !flow.complete() {
                return Ok(());
            }
            match dir {
                Direction::Request => self.upstream(sid),
                Direction::Response => return self.complete(sid),
            }
        }
    }

    /// Applies what a callback asked for: local reply, continues, reset.
    fn after_callback(&mut self, sid: u64) -> Result<(), HostError> {
        self.after_callback_with(sid, false)
    }

    /// [`Host::after_callback`]; `mid_request`: the request is still
    /// being received.
    fn after_callback_with(&mut self, sid: u64, mid_request: bool) -> Result<(), HostError> {
        let (reply, continues, reset) = {
            let mut w = self.world();
            let Some(s) = w.streams.get_mut(&sid) else {
                return Ok(());
            };
            (
                s.local_reply.take(),
                std::mem::take(&mut s.continues),
                s.reset,
            )
        };
        let n = self.plugins.len();
        let Some(st) = self.streams.get_mut(&sid) else {
            return Ok(());
        };
        if st.done {
            return Ok(());
        }
        if reset {
            st.reset = true;
            return self.complete(sid);
        }
        if let Some(r) = reply {
            let mut h = HeaderMap::new();
            h.add(":status", &r.status.to_string());
            for (k, v) in &r.headers {
                h.add(k, v);
            }
            if !r.body.is_empty() {
                h.replace("content-length", &r.body.len().to_string());
                if h.get("content-type").is_none() {
                    h.add("content-type", "text/plain");
                }
            }
            if mid_request && st.response.is_none() {
                h.replace("connection", "close");
            }
            let mut body = r.body;
            {
                let mut w = lock(&self.world);
                let s = w.streams.get_mut(&sid).expect("stream exists");
                // Envoy quirk: a local reply to a HEAD request keeps the
                // headers it would have had (content-length included) but
                // sends no body (`Utility::sendLocalReply`, case-sensitive
                // method comparison).
                if s.request_headers.get(":method") == Some("HEAD") {
                    body.clear();
                }
            }
            let has_body = !body.is_empty();
            {
                let mut w = lock(&self.world);
                let s = w.streams.get_mut(&sid).expect("stream exists");
                s.response_headers = h;
                s.response_body = body;
                s.response_trailers = HeaderMap::new();
                s.response_started = true;
                s.code_details = r.details;
            }
            // A reply during the request goes through every encoder filter;
            // once the response is being encoded it is sent as is.
            let order = if st.response.is_none() && !st.local_reply_sent {
                (0..n).rev().collect()
            } else {
                Vec::new()
            };
            st.local_reply_sent = true;
            st.response = Some(Flow::new(order, events(has_body, false)));
        }
        for (plugin, dir) in continues {
            let flow = match dir {
                Direction::Request if st.response.is_none() => &mut st.request,
                Direction::Response => match st.response.as_mut() {
                    Some(f) => f,
                    None => continue,
                },
                Direction::Request => continue,
            };
            if let Some(pos) = flow.position(plugin) {
                flow.resume(pos);
            }
        }
        Ok(())
    }

    /// The echo upstream answers the request as the filters left it.
    fn upstream(&mut self, sid: u64) {
        let n = self.plugins.len();
        let echoed = {
            let mut w = self.world();
            let s = w.streams.get_mut(&sid).expect("stream exists");
            let req = &s.request_headers;
            let mut headers = Vec::new();
            if let Some(host) = req.get(":authority") {
                headers.push(("host".to_string(), host.to_string()));
            }
            for (k, v) in req.pairs() {
                if !k.starts_with(':') && k != "host" {
                    headers.push((k.clone(), v.clone()));
                }
            }
            if !s.request_body.is_empty()
                && req.get("content-length").is_none()
                && req.get("transfer-encoding").is_none()
            {
                headers.push(("transfer-encoding".into(), "chunked".into()));
            }
            headers.push(("x-envoy-expected-rq-timeout-ms".into(), "15000".into()));
            // Envoy's HTTP/1.1 codec: a request without a body gets an
            // explicit `content-length: 0` unless its method should have
            // no body (`HeaderUtility::requestShouldHaveNoBody`).
            let method = req.get(":method").unwrap_or_default();
            if s.request_body.is_empty()
                && req.get("content-length").is_none()
                && req.get("transfer-encoding").is_none()
                && !["GET", "HEAD", "DELETE", "TRACE", "CONNECT"].contains(&method)
            {
                headers.push(("content-length".into(), "0".into()));
            }
            let echoed = EchoedRequest {
                method: req.get(":method").unwrap_or_default().to_string(),
                path: req.get(":path").unwrap_or_default().to_string(),
                headers,
                body: String::from_utf8_lossy(&s.request_body).into_owned(),
            };
            let body = serde_json::to_vec(&echoed).expect("an echo always serializes");
            let mut h = HeaderMap::new();
            h.add(":status", "200");
            h.add("content-type", "application/json");
            h.add(ECHO_HEADER, "1");
            h.add("content-length", &body.len().to_string());
            h.add("x-envoy-upstream-service-time", "0");
            s.response_headers = h;
            s.response_body = body;
            s.response_started = true;
            s.code_details = "via_upstream".to_string();
            echoed
        };
        let st = self.streams.get_mut(&sid).expect("stream exists");
        st.upstream = Some(echoed);
        st.response = Some(Flow::new((0..n).rev().collect(), events(true, false)));
    }

    /// The response reached the client: record the outcome, then
    /// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete` in every filter.
    fn complete(&mut self, sid: u64) -> Result<(), HostError> {
        let outcome = {
            let mut w = self.world();
            let s = w.streams.remove(&sid).unwrap_or_default();
            let mut headers: Vec<(String, String)> = s
                .response_headers
                .pairs()
                .iter()
                .filter(|(k, _)| !k.starts_with(':'))
                .cloned()
                .collect();
            if s.response_headers.get("date").is_none() {
                headers.push(("date".into(), http_date(w.clock.wall_nanos())));
            }
            if s.response_headers.get("server").is_none() {
                headers.push(("server".into(), "envoy".into()));
            }
            Outcome {
                status: s
                    .response_headers
                    .get(":status")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                headers,
                body: s.response_body,
                upstream: None,
            }
        };
        let st = self.streams.get_mut(&sid).expect("stream exists");
        st.done = true;
        st.outcome = Some(Outcome {
            upstream: st.upstream.take(),
            ..outcome
        });
        let contexts = st.contexts.clone();
        for (p, ctx) in contexts.into_iter().enumerate() {
            for cb in ["proxy_on_done", "proxy_on_log", "proxy_on_delete"] {
                self.plugins[p].call(cb, ctx, &[ctx as i32])?;
            }
            self.world().plugins[p].contexts.remove(&ctx);
        }
        Ok(())
    }

    /// Runs `proxy_on_queue_ready` in the root context that registered
    /// each queue that got items.
    fn deliver_queue_ready(&mut self) -> Result<(), HostError> {
        loop {
            let next = {
                let mut w = self.world();
                if w.ready_queues.is_empty() {
                    None
                } else {
                    let id = w.ready_queues.remove(0);
                    w.queue_owners
                        .get(&id)
                        .copied()
                        .map(|p| (id, p, w.plugins[p].root_context_id))
                }
            };
            let Some((id, p, root)) = next else {
                if self.world().ready_queues.is_empty() {
                    return Ok(());
                }
                continue;
            };
            self.plugins[p].call("proxy_on_queue_ready", root, &[root as i32, id as i32])?;
        }
    }

    /// Applies pending effects on every live stream and drives them.
    fn settle(&mut self) -> Result<(), HostError> {
        self.deliver_queue_ready()?;
        let live: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.done)
            .map(|(id, _)| *id)
            .collect();
        for sid in live {
            self.after_callback(sid)?;
            self.drive(sid)?;
        }
        Ok(())
    }

    /// Http calls the modules made that wait for an answer, oldest first.
    pub fn pending_calls(&self) -> Vec<HttpCall> {
        self.world().calls.iter().map(|c| c.call.clone()).collect()
    }

    /// Answers an http call: `proxy_on_http_call_response` runs with the
    /// response's headers, body and trailers readable, then streams resume
    /// as the module decided.
    pub fn respond(&mut self, token: u32, response: CallResponse) -> Result<(), HostError> {
        let (plugin, ctx, counts) = {
            let mut w = self.world();
            let i = w
                .calls
                .iter()
                .position(|c| c.call.token == token)
                .ok_or(HostError::UnknownCall { token })?;
            let call = w.calls.remove(i);
            let counts = [
                response.headers.len() as i32,
                response.body.len() as i32,
                response.trailers.len() as i32,
            ];
            // Envoy's onHttpCallFailure: BrokenConnection, "reset".
            if response.headers.is_empty() {
                w.status = (BROKEN_CONNECTION, "reset".to_string());
            }
            w.call_response = Some(response);
            (call.plugin, call.context_id, counts)
        };
        let r = self.plugins[plugin].call(
            "proxy_on_http_call_response",
            ctx,
            &[ctx as i32, token as i32, counts[0], counts[1], counts[2]],
        );
        {
            let mut w = self.world();
            w.call_response = None;
            w.status = (0, String::new());
        }
        r?;
        self.settle()
    }

    /// gRPC calls the modules made that wait for an answer, oldest first.
    pub fn pending_grpc_calls(&self) -> Vec<GrpcCall> {
        self.world()
            .grpc_calls
            .iter()
            .map(|c| c.call.clone())
            .collect()
    }

    /// Answers a gRPC call as Envoy does, at the plugin's root context:
    /// status 0 runs `proxy_on_grpc_receive` with the message readable
    /// (buffer `GrpcReceiveBuffer`); any other status runs
    /// `proxy_on_grpc_close` with the status and its message readable
    /// through `proxy_get_status`. Streams then resume as the module decided.
    pub fn respond_grpc(&mut self, token: u32, response: GrpcResponse) -> Result<(), HostError> {
        let (plugin, ctx) = {
            let mut w = self.world();
            let i = w
                .grpc_calls
                .iter()
                .position(|c| c.call.token == token)
                .ok_or(HostError::UnknownCall { token })?;
            let call = w.grpc_calls.remove(i);
            (call.plugin, call.context_id)
        };
        let r = if response.status == 0 {
            let size = response.message.len() as i32;
            self.world().grpc_receive = Some(response.message);
            self.plugins[plugin].call(
                "proxy_on_grpc_receive",
                ctx,
                &[ctx as i32, token as i32, size],
            )
        } else {
            self.world().status = (response.status, response.status_message);
            self.plugins[plugin].call(
                "proxy_on_grpc_close",
                ctx,
                &[ctx as i32, token as i32, response.status as i32],
            )
        };
        {
            let mut w = self.world();
            w.grpc_receive = None;
            w.status = (0, String::new());
        }
        r?;
        self.settle()
    }

    /// gRPC streams the host still knows, oldest first: not cancelled and
    /// not closed on both sides (a stream the server closed stays until the
    /// module closes it, as in Envoy).
    pub fn grpc_streams(&self) -> Vec<GrpcStream> {
        self.world()
            .grpc_streams
            .iter()
            .map(|s| s.stream.clone())
            .collect()
    }

    /// Delivers one server-side event of a gRPC stream, as Envoy does, at
    /// the plugin's root context (see [`crate::grpc_stream`]); streams then
    /// resume as the module decided. Fails with
    /// [`HostError::UnknownGrpcStream`] for a stream the module cancelled,
    /// or closed on both sides, or whose server side already closed: Envoy
    /// delivers nothing for those.
    pub fn respond_grpc_stream(
        &mut self,
        token: u32,
        event: GrpcStreamEvent,
    ) -> Result<(), HostError> {
        let (plugin, ctx) = {
            let mut w = self.world();
            let s = w
                .grpc_streams
                .iter_mut()
                .find(|s| s.stream.token == token && !s.stream.remote_closed)
                .ok_or(HostError::UnknownGrpcStream { token })?;
            s.stream.delivered.push(event.clone());
            if matches!(event, GrpcStreamEvent::Close { .. }) {
                s.stream.remote_closed = true;
            }
            (s.plugin, s.context_id)
        };
        let (callback, count) = {
            let mut w = self.world();
            match event {
                GrpcStreamEvent::InitialMetadata(pairs) => {
                    let n = pairs.len();
                    w.grpc_metadata = Some((4, HeaderMap::from_pairs(&pairs)));
                    ("proxy_on_grpc_receive_initial_metadata", n)
                }
                GrpcStreamEvent::Message(message) => {
                    let n = message.len();
                    w.grpc_receive = Some(message);
                    ("proxy_on_grpc_receive", n)
                }
                GrpcStreamEvent::TrailingMetadata(pairs) => {
                    let n = pairs.len();
                    w.grpc_metadata = Some((5, HeaderMap::from_pairs(&pairs)));
                    ("proxy_on_grpc_receive_trailing_metadata", n)
                }
                GrpcStreamEvent::Close { status, message } => {
                    w.status = (status, message);
                    ("proxy_on_grpc_close", status as usize)
                }
            }
        };
        let r = self.plugins[plugin].call(callback, ctx, &[ctx as i32, token as i32, count as i32]);
        {
            let mut w = self.world();
            w.grpc_metadata = None;
            w.grpc_receive = None;
            w.status = (0, String::new());
            // Envoy forgets a stream closed on both sides.
            w.grpc_streams
                .retain(|s| !(s.stream.remote_closed && s.stream.local_closed));
        }
        r?;
        self.settle()
    }

    /// Fires `proxy_on_tick` once in every plugin that set a tick period.
    pub fn tick(&mut self) -> Result<(), HostError> {
        for p in 0..self.plugins.len() {
            let (period, root) = {
                let w = self.world();
                (w.plugins[p].tick_period_ms, w.plugins[p].root_context_id)
            };
            if period > 0 {
                self.plugins[p].call("proxy_on_tick", root, &[root as i32])?;
            }
        }
        self.settle()
    }

    /// Advances the virtual clock, firing each tick that falls due on the
    /// way, at its time.
    pub fn advance_time(&mut self, by: Duration) -> Result<(), HostError> {
        let target = {
            let w = self.world();
            w.clock
                .monotonic_nanos()
                .saturating_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX))
        };
        loop {
            let due = {
                let w = self.world();
                w.plugins
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.tick_period_ms > 0 && p.next_tick_nanos <= target)
                    .min_by_key(|(_, p)| p.next_tick_nanos)
                    .map(|(i, p)| (i, p.next_tick_nanos, p.root_context_id))
            };
            let Some((p, at, root)) = due else { break };
            {
                let mut w = self.world();
                let now = w.clock.monotonic_nanos();
                w.clock
                    .advance(Duration::from_nanos(at.saturating_sub(now)));
                let period = u64::from(w.plugins[p].tick_period_ms) * 1_000_000;
                w.plugins[p].next_tick_nanos = at + period;
            }
            self.plugins[p].call("proxy_on_tick", root, &[root as i32])?;
            self.settle()?;
        }
        let mut w = self.world();
        let now = w.clock.monotonic_nanos();
        w.clock
            .advance(Duration::from_nanos(target.saturating_sub(now)));
        Ok(())
    }

    /// Sets the virtual wall clock (nanoseconds since the Unix epoch).
    pub fn set_time_nanos(&mut self, nanos: u64) {
        self.world().clock.set_wall_nanos(nanos);
    }

    /// The virtual wall clock (nanoseconds since the Unix epoch).
    pub fn now_nanos(&self) -> u64 {
        self.world().clock.wall_nanos()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<LogEntry> {
        self.world().logs.clone()
    }

    /// True when some log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.world().logs.iter().any(|l| l.message.contains(text))
    }

    /// The first log line containing `text` that is a JSON document (a
    /// plugin's structured log line), parsed; `None` when there is none.
    pub fn json_log(&self, text: &str) -> Option<serde_json::Value> {
        self.world()
            .logs
            .iter()
            .filter(|l| l.message.contains(text))
            .find_map(|l| serde_json::from_str(&l.message).ok())
    }

    /// Value of a counter or gauge by name.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.world().metrics.by_name(name).map(|m| m.value)
    }

    /// Every metric the modules defined.
    pub fn metrics(&self) -> Vec<Metric> {
        self.world().metrics.all().to_vec()
    }

    /// A shared-data value.
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        self.world().shared.get(key).map(|(v, _)| v.to_vec())
    }

    /// Wasmtime fuel every filter's module has burnt since the host was
    /// built (start-up included): about one unit per wasm instruction run,
    /// host calls not counted. Unlike time it is exactly the same on every
    /// run and machine, so the difference across one [`Host::send`] is a
    /// noise-free measure of what a request costs a plugin in wasm.
    pub fn fuel_consumed(&self) -> u64 {
        self.plugins
            .iter()
            .map(Plugin::fuel_consumed)
            .fold(0, u64::saturating_add)
    }

    /// True when the plugin called `proxy_done`.
    pub fn done_called(&self, plugin: usize) -> bool {
        self.world()
            .plugins
            .get(plugin)
            .is_some_and(|p| p.done_called)
    }
}

/// The last X-Forwarded-For entry when it is an IP address (Envoy's
/// `Utility::getLastAddressFromXFF` with no trusted hops).
fn last_xff_address(h: &HeaderMap) -> Option<IpAddr> {
    let xff = h.get("x-forwarded-for")?;
    xff.rsplit(',').next()?.trim().parse().ok()
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), as Envoy's `date`.
fn http_date(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod quirk_tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(
            http_date(784_111_777_000_000_000),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            http_date(1_700_000_000_000_000_000),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }

    #[test]
    fn the_last_forwarded_for_entry_is_the_remote_address() {
        let mut h = HeaderMap::new();
        assert_eq!(last_xff_address(&h), None);
        h.add("x-forwarded-for", "10.0.0.1, 127.0.0.41 ");
        assert_eq!(last_xff_address(&h), Some("127.0.0.41".parse().unwrap()));
        h.replace("x-forwarded-for", "10.0.0.1, unknown");
        assert_eq!(last_xff_address(&h), None);
    }
}
