//! What the integration tests share: requests and outcome readers; for the
//! consumer tests a jwt-auth configuration with a JWT provider and four
//! consumers (an admin and a billing user for each of Basic and API keys),
//! hashed at run time, requests for each method, and an rbac configuration
//! that admits only the `admin` group.

#![allow(dead_code)]

use base64::Engine;
use host_test_harness::fixture::{Outcome, Request};
use jwt_auth::apikey;
use jwt_auth::password::{Cost, PasswordHash, MIN_MEMORY_KIB};
use jwt_simple::prelude::*;
use serde_json::{json, Value};

#[path = "../../src/testkeys.rs"]
#[allow(dead_code)]
pub mod testkeys;

/// The cheapest accepted cost: the tests check behaviour, the bench cost.
const TEST_COST: Cost = Cost {
    memory_kib: MIN_MEMORY_KIB,
    passes: 2,
    lanes: 1,
};

pub const ALICE_PW: &str = "alice-password";
pub const ERIN_PW: &str = "erin-password";
pub const DAVE_KEY: &str = "dave-key-0123456789abcdefghijklmnopqrstu";
pub const DAVE_NEXT_KEY: &str = "dave-next-key-0123456789abcdefghijklmnop";
pub const BOB_KEY: &str = "bob-key-0123456789abcdefghijklmnopqrstuvw";

fn hash(pw: &str, salt: &[u8]) -> String {
    PasswordHash::create(pw.as_bytes(), salt, TEST_COST)
        .expect("hash")
        .to_phc_string()
}

/// jwt-auth: provider `corp` (HS256), consumers alice (Basic, admin), erin
/// (Basic, billing), dave (two API keys, admin), bob (API key, billing).
/// `/public` is open; every other path takes any method.
pub fn jwt_auth_config() -> Value {
    json!({
        "providers": {"corp": {"issuer": "https://issuer.test",
                               "local_jwks": {"inline_string": testkeys::JWKS_ALL}}},
        "consumers": {
            "alice": {"groups": ["admin"], "attributes": {"tenant": "acme"},
                      "basic_auth": {"password_hash": hash(ALICE_PW, b"salt-for-alice!!")}},
            "erin": {"groups": ["billing"],
                     "basic_auth": {"password_hash": hash(ERIN_PW, b"salt-for-erin!!!")}},
            "dave": {"groups": ["admin"], "attributes": {"tenant": "globex"},
                     "api_keys": [apikey::digest(DAVE_KEY).to_config_string(),
                                  apikey::digest(DAVE_NEXT_KEY).to_config_string()]},
            "bob": {"groups": ["billing"], "api_keys": [apikey::digest(BOB_KEY).to_config_string()]}
        },
        "rules": [
            {"match": {"paths": [{"prefix": "/public"}]}},
            {"match": {"paths": [{"prefix": "/"}]},
             "requires": {"requires_any": [{"provider_name": "corp"}, {"basic_auth": {}}, {"api_key": {}}]}}
        ],
        "realm": "orders"
    })
}

/// rbac (Istio-style policies): only identities whose `groups` claim holds
/// `admin` may pass.
pub fn rbac_admins_only() -> Value {
    json!({"policies": [{"name": "admins-only", "action": "ALLOW",
        "rules": [{"when": [{"key": "request.auth.claims[groups]", "values": ["admin"]}]}]}]})
}

pub fn basic(user: &str, pw: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
    format!("Basic {b64}")
}

/// A `corp` token whose `groups` claim is `groups`, valid for an hour
/// from `now`.
pub fn jwt(groups: &[&str], now: u64) -> String {
    let c: JWTClaims<serde_json::Map<String, Value>> = serde_json::from_value(json!({
        "iss": "https://issuer.test", "sub": "jwt-user", "iat": now - 5, "exp": now + 3600,
        "groups": groups
    }))
    .expect("claims");
    let t = HS256Key::from_bytes(testkeys::HS_SECRET)
        .with_key_id("hs")
        .authenticate(c)
        .expect("sign");
    format!("Bearer {t}")
}

/// A response header the echo upstream saw on the forwarded request.
pub fn upstream_header(o: &Outcome, name: &str) -> Option<String> {
    o.upstream.as_ref().and_then(|u| {
        u.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
}

/// The `code` of a deny body, or "".
pub fn code(o: &Outcome) -> String {
    serde_json::from_slice::<Value>(&o.body)
        .ok()
        .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

/// A GET to `api.local`.
pub fn request(path: &str, headers: &[(&str, &str)]) -> Request {
    Request {
        method: "GET".into(),
        path: path.into(),
        authority: "api.local".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: None,
        source: None,
    }
}

/// (what, request, status with rbac admitting only admins): every method,
/// an admin and a non-admin each.
pub fn group_cases(now: u64) -> Vec<(&'static str, Request, u16)> {
    let admin_jwt = jwt(&["admin"], now);
    let billing_jwt = jwt(&["billing"], now);
    vec![
        (
            "basic admin",
            request("/orders", &[("authorization", &basic("alice", ALICE_PW))]),
            200,
        ),
        (
            "basic billing",
            request("/orders", &[("authorization", &basic("erin", ERIN_PW))]),
            403,
        ),
        (
            "api key admin",
            request("/orders", &[("x-api-key", DAVE_KEY)]),
            200,
        ),
        (
            "api key admin, rotated key",
            request("/orders", &[("x-api-key", DAVE_NEXT_KEY)]),
            200,
        ),
        (
            "api key billing",
            request("/orders", &[("x-api-key", BOB_KEY)]),
            403,
        ),
        (
            "jwt admin",
            request("/orders", &[("authorization", &admin_jwt)]),
            200,
        ),
        (
            "jwt billing",
            request("/orders", &[("authorization", &billing_jwt)]),
            403,
        ),
        ("no credentials", request("/orders", &[]), 401),
        (
            "wrong password",
            request("/orders", &[("authorization", &basic("alice", "nope"))]),
            401,
        ),
    ]
}
