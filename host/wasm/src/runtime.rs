//! The wasmtime engine plugins run on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, OptLevel};

/// Resource bounds applied to every call into a component.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock budget of one call; a component past it traps (epoch interruption).
    pub call_timeout: Duration,
    /// Linear memory an instance may grow to.
    pub max_memory_bytes: usize,
    /// Elements in any one table.
    pub max_table_elements: usize,
    /// Idle instances kept per pool for reuse.
    pub max_idle_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { call_timeout: Duration::from_secs(10), max_memory_bytes: 256 << 20, max_table_elements: 100_000, max_idle_instances: 16 }
    }
}

/// Granularity of the call timeout.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// A wasmtime engine configured for plugins, plus the thread that advances its epoch.
///
/// Determinism: NaNs are canonicalised, threads and relaxed SIMD are off, so a component
/// computes the same bits on every node. Wide arithmetic is on: big-integer code (SM2,
/// P-256) is ~4x faster with it. Execution is bounded by epoch interruption, which costs
/// far less than fuel; contracts, which need gas that is the same on every node, get a
/// fuel-metered configuration of their own.
pub struct Runtime {
    engine: Engine,
    limits: Limits,
    stop: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new(limits: Limits) -> wasmtime::Result<Self> {
        let engine = Engine::new(&Self::config())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, ticker_stop) = (engine.weak(), stop.clone());
        std::thread::Builder::new()
            .name("joule-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| wasmtime::format_err!("cannot start the epoch thread: {e}"))?;
        Ok(Runtime { engine, limits, stop })
    }

    /// The engine configuration; it is also what the artifact cache keys on.
    pub fn config() -> Config {
        let mut c = Config::new();
        c.wasm_component_model(true);
        c.wasm_wide_arithmetic(true);
        // Threads are not compiled into this wasmtime build (no `threads` feature).
        c.wasm_relaxed_simd(false);
        c.relaxed_simd_deterministic(true);
        c.cranelift_nan_canonicalization(true);
        c.cranelift_opt_level(OptLevel::Speed);
        c.epoch_interruption(true);
        c.parallel_compilation(true);
        c
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Epoch ticks that make up one call's budget.
    pub fn deadline_ticks(&self) -> u64 {
        (self.limits.call_timeout.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
