//! Test helpers: sign tokens with the test keys at chosen claims.

use crate::b64;
use crate::testkeys::*;
use jwt_simple::prelude::*;
use p521::ecdsa::signature::Signer as _;
use serde_json::{Map, Value};

/// The fixed "now" of the tests.
pub const NOW: u64 = 1_700_000_000;

/// A claim set for the test issuer, valid around [`NOW`], plus `extra`.
pub fn claims(extra: Value) -> Value {
    let mut base = serde_json::json!({
        "iss": "https://issuer.test", "sub": "alice", "aud": "api",
        "iat": NOW - 10, "exp": NOW + 600
    });
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
    base
}

fn jwt_claims(v: &Value) -> JWTClaims<Map<String, Value>> {
    serde_json::from_value(v.clone()).unwrap()
}

/// Signs `payload` with the named test key (`rsa1`, `rsa2`, `p256`, `p384`,
/// `p521`, `ed`, `hs`) and algorithm.
pub fn sign(key: &str, alg: &str, payload: &Value) -> String {
    let c = jwt_claims(payload);
    match (key, alg) {
        ("rsa1" | "rsa2", _) => {
            let pem = if key == "rsa1" { RSA1_PEM } else { RSA2_PEM };
            match alg {
                "RS256" => RS256KeyPair::from_pem(pem)
                    .unwrap()
                    .with_key_id(key)
                    .sign(c),
                "RS384" => RS384KeyPair::from_pem(pem)
                    .unwrap()
                    .with_key_id(key)
                    .sign(c),
                "RS512" => RS512KeyPair::from_pem(pem)
                    .unwrap()
                    .with_key_id(key)
                    .sign(c),
                "PS256" => PS256KeyPair::from_pem(pem)
                    .unwrap()
                    .with_key_id(key)
                    .sign(c),
                "PS384" => PS384KeyPair::from_pem(pem)
                    .unwrap()
                    .with_key_id(key)
                    .sign(c),
                _ => PS512KeyPair::from_pem(pem)
                    .unwrap()
                    .with_key_id(key)
                    .sign(c),
            }
        }
        ("p256", _) => ES256KeyPair::from_pem(P256_PEM)
            .unwrap()
            .with_key_id(key)
            .sign(c),
        ("p384", _) => ES384KeyPair::from_pem(P384_PEM)
            .unwrap()
            .with_key_id(key)
            .sign(c),
        ("ed", _) => Ed25519KeyPair::from_pem(ED25519_PEM)
            .unwrap()
            .with_key_id(key)
            .sign(c),
        ("hs", "HS384") => HS384Key::from_bytes(HS_SECRET)
            .with_key_id(key)
            .authenticate(c),
        ("hs", "HS512") => HS512Key::from_bytes(HS_SECRET)
            .with_key_id(key)
            .authenticate(c),
        ("hs", _) => HS256Key::from_bytes(HS_SECRET)
            .with_key_id(key)
            .authenticate(c),
        ("p521", _) => return sign_es512(r#"{"alg":"ES512","kid":"p521"}"#, payload),
        _ => panic!("unknown test key {key}"),
    }
    .unwrap()
}

/// An ES512 token with this exact header.
pub fn sign_es512(header: &str, payload: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(payload.to_string().as_bytes())
    );
    let sk = p521::ecdsa::SigningKey::from_slice(&P521_D).unwrap();
    let sig: p521::ecdsa::Signature = sk.sign(input.as_bytes());
    format!("{input}.{}", b64::encode(&sig.to_bytes()))
}

/// A token with this header and payload and an arbitrary signature.
pub fn forge(header: &str, payload: &str, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(payload.as_bytes()),
        signature
    )
}

/// The same token with its payload replaced (signature kept).
pub fn with_payload(token: &str, payload: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64::encode(payload.to_string().as_bytes()),
        parts[2]
    )
}
