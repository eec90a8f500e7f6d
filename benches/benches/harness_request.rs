//! One request through each plugin module in the wasmtime harness: the
//! whole Proxy-Wasm path (context creation, header reads, the decision,
//! header writes, `on_log`) as a plugin author's tests pay for it.
//!
//! Needs the release modules: `scripts/build`, then
//! `cargo bench -p palisade-benches --bench harness_request`.

use criterion::{criterion_group, criterion_main, Criterion};
use host_test_harness::fixture::Request;
use host_test_harness::{Host, Module};
use std::path::PathBuf;

fn module(name: &str) -> Module {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(format!("{name}.wasm"));
    Module::from_file(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build first", path.display()))
}

/// HS256 key `hs` of the jwt-auth fixtures and a token for it that expires
/// in 2100 (`plugins/jwt-auth/fixtures/basic.yaml`).
const HS_JWKS: &str = r#"{"keys": [{"kty": "oct", "kid": "hs", "alg": "HS256", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg"}]}"#;
const HS_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImhzIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0Iiwic3ViIjoiYWxpY2UiLCJhdWQiOiJhcGkiLCJpYXQiOjE3NjcyMjUwMDAsImV4cCI6NDEwMjQ0NDgwMCwicm9sZXMiOlsicmVhZGVyIiwid3JpdGVyIl0sImh0dHBzOi8vZXhhbXBsZS5jb20vdGVuYW50IjoidDEifQ.389xOdWzAFs4nxirE5b6JHEsIba0q2orKdzErBW_yXc";

struct Case {
    plugin: &'static str,
    config: String,
    request: Request,
}

fn cases() -> Vec<Case> {
    let get = |path: &str, headers: &[(&str, &str)]| Request {
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        source: Some("127.0.0.1".parse().expect("literal")),
        ..Request::default()
    };
    vec![
        Case {
            plugin: "rbac",
            config: r#"{"policies":[{"name":"bench","action":"ALLOW","rules":[{"paths":[{"prefix":"/bench"}],"headers":[{"name":"x-team","string_match":{"exact":"ops"}}]}]}]}"#.into(),
            request: get("/bench/item", &[("x-team", "ops")]),
        },
        Case {
            plugin: "rate-limit",
            config: r#"{"response_headers":"both","rules":[{"name":"bench","key":["client_ip"],"limit":{"requests":1000000000,"per":"second"}}]}"#.into(),
            request: get("/bench/item", &[]),
        },
        Case {
            plugin: "jwt-auth",
            config: format!(
                r#"{{"providers":{{"corp":{{"issuer":"https://issuer.test","audiences":["api"],"local_jwks":{{"inline_string":{}}}}}}},"rules":[{{"match":{{"paths":[{{"prefix":"/"}}]}},"requires":{{"provider_name":"corp"}}}}]}}"#,
                serde_json::to_string(HS_JWKS).expect("string")
            ),
            request: get("/bench/item", &[("authorization", &format!("Bearer {HS_TOKEN}"))]),
        },
    ]
}

fn one_request(c: &mut Criterion) {
    let mut g = c.benchmark_group("harness_request");
    for case in cases() {
        let m = module(case.plugin);
        let mut host = Host::builder(&m)
            .plugin_config(case.config.clone())
            .build()
            .unwrap_or_else(|e| panic!("{}: {e}", case.plugin));
        let out = host.send(&case.request).expect("request runs");
        assert_eq!(
            out.status, 200,
            "{}: the bench request must be allowed: {:?}",
            case.plugin, out
        );
        g.bench_function(case.plugin, |b| {
            b.iter(|| host.send(&case.request).expect("request runs"))
        });
    }
    g.finish();
}

criterion_group!(benches, one_request);
criterion_main!(benches);
