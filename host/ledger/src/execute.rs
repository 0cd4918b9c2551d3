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

use joule_primitives::ChainCrypto;
use joule_primitives::merkle::HashError;
use joule_primitives::smt::{Node, NodeStore, Smt, StateError};
use joule_primitives::{Account, Encode, Event, Hash32, Payload, Receipt, ReceiptStatus, Transaction};
use std::collections::{BTreeMap, HashMap};

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
    #[error("state value {0} is missing or corrupt")]
    Value(Hash32),
}

/// Values (account encodings, storage values) by hash: the store, then this block's.
pub trait ValueStore {
    fn value(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StateError>;
}

/// What executing a block produced, ready to commit with it.
pub struct Execution {
    pub receipts: Vec<Receipt>,
    pub state_root: Hash32,
    pub nodes: HashMap<Hash32, Node>,
    pub values: HashMap<Hash32, Vec<u8>>,
    /// Event index keys: contract ‖ H(topic) ‖ height (BE) ‖ tx index (BE).
    pub events: Vec<Vec<u8>>,
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

/// Apply `txs` (with their hashes) at `height` to the state under `parent_root`.
///
/// Accounts and storage writes collect in memory while the block runs; the trees are
/// updated once at the end ([`Smt::update_many`]), so each changed node is hashed once per
/// block and only nodes of the resulting trees are written. The roots are those of
/// applying the writes one by one (the tree's root depends only on its contents).
pub fn execute<S: NodeStore + ValueStore>(
    store: &S,
    suite: &dyn ChainCrypto,
    parent_root: Hash32,
    height: u64,
    txs: &[Transaction],
    tx_hashes: &[Hash32],
) -> Result<Execution, ExecError> {
    let mut smt = Smt::new(store, suite);
    let mut ids: HashMap<&[u8], Hash32> = HashMap::new();
    let mut accounts: BTreeMap<Hash32, Account> = BTreeMap::new();
    let mut storage: BTreeMap<Hash32, BTreeMap<Hash32, Option<Hash32>>> = BTreeMap::new();
    let mut values: HashMap<Hash32, Vec<u8>> = HashMap::new();
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
        let account = match accounts.entry(account_id) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(match smt.get(&parent_root, &account_id)? {
                Some(h) => Account::decode(&store.value(&h)?.ok_or(ExecError::Value(h))?).map_err(|_| ExecError::Value(h))?,
                None => Account::default(),
            }),
        };
        if tx.body.nonce != account.nonce {
            return Err(ExecError::Nonce { index, got: tx.body.nonce, want: account.nonce });
        }
        account.nonce += 1;
        let gas = intrinsic_gas(tx);
        let mut events = vec![];
        let status = if gas > tx.body.gas_limit {
            ReceiptStatus::OutOfGas
        } else {
            if let Payload::Data { key, value } = &tx.body.payload {
                let value_hash = suite.hash(value)?;
                values.insert(value_hash, value.clone());
                storage.entry(account_id).or_default().insert(suite.hash(key.as_bytes())?, Some(value_hash));
                events.push(Event { contract: account_id, topic: "data".into(), data: key.as_bytes().to_vec() });
            }
            ReceiptStatus::Success
        };
        for _ in &events {
            let mut k = account_id.0.to_vec();
            k.extend(data_topic.0);
            k.extend(height.to_be_bytes());
            k.extend((index as u32).to_be_bytes());
            events_index.push(k);
        }
        let gas_used = if status == ReceiptStatus::OutOfGas { tx.body.gas_limit } else { gas };
        receipts.push(Receipt { tx_hash: *tx_hash, status, gas_used, events });
    }
    // Only values the new state refers to are kept (a key written twice keeps its last).
    let mut referenced: HashMap<Hash32, Vec<u8>> = HashMap::new();
    let mut account_updates = Vec::with_capacity(accounts.len());
    for (id, mut account) in accounts {
        if let Some(writes) = storage.remove(&id) {
            let writes: Vec<(Hash32, Option<Hash32>)> = writes.into_iter().collect();
            for (_, v) in &writes {
                if let Some(v) = v.and_then(|h| values.remove(&h).map(|bytes| (h, bytes))) {
                    referenced.insert(v.0, v.1);
                }
            }
            account.storage_root = smt.update_many(account.storage_root, &writes)?;
        }
        let encoded = account.encode();
        let account_hash = suite.hash(&encoded)?;
        referenced.insert(account_hash, encoded);
        account_updates.push((id, Some(account_hash)));
    }
    let state_root = smt.update_many(parent_root, &account_updates)?;
    Ok(Execution { receipts, state_root, nodes: smt.written, values: referenced, events: events_index })
}

impl ValueStore for super::store::StoreView {
    fn value(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StateError> {
        super::store::StoreView::value(self, hash).map_err(|e| StateError::Store(e.to_string()))
    }
}
