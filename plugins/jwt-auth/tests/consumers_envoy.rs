//! Consumers in real Envoy 1.40: jwt-auth then rbac
//! (`target/plugins/rbac.wasm`, Istio-style policy on
//! `request.auth.claims[groups]`) as two Wasm filters in separate VMs; rbac
//! admits the `admin` group and refuses others whichever method — Basic,
//! API key (either of a consumer's two keys), JWT — authenticated the
//! request. The consumer fixtures run through Envoy in `envoy.rs`.

mod common;

use common::*;
use host_test_harness::envoy::{self, Bootstrap, Envoy, EnvoyOptions, WasmFilter};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

fn module(name: &str) -> PathBuf {
    let m = envoy::workspace_root()
        .expect("run inside the Palisade workspace")
        .join(format!("target/plugins/{name}.wasm"));
    assert!(
        m.exists(),
        "{} is missing: run scripts/build first",
        m.display()
    );
    m
}

#[test]
fn rbac_decides_on_the_consumer_group_whichever_method() {
    let upstream = envoy::EchoUpstream::start().unwrap();
    let filters = vec![
        WasmFilter::new("palisade.jwt_auth", module("jwt-auth"))
            .root_id("jwt-auth")
            .config(jwt_auth_config().to_string()),
        WasmFilter::new("palisade.rbac", module("rbac"))
            .root_id("rbac")
            .config(rbac_admins_only().to_string()),
    ];
    let proxy = Envoy::start_bootstrap(
        &Bootstrap::new(filters, upstream.addr()),
        &EnvoyOptions::default(),
    )
    .expect("envoy starts");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut failures = Vec::new();
    for (what, req, status) in group_cases(now) {
        let o = envoy::send(proxy.listener_addr(), &req).unwrap();
        if o.status != status {
            failures.push(format!(
                "{what}: {} (want {status}) {}",
                o.status,
                String::from_utf8_lossy(&o.body)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}\n{}", proxy.log());
    // The Basic challenge reaches the client through Envoy.
    let o = envoy::send(
        proxy.listener_addr(),
        &request("/orders", &[("authorization", &basic("alice", "nope"))]),
    )
    .unwrap();
    assert_eq!(
        o.header("www-authenticate"),
        Some("Basic realm=\"orders\", charset=\"UTF-8\"")
    );
    let log = proxy.log();
    assert!(log.contains("basic_invalid_credentials"), "{log}");
    assert!(
        !log.contains("nope") && !log.contains(BOB_KEY),
        "a secret was logged"
    );
}
