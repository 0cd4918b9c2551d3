//! Off-chain unit tests of contracts (native builds only): an in-memory mock chain held in a
//! thread-local, so each test thread has its own.
//!
//! ```ignore
//! use joule_contract_std::testing::{self, account};
//!
//! #[test]
//! fn only_the_owner_mints() {
//!     testing::reset();
//!     testing::set_caller(account(1));
//!     testing::init::<Token, _>(&()).unwrap();
//!     testing::set_caller(account(2));
//!     let err = testing::call::<Token, _, ()>("mint", &(account(2), 5u64)).unwrap_err();
//!     assert_eq!(err, "caller is not the owner");
//! }
//! ```
//!
//! The mock behaves like the host where it matters to a contract: storage per contract
//! address (keys at most 1 KiB, values at most 64 KiB, `scan` at most 256 entries), events
//! checked like the host's, writes and events in a query trap, a failed entry point
//! (an `Err`, a revert, a panic) undoes its writes and events. `chain.hash` and
//! `chain.account-id` are SHA-256; `chain.verify` accepts exactly the signatures of
//! [`mock_sign`]. `calls` go to handlers registered with [`register`] or
//! [`register_contract`]; other addresses fail.
//!
//! A revert unwinds with a [`Revert`] payload that the entry points here turn into
//! `Err(message)`; a panic becomes `Err("panic: MSG")`, as on chain.

pub(crate) mod mock;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::contract::{Contract, Entry};
use crate::sys::CallKind;
use crate::{Address, Event};
use mock::{MockState, Mode, with};

/// The caller (and origin) after [`reset`]: `account(1)`.
pub const DEFAULT_CALLER: Address = Address([1; 32]);
/// The contract's own address after [`reset`].
pub const DEFAULT_CONTRACT: Address = Address([0xcc; 32]);

/// The panic payload of a revert in native builds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revert(pub String);

/// An event as the mock chain recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The emitting contract.
    pub contract: Address,
    /// The event's name.
    pub name: String,
    /// The indexed topics (without the name).
    pub topics: Vec<Vec<u8>>,
    /// The data.
    pub data: Vec<u8>,
}

impl RecordedEvent {
    /// Whether this is an `E` with exactly `event`'s topics and data.
    pub fn is<E: Event>(&self, event: &E) -> bool {
        self.name == E::NAME && self.topics == event.topics() && self.data == event.data()
    }

    /// Topic `i` decoded as a `T`.
    pub fn topic<T: BorshDeserialize>(&self, i: usize) -> Option<T> {
        self.topics.get(i).and_then(|t| T::try_from_slice(t).ok())
    }

    /// The data decoded as a `T` (a tuple of the non-indexed fields).
    pub fn decode_data<T: BorshDeserialize>(&self) -> Option<T> {
        T::try_from_slice(&self.data).ok()
    }
}

/// The test account `[n; 32]`.
pub const fn account(n: u8) -> Address {
    Address([n; 32])
}

/// A fresh mock chain for this thread: default context, empty storage, no events, no
/// registered contracts.
pub fn reset() {
    with(MockState::reset)
}

/// Set the caller and the origin: the sender of the next transactions.
pub fn set_caller(caller: Address) {
    with(|m| {
        m.ctx.caller = caller;
        m.ctx.origin = caller;
    })
}

/// Set the origin alone (after [`set_caller`]), as if a contract called.
pub fn set_origin(origin: Address) {
    with(|m| m.ctx.origin = origin)
}

/// Set the running contract's address (whose storage the calls use).
pub fn set_contract(contract: Address) {
    with(|m| m.ctx.contract = contract)
}

/// Set the channel.
pub fn set_channel(channel: &str) {
    with(|m| m.ctx.channel = channel.to_string())
}

/// Set the block height.
pub fn set_height(height: u64) {
    with(|m| m.ctx.height = height)
}

/// Set the block timestamp (Unix ms).
pub fn set_timestamp_ms(timestamp_ms: u64) {
    with(|m| m.ctx.timestamp_ms = timestamp_ms)
}

/// Set what `env::gas_left()` returns (the mock charges no gas).
pub fn set_gas_left(gas: u64) {
    with(|m| m.gas_left = gas)
}

/// The events recorded so far, oldest first.
pub fn events() -> Vec<RecordedEvent> {
    with(|m| m.events.clone())
}

/// The events recorded so far, clearing them.
pub fn take_events() -> Vec<RecordedEvent> {
    with(|m| std::mem::take(&mut m.events))
}

/// The store of `contract`.
pub fn storage_of(contract: &Address) -> BTreeMap<Vec<u8>, Vec<u8>> {
    with(|m| m.storage.get(contract).cloned().unwrap_or_default())
}

/// A signature that the mock `chain.verify` accepts for `public_key` and `message`.
pub fn mock_sign(public_key: &[u8], message: &[u8]) -> Vec<u8> {
    mock::mock_signature(public_key, message)
}

/// Answer calls to `address` with `handler(kind, method, args)`, `kind` being `"call"`,
/// `"query"` or `"library"`.
pub fn register(address: Address, handler: impl Fn(&str, &str, &[u8]) -> Result<Vec<u8>, String> + 'static) {
    let handler: mock::Handler = Rc::new(move |kind, method, args| {
        let kind = match kind {
            CallKind::Call => "call",
            CallKind::Query => "query",
            CallKind::Library => "library",
        };
        handler(kind, method, args)
    });
    with(|m| m.handlers.insert(address, handler));
}

/// Answer calls to `address` with contract (or library) `C`, its storage being that of
/// `address`: the callee sees the calling contract as its caller, a query is read-only, a
/// library call has no storage and no events (the host's modes), and a failure undoes only
/// the callee's writes.
pub fn register_contract<C: Contract + 'static>(address: Address) {
    let handler: mock::Handler = Rc::new(move |kind, method, args| {
        let entry = if kind == CallKind::Call {
            Entry::Call
        } else {
            Entry::Query
        };
        let saved = with(|m| {
            let saved = (m.ctx.clone(), m.mode);
            m.stack.push(m.ctx.contract);
            m.ctx.caller = m.ctx.contract;
            m.ctx.contract = address;
            m.mode = match kind {
                CallKind::Call => Mode::Write,
                CallKind::Query => Mode::Read,
                CallKind::Library => Mode::Library,
            };
            saved
        });
        let result = transact(|| C::dispatch(entry, method, args));
        with(|m| {
            m.ctx = saved.0;
            m.mode = saved.1;
            m.stack.pop();
        });
        result
    });
    with(|m| m.handlers.insert(address, handler));
}

/// Deploy `C` at `address`: run its init with `args` there, then [`register_contract`].
pub fn deploy<C: Contract + 'static, A: BorshSerialize + ?Sized>(address: Address, args: &A) -> Result<(), String> {
    let bytes = encode(args);
    let previous = with(|m| std::mem::replace(&mut m.ctx.contract, address));
    let result = transact(|| C::dispatch(Entry::Init, "init", &bytes));
    with(|m| m.ctx.contract = previous);
    result?;
    register_contract::<C>(address);
    Ok(())
}

fn quiet_reverts() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Revert>().is_none() {
                previous(info)
            }
        }))
    });
}

/// The message of a panic payload: a revert's message, or "panic: MSG" as on chain.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(Revert(message)) = payload.downcast_ref::<Revert>() {
        message.clone()
    } else if let Some(message) = payload.downcast_ref::<&str>() {
        format!("panic: {message}")
    } else if let Some(message) = payload.downcast_ref::<String>() {
        format!("panic: {message}")
    } else {
        "panic: (no message)".to_string()
    }
}

/// Run `f` as one all-or-nothing unit: a revert or panic becomes `Err(message)`, and an
/// `Err` undoes the storage writes and events made in `f`.
///
/// A checkpoint with an undo journal, as on the node: each write in `f` records the value it
/// replaces, so the unit costs what it writes, not what the chain holds; a unit nested in
/// another commits into it (the outer one may still undo it).
pub fn transact(f: impl FnOnce() -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    quiet_reverts();
    let depth = with(MockState::checkpoint);
    let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(panic_message(payload)));
    with(|m| match result {
        Ok(_) => m.commit(depth),
        Err(_) => m.revert(depth),
    });
    result
}

/// Run the generated dispatch of `C` as the host would run an entry point on the current
/// contract: a query is read-only, a failure undoes its writes and events.
pub fn dispatch<C: Contract>(entry: Entry, method: &str, args: &[u8]) -> Result<Vec<u8>, String> {
    let mode = if entry == Entry::Query { Mode::Read } else { Mode::Write };
    let previous = with(|m| std::mem::replace(&mut m.mode, mode));
    let result = transact(|| C::dispatch(entry, method, args));
    with(|m| m.mode = previous);
    result
}

fn encode<A: BorshSerialize + ?Sized>(args: &A) -> Vec<u8> {
    match borsh::to_vec(args) {
        Ok(bytes) => bytes,
        Err(e) => panic!("cannot encode test arguments: {e}"),
    }
}

fn decode<R: BorshDeserialize>(method: &str, bytes: &[u8]) -> Result<R, String> {
    R::try_from_slice(bytes).map_err(|e| format!("result of {method} does not decode: {e}"))
}

/// Deploy `C` on the current contract: its init with `args` (a tuple of the parameters).
pub fn init<C: Contract, A: BorshSerialize + ?Sized>(args: &A) -> Result<(), String> {
    dispatch::<C>(Entry::Init, "init", &encode(args)).map(drop)
}

/// Send `method` of `C` with `args` (a tuple of the parameters) as a transaction and decode
/// its result.
pub fn call<C: Contract, A: BorshSerialize + ?Sized, R: BorshDeserialize>(method: &str, args: &A) -> Result<R, String> {
    decode(method, &dispatch::<C>(Entry::Call, method, &encode(args))?)
}

/// Run `method` of `C` as a query and decode its result.
pub fn query<C: Contract, A: BorshSerialize + ?Sized, R: BorshDeserialize>(
    method: &str,
    args: &A,
) -> Result<R, String> {
    decode(method, &dispatch::<C>(Entry::Query, method, &encode(args))?)
}

/// The mock chain of this thread as a value, for those who prefer methods to functions.
/// Every `MockChain` of a thread is the same chain.
#[derive(Clone, Copy, Debug, Default)]
pub struct MockChain;

impl MockChain {
    /// [`reset`] the chain and return it.
    pub fn new() -> Self {
        reset();
        MockChain
    }

    /// [`set_caller`].
    pub fn set_caller(&self, caller: Address) -> &Self {
        set_caller(caller);
        self
    }

    /// [`set_contract`].
    pub fn set_contract(&self, contract: Address) -> &Self {
        set_contract(contract);
        self
    }

    /// [`set_height`].
    pub fn set_height(&self, height: u64) -> &Self {
        set_height(height);
        self
    }

    /// [`set_timestamp_ms`].
    pub fn set_timestamp_ms(&self, timestamp_ms: u64) -> &Self {
        set_timestamp_ms(timestamp_ms);
        self
    }

    /// [`events`].
    pub fn events(&self) -> Vec<RecordedEvent> {
        events()
    }

    /// [`storage_of`].
    pub fn storage_of(&self, contract: &Address) -> BTreeMap<Vec<u8>, Vec<u8>> {
        storage_of(contract)
    }

    /// [`reset`].
    pub fn reset(&self) {
        reset()
    }
}
