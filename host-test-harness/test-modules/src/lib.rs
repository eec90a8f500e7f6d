//! Proxy-Wasm filters for the harness's integration tests, written the way the
//! proxy-wasm Rust SDK's examples are (`http_headers`, `http_body`,
//! `http_auth_random`, `http_config`, a tick counter, and a gRPC stream
//! client).
//!
//! One module holds them all; the plugin configuration (a JSON object) picks
//! one with `"mode"`:
//! - `headers`: logs request headers, answers `/hello` locally with 200
//!   `Hello, World!`, and sets `powered-by: proxy-wasm` on responses;
//! - `body`: buffers the request body and forwards it upper-cased;
//! - `auth`: calls cluster `httpbin` and lets the request through when the
//!   first byte of the answer is even, else answers 403;
//! - `config`: adds the request header named by `"header"` with `"value"`;
//! - `counter`: counts requests in the counter `requests_total` and in
//!   shared data `hits` (compare-and-swap), and sets `x-hits`;
//! - `state`: with `"write"`, stores it under the properties
//!   `["palisade.identity"]` and `["palisade", "pair"]`; with `"read": true`,
//!   copies both into request headers `x-single` and `x-pair` (`absent`
//!   when unset);
//! - `props`: copies `request.path`, `request.id`, `source.address` and
//!   `plugin_name` into request headers `x-prop-*`;
//! - `tick`: sets a 1s tick period; each tick increments counter `ticks`;
//! - `stream`: opens a gRPC stream to cluster `grpc-echo` per request, sends
//!   `<path>#1` (then one message per reply until `"sends"`), and on the
//!   server's close answers 403 for a `deny` reply, 503 for a failure, or
//!   continues with `x-stream-replies`, `x-stream-tag` (initial metadata),
//!   `x-stream-end` (trailers) and `x-stream-token` request headers; with
//!   `"cancel": true` it cancels the stream at the first reply and continues;
//! - `pass`: does nothing (every callback continues): the floor any
//!   Proxy-Wasm filter costs, measured by the Envoy load bench;
//! - `host-calls`: makes, per request, the host calls its configuration
//!   names and continues — `"header_map": true` reads the request header
//!   map (500 if it lacks `:path`), `"clock": true` reads the clock,
//!   `"shared_cas": true` reads shared data `host_calls` (a little-endian
//!   u64) and writes it back plus one with its CAS token, `"counters": n`
//!   (at most 16) increments counters `host_calls_0` .. `host_calls_<n-1>`.
//!   The Envoy load bench runs it to price the calls a plugin makes.
//!
//! A configuration that is not such an object is refused (`on_configure`
//! returns false) after logging `test module refuses its configuration`.
//!
//! Everything is compiled for `wasm32` only, so native workspace builds link.
//! Build: `cargo build --release --target wasm32-wasip1 -p harness-test-modules`.

#[cfg(target_arch = "wasm32")]
mod filters;
