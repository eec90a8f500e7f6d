//! Load tool for `scripts/bench`: a fixed-response HTTP/1.1 upstream, and an
//! mTLS keep-alive load generator reporting req/s and latency percentiles.
//!
//! ```text
//! bench_tool upstream LISTEN
//! bench_tool load ADDR SNI CA CERT KEY CONNECTIONS SECONDS
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

async fn upstream(listen: &str) {
    let listener = TcpListener::bind(listen).await.expect("bind upstream");
    loop {
        let Ok((s, _)) = listener.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        });
    }
}

fn tls_config(ca: &str, cert: &str, key: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("read ca") {
        roots.add(c.expect("ca pem")).expect("add ca");
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .expect("read cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("cert pem");
    let key = PrivateKeyDer::from_pem_file(key).expect("key pem");
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client cert"),
    )
}

async fn one_connection(
    addr: String,
    sni: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    deadline: Instant,
) -> (Vec<u32>, u64) {
    let mut lat = Vec::new();
    let mut errors = 0;
    while Instant::now() < deadline {
        let Ok(tcp) = TcpStream::connect(&addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let Ok(stream) = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(sni.clone(), tcp)
            .await
        else {
            errors += 1;
            continue;
        };
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while Instant::now() < deadline {
            let req = Request::get("/")
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())
                .expect("request");
            let start = Instant::now();
            let ok = match sender.send_request(req).await {
                Ok(resp) => resp.status().is_success() && resp.into_body().collect().await.is_ok(),
                Err(_) => false,
            };
            if ok {
                lat.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
            } else {
                errors += 1;
                break;
            }
            if sender.ready().await.is_err() {
                break;
            }
        }
    }
    (lat, errors)
}

async fn load(args: &[String]) {
    let [addr, sni, ca, cert, key, conns, secs] = args else {
        eprintln!("usage: bench_tool load ADDR SNI CA CERT KEY CONNECTIONS SECONDS");
        std::process::exit(2);
    };
    let tls = tls_config(ca, cert, key);
    let sni = ServerName::try_from(sni.clone()).expect("sni");
    let conns: usize = conns.parse().expect("connections");
    let secs: u64 = secs.parse().expect("seconds");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(one_connection(
                addr.clone(),
                sni.clone(),
                tls.clone(),
                deadline,
            ))
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("task");
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"requests\":{},\"errors\":{},\"rps\":{:.1},\"p50_us\":{},\"p99_us\":{}}}",
        all.len(),
        errors,
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // One worker: the load generator shares the 2 cores with the proxy under test.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("upstream") if args.len() == 2 => rt.block_on(upstream(&args[1])),
        Some("load") => rt.block_on(load(&args[1..])),
        _ => {
            eprintln!("usage: bench_tool upstream LISTEN | bench_tool load ADDR SNI CA CERT KEY CONNECTIONS SECONDS");
            std::process::exit(2);
        }
    }
}
