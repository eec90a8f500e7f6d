//! Verification cost per request for RS256, ES256, EdDSA and HS256, with
//! and without the token cache: the pure policy natively, and one request
//! through the wasmtime harness (`target/plugins/jwt-auth.wasm`, built by
//! `scripts/build`).
//!
//! `cargo bench -p jwt-auth --bench verify`

use criterion::{criterion_group, criterion_main, Criterion};
use host_test_harness::envoy;
use host_test_harness::fixture::Request;
use host_test_harness::{Host, Module};
use jwt_auth::{Decision, JwtAuth};
use jwt_simple::prelude::*;
use sdk_ext::{Headers, RequestView};
use serde_json::{json, Value};
use std::hint::black_box;

#[path = "../src/testkeys.rs"]
#[allow(dead_code)]
mod testkeys;

/// The harness clock's start, also "now" for the native policy.
const NOW: u64 = 1_767_225_600;

fn claims() -> JWTClaims<serde_json::Map<String, Value>> {
    serde_json::from_value(
        json!({"iss": "https://issuer.test", "sub": "alice", "aud": "api",
                                  "iat": NOW - 10, "exp": NOW + 3600}),
    )
    .expect("claims")
}

fn tokens() -> Vec<(&'static str, String)> {
    let c = claims;
    vec![
        (
            "RS256",
            RS256KeyPair::from_pem(testkeys::RSA1_PEM)
                .and_then(|k| k.with_key_id("rsa1").sign(c()))
                .expect("RS256"),
        ),
        (
            "ES256",
            ES256KeyPair::from_pem(testkeys::P256_PEM)
                .and_then(|k| k.with_key_id("p256").sign(c()))
                .expect("ES256"),
        ),
        (
            "EdDSA",
            Ed25519KeyPair::from_pem(testkeys::ED25519_PEM)
                .and_then(|k| k.with_key_id("ed").sign(c()))
                .expect("EdDSA"),
        ),
        (
            "HS256",
            HS256Key::from_bytes(testkeys::HS_SECRET)
                .with_key_id("hs")
                .authenticate(c())
                .expect("HS256"),
        ),
    ]
}

fn config(cache: usize) -> String {
    json!({
        "providers": {"corp": {"issuer": "https://issuer.test", "audiences": ["api"],
            "local_jwks": {"inline_string": testkeys::JWKS_ALL},
            "claim_to_headers": [{"header_name": "x-user", "claim_name": "sub"}]}},
        "token_cache_size": cache
    })
    .to_string()
}

fn native(c: &mut Criterion) {
    let mut g = c.benchmark_group("jwt_policy");
    for cache in [0, 256] {
        let auth = JwtAuth::from_json(config(cache).as_bytes()).expect("config");
        let keys = auth.initial_keys();
        let mut tc = auth.new_cache();
        for (alg, token) in tokens() {
            let req = RequestView {
                method: "GET".into(),
                path: "/orders".into(),
                host: "api.local".into(),
                headers: Headers::from(vec![("authorization".into(), format!("Bearer {token}"))]),
                ..Default::default()
            };
            assert!(matches!(
                auth.decide(&req, &keys, &mut tc, NOW),
                Decision::Allow { .. }
            ));
            let label = if cache == 0 { "no_cache" } else { "cache" };
            g.bench_function(format!("{alg}/{label}"), |b| {
                b.iter(|| black_box(auth.decide(black_box(&req), &keys, &mut tc, NOW)))
            });
        }
    }
    g.finish();
}

fn harness(c: &mut Criterion) {
    let Some(path) = envoy::workspace_root().map(|r| r.join("target/plugins/jwt-auth.wasm")) else {
        return;
    };
    let module = Module::from_file(&path).expect("run scripts/build first");
    let mut g = c.benchmark_group("jwt_harness");
    for cache in [0, 256] {
        let mut host = Host::builder(&module)
            .plugin_config(config(cache).into_bytes())
            .start_time_nanos(NOW * 1_000_000_000)
            .build()
            .expect("host");
        for (alg, token) in tokens() {
            let req = Request {
                method: "GET".into(),
                path: "/orders".into(),
                authority: "api.local".into(),
                headers: vec![("authorization".into(), format!("Bearer {token}"))],
                body: None,
                source: None,
            };
            assert_eq!(host.send(&req).expect("send").status, 200);
            let label = if cache == 0 { "no_cache" } else { "cache" };
            g.bench_function(format!("{alg}/{label}"), |b| {
                b.iter(|| black_box(host.send(black_box(&req)).expect("send")))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, native, harness);
criterion_main!(benches);
