//! From a CRS directory plus overrides to the plugin configuration.
//!
//! Order of the rule sources, as a ModSecurity install includes them:
//! 1. the CRS setup (`crs-setup.conf`, else `crs-setup.conf.example`);
//! 2. the Palisade overrides (paranoia levels, anomaly threshold) as one
//!    `SecAction` with id 9009001, so they win over CRS's defaults;
//! 3. the user's *before* files (exclusions in the style of
//!    `REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf`);
//! 4. `rules/*.conf` in name order (`*.conf.example` are skipped);
//! 5. the user's *after* files (`SecRuleRemoveById`, extra rules).
//!
//! `rules/*.data` are embedded for `@pmFromFile`. The result is compiled
//! once here, so a configuration that leaves this tool always loads.

use crate::config::{BodyOverflow, Mode, Waf, WafConfig, WafError};
use crate::engine::Source;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The id of the generated overrides rule.
pub const OVERRIDES_RULE_ID: u32 = 9_009_001;

/// What to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// The CRS directory (holding `rules/` and the setup file).
    pub crs_dir: PathBuf,
    /// The setup file; default: the CRS directory's own.
    pub setup: Option<PathBuf>,
    /// `tx.blocking_paranoia_level` (1-4).
    pub paranoia_level: Option<u8>,
    /// `tx.detection_paranoia_level` (1-4, at least the blocking level).
    pub detection_paranoia_level: Option<u8>,
    /// `tx.inbound_anomaly_score_threshold`.
    pub inbound_anomaly_threshold: Option<u32>,
    /// Files loaded before the CRS rules.
    pub before: Vec<PathBuf>,
    /// Files loaded after the CRS rules.
    pub after: Vec<PathBuf>,
    /// Block or detection only.
    pub mode: Mode,
    /// Request body limit in bytes.
    pub request_body_limit: usize,
    /// Behaviour past the body limit.
    pub body_overflow: BodyOverflow,
}

impl CompileOptions {
    /// Defaults for the CRS directory `crs_dir`.
    pub fn new(crs_dir: impl Into<PathBuf>) -> Self {
        CompileOptions {
            crs_dir: crs_dir.into(),
            setup: None,
            paranoia_level: None,
            detection_paranoia_level: None,
            inbound_anomaly_threshold: None,
            before: Vec::new(),
            after: Vec::new(),
            mode: Mode::Block,
            request_body_limit: 128 * 1024,
            body_overflow: BodyOverflow::Reject,
        }
    }
}

/// Why compiling failed.
#[derive(Debug)]
pub enum CompileError {
    /// A file could not be read.
    Io(PathBuf, std::io::Error),
    /// The CRS directory has no `rules/*.conf`.
    NoRules(PathBuf),
    /// An option is out of range.
    Option(String),
    /// The rules do not load.
    Waf(WafError),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Io(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            CompileError::NoRules(p) => write!(
                f,
                "{} has no rules/*.conf; pass the CRS directory (the one holding rules/ and crs-setup.conf.example)",
                p.display()
            ),
            CompileError::Option(m) => write!(f, "{m}"),
            CompileError::Waf(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CompileError {}

fn read(path: &Path) -> Result<String, CompileError> {
    let bytes = std::fs::read(path).map_err(|e| CompileError::Io(path.to_path_buf(), e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn source(path: &Path) -> Result<Source, CompileError> {
    Ok(Source {
        name: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        text: read(path)?,
    })
}

fn sorted_files(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, CompileError> {
    let rd = std::fs::read_dir(dir).map_err(|e| CompileError::Io(dir.to_path_buf(), e))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(suffix))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The overrides `SecAction` for the options, if any are set.
pub fn overrides_rule(opts: &CompileOptions) -> Result<Option<String>, CompileError> {
    let mut setvars = Vec::new();
    for (name, v) in [
        ("paranoia_level", opts.paranoia_level),
        ("detection_paranoia_level", opts.detection_paranoia_level),
    ] {
        if let Some(v) = v {
            if !(1..=4).contains(&v) {
                return Err(CompileError::Option(format!("{name} must be 1-4, not {v}")));
            }
        }
    }
    if let Some(pl) = opts.paranoia_level {
        setvars.push(format!("setvar:tx.blocking_paranoia_level={pl}"));
    }
    if let Some(dpl) = opts.detection_paranoia_level.or(opts.paranoia_level) {
        if dpl < opts.paranoia_level.unwrap_or(1) {
            return Err(CompileError::Option(
                "detection_paranoia_level must be at least paranoia_level".to_string(),
            ));
        }
        setvars.push(format!("setvar:tx.detection_paranoia_level={dpl}"));
    }
    if let Some(t) = opts.inbound_anomaly_threshold {
        setvars.push(format!("setvar:tx.inbound_anomaly_score_threshold={t}"));
    }
    if setvars.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "SecAction \"id:{OVERRIDES_RULE_ID},phase:1,pass,nolog,t:none,{}\"\n",
        setvars.join(",")
    )))
}

/// Builds the plugin configuration and checks that it loads.
pub fn compile(opts: &CompileOptions) -> Result<WafConfig, CompileError> {
    let rules_dir = opts.crs_dir.join("rules");
    let confs: Vec<PathBuf> = sorted_files(&rules_dir, ".conf")?;
    if confs.is_empty() {
        return Err(CompileError::NoRules(opts.crs_dir.clone()));
    }
    let setup = match &opts.setup {
        Some(p) => p.clone(),
        None => {
            let own = opts.crs_dir.join("crs-setup.conf");
            if own.exists() {
                own
            } else {
                opts.crs_dir.join("crs-setup.conf.example")
            }
        }
    };
    let mut rules = vec![source(&setup)?];
    if let Some(text) = overrides_rule(opts)? {
        rules.push(Source {
            name: "palisade-overrides.conf".to_string(),
            text,
        });
    }
    for p in &opts.before {
        rules.push(source(p)?);
    }
    for p in &confs {
        rules.push(source(p)?);
    }
    for p in &opts.after {
        rules.push(source(p)?);
    }
    let mut data_files = HashMap::new();
    for p in sorted_files(&rules_dir, ".data")? {
        let s = source(&p)?;
        data_files.insert(s.name, s.text);
    }
    let cfg = WafConfig {
        mode: opts.mode,
        request_body_limit: opts.request_body_limit,
        body_overflow: opts.body_overflow,
        max_args: 1024,
        rules,
        data_files,
    };
    Waf::from_config(&cfg).map_err(CompileError::Waf)?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_follow_options() {
        let mut o = CompileOptions::new("x");
        assert_eq!(overrides_rule(&o).unwrap(), None);
        o.paranoia_level = Some(2);
        o.inbound_anomaly_threshold = Some(10);
        let r = overrides_rule(&o).unwrap().unwrap();
        assert!(r.contains("blocking_paranoia_level=2"));
        assert!(r.contains("detection_paranoia_level=2"));
        assert!(r.contains("inbound_anomaly_score_threshold=10"));
        o.detection_paranoia_level = Some(1);
        assert!(overrides_rule(&o).is_err());
        o.paranoia_level = Some(7);
        assert!(overrides_rule(&o).unwrap_err().to_string().contains("1-4"));
    }

    #[test]
    fn missing_directory_is_explained() {
        let e = compile(&CompileOptions::new("/nonexistent/crs")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/crs/rules"), "{e}");
    }

    /// The shared CRS copy sits at `../shared/crs-4.25.0` from the repo.
    fn crs_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs-4.25.0")
    }

    #[test]
    fn compiles_the_shared_crs() {
        let dir = crs_dir();
        assert!(
            dir.join("rules").is_dir(),
            "CRS expected at {}",
            dir.display()
        );
        let mut o = CompileOptions::new(&dir);
        o.paranoia_level = Some(1);
        let cfg = compile(&o).unwrap();
        assert!(cfg.rules.len() > 20);
        assert!(cfg.data_files.contains_key("lfi-os-files.data"));
        let waf = Waf::from_config(&cfg).unwrap();
        let get = |uri: &str| {
            let req = crate::Request::new(
                "GET",
                uri,
                "HTTP/1.1",
                vec![
                    ("Host".into(), "example.com".into()),
                    ("User-Agent".into(), "Mozilla/5.0".into()),
                    ("Accept".into(), "text/html".into()),
                ],
                waf.limits,
            );
            waf.inspect(&req)
        };
        let v = get("/?id=1%27%20OR%20%271%27%3D%271");
        assert_eq!(
            v.interruption.map(|i| i.rule_id),
            Some(949110),
            "{:?}",
            v.matches
        );
        let v = get("/index.html?page=2");
        assert_eq!(v.interruption, None, "{:?}", v.matches);
    }
}
