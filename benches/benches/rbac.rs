//! RBAC decision cost, natively (the pure policy).
//!
//! `cargo bench -p palisade-benches --bench rbac`

use criterion::{criterion_group, criterion_main, Criterion};
use palisade_benches::typical_request;
use rbac::Rbac;
use std::hint::black_box;

/// Ten policies in the shapes users write: DENY guards, team ALLOWs, a
/// public template, CIDR rules.
fn policy_set() -> Rbac {
    let mut policies = vec![
        r#"{"name":"no-admin-writes","action":"DENY","rules":[{"methods":["POST","PUT","DELETE"],"paths":[{"prefix":"/admin"}]}]}"#.to_string(),
        r#"{"name":"blocked","action":"DENY","rules":[{"source_cidrs":["192.0.2.0/24","198.51.100.0/24"]}]}"#.to_string(),
    ];
    for team in ["billing", "search", "orders", "users", "catalog", "ledger"] {
        policies.push(format!(
            r#"{{"name":"team-{team}","action":"ALLOW","rules":[{{"paths":[{{"template":"/api/{team}/{{**}}"}}],"headers":[{{"name":"x-team","string_match":{{"exact":"{team}"}}}}]}}]}}"#
        ));
    }
    policies.push(
        r#"{"name":"public","action":"ALLOW","rules":[{"paths":[{"template":"/public/{**}"}]}]}"#
            .into(),
    );
    policies.push(r#"{"name":"internal","action":"ALLOW","rules":[{"source_cidrs":["10.0.0.0/8"],"paths":[{"regex":"/internal/[a-z]+/v[0-9]+"}]}]}"#.into());
    let json = format!(r#"{{"policies":[{}]}}"#, policies.join(","));
    Rbac::from_json(json.as_bytes()).expect("bench policy set is valid")
}

fn decide(c: &mut Criterion) {
    let rbac = policy_set();
    let allowed_late = typical_request("/internal/metrics/v2", &[]);
    let allowed_team = typical_request("/api/ledger/entries/42", &[("x-team", "ledger")]);
    let denied = typical_request("/secret", &[]);
    assert!(rbac.decide(&allowed_late).is_allow());
    assert!(rbac.decide(&allowed_team).is_allow());
    assert!(!rbac.decide(&denied).is_allow());

    let mut g = c.benchmark_group("rbac_policy");
    g.bench_function("allow_team_rule", |b| {
        b.iter(|| rbac.decide(black_box(&allowed_team)))
    });
    g.bench_function("allow_last_rule", |b| {
        b.iter(|| rbac.decide(black_box(&allowed_late)))
    });
    g.bench_function("deny_no_match", |b| {
        b.iter(|| rbac.decide(black_box(&denied)))
    });
    g.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
