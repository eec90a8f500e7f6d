//! Shared test fixtures: a CA per test, an echo upstream, a proxy in-process,
//! an mTLS HTTP client, and captured logs.

#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mtls_proxy::app::Running;
use mtls_proxy::ca::{Ca, Issued, LeafRequest};
use mtls_proxy::config::Config;
use mtls_proxy::spiffe::SpiffeId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

pub const SERVER_ID: &str = "spiffe://td.test/ns/edge/sa/mtls-proxy";

/// The client identity most tests connect with.
pub const WEB_ID: &str = "spiffe://td.test/ns/prod/sa/web";

/// A server allow-list that admits [`WEB_ID`] (any namespace's `web`).
pub const ALLOW_WEB: &str = r#"spiffe_ids = ["spiffe://td.test/ns/*/sa/web"]"#;

/// Everything the tracing subscriber wrote, for "logged with a reason" checks.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);
impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn init_logs() {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = LogWriter(buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("mtls_proxy=debug")
            .with_writer(move || w.clone())
            .try_init();
        buf
    });
}

pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.get().expect("init_logs").lock().unwrap()).into_owned()
}

/// Waits until some log line contains every needle.
pub async fn wait_log(needles: &[&str]) -> String {
    for _ in 0..200 {
        if let Some(l) = logs()
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
        {
            return l.to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no log line with {needles:?}; logs:\n{}", logs());
}

/// A CA and files for one test.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
}

impl Pki {
    pub fn new() -> Self {
        Self::with_ca_name("test CA")
    }

    pub fn with_ca_name(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate(name, Duration::from_secs(3600)).unwrap();
        let pki = Pki { dir, ca };
        let server = pki.leaf(Some(SERVER_ID), &["localhost"]);
        pki.write_leaf("server", &server);
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn leaf(&self, spiffe: Option<&str>, dns: &[&str]) -> Issued {
        let mut req = LeafRequest::with_ttl(
            spiffe.map(|s| SpiffeId::parse(s).unwrap()),
            Duration::from_secs(3600),
        )
        .unwrap();
        req.dns_names = dns.iter().map(|s| s.to_string()).collect();
        self.ca.issue(&req).unwrap()
    }

    pub fn expired_leaf(&self, spiffe: &str) -> Issued {
        let now = time::OffsetDateTime::now_utc();
        let req = LeafRequest {
            spiffe_id: Some(SpiffeId::parse(spiffe).unwrap()),
            dns_names: vec![],
            common_name: None,
            not_before: now - time::Duration::hours(2),
            not_after: now - time::Duration::hours(1),
        };
        self.ca.issue(&req).unwrap()
    }

    /// Writes `<name>/cert.pem`, `key.pem`, `ca.pem`.
    pub fn write_leaf(&self, name: &str, leaf: &Issued) {
        leaf.write_to(&self.path(name), self.ca.cert_pem()).unwrap();
    }

    /// A server-mode config with the given allow section body.
    pub fn server_config(&self, upstream: SocketAddr, allow: &str, extra: &str) -> Config {
        let text = format!(
            r#"
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"
{extra_top}
[tls]
cert = "server/cert.pem"
key = "server/key.pem"
ca = "server/ca.pem"
reload_interval = "50ms"
[server]
upstream = "{upstream}"
[server.allow]
{allow}
{extra}
"#,
            extra_top = ""
        );
        Config::parse(&text, &self.path("proxy.toml"), self.dir.path()).unwrap()
    }

    /// Starts a server-mode proxy in front of `upstream` ([`Pki::server_config`]).
    pub async fn start_server(&self, upstream: SocketAddr, allow: &str, extra: &str) -> Running {
        mtls_proxy::app::start(self.server_config(upstream, allow, extra))
            .await
            .unwrap()
    }

    /// Client TLS presenting a fresh leaf for [`WEB_ID`], trusting this CA.
    pub fn web_client(&self) -> Arc<rustls::ClientConfig> {
        client_tls(&self.leaf(Some(WEB_ID), &[]), self.ca.cert_pem())
    }
}

/// Shuts `proxy` down gracefully and waits for all its tasks.
pub async fn stop(proxy: Running) {
    proxy.shutdown();
    proxy.wait().await;
}

/// An HTTP/1.1 upstream that answers with the XFCC headers it received.
pub struct Upstream {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
}

pub async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    let count = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    count.fetch_add(1, Ordering::Relaxed);
                    async move {
                        if req.uri().path() == "/slow" {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        let xfcc: Vec<String> = req
                            .headers()
                            .get_all("x-forwarded-client-cert")
                            .iter()
                            .map(|v| v.to_str().unwrap().to_string())
                            .collect();
                        let body = req.into_body().collect().await?.to_bytes();
                        let text = format!(
                            "xfcc_count={}\n{}\nbody={}",
                            xfcc.len(),
                            xfcc.join("\n"),
                            String::from_utf8_lossy(&body)
                        );
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Upstream { addr, requests }
}

/// A rustls client config presenting `leaf`, trusting `ca_pem`.
pub fn client_tls(leaf: &Issued, ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain = vec![CertificateDer::from(leaf.cert_der.clone())];
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap(),
    )
}

/// An open mTLS HTTP/1.1 connection to the proxy.
pub struct Conn {
    pub local: SocketAddr,
    pub sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    pub server_cert: Vec<u8>,
}

pub async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Conn, String> {
    connect_sni(addr, tls, "localhost").await
}

/// Like [`connect`], sending `sni` and verifying the server for that name.
pub async fn connect_sni(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    sni: &str,
) -> Result<Conn, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let local = tcp.local_addr().unwrap();
    let stream = TlsConnector::from(tls)
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let server_cert = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn {
        local,
        sender,
        server_cert,
    })
}

impl Conn {
    /// Sends a GET (with optional extra headers); returns (status, body).
    pub async fn get(&mut self, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
        self.get_path("/hello", headers).await
    }

    /// Sends a GET for `path`; returns (status, body).
    pub async fn get_path(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String), String> {
        let mut b = Request::get(path).header("host", "localhost");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::new())).unwrap();
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// One request over a fresh connection.
pub async fn request_once(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let mut c = connect(addr, tls).await?;
    c.get(headers).await
}

/// Plain HTTP GET (admin endpoint).
pub async fn plain_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::get(path)
                .header("host", "admin")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Waits until `f` is true or panics with `what`.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..250 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = LOGS
        .get()
        .map(|l| String::from_utf8_lossy(&l.lock().unwrap()).into_owned())
        .unwrap_or_default();
    panic!("timed out waiting for: {what}\nlogs:\n{logs}");
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}
