//! The state a host shares between its plugins: what Envoy keeps outside the
//! Wasm VMs (clock, logs, metrics, shared data, streams, pending calls).

use crate::clock::VirtualClock;
use crate::grpc_call::GrpcCall;
use crate::grpc_stream::GrpcStream;
use crate::headers::HeaderMap;
use crate::http_call::{CallResponse, HttpCall};
use crate::log::{LogEntry, LogLevel};
use crate::metrics::Metrics;
use crate::shared_data::SharedData;
use crate::stream::StreamData;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Handle to the shared state; every plugin's store holds a clone.
pub(crate) type SharedWorld = Arc<Mutex<World>>;

/// Locks the world, recovering from a poisoned lock (a panicking test
/// thread must not make every later call panic too).
pub(crate) fn lock(world: &SharedWorld) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the host knows about one plugin (one filter in the chain).
#[derive(Debug, Clone)]
pub(crate) struct PluginInfo {
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub vm_config: Vec<u8>,
    pub plugin_config: Vec<u8>,
    pub root_context_id: u32,
    /// Tick period set by the module; 0 = no ticks.
    pub tick_period_ms: u32,
    /// Monotonic time of the next tick.
    pub next_tick_nanos: u64,
    /// Stream context id -> stream.
    pub contexts: BTreeMap<u32, u64>,
    /// The module called `proxy_done`.
    pub done_called: bool,
}

/// A call waiting for its answer.
#[derive(Debug, Clone)]
pub(crate) struct PendingCall {
    pub call: HttpCall,
    pub plugin: usize,
    pub context_id: u32,
}

/// A gRPC call waiting for its answer.
#[derive(Debug, Clone)]
pub(crate) struct PendingGrpcCall {
    pub call: GrpcCall,
    pub plugin: usize,
    /// The root context the answer is delivered to.
    pub context_id: u32,
}

/// A gRPC stream the host still knows (not cancelled, not closed on both
/// sides).
#[derive(Debug, Clone)]
pub(crate) struct OpenGrpcStream {
    pub stream: GrpcStream,
    pub plugin: usize,
    /// The root context callbacks are delivered to.
    pub context_id: u32,
}

/// Everything shared.
#[derive(Debug, Default)]
pub(crate) struct World {
    pub clock: VirtualClock,
    pub logs: Vec<LogEntry>,
    pub metrics: Metrics,
    pub shared: SharedData,
    /// Properties set by the test, keyed by the NUL-joined path.
    pub properties: BTreeMap<Vec<u8>, Vec<u8>>,
    pub plugins: Vec<PluginInfo>,
    pub streams: BTreeMap<u64, StreamData>,
    pub calls: Vec<PendingCall>,
    pub next_token: u32,
    /// The response being delivered by `proxy_on_http_call_response`.
    pub call_response: Option<CallResponse>,
    /// gRPC calls waiting for an answer.
    pub grpc_calls: Vec<PendingGrpcCall>,
    /// Last gRPC call token handed out (5, 9, 13, ...: Envoy's callout ids).
    pub next_grpc_token: u32,
    /// gRPC streams the host knows, oldest first.
    pub grpc_streams: Vec<OpenGrpcStream>,
    /// Last gRPC stream token handed out (6, 10, 14, ...).
    pub next_grpc_stream_token: u32,
    /// The message being delivered by `proxy_on_grpc_receive` (buffer 5).
    pub grpc_receive: Option<Vec<u8>>,
    /// The stream metadata being delivered: header map type (4 initial,
    /// 5 trailing) and the map.
    pub grpc_metadata: Option<(i32, HeaderMap)>,
    /// What `proxy_get_status` answers: code and message of the last
    /// failed callout, set while its callback runs.
    pub status: (u32, String),
    /// Shared queue id -> index of the plugin whose root registered it.
    pub queue_owners: BTreeMap<u32, usize>,
    /// Queues that got an item since `proxy_on_queue_ready` last ran.
    pub ready_queues: Vec<u32>,
    /// Clusters `proxy_http_call` and `proxy_grpc_call` may target.
    pub clusters: BTreeSet<String>,
    /// State of the deterministic random generator.
    pub rng: u64,
}

impl World {
    /// Next pseudo-random number (splitmix64): tests are reproducible.
    pub fn random_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill_random(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.random_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }

    /// A random (version 4) UUID, as Envoy generates for `x-request-id`.
    pub fn uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        self.fill_random(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// Records a log line.
    pub fn log(&mut self, plugin: usize, level: LogLevel, message: String) {
        let plugin = self
            .plugins
            .get(plugin)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        self.logs.push(LogEntry {
            plugin,
            level,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_differ() {
        let mut w = World::default();
        let a = w.uuid();
        let b = w.uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
