//! One call of a contract (top-level or nested): load the code, instantiate it afresh,
//! meter it, and turn whatever happened into an [`Outcome`] or a [`VmFault`].

use crate::abi::{self, Guest, Realloc};
use crate::cache::{Cache, Loaded};
use crate::policy::ENTRY_INTERFACE;
use crate::{Counters, EPOCH_TICK, RuntimeConfig};
use joule_contract::{ContractHost, Entry, Failure, GasSchedule, HostFault, Invocation, Outcome, VmFault, limits};
use joule_primitives::Hash32;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wasmtime::{Engine, Extern, Linker, Module, ModuleExport, ResourceLimiter, Store, StoreContextMut, Trap, WasmBacktrace};

/// Fuel given for instantiation, which is not metered (its fuel use differs between
/// platforms): enough for any module the policy admits, replaced by the call's budget
/// before the export runs.
const INSTANTIATION_FUEL: u64 = 1 << 40;

/// The runtime's shared parts, reachable from every store (nested calls need them).
pub(crate) struct Inner {
    pub engine: Engine,
    pub linker: Linker<StoreData>,
    pub config: RuntimeConfig,
    pub cache: Cache,
    pub counters: Counters,
}

/// What a call may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `init` and `call`: storage writes, events and calls allowed.
    Write,
    /// `query`: reads only.
    Read,
    /// A library: no storage and no events at all, no state-changing calls.
    Library,
}

/// The transaction's state, moved from store to store as calls nest: the host itself, and
/// what spans all of the transaction's calls.
pub(crate) struct Tx {
    pub host: Box<dyn ContractHost>,
    pub origin: Hash32,
    pub channel: String,
    pub height: u64,
    pub timestamp_ms: u64,
    /// Events emitted so far, across all calls (reverted ones included).
    pub events: usize,
    /// Contracts running, outermost first: the reentrancy check and the depth.
    pub stack: Vec<Hash32>,
    pub deadline: Instant,
    pub timeout: Duration,
}

impl Tx {
    pub fn new(host: Box<dyn ContractHost>, call: &Invocation, timeout: Duration) -> Self {
        Tx {
            host,
            origin: call.sender,
            channel: call.channel.clone(),
            height: call.height,
            timestamp_ms: call.timestamp_ms,
            events: 0,
            stack: Vec::new(),
            deadline: Instant::now() + timeout,
            timeout,
        }
    }
}

/// One call to run.
pub(crate) struct Frame<'a> {
    pub contract: Hash32,
    pub caller: Hash32,
    pub code_hash: Hash32,
    pub entry: Entry,
    pub mode: Mode,
    pub method: &'a str,
    pub args: &'a [u8],
    pub gas_limit: u64,
}

/// Why the running call must stop, recorded by a host function before it returns an error
/// (so the outcome never depends on an error message's wording).
pub(crate) enum Abort {
    OutOfGas,
    /// `control.revert`, or a host function refusing what the contract asked.
    Revert(String),
    Fault(VmFault),
}

/// What a store carries.
pub(crate) struct StoreData {
    pub rt: Arc<Inner>,
    /// `None` only while a nested call has moved it into the callee's store.
    pub tx: Option<Tx>,
    pub contract: Hash32,
    pub caller: Hash32,
    pub mode: Mode,
    pub limiter: Limiter,
    pub abort: Option<Abort>,
    /// The instance's memory and allocator, once instantiated.
    pub guest: Option<Guest>,
}

impl StoreData {
    pub fn schedule(&self) -> &'static GasSchedule {
        self.rt.config.schedule
    }
}

/// Which consensus limit a contract ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHit {
    Memory,
    Table,
}

/// Memory and table limits (consensus values: a trap, the same on every node), and the
/// OS refusing an allocation under them (a node fault).
#[derive(Default)]
pub(crate) struct Limiter {
    hit: Option<LimitHit>,
    fault: Option<String>,
    /// The last growth requested: (desired, the module's own maximum).
    last_memory: Option<(usize, Option<usize>)>,
    last_table: Option<(usize, Option<usize>)>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > limits::MAX_MEMORY_BYTES {
            self.hit = Some(LimitHit::Memory);
            wasmtime::bail!("memory limit exceeded");
        }
        self.last_memory = Some((desired, maximum));
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // Past the module's own maximum the guest sees -1, as on every node; anything else
        // under the limit is this machine failing to allocate.
        if let Some((desired, Some(max))) = self.last_memory
            && desired > max
        {
            return Ok(());
        }
        self.fault = Some(format!("memory growth failed under the limit: {error:#}"));
        Err(error)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > limits::MAX_TABLE_ELEMENTS {
            self.hit = Some(LimitHit::Table);
            wasmtime::bail!("table limit exceeded");
        }
        self.last_table = Some((desired, maximum));
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if let Some((desired, Some(max))) = self.last_table
            && desired > max
        {
            return Ok(());
        }
        self.fault = Some(format!("table growth failed under the limit: {error:#}"));
        Err(error)
    }

    /// A contract is one core module with one memory.
    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        1
    }
}

/// Charge `gas` from the running call; out of gas records it and traps.
pub(crate) fn charge(cx: &mut StoreContextMut<'_, StoreData>, gas: u64) -> wasmtime::Result<()> {
    let left = cx.get_fuel()?;
    if gas > left {
        cx.set_fuel(0)?;
        cx.data_mut().abort = Some(Abort::OutOfGas);
        wasmtime::bail!("out of gas");
    }
    cx.set_fuel(left - gas)
}

/// Stop the running call with a revert (a deterministic refusal of what it asked).
pub(crate) fn revert<T>(cx: &mut StoreContextMut<'_, StoreData>, message: String) -> wasmtime::Result<T> {
    let message = cut(message, limits::MAX_REVERT_MESSAGE_BYTES);
    cx.data_mut().abort = Some(Abort::Revert(message.clone()));
    Err(wasmtime::format_err!("reverted: {message}"))
}

/// Stop the running call with a node fault.
pub(crate) fn fault<T>(cx: &mut StoreContextMut<'_, StoreData>, fault: VmFault) -> wasmtime::Result<T> {
    let text = fault.to_string();
    cx.data_mut().abort = Some(Abort::Fault(fault));
    Err(wasmtime::format_err!("{text}"))
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub(crate) fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Run `f` with at least the native stack a wasm entry needs: the wasm stack limit plus a
/// margin for host functions, on a fresh stack segment when this thread has less left
/// (a tokio blocking thread has 2 MiB; nested calls start deep in an outer call's stack).
pub(crate) fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    let need = crate::NATIVE_STACK_NEEDED;
    stacker::maybe_grow(need, need + (1 << 20), f)
}

/// Run one call: the host comes back in `Tx` whatever happens.
pub(crate) fn run_frame(rt: &Arc<Inner>, tx: Tx, frame: Frame<'_>) -> (Tx, Result<Outcome, VmFault>) {
    with_stack(|| run_frame_here(rt, tx, frame))
}

fn run_frame_here(rt: &Arc<Inner>, mut tx: Tx, frame: Frame<'_>) -> (Tx, Result<Outcome, VmFault>) {
    let loaded = match load(rt, &mut *tx.host, &frame.code_hash) {
        Ok(l) => l,
        Err(f) => return (tx, Err(f)),
    };
    let schedule = rt.config.schedule;
    let limit = frame.gas_limit;
    let out_of_gas = Outcome { result: Err(Failure::OutOfGas), gas_used: limit };
    // Instantiation and the arguments, charged by formula before anything runs.
    let upfront = GasSchedule::cost(schedule.instantiate, schedule.instantiate_per_code_byte, loaded.code_len).saturating_add(GasSchedule::cost(
        0,
        schedule.per_io_byte,
        frame.method.len().saturating_add(frame.args.len()),
    ));
    if upfront > limit {
        return (tx, Ok(out_of_gas));
    }
    let reverted = |message: String, gas_used: u64| Ok(Outcome { result: Err(Failure::Reverted(message)), gas_used });
    let export = match frame.entry {
        Entry::Init => loaded.init,
        Entry::Call => loaded.call,
        Entry::Query => loaded.query,
    };
    let Some(export) = export else {
        return (tx, reverted(format!("the contract does not export `{ENTRY_INTERFACE}#{}`", entry_name(frame.entry)), upfront));
    };

    let remaining = tx.deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        let ms = tx.timeout.as_millis() as u64;
        return (tx, Err(VmFault::Timeout(ms)));
    }
    let ticks = (remaining.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64;
    tx.stack.push(frame.contract);
    let data = StoreData {
        rt: rt.clone(),
        tx: Some(tx),
        contract: frame.contract,
        caller: frame.caller,
        mode: frame.mode,
        limiter: Limiter::default(),
        abort: None,
        guest: None,
    };
    let mut store = Store::new(&rt.engine, data);
    store.limiter(|d| &mut d.limiter);
    store.set_epoch_deadline(ticks);

    let result = call_export(&mut store, &loaded, export, &frame, limit - upfront);
    let fuel_left = store.get_fuel().unwrap_or(0).min(limit);
    let gas_used = limit - fuel_left;
    let outcome = match result {
        Ok(Ok(bytes)) => {
            if bytes.len() > limits::MAX_RETURN_BYTES {
                reverted(format!("return data over {} bytes", limits::MAX_RETURN_BYTES), gas_used)
            } else {
                let io = GasSchedule::cost(0, schedule.per_io_byte, bytes.len());
                if io > fuel_left { Ok(out_of_gas) } else { Ok(Outcome { result: Ok(bytes), gas_used: gas_used + io }) }
            }
        }
        Ok(Err(message)) => {
            let message = cut(message, limits::MAX_REVERT_MESSAGE_BYTES);
            let io = GasSchedule::cost(0, schedule.per_io_byte, message.len());
            if io > fuel_left { Ok(out_of_gas) } else { reverted(message, gas_used + io) }
        }
        Err(CallError::Instantiate(e)) => classify(&mut store, e, upfront, limit),
        Err(CallError::MissingExport(what)) => reverted(format!("the contract does not export {what}"), upfront),
        Err(CallError::Abi(what)) => reverted(format!("trap: {what}"), gas_used),
        Err(CallError::Call(e)) => classify(&mut store, e, gas_used, limit),
    };
    let mut tx = take_tx(store);
    tx.stack.pop();
    (tx, outcome)
}

fn entry_name(entry: Entry) -> &'static str {
    match entry {
        Entry::Init => "init",
        Entry::Call => "call",
        Entry::Query => "query",
    }
}

/// The host back out of a finished store. Every host function that moves it out moves it
/// back before returning, so it is always there.
fn take_tx(store: Store<StoreData>) -> Tx {
    #[allow(clippy::expect_used)]
    store.into_data().tx.expect("the host is moved back into the store before any host function returns")
}

enum CallError {
    Instantiate(wasmtime::Error),
    /// What is missing or of the wrong type, for the revert message.
    MissingExport(String),
    /// The export broke the canonical ABI on its way back (a bad pointer, discriminant or
    /// string), depending only on its code.
    Abi(String),
    Call(wasmtime::Error),
}

/// Instantiate afresh (unmetered), then lower the arguments (with the guest's allocator,
/// metered) and call the export with the call's budget.
fn call_export(
    store: &mut Store<StoreData>,
    loaded: &Loaded,
    export: ModuleExport,
    frame: &Frame<'_>,
    budget: u64,
) -> Result<Result<Vec<u8>, String>, CallError> {
    store.set_fuel(INSTANTIATION_FUEL).map_err(CallError::Instantiate)?;
    let instance = loaded.pre.instantiate(&mut *store).map_err(CallError::Instantiate)?;
    let mut get = |e: &Option<ModuleExport>| e.as_ref().and_then(|e| instance.get_module_export(&mut *store, e));
    let memory = get(&loaded.memory).and_then(Extern::into_memory).ok_or_else(|| CallError::MissingExport("its memory as `memory`".into()))?;
    let realloc = match get(&loaded.realloc).map(Extern::into_func) {
        None => None,
        Some(f) => Some(
            f.and_then(|f| f.typed::<(i32, i32, i32, i32), i32>(&*store).ok())
                .ok_or_else(|| CallError::MissingExport("`cabi_realloc` of the right type (func (param i32 i32 i32 i32) (result i32))".into()))?,
        ),
    };
    let func = instance.get_module_export(&mut *store, &export).and_then(Extern::into_func);
    let missing = || CallError::MissingExport(format!("`{ENTRY_INTERFACE}#{}` of the right type", entry_name(frame.entry)));
    let guest = Guest { memory, realloc };
    store.data_mut().guest = Some(guest.clone());
    store.set_fuel(budget).map_err(CallError::Call)?;
    let ret = match frame.entry {
        Entry::Init => {
            let f = func.and_then(|f| f.typed::<(i32, i32), i32>(&*store).ok()).ok_or_else(missing)?;
            let (ap, al) = lower(store, &guest, frame.args)?;
            f.call(&mut *store, (ap, al)).map_err(CallError::Call)?
        }
        Entry::Call | Entry::Query => {
            let f = func.and_then(|f| f.typed::<(i32, i32, i32, i32), i32>(&*store).ok()).ok_or_else(missing)?;
            let (mp, ml) = lower(store, &guest, frame.method.as_bytes())?;
            let (ap, al) = lower(store, &guest, frame.args)?;
            f.call(&mut *store, (mp, ml, ap, al)).map_err(CallError::Call)?
        }
    };
    abi::read_result(&memory, &*store, ret).map_err(CallError::Abi)
}

/// Copy an argument into the guest: `cabi_realloc(0, 0, 1, len)` (metered), then the bytes.
fn lower(store: &mut Store<StoreData>, guest: &Guest, data: &[u8]) -> Result<(i32, i32), CallError> {
    let realloc: &Realloc =
        guest.realloc.as_ref().ok_or_else(|| CallError::MissingExport("`cabi_realloc`, which the host needs to pass the arguments".into()))?;
    let len = i32::try_from(data.len()).map_err(|_| CallError::Abi("an argument does not fit the 32-bit address space".into()))?;
    let ptr = realloc.call(&mut *store, (0, 0, 1, len)).map_err(CallError::Call)?;
    let dst =
        abi::range(ptr as u32, len as u32, guest.memory.data_size(&*store)).ok_or_else(|| CallError::Abi("realloc return: beyond end of memory".into()))?;
    if let Some(dst) = guest.memory.data_mut(&mut *store).get_mut(dst) {
        dst.copy_from_slice(data);
    }
    Ok((ptr, len))
}

/// What a failed instantiation or call means, from what was recorded (host functions, the
/// limiter) first, then the trap code; the message never decides.
fn classify(store: &mut Store<StoreData>, e: wasmtime::Error, gas_used: u64, limit: u64) -> Result<Outcome, VmFault> {
    let reverted = |message: &str| Ok(Outcome { result: Err(Failure::Reverted(message.to_string())), gas_used });
    let data = store.data_mut();
    match data.abort.take() {
        Some(Abort::OutOfGas) => return Ok(Outcome { result: Err(Failure::OutOfGas), gas_used: limit }),
        Some(Abort::Revert(message)) => return reverted(&message),
        Some(Abort::Fault(f)) => return Err(f),
        None => {}
    }
    if let Some(f) = data.limiter.fault.take() {
        return Err(VmFault::Runtime(f));
    }
    match data.limiter.hit {
        Some(LimitHit::Memory) => return reverted("memory limit exceeded"),
        Some(LimitHit::Table) => return reverted("table limit exceeded"),
        None => {}
    }
    let timeout = data.tx.as_ref().map_or(0, |t| t.timeout.as_millis() as u64);
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Ok(Outcome { result: Err(Failure::OutOfGas), gas_used: limit }),
        Some(Trap::Interrupt) => Err(VmFault::Timeout(timeout)),
        // The native limit is never the one a checked module reaches (the logical one is far
        // below it): reaching it is this node's problem, not a receipt.
        Some(Trap::StackOverflow) => Err(VmFault::Runtime("a contract exhausted the native wasm stack before its logical stack limit".into())),
        Some(trap) => {
            let innermost = e.downcast_ref::<WasmBacktrace>().and_then(|bt| bt.frames().first()).and_then(|f| f.func_name());
            if innermost == Some(crate::STACK_LIMIT_FUNCTION) {
                return reverted("stack depth exceeded");
            }
            let text = trap.to_string();
            reverted(&format!("trap: {}", text.strip_prefix("wasm trap: ").unwrap_or(&text)))
        }
        // Not a trap: the guest handed back malformed canonical-ABI data (a bad string, a
        // list out of bounds), which depends only on its code.
        None => reverted(&cut(format!("trap: {e:#}"), limits::MAX_REVERT_MESSAGE_BYTES)),
    }
}

/// The contract whose code hash is `code_hash`, ready to instantiate: from memory, from
/// disk, or prepared and compiled now.
pub(crate) fn load(rt: &Inner, host: &mut dyn ContractHost, code_hash: &Hash32) -> Result<Arc<Loaded>, VmFault> {
    if let Some(l) = rt.cache.get(code_hash) {
        return Ok(l);
    }
    let code = host.code(code_hash)?.ok_or_else(|| HostFault(format!("the code {} of a deployed contract is missing", code_hash.to_hex())))?;
    let runtime = |what: &str, e: &dyn std::fmt::Display| VmFault::Runtime(format!("contract code {}: {what}: {e}", code_hash.to_hex()));
    let module = match rt.cache.load_from_disk(&rt.engine, &code) {
        Some(m) => {
            rt.counters.loaded_from_disk.fetch_add(1, Ordering::Relaxed);
            m
        }
        None => {
            let prepared = joule_contract_prepare::prepare(&code, crate::policy::policy()).map_err(|e| runtime("prepare", &e))?;
            let artifact = rt.engine.precompile_module(&prepared).map_err(|e| runtime("compile", &format!("{e:#}")))?;
            // SAFETY: the bytes were just produced by this engine.
            let m = unsafe { Module::deserialize(&rt.engine, &artifact) }.map_err(|e| runtime("load", &format!("{e:#}")))?;
            rt.cache.store_on_disk(&code, &artifact);
            rt.counters.compiled.fetch_add(1, Ordering::Relaxed);
            m
        }
    };
    let pre = rt.linker.instantiate_pre(&module).map_err(|e| runtime("link", &format!("{e:#}")))?;
    let export = |name: &str| module.get_export_index(name);
    let entry = |name: &str| export(&format!("{ENTRY_INTERFACE}#{name}"));
    let loaded = Arc::new(Loaded {
        code_len: code.len(),
        init: entry("init"),
        call: entry("call"),
        query: entry("query"),
        memory: export("memory"),
        realloc: export("cabi_realloc"),
        pre,
    });
    rt.cache.insert(*code_hash, loaded.clone());
    Ok(loaded)
}
