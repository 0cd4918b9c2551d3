//! The VM against hand-written contracts: WAT core modules with the world's component-type
//! metadata embedded, exports written in the canonical ABI by hand.

use crate::testing::{MemoryHost, unbox};
use crate::{ContractRuntime, RuntimeConfig};
use joule_contract::{ContractVm, Entry, Failure, Invocation, Outcome, VmFault};
use joule_primitives::Hash32;
use std::time::Duration;

/// Static data used by the contracts below, at fixed offsets (retareas at 0 and 16).
const DATA: &str = r#"
    (data (i32.const 200) "p1")
    (data (i32.const 208) "k")
    (data (i32.const 216) "nope")
    (data (i32.const 224) "hello")
    (data (i32.const 232) "d")
"#;

/// A contract module: `imports` (WAT import declarations), the body of `call` (params
/// `$mp $ml $ap $al`, result: a retarea pointer, made by `$ok`/`$err`), of `query`, and
/// `extra` module fields.
fn contract(imports: &str, call_body: &str, query_body: &str, extra: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
        {imports}
        (memory (export "memory") 2)
        (global $bump (mut i32) (i32.const 65536))
        {DATA}
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (local $p i32)
            global.get $bump local.get 2 i32.add i32.const 1 i32.sub
            i32.const 0 local.get 2 i32.sub i32.and local.set $p
            local.get $p local.get 3 i32.add global.set $bump
            local.get $p)
        (func $ok (param i32 i32) (result i32)
            i32.const 0 i32.const 0 i32.store8
            i32.const 4 local.get 0 i32.store
            i32.const 8 local.get 1 i32.store
            i32.const 0)
        (func $err (param i32 i32) (result i32)
            i32.const 0 i32.const 1 i32.store8
            i32.const 4 local.get 0 i32.store
            i32.const 8 local.get 1 i32.store
            i32.const 0)
        (func (export "joule:contract/entry@0.2.0#init") (param i32 i32) (result i32)
            (call $ok (i32.const 0) (i32.const 0)))
        (func (export "joule:contract/entry@0.2.0#call") (param $mp i32) (param $ml i32) (param $ap i32) (param $al i32) (result i32)
            {call_body})
        (func (export "joule:contract/entry@0.2.0#query") (param $mp i32) (param $ml i32) (param $ap i32) (param $al i32) (result i32)
            {query_body})
        {extra})"#
    );
    let mut module = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{e}\n{wat}"));
    let (resolve, world) = crate::policy::resolve_world();
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8).unwrap();
    module
}

const OK_EMPTY: &str = "(call $ok (i32.const 0) (i32.const 0))";

const SET: &str = r#"(import "joule:contract/storage@0.2.0" "set" (func $set (param i32 i32 i32 i32)))"#;
const REVERT: &str = r#"(import "joule:contract/control@0.2.0" "revert" (func $revert (param i32 i32)))"#;
const EMIT: &str = r#"(import "joule:contract/events@0.2.0" "emit" (func $emit (param i32 i32 i32 i32 i32 i32)))"#;
const CALLS: &str = r#"
    (import "joule:contract/calls@0.2.0" "call" (func $c_call (param i32 i32 i32 i32 i32 i32 i32 i64 i32)))
    (import "joule:contract/calls@0.2.0" "query" (func $c_query (param i32 i32 i32 i32 i32 i32 i32 i64 i32)))
    (import "joule:contract/calls@0.2.0" "library" (func $c_library (param i32 i32 i32 i32 i32 i32 i32 i64 i32)))"#;

/// `call`: `storage.set("k", args)`; method `revert` then reverts with "nope", method `emit`
/// emits `hello` with one indexed topic (the args) and the args as data; returns the args.
/// `query`: tries to write (and so traps).
fn writer() -> Vec<u8> {
    contract(
        &format!("{SET} {REVERT} {EMIT}"),
        r#"
        (call $set (i32.const 208) (i32.const 1) (local.get $ap) (local.get $al))
        (if (i32.eq (local.get $ml) (i32.const 6)) (then (call $revert (i32.const 216) (i32.const 4))))
        (if (i32.eq (local.get $ml) (i32.const 4)) (then
            ;; list<list<u8>> with one element: (ptr, len) at 240
            (i32.store (i32.const 240) (local.get $ap))
            (i32.store (i32.const 244) (local.get $al))
            (call $emit (i32.const 224) (i32.const 5) (i32.const 240) (i32.const 1) (local.get $ap) (local.get $al))))
        (call $ok (local.get $ap) (local.get $al))"#,
        r#"(call $set (i32.const 208) (i32.const 1) (local.get $ap) (local.get $al)) (call $ok (i32.const 0) (i32.const 0))"#,
        "",
    )
}

/// `call(method, [kind][32-byte target][rest])`: writes `p`, then calls `method` of the
/// target with `rest` by `calls.call` (kind 0), `query` (1) or `library` (2); stores the
/// result's discriminant under `d` and returns the callee's bytes or message. Fewer than 33
/// bytes of args: returns nothing.
fn proxy() -> Vec<u8> {
    contract(
        &format!("{SET} {CALLS}"),
        r#"
        (local $kind i32)
        (call $set (i32.const 200) (i32.const 1) (i32.const 201) (i32.const 1))
        (if (i32.lt_u (local.get $al) (i32.const 33)) (then (return (call $ok (i32.const 0) (i32.const 0)))))
        (local.set $kind (i32.load8_u (local.get $ap)))
        (if (i32.eqz (local.get $kind)) (then
            (call $c_call (i32.add (local.get $ap) (i32.const 1)) (i32.const 32) (local.get $mp) (local.get $ml)
                (i32.add (local.get $ap) (i32.const 33)) (i32.sub (local.get $al) (i32.const 33)) (i32.const 0) (i64.const 0) (i32.const 16))))
        (if (i32.eq (local.get $kind) (i32.const 1)) (then
            (call $c_query (i32.add (local.get $ap) (i32.const 1)) (i32.const 32) (local.get $mp) (local.get $ml)
                (i32.add (local.get $ap) (i32.const 33)) (i32.sub (local.get $al) (i32.const 33)) (i32.const 0) (i64.const 0) (i32.const 16))))
        (if (i32.eq (local.get $kind) (i32.const 2)) (then
            (call $c_library (i32.add (local.get $ap) (i32.const 1)) (i32.const 32) (local.get $mp) (local.get $ml)
                (i32.add (local.get $ap) (i32.const 33)) (i32.sub (local.get $al) (i32.const 33)) (i32.const 0) (i64.const 0) (i32.const 16))))
        (call $set (i32.const 232) (i32.const 1) (i32.const 16) (i32.const 1))
        (call $ok (i32.load (i32.const 20)) (i32.load (i32.const 24)))"#,
        OK_EMPTY,
        "",
    )
}

fn runtime() -> ContractRuntime {
    ContractRuntime::new(RuntimeConfig::default()).unwrap()
}

fn addr(n: u8) -> Hash32 {
    Hash32([n; 32])
}

fn invocation(host: &MemoryHost, contract: Hash32, method: &str, args: &[u8], gas_limit: u64) -> Invocation {
    let code_hash = host.code_hash_of(&contract).unwrap_or(Hash32::ZERO);
    Invocation {
        entry: Entry::Call,
        contract,
        code_hash,
        method: method.into(),
        args: args.to_vec(),
        sender: addr(0xee),
        channel: "test".into(),
        height: 7,
        timestamp_ms: 1_700_000_000_000,
        gas_limit,
    }
}

/// Run `call` on `host`; the host comes back with the call's effects.
fn run(rt: &ContractRuntime, host: MemoryHost, call: &Invocation) -> (MemoryHost, Result<Outcome, VmFault>) {
    let (host, result) = rt.run(Box::new(host), call);
    let host = unbox(host).unwrap();
    assert_eq!(host.open_checkpoints(), 0, "every checkpoint is closed");
    (host, result)
}

fn deployed(code: &[u8]) -> (MemoryHost, Hash32) {
    let mut host = MemoryHost::new();
    host.deploy(addr(1), code);
    (host, addr(1))
}

fn reverted(o: &Outcome) -> &str {
    match &o.result {
        Err(Failure::Reverted(m)) => m,
        other => panic!("expected a revert, got {other:?}"),
    }
}

#[test]
fn allowed_imports_are_the_worlds_functions_as_wit_bindgen_names_them() {
    let imports = crate::policy::allowed_imports();
    let has = |m: &str, n: &str| imports.contains_key(&(m.to_string(), n.to_string()));
    assert!(has("joule:contract/storage@0.2.0", "get"));
    assert!(has("joule:contract/storage@0.2.0", "scan"));
    assert!(has("joule:contract/context@0.2.0", "gas-left"));
    assert!(has("joule:contract/calls@0.2.0", "library"));
    assert!(has("joule:contract/control@0.2.0", "revert"));
    assert!(has("joule:contract/chain@0.2.0", "account-id"));
    assert_eq!(imports.len(), 2 + 5 + 1 + 3 + 3 + 1, "{imports:?}");
}

#[test]
fn check_accepts_a_contract_and_refuses_a_wasi_import_by_name() {
    let rt = runtime();
    rt.check(&writer()).expect("the writer contract passes");
    let wasi = contract(r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#, OK_EMPTY, OK_EMPTY, "");
    let refusal = rt.check(&wasi).expect_err("WASI is refused").0;
    assert!(refusal.contains("wasi_snapshot_preview1") && refusal.contains("fd_write"), "{refusal}");
}

#[test]
fn a_call_writes_emits_and_returns() {
    let rt = runtime();
    let (host, a) = deployed(&writer());
    let call = invocation(&host, a, "emit", b"xyz", 1_000_000);
    let (host, result) = run(&rt, host, &call);
    let outcome = result.unwrap();
    assert_eq!(outcome.result, Ok(b"xyz".to_vec()));
    assert_eq!(host.value(&a, b"k"), Some(b"xyz".to_vec()));
    let events = host.events();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].contract, events[0].topic.as_str(), &events[0].indexed, &events[0].data), (a, "hello", &vec![b"xyz".to_vec()], &b"xyz".to_vec()));
}

#[test]
fn an_infinite_loop_runs_out_of_gas_with_the_whole_limit_every_time() {
    let rt = runtime();
    let (host, a) = deployed(&contract("", "(loop $l (br $l)) unreachable", OK_EMPTY, ""));
    let mut host = host;
    for _ in 0..3 {
        let call = invocation(&host, a, "spin", b"", 2_000_000);
        let (h, result) = run(&rt, host, &call);
        host = h;
        assert_eq!(result.unwrap(), Outcome { result: Err(Failure::OutOfGas), gas_used: 2_000_000 });
    }
}

#[test]
fn a_limit_below_the_instantiation_charge_is_out_of_gas_without_running() {
    let rt = runtime();
    let (host, a) = deployed(&writer());
    let call = invocation(&host, a, "set", b"v", 4_000);
    let (host, result) = run(&rt, host, &call);
    assert_eq!(result.unwrap(), Outcome { result: Err(Failure::OutOfGas), gas_used: 4_000 });
    assert!(host.storage(&a).is_empty());
}

#[test]
fn a_memory_bomb_reverts_with_the_memory_limit_and_changes_nothing() {
    let rt = runtime();
    let code = contract(
        SET,
        "(call $set (i32.const 208) (i32.const 1) (i32.const 200) (i32.const 2)) (loop $l (drop (memory.grow (i32.const 16))) (br $l)) unreachable",
        OK_EMPTY,
        "",
    );
    let (host, a) = deployed(&code);
    let call = invocation(&host, a, "bomb", b"", 10_000_000);
    let (host, result) = run(&rt, host, &call);
    let outcome = result.unwrap();
    assert_eq!(reverted(&outcome), "memory limit exceeded");
    assert!(outcome.gas_used > 0 && outcome.gas_used < 10_000_000, "{outcome:?}");
    assert!(host.storage(&a).is_empty(), "the write before the bomb is undone");
    assert!(host.events().is_empty());
}

/// Deep recursion: the logical limit fires, at the same depth (same gas) every run, even on
/// a thread with a small native stack (stacker gives wasm a stack of its own).
#[test]
fn deep_recursion_hits_the_logical_stack_limit_never_the_native_one() {
    // With an argument, and without anything (the smallest frame: the most frames the
    // logical limit allows, the closest to the native limit).
    deep_recursion_on_a_small_thread(
        "(drop (call $r (i32.const 0))) unreachable",
        "(func $r (param i32) (result i32) (call $r (i32.add (local.get 0) (i32.const 1))))",
    );
    deep_recursion_on_a_small_thread("(call $r) unreachable", "(func $r (call $r))");
}

fn deep_recursion_on_a_small_thread(call_body: &str, extra: &str) {
    let rt = std::sync::Arc::new(runtime());
    let (host, a) = deployed(&contract("", call_body, OK_EMPTY, extra));
    let call = invocation(&host, a, "deep", b"", 100_000_000);
    let mut gas = Vec::new();
    let mut host = Some(host);
    for _ in 0..3 {
        let (rt, call, h) = (rt.clone(), call.clone(), host.take().unwrap());
        let (h, result) =
            std::thread::Builder::new().stack_size(256 << 10).spawn(move || run(&rt, h, &call)).unwrap().join().expect("no native stack overflow");
        host = Some(h);
        let outcome = result.expect("a receipt, not a node fault");
        assert_eq!(reverted(&outcome), "stack depth exceeded");
        gas.push(outcome.gas_used);
    }
    assert!(gas.windows(2).all(|w| w[0] == w[1]), "same depth every run: {gas:?}");
}

#[test]
fn float_nan_results_have_the_canonical_bits() {
    let rt = runtime();
    // f64 at args[0..8] op args[8..16], the result's bits returned.
    let body = |op: &str| {
        format!("(f64.store (i32.const 100) ({op} (f64.load (local.get $ap)) (f64.load offset=8 (local.get $ap)))) (call $ok (i32.const 100) (i32.const 8))")
    };
    for (op, a, b) in
        [("f64.div", 0f64.to_bits(), 0f64.to_bits()), ("f64.add", 0xfff8_dead_beef_0000, 1f64.to_bits()), ("f64.mul", 0x7ff4_0000_0000_0001, 1f64.to_bits())]
    {
        let (host, c) = deployed(&contract("", &body(op), OK_EMPTY, ""));
        let args = [a.to_le_bytes(), b.to_le_bytes()].concat();
        let call = invocation(&host, c, "nan", &args, 1_000_000);
        let (_, result) = run(&rt, host, &call);
        let bytes = result.unwrap().result.unwrap();
        assert_eq!(u64::from_le_bytes(bytes.try_into().unwrap()), 0x7ff8_0000_0000_0000, "{op}({a:#x}, {b:#x})");
    }
}

#[test]
fn a_revert_undoes_the_calls_writes_and_events() {
    let rt = runtime();
    let (host, a) = deployed(&writer());
    let call = invocation(&host, a, "revert", b"v", 1_000_000);
    let (host, result) = run(&rt, host, &call);
    let outcome = result.unwrap();
    assert_eq!(reverted(&outcome), "nope");
    assert!(outcome.gas_used > 5_000);
    assert!(host.storage(&a).is_empty());
}

#[test]
fn a_query_cannot_write() {
    let rt = runtime();
    let (host, a) = deployed(&writer());
    let mut call = invocation(&host, a, "get", b"v", 1_000_000);
    call.entry = Entry::Query;
    let (host, result) = run(&rt, host, &call);
    assert_eq!(reverted(&result.unwrap()), "storage.set in a query (queries are read-only)");
    assert!(host.storage(&a).is_empty());
}

fn proxy_args(kind: u8, target: Hash32, rest: &[u8]) -> Vec<u8> {
    [&[kind][..], &target.0, rest].concat()
}

#[test]
fn a_failing_nested_call_undoes_only_its_own_writes() {
    let rt = runtime();
    let (mut host, p) = deployed(&proxy());
    let w = addr(2);
    host.deploy(w, &writer());
    let call = invocation(&host, p, "revert", &proxy_args(0, w, b"v"), 5_000_000);
    let (host, result) = run(&rt, host, &call);
    let outcome = result.unwrap();
    assert_eq!(outcome.result, Ok(b"nope".to_vec()), "the callee's failure is returned, not raised");
    assert_eq!(host.value(&p, b"p"), Some(b"1".to_vec()), "the caller's write stays");
    assert_eq!(host.value(&p, b"d"), Some(vec![1]), "err");
    assert!(host.storage(&w).is_empty(), "the callee's write is undone");

    // And a succeeding one keeps both, its gas charged to the caller.
    let call = invocation(&host, p, "set", &proxy_args(0, w, b"v"), 5_000_000);
    let (host, result) = run(&rt, host, &call);
    let nested = result.unwrap();
    assert_eq!(nested.result, Ok(b"v".to_vec()));
    assert_eq!(host.value(&w, b"k"), Some(b"v".to_vec()));
    assert_eq!(host.value(&p, b"d"), Some(vec![0]));
    assert!(nested.gas_used > 5_000 + 5_000 + 10_000 + 5_000, "caller + callee + call costs: {}", nested.gas_used);
}

#[test]
fn reentrancy_is_refused() {
    let rt = runtime();
    let (host, p) = deployed(&proxy());
    let call = invocation(&host, p, "again", &proxy_args(0, p, b""), 5_000_000);
    let (host, result) = run(&rt, host, &call);
    let bytes = result.unwrap().result.unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("reentrancy"), "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(host.value(&p, b"d"), Some(vec![1]));
}

#[test]
fn a_library_cannot_write() {
    let rt = runtime();
    let (mut host, p) = deployed(&proxy());
    let w = addr(2);
    host.deploy(w, &writer());
    let call = invocation(&host, p, "set", &proxy_args(2, w, b"v"), 5_000_000);
    let (host, result) = run(&rt, host, &call);
    let bytes = result.unwrap().result.unwrap();
    assert_eq!(String::from_utf8_lossy(&bytes), "storage.set in a library (libraries have no storage)");
    assert!(host.storage(&w).is_empty());
    assert_eq!(host.value(&p, b"p"), Some(b"1".to_vec()));
}

#[test]
fn calls_nest_at_most_the_limit_deep() {
    let rt = runtime();
    let mut host = MemoryHost::new();
    let code = proxy();
    // Proxies 1..=11, each forwarding to the next: 1 is the top level (depth 0).
    for n in 1..=11 {
        host.deploy(addr(n), &code);
    }
    let mut args = Vec::new();
    for n in (2..=11).rev() {
        args = proxy_args(0, addr(n), &args);
    }
    let call = invocation(&host, addr(1), "chain", &args, 50_000_000);
    let (host, result) = run(&rt, host, &call);
    let bytes = result.unwrap().result.unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("calls nest at most 8 deep"), "{}", String::from_utf8_lossy(&bytes));
    // Depths 0..=8 ran (proxies 1..=9); proxy 10 was refused.
    for n in 1..=9 {
        assert_eq!(host.value(&addr(n), b"p"), Some(b"1".to_vec()), "proxy {n}");
    }
    assert!(host.storage(&addr(10)).is_empty());
}

/// The exact gas of a fixed call. If this changes, gas accounting changed (a wasmtime
/// upgrade, the schedule, the host functions): that is a protocol change.
#[test]
fn golden_gas_of_a_fixed_call() {
    let rt = runtime();
    let (host, a) = deployed(&writer());
    let call = invocation(&host, a, "emit", b"golden", 1_000_000);
    let (_, result) = run(&rt, host, &call);
    let outcome = result.unwrap();
    assert_eq!(outcome.result, Ok(b"golden".to_vec()));
    assert_eq!(outcome.gas_used, GOLDEN_GAS, "gas accounting changed");
}

/// 5 000 instantiation + 10 args in (`emit`, `golden`) + 5 310 `storage.set` (100 + 5 000 +
/// 30 × 7 bytes) + 1 270 `events.emit` (100 + 1 000 + 10 × 17 bytes) + 6 result out, and
/// 130 of wasm operators (the export, `cabi_realloc` twice, the stores), at wasmtime 48.
/// (11 748 while the node ran contracts as components: wit-component's shims added 22.)
const GOLDEN_GAS: u64 = 11_726;

#[test]
fn the_linker_serves_every_import_of_the_world_with_its_core_type() {
    // wit-component's dummy module imports every function of the world with the canonical
    // ABI's core type: linking it proves the host's signatures are the world's.
    let rt = runtime();
    let dummy = wasmtime::Module::new(&rt.inner.engine, crate::policy::dummy_module()).unwrap();
    let imports = dummy.imports().count();
    assert_eq!(imports, crate::policy::allowed_imports().len());
    rt.inner.linker.instantiate_pre(&dummy).expect("every import of the world is linked with its type");
}

#[test]
fn every_call_gets_a_fresh_instance() {
    let rt = runtime();
    let code = contract(
        "",
        "(global.set $g (i32.add (global.get $g) (i32.const 1))) (i32.store (i32.const 100) (global.get $g)) (call $ok (i32.const 100) (i32.const 4))",
        OK_EMPTY,
        "(global $g (mut i32) (i32.const 0))",
    );
    let (mut host, a) = deployed(&code);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let call = invocation(&host, a, "count", b"", 1_000_000);
        let (h, result) = run(&rt, host, &call);
        host = h;
        seen.push(result.unwrap());
    }
    assert_eq!(seen[0].result, Ok(1u32.to_le_bytes().to_vec()));
    assert_eq!(seen[0], seen[1]);
    assert_eq!(rt.compiled(), 1, "compiled once, then instantiated from memory");
}

#[test]
fn a_second_runtime_loads_compiled_code_from_disk_with_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig { cache_dir: Some(dir.path().to_path_buf()), ..RuntimeConfig::default() };
    let mut outcomes = Vec::new();
    for expect_disk in [false, true] {
        let rt = ContractRuntime::new(config.clone()).unwrap();
        let (mut host, p) = deployed(&proxy());
        host.deploy(addr(2), &writer());
        let call = invocation(&host, p, "set", &proxy_args(0, addr(2), b"v"), 5_000_000);
        let (_, r1) = run(&rt, host, &call);
        assert_eq!((rt.compiled(), rt.loaded_from_disk()), if expect_disk { (0, 2) } else { (2, 0) });
        outcomes.push(r1.unwrap());
    }
    assert_eq!(outcomes[0], outcomes[1]);
}

#[test]
fn the_wall_clock_safety_net_is_a_node_fault_not_a_receipt() {
    let rt = ContractRuntime::new(RuntimeConfig { call_timeout: Duration::from_millis(50), ..RuntimeConfig::default() }).unwrap();
    let (host, a) = deployed(&contract("", "(loop $l (br $l)) unreachable", OK_EMPTY, ""));
    let call = invocation(&host, a, "spin", b"", u64::MAX >> 2);
    let (host, result) = run(&rt, host, &call);
    assert_eq!(result, Err(VmFault::Timeout(50)));
    assert!(host.storage(&a).is_empty());
}

#[test]
fn missing_code_is_a_host_fault() {
    let rt = runtime();
    let mut host = MemoryHost::new();
    host.add_contract(addr(1), Hash32([9; 32]));
    let call = invocation(&host, addr(1), "x", b"", 1_000_000);
    let (_, result) = run(&rt, host, &call);
    assert!(matches!(result, Err(VmFault::Host(_))), "{result:?}");
}

#[test]
fn an_err_return_a_trap_and_oversized_return_data_revert() {
    let rt = runtime();
    let cases = [
        ("(call $err (i32.const 216) (i32.const 4))", "nope".to_string()),
        ("unreachable", "trap: wasm `unreachable` instruction executed".to_string()),
        ("(call $ok (i32.const 0) (i32.const 70000))", format!("return data over {} bytes", joule_contract::limits::MAX_RETURN_BYTES)),
    ];
    for (body, want) in cases {
        let (host, a) = deployed(&contract(SET, &format!("(call $set (i32.const 208) (i32.const 1) (i32.const 200) (i32.const 2)) {body}"), OK_EMPTY, ""));
        let call = invocation(&host, a, "fail", b"", 1_000_000);
        let (host, result) = run(&rt, host, &call);
        let outcome = result.unwrap();
        assert_eq!(reverted(&outcome), want);
        assert!(outcome.gas_used > 5_000 && outcome.gas_used < 1_000_000);
        assert!(host.storage(&a).is_empty(), "{want}: the write is undone");
    }
}

/// The canonical ABI is the node's to enforce now that it links the core module itself:
/// every value a contract may hand the host or return wrongly ends its call with a precise
/// revert, undoes its writes, and leaves the node able to run the next call.
#[test]
fn values_the_canonical_abi_forbids_revert_with_what_was_wrong() {
    let rt = runtime();
    let bad_utf8 = r#"(data (i32.const 250) "\ff\fe")"#;
    let imports = format!("{SET} {EMIT} {CALLS}");
    let cases = [
        (
            "(call $set (i32.const 0x7ffffff0) (i32.const 64) (i32.const 200) (i32.const 2)) (call $ok (i32.const 0) (i32.const 0))",
            "trap: list pointer/length out of bounds of memory",
        ),
        (
            "(call $emit (i32.const 250) (i32.const 2) (i32.const 240) (i32.const 0) (i32.const 0) (i32.const 0)) (call $ok (i32.const 0) (i32.const 0))",
            "trap: string is not valid utf-8",
        ),
        (
            "(call $emit (i32.const 224) (i32.const 5) (i32.const 241) (i32.const 1) (i32.const 0) (i32.const 0)) (call $ok (i32.const 0) (i32.const 0))",
            "trap: list pointer is not aligned",
        ),
        (
            "(call $c_call (i32.const 0) (i32.const 32) (i32.const 224) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 7) (i64.const 0) (i32.const 16)) (call $ok (i32.const 0) (i32.const 0))",
            "trap: invalid discriminant for `option`",
        ),
        (
            "(call $c_call (i32.const 0) (i32.const 32) (i32.const 224) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 17)) (call $ok (i32.const 0) (i32.const 0))",
            "trap: return pointer is not aligned",
        ),
        ("(i32.store8 (i32.const 0) (i32.const 9)) (i32.const 0)", "trap: invalid discriminant for `result`"),
        ("(i32.const 2)", "trap: return pointer is not aligned"),
        ("(i32.const 0x7ffffff8)", "trap: return pointer out of bounds of memory"),
        ("(call $err (i32.const 250) (i32.const 2))", "trap: string is not valid utf-8"),
        ("(call $ok (i32.const 0x7ffffff0) (i32.const 64))", "trap: list pointer/length out of bounds of memory"),
    ];
    for (body, want) in cases {
        let code = contract(&imports, &format!("(call $set (i32.const 208) (i32.const 1) (i32.const 200) (i32.const 2)) {body}"), OK_EMPTY, bad_utf8);
        let (host, a) = deployed(&code);
        let call = invocation(&host, a, "abuse", b"", 1_000_000);
        let (host, result) = run(&rt, host, &call);
        let outcome = result.unwrap_or_else(|f| panic!("{body}: a node fault instead of a receipt: {f}"));
        assert_eq!(reverted(&outcome), want, "{body}");
        assert!(host.storage(&a).is_empty(), "{want}: the write is undone");
        assert_eq!(host.open_checkpoints(), 0);
    }
    // The node still runs a well-behaved call afterwards.
    let (host, a) = deployed(&writer());
    let call = invocation(&host, a, "x", b"fine", 1_000_000);
    assert_eq!(run(&rt, host, &call).1.unwrap().result, Ok(b"fine".to_vec()));
}

#[test]
fn a_module_without_memory_or_allocator_exports_reverts_naming_them() {
    let rt = runtime();
    let entry = r#"(func (export "joule:contract/entry@0.2.0#call") (param i32 i32 i32 i32) (result i32) i32.const 0)"#;
    let no_memory =
        wat::parse_str(format!(r#"(module (memory 1) (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 64) {entry})"#)).unwrap();
    let no_realloc = wat::parse_str(format!(r#"(module (memory (export "memory") 1) {entry})"#)).unwrap();
    for (code, want) in [
        (no_memory, "the contract does not export its memory as `memory`"),
        (no_realloc, "the contract does not export `cabi_realloc`, which the host needs to pass the arguments"),
    ] {
        let (host, a) = deployed(&code);
        let call = invocation(&host, a, "m", b"", 1_000_000);
        let outcome = run(&rt, host, &call).1.unwrap();
        assert_eq!(reverted(&outcome), want);
    }
}

#[test]
#[ignore = "timing probe: cargo test -p joule-contract-wasm --release -- --ignored --nocapture timing"]
fn timing_probe_of_a_minimal_call() {
    let rt = runtime();
    let (host, id) = deployed(&writer());
    let call = invocation(&host, id, "emit", b"x", 1_000_000);
    let time = |host: MemoryHost| {
        let mut host = host;
        for _ in 0..50 {
            host = run(&rt, host, &call).0;
        }
        let t = std::time::Instant::now();
        for _ in 0..2000 {
            host = run(&rt, host, &call).0;
        }
        (t.elapsed() / 2000, host)
    };
    let (small, host) = time(host);
    let big = std::thread::scope(|s| std::thread::Builder::new().stack_size(64 << 20).spawn_scoped(s, || time(host).0).unwrap().join().unwrap());
    eprintln!("per call: {small:?} on the test thread, {big:?} on a 64 MiB thread");
}

#[test]
#[ignore = "timing probe: cargo test -p joule-contract-wasm --release -- --ignored --nocapture breakdown"]
fn timing_breakdown_of_a_real_contract_query() {
    let code = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/contracts/energy-token.wasm")).unwrap();
    let rt = runtime();
    let (host, id) = deployed(&code);
    let mut call = invocation(&host, id, "total_supply", b"", 1_000_000);
    call.entry = Entry::Query;
    let out = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(s, || {
                let mut host = host;
                for _ in 0..200 {
                    host = run(&rt, host, &call).0;
                }
                let n = 5000u32;
                let t = std::time::Instant::now();
                for _ in 0..n {
                    host = run(&rt, host, &call).0;
                }
                let full = t.elapsed() / n;
                let mut boxed: Box<dyn joule_contract::ContractHost> = Box::new(host);
                let loaded = crate::exec::load(&rt.inner, &mut *boxed, &call.code_hash).unwrap();
                let data = || crate::exec::StoreData {
                    rt: rt.inner.clone(),
                    tx: None,
                    contract: id,
                    caller: id,
                    mode: crate::exec::Mode::Read,
                    limiter: Default::default(),
                    abort: None,
                    guest: None,
                };
                let t = std::time::Instant::now();
                for _ in 0..n {
                    let mut store = wasmtime::Store::new(&rt.inner.engine, data());
                    store.set_fuel(1 << 30).unwrap();
                    drop(store);
                }
                let store_only = t.elapsed() / n;
                let t = std::time::Instant::now();
                for _ in 0..n {
                    let mut store = wasmtime::Store::new(&rt.inner.engine, data());
                    store.set_fuel(1 << 30).unwrap();
                    store.set_epoch_deadline(1 << 30);
                    let _i = loaded.pre.instantiate(&mut store).unwrap();
                    drop(store);
                }
                let instantiate = t.elapsed() / n;
                (full, store_only, instantiate)
            })
            .unwrap()
            .join()
            .unwrap()
    });
    eprintln!("query total_supply: full call {:?}; Store::new+drop {:?}; + instantiate {:?}", out.0, out.1, out.2);
}

#[test]
#[ignore = "timing probe: cargo test -p joule-contract-wasm --release -- --ignored --nocapture instantiation_floor"]
fn timing_instantiation_floor_of_the_trade_contracts() {
    // What a fresh instance costs before any contract code runs: Store, instantiation from
    // the pre-linked module, and the reset of the pool slot when it is dropped, clean and
    // with `dirty` pages of memory written (as a call's stack and heap write them).
    let rt = runtime();
    let n: u32 = std::env::var("PROBE_N").ok().and_then(|n| n.parse().ok()).unwrap_or(5000);
    for name in ["p2p-market", "energy-units", "energy-token"] {
        let code = std::fs::read(format!("{}/../../target/contracts/{name}.wasm", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let mut memory_host = MemoryHost::new();
        let hash = memory_host.add_code(&code);
        let mut host: Box<dyn joule_contract::ContractHost> = Box::new(memory_host);
        let loaded = crate::exec::load(&rt.inner, &mut *host, &hash).unwrap();
        let memory = loaded.memory.unwrap();
        let mut line = format!("{name}:");
        for dirty in [0usize, 8, 32] {
            let t = std::time::Instant::now();
            for _ in 0..n {
                let data = crate::exec::StoreData {
                    rt: rt.inner.clone(),
                    tx: None,
                    contract: hash,
                    caller: hash,
                    mode: crate::exec::Mode::Read,
                    limiter: Default::default(),
                    abort: None,
                    guest: None,
                };
                let mut store = wasmtime::Store::new(&rt.inner.engine, data);
                store.set_fuel(1 << 30).unwrap();
                store.set_epoch_deadline(1 << 30);
                let instance = loaded.pre.instantiate(&mut store).unwrap();
                let mem = instance.get_module_export(&mut store, &memory).unwrap().into_memory().unwrap();
                let bytes = mem.data_mut(&mut store);
                for page in 0..dirty {
                    bytes[(1 << 20) + page * 4096] = 1;
                }
            }
            line += &format!(" {dirty} pages dirty {:?};", t.elapsed() / n);
        }
        eprintln!("{line}");
    }
}
