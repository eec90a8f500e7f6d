//! The rate-limit fixtures through real Envoy 1.40, and one limit shared by
//! every worker: with `--concurrency 2`, connections land on both workers'
//! VMs and the admitted count is still exactly the limit.

use host_test_harness::envoy::{self, Bootstrap, EchoUpstream, Envoy, EnvoyOptions, WasmFilter};
use host_test_harness::fixture::{FixtureFile, Request};
use std::path::PathBuf;

fn root() -> PathBuf {
    envoy::workspace_root().expect("run inside the Palisade workspace")
}

fn filter() -> WasmFilter {
    let m = root().join("target/plugins/rate-limit.wasm");
    assert!(
        m.exists(),
        "{} is missing: run scripts/build first",
        m.display()
    );
    WasmFilter::new("palisade.rate_limit", m).root_id("rate-limit")
}

#[test]
fn fixtures_pass_in_real_envoy() {
    let files = FixtureFile::load_dir(root().join("plugins/rate-limit/fixtures")).unwrap();
    assert!(files.len() >= 3, "expected the rate-limit fixture files");
    let mut failed = 0;
    for file in &files {
        let report = envoy::run_file(&[filter()], file);
        println!("{report}");
        assert!(!report.cases.is_empty(), "{}: no case ran", file.name);
        failed += report.failed();
    }
    assert_eq!(
        failed, 0,
        "fixture cases failed in Envoy (see the report above)"
    );
}

#[test]
fn shipped_example_validates() {
    let out = envoy::validate_file(
        &root().join("envoy-examples/rate-limit.yaml"),
        &EnvoyOptions::default(),
    )
    .expect("envoy --mode validate accepts envoy-examples/rate-limit.yaml");
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn two_workers_share_one_limit() {
    let upstream = EchoUpstream::start().unwrap();
    let config = r#"{"rules":[{"name":"shared","limit":{"requests":5,"per":"hour"}}]}"#;
    let boot = Bootstrap::new(vec![filter().config(config)], upstream.addr());
    let options = EnvoyOptions {
        concurrency: 2,
        ..EnvoyOptions::default()
    };
    let proxy = Envoy::start_bootstrap(&boot, &options).expect("envoy starts");
    let mut statuses = Vec::new();
    for i in 0..20 {
        // A new connection per request; Envoy spreads them over both workers.
        let req = Request {
            path: format!("/item/{i}"),
            ..Default::default()
        };
        statuses.push(envoy::send(proxy.listener_addr(), &req).unwrap().status);
    }
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((admitted, limited), (5, 15), "{statuses:?}");
    assert_eq!(
        proxy
            .metric("palisade_ratelimit_rule_shared_allowed")
            .unwrap(),
        Some(5.0)
    );
    assert_eq!(
        proxy
            .metric("palisade_ratelimit_rule_shared_limited")
            .unwrap(),
        Some(15.0)
    );
    let log = proxy.log();
    assert!(
        log.lines()
            .filter(|l| l.contains(r#""decision":"deny""#))
            .count()
            >= 15,
        "each refusal is logged:\n{log}"
    );
}
