//! TLS policy modes seen from a real client: `modern` refuses TLS 1.2,
//! `compatible` accepts TLS 1.2 only with ECDHE AEAD suites.

mod common;

use std::sync::Arc;

use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A client limited to TLS 1.2 and the given suites.
fn tls12_client(
    pki: &Pki,
    leaf: &mtls_proxy::ca::Issued,
    suites: &[rustls::CipherSuite],
) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .retain(|s| suites.contains(&s.suite()));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pki.ca.cert_pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from(leaf.cert_der.clone())],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    )
}

#[tokio::test]
async fn modern_refuses_tls12_compatible_accepts_ecdhe_aead() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    let leaf = pki.leaf(Some(WEB_ID), &[]);
    let gcm = [rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];

    let modern = pki.start_server(up.addr, ALLOW_WEB, "").await;
    let err = request_once(modern.listen_addr, tls12_client(&pki, &leaf, &gcm), &[])
        .await
        .unwrap_err();
    assert!(err.contains("handshake"), "{err}");
    let m = modern.metrics.clone();
    eventually("modern refused TLS 1.2", || {
        m.handshake_failures("incompatible_peer") == 1
    })
    .await;
    // TLS 1.3 still works.
    let (s, _) = request_once(
        modern.listen_addr,
        client_tls(&leaf, pki.ca.cert_pem()),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(s, 200);

    let mut cfg = pki.server_config(up.addr, ALLOW_WEB, "");
    cfg.policy = mtls_proxy::tls::Policy::Compatible;
    let compatible = mtls_proxy::app::start(cfg).await.unwrap();
    let mut conn = connect(compatible.listen_addr, tls12_client(&pki, &leaf, &gcm))
        .await
        .unwrap();
    assert_eq!(conn.get(&[]).await.unwrap().0, 200);

    for p in [modern, compatible] {
        stop(p).await;
    }
}

#[cfg(not(feature = "fips"))]
#[tokio::test]
async fn fips_policy_refused_plainly_without_the_feature() {
    let pki = Pki::new();
    let up = upstream().await;
    let mut cfg = pki.server_config(up.addr, ALLOW_WEB, "");
    cfg.policy = mtls_proxy::tls::Policy::Fips;
    let err = match mtls_proxy::app::start(cfg).await {
        Ok(_) => panic!("fips policy started without the fips feature"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("--features fips") && err.contains("cmake and Go"),
        "{err}"
    );
}

#[cfg(feature = "fips")]
#[tokio::test]
async fn fips_policy_serves_with_the_fips_module() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    let mut cfg = pki.server_config(up.addr, ALLOW_WEB, "");
    cfg.policy = mtls_proxy::tls::Policy::Fips;
    let material = mtls_proxy::tls::Material::load(&cfg.cert_paths().unwrap()).unwrap();
    let server_cfg = mtls_proxy::tls::server_config(
        mtls_proxy::tls::Policy::Fips,
        &material,
        Arc::new(cfg.allow_list().unwrap()),
    )
    .unwrap();
    assert!(server_cfg.fips(), "rustls does not report FIPS mode");
    let proxy = mtls_proxy::app::start(cfg).await.unwrap();
    let (s, _) = request_once(proxy.listen_addr, pki.web_client(), &[])
        .await
        .unwrap();
    assert_eq!(s, 200);
    stop(proxy).await;
}
