//! Server mode over real TLS on loopback: who is let in, who is refused and
//! why, and what the upstream sees.

mod common;

use common::*;
use mtls_proxy::identity::sha256_hex;

#[tokio::test]
async fn valid_client_allowed_and_forged_xfcc_replaced() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    let proxy = pki.start_server(up.addr, ALLOW_WEB, "").await;
    let client = pki.leaf(Some(WEB_ID), &["web.test"]);
    let tls = client_tls(&client, pki.ca.cert_pem());

    let forged = "By=spiffe://x;Hash=00;Subject=\"CN=admin\";URI=spiffe://td.test/ns/prod/sa/admin";
    let (status, body) = request_once(
        proxy.listen_addr,
        tls,
        &[
            ("x-forwarded-client-cert", forged),
            (
                "X-Forwarded-Client-Cert",
                "URI=spiffe://td.test/ns/prod/sa/admin",
            ),
        ],
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("xfcc_count=1\n"),
        "client XFCC not removed: {body}"
    );
    assert!(!body.contains("sa/admin"), "forged identity leaked: {body}");
    let expected = format!(
        "By={SERVER_ID};Hash={};Subject=\"\";URI=spiffe://td.test/ns/prod/sa/web;DNS=web.test",
        sha256_hex(&client.cert_der)
    );
    assert!(body.contains(&expected), "expected {expected}\ngot {body}");
    assert_eq!(up.requests.load(std::sync::atomic::Ordering::Relaxed), 1);

    let (code, metrics) = plain_get(proxy.admin_addr.unwrap(), "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("mtls_proxy_handshakes_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mtls_proxy_requests_total 1\n"),
        "{metrics}"
    );
    assert_eq!(
        plain_get(proxy.admin_addr.unwrap(), "/healthz").await.0,
        200
    );
    stop(proxy).await;
}

/// Runs one refused client and checks the request fails, nothing reaches the
/// upstream, and the reason is counted and logged for that client's port.
async fn assert_refused(pki: &Pki, leaf: &mtls_proxy::ca::Issued, ca_pem: &str, reason: &str) {
    init_logs();
    let up = upstream().await;
    let proxy = pki.start_server(up.addr, ALLOW_WEB, "").await;
    let tls = client_tls(leaf, ca_pem);
    let result = match connect(proxy.listen_addr, tls).await {
        Ok(mut c) => {
            let local = c.local;
            (c.get(&[]).await, Some(local))
        }
        Err(e) => (Err(e), None),
    };
    assert!(result.0.is_err(), "request should fail, got {:?}", result.0);
    let m = proxy.metrics.clone();
    eventually(&format!("failure counted as {reason}"), || {
        m.handshake_failures(reason) == 1
    })
    .await;
    if let Some(local) = result.1 {
        let line = wait_log(&["client refused", reason, &format!("peer={local}")]).await;
        assert!(line.contains("WARN"), "{line}");
    }
    assert_eq!(up.requests.load(std::sync::atomic::Ordering::Relaxed), 0);
    stop(proxy).await;
}

#[tokio::test]
async fn unknown_ca_refused() {
    let pki = Pki::new();
    let other = Pki::with_ca_name("someone else's CA");
    let leaf = other.leaf(Some(WEB_ID), &[]);
    // The client trusts the right CA for the server, but its own cert is from another CA.
    assert_refused(&pki, &leaf, pki.ca.cert_pem(), "unknown_ca").await;
}

#[tokio::test]
async fn impostor_ca_with_same_name_refused() {
    let pki = Pki::new();
    let impostor = Pki::new();
    let leaf = impostor.leaf(Some(WEB_ID), &[]);
    assert_refused(&pki, &leaf, pki.ca.cert_pem(), "bad_signature").await;
}

#[tokio::test]
async fn expired_client_refused() {
    let pki = Pki::new();
    let leaf = pki.expired_leaf("spiffe://td.test/ns/prod/sa/web");
    assert_refused(&pki, &leaf, pki.ca.cert_pem(), "expired").await;
}

#[tokio::test]
async fn wrong_spiffe_id_refused() {
    let pki = Pki::new();
    let leaf = pki.leaf(Some("spiffe://td.test/ns/prod/sa/db"), &[]);
    assert_refused(&pki, &leaf, pki.ca.cert_pem(), "identity_not_allowed").await;
    let line = wait_log(&["identity_not_allowed", "spiffe://td.test/ns/prod/sa/db"]).await;
    assert!(line.contains("not in allow-list"), "{line}");
}

#[tokio::test]
async fn other_trust_domain_refused_even_with_same_path() {
    let pki = Pki::new();
    let leaf = pki.leaf(Some("spiffe://evil.test/ns/prod/sa/web"), &[]);
    assert_refused(&pki, &leaf, pki.ca.cert_pem(), "identity_not_allowed").await;
}

#[tokio::test]
async fn dns_and_cn_allow_lists() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    let allow = r#"dns_names = ["*.svc.test"]
common_names = ["legacy"]"#;
    let proxy = pki.start_server(up.addr, allow, "").await;
    let by_dns = pki.leaf(None, &["api.svc.test"]);
    let (s, _) = request_once(
        proxy.listen_addr,
        client_tls(&by_dns, pki.ca.cert_pem()),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(s, 200);
    let mut req =
        mtls_proxy::ca::LeafRequest::with_ttl(None, std::time::Duration::from_secs(60)).unwrap();
    req.common_name = Some("legacy".into());
    let by_cn = pki.ca.issue(&req).unwrap();
    let (s, body) = request_once(
        proxy.listen_addr,
        client_tls(&by_cn, pki.ca.cert_pem()),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(s, 200);
    assert!(body.contains("Subject=\"CN=legacy\""), "{body}");
    let not_listed = pki.leaf(None, &["api.other.test"]);
    assert!(request_once(
        proxy.listen_addr,
        client_tls(&not_listed, pki.ca.cert_pem()),
        &[]
    )
    .await
    .is_err());
    stop(proxy).await;
}

#[tokio::test]
async fn upstream_down_gives_502_json() {
    init_logs();
    let pki = Pki::new();
    // Bind and drop to get a port with nothing listening.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = pki.start_server(dead, ALLOW_WEB, "").await;
    let (s, body) = request_once(proxy.listen_addr, pki.web_client(), &[])
        .await
        .unwrap();
    assert_eq!(s, 502);
    assert!(body.contains("\"code\":\"upstream_unavailable\""), "{body}");
    stop(proxy).await;
}
