//! One instantiated module in the chain: its store, and calls into it.

use crate::abi::{self, Ctx};
use crate::log::render;
use crate::module::Module;
use crate::world::{lock, SharedWorld};
use crate::HostError;
use wasmtime::{Store, Val};

/// A module instance with its own store (one Envoy VM per filter).
pub(crate) struct Plugin {
    pub name: String,
    store: Store<Ctx>,
    instance: wasmtime::Instance,
    next_context_id: u32,
}

impl Plugin {
    /// Links and instantiates `module`; every import must be provided.
    pub fn instantiate(
        module: &Module,
        name: &str,
        index: usize,
        world: SharedWorld,
    ) -> Result<Plugin, HostError> {
        let linker = abi::linker(&module.engine).map_err(|e| HostError::Instantiate {
            plugin: name.to_string(),
            message: e.to_string(),
        })?;
        let ctx = Ctx {
            world,
            plugin: index,
            memory: None,
            effective: 0,
            fatal: None,
        };
        let mut store = Store::new(&module.engine, ctx);
        let missing: Vec<String> = module
            .inner
            .imports()
            .filter(|i| linker.get_by_import(&mut store, i).is_none())
            .map(|i| format!("{}::{}", i.module(), i.name()))
            .collect();
        if !missing.is_empty() {
            return Err(HostError::MissingImports {
                plugin: name.to_string(),
                imports: missing,
            });
        }
        let instance =
            linker
                .instantiate(&mut store, &module.inner)
                .map_err(|e| HostError::Instantiate {
                    plugin: name.to_string(),
                    message: format!("{e:?}"),
                })?;
        let memory = instance.get_memory(&mut store, "memory");
        store.data_mut().memory = memory;
        Ok(Plugin {
            name: name.to_string(),
            store,
            instance,
            next_context_id: 1,
        })
    }

    /// A new context id (root first, then streams), unique in this VM.
    pub fn new_context_id(&mut self) -> u32 {
        let id = self.next_context_id;
        self.next_context_id += 1;
        id
    }

    /// True when the module exports `name`.
    pub fn exports(&mut self, name: &str) -> bool {
        self.instance.get_func(&mut self.store, name).is_some()
    }

    /// Calls export `name` with i32 arguments, acting for `context_id`.
    /// `Ok(None)` when the export is absent or returns nothing.
    pub fn call(
        &mut self,
        name: &str,
        context_id: u32,
        args: &[i32],
    ) -> Result<Option<i32>, HostError> {
        let Some(func) = self.instance.get_func(&mut self.store, name) else {
            return Ok(None);
        };
        self.store.data_mut().effective = context_id;
        self.store.data_mut().fatal = None;
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let n = func.ty(&self.store).results().len();
        let mut results = vec![Val::I32(0); n];
        match func.call(&mut self.store, &params, &mut results) {
            Ok(()) => Ok(results.first().and_then(Val::i32)),
            Err(e) => {
                let message = match self.store.data_mut().fatal.take() {
                    Some(f) => f,
                    None => format!("{e:?}"),
                };
                let logs = render(&lock(&self.store.data().world).logs);
                Err(HostError::Trap {
                    plugin: self.name.clone(),
                    callback: name.to_string(),
                    message,
                    logs,
                })
            }
        }
    }
}
