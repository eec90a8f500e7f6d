//! `sdk-ext`: what every Palisade plugin shares.
//!
//! A plugin is split into a pure *policy* (configuration + [`RequestView`] →
//! decision, no host calls) and a thin Proxy-Wasm *filter*. This crate holds
//! the pieces both halves would otherwise write twice:
//!
//! - [`config`]: strict JSON configuration whose errors name the field path;
//! - [`request`]: the request view built once per request;
//! - [`header_map`]: the Proxy-Wasm header-map wire format, read in place;
//! - [`headers`]: a request's headers, names and values in one string;
//! - [`utf8`]: bytes from the host as text, invalid UTF-8 replaced;
//! - [`matcher`]: string, path-template, method-set and CIDR matchers;
//! - [`deny`]: the deny response every plugin sends (same JSON shape);
//! - [`metrics`]: Prometheus-friendly metric names;
//! - [`clock`]: a clock abstraction so policies are tested at a fixed time;
//! - [`duration`]: durations written as Envoy does (`"500ms"`, `"10s"`);
//! - [`identity`]: the verified identity one plugin hands to the next;
//! - [`spiffe`]: SPIFFE ids (trust domain, Istio principal and namespace);
//! - [`xfcc`]: reading Envoy's `x-forwarded-client-cert` header;
//! - [`host`] (wasm32 only): the Proxy-Wasm glue that reads the view from the
//!   host and applies decisions.

pub mod clock;
pub mod config;
pub mod deny;
pub mod duration;
pub mod header_map;
pub mod headers;
#[cfg(target_arch = "wasm32")]
pub mod host;
pub mod identity;
pub mod matcher;
pub mod metrics;
pub mod request;
pub mod spiffe;
pub mod utf8;
pub mod xfcc;

pub use clock::{Clock, FixedClock, SystemClock};

/// The git commit the modules were built from: `scripts/build` sets
/// `PALISADE_GIT_COMMIT`; builds outside it say `unknown`.
pub const BUILD_COMMIT: &str = match option_env!("PALISADE_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};
pub use config::{parse_config, ConfigError};
pub use deny::Denial;
pub use headers::Headers;
pub use request::{PeerIdentity, RequestView};
