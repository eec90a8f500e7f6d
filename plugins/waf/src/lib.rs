//! Palisade WAF: a SecLang engine that runs the OWASP Core Rule Set v4
//! unmodified, natively (tests, tools) and as a Proxy-Wasm filter.
//!
//! - [`seclang`]: the rule language (lexer, action list, directives);
//! - [`variables`], [`operators`], [`transforms`], [`macros`]: the pieces
//!   of a rule;
//! - [`engine`]: the compiled rule set;
//! - [`request`] and [`body`]: the request model the rules read;
//! - [`transaction`]: one request through phases 1-5;
//! - [`audit`]: the audit log line, deny responses, metric families;
//! - [`config`]: the plugin configuration (rules arrive precompiled by
//!   `waf-compile`, see [`compile`]);
//! - `filter` (wasm32 only): the Proxy-Wasm glue.

pub mod audit;
pub mod body;
pub mod compile;
pub mod config;
pub mod engine;
pub mod error;
#[cfg(target_arch = "wasm32")]
mod filter;
pub mod macros;
pub mod operators;
pub mod request;
pub mod seclang;
pub mod transaction;
pub mod transforms;
pub mod variables;

pub use config::{BodyOverflow, BodyStep, Mode, Verdict, Waf, WafConfig};
pub use engine::{RuleSet, Source};
pub use error::RuleError;
pub use request::Request;
pub use transaction::{Interruption, MatchedRule, Transaction};
