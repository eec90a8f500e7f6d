//! Palisade jwt-auth: authenticates requests at the proxy — JSON Web Tokens,
//! HTTP Basic and API keys of configured consumers — and hands the verified
//! identity to the filters after it.
//!
//! - [`config`]: the JSON configuration, validated while it is read;
//! - [`alg`], [`jwk`], [`token`], [`signature`]: algorithms, key sets,
//!   compact-token parsing and signature checks;
//! - [`verify`]: one token against one provider (claims, key, signature);
//! - [`extract`]: where tokens are found in a request;
//! - [`consumer`]: named identities with attributes, authenticated by
//!   [`basic`] (HTTP Basic, [`password`] hashes) or [`apikey`] (API keys);
//! - [`output`]: claim values for headers, the payload header;
//! - [`cache`]: the bounded cache of verified tokens;
//! - [`policy`]: the pure decision (config + request + keys + time);
//! - [`jwks`]: the remote key-set state (fetch, refresh, refetch, stale-if-error);
//! - `filter` (wasm32 only, cargo feature `filter`, on by default): the
//!   Proxy-Wasm glue and the module's entry point.

pub mod alg;
pub mod apikey;
mod b64;
pub mod basic;
pub mod cache;
pub mod config;
pub mod consumer;
pub mod extract;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod filter;
pub mod jwk;
pub mod jwks;
pub mod output;
pub mod password;
pub mod policy;
pub mod signature;
pub mod token;
pub mod verify;

#[cfg(test)]
mod testkeys;

pub use config::JwtAuthConfig;
pub use policy::{Decision, JwtAuth};
#[cfg(test)]
mod consumer_policy_tests;
#[cfg(test)]
mod negative;
#[cfg(test)]
mod rfc_vectors;
#[cfg(test)]
mod testutil;
