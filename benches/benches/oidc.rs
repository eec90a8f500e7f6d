//! oidc decision cost on the hot path, natively (the pure policy): a
//! request with a valid sealed session cookie (reassemble the chunks, open
//! the AES-256-GCM seal, parse the session, check its age and expiry,
//! forward the tokens and hand off the ID token's identity), and a request
//! on a pass-through path (identity headers stripped, no session).
//!
//! `cargo bench -p palisade-benches --bench oidc`

use criterion::{criterion_group, criterion_main, Criterion};
use oidc::login::{Entropy, ENTROPY_BYTES};
use oidc::policy::{Incoming, ProviderState};
use oidc::replay::ReplayGuard;
use oidc::{Decision, Oidc};
use palisade_benches::oidc_session::{config_json, session_cookie, PASS_THROUGH_PATH};
use palisade_benches::typical_request;
use sdk_ext::RequestView;
use std::hint::black_box;

/// Unix seconds the bench session started at; requests come a minute later.
const STARTED_AT: u64 = 1_767_225_600;
const NOW: u64 = STARTED_AT + 60;

fn decide(
    oidc: &Oidc,
    replay: &mut ReplayGuard,
    entropy: &Entropy,
    view: &RequestView,
) -> Decision {
    // What the filter does per request: read the cookies, then decide.
    oidc.decide(
        &Incoming::new(view),
        ProviderState::default(),
        replay,
        entropy,
        NOW,
    )
}

fn check(c: &mut Criterion) {
    let oidc = Oidc::from_json(config_json().as_bytes())
        .unwrap_or_else(|e| panic!("the bench oidc configuration is invalid: {e}"));
    let mut replay = ReplayGuard::default();
    let entropy = Entropy([9; ENTROPY_BYTES]);
    let cookie = session_cookie(STARTED_AT);
    let with_session = typical_request("/orders/42?view=full", &[("cookie", &cookie)]);
    let pass_through = typical_request(PASS_THROUGH_PATH, &[("authorization", "Bearer forged")]);

    match decide(&oidc, &mut replay, &entropy, &with_session) {
        Decision::Continue(f) => assert_eq!(
            f.identity.and_then(|i| i.subject).as_deref(),
            Some("alice"),
            "the session's identity is handed off"
        ),
        other => panic!("a valid session must continue: {other:?}"),
    }
    match decide(&oidc, &mut replay, &entropy, &pass_through) {
        Decision::Continue(f) => assert!(
            f.identity.is_none() && f.remove.iter().any(|h| h == "authorization"),
            "pass-through strips identity headers: {f:?}"
        ),
        other => panic!("the pass-through path must continue: {other:?}"),
    }

    let mut g = c.benchmark_group("oidc_policy");
    g.bench_function("valid_session_cookie", |b| {
        b.iter(|| decide(&oidc, &mut replay, &entropy, black_box(&with_session)))
    });
    g.bench_function("pass_through", |b| {
        b.iter(|| decide(&oidc, &mut replay, &entropy, black_box(&pass_through)))
    });
    g.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
