//! The plugin configuration and the loaded WAF.
//!
//! ```json
//! {
//!   "mode": "block",
//!   "request_body_limit": 131072,
//!   "body_overflow": "inspect_partial",
//!   "max_args": 1024,
//!   "rules": [ { "name": "crs-setup.conf", "text": "SecAction ..." }, ... ],
//!   "data_files": { "lfi-os-files.data": "..." }
//! }
//! ```
//!
//! `rules` and `data_files` are what `waf-compile` writes from a CRS
//! directory plus overrides (see [`crate::compile`]); the plugin never
//! reads files. Rules are parsed and compiled once, at configure time; a
//! bad rule refuses the whole configuration with `file:line: reason`.

use crate::body::BodyLimits;
use crate::engine::{RuleSet, Source};
use crate::error::RuleError;
use crate::request::Request;
use crate::seclang::actions::EngineMode;
use crate::transaction::{Interruption, MatchedRule, Transaction};
use sdk_ext::config::{parse_config, ConfigError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Blocking or detection only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Disruptive rules stop the request with 403.
    #[default]
    Block,
    /// Rules run and matches are logged; nothing is stopped.
    DetectionOnly,
}

/// What happens to a request body longer than `request_body_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyOverflow {
    /// Refuse the request with 413.
    #[default]
    Reject,
    /// Inspect the first `request_body_limit` bytes and let the rest pass.
    InspectPartial,
}

/// What the filter does with the request body it has buffered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyStep {
    /// Keep buffering.
    Wait,
    /// Inspect the first `take` bytes now (`truncated` when the body is
    /// longer); later chunks pass uninspected.
    Inspect {
        /// Bytes to read from the buffer.
        take: usize,
        /// True when bytes past the limit are not inspected.
        truncated: bool,
    },
    /// Refuse the request (413).
    Reject,
}

impl BodyOverflow {
    /// The step for `buffered` bytes so far, `end_of_stream` when no more
    /// will come, under `limit`.
    pub fn step(self, buffered: usize, end_of_stream: bool, limit: usize) -> BodyStep {
        if buffered > limit {
            return match self {
                BodyOverflow::Reject => BodyStep::Reject,
                BodyOverflow::InspectPartial => BodyStep::Inspect {
                    take: limit,
                    truncated: true,
                },
            };
        }
        if end_of_stream {
            BodyStep::Inspect {
                take: buffered,
                truncated: false,
            }
        } else {
            BodyStep::Wait
        }
    }
}

fn default_body_limit() -> usize {
    128 * 1024
}

fn default_max_args() -> usize {
    1024
}

/// The JSON configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WafConfig {
    /// `block` (default) or `detection_only`.
    #[serde(default)]
    pub mode: Mode,
    /// Most request body bytes buffered and inspected (default 128 KiB).
    #[serde(default = "default_body_limit")]
    pub request_body_limit: usize,
    /// What to do past the limit (default `reject`).
    #[serde(default)]
    pub body_overflow: BodyOverflow,
    /// Most arguments parsed from the query or body (default 1024).
    #[serde(default = "default_max_args")]
    pub max_args: usize,
    /// Rule sources in evaluation order.
    pub rules: Vec<Source>,
    /// `.data` files for `@pmFromFile`, by file name.
    #[serde(default)]
    pub data_files: HashMap<String, String>,
}

/// Why the plugin refused its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WafError {
    /// The JSON is malformed or has unknown or invalid fields.
    Config(ConfigError),
    /// A rule does not load.
    Rules(RuleError),
}

impl fmt::Display for WafError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WafError::Config(e) => write!(f, "{e}"),
            WafError::Rules(e) => write!(
                f,
                "invalid rules at {e} (regenerate the configuration with waf-compile after fixing the rule)"
            ),
        }
    }
}

impl std::error::Error for WafError {}

/// The outcome of inspecting a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Set when the request must be stopped (never in detection-only mode).
    pub interruption: Option<Interruption>,
    /// Rules that matched, in order.
    pub matches: Vec<MatchedRule>,
    /// Inbound anomaly score CRS computed (`tx.blocking_inbound_anomaly_score`).
    pub anomaly_score: i64,
}

impl Verdict {
    /// The verdict a transaction reached so far.
    pub fn of(tx: Transaction) -> Verdict {
        let anomaly_score = inbound_anomaly_score(&tx);
        Verdict {
            interruption: tx.interruption,
            matches: tx.matches,
            anomaly_score,
        }
    }
}

/// The inbound anomaly score CRS computed (`tx.blocking_inbound_anomaly_score`,
/// 0 when unset).
pub fn inbound_anomaly_score(tx: &Transaction) -> i64 {
    tx.tx("blocking_inbound_anomaly_score")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A loaded WAF: settings plus the compiled rule set.
#[derive(Debug, Clone)]
pub struct Waf {
    /// The settings (rule text dropped after compiling).
    pub mode: Mode,
    /// Body buffering limit.
    pub request_body_limit: usize,
    /// Overflow behaviour.
    pub body_overflow: BodyOverflow,
    /// Parser limits.
    pub limits: BodyLimits,
    /// The rules (shared by every transaction).
    pub rules: Arc<RuleSet>,
}

impl Waf {
    /// Parses and compiles the configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Waf, WafError> {
        let cfg: WafConfig = parse_config(bytes).map_err(WafError::Config)?;
        Waf::from_config(&cfg)
    }

    /// Compiles an already-parsed configuration.
    pub fn from_config(cfg: &WafConfig) -> Result<Waf, WafError> {
        if cfg.rules.is_empty() {
            return Err(WafError::Config(ConfigError::new(
                "rules",
                "no rule sources; generate them with waf-compile",
            )));
        }
        if cfg.request_body_limit == 0 {
            return Err(WafError::Config(ConfigError::new(
                "request_body_limit",
                "must be at least 1 byte",
            )));
        }
        let rules =
            Arc::new(RuleSet::compile(&cfg.rules, &cfg.data_files).map_err(WafError::Rules)?);
        Ok(Waf {
            mode: cfg.mode,
            request_body_limit: cfg.request_body_limit,
            body_overflow: cfg.body_overflow,
            limits: BodyLimits {
                max_args: cfg.max_args,
                ..BodyLimits::default()
            },
            rules,
        })
    }

    /// The engine mode transactions start in.
    pub fn engine_mode(&self) -> EngineMode {
        match self.mode {
            Mode::Block => EngineMode::On,
            Mode::DetectionOnly => EngineMode::DetectionOnly,
        }
    }

    /// Starts a transaction for `req` (phases are run by the caller).
    pub fn transaction(&self, req: Request) -> Transaction {
        Transaction::new(
            Arc::clone(&self.rules),
            req,
            self.engine_mode(),
            self.limits,
        )
    }

    /// Runs request phases 1 and 2 over a complete request.
    pub fn inspect(&self, req: &Request) -> Verdict {
        let mut tx = self.transaction(req.clone());
        tx.process_request_headers();
        tx.process_request_body();
        Verdict::of(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_blocks() {
        let json = serde_json::json!({
            "rules": [{"name": "r.conf", "text": "SecRule ARGS \"@pmFromFile w.data\" \"id:1,phase:2,deny\""}],
            "data_files": {"w.data": "evil\n"}
        });
        let waf = Waf::from_json(json.to_string().as_bytes()).unwrap();
        let req = Request::new("GET", "/?a=EVIL", "HTTP/1.1", vec![], waf.limits);
        assert_eq!(waf.inspect(&req).interruption.map(|i| i.rule_id), Some(1));
        let req = Request::new("GET", "/?a=ok", "HTTP/1.1", vec![], waf.limits);
        assert_eq!(waf.inspect(&req).interruption, None);
    }

    #[test]
    fn body_steps() {
        use BodyOverflow::*;
        assert_eq!(Reject.step(10, false, 100), BodyStep::Wait);
        assert_eq!(
            Reject.step(10, true, 100),
            BodyStep::Inspect {
                take: 10,
                truncated: false
            }
        );
        assert_eq!(
            Reject.step(100, true, 100),
            BodyStep::Inspect {
                take: 100,
                truncated: false
            }
        );
        assert_eq!(Reject.step(101, false, 100), BodyStep::Reject);
        assert_eq!(
            InspectPartial.step(101, false, 100),
            BodyStep::Inspect {
                take: 100,
                truncated: true
            }
        );
        assert_eq!(
            InspectPartial.step(500, true, 100),
            BodyStep::Inspect {
                take: 100,
                truncated: true
            }
        );
    }

    #[test]
    fn detection_only_never_interrupts() {
        let json = r#"{"mode":"detection_only","rules":[{"name":"r.conf","text":"SecAction \"id:1,phase:1,deny\""}]}"#;
        let waf = Waf::from_json(json.as_bytes()).unwrap();
        let v = waf.inspect(&Request::default());
        assert_eq!(v.interruption, None);
        assert_eq!(v.matches.len(), 1);
    }

    #[test]
    fn errors_are_actionable() {
        let e = Waf::from_json(br#"{"rules":[],"bogus":1}"#).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = Waf::from_json(br#"{"rules":[]}"#).unwrap_err();
        assert!(e.to_string().contains("waf-compile"), "{e}");
        let e = Waf::from_json(
            br#"{"rules":[{"name":"a.conf","text":"\nSecRule ARGS \"@nope\" \"id:1\""}]}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid rules at a.conf:2: unknown operator `@nope`"),
            "{e}"
        );
    }
}
