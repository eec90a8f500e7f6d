//! `palisade-rls`: Envoy's rate limit service (RLS v3, `ShouldRateLimit`)
//! as a thin protocol adapter over Redis.
//!
//! Redis is the distributed engine: every check of one descriptor is one
//! atomic Redis operation (a server-side script doing `INCRBY` and, on the
//! first hit of a window, `EXPIRE`), so any number of proxies — and any
//! number of these servers — share one count. Limits come from a YAML file in
//! the shape envoyproxy/ratelimit uses (see [`limits`]).
//!
//! - [`limits`]: the limits file and descriptor matching;
//! - [`counter`]: fixed-window counting in Redis;
//! - [`grpc`]: gRPC message framing;
//! - [`service`]: the HTTP/2 gRPC endpoint.

pub mod counter;
pub mod grpc;
pub mod limits;
pub mod service;
