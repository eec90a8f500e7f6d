//! The imports a Proxy-Wasm module gets: WASI ([`wasi`]) and the Proxy-Wasm
//! ABI 0.2.1 host calls ([`proxy`]).

pub(crate) mod proxy;
pub(crate) mod wasi;

use crate::world::SharedWorld;
use wasmtime::{Engine, Linker, Memory};

/// The data of each plugin's wasmtime store.
pub(crate) struct Ctx {
    /// State shared by the host's plugins.
    pub world: SharedWorld,
    /// Index of this plugin in the chain.
    pub plugin: usize,
    /// The module's exported memory.
    pub memory: Option<Memory>,
    /// Context id host calls act on (set per callback and by
    /// `proxy_set_effective_context`).
    pub effective: u32,
    /// A fatal error raised by a host call (e.g. `proc_exit`), reported
    /// when the callback returns.
    pub fatal: Option<String>,
}

/// A linker with every import the harness provides.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<Ctx>> {
    let mut linker = Linker::new(engine);
    wasi::define(&mut linker, "wasi_snapshot_preview1")?;
    wasi::define(&mut linker, "wasi_unstable")?;
    proxy::define(&mut linker)?;
    Ok(linker)
}
