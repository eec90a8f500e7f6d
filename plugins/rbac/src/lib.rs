//! Palisade RBAC: Istio AuthorizationPolicy semantics at the proxy.
//!
//! Policies `ALLOW`, `DENY` or `AUDIT` (each optionally dry-run) with rules
//! over who sends the request (`from`: SPIFFE principals from the peer
//! certificate or a trusted proxy's XFCC header, request principals and
//! claims from jwt-auth, namespaces, trust domains, IP blocks), what it asks
//! for (`to`: hosts, ports, methods, paths) and conditions (`when`), in
//! Istio's order; team bundles scoped by host or path prefix that may only
//! narrow what the platform's base policies allow. See the crate README.
//!
//! - [`config`]: the JSON configuration, validated while it is read;
//! - [`value`]: Istio's string match (exact, `prefix*`, `*suffix`, `*`,
//!   path templates);
//! - [`rule`]: sources, operations, conditions;
//! - [`attributes`]: the request attributes rules read, resolved once;
//! - [`guardrail`]: the check that team bundles only narrow;
//! - [`policy`]: the pure decision (attributes → [`policy::Evaluation`]);
//! - `filter` (wasm32 only): the Proxy-Wasm glue.

pub mod attributes;
pub mod config;
#[cfg(target_arch = "wasm32")]
mod filter;
pub mod guardrail;
pub mod policy;
pub mod rule;
pub mod value;

pub use attributes::HostFacts;
pub use config::RbacConfig;
pub use policy::{Decision, Evaluation, Rbac};
