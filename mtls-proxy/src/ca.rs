//! The built-in certificate authority: `ca init` and `ca issue`.
//!
//! Keys are ECDSA P-256. Leaf certificates are X509-SVID-shaped: one SPIFFE URI
//! SAN (plus optional DNS SANs), key usage `digitalSignature`, extended key
//! usages `serverAuth` and `clientAuth`, so one certificate serves both sides.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::spiffe::{SpiffeError, SpiffeId};

/// File name of the CA certificate inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a CA directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// File names `ca issue` writes into its output directory.
pub const LEAF_CERT_FILE: &str = "cert.pem";
/// See [`LEAF_CERT_FILE`].
pub const LEAF_KEY_FILE: &str = "key.pem";

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `ca init` would overwrite an existing CA.
    #[error("{0} already exists; refusing to overwrite a CA (pass --force to replace it)")]
    Exists(PathBuf),
    /// Certificate generation or parsing failed.
    #[error("certificate operation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The requested SPIFFE id is invalid.
    #[error(transparent)]
    Spiffe(#[from] SpiffeError),
    /// A DNS name could not be encoded.
    #[error("invalid DNS name {0:?}")]
    Dns(String),
    /// The requested lifetime is zero or too long to represent.
    #[error("invalid ttl: must be between 1s and 100 years")]
    Ttl,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `contents` to `path` atomically (temp file in the same directory,
/// then rename), so a watcher never sees a half-written file.
pub fn write_atomic(path: &Path, contents: &[u8], private: bool) -> Result<(), CaError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if private { 0o600 } else { 0o644 });
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(contents).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// A loaded CA able to sign leaf certificates.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// What to put in a leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafRequest {
    /// SPIFFE id for the URI SAN.
    pub spiffe_id: Option<SpiffeId>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// Subject common name.
    pub common_name: Option<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl LeafRequest {
    /// A request valid for `ttl` from now, back-dated by a tenth of `ttl`
    /// (at most one minute) to tolerate clock skew between peers.
    pub fn with_ttl(spiffe_id: Option<SpiffeId>, ttl: Duration) -> Result<Self, CaError> {
        let now = OffsetDateTime::now_utc();
        let ttl = time::Duration::try_from(ttl).map_err(|_| CaError::Ttl)?;
        if ttl <= time::Duration::ZERO || ttl > time::Duration::days(36_500) {
            return Err(CaError::Ttl);
        }
        Ok(LeafRequest {
            spiffe_id,
            dns_names: Vec::new(),
            common_name: None,
            not_before: now - (ttl / 10i32).min(time::Duration::minutes(1)),
            not_after: now + ttl,
        })
    }
}

/// A freshly issued leaf certificate and its key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Leaf certificate PEM.
    pub cert_pem: String,
    /// PKCS#8 private key PEM.
    pub key_pem: String,
    /// Leaf certificate DER.
    pub cert_der: Vec<u8>,
}

impl Issued {
    /// Writes `cert.pem`, `key.pem` (mode 0600) and `ca.pem` into `dir`.
    pub fn write_to(&self, dir: &Path, ca_pem: &str) -> Result<(), CaError> {
        write_atomic(&dir.join(LEAF_KEY_FILE), self.key_pem.as_bytes(), true)?;
        write_atomic(&dir.join(LEAF_CERT_FILE), self.cert_pem.as_bytes(), false)?;
        write_atomic(&dir.join(CA_CERT_FILE), ca_pem.as_bytes(), false)
    }
}

impl Ca {
    /// Generates a new self-signed root valid for `ttl`, named `common_name`.
    pub fn generate(common_name: &str, ttl: Duration) -> Result<Self, CaError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Palisade");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::try_from(ttl).map_err(|_| CaError::Ttl)?;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// `ca init`: generates a CA and writes `ca.pem` and `ca-key.pem` into `dir`.
    pub fn init(
        dir: &Path,
        common_name: &str,
        ttl: Duration,
        force: bool,
    ) -> Result<Self, CaError> {
        let cert_path = dir.join(CA_CERT_FILE);
        if !force && cert_path.exists() {
            return Err(CaError::Exists(cert_path));
        }
        let ca = Ca::generate(common_name, ttl)?;
        write_atomic(&dir.join(CA_KEY_FILE), ca.key_pem().as_bytes(), true)?;
        write_atomic(&cert_path, ca.cert_pem.as_bytes(), false)?;
        Ok(ca)
    }

    /// Loads a CA written by [`Ca::init`].
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Ca { cert_pem, issuer })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a leaf certificate with a fresh key.
    pub fn issue(&self, req: &LeafRequest) -> Result<Issued, CaError> {
        let mut params = CertificateParams::default();
        if let Some(cn) = &req.common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, cn.as_str());
        } else {
            params.distinguished_name = rcgen::DistinguishedName::new();
        }
        if let Some(id) = &req.spiffe_id {
            params.subject_alt_names.push(SanType::URI(
                id.to_string()
                    .try_into()
                    .map_err(|_| CaError::Dns(id.to_string()))?,
            ));
        }
        for d in &req.dns_names {
            params.subject_alt_names.push(SanType::DnsName(
                d.as_str().try_into().map_err(|_| CaError::Dns(d.clone()))?,
            ));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = req.not_before;
        params.not_after = req.not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PeerIdentity;

    #[test]
    fn init_load_issue() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(dir.path(), "test CA", Duration::from_secs(3600), false).unwrap();
        assert!(matches!(
            Ca::init(dir.path(), "again", Duration::from_secs(3600), false),
            Err(CaError::Exists(_))
        ));
        let loaded = Ca::load(dir.path()).unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        let mut req = LeafRequest::with_ttl(
            Some(SpiffeId::parse("spiffe://td/ns/x/sa/y").unwrap()),
            Duration::from_secs(86_400),
        )
        .unwrap();
        req.dns_names.push("y.x.svc".into());
        let leaf = loaded.issue(&req).unwrap();
        let id = PeerIdentity::from_der(&leaf.cert_der).unwrap();
        assert_eq!(id.uris, vec!["spiffe://td/ns/x/sa/y"]);
        assert_eq!(id.dns_names, vec!["y.x.svc"]);
        let out = dir.path().join("leaf");
        leaf.write_to(&out, loaded.cert_pem()).unwrap();
        for f in [LEAF_CERT_FILE, LEAF_KEY_FILE, CA_CERT_FILE] {
            assert!(out.join(f).is_file(), "{f}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.join(LEAF_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn refuses_zero_ttl() {
        assert!(matches!(
            LeafRequest::with_ttl(None, Duration::ZERO),
            Err(CaError::Ttl)
        ));
    }
}
