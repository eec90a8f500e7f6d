//! Packs Proxy-Wasm modules as OCI images that Istio's and Envoy Gateway's
//! Wasm fetchers accept, without docker.
//!
//! The pieces, one concept per module:
//!
//! - [`digest`]: `sha256:<hex>` content digests and blobs.
//! - [`image`]: the two image shapes the fetchers accept (the "compat" image
//!   with one tar+gzip layer holding `plugin.wasm`, and the Wasm image spec
//!   "oci" variant), built reproducibly, plus [`image::extract_wasm`], which
//!   reads a module back out by the fetchers' own rules.
//! - [`layout`]: the OCI image layout directory (`oci-layout`, `index.json`,
//!   `blobs/sha256/…`).
//! - [`registry`]: pushing to a registry over the distribution API.
//! - [`manifests`]: Istio `WasmPlugin` and Envoy Gateway
//!   `EnvoyExtensionPolicy` manifests pinned to the manifest digests.
//! - [`cli`]: the `oci-pack` command line.

pub mod cli;
pub mod digest;
pub mod image;
pub mod layout;
pub mod manifests;
pub mod registry;
