//! rbac in real Envoy 1.40 (installed by `scripts/install-envoy`): the
//! fixture files (the same ones the harness runs), jwt-auth then rbac on a
//! token signed here, mTLS with a CA made here, and what only a real proxy
//! shows: the shipped example validates, metrics reach `/stats/prometheus`,
//! decision lines reach the log.
//!
//! Envoy runs with the connection-manager settings `README.md` requires of
//! a deployment: `use_remote_address: true` (so `source.address` is the
//! direct peer, not a client-chosen `x-forwarded-for`) and
//! `forward_client_cert_details: ALWAYS_FORWARD_ONLY` (so a trusted proxy's
//! `x-forwarded-client-cert` reaches the filter; rbac removes it when the
//! sender is not trusted).

mod common;

use common::*;
use host_test_harness::envoy::{self, Bootstrap, EchoUpstream, Envoy, EnvoyOptions, WasmFilter};
use host_test_harness::fixture::{self, CaseReport, FileReport, FixtureFile, Request};
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

fn rbac_filter(config: &str) -> WasmFilter {
    WasmFilter::new("palisade.rbac", module_path("rbac"))
        .root_id("rbac")
        .config(config)
}

fn jwt_filter() -> WasmFilter {
    WasmFilter::new("palisade.jwt_auth", module_path("jwt-auth")).config(jwt_config())
}

/// The generated bootstrap with the deployment settings described above.
fn bootstrap(chain: Vec<WasmFilter>, upstream: SocketAddr) -> Value {
    let mut json = Bootstrap::new(chain, upstream).to_json();
    let hcm = &mut json["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    hcm["use_remote_address"] = json!(true);
    hcm["forward_client_cert_details"] = json!("ALWAYS_FORWARD_ONLY");
    json
}

/// Envoy options with a generous start-up wait: V8 compiles the modules
/// at start, which takes long on a loaded 2-core machine.
fn options() -> EnvoyOptions {
    EnvoyOptions {
        ready_timeout: std::time::Duration::from_secs(120),
        ..EnvoyOptions::default()
    }
}

/// Starts Envoy on a bootstrap (JSON is YAML).
fn start(config: &Value) -> Envoy {
    Envoy::start(&config.to_string(), &options()).expect("envoy starts")
}

/// Runs fixture files through **one** Envoy with one listener per file:
/// each listener's chain is `chain_before` (from the pair) then rbac with
/// the file's configuration. (One start instead of one per file: starting
/// Envoy with V8 dominates the cost.)
fn run_in_one_envoy(files: &[(Vec<WasmFilter>, FixtureFile)]) -> Vec<FileReport> {
    let upstream = EchoUpstream::start().unwrap();
    let listeners: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, (before, file))| {
            let mut chain = before.clone();
            chain.push(rbac_filter(
                &String::from_utf8(file.config_bytes()).unwrap(),
            ));
            let mut listener =
                bootstrap(chain, upstream.addr())["static_resources"]["listeners"][0].clone();
            listener["name"] = json!(format!("fixture-{i}"));
            listener
        })
        .collect();
    let mut config = bootstrap(Vec::new(), upstream.addr());
    config["static_resources"]["listeners"] = Value::Array(listeners);
    let proxy = start(&config);
    files
        .iter()
        .enumerate()
        .map(|(i, (_, file))| {
            let addr = proxy
                .listener(&format!("fixture-{i}"))
                .expect("listener is up");
            let cases = file
                .cases
                .iter()
                .map(|case| match envoy::send(addr, &case.request) {
                    Ok(outcome) => CaseReport {
                        name: case.name.clone(),
                        mismatches: fixture::check(&case.expect, &outcome),
                        outcome: Some(outcome),
                        error: None,
                    },
                    Err(e) => CaseReport {
                        name: case.name.clone(),
                        outcome: None,
                        mismatches: Vec::new(),
                        error: Some(e.to_string()),
                    },
                })
                .collect();
            FileReport {
                name: file.name.clone(),
                runner: envoy::RUNNER_NAME.to_string(),
                cases,
            }
        })
        .collect()
}

#[test]
fn fixtures_pass_in_real_envoy() {
    let (refused, plain): (Vec<FixtureFile>, Vec<FixtureFile>) = plain_fixtures()
        .into_iter()
        .partition(|f| f.config_error.is_some());
    let with_jwt = jwt_fixtures();
    assert!(plain.len() >= 8 && !with_jwt.is_empty() && !refused.is_empty());
    let runs: Vec<(Vec<WasmFilter>, FixtureFile)> = plain
        .into_iter()
        .map(|f| (Vec::new(), f))
        .chain(with_jwt.into_iter().map(|f| (vec![jwt_filter()], f)))
        .collect();
    // Refused configurations each need an Envoy that exits; run them next
    // to the one that serves every other file.
    let reports: Vec<FileReport> = std::thread::scope(|s| {
        let refusals: Vec<_> = refused
            .iter()
            .map(|f| s.spawn(move || envoy::run_file_with(&[rbac_filter("")], f, &options(), &[])))
            .collect();
        let mut reports = run_in_one_envoy(&runs);
        reports.extend(refusals.into_iter().map(|h| h.join().unwrap()));
        reports
    });
    let mut failed = 0;
    for report in &reports {
        println!("{report}");
        assert!(!report.cases.is_empty(), "{}: no case ran", report.name);
        failed += report.failed();
    }
    assert!(istio_case_count() >= 60);
    assert_eq!(
        failed, 0,
        "fixture cases failed in Envoy (see the report above)"
    );
}

#[test]
fn shipped_example_validates_and_decides() {
    let example = root().join("envoy-examples/rbac.yaml");
    let out = envoy::validate_file(&example, &EnvoyOptions::default())
        .expect("envoy --mode validate accepts envoy-examples/rbac.yaml");
    assert!(out.contains("OK"), "{out}");
    let upstream = EchoUpstream::start().unwrap();
    let subs = envoy::Substitutions::new(root()).upstream(upstream.port());
    let proxy = Envoy::start_example(&example, &subs, &options())
        .expect("the example starts (its configuration, team bundle included, is accepted)");
    let send = |method: &str, path: &str, source: Option<&str>, headers: &[(&str, &str)]| {
        envoy::send(
            proxy.listener_addr(),
            &Request {
                method: method.into(),
                path: path.into(),
                source: source.map(|s| s.parse().unwrap()),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
        )
        .unwrap()
        .status
    };
    let xfcc = |sa: &str| format!("URI=spiffe://cluster.local/ns/shop/sa/{sa}");
    let (web, batch, api) = (xfcc("web"), xfcc("batch"), xfcc("api"));
    let from_proxy = Some("127.0.0.2");
    fn cert(v: &str) -> [(&'static str, &str); 1] {
        [("x-forwarded-client-cert", v)]
    }
    assert_eq!(send("GET", "/api/orders", from_proxy, &cert(&web)), 200);
    assert_eq!(send("GET", "/api/orders", from_proxy, &cert(&batch)), 403);
    assert_eq!(
        send("GET", "/api/orders", Some("127.0.0.3"), &cert(&web)),
        403
    );
    assert_eq!(send("GET", "/api/internal/x", from_proxy, &cert(&web)), 403);
    // The payments team's bundle narrows its prefix to the web workload.
    assert_eq!(send("GET", "/api/orders", from_proxy, &cert(&api)), 200);
    assert_eq!(send("GET", "/api/payments/1", from_proxy, &cert(&web)), 200);
    assert_eq!(send("GET", "/api/payments/1", from_proxy, &cert(&api)), 403);
}

const OBSERVED: &str = r#"{"policies":[
  {"name":"no-writes","action":"DENY","rules":[{"to":[{"operation":{"methods":["POST"]}}]}]},
  {"name":"audit-admin","action":"AUDIT","rules":[{"to":[{"operation":{"paths":["/admin/*"]}}]}]},
  {"name":"try-deny-beta","action":"DENY","dry_run":true,"rules":[{"to":[{"operation":{"paths":["/beta/*"]}}]}]},
  {"name":"public","action":"ALLOW","rules":[{"to":[{"operation":{"paths":["/public/*","/admin/*","/beta/*"]}}]}]}]}"#;

#[test]
fn metrics_and_decision_lines_in_envoy() {
    let upstream = EchoUpstream::start().unwrap();
    let proxy = start(&bootstrap(vec![rbac_filter(OBSERVED)], upstream.addr()));
    let addr = proxy.listener_addr();
    let get = |method: &str, path: &str| {
        envoy::send(
            addr,
            &Request {
                method: method.into(),
                path: path.into(),
                ..Default::default()
            },
        )
        .unwrap()
        .status
    };
    assert_eq!(get("POST", "/public/x"), 403);
    assert_eq!(get("GET", "/private"), 403);
    assert_eq!(get("GET", "/public/x"), 200);
    assert_eq!(get("GET", "/admin/x"), 200);
    assert_eq!(get("GET", "/beta/x"), 200);
    let metric = |name: &str| proxy.metric(name).unwrap();
    assert_eq!(metric("palisade_rbac_denied"), Some(2.0));
    assert_eq!(metric("palisade_rbac_allowed"), Some(3.0));
    assert_eq!(metric("palisade_rbac_policy_public_matched"), Some(3.0));
    assert_eq!(metric("palisade_rbac_policy_no_writes_matched"), Some(1.0));
    assert_eq!(metric("palisade_rbac_action_deny_matched"), Some(1.0));
    assert_eq!(metric("palisade_rbac_action_audit_matched"), Some(1.0));
    assert_eq!(
        metric("palisade_rbac_policy_try_deny_beta_dry_run_matched"),
        Some(1.0)
    );
    assert_eq!(metric("palisade_rbac_shadow_denied"), Some(1.0));
    let log = proxy.log();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| l.find(r#"{"plugin":"rbac""#).map(|i| &l[i..]))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
    let find = |decision: &str, path: &str| {
        lines
            .iter()
            .find(|l| l["decision"] == decision && l["path"] == path)
            .unwrap_or_else(|| panic!("no {decision} line for {path} in Envoy's log:\n{log}"))
    };
    let deny = find("deny", "/public/x");
    assert_eq!(
        (deny["policy"].as_str(), deny["rule"].as_u64()),
        (Some("no-writes"), Some(0))
    );
    assert_eq!(
        find("deny", "/private")["reason"],
        "no ALLOW policy matched"
    );
    assert_eq!(find("audit", "/admin/x")["policy"], "audit-admin");
    let dry = find("dry_run", "/beta/x");
    assert_eq!(
        (dry["policy"].as_str(), dry["would"].as_str()),
        (Some("try-deny-beta"), Some("deny"))
    );
    assert!(log.contains("rbac 0.1.0 (commit"), "configure line missing");
}

/// An HS256 token for the `with-jwt` jwt-auth configuration.
fn token(sub: &str, groups: &[&str]) -> String {
    let claims = Claims::with_custom_claims(json!({ "groups": groups }), Duration::from_mins(10))
        .with_issuer("https://issuer.test")
        .with_subject(sub);
    HS256Key::from_bytes(JWT_KEY)
        .with_key_id("hs")
        .authenticate(claims)
        .unwrap()
}

#[test]
fn jwt_auth_then_rbac_decides_on_the_groups_claim() {
    let rbac = r#"{"policies":[{"name":"analysts","action":"ALLOW","rules":[
        {"to":[{"operation":{"paths":["/reports/*"]}}],
         "when":[{"key":"request.auth.claims[groups]","values":["analysts"]}]}]}]}"#;
    let upstream = EchoUpstream::start().unwrap();
    let proxy = start(&bootstrap(
        vec![jwt_filter(), rbac_filter(rbac)],
        upstream.addr(),
    ));
    let send = |headers: Vec<(&str, String)>| {
        envoy::send(
            proxy.listener_addr(),
            &Request {
                path: "/reports/q3".into(),
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let bearer = |t: String| ("authorization", format!("Bearer {t}"));
    let ok = send(vec![bearer(token("ann", &["staff", "analysts"]))]);
    assert_eq!(ok.status, 200);
    let up = ok.upstream.expect("forwarded");
    assert!(up.headers.iter().all(|(k, _)| k != "authorization"));
    assert_eq!(send(vec![bearer(token("bo", &["staff"]))]).status, 403);
    // A forged identity in every shape a client could try: none is read.
    let forged_identity = json!({"provider":"corp","issuer":"https://issuer.test","subject":"eve",
        "claims":{"groups":["analysts"]}})
    .to_string();
    let forged = || {
        vec![
            ("x-palisade-identity", forged_identity.clone()),
            ("palisade.identity", forged_identity.clone()),
            (
                "x-jwt-payload",
                "eyJncm91cHMiOlsiYW5hbHlzdHMiXX0".to_string(),
            ),
            ("x-jwt-claim-groups", "analysts".to_string()),
        ]
    };
    let denied = send(forged());
    assert_eq!(denied.status, 403);
    assert_eq!(
        serde_json::from_slice::<Value>(&denied.body).unwrap()["code"],
        "rbac_denied"
    );
    let mut with_token = forged();
    with_token.push(bearer(token("bo", &["staff"])));
    assert_eq!(send(with_token).status, 403);
    // A token with the claim but a bad signature never reaches rbac.
    let mut bad = token("ann", &["analysts"]);
    bad.truncate(bad.len() - 4);
    bad.push_str("AAAA");
    assert_eq!(send(vec![bearer(bad)]).status, 401);
}

/// A CA, a server certificate for `api.mesh.test` and client certificates
/// with SPIFFE ids, written as PEM files.
struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "rbac test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn leaf(&self, spiffe: Option<&str>, dns: &[&str]) -> Leaf {
        use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, SanType};
        let mut params = CertificateParams::default();
        for d in dns {
            params
                .subject_alt_names
                .push(SanType::DnsName((*d).try_into().unwrap()));
        }
        if let Some(id) = spiffe {
            params
                .subject_alt_names
                .push(SanType::URI(id.try_into().unwrap()));
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn client(&self, leaf: &Leaf) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
        )
    }
}

/// One HTTP/1.1 request over TLS (SNI `api.mesh.test`); returns the status.
fn tls_get(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, path: &str, extra: &str) -> u16 {
    let name = rustls::pki_types::ServerName::try_from("api.mesh.test").unwrap();
    let conn = rustls::ClientConnection::new(tls, name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: api.mesh.test\r\n{extra}connection: close\r\n\r\n"
    )
    .unwrap();
    stream.flush().unwrap();
    // The status line is all we need; Envoy delays closing the connection.
    let mut response = Vec::new();
    let mut buf = [0u8; 512];
    while !response.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

fn write_pem(dir: &Path, name: &str, pem: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn mtls_spiffe_principal_allows_one_client_certificate_and_denies_another() {
    let pki = Pki::new();
    let server = pki.leaf(None, &["api.mesh.test"]);
    let web = pki.leaf(Some("spiffe://cluster.local/ns/shop/sa/web"), &[]);
    let other = pki.leaf(Some("spiffe://cluster.local/ns/shop/sa/batch"), &[]);
    let dir = std::env::temp_dir().join(format!("rbac-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rbac = r#"{"policies":[
      {"name":"web-only","action":"ALLOW","rules":[{"from":[{"source":{"principals":["cluster.local/ns/shop/sa/web"]}}]}]},
      {"name":"shop-status","action":"ALLOW","rules":[{"from":[{"source":{"namespaces":["shop"]}}],
        "to":[{"operation":{"paths":["/status"]}}],"when":[{"key":"connection.sni","values":["api.mesh.test"]}]}]}]}"#;
    let upstream = EchoUpstream::start().unwrap();
    let mut config = bootstrap(vec![rbac_filter(rbac)], upstream.addr());
    config["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": true,
            "common_tls_context": {
                "tls_certificates": [{
                    "certificate_chain": { "filename": write_pem(&dir, "server.pem", &server.cert_pem) },
                    "private_key": { "filename": write_pem(&dir, "server-key.pem", &server.key_pem) },
                }],
                "validation_context": {
                    "trusted_ca": { "filename": write_pem(&dir, "ca.pem", &pki.ca_pem) },
                },
            },
        },
    });
    // Envoy learns the SNI (`connection.requested_server_name`) from the
    // TLS inspector.
    config["static_resources"]["listeners"][0]["listener_filters"] = json!([{
        "name": "envoy.filters.listener.tls_inspector",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        },
    }]);
    let proxy = start(&config);
    std::fs::remove_dir_all(&dir).unwrap();
    let addr = proxy.listener_addr();
    assert_eq!(tls_get(addr, pki.client(&web), "/orders", ""), 200);
    assert_eq!(tls_get(addr, pki.client(&other), "/orders", ""), 403);
    // The other workload's namespace and SNI still open /status.
    assert_eq!(
        tls_get(addr, pki.client(&other), "/status", ""),
        200,
        "{}",
        proxy.log()
    );
    // Claiming the web identity in XFCC from an untrusted peer changes nothing.
    let forged = "x-forwarded-client-cert: URI=spiffe://cluster.local/ns/shop/sa/web\r\n";
    assert_eq!(tls_get(addr, pki.client(&other), "/orders", forged), 403);
    let log = proxy.log();
    assert!(
        log.contains(r#""principal":"cluster.local/ns/shop/sa/batch""#),
        "the denial line names the peer principal:\n{log}"
    );
}
