//! The Istio-derived fixture table in the wasmtime harness: rbac alone for
//! `fixtures/*.yaml`, jwt-auth then rbac (the same chain as in Envoy) for
//! `fixtures/with-jwt/*.yaml`. `tests/envoy.rs` runs the same files through
//! real Envoy.

mod common;

use common::*;
use host_test_harness::{run_file_with, Host, Module};

fn module(name: &str) -> Module {
    Module::from_file(module_path(name)).expect("module loads")
}

#[test]
fn the_istio_table_has_at_least_60_cases() {
    let n = istio_case_count();
    assert!(n >= 60, "only {n} Istio-derived cases");
}

#[test]
fn plain_fixtures_pass_in_the_harness() {
    let rbac = module("rbac");
    let mut failed = 0;
    for file in plain_fixtures() {
        let report = run_file_with(&file, |config| {
            Host::builder(&rbac)
                .plugin_config(config)
                .connection_manager(DEPLOYMENT)
        });
        println!("{report}");
        assert!(!report.cases.is_empty(), "{}: no case ran", file.name);
        failed += report.failed();
    }
    assert_eq!(failed, 0, "fixture cases failed in the harness (see above)");
}

#[test]
fn jwt_fixtures_pass_in_the_harness_chain() {
    let (jwt, rbac) = (module("jwt-auth"), module("rbac"));
    let files = jwt_fixtures();
    assert!(!files.is_empty());
    let mut failed = 0;
    for file in &files {
        let report = run_file_with(file, |config| {
            Host::builder(&jwt)
                .plugin_config(jwt_config().into_bytes())
                .then(&rbac)
                .plugin_config(config)
                .connection_manager(DEPLOYMENT)
        });
        println!("{report}");
        assert!(!report.cases.is_empty(), "{}: no case ran", file.name);
        failed += report.failed();
    }
    assert_eq!(failed, 0, "fixture cases failed in the harness (see above)");
}
