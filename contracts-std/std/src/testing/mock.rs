//! The mock chain behind `sys` in native builds: one per thread, so parallel tests do not
//! see each other.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::{RecordedEvent, Revert};
use crate::Address;
use crate::sys::{CallContext, CallKind};

/// A native handler of calls to one address: `(kind, method, args) -> result`.
pub(crate) type Handler = Rc<dyn Fn(CallKind, &str, &[u8]) -> Result<Vec<u8>, String>>;

pub(crate) const MAX_KEY: usize = 1024;
pub(crate) const MAX_VALUE: usize = 64 * 1024;
pub(crate) const MAX_SCAN: u32 = 256;
pub(crate) const MAX_DEPTH: usize = 8;

/// What the running entry point may do (the host's modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A transaction: anything.
    Write,
    /// A query: reads only.
    Read,
    /// A library: no storage, no events, no state-changing calls.
    Library,
}

/// One storage write to undo: the contract, the key, and the value before (`None`: absent).
type Undo = (Address, Vec<u8>, Option<Vec<u8>>);

/// An open checkpoint (a [`super::transact`] running): where its writes start in the undo
/// journal, and how many events there were when it opened.
#[derive(Clone, Copy, Debug)]
struct Checkpoint {
    writes: usize,
    events: usize,
}

pub(crate) struct MockState {
    pub ctx: CallContext,
    pub gas_left: u64,
    pub storage: BTreeMap<Address, BTreeMap<Vec<u8>, Vec<u8>>>,
    pub events: Vec<RecordedEvent>,
    pub mode: Mode,
    pub handlers: BTreeMap<Address, Handler>,
    /// Contracts running below the current one (for depth and reentrancy).
    pub stack: Vec<Address>,
    /// The undo journal of the open checkpoints, oldest write first: each checkpoint's
    /// writes follow those of the checkpoints enclosing it, so committing one merges its
    /// writes into the enclosing one's for free. Empty when no checkpoint is open (writes
    /// outside any checkpoint are not recorded).
    journal: Vec<Undo>,
    /// The open checkpoints, outermost first.
    checkpoints: Vec<Checkpoint>,
}

impl MockState {
    /// Open a checkpoint; returns its depth, for [`Self::commit`] or [`Self::revert`].
    pub fn checkpoint(&mut self) -> usize {
        self.checkpoints.push(Checkpoint {
            writes: self.journal.len(),
            events: self.events.len(),
        });
        self.checkpoints.len() - 1
    }

    /// Close checkpoint `depth` (and any left open inside it), keeping its writes and
    /// events: the enclosing checkpoint may still undo them; at the outermost level they are
    /// final.
    pub fn commit(&mut self, depth: usize) {
        self.checkpoints.truncate(depth);
        if self.checkpoints.is_empty() {
            self.journal.clear();
        }
    }

    /// Close checkpoint `depth` (and any left open inside it), undoing its writes (newest
    /// first) and events.
    pub fn revert(&mut self, depth: usize) {
        let Some(checkpoint) = self.checkpoints.get(depth).copied() else {
            return;
        };
        self.checkpoints.truncate(depth);
        let start = checkpoint.writes.min(self.journal.len());
        for (contract, key, previous) in self.journal.drain(start..).rev() {
            match previous {
                Some(value) => {
                    self.storage.entry(contract).or_default().insert(key, value);
                }
                None => {
                    if let Some(s) = self.storage.get_mut(&contract) {
                        s.remove(&key);
                    }
                }
            }
        }
        self.events.truncate(checkpoint.events);
    }

    /// Record a write to undo, if a checkpoint is open.
    fn record(&mut self, contract: Address, key: &[u8], previous: Option<Vec<u8>>) {
        if !self.checkpoints.is_empty() {
            self.journal.push((contract, key.to_vec(), previous));
        }
    }

    /// Checkpoints open (tests).
    #[cfg(test)]
    pub fn open_checkpoints(&self) -> usize {
        self.checkpoints.len()
    }

    /// Writes in the undo journal (tests).
    #[cfg(test)]
    pub fn journalled(&self) -> usize {
        self.journal.len()
    }

    /// A fresh chain. Inside an open checkpoint (a test resetting the chain within
    /// [`super::transact`]), the checkpoints stay open and the storage dropped is journalled,
    /// so that a revert still restores the storage as it was when they opened.
    pub fn reset(&mut self) {
        let old = std::mem::take(self);
        if !old.checkpoints.is_empty() {
            self.checkpoints = old.checkpoints;
            self.journal = old.journal;
            for (contract, store) in old.storage {
                self.journal
                    .extend(store.into_iter().map(|(key, value)| (contract, key, Some(value))));
            }
        }
    }
}

impl Default for MockState {
    fn default() -> Self {
        MockState {
            ctx: CallContext {
                caller: super::DEFAULT_CALLER,
                origin: super::DEFAULT_CALLER,
                contract: super::DEFAULT_CONTRACT,
                channel: "test".to_string(),
                height: 1,
                timestamp_ms: 1_700_000_000_000,
            },
            gas_left: u64::MAX,
            storage: BTreeMap::new(),
            events: Vec::new(),
            mode: Mode::Write,
            handlers: BTreeMap::new(),
            stack: Vec::new(),
            journal: Vec::new(),
            checkpoints: Vec::new(),
        }
    }
}

thread_local! {
    static MOCK: RefCell<MockState> = RefCell::new(MockState::default());
}

pub(crate) fn with<R>(f: impl FnOnce(&mut MockState) -> R) -> R {
    MOCK.with(|m| f(&mut m.borrow_mut()))
}

/// The host refusing an import: the call reverts with the host's message.
fn trap(message: String) -> ! {
    std::panic::panic_any(Revert(message))
}

/// Storage of this contract: not at all in a library, reads only in a query.
fn storage_allowed(op: &str, write: bool) {
    match with(|m| m.mode) {
        Mode::Library => trap(format!("storage.{op} in a library (libraries have no storage)")),
        Mode::Read if write => trap(format!("storage.{op} in a query (queries are read-only)")),
        _ => {}
    }
}

pub(crate) fn call_context() -> CallContext {
    with(|m| m.ctx.clone())
}

pub(crate) fn gas_left() -> u64 {
    with(|m| m.gas_left)
}

fn check_key(what: &str, key: &[u8]) {
    if key.len() > MAX_KEY {
        trap(format!("storage {what} of {} bytes is over {MAX_KEY}", key.len()));
    }
}

pub(crate) fn storage_get(key: &[u8]) -> Option<Vec<u8>> {
    storage_allowed("get", false);
    check_key("key", key);
    with(|m| m.storage.get(&m.ctx.contract).and_then(|s| s.get(key).cloned()))
}

pub(crate) fn storage_has(key: &[u8]) -> bool {
    storage_allowed("has", false);
    check_key("key", key);
    with(|m| m.storage.get(&m.ctx.contract).is_some_and(|s| s.contains_key(key)))
}

pub(crate) fn storage_set(key: &[u8], value: &[u8]) {
    storage_allowed("set", true);
    check_key("key", key);
    if value.len() > MAX_VALUE {
        trap(format!("storage value of {} bytes is over {MAX_VALUE}", value.len()));
    }
    with(|m| {
        let contract = m.ctx.contract;
        let store = m.storage.entry(contract).or_default();
        let previous = match store.get_mut(key) {
            Some(old) => Some(std::mem::replace(old, value.to_vec())),
            None => {
                store.insert(key.to_vec(), value.to_vec());
                None
            }
        };
        m.record(contract, key, previous);
    })
}

pub(crate) fn storage_remove(key: &[u8]) {
    storage_allowed("remove", true);
    check_key("key", key);
    with(|m| {
        let contract = m.ctx.contract;
        if let Some(previous) = m.storage.get_mut(&contract).and_then(|s| s.remove(key)) {
            m.record(contract, key, Some(previous));
        }
    })
}

pub(crate) fn storage_scan(prefix: &[u8], after: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    storage_allowed("scan", false);
    check_key("prefix", prefix);
    if limit > MAX_SCAN {
        trap(format!("scan limit {limit} is over {MAX_SCAN}"));
    }
    with(|m| {
        let Some(s) = m.storage.get(&m.ctx.contract) else {
            return Vec::new();
        };
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_vec()),
            _ => Bound::Included(prefix.to_vec()),
        };
        s.range((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit as usize)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

fn valid_event_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

pub(crate) fn emit(name: &str, indexed: &[Vec<u8>], data: &[u8]) {
    match with(|m| m.mode) {
        Mode::Library => trap("events.emit in a library (libraries cannot emit)".into()),
        Mode::Read => trap("events.emit in a query (queries are read-only)".into()),
        Mode::Write => {}
    }
    if !valid_event_name(name) {
        trap(format!("event name {name:?} is not 1-64 characters of [A-Za-z0-9_.-]"));
    }
    if indexed.len() > 3 {
        trap(format!("event has {} indexed topics, over 3", indexed.len()));
    }
    if let Some(t) = indexed.iter().find(|t| t.len() > 64) {
        trap(format!("event topic of {} bytes is over 64", t.len()));
    }
    if data.len() > 16 * 1024 {
        trap(format!("event data of {} bytes is over 16384", data.len()));
    }
    with(|m| {
        let contract = m.ctx.contract;
        m.events.push(RecordedEvent {
            contract,
            name: name.to_string(),
            topics: indexed.to_vec(),
            data: data.to_vec(),
        })
    })
}

pub(crate) fn hash(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

pub(crate) fn mock_signature(public_key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"joule-mock-signature");
    h.update((public_key.len() as u64).to_be_bytes());
    h.update(public_key);
    h.update(message);
    h.finalize().to_vec()
}

pub(crate) fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    signature == mock_signature(public_key, message).as_slice()
}

pub(crate) fn account_id(public_key: &[u8]) -> Address {
    Address(Sha256::digest(public_key).into())
}

pub(crate) fn call(
    kind: CallKind,
    target: &Address,
    method: &str,
    args: &[u8],
    _gas: Option<u64>,
) -> Result<Vec<u8>, String> {
    match with(|m| m.mode) {
        Mode::Read if kind == CallKind::Call => trap("calls.call in a query (queries are read-only)".into()),
        Mode::Library if kind == CallKind::Call => {
            trap("calls.call in a library (libraries cannot change state)".into())
        }
        _ => {}
    }
    let valid_method = (1..=64).contains(&method.len())
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid_method {
        return Err(format!(
            "method name {method:?} is not 1-64 characters of [A-Za-z0-9_-]"
        ));
    }
    let (handler, running) = with(|m| (m.handlers.get(target).cloned(), m.stack.len() + 1));
    if running > MAX_DEPTH {
        return Err(format!("calls nest at most {MAX_DEPTH} deep"));
    }
    if with(|m| m.ctx.contract == *target || m.stack.contains(target)) {
        return Err(format!(
            "reentrancy: contract {target} is already running in this transaction"
        ));
    }
    let Some(handler) = handler else {
        return Err(format!("no contract is deployed at {target}"));
    };
    handler(kind, method, args)
}

pub(crate) fn revert(message: &str) -> ! {
    std::panic::panic_any(Revert(message.to_string()))
}
