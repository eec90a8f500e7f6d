//! Client mode: plain TCP on loopback -> mtls-proxy (client) -> mTLS ->
//! mtls-proxy (server) -> upstream, and refusal of a server with the wrong
//! SPIFFE id.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use common::*;
use mtls_proxy::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client_config(pki: &Pki, remote: SocketAddr, expect: &str) -> Config {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
[tls]
cert = "client/cert.pem"
key = "client/key.pem"
ca = "client/ca.pem"
[client]
remote = "{remote}"
server_name = "localhost"
server_spiffe_ids = ["{expect}"]
"#
    );
    Config::parse(&text, &pki.path("client.toml"), pki.dir.path()).unwrap()
}

async fn plain_http(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /via-client HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn plain_to_mtls_with_server_spiffe_check() {
    init_logs();
    let pki = Pki::new();
    let web = pki.leaf(Some(WEB_ID), &[]);
    pki.write_leaf("client", &web);
    let up = upstream().await;
    let server = mtls_proxy::app::start(pki.server_config(
        up.addr,
        r#"spiffe_ids = ["spiffe://td.test/ns/prod/sa/web"]"#,
        "",
    ))
    .await
    .unwrap();

    let client = mtls_proxy::app::start(client_config(&pki, server.listen_addr, SERVER_ID))
        .await
        .unwrap();
    let resp = plain_http(client.listen_addr).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains("URI=spiffe://td.test/ns/prod/sa/web"),
        "{resp}"
    );
    assert_eq!(client.metrics.handshakes_ok.load(Ordering::Relaxed), 1);

    // Expecting another server identity: the tunnel is refused before any byte
    // reaches the server side's upstream.
    let wrong = mtls_proxy::app::start(client_config(
        &pki,
        server.listen_addr,
        "spiffe://td.test/ns/prod/sa/payments",
    ))
    .await
    .unwrap();
    let resp = plain_http(wrong.listen_addr).await.unwrap_or_default();
    assert!(resp.is_empty(), "{resp}");
    let m = wrong.metrics.clone();
    eventually("wrong server id counted", || {
        m.handshake_failures("wrong_server_spiffe_id") == 1
    })
    .await;
    wait_log(&["remote refused", "wrong_server_spiffe_id", SERVER_ID]).await;
    assert_eq!(up.requests.load(Ordering::Relaxed), 1);

    for p in [client, wrong, server] {
        stop(p).await;
    }
}
