//! TLS policy, certificate material and the rustls configs built from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion,
};

use crate::identity::{AllowList, IdentityError, IdentityRefused, PeerIdentity};
use crate::spiffe::SpiffePattern;

/// TLS policy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// TLS 1.3 only.
    #[default]
    Modern,
    /// TLS 1.2 and 1.3, ECDHE key exchange with AEAD ciphers only.
    Compatible,
    /// The aws-lc-rs FIPS provider. Needs the `fips` cargo feature (see README).
    Fips,
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Policy::Modern => "modern",
            Policy::Compatible => "compatible",
            Policy::Fips => "fips",
        })
    }
}

/// Whether this binary can run `policy = "fips"`, with the reason when not.
pub fn fips_status() -> Result<(), &'static str> {
    #[cfg(feature = "fips")]
    {
        if rustls::crypto::default_fips_provider().fips() {
            Ok(())
        } else {
            Err("built with the `fips` feature, but the aws-lc-rs provider does not report FIPS mode; policy \"fips\" is refused")
        }
    }
    #[cfg(not(feature = "fips"))]
    Err("not available in this build: build with `--features fips` (aws-lc-fips-sys, needs cmake and Go: scripts/install-build-deps --fips); policy \"fips\" is refused")
}

/// Why TLS material or a TLS config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file had no PEM block of the expected kind, or a bad one.
    #[error("{path}: {what}; expected PEM")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// A CA bundle certificate was refused as a trust anchor.
    #[error("{path}: CA certificate not usable as a trust anchor: {source}")]
    TrustAnchor {
        /// The bundle.
        path: PathBuf,
        /// The cause.
        source: rustls::Error,
    },
    /// The leaf certificate could not be read.
    #[error("{path}: {source}")]
    Identity {
        /// The certificate file.
        path: PathBuf,
        /// The cause.
        source: IdentityError,
    },
    /// rustls refused the configuration (e.g. key does not match certificate).
    #[error("TLS configuration refused: {0} (does the key match the certificate?)")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// `policy = "fips"` in a build without FIPS.
    #[error("policy \"fips\" is {0}")]
    FipsUnavailable(&'static str),
}

/// Where the certificate, key and CA bundle live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// Own certificate chain (leaf first), PEM.
    pub cert: PathBuf,
    /// Own private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA bundle used to verify peers, PEM.
    pub ca: PathBuf,
}

/// Loaded certificate material.
#[derive(Debug)]
pub struct Material {
    /// Own chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Own key.
    pub key: PrivateKeyDer<'static>,
    /// Trust anchors for peers.
    pub roots: Arc<RootCertStore>,
    /// Identity of the own leaf certificate.
    pub leaf: PeerIdentity,
    /// Earliest `notAfter` of the CA bundle, seconds since the epoch.
    pub ca_not_after_unix: i64,
    /// SHA-256 over the three files' bytes; changes when any file changes.
    pub fingerprint: String,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn certs(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: format!("bad certificate PEM ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

/// Hash of the three files' current contents, cheap enough to poll.
pub fn fingerprint(paths: &CertPaths) -> Result<String, TlsError> {
    let mut all = Vec::new();
    for p in [&paths.cert, &paths.key, &paths.ca] {
        all.extend_from_slice(&read(p)?);
        all.push(0);
    }
    Ok(crate::identity::sha256_hex(&all))
}

impl Material {
    /// Reads and checks the files. Symlinks are followed at read time, so a
    /// Kubernetes `..data` swap is seen as a change of contents.
    pub fn load(paths: &CertPaths) -> Result<Self, TlsError> {
        let cert_bytes = read(&paths.cert)?;
        let key_bytes = read(&paths.key)?;
        let ca_bytes = read(&paths.ca)?;
        let chain = certs(&paths.cert, &cert_bytes)?;
        let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::Pem {
            path: paths.key.clone(),
            what: format!("no usable PRIVATE KEY block ({e})"),
        })?;
        let mut roots = RootCertStore::empty();
        let mut ca_not_after_unix = i64::MAX;
        for ca in certs(&paths.ca, &ca_bytes)? {
            if let Ok(id) = PeerIdentity::from_der(&ca) {
                ca_not_after_unix = ca_not_after_unix.min(id.not_after_unix);
            }
            roots.add(ca).map_err(|source| TlsError::TrustAnchor {
                path: paths.ca.clone(),
                source,
            })?;
        }
        let leaf = PeerIdentity::from_der(&chain[0]).map_err(|source| TlsError::Identity {
            path: paths.cert.clone(),
            source,
        })?;
        let mut all = cert_bytes;
        all.push(0);
        all.extend_from_slice(&key_bytes);
        all.push(0);
        all.extend_from_slice(&ca_bytes);
        all.push(0);
        Ok(Material {
            chain,
            key,
            roots: Arc::new(roots),
            leaf,
            ca_not_after_unix,
            fingerprint: crate::identity::sha256_hex(&all),
        })
    }
}

/// The crypto provider for a policy: aws-lc-rs with the suites the policy allows.
pub fn provider(policy: Policy) -> Result<Arc<CryptoProvider>, TlsError> {
    use rustls::CipherSuite as C;
    let base = rustls::crypto::aws_lc_rs::default_provider();
    let allowed: &[C] = match policy {
        Policy::Modern => &[
            C::TLS13_AES_256_GCM_SHA384,
            C::TLS13_AES_128_GCM_SHA256,
            C::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        Policy::Compatible => &[
            C::TLS13_AES_256_GCM_SHA384,
            C::TLS13_AES_128_GCM_SHA256,
            C::TLS13_CHACHA20_POLY1305_SHA256,
            C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        Policy::Fips => {
            fips_status().map_err(TlsError::FipsUnavailable)?;
            #[cfg(feature = "fips")]
            return Ok(Arc::new(rustls::crypto::default_fips_provider()));
            #[cfg(not(feature = "fips"))]
            unreachable!("fips_status() is an error without the fips feature");
        }
    };
    let cipher_suites: Vec<SupportedCipherSuite> = base
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| allowed.contains(&s.suite()))
        .collect();
    Ok(Arc::new(CryptoProvider {
        cipher_suites,
        ..base
    }))
}

/// Protocol versions a policy allows.
pub fn versions(policy: Policy) -> &'static [&'static SupportedProtocolVersion] {
    static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    static TLS12_UP: &[&SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    match policy {
        Policy::Modern | Policy::Fips => TLS13_ONLY,
        Policy::Compatible => TLS12_UP,
    }
}

/// Verifies client chains with webpki, then applies the allow-list.
#[derive(Debug)]
struct AllowListVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allow: Arc<AllowList>,
}

fn refused(r: IdentityRefused) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(r))))
}

impl ClientCertVerifier for AllowListVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let peer = PeerIdentity::from_der(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        self.allow.check(&peer).map_err(refused)?;
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Server-side config: own cert, mandatory client certs checked against the
/// CA bundle and `allow`, ALPN `http/1.1`.
pub fn server_config(
    policy: Policy,
    material: &Material,
    allow: Arc<AllowList>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider(policy)?;
    let inner =
        WebPkiClientVerifier::builder_with_provider(material.roots.clone(), provider.clone())
            .build()?;
    let verifier = Arc::new(AllowListVerifier { inner, allow });
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(policy))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(material.chain.clone(), material.key.clone_key())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Why a server certificate was refused by the SPIFFE check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "server SPIFFE id {presented:?} is not one of the expected ids; check client.server_spiffe_ids"
)]
pub struct ServerIdRefused {
    /// What the server presented (`None`: no SPIFFE URI SAN).
    pub presented: Option<String>,
}

/// Verifies server chains; then, if SPIFFE patterns are configured, the
/// server's SPIFFE id instead of the DNS name (SVIDs often have no DNS SAN).
#[derive(Debug)]
struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    expected: Vec<SpiffePattern>,
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if self.expected.is_empty() {
            rustls::client::verify_server_name(&cert, server_name)?;
        } else {
            let peer = PeerIdentity::from_der(end_entity)
                .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
            let id = peer.spiffe_id();
            if !id
                .as_ref()
                .is_some_and(|id| self.expected.iter().any(|p| p.matches(id)))
            {
                return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(ServerIdRefused {
                        presented: id.map(|i| i.to_string()),
                    })),
                )));
            }
        }
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client-side config: own cert as client cert, server verified against the
/// CA bundle and (if given) the expected SPIFFE ids.
pub fn client_config(
    policy: Policy,
    material: &Material,
    expected: Vec<SpiffePattern>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider(policy)?;
    let verifier = Arc::new(SpiffeServerVerifier {
        roots: material.roots.clone(),
        provider: provider.clone(),
        expected,
    });
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(policy))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(material.chain.clone(), material.key.clone_key())?;
    Ok(Arc::new(cfg))
}

/// A stable, low-cardinality reason for a failed handshake, for logs and metrics.
pub fn failure_reason(err: &rustls::Error) -> &'static str {
    use rustls::Error as E;
    use CertificateError as CE;
    match err {
        E::NoCertificatesPresented => "no_client_certificate",
        E::InvalidCertificate(ce) => match ce {
            CE::UnknownIssuer => "unknown_ca",
            CE::Expired | CE::ExpiredContext { .. } => "expired",
            CE::NotValidYet | CE::NotValidYetContext { .. } => "not_yet_valid",
            CE::Revoked => "revoked",
            CE::BadSignature | CE::UnsupportedSignatureAlgorithmContext { .. } => "bad_signature",
            CE::NotValidForName | CE::NotValidForNameContext { .. } => "wrong_name",
            CE::InvalidPurpose | CE::InvalidPurposeContext { .. } => "wrong_key_usage",
            CE::Other(OtherError(e)) if e.downcast_ref::<IdentityRefused>().is_some() => {
                "identity_not_allowed"
            }
            CE::Other(OtherError(e)) if e.downcast_ref::<ServerIdRefused>().is_some() => {
                "wrong_server_spiffe_id"
            }
            _ => "bad_certificate",
        },
        E::PeerIncompatible(_) | E::NoApplicationProtocol => "incompatible_peer",
        E::AlertReceived(_) => "alert_received",
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => "not_tls",
        _ => "tls_error",
    }
}

/// A human message for a handshake error; for allow-list refusals it names
/// the presented identity and what to change.
pub fn describe(err: &rustls::Error) -> String {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(e))) => e.to_string(),
        other => other.to_string(),
    }
}

/// Finds the rustls error inside an I/O error from tokio-rustls.
pub fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_is_tls13_only() {
        let p = provider(Policy::Modern).unwrap();
        assert!(!p.cipher_suites.is_empty());
        assert!(p
            .cipher_suites
            .iter()
            .all(|s| s.version() == &rustls::version::TLS13));
        assert_eq!(versions(Policy::Modern).len(), 1);
    }

    #[test]
    fn compatible_has_only_ecdhe_aead_tls12() {
        let p = provider(Policy::Compatible).unwrap();
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert!(names.iter().any(|n| n.starts_with("TLS_ECDHE_")));
        for n in &names {
            assert!(
                n.starts_with("TLS13_")
                    || (n.starts_with("TLS_ECDHE_")
                        && (n.contains("GCM") || n.contains("CHACHA20_POLY1305"))),
                "{n}"
            );
        }
    }

    #[cfg(not(feature = "fips"))]
    #[test]
    fn fips_is_refused_plainly() {
        let err = provider(Policy::Fips).unwrap_err();
        assert!(err.to_string().contains("cmake and Go"), "{err}");
    }

    #[cfg(feature = "fips")]
    #[test]
    fn fips_provider_reports_fips() {
        assert!(fips_status().is_ok());
        assert!(provider(Policy::Fips).unwrap().fips());
    }

    #[test]
    fn reasons_are_stable() {
        assert_eq!(
            failure_reason(&rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )),
            "unknown_ca"
        );
        assert_eq!(
            failure_reason(&refused(IdentityRefused {
                spiffe_id: None,
                dns_names: vec![],
                common_names: vec![]
            })),
            "identity_not_allowed"
        );
        assert_eq!(
            failure_reason(&rustls::Error::NoCertificatesPresented),
            "no_client_certificate"
        );
    }
}
