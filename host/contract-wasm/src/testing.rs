//! An in-memory [`ContractHost`], for tests and for contract authors' test harnesses: the
//! same checkpoint semantics as the ledger (writes and events go to the innermost open
//! checkpoint, committed into the enclosing one or undone), SHA-256 as the channel hash,
//! and a signature check that says `false` unless a closure is given.

use joule_contract::{ContractHost, ContractRecord, HostFault};
use joule_primitives::{Event, Hash32};
use sha2::{Digest, Sha256};
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

type Verify = Box<dyn Fn(&[u8], &[u8], &[u8]) -> bool + Send>;

/// One thing to undo when a checkpoint is reverted.
#[derive(Debug, Clone)]
enum Undo {
    /// The key's previous value (`None`: it was absent).
    Storage {
        contract: Hash32,
        key: Vec<u8>,
        previous: Option<Vec<u8>>,
    },
    Event,
}

/// Contracts, their code and storage, and the events emitted, all in memory.
#[derive(Default)]
pub struct MemoryHost {
    storage: BTreeMap<Hash32, BTreeMap<Vec<u8>, Vec<u8>>>,
    events: Vec<Event>,
    codes: BTreeMap<Hash32, Arc<[u8]>>,
    contracts: BTreeMap<Hash32, ContractRecord>,
    /// One undo journal per open checkpoint, innermost last.
    journals: Vec<Vec<Undo>>,
    verify: Option<Verify>,
}

impl std::fmt::Debug for MemoryHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryHost")
            .field("storage", &self.storage)
            .field("events", &self.events)
            .field("codes", &self.codes.keys().collect::<Vec<_>>())
            .field("contracts", &self.contracts)
            .field("open_checkpoints", &self.journals.len())
            .finish()
    }
}

impl MemoryHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// Signatures are checked by `verify(public_key, message, signature)`.
    pub fn with_verify(mut self, verify: impl Fn(&[u8], &[u8], &[u8]) -> bool + Send + 'static) -> Self {
        self.verify = Some(Box::new(verify));
        self
    }

    /// SHA-256, the hash this host uses for code hashes and `chain.hash`.
    pub fn sha256(data: &[u8]) -> Hash32 {
        Hash32(Sha256::digest(data).into())
    }

    /// Store `code`; returns its hash.
    pub fn add_code(&mut self, code: &[u8]) -> Hash32 {
        let hash = Self::sha256(code);
        self.codes.insert(hash, Arc::from(code));
        hash
    }

    /// A contract at `address` running the code `code_hash`.
    pub fn add_contract(&mut self, address: Hash32, code_hash: Hash32) {
        self.contracts.insert(address, ContractRecord { code_hash });
    }

    /// `add_code` and `add_contract` at once; returns the code hash.
    pub fn deploy(&mut self, address: Hash32, code: &[u8]) -> Hash32 {
        let hash = self.add_code(code);
        self.add_contract(address, hash);
        hash
    }

    /// The code hash of the contract at `address`, if one is deployed.
    pub fn code_hash_of(&self, address: &Hash32) -> Option<Hash32> {
        self.contracts.get(address).map(|r| r.code_hash)
    }

    /// A contract's whole storage.
    pub fn storage(&self, contract: &Hash32) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.storage.get(contract).cloned().unwrap_or_default()
    }

    /// One value of a contract's storage.
    pub fn value(&self, contract: &Hash32, key: &[u8]) -> Option<Vec<u8>> {
        self.storage.get(contract).and_then(|s| s.get(key)).cloned()
    }

    /// Set a value directly (test setup), outside any checkpoint's journal.
    pub fn put(&mut self, contract: Hash32, key: &[u8], value: &[u8]) {
        self.storage.entry(contract).or_default().insert(key.to_vec(), value.to_vec());
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Checkpoints opened and not yet committed or reverted.
    pub fn open_checkpoints(&self) -> usize {
        self.journals.len()
    }

    fn record(&mut self, undo: Undo) {
        if let Some(j) = self.journals.last_mut() {
            j.push(undo);
        }
    }
}

impl ContractHost for MemoryHost {
    fn storage_get(&mut self, contract: &Hash32, key: &[u8]) -> Result<Option<Vec<u8>>, HostFault> {
        Ok(self.value(contract, key))
    }

    fn storage_set(&mut self, contract: &Hash32, key: &[u8], value: Option<&[u8]>) -> Result<(), HostFault> {
        let map = self.storage.entry(*contract).or_default();
        let previous = match value {
            Some(v) => map.insert(key.to_vec(), v.to_vec()),
            None => map.remove(key),
        };
        if map.is_empty() {
            self.storage.remove(contract);
        }
        self.record(Undo::Storage { contract: *contract, key: key.to_vec(), previous });
        Ok(())
    }

    fn storage_scan(&mut self, contract: &Hash32, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<joule_contract::KeyValue>, HostFault> {
        let Some(map) = self.storage.get(contract) else { return Ok(Vec::new()) };
        Ok(map
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| after.is_none_or(|a| k.as_slice() > a))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn emit(&mut self, event: Event) {
        self.events.push(event);
        self.record(Undo::Event);
    }

    fn contract(&mut self, contract: &Hash32) -> Result<Option<ContractRecord>, HostFault> {
        Ok(self.contracts.get(contract).cloned())
    }

    fn code(&mut self, code_hash: &Hash32) -> Result<Option<Arc<[u8]>>, HostFault> {
        Ok(self.codes.get(code_hash).cloned())
    }

    fn hash(&self, data: &[u8]) -> Result<Hash32, HostFault> {
        Ok(Self::sha256(data))
    }

    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        self.verify.as_ref().is_some_and(|v| v(public_key, message, signature))
    }

    fn checkpoint(&mut self) {
        self.journals.push(Vec::new());
    }

    fn commit_checkpoint(&mut self) {
        let Some(journal) = self.journals.pop() else { return };
        // Into the enclosing checkpoint, which may still revert it; at the outermost level
        // the writes are final.
        if let Some(parent) = self.journals.last_mut() {
            parent.extend(journal);
        }
    }

    fn revert_checkpoint(&mut self) {
        let Some(journal) = self.journals.pop() else { return };
        for undo in journal.into_iter().rev() {
            match undo {
                Undo::Storage { contract, key, previous } => {
                    let map = self.storage.entry(contract).or_default();
                    match previous {
                        Some(v) => {
                            map.insert(key, v);
                        }
                        None => {
                            map.remove(&key);
                        }
                    }
                    if map.is_empty() {
                        self.storage.remove(&contract);
                    }
                }
                Undo::Event => {
                    self.events.pop();
                }
            }
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// The `MemoryHost` back from a `Box<dyn ContractHost>` the VM returned.
pub fn unbox(host: Box<dyn ContractHost>) -> Option<MemoryHost> {
    host.into_any().downcast::<MemoryHost>().ok().map(|b| *b)
}
