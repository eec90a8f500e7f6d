//! gRPC calls answered by the test, as Envoy delivers them, with a real
//! gRPC client: the rate-limit plugin (`target/plugins/rate-limit.wasm`)
//! asking its rate limit service (RLS) cluster.

use host_test_harness::{fixture::Request, GrpcResponse, Host, HostError, Module};
use std::path::PathBuf;
use std::sync::OnceLock;

fn module() -> Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(load).clone()
}

fn load() -> Module {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/rate-limit.wasm");
    assert!(
        path.exists(),
        "{} is missing: run scripts/build first",
        path.display()
    );
    Module::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

const CONFIG: &str =
    r#"{"global":{"cluster":"rls","domain":"d"},"rules":[{"name":"g","global":true}]}"#;

/// `RateLimitResponse { overall_code: OVER_LIMIT }` on the wire.
const OVER_LIMIT: [u8; 2] = [0x08, 0x02];
/// `RateLimitResponse { overall_code: OK }`.
const OK: [u8; 2] = [0x08, 0x01];

#[test]
fn a_call_waits_for_its_answer_and_the_answer_decides() {
    let mut host = Host::builder(&module())
        .plugin_config(CONFIG.as_bytes().to_vec())
        .cluster("rls")
        .build()
        .unwrap();
    let id = host.begin(&Request::default()).unwrap();
    assert!(!host.is_complete(id));
    let calls = host.pending_grpc_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.cluster, "rls");
    assert_eq!(call.service, "envoy.service.ratelimit.v3.RateLimitService");
    assert_eq!(call.method, "ShouldRateLimit");
    assert_eq!(call.token, 5, "gRPC call ids are Envoy's: 5, 9, 13, ...");
    assert!(!call.message.is_empty());
    // Not answered yet: the stream cannot finish, and says why.
    let stalled = host.finish(id).unwrap_err().to_string();
    assert!(stalled.contains("gRPC call"), "{stalled}");

    let id = host.begin(&Request::default()).unwrap();
    let token = host.pending_grpc_calls()[1].token;
    host.respond_grpc(token, GrpcResponse::ok(OVER_LIMIT))
        .unwrap();
    let out = host.finish(id).unwrap();
    assert_eq!(out.status, 429);
    assert!(out.upstream.is_none());
    assert!(matches!(
        host.respond_grpc(token, GrpcResponse::ok(OK)),
        Err(HostError::UnknownCall { .. })
    ));
}

#[test]
fn the_responder_answers_during_send() {
    let mut host = Host::builder(&module())
        .plugin_config(CONFIG.as_bytes().to_vec())
        .cluster("rls")
        .grpc_responder(|_| Some(GrpcResponse::ok(OK)))
        .build()
        .unwrap();
    let out = host.send(&Request::default()).unwrap();
    assert_eq!(out.status, 200);
    assert!(out.upstream.is_some());
}

#[test]
fn a_failed_call_closes_with_its_status_and_the_failure_mode_applies() {
    let mut host = Host::builder(&module())
        .plugin_config(CONFIG.as_bytes().to_vec())
        .cluster("rls")
        .grpc_responder(|_| Some(GrpcResponse::unavailable()))
        .build()
        .unwrap();
    let out = host.send(&Request::default()).unwrap();
    assert_eq!(out.status, 503);
    assert!(host.logged("gRPC status 14"), "{:?}", host.logs());
}
