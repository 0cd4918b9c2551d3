//! The state transition: a block's transactions applied, in order, to the state under the
//! parent's root. Pure given the parent state and the suite: every node computes the same
//! receipts and state root, which the header commits to.
//!
//! Accounts live in the global state tree under `H(sender SPKI)`; each has its own storage
//! tree (§4.3.1). A data record (`Payload::Data`) writes `key → value` into the sender's
//! storage tree and emits the event `data` with the key. Gas: 1 000 per transaction plus
//! 16 per encoded payload byte; a transaction whose gas limit is below that is charged its
//! limit, changes nothing but the nonce, and gets an `out_of_gas` receipt. Contract deploys
//! and calls, and governance, are executed by later releases; until then admission refuses
//! them, and a block that carries one is invalid.

use crate::state::{AccountState, StoredValue};
use crate::store::{EventRef, StoreView, TxLocation};
use joule_primitives::ChainCrypto;
use joule_primitives::merkle::HashError;
use joule_primitives::smt::{Node, NodeKey, NodeStore, Root, Smt, StateError, TreeId, Update};
use joule_primitives::{Encode, Event, Hash32, Payload, Receipt, ReceiptStatus, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub const BASE_GAS: u64 = 1_000;
pub const GAS_PER_PAYLOAD_BYTE: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("transaction {index}: nonce {got}, account expects {want}")]
    Nonce { index: usize, got: u64, want: u64 },
    #[error("transaction {index}: {kind} payloads are not executable by this node version")]
    Unsupported { index: usize, kind: &'static str },
    #[error("the store has used every storage tree number")]
    TreesExhausted,
}

/// What execution needs of a store besides its nodes.
pub trait StateStore: NodeStore {
    /// The next unused storage tree number.
    fn next_tree(&self) -> Result<TreeId, StateError>;
}

impl StateStore for StoreView {
    fn next_tree(&self) -> Result<TreeId, StateError> {
        StoreView::next_tree(self).map_err(|e| StateError::Store(e.to_string()))
    }
}

/// One account's storage writes in a block, by key hash: the value hash and the bytes its
/// leaf keeps, or `None` for a deletion.
type Writes = BTreeMap<Hash32, Option<(Hash32, Vec<u8>)>>;

/// What executing a block produced, ready to commit with it.
pub struct Execution {
    pub receipts: Vec<Receipt>,
    /// The state after the block; its root node is at the block's height.
    pub state_root: Root,
    /// State nodes the block writes.
    pub nodes: BTreeMap<NodeKey, Node>,
    /// Nodes of earlier blocks the new state no longer contains.
    pub stale: BTreeSet<NodeKey>,
    /// The next unused storage tree number after the block.
    pub next_tree: TreeId,
    pub events: Vec<EventRef>,
}

/// Gas a transaction costs before it runs.
pub fn intrinsic_gas(tx: &Transaction) -> u64 {
    let payload_len = borsh::to_vec(&tx.body.payload).map(|v| v.len()).unwrap_or(usize::MAX) as u64;
    BASE_GAS.saturating_add(GAS_PER_PAYLOAD_BYTE.saturating_mul(payload_len))
}

/// Whether this node version can execute the payload.
pub fn supported(p: &Payload) -> Result<(), &'static str> {
    match p {
        Payload::Data { .. } => Ok(()),
        Payload::Deploy { .. } => Err("deploy"),
        Payload::Call { .. } => Err("call"),
        Payload::Governance(_) => Err("governance"),
    }
}

/// Apply `txs` (with their hashes) at `height` to the state `parent` (the previous block's).
///
/// Accounts and storage writes collect in memory while the block runs; the trees are
/// updated once at the end ([`Smt::update_many`]), so each changed node is hashed once per
/// block and only nodes of the resulting trees are written. The roots are those of
/// applying the writes one by one (the tree's root depends only on its contents).
pub fn execute<S: StateStore>(
    store: &S,
    suite: &dyn ChainCrypto,
    parent: Root,
    height: u64,
    txs: &[Transaction],
    tx_hashes: &[Hash32],
) -> Result<Execution, ExecError> {
    let mut smt = Smt::new(store, suite, height);
    let mut ids: HashMap<&[u8], Hash32> = HashMap::new();
    let mut accounts: BTreeMap<Hash32, AccountState> = BTreeMap::new();
    // Per account, its storage writes by key hash (the last write of a key wins).
    let mut storage: BTreeMap<Hash32, Writes> = BTreeMap::new();
    let mut receipts = Vec::with_capacity(txs.len());
    let mut events_index = vec![];
    let data_topic = suite.hash(b"data")?;
    for (index, (tx, tx_hash)) in txs.iter().zip(tx_hashes).enumerate() {
        if let Err(kind) = supported(&tx.body.payload) {
            return Err(ExecError::Unsupported { index, kind });
        }
        let account_id = match ids.get(tx.body.sender.as_slice()) {
            Some(id) => *id,
            None => {
                let id = suite.hash(&tx.body.sender)?;
                ids.insert(&tx.body.sender, id);
                id
            }
        };
        let state = match accounts.entry(account_id) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(match smt.get(&parent, &account_id)? {
                Some(leaf) => AccountState::from_leaf(&leaf)?,
                None => AccountState::default(),
            }),
        };
        if tx.body.nonce != state.account.nonce {
            return Err(ExecError::Nonce { index, got: tx.body.nonce, want: state.account.nonce });
        }
        state.account.nonce += 1;
        let gas = intrinsic_gas(tx);
        let mut events = vec![];
        let status = if gas > tx.body.gas_limit {
            ReceiptStatus::OutOfGas
        } else {
            if let Payload::Data { key, value } = &tx.body.payload {
                let at = TxLocation { height, index: index as u32 };
                let stored = StoredValue::data_record(value, at).encode();
                storage.entry(account_id).or_default().insert(suite.hash(key.as_bytes())?, Some((suite.hash(value)?, stored)));
                events.push(Event { contract: account_id, topic: "data".into(), data: key.as_bytes().to_vec() });
            }
            ReceiptStatus::Success
        };
        for e in &events {
            events_index.push(EventRef { contract: e.contract, topic: data_topic, index: index as u32 });
        }
        let gas_used = if status == ReceiptStatus::OutOfGas { tx.body.gas_limit } else { gas };
        receipts.push(Receipt { tx_hash: *tx_hash, status, gas_used, events });
    }
    let mut next_tree = store.next_tree()?;
    let mut account_updates: Vec<Update> = Vec::with_capacity(accounts.len());
    for (id, mut state) in accounts {
        if let Some(writes) = storage.remove(&id) {
            let root = match state.storage_root() {
                Some(r) => r,
                None => {
                    let tree = next_tree;
                    next_tree = next_tree.checked_add(1).ok_or(ExecError::TreesExhausted)?;
                    Root::empty(tree, height)
                }
            };
            let writes: Vec<Update> = writes.into_iter().collect();
            let new = smt.update_many(&root, &writes)?;
            state.account.storage_root = new.hash;
            state.storage = Some((new.tree, new.version));
        }
        let encoded = state.account.encode();
        let value = suite.hash(&encoded)?;
        account_updates.push((id, Some((value, state.leaf_data(&encoded)))));
    }
    let root = smt.update_many(&parent, &account_updates)?;
    let state_root = smt.relocate(&root)?;
    Ok(Execution { receipts, state_root, nodes: smt.written, stale: smt.stale, next_tree, events: events_index })
}
