//! Client mode: accept plain TCP (meant for loopback), originate mTLS to the
//! remote with the own certificate, verify the server's SPIFFE id, then copy
//! bytes both ways.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

use crate::accept::accept_until_shutdown;
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
    shutdown: watch::Receiver<bool>,
) {
    let opts = Arc::new(opts);
    let open = accept_until_shutdown(
        listener,
        opts.max_connections,
        metrics.clone(),
        shutdown,
        |tcp, peer| handle(tcp, peer, reloader.clone(), opts.clone(), metrics.clone()),
    )
    .await;
    if !open.drain(opts.shutdown_grace).await {
        tracing::warn!("shutdown grace period over; closing remaining tunnels");
    }
}
