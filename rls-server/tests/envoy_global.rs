//! Global limits end to end: two real Envoy processes running the rate-limit
//! plugin ask one palisade-rls over one redis-server, so together they admit
//! exactly the limit; with the service down, each failure mode does what it
//! says, with a log line and a metric.

use host_test_harness::envoy::{
    self, Bootstrap, EchoUpstream, Envoy, EnvoyOptions, ExtraCluster, WasmFilter,
};
use host_test_harness::fixture::Request;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::{free_port, start_redis, start_rls};

fn module() -> PathBuf {
    let m = envoy::workspace_root()
        .unwrap()
        .join("target/plugins/rate-limit.wasm");
    assert!(
        m.exists(),
        "{} is missing: run scripts/build first",
        m.display()
    );
    m
}

fn start_envoy(upstream: SocketAddr, rls_port: u16, config: &str) -> Envoy {
    let filter = WasmFilter::new("palisade.rate_limit", module())
        .root_id("rate-limit")
        .config(config);
    let boot = Bootstrap::new(vec![filter], upstream)
        .cluster(ExtraCluster::new("rls", "127.0.0.1", rls_port).http2());
    Envoy::start_bootstrap(&boot, &EnvoyOptions::default()).expect("envoy starts")
}

fn get(addr: SocketAddr, path: &str) -> host_test_harness::fixture::Outcome {
    envoy::send(
        addr,
        &Request {
            path: path.into(),
            ..Default::default()
        },
    )
    .unwrap()
}

const LIMITS: &str = "domain: edge
descriptors:
  - key: rule
    value: global-shared
    rate_limit: { unit: hour, requests_per_unit: 10 }
";

const CONFIG: &str = r#"{"global":{"cluster":"rls","domain":"edge","timeout":"2s"},
  "rules":[{"name":"global-shared","global":true}]}"#;

#[test]
fn two_envoys_share_one_global_limit() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if 3600 - now % 3600 < 20 {
        std::thread::sleep(Duration::from_secs(3600 - now % 3600 + 1));
    }
    let (_redis, redis_port) = start_redis();
    let (_rls, rls_addr) = start_rls(
        redis_port,
        LIMITS,
        &std::env::temp_dir().join(format!("palisade-rls-envoy-{}", std::process::id())),
    );
    let upstream = EchoUpstream::start().unwrap();
    let a = start_envoy(upstream.addr(), rls_addr.port(), CONFIG);
    let b = start_envoy(upstream.addr(), rls_addr.port(), CONFIG);
    let mut admitted = 0;
    let mut limited = 0;
    for i in 0..30 {
        let proxy = if i % 2 == 0 { &a } else { &b };
        let out = get(proxy.listener_addr(), &format!("/r/{i}"));
        match out.status {
            200 => admitted += 1,
            429 => {
                limited += 1;
                assert!(out.header("retry-after").is_some());
            }
            other => panic!(
                "unexpected status {other}: {:?}",
                String::from_utf8_lossy(&out.body)
            ),
        }
    }
    assert_eq!((admitted, limited), (10, 20));
    let calls = a
        .metric("palisade_ratelimit_global_calls")
        .unwrap()
        .unwrap()
        + b.metric("palisade_ratelimit_global_calls")
            .unwrap()
            .unwrap();
    assert_eq!(calls, 30.0);
}

#[test]
fn service_down_follows_the_failure_mode() {
    // Nothing listens on this port: every call fails.
    let dead = free_port();
    let upstream = EchoUpstream::start().unwrap();
    let deny = start_envoy(
        upstream.addr(),
        dead,
        r#"{"global":{"cluster":"rls","domain":"edge","timeout":"500ms","failure_mode":"deny"},"rules":[{"name":"g","global":true}]}"#,
    );
    let out = get(deny.listener_addr(), "/x");
    assert_eq!(out.status, 503, "{:?}", String::from_utf8_lossy(&out.body));
    assert!(String::from_utf8_lossy(&out.body).contains("rate_limit_unavailable"));
    assert_eq!(
        deny.metric("palisade_ratelimit_global_failures_denied")
            .unwrap(),
        Some(1.0)
    );
    assert!(
        deny.log().contains("rate_limit_service_failure"),
        "failure is logged"
    );

    let allow = start_envoy(
        upstream.addr(),
        dead,
        r#"{"global":{"cluster":"rls","domain":"edge","timeout":"500ms","failure_mode":"allow"},"rules":[{"name":"g","global":true}]}"#,
    );
    let out = get(allow.listener_addr(), "/x");
    assert_eq!(out.status, 200);
    assert!(out.upstream.is_some());
    assert_eq!(
        allow
            .metric("palisade_ratelimit_global_failures_allowed")
            .unwrap(),
        Some(1.0)
    );
    assert!(allow.log().contains(r#""failure_mode":"allow""#));
}
