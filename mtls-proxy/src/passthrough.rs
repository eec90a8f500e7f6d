//! SNI passthrough: read the TLS ClientHello without decrypting anything,
//! pick a backend by its server name, replay the bytes read so far to the
//! backend and then copy both ways. The proxy holds no key in this mode.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::Acceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::accept::accept_until_shutdown;
use crate::identity::DnsPattern;
use crate::metrics::Metrics;

/// Largest ClientHello accepted (several records with post-quantum key shares
/// fit easily).
const MAX_HELLO: usize = 64 * 1024;

/// Why a connection could not be routed.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    /// The peer closed before a full ClientHello arrived.
    #[error("peer closed before sending a complete ClientHello")]
    Closed,
    /// Reading from the peer failed.
    #[error("reading the ClientHello: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a TLS ClientHello.
    #[error("not a TLS ClientHello: {0}")]
    NotTls(rustls::Error),
    /// The ClientHello is larger than this proxy accepts.
    #[error("ClientHello larger than {MAX_HELLO} bytes")]
    TooLarge,
}

impl PassthroughError {
    /// Stable reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PassthroughError::Closed | PassthroughError::Io(_) => "client_closed",
            PassthroughError::NotTls(_) => "not_tls",
            PassthroughError::TooLarge => "client_hello_too_large",
        }
    }
}

/// Reads from `tcp` until a whole ClientHello is buffered. Returns the raw
/// bytes read (to replay) and the SNI, if the client sent one.
pub async fn read_client_hello(
    tcp: &mut TcpStream,
) -> Result<(Vec<u8>, Option<String>), PassthroughError> {
    let mut acceptor = Acceptor::default();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(PassthroughError::Closed);
        }
        raw.extend_from_slice(&chunk[..n]);
        if raw.len() > MAX_HELLO {
            return Err(PassthroughError::TooLarge);
        }
        let mut rd = &chunk[..n];
        while !rd.is_empty() {
            if acceptor.read_tls(&mut rd)? == 0 {
                return Err(PassthroughError::TooLarge);
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let sni = accepted.client_hello().server_name().map(str::to_string);
                return Ok((raw, sni));
            }
            Ok(None) => continue,
            Err((e, _alert)) => return Err(PassthroughError::NotTls(e)),
        }
    }
}

/// SNI routing table: exact names, `*.suffix` wildcards, optional default.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<(DnsPattern, String)>,
    default: Option<String>,
}

impl Routes {
    /// Builds the table; exact names are tried before wildcards.
    pub fn new(routes: &BTreeMap<String, String>, default: Option<String>) -> Self {
        let mut r: Vec<(DnsPattern, String)> = routes
            .iter()
            .map(|(k, v)| (DnsPattern::new(k), v.clone()))
            .collect();
        r.sort_by_key(|(p, _)| p.is_wildcard());
        Routes { routes: r, default }
    }

    /// The backend for `sni`, if any.
    pub fn backend(&self, sni: Option<&str>) -> Option<&str> {
        sni.and_then(|name| {
            self.routes
                .iter()
                .find(|(p, _)| p.matches(name))
                .map(|(_, b)| b.as_str())
        })
        .or(self.default.as_deref())
    }
}

/// What the passthrough loop needs besides the listener.
#[derive(Debug, Clone)]
pub struct PassthroughOptions {
    /// SNI routes.
    pub routes: Routes,
    /// Connections beyond this are closed at accept.
    pub max_connections: usize,
    /// Limit for receiving the ClientHello and connecting to the backend.
    pub handshake_timeout: Duration,
    /// How long open connections may finish after shutdown starts.
    pub shutdown_grace: Duration,
}

async fn handle(
    mut tcp: TcpStream,
    peer: SocketAddr,
    opts: Arc<PassthroughOptions>,
    metrics: Arc<Metrics>,
) {
    let routed = async {
        let (hello, sni) = read_client_hello(&mut tcp)
            .await
            .map_err(|e| (e.reason(), e.to_string(), None))?;
        let Some(backend) = opts.routes.backend(sni.as_deref()) else {
            return Err(("unknown_sni", "no route and no default".to_string(), sni));
        };
        let mut up = TcpStream::connect(backend).await.map_err(|e| {
            (
                "backend_unavailable",
                format!("{backend}: {e}"),
                sni.clone(),
            )
        })?;
        let _ = up.set_nodelay(true);
        up.write_all(&hello).await.map_err(|e| {
            (
                "backend_unavailable",
                format!("{backend}: {e}"),
                sni.clone(),
            )
        })?;
        Ok::<_, (&'static str, String, Option<String>)>((up, sni, backend.to_string()))
    };
    let (mut up, sni, backend) = match tokio::time::timeout(opts.handshake_timeout, routed).await {
        Ok(Ok(x)) => x,
        Ok(Err((reason, error, sni))) => {
            metrics.handshake_failed(reason);
            tracing::warn!(%peer, reason, ?sni, %error, "passthrough refused");
            return;
        }
        Err(_) => {
            metrics.handshake_failed("handshake_timeout");
            tracing::warn!(%peer, reason = "handshake_timeout", "passthrough refused");
            return;
        }
    };
    metrics.handshakes_ok.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%peer, ?sni, %backend, "passthrough routed");
    if let Err(e) = tokio::io::copy_bidirectional(&mut tcp, &mut up).await {
        tracing::debug!(%peer, error = %e, "passthrough ended with error");
    }
}

/// Runs the accept loop until `shutdown` turns true, then waits up to
/// `shutdown_grace` for open connections.
pub async fn serve(
    listener: TcpListener,
    opts: PassthroughOptions,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) {
    let opts = Arc::new(opts);
    let open = accept_until_shutdown(
        listener,
        opts.max_connections,
        metrics.clone(),
        shutdown,
        |tcp, peer| handle(tcp, peer, opts.clone(), metrics.clone()),
    )
    .await;
    if !open.drain(opts.shutdown_grace).await {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_exact_before_wildcard_then_default() {
        let mut m = BTreeMap::new();
        m.insert("*.example.com".to_string(), "wild:1".to_string());
        m.insert("api.example.com".to_string(), "api:1".to_string());
        let r = Routes::new(&m, Some("default:1".into()));
        assert_eq!(r.backend(Some("api.example.com")), Some("api:1"));
        assert_eq!(r.backend(Some("web.example.com")), Some("wild:1"));
        assert_eq!(r.backend(Some("other.org")), Some("default:1"));
        assert_eq!(r.backend(None), Some("default:1"));
        let strict = Routes::new(&m, None);
        assert_eq!(strict.backend(None), None);
        assert_eq!(strict.backend(Some("other.org")), None);
    }

    #[tokio::test]
    async fn reads_sni_from_a_real_client_hello() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let cfg = rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            let _ = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect("svc.example.test".try_into().unwrap(), tcp)
                .await;
        });
        let (mut tcp, _) = listener.accept().await.unwrap();
        let (raw, sni) = read_client_hello(&mut tcp).await.unwrap();
        assert_eq!(sni.as_deref(), Some("svc.example.test"));
        assert_eq!(raw[0], 22, "starts with a handshake record");
        drop(tcp);
        let _ = client.await;
    }

    #[tokio::test]
    async fn refuses_plain_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            tcp
        });
        let (mut tcp, _) = listener.accept().await.unwrap();
        let err = read_client_hello(&mut tcp).await.unwrap_err();
        assert_eq!(err.reason(), "not_tls", "{err}");
        drop(client.await);
    }
}
