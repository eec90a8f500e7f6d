//! One instantiated module in the chain: its store, and calls into it.

use crate::abi::{self, Ctx};
use crate::log::render;
use crate::module::Module;
use crate::world::{lock, SharedWorld};
use crate::HostError;
use wasmtime::{Store, Trap, Val};

/// A module instance with its own store (one Envoy VM per filter).
pub(crate) struct Plugin {
    pub name: String,
    store: Store<Ctx>,
    instance: wasmtime::Instance,
    next_context_id: u32,
    /// Fuel one call may burn before it is stopped.
    callback_fuel: u64,
    /// Fuel burnt by every call so far.
    fuel_consumed: u64,
}

impl Plugin {
    /// Links and instantiates `module`; every import must be provided.
    pub fn instantiate(
        module: &Module,
        name: &str,
        index: usize,
        world: SharedWorld,
        callback_fuel: u64,
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
        // Instantiation runs no guest code without a start function; give
        // it the same budget as a callback.
        set_fuel(&mut store, name, callback_fuel)?;
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
            callback_fuel,
            fuel_consumed: 0,
        })
    }

    /// Fuel burnt by every call into this module so far.
    pub fn fuel_consumed(&self) -> u64 {
        self.fuel_consumed
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
        set_fuel(&mut self.store, &self.name, self.callback_fuel)?;
        let called = func.call(&mut self.store, &params, &mut results);
        let left = self.store.get_fuel().unwrap_or(0);
        self.fuel_consumed = self
            .fuel_consumed
            .saturating_add(self.callback_fuel.saturating_sub(left));
        match called {
            Ok(()) => Ok(results.first().and_then(Val::i32)),
            Err(e) => {
                let message = match self.store.data_mut().fatal.take() {
                    Some(f) => f,
                    None if e.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) => format!(
                        "ran {} wasm operations without returning (an unbounded loop? \
                         HostBuilder::callback_fuel raises the budget)",
                        self.callback_fuel
                    ),
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

/// Refills `store` to `fuel` (fails only if the engine has fuel off, which
/// `Module` never builds).
fn set_fuel(store: &mut Store<Ctx>, plugin: &str, fuel: u64) -> Result<(), HostError> {
    store.set_fuel(fuel).map_err(|e| HostError::Instantiate {
        plugin: plugin.to_string(),
        message: format!("cannot set fuel: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use crate::fixture::Request;
    use crate::test_support::{filter, host};
    use crate::{Host, HostError};

    /// A request-headers callback that counts to `n`, then continues.
    fn counting_to(n: u32) -> crate::Module {
        filter(
            "",
            &format!(
                "(local $i i32)
                 (block $done (loop $next
                   (br_if $done (i32.ge_u (local.get $i) (i32.const {n})))
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br $next)))
                 (i32.const 0)"
            ),
        )
    }

    fn fuel_of_one_request(h: &mut Host) -> u64 {
        let before = h.fuel_consumed();
        h.send(&Request::default()).expect("the request passes");
        h.fuel_consumed() - before
    }

    #[test]
    fn fuel_measures_a_request_exactly_and_grows_with_the_work() {
        let mut short = host(&counting_to(100)).unwrap();
        let mut long = host(&counting_to(10_000)).unwrap();
        let a = fuel_of_one_request(&mut short);
        assert_eq!(
            fuel_of_one_request(&mut short),
            a,
            "the same request, the same fuel"
        );
        let b = fuel_of_one_request(&mut long);
        // Each of the 9 900 extra iterations runs at least four counted
        // instructions.
        assert!(b >= a + 9_900 * 4, "{a} then {b}");
    }

    #[test]
    fn a_callback_that_never_returns_is_stopped_and_named() {
        let spin = filter("", "(loop $forever (br $forever)) (i32.const 0)");
        let mut h = Host::builder(&spin)
            .callback_fuel(1_000_000)
            .build()
            .unwrap();
        match h.send(&Request::default()) {
            Err(HostError::Trap {
                callback, message, ..
            }) => {
                assert_eq!(callback, "proxy_on_request_headers");
                assert!(message.contains("1000000 wasm operations"), "{message}");
            }
            other => panic!("expected a trap, got {other:?}"),
        }
    }
}
