//! What the rbac test files share: paths, the fixture sets, the jwt-auth
//! configuration that runs in front of rbac for `fixtures/with-jwt/`.

#![allow(dead_code)]

use host_test_harness::envoy;
use host_test_harness::fixture::FixtureFile;
use host_test_harness::ConnectionManager;
use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    envoy::workspace_root().expect("run inside the Palisade workspace")
}

/// A built plugin module, `target/plugins/<name>.wasm`.
pub fn module_path(name: &str) -> PathBuf {
    let m = root().join(format!("target/plugins/{name}.wasm"));
    assert!(
        m.exists(),
        "{} is missing: run scripts/build first",
        m.display()
    );
    m
}

/// The connection manager settings rbac's README requires, emulated by the
/// harness and configured in Envoy by `tests/envoy.rs`:
/// `use_remote_address: true`, `forward_client_cert_details:
/// ALWAYS_FORWARD_ONLY`.
pub const DEPLOYMENT: ConnectionManager = ConnectionManager {
    use_remote_address: true,
    forward_client_cert: true,
};

/// Fixture files run with rbac alone (`fixtures/*.yaml`).
pub fn plain_fixtures() -> Vec<FixtureFile> {
    FixtureFile::load_dir(root().join("plugins/rbac/fixtures")).unwrap()
}

/// Fixture files run with jwt-auth in front of rbac
/// (`fixtures/with-jwt/*.yaml`).
pub fn jwt_fixtures() -> Vec<FixtureFile> {
    FixtureFile::load_dir(root().join("plugins/rbac/fixtures/with-jwt")).unwrap()
}

/// The jwt-auth configuration for the `with-jwt` fixtures: issuer
/// `https://issuer.test`, an inline HS256 key, tokens optional.
pub fn jwt_config() -> String {
    std::fs::read_to_string(root().join("plugins/rbac/fixtures/with-jwt/jwt-auth.json")).unwrap()
}

/// The HS256 key of [`jwt_config`].
pub const JWT_KEY: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Number of cases in the Istio-derived table (`istio-*.yaml` and
/// `with-jwt/*.yaml`).
pub fn istio_case_count() -> usize {
    plain_fixtures()
        .iter()
        .filter(|f| {
            f.path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("istio-"))
        })
        .chain(jwt_fixtures().iter())
        .map(|f| f.cases.len())
        .sum()
}
