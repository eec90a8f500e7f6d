//! The negative suite: forged and malformed tokens, every one refused
//! (by the verifier and by the whole policy), none panics.

use crate::policy::{Decision, JwtAuth};
use crate::testkeys::{JWKS_ALL, RSA1_PUBLIC_PEM};
use crate::testutil::{claims, forge, sign, sign_es512, with_payload, NOW};
use crate::verify::{verify_token, TokenError};
use jwt_simple::prelude::*;
use sdk_ext::{Headers, RequestView};
use serde_json::json;

fn auth() -> JwtAuth {
    JwtAuth::from_json(
        format!(
            r#"{{"providers":{{"t":{{"issuer":"https://issuer.test","audiences":["api"],
               "local_jwks":{{"inline_string":{}}}}}}},"max_token_bytes":4096}}"#,
            serde_json::to_string(JWKS_ALL).unwrap()
        )
        .as_bytes(),
    )
    .unwrap()
}

fn hs_with_rsa_public_key(kid: Option<&str>) -> String {
    let c: JWTClaims<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_value(claims(json!({}))).unwrap();
    let mut k = HS256Key::from_bytes(RSA1_PUBLIC_PEM.as_bytes());
    if let Some(kid) = kid {
        k = k.with_key_id(kid);
    }
    k.authenticate(c).unwrap()
}

fn other_key_as_rsa1() -> String {
    let c: JWTClaims<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_value(claims(json!({}))).unwrap();
    RS256KeyPair::from_pem(crate::testkeys::RSA2_PEM)
        .unwrap()
        .with_key_id("rsa1")
        .sign(c)
        .unwrap()
}

/// A named token and the refusal it must get.
type Case = (&'static str, String, fn(&TokenError) -> bool);

fn cases() -> Vec<Case> {
    let good = sign("rsa1", "RS256", &claims(json!({})));
    let parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let p = claims(json!({})).to_string();
    let sig = parts[2].clone();
    let malformed: fn(&TokenError) -> bool = |e| matches!(e, TokenError::Malformed(_));
    let bad_sig: fn(&TokenError) -> bool =
        |e| matches!(e, TokenError::BadSignature | TokenError::Refused(_));
    let no_key: fn(&TokenError) -> bool =
        |e| matches!(e, TokenError::NoMatchingKey | TokenError::UnknownKid);
    vec![
        ("alg none", forge(r#"{"alg":"none"}"#, &p, ""), malformed),
        (
            "alg None",
            forge(r#"{"alg":"None","typ":"JWT"}"#, &p, "AAAA"),
            malformed,
        ),
        (
            "alg NONE with kid",
            forge(r#"{"alg":"NONE","kid":"rsa1"}"#, &p, &sig),
            malformed,
        ),
        (
            "alg missing",
            forge(r#"{"kid":"rsa1"}"#, &p, &sig),
            malformed,
        ),
        (
            "alg not a string",
            forge(r#"{"alg":256}"#, &p, &sig),
            malformed,
        ),
        (
            "HS256 keyed with the RSA public key (kid)",
            hs_with_rsa_public_key(Some("rsa1")),
            no_key,
        ),
        (
            "HS256 keyed with the RSA public key (no kid)",
            hs_with_rsa_public_key(None),
            bad_sig,
        ),
        (
            "RS256 signature under an HS256 header",
            format!(
                "{}.{}.{}",
                crate::b64::encode(br#"{"alg":"HS256","kid":"rsa1"}"#),
                parts[1],
                sig
            ),
            no_key,
        ),
        (
            "unknown kid",
            forge(r#"{"alg":"RS256","kid":"nope"}"#, &p, &sig),
            |e| *e == TokenError::UnknownKid,
        ),
        (
            "stripped signature",
            format!("{}.{}.", parts[0], parts[1]),
            malformed,
        ),
        (
            "two segments",
            format!("{}.{}", parts[0], parts[1]),
            malformed,
        ),
        (
            "expired",
            sign("rsa1", "RS256", &claims(json!({"exp": NOW - 61}))),
            |e| *e == TokenError::Expired,
        ),
        (
            "nbf in the future",
            sign("rsa1", "RS256", &claims(json!({"nbf": NOW + 61}))),
            |e| *e == TokenError::NotYetValid,
        ),
        (
            "iat in the future",
            sign("rsa1", "RS256", &claims(json!({"iat": NOW + 3600}))),
            |e| *e == TokenError::IssuedInFuture,
        ),
        (
            "wrong iss",
            sign(
                "rsa1",
                "RS256",
                &claims(json!({"iss": "https://evil.test"})),
            ),
            |e| *e == TokenError::IssuerMismatch,
        ),
        (
            "no iss",
            sign("rsa1", "RS256", &claims(json!({"iss": null}))),
            |e| *e == TokenError::IssuerMismatch,
        ),
        (
            "wrong aud",
            sign("rsa1", "RS256", &claims(json!({"aud": ["other", "x"]}))),
            |e| *e == TokenError::AudienceMismatch,
        ),
        (
            "no aud",
            sign("rsa1", "RS256", &claims(json!({"aud": null}))),
            |e| *e == TokenError::AudienceMismatch,
        ),
        (
            "no exp",
            sign("rsa1", "RS256", &claims(json!({"exp": null}))),
            |e| *e == TokenError::MissingExpiration,
        ),
        (
            "tampered payload",
            with_payload(&good, &claims(json!({"sub": "admin"}))),
            bad_sig,
        ),
        (
            "tampered header kid",
            forge(r#"{"alg":"RS256","kid":"rsa1","x":1}"#, &p, &sig),
            bad_sig,
        ),
        (
            "oversize",
            sign("rsa1", "RS256", &claims(json!({"pad": "x".repeat(5000)}))),
            |e| matches!(e, TokenError::TooLarge { .. }),
        ),
        (
            "header not JSON",
            format!("{}.{}.{}", crate::b64::encode(b"not json"), parts[1], sig),
            malformed,
        ),
        (
            "payload not JSON",
            format!("{}.{}.{}", parts[0], crate::b64::encode(b"\x00\xff"), sig),
            malformed,
        ),
        (
            "payload a JSON array",
            format!("{}.{}.{}", parts[0], crate::b64::encode(b"[1,2]"), sig),
            malformed,
        ),
        ("extra segment", format!("{good}.AAAA"), malformed),
        (
            "JWE-shaped (5 segments)",
            format!("{good}.AAAA.BBBB"),
            malformed,
        ),
        (
            "kid with path characters",
            forge(
                r#"{"alg":"RS256","kid":"../../../../etc/passwd"}"#,
                &p,
                &sig,
            ),
            |e| *e == TokenError::UnknownKid,
        ),
        (
            "kid with SQL",
            forge(r#"{"alg":"RS256","kid":"' OR '1'='1' --"}"#, &p, &sig),
            |e| *e == TokenError::UnknownKid,
        ),
        (
            "kid with control characters",
            forge("{\"alg\":\"RS256\",\"kid\":\"rsa1\\u0000\"}", &p, &sig),
            malformed,
        ),
        (
            "kid too long",
            forge(
                &format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(300)),
                &p,
                &sig,
            ),
            malformed,
        ),
        (
            "jku header",
            forge(
                r#"{"alg":"RS256","kid":"rsa1","jku":"https://evil.test/jwks"}"#,
                &p,
                &sig,
            ),
            malformed,
        ),
        (
            "x5u header",
            forge(
                r#"{"alg":"RS256","kid":"rsa1","x5u":"https://evil.test/cert"}"#,
                &p,
                &sig,
            ),
            malformed,
        ),
        (
            "embedded jwk",
            forge(
                r#"{"alg":"RS256","jwk":{"kty":"oct","k":"AAAA"}}"#,
                &p,
                &sig,
            ),
            malformed,
        ),
        (
            "x5c header",
            forge(r#"{"alg":"RS256","x5c":["MIIB"]}"#, &p, &sig),
            malformed,
        ),
        (
            "crit header",
            forge(r#"{"alg":"RS256","kid":"rsa1","crit":["exp"]}"#, &p, &sig),
            malformed,
        ),
        ("signed by another RSA key", other_key_as_rsa1(), bad_sig),
        (
            "ES256 token naming the P-384 key",
            forge(r#"{"alg":"ES256","kid":"p384"}"#, &p, &"A".repeat(86)),
            no_key,
        ),
        (
            "ES512 header with an ES256 signature",
            sign_es512(r#"{"alg":"ES512","kid":"p521"}"#, &claims(json!({})))
                .rsplit_once('.')
                .map(|(h, _)| format!("{h}.{}", &"A".repeat(86)))
                .unwrap_or_default(),
            bad_sig,
        ),
        (
            "exp as a string",
            sign_es512(
                r#"{"alg":"ES512","kid":"p521"}"#,
                &claims(json!({"exp": "tomorrow"})),
            ),
            |e| *e == TokenError::BadClaim("exp"),
        ),
        (
            "aud as a number",
            sign_es512(
                r#"{"alg":"ES512","kid":"p521"}"#,
                &claims(json!({"aud": 7})),
            ),
            |e| *e == TokenError::BadClaim("aud"),
        ),
        (
            "padded base64",
            format!("{}=.{}.{}", parts[0], parts[1], sig),
            malformed,
        ),
        ("empty", String::new(), malformed),
        ("only dots", "..".to_string(), malformed),
        ("not base64 at all", "é.ü.ß".to_string(), malformed),
        (
            "truncated signature",
            format!("{}.{}.{}", parts[0], parts[1], &sig[..sig.len() / 8 * 4]),
            bad_sig,
        ),
    ]
}

#[test]
fn every_forged_or_malformed_token_is_refused() {
    let a = auth();
    let p = &a.providers()[0].1;
    let keys = a.initial_keys();
    let set = keys[0].set.as_deref();
    let cases = cases();
    assert!(cases.len() >= 30, "{}", cases.len());
    for (name, token, expected) in &cases {
        let r = verify_token(token, p, set, 4096, NOW);
        match r {
            Err(e) => assert!(expected(&e), "{name}: unexpected error {e:?}"),
            Ok(v) => panic!("{name}: accepted {v:?}"),
        }
    }
}

#[test]
fn the_policy_denies_every_one_with_401_or_403() {
    let a = auth();
    let keys = a.initial_keys();
    let mut cache = a.new_cache();
    for (name, token, _) in cases() {
        let req = RequestView {
            method: "GET".into(),
            path: "/".into(),
            headers: Headers::from(vec![("authorization".into(), format!("Bearer {token}"))]),
            ..Default::default()
        };
        match a.decide(&req, &keys, &mut cache, NOW) {
            Decision::Deny { denial, .. } => {
                assert!(matches!(denial.status, 401 | 403), "{name}: {denial:?}");
                let www = denial
                    .headers
                    .iter()
                    .find(|(k, _)| k == "www-authenticate")
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_default();
                assert!(
                    www.starts_with("Bearer realm=\"palisade\""),
                    "{name}: {www}"
                );
            }
            Decision::Allow { .. } => panic!("{name}: allowed"),
        }
    }
    assert!(cache.tokens.is_empty(), "nothing forged was cached");
}

#[test]
fn the_good_token_of_the_suite_is_accepted() {
    let a = auth();
    let good = sign("rsa1", "RS256", &claims(json!({})));
    let v = verify_token(
        &good,
        &a.providers()[0].1,
        a.initial_keys()[0].set.as_deref(),
        4096,
        NOW,
    )
    .unwrap();
    assert_eq!(v.subject.as_deref(), Some("alice"));
}
