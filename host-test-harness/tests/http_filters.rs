//! The harness against a real Proxy-Wasm module built with the Rust SDK.

mod common;

use common::{config, module};
use host_test_harness::fixture::{FixtureFile, Request};
use host_test_harness::{run_file, CallResponse, Host, HostError, LogLevel};
use serde_json::json;
use std::time::Duration;

fn host(cfg: serde_json::Value) -> Host {
    Host::builder(&module())
        .plugin_config(config(cfg))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn get(path: &str) -> Request {
    Request {
        path: path.into(),
        ..Request::default()
    }
}

#[test]
fn request_reaches_the_echo_upstream_with_envoy_headers() {
    let mut h = host(json!({"mode": "headers"}));
    let out = h
        .send(&Request {
            headers: vec![("x-team".into(), "ops".into())],
            ..get("/a?b=1")
        })
        .unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(out.header("x-palisade-echo"), Some("1"));
    assert_eq!(out.header("powered-by"), Some("proxy-wasm"));
    let up = out.upstream.expect("forwarded");
    assert_eq!(up.path, "/a?b=1");
    assert_eq!(
        up.headers[0],
        ("host".to_string(), "example.com".to_string())
    );
    let header = |n: &str| {
        up.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-team").as_deref(), Some("ops"));
    assert_eq!(header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(header("x-request-id").map(|v| v.len()), Some(36));
    assert!(h.logged("-> :path: /a?b=1"), "{:?}", h.logs());
    assert!(
        h.logged("completed."),
        "on_log runs at the end of the stream"
    );
}

#[test]
fn local_response_is_applied_and_goes_through_response_filters() {
    let mut h = host(json!({"mode": "headers"}));
    let out = h.send(&get("/hello")).unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(out.body, b"Hello, World!\n");
    assert_eq!(out.header("hello"), Some("World"));
    assert_eq!(out.header("content-type"), Some("text/plain"));
    assert_eq!(out.header("x-palisade-echo"), None);
    assert!(out.upstream.is_none());
}

#[test]
fn request_body_is_rewritten() {
    let mut h = host(json!({"mode": "body"}));
    let out = h
        .send(&Request {
            method: "POST".into(),
            body: Some("hello body".into()),
            ..Request::default()
        })
        .unwrap();
    let up = out.upstream.unwrap();
    assert_eq!(up.body, "HELLO BODY");
    assert!(up.headers.iter().all(|(k, _)| k != "content-length"));
    assert!(up
        .headers
        .contains(&("transfer-encoding".into(), "chunked".into())));
}

#[test]
fn http_call_pauses_until_answered_then_resumes() {
    let mut h = Host::builder(&module())
        .plugin_config(config(json!({"mode": "auth"})))
        .cluster("httpbin")
        .build()
        .unwrap();
    let id = h.begin(&get("/")).unwrap();
    assert!(!h.is_complete(id));
    let calls = h.pending_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].cluster, "httpbin");
    assert_eq!(calls[0].header(":path"), Some("/bytes/1"));
    assert_eq!(calls[0].timeout_ms, 1000);
    assert_eq!(h.stopped_filters(id), ["harness_test_modules"]);
    match h.finish(id) {
        Err(HostError::Stalled { pending_calls, .. }) => assert_eq!(pending_calls.len(), 1),
        other => panic!("expected a stall, got {other:?}"),
    }
    h.respond(calls[0].token, CallResponse::new(200, vec![2u8]))
        .unwrap();
    let out = h.finish(id).unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(out.header("powered-by"), Some("proxy-wasm"));
    assert!(out.upstream.is_some());
}

#[test]
fn http_call_answer_can_deny() {
    let mut h = Host::builder(&module())
        .plugin_config(config(json!({"mode": "auth"})))
        .cluster("httpbin")
        .build()
        .unwrap();
    let id = h.begin(&get("/")).unwrap();
    let token = h.pending_calls()[0].token;
    h.respond(token, CallResponse::new(200, vec![1u8])).unwrap();
    let out = h.finish(id).unwrap();
    assert_eq!(out.status, 403);
    assert_eq!(out.body, b"Access forbidden.\n");
    assert!(out.upstream.is_none());
    assert!(matches!(
        h.respond(token, CallResponse::failure()),
        Err(HostError::UnknownCall { .. })
    ));
}

#[test]
fn send_uses_the_http_responder() {
    let mut h = Host::builder(&module())
        .plugin_config(config(json!({"mode": "auth"})))
        .cluster("httpbin")
        .http_responder(|call| {
            (call.header(":authority") == Some("httpbin.org"))
                .then(|| CallResponse::new(200, vec![4u8]))
        })
        .build()
        .unwrap();
    let out = h.send(&get("/")).unwrap();
    assert_eq!(out.status, 200);
    assert!(h.pending_calls().is_empty());
}

#[test]
fn http_call_to_an_unknown_cluster_is_refused() {
    let mut h = host(json!({"mode": "auth"}));
    let out = h.send(&get("/")).unwrap();
    assert_eq!(out.status, 503);
    assert_eq!(
        out.header("powered-by"),
        Some("proxy-wasm"),
        "the local reply went through the filter's response callback"
    );
    assert!(h.logged("dispatch failed: BadArgument"), "{:?}", h.logs());
}

#[test]
fn configure_failure_carries_the_logs() {
    let err = Host::builder(&module())
        .plugin_config(b"\"nope\"".to_vec())
        .build()
        .unwrap_err();
    match &err {
        HostError::ConfigureFailed { logs, .. } => {
            assert!(
                logs.contains("test module refuses its configuration"),
                "{logs}"
            )
        }
        other => panic!("expected a configure failure, got {other}"),
    }
    assert!(err.to_string().contains("refused its configuration"));
}

#[test]
fn metrics_and_shared_data_with_cas() {
    let mut h = host(json!({"mode": "counter"}));
    for _ in 0..3 {
        h.send(&get("/")).unwrap();
    }
    let out = h.send(&get("/")).unwrap();
    let up = out.upstream.unwrap();
    assert!(up.headers.contains(&("x-hits".into(), "4".into())));
    assert_eq!(h.metric("requests_total"), Some(4));
    assert_eq!(h.shared_data("hits"), Some(b"4".to_vec()));
}

#[test]
fn host_calls_mode_makes_the_calls_it_is_configured_with() {
    let mut h = host(json!({
        "mode": "host-calls",
        "header_map": true,
        "clock": true,
        "shared_cas": true,
        "counters": 3
    }));
    for _ in 0..5 {
        let out = h.send(&get("/bench")).unwrap();
        assert_eq!(out.status, 200);
        assert!(out.upstream.is_some(), "the request continues");
    }
    for i in 0..3 {
        assert_eq!(h.metric(&format!("host_calls_{i}")), Some(5));
    }
    assert_eq!(
        h.metric("host_calls_3"),
        None,
        "only the counters asked for"
    );
    assert_eq!(
        h.shared_data("host_calls"),
        Some(5u64.to_le_bytes().to_vec())
    );

    // Nothing configured: no counters, no shared data.
    let mut quiet = host(json!({"mode": "host-calls"}));
    assert_eq!(quiet.send(&get("/")).unwrap().status, 200);
    assert_eq!(quiet.metric("host_calls_0"), None);
    assert_eq!(quiet.shared_data("host_calls"), None);
}

#[test]
fn ticks_follow_the_virtual_clock() {
    let mut h = host(json!({"mode": "tick"}));
    assert_eq!(h.metric("ticks"), Some(0));
    h.advance_time(Duration::from_millis(2500)).unwrap();
    assert_eq!(h.metric("ticks"), Some(2));
    h.tick().unwrap();
    assert_eq!(h.metric("ticks"), Some(3));
    let before = h.now_nanos();
    h.advance_time(Duration::from_millis(500)).unwrap();
    assert_eq!(h.now_nanos() - before, 500_000_000);
    assert_eq!(h.metric("ticks"), Some(4));
}

#[test]
fn derived_properties() {
    let mut h = Host::builder(&module())
        .plugin_config(config(json!({"mode": "props"})))
        .name("props-plugin")
        .build()
        .unwrap();
    let out = h
        .send(&Request {
            source: Some("127.0.0.7".parse().unwrap()),
            ..get("/x?y=1")
        })
        .unwrap();
    let up = out.upstream.unwrap();
    let header = |n: &str| {
        up.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(header("x-prop-path"), "/x?y=1");
    assert_eq!(header("x-prop-id"), header("x-request-id"));
    assert!(header("x-prop-source").starts_with("127.0.0.7:"));
    assert_eq!(header("x-prop-plugin"), "props-plugin");
}

#[test]
fn chain_shares_single_segment_filter_state_only() {
    let m = module();
    let mut h = Host::builder(&m)
        .plugin_config(config(json!({"mode": "state", "write": "alice"})))
        .name("writer")
        .then(&m)
        .plugin_config(config(json!({"mode": "state", "read": true})))
        .name("reader")
        .build()
        .unwrap();
    let up = h.send(&get("/")).unwrap().upstream.unwrap();
    assert!(up.headers.contains(&("x-single".into(), "alice".into())));
    assert!(up.headers.contains(&("x-pair".into(), "absent".into())));
}

#[test]
fn filter_state_is_per_stream() {
    let m = module();
    let mut h = Host::builder(&m)
        .plugin_config(config(json!({"mode": "state", "read": true})))
        .build()
        .unwrap();
    let up = h.send(&get("/")).unwrap().upstream.unwrap();
    assert!(up.headers.contains(&("x-single".into(), "absent".into())));
}

#[test]
fn chain_runs_request_filters_in_order() {
    let m = module();
    let mut h = Host::builder(&m)
        .plugin_config(config(
            json!({"mode": "config", "header": "x-a", "value": "1"}),
        ))
        .then(&m)
        .plugin_config(config(json!({"mode": "headers"})))
        .build()
        .unwrap();
    let out = h.send(&get("/")).unwrap();
    assert!(out
        .upstream
        .unwrap()
        .headers
        .contains(&("x-a".into(), "1".into())));
    assert!(
        h.logged("-> x-a: 1"),
        "the second filter sees the first one's header"
    );
}

#[test]
fn logs_have_levels_and_plugin_names() {
    let h = host(json!({"mode": "headers"}));
    let logs = h.logs();
    let started = logs
        .iter()
        .find(|l| l.message == "test module vm started")
        .unwrap();
    assert_eq!(started.level, LogLevel::Info);
    assert_eq!(started.plugin, "harness_test_modules");
}

#[test]
fn run_file_checks_cases_and_config_errors() {
    let file = FixtureFile::parse(
        r#"
name: headers
config: { mode: config, header: x-added, value: yes }
cases:
  - name: header added
    request: { path: /p }
    expect:
      status: 200
      forwarded: true
      upstream_headers: { x-added: "yes", x-missing: null }
      headers: { x-palisade-echo: "1" }
      body_json: { path: /p }
  - name: wrong expectation is reported
    request: {}
    expect: { status: 403 }
"#,
    )
    .unwrap();
    let report = run_file(&module(), &file);
    assert_eq!(report.runner, "harness");
    assert!(report.cases[0].passed(), "{report}");
    assert!(!report.cases[1].passed());
    assert_eq!(report.cases[1].mismatches[0].field, "status");

    let refused =
        FixtureFile::parse("name: bad\nconfig: [1]\nconfig_error: refuses its configuration\n")
            .unwrap();
    let report = run_file(&module(), &refused);
    assert_eq!((report.passed(), report.failed()), (1, 0), "{report}");
    let wrong =
        FixtureFile::parse("name: bad\nconfig: [1]\nconfig_error: another reason\n").unwrap();
    assert_eq!(run_file(&module(), &wrong).failed(), 1);
}

#[test]
fn module_is_reusable_across_hosts_in_parallel() {
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let mut h = host(json!({"mode": "counter"}));
                h.send(&get("/")).unwrap();
                h.metric("requests_total")
            })
        })
        .collect();
    for t in handles {
        assert_eq!(t.join().unwrap(), Some(1), "hosts share no state");
    }
}
