//! Ready-to-call instances, reused across calls, and why a call failed.
//!
//! Instantiation is done once per pooled instance (imports resolved and export types
//! checked beforehand, in an `InstancePre`), so the cost of a call is the call itself.
//! Each call runs with a deadline (epoch ticks) and the store's memory and table limits;
//! a call that traps — a panic, a loop past its deadline, a memory bomb hitting the limit —
//! returns a [`CallFailure`] and its instance is discarded, never reused.

use crate::runtime::{Limits, Runtime};
use joule_support::sync::lock;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::{ResourceLimiter, Store, Trap};

/// Why a call into a component failed, in terms an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    #[error("exceeded its time budget of {0:?} per call")]
    Timeout(Duration),
    #[error("exceeded its memory limit of {} MiB", .0 >> 20)]
    MemoryLimit(usize),
    #[error("exceeded its table limit of {0} elements")]
    TableLimit(usize),
    /// A wasm trap: `unreachable` (a Rust panic), out-of-bounds access, stack overflow…
    #[error("trapped: {0}")]
    Trap(String),
    /// The host refused something the component asked for (a malformed import call).
    #[error("{0}")]
    Host(String),
}

/// Store limits that remember which one a component ran into, so a failure is classified
/// by what happened rather than by the wording of an error message.
pub struct StoreLimiter {
    max_memory_bytes: usize,
    max_table_elements: usize,
    hit: Option<CallFailure>,
}

impl StoreLimiter {
    pub fn new(limits: &Limits) -> Self {
        StoreLimiter { max_memory_bytes: limits.max_memory_bytes, max_table_elements: limits.max_table_elements, hit: None }
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.hit = Some(CallFailure::MemoryLimit(self.max_memory_bytes));
            wasmtime::bail!("memory growth to {desired} bytes exceeds the limit of {}", self.max_memory_bytes);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            self.hit = Some(CallFailure::TableLimit(self.max_table_elements));
            wasmtime::bail!("table growth to {desired} elements exceeds the limit of {}", self.max_table_elements);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// Store state that carries the store's limiter.
pub trait Limited: Send + 'static {
    fn limiter(&mut self) -> &mut StoreLimiter;
}

type Instantiate<S, I> = Box<dyn Fn(&mut Store<S>) -> wasmtime::Result<I> + Send + Sync>;

/// A pool of ready instances of one compiled component, for any world: `S` is the store's
/// host state, `I` the world's typed bindings.
pub struct InstancePool<S: Limited, I> {
    runtime: Arc<Runtime>,
    new_state: Box<dyn Fn() -> S + Send + Sync>,
    instantiate: Instantiate<S, I>,
    idle: Mutex<Vec<Ready<S, I>>>,
}

struct Ready<S: 'static, I> {
    store: Store<S>,
    instance: I,
}

impl<S: Limited, I> InstancePool<S, I> {
    /// A pool that makes stores with `new_state` and instances with `instantiate` (which
    /// may also initialise the instance, e.g. configure a consensus engine).
    pub fn new(
        runtime: Arc<Runtime>,
        new_state: impl Fn() -> S + Send + Sync + 'static,
        instantiate: impl Fn(&mut Store<S>) -> wasmtime::Result<I> + Send + Sync + 'static,
    ) -> Self {
        InstancePool { runtime, new_state: Box::new(new_state), instantiate: Box::new(instantiate), idle: Mutex::new(Vec::new()) }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn instantiate(&self) -> Result<Ready<S, I>, CallFailure> {
        let mut store = Store::new(self.runtime.engine(), (self.new_state)());
        store.limiter(|s| s.limiter());
        store.set_epoch_deadline(self.runtime.deadline_ticks());
        match (self.instantiate)(&mut store) {
            Ok(instance) => Ok(Ready { store, instance }),
            Err(e) => Err(self.classify(&mut store, e)),
        }
    }

    /// Run `f` on an idle instance (or a new one) within the call budget.
    pub fn call<R>(&self, f: impl FnOnce(&I, &mut Store<S>) -> wasmtime::Result<R>) -> Result<R, CallFailure> {
        let pooled = lock(&self.idle).pop();
        let mut ready = match pooled {
            Some(r) => r,
            None => self.instantiate()?,
        };
        ready.store.set_epoch_deadline(self.runtime.deadline_ticks());
        match f(&ready.instance, &mut ready.store) {
            Ok(r) => {
                let mut idle = lock(&self.idle);
                if idle.len() < self.runtime.limits().max_idle_instances {
                    idle.push(ready);
                }
                Ok(r)
            }
            // The instance may be mid-way through anything: drop it.
            Err(e) => Err(self.classify(&mut ready.store, e)),
        }
    }

    fn classify(&self, store: &mut Store<S>, e: wasmtime::Error) -> CallFailure {
        classify(&self.runtime, store, e)
    }
}

/// What went wrong: a limit the store's limiter recorded, the deadline, a trap, or an
/// error a host import raised.
fn classify<S: Limited>(runtime: &Runtime, store: &mut Store<S>, e: wasmtime::Error) -> CallFailure {
    if let Some(hit) = store.data_mut().limiter().hit.take() {
        return hit;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallFailure::Timeout(runtime.limits().call_timeout),
        Some(_) => CallFailure::Trap(format!("{e:#}")),
        None => CallFailure::Host(format!("{e:#}")),
    }
}

/// One instance in a store of its own, kept across calls: for a component whose instance
/// holds state between calls (a consensus participant). Each call has the same budget as a
/// pooled one; after a failed call the instance may be mid-way through anything, so every
/// later call fails with that first failure.
pub struct OwnedInstance<S: Limited, I> {
    runtime: Arc<Runtime>,
    store: Store<S>,
    instance: I,
    failed: Option<CallFailure>,
}

impl<S: Limited, I> OwnedInstance<S, I> {
    pub fn new(runtime: Arc<Runtime>, state: S, instantiate: impl FnOnce(&mut Store<S>) -> wasmtime::Result<I>) -> Result<Self, CallFailure> {
        let mut store = Store::new(runtime.engine(), state);
        store.limiter(|s| s.limiter());
        store.set_epoch_deadline(runtime.deadline_ticks());
        match instantiate(&mut store) {
            Ok(instance) => Ok(OwnedInstance { runtime, store, instance, failed: None }),
            Err(e) => Err(classify(&runtime, &mut store, e)),
        }
    }

    /// Run `f` on the instance within the call budget.
    pub fn call<R>(&mut self, f: impl FnOnce(&I, &mut Store<S>) -> wasmtime::Result<R>) -> Result<R, CallFailure> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        self.store.set_epoch_deadline(self.runtime.deadline_ticks());
        f(&self.instance, &mut self.store).map_err(|e| {
            let failure = classify(&self.runtime, &mut self.store, e);
            self.failed = Some(failure.clone());
            failure
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::{Component, Linker};

    struct State(StoreLimiter);

    impl Limited for State {
        fn limiter(&mut self) -> &mut StoreLimiter {
            &mut self.0
        }
    }

    /// A component exporting `run: func(n: u32) -> u32` whose core function `body` is given.
    fn pool(limits: Limits, body: &str) -> InstancePool<State, wasmtime::component::TypedFunc<(u32,), (u32,)>> {
        let wat = format!(
            r#"(component
                (core module $m
                    (memory (export "mem") 1)
                    (table (export "t") 1 funcref)
                    (func (export "run") (param i32) (result i32) {body}))
                (core instance $i (instantiate $m))
                (func (export "run") (param "n" u32) (result u32) (canon lift (core func $i "run"))))"#
        );
        let runtime = Arc::new(Runtime::new(limits).unwrap());
        let component = Component::new(runtime.engine(), wat).unwrap();
        let linker: Linker<State> = Linker::new(runtime.engine());
        let pre = linker.instantiate_pre(&component).unwrap();
        let r = runtime.clone();
        InstancePool::new(
            runtime,
            move || State(StoreLimiter::new(r.limits())),
            move |store| {
                let instance = pre.instantiate(&mut *store)?;
                instance.get_typed_func::<(u32,), (u32,)>(&mut *store, "run")
            },
        )
    }

    fn run(p: &InstancePool<State, wasmtime::component::TypedFunc<(u32,), (u32,)>>, n: u32) -> Result<u32, CallFailure> {
        p.call(|f, s| {
            let (r,) = f.call(&mut *s, (n,))?;

            Ok(r)
        })
    }

    #[test]
    fn a_working_call_returns_and_its_instance_is_reused() {
        let p = pool(Limits::default(), "local.get 0 i32.const 1 i32.add");
        assert_eq!(run(&p, 41), Ok(42));
        assert_eq!(run(&p, 1), Ok(2));
        assert_eq!(lock(&p.idle).len(), 1);
    }

    #[test]
    fn memory_growth_past_the_limit_is_named_as_such() {
        let limits = Limits { max_memory_bytes: 1 << 20, ..Limits::default() };
        // Grow by n pages: 20 pages is 1.25 MiB, over the 1 MiB limit.
        let p = pool(limits, "local.get 0 memory.grow");
        assert_eq!(run(&p, 20), Err(CallFailure::MemoryLimit(1 << 20)));
        // A failed call's instance is dropped; the next call gets a fresh one and works.
        assert_eq!(lock(&p.idle).len(), 0);
        assert_eq!(run(&p, 1), Ok(1));
    }

    #[test]
    fn table_growth_past_the_limit_is_named_as_such() {
        let limits = Limits { max_table_elements: 10, ..Limits::default() };
        let p = pool(limits, "ref.null func local.get 0 table.grow 0");
        assert_eq!(run(&p, 100), Err(CallFailure::TableLimit(10)));
    }

    #[test]
    fn a_loop_is_stopped_at_its_deadline() {
        let limits = Limits { call_timeout: Duration::from_millis(50), ..Limits::default() };
        let p = pool(limits, "(loop $l (br $l)) i32.const 0");
        let started = std::time::Instant::now();
        assert_eq!(run(&p, 0), Err(CallFailure::Timeout(Duration::from_millis(50))));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_trap_is_a_trap() {
        let p = pool(Limits::default(), "unreachable");
        match run(&p, 0) {
            Err(CallFailure::Trap(m)) => assert!(m.contains("unreachable"), "{m}"),
            other => panic!("expected a trap, got {other:?}"),
        }
    }

    #[test]
    fn an_owned_instance_keeps_its_state_and_is_unusable_after_a_failure() {
        // A counter in a global: state that must survive between calls; n = 0 traps.
        let wat = r#"(component
            (core module $m
                (global $c (mut i32) (i32.const 0))
                (func (export "run") (param i32) (result i32)
                    (if (i32.eqz (local.get 0)) (then unreachable))
                    (global.set $c (i32.add (global.get $c) (local.get 0)))
                    (global.get $c)))
            (core instance $i (instantiate $m))
            (func (export "run") (param "n" u32) (result u32) (canon lift (core func $i "run"))))"#;
        let runtime = Arc::new(Runtime::new(Limits::default()).unwrap());
        let component = Component::new(runtime.engine(), wat).unwrap();
        let linker: Linker<State> = Linker::new(runtime.engine());
        let pre = linker.instantiate_pre(&component).unwrap();
        let state = State(StoreLimiter::new(runtime.limits()));
        let mut owned = OwnedInstance::new(runtime, state, |store| {
            let instance = pre.instantiate(&mut *store)?;
            instance.get_typed_func::<(u32,), (u32,)>(&mut *store, "run")
        })
        .unwrap();
        let mut call = |n: u32| owned.call(|f, s| Ok(f.call(&mut *s, (n,))?.0));
        assert_eq!(call(2), Ok(2));
        assert_eq!(call(3), Ok(5));
        let failure = call(0).unwrap_err();
        assert!(matches!(failure, CallFailure::Trap(_)), "{failure:?}");
        assert_eq!(call(1), Err(failure), "a failed instance is not called again");
    }
}
