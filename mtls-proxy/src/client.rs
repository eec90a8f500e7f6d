//! Client mode: accept plain TCP (meant for loopback), originate mTLS to the
//! remote with the own certificate, verify the server's SPIFFE id, then copy
//! bytes both ways.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsConnector;

use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::tls::{describe, failure_reason, rustls_error};

/// What the client loop needs besides the listener.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Remote `host:port` speaking mTLS.
    pub remote: String,
    /// SNI (and DNS name checked when no SPIFFE ids are expected).
    pub server_name: ServerName<'static>,
    /// Connections beyond this are closed at accept.
    pub max_connections: usize,
    /// Limit for connecting and the TLS handshake together.
    pub handshake_timeout: Duration,
    /// How long open connections may finish after shutdown starts.
    pub shutdown_grace: Duration,
}

async fn handle(
    mut plain: TcpStream,
    peer_addr: SocketAddr,
    reloader: Arc<Reloader<rustls::ClientConfig>>,
    opts: Arc<ClientOptions>,
    metrics: Arc<Metrics>,
) {
    let connector = TlsConnector::from(reloader.current().config.clone());
    let connect = async {
        let tcp = TcpStream::connect(&opts.remote).await?;
        let _ = tcp.set_nodelay(true);
        connector.connect(opts.server_name.clone(), tcp).await
    };
    let mut tls = match tokio::time::timeout(opts.handshake_timeout, connect).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = rustls_error(&e)
                .map(failure_reason)
                .unwrap_or("connect_error");
            let error = rustls_error(&e)
                .map(describe)
                .unwrap_or_else(|| e.to_string());
            metrics.handshake_failed(reason);
            tracing::warn!(peer = %peer_addr, remote = %opts.remote, reason, %error, "remote refused");
            return;
        }
        Err(_) => {
            metrics.handshake_failed("handshake_timeout");
            tracing::warn!(peer = %peer_addr, remote = %opts.remote, reason = "handshake_timeout", "remote refused");
            return;
        }
    };
    metrics.handshakes_ok.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = tokio::io::copy_bidirectional(&mut plain, &mut tls).await {
        tracing::debug!(peer = %peer_addr, error = %e, "tunnel ended with error");
    }
}

/// Runs the accept loop until `shutdown` turns true, then waits up to
/// `shutdown_grace` for open tunnels to finish.
pub async fn serve(
    listener: TcpListener,
    reloader: Arc<Reloader<rustls::ClientConfig>>,
    opts: ClientOptions,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let opts = Arc::new(opts);
    let limit = Arc::new(Semaphore::new(opts.max_connections));
    loop {
        let (tcp, peer_addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::stopped(&mut shutdown) => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics.connections_rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %peer_addr, reason = "max_connections", "connection closed at accept");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        metrics.connections_active.fetch_add(1, Ordering::Relaxed);
        let (reloader, opts2, metrics) = (reloader.clone(), opts.clone(), metrics.clone());
        tokio::spawn(async move {
            handle(tcp, peer_addr, reloader, opts2, metrics.clone()).await;
            metrics.connections_active.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    let all = u32::try_from(opts.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(opts.shutdown_grace, limit.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining tunnels");
    }
}
