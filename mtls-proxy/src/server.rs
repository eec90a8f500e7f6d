//! Server mode: accept mTLS, verify the client, forward HTTP/1.1 to the
//! upstream with the verified identity in `x-forwarded-client-cert`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Mutex};
use tokio_rustls::TlsAcceptor;

use crate::accept::accept_until_shutdown;
use crate::identity::PeerIdentity;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::tls::{describe, failure_reason, rustls_error};
use crate::xfcc;

/// What the server loop needs besides the listener.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Upstream `host:port` (plain HTTP/1.1).
    pub upstream: String,
    /// Connections beyond this are closed at accept.
    pub max_connections: usize,
    /// Limit for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Limit for receiving request headers.
    pub header_timeout: Duration,
    /// How long open connections may finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// Limit for connecting upstream and receiving the response headers.
    pub upstream_timeout: Duration,
}

type Body = BoxBody<Bytes, hyper::Error>;

/// Headers that describe one hop and are never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn full(status: StatusCode, code: &str, error: &str) -> Response<Body> {
    let body = format!("{{\"error\":\"{error}\",\"code\":\"{code}\",\"request_id\":\"\"}}");
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for n in listed {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(*n);
    }
}

/// One upstream HTTP/1.1 connection per downstream connection, made lazily and
/// remade if the upstream closed it.
struct Upstream {
    addr: String,
    timeout: Duration,
    sender: Mutex<Option<SendRequest<Incoming>>>,
}

impl Upstream {
    async fn send(&self, req: Request<Incoming>) -> Result<Response<Incoming>, String> {
        let mut guard = self.sender.lock().await;
        let reusable = guard.as_ref().is_some_and(|s| !s.is_closed());
        if !reusable {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| format!("connect {}: {e}", self.addr))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake {}: {e}", self.addr))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
            *guard = Some(sender);
        }
        let sender = guard.as_mut().expect("set above");
        sender
            .ready()
            .await
            .map_err(|e| format!("upstream not ready: {e}"))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| format!("upstream request failed: {e}"))
    }
}

async fn forward(
    mut req: Request<Incoming>,
    upstream: Arc<Upstream>,
    xfcc_value: HeaderValue,
    metrics: Arc<Metrics>,
) -> Result<Response<Body>, hyper::Error> {
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    // Whatever the client sent is dropped: only the verified identity goes up.
    headers.remove(xfcc::HEADER);
    headers.insert(xfcc::HEADER, xfcc_value);
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    metrics.requests_total.fetch_add(1, Ordering::Relaxed);
    let sent = tokio::time::timeout(upstream.timeout, upstream.send(req)).await;
    let sent = match sent {
        Ok(r) => r,
        Err(_) => {
            // The connection has an abandoned request in flight: never reuse it.
            *upstream.sender.lock().await = None;
            metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(timeout = ?upstream.timeout, "upstream too slow; answering 504");
            return Ok(full(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "upstream did not answer in time",
            ));
        }
    };
    match sent {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, body.boxed()))
        }
        Err(e) => {
            metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "upstream failed; answering 502");
            Ok(full(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "upstream unavailable",
            ))
        }
    }
}

async fn handle(
    tcp: TcpStream,
    peer_addr: SocketAddr,
    reloader: Arc<Reloader<rustls::ServerConfig>>,
    opts: Arc<ServerOptions>,
    metrics: Arc<Metrics>,
    watcher: Watcher,
) {
    let current = reloader.current();
    let acceptor = TlsAcceptor::from(current.config.clone());
    let tls = match tokio::time::timeout(opts.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = rustls_error(&e).map(failure_reason).unwrap_or("io_error");
            let error = rustls_error(&e)
                .map(describe)
                .unwrap_or_else(|| e.to_string());
            metrics.handshake_failed(reason);
            tracing::warn!(peer = %peer_addr, reason, %error, "client refused");
            return;
        }
        Err(_) => {
            metrics.handshake_failed("handshake_timeout");
            tracing::warn!(peer = %peer_addr, reason = "handshake_timeout", "client refused");
            return;
        }
    };
    metrics.handshakes_ok.fetch_add(1, Ordering::Relaxed);
    let Some(peer) = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| PeerIdentity::from_der(der).ok())
    else {
        // Unreachable with a mandatory verifier; refuse rather than forward anonymously.
        metrics.handshake_failed("no_client_certificate");
        tracing::warn!(peer = %peer_addr, reason = "no_client_certificate", "client refused");
        return;
    };
    let element = xfcc::Element::for_peer(&peer, current.leaf.uris.first().map(String::as_str));
    let Ok(xfcc_value) = HeaderValue::from_str(&element.to_header_value()) else {
        metrics.handshake_failed("bad_certificate");
        tracing::warn!(peer = %peer_addr, reason = "bad_certificate", "client identity not representable in a header");
        return;
    };
    tracing::debug!(peer = %peer_addr, spiffe_id = ?peer.spiffe_id().map(|s| s.to_string()), "client accepted");
    drop(current);
    let upstream = Arc::new(Upstream {
        addr: opts.upstream.clone(),
        timeout: opts.upstream_timeout,
        sender: Mutex::new(None),
    });
    let svc = hyper::service::service_fn(move |req| {
        forward(req, upstream.clone(), xfcc_value.clone(), metrics.clone())
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(tls), svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(peer = %peer_addr, error = %e, "connection ended with error");
    }
}

/// Runs the accept loop until `shutdown` turns true, then lets open
/// connections finish for up to `shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    reloader: Arc<Reloader<rustls::ServerConfig>>,
    opts: ServerOptions,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) {
    let opts = Arc::new(opts);
    let graceful = GracefulShutdown::new();
    accept_until_shutdown(
        listener,
        opts.max_connections,
        metrics.clone(),
        shutdown,
        |tcp, peer| {
            handle(
                tcp,
                peer,
                reloader.clone(),
                opts.clone(),
                metrics.clone(),
                graceful.watcher(),
            )
        },
    )
    .await;
    tracing::info!(
        open = graceful.count(),
        "shutting down: no new connections, letting open ones finish"
    );
    if tokio::time::timeout(opts.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
}
