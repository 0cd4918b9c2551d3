//! The host side of the `joule:contract` world's imports.
//!
//! Every function charges `host_call` plus its own cost through [`charge`] before doing the
//! work (when the size is known: `storage.get` charges the value's bytes after reading), so
//! running out of gas inside a host call stops the contract before the host did anything
//! unpaid. A refusal of what the contract asked (a key too long, a write in a query) is a
//! revert with a message naming the rule.

use crate::exec::{self, Frame, Mode, StoreData, Tx, charge, fault, revert};
use joule_contract::{Entry, Failure, GasSchedule, VmFault, limits};
use joule_primitives::{Event, Hash32};
use wasmtime::component::{ComponentType, Linker, Lower};
use wasmtime::{Engine, StoreContextMut};

type Cx<'a> = StoreContextMut<'a, StoreData>;
type CallResult = (Result<Vec<u8>, String>,);

/// `context.call-context`.
#[derive(ComponentType, Lower)]
#[component(record)]
struct CallContext {
    caller: Vec<u8>,
    origin: Vec<u8>,
    contract: Vec<u8>,
    channel: String,
    height: u64,
    #[component(name = "timestamp-ms")]
    timestamp_ms: u64,
}

const PKG: &str = "joule:contract";
const VERSION: &str = "0.2.0";

fn interface(name: &str) -> String {
    format!("{PKG}/{name}@{VERSION}")
}

/// The transaction state, which is in the store whenever wasm runs.
fn tx<'a>(cx: &'a mut Cx<'_>) -> wasmtime::Result<&'a mut Tx> {
    cx.data_mut().tx.as_mut().ok_or_else(|| wasmtime::format_err!("internal: the host is not in the store"))
}

/// Storage of this contract: not at all in a library, reads only in a query.
fn storage_allowed(cx: &mut Cx<'_>, op: &str, write: bool) -> wasmtime::Result<()> {
    match cx.data().mode {
        Mode::Library => revert(cx, format!("storage.{op} in a library (libraries have no storage)")),
        Mode::Read if write => revert(cx, format!("storage.{op} in a query (queries are read-only)")),
        _ => Ok(()),
    }
}

fn check_key(cx: &mut Cx<'_>, what: &str, key: &[u8]) -> wasmtime::Result<()> {
    if key.len() > limits::MAX_KEY_BYTES {
        return revert(cx, format!("storage {what} of {} bytes is over {}", key.len(), limits::MAX_KEY_BYTES));
    }
    Ok(())
}

/// A host fault from the ledger's state: the node's problem, never the contract's.
fn host<T>(cx: &mut Cx<'_>, r: Result<T, joule_contract::HostFault>) -> wasmtime::Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(f) => fault(cx, VmFault::Host(f)),
    }
}

pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<StoreData>> {
    let mut linker = Linker::new(engine);
    let mut root = linker.root();

    let mut context = root.instance(&interface("context"))?;
    context.func_wrap("get", |mut cx: Cx<'_>, (): ()| {
        let s = cx.data().schedule();
        let (contract, caller) = (cx.data().contract, cx.data().caller);
        let t = tx(&mut cx)?;
        let ctx = CallContext {
            caller: caller.0.to_vec(),
            origin: t.origin.0.to_vec(),
            contract: contract.0.to_vec(),
            channel: t.channel.clone(),
            height: t.height,
            timestamp_ms: t.timestamp_ms,
        };
        charge(&mut cx, GasSchedule::cost(s.host_call, s.per_io_byte, 96 + ctx.channel.len() + 16))?;
        Ok((ctx,))
    })?;
    context.func_wrap("gas-left", |mut cx: Cx<'_>, (): ()| {
        let s = cx.data().schedule();
        charge(&mut cx, s.host_call)?;
        Ok((cx.get_fuel()?,))
    })?;

    let mut storage = root.instance(&interface("storage"))?;
    storage.func_wrap("get", |mut cx: Cx<'_>, (key,): (Vec<u8>,)| {
        let s = cx.data().schedule();
        storage_allowed(&mut cx, "get", false)?;
        check_key(&mut cx, "key", &key)?;
        charge(&mut cx, GasSchedule::cost(s.host_call + s.storage_read, s.storage_read_per_byte, key.len()))?;
        let contract = cx.data().contract;
        let r = tx(&mut cx)?.host.storage_get(&contract, &key);
        let value = host(&mut cx, r)?;
        charge(&mut cx, GasSchedule::cost(0, s.storage_read_per_byte, value.as_ref().map_or(0, Vec::len)))?;
        Ok((value,))
    })?;
    storage.func_wrap("has", |mut cx: Cx<'_>, (key,): (Vec<u8>,)| {
        let s = cx.data().schedule();
        storage_allowed(&mut cx, "has", false)?;
        check_key(&mut cx, "key", &key)?;
        charge(&mut cx, GasSchedule::cost(s.host_call + s.storage_read, s.storage_read_per_byte, key.len()))?;
        let contract = cx.data().contract;
        let r = tx(&mut cx)?.host.storage_get(&contract, &key);
        Ok((host(&mut cx, r)?.is_some(),))
    })?;
    storage.func_wrap("set", |mut cx: Cx<'_>, (key, value): (Vec<u8>, Vec<u8>)| {
        let s = cx.data().schedule();
        storage_allowed(&mut cx, "set", true)?;
        check_key(&mut cx, "key", &key)?;
        if value.len() > limits::MAX_VALUE_BYTES {
            return revert(&mut cx, format!("storage value of {} bytes is over {}", value.len(), limits::MAX_VALUE_BYTES));
        }
        charge(&mut cx, GasSchedule::cost(s.host_call + s.storage_write, s.storage_write_per_byte, key.len() + value.len()))?;
        let contract = cx.data().contract;
        let r = tx(&mut cx)?.host.storage_set(&contract, &key, Some(&value));
        host(&mut cx, r)
    })?;
    storage.func_wrap("remove", |mut cx: Cx<'_>, (key,): (Vec<u8>,)| {
        let s = cx.data().schedule();
        storage_allowed(&mut cx, "remove", true)?;
        check_key(&mut cx, "key", &key)?;
        charge(&mut cx, GasSchedule::cost(s.host_call + s.storage_write, s.storage_write_per_byte, key.len()))?;
        let contract = cx.data().contract;
        let r = tx(&mut cx)?.host.storage_set(&contract, &key, None);
        host(&mut cx, r)
    })?;
    storage.func_wrap("scan", |mut cx: Cx<'_>, (prefix, after, limit): (Vec<u8>, Option<Vec<u8>>, u32)| {
        let s = cx.data().schedule();
        storage_allowed(&mut cx, "scan", false)?;
        check_key(&mut cx, "prefix", &prefix)?;
        if let Some(after) = &after {
            check_key(&mut cx, "`after` key", after)?;
        }
        if limit > limits::MAX_SCAN_ENTRIES {
            return revert(&mut cx, format!("scan limit {limit} is over {}", limits::MAX_SCAN_ENTRIES));
        }
        let in_bytes = prefix.len() + after.as_ref().map_or(0, Vec::len);
        charge(&mut cx, GasSchedule::cost(s.host_call + s.storage_scan, s.storage_read_per_byte, in_bytes))?;
        let contract = cx.data().contract;
        let r = tx(&mut cx)?.host.storage_scan(&contract, &prefix, after.as_deref(), limit as usize);
        let entries = host(&mut cx, r)?;
        let out_bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        let per_entry = s.storage_scan_per_entry.saturating_mul(entries.len() as u64);
        charge(&mut cx, GasSchedule::cost(per_entry, s.storage_read_per_byte, out_bytes))?;
        Ok((entries,))
    })?;

    let mut events = root.instance(&interface("events"))?;
    events.func_wrap("emit", |mut cx: Cx<'_>, (name, indexed, data): (String, Vec<Vec<u8>>, Vec<u8>)| {
        let s = cx.data().schedule();
        match cx.data().mode {
            Mode::Library => return revert(&mut cx, "events.emit in a library (libraries cannot emit)".into()),
            Mode::Read => return revert(&mut cx, "events.emit in a query (queries are read-only)".into()),
            Mode::Write => {}
        }
        let bytes = name.len() + indexed.iter().map(Vec::len).sum::<usize>() + data.len();
        charge(&mut cx, GasSchedule::cost(s.host_call + s.event, s.event_per_byte, bytes))?;
        if name.is_empty() || name.len() > limits::MAX_EVENT_NAME_BYTES || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
            return revert(&mut cx, format!("event name {:?} is not 1-{} characters of [A-Za-z0-9_.-]", cut_str(&name, 80), limits::MAX_EVENT_NAME_BYTES));
        }
        if indexed.len() > limits::MAX_EVENT_TOPICS {
            return revert(&mut cx, format!("event has {} indexed topics, over {}", indexed.len(), limits::MAX_EVENT_TOPICS));
        }
        if let Some(t) = indexed.iter().find(|t| t.len() > limits::MAX_EVENT_TOPIC_BYTES) {
            return revert(&mut cx, format!("event topic of {} bytes is over {}", t.len(), limits::MAX_EVENT_TOPIC_BYTES));
        }
        if data.len() > limits::MAX_EVENT_DATA_BYTES {
            return revert(&mut cx, format!("event data of {} bytes is over {}", data.len(), limits::MAX_EVENT_DATA_BYTES));
        }
        let contract = cx.data().contract;
        let t = tx(&mut cx)?;
        if t.events >= limits::MAX_EVENTS_PER_TX {
            return revert(&mut cx, format!("more than {} events in one transaction", limits::MAX_EVENTS_PER_TX));
        }
        t.events += 1;
        t.host.emit(make_event(contract, name, indexed, data));
        Ok(())
    })?;

    let mut chain = root.instance(&interface("chain"))?;
    chain.func_wrap("hash", |mut cx: Cx<'_>, (data,): (Vec<u8>,)| {
        let s = cx.data().schedule();
        charge(&mut cx, GasSchedule::cost(s.host_call + s.hash, s.hash_per_byte, data.len()))?;
        let r = tx(&mut cx)?.host.hash(&data);
        Ok((host(&mut cx, r)?.0.to_vec(),))
    })?;
    // The schedule has no per-byte verify cost: the message is hashed by the check, so its
    // bytes cost what hashing them does.
    chain.func_wrap("verify", |mut cx: Cx<'_>, (public_key, message, signature): (Vec<u8>, Vec<u8>, Vec<u8>)| {
        let s = cx.data().schedule();
        charge(&mut cx, GasSchedule::cost(s.host_call + s.verify, s.hash_per_byte, message.len()))?;
        Ok((tx(&mut cx)?.host.verify(&public_key, &message, &signature),))
    })?;
    chain.func_wrap("account-id", |mut cx: Cx<'_>, (public_key,): (Vec<u8>,)| {
        let s = cx.data().schedule();
        charge(&mut cx, GasSchedule::cost(s.host_call + s.hash, s.hash_per_byte, public_key.len()))?;
        let r = tx(&mut cx)?.host.hash(&public_key);
        Ok((host(&mut cx, r)?.0.to_vec(),))
    })?;

    let mut calls = root.instance(&interface("calls"))?;
    calls.func_wrap("call", |cx: Cx<'_>, (contract, method, args, gas): (Vec<u8>, String, Vec<u8>, Option<u64>)| {
        nested(cx, Kind::Call, contract, method, args, gas)
    })?;
    calls.func_wrap("query", |cx: Cx<'_>, (contract, method, args, gas): (Vec<u8>, String, Vec<u8>, Option<u64>)| {
        nested(cx, Kind::Query, contract, method, args, gas)
    })?;
    calls.func_wrap("library", |cx: Cx<'_>, (contract, method, args, gas): (Vec<u8>, String, Vec<u8>, Option<u64>)| {
        nested(cx, Kind::Library, contract, method, args, gas)
    })?;

    let mut control = root.instance(&interface("control"))?;
    control.func_wrap("revert", |mut cx: Cx<'_>, (message,): (String,)| -> wasmtime::Result<()> {
        let s = cx.data().schedule();
        charge(&mut cx, s.host_call)?;
        revert(&mut cx, message)
    })?;
    Ok(linker)
}

/// The event a contract emits: its `contract` is the emitting contract, its topic the name.
fn make_event(contract: Hash32, name: String, indexed: Vec<Vec<u8>>, data: Vec<u8>) -> Event {
    Event { contract, topic: name, indexed, data }
}

fn cut_str(s: &str, max: usize) -> String {
    exec::cut(s.to_string(), max)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Call,
    Query,
    Library,
}

/// `calls.call`, `calls.query`, `calls.library`: run the callee in a store of its own with
/// the host moved in, inside a checkpoint of its own; its failure comes back as `err`.
fn nested(mut cx: Cx<'_>, kind: Kind, contract: Vec<u8>, method: String, args: Vec<u8>, gas: Option<u64>) -> wasmtime::Result<CallResult> {
    let s = cx.data().schedule();
    charge(&mut cx, s.host_call.saturating_add(s.call))?;
    let mode = cx.data().mode;
    if kind == Kind::Call && mode != Mode::Write {
        let what = if mode == Mode::Read { "a query (queries are read-only)" } else { "a library (libraries cannot change state)" };
        return revert(&mut cx, format!("calls.call in {what}"));
    }
    let refuse = |m: String| Ok((Err(m),));
    let Some(callee) = Hash32::from_slice(&contract) else {
        return refuse(format!("a contract address is 32 bytes, not {}", contract.len()));
    };
    if method.is_empty() || method.len() > limits::MAX_METHOD_BYTES || !method.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')) {
        return refuse(format!("method name {:?} is not 1-{} characters of [A-Za-z0-9_-]", cut_str(&method, 80), limits::MAX_METHOD_BYTES));
    }
    let t = tx(&mut cx)?;
    if t.stack.len() > limits::MAX_CALL_DEPTH as usize {
        return refuse(format!("calls nest at most {} deep", limits::MAX_CALL_DEPTH));
    }
    if t.stack.contains(&callee) {
        return refuse(format!("reentrancy: contract {} is already running in this transaction", callee.to_hex()));
    }
    let r = t.host.contract(&callee);
    let Some(record) = host(&mut cx, r)? else {
        return refuse(format!("no contract is deployed at {}", callee.to_hex()));
    };
    let left = cx.get_fuel()?;
    let budget = gas.map_or(left, |g| g.min(left));
    let rt = cx.data().rt.clone();
    let caller = cx.data().contract;
    let Some(mut moved) = cx.data_mut().tx.take() else {
        return Err(wasmtime::format_err!("internal: the host is not in the store"));
    };
    moved.host.checkpoint();
    let frame = Frame {
        contract: callee,
        caller,
        code_hash: record.code_hash,
        entry: if kind == Kind::Query { Entry::Query } else { Entry::Call },
        mode: match kind {
            Kind::Call => Mode::Write,
            Kind::Query => Mode::Read,
            Kind::Library => Mode::Library,
        },
        method: &method,
        args: &args,
        gas_limit: budget,
    };
    let (mut moved, outcome) = exec::run_frame(&rt, moved, frame);
    match &outcome {
        Ok(o) if o.result.is_ok() => moved.host.commit_checkpoint(),
        _ => moved.host.revert_checkpoint(),
    }
    cx.data_mut().tx = Some(moved);
    let outcome = match outcome {
        Ok(o) => o,
        Err(f) => return fault(&mut cx, f),
    };
    // The callee's gas is the caller's: `gas_used ≤ budget ≤ left`.
    cx.set_fuel(left.saturating_sub(outcome.gas_used))?;
    Ok((match outcome.result {
        Ok(bytes) => Ok(bytes),
        Err(Failure::OutOfGas) => Err("out of gas".to_string()),
        Err(Failure::Reverted(m)) => Err(m),
    },))
}
