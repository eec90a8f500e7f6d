//! `host-test-harness`: run any Proxy-Wasm module (ABI 0.2.1) without a proxy.
//!
//! The crate has three parts:
//! - the wasmtime host that emulates Envoy for HTTP filters (see [`Host`]);
//! - [`fixture`]: the YAML fixture format (request in, expected outcome out)
//!   shared by both runners;
//! - [`envoy`]: a runner that replays the same fixtures through real Envoy.
//!
//! It knows nothing about Palisade's plugins: any module that speaks the ABI
//! can be loaded.

mod abi;
pub mod cli;
pub mod clock;
pub mod diff;
pub mod envoy;
pub mod fixture;
pub mod fuzz;
pub mod grpc_call;
pub mod grpc_stream;
pub mod headers;
pub mod host;
pub mod http_call;
mod local_address;
pub mod log;
mod memory;
pub mod metrics;
pub mod module;
mod plugin;
pub mod properties;
pub mod runner;
pub mod shared_data;
pub mod status;
pub mod stream;
mod world;

#[cfg(test)]
mod test_support;

pub use grpc_call::{GrpcCall, GrpcResponse};
pub use grpc_stream::{GrpcStream, GrpcStreamEvent, GrpcStreamScript};
pub use host::{ConnectionManager, Host, HostBuilder, HostError};
pub use http_call::{CallResponse, HttpCall};
pub use log::{LogEntry, LogLevel};
pub use module::{Module, ModuleError};
pub use runner::{run_file, run_file_with, with_callouts};
pub use stream::StreamId;
