//! The OWASP Core Rule Set as the waf plugin ships it: CRS 4.25.0 from the
//! project's sibling `shared/` directory (where the waf tests read it),
//! compiled the way `waf-compile` does.

use std::fmt;
use std::path::PathBuf;
use waf::compile::{compile, CompileError, CompileOptions};
use waf::WafConfig;

/// Environment variable naming another CRS v4 directory.
pub const CRS_DIR_VAR: &str = "PALISADE_CRS_DIR";

/// The CRS directory: `$PALISADE_CRS_DIR`, else `../shared/crs-4.25.0`
/// beside the checkout.
pub fn crs_dir() -> PathBuf {
    match std::env::var_os(CRS_DIR_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/crs-4.25.0"),
    }
}

/// Why the CRS configuration could not be built.
#[derive(Debug)]
pub enum CrsError {
    /// The directory has no `rules/`.
    Missing(PathBuf),
    /// The rules are there but do not compile.
    Compile(CompileError),
}

impl fmt::Display for CrsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrsError::Missing(dir) => write!(
                f,
                "OWASP CRS not found at {} (no rules/ there): the waf benches read CRS 4.25.0 \
                 from shared/crs-4.25.0 beside the checkout, as the waf tests do; put a CRS v4 \
                 directory (rules/ and crs-setup.conf.example) there or set {CRS_DIR_VAR} to one",
                dir.display()
            ),
            CrsError::Compile(e) => write!(f, "CRS does not compile: {e}"),
        }
    }
}

impl std::error::Error for CrsError {}

/// The plugin configuration for CRS in `dir` at blocking paranoia level
/// `paranoia` (1-4), blocking mode, default limits.
pub fn crs_config_from(dir: PathBuf, paranoia: u8) -> Result<WafConfig, CrsError> {
    if !dir.join("rules").is_dir() {
        return Err(CrsError::Missing(dir));
    }
    let mut o = CompileOptions::new(dir);
    o.paranoia_level = Some(paranoia);
    compile(&o).map_err(CrsError::Compile)
}

/// [`crs_config_from`] the default [`crs_dir`].
pub fn crs_config(paranoia: u8) -> Result<WafConfig, CrsError> {
    crs_config_from(crs_dir(), paranoia)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_says_where_crs_comes_from() {
        let dir = std::env::temp_dir().join(format!("palisade-no-crs-{}", std::process::id()));
        let e = crs_config_from(dir.clone(), 1).expect_err("no rules there");
        assert!(matches!(e, CrsError::Missing(ref d) if *d == dir));
        let text = e.to_string();
        assert!(text.contains("shared/crs-4.25.0"), "{text}");
        assert!(text.contains(CRS_DIR_VAR), "{text}");
    }

    #[test]
    fn the_shipped_crs_compiles_at_paranoia_level_1() {
        let cfg = crs_config(1).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.rules.len() > 20, "{} rule sources", cfg.rules.len());
        assert!(cfg.data_files.contains_key("lfi-os-files.data"));
    }
}
