//! The state transition: a block's transactions applied, in order, to the state under the
//! parent's root. Pure given the parent state, the suite and the contract VM: every node
//! computes the same receipts and state root, which the header commits to.
//!
//! Accounts live in the global state tree under `H(sender SPKI)`; each has its own storage
//! tree (§4.3.1). A data record (`Payload::Data`) writes `key → value` into the sender's
//! storage tree and emits the event `data` with the key. Contract deployments, calls and
//! upgrades run through the [`ContractVm`] (`joule-contract`), which reads and writes
//! contract storage through this module's [`ContractHost`] over the block's pending state.
//!
//! Gas: 1 000 per transaction plus 16 per encoded payload byte (intrinsic), plus for a
//! deployment `deploy_per_code_byte` per byte of code, plus what the contract's code uses.
//! A transaction whose gas limit is below its intrinsic gas is charged its limit, changes
//! nothing but the nonce, and gets an `out_of_gas` receipt. A transaction enters a block
//! only if the gas used by the block before it plus its own limit fits the channel's block
//! gas limit: production stops there, import refuses such a block.

use crate::governance::{self, Checks, EngineActivation, Governed, Members, SuiteActivation};
use crate::state::{AccountState, StoredValue};
use crate::store::{EventRef, StorageKey, StoreView, TxLocation};
use joule_contract::{ContractHost, ContractRecord, ContractVm, Entries, Entry, Failure, HostFault, Invocation, VmFault};
use joule_primitives::merkle::HashError;
use joule_primitives::smt::{Node, NodeKey, NodeStore, Root, Smt, StateError, TreeId, Update};
use joule_primitives::{ChainCrypto, DeployPolicy, Encode, Event, Governance, Hash32, Payload, Receipt, ReceiptStatus, Transaction, proposal_preimage};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

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
    #[error("transaction {index}: gas limit {limit} does not fit the block's remaining gas ({left} of {block})")]
    BlockGas { index: usize, limit: u64, left: u64, block: u64 },
    /// On a chain with certificates, the sender may not send (no current certificate of a
    /// member organisation at the parent's state).
    #[error("transaction {index}: {why}")]
    NotPermitted { index: usize, sender: Vec<u8>, why: String },
    /// The contract VM failed on this node (not the contract): the block is abandoned.
    #[error("transaction {index}: {fault}")]
    Vm { index: usize, fault: VmFault },
}

/// What execution needs of a store besides its nodes. `Send + Sync + 'static`: contract
/// calls keep the block's state (which reads through it) inside the VM while they run.
pub trait StateStore: NodeStore + Send + Sync + 'static {
    /// The next unused storage tree number.
    fn next_tree(&self) -> Result<TreeId, StateError>;
    /// Deployed code by hash.
    fn code(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StateError>;
    /// A contract's storage value in the parent state.
    fn contract_value(&self, contract: &Hash32, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// A contract's entries in the parent state, ascending (see [`StoreView::contract_scan`]).
    fn contract_scan(&self, contract: &Hash32, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Entries, StateError>;
    /// The key of a data record or governance value, by account and key hash.
    fn storage_key(&self, account: &Hash32, key_hash: &Hash32) -> Result<Option<Vec<u8>>, StateError>;
    /// The key and value of the data record of a committed transaction.
    fn data_record(&self, at: TxLocation) -> Result<(String, Vec<u8>), StateError>;
    /// The keys the store knows of an account's data records and governance values: key
    /// hash and key.
    fn storage_keys_of(&self, account: &Hash32) -> Result<Vec<(Hash32, Vec<u8>)>, StateError>;
}

fn store_err(e: impl std::fmt::Display) -> StateError {
    StateError::Store(e.to_string())
}

impl StateStore for StoreView {
    fn storage_keys_of(&self, account: &Hash32) -> Result<Vec<(Hash32, Vec<u8>)>, StateError> {
        StoreView::storage_keys_of(self, account).map_err(store_err)
    }
    fn storage_key(&self, account: &Hash32, key_hash: &Hash32) -> Result<Option<Vec<u8>>, StateError> {
        StoreView::storage_key(self, account, key_hash).map_err(store_err)
    }
    fn data_record(&self, at: TxLocation) -> Result<(String, Vec<u8>), StateError> {
        StoreView::data_record(self, at).map_err(store_err)
    }
    fn next_tree(&self) -> Result<TreeId, StateError> {
        StoreView::next_tree(self).map_err(store_err)
    }
    fn code(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StateError> {
        StoreView::code(self, hash).map_err(store_err)
    }
    fn contract_value(&self, contract: &Hash32, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        StoreView::contract_value(self, contract, key).map_err(store_err)
    }
    fn contract_scan(&self, contract: &Hash32, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Entries, StateError> {
        StoreView::contract_scan(self, contract, prefix, after, limit).map_err(store_err)
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
    /// Code deployed by the block.
    pub codes: Vec<(Hash32, Arc<[u8]>)>,
    /// Contract storage writes of the block.
    pub contract_kv: Vec<crate::store::KvWrite>,
    /// How many of the transactions went in (production stops at the block gas limit).
    pub included: usize,
    /// The channel's members and schedules after the block, when its transactions changed
    /// the governance state.
    pub governance: Option<GovernanceAfter>,
    /// Keys of the data records and governance values the block wrote (for
    /// [`crate::store::BlockCommit::storage_keys`]).
    pub storage_keys: Vec<StorageKey>,
}

/// The governance state a block's transactions left, as the chain follows it.
#[derive(Debug, Clone)]
pub struct GovernanceAfter {
    pub members: Members,
    pub engines: Vec<EngineActivation>,
    pub suites: Vec<SuiteActivation>,
}

/// A block that starts a crypto-suite switch: the parent's suite, and the activation.
#[derive(Clone, Copy)]
pub struct SuiteSwitch<'a> {
    pub from: &'a dyn ChainCrypto,
    pub activation: &'a SuiteActivation,
}

/// The store as a switch's first block reads it: the parent's state rebuilt under the new
/// suite ([`crate::migrate`]) over the store; without a switch, the store itself.
pub struct Overlay<S> {
    base: Arc<S>,
    nodes: BTreeMap<NodeKey, Node>,
    next_tree: Option<TreeId>,
}

impl<S: StateStore> NodeStore for Overlay<S> {
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, StateError> {
        match self.nodes.get(at) {
            Some(n) => Ok(Some(n.clone())),
            None => self.base.node(at),
        }
    }
}

impl<S: StateStore> StateStore for Overlay<S> {
    fn next_tree(&self) -> Result<TreeId, StateError> {
        match self.next_tree {
            Some(t) => Ok(t),
            None => self.base.next_tree(),
        }
    }
    fn code(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StateError> {
        self.base.code(hash)
    }
    fn contract_value(&self, contract: &Hash32, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.base.contract_value(contract, key)
    }
    fn contract_scan(&self, contract: &Hash32, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Entries, StateError> {
        self.base.contract_scan(contract, prefix, after, limit)
    }
    fn storage_key(&self, account: &Hash32, key_hash: &Hash32) -> Result<Option<Vec<u8>>, StateError> {
        self.base.storage_key(account, key_hash)
    }
    fn data_record(&self, at: TxLocation) -> Result<(String, Vec<u8>), StateError> {
        self.base.data_record(at)
    }
    fn storage_keys_of(&self, account: &Hash32) -> Result<Vec<(Hash32, Vec<u8>)>, StateError> {
        self.base.storage_keys_of(account)
    }
}

/// Whether a block is being produced (stop at the first transaction that does not fit) or
/// imported (such a transaction makes the block invalid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Produce,
    Import,
}

/// The channel's contract settings, from its specification, and the VM that runs code.
#[derive(Clone)]
pub struct ContractEnv {
    /// `None`: this node cannot run contracts (contract payloads are unsupported).
    pub vm: Option<Arc<dyn ContractVm>>,
    pub block_gas_limit: u64,
    pub deployers: DeployPolicy,
    /// The channel's members at genesis: the governance state of a chain whose state has
    /// no `members` value yet (see [`crate::governance`]).
    pub genesis_members: Arc<Members>,
    /// The identity rules of a chain with certificates.
    pub identity: Option<Arc<crate::identity::Registry>>,
}

impl ContractEnv {
    /// No contracts, no block gas limit: for ledgers and tests without a VM.
    pub fn none() -> Self {
        ContractEnv {
            vm: None,
            block_gas_limit: u64::MAX,
            deployers: DeployPolicy::Anyone,
            genesis_members: Arc::new(Members { validators: vec![], nodes: vec![] }),
            identity: None,
        }
    }
}

/// The block being executed: who produces it and when.
#[derive(Debug, Clone)]
pub struct BlockInfo {
    pub channel: String,
    pub height: u64,
    pub timestamp_ms: u64,
    pub mode: Mode,
    /// The finality depth of the block's engine with its validators: an engine switch a
    /// vote passes must start at least this far after the block that passes it.
    pub finality_depth: u64,
}

/// Gas a transaction costs before it runs.
pub fn intrinsic_gas(tx: &Transaction) -> u64 {
    let payload_len = borsh::to_vec(&tx.body.payload).map(|v| v.len()).unwrap_or(usize::MAX) as u64;
    BASE_GAS.saturating_add(GAS_PER_PAYLOAD_BYTE.saturating_mul(payload_len))
}

/// Whether a node with (`contracts`) or without a contract VM can execute the payload.
pub fn supported(p: &Payload, contracts: bool) -> Result<(), &'static str> {
    match p {
        Payload::Data { .. } | Payload::Governance(_) | Payload::BindKey { .. } | Payload::Identity(_) => Ok(()),
        Payload::Deploy { .. } if contracts => Ok(()),
        Payload::Call { .. } if contracts => Ok(()),
        Payload::Upgrade { .. } if contracts => Ok(()),
        Payload::Deploy { .. } => Err("deploy"),
        Payload::Call { .. } => Err("call"),
        Payload::Upgrade { .. } => Err("upgrade"),
    }
}

/// The address of the contract `deployer` deploys with its transaction of nonce `nonce`.
pub fn contract_address(suite: &dyn ChainCrypto, deployer: &Hash32, nonce: u64) -> Result<Hash32, HashError> {
    suite.hash(&joule_contract::address_preimage(deployer, nonce))
}

/// The governance rules' view of the chain: keys checked by the suite, components in the
/// code store (or brought by the block).
struct StateChecks<'a, S: StateStore> {
    state: &'a BlockState<S>,
    finality_depth: u64,
    certificates: bool,
    /// The identity rules, and the block's timestamp, for organisation changes.
    identity: Option<&'a crate::identity::Registry>,
    time_ms: u64,
}

impl<S: StateStore> Checks for StateChecks<'_, S> {
    fn usable_key(&self, public_key: &[u8]) -> bool {
        self.state.suite.verify(public_key, b"", b"").is_ok()
    }

    fn has_component(&self, hash: &Hash32) -> bool {
        self.state.new_codes.contains_key(hash) || self.state.store.code(hash).is_ok_and(|c| c.is_some())
    }

    fn finality_depth(&self) -> u64 {
        self.finality_depth
    }

    fn suite(&self) -> &str {
        &self.state.suite.suite().id
    }

    fn suite_available(&self, suite: &str) -> bool {
        self.state.suite.bind_suite(suite).is_some()
    }

    fn bound(&self, public_key: &[u8], suite: &str) -> bool {
        let Ok(account) = self.state.suite.hash(public_key) else { return false };
        self.state.governance_value(&governance::binding_key(suite, &account)).is_ok_and(|v| v.is_some())
    }

    fn movable(&self, account: &Hash32, public_key: &[u8]) -> Result<(), String> {
        self.state.movable(account, public_key).map_err(|e| e.to_string())?.map(|_| ())
    }

    fn certificates(&self) -> bool {
        self.certificates
    }

    fn organisation(&self, change: &joule_primitives::Change) -> Result<(), String> {
        let Some(registry) = self.identity else { return Err("the channel has no certificates, so no organisations".into()) };
        let read = |key: &str| self.state.governance_value(key);
        match registry.apply_organisation(&read, self.state.suite.as_ref(), self.state.height, self.time_ms, change) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(why)) => Err(why),
            Err(e) => Err(lookup_error(e).to_string()),
        }
    }
}

/// Why a key binding did not apply.
enum BindRefusal {
    /// The transaction's fault: its receipt says why.
    Refused(String),
    /// The state could not be read: the block fails.
    State(StateError),
}

impl From<StateError> for BindRefusal {
    fn from(e: StateError) -> Self {
        BindRefusal::State(e)
    }
}

impl From<HashError> for BindRefusal {
    fn from(e: HashError) -> Self {
        BindRefusal::State(e.into())
    }
}

/// One open checkpoint's writes and events.
#[derive(Default)]
struct Layer {
    kv: BTreeMap<(Hash32, Vec<u8>), Option<Vec<u8>>>,
    events: Vec<Event>,
}

/// The block's pending state over the parent's: accounts touched, storage writes, code
/// deployed, and the open checkpoints of the transaction running. Owned (it moves into the
/// contract VM for a call and back), reading the parent state through `Arc`s.
struct BlockState<S: StateStore> {
    store: Arc<S>,
    suite: Arc<dyn ChainCrypto>,
    parent: Root,
    height: u64,
    accounts: BTreeMap<Hash32, AccountState>,
    /// Data records, per account.
    data: BTreeMap<Hash32, Writes>,
    /// Contract storage writes committed by earlier transactions of the block.
    kv: BTreeMap<Hash32, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    /// The running transaction's checkpoints, innermost last.
    layers: Vec<Layer>,
    /// Events of the running transaction, once its outermost checkpoint committed.
    tx_events: Vec<Event>,
    /// Code deployed by the block (or by the running transaction).
    new_codes: BTreeMap<Hash32, Arc<[u8]>>,
    code_cache: HashMap<Hash32, Arc<[u8]>>,
    /// The governance account's id, and its state once the block read it.
    governance_id: Hash32,
    governed: Option<Governed>,
    /// Whether a transaction changed the governance state.
    governed_changed: bool,
    /// Keys of the data records and governance values written.
    storage_keys: Vec<StorageKey>,
    /// Accounts moved away by governance (their leaves are deleted), and where to.
    moved: Vec<(Hash32, Hash32)>,
}

impl<S: StateStore> BlockState<S> {
    /// Nothing pending yet over the state `parent`.
    fn new(store: Arc<S>, suite: Arc<dyn ChainCrypto>, parent: Root, height: u64) -> Result<Box<Self>, HashError> {
        let governance_id = suite.hash(governance::NAMESPACE_PREIMAGE)?;
        Ok(Box::new(BlockState {
            store,
            suite,
            parent,
            height,
            accounts: BTreeMap::new(),
            data: BTreeMap::new(),
            kv: BTreeMap::new(),
            layers: vec![],
            tx_events: vec![],
            new_codes: BTreeMap::new(),
            code_cache: HashMap::new(),
            governance_id,
            governed: None,
            governed_changed: false,
            storage_keys: vec![],
            moved: vec![],
        }))
    }

    /// The governance state of the parent, with this block's changes so far.
    fn governed(&mut self, genesis: &Members) -> Result<&mut Governed, StateError> {
        if self.governed.is_none() {
            let corrupt = |key: &str| StateError::Store(format!("the governance value {key:?} does not decode"));
            let loaded = Governed::load(genesis, |key| self.governance_value(key), corrupt)?;
            self.governed = Some(loaded);
        }
        self.governed.as_mut().ok_or_else(|| StateError::Store("governance state vanished".into()))
    }

    /// Write the governance state back into the governance account's storage.
    fn store_governed(&mut self) -> Result<(), ExecError> {
        let Some(g) = self.governed.as_ref().filter(|_| self.governed_changed) else { return Ok(()) };
        let values = [
            (governance::MEMBERS_KEY, borsh::to_vec(&g.members)),
            (governance::PROPOSALS_KEY, borsh::to_vec(&g.proposals)),
            (governance::ENGINES_KEY, borsh::to_vec(&g.engines)),
            (governance::SUITES_KEY, borsh::to_vec(&g.suites)),
        ];
        for (key, bytes) in values {
            let bytes = bytes.map_err(|e| StateError::Store(format!("encoding the governance value {key:?}: {e}")))?;
            self.set_governance_value(key, bytes)?;
        }
        Ok(())
    }

    /// A value of the governance account's storage, with this block's writes to it.
    fn governance_value(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let key_hash = self.suite.hash(key.as_bytes())?;
        let decode = |stored: &[u8]| match StoredValue::decode(stored) {
            Some(StoredValue::Inline(v)) => Ok(v),
            _ => Err(StateError::Store(format!("the governance value {key:?} is corrupt"))),
        };
        if let Some(write) = self.data.get(&self.governance_id).and_then(|w| w.get(&key_hash)) {
            return write.as_ref().map(|(_, stored)| decode(stored)).transpose();
        }
        let smt = Smt::new(&*self.store, &*self.suite, self.height);
        let storage = match self.accounts.get(&self.governance_id) {
            Some(a) => a.storage_root(),
            None => smt.get(&self.parent, &self.governance_id)?.map(|leaf| AccountState::from_leaf(&leaf)).transpose()?.and_then(|a| a.storage_root()),
        };
        let Some(root) = storage else { return Ok(None) };
        smt.get(&root, &key_hash)?.map(|leaf| decode(&leaf.data)).transpose()
    }

    /// Write a value of the governance account's storage.
    fn set_governance_value(&mut self, key: &str, value: Vec<u8>) -> Result<(), StateError> {
        let id = self.governance_id;
        self.account(&id)?;
        let key_hash = self.suite.hash(key.as_bytes())?;
        let write = Some((self.suite.hash(&value)?, StoredValue::Inline(value).encode()));
        self.data.entry(id).or_default().insert(key_hash, write);
        self.storage_keys.push((id, key_hash, key.as_bytes().to_vec()));
        Ok(())
    }

    /// Bind `account` to `public_key` of `suite` after checking `proof`; `Err`: why not.
    fn bind_key(&mut self, channel: &str, account: &Hash32, suite: &str, public_key: &[u8], proof: &[u8]) -> Result<(), BindRefusal> {
        let refuse = |why: String| Err(BindRefusal::Refused(why));
        let channel = joule_primitives::ChannelId::new(channel).map_err(|e| BindRefusal::Refused(e.to_string()))?;
        let other = match governance::check_binding(self.suite.as_ref(), &channel, account, suite, public_key, proof) {
            Ok(other) => other,
            Err(why) => return refuse(why),
        };
        let bound_id = other.hash(public_key)?;
        let claim = governance::bound_id_key(suite, &bound_id);
        if let Some(holder) = self.governance_value(&claim)?
            && holder.as_slice() != account.0.as_slice()
        {
            return refuse(format!("another account has bound this {suite} key"));
        }
        // A key bound before and now replaced is free again.
        let slot = governance::binding_key(suite, account);
        if let Some(old) = self.governance_value(&slot)? {
            let old: governance::Binding = borsh::from_slice(&old).map_err(|_| StateError::Store(format!("the governance value {slot:?} does not decode")))?;
            if old.public_key != public_key {
                let old_claim = governance::bound_id_key(suite, &other.hash(&old.public_key)?);
                let id = self.governance_id;
                let key_hash = self.suite.hash(old_claim.as_bytes())?;
                self.data.entry(id).or_default().insert(key_hash, None);
            }
        }
        let binding = governance::Binding { public_key: public_key.to_vec(), bound_at: self.height };
        let bytes = borsh::to_vec(&binding).map_err(|e| StateError::Store(e.to_string()))?;
        self.set_governance_value(&slot, bytes)?;
        self.set_governance_value(&claim, account.0.to_vec())?;
        Ok(())
    }

    /// An account as the block sees it now, without keeping it.
    fn peek_account(&self, id: &Hash32) -> Result<AccountState, StateError> {
        if let Some(a) = self.accounts.get(id) {
            return Ok(a.clone());
        }
        let smt = Smt::new(&*self.store, &*self.suite, self.height);
        Ok(smt.get(&self.parent, id)?.map(|leaf| AccountState::from_leaf(&leaf)).transpose()?.unwrap_or_default())
    }

    /// Whether `account` may move to `public_key`: it exists, is neither a contract nor the
    /// governance account, and the key's id is unused. `Ok(Ok(new id))` when it may.
    fn movable(&self, account: &Hash32, public_key: &[u8]) -> Result<Result<Hash32, String>, StateError> {
        if *account == self.governance_id {
            return Ok(Err("it is the governance account".into()));
        }
        let from = self.peek_account(account)?;
        if from == AccountState::default() {
            return Ok(Err("there is no such account".into()));
        }
        if from.account.code_hash.is_some() {
            return Ok(Err("it is a contract".into()));
        }
        let to = self.suite.hash(public_key)?;
        if to == *account || self.peek_account(&to)? != AccountState::default() {
            return Ok(Err(format!("the key's account {to} is in use")));
        }
        Ok(Ok(to))
    }

    /// Move `account` to the id of `public_key` (checked by [`Self::movable`]).
    fn move_account(&mut self, account: &Hash32, public_key: &[u8]) -> Result<Result<Hash32, String>, StateError> {
        let to = match self.movable(account, public_key)? {
            Ok(to) => to,
            Err(why) => return Ok(Err(why)),
        };
        let state = self.peek_account(account)?;
        self.accounts.insert(to, state);
        self.accounts.insert(*account, AccountState::default());
        if let Some(writes) = self.data.remove(account) {
            self.data.insert(to, writes);
        }
        for k in &mut self.storage_keys {
            if k.0 == *account {
                k.0 = to;
            }
        }
        self.moved.push((*account, to));
        Ok(Ok(to))
    }

    fn account(&mut self, id: &Hash32) -> Result<&mut AccountState, StateError> {
        if !self.accounts.contains_key(id) {
            let smt = Smt::new(&*self.store, &*self.suite, self.height);
            let state = match smt.get(&self.parent, id)? {
                Some(leaf) => AccountState::from_leaf(&leaf)?,
                None => AccountState::default(),
            };
            self.accounts.insert(*id, state);
        }
        self.accounts.get_mut(id).ok_or_else(|| StateError::Store("account vanished".into()))
    }

    fn pending_value(&self, contract: &Hash32, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let k = (*contract, key.to_vec());
        for layer in self.layers.iter().rev() {
            if let Some(v) = layer.kv.get(&k) {
                return Some(v.clone());
            }
        }
        self.kv.get(contract).and_then(|m| m.get(key)).cloned()
    }
}

fn fault(e: impl std::fmt::Display) -> HostFault {
    HostFault(e.to_string())
}

impl<S: StateStore> ContractHost for BlockState<S> {
    fn storage_get(&mut self, contract: &Hash32, key: &[u8]) -> Result<Option<Vec<u8>>, HostFault> {
        match self.pending_value(contract, key) {
            Some(v) => Ok(v),
            None => self.store.contract_value(contract, key).map_err(fault),
        }
    }

    fn storage_set(&mut self, contract: &Hash32, key: &[u8], value: Option<&[u8]>) -> Result<(), HostFault> {
        let layer = self.layers.last_mut().ok_or_else(|| HostFault("a storage write outside any checkpoint".into()))?;
        layer.kv.insert((*contract, key.to_vec()), value.map(<[u8]>::to_vec));
        Ok(())
    }

    fn storage_scan(&mut self, contract: &Hash32, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Entries, HostFault> {
        let in_range = |k: &[u8]| k.starts_with(prefix) && after.is_none_or(|a| k > a);
        // Pending entries in range, later writes over earlier ones.
        let mut pending: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        if let Some(m) = self.kv.get(contract) {
            for (k, v) in m.range::<[u8], _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded)) {
                if !k.starts_with(prefix) {
                    break;
                }
                if in_range(k) {
                    pending.insert(k.clone(), v.clone());
                }
            }
        }
        for layer in &self.layers {
            for ((c, k), v) in &layer.kv {
                if c == contract && in_range(k) {
                    pending.insert(k.clone(), v.clone());
                }
            }
        }
        // At most `deleted` stored entries are hidden, so this many cover the first `limit`.
        let deleted = pending.values().filter(|v| v.is_none()).count();
        let stored = self.store.contract_scan(contract, prefix, after, limit.saturating_add(deleted)).map_err(fault)?;
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = stored.into_iter().map(|(k, v)| (k, Some(v))).collect();
        merged.extend(pending);
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).take(limit).collect())
    }

    fn emit(&mut self, event: Event) {
        if let Some(layer) = self.layers.last_mut() {
            layer.events.push(event);
        }
    }

    fn contract(&mut self, contract: &Hash32) -> Result<Option<ContractRecord>, HostFault> {
        Ok(self.account(contract).map_err(fault)?.account.code_hash.map(|code_hash| ContractRecord { code_hash }))
    }

    fn code(&mut self, code_hash: &Hash32) -> Result<Option<Arc<[u8]>>, HostFault> {
        if let Some(c) = self.new_codes.get(code_hash).or_else(|| self.code_cache.get(code_hash)) {
            return Ok(Some(c.clone()));
        }
        let Some(code) = self.store.code(code_hash).map_err(fault)? else { return Ok(None) };
        let code: Arc<[u8]> = code.into();
        self.code_cache.insert(*code_hash, code.clone());
        Ok(Some(code))
    }

    fn hash(&self, data: &[u8]) -> Result<Hash32, HostFault> {
        self.suite.hash(data).map_err(fault)
    }

    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        self.suite.verify(public_key, message, signature).unwrap_or(false)
    }

    fn checkpoint(&mut self) {
        self.layers.push(Layer::default());
    }

    fn commit_checkpoint(&mut self) {
        let Some(top) = self.layers.pop() else { return };
        match self.layers.last_mut() {
            Some(below) => {
                below.kv.extend(top.kv);
                below.events.extend(top.events);
            }
            None => {
                for ((contract, key), value) in top.kv {
                    self.kv.entry(contract).or_default().insert(key, value);
                }
                self.tx_events.extend(top.events);
            }
        }
    }

    fn revert_checkpoint(&mut self) {
        self.layers.pop();
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// What one transaction did.
struct TxOutcome {
    status: ReceiptStatus,
    gas_used: u64,
    output: Vec<u8>,
}

/// Apply `txs` (with their hashes) to the state `parent` (the previous block's).
///
/// Accounts and storage writes collect in memory while the block runs; the trees are
/// updated once at the end ([`Smt::update_many`]), so each changed node is hashed once per
/// block and only nodes of the resulting trees are written. The roots are those of
/// applying the writes one by one (the tree's root depends only on its contents).
///
/// `suite` is the block's suite. With `switch`, the block is the first under it: its
/// transactions run on the parent's state moved to `suite` ([`crate::migrate`]).
#[allow(clippy::too_many_arguments)]
pub fn execute<S: StateStore>(
    store: &Arc<S>,
    suite: &Arc<dyn ChainCrypto>,
    env: &ContractEnv,
    block: &BlockInfo,
    parent: Root,
    txs: &[Transaction],
    tx_hashes: &[Hash32],
    switch: Option<SuiteSwitch<'_>>,
) -> Result<Execution, ExecError> {
    let height = block.height;
    let (store, parent, migrated) = match switch {
        None => (Arc::new(Overlay { base: store.clone(), nodes: BTreeMap::new(), next_tree: None }), parent, None),
        Some(sw) => {
            let started = std::time::Instant::now();
            let m = crate::migrate::migrate(&**store, sw.from, suite.as_ref(), &parent, height, &env.genesis_members, sw.activation)?;
            tracing::info!(
                channel = %block.channel, height, from = %sw.from.suite().id, to = %suite.suite().id, accounts = m.accounts, values = m.values,
                ms = started.elapsed().as_millis() as u64, "state moved to the new crypto suite"
            );
            let overlay = Overlay { base: store.clone(), nodes: m.nodes.clone(), next_tree: Some(m.next_tree) };
            (Arc::new(overlay), m.root, Some(m))
        }
    };
    let store = &store;
    let mut ids: HashMap<&[u8], Hash32> = HashMap::new();
    let mut state = BlockState::new(store.clone(), suite.clone(), parent, height)?;
    if let Some(registry) = env.identity.as_ref().filter(|_| block.mode == Mode::Import) {
        // Every sender holds a current certificate at the parent's state (before any of
        // the block's writes). A producer picked its transactions so already
        // (`Chain::build`).
        let mut seen: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
        let read = |key: &str| state.governance_value(key);
        for (index, tx) in txs.iter().enumerate() {
            if !seen.insert(&tx.body.sender) {
                continue;
            }
            let account = suite.hash(&tx.body.sender)?;
            if let Err(why) = registry.check_sender(&read, &account, block.timestamp_ms).map_err(lookup_error)? {
                return Err(ExecError::NotPermitted { index, sender: tx.body.sender.clone(), why });
            }
        }
    }
    let mut receipts = Vec::with_capacity(txs.len());
    let mut events_index = vec![];
    let mut topic_hashes: HashMap<String, Hash32> = HashMap::new();
    let mut block_gas: u64 = 0;
    let mut included = txs.len();
    for (index, (tx, tx_hash)) in txs.iter().zip(tx_hashes).enumerate() {
        if let Err(kind) = supported(&tx.body.payload, env.vm.is_some()) {
            return Err(ExecError::Unsupported { index, kind });
        }
        let left = env.block_gas_limit.saturating_sub(block_gas);
        if tx.body.gas_limit > left {
            match block.mode {
                Mode::Produce => {
                    included = index;
                    break;
                }
                Mode::Import => return Err(ExecError::BlockGas { index, limit: tx.body.gas_limit, left, block: env.block_gas_limit }),
            }
        }
        let account_id = match ids.get(tx.body.sender.as_slice()) {
            Some(id) => *id,
            None => {
                let id = suite.hash(&tx.body.sender)?;
                ids.insert(&tx.body.sender, id);
                id
            }
        };
        let moved = state.moved.iter().any(|(from, _)| *from == account_id);
        let sender = state.account(&account_id)?;
        if tx.body.nonce != sender.account.nonce {
            // The pool orders by nonce; only an account moved by governance in this block
            // can have changed under it: its transactions wait for the next block.
            if block.mode == Mode::Produce && moved {
                included = index;
                break;
            }
            return Err(ExecError::Nonce { index, got: tx.body.nonce, want: sender.account.nonce });
        }
        sender.account.nonce += 1;
        let intrinsic = intrinsic_gas(tx);
        state.tx_events.clear();
        let outcome = if intrinsic > tx.body.gas_limit {
            TxOutcome { status: ReceiptStatus::OutOfGas, gas_used: tx.body.gas_limit, output: vec![] }
        } else {
            match &tx.body.payload {
                Payload::Data { key, value } => {
                    let at = TxLocation { height, index: index as u32 };
                    let stored = StoredValue::data_record(value, at);
                    let (kh, vh) = (suite.hash(key.as_bytes())?, suite.hash(value)?);
                    // A record kept in its transaction has its key there too.
                    if matches!(stored, StoredValue::Inline(_)) {
                        state.storage_keys.push((account_id, kh, key.as_bytes().to_vec()));
                    }
                    state.data.entry(account_id).or_default().insert(kh, Some((vh, stored.encode())));
                    state.tx_events.push(Event { contract: account_id, topic: "data".into(), indexed: vec![], data: key.as_bytes().to_vec() });
                    TxOutcome { status: ReceiptStatus::Success, gas_used: intrinsic, output: vec![] }
                }
                Payload::Governance(action) => {
                    let id = match action {
                        Governance::Propose { changes, .. } => Some(suite.hash(&proposal_preimage(changes))?),
                        _ => None,
                    };
                    let mut next = state.governed(&env.genesis_members)?.clone();
                    // Components a proposal brings go to the code store whatever its fate:
                    // content-addressed, they cost only their bytes.
                    if let Governance::Propose { components, .. } = action {
                        for c in components {
                            state.new_codes.insert(suite.hash(c)?, c.as_slice().into());
                        }
                    }
                    let checks = StateChecks {
                        state: &state,
                        finality_depth: block.finality_depth,
                        certificates: env.identity.is_some(),
                        identity: env.identity.as_deref(),
                        time_ms: block.timestamp_ms,
                    };
                    match next.apply(&tx.body.sender, height, action, id, &checks) {
                        Ok(out) => {
                            state.governed = Some(next);
                            state.governed_changed = true;
                            let gid = state.governance_id;
                            if let Some(registry) = &env.identity {
                                for change in &out.organisations {
                                    let read = |key: &str| state.governance_value(key);
                                    match registry.apply_organisation(&read, suite.as_ref(), height, block.timestamp_ms, change).map_err(lookup_error)? {
                                        Ok(applied) => {
                                            for (key, value) in applied.writes {
                                                state.set_governance_value(&key, value)?;
                                            }
                                            for (topic, account, data) in applied.events {
                                                let indexed = if account == Hash32::ZERO { vec![] } else { vec![account.0.to_vec()] };
                                                state.tx_events.push(Event { contract: gid, topic: topic.into(), indexed, data });
                                            }
                                        }
                                        // Checked when it passed, on the same state: only an
                                        // earlier change of the same transaction gets here.
                                        Err(why) => state.tx_events.push(Event {
                                            contract: gid,
                                            topic: "organisation_not_changed".into(),
                                            indexed: vec![],
                                            data: why.into_bytes(),
                                        }),
                                    }
                                }
                            }
                            for (account, key) in &out.moves {
                                let (topic, data) = match state.move_account(account, key)? {
                                    Ok(to) => ("account_moved", to.0.to_vec()),
                                    Err(why) => ("account_not_moved", why.into_bytes()),
                                };
                                state.tx_events.push(Event { contract: gid, topic: topic.into(), indexed: vec![account.0.to_vec()], data });
                            }
                            let mut note = |topic: &str, id: &Hash32, data: Vec<u8>| {
                                state.tx_events.push(Event { contract: gid, topic: topic.into(), indexed: vec![id.0.to_vec()], data });
                            };
                            let topic = match action {
                                Governance::Propose { .. } => "proposed",
                                Governance::Vote { .. } => "voted",
                                Governance::Withdraw { .. } => "withdrawn",
                            };
                            note(topic, &out.proposal, tx.body.sender.clone());
                            for p in &out.passed {
                                note("passed", p, vec![]);
                            }
                            for (p, why) in &out.failed {
                                note("failed", p, why.as_bytes().to_vec());
                            }
                            TxOutcome { status: ReceiptStatus::Success, gas_used: intrinsic, output: out.proposal.0.to_vec() }
                        }
                        Err(why) => TxOutcome { status: reverted(why), gas_used: intrinsic, output: vec![] },
                    }
                }
                Payload::BindKey { suite: to, public_key, proof } => match state.bind_key(&block.channel, &account_id, to, public_key, proof) {
                    Ok(()) => {
                        let gid = state.governance_id;
                        state.tx_events.push(Event {
                            contract: gid,
                            topic: "key_bound".into(),
                            indexed: vec![account_id.0.to_vec()],
                            data: to.as_bytes().to_vec(),
                        });
                        TxOutcome { status: ReceiptStatus::Success, gas_used: intrinsic, output: vec![] }
                    }
                    Err(BindRefusal::Refused(why)) => TxOutcome { status: reverted(why), gas_used: intrinsic, output: vec![] },
                    Err(BindRefusal::State(e)) => return Err(e.into()),
                },
                Payload::Identity(action) => match &env.identity {
                    None => TxOutcome {
                        status: reverted("this channel has no certificates: identity transactions need a chain whose genesis sets identity"),
                        gas_used: intrinsic,
                        output: vec![],
                    },
                    Some(registry) => {
                        let read = |key: &str| state.governance_value(key);
                        match registry.apply(&read, suite.as_ref(), &account_id, height, block.timestamp_ms, action).map_err(lookup_error)? {
                            Ok(applied) => {
                                for (key, value) in applied.writes {
                                    state.set_governance_value(&key, value)?;
                                }
                                let gid = state.governance_id;
                                for (topic, account, data) in applied.events {
                                    state.tx_events.push(Event { contract: gid, topic: topic.into(), indexed: vec![account.0.to_vec()], data });
                                }
                                TxOutcome { status: ReceiptStatus::Success, gas_used: intrinsic, output: vec![] }
                            }
                            Err(why) => TxOutcome { status: reverted(why), gas_used: intrinsic, output: vec![] },
                        }
                    }
                },
                payload => {
                    let vm = env.vm.as_ref().ok_or(ExecError::Unsupported { index, kind: "contract" })?;
                    let run = ContractTx { vm: vm.as_ref(), env, block, sender: account_id, nonce: tx.body.nonce, gas_limit: tx.body.gas_limit, intrinsic };
                    let (back, outcome) = run.execute(state, payload).map_err(|fault| ExecError::Vm { index, fault })?;
                    state = back;
                    outcome
                }
            }
        };
        block_gas = block_gas.saturating_add(outcome.gas_used);
        let events = std::mem::take(&mut state.tx_events);
        for e in &events {
            let topic = match topic_hashes.get(&e.topic) {
                Some(h) => *h,
                None => {
                    let h = suite.hash(e.topic.as_bytes())?;
                    topic_hashes.insert(e.topic.clone(), h);
                    h
                }
            };
            events_index.push(EventRef { contract: e.contract, topic, index: index as u32 });
        }
        receipts.push(Receipt { tx_hash: *tx_hash, status: outcome.status, gas_used: outcome.gas_used, output: outcome.output, events });
    }
    state.store_governed()?;
    let governance = state.governed.as_ref().filter(|_| state.governed_changed).map(|g| GovernanceAfter {
        members: g.members.clone(),
        engines: g.engines.clone(),
        suites: g.suites.clone(),
    });
    let mut moved_keys = vec![];
    for (from, to) in &state.moved {
        moved_keys.extend(state.store.storage_keys_of(from)?.into_iter().map(|(h, k)| (*to, h, k)));
    }
    let gone: BTreeSet<Hash32> = state.moved.iter().map(|(from, _)| *from).filter(|from| !state.moved.iter().any(|(_, to)| to == from)).collect();
    let BlockState { accounts, mut data, kv, new_codes, storage_keys: written_keys, .. } = *state;
    // Contract storage: into the storage trees (hashed keys) and the flat copy.
    let mut contract_kv = vec![];
    for (contract, writes) in kv {
        let tree = data.entry(contract).or_default();
        for (key, value) in writes {
            let update = match &value {
                Some(v) => Some((suite.hash(v)?, StoredValue::Inline(v.clone()).encode())),
                None => None,
            };
            tree.insert(suite.hash(&key)?, update);
            contract_kv.push((contract, key, value));
        }
    }
    let mut smt = Smt::new(&**store, &**suite, height);
    let mut storage_keys = vec![];
    if let Some(m) = migrated {
        // The rebuilt trees are this block's nodes; the updates below replace some of them.
        smt.written = m.nodes;
        smt.stale = m.stale;
        storage_keys = m.storage_keys;
    }
    storage_keys.extend(moved_keys);
    storage_keys.extend(written_keys);
    let mut next_tree = store.next_tree()?;
    let mut account_updates: Vec<Update> = Vec::with_capacity(accounts.len());
    for (id, mut state) in accounts {
        if gone.contains(&id) {
            account_updates.push((id, None));
            continue;
        }
        if let Some(writes) = data.remove(&id) {
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
    Ok(Execution {
        receipts,
        state_root,
        nodes: smt.written,
        stale: smt.stale,
        next_tree,
        events: events_index,
        codes: new_codes.into_iter().collect(),
        contract_kv,
        included,
        governance,
        storage_keys,
    })
}

fn lookup_error(e: crate::identity::LookupError<StateError>) -> StateError {
    match e {
        crate::identity::LookupError::State(e) => e,
        crate::identity::LookupError::Corrupt(m) => StateError::Store(m),
    }
}

/// A deployment, call or upgrade, run against the block's state.
struct ContractTx<'a> {
    vm: &'a dyn ContractVm,
    env: &'a ContractEnv,
    block: &'a BlockInfo,
    sender: Hash32,
    nonce: u64,
    gas_limit: u64,
    intrinsic: u64,
}

/// Keep the receipt's reason within bounds whatever the VM says.
fn reverted(msg: impl Into<String>) -> ReceiptStatus {
    let mut m: String = msg.into();
    if m.len() > joule_contract::limits::MAX_REVERT_MESSAGE_BYTES {
        let mut cut = joule_contract::limits::MAX_REVERT_MESSAGE_BYTES;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
    }
    ReceiptStatus::Reverted(m)
}

type Step<S> = Result<(Box<BlockState<S>>, TxOutcome), VmFault>;

fn host_fault(e: impl std::fmt::Display) -> VmFault {
    VmFault::Host(fault(e))
}

impl ContractTx<'_> {
    /// Run the payload with the whole transaction in one checkpoint: on a failure the state
    /// is as before it, but for the sender's nonce, which the caller advanced. A node fault
    /// (`Err`) abandons the block, and the state with it.
    fn execute<S: StateStore>(&self, mut state: Box<BlockState<S>>, payload: &Payload) -> Step<S> {
        state.checkpoint();
        let codes_before: BTreeSet<Hash32> = state.new_codes.keys().copied().collect();
        let accounts_before = state.accounts.clone();
        let (mut state, outcome) = match payload {
            Payload::Deploy { code, init_args, upgradable } => self.deploy(state, code, init_args, *upgradable)?,
            Payload::Call { contract, method, args } => self.call(state, contract, method, args)?,
            Payload::Upgrade { contract, code, migrate_args } => self.upgrade(state, contract, code, migrate_args.as_deref())?,
            _ => (state, TxOutcome { status: reverted("not a contract payload"), gas_used: self.intrinsic, output: vec![] }),
        };
        if outcome.status == ReceiptStatus::Success {
            state.commit_checkpoint();
        } else {
            state.revert_checkpoint();
            state.new_codes.retain(|h, _| codes_before.contains(h));
            // Accounts a failed deployment or upgrade created or changed, but the nonce.
            let nonce = state.accounts.get(&self.sender).map(|a| a.account.nonce);
            state.accounts = accounts_before;
            if let (Some(n), Some(a)) = (nonce, state.accounts.get_mut(&self.sender)) {
                a.account.nonce = n;
            }
        }
        Ok((state, outcome))
    }

    fn invocation(&self, entry: Entry, contract: Hash32, code_hash: Hash32, method: &str, args: &[u8], gas_limit: u64) -> Invocation {
        Invocation {
            entry,
            contract,
            code_hash,
            method: method.to_string(),
            args: args.to_vec(),
            sender: self.sender,
            channel: self.block.channel.clone(),
            height: self.block.height,
            timestamp_ms: self.block.timestamp_ms,
            gas_limit,
        }
    }

    /// Run one invocation: its return bytes or the failed receipt's status, and its gas.
    #[allow(clippy::type_complexity)]
    fn run<S: StateStore>(&self, state: Box<BlockState<S>>, call: &Invocation) -> Result<(Box<BlockState<S>>, Result<Vec<u8>, ReceiptStatus>, u64), VmFault> {
        let (host, result) = self.vm.run(state, call);
        let state = host.into_any().downcast::<BlockState<S>>().map_err(|_| VmFault::Runtime("the contract VM handed back another host".into()))?;
        let o = result?;
        let status = match o.result {
            Ok(out) => Ok(out),
            Err(Failure::OutOfGas) => Err(ReceiptStatus::OutOfGas),
            Err(Failure::Reverted(m)) => Err(reverted(m)),
        };
        Ok((state, status, o.gas_used))
    }

    fn done(&self, status: ReceiptStatus, vm_gas: u64, extra: u64, output: Vec<u8>) -> TxOutcome {
        let gas_used =
            if status == ReceiptStatus::OutOfGas { self.gas_limit } else { self.intrinsic.saturating_add(extra).saturating_add(vm_gas).min(self.gas_limit) };
        TxOutcome { status, gas_used, output }
    }

    fn deploy<S: StateStore>(&self, mut state: Box<BlockState<S>>, code: &[u8], init_args: &[u8], upgradable: bool) -> Step<S> {
        let code_gas = self.vm.schedule().deploy_per_code_byte.saturating_mul(code.len() as u64);
        if self.intrinsic.saturating_add(code_gas) > self.gas_limit {
            return Ok((state, self.done(ReceiptStatus::OutOfGas, 0, 0, vec![])));
        }
        let validator_accounts = match self.env.deployers {
            DeployPolicy::Validators => {
                let members = &state.governed(&self.env.genesis_members).map_err(host_fault)?.members;
                let keys: Vec<Vec<u8>> = members.validators.iter().map(|v| v.public_key.clone()).collect();
                keys.iter().map(|k| state.suite.hash(k)).collect::<Result<Vec<_>, _>>().map_err(host_fault)?
            }
            _ => vec![],
        };
        if !self.env.deployers.allows(&self.sender, &validator_accounts) {
            let status = reverted(format!("account {} may not deploy contracts on this channel", self.sender));
            return Ok((state, self.done(status, 0, code_gas, vec![])));
        }
        if let Err(refusal) = self.vm.check(code) {
            return Ok((state, self.done(reverted(format!("deployment refused: {refusal}")), 0, code_gas, vec![])));
        }
        let address = contract_address(state.suite.as_ref(), &self.sender, self.nonce).map_err(host_fault)?;
        let code_hash = state.suite.hash(code).map_err(host_fault)?;
        if state.account(&address).map_err(host_fault)?.account.code_hash.is_some() {
            return Ok((state, self.done(reverted(format!("a contract exists at {address}")), 0, code_gas, vec![])));
        }
        state.new_codes.insert(code_hash, code.into());
        let call = self.invocation(Entry::Init, address, code_hash, "", init_args, self.gas_limit - self.intrinsic - code_gas);
        let (mut state, status, vm_gas) = self.run(state, &call)?;
        if let Err(status) = status {
            return Ok((state, self.done(status, vm_gas, code_gas, vec![])));
        }
        let account = state.account(&address).map_err(host_fault)?;
        account.account.code_hash = Some(code_hash);
        account.account.upgrade_authority = upgradable.then_some(self.sender);
        state.emit(Event { contract: address, topic: "deployed".into(), indexed: vec![code_hash.0.to_vec()], data: self.sender.0.to_vec() });
        Ok((state, self.done(ReceiptStatus::Success, vm_gas, code_gas, address.0.to_vec())))
    }

    fn call<S: StateStore>(&self, mut state: Box<BlockState<S>>, contract: &Hash32, method: &str, args: &[u8]) -> Step<S> {
        let Some(code_hash) = state.account(contract).map_err(host_fault)?.account.code_hash else {
            return Ok((state, self.done(reverted(format!("no contract at {contract}")), 0, 0, vec![])));
        };
        let call = self.invocation(Entry::Call, *contract, code_hash, method, args, self.gas_limit - self.intrinsic);
        let (state, status, gas) = self.run(state, &call)?;
        Ok(match status {
            Ok(out) => (state, self.done(ReceiptStatus::Success, gas, 0, out)),
            Err(status) => (state, self.done(status, gas, 0, vec![])),
        })
    }

    fn upgrade<S: StateStore>(&self, mut state: Box<BlockState<S>>, contract: &Hash32, code: &[u8], migrate: Option<&[u8]>) -> Step<S> {
        let code_gas = self.vm.schedule().deploy_per_code_byte.saturating_mul(code.len() as u64);
        if self.intrinsic.saturating_add(code_gas) > self.gas_limit {
            return Ok((state, self.done(ReceiptStatus::OutOfGas, 0, 0, vec![])));
        }
        let account = state.account(contract).map_err(host_fault)?;
        let (old, authority) = (account.account.code_hash, account.account.upgrade_authority);
        let refuse = |state, why: String| Ok((state, self.done(reverted(why), 0, code_gas, vec![])));
        let Some(old) = old else { return refuse(state, format!("no contract at {contract}")) };
        match authority {
            Some(a) if a == self.sender => {}
            Some(_) => return refuse(state, format!("account {} is not the upgrade authority of {contract}", self.sender)),
            None => return refuse(state, format!("contract {contract} is not upgradable")),
        }
        if let Err(refusal) = self.vm.check(code) {
            return refuse(state, format!("upgrade refused: {refusal}"));
        }
        let code_hash = state.suite.hash(code).map_err(host_fault)?;
        state.new_codes.insert(code_hash, code.into());
        let account = state.account(contract).map_err(host_fault)?;
        account.account.previous_code_hash = Some(old);
        account.account.code_hash = Some(code_hash);
        let (mut vm_gas, mut output) = (0, vec![]);
        if let Some(args) = migrate {
            let call = self.invocation(Entry::Call, *contract, code_hash, "migrate", args, self.gas_limit - self.intrinsic - code_gas);
            let (back, status, gas) = self.run(state, &call)?;
            state = back;
            match status {
                Ok(out) => (vm_gas, output) = (gas, out),
                Err(status) => return Ok((state, self.done(status, gas, code_gas, vec![]))),
            }
        }
        state.emit(Event { contract: *contract, topic: "upgraded".into(), indexed: vec![old.0.to_vec(), code_hash.0.to_vec()], data: self.sender.0.to_vec() });
        Ok((state, self.done(ReceiptStatus::Success, vm_gas, code_gas, output)))
    }
}

/// A read-only call: who asks, what, with how much gas.
#[derive(Debug, Clone)]
pub struct QueryCall<'a> {
    pub caller: Hash32,
    pub contract: Hash32,
    pub method: &'a str,
    pub args: &'a [u8],
    pub gas_limit: u64,
}

/// Run a read-only method on the state `parent` (no block, nothing kept): what `query`
/// answers over the API. `block` gives the head's height and time.
pub fn query<S: StateStore>(
    store: &Arc<S>,
    suite: &Arc<dyn ChainCrypto>,
    vm: &dyn ContractVm,
    block: &BlockInfo,
    parent: Root,
    q: &QueryCall,
) -> Result<joule_contract::Outcome, QueryError> {
    let mut state = BlockState::new(store.clone(), suite.clone(), parent, block.height)?;
    let code_hash = state.account(&q.contract)?.account.code_hash.ok_or(QueryError::NoContract(q.contract))?;
    let call = Invocation {
        entry: Entry::Query,
        contract: q.contract,
        code_hash,
        method: q.method.to_string(),
        args: q.args.to_vec(),
        sender: q.caller,
        channel: block.channel.clone(),
        height: block.height,
        timestamp_ms: block.timestamp_ms,
        gas_limit: q.gas_limit,
    };
    let (_, result) = vm.run(state, &call);
    Ok(result?)
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no contract at {0}")]
    NoContract(Hash32),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Vm(#[from] VmFault),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCrypto;
    use joule_primitives::smt::GLOBAL_TREE;

    /// A parent state with contract storage only (no tree nodes: reads of accounts find none).
    struct FlatStore(BTreeMap<(Hash32, Vec<u8>), Vec<u8>>);

    impl NodeStore for FlatStore {
        fn node(&self, _: &NodeKey) -> Result<Option<Node>, StateError> {
            Ok(None)
        }
    }

    impl StateStore for FlatStore {
        fn next_tree(&self) -> Result<TreeId, StateError> {
            Ok(1)
        }
        fn code(&self, _: &Hash32) -> Result<Option<Vec<u8>>, StateError> {
            Ok(None)
        }
        fn contract_value(&self, contract: &Hash32, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
            Ok(self.0.get(&(*contract, key.to_vec())).cloned())
        }
        fn contract_scan(&self, contract: &Hash32, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Entries, StateError> {
            Ok(self
                .0
                .iter()
                .filter(|((c, k), _)| c == contract && k.starts_with(prefix) && after.is_none_or(|a| k.as_slice() > a))
                .take(limit)
                .map(|((_, k), v)| (k.clone(), v.clone()))
                .collect())
        }
        fn storage_key(&self, _: &Hash32, _: &Hash32) -> Result<Option<Vec<u8>>, StateError> {
            Ok(None)
        }
        fn storage_keys_of(&self, _: &Hash32) -> Result<Vec<(Hash32, Vec<u8>)>, StateError> {
            Ok(vec![])
        }
        fn data_record(&self, at: TxLocation) -> Result<(String, Vec<u8>), StateError> {
            Err(StateError::Store(format!("no transaction {}/{}", at.height, at.index)))
        }
    }

    fn block_state(stored: &[(&[u8], &[u8])], contract: Hash32) -> Box<BlockState<FlatStore>> {
        let store = FlatStore(stored.iter().map(|(k, v)| ((contract, k.to_vec()), v.to_vec())).collect());
        BlockState::new(Arc::new(store), TestCrypto::new(), Root::empty(GLOBAL_TREE, 0), 1).expect("the test hasher")
    }

    fn keys(entries: &Entries) -> Vec<&[u8]> {
        entries.iter().map(|(k, _)| k.as_slice()).collect()
    }

    #[test]
    fn scan_merges_pending_writes_and_deletions_over_the_parent_state_in_key_order() {
        let c = Hash32([1; 32]);
        let mut s = block_state(&[(b"a1", b"x"), (b"a2", b"x"), (b"a3", b"x"), (b"a4", b"x"), (b"b1", b"x")], c);
        // An earlier transaction of the block deleted a1 and wrote a25; this one deletes
        // a2 and writes a0 in a nested checkpoint.
        s.checkpoint();
        s.storage_set(&c, b"a1", None).unwrap();
        s.storage_set(&c, b"a25", Some(b"y")).unwrap();
        s.commit_checkpoint();
        s.checkpoint();
        s.checkpoint();
        s.storage_set(&c, b"a2", None).unwrap();
        s.storage_set(&c, b"a0", Some(b"z")).unwrap();
        s.storage_set(&Hash32([2; 32]), b"a05", Some(b"other contract")).unwrap();
        let all = s.storage_scan(&c, b"a", None, 10).unwrap();
        assert_eq!(keys(&all), [&b"a0"[..], b"a25", b"a3", b"a4"]);
        assert_eq!(all[1].1, b"y");
        // Pages: the limit holds across hidden (deleted) stored keys, `after` continues.
        let page = s.storage_scan(&c, b"a", None, 2).unwrap();
        assert_eq!(keys(&page), [&b"a0"[..], b"a25"]);
        let next = s.storage_scan(&c, b"a", Some(b"a25"), 2).unwrap();
        assert_eq!(keys(&next), [&b"a3"[..], b"a4"]);
        // Reverting the nested checkpoint brings back a2 and drops a0.
        s.revert_checkpoint();
        let all = s.storage_scan(&c, b"a", None, 10).unwrap();
        assert_eq!(keys(&all), [&b"a2"[..], b"a25", b"a3", b"a4"]);
        assert_eq!(s.storage_get(&c, b"a1").unwrap(), None, "deleted by the committed transaction");
        assert_eq!(s.storage_get(&c, b"a3").unwrap(), Some(b"x".to_vec()), "from the parent state");
    }

    #[test]
    fn a_committed_checkpoint_keeps_its_events_and_a_reverted_one_drops_them() {
        let c = Hash32([1; 32]);
        let mut s = block_state(&[], c);
        let ev = |topic: &str| Event { contract: c, topic: topic.into(), indexed: vec![], data: vec![] };
        s.checkpoint();
        s.emit(ev("kept"));
        s.checkpoint();
        s.emit(ev("dropped"));
        s.revert_checkpoint();
        s.commit_checkpoint();
        assert_eq!(s.tx_events.iter().map(|e| e.topic.as_str()).collect::<Vec<_>>(), ["kept"]);
    }

    #[test]
    fn a_transaction_past_the_block_gas_limit_ends_production_and_invalidates_an_import() {
        use crate::testkit::{Key, data_tx};
        let suite = TestCrypto::new();
        let key = Key::new(1);
        let txs: Vec<Transaction> = (0..3).map(|n| data_tx(&suite, &key, n, &format!("k{n}"), b"v")).collect();
        let hashes: Vec<Hash32> = txs.iter().map(|t| t.hash(suite.as_ref()).unwrap()).collect();
        let store = Arc::new(FlatStore(BTreeMap::new()));
        let suite: Arc<dyn ChainCrypto> = suite;
        // Each declares 100 000 gas and uses about 1 200. The rule is gas used so far plus
        // the transaction's limit: the first fits 100 500, the second (1 200 + 100 000) not.
        let env = ContractEnv { block_gas_limit: 100_500, ..ContractEnv::none() };
        let at = |mode| BlockInfo { channel: "grid".into(), height: 1, timestamp_ms: 1, mode, finality_depth: 0 };
        let produced = execute(&store, &suite, &env, &at(Mode::Produce), Root::empty(GLOBAL_TREE, 0), &txs, &hashes, None).unwrap();
        assert_eq!(produced.included, 1);
        assert_eq!(produced.receipts.len(), 1);
        let imported = execute(&store, &suite, &env, &at(Mode::Import), Root::empty(GLOBAL_TREE, 0), &txs, &hashes, None);
        assert!(matches!(imported, Err(ExecError::BlockGas { index: 1, limit: 100_000, .. })), "{:?}", imported.err());
        let roomy = ContractEnv { block_gas_limit: 1_000_000, ..ContractEnv::none() };
        assert_eq!(execute(&store, &suite, &roomy, &at(Mode::Import), Root::empty(GLOBAL_TREE, 0), &txs, &hashes, None).unwrap().included, 3);
    }
}
