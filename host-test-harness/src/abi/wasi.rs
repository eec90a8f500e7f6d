//! The WASI subset Envoy gives Wasm modules, answered as
//! proxy-wasm-cpp-host (Envoy's Wasm host) answers it:
//! - `fd_write` to stdout/stderr becomes a log line (info/error), other fds
//!   are `EBADF`;
//! - `fd_read` is `ENOSYS`; `fd_seek`/`fd_close` fail the VM;
//! - `fd_fdstat_get` describes stdout/stderr only;
//! - `fd_prestat_get` is `EBADF` (no preopened directories), so are path
//!   lookups; `fd_prestat_dir_name` is `ENOSYS`; `path_open` is `ENOENT`;
//! - no environment variables and no arguments;
//! - `clock_time_get` reads the host's virtual clock (realtime and
//!   monotonic; other clocks `ENOTSUP`);
//! - `random_get` fills from the host's deterministic generator;
//! - `sched_yield` does nothing; `proc_exit` fails the VM.

use super::Ctx;
use crate::log::LogLevel;
use crate::memory;
use crate::world::lock;
use wasmtime::{Caller, Linker};

const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ENOENT: i32 = 44;
const ENOSYS: i32 = 52;
const ENOTSUP: i32 = 58;

/// Most random bytes one `random_get` may ask for (as Envoy).
const MAX_RANDOM: i32 = 64 * 1024;

fn fault<T>(r: Result<T, crate::status::Status>) -> Result<T, i32> {
    r.map_err(|_| EFAULT)
}

fn fd_write(
    caller: &mut Caller<'_, Ctx>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> Result<(), i32> {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Err(EBADF),
    };
    let mut text = Vec::new();
    for i in 0..iovs_len.max(0) {
        let iov = fault(memory::read(caller, iovs.wrapping_add(i * 8), 8))?;
        let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        text.extend(fault(memory::read(caller, ptr, len))?);
    }
    let written = text.len() as u32;
    if text.last() == Some(&b'\n') {
        text.pop();
    }
    if !text.is_empty() {
        let plugin = caller.data().plugin;
        let msg = String::from_utf8_lossy(&text).into_owned();
        lock(&caller.data().world).log(plugin, level, msg);
    }
    fault(memory::write_u32(caller, nwritten, written))
}

fn code(r: Result<(), i32>) -> i32 {
    r.err().unwrap_or(SUCCESS)
}

fn fail_vm(caller: &mut Caller<'_, Ctx>, what: &str) -> wasmtime::Error {
    caller.data_mut().fatal = Some(format!(
        "the module called WASI {what}, which Envoy does not support"
    ));
    wasmtime::Error::msg(format!("wasi {what}"))
}

/// Defines the WASI functions under `module` (`wasi_snapshot_preview1` or
/// `wasi_unstable`).
pub(crate) fn define(linker: &mut Linker<Ctx>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "fd_write",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, len: i32, nw: i32| -> i32 {
            code(fd_write(&mut c, fd, iovs, len, nw))
        },
    )?;
    linker.func_wrap(
        module,
        "fd_read",
        |_: Caller<'_, Ctx>, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    )?;
    linker.func_wrap(
        module,
        "fd_seek",
        |mut c: Caller<'_, Ctx>, _: i32, _: i64, _: i32, _: i32| -> wasmtime::Result<i32> {
            Err(fail_vm(&mut c, "fd_seek"))
        },
    )?;
    linker.func_wrap(
        module,
        "fd_close",
        |mut c: Caller<'_, Ctx>, _: i32| -> wasmtime::Result<i32> {
            Err(fail_vm(&mut c, "fd_close"))
        },
    )?;
    linker.func_wrap(
        module,
        "fd_fdstat_get",
        |mut c: Caller<'_, Ctx>, fd: i32, out: i32| -> i32 {
            if fd != 1 && fd != 2 {
                return EBADF;
            }
            let mut stat = [0u8; 24];
            stat[8..16].copy_from_slice(&64u64.to_le_bytes());
            code(fault(memory::write(&mut c, out, &stat)))
        },
    )?;
    linker.func_wrap(
        module,
        "fd_prestat_get",
        |_: Caller<'_, Ctx>, _: i32, _: i32| -> i32 { EBADF },
    )?;
    linker.func_wrap(
        module,
        "fd_prestat_dir_name",
        |_: Caller<'_, Ctx>, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    )?;
    linker.func_wrap(
        module,
        "path_open",
        |_: Caller<'_, Ctx>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i64,
         _: i64,
         _: i32,
         _: i32|
         -> i32 { ENOENT },
    )?;
    for name in ["environ_sizes_get", "args_sizes_get"] {
        linker.func_wrap(
            module,
            name,
            |mut c: Caller<'_, Ctx>, count: i32, size: i32| -> i32 {
                code(
                    fault(memory::write_u32(&mut c, count, 0))
                        .and_then(|_| fault(memory::write_u32(&mut c, size, 0))),
                )
            },
        )?;
    }
    for name in ["environ_get", "args_get"] {
        linker.func_wrap(module, name, |_: Caller<'_, Ctx>, _: i32, _: i32| -> i32 {
            SUCCESS
        })?;
    }
    linker.func_wrap(
        module,
        "clock_time_get",
        |mut c: Caller<'_, Ctx>, id: i32, _precision: i64, out: i32| -> i32 {
            let clock = lock(&c.data().world).clock;
            let now = match id {
                0 => clock.wall_nanos(),
                1 => clock.monotonic_nanos(),
                _ => return ENOTSUP,
            };
            code(fault(memory::write_u64(&mut c, out, now)))
        },
    )?;
    linker.func_wrap(
        module,
        "random_get",
        |mut c: Caller<'_, Ctx>, buf: i32, len: i32| -> i32 {
            if !(0..=MAX_RANDOM).contains(&len) {
                return EINVAL;
            }
            let mut bytes = vec![0u8; len as usize];
            lock(&c.data().world).fill_random(&mut bytes);
            code(fault(memory::write(&mut c, buf, &bytes)))
        },
    )?;
    linker.func_wrap(module, "sched_yield", |_: Caller<'_, Ctx>| -> i32 {
        SUCCESS
    })?;
    linker.func_wrap(
        module,
        "proc_exit",
        |mut c: Caller<'_, Ctx>, exit: i32| -> wasmtime::Result<()> {
            Err(fail_vm(&mut c, &format!("proc_exit({exit})")))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::fixture::Request;
    use crate::log::LogLevel;
    use crate::test_support::{filter, host};
    use crate::HostError;

    #[test]
    fn stdout_and_stderr_become_logs() {
        let m = filter(
            r#"(import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
               (data (i32.const 100) "to stdout\n")
               (data (i32.const 200) "to stderr")"#,
            r#"(i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 10))
               (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
               (i32.store (i32.const 0) (i32.const 200)) (i32.store (i32.const 4) (i32.const 9))
               (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 16)))
               (i32.store (i32.const 20) (call $w (i32.const 7) (i32.const 0) (i32.const 1) (i32.const 16)))
               (if (i32.ne (i32.load (i32.const 20)) (i32.const 8)) (then unreachable))
               (i32.const 0)"#,
        );
        let mut h = host(&m).unwrap();
        h.send(&Request::default()).unwrap();
        let logs: Vec<_> = h.logs().into_iter().map(|l| (l.level, l.message)).collect();
        assert_eq!(
            logs,
            [
                (LogLevel::Info, "to stdout".to_string()),
                (LogLevel::Error, "to stderr".to_string())
            ]
        );
    }

    #[test]
    fn clock_time_get_reads_the_virtual_clock() {
        let m = filter(
            r#"(import "wasi_snapshot_preview1" "clock_time_get" (func $t (param i32 i64 i32) (result i32)))"#,
            r#"(drop (call $t (i32.const 0) (i64.const 0) (i32.const 0)))
               (drop (call $t (i32.const 1) (i64.const 0) (i32.const 8)))
               (if (i64.ne (i64.load (i32.const 0)) (i64.const 1005)) (then unreachable))
               (if (i64.ne (i64.load (i32.const 8)) (i64.const 5)) (then unreachable))
               (if (i32.ne (call $t (i32.const 2) (i64.const 0) (i32.const 8)) (i32.const 58))
                 (then unreachable))
               (i32.const 0)"#,
        );
        let mut h = crate::Host::builder(&m)
            .start_time_nanos(1_000)
            .build()
            .unwrap();
        h.advance_time(std::time::Duration::from_nanos(5)).unwrap();
        assert_eq!(h.send(&Request::default()).unwrap().status, 200);
    }

    #[test]
    fn proc_exit_fails_the_vm_with_a_clear_error() {
        let m = filter(
            r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#,
            r#"(call $exit (i32.const 3)) (i32.const 0)"#,
        );
        let err = host(&m).unwrap().send(&Request::default()).unwrap_err();
        match err {
            HostError::Trap {
                callback, message, ..
            } => {
                assert_eq!(callback, "proxy_on_request_headers");
                assert!(message.contains("proc_exit(3)"), "{message}");
            }
            other => panic!("expected a trap, got {other}"),
        }
    }

    #[test]
    fn no_environment_no_files() {
        let m = filter(
            r#"(import "wasi_snapshot_preview1" "environ_sizes_get" (func $e (param i32 i32) (result i32)))
               (import "wasi_snapshot_preview1" "fd_prestat_get" (func $p (param i32 i32) (result i32)))
               (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))"#,
            r#"(i32.store (i32.const 0) (i32.const 99))
               (drop (call $e (i32.const 0) (i32.const 4)))
               (if (i32.ne (i32.load (i32.const 0)) (i32.const 0)) (then unreachable))
               (if (i32.ne (call $p (i32.const 3) (i32.const 8)) (i32.const 8)) (then unreachable))
               (if (i32.ne (call $r (i32.const 0) (i32.const 8) (i32.const 1) (i32.const 16)) (i32.const 52)) (then unreachable))
               (i32.const 0)"#,
        );
        assert_eq!(
            host(&m).unwrap().send(&Request::default()).unwrap().status,
            200
        );
    }
}
