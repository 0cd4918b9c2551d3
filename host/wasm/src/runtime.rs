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
        // A profiling aid, node-local: `perf` names the JIT code of plugins and contracts.
        if std::env::var_os("JOULE_WASM_PERFMAP").is_some() {
            c.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
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

#[cfg(test)]
mod tests {
    //! The engine settings the architecture's "Determinism and limits" table claims, checked
    //! by what a component observes: the bits a float computation returns, and which
    //! instructions compile at all.

    use super::*;
    use wasmtime::Store;
    use wasmtime::component::{Component, Linker};

    /// The bits of the canonical quiet NaNs (positive sign, payload only the quiet bit).
    const CANONICAL_F32: u32 = 0x7fc0_0000;
    const CANONICAL_F64: u64 = 0x7ff8_0000_0000_0000;

    fn runtime() -> Runtime {
        Runtime::new(Limits::default()).expect("engine")
    }

    /// A component with one exported function `run` whose core function, of the given core
    /// and component types, has `body`. Floats never cross the component boundary: they go
    /// in and out as their bits (`reinterpret`), so what the test sees is exactly what the
    /// compiled code computed.
    fn component(rt: &Runtime, core_sig: &str, component_sig: &str, body: &str) -> wasmtime::Result<Component> {
        let wat = format!(
            r#"(component
                (core module $m (func (export "run") {core_sig} {body}))
                (core instance $i (instantiate $m))
                (func (export "run") {component_sig} (canon lift (core func $i "run"))))"#
        );
        Component::new(rt.engine(), wat)
    }

    fn store(rt: &Runtime) -> Store<()> {
        let mut store = Store::new(rt.engine(), ());
        store.set_epoch_deadline(rt.deadline_ticks());
        store
    }

    /// `run(a, b)` on 32-bit operands: `f32` bits in, `f32` bits out.
    fn run_f32(rt: &Runtime, op: &str, a: u32, b: u32) -> u32 {
        let body = format!("local.get 0 f32.reinterpret_i32 local.get 1 f32.reinterpret_i32 {op} i32.reinterpret_f32");
        let c = component(rt, "(param i32 i32) (result i32)", r#"(param "a" u32) (param "b" u32) (result u32)"#, &body).expect("compiles");
        let mut store = store(rt);
        let instance = Linker::new(rt.engine()).instantiate(&mut store, &c).expect("instantiates");
        let f = instance.get_typed_func::<(u32, u32), (u32,)>(&mut store, "run").expect("run");
        f.call(&mut store, (a, b)).expect("call").0
    }

    /// `run(a, b)` on 64-bit operands: `f64` bits in, `f64` bits out.
    fn run_f64(rt: &Runtime, op: &str, a: u64, b: u64) -> u64 {
        let body = format!("local.get 0 f64.reinterpret_i64 local.get 1 f64.reinterpret_i64 {op} i64.reinterpret_f64");
        let c = component(rt, "(param i64 i64) (result i64)", r#"(param "a" u64) (param "b" u64) (result u64)"#, &body).expect("compiles");
        let mut store = store(rt);
        let instance = Linker::new(rt.engine()).instantiate(&mut store, &c).expect("instantiates");
        let f = instance.get_typed_func::<(u64, u64), (u64,)>(&mut store, "run").expect("run");
        f.call(&mut store, (a, b)).expect("call").0
    }

    #[test]
    fn float_operations_that_make_a_nan_return_the_canonical_nan_bits() {
        let rt = runtime();
        let (zero32, one32) = (0f32.to_bits(), 1f32.to_bits());
        let (zero64, one64) = (0f64.to_bits(), 1f64.to_bits());
        // 0/0 makes a fresh NaN: x86's default NaN has the sign bit set (0xffc00000).
        assert_eq!(run_f32(&rt, "f32.div", zero32, zero32), CANONICAL_F32, "f32 0/0");
        assert_eq!(run_f64(&rt, "f64.div", zero64, zero64), CANONICAL_F64, "f64 0/0");
        // Arithmetic on a NaN with payload bits (and a sign) propagates them on hardware;
        // the engine must replace the result by the canonical NaN.
        for nan in [0x7fa0_0001u32, 0xffc1_2345, 0x7fc0_0001, 0xff80_0001] {
            for op in ["f32.add", "f32.sub", "f32.mul", "f32.div"] {
                let got = run_f32(&rt, op, nan, one32);
                assert_eq!(got, CANONICAL_F32, "{op}({nan:#010x}, 1.0) = {got:#010x}");
            }
            assert_eq!(run_f32(&rt, "f32.min", nan, one32), CANONICAL_F32, "f32.min({nan:#010x}, 1.0)");
        }
        for nan in [0x7ff4_0000_0000_0001u64, 0xfff8_dead_beef_0000, 0x7ff8_0000_0000_0001] {
            for op in ["f64.add", "f64.sub", "f64.mul", "f64.div"] {
                let got = run_f64(&rt, op, nan, one64);
                assert_eq!(got, CANONICAL_F64, "{op}({nan:#018x}, 1.0) = {got:#018x}");
            }
        }
        // Ordinary results are untouched.
        assert_eq!(run_f32(&rt, "f32.add", one32, one32), 2f32.to_bits());
        assert_eq!(run_f64(&rt, "f64.div", one64, 4f64.to_bits()), 0.25f64.to_bits());
    }

    #[test]
    fn relaxed_simd_instructions_do_not_compile() {
        let rt = runtime();
        // `code` runs on two zero vectors and leaves one vector for lane 0 to be returned.
        let simd = |code: &str| {
            component(
                &rt,
                "(param i32) (result i32)",
                r#"(param "n" u32) (result u32)"#,
                &format!("v128.const i64x2 0 0 v128.const i64x2 0 0 {code} i32x4.extract_lane 0"),
            )
        };
        // Plain SIMD is on: the refusals below are about relaxed SIMD, not SIMD.
        simd("i8x16.swizzle").expect("deterministic SIMD compiles");
        for code in ["i8x16.relaxed_swizzle", "drop i32x4.relaxed_trunc_f32x4_s"] {
            let err = match simd(code) {
                Ok(_) => panic!("`{code}` compiled: relaxed SIMD is on, and its results differ between CPUs"),
                Err(e) => format!("{e:#}"),
            };
            assert!(err.contains("relaxed SIMD"), "`{code}`: {err}");
        }
    }

    #[test]
    fn wide_arithmetic_instructions_compile_and_compute_the_high_word() {
        let rt = runtime();
        // The high 64 bits of the 128-bit product.
        let c = component(
            &rt,
            "(param i64 i64) (result i64) (local $hi i64)",
            r#"(param "a" u64) (param "b" u64) (result u64)"#,
            "local.get 0 local.get 1 i64.mul_wide_u local.set $hi drop local.get $hi",
        )
        .expect("i64.mul_wide_u compiles: wide arithmetic is on");
        let mut store = store(&rt);
        let instance = Linker::new(rt.engine()).instantiate(&mut store, &c).unwrap();
        let f = instance.get_typed_func::<(u64, u64), (u64,)>(&mut store, "run").unwrap();
        for (a, b) in [(u64::MAX, u64::MAX), (1 << 63, 2), (0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321), (7, 9)] {
            let want = ((a as u128 * b as u128) >> 64) as u64;
            assert_eq!(f.call(&mut store, (a, b)).unwrap().0, want, "mul_wide_u({a:#x}, {b:#x})");
        }
        // And the 128-bit addition big-integer code uses for carries.
        component(
            &rt,
            "(param i64 i64) (result i64)",
            r#"(param "a" u64) (param "b" u64) (result u64)"#,
            "local.get 0 local.get 1 local.get 0 local.get 1 i64.add128 drop",
        )
        .expect("i64.add128 compiles");
    }
}
