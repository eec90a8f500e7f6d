//! Auto-rotation from a built-in CA directory: the proxy issues its own
//! certificate at start when none exists and renews it at the configured
//! fraction of its life, without dropping connections.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use mtls_proxy::ca::Ca;
use mtls_proxy::config::Config;
use mtls_proxy::identity::{sha256_hex, PeerIdentity};

#[tokio::test]
async fn issues_at_start_and_renews_at_half_life() {
    init_logs();
    let pki = Pki::new();
    let ca_dir = pki.path("ca");
    let ca = Ca::init(&ca_dir, "rotation CA", Duration::from_secs(3600), false).unwrap();
    let up = upstream().await;
    let text = format!(
        r#"
listen = "127.0.0.1:0"
[tls]
cert = "own/cert.pem"
key = "own/key.pem"
ca = "own/ca.pem"
reload_interval = "1h"
[server]
upstream = "{}"
[server.allow]
spiffe_ids = ["spiffe://td.test/ns/*/sa/web"]
[rotation]
ca_dir = "ca"
spiffe_id = "{SERVER_ID}"
dns_names = ["localhost"]
ttl = "4s"
renew_at = 0.5
"#,
        up.addr
    );
    let cfg = Config::parse(&text, &pki.path("proxy.toml"), pki.dir.path()).unwrap();
    assert!(!pki.path("own/cert.pem").exists());
    let proxy = mtls_proxy::app::start(cfg).await.unwrap();

    // Issued at start, by the CA in ca_dir, with the configured SPIFFE id.
    let client = {
        let req = mtls_proxy::ca::LeafRequest::with_ttl(
            Some(mtls_proxy::spiffe::SpiffeId::parse("spiffe://td.test/ns/prod/sa/web").unwrap()),
            Duration::from_secs(600),
        )
        .unwrap();
        ca.issue(&req).unwrap()
    };
    let tls = client_tls(&client, ca.cert_pem());
    let mut open = connect(proxy.listen_addr, tls.clone()).await.unwrap();
    let first = PeerIdentity::from_der(&open.server_cert).unwrap();
    assert_eq!(first.uris, vec![SERVER_ID]);
    assert_eq!(open.get(&[]).await.unwrap().0, 200);

    // Renewed at half of the ~4.4s life, and installed without a file poll.
    let m = proxy.metrics.clone();
    eventually("renewed", || m.reloads_ok.load(Ordering::Relaxed) >= 1).await;
    let now = connect(proxy.listen_addr, tls.clone()).await.unwrap();
    assert_ne!(sha256_hex(&now.server_cert), first.sha256_hex);
    assert_eq!(
        open.get(&[]).await.unwrap().0,
        200,
        "open connection dropped"
    );
    stop(proxy).await;
}
