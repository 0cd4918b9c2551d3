//! The contract virtual machine: [`ContractRuntime`] runs `joule:contract@0.2.0`
//! components on wasmtime and implements the ledger's [`ContractVm`].
//!
//! A contract is deployed as a wit-bindgen core module. [`ContractVm::check`] runs the
//! deployment policy (`joule-contract-prepare`); a call prepares the code (stack-limit
//! instrumentation), compiles the core module once (cached on disk and in memory as a
//! pre-linked `InstancePre`), then instantiates it afresh and calls its export with the gas
//! the invocation allows. The world's imports are core functions speaking the canonical ABI
//! (`abi`), not a component's: no shim instances, no lifting into owned values.
//!
//! # Determinism checklist
//! Every node must compute the same outcome, writes, events and gas:
//! - nothing non-deterministic is linked: no WASI, no clock (the block's timestamp comes
//!   through `context.get`), no entropy; only the `joule:contract` imports;
//! - floats: NaN results are canonicalised (Cranelift), relaxed SIMD is off, and SIMD is
//!   off altogether (one less cost table);
//! - a fresh instance per call (never a pooled one): no memory or global survives a call;
//! - gas is wasmtime fuel (1 gas = 1 fuel, per-operator costs from the [`GasSchedule`]),
//!   counted on wasm operators, so independent of the CPU; instantiation is *not* metered
//!   (its fuel differs between platforms, wasmtime#14331) but charged by formula;
//! - host functions charge by formula, before the work when the size is known;
//! - the stack is bounded by a logical count kept by the instrumented code (same on every
//!   machine), with always more native stack than that needs (`stacker`); the native limit
//!   firing is a node fault, never a receipt;
//! - memory and tables are bounded by consensus limits (a trap, the same everywhere); an
//!   allocation the OS refuses under the limit is a node fault;
//! - the wall-clock timeout (epochs) is only a node-local safety net: it never makes a
//!   receipt, it abandons the block on this node.
//!
//! Treat a wasmtime upgrade as a protocol change: the golden gas test fails if fuel
//! accounting moved.

mod abi;
mod cache;
mod exec;
mod imports;
pub mod policy;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use joule_contract::{ContractHost, ContractVm, DeployRefusal, Entry, GasSchedule, Invocation, Outcome, VmFault};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, OperatorCost, PoolingAllocationConfig};

pub use joule_contract_prepare::{PREPARE_VERSION, STACK_LIMIT_FUNCTION};

/// Granularity of the wall-clock safety net.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Native stack wasm may use per entry (host → wasm). Far more than the logical stack
/// limit can reach, so the deterministic limit always fires first.
pub const MAX_WASM_STACK: usize = 4 << 20;
/// Contract instances that may exist at once (all calls running, nested ones included).
const POOL_INSTANCES: u32 = 512;
/// Linear memory kept mapped in a pool slot between calls: a contract's stack and heap
/// (rustc gives wasm a 1 MiB stack) reset in place instead of unmapped and faulted in again.
const KEEP_RESIDENT: usize = 4 << 20;
/// Native stack kept free below the wasm stack for host functions (and what they call).
const HOST_STACK_MARGIN: usize = 1 << 20;

/// Native stack a thread must have left for a contract call to run on it as it is; with
/// less, the call runs on a stack mapped for it (tens of µs). Nested calls need it again.
pub const NATIVE_STACK_NEEDED: usize = MAX_WASM_STACK + HOST_STACK_MARGIN;

/// A stack size for threads that run contracts: room for a top-level call and a few nested
/// ones without a stack of their own.
pub const THREAD_STACK_SIZE: usize = 4 * NATIVE_STACK_NEEDED;

/// How a [`ContractRuntime`] is set up (node-local settings; nothing here is consensus but
/// the schedule, which the chain specification names).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled contracts are cached; `None` compiles every contract once per process.
    pub cache_dir: Option<PathBuf>,
    /// Wall-clock bound of one top-level call, nested calls included ([`VmFault::Timeout`]).
    pub call_timeout: Duration,
    pub schedule: &'static GasSchedule,
    /// Compiled contracts kept ready in memory.
    pub memory_cache_entries: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { cache_dir: None, call_timeout: Duration::from_secs(10), schedule: &joule_contract::gas::V1, memory_cache_entries: 256 }
    }
}

/// Why the runtime could not be created.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create the contract engine: {0}")]
    Engine(String),
    #[error("cannot link the contract world: {0}")]
    Link(String),
    #[error("cannot start the epoch thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// The contract VM. Cheap to share (`Arc` it); calls may run on any threads at once.
pub struct ContractRuntime {
    inner: Arc<exec::Inner>,
    stop: Arc<AtomicBool>,
}

/// Counters of how compiled code was obtained.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub compiled: AtomicU64,
    pub loaded_from_disk: AtomicU64,
}

impl ContractRuntime {
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine = Engine::new(&Self::engine_config(config.schedule)).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let linker = imports::linker(&engine).map_err(|e| RuntimeError::Link(format!("{e:#}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, ticker_stop) = (engine.weak(), stop.clone());
        std::thread::Builder::new().name("joule-contract-epoch".into()).spawn(move || {
            while !ticker_stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match ticker_engine.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            }
        })?;
        let cache = cache::Cache::new(&engine, config.cache_dir.clone(), config.memory_cache_entries);
        Ok(ContractRuntime { inner: Arc::new(exec::Inner { engine, linker, config, cache, counters: Counters::default() }), stop })
    }

    /// The engine configuration: the plugin engine's determinism settings plus fuel with
    /// the schedule's operator costs, no SIMD, and a fixed native wasm stack.
    pub fn engine_config(schedule: &GasSchedule) -> Config {
        let mut c = joule_wasm::Runtime::config();
        c.consume_fuel(true);
        let mut cost = OperatorCost::new();
        cost.Call = schedule.wasm_call;
        cost.CallIndirect = schedule.wasm_call;
        cost.variable.memory_grow_per_page = schedule.memory_grow_per_page;
        c.operator_cost(cost);
        c.wasm_simd(false);
        c.max_wasm_stack(MAX_WASM_STACK);
        // Unused (no async calls), but wasmtime requires it to be at least the wasm stack.
        c.async_stack_size(MAX_WASM_STACK + HOST_STACK_MARGIN);
        // Every call instantiates afresh: from a pool of reserved slots, reset when an
        // instance is dropped, instead of mapping and unmapping memory each time (which
        // cost ~60 µs a call). Sized for many concurrent calls, each nesting up to
        // MAX_CALL_DEPTH + 1 instances; address space only (a slot is committed as used).
        // An exhausted pool fails the call as a node fault, never as a receipt.
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 4)
            .max_core_instances_per_component(16)
            .total_memories(POOL_INSTANCES)
            .total_tables(POOL_INSTANCES * 2)
            .max_memories_per_module(1)
            .max_memory_size(joule_contract::limits::MAX_MEMORY_BYTES)
            .table_elements(joule_contract::limits::MAX_TABLE_ELEMENTS as usize)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(16 << 10)
            // Reset only the pages a call wrote (Linux 6.7+; otherwise the first
            // KEEP_RESIDENT bytes are memset whole, ~50 µs a MiB, and the rest madvised).
            .pagemap_scan(Enabled::Auto);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        c
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Contracts compiled by this runtime (cache misses).
    pub fn compiled(&self) -> u64 {
        self.inner.counters.compiled.load(Ordering::Relaxed)
    }

    /// Contracts this runtime loaded compiled from the disk cache.
    pub fn loaded_from_disk(&self) -> u64 {
        self.inner.counters.loaded_from_disk.load(Ordering::Relaxed)
    }
}

impl Drop for ContractRuntime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl ContractVm for ContractRuntime {
    fn check(&self, code: &[u8]) -> Result<(), DeployRefusal> {
        joule_contract_prepare::check(code, policy::policy()).map_err(|e| DeployRefusal(e.to_string()))
    }

    fn run(&self, host: Box<dyn ContractHost>, call: &Invocation) -> (Box<dyn ContractHost>, Result<Outcome, VmFault>) {
        let mode = match call.entry {
            Entry::Init | Entry::Call => exec::Mode::Write,
            Entry::Query => exec::Mode::Read,
        };
        let mut tx = exec::Tx::new(host, call, self.inner.config.call_timeout);
        tx.host.checkpoint();
        let frame = exec::Frame {
            contract: call.contract,
            caller: call.sender,
            code_hash: call.code_hash,
            entry: call.entry,
            mode,
            method: &call.method,
            args: &call.args,
            gas_limit: call.gas_limit,
        };
        let (mut tx, result) = exec::run_frame(&self.inner, tx, frame);
        match &result {
            Ok(Outcome { result: Ok(_), .. }) => tx.host.commit_checkpoint(),
            _ => tx.host.revert_checkpoint(),
        }
        (tx.host, result)
    }

    fn schedule(&self) -> &GasSchedule {
        self.inner.config.schedule
    }
}
