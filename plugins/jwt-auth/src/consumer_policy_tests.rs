//! The whole policy with consumers: Basic and API keys alone and combined
//! with JWT, rotation, the negative cases, identities, stripping, metrics
//! fields and log records.

use crate::password::tests::TEST_COST;
use crate::password::PasswordHash;
use crate::policy::{Decision, JwtAuth, Method};
use crate::testkeys::JWKS_ALL;
use crate::testutil::{claims, sign, NOW};
use base64::Engine;
use sdk_ext::{Denial, RequestView};
use serde_json::{json, Value};
use std::sync::OnceLock;

const KEY_OLD: &str = "old-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_NEW: &str = "new-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const KEY_BOB: &str = "bob-key-ccccccccccccccccccccccccccccccccc";

fn alice_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| {
        PasswordHash::create(b"alice-pw", b"fixed-test-salt!", TEST_COST)
            .unwrap()
            .to_phc_string()
    })
}

fn digest(k: &str) -> String {
    crate::apikey::digest(k).to_config_string()
}

fn auth(extra: Value) -> JwtAuth {
    let mut c = json!({
        "providers": {"corp": {"issuer": "https://issuer.test", "audiences": ["api"],
                                "local_jwks": {"inline_string": JWKS_ALL}}},
        "consumers": {
            "alice": {"groups": ["admin"], "attributes": {"tenant": "acme"},
                      "basic_auth": {"password_hash": alice_hash()}},
            "bob": {"groups": ["billing"], "api_keys": [digest(KEY_BOB)]},
            "carol": {"groups": ["ops"], "api_keys": [digest(KEY_OLD), digest(KEY_NEW)]}
        },
        "api_key": {"from_headers": [{"name": "x-api-key"}], "from_params": ["api_key"],
                    "from_cookies": ["apikey"]},
        "rules": [
            {"match": {"paths": [{"prefix": "/basic"}]}, "requires": {"basic_auth": {}}},
            {"match": {"paths": [{"prefix": "/key"}]}, "requires": {"api_key": {}}},
            {"match": {"paths": [{"prefix": "/jwt-or-key"}]},
             "requires": {"requires_any": [{"provider_name": "corp"}, {"api_key": {}}]}},
            {"match": {"paths": [{"prefix": "/jwt-and-key"}]},
             "requires": {"requires_all": [{"provider_name": "corp"}, {"api_key": {}}]}},
            {"match": {"paths": [{"prefix": "/optional"}]}, "requires": {"allow_missing": {}}}
        ]
    });
    if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
        o.extend(e);
    }
    JwtAuth::from_json(&serde_json::to_vec(&c).unwrap()).unwrap()
}

fn req(path: &str, headers: &[(&str, &str)]) -> RequestView {
    RequestView {
        method: "GET".into(),
        path: path.into(),
        host: "api.local".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        request_id: "rid".into(),
        ..Default::default()
    }
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

fn decide(a: &JwtAuth, r: &RequestView) -> Decision {
    a.decide(r, &a.initial_keys(), &mut a.new_cache(), NOW)
}

fn denial(d: Decision) -> (Denial, Option<Method>, Option<usize>, String) {
    match d {
        Decision::Deny {
            denial,
            method,
            consumer,
            reason,
            ..
        } => (denial, method, consumer, reason),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn www(d: &Denial) -> Vec<&str> {
    d.headers
        .iter()
        .filter(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn basic_yields_the_consumer_identity_and_strips_the_header() {
    let a = auth(json!({}));
    match decide(
        &a,
        &req("/basic", &[("authorization", &basic("alice", "alice-pw"))]),
    ) {
        Decision::Allow {
            identity,
            headers,
            consumer,
            ..
        } => {
            let id = identity.unwrap();
            assert_eq!(id.provider, "basic_auth");
            assert_eq!(id.issuer, "palisade:consumers");
            assert_eq!(id.subject.as_deref(), Some("alice"));
            assert_eq!(id.consumer.as_deref(), Some("alice"));
            assert_eq!(id.method.as_deref(), Some("basic_auth"));
            assert_eq!(id.claim("groups"), Some(&json!(["admin"])));
            assert_eq!(id.claim("tenant"), Some(&json!("acme")));
            assert!(headers.remove.contains(&"authorization".to_string()));
            assert_eq!(consumer, Some((Method::Basic, 0)));
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn basic_negative_cases_are_401_with_a_basic_challenge() {
    let a = auth(json!({"realm": "orders"}));
    let oversized = format!("Basic {}", "QUFB".repeat(400));
    for (header, code) in [
        (None, "basic_missing"),
        (Some(basic("alice", "wrong")), "basic_invalid_credentials"),
        (
            Some(basic("mallory", "alice-pw")),
            "basic_invalid_credentials",
        ),
        (Some("Basic".to_string()), "basic_malformed"),
        (Some("Basic bm9jb2xvbg==".to_string()), "basic_malformed"),
        (Some("Basic %%%".to_string()), "basic_malformed"),
        (Some(basic("alice", "")), "basic_malformed"),
        (Some(oversized), "basic_too_large"),
    ] {
        let headers: Vec<(&str, &str)> = header
            .as_deref()
            .map(|h| vec![("authorization", h)])
            .unwrap_or_default();
        let (d, method, consumer, reason) = denial(decide(&a, &req("/basic", &headers)));
        assert_eq!((d.status, d.code), (401, code), "{header:?}");
        assert_eq!(
            www(&d),
            vec!["Basic realm=\"orders\", charset=\"UTF-8\""],
            "{header:?}"
        );
        assert!(!reason.contains("alice-pw") && !d.message.contains("alice-pw"));
        if code == "basic_missing" {
            assert_eq!(method, None);
        } else {
            assert_eq!(method, Some(Method::Basic));
        }
        let expected_consumer = header
            .as_deref()
            .is_some_and(|h| h == basic("alice", "wrong"))
            .then_some(0);
        assert_eq!(consumer, expected_consumer, "{header:?}");
    }
    // Unknown user and wrong password look the same to the client.
    let (u, ..) = denial(decide(
        &a,
        &req("/basic", &[("authorization", &basic("mallory", "x"))]),
    ));
    let (w, ..) = denial(decide(
        &a,
        &req("/basic", &[("authorization", &basic("alice", "x"))]),
    ));
    assert_eq!(u.message, w.message);
}

#[test]
fn the_cache_serves_the_right_password_only() {
    let a = auth(json!({}));
    let keys = a.initial_keys();
    let mut caches = a.new_cache();
    let good = req("/basic", &[("authorization", &basic("alice", "alice-pw"))]);
    let bad = req("/basic", &[("authorization", &basic("alice", "alice-pX"))]);
    assert!(matches!(
        a.decide(&good, &keys, &mut caches, NOW),
        Decision::Allow { .. }
    ));
    assert_eq!(caches.credentials.len(), 1);
    assert!(matches!(
        a.decide(&bad, &keys, &mut caches, NOW),
        Decision::Deny { .. }
    ));
    assert!(matches!(
        a.decide(&good, &keys, &mut caches, NOW + 1),
        Decision::Allow { .. }
    ));
    let off = auth(json!({"basic_auth": {"cache_size": 0}}));
    let mut caches = off.new_cache();
    assert!(matches!(
        off.decide(&good, &keys, &mut caches, NOW),
        Decision::Allow { .. }
    ));
    assert!(caches.credentials.is_empty());
}

#[test]
fn api_keys_from_header_query_and_cookie_are_removed() {
    let a = auth(json!({}));
    let cases = [
        (req("/key", &[("x-api-key", KEY_BOB)]), "bob"),
        (req(&format!("/key?x=1&api_key={KEY_BOB}"), &[]), "bob"),
        (
            req("/key", &[("cookie", &format!("a=b; apikey={KEY_OLD}"))]),
            "carol",
        ),
    ];
    for (i, (r, who)) in cases.iter().enumerate() {
        match decide(&a, r) {
            Decision::Allow {
                identity, headers, ..
            } => {
                let id = identity.unwrap();
                assert_eq!(id.subject.as_deref(), Some(*who));
                assert_eq!(id.method.as_deref(), Some("api_key"));
                match i {
                    0 => assert!(headers.remove.contains(&"x-api-key".to_string())),
                    1 => assert_eq!(headers.path.as_deref(), Some("/key?x=1")),
                    _ => assert!(headers.set.contains(&("cookie".into(), "a=b".into()))),
                }
            }
            d => panic!("{d:?}"),
        }
    }
    let fwd = auth(json!({"api_key": {"forward": true}}));
    match decide(&fwd, &req("/key", &[("x-api-key", KEY_BOB)])) {
        Decision::Allow { headers, .. } => {
            assert!(!headers.remove.contains(&"x-api-key".to_string()))
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn rotation_accepts_both_keys_of_a_consumer() {
    let a = auth(json!({}));
    for k in [KEY_OLD, KEY_NEW] {
        match decide(&a, &req("/key", &[("x-api-key", k)])) {
            Decision::Allow { consumer, .. } => assert_eq!(consumer, Some((Method::ApiKey, 2))),
            d => panic!("{d:?}"),
        }
    }
}

#[test]
fn api_key_negative_cases() {
    let a = auth(json!({"api_key": {"max_key_bytes": 64}}));
    let long = "k".repeat(65);
    for (headers, code) in [
        (vec![], "api_key_missing"),
        (vec![("x-api-key", "")], "api_key_missing"),
        (vec![("x-api-key", "nobody's key")], "api_key_invalid"),
        (vec![("x-api-key", long.as_str())], "api_key_too_large"),
    ] {
        let (d, ..) = denial(decide(&a, &req("/key", &headers)));
        assert_eq!((d.status, d.code), (401, code), "{headers:?}");
        assert_eq!(www(&d), vec!["ApiKey realm=\"palisade\""]);
        assert!(!d.message.contains("nobody"));
    }
}

#[test]
fn combinations() {
    let a = auth(json!({}));
    let jwt = format!("Bearer {}", sign("rsa1", "RS256", &claims(json!({}))));
    // JWT or key: either works; nothing is one 401 with both challenges.
    for h in [("authorization", jwt.as_str()), ("x-api-key", KEY_BOB)] {
        assert!(matches!(
            decide(&a, &req("/jwt-or-key", &[h])),
            Decision::Allow { .. }
        ));
    }
    let (d, ..) = denial(decide(&a, &req("/jwt-or-key", &[])));
    assert_eq!((d.status, d.code), (401, "credentials_missing"));
    assert_eq!(
        www(&d),
        vec!["Bearer realm=\"palisade\"", "ApiKey realm=\"palisade\""]
    );
    // A bad key says more than a missing token.
    let (d, ..) = denial(decide(&a, &req("/jwt-or-key", &[("x-api-key", "bad")])));
    assert_eq!(d.code, "api_key_invalid");
    // JWT and key: both needed; the identity is the token's.
    let (d, ..) = denial(decide(&a, &req("/jwt-and-key", &[("authorization", &jwt)])));
    assert_eq!(d.code, "api_key_missing");
    match decide(
        &a,
        &req(
            "/jwt-and-key",
            &[("authorization", &jwt), ("x-api-key", KEY_BOB)],
        ),
    ) {
        Decision::Allow {
            identity,
            verified,
            consumer,
            headers,
        } => {
            assert_eq!(identity.unwrap().method.as_deref(), Some("jwt"));
            assert_eq!(verified, vec![0]);
            assert_eq!(consumer, Some((Method::ApiKey, 1)));
            assert!(headers.remove.contains(&"authorization".to_string()));
            assert!(headers.remove.contains(&"x-api-key".to_string()));
        }
        d => panic!("{d:?}"),
    }
    // allow_missing: nothing passes, a valid key yields an identity, a bad
    // one is refused.
    assert!(matches!(
        decide(&a, &req("/optional", &[])),
        Decision::Allow { identity: None, .. }
    ));
    match decide(&a, &req("/optional", &[("x-api-key", KEY_BOB)])) {
        Decision::Allow { identity, .. } => {
            assert_eq!(identity.unwrap().subject.as_deref(), Some("bob"))
        }
        d => panic!("{d:?}"),
    }
    let (d, ..) = denial(decide(&a, &req("/optional", &[("x-api-key", "bad")])));
    assert_eq!(d.code, "api_key_invalid");
}

#[test]
fn without_rules_any_method_is_accepted() {
    let a = JwtAuth::from_json(
        &serde_json::to_vec(&json!({"consumers": {
            "bob": {"api_keys": [digest(KEY_BOB)]},
            "alice": {"basic_auth": {"password_hash": alice_hash()}}
        }}))
        .unwrap(),
    )
    .unwrap();
    assert!(matches!(
        decide(&a, &req("/", &[("x-api-key", KEY_BOB)])),
        Decision::Allow { .. }
    ));
    assert!(matches!(
        decide(
            &a,
            &req("/", &[("authorization", &basic("alice", "alice-pw"))])
        ),
        Decision::Allow { .. }
    ));
    let (d, ..) = denial(decide(&a, &req("/", &[])));
    assert_eq!(d.code, "credentials_missing");
    assert_eq!(
        www(&d),
        vec![
            "Basic realm=\"palisade\", charset=\"UTF-8\"",
            "ApiKey realm=\"palisade\""
        ]
    );
}

#[test]
fn log_records_name_method_and_consumer_never_the_secret() {
    let a = auth(json!({}));
    let r = req("/basic", &[("authorization", &basic("alice", "hunter2"))]);
    let Decision::Deny {
        denial,
        provider,
        reason,
        method,
        consumer,
        ..
    } = decide(&a, &r)
    else {
        panic!()
    };
    let rec =
        serde_json::to_string(&a.denial_record(&denial, provider, method, consumer, &reason, &r))
            .unwrap();
    let v: Value = serde_json::from_str(&rec).unwrap();
    assert_eq!(v["auth_method"], "basic_auth");
    assert_eq!(v["consumer"], "alice");
    assert_eq!(v["code"], "basic_invalid_credentials");
    assert!(!rec.contains("hunter2") && !rec.contains(&basic("alice", "hunter2")[6..]));
}

#[test]
fn configuration_errors_name_the_field() {
    let parse = |v: Value| JwtAuth::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    let e = parse(json!({"consumers": {"a": {"api_keys": ["plain-key"]}}}));
    assert_eq!(e.path, "consumers.a.api_keys[0]");
    let e = parse(json!({"consumers": {"a": {"basic_auth": {"password_hash": "x"}}}}));
    assert_eq!(e.path, "consumers.a.basic_auth.password_hash");
    let e = parse(json!({"consumers": {
        "a": {"api_keys": [digest("k")]}, "b": {"api_keys": [digest("k")]}}}));
    assert!(e.path.ends_with(".api_keys"), "{e}");
    let e = parse(json!({"consumers": {"a": {"api_keys": [digest("k")]}},
        "rules": [{"match": {}, "requires": {"basic_auth": {}}}]}));
    assert_eq!(e.path, "rules[0].requires.basic_auth");
    let e = parse(json!({"consumers": {"a": {"api_keys": [digest("k")]}},
        "api_key": {"max_key_bytes": 0}}));
    assert_eq!(e.path, "api_key.max_key_bytes");
    let e = parse(json!({}));
    assert_eq!(e.path, "providers");
}

#[test]
fn the_envoy_example_configuration_is_valid() {
    let yaml = include_str!("../../../envoy-examples/jwt-auth.yaml");
    let start = yaml.find("value: |").unwrap() + "value: |".len();
    let end = yaml[start..]
        .find("- name: envoy.filters.http.router")
        .unwrap()
        + start;
    let a = JwtAuth::from_json(yaml[start..end].trim().as_bytes()).unwrap();
    assert_eq!(a.consumers().len(), 2);
    let d = decide(
        &a,
        &req(
            "/admin",
            &[("authorization", &basic("ops", "change-me-ops-password"))],
        ),
    );
    assert!(matches!(d, Decision::Allow { .. }), "{d:?}");
    let d = decide(
        &a,
        &RequestView {
            method: "POST".into(),
            ..req(
                "/orders",
                &[("x-api-key", "example-deploy-key-do-not-use-in-production")],
            )
        },
    );
    assert!(matches!(d, Decision::Allow { .. }), "{d:?}");
}
