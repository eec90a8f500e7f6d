//! The binary end to end: `ca init`, `ca issue`, `status`, `run`, SIGHUP
//! reload and SIGTERM graceful exit, as separate processes.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;
use mtls_proxy::ca::Issued;
use mtls_proxy::identity::sha256_hex;

const BIN: &str = env!("CARGO_BIN_EXE_mtls-proxy");

fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("MTLS_PROXY_LOG", "info")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn load_issued(dir: &Path) -> Issued {
    use rustls::pki_types::pem::PemObject;
    let cert_pem = read(&dir.join("cert.pem"));
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    Issued {
        cert_pem,
        key_pem: read(&dir.join("key.pem")),
        cert_der: der.to_vec(),
    }
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

struct Killer(Child);
impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn ca_status_run_sighup_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).to_string_lossy().into_owned();

    let o = cli(&["ca", "init", "--dir", &d("ca")]);
    assert!(o.status.success(), "{}", text(&o));
    let again = cli(&["ca", "init", "--dir", &d("ca")]);
    assert!(!again.status.success());
    assert!(text(&again).contains("--force"), "{}", text(&again));

    let issue = |id: &str, out: &str, ttl: &str| {
        let o = cli(&[
            "ca",
            "issue",
            "--dir",
            &d("ca"),
            "--spiffe-id",
            id,
            "--dns",
            "localhost",
            "--ttl",
            ttl,
            "--out",
            &d(out),
        ]);
        assert!(o.status.success(), "{}", text(&o));
    };
    issue(SERVER_ID, "server", "24h");
    issue("spiffe://td.test/ns/prod/sa/web", "client", "1h");
    let bad = cli(&[
        "ca",
        "issue",
        "--dir",
        &d("ca"),
        "--spiffe-id",
        "http://x",
        "--out",
        &d("x"),
    ]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("spiffe://"), "{}", text(&bad));

    let up = upstream().await;
    let port = free_port();
    let admin = free_port();
    let config = format!(
        r#"listen = "127.0.0.1:{port}"
admin = "127.0.0.1:{admin}"
policy = "compatible"
[tls]
cert = "server/cert.pem"
key = "server/key.pem"
ca = "server/ca.pem"
reload_interval = "1h"
[server]
upstream = "{}"
[server.allow]
spiffe_ids = ["spiffe://td.test/ns/prod/**"]
"#,
        up.addr
    );
    std::fs::write(dir.path().join("proxy.toml"), &config).unwrap();
    let o = cli(&["status", "--config", &d("proxy.toml")]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for want in [
        "mode:        server",
        "policy:      compatible",
        if cfg!(feature = "fips") {
            "fips:        available"
        } else {
            "fips:        not available"
        },
        SERVER_ID,
        "expires:",
    ] {
        assert!(t.contains(want), "status lacks {want:?}:\n{t}");
    }
    assert!(t.contains("(in 1d)") || t.contains("(in 23h59m)"), "{t}");

    std::fs::write(
        dir.path().join("typo.toml"),
        config.replace("upstream =", "upstreams ="),
    )
    .unwrap();
    let o = cli(&["status", "--config", &d("typo.toml")]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("unknown field `upstreams`"),
        "{}",
        text(&o)
    );

    let child = Command::new(BIN)
        .args(["run", "--config", &d("proxy.toml")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Killer(child);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = load_issued(&dir.path().join("client"));
    let tls = client_tls(&client, &read(&dir.path().join("ca/ca.pem")));
    let mut first = None;
    for _ in 0..250 {
        if let Ok(c) = connect(addr, tls.clone()).await {
            first = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut first = first.expect("proxy process did not come up");
    let (status, body) = first.get(&[]).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("URI=spiffe://td.test/ns/prod/sa/web"),
        "{body}"
    );
    let old_hash = sha256_hex(&first.server_cert);

    // Replace the server certificate, then SIGHUP: new handshakes use it.
    issue(SERVER_ID, "server", "24h");
    let new_hash = sha256_hex(&load_issued(&dir.path().join("server")).cert_der);
    assert_ne!(old_hash, new_hash);
    signal(&child.0, "-HUP");
    let mut seen = String::new();
    for _ in 0..250 {
        seen = sha256_hex(&connect(addr, tls.clone()).await.unwrap().server_cert);
        if seen == new_hash {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, new_hash, "SIGHUP did not reload");
    assert_eq!(
        first.get(&[]).await.unwrap().0,
        200,
        "open connection dropped by reload"
    );

    let (code, metrics) =
        plain_get(format!("127.0.0.1:{admin}").parse().unwrap(), "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("mtls_proxy_cert_reloads_total{result=\"success\"} 1"),
        "{metrics}"
    );

    // SIGTERM: graceful exit with status 0.
    drop(first);
    signal(&child.0, "-TERM");
    let mut status = None;
    for _ in 0..250 {
        if let Some(s) = child.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = status.expect("did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let mut log = String::new();
    use std::io::Read;
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("certificate reloaded"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}
