//! The jwt-auth module (`target/plugins/jwt-auth.wasm`) in the wasmtime
//! harness: inline keys, remote keys fetched at start, JWKS unreachable at
//! start, key rotation (new `kid` → one refetch → success), stale-if-error,
//! claim headers and the identity handed to the next filter, metrics and
//! the denial log line.

use host_test_harness::envoy;
use host_test_harness::fixture::FixtureFile;
use host_test_harness::{run_file, CallResponse, Host, HostError, Module};
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration as StdDuration;

mod common;

use common::{code, request, testkeys, upstream_header};

/// The harness clock starts here (2026-01-01T00:00:00Z).
const NOW: u64 = 1_767_225_600;

fn root() -> PathBuf {
    envoy::workspace_root().expect("run inside the Palisade workspace")
}

fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| {
        let path = root().join("target/plugins/jwt-auth.wasm");
        assert!(
            path.exists(),
            "{} is missing: run scripts/build first",
            path.display()
        );
        Module::from_file(&path).expect("jwt-auth.wasm loads")
    })
}

fn claims(extra: Value) -> JWTClaims<serde_json::Map<String, Value>> {
    let mut c = json!({"iss": "https://issuer.test", "sub": "alice", "aud": "api",
                       "iat": NOW - 10, "exp": NOW + 600, "roles": ["a", "b"]});
    if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
        o.extend(e);
    }
    serde_json::from_value(c).unwrap()
}

fn rs256(pem: &str, kid: &str, extra: Value) -> String {
    RS256KeyPair::from_pem(pem)
        .unwrap()
        .with_key_id(kid)
        .sign(claims(extra))
        .unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn inline_config() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "providers": {"corp": {
            "issuer": "https://issuer.test", "audiences": ["api"],
            "local_jwks": {"inline_string": testkeys::JWKS_ALL},
            "claim_to_headers": [
                {"header_name": "x-user", "claim_name": "sub"},
                {"header_name": "x-roles", "claim_name": "roles", "separator": ";"}
            ]
        }},
        "rules": [
            {"match": {"paths": [{"prefix": "/public"}]}},
            {"match": {"paths": [{"prefix": "/"}]}, "requires": {"provider_name": "corp"}}
        ]
    }))
    .unwrap()
}

fn remote_config(uri: Option<&str>) -> Vec<u8> {
    let mut http_uri = json!({"cluster": "idp", "timeout": "1s"});
    if let Some(u) = uri {
        http_uri["uri"] = json!(u);
    }
    serde_json::to_vec(&json!({
        "providers": {"corp": {
            "issuer": "https://issuer.test",
            "remote_jwks": {"http_uri": http_uri, "cache_duration": "60s",
                            "unknown_kid_refetch_interval": "10s", "retry_interval": "2s"}
        }}
    }))
    .unwrap()
}

fn host(config: Vec<u8>) -> Host {
    Host::builder(module())
        .plugin_config(config)
        .cluster("idp")
        .start_time_nanos(NOW * 1_000_000_000)
        .build()
        .unwrap()
}

/// Lets the first tick fire and answers the key fetch it makes.
fn answer_start_fetch(h: &mut Host, response: CallResponse) {
    h.advance_time(StdDuration::from_millis(250)).unwrap();
    let calls = h.pending_calls();
    assert_eq!(calls.len(), 1, "one key fetch at start: {calls:?}");
    assert_eq!(calls[0].cluster, "idp");
    h.respond(calls[0].token, response).unwrap();
}

#[test]
fn inline_keys_claim_headers_and_denials() {
    let mut h = host(inline_config());
    let token = rs256(testkeys::RSA1_PEM, "rsa1", json!({}));
    let o = h
        .send(&request(
            "/orders",
            &[("authorization", &bearer(&token)), ("x-user", "mallory")],
        ))
        .unwrap();
    assert_eq!(o.status, 200, "{o:?}");
    assert_eq!(upstream_header(&o, "x-user").as_deref(), Some("alice"));
    assert_eq!(upstream_header(&o, "x-roles").as_deref(), Some("a;b"));
    assert_eq!(upstream_header(&o, "authorization"), None, "token stripped");

    // A public route: forwarded, but a forged identity header is removed.
    let o = h
        .send(&request("/public/x", &[("x-user", "mallory")]))
        .unwrap();
    assert_eq!(o.status, 200);
    assert_eq!(upstream_header(&o, "x-user"), None);

    let o = h.send(&request("/orders", &[])).unwrap();
    assert_eq!((o.status, code(&o).as_str()), (401, "jwt_missing"));
    assert_eq!(
        o.header("www-authenticate"),
        Some("Bearer realm=\"palisade\"")
    );

    let expired = rs256(testkeys::RSA1_PEM, "rsa1", json!({"exp": NOW - 3600}));
    let o = h
        .send(&request("/orders", &[("authorization", &bearer(&expired))]))
        .unwrap();
    assert_eq!((o.status, code(&o).as_str()), (401, "jwt_expired"));
    assert!(o
        .header("www-authenticate")
        .unwrap_or_default()
        .contains("error=\"invalid_token\""));

    let wrong_aud = rs256(testkeys::RSA1_PEM, "rsa1", json!({"aud": "other"}));
    let o = h
        .send(&request(
            "/orders",
            &[("authorization", &bearer(&wrong_aud))],
        ))
        .unwrap();
    assert_eq!(
        (o.status, code(&o).as_str()),
        (403, "jwt_audience_mismatch")
    );

    assert_eq!(h.metric("palisade_jwt_auth_allowed"), Some(2));
    assert_eq!(h.metric("palisade_jwt_auth_denied"), Some(3));
    assert_eq!(h.metric("palisade_jwt_auth_denied_jwt_expired"), Some(1));
    assert_eq!(h.metric("palisade_jwt_auth_provider_corp_allowed"), Some(1));
    // One JSON log line per denial, never with the token.
    let lines: Vec<Value> = h
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(&l.message).ok())
        .filter(|v| v["plugin"] == "jwt-auth")
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[1]["code"], "jwt_expired");
    assert!(h.logs().iter().all(|l| !l.message.contains(&expired)));
}

#[test]
fn remote_keys_are_fetched_at_start() {
    let mut h = host(remote_config(Some("https://idp.test/jwks")));
    h.advance_time(StdDuration::from_millis(250)).unwrap();
    let calls = h.pending_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].header(":path"), Some("/jwks"));
    assert_eq!(calls[0].header(":authority"), Some("idp.test"));
    assert_eq!(calls[0].header(":method"), Some("GET"));
    assert_eq!(calls[0].timeout_ms, 1000);
    h.respond(calls[0].token, CallResponse::new(200, testkeys::JWKS_ALL))
        .unwrap();
    let token = rs256(testkeys::RSA1_PEM, "rsa1", json!({}));
    let o = h
        .send(&request("/", &[("authorization", &bearer(&token))]))
        .unwrap();
    assert_eq!(o.status, 200, "{o:?}");
    assert_eq!(
        h.metric("palisade_jwt_auth_provider_corp_jwks_fetched"),
        Some(1)
    );
}

#[test]
fn jwks_unreachable_at_start_then_recovers() {
    let mut h = host(remote_config(Some("https://idp.test/jwks")));
    answer_start_fetch(&mut h, CallResponse::failure());
    assert!(h.logged("key fetch failed"));
    let token = rs256(testkeys::RSA1_PEM, "rsa1", json!({}));
    // The request may trigger one fetch of its own; it fails too.
    let id = h
        .begin(&request("/", &[("authorization", &bearer(&token))]))
        .unwrap();
    for call in h.pending_calls() {
        h.respond(call.token, CallResponse::failure()).unwrap();
    }
    let o = h.finish(id).unwrap();
    assert_eq!((o.status, code(&o).as_str()), (401, "jwt_keys_unavailable"));
    // The retry after retry_interval succeeds.
    h.advance_time(StdDuration::from_secs(3)).unwrap();
    let calls = h.pending_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    h.respond(calls[0].token, CallResponse::new(200, testkeys::JWKS_ALL))
        .unwrap();
    let o = h
        .send(&request("/", &[("authorization", &bearer(&token))]))
        .unwrap();
    assert_eq!(o.status, 200, "{o:?}");
}

#[test]
fn requests_during_the_start_up_fetch_wait_for_it() {
    let mut h = host(remote_config(Some("https://idp.test/jwks")));
    h.advance_time(StdDuration::from_millis(250)).unwrap();
    let start = h.pending_calls();
    assert_eq!(start.len(), 1);
    let token = rs256(testkeys::RSA1_PEM, "rsa1", json!({}));
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            h.begin(&request("/", &[("authorization", &bearer(&token))]))
                .unwrap()
        })
        .collect();
    for id in &waiting {
        assert!(!h.is_complete(*id), "waits for the keys");
    }
    assert_eq!(h.pending_calls().len(), 1, "no fetch of their own");
    h.respond(start[0].token, CallResponse::new(200, testkeys::JWKS_ALL))
        .unwrap();
    for id in waiting {
        assert_eq!(h.finish(id).unwrap().status, 200);
    }

    // When the start-up fetch fails, the waiting request is refused.
    let mut h = host(remote_config(Some("https://idp.test/jwks")));
    h.advance_time(StdDuration::from_millis(250)).unwrap();
    let start = h.pending_calls();
    let id = h
        .begin(&request("/", &[("authorization", &bearer(&token))]))
        .unwrap();
    h.respond(start[0].token, CallResponse::failure()).unwrap();
    let o = h.finish(id).unwrap();
    assert_eq!((o.status, code(&o).as_str()), (401, "jwt_keys_unavailable"));
}

#[test]
fn key_rotation_refetches_once_and_succeeds() {
    let mut h = host(remote_config(Some("https://idp.test/jwks")));
    answer_start_fetch(&mut h, CallResponse::new(200, testkeys::JWKS_ALL));
    let rotated = rs256(testkeys::RSA2_PEM, "rsa2", json!({}));
    let id = h
        .begin(&request("/", &[("authorization", &bearer(&rotated))]))
        .unwrap();
    assert!(!h.is_complete(id), "the request waits for the refetch");
    let calls = h.pending_calls();
    assert_eq!(calls.len(), 1);
    h.respond(
        calls[0].token,
        CallResponse::new(200, testkeys::JWKS_ROTATED),
    )
    .unwrap();
    let o = h.finish(id).unwrap();
    assert_eq!(o.status, 200, "{o:?}");
    // Another unknown kid within the interval: no second refetch.
    let unknown = rs256(testkeys::RSA2_PEM, "rsa3", json!({}));
    let o = h
        .send(&request("/", &[("authorization", &bearer(&unknown))]))
        .unwrap();
    assert_eq!((o.status, code(&o).as_str()), (401, "jwt_unknown_kid"));
    assert!(h.pending_calls().is_empty());
}

#[test]
fn stale_keys_are_kept_when_a_refresh_fails() {
    let mut h = host(remote_config(Some("https://idp.test/jwks")));
    answer_start_fetch(&mut h, CallResponse::new(200, testkeys::JWKS_ALL));
    h.advance_time(StdDuration::from_secs(61)).unwrap();
    let calls = h.pending_calls();
    assert_eq!(calls.len(), 1, "refresh after cache_duration");
    h.respond(calls[0].token, CallResponse::new(503, "down"))
        .unwrap();
    assert!(h.logged("the last good keys stay in use"));
    h.advance_time(StdDuration::from_secs(3)).unwrap();
    for call in h.pending_calls() {
        h.respond(call.token, CallResponse::new(200, r#"{"keys":[]}"#))
            .unwrap();
    }
    let token = rs256(testkeys::RSA1_PEM, "rsa1", json!({"exp": NOW + 3600}));
    let o = h
        .send(&request("/", &[("authorization", &bearer(&token))]))
        .unwrap();
    assert_eq!(o.status, 200, "{o:?}");
    assert_eq!(
        h.metric("palisade_jwt_auth_provider_corp_jwks_fetch_failed"),
        Some(2)
    );
}

#[test]
fn oidc_discovery_then_keys() {
    let mut h = host(remote_config(None));
    h.advance_time(StdDuration::from_millis(250)).unwrap();
    let calls = h.pending_calls();
    assert_eq!(
        calls[0].header(":path"),
        Some("/.well-known/openid-configuration")
    );
    assert_eq!(calls[0].header(":authority"), Some("issuer.test"));
    h.respond(
        calls[0].token,
        CallResponse::new(
            200,
            r#"{"issuer":"https://issuer.test","jwks_uri":"https://keys.issuer.test/certs"}"#,
        ),
    )
    .unwrap();
    let calls = h.pending_calls();
    assert_eq!(calls[0].header(":path"), Some("/certs"));
    assert_eq!(calls[0].header(":authority"), Some("keys.issuer.test"));
    h.respond(calls[0].token, CallResponse::new(200, testkeys::JWKS_ALL))
        .unwrap();
    let token = rs256(testkeys::RSA1_PEM, "rsa1", json!({}));
    let o = h
        .send(&request("/", &[("authorization", &bearer(&token))]))
        .unwrap();
    assert_eq!(o.status, 200, "{o:?}");
}

#[test]
fn a_refused_configuration_names_the_field() {
    let Err(err) = Host::builder(module())
        .plugin_config(br#"{"providers":{"a":{"issuer":"i","bogus":1}}}"#.to_vec())
        .build()
    else {
        panic!("the configuration was accepted")
    };
    match err {
        HostError::ConfigureFailed { logs, .. } => {
            assert!(logs.contains("providers.a.bogus"), "{logs}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fixtures_pass_in_the_harness() {
    let files = FixtureFile::load_dir(root().join("plugins/jwt-auth/fixtures")).unwrap();
    assert!(!files.is_empty());
    let mut failed = 0;
    for file in &files {
        let report = run_file(module(), file);
        println!("{report}");
        failed += report.failed();
    }
    assert_eq!(failed, 0, "fixture cases failed in the harness (see above)");
}

/// jwt-auth → the harness's `state` test filter, which copies the
/// single-segment property `palisade.identity` into `x-single`: the next
/// filter reads the verified identity, a client-sent `x-single` is not it.
#[test]
fn the_identity_reaches_the_next_filter() {
    let reader_path = root().join("target/wasm32-wasip1/release/harness_test_modules.wasm");
    assert!(
        reader_path.exists(),
        "{} is missing: run scripts/build (it builds the harness's test modules too)",
        reader_path.display()
    );
    let reader = Module::from_file(&reader_path).unwrap();
    let mut h = Host::builder(module())
        .plugin_config(inline_config())
        .then(&reader)
        .plugin_config(serde_json::to_vec(&json!({"mode": "state", "read": true})).unwrap())
        .start_time_nanos(NOW * 1_000_000_000)
        .build()
        .unwrap();
    let token = rs256(testkeys::RSA1_PEM, "rsa1", json!({}));
    let o = h
        .send(&request("/orders", &[("authorization", &bearer(&token))]))
        .unwrap();
    assert_eq!(o.status, 200, "{o:?}");
    let id: Value = serde_json::from_str(&upstream_header(&o, "x-single").unwrap()).unwrap();
    assert_eq!(id["provider"], "corp");
    assert_eq!(id["issuer"], "https://issuer.test");
    assert_eq!(id["subject"], "alice");
    assert_eq!(id["audiences"], json!(["api"]));
    assert_eq!(id["claims"]["roles"], json!(["a", "b"]));
    // Without a verified token there is no identity.
    let o = h.send(&request("/public", &[])).unwrap();
    assert_eq!(upstream_header(&o, "x-single").as_deref(), Some("absent"));
}

/// Forged and malformed tokens through the module: every one refused with
/// 401/403, none traps (a trap would fail `send`).
#[test]
fn forged_tokens_never_trap_the_module() {
    let mut h = host(inline_config());
    let good = rs256(testkeys::RSA1_PEM, "rsa1", json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |s: &str| {
        use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
        Base64UrlSafeNoPadding::encode_to_string(s).unwrap()
    };
    let hs_rsa = HS256Key::from_bytes(testkeys::RSA1_PUBLIC_PEM.as_bytes())
        .with_key_id("rsa1")
        .authenticate(claims(json!({})))
        .unwrap();
    let long = "A".repeat(60_000);
    let tokens = vec![
        format!("{}.{}.", b64(r#"{"alg":"none"}"#), parts[1]),
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"HS256","kid":"rsa1"}"#),
            parts[1],
            parts[2]
        ),
        hs_rsa,
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","kid":"../../etc/passwd"}"#),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","kid":"1' OR '1'='1"}"#),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","jku":"http://evil"}"#),
            parts[1],
            parts[2]
        ),
        format!("{good}.extra"),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}.{}", parts[0], b64("not json"), parts[2]),
        format!("{}.{}.{}", b64("{"), parts[1], parts[2]),
        long.clone(),
        format!("{long}.{long}.{long}"),
        "\u{00e9}\u{00fc}.\u{00df}.x".to_string(),
        "....".to_string(),
        String::new(),
    ];
    for t in &tokens {
        let o = h
            .send(&request("/orders", &[("authorization", &bearer(t))]))
            .unwrap_or_else(|e| panic!("{t:.60}: {e}"));
        assert!(matches!(o.status, 401 | 403), "{t:.60}: {}", o.status);
    }
    // Many candidate headers at once are bounded, and still refused.
    let many: Vec<(&str, &str)> = vec![("authorization", "Bearer x.y.z"); 50];
    let o = h.send(&request("/orders", &many)).unwrap();
    assert_eq!(o.status, 401);
}
