//! Shared helpers of the integration tests: the test module.

use host_test_harness::Module;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The command that builds the test module.
pub const BUILD: &str = "cargo build --release --target wasm32-wasip1 -p harness-test-modules";

/// The compiled test module (compiled once per test binary).
pub fn module() -> Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE
        .get_or_init(|| {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/wasm32-wasip1/release/harness_test_modules.wasm");
            assert!(
                path.exists(),
                "{} is missing: build it first with `{BUILD}`",
                path.display()
            );
            Module::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
        })
        .clone()
}

/// A plugin configuration selecting a mode of the test module.
pub fn config(json: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json).unwrap()
}
