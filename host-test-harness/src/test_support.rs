//! Tiny hand-written modules (WAT) for the unit tests: a skeleton that
//! imports what a test names and runs the test's code in
//! `proxy_on_request_headers`.

use crate::{Host, HostError, Module};

/// Compiles a WAT module.
pub(crate) fn module(wat: &str) -> Module {
    let bytes = wat::parse_str(wat).expect("test WAT parses");
    Module::from_bytes("wat", &bytes).expect("test module compiles")
}

/// A module with `imports` (WAT import lines) whose request-headers
/// callback runs `body` (it must leave an i32 action on the stack).
/// Memory page 0 is scratch: bytes 0..1024 for the test, the bump
/// allocator starts at 4096.
pub(crate) fn filter(imports: &str, body: &str) -> Module {
    module(&format!(
        r#"(module
  {imports}
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $end i32) (result i32)
    {body})
)"#
    ))
}

/// A built host for a module.
pub(crate) fn host(module: &Module) -> Result<Host, HostError> {
    Host::builder(module).build()
}
