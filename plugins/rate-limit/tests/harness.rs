//! The rate-limit module in the wasmtime harness at a controlled clock:
//! burst, refill, `Retry-After` and header values, and the failure modes of
//! global rules when the service cannot be called.

use host_test_harness::envoy;
use host_test_harness::fixture::{FixtureFile, Outcome, Request};
use host_test_harness::{run_file, Host, Module};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// 2023-11-14T22:13:20Z, on a whole second.
const T0: u64 = 1_700_000_000_000_000_000;

fn root() -> PathBuf {
    envoy::workspace_root().expect("run inside the Palisade workspace")
}

fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| {
        let path = root().join("target/plugins/rate-limit.wasm");
        assert!(
            path.exists(),
            "{} is missing: run scripts/build first",
            path.display()
        );
        Module::from_file(&path).expect("rate-limit.wasm loads")
    })
}

fn host(config: &str) -> Host {
    Host::builder(module())
        .plugin_config(config.as_bytes().to_vec())
        .start_time_nanos(T0)
        .build()
        .expect("configuration accepted")
}

fn get(h: &mut Host, path: &str) -> Outcome {
    h.send(&Request {
        path: path.into(),
        source: Some("10.0.0.1".parse().unwrap()),
        ..Default::default()
    })
    .expect("no trap")
}

#[test]
fn fixtures_pass_in_the_harness() {
    let files = FixtureFile::load_dir(root().join("plugins/rate-limit/fixtures")).unwrap();
    assert!(files.len() >= 3);
    let mut failed = 0;
    for file in &files {
        let report = run_file(module(), file);
        println!("{report}");
        assert!(!report.cases.is_empty());
        failed += report.failed();
    }
    assert_eq!(failed, 0, "fixture cases failed in the harness (see above)");
}

#[test]
fn burst_refill_and_headers_per_second() {
    let mut h = host(
        r#"{"response_headers":"both","rules":[{"name":"fast","key":["client_ip"],"limit":{"requests":2,"per":"second"}}]}"#,
    );
    let a = get(&mut h, "/");
    assert_eq!(a.status, 200);
    assert_eq!(a.header("ratelimit-policy"), Some(r#""fast";q=2;w=1"#));
    assert_eq!(a.header("ratelimit"), Some(r#""fast";r=1;t=1"#));
    assert_eq!(a.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(a.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(a.header("x-ratelimit-reset"), Some("1"));
    let b = get(&mut h, "/");
    assert_eq!(
        (b.status, b.header("x-ratelimit-remaining")),
        (200, Some("0"))
    );
    let c = get(&mut h, "/");
    assert_eq!(c.status, 429);
    assert_eq!(c.header("retry-after"), Some("1"));
    assert_eq!(c.header("ratelimit"), Some(r#""fast";r=0;t=1"#));
    let body: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    // One token comes back every 500 ms.
    h.advance_time(Duration::from_millis(499)).unwrap();
    assert_eq!(get(&mut h, "/").status, 429);
    h.advance_time(Duration::from_millis(1)).unwrap();
    assert_eq!(get(&mut h, "/").status, 200);
    assert_eq!(get(&mut h, "/").status, 429);
    // A long pause refills only up to the burst.
    h.advance_time(Duration::from_secs(60)).unwrap();
    let statuses: Vec<u16> = (0..3).map(|_| get(&mut h, "/").status).collect();
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(h.metric("palisade_ratelimit_rule_fast_allowed"), Some(5));
    assert_eq!(h.metric("palisade_ratelimit_rule_fast_limited"), Some(4));
}

/// One bucket for every request: the decision reads no header, yet the
/// denial and its log line name the request.
#[test]
fn a_keyless_rule_still_names_the_request_it_refuses() {
    let mut h = host(r#"{"rules":[{"name":"all","limit":{"requests":1,"per":"minute"}}]}"#);
    assert_eq!(get(&mut h, "/a").status, 200);
    let refused = h
        .send(&Request {
            method: "PUT".into(),
            path: "/b?x=1".into(),
            headers: vec![("x-request-id".into(), "req-7".into())],
            source: Some("10.0.0.9".parse().unwrap()),
            ..Default::default()
        })
        .expect("no trap");
    assert_eq!(refused.status, 429);
    let body: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(body["request_id"], "req-7");
    let record = h
        .json_log(r#""decision":"deny""#)
        .expect("a denial log line");
    assert_eq!(record["method"], "PUT");
    assert_eq!(record["path"], "/b");
    assert_eq!(record["source"], "10.0.0.9");
    assert_eq!(record["request_id"], "req-7");
}

#[test]
fn retry_after_for_minute_limits_with_burst() {
    let mut h =
        host(r#"{"rules":[{"name":"slow","limit":{"requests":3,"per":"minute","burst":1}}]}"#);
    assert_eq!(get(&mut h, "/").status, 200);
    let refused = get(&mut h, "/");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("20"));
    h.advance_time(Duration::from_secs(19)).unwrap();
    let refused = get(&mut h, "/");
    assert_eq!(refused.header("retry-after"), Some("1"));
    h.advance_time(Duration::from_secs(1)).unwrap();
    assert_eq!(get(&mut h, "/").status, 200);
}

#[test]
fn shadow_rules_count_without_refusing() {
    let mut h =
        host(r#"{"rules":[{"name":"watch","shadow":true,"limit":{"requests":1,"per":"hour"}}]}"#);
    for _ in 0..3 {
        assert_eq!(get(&mut h, "/").status, 200);
    }
    assert_eq!(
        h.metric("palisade_ratelimit_rule_watch_shadow_limited"),
        Some(2)
    );
}

#[test]
fn global_rules_follow_the_failure_mode_when_the_call_fails() {
    // The harness has no cluster "rls", so dispatching the gRPC call fails.
    let deny = r#"{"global":{"cluster":"rls","domain":"d"},"rules":[{"name":"g","global":true}]}"#;
    let mut h = host(deny);
    let out = get(&mut h, "/");
    assert_eq!(out.status, 503);
    let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(body["code"], "rate_limit_unavailable");
    assert_eq!(out.header("retry-after"), Some("1"));
    assert_eq!(
        h.metric("palisade_ratelimit_global_failures_denied"),
        Some(1)
    );
    assert!(h.logged("rate_limit_service_failure"));

    let allow = r#"{"global":{"cluster":"rls","domain":"d","failure_mode":"allow"},"rules":[{"name":"g","global":true}]}"#;
    let mut h = host(allow);
    assert_eq!(get(&mut h, "/").status, 200);
    assert_eq!(
        h.metric("palisade_ratelimit_global_failures_allowed"),
        Some(1)
    );
}

/// jwt-auth (API-key consumers) then rate-limit keyed on the consumer: each
/// consumer has its own bucket whichever of its keys it uses, and requests
/// without a consumer (refused by jwt-auth here) never reach the limiter.
#[test]
fn consumers_authenticated_by_jwt_auth_get_their_own_buckets() {
    let jwt_path = root().join("target/plugins/jwt-auth.wasm");
    assert!(
        jwt_path.exists(),
        "{} is missing: run scripts/build first",
        jwt_path.display()
    );
    let jwt = Module::from_file(&jwt_path).expect("jwt-auth.wasm loads");
    // bob: "bob-key-" + 33 c; carol: two keys (rotation), see
    // plugins/jwt-auth/fixtures/consumers.yaml.
    let auth = r#"{
      "consumers": {
        "bob": {"groups": ["billing"], "api_keys": ["sha256:7049f5c6741adcc88c779881e1fd6b7095b9bf6f49ee3abaae7bd7afe4d26434"]},
        "carol": {"groups": ["ops"], "api_keys": [
          "sha256:d118a5ffeed80f11e0f020443daf085d2f6a1d21ec37ead8a1ce661586defd50",
          "sha256:c9586cba9143250ccaa30915c1314f5b29bb4e8e7c7de80ff2b15ff64eab8762"]}
      },
      "api_key": {"from_headers": [{"name": "x-api-key"}]},
      "rules": [{"match": {"paths": [{"prefix": "/"}]}, "requires": {"api_key": {}}}]
    }"#;
    let limits = r#"{"response_headers": "legacy", "rules": [
      {"name": "per-consumer", "key": ["consumer"], "limit": {"requests": 2, "per": "hour"}}]}"#;
    let mut h = Host::builder(&jwt)
        .plugin_config(auth.as_bytes().to_vec())
        .then(module())
        .plugin_config(limits.as_bytes().to_vec())
        .start_time_nanos(T0)
        .build()
        .expect("both configurations accepted");
    let mut send = |key: &str| {
        h.send(&Request {
            path: "/orders".into(),
            headers: vec![("x-api-key".into(), key.into())],
            source: Some("10.0.0.1".parse().unwrap()),
            ..Default::default()
        })
        .expect("no trap")
    };
    let bob = format!("bob-key-{}", "c".repeat(33));
    let carol_old = format!("old-key-{}", "a".repeat(33));
    let carol_new = format!("new-key-{}", "b".repeat(33));
    assert_eq!(send(&bob).status, 200);
    let second = send(&bob);
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(send(&bob).status, 429, "bob's bucket is empty");
    // carol is a different consumer behind the same client address, and
    // both of her rotation keys draw from one bucket.
    assert_eq!(send(&carol_old).status, 200);
    assert_eq!(send(&carol_new).status, 200);
    assert_eq!(send(&carol_new).status, 429);
    assert_eq!(
        send("no-such-key").status,
        401,
        "jwt-auth refuses unknown keys first"
    );
}
