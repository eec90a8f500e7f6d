//! SNI passthrough: TLS routed by server name to two mtls-proxy servers,
//! end to end with client certificates, without the router decrypting.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use mtls_proxy::config::Config;
use mtls_proxy::identity::sha256_hex;

#[tokio::test]
async fn routes_by_sni_end_to_end() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    // Backend A serves a.test, backend B serves *.b.test.
    let a_cert = pki.leaf(Some(SERVER_ID), &["a.test"]);
    pki.write_leaf("server", &a_cert);
    let a = pki.start_server(up.addr, ALLOW_WEB, "").await;
    let pki_b = Pki::new();
    let b_cert = pki.leaf(Some(SERVER_ID), &["api.b.test"]);
    b_cert
        .write_to(&pki_b.path("server"), pki.ca.cert_pem())
        .unwrap();
    let b = mtls_proxy::app::start(pki_b.server_config(up.addr, ALLOW_WEB, ""))
        .await
        .unwrap();

    let text = format!(
        r#"
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"
[passthrough]
routes = {{ "a.test" = "{}", "*.b.test" = "{}" }}
"#,
        a.listen_addr, b.listen_addr
    );
    let cfg = Config::parse(&text, &pki.path("pt.toml"), pki.dir.path()).unwrap();
    let router = mtls_proxy::app::start(cfg).await.unwrap();

    let tls = pki.web_client();
    let mut via_a = connect_sni(router.listen_addr, tls.clone(), "a.test")
        .await
        .unwrap();
    assert_eq!(sha256_hex(&via_a.server_cert), sha256_hex(&a_cert.cert_der));
    let (s, body) = via_a.get(&[]).await.unwrap();
    assert_eq!(s, 200);
    assert!(
        body.contains("URI=spiffe://td.test/ns/prod/sa/web"),
        "{body}"
    );

    let mut via_b = connect_sni(router.listen_addr, tls.clone(), "api.b.test")
        .await
        .unwrap();
    assert_eq!(sha256_hex(&via_b.server_cert), sha256_hex(&b_cert.cert_der));
    assert_eq!(via_b.get(&[]).await.unwrap().0, 200);

    // No route for this name and no default: closed, counted, logged.
    assert!(connect_sni(router.listen_addr, tls.clone(), "c.test")
        .await
        .is_err());
    let m = router.metrics.clone();
    eventually("unknown SNI counted", || {
        m.handshake_failures("unknown_sni") == 1
    })
    .await;
    wait_log(&["passthrough refused", "unknown_sni", "c.test"]).await;
    assert_eq!(router.metrics.handshakes_ok.load(Ordering::Relaxed), 2);

    // Closing the clients ends the tunnels, so the router's drain is immediate.
    drop((via_a, via_b));
    for p in [router, a, b] {
        stop(p).await;
    }
}
