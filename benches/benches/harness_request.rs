//! One request through each plugin module in the wasmtime harness: the
//! whole Proxy-Wasm path (context creation, header reads, the decision,
//! header writes, `on_log`) as a plugin author's tests pay for it.
//!
//! Needs the release modules: `scripts/build`, then
//! `cargo bench -p palisade-benches --bench harness_request`. The waf case
//! loads OWASP CRS 4.25 at paranoia level 1 from `../shared/crs-4.25.0`
//! (or `$PALISADE_CRS_DIR`).

use criterion::{criterion_group, criterion_main, Criterion};
use host_test_harness::clock::DEFAULT_START_NANOS;
use host_test_harness::fixture::Request;
use host_test_harness::{Host, Module};
use palisade_benches::crs::crs_config;
use palisade_benches::oidc_session;
use palisade_benches::tokens::{HS256_JWKS, HS256_TOKEN};
use std::path::PathBuf;

fn module(name: &str) -> Module {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(format!("{name}.wasm"));
    Module::from_file(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build first", path.display()))
}

struct Case {
    plugin: &'static str,
    config: String,
    request: Request,
    /// A header the upstream must see (proof the plugin did its work).
    upstream_sees: Option<(&'static str, String)>,
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
            upstream_sees: None,
        },
        Case {
            plugin: "rate-limit",
            config: r#"{"response_headers":"both","rules":[{"name":"bench","key":["client_ip"],"limit":{"requests":1000000000,"per":"second"}}]}"#.into(),
            request: get("/bench/item", &[]),
            upstream_sees: None,
        },
        Case {
            plugin: "jwt-auth",
            config: format!(
                r#"{{"providers":{{"corp":{{"issuer":"https://issuer.test","audiences":["api"],"local_jwks":{{"inline_string":{}}}}}}},"rules":[{{"match":{{"paths":[{{"prefix":"/"}}]}},"requires":{{"provider_name":"corp"}}}}]}}"#,
                serde_json::to_string(HS256_JWKS).expect("string")
            ),
            request: get("/bench/item", &[("authorization", &format!("Bearer {HS256_TOKEN}"))]),
            upstream_sees: None,
        },
        Case {
            plugin: "waf",
            config: serde_json::to_string(&crs_config(1).unwrap_or_else(|e| panic!("{e}")))
                .expect("the CRS configuration serializes"),
            request: get(
                "/shop/search?q=running+shoes+size+42&page=2&sort=price_asc",
                &[("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"), ("accept", "text/html")],
            ),
            upstream_sees: None,
        },
        Case {
            plugin: "oidc",
            config: oidc_session::config_json(),
            // The session started when the host's virtual clock starts (it
            // does not move while benching), so it stays valid.
            request: get(
                "/bench/item",
                &[("cookie", &oidc_session::session_cookie(DEFAULT_START_NANOS / 1_000_000_000))],
            ),
            upstream_sees: Some((
                "authorization",
                format!("Bearer {}", oidc_session::ACCESS_TOKEN),
            )),
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
        if let Some((name, value)) = &case.upstream_sees {
            let seen = out
                .upstream
                .as_ref()
                .and_then(|u| u.headers.iter().find(|(n, _)| n == name))
                .map(|(_, v)| v.as_str());
            assert_eq!(
                seen,
                Some(value.as_str()),
                "{}: upstream {name}",
                case.plugin
            );
        }
        g.bench_function(case.plugin, |b| {
            b.iter(|| host.send(&case.request).expect("request runs"))
        });
    }
    g.finish();
}

criterion_group!(benches, one_request);
criterion_main!(benches);
