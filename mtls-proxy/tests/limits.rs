//! Limits: max connections, handshake timeout, header timeout (slowloris),
//! graceful shutdown letting an in-flight request finish.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIGHT: &str = r#"[limits]
max_connections = 1
handshake_timeout = "300ms"
header_timeout = "300ms"
shutdown_grace = "5s""#;

/// Reads until EOF or error; returns how long that took.
async fn until_closed(s: &mut (impl AsyncReadExt + Unpin)) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("connection was not closed within 5s"),
        }
    }
}

#[tokio::test]
async fn max_connections_and_handshake_timeout() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    let proxy = pki.start_server(up.addr, ALLOW_WEB, TIGHT).await;
    let tls = pki.web_client();
    let mut held = connect(proxy.listen_addr, tls.clone()).await.unwrap();
    assert_eq!(held.get(&[]).await.unwrap().0, 200);

    // Second connection while one is open: closed at accept.
    let mut second = TcpStream::connect(proxy.listen_addr).await.unwrap();
    until_closed(&mut second).await;
    assert_eq!(
        proxy.metrics.connections_rejected.load(Ordering::Relaxed),
        1
    );
    drop(held);

    // A silent TCP peer is cut after the handshake timeout.
    let m = proxy.metrics.clone();
    eventually("first connection released", || {
        m.connections_active.load(Ordering::Relaxed) == 0
    })
    .await;
    let mut silent = TcpStream::connect(proxy.listen_addr).await.unwrap();
    let took = until_closed(&mut silent).await;
    assert!(
        took >= Duration::from_millis(250),
        "closed too early: {took:?}"
    );
    eventually("handshake timeout counted", || {
        m.handshake_failures("handshake_timeout") == 1
    })
    .await;
    stop(proxy).await;
}

#[tokio::test]
async fn slow_headers_are_cut() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    let proxy = pki.start_server(up.addr, ALLOW_WEB, TIGHT).await;
    let tcp = TcpStream::connect(proxy.listen_addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(pki.web_client())
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let took = until_closed(&mut tls).await;
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "not cut by the 300ms header timeout: {took:?}"
    );
    assert_eq!(up.requests.load(Ordering::Relaxed), 0);
    stop(proxy).await;
}

#[tokio::test]
async fn slow_upstream_gets_504_and_the_connection_recovers() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    let limits = "[limits]\nupstream_timeout = \"100ms\"";
    let proxy = pki.start_server(up.addr, ALLOW_WEB, limits).await;
    let mut c = connect(proxy.listen_addr, pki.web_client()).await.unwrap();
    let (status, body) = c.get_path("/slow", &[]).await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("\"code\":\"upstream_timeout\""), "{body}");
    // Same client connection, fresh upstream connection.
    assert_eq!(c.get(&[]).await.unwrap().0, 200);
    assert_eq!(proxy.metrics.upstream_errors.load(Ordering::Relaxed), 1);
    stop(proxy).await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_request() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    let proxy = pki.start_server(up.addr, ALLOW_WEB, TIGHT).await;
    let mut c = connect(proxy.listen_addr, pki.web_client()).await.unwrap();
    let addr = proxy.listen_addr;
    let admin = proxy.admin_addr.unwrap();
    let in_flight = tokio::spawn(async move { c.get_path("/slow", &[]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.shutdown();
    assert_eq!(plain_get(admin, "/healthz").await.0, 503);
    let (status, _) = in_flight.await.unwrap().unwrap();
    assert_eq!(status, 200, "in-flight request was cut by shutdown");
    tokio::time::timeout(Duration::from_secs(5), proxy.wait())
        .await
        .expect("shutdown did not finish");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}
