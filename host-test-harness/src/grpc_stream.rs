//! gRPC streams (`proxy_grpc_stream`): recorded for the test, which answers
//! them event by event with [`GrpcStreamEvent`]s.
//!
//! What Envoy 1.40 does (`Context::grpcStream`, `grpcSend`, `grpcClose`,
//! `grpcCancel` and `GrpcStreamClientHandler` in
//! `source/extensions/common/wasm/context.{h,cc}`; `grpc_stream`,
//! `grpc_send`, `grpc_close`, `grpc_cancel` in proxy-wasm-cpp-host's
//! `src/exports.cc`; callout ids in `include/proxy-wasm/wasm.h`), and the
//! harness with it:
//! - the stream is opened for the plugin's **root** context
//!   (`contextOrEffectiveContext()->root_context()`): every callback arrives
//!   at the root context id, whichever HTTP context opened it, and outlives
//!   that HTTP context;
//! - the `grpc_service` argument is read as for `proxy_grpc_call`
//!   (protobuf first, else a cluster name; an unknown cluster name is
//!   `ParseFailure`);
//! - callout ids share one numbering scheme: the low two bits say the kind
//!   (http call 0, gRPC call 1, gRPC stream 2) and each kind counts up by 4
//!   from its kind, so gRPC calls get 5, 9, 13, ... and streams 6, 10, 14, ...;
//! - `proxy_grpc_send` on an id that is not a stream id: `BadArgument`; on
//!   an unknown stream: `NotFound`; `end_of_stream` half-closes the stream;
//!   sending on a stream the server already closed is `Ok` (the message goes
//!   nowhere);
//! - `proxy_grpc_close` on a stream *half-closes* it (`closeStream`): the
//!   server can still answer, and its messages, trailers and close are still
//!   delivered; the stream is forgotten once both sides closed;
//! - `proxy_grpc_cancel` resets it (`resetStream`): forgotten at once, no
//!   callback is delivered for it any more;
//! - close or cancel of an unknown call or stream id: `NotFound`; of an id
//!   that is neither a gRPC call nor a stream: `BadArgument`;
//! - the server's events arrive as `proxy_on_grpc_receive_initial_metadata
//!   (root, token, headers)` (header map 4, `GrpcReceiveInitialMetadata`),
//!   `proxy_on_grpc_receive(root, token, size)` per message (buffer 5,
//!   `GrpcReceiveBuffer`), `proxy_on_grpc_receive_trailing_metadata(root,
//!   token, trailers)` (header map 5, `GrpcReceiveTrailingMetadata`) and
//!   `proxy_on_grpc_close(root, token, grpc_status)` with the status message
//!   readable through `proxy_get_status`; the maps and the buffer are
//!   readable from any context of the plugin while the callback runs (Envoy
//!   reads them from `rootContext()`), so the SDK's switch to the HTTP
//!   context does not hide them;
//! - initial metadata is the whole response header map of the stream, so
//!   it starts with `:status` and `content-type` (see
//!   [`GrpcStreamScript::events`]), trailing metadata carries `grpc-status`
//!   and `grpc-message`.

use crate::fixture::GrpcStreamAnswer;

/// Callout kinds, the low two bits of an id (proxy-wasm-cpp-host `CalloutType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Callout {
    /// `proxy_grpc_call`.
    GrpcCall = 1,
    /// `proxy_grpc_stream`.
    GrpcStream = 2,
}

/// Ids of one kind count up by this much (`kCalloutIncrement`).
const CALLOUT_INCREMENT: u32 = 4;
/// The kind bits of an id (`kCalloutTypeMask`).
const CALLOUT_MASK: u32 = 3;

/// The next id of `kind` after `last` (0: none handed out yet).
pub(crate) fn next_id(last: u32, kind: Callout) -> u32 {
    let base = if last == 0 { kind as u32 } else { last };
    base.wrapping_add(CALLOUT_INCREMENT)
}

/// True when `token` is an id of `kind`.
pub(crate) fn is(token: u32, kind: Callout) -> bool {
    token & CALLOUT_MASK == kind as u32
}

/// A gRPC stream a module opened, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcStream {
    /// Token the module got back; pass it to
    /// [`Host::respond_grpc_stream`](crate::Host::respond_grpc_stream).
    pub token: u32,
    /// Name of the plugin that opened it.
    pub plugin: String,
    /// Cluster the stream goes to.
    pub cluster: String,
    /// Fully qualified service, e.g. `palisade.test.Echo`.
    pub service: String,
    /// Method, e.g. `Chat`.
    pub method: String,
    /// Initial metadata the module sent.
    pub initial_metadata: Vec<(String, String)>,
    /// The messages the module sent, in order.
    pub messages: Vec<Vec<u8>>,
    /// The module ended its side: `end_of_stream` on a send, or
    /// `proxy_grpc_close`.
    pub local_closed: bool,
    /// The server side closed ([`GrpcStreamEvent::Close`] was delivered).
    pub remote_closed: bool,
    /// The events delivered to the module so far, in order.
    pub delivered: Vec<GrpcStreamEvent>,
}

/// One thing the server side of a stream does; delivered with
/// [`Host::respond_grpc_stream`](crate::Host::respond_grpc_stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcStreamEvent {
    /// Response headers: `proxy_on_grpc_receive_initial_metadata`, readable
    /// as header map 4.
    InitialMetadata(Vec<(String, String)>),
    /// A serialized message: `proxy_on_grpc_receive`, readable as buffer 5.
    Message(Vec<u8>),
    /// Trailers: `proxy_on_grpc_receive_trailing_metadata`, readable as
    /// header map 5.
    TrailingMetadata(Vec<(String, String)>),
    /// The server closed the stream: `proxy_on_grpc_close` with the status,
    /// the message readable through `proxy_get_status`.
    Close {
        /// gRPC status (0 = OK).
        status: u32,
        /// Status message.
        message: String,
    },
}

impl GrpcStreamEvent {
    /// What Envoy reports when the cluster cannot be reached: empty
    /// trailers, then close with 14 `UNAVAILABLE` (`AsyncStreamImpl::streamError`).
    pub fn unavailable() -> Vec<GrpcStreamEvent> {
        vec![
            GrpcStreamEvent::TrailingMetadata(Vec::new()),
            GrpcStreamEvent::Close {
                status: crate::grpc_call::UNAVAILABLE,
                message: "upstream connect error".to_string(),
            },
        ]
    }
}

/// A fixture's canned stream answer ([`GrpcStreamAnswer`]) as a script:
/// what the server does next given what the module did so far. The harness
/// runner and the Envoy runner's gRPC server follow the same script.
///
/// - When the stream opens, the server sends its initial metadata
///   (`:status: 200`, `content-type: application/grpc`, then the fixture's
///   `initial_metadata`).
/// - The module's `n`-th message is answered with the `n`-th of `messages`;
///   messages beyond the list get no answer.
/// - The server closes (trailers `grpc-status`, `grpc-message` when not
///   empty, then the fixture's `trailing_metadata`; then the close with
///   `status` and `message`) right after answering the last of `messages`,
///   at once when `messages` is empty, or when the module ends its side
///   first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcStreamScript {
    initial_metadata: Vec<(String, String)>,
    messages: Vec<Vec<u8>>,
    trailing_metadata: Vec<(String, String)>,
    status: u32,
    message: String,
}

impl GrpcStreamScript {
    /// The script of a fixture answer (its hex was checked when the fixture
    /// was parsed; a bad message would be sent empty).
    pub fn new(answer: &GrpcStreamAnswer) -> GrpcStreamScript {
        let mut initial_metadata = vec![
            (":status".to_string(), "200".to_string()),
            ("content-type".to_string(), "application/grpc".to_string()),
        ];
        initial_metadata.extend(answer.initial_metadata.iter().cloned());
        let mut trailing_metadata = vec![("grpc-status".to_string(), answer.status.to_string())];
        if !answer.message.is_empty() {
            trailing_metadata.push(("grpc-message".to_string(), answer.message.clone()));
        }
        trailing_metadata.extend(answer.trailing_metadata.iter().cloned());
        GrpcStreamScript {
            initial_metadata,
            messages: answer.message_bytes().unwrap_or_default(),
            trailing_metadata,
            status: answer.status,
            message: answer.message.clone(),
        }
    }

    /// The events due now, given how many messages the module sent
    /// (`received`), whether it ended its side, and what was delivered.
    pub fn events(
        &self,
        received: usize,
        local_closed: bool,
        delivered: &[GrpcStreamEvent],
    ) -> Vec<GrpcStreamEvent> {
        let mut out = Vec::new();
        if delivered
            .iter()
            .any(|e| matches!(e, GrpcStreamEvent::Close { .. }))
        {
            return out;
        }
        if !delivered
            .iter()
            .any(|e| matches!(e, GrpcStreamEvent::InitialMetadata(_)))
        {
            out.push(GrpcStreamEvent::InitialMetadata(
                self.initial_metadata.clone(),
            ));
        }
        let replied = delivered
            .iter()
            .filter(|e| matches!(e, GrpcStreamEvent::Message(_)))
            .count();
        let due = received.min(self.messages.len());
        for m in self.messages.iter().take(due).skip(replied) {
            out.push(GrpcStreamEvent::Message(m.clone()));
        }
        if self.messages.is_empty() || due == self.messages.len() || local_closed {
            out.push(GrpcStreamEvent::TrailingMetadata(
                self.trailing_metadata.clone(),
            ));
            out.push(GrpcStreamEvent::Close {
                status: self.status,
                message: self.message.clone(),
            });
        }
        out
    }

    /// [`GrpcStreamScript::events`] for a stream the harness tracks.
    pub fn events_for(&self, stream: &GrpcStream) -> Vec<GrpcStreamEvent> {
        self.events(
            stream.messages.len(),
            stream.local_closed,
            &stream.delivered,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Request;
    use crate::test_support::{filter, host};

    /// The request-headers callback checks Envoy's answers to the stream
    /// calls; each `(call) expected` pair traps on a different answer.
    #[test]
    fn the_abi_answers_like_envoy() {
        let expect = |call: &str, want: i32| {
            format!("(if (i32.ne {call} (i32.const {want})) (then unreachable))\n")
        };
        // 0: "upstream" (a known cluster), 16: "s", 20: "m", 24..28: zero
        // pairs, 32/36: tokens, 40: "nope".
        let open = |at: i32| {
            format!("(call $stream (i32.const 0) (i32.const 8) (i32.const 16) (i32.const 1) (i32.const 20) (i32.const 1) (i32.const 24) (i32.const 4) (i32.const {at}))")
        };
        let mut body = String::new();
        body += &expect(&open(32), 0);
        body += &expect("(i32.load (i32.const 32))", 6);
        body += &expect(
            "(call $send (i32.load (i32.const 32)) (i32.const 16) (i32.const 1) (i32.const 0))",
            0,
        );
        // A gRPC call id is no stream id; an unknown stream is NotFound.
        body += &expect(
            "(call $send (i32.const 5) (i32.const 16) (i32.const 1) (i32.const 0))",
            2,
        );
        body += &expect(
            "(call $send (i32.const 10) (i32.const 16) (i32.const 1) (i32.const 0))",
            1,
        );
        // Half-close; sending afterwards is still Ok (and goes nowhere).
        body += &expect("(call $close (i32.load (i32.const 32)))", 0);
        body += &expect(
            "(call $send (i32.load (i32.const 32)) (i32.const 20) (i32.const 1) (i32.const 0))",
            0,
        );
        // An http call id is neither a gRPC call nor a stream.
        body += &expect("(call $close (i32.const 8))", 2);
        body += &expect("(call $cancel (i32.const 14))", 1);
        // A second stream, cancelled: forgotten at once.
        body += &expect(&open(36), 0);
        body += &expect("(i32.load (i32.const 36))", 10);
        body += &expect("(call $cancel (i32.load (i32.const 36)))", 0);
        body += &expect("(call $cancel (i32.load (i32.const 36)))", 1);
        // An unknown cluster name.
        body += &expect(
            "(call $stream (i32.const 40) (i32.const 4) (i32.const 16) (i32.const 1) (i32.const 20) (i32.const 1) (i32.const 24) (i32.const 4) (i32.const 36))",
            4,
        );
        body += "(i32.const 0)";
        let m = filter(
            r#"(import "env" "proxy_grpc_stream" (func $stream (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
               (import "env" "proxy_grpc_send" (func $send (param i32 i32 i32 i32) (result i32)))
               (import "env" "proxy_grpc_close" (func $close (param i32) (result i32)))
               (import "env" "proxy_grpc_cancel" (func $cancel (param i32) (result i32)))
               (data (i32.const 0) "upstream")
               (data (i32.const 16) "s")
               (data (i32.const 20) "m")
               (data (i32.const 40) "nope")"#,
            &body,
        );
        let mut h = host(&m).unwrap();
        assert_eq!(h.send(&Request::default()).unwrap().status, 200);
        let streams = h.grpc_streams();
        assert_eq!(streams.len(), 1, "{streams:?}");
        let s = &streams[0];
        assert_eq!((s.token, s.cluster.as_str()), (6, "upstream"));
        assert_eq!((s.service.as_str(), s.method.as_str()), ("s", "m"));
        assert_eq!(s.messages, [b"s".to_vec()]);
        assert!(s.local_closed && !s.remote_closed);
        // The server still answers a half-closed stream; once it closes
        // too, the stream is forgotten.
        h.respond_grpc_stream(6, GrpcStreamEvent::Message(b"late".to_vec()))
            .unwrap();
        h.respond_grpc_stream(
            6,
            GrpcStreamEvent::Close {
                status: 0,
                message: String::new(),
            },
        )
        .unwrap();
        assert!(h.grpc_streams().is_empty());
        assert!(matches!(
            h.respond_grpc_stream(6, GrpcStreamEvent::Message(Vec::new())),
            Err(crate::HostError::UnknownGrpcStream { token: 6 })
        ));
    }

    fn script(messages: &[&str], status: u32) -> GrpcStreamScript {
        GrpcStreamScript::new(&GrpcStreamAnswer {
            initial_metadata: vec![("x-tag".into(), "blue".into())],
            messages: messages.iter().map(|m| m.to_string()).collect(),
            trailing_metadata: vec![("x-end".into(), "done".into())],
            status,
            message: if status == 0 {
                String::new()
            } else {
                "no".into()
            },
        })
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ids_follow_envoys_callout_numbering() {
        assert_eq!(next_id(0, Callout::GrpcCall), 5);
        assert_eq!(next_id(5, Callout::GrpcCall), 9);
        assert_eq!(next_id(0, Callout::GrpcStream), 6);
        assert_eq!(next_id(6, Callout::GrpcStream), 10);
        assert!(is(10, Callout::GrpcStream) && !is(10, Callout::GrpcCall));
        assert!(is(9, Callout::GrpcCall) && !is(9, Callout::GrpcStream));
        assert!(!is(8, Callout::GrpcCall) && !is(8, Callout::GrpcStream));
    }

    #[test]
    fn the_script_opens_answers_each_message_then_closes() {
        let s = script(&["6f6b", "6f6b32"], 0);
        let opened = s.events(0, false, &[]);
        assert_eq!(
            opened,
            [GrpcStreamEvent::InitialMetadata(pairs(&[
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("x-tag", "blue")
            ]))]
        );
        let first = s.events(1, false, &opened);
        assert_eq!(first, [GrpcStreamEvent::Message(b"ok".to_vec())]);
        let mut delivered = opened.clone();
        delivered.extend(first);
        // Nothing new until the module sends again.
        assert!(s.events(1, false, &delivered).is_empty());
        let last = s.events(2, false, &delivered);
        assert_eq!(
            last,
            [
                GrpcStreamEvent::Message(b"ok2".to_vec()),
                GrpcStreamEvent::TrailingMetadata(pairs(&[
                    ("grpc-status", "0"),
                    ("x-end", "done")
                ])),
                GrpcStreamEvent::Close {
                    status: 0,
                    message: String::new()
                },
            ]
        );
        delivered.extend(last);
        assert!(s.events(3, true, &delivered).is_empty());
    }

    #[test]
    fn an_empty_script_closes_at_once_and_a_half_close_closes_early() {
        let s = script(&[], 14);
        let events = s.events(0, false, &[]);
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(
            events[1],
            GrpcStreamEvent::TrailingMetadata(pairs(&[
                ("grpc-status", "14"),
                ("grpc-message", "no"),
                ("x-end", "done")
            ]))
        );
        let s = script(&["00", "01"], 0);
        let events = s.events(1, true, &[]);
        let kinds: Vec<_> = events
            .iter()
            .map(|e| match e {
                GrpcStreamEvent::InitialMetadata(_) => "initial",
                GrpcStreamEvent::Message(_) => "message",
                GrpcStreamEvent::TrailingMetadata(_) => "trailing",
                GrpcStreamEvent::Close { .. } => "close",
            })
            .collect();
        assert_eq!(kinds, ["initial", "message", "trailing", "close"]);
    }
}
