//! Rate-limit decision cost, natively (the pure policy over
//! `MemoryStore`, which keeps shared data the way Envoy does).
//!
//! `cargo bench -p palisade-benches --bench rate_limit`

use criterion::{criterion_group, criterion_main, Criterion};
use palisade_benches::typical_request;
use rate_limit::table::MemoryStore;
use rate_limit::RateLimiter;
use std::hint::black_box;

/// Three rules in the shapes users write: per client, per tenant header on
/// an API prefix, and a route-wide cap.
const CONFIG: &str = r#"{
  "response_headers": "both",
  "rules": [
    {"name": "per-client", "key": ["client_ip"], "limit": {"requests": 1000000000, "per": "second"}},
    {"name": "per-tenant", "match": {"paths": [{"prefix": "/api"}]}, "key": [{"header": "x-tenant"}],
     "limit": {"requests": 1000000000, "per": "second"}},
    {"name": "route", "match": {"paths": [{"prefix": "/api/orders"}]}, "limit": {"requests": 1000000000, "per": "second"}}
  ]
}"#;

fn check(c: &mut Criterion) {
    let limiter = RateLimiter::from_json(CONFIG.as_bytes()).expect("bench config is valid");
    let store = MemoryStore::default();
    limiter.create_slots(&store).expect("slots created");
    let one_rule = typical_request("/static/app.js", &[]);
    let three_rules = typical_request("/api/orders/42", &[("x-tenant", "acme")]);
    let now = 1_700_000_000_000_000_000u64;
    let d = limiter.check(&store, &three_rules, now);
    assert_eq!(
        d.outcomes.len(),
        3,
        "the bench request matches all three rules"
    );
    assert!(limiter.denial(&d).is_none(), "the bench limits never deny");

    let mut g = c.benchmark_group("rate_limit_policy");
    let mut t = now;
    g.bench_function("one_rule", |b| {
        b.iter(|| {
            t += 1_000;
            limiter.check(&store, black_box(&one_rule), t)
        })
    });
    g.bench_function("three_rules_with_headers", |b| {
        b.iter(|| {
            t += 1_000;
            let d = limiter.check(&store, black_box(&three_rules), t);
            limiter.response_headers(&d)
        })
    });
    g.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
