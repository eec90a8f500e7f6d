//! Certificate reload: Kubernetes `..data` symlink swap, reload under load
//! with zero lost requests, explicit reload, and a broken update that keeps
//! the old certificate.

mod common;

use std::os::unix::fs::symlink;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mtls_proxy::identity::sha256_hex;

/// Lays out `dir` like a Kubernetes secret volume: `cert.pem -> ..data/cert.pem`,
/// `..data -> ..<version>`.
fn k8s_publish(pki: &Pki, version: &str, leaf: &mtls_proxy::ca::Issued) {
    let dir = pki.path("server");
    let versioned = dir.join(format!("..{version}"));
    leaf.write_to(&versioned, pki.ca.cert_pem()).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in ["cert.pem", "key.pem", "ca.pem"] {
        let link = dir.join(f);
        if std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
            continue;
        }
        let _ = std::fs::remove_file(&link);
        symlink(format!("..data/{f}"), &link).unwrap();
    }
}

async fn server_cert_hash(addr: std::net::SocketAddr, tls: Arc<rustls::ClientConfig>) -> String {
    sha256_hex(&connect(addr, tls).await.unwrap().server_cert)
}

#[tokio::test]
async fn kubernetes_symlink_swap_reloads_and_keeps_open_connections() {
    init_logs();
    let pki = Pki::new();
    let first = pki.leaf(Some(SERVER_ID), &["localhost"]);
    std::fs::remove_dir_all(pki.path("server")).unwrap();
    k8s_publish(&pki, "2026_11_23_a", &first);
    let up = upstream().await;
    let proxy = pki.start_server(up.addr, ALLOW_WEB, "").await;
    let tls = pki.web_client();

    let mut open = connect(proxy.listen_addr, tls.clone()).await.unwrap();
    assert_eq!(open.get(&[]).await.unwrap().0, 200);
    assert_eq!(sha256_hex(&open.server_cert), sha256_hex(&first.cert_der));

    let second = pki.leaf(Some(SERVER_ID), &["localhost"]);
    k8s_publish(&pki, "2026_11_23_b", &second);
    let want = sha256_hex(&second.cert_der);
    let m = proxy.metrics.clone();
    eventually("reload after ..data swap", || {
        m.reloads_ok.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(server_cert_hash(proxy.listen_addr, tls.clone()).await, want);
    // The connection made with the old certificate is still served.
    assert_eq!(open.get(&[]).await.unwrap().0, 200);
    stop(proxy).await;
}

#[tokio::test]
async fn rotation_under_load_loses_no_request() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    let proxy = pki.start_server(up.addr, ALLOW_WEB, "").await;
    let tls = pki.web_client();
    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (done, ok, failed, tls) = (done.clone(), ok.clone(), failed.clone(), tls.clone());
        let addr = proxy.listen_addr;
        workers.push(tokio::spawn(async move {
            // Each round: a new connection (new handshake) with three
            // keep-alive requests, so both new and open connections are hit.
            for _round in 0..10_000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                match connect(addr, tls.clone()).await {
                    Ok(mut c) => {
                        for _ in 0..3 {
                            match c.get(&[]).await {
                                Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                                _ => failed.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let rotations = 6;
    for _ in 0..rotations {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let next = pki.leaf(Some(SERVER_ID), &["localhost"]);
        // Plain file replacement (atomic renames of key, then cert).
        pki.write_leaf("server", &next);
    }
    let m = proxy.metrics.clone();
    eventually("the last rotation installed", || {
        m.reloads_ok.load(Ordering::Relaxed) >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let reloads = proxy.metrics.reloads_ok.load(Ordering::Relaxed);
    eprintln!("rotation under load: {ok} requests ok, {failed} failed, {reloads} reloads");
    assert_eq!(failed, 0, "lost requests during rotation ({ok} ok)");
    assert!(ok > 50, "too little load to mean anything: {ok}");
    assert!(reloads >= 2, "only {reloads} reloads happened under load");
    stop(proxy).await;
}

#[tokio::test]
async fn explicit_reload_and_broken_update_keeps_old_cert() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    // A long poll interval: only the explicit reload (what SIGHUP calls) acts.
    let mut cfg = pki.server_config(up.addr, ALLOW_WEB, "");
    cfg.tls.as_mut().unwrap().reload_interval =
        mtls_proxy::duration::HumanDuration(Duration::from_secs(3600));
    let proxy = mtls_proxy::app::start(cfg).await.unwrap();
    let tls = pki.web_client();
    let before = server_cert_hash(proxy.listen_addr, tls.clone()).await;

    let next = pki.leaf(Some(SERVER_ID), &["localhost"]);
    pki.write_leaf("server", &next);
    assert_eq!(
        server_cert_hash(proxy.listen_addr, tls.clone()).await,
        before
    );
    assert!((proxy.reload)().unwrap());
    let after = server_cert_hash(proxy.listen_addr, tls.clone()).await;
    assert_eq!(after, sha256_hex(&next.cert_der));

    // A key that does not match the certificate: refused, old cert kept.
    let other = pki.leaf(Some(SERVER_ID), &["localhost"]);
    std::fs::write(pki.path("server/key.pem"), &other.key_pem).unwrap();
    let err = (proxy.reload)().unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
    assert_eq!(proxy.metrics.reloads_failed.load(Ordering::Relaxed), 1);
    assert_eq!(
        server_cert_hash(proxy.listen_addr, tls.clone()).await,
        after
    );
    stop(proxy).await;
}

#[tokio::test]
async fn polling_logs_a_broken_update_once_and_recovers() {
    init_logs();
    let pki = Pki::new();
    let up = upstream().await;
    let proxy = pki.start_server(up.addr, ALLOW_WEB, "").await;
    std::fs::write(pki.path("server/cert.pem"), "not a certificate").unwrap();
    let m = proxy.metrics.clone();
    eventually("broken update counted", || {
        m.reloads_failed.load(Ordering::Relaxed) == 1
    })
    .await;
    wait_log(&["certificate reload refused", "no CERTIFICATE block"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        m.reloads_failed.load(Ordering::Relaxed),
        1,
        "retried the same broken files"
    );
    let fixed = pki.leaf(Some(SERVER_ID), &["localhost"]);
    pki.write_leaf("server", &fixed);
    eventually("recovered", || m.reloads_ok.load(Ordering::Relaxed) == 1).await;
    stop(proxy).await;
}
