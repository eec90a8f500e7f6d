//! JSON Web Key Sets (RFC 7517) turned into verifying keys.
//!
//! Each JWK becomes one [`Key`] holding a verifier for every algorithm it
//! may be used with: the one its `alg` names, or, without `alg`, every
//! algorithm of its family (`kty`/`crv`). Keys for encryption (`use: enc`,
//! or `key_ops` without `verify`) and private keys are left out. A set in
//! which no key is usable is an error, so an empty set is never installed.

use crate::alg::{Algorithm, KeyFamily};
use crate::b64;
use crate::signature::{KeyMaterial, VerifyingKey};
use serde::Deserialize;
use std::fmt;

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys kept from one set.
pub const MAX_KEYS: usize = 64;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (bounds verification cost).
pub const MAX_RSA_BITS: usize = 8192;

/// One usable key.
#[derive(Debug, Clone)]
pub struct Key {
    /// `kid`, if the JWK has one.
    pub kid: Option<String>,
    /// Its family.
    pub family: KeyFamily,
    /// One verifier per algorithm the key may be used with.
    pub verifiers: Vec<VerifyingKey>,
}

impl Key {
    /// The verifier for `alg`, if this key may verify it.
    pub fn verifier(&self, alg: Algorithm) -> Option<&VerifyingKey> {
        self.verifiers.iter().find(|v| v.algorithm() == alg)
    }
}

/// A parsed key set.
#[derive(Debug, Clone)]
pub struct KeySet {
    /// Usable keys (never empty).
    pub keys: Vec<Key>,
    /// Why each left-out key was left out (for the log).
    pub skipped: Vec<String>,
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// Larger than [`MAX_JWKS_BYTES`].
    TooLarge(usize),
    /// Not a JSON object with a `keys` array.
    NotAKeySet(String),
    /// No key in it can verify a signature; the reasons per key follow.
    NoUsableKey(Vec<String>),
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::TooLarge(n) => write!(
                f,
                "the JWKS is {n} bytes; at most {MAX_JWKS_BYTES} are accepted"
            ),
            JwksError::NotAKeySet(e) => {
                write!(f, "not a JWKS (a JSON object with a \"keys\" array): {e}")
            }
            JwksError::NoUsableKey(why) if why.is_empty() => {
                f.write_str("the JWKS has no keys; an empty key set is never used")
            }
            JwksError::NoUsableKey(why) => write!(
                f,
                "no key of the JWKS can verify signatures: {}",
                why.join("; ")
            ),
        }
    }
}

impl std::error::Error for JwksError {}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    k: Option<String>,
    #[serde(default)]
    d: Option<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWKS document.
    pub fn from_json(bytes: &[u8]) -> Result<KeySet, JwksError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge(bytes.len()));
        }
        let raw: RawSet =
            serde_json::from_slice(bytes).map_err(|e| JwksError::NotAKeySet(e.to_string()))?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, value) in raw.keys.into_iter().enumerate() {
            if keys.len() >= MAX_KEYS {
                skipped.push(format!("keys[{i}] and later: more than {MAX_KEYS} keys"));
                break;
            }
            match serde_json::from_value::<RawJwk>(value)
                .map_err(|e| e.to_string())
                .and_then(build_key)
            {
                Ok(Some(k)) => keys.push(k),
                Ok(None) => {}
                Err(e) => skipped.push(format!("keys[{i}]: {e}")),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey(skipped));
        }
        Ok(KeySet { keys, skipped })
    }

    /// Keys that may verify a token with this `alg` and `kid`: with a `kid`,
    /// only keys carrying that `kid`; without one, every key of the family.
    pub fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a VerifyingKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| kid.is_none() || k.kid.as_deref() == kid)
            .filter_map(move |k| k.verifier(alg))
    }

    /// True when some key carries `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// `Ok(None)`: a key that is fine but not for signatures (left out quietly).
fn build_key(raw: RawJwk) -> Result<Option<Key>, String> {
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if let Some(ops) = &raw.key_ops {
        if !ops.iter().any(|o| o == "verify") {
            return Ok(None);
        }
    }
    if raw.d.is_some() {
        return Err("it is a private key; publish only public keys".into());
    }
    let field = |v: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
        let text = v
            .as_deref()
            .ok_or_else(|| format!("{} key without \"{name}\"", raw.kty))?;
        b64::decode_lenient(text).ok_or_else(|| format!("\"{name}\" is not base64url"))
    };
    let (family, material) = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => {
            let n = strip_leading_zeros(field(&raw.n, "n")?);
            let e = strip_leading_zeros(field(&raw.e, "e")?);
            let bits = n.len() * 8;
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(format!(
                    "RSA modulus of {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted"
                ));
            }
            if e.is_empty() || e.len() > 8 {
                return Err("RSA exponent out of range".into());
            }
            (KeyFamily::Rsa, KeyMaterial::Rsa { n, e })
        }
        ("EC", Some(crv)) => {
            let (family, len) = match crv {
                "P-256" => (KeyFamily::P256, 32),
                "P-384" => (KeyFamily::P384, 48),
                "P-521" => (KeyFamily::P521, 66),
                other => return Err(format!("EC curve {other:?} is not supported")),
            };
            let x = field(&raw.x, "x")?;
            let y = field(&raw.y, "y")?;
            if x.len() != len || y.len() != len {
                return Err(format!("{crv} coordinates must be {len} bytes each"));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (family, KeyMaterial::EcPoint(point))
        }
        ("OKP", Some("Ed25519")) => {
            let x = field(&raw.x, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 \"x\" must be 32 bytes".into());
            }
            (KeyFamily::Ed25519, KeyMaterial::Ed25519(x))
        }
        ("oct", _) => {
            let k = field(&raw.k, "k")?;
            (KeyFamily::Oct, KeyMaterial::Secret(k))
        }
        (kty, crv) => {
            return Err(format!(
                "kty {kty:?}{} is not supported",
                crv.map(|c| format!(" with crv {c:?}")).unwrap_or_default()
            ))
        }
    };
    let algs: Vec<Algorithm> = match raw.alg.as_deref() {
        Some(name) => {
            let alg = Algorithm::from_name(name)
                .ok_or_else(|| format!("alg {name:?} is not supported"))?;
            if alg.family() != family {
                return Err(format!("alg {name} does not fit a {family:?} key"));
            }
            vec![alg]
        }
        None => Algorithm::for_family(family).collect(),
    };
    let mut verifiers = Vec::new();
    let mut last_err = String::new();
    for alg in algs {
        if let KeyMaterial::Secret(k) = &material {
            if k.len() < min_secret_len(alg) {
                last_err = format!(
                    "{alg} needs a secret of at least {} bytes",
                    min_secret_len(alg)
                );
                continue;
            }
        }
        match VerifyingKey::new(alg, &material) {
            Ok(v) => verifiers.push(v),
            Err(e) => last_err = e,
        }
    }
    if verifiers.is_empty() {
        return Err(last_err);
    }
    Ok(Some(Key {
        kid: raw.kid,
        family,
        verifiers,
    }))
}

/// RFC 7518 §3.2: an HMAC key as long as the hash output.
fn min_secret_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::Hs384 => 48,
        Algorithm::Hs512 => 64,
        _ => 32,
    }
}

fn strip_leading_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys;

    #[test]
    fn parses_every_family() {
        let set = KeySet::from_json(testkeys::JWKS_ALL.as_bytes()).unwrap();
        assert!(set.skipped.is_empty(), "{:?}", set.skipped);
        assert!(set.has_kid("rsa1"));
        assert_eq!(set.candidates(Algorithm::Rs256, Some("rsa1")).count(), 1);
        assert_eq!(set.candidates(Algorithm::Ps512, Some("rsa1")).count(), 1);
        assert_eq!(set.candidates(Algorithm::Es256, None).count(), 1);
        assert_eq!(set.candidates(Algorithm::Es512, None).count(), 1);
        assert_eq!(set.candidates(Algorithm::EdDsa, None).count(), 1);
        assert_eq!(set.candidates(Algorithm::Hs256, None).count(), 1);
        assert_eq!(set.candidates(Algorithm::Hs512, None).count(), 1);
        assert_eq!(set.candidates(Algorithm::Es256, Some("rsa1")).count(), 0);
    }

    #[test]
    fn refuses_empty_and_garbage() {
        assert_eq!(
            KeySet::from_json(br#"{"keys":[]}"#).unwrap_err(),
            JwksError::NoUsableKey(vec![])
        );
        assert!(matches!(
            KeySet::from_json(b"[]"),
            Err(JwksError::NotAKeySet(_))
        ));
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        assert!(matches!(
            KeySet::from_json(&big),
            Err(JwksError::TooLarge(_))
        ));
    }

    #[test]
    fn leaves_out_unusable_keys() {
        let e = KeySet::from_json(
            br#"{"keys":[
              {"kty":"EC","crv":"P-256","x":"AA","y":"AA"},
              {"kty":"RSA","n":"AQAB","e":"AQAB"},
              {"kty":"oct","k":"c2hvcnQ"},
              {"kty":"OKP","crv":"X25519","x":"AA"},
              {"kty":"EC","crv":"P-256","alg":"RS256","x":"AA","y":"AA"},
              {"kty":"oct","k":"AAAA","d":"x"},
              {"kty":"oct","use":"enc","k":"AAAA"}
            ]}"#,
        )
        .unwrap_err();
        let JwksError::NoUsableKey(why) = e else {
            panic!("{e:?}")
        };
        assert_eq!(why.len(), 6, "{why:?}");
        assert!(why[1].contains("modulus"), "{why:?}");
        assert!(why[2].contains("needs a secret of at least"), "{why:?}");
        assert!(why[5].contains("private"), "{why:?}");
    }
}
