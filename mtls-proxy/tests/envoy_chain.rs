//! End to end through real processes on loopback:
//!
//! client (rustls, client certificate) → mtls-proxy (server mode, in
//! process) → Envoy 1.40 with `jwt-auth.wasm` then `rbac.wasm` → echo
//! upstream.
//!
//! rbac decides on the workload identity mtls-proxy put in
//! `x-forwarded-client-cert` (its XFCC principal support:
//! `xfcc_trusted_proxies` names mtls-proxy's address, `principals` matches the
//! `URI` of the last XFCC element) **and** on the token jwt-auth verified
//! (`request_principals` and a `groups` claim), so both plugins decide.
//!
//! Envoy's listener has the settings rbac's README requires behind an
//! mTLS-terminating proxy: `forward_client_cert_details: ALWAYS_FORWARD_ONLY`
//! (the default `SANITIZE` strips XFCC before any filter runs) and
//! `use_remote_address: true` (so `source.address`, which
//! `xfcc_trusted_proxies` is compared with, is the direct peer).
//!
//! Needs Envoy (`scripts/install-envoy`) and the modules (`scripts/build`).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use host_test_harness::envoy::{
    envoy_binary, workspace_root, Bootstrap, EchoUpstream, Envoy, EnvoyOptions, WasmFilter,
};
use host_test_harness::fixture::EchoedRequest;
use jwt_simple::prelude::{Claims, HS256Key, MACLike};
use mtls_proxy::identity::sha256_hex;
use serde_json::{json, Value};

const WEB: &str = "spiffe://td/ns/prod/sa/web";
const DB: &str = "spiffe://td/ns/prod/sa/db";
const DEV_WEB: &str = "spiffe://td/ns/dev/sa/web";

/// mtls-proxy lets in every workload of the `prod` namespace.
const ALLOW_PROD: &str = r#"spiffe_ids = ["spiffe://td/ns/prod/**"]"#;

/// The HS256 key tokens are signed with, and its base64url form in the JWKS.
const JWT_KEY: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const JWT_KEY_B64URL: &str =
    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg";
const ISSUER: &str = "https://issuer.test";

/// jwt-auth: every path needs a valid token of the `corp` provider.
fn jwt_auth_config() -> String {
    json!({
        "providers": { "corp": {
            "issuer": ISSUER,
            "local_jwks": { "inline": { "keys": [
                { "kty": "oct", "kid": "hs", "alg": "HS256", "k": JWT_KEY_B64URL } ] } }
        } },
        "rules": [ { "match": { "paths": [ { "prefix": "/" } ] },
                     "requires": { "provider_name": "corp" } } ]
    })
    .to_string()
}

/// rbac: believes XFCC only from mtls-proxy's address (loopback), and allows
/// the prod/web workload with a token from our issuer carrying the `orders`
/// group. Nothing else is allowed.
fn rbac_config() -> String {
    json!({
        "xfcc_trusted_proxies": ["127.0.0.1/32"],
        "policies": [ { "name": "web-orders", "action": "ALLOW", "rules": [ {
            "from": [ { "source": {
                "principals": ["td/ns/prod/sa/web"],
                "request_principals": [format!("{ISSUER}/*")]
            } } ],
            "when": [ { "key": "request.auth.claims[groups]", "values": ["orders"] } ]
        } ] } ]
    })
    .to_string()
}

/// `target/plugins/<name>.wasm`, or a panic saying how to build it.
fn module(name: &str) -> PathBuf {
    let root = workspace_root().expect("run inside the Palisade workspace");
    let path = root.join(format!("target/plugins/{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build first (scripts/build jwt-auth rbac)",
        path.display()
    );
    path
}

/// Envoy routing to `upstream` through jwt-auth then rbac, with the
/// connection-manager settings described at the top.
fn envoy_config(upstream: SocketAddr) -> String {
    let chain = vec![
        WasmFilter::new("palisade.jwt_auth", module("jwt-auth")).config(jwt_auth_config()),
        WasmFilter::new("palisade.rbac", module("rbac"))
            .root_id("rbac")
            .config(rbac_config()),
    ];
    let mut config = Bootstrap::new(chain, upstream).to_json();
    let hcm = &mut config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    hcm["forward_client_cert_details"] = json!("ALWAYS_FORWARD_ONLY");
    hcm["use_remote_address"] = json!(true);
    // JSON is YAML.
    config.to_string()
}

/// An HS256 token from [`ISSUER`] for `sub` with the given groups.
fn token(sub: &str, groups: &[&str]) -> String {
    let claims = Claims::with_custom_claims(
        json!({ "groups": groups }),
        jwt_simple::prelude::Duration::from_mins(10),
    )
    .with_issuer(ISSUER)
    .with_subject(sub);
    HS256Key::from_bytes(JWT_KEY)
        .with_key_id("hs")
        .authenticate(claims)
        .unwrap()
}

/// Asserts a Palisade deny answer: `status` and the `code` of its JSON body
/// (`{"error","code","request_id"}`).
fn assert_denied((status, body): (u16, String), want_status: u16, want_code: &str) {
    let json: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("deny body is not JSON ({e}): {status} {body}"));
    assert_eq!(
        (status, json["code"].as_str()),
        (want_status, Some(want_code)),
        "{body}"
    );
}

/// One GET over a fresh mTLS connection to mtls-proxy.
async fn get(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut conn = connect(addr, tls).await.expect("handshake with mtls-proxy");
    conn.get_path(path, headers).await.expect("an HTTP answer")
}

/// rbac's JSON decision lines in Envoy's log (waiting until `path` has one).
async fn rbac_lines(envoy: &Envoy, path: &str) -> Vec<Value> {
    for _ in 0..250 {
        let lines: Vec<Value> = envoy
            .log()
            .lines()
            .filter_map(|l| l.find(r#"{"plugin":"rbac""#).map(|i| &l[i..]))
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect();
        if lines.iter().any(|l| l["path"] == path) {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "no rbac decision line for {path} in Envoy's log:\n{}",
        envoy.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_in_envoy_decides_on_the_xfcc_identity_from_mtls_proxy() {
    init_logs();
    if let Err(e) = envoy_binary() {
        panic!("{e}");
    }
    let upstream = EchoUpstream::start().unwrap();
    let config = envoy_config(upstream.addr());
    // V8 compiles both modules at start: slow on a loaded machine.
    let options = EnvoyOptions {
        ready_timeout: std::time::Duration::from_secs(120),
        ..EnvoyOptions::default()
    };
    let envoy = tokio::task::spawn_blocking(move || Envoy::start(&config, &options))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));

    let pki = Pki::new();
    let proxy = mtls_proxy::app::start(pki.server_config(envoy.listener_addr(), ALLOW_PROD, ""))
        .await
        .unwrap();
    let addr = proxy.listen_addr;
    let ca = pki.ca.cert_pem();
    let web = pki.leaf(Some(WEB), &[]);
    let db = pki.leaf(Some(DB), &[]);
    let dev_web = pki.leaf(Some(DEV_WEB), &[]);
    let (web_tls, db_tls) = (client_tls(&web, ca), client_tls(&db, ca));
    let orders = format!("Bearer {}", token("ann", &["staff", "orders"]));
    let with_orders = [("authorization", orders.as_str())];

    // prod/web with a valid token: allowed; the upstream sees mtls-proxy's
    // XFCC (one header, the web certificate), and not the token.
    let (status, body) = get(addr, web_tls.clone(), "/orders", &with_orders).await;
    assert_eq!(status, 200, "{body}\n{}", envoy.log());
    let echoed: EchoedRequest = serde_json::from_str(&body).unwrap();
    let xfcc: Vec<&str> = echoed
        .headers
        .iter()
        .filter(|(k, _)| k == "x-forwarded-client-cert")
        .map(|(_, v)| v.as_str())
        .collect();
    let expected = format!(
        "By={SERVER_ID};Hash={};Subject=\"\";URI={WEB}",
        sha256_hex(&web.cert_der)
    );
    assert_eq!(xfcc, [expected.as_str()], "{body}");
    assert!(
        echoed.headers.iter().all(|(k, _)| k != "authorization"),
        "jwt-auth forwarded the token: {body}"
    );

    // prod/web without a token: jwt-auth answers 401 before rbac runs.
    assert_denied(
        get(addr, web_tls.clone(), "/orders/no-token", &[]).await,
        401,
        "jwt_missing",
    );

    // prod/web with a valid token lacking the `orders` group: rbac denies
    // on the token's claims although the workload matches.
    let staff = format!("Bearer {}", token("bo", &["staff"]));
    assert_denied(
        get(
            addr,
            web_tls,
            "/orders/no-group",
            &[("authorization", staff.as_str())],
        )
        .await,
        403,
        "rbac_denied",
    );

    // prod/db with a valid token: mtls-proxy lets it in (prod/**), rbac
    // denies on the XFCC identity.
    assert_denied(
        get(addr, db_tls.clone(), "/orders/db", &with_orders).await,
        403,
        "rbac_denied",
    );

    // prod/db forging an XFCC that claims prod/web: mtls-proxy replaces the
    // header, so rbac still sees prod/db.
    let forged = format!("By=spiffe://td/ns/edge/sa/mtls-proxy;Hash=00;Subject=\"\";URI={WEB}");
    assert_denied(
        get(
            addr,
            db_tls,
            "/orders/forged",
            &[
                ("authorization", orders.as_str()),
                ("x-forwarded-client-cert", forged.as_str()),
            ],
        )
        .await,
        403,
        "rbac_denied",
    );

    // rbac's decision lines name the identities it decided on.
    let lines = rbac_lines(&envoy, "/orders/forged").await;
    let denial = |path: &str| {
        lines
            .iter()
            .find(|l| l["decision"] == "deny" && l["path"] == path)
            .unwrap_or_else(|| panic!("no rbac denial for {path}: {lines:?}"))
    };
    for path in ["/orders/db", "/orders/forged"] {
        let d = denial(path);
        assert_eq!(d["principal"], "td/ns/prod/sa/db", "{d}");
        assert_eq!(d["request_principal"], format!("{ISSUER}/ann"), "{d}");
    }
    let d = denial("/orders/no-group");
    assert_eq!(
        (d["principal"].as_str(), d["request_principal"].as_str()),
        (Some("td/ns/prod/sa/web"), Some("https://issuer.test/bo"))
    );

    // dev/web: refused at the TLS layer by mtls-proxy's allow-list, with the
    // reason counted and logged; nothing reaches Envoy.
    let refused = match connect(addr, client_tls(&dev_web, ca)).await {
        Ok(mut c) => {
            let local = c.local;
            (c.get_path("/orders/dev", &with_orders).await, Some(local))
        }
        Err(e) => (Err(e), None),
    };
    assert!(refused.0.is_err(), "dev/web got an answer: {:?}", refused.0);
    let metrics = proxy.metrics.clone();
    eventually("dev/web refusal counted as identity_not_allowed", || {
        metrics.handshake_failures("identity_not_allowed") == 1
    })
    .await;
    if let Some(local) = refused.1 {
        let line = wait_log(&[
            "client refused",
            "identity_not_allowed",
            &format!("peer={local}"),
        ])
        .await;
        assert!(line.contains(DEV_WEB), "{line}");
    }

    // rbac decided exactly the four requests that passed jwt-auth: one
    // allowed, three denied (the 401 and the TLS refusal never reached it).
    let metric = |name: &str| envoy.metric(name).unwrap();
    assert_eq!(metric("palisade_rbac_allowed"), Some(1.0));
    assert_eq!(metric("palisade_rbac_denied"), Some(3.0));

    stop(proxy).await;
    drop(envoy);
    drop(upstream);
}
