//! A tiny Proxy-Wasm module (WAT) for the Envoy runner's own tests, so they
//! need no plugin. Its configuration decides what it does:
//! - empty or a JSON object: accepted; every request gets the header
//!   `x-test-filter: seen` and continues upstream;
//! - a JSON array: accepted; every request is answered locally with 403
//!   and the body `denied by test module`;
//! - every request increments the counter `palisade_test_requests`;
//! - a JSON string: refused (`on_configure` returns false) after logging
//!   `test module refuses its configuration`.

use std::path::PathBuf;
use std::sync::OnceLock;

const WAT: &str = r#"
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes"
    (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric"
    (func $define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric"
    (func $increment_metric (param i32 i64) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (global $deny (mut i32) (i32.const 0))
  ;; 256..263: return slots of proxy_get_buffer_bytes; 264..267: zero pairs;
  ;; 268..271: the metric id
  (data (i32.const 1168) "palisade_test_requests")
  (data (i32.const 1024) "x-test-filter")
  (data (i32.const 1040) "seen")
  (data (i32.const 1056) "test module refuses its configuration")
  (data (i32.const 1104) "denied by test module")
  (data (i32.const 1136) "test module configured")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (global.get $heap) (local.get $size)) (i32.const 7))
               (i32.const -8)))
    (block $enough
      (loop $grow
        (br_if $enough
          (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
        (drop (memory.grow (i32.const 1)))
        (br $grow)))
    (local.get $ptr))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
    (local $first i32)
    (global.set $deny (i32.const 0))
    (if (i32.gt_u (local.get $size) (i32.const 0))
      (then
        (drop (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size)
                                (i32.const 256) (i32.const 260)))
        (local.set $first (i32.load8_u (i32.load (i32.const 256))))
        (if (i32.eq (local.get $first) (i32.const 34))
          (then
            (drop (call $log (i32.const 4) (i32.const 1056) (i32.const 37)))
            (return (i32.const 0))))
        (if (i32.eq (local.get $first) (i32.const 91))
          (then (global.set $deny (i32.const 1))))))
    (drop (call $define_metric (i32.const 0) (i32.const 1168) (i32.const 22) (i32.const 268)))
    (drop (call $log (i32.const 2) (i32.const 1136) (i32.const 22)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $increment_metric (i32.load (i32.const 268)) (i64.const 1)))
    (if (global.get $deny)
      (then
        (drop (call $local_response (i32.const 403) (i32.const 0) (i32.const 0)
                                    (i32.const 1104) (i32.const 21)
                                    (i32.const 264) (i32.const 4) (i32.const -1)))
        (return (i32.const 1))))
    (drop (call $add_header (i32.const 0) (i32.const 1024) (i32.const 13)
                            (i32.const 1040) (i32.const 4)))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))
"#;

/// The compiled module, written once per test process to
/// `target/tmp/envoy-test-module.wasm` (atomically, as parallel test
/// processes may write it at the same time).
pub(crate) fn path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let bytes = wat::parse_str(WAT).expect("the test module's WAT is valid");
        let root = crate::envoy::workspace_root().unwrap_or_else(std::env::temp_dir);
        let dir = root.join("target/tmp");
        std::fs::create_dir_all(&dir).expect("creating target/tmp");
        let path = dir.join("envoy-test-module.wasm");
        let partial = dir.join(format!("envoy-test-module.wasm.{}", std::process::id()));
        std::fs::write(&partial, bytes).expect("writing the test module");
        std::fs::rename(&partial, &path).expect("moving the test module in place");
        path
    })
    .clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn compiles_to_a_wasm_binary() {
        let bytes = std::fs::read(super::path()).unwrap();
        assert_eq!(&bytes[..4], b"\0asm");
    }
}
