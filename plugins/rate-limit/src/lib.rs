//! Palisade rate limiting, local limits.
//!
//! Each rule matches requests, builds a key from parts of the request
//! (client IP, header, path, method) and admits them with a GCRA bucket
//! (`requests` per second/minute/hour, `burst` at once). Bucket state lives in
//! Proxy-Wasm shared data and is updated with compare-and-swap, so every
//! worker VM of an Envoy process enforces one shared limit.
//!
//! - [`config`]: JSON configuration;
//! - [`gcra`]: the bucket arithmetic;
//! - [`key`]: request → bucket key;
//! - [`table`]: the bounded key table in shared data (slots, idle reuse, CAS);
//! - [`headers`]: `RateLimit`/`RateLimit-Policy` and legacy `X-RateLimit-*`;
//! - [`text`]: numbers and addresses written without `core::fmt`;
//! - [`policy`]: which rules apply and the combined decision;
//! - [`rls`]: Envoy's rate limit service protocol, for `global` rules;
//! - `filter` (wasm32 only): the Proxy-Wasm glue.

pub mod config;
#[cfg(target_arch = "wasm32")]
mod filter;
pub mod gcra;
pub mod headers;
pub mod key;
pub mod policy;
pub mod rls;
pub mod table;
pub mod text;

pub use config::RateLimitConfig;
pub use policy::RateLimiter;
