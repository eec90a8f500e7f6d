//! Signature verification for one algorithm and one public key.
//!
//! jwt-simple (its pure-Rust build, which compiles for wasm32-wasip1)
//! checks RS*, PS*, ES256, ES384, EdDSA and HS*; jwt-simple has no ES512, so
//! that one goes through RustCrypto's `p521`. jwt-simple verifies the whole
//! compact token and then reads its claims; the claims checks that matter
//! are done by [`crate::verify`] before this runs, so jwt-simple's own are
//! set up to agree with them (same clock, same skew).

use crate::alg::Algorithm;
use jwt_simple::prelude::*;
use jwt_simple::JWTError;
use p521::ecdsa::signature::Verifier as _;
use std::fmt;

/// A public (or, for HS*, shared) key ready to verify one algorithm.
#[derive(Clone)]
pub enum VerifyingKey {
    /// RS256.
    Rs256(RS256PublicKey),
    /// RS384.
    Rs384(RS384PublicKey),
    /// RS512.
    Rs512(RS512PublicKey),
    /// PS256.
    Ps256(PS256PublicKey),
    /// PS384.
    Ps384(PS384PublicKey),
    /// PS512.
    Ps512(PS512PublicKey),
    /// ES256.
    Es256(ES256PublicKey),
    /// ES384.
    Es384(ES384PublicKey),
    /// ES512 (p521).
    Es512(p521::ecdsa::VerifyingKey),
    /// EdDSA over Ed25519.
    EdDsa(Ed25519PublicKey),
    /// HS256.
    Hs256(HS256Key),
    /// HS384.
    Hs384(HS384Key),
    /// HS512.
    Hs512(HS512Key),
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.algorithm())
    }
}

/// The raw key material of a JWK, already base64url-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// RSA modulus and exponent (big-endian).
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// An uncompressed EC point, `0x04 || x || y`.
    EcPoint(Vec<u8>),
    /// An Ed25519 public key.
    Ed25519(Vec<u8>),
    /// HMAC secret.
    Secret(Vec<u8>),
}

/// Why a signature check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// The signature does not verify under this key.
    Mismatch,
    /// The verifier refused the token for another reason (its message).
    Refused(String),
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::Mismatch => f.write_str("the signature does not verify"),
            SignatureError::Refused(m) => {
                write!(f, "the signature verifier refused the token: {m}")
            }
        }
    }
}

/// What jwt-simple's own claim checks use, so they agree with ours.
#[derive(Debug, Clone, Copy)]
pub struct CheckTime {
    /// Now, Unix seconds.
    pub now: u64,
    /// Accepted clock skew, seconds.
    pub skew: u64,
}

impl VerifyingKey {
    /// Builds the key for `alg` from JWK material; `Err` says why not.
    pub fn new(alg: Algorithm, material: &KeyMaterial) -> Result<VerifyingKey, String> {
        let err = |e: jwt_simple::Error| format!("not a valid {alg} key: {e}");
        let key = match (alg, material) {
            (Algorithm::Rs256, KeyMaterial::Rsa { n, e }) => {
                VerifyingKey::Rs256(RS256PublicKey::from_components(n, e).map_err(err)?)
            }
            (Algorithm::Rs384, KeyMaterial::Rsa { n, e }) => {
                VerifyingKey::Rs384(RS384PublicKey::from_components(n, e).map_err(err)?)
            }
            (Algorithm::Rs512, KeyMaterial::Rsa { n, e }) => {
                VerifyingKey::Rs512(RS512PublicKey::from_components(n, e).map_err(err)?)
            }
            (Algorithm::Ps256, KeyMaterial::Rsa { n, e }) => {
                VerifyingKey::Ps256(PS256PublicKey::from_components(n, e).map_err(err)?)
            }
            (Algorithm::Ps384, KeyMaterial::Rsa { n, e }) => {
                VerifyingKey::Ps384(PS384PublicKey::from_components(n, e).map_err(err)?)
            }
            (Algorithm::Ps512, KeyMaterial::Rsa { n, e }) => {
                VerifyingKey::Ps512(PS512PublicKey::from_components(n, e).map_err(err)?)
            }
            (Algorithm::Es256, KeyMaterial::EcPoint(p)) => {
                VerifyingKey::Es256(ES256PublicKey::from_bytes(p).map_err(err)?)
            }
            (Algorithm::Es384, KeyMaterial::EcPoint(p)) => {
                VerifyingKey::Es384(ES384PublicKey::from_bytes(p).map_err(err)?)
            }
            (Algorithm::Es512, KeyMaterial::EcPoint(p)) => VerifyingKey::Es512(
                p521::ecdsa::VerifyingKey::from_sec1_bytes(p)
                    .map_err(|_| format!("not a valid {alg} key: not a point on P-521"))?,
            ),
            (Algorithm::EdDsa, KeyMaterial::Ed25519(x)) => {
                VerifyingKey::EdDsa(Ed25519PublicKey::from_bytes(x).map_err(err)?)
            }
            (Algorithm::Hs256, KeyMaterial::Secret(k)) => {
                VerifyingKey::Hs256(HS256Key::from_bytes(k))
            }
            (Algorithm::Hs384, KeyMaterial::Secret(k)) => {
                VerifyingKey::Hs384(HS384Key::from_bytes(k))
            }
            (Algorithm::Hs512, KeyMaterial::Secret(k)) => {
                VerifyingKey::Hs512(HS512Key::from_bytes(k))
            }
            _ => return Err(format!("the key material does not fit {alg}")),
        };
        Ok(key)
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            VerifyingKey::Rs256(_) => Algorithm::Rs256,
            VerifyingKey::Rs384(_) => Algorithm::Rs384,
            VerifyingKey::Rs512(_) => Algorithm::Rs512,
            VerifyingKey::Ps256(_) => Algorithm::Ps256,
            VerifyingKey::Ps384(_) => Algorithm::Ps384,
            VerifyingKey::Ps512(_) => Algorithm::Ps512,
            VerifyingKey::Es256(_) => Algorithm::Es256,
            VerifyingKey::Es384(_) => Algorithm::Es384,
            VerifyingKey::Es512(_) => Algorithm::Es512,
            VerifyingKey::EdDsa(_) => Algorithm::EdDsa,
            VerifyingKey::Hs256(_) => Algorithm::Hs256,
            VerifyingKey::Hs384(_) => Algorithm::Hs384,
            VerifyingKey::Hs512(_) => Algorithm::Hs512,
        }
    }

    /// Verifies the compact token `token` whose signing input
    /// (`header.payload`) and decoded signature are given.
    pub fn verify(
        &self,
        token: &str,
        signing_input: &[u8],
        signature: &[u8],
        time: CheckTime,
    ) -> Result<(), SignatureError> {
        let options = || VerificationOptions {
            accept_future: true,
            time_tolerance: Some(Duration::from_secs(time.skew)),
            artificial_time: Some(UnixTimeStamp::from_secs(time.now)),
            max_token_length: None,
            max_header_length: Some(crate::token::MAX_HEADER_BYTES * 2),
            ..Default::default()
        };
        let r = match self {
            VerifyingKey::Rs256(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::Rs384(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::Rs512(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::Ps256(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::Ps384(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::Ps512(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::Es256(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::Es384(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::EdDsa(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::Hs256(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::Hs384(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::Hs512(k) => k.verify_token::<NoCustomClaims>(token, Some(options())),
            VerifyingKey::Es512(k) => return verify_es512(k, signing_input, signature),
        };
        r.map(|_| ()).map_err(classify)
    }
}

fn verify_es512(
    key: &p521::ecdsa::VerifyingKey,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    // JWS ECDSA signatures are R || S, 66 bytes each for P-521.
    let sig = p521::ecdsa::Signature::from_slice(signature)
        .map_err(|_| SignatureError::Refused("not a 132-byte P-521 signature".into()))?;
    key.verify(signing_input, &sig)
        .map_err(|_| SignatureError::Mismatch)
}

fn classify(e: jwt_simple::Error) -> SignatureError {
    match e.downcast_ref::<JWTError>() {
        Some(JWTError::InvalidSignature | JWTError::InvalidAuthenticationTag) => {
            SignatureError::Mismatch
        }
        _ => SignatureError::Refused(e.to_string()),
    }
}
