//! Ready-to-call plugin instances, reused across calls.
//!
//! Instantiation is done once per pooled instance from an [`InstancePre`] (imports already
//! resolved, export types already checked), so the cost of a call is the call itself.
//! Each call runs with a deadline (epoch ticks) and the store's memory and table limits;
//! a call that traps — a panic, a loop past its deadline, a memory bomb hitting the limit —
//! returns an error and its instance is discarded, never reused.

use super::bindings::crypto as wit;
use super::engine::PluginEngine;
use std::sync::{Arc, Mutex};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, Trap};

/// Per-instance host state: the store limits. The imports (entropy, accel) need no state.
pub struct HostState {
    limits: StoreLimits,
}

/// Largest single entropy request; more is a plugin bug or an attack, and traps.
const MAX_ENTROPY_REQUEST: u32 = 1 << 16;

impl wit::joule::crypto::entropy::Host for HostState {
    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_ENTROPY_REQUEST {
            wasmtime::bail!("entropy request of {len} bytes exceeds {MAX_ENTROPY_REQUEST}");
        }
        let mut buf = vec![0u8; len as usize];
        getrandom::fill(&mut buf).map_err(|e| wasmtime::format_err!("host entropy unavailable: {e}"))?;
        Ok(buf)
    }
}

impl wit::joule::crypto::types::Host for HostState {}

/// An 8-word hash state and whole 64-byte blocks, or a trap naming what is wrong.
fn state_and_blocks<'a>(op: &str, state: Vec<u32>, blocks: &'a [u8]) -> wasmtime::Result<([u32; 8], &'a [[u8; 64]])> {
    let st: [u32; 8] = state.try_into().map_err(|s: Vec<u32>| wasmtime::format_err!("{op}: state has {} words, not 8", s.len()))?;
    let (whole, rest) = blocks.as_chunks::<64>();
    if !rest.is_empty() {
        wasmtime::bail!("{op}: {} bytes is not a whole number of 64-byte blocks", blocks.len());
    }
    Ok((st, whole))
}

impl wit::joule::crypto::accel::Host for HostState {
    fn sha256_compress(&mut self, state: Vec<u32>, blocks: Vec<u8>) -> wasmtime::Result<Vec<u32>> {
        let (mut st, whole) = state_and_blocks("sha256-compress", state, &blocks)?;
        sha2::block_api::compress256(&mut st, whole);
        Ok(st.to_vec())
    }

    fn sm3_compress(&mut self, state: Vec<u32>, blocks: Vec<u8>) -> wasmtime::Result<Vec<u32>> {
        use sm3::digest::block_api::UpdateCore;
        use sm3::digest::common::array::Array;
        use sm3::digest::common::hazmat::SerializableState;
        let (st, whole) = state_and_blocks("sm3-compress", state, &blocks)?;
        // The sm3 crate keeps its compression function private; its core's serialisable
        // state (8 little-endian words, then a block count) lets us start from any state.
        let mut serialized = Array::<u8, _>::default();
        for (chunk, w) in serialized.chunks_exact_mut(4).zip(st) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        let mut core = sm3::Sm3Core::deserialize(&serialized).map_err(|_| wasmtime::format_err!("sm3-compress: bad state"))?;
        let (blocks, _) = Array::slice_as_chunks(whole.as_flattened());
        core.update_blocks(blocks);
        Ok(core.serialize()[..32].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

/// Store state that carries the store's resource limits.
pub trait Limited: Send + 'static {
    fn limits(&mut self) -> &mut StoreLimits;
}

impl Limited for HostState {
    fn limits(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }
}

/// Limits for one plugin store, from the engine's configuration.
pub fn store_limits(engine: &PluginEngine) -> StoreLimits {
    let limits = engine.limits();
    StoreLimitsBuilder::new()
        .memory_size(limits.max_memory_bytes)
        .table_elements(limits.max_table_elements)
        .instances(64)
        .tables(64)
        .memories(16)
        .trap_on_grow_failure(true)
        .build()
}

type Instantiate<S, I> = Box<dyn Fn(&mut Store<S>) -> wasmtime::Result<I> + Send + Sync>;

/// A pool of ready instances of one compiled plugin, for any world: `S` is the store's
/// host state, `I` the world's typed bindings.
pub struct InstancePool<S: Limited, I> {
    engine: Arc<PluginEngine>,
    new_state: Box<dyn Fn() -> S + Send + Sync>,
    instantiate: Instantiate<S, I>,
    idle: Mutex<Vec<Ready<S, I>>>,
}

struct Ready<S: 'static, I> {
    store: Store<S>,
    instance: I,
}

/// A pool of instances of one compiled crypto plugin.
pub type CryptoInstances = InstancePool<HostState, wit::Plugin>;

impl CryptoInstances {
    /// Link the component against the crypto world. Fails if its exports do not match the
    /// world's types (a plugin built for another world, or another version of this one).
    pub fn new(engine: Arc<PluginEngine>, component: &Component) -> Result<Self, String> {
        let mut linker: Linker<HostState> = Linker::new(engine.engine());
        wit::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s).map_err(|e| format!("{e:#}"))?;
        let instance_pre = linker.instantiate_pre(component).map_err(|e| format!("{e:#}"))?;
        let pre = wit::PluginPre::new(instance_pre).map_err(|e| format!("{e:#}"))?;
        let limits_from = engine.clone();
        Ok(InstancePool::with(engine, move || HostState { limits: store_limits(&limits_from) }, move |store| pre.instantiate(store)))
    }
}

impl<S: Limited, I> InstancePool<S, I> {
    /// A pool that makes stores with `new_state` and instances with `instantiate` (which
    /// may also initialise the instance, e.g. configure an engine).
    pub fn with(
        engine: Arc<PluginEngine>,
        new_state: impl Fn() -> S + Send + Sync + 'static,
        instantiate: impl Fn(&mut Store<S>) -> wasmtime::Result<I> + Send + Sync + 'static,
    ) -> Self {
        InstancePool { engine, new_state: Box::new(new_state), instantiate: Box::new(instantiate), idle: Mutex::new(Vec::new()) }
    }

    fn instantiate(&self) -> wasmtime::Result<Ready<S, I>> {
        let mut store = Store::new(self.engine.engine(), (self.new_state)());
        store.limiter(|s| s.limits());
        store.set_epoch_deadline(self.engine.deadline_ticks());
        let instance = (self.instantiate)(&mut store)?;
        Ok(Ready { store, instance })
    }

    /// Run `f` on an idle instance (or a new one) within the call budget.
    pub fn call<R>(&self, f: impl FnOnce(&I, &mut Store<S>) -> wasmtime::Result<R>) -> Result<R, String> {
        let pooled = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        let mut ready = match pooled {
            Some(r) => r,
            None => self.instantiate().map_err(|e| self.describe(e))?,
        };
        ready.store.set_epoch_deadline(self.engine.deadline_ticks());
        match f(&ready.instance, &mut ready.store) {
            Ok(r) => {
                if let Ok(mut idle) = self.idle.lock()
                    && idle.len() < self.engine.limits().max_idle_instances
                {
                    idle.push(ready);
                }
                Ok(r)
            }
            // The instance may be mid-way through anything: drop it.
            Err(e) => Err(self.describe(e)),
        }
    }

    /// A trap or host error in words an operator can act on.
    fn describe(&self, e: wasmtime::Error) -> String {
        let limits = self.engine.limits();
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!("exceeded its time budget of {:?} per call", limits.call_timeout),
            Some(trap) => {
                let text = format!("{e:#}");
                if text.contains("growing memory") || text.contains("grow") && text.contains("memory") {
                    format!("exceeded its memory limit of {} MiB ({trap})", limits.max_memory_bytes >> 20)
                } else {
                    format!("trapped: {text}")
                }
            }
            None => {
                let text = format!("{e:#}");
                if text.contains("growing memory") { format!("exceeded its memory limit of {} MiB", limits.max_memory_bytes >> 20) } else { text }
            }
        }
    }
}
