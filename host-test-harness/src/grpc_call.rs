//! Outgoing gRPC calls (`proxy_grpc_call`): recorded for the test, which
//! answers them with a [`GrpcResponse`].
//!
//! What Envoy 1.40 does (`Context::grpcCall` in
//! `source/extensions/common/wasm/context.cc`), and the harness with it:
//! - the call is made for the plugin's **root** context (proxy-wasm-cpp-host's
//!   `grpc_call` uses `contextOrEffectiveContext()->root_context()`), so the
//!   answer arrives at the root context id;
//! - the `grpc_service` argument is first parsed as an
//!   `envoy.config.core.v3.GrpcService` protobuf; if that fails it is taken as
//!   a cluster name, and a cluster Envoy does not know is refused with
//!   `ParseFailure` (not `BadArgument`: the SDK's `dispatch_grpc_call`
//!   returns that as an error instead of panicking);
//! - a known cluster always dispatches (`Ok` and a token 5, 9, 13, ...:
//!   Envoy's callout ids, see [`crate::grpc_stream`]); whether the
//!   service answers is only known later: success calls
//!   `proxy_on_grpc_receive(root, token, size)` with the message readable as
//!   buffer 5 (`GrpcReceiveBuffer`), failure calls
//!   `proxy_on_grpc_close(root, token, grpc_status)` with the message
//!   readable through `proxy_get_status` (an unreachable upstream is
//!   status 14 `UNAVAILABLE`, a timeout 4 `DEADLINE_EXCEEDED`).

/// A gRPC call a module made, waiting for the test's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    /// Token the module got back; pass it to
    /// [`Host::respond_grpc`](crate::Host::respond_grpc).
    pub token: u32,
    /// Name of the plugin that made the call.
    pub plugin: String,
    /// Cluster the call goes to.
    pub cluster: String,
    /// Fully qualified service, e.g. `envoy.service.ratelimit.v3.RateLimitService`.
    pub service: String,
    /// Method, e.g. `ShouldRateLimit`.
    pub method: String,
    /// Initial metadata the module sent.
    pub initial_metadata: Vec<(String, String)>,
    /// The serialized request message.
    pub message: Vec<u8>,
    /// Timeout the module asked for, in milliseconds.
    pub timeout_ms: u32,
}

/// gRPC status `UNAVAILABLE`: what Envoy reports when the cluster has no
/// reachable endpoint.
pub const UNAVAILABLE: u32 = 14;
/// gRPC status `DEADLINE_EXCEEDED`: the call timed out.
pub const DEADLINE_EXCEEDED: u32 = 4;

/// The answer to a [`GrpcCall`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcResponse {
    /// gRPC status; 0 (`OK`) delivers `message` through
    /// `proxy_on_grpc_receive`, anything else closes the call through
    /// `proxy_on_grpc_close`.
    pub status: u32,
    /// Status message (readable with `proxy_get_status` on failure).
    pub status_message: String,
    /// The serialized response message (on success).
    pub message: Vec<u8>,
}

impl GrpcResponse {
    /// A successful answer carrying a serialized message.
    pub fn ok(message: impl Into<Vec<u8>>) -> GrpcResponse {
        GrpcResponse {
            status: 0,
            status_message: String::new(),
            message: message.into(),
        }
    }

    /// A failed call with a gRPC status and message.
    pub fn failure(status: u32, status_message: &str) -> GrpcResponse {
        GrpcResponse {
            status,
            status_message: status_message.to_string(),
            message: Vec::new(),
        }
    }

    /// What Envoy reports when the cluster's upstream cannot be reached.
    pub fn unavailable() -> GrpcResponse {
        GrpcResponse::failure(UNAVAILABLE, "upstream connect error")
    }
}

/// What the `grpc_service` argument of `proxy_grpc_call` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServiceTarget {
    /// It is not a GrpcService protobuf: a cluster name.
    ClusterName(String),
    /// A GrpcService protobuf with `envoy_grpc.cluster_name`.
    EnvoyGrpc(String),
    /// A GrpcService protobuf without an Envoy gRPC target (Google gRPC, or
    /// nothing).
    Other,
}

/// Interprets the `grpc_service` bytes the way Envoy does: protobuf first,
/// cluster name when that does not parse.
pub(crate) fn service_target(bytes: &[u8]) -> ServiceTarget {
    match parse_fields(bytes) {
        Some(fields) => fields
            .iter()
            .find(|(n, _)| *n == 1)
            .and_then(|(_, env)| env.and_then(parse_fields))
            .and_then(|inner| {
                inner
                    .iter()
                    .find(|(n, _)| *n == 1)
                    .and_then(|(_, v)| *v)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
            .map_or(ServiceTarget::Other, ServiceTarget::EnvoyGrpc),
        None => ServiceTarget::ClusterName(String::from_utf8_lossy(bytes).into_owned()),
    }
}

/// A protobuf field: its number and, when length-delimited, its payload.
type Field<'a> = (u64, Option<&'a [u8]>);

/// A protobuf message's top-level fields (number, payload of
/// length-delimited fields), or `None` when the bytes are not valid wire
/// format (what makes `ParseFromString` fail).
fn parse_fields(mut b: &[u8]) -> Option<Vec<Field<'_>>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 {
            return None;
        }
        let payload = match wire {
            0 => {
                varint(&mut b)?;
                None
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                b = b.get(n..)?;
                None
            }
            2 => {
                let n = usize::try_from(varint(&mut b)?).ok()?;
                let (v, rest) = (b.get(..n)?, b.get(n..)?);
                b = rest;
                Some(v)
            }
            _ => return None,
        };
        out.push((field, payload));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_that_are_not_protobuf_are_names() {
        for name in ["rls", "ratelimit", "outbound|8081||rls.default.svc", "idp"] {
            assert_eq!(
                service_target(name.as_bytes()),
                ServiceTarget::ClusterName(name.into())
            );
        }
    }

    #[test]
    fn a_grpc_service_protobuf_names_its_envoy_grpc_cluster() {
        // GrpcService { envoy_grpc: { cluster_name: "rls" } }
        let proto = [0x0a, 0x05, 0x0a, 0x03, b'r', b'l', b's'];
        assert_eq!(
            service_target(&proto),
            ServiceTarget::EnvoyGrpc("rls".into())
        );
        // A name that happens to be valid wire format (field 15, varint).
        assert_eq!(service_target(b"xx"), ServiceTarget::Other);
    }
}
