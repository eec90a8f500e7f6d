//! Palisade's native mTLS companion proxy.
//!
//! Server mode terminates mTLS in front of an HTTP/1.1 upstream (usually
//! Envoy), checks the client certificate against a CA bundle and an
//! allow-list (SPIFFE id, DNS SAN, CN), and forwards the verified identity in
//! an Envoy-format `x-forwarded-client-cert` header. Client mode originates
//! mTLS for local plain-TCP clients. Certificates reload on file change and
//! SIGHUP without dropping connections; a built-in CA issues them.
//!
//! One concept per module: `accept` (the accept loop all modes share),
//! [`config`], [`ca`], [`tls`], [`spiffe`] (Palisade's shared SPIFFE ids and patterns, from `sdk-ext`),
//! [`identity`], [`xfcc`], [`server`], [`client`], [`passthrough`], [`reload`], [`rotation`],
//! [`metrics`], [`duration`], and [`app`] which wires them together.

#![warn(missing_docs)]

mod accept;
pub mod app;
pub mod ca;
pub mod client;
pub mod config;
pub mod duration;
pub mod identity;
pub mod metrics;
pub mod passthrough;
pub mod reload;
pub mod rotation;
pub mod server;
pub mod tls;
pub mod xfcc;

pub use sdk_ext::spiffe;

/// Resolves once the shutdown flag turns true (or its sender is gone).
pub(crate) async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
