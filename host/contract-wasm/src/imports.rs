//! The host side of the `joule:contract` world's imports.
//!
//! Every function charges `host_call` plus its own cost through [`charge`] before doing the
//! work (when the size is known: `storage.get` charges the value's bytes after reading), so
//! running out of gas inside a host call stops the contract before the host did anything
//! unpaid. A refusal of what the contract asked (a key too long, a write in a query) is a
//! revert with a message naming the rule.

use crate::abi::{self, Cx, Guest, TAGGED_LIST_SIZE};
use crate::exec::{self, Frame, Mode, StoreData, Tx, charge, fault, revert};
use joule_contract::{Entry, Failure, GasSchedule, VmFault, limits};
use joule_primitives::{Event, Hash32};
use wasmtime::{AsContextMut, Engine, Linker};

const PKG: &str = "joule:contract";
const VERSION: &str = "0.2.0";

fn interface(name: &str) -> String {
    format!("{PKG}/{name}@{VERSION}")
}

/// The transaction state, which is in the store whenever wasm runs.
fn tx<'a>(cx: &'a mut Cx<'_>) -> wasmtime::Result<&'a mut Tx> {
    tx_in(&mut cx.data_mut().tx)
}

/// The transaction state from its slot in the store data (for callers that hold the data
/// borrowed beside the guest's memory).
fn tx_in(slot: &mut Option<Tx>) -> wasmtime::Result<&mut Tx> {
    slot.as_mut().ok_or_else(not_in_store)
}

fn not_in_store() -> wasmtime::Error {
    wasmtime::format_err!("internal: the host is not in the store")
}

fn gas(cx: &mut Cx<'_>, amount: u64) -> wasmtime::Result<()> {
    charge(&mut cx.as_context_mut(), amount)
}

fn refuse<T>(cx: &mut Cx<'_>, message: String) -> wasmtime::Result<T> {
    revert(&mut cx.as_context_mut(), message)
}

/// Storage of this contract: not at all in a library, reads only in a query.
fn storage_allowed(cx: &mut Cx<'_>, op: &str, write: bool) -> wasmtime::Result<()> {
    match cx.data().mode {
        Mode::Library => refuse(cx, format!("storage.{op} in a library (libraries have no storage)")),
        Mode::Read if write => refuse(cx, format!("storage.{op} in a query (queries are read-only)")),
        _ => Ok(()),
    }
}

fn check_key(cx: &mut Cx<'_>, what: &str, len: usize) -> wasmtime::Result<()> {
    if len > limits::MAX_KEY_BYTES {
        return refuse(cx, format!("storage {what} of {len} bytes is over {}", limits::MAX_KEY_BYTES));
    }
    Ok(())
}

/// A host fault from the ledger's state: the node's problem, never the contract's.
fn host<T>(cx: &mut Cx<'_>, r: Result<T, joule_contract::HostFault>) -> wasmtime::Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(f) => fault(&mut cx.as_context_mut(), VmFault::Host(f)),
    }
}

/// Run `f` on the bytes at `r` of the guest's memory and the transaction's host, without
/// copying the bytes out.
fn with_bytes<R>(cx: &mut Cx<'_>, g: &Guest, r: std::ops::Range<usize>, f: impl FnOnce(&[u8], &mut Tx, Hash32) -> R) -> wasmtime::Result<R> {
    let (mem, data) = g.memory.data_and_store_mut(&mut *cx);
    let contract = data.contract;
    let t = tx_in(&mut data.tx)?;
    Ok(f(mem.get(r).unwrap_or_default(), t, contract))
}

/// The `joule:contract` world's imports, as core functions with the canonical ABI's
/// signatures (the exact set and types `policy::allowed_imports` admits).
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<StoreData>> {
    let mut linker = Linker::new(engine);

    let context = interface("context");
    linker.func_wrap(&context, "get", |mut cx: Cx<'_>, ret: i32| -> wasmtime::Result<()> {
        let g = abi::guest(&mut cx)?;
        let at = abi::ret_area(&mut cx, &g, ret, abi::CALL_CONTEXT_SIZE, 8)?;
        let s = cx.data().schedule();
        let (contract, caller) = (cx.data().contract, cx.data().caller);
        let t = tx(&mut cx)?;
        let (origin, channel, height, timestamp_ms) = (t.origin, t.channel.clone(), t.height, t.timestamp_ms);
        gas(&mut cx, GasSchedule::cost(s.host_call, s.per_io_byte, 96 + channel.len() + 16))?;
        abi::put_list(&mut cx, &g, at, &caller.0)?;
        abi::put_list(&mut cx, &g, at + 8, &origin.0)?;
        abi::put_list(&mut cx, &g, at + 16, &contract.0)?;
        abi::put_list(&mut cx, &g, at + 24, channel.as_bytes())?;
        abi::put(&mut cx, &g, at + 32, &height.to_le_bytes());
        abi::put(&mut cx, &g, at + 40, &timestamp_ms.to_le_bytes());
        Ok(())
    })?;
    linker.func_wrap(&context, "gas-left", |mut cx: Cx<'_>| -> wasmtime::Result<i64> {
        let s = cx.data().schedule();
        gas(&mut cx, s.host_call)?;
        Ok(cx.get_fuel()? as i64)
    })?;

    let storage = interface("storage");
    linker.func_wrap(&storage, "get", |mut cx: Cx<'_>, kp: i32, kl: i32, ret: i32| -> wasmtime::Result<()> {
        let g = abi::guest(&mut cx)?;
        let at = abi::ret_area(&mut cx, &g, ret, TAGGED_LIST_SIZE, 4)?;
        let s = cx.data().schedule();
        storage_allowed(&mut cx, "get", false)?;
        let key = abi::arg(&mut cx, &g, kp, kl)?;
        check_key(&mut cx, "key", key.len())?;
        gas(&mut cx, GasSchedule::cost(s.host_call + s.storage_read, s.storage_read_per_byte, key.len()))?;
        let r = with_bytes(&mut cx, &g, key, |key, t, contract| t.host.storage_get(&contract, key))?;
        let value = host(&mut cx, r)?;
        gas(&mut cx, GasSchedule::cost(0, s.storage_read_per_byte, value.as_ref().map_or(0, Vec::len)))?;
        match value {
            Some(v) => {
                abi::put(&mut cx, &g, at, &[1]);
                abi::put_list(&mut cx, &g, at + 4, &v)
            }
            None => {
                abi::put(&mut cx, &g, at, &[0]);
                Ok(())
            }
        }
    })?;
    linker.func_wrap(&storage, "has", |mut cx: Cx<'_>, kp: i32, kl: i32| -> wasmtime::Result<i32> {
        let g = abi::guest(&mut cx)?;
        let s = cx.data().schedule();
        storage_allowed(&mut cx, "has", false)?;
        let key = abi::arg(&mut cx, &g, kp, kl)?;
        check_key(&mut cx, "key", key.len())?;
        gas(&mut cx, GasSchedule::cost(s.host_call + s.storage_read, s.storage_read_per_byte, key.len()))?;
        let r = with_bytes(&mut cx, &g, key, |key, t, contract| t.host.storage_get(&contract, key))?;
        Ok(i32::from(host(&mut cx, r)?.is_some()))
    })?;
    linker.func_wrap(&storage, "set", |mut cx: Cx<'_>, kp: i32, kl: i32, vp: i32, vl: i32| -> wasmtime::Result<()> {
        let g = abi::guest(&mut cx)?;
        let s = cx.data().schedule();
        storage_allowed(&mut cx, "set", true)?;
        let key = abi::arg(&mut cx, &g, kp, kl)?;
        let value = abi::arg(&mut cx, &g, vp, vl)?;
        check_key(&mut cx, "key", key.len())?;
        if value.len() > limits::MAX_VALUE_BYTES {
            return refuse(&mut cx, format!("storage value of {} bytes is over {}", value.len(), limits::MAX_VALUE_BYTES));
        }
        gas(&mut cx, GasSchedule::cost(s.host_call + s.storage_write, s.storage_write_per_byte, key.len() + value.len()))?;
        let (mem, data) = g.memory.data_and_store_mut(&mut cx);
        let contract = data.contract;
        let t = tx_in(&mut data.tx)?;
        let r = t.host.storage_set(&contract, mem.get(key).unwrap_or_default(), Some(mem.get(value).unwrap_or_default()));
        host(&mut cx, r)
    })?;
    linker.func_wrap(&storage, "remove", |mut cx: Cx<'_>, kp: i32, kl: i32| -> wasmtime::Result<()> {
        let g = abi::guest(&mut cx)?;
        let s = cx.data().schedule();
        storage_allowed(&mut cx, "remove", true)?;
        let key = abi::arg(&mut cx, &g, kp, kl)?;
        check_key(&mut cx, "key", key.len())?;
        gas(&mut cx, GasSchedule::cost(s.host_call + s.storage_write, s.storage_write_per_byte, key.len()))?;
        let r = with_bytes(&mut cx, &g, key, |key, t, contract| t.host.storage_set(&contract, key, None))?;
        host(&mut cx, r)
    })?;
    linker.func_wrap(
        &storage,
        "scan",
        |mut cx: Cx<'_>, pp: i32, pl: i32, after_some: i32, ap: i32, al: i32, limit: i32, ret: i32| -> wasmtime::Result<()> {
            let g = abi::guest(&mut cx)?;
            let at = abi::ret_area(&mut cx, &g, ret, 8, 4)?;
            let s = cx.data().schedule();
            storage_allowed(&mut cx, "scan", false)?;
            let prefix = abi::bytes(&mut cx, &g, pp, pl)?;
            let after = if abi::discriminant(&mut cx, after_some)? { Some(abi::bytes(&mut cx, &g, ap, al)?) } else { None };
            check_key(&mut cx, "prefix", prefix.len())?;
            if let Some(after) = &after {
                check_key(&mut cx, "`after` key", after.len())?;
            }
            let limit = limit as u32;
            if limit > limits::MAX_SCAN_ENTRIES {
                return refuse(&mut cx, format!("scan limit {limit} is over {}", limits::MAX_SCAN_ENTRIES));
            }
            let in_bytes = prefix.len() + after.as_ref().map_or(0, Vec::len);
            gas(&mut cx, GasSchedule::cost(s.host_call + s.storage_scan, s.storage_read_per_byte, in_bytes))?;
            let contract = cx.data().contract;
            let r = tx(&mut cx)?.host.storage_scan(&contract, &prefix, after.as_deref(), limit as usize);
            let entries = host(&mut cx, r)?;
            let out_bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
            let per_entry = s.storage_scan_per_entry.saturating_mul(entries.len() as u64);
            gas(&mut cx, GasSchedule::cost(per_entry, s.storage_read_per_byte, out_bytes))?;
            // The array of (key, value) pairs, 16 bytes each, then each pair's lists.
            let array = abi::alloc(&mut cx, &g, 4, &vec![0; entries.len() * 16])? as usize;
            for (i, (k, v)) in entries.iter().enumerate() {
                abi::put_list(&mut cx, &g, array + 16 * i, k)?;
                abi::put_list(&mut cx, &g, array + 16 * i + 8, v)?;
            }
            let mut pair = [0u8; 8];
            pair[..4].copy_from_slice(&(array as u32).to_le_bytes());
            pair[4..].copy_from_slice(&(entries.len() as u32).to_le_bytes());
            abi::put(&mut cx, &g, at, &pair);
            Ok(())
        },
    )?;

    linker.func_wrap(&interface("events"), "emit", |mut cx: Cx<'_>, np: i32, nl: i32, ip: i32, il: i32, dp: i32, dl: i32| -> wasmtime::Result<()> {
        let g = abi::guest(&mut cx)?;
        let s = cx.data().schedule();
        let name = abi::string(&mut cx, &g, np, nl)?;
        let topics = abi::list_of_lists(&mut cx, &g, ip, il)?;
        let data = abi::arg(&mut cx, &g, dp, dl)?;
        match cx.data().mode {
            Mode::Library => return refuse(&mut cx, "events.emit in a library (libraries cannot emit)".into()),
            Mode::Read => return refuse(&mut cx, "events.emit in a query (queries are read-only)".into()),
            Mode::Write => {}
        }
        let bytes = name.len() + topics.iter().map(|r| r.len()).sum::<usize>() + data.len();
        gas(&mut cx, GasSchedule::cost(s.host_call + s.event, s.event_per_byte, bytes))?;
        if name.is_empty() || name.len() > limits::MAX_EVENT_NAME_BYTES || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
            return refuse(&mut cx, format!("event name {:?} is not 1-{} characters of [A-Za-z0-9_.-]", cut_str(&name, 80), limits::MAX_EVENT_NAME_BYTES));
        }
        if topics.len() > limits::MAX_EVENT_TOPICS {
            return refuse(&mut cx, format!("event has {} indexed topics, over {}", topics.len(), limits::MAX_EVENT_TOPICS));
        }
        if let Some(t) = topics.iter().find(|t| t.len() > limits::MAX_EVENT_TOPIC_BYTES) {
            return refuse(&mut cx, format!("event topic of {} bytes is over {}", t.len(), limits::MAX_EVENT_TOPIC_BYTES));
        }
        if data.len() > limits::MAX_EVENT_DATA_BYTES {
            return refuse(&mut cx, format!("event data of {} bytes is over {}", data.len(), limits::MAX_EVENT_DATA_BYTES));
        }
        if tx(&mut cx)?.events >= limits::MAX_EVENTS_PER_TX {
            return refuse(&mut cx, format!("more than {} events in one transaction", limits::MAX_EVENTS_PER_TX));
        }
        let (mem, store) = g.memory.data_and_store_mut(&mut cx);
        let indexed = topics.into_iter().map(|r| mem.get(r).unwrap_or_default().to_vec()).collect();
        let data = mem.get(data).unwrap_or_default().to_vec();
        let contract = store.contract;
        let t = tx_in(&mut store.tx)?;
        t.events += 1;
        t.host.emit(make_event(contract, name, indexed, data));
        Ok(())
    })?;

    let chain = interface("chain");
    linker.func_wrap(&chain, "hash", |mut cx: Cx<'_>, dp: i32, dl: i32, ret: i32| -> wasmtime::Result<()> {
        let g = abi::guest(&mut cx)?;
        let at = abi::ret_area(&mut cx, &g, ret, 8, 4)?;
        let s = cx.data().schedule();
        let data = abi::arg(&mut cx, &g, dp, dl)?;
        gas(&mut cx, GasSchedule::cost(s.host_call + s.hash, s.hash_per_byte, data.len()))?;
        let r = with_bytes(&mut cx, &g, data, |data, t, _| t.host.hash(data))?;
        let digest = host(&mut cx, r)?;
        abi::put_list(&mut cx, &g, at, &digest.0)
    })?;
    // The schedule has no per-byte verify cost: the message is hashed by the check, so its
    // bytes cost what hashing them does.
    linker.func_wrap(&chain, "verify", |mut cx: Cx<'_>, kp: i32, kl: i32, mp: i32, ml: i32, sp: i32, sl: i32| -> wasmtime::Result<i32> {
        let g = abi::guest(&mut cx)?;
        let s = cx.data().schedule();
        let key = abi::arg(&mut cx, &g, kp, kl)?;
        let message = abi::arg(&mut cx, &g, mp, ml)?;
        let signature = abi::arg(&mut cx, &g, sp, sl)?;
        gas(&mut cx, GasSchedule::cost(s.host_call + s.verify, s.hash_per_byte, message.len()))?;
        let (mem, data) = g.memory.data_and_store_mut(&mut cx);
        let t = tx_in(&mut data.tx)?;
        let part = |r: std::ops::Range<usize>| mem.get(r).unwrap_or_default();
        Ok(i32::from(t.host.verify(part(key), part(message), part(signature))))
    })?;
    linker.func_wrap(&chain, "account-id", |mut cx: Cx<'_>, kp: i32, kl: i32, ret: i32| -> wasmtime::Result<()> {
        let g = abi::guest(&mut cx)?;
        let at = abi::ret_area(&mut cx, &g, ret, 8, 4)?;
        let s = cx.data().schedule();
        let key = abi::arg(&mut cx, &g, kp, kl)?;
        gas(&mut cx, GasSchedule::cost(s.host_call + s.hash, s.hash_per_byte, key.len()))?;
        let r = with_bytes(&mut cx, &g, key, |key, t, _| t.host.hash(key))?;
        let id = host(&mut cx, r)?;
        abi::put_list(&mut cx, &g, at, &id.0)
    })?;

    let calls = interface("calls");
    for (name, kind) in [("call", Kind::Call), ("query", Kind::Query), ("library", Kind::Library)] {
        linker.func_wrap(
            &calls,
            name,
            move |mut cx: Cx<'_>, cp: i32, cl: i32, mp: i32, ml: i32, ap: i32, al: i32, gas_some: i32, gas: i64, ret: i32| -> wasmtime::Result<()> {
                let g = abi::guest(&mut cx)?;
                let at = abi::ret_area(&mut cx, &g, ret, TAGGED_LIST_SIZE, 4)?;
                let contract = abi::bytes(&mut cx, &g, cp, cl)?;
                let method = abi::string(&mut cx, &g, mp, ml)?;
                let args = abi::bytes(&mut cx, &g, ap, al)?;
                let gas = if abi::discriminant(&mut cx, gas_some)? { Some(gas as u64) } else { None };
                let result = nested(&mut cx, kind, contract, method, args, gas)?;
                let (tag, bytes) = match &result {
                    Ok(b) => (0u8, b.as_slice()),
                    Err(m) => (1u8, m.as_bytes()),
                };
                abi::put(&mut cx, &g, at, &[tag]);
                abi::put_list(&mut cx, &g, at + 4, bytes)
            },
        )?;
    }

    linker.func_wrap(&interface("control"), "revert", |mut cx: Cx<'_>, mp: i32, ml: i32| -> wasmtime::Result<()> {
        let g = abi::guest(&mut cx)?;
        let message = abi::string(&mut cx, &g, mp, ml)?;
        let s = cx.data().schedule();
        gas(&mut cx, s.host_call)?;
        refuse(&mut cx, message)
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
fn nested(cx: &mut Cx<'_>, kind: Kind, contract: Vec<u8>, method: String, args: Vec<u8>, budget: Option<u64>) -> wasmtime::Result<Result<Vec<u8>, String>> {
    let s = cx.data().schedule();
    gas(cx, s.host_call.saturating_add(s.call))?;
    let mode = cx.data().mode;
    if kind == Kind::Call && mode != Mode::Write {
        let what = if mode == Mode::Read { "a query (queries are read-only)" } else { "a library (libraries cannot change state)" };
        return refuse(cx, format!("calls.call in {what}"));
    }
    let failed = |m: String| Ok(Err(m));
    let Some(callee) = Hash32::from_slice(&contract) else {
        return failed(format!("a contract address is 32 bytes, not {}", contract.len()));
    };
    if method.is_empty() || method.len() > limits::MAX_METHOD_BYTES || !method.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')) {
        return failed(format!("method name {:?} is not 1-{} characters of [A-Za-z0-9_-]", cut_str(&method, 80), limits::MAX_METHOD_BYTES));
    }
    let t = tx(cx)?;
    if t.stack.len() > limits::MAX_CALL_DEPTH as usize {
        return failed(format!("calls nest at most {} deep", limits::MAX_CALL_DEPTH));
    }
    if t.stack.contains(&callee) {
        return failed(format!("reentrancy: contract {} is already running in this transaction", callee.to_hex()));
    }
    let r = t.host.contract(&callee);
    let Some(record) = host(cx, r)? else {
        return failed(format!("no contract is deployed at {}", callee.to_hex()));
    };
    let left = cx.get_fuel()?;
    let budget = budget.map_or(left, |g| g.min(left));
    let rt = cx.data().rt.clone();
    let caller = cx.data().contract;
    let Some(mut moved) = cx.data_mut().tx.take() else {
        return Err(not_in_store());
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
        Err(f) => return fault(&mut cx.as_context_mut(), f),
    };
    // The callee's gas is the caller's: `gas_used ≤ budget ≤ left`.
    cx.set_fuel(left.saturating_sub(outcome.gas_used))?;
    Ok(match outcome.result {
        Ok(bytes) => Ok(bytes),
        Err(Failure::OutOfGas) => Err("out of gas".to_string()),
        Err(Failure::Reverted(m)) => Err(m),
    })
}
