//! The RBAC module (`target/plugins/rbac.wasm`) in the wasmtime harness: the
//! fixtures, the same outcomes as real Envoy case by case, and what the
//! fixture format does not express (metrics, log lines, request ids,
//! configuration errors in the log).

mod common;

use common::DEPLOYMENT;
use host_test_harness::envoy::{self, WasmFilter};
use host_test_harness::fixture::{FixtureFile, Request};
use host_test_harness::{run_file, run_file_with, Host, HostError, Module};
use std::path::PathBuf;
use std::sync::OnceLock;

fn root() -> PathBuf {
    envoy::workspace_root().expect("run inside the Palisade workspace")
}

fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| {
        let path = root().join("target/plugins/rbac.wasm");
        assert!(
            path.exists(),
            "{} is missing: run scripts/build first",
            path.display()
        );
        Module::from_file(&path).expect("rbac.wasm loads")
    })
}

fn fixtures() -> Vec<FixtureFile> {
    FixtureFile::load_dir(root().join("plugins/rbac/fixtures")).unwrap()
}

#[test]
fn fixtures_pass_in_the_harness() {
    let files = fixtures();
    assert!(files.len() >= 5);
    let mut failed = 0;
    for file in &files {
        let report = run_file_with(file, |config| {
            Host::builder(module())
                .plugin_config(config)
                .connection_manager(DEPLOYMENT)
        });
        println!("{report}");
        assert!(!report.cases.is_empty(), "{}: no case ran", file.name);
        failed += report.failed();
    }
    assert_eq!(failed, 0, "fixture cases failed in the harness (see above)");
}

/// The same fixture file through both runners gives the same status, the
/// same forwarding and the same deny code for every case.
#[test]
fn harness_and_envoy_agree_case_by_case() {
    let file = FixtureFile::load(root().join("plugins/rbac/fixtures/basic.yaml")).unwrap();
    let ours = run_file(module(), &file);
    let filter =
        WasmFilter::new("palisade.rbac", root().join("target/plugins/rbac.wasm")).root_id("rbac");
    let theirs = envoy::run_file(&[filter], &file);
    assert_eq!(ours.cases.len(), theirs.cases.len());
    let code = |body: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("code").cloned())
    };
    for (h, e) in ours.cases.iter().zip(&theirs.cases) {
        let (Some(ho), Some(eo)) = (&h.outcome, &e.outcome) else {
            panic!(
                "{}: a runner produced no outcome ({:?} / {:?})",
                h.name, h.error, e.error
            );
        };
        assert_eq!(ho.status, eo.status, "{}: status", h.name);
        assert_eq!(
            ho.upstream.is_some(),
            eo.upstream.is_some(),
            "{}: forwarded",
            h.name
        );
        assert_eq!(code(&ho.body), code(&eo.body), "{}: deny code", h.name);
        assert_eq!(
            ho.header("content-type"),
            eo.header("content-type"),
            "{}: content-type",
            h.name
        );
    }
}

fn host(config: &str) -> Result<Host, HostError> {
    Host::builder(module())
        .plugin_config(config.as_bytes().to_vec())
        .build()
}

const CONFIG: &str = r#"{"policies":[
  {"name":"no-writes","action":"DENY","rules":[{"methods":["POST"]}]},
  {"name":"public","action":"ALLOW","rules":[{"paths":[{"prefix":"/public"}]}]}]}"#;

/// No rule of `CONFIG` reads the client address or the peer certificate,
/// so the decision does not read them; the denial's log line still names
/// both.
#[test]
fn denial_carries_the_request_id_and_is_logged_and_counted() {
    let mut h = Host::builder(module())
        .plugin_config(CONFIG.as_bytes().to_vec())
        .property(
            &["connection", "uri_san_peer_certificate"],
            "spiffe://cluster.local/ns/shop/sa/cart",
        )
        .build()
        .unwrap();
    let req = Request {
        method: "POST".into(),
        path: "/public/x".into(),
        headers: vec![("x-request-id".into(), "req-42".into())],
        source: Some("127.0.0.7".parse().unwrap()),
        ..Default::default()
    };
    let out = h.send(&req).unwrap();
    assert_eq!(out.status, 403);
    let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(body["request_id"], "req-42");
    assert_eq!(body["code"], "rbac_denied");
    let record = h
        .json_log(r#""decision":"deny""#)
        .expect("a denial log line");
    assert_eq!(record["policy"], "no-writes");
    assert_eq!(record["request_id"], "req-42");
    assert_eq!(record["source"], "127.0.0.7");
    assert_eq!(record["principal"], "cluster.local/ns/shop/sa/cart");
    assert_eq!(h.metric("palisade_rbac_denied"), Some(1));
    assert_eq!(h.metric("palisade_rbac_policy_no_writes_matched"), Some(1));
    assert_eq!(
        h.send(&Request {
            path: "/public/y".into(),
            ..Default::default()
        })
        .unwrap()
        .status,
        200
    );
    assert_eq!(h.metric("palisade_rbac_allowed"), Some(1));
    assert_eq!(h.metric("palisade_rbac_policy_public_matched"), Some(1));
}

#[test]
fn refused_configurations_name_the_field_in_the_log() {
    for (config, field) in [
        (
            r#"{"policies":[{"name":"a","action":"ALLOW","rules":[{"bogus":1}]}]}"#,
            "`policies[0].rules[0].bogus`",
        ),
        (
            r#"{"policies":[{"name":"a","action":"ALLOW","rules":[{"source_cidrs":["1.2.3.4/40"]}]}]}"#,
            "`policies[0].rules[0].source_cidrs[0]`",
        ),
        (
            r#"{"policies":[{"name":"a","action":"ALLOW","rules":[{"paths":[{"regex":"("}]}]}]}"#,
            "`policies[0].rules[0].paths[0]`",
        ),
        ("", "the plugin configuration is empty"),
        ("not json", "invalid configuration"),
    ] {
        match host(config) {
            Err(HostError::ConfigureFailed { logs, .. }) => {
                assert!(logs.contains(field), "{config}: {logs}");
                assert!(logs.contains("rbac: invalid configuration"), "{logs}");
            }
            Ok(_) => panic!("{config}: accepted"),
            Err(other) => panic!("{config}: {other}"),
        }
    }
}

#[test]
fn odd_requests_never_trap() {
    let mut h = host(CONFIG).unwrap();
    let long = "a".repeat(60_000);
    for req in [
        Request {
            method: "".into(),
            path: "".into(),
            authority: "".into(),
            ..Default::default()
        },
        Request {
            path: format!("/public/{long}"),
            ..Default::default()
        },
        Request {
            path: "/public/%00%ff?\u{202e}".into(),
            headers: vec![("x".into(), "\u{0}\u{7f}é".into())],
            ..Default::default()
        },
        Request {
            headers: (0..300)
                .map(|i| (format!("x-h{i}"), long[..100].to_string()))
                .collect(),
            ..Default::default()
        },
    ] {
        let out = h.send(&req).expect("no trap");
        assert!(out.status == 200 || out.status == 403, "{}", out.status);
    }
}
