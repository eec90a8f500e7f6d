//! Bounds-checked access to a module's linear memory from host calls.
//!
//! A bad pointer or length from the module yields
//! [`Status::InvalidMemoryAccess`] (what Envoy returns), never a host panic.

use crate::abi::Ctx;
use crate::status::Status;
use wasmtime::{Caller, Extern, Memory, Val};

fn memory(caller: &mut Caller<'_, Ctx>) -> Result<Memory, Status> {
    if let Some(m) = caller.data().memory {
        return Ok(m);
    }
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(Status::InvalidMemoryAccess),
    }
}

fn range(ptr: i32, len: i32) -> Result<std::ops::Range<usize>, Status> {
    let start = ptr as u32 as usize;
    let len = len as u32 as usize;
    let end = start.checked_add(len).ok_or(Status::InvalidMemoryAccess)?;
    Ok(start..end)
}

/// Copies `len` bytes at `ptr` out of the module.
pub(crate) fn read(caller: &mut Caller<'_, Ctx>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let mem = memory(caller)?;
    let r = range(ptr, len)?;
    mem.data(&*caller)
        .get(r)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

/// Reads bytes as (lossy) UTF-8 text.
pub(crate) fn read_string(
    caller: &mut Caller<'_, Ctx>,
    ptr: i32,
    len: i32,
) -> Result<String, Status> {
    read(caller, ptr, len).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Copies `bytes` into the module at `ptr`.
pub(crate) fn write(caller: &mut Caller<'_, Ctx>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let mem = memory(caller)?;
    let r = range(ptr, bytes.len() as i32)?;
    mem.data_mut(&mut *caller)
        .get_mut(r)
        .ok_or(Status::InvalidMemoryAccess)?
        .copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian u32.
pub(crate) fn write_u32(caller: &mut Caller<'_, Ctx>, ptr: i32, v: u32) -> Result<(), Status> {
    write(caller, ptr, &v.to_le_bytes())
}

/// Writes a little-endian u64.
pub(crate) fn write_u64(caller: &mut Caller<'_, Ctx>, ptr: i32, v: u64) -> Result<(), Status> {
    write(caller, ptr, &v.to_le_bytes())
}

/// Outcome of handing bytes to the module: a status, or a trap raised by the
/// module's allocator (which must abort the call).
pub(crate) enum Handoff {
    Status(Status),
    Trap(wasmtime::Error),
}

impl From<Status> for Handoff {
    fn from(s: Status) -> Handoff {
        Handoff::Status(s)
    }
}

/// Allocates `bytes.len()` in the module (`proxy_on_memory_allocate`, else
/// `malloc`), copies `bytes` there, and stores the pointer and size at
/// `ret_ptr` / `ret_size` — the way every Proxy-Wasm call returns data.
pub(crate) fn hand_over(
    caller: &mut Caller<'_, Ctx>,
    bytes: &[u8],
    ret_ptr: i32,
    ret_size: i32,
) -> Result<(), Handoff> {
    let alloc = ["proxy_on_memory_allocate", "malloc"]
        .iter()
        .find_map(|name| caller.get_export(name).and_then(Extern::into_func))
        .ok_or(Status::InvalidMemoryAccess)?;
    let mut out = [Val::I32(0)];
    alloc
        .call(&mut *caller, &[Val::I32(bytes.len() as i32)], &mut out)
        .map_err(Handoff::Trap)?;
    let ptr = out[0].i32().ok_or(Status::InvalidMemoryAccess)?;
    if ptr == 0 && !bytes.is_empty() {
        return Err(Status::InvalidMemoryAccess.into());
    }
    write(caller, ptr, bytes)?;
    write_u32(caller, ret_ptr, ptr as u32)?;
    write_u32(caller, ret_size, bytes.len() as u32)?;
    Ok(())
}
