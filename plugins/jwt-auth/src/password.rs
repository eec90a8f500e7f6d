//! Password hashes for HTTP Basic: Argon2id in PHC string form
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), from RustCrypto's
//! `argon2` (pure Rust, builds for `wasm32-wasip1`, needs no randomness to
//! verify). The cost parameters travel in the string; a configuration is
//! refused when they are too weak to be a slow hash or so heavy that one
//! check would stall an Envoy worker.

use argon2::{Algorithm, Argon2, CustomizedPasswordHasher, Params, PasswordVerifier, Version};
use serde::{Deserialize, Deserializer};
use std::fmt;

/// Least memory cost accepted, KiB (OWASP's lowest Argon2id setting).
pub const MIN_MEMORY_KIB: u32 = 7 * 1024;
/// Most memory cost accepted, KiB (one check allocates this much).
pub const MAX_MEMORY_KIB: u32 = 64 * 1024;
/// Most passes accepted.
pub const MAX_PASSES: u32 = 10;
/// Most lanes accepted (computed one after another in a Wasm VM).
pub const MAX_LANES: u32 = 4;

/// The cost `palisade-consumer` hashes new passwords with: OWASP's first
/// Argon2id recommendation (19 MiB, 2 passes, 1 lane). The `basic` bench
/// measures one check at this cost.
pub const DEFAULT_COST: Cost = Cost {
    memory_kib: 19 * 1024,
    passes: 2,
    lanes: 1,
};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// `m`, KiB.
    pub memory_kib: u32,
    /// `t`.
    pub passes: u32,
    /// `p`.
    pub lanes: u32,
}

/// A validated Argon2id password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    phc: argon2::PasswordHash,
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(argon2id)")
    }
}

/// Why a password hash was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashError {
    /// Not a PHC string.
    Malformed(String),
    /// Another algorithm or version than Argon2id v=19.
    Algorithm(String),
    /// Cost outside the accepted range.
    Cost(String),
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashError::Malformed(e) => write!(
                f,
                "not a PHC password hash ({e}); print one with palisade-consumer"
            ),
            HashError::Algorithm(a) => write!(
                f,
                "{a} is not accepted: use Argon2id version 19 ($argon2id$v=19$...)"
            ),
            HashError::Cost(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HashError {}

impl PasswordHash {
    /// Parses and checks a PHC string.
    pub fn parse(text: &str) -> Result<PasswordHash, HashError> {
        let phc =
            argon2::PasswordHash::new(text).map_err(|e| HashError::Malformed(e.to_string()))?;
        if phc.algorithm.as_str() != "argon2id" || phc.version != Some(0x13) {
            return Err(HashError::Algorithm(format!(
                "{} v={:?}",
                phc.algorithm.as_str(),
                phc.version
            )));
        }
        if phc.salt.is_none() || phc.hash.is_none() {
            return Err(HashError::Malformed("salt or hash missing".into()));
        }
        let params = Params::try_from(&phc).map_err(|e| HashError::Malformed(e.to_string()))?;
        let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
        if !(MIN_MEMORY_KIB..=MAX_MEMORY_KIB).contains(&m) || t > MAX_PASSES || p > MAX_LANES {
            return Err(HashError::Cost(format!(
                "cost m={m},t={t},p={p} is outside m={MIN_MEMORY_KIB}..={MAX_MEMORY_KIB} KiB, t<={MAX_PASSES}, p<={MAX_LANES}"
            )));
        }
        if u64::from(m) * u64::from(t) < u64::from(MIN_MEMORY_KIB) * 2 {
            return Err(HashError::Cost(format!(
                "cost m={m},t={t} is too cheap for a password hash: use m*t >= {}",
                MIN_MEMORY_KIB * 2
            )));
        }
        Ok(PasswordHash { phc })
    }

    /// Hashes `password` with `salt` (at least 16 random bytes) at `cost`.
    pub fn create(password: &[u8], salt: &[u8], cost: Cost) -> Result<PasswordHash, HashError> {
        let params = Params::new(cost.memory_kib, cost.passes, cost.lanes, None)
            .map_err(|e| HashError::Cost(e.to_string()))?;
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_customized(password, salt, None, None, params)
            .map_err(|e| HashError::Malformed(e.to_string()))?;
        PasswordHash::parse(&phc.to_string())
    }

    /// True when `password` hashes to this hash (the comparison of the
    /// outputs is constant-time).
    pub fn verify(&self, password: &[u8]) -> bool {
        Argon2::default()
            .verify_password(password, &self.phc)
            .is_ok()
    }

    /// The PHC string.
    pub fn to_phc_string(&self) -> String {
        self.phc.to_string()
    }
}

impl<'de> Deserialize<'de> for PasswordHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PasswordHash::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The cheapest accepted cost, so unit tests stay fast.
    pub(crate) const TEST_COST: Cost = Cost {
        memory_kib: MIN_MEMORY_KIB,
        passes: 2,
        lanes: 1,
    };

    #[test]
    fn creates_verifies_and_round_trips() {
        let h = PasswordHash::create(b"s3cret", b"0123456789abcdef", TEST_COST).unwrap();
        assert!(h
            .to_phc_string()
            .starts_with("$argon2id$v=19$m=7168,t=2,p=1$"));
        assert!(h.verify(b"s3cret"));
        assert!(!h.verify(b"s3cret "));
        assert!(!h.verify(b""));
        let back = PasswordHash::parse(&h.to_phc_string()).unwrap();
        assert!(back.verify(b"s3cret"));
        assert_eq!(format!("{back:?}"), "PasswordHash(argon2id)");
    }

    #[test]
    fn refuses_other_algorithms_and_costs() {
        let h = PasswordHash::create(b"pw", b"0123456789abcdef", TEST_COST)
            .unwrap()
            .to_phc_string();
        assert!(matches!(
            PasswordHash::parse(&h.replace("argon2id", "argon2i")),
            Err(HashError::Algorithm(_))
        ));
        assert!(matches!(
            PasswordHash::parse(&h.replace("m=7168", "m=1024")),
            Err(HashError::Cost(_))
        ));
        assert!(matches!(
            PasswordHash::parse(&h.replace("t=2", "t=1")),
            Err(HashError::Cost(_))
        ));
        assert!(matches!(
            PasswordHash::parse(&h.replace("m=7168", "m=1048576")),
            Err(HashError::Cost(_))
        ));
        assert!(matches!(
            PasswordHash::parse("plaintext"),
            Err(HashError::Malformed(_))
        ));
        assert!(PasswordHash::create(b"pw", b"short", TEST_COST).is_err());
    }
}
