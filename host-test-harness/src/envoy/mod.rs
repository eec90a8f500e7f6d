//! Replays fixtures through real Envoy (1.40, V8 Wasm runtime).
//!
//! The pieces, one concept per module:
//! - [`binary`]: where the Envoy binary is (`PALISADE_ENVOY`, else
//!   `<workspace>/.venv/bin/envoy`, installed by `scripts/install-envoy`);
//! - [`upstream`]: the echo upstream every request is routed to;
//! - [`grpc_server`]: the HTTP/2 gRPC server behind a fixture's
//!   `grpc_stream` callout;
//! - [`bootstrap`]: the generated Envoy configuration (a chain of Wasm
//!   filters, the router, the `upstream` cluster and extra clusters);
//! - [`example`]: the placeholder convention that lets the shipped
//!   `envoy-examples/*.yaml` run on free ports;
//! - [`process`]: starting, waiting for, querying and stopping Envoy;
//! - [`client`]: sending a [`fixture::Request`](crate::fixture::Request) from
//!   a chosen loopback source address and reading the
//!   [`Outcome`](crate::fixture::Outcome);
//! - [`runner`]: [`run_file`], the Envoy counterpart of the harness runner.
//!
//! Every process is started on ports chosen by the kernel (port 0), so tests
//! run in parallel, and is stopped by its PID when its handle is dropped.

pub mod binary;
pub mod bootstrap;
pub mod client;
pub mod example;
pub mod grpc_server;
mod http;
pub mod process;
pub mod runner;
pub mod upstream;

#[cfg(test)]
mod test_module;

pub use binary::{envoy_binary, workspace_root};
pub use bootstrap::{Bootstrap, ExtraCluster, WasmFilter};
pub use client::{send, ClientError};
pub use example::Substitutions;
pub use grpc_server::GrpcStreamServer;
pub use process::{validate, validate_file, Envoy, EnvoyOptions};
pub use runner::{run_cases, run_file, run_file_with, RUNNER_NAME};
pub use upstream::{serve_echo, EchoUpstream};

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Why Envoy could not be found, configured, started or queried.
#[derive(Debug)]
pub enum EnvoyError {
    /// No Envoy binary where we looked.
    NotInstalled {
        /// The path that was tried.
        path: PathBuf,
        /// True when the path came from `PALISADE_ENVOY`.
        from_env: bool,
    },
    /// A file or process operation failed (`what` says which).
    Io {
        /// What was being done, e.g. `writing /tmp/…/envoy.yaml`.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An Envoy configuration (a generated one or an example) is not usable.
    Config(String),
    /// Envoy exited before it became ready (e.g. it refused a filter).
    Exited {
        /// The exit status as text.
        status: String,
        /// Everything Envoy logged.
        log: String,
    },
    /// Envoy did not become ready in time.
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// Everything Envoy logged so far.
        log: String,
    },
    /// `envoy --mode validate` rejected a configuration.
    Invalid {
        /// Envoy's output.
        output: String,
    },
    /// The admin interface answered unexpectedly.
    Admin {
        /// The admin path queried.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

impl fmt::Display for EnvoyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvoyError::NotInstalled {
                path,
                from_env: true,
            } => write!(
                f,
                "PALISADE_ENVOY points at {}, which is not an executable file; \
                 fix the variable or unset it and run scripts/install-envoy",
                path.display()
            ),
            EnvoyError::NotInstalled {
                path,
                from_env: false,
            } => write!(
                f,
                "Envoy is not installed at {}; run scripts/install-envoy \
                 (or set PALISADE_ENVOY to an Envoy 1.40 binary)",
                path.display()
            ),
            EnvoyError::Io { what, source } => write!(f, "{what}: {source}"),
            EnvoyError::Config(detail) => write!(f, "unusable Envoy configuration: {detail}"),
            EnvoyError::Exited { status, log } => write!(
                f,
                "Envoy exited during start-up ({status}); its log ends with:\n{}",
                tail(log, 20)
            ),
            EnvoyError::NotReady { waited, log } => write!(
                f,
                "Envoy was not ready after {waited:?}; its log ends with:\n{}",
                tail(log, 20)
            ),
            EnvoyError::Invalid { output } => write!(
                f,
                "envoy --mode validate rejected the configuration:\n{}",
                tail(output, 20)
            ),
            EnvoyError::Admin { path, detail } => {
                write!(f, "Envoy admin {path} failed: {detail}")
            }
        }
    }
}

impl std::error::Error for EnvoyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EnvoyError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl EnvoyError {
    /// Envoy's log or validate output carried by this error, if any.
    pub fn log(&self) -> Option<&str> {
        match self {
            EnvoyError::Exited { log, .. } | EnvoyError::NotReady { log, .. } => Some(log),
            EnvoyError::Invalid { output } => Some(output),
            _ => None,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> EnvoyError {
        EnvoyError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
