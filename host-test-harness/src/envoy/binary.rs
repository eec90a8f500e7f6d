//! Where the Envoy binary and the workspace root are.

use super::EnvoyError;
use std::path::{Path, PathBuf};

/// Environment variable naming the Envoy binary to use.
pub const ENVOY_ENV: &str = "PALISADE_ENVOY";

/// The Palisade workspace root: the directory holding the workspace
/// `Cargo.toml`. Found from this crate's manifest directory, else by walking
/// up from the current directory.
pub fn workspace_root() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let from_manifest = manifest.ancestors().find(|d| is_workspace_root(d));
    if let Some(dir) = from_manifest {
        return Some(dir.to_path_buf());
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .find(|d| is_workspace_root(d) || d.join(".venv").is_dir())
        .map(Path::to_path_buf)
}

fn is_workspace_root(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .map(|text| text.lines().any(|l| l.trim() == "[workspace]"))
        .unwrap_or(false)
}

/// The Envoy binary: `$PALISADE_ENVOY` if set, else
/// `<workspace root>/.venv/bin/envoy`.
///
/// The error tells the user to run `scripts/install-envoy`.
pub fn envoy_binary() -> Result<PathBuf, EnvoyError> {
    let (path, from_env) = match std::env::var_os(ENVOY_ENV) {
        Some(p) if !p.is_empty() => (PathBuf::from(p), true),
        _ => {
            let root = workspace_root().unwrap_or_else(|| PathBuf::from("."));
            (root.join(".venv/bin/envoy"), false)
        }
    };
    if is_executable(&path) {
        Ok(path)
    } else {
        Err(EnvoyError::NotInstalled { path, from_env })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let root = workspace_root().expect("tests run inside the workspace");
        assert!(root.join("host-test-harness/Cargo.toml").is_file());
    }

    #[test]
    fn missing_binary_error_says_how_to_install() {
        let err = EnvoyError::NotInstalled {
            path: PathBuf::from("/nowhere/envoy"),
            from_env: false,
        };
        let text = err.to_string();
        assert!(text.contains("scripts/install-envoy"), "{text}");
        assert!(text.contains("/nowhere/envoy"), "{text}");
    }
}
