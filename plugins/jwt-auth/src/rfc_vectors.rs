//! RFC 7515 Appendix A.1–A.4 and RFC 8037 A.4 at a fixed clock. A.4 and
//! RFC 8037 sign payloads that are not claim sets, so they are checked at
//! the signature level: the good signature verifies (and then the payload
//! is refused as not a JWT), a tampered one does not.

use crate::alg::Algorithm;
use crate::config::JwtAuthConfig;
use crate::jwk::KeySet;
use crate::signature::{CheckTime, KeyMaterial, SignatureError, VerifyingKey};
use crate::token::{self, MalformedToken};
use crate::verify::{verify_token, TokenError};

/// 2011-03-22T18:00:00Z, before the vectors' `exp` of 1300819380.
const IN_2011: u64 = 1_300_816_800;
const PAYLOAD: &str =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

const A1: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9";
const A1_SIG: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const A1_JWKS: &str = r#"{"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;

const A2: &str = "eyJhbGciOiJSUzI1NiJ9";
const A2_SIG: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const A2_JWKS: &str = r#"{"keys":[{"kty":"RSA","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ","e":"AQAB"}]}"#;

const A3: &str = "eyJhbGciOiJFUzI1NiJ9";
const A3_SIG: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
const A3_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

const A4_INPUT: &str = "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA";
const A4_SIG: &str = "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";
const A4_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-521","x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk","y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"}]}"#;

const ED_INPUT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
const ED_SIG: &str =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

fn provider_joe(jwks: &str) -> crate::config::Provider {
    let json = format!(
        r#"{{"providers":{{"joe":{{"issuer":"joe","local_jwks":{{"inline_string":{}}}}}}}}}"#,
        serde_json::to_string(jwks).unwrap()
    );
    JwtAuthConfig::from_json(json.as_bytes())
        .unwrap()
        .providers
        .into_values()
        .next()
        .unwrap()
}

fn check_claims_vector(header: &str, sig: &str, jwks: &str) {
    let p = provider_joe(jwks);
    let keys = KeySet::from_json(jwks.as_bytes()).unwrap();
    let token = format!("{header}.{PAYLOAD}.{sig}");
    let v = verify_token(&token, &p, Some(&keys), 8192, IN_2011).unwrap();
    assert_eq!(v.issuer, "joe");
    assert_eq!(v.expires_at, Some(1_300_819_380));
    assert_eq!(v.claims["http://example.com/is_root"], true);
    // The same token later is expired, and a tampered one does not verify.
    assert_eq!(
        verify_token(&token, &p, Some(&keys), 8192, 1_300_819_380 + 61),
        Err(TokenError::Expired)
    );
    let mut bad = sig.to_string();
    let last = if bad.ends_with('A') { "B" } else { "A" };
    bad.replace_range(bad.len() - 1.., last);
    let tampered = format!("{header}.{PAYLOAD}.{bad}");
    assert!(matches!(
        verify_token(&tampered, &p, Some(&keys), 8192, IN_2011),
        Err(TokenError::BadSignature | TokenError::Refused(_))
    ));
}

#[test]
fn rfc7515_a1_hs256() {
    check_claims_vector(A1, A1_SIG, A1_JWKS);
}

#[test]
fn rfc7515_a2_rs256() {
    check_claims_vector(A2, A2_SIG, A2_JWKS);
}

#[test]
fn rfc7515_a3_es256() {
    check_claims_vector(A3, A3_SIG, A3_JWKS);
}

fn time() -> CheckTime {
    CheckTime {
        now: IN_2011,
        skew: 60,
    }
}

#[test]
fn rfc7515_a4_es512_signature() {
    let keys = KeySet::from_json(A4_JWKS.as_bytes()).unwrap();
    let key = keys.candidates(Algorithm::Es512, None).next().unwrap();
    let sig = crate::b64::decode_strict(A4_SIG).unwrap();
    let token = format!("{A4_INPUT}.{A4_SIG}");
    assert_eq!(
        key.verify(&token, A4_INPUT.as_bytes(), &sig, time()),
        Ok(())
    );
    let tampered = "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZQ";
    assert_eq!(
        key.verify(&token, tampered.as_bytes(), &sig, time()),
        Err(SignatureError::Mismatch)
    );
    // As a JWT it is refused: its payload is not a claim set.
    assert_eq!(
        token::parse(&token).unwrap_err(),
        MalformedToken::NotJsonObject("payload")
    );
}

#[test]
fn rfc8037_a4_eddsa_signature() {
    let x = crate::b64::decode_strict(ED_X).unwrap();
    let key = VerifyingKey::new(Algorithm::EdDsa, &KeyMaterial::Ed25519(x)).unwrap();
    let sig = crate::b64::decode_strict(ED_SIG).unwrap();
    let good = format!("{ED_INPUT}.{ED_SIG}");
    // jwt-simple checks the signature, then reads the payload as claims:
    // a good signature fails only on the payload.
    match key.verify(&good, ED_INPUT.as_bytes(), &sig, time()) {
        Err(SignatureError::Refused(m)) => assert!(!m.contains("Signature"), "{m}"),
        other => panic!("expected a payload refusal, got {other:?}"),
    }
    let bad_sig = ED_SIG.replacen('h', "i", 1);
    let bad = format!("{ED_INPUT}.{bad_sig}");
    let bad_bytes = crate::b64::decode_strict(&bad_sig).unwrap();
    assert_eq!(
        key.verify(&bad, ED_INPUT.as_bytes(), &bad_bytes, time()),
        Err(SignatureError::Mismatch)
    );
}
