//! Palisade oidc: OpenID Connect single sign-on at the proxy. A browser
//! without a session is sent to the provider (authorization code flow with
//! PKCE S256, `state` and `nonce`); the callback exchanges the code at the
//! token endpoint, validates the ID token with jwt-auth's verifier and keeps
//! the tokens in an AEAD-sealed, chunked session cookie; tokens are
//! refreshed before they expire; the verified claims are handed to later
//! filters exactly as jwt-auth hands them.
//!
//! - [`config`]: the JSON configuration, validated while it is read;
//! - [`seal`]: AES-256-GCM sealing of cookie values, with key rotation;
//! - [`cookie`]: cookie parsing, chunking and `Set-Cookie` values;
//! - [`login`]: PKCE, state, nonce and the authorization URL;
//! - [`urlenc`]: form and query encoding;
//! - [`discovery`]: the provider's discovery document;
//! - [`exchange`]: token endpoint requests and responses;
//! - [`idtoken`]: ID token validation (jwt-auth's verifier plus nonce);
//! - [`session`]: what the session cookie holds;
//! - [`replay`]: consumed login states;
//! - [`provider`]: discovery and key-set fetch state;
//! - [`policy`]: the pure decision;
//! - `filter` (wasm32 only): the Proxy-Wasm glue.

pub mod config;
pub mod cookie;
pub mod discovery;
pub mod exchange;
#[cfg(target_arch = "wasm32")]
mod filter;
pub mod idtoken;
pub mod login;
pub mod policy;
pub mod provider;
pub mod replay;
pub mod seal;
pub mod session;
pub mod urlenc;

pub use config::OidcConfig;
pub use policy::{Decision, Oidc};

#[cfg(test)]
mod policy_tests;
