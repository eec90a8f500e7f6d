//! The jwt-auth fixtures through real Envoy 1.40, and remote keys served by
//! a local JWKS server through an Envoy cluster: fetched at start, then
//! rotated while traffic flows without losing a request that carries a
//! valid token.

use host_test_harness::envoy::{self, Bootstrap, Envoy, EnvoyOptions, ExtraCluster, WasmFilter};
use host_test_harness::fixture::{FixtureFile, Request};
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant, SystemTime, UNIX_EPOCH};

#[path = "../src/testkeys.rs"]
#[allow(dead_code)]
mod testkeys;

fn root() -> PathBuf {
    envoy::workspace_root().expect("run inside the Palisade workspace")
}

fn module() -> PathBuf {
    let m = root().join("target/plugins/jwt-auth.wasm");
    assert!(
        m.exists(),
        "{} is missing: run scripts/build first",
        m.display()
    );
    m
}

fn filter() -> WasmFilter {
    WasmFilter::new("palisade.jwt_auth", module()).root_id("jwt-auth")
}

#[test]
fn fixtures_pass_in_real_envoy() {
    let files = FixtureFile::load_dir(root().join("plugins/jwt-auth/fixtures")).unwrap();
    assert!(!files.is_empty());
    let mut failed = 0;
    for file in &files {
        let report = envoy::run_file(&[filter()], file);
        println!("{report}");
        failed += report.failed();
    }
    assert_eq!(
        failed, 0,
        "fixture cases failed in Envoy (see the report above)"
    );
}

#[test]
fn shipped_example_validates() {
    let out = envoy::validate_file(
        &root().join("envoy-examples/jwt-auth.yaml"),
        &EnvoyOptions::default(),
    )
    .expect("envoy --mode validate accepts envoy-examples/jwt-auth.yaml");
    assert!(out.contains("OK"), "{out}");
}

/// A JWKS server on loopback whose document can be swapped; counts fetches.
struct JwksServer {
    port: u16,
    body: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(initial: &str) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = Arc::new(Mutex::new(initial.to_string()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (b, f) = (body.clone(), fetches.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                f.fetch_add(1, Ordering::SeqCst);
                let doc = b.lock().unwrap().clone();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
                    doc.len()
                );
            }
        });
        JwksServer {
            port,
            body,
            fetches,
        }
    }

    fn serve(&self, doc: &str) {
        *self.body.lock().unwrap() = doc.to_string();
    }
}

fn token(pem: &str, kid: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let c: JWTClaims<serde_json::Map<String, Value>> = serde_json::from_value(json!({
        "iss": "https://issuer.test", "sub": "alice", "iat": now - 5, "exp": now + 600
    }))
    .unwrap();
    RS256KeyPair::from_pem(pem)
        .unwrap()
        .with_key_id(kid)
        .sign(c)
        .unwrap()
}

fn with_token(t: &str) -> Request {
    Request {
        path: "/orders".into(),
        headers: vec![("authorization".into(), format!("Bearer {t}"))],
        ..Default::default()
    }
}

#[test]
fn remote_jwks_rotation_loses_no_valid_request() {
    let jwks = JwksServer::start(testkeys::JWKS_ALL);
    let upstream = envoy::EchoUpstream::start().unwrap();
    let config = json!({"providers": {"corp": {
        "issuer": "https://issuer.test",
        "remote_jwks": {
            "http_uri": {"uri": format!("http://127.0.0.1:{}/jwks", jwks.port), "cluster": "idp", "timeout": "2s"},
            "cache_duration": "300s", "unknown_kid_refetch_interval": "1s"
        }
    }}});
    let boot = Bootstrap::new(vec![filter().config(config.to_string())], upstream.addr())
        .cluster(ExtraCluster::new("idp", "127.0.0.1", jwks.port));
    let proxy = Envoy::start_bootstrap(&boot, &EnvoyOptions::default()).expect("envoy starts");
    let addr = proxy.listener_addr();

    // Keys are fetched at start (first tick), before traffic needs them.
    let old = token(testkeys::RSA1_PEM, "rsa1");
    let deadline = Instant::now() + StdDuration::from_secs(15);
    loop {
        let o = envoy::send(addr, &with_token(&old)).unwrap();
        if o.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys never arrived: {}",
            proxy.log()
        );
        std::thread::sleep(StdDuration::from_millis(100));
    }
    assert!(jwks.fetches.load(Ordering::SeqCst) >= 1);

    // Rotation: the issuer publishes a new key next to the old one and
    // starts signing with it. Old and new tokens keep flowing.
    let new_set: Value = {
        let mut all: Value = serde_json::from_str(testkeys::JWKS_ALL).unwrap();
        let rotated: Value = serde_json::from_str(testkeys::JWKS_ROTATED).unwrap();
        if let (Some(keys), Some(extra)) = (all["keys"].as_array_mut(), rotated["keys"].as_array())
        {
            keys.extend(extra.iter().cloned());
        }
        all
    };
    jwks.serve(&new_set.to_string());
    let new = token(testkeys::RSA2_PEM, "rsa2");
    let mut statuses = Vec::new();
    for i in 0..40 {
        let t = if i % 2 == 0 { &old } else { &new };
        statuses.push(envoy::send(addr, &with_token(t)).unwrap().status);
    }
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{statuses:?}\n{}",
        proxy.log()
    );
    // A token with a kid nobody publishes is refused, and does not make
    // Envoy hammer the key server.
    let before = jwks.fetches.load(Ordering::SeqCst);
    for _ in 0..10 {
        let o = envoy::send(addr, &with_token(&token(testkeys::RSA2_PEM, "nobody"))).unwrap();
        assert_eq!(o.status, 401);
    }
    let after = jwks.fetches.load(Ordering::SeqCst);
    assert!(
        after - before <= 2 * 2,
        "refetches are rate limited per worker: {before} → {after}"
    );
    assert!(proxy.log().contains("jwt_unknown_kid"));
}
