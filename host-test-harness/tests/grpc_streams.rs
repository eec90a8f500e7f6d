//! gRPC streams (`proxy_grpc_stream`) answered by the test, as Envoy
//! delivers them, with the SDK-style stream filter of the test modules
//! (`mode: stream`, see `test-modules/src/filters.rs`): it opens a stream
//! per request, sends `<path>#n`, and decides when the server closes.

mod common;

use common::{config, module};
use host_test_harness::fixture::{GrpcStreamAnswer, Request};
use host_test_harness::{GrpcStreamEvent, GrpcStreamScript, Host, HostError};
use serde_json::json;

fn host(settings: serde_json::Value) -> Host {
    Host::builder(&module())
        .plugin_config(config(settings))
        .cluster("grpc-echo")
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn request(path: &str) -> Request {
    Request {
        path: path.to_string(),
        ..Request::default()
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn close(status: u32, message: &str) -> GrpcStreamEvent {
    GrpcStreamEvent::Close {
        status,
        message: message.to_string(),
    }
}

/// Index of the first log line containing `text`, or a panic with the log.
fn logged_at(host: &Host, text: &str) -> usize {
    let logs = host.logs();
    logs.iter()
        .position(|l| l.message.contains(text))
        .unwrap_or_else(|| panic!("no log line contains {text:?}: {logs:?}"))
}

#[test]
fn a_stream_is_opened_and_what_the_module_sends_is_recorded() {
    let mut h = host(json!({"mode": "stream"}));
    let id = h.begin(&request("/s")).unwrap();
    assert!(!h.is_complete(id));
    let streams = h.grpc_streams();
    assert_eq!(streams.len(), 1);
    let s = &streams[0];
    assert_eq!(s.cluster, "grpc-echo");
    assert_eq!(
        (s.service.as_str(), s.method.as_str()),
        ("palisade.test.Echo", "Chat")
    );
    assert_eq!(
        s.initial_metadata,
        pairs(&[("x-stream-client", "test-module")])
    );
    assert_eq!(s.messages, [b"/s#1".to_vec()]);
    assert_eq!(s.token % 4, 2, "stream ids are Envoy's: 6, 10, ...");
    assert!(!s.local_closed && !s.remote_closed && s.delivered.is_empty());
    // Nobody answers: the request cannot finish, and says why.
    let stalled = h.finish(id).unwrap_err().to_string();
    assert!(stalled.contains("gRPC stream 6"), "{stalled}");
    // The next stream gets the next id.
    h.begin(&request("/t")).unwrap();
    assert_eq!(h.grpc_streams()[1].token, 10);
}

#[test]
fn answers_are_delivered_in_order_and_the_close_decides() {
    let mut h = host(json!({"mode": "stream", "sends": 2}));
    let id = h.begin(&request("/s")).unwrap();
    let token = h.grpc_streams()[0].token;
    h.respond_grpc_stream(
        token,
        GrpcStreamEvent::InitialMetadata(pairs(&[(":status", "200"), ("x-stream-tag", "blue")])),
    )
    .unwrap();
    h.respond_grpc_stream(token, GrpcStreamEvent::Message(b"ok".to_vec()))
        .unwrap();
    // The reply made the module send its second message.
    assert_eq!(
        h.grpc_streams()[0].messages,
        [b"/s#1".to_vec(), b"/s#2".to_vec()]
    );
    h.respond_grpc_stream(token, GrpcStreamEvent::Message(b"more".to_vec()))
        .unwrap();
    h.respond_grpc_stream(
        token,
        GrpcStreamEvent::TrailingMetadata(pairs(&[("grpc-status", "0"), ("x-stream-end", "done")])),
    )
    .unwrap();
    assert!(!h.is_complete(id), "the module decides on the close");
    h.respond_grpc_stream(token, close(0, "")).unwrap();
    let out = h.finish(id).unwrap();
    assert_eq!(out.status, 200);
    let up = out.upstream.expect("forwarded");
    let header = |n: &str| {
        up.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("x-stream-replies"), Some("ok,more"));
    assert_eq!(header("x-stream-tag"), Some("blue"));
    assert_eq!(header("x-stream-end"), Some("done"));
    assert_eq!(header("x-stream-token"), Some("6"));
    let order = [
        "stream 6: initial metadata (2)",
        "stream 6: message ok",
        "stream 6: message more",
        "stream 6: trailing metadata (2)",
        "stream 6: closed with status 0",
    ]
    .map(|t| logged_at(&h, t));
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    // The server closed, the module did not: Envoy keeps the stream (the
    // module may still close it) but nothing more can arrive on it.
    let kept = h.grpc_streams();
    assert!(kept[0].remote_closed && !kept[0].local_closed);
    assert!(matches!(
        h.respond_grpc_stream(token, GrpcStreamEvent::Message(b"x".to_vec())),
        Err(HostError::UnknownGrpcStream { .. })
    ));
}

#[test]
fn a_failure_status_and_its_message_reach_the_module() {
    let mut h = host(json!({"mode": "stream"}));
    let id = h.begin(&request("/s")).unwrap();
    let token = h.grpc_streams()[0].token;
    for event in GrpcStreamEvent::unavailable() {
        h.respond_grpc_stream(token, event).unwrap();
    }
    let out = h.finish(id).unwrap();
    assert_eq!(out.status, 503);
    assert!(String::from_utf8_lossy(&out.body).contains("status 14"));
    logged_at(&h, "closed with status 14 upstream connect error");
    h.respond_grpc_stream(token, close(2, "again"))
        .expect_err("a closed stream gets no second close");
}

#[test]
fn a_cancelled_stream_is_forgotten_and_gets_nothing_more() {
    let mut h = host(json!({"mode": "stream", "cancel": true}));
    let id = h.begin(&request("/c")).unwrap();
    let token = h.grpc_streams()[0].token;
    h.respond_grpc_stream(token, GrpcStreamEvent::Message(b"ok".to_vec()))
        .unwrap();
    logged_at(&h, "stream 6: cancelled");
    assert!(h.grpc_streams().is_empty());
    assert!(matches!(
        h.respond_grpc_stream(token, GrpcStreamEvent::TrailingMetadata(Vec::new())),
        Err(HostError::UnknownGrpcStream { token: 6 })
    ));
    assert!(!h.logged("trailing metadata"), "{:?}", h.logs());
    let out = h.finish(id).unwrap();
    assert_eq!(out.status, 200);
}

#[test]
fn a_stream_to_an_unknown_cluster_is_refused() {
    let mut h = Host::builder(&module())
        .plugin_config(config(json!({"mode": "stream"})))
        .build()
        .unwrap();
    let out = h.send(&request("/s")).unwrap();
    assert_eq!(out.status, 503);
    logged_at(&h, "stream open failed: ParseFailure");
    assert!(h.grpc_streams().is_empty());
}

#[test]
fn the_fixture_script_answers_during_send() {
    let script = GrpcStreamScript::new(&GrpcStreamAnswer {
        initial_metadata: pairs(&[("x-stream-tag", "red")]),
        messages: vec!["6f6b".into(), "6f6b".into()],
        ..GrpcStreamAnswer::default()
    });
    let mut h = Host::builder(&module())
        .plugin_config(config(json!({"mode": "stream", "sends": 2})))
        .cluster("grpc-echo")
        .grpc_stream_responder(move |s| script.events_for(s))
        .build()
        .unwrap();
    for (path, token) in [("/a", "6"), ("/b", "10")] {
        let out = h.send(&request(path)).unwrap();
        let up = out.upstream.expect("forwarded");
        assert!(
            up.headers
                .contains(&("x-stream-token".into(), token.into())),
            "{up:?}"
        );
        assert!(
            up.headers
                .contains(&("x-stream-replies".into(), "ok,ok".into())),
            "{up:?}"
        );
    }
}
