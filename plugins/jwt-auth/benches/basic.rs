//! Cost per request of an HTTP Basic check at the cost `palisade-consumer`
//! hashes with (Argon2id m=19456 KiB, t=2, p=1), with the cache of recent
//! successful checks off (`cache_size: 0`, every request pays the hash) and
//! on (a hit: one HMAC-SHA-256 and a constant-time compare); plus an API
//! key check for comparison. Natively (the pure policy) and through the
//! module in the wasmtime harness (`target/plugins/jwt-auth.wasm`, built by
//! `scripts/build`).
//!
//! `cargo bench -p jwt-auth --bench basic`

use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use host_test_harness::envoy;
use host_test_harness::fixture::Request;
use host_test_harness::{Host, Module};
use jwt_auth::apikey;
use jwt_auth::password::{PasswordHash, DEFAULT_COST};
use jwt_auth::{Decision, JwtAuth};
use sdk_ext::{Headers, RequestView};
use serde_json::json;
use std::hint::black_box;
use std::time::Duration;

const NOW: u64 = 1_767_225_600;
const PASSWORD: &str = "correct horse battery staple";
const KEY: &str = "bench-key-0123456789abcdefghijklmnopqrstuv";

fn config(hash: &str, cache: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "consumers": {"alice": {
            "groups": ["admin"],
            "basic_auth": {"password_hash": hash},
            "api_keys": [apikey::digest(KEY).to_config_string()]
        }},
        "basic_auth": {"cache_size": cache}
    }))
    .expect("config")
}

fn basic_header() -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    format!("Basic {b64}")
}

fn requests() -> [(&'static str, &'static str, String); 2] {
    [
        ("basic", "authorization", basic_header()),
        ("api_key", "x-api-key", KEY.to_string()),
    ]
}

fn hash() -> String {
    PasswordHash::create(PASSWORD.as_bytes(), b"bench-salt-16byt", DEFAULT_COST)
        .expect("hash")
        .to_phc_string()
}

fn native(c: &mut Criterion) {
    let hash = hash();
    let mut g = c.benchmark_group("consumer_policy");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for cache in [0, 256] {
        let auth = JwtAuth::from_json(&config(&hash, cache)).expect("config");
        let keys = auth.initial_keys();
        let mut caches = auth.new_cache();
        for (method, header, value) in requests() {
            if method == "api_key" && cache == 0 {
                continue; // API keys have no cache
            }
            let req = RequestView {
                method: "GET".into(),
                path: "/orders".into(),
                host: "api.local".into(),
                headers: Headers::from(vec![(header.into(), value)]),
                ..Default::default()
            };
            assert!(matches!(
                auth.decide(&req, &keys, &mut caches, NOW),
                Decision::Allow { .. }
            ));
            let label = if cache == 0 { "no_cache" } else { "cache" };
            g.bench_function(format!("{method}/{label}"), |b| {
                b.iter(|| black_box(auth.decide(black_box(&req), &keys, &mut caches, NOW)))
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
    let hash = hash();
    let mut g = c.benchmark_group("consumer_harness");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for cache in [0, 256] {
        let mut host = Host::builder(&module)
            .plugin_config(config(&hash, cache))
            .start_time_nanos(NOW * 1_000_000_000)
            .build()
            .expect("host");
        for (method, header, value) in requests() {
            if method == "api_key" && cache == 0 {
                continue;
            }
            let req = Request {
                method: "GET".into(),
                path: "/orders".into(),
                authority: "api.local".into(),
                headers: vec![(header.into(), value)],
                body: None,
                source: None,
            };
            assert_eq!(host.send(&req).expect("send").status, 200);
            let label = if cache == 0 { "no_cache" } else { "cache" };
            g.bench_function(format!("{method}/{label}"), |b| {
                b.iter(|| black_box(host.send(black_box(&req)).expect("send")))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, native, harness);
criterion_main!(benches);
