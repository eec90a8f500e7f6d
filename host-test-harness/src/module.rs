//! A compiled Proxy-Wasm module, reusable by many hosts.

use std::fmt;
use std::path::{Path, PathBuf};
use wasmtime::{Config, Engine};

/// A module compiled once (wasmtime, Cranelift) and shared by any number of
/// [`Host`](crate::Host)s; cloning is cheap.
#[derive(Clone)]
pub struct Module {
    pub(crate) engine: Engine,
    pub(crate) inner: wasmtime::Module,
    name: String,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module").field("name", &self.name).finish()
    }
}

/// Errors loading a module.
#[derive(Debug)]
pub enum ModuleError {
    /// The file could not be read.
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The bytes are not a valid Wasm module.
    Compile {
        /// Module name.
        name: String,
        /// Compiler message.
        message: String,
    },
    /// The module does not export `proxy_abi_version_0_2_1` (or 0_2_0).
    NotProxyWasm {
        /// Module name.
        name: String,
    },
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleError::Read { path, error } => write!(
                f,
                "cannot read Wasm module {}: {error} (was it built? e.g. \
                 `cargo build --release --target wasm32-wasip1 -p <crate>`)",
                path.display()
            ),
            ModuleError::Compile { name, message } => {
                write!(f, "{name} is not a valid Wasm module: {message}")
            }
            ModuleError::NotProxyWasm { name } => write!(
                f,
                "{name} is not a Proxy-Wasm 0.2.x module: it exports no \
                 `proxy_abi_version_0_2_1` (build it with the proxy-wasm SDK 0.2)"
            ),
        }
    }
}

impl std::error::Error for ModuleError {}

impl Module {
    /// Reads and compiles a `.wasm` file; its name is the file stem.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Module, ModuleError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| ModuleError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "module".to_string());
        Module::from_bytes(&name, &bytes)
    }

    /// Compiles a module from bytes (binary, or text with the `wat` feature
    /// of wasmtime enabled).
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Module, ModuleError> {
        // Fuel (about one unit per wasm instruction) bounds each callback
        // and measures what a request costs in wasm (`Host::fuel_consumed`).
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(|e| ModuleError::Compile {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        let inner = wasmtime::Module::new(&engine, bytes).map_err(|e| ModuleError::Compile {
            name: name.to_string(),
            message: format!("{e:?}"),
        })?;
        let abi = inner.exports().any(|e| {
            matches!(
                e.name(),
                "proxy_abi_version_0_2_1" | "proxy_abi_version_0_2_0"
            )
        });
        if !abi {
            return Err(ModuleError::NotProxyWasm {
                name: name.to_string(),
            });
        }
        Ok(Module {
            engine,
            inner,
            name: name.to_string(),
        })
    }

    /// The module's name (file stem, or as given).
    pub fn name(&self) -> &str {
        &self.name
    }
}
