//! Consumers in the wasmtime harness (`target/plugins/jwt-auth.wasm`):
//! the identity of a Basic or API-key consumer reaches the next filter in
//! the same shape as a JWT's; rbac (`target/plugins/rbac.wasm`) admits or
//! refuses on the consumer's group whichever method authenticated it;
//! metrics per method and consumer; one log line per denial without the
//! secret; the cache still needs the password; hostile headers never trap.

mod common;

use common::*;
use host_test_harness::envoy;
use host_test_harness::{Host, Module};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// The harness clock starts here (2026-01-01T00:00:00Z).
const NOW: u64 = 1_767_225_600;

/// Loads (compiles) a module once per test binary.
fn module(rel: &'static str) -> &'static Module {
    static MODULES: OnceLock<Mutex<Vec<(&'static str, &'static Module)>>> = OnceLock::new();
    let mut loaded = MODULES
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap();
    if let Some((_, m)) = loaded.iter().find(|(r, _)| *r == rel) {
        return m;
    }
    let path: PathBuf = envoy::workspace_root()
        .expect("run inside the Palisade workspace")
        .join(rel);
    assert!(
        path.exists(),
        "{} is missing: run scripts/build first",
        path.display()
    );
    let m: &'static Module = Box::leak(Box::new(Module::from_file(&path).expect("module loads")));
    loaded.push((rel, m));
    m
}

fn jwt_auth() -> &'static Module {
    module("target/plugins/jwt-auth.wasm")
}

fn host() -> Host {
    Host::builder(jwt_auth())
        .plugin_config(serde_json::to_vec(&jwt_auth_config()).unwrap())
        .start_time_nanos(NOW * 1_000_000_000)
        .build()
        .unwrap()
}

#[test]
fn consumer_identities_reach_the_next_filter() {
    let reader = module("target/wasm32-wasip1/release/harness_test_modules.wasm");
    let mut h = Host::builder(jwt_auth())
        .plugin_config(serde_json::to_vec(&jwt_auth_config()).unwrap())
        .then(reader)
        .plugin_config(serde_json::to_vec(&json!({"mode": "state", "read": true})).unwrap())
        .start_time_nanos(NOW * 1_000_000_000)
        .build()
        .unwrap();
    let o = h
        .send(&request(
            "/orders",
            &[("authorization", &basic("alice", ALICE_PW))],
        ))
        .unwrap();
    assert_eq!(o.status, 200, "{o:?}");
    assert_eq!(
        upstream_header(&o, "authorization"),
        None,
        "Basic is stripped"
    );
    let id: Value = serde_json::from_str(&upstream_header(&o, "x-single").unwrap()).unwrap();
    assert_eq!(
        id,
        json!({"provider": "basic_auth", "issuer": "palisade:consumers", "subject": "alice",
               "audiences": [], "claims": {"sub": "alice", "groups": ["admin"], "tenant": "acme"},
               "method": "basic_auth", "consumer": "alice"})
    );
    let o = h
        .send(&request("/orders", &[("x-api-key", DAVE_KEY)]))
        .unwrap();
    assert_eq!(
        upstream_header(&o, "x-api-key"),
        None,
        "the key is stripped"
    );
    let id: Value = serde_json::from_str(&upstream_header(&o, "x-single").unwrap()).unwrap();
    assert_eq!(id["method"], "api_key");
    assert_eq!(id["subject"], "dave");
    assert_eq!(id["claims"]["groups"], json!(["admin"]));
    assert_eq!(id["claims"]["tenant"], "globex");
    let o = h
        .send(&request(
            "/orders",
            &[("authorization", &jwt(&["admin"], NOW))],
        ))
        .unwrap();
    let id: Value = serde_json::from_str(&upstream_header(&o, "x-single").unwrap()).unwrap();
    assert_eq!(id["method"], "jwt");
    assert_eq!(id["claims"]["groups"], json!(["admin"]));
}

#[test]
fn rbac_decides_on_the_consumer_group_whichever_method() {
    let rbac = module("target/plugins/rbac.wasm");
    let mut h = Host::builder(jwt_auth())
        .plugin_config(serde_json::to_vec(&jwt_auth_config()).unwrap())
        .then(rbac)
        .plugin_config(serde_json::to_vec(&rbac_admins_only()).unwrap())
        .start_time_nanos(NOW * 1_000_000_000)
        .build()
        .unwrap();
    for (what, req, status) in group_cases(NOW) {
        let o = h.send(&req).unwrap();
        assert_eq!(
            o.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&o.body)
        );
    }
}

#[test]
fn metrics_and_log_lines_per_method_and_consumer() {
    let mut h = host();
    let sends = [
        request("/orders", &[("authorization", &basic("alice", ALICE_PW))]),
        request(
            "/orders",
            &[("authorization", &basic("alice", "hunter2-wrong"))],
        ),
        request(
            "/orders",
            &[("authorization", &basic("alice", "hunter2-wrong"))],
        ),
        request(
            "/orders",
            &[("authorization", &basic("nobody", "hunter2-wrong"))],
        ),
        request("/orders", &[("x-api-key", BOB_KEY)]),
        request("/orders", &[("x-api-key", "leaked-looking-key-123")]),
    ];
    let statuses: Vec<u16> = sends.iter().map(|r| h.send(r).unwrap().status).collect();
    assert_eq!(statuses, vec![200, 401, 401, 401, 200, 401]);
    let m = |name: &str| h.metric(&format!("palisade_jwt_auth_{name}"));
    assert_eq!(m("method_basic_auth_allowed"), Some(1));
    assert_eq!(m("method_basic_auth_denied"), Some(3));
    assert_eq!(m("consumer_alice_allowed"), Some(1));
    assert_eq!(m("consumer_alice_denied"), Some(2));
    assert_eq!(m("method_api_key_allowed"), Some(1));
    assert_eq!(m("method_api_key_denied"), Some(1));
    assert_eq!(m("consumer_bob_allowed"), Some(1));
    assert_eq!(m("denied_basic_invalid_credentials"), Some(3));
    assert_eq!(m("denied_api_key_invalid"), Some(1));
    let denials: Vec<Value> = h
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(&l.message).ok())
        .filter(|v| v["decision"] == "deny")
        .collect();
    assert_eq!(denials.len(), 4);
    assert_eq!(denials[0]["auth_method"], "basic_auth");
    assert_eq!(denials[0]["consumer"], "alice");
    assert_eq!(denials[3]["auth_method"], "api_key");
    for l in h.logs() {
        for secret in [
            "hunter2",
            ALICE_PW,
            BOB_KEY,
            "leaked-looking-key",
            "YWxpY2U6",
        ] {
            assert!(
                !l.message.contains(secret),
                "{secret} logged: {}",
                l.message
            );
        }
    }
}

#[test]
fn a_cache_hit_still_needs_the_password() {
    let mut h = host();
    let right = request("/orders", &[("authorization", &basic("alice", ALICE_PW))]);
    let wrong = request("/orders", &[("authorization", &basic("alice", "guess"))]);
    let statuses: Vec<u16> = [&right, &wrong, &right, &wrong, &right]
        .iter()
        .map(|r| h.send(r).unwrap().status)
        .collect();
    assert_eq!(statuses, vec![200, 401, 200, 401, 200]);
}

#[test]
fn hostile_credentials_never_trap_the_module() {
    let mut h = host();
    let huge = format!("Basic {}", "QUFB".repeat(15_000));
    let long_key = "k".repeat(60_000);
    let many: Vec<(&str, &str)> = vec![("authorization", "Basic Og=="); 50];
    let binary = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            [0xff, 0, b':', 0xfe]
        )
    );
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("authorization", huge.as_str())], "basic_too_large"),
        (many, "basic_malformed"),
        (vec![("authorization", binary.as_str())], "basic_malformed"),
        (vec![("authorization", "Basic ====")], "basic_malformed"),
        (vec![("authorization", "Basic Og==")], "basic_malformed"),
        (vec![("x-api-key", "")], "credentials_missing"),
        (vec![("x-api-key", long_key.as_str())], "api_key_too_large"),
    ];
    for (headers, want) in cases {
        let o = h.send(&request("/orders", &headers)).expect("no trap");
        assert_eq!((o.status, code(&o).as_str()), (401, want));
        if want.starts_with("basic") {
            assert_eq!(
                o.header("www-authenticate"),
                Some("Basic realm=\"orders\", charset=\"UTF-8\"")
            );
        }
    }
    assert_eq!(
        h.send(&request("/public", &[("authorization", "Basic %%")]))
            .unwrap()
            .status,
        200
    );
}
