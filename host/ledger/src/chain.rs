//! One channel's chain: genesis, block production, the validation path every block takes
//! (its own blocks included), the atomic commit, and the notifications the API streams.
//!
//! Flow of a transaction: [`Chain::submit`] runs the pool's checks (the signature outside
//! the pool lock, so submissions verify in parallel on all cores) and queues it. The
//! consensus engine's participant for this node (run by the node's consensus driver)
//! decides when this node builds: [`Chain::build`] takes the ready transactions, executes
//! them on the head state and keeps the unsealed block; [`Chain::commit_built`] puts the
//! participant's seal in it (PoA: the node key's signature over the seal hash), has the
//! engine's `verify-header` check it as every other node will, and commits it with the
//! execution it was built from. A block from elsewhere goes through [`Chain::import`]:
//! header checks and the engine's `verify-header`, transaction root, signatures (skipped
//! for transactions this node admitted itself, whose signatures it already verified),
//! re-execution, state and receipts roots. Either way the commit is one redb transaction.

use super::execute::{self, BlockInfo, ContractEnv, ExecError, Mode, QueryError};
use super::fork::{Executed, ForkState, SideBlock, SideBlocks};
use super::governance::{self, EngineActivation, GovernanceView, Governed, Members, SuiteActivation};
use super::health::{ChainHealth, Monitor, StoreSlot};
use super::pool::{PoolConfig, PoolStatus, Rejection, TxPool, counted, verify_signature};
use super::state::{AccountState, StoredValue};
use super::store::{BlockCommit, StoreError, StoreView};
use joule_consensus::{Action, ConsensusEngine, ConsensusError, EngineHeader, EngineSource, Event, Validator};
use joule_contract::ContractVm;
use joule_primitives::merkle::{self, HashError};
use joule_primitives::smt::{EMPTY, GLOBAL_TREE, NodeStore, Root, Smt, StateError, StateProof};
use joule_primitives::{
    Account, Block, BlockHeader, BlockPolicy, ChainCrypto, ChainSpec, ChannelId, Encode, Hash32, Payload, Receipt, SuiteError, Transaction, UnsignedTransaction,
};
use joule_support::sync::{lock, read, write};
use serde::Serialize;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("block {height} is invalid: {reason}")]
    Invalid { height: u64, reason: String },
    #[error("channel {channel}: {reason}")]
    Setup { channel: String, reason: String },
    #[error("sealing block {height}: {reason}")]
    Seal { height: u64, reason: String },
    /// The state of this height was pruned (the node keeps the last blocks' state only).
    #[error("the state of block {height} is pruned: this node keeps the state of blocks {oldest} and later")]
    Pruned { height: u64, oldest: u64 },
    #[error("block {height} does not exist yet (the head is {head})")]
    NoSuchHeight { height: u64, head: u64 },
    /// The store failed (a full disk, say); the chain refuses work until it has reopened it.
    #[error("the channel's storage failed and is recovering: {0}")]
    StorageFailed(String),
    /// The contract runtime failed on this node (not the contract or the block).
    #[error("contract runtime: {0}")]
    Contract(String),
    /// A query could not run (no VM, a node fault).
    #[error("query: {0}")]
    Query(String),
    #[error("{0}")]
    NotFound(String),
    /// A block was built on a block that is no longer the head.
    #[error("the head moved on: {0}")]
    HeadMoved(String),
    /// The block is this node's head already (it committed it itself, or took it from
    /// another peer first): nobody's fault.
    #[error("block {height} is committed here already")]
    Known { height: u64 },
    /// A valid block off the head's chain, kept: its chain weighs less than the head's, or
    /// as much with a higher tip hash.
    #[error("block {height} is kept on a side chain from block {fork}: the head's chain weighs more, or as much with a lower tip hash")]
    Side { height: u64, fork: u64 },
    /// The block's parent is neither on the chain nor a side block kept here: the blocks
    /// between are missing (ask the peer for earlier ones).
    #[error("block {height}: its parent {parent} is not known here")]
    UnknownParent { height: u64, parent: Hash32 },
    /// A block on a branch that left this chain below a block final here: a split this
    /// node will not follow (not proof that the sender misbehaves: under proof of work an
    /// honest miner cut off long enough ends up so).
    #[error("block {height} forks from block {fork}, {depth} below the head: blocks more than {limit} deep are final here")]
    BelowFinal { height: u64, fork: u64, depth: u64, limit: u64 },
}

/// A block built here and not sealed yet, with the execution its header commits to.
struct Candidate {
    seal_hash: Hash32,
    parent: Hash32,
    block: Block,
    hashes: Vec<Hash32>,
    exec: execute::Execution,
    started: Instant,
}

/// Blocks built or proposed and awaiting their seal, at most (older ones are dropped).
const MAX_CANDIDATES: usize = 4;

/// Whether a block's checks include its seal (an import) or leave it for later (a proposal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seal {
    Verify,
    Later,
}

/// The head of the chain.
#[derive(Debug, Clone)]
pub struct Head {
    pub height: u64,
    pub hash: Hash32,
    pub header: BlockHeader,
}

/// A block as committed, for subscribers.
#[derive(Debug, Clone, Serialize)]
pub struct CommittedBlock {
    pub hash: Hash32,
    pub block: Block,
    pub receipts: Vec<Receipt>,
}

/// The node's block-sealing key, wherever it is kept (the node's keystore; memory in
/// tools and tests). The private key never passes through the ledger.
pub trait BlockSigner: Send + Sync {
    /// SubjectPublicKeyInfo, DER: what the channel's validator set lists.
    fn public_key(&self) -> &[u8];
    /// Sign with the channel suite's signature algorithm.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SuiteError>;
}

/// A key held in memory, signing through the channel's suite.
pub struct LocalSigner {
    private_key: Zeroizing<Vec<u8>>,
    public_key: Vec<u8>,
    suite: Arc<dyn ChainCrypto>,
}

impl LocalSigner {
    pub fn new(private_key: Zeroizing<Vec<u8>>, public_key: Vec<u8>, suite: Arc<dyn ChainCrypto>) -> Self {
        LocalSigner { private_key, public_key, suite }
    }
}

impl BlockSigner for LocalSigner {
    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SuiteError> {
        self.suite.sign(&self.private_key, message)
    }
}

/// A transaction with where it landed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct TxRecord {
    pub hash: Hash32,
    pub transaction: Transaction,
    pub receipt: Receipt,
    pub block_height: u64,
    pub block_hash: Hash32,
    pub index: u32,
}

/// An event with where it was emitted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub height: u64,
    /// Index of the transaction in its block.
    pub index: u32,
    /// Position of the event in its transaction's receipt.
    pub event_index: u32,
    pub tx_hash: Hash32,
    pub topic: String,
    /// Indexed topics after the name, hex.
    #[serde(with = "joule_primitives::types::hex_list")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<joule_primitives::openapi::Hex>))]
    pub indexed: Vec<Vec<u8>>,
    #[serde(with = "joule_primitives::types::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = joule_primitives::openapi::Hex))]
    pub data: Vec<u8>,
}

/// An account at the head, with its inclusion (or absence) proof in the state tree.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct AccountAnswer {
    pub id: Hash32,
    pub height: u64,
    pub block_hash: Hash32,
    pub state_root: Hash32,
    pub account: Option<Account>,
    /// The account's canonical encoding (hex): its suite hash is the state tree value.
    #[serde(with = "joule_primitives::types::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = joule_primitives::openapi::Hex))]
    pub account_encoding: Vec<u8>,
    pub proof: Option<StateProof>,
}

/// One key of a contract's (account's) storage at the head, with the proofs that tie it to
/// the header's state root: account in the state tree, then key in its storage tree.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct StateAnswer {
    pub contract: Hash32,
    pub key: String,
    /// The storage tree key: the suite hash of `key`.
    pub key_hash: Hash32,
    /// Hex, absent when the key has no value.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<joule_primitives::openapi::Hex>))]
    pub value: Option<Vec<u8>>,
    pub height: u64,
    pub block_hash: Hash32,
    pub state_root: Hash32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<StateProofs>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct StateProofs {
    #[serde(with = "joule_primitives::types::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = joule_primitives::openapi::Hex))]
    pub account_encoding: Vec<u8>,
    pub account: StateProof,
    pub storage_root: Hash32,
    pub storage: StateProof,
}

fn opt_hex<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&hex::encode(b)),
        None => s.serialize_none(),
    }
}

pub struct Chain {
    spec: ChainSpec,
    /// The suite of the genesis block (and of every block until a governed switch).
    genesis_suite: Arc<dyn ChainCrypto>,
    /// Other suites the chain switched to, bound on the same implementations.
    other_suites: Mutex<Vec<Arc<dyn ChainCrypto>>>,
    /// Reopenable: see [`super::health`].
    store: StoreSlot,
    health: Monitor,
    pool: Mutex<TxPool>,
    engines: Arc<dyn EngineSource>,
    /// The engine sources rebound to suites the chain switched to, by suite id.
    rebound_engines: Mutex<Vec<(String, Arc<dyn EngineSource>)>>,
    /// The members after the head block, for the engine, admission and the network.
    members: tokio::sync::watch::Sender<Arc<CurrentMembers>>,
    signer: Option<Arc<dyn BlockSigner>>,
    /// This node's keys in suites the chain switches to, by suite id (see [`Chain::add_signer`]).
    other_signers: RwLock<Vec<(String, Arc<dyn BlockSigner>)>>,
    policy: RwLock<BlockPolicy>,
    head: RwLock<Head>,
    /// Production and import run one at a time.
    commit_lock: Mutex<()>,
    blocks: tokio::sync::broadcast::Sender<Arc<CommittedBlock>>,
    /// Transactions admitted from this node's clients (not from peers), for gossip.
    admitted: tokio::sync::broadcast::Sender<Arc<Vec<Transaction>>>,
    /// Account ids (suite hash of the public key) of recent senders.
    account_ids: Mutex<std::collections::HashMap<Vec<u8>, Hash32>>,
    /// Admission's sender checks on a chain with certificates, valid for one head: the
    /// sender's certificate record, or why the sender may not send.
    sender_checks: Mutex<SenderChecks>,
    /// The contract VM and the channel's contract settings.
    contracts: ContractEnv,
    /// Blocks built here awaiting their seal (see [`Chain::build`]).
    candidates: Mutex<Vec<Candidate>>,
    /// Held while the node signs a transaction of its own, so two get different nonces.
    own_submissions: Mutex<()>,
    /// Engines the chain switched to, bound.
    switched: Mutex<Vec<Switched>>,
    /// Dry runs of candidate engines: head, component, configuration, result.
    dry_runs: Mutex<Vec<(Hash32, Hash32, String, governance::DryRun)>>,
    /// Valid blocks off the head's chain, for fork choice.
    side: Mutex<SideBlocks>,
}

/// A suite and the first and last heights it served.
type SuiteRange = (Arc<dyn ChainCrypto>, u64, u64);

fn identity_lookup(e: crate::identity::LookupError<ChainError>) -> ChainError {
    match e {
        crate::identity::LookupError::State(e) => e,
        crate::identity::LookupError::Corrupt(m) => StoreError::Corrupt(m).into(),
    }
}

/// The senders admission checked at the state of block `head`: each one's certificate
/// validity (Unix ms), or why it may not send. A new head empties it.
#[derive(Default)]
struct SenderChecks {
    head: Hash32,
    senders: std::collections::HashMap<Hash32, Result<Arc<crate::identity::CertRecord>, String>>,
}

/// Senders remembered at most between heads.
const SENDER_CHECKS_KEPT: usize = 100_000;

/// A storage value read: its bytes, if there is one.
type ValueRead = Result<Option<Vec<u8>>, ChainError>;

/// An engine the chain switched to, bound: its component, its configuration, the suite it
/// is bound to, the engine.
type Switched = (Hash32, String, String, Arc<dyn ConsensusEngine>);

/// The governance rules' view at admission: keys checked by the suite, components on chain
/// or brought by the proposal.
struct AdmissionChecks<'a> {
    chain: &'a Chain,
    brought: &'a [(Hash32, &'a Vec<u8>)],
    /// The suite of the next block.
    suite: Arc<dyn ChainCrypto>,
}

impl governance::Checks for AdmissionChecks<'_> {
    fn usable_key(&self, public_key: &[u8]) -> bool {
        self.suite.verify(public_key, b"", b"").is_ok()
    }

    fn has_component(&self, hash: &Hash32) -> bool {
        self.brought.iter().any(|(h, _)| h == hash) || self.chain.code(hash).is_ok_and(|c| c.is_some())
    }

    fn suite(&self) -> &str {
        &self.suite.suite().id
    }

    fn suite_available(&self, suite: &str) -> bool {
        self.suite.bind_suite(suite).is_some()
    }

    fn bound(&self, public_key: &[u8], suite: &str) -> bool {
        self.chain.account_id(public_key).is_ok_and(|account| self.chain.binding(&account, suite).is_ok_and(|b| b.is_some()))
    }

    /// Execution checks the accounts when the proposal passes.
    fn movable(&self, _: &Hash32, _: &[u8]) -> Result<(), String> {
        Ok(())
    }

    fn certificates(&self) -> bool {
        self.chain.contracts.identity.is_some()
    }

    /// Checked at the head's state, as a block would apply it next.
    fn organisation(&self, change: &joule_primitives::Change) -> Result<(), String> {
        let Some(registry) = &self.chain.contracts.identity else { return Err("the channel has no certificates, so no organisations".into()) };
        let check = || -> Result<Result<(), String>, ChainError> {
            let view = self.chain.read()?;
            let (root, _) = self.chain.head_state(&view)?;
            let reader = self.chain.governance_reader_in(&view, &root, self.suite.clone())?;
            let read = |key: &str| reader(key);
            let applied = registry.apply_organisation(&read, self.suite.as_ref(), root.version.saturating_add(1), joule_support::now_ms(), change);
            Ok(applied.map_err(identity_lookup)?.map(|_| ()))
        };
        check().map_err(|e| e.to_string())?
    }
}

/// The channel's members after the head block, in the forms their users need.
#[derive(Debug, Clone)]
pub struct CurrentMembers {
    pub members: Members,
    /// As the consensus engine takes them.
    pub validators: Vec<Validator>,
    /// The validators' account ids (for [`joule_primitives::DeployPolicy::Validators`]).
    pub validator_accounts: Vec<Hash32>,
    /// The engine schedule.
    pub engines: Vec<EngineActivation>,
    /// The crypto-suite schedule.
    pub suites: Vec<SuiteActivation>,
}

impl CurrentMembers {
    /// `suite`: the next block's, which the validators' account ids are under.
    fn new(members: Members, engines: Vec<EngineActivation>, suites: Vec<SuiteActivation>, suite: &dyn ChainCrypto) -> Result<CurrentMembers, HashError> {
        let validators = members.validators.iter().map(|v| Validator { public_key: v.public_key.clone(), weight: v.weight }).collect();
        let validator_accounts = members.validators.iter().map(|v| suite.hash(&v.public_key)).collect::<Result<Vec<_>, _>>()?;
        Ok(CurrentMembers { members, validators, validator_accounts, engines, suites })
    }
}

impl Chain {
    /// Open (or create, with its genesis block) the chain of `spec` in `dir`. `suite` must
    /// be the spec's crypto suite bound to implementations; `engines` serves its consensus.
    pub fn open(
        dir: &Path,
        spec: &ChainSpec,
        policy: BlockPolicy,
        suite: Arc<dyn ChainCrypto>,
        engines: Arc<dyn EngineSource>,
        signer: Option<Arc<dyn BlockSigner>>,
    ) -> Result<Chain, ChainError> {
        let setup = |reason: String| ChainError::Setup { channel: spec.channel.to_string(), reason };
        spec.validate().map_err(|e| setup(e.to_string()))?;
        if suite.suite() != &spec.crypto_suite {
            return Err(setup(format!("the suite bound ({}) is not the chain's ({})", suite.suite().id, spec.crypto_suite.id)));
        }
        joule_support::fs::create_private_dir(dir).map_err(|e| setup(format!("create {}: {e}", dir.display())))?;
        let store = StoreSlot::open(&dir.join(super::store::FILE_NAME))?;
        let genesis = genesis_block(spec, suite.as_ref())?;
        let genesis_hash = genesis.header.hash(suite.as_ref())?;
        let view = store.read()?;
        match view.block(0)? {
            None => {
                drop(view);
                store.commit(BlockCommit {
                    block: &genesis,
                    hash: genesis_hash,
                    tx_hashes: &[],
                    receipts: &[],
                    nodes: &Default::default(),
                    stale: &Default::default(),
                    next_tree: 1,
                    events: &[],
                    codes: &[],
                    contract_kv: &[],
                    storage_keys: &[],
                })?;
                store.set_meta("spec", &spec.encode())?;
            }
            Some(b) if b == genesis => drop(view),
            Some(_) => {
                return Err(setup(format!(
                    "the chain in {} was created from different genesis fields (its chain specification: crypto suite, consensus, validators, gas limit or genesis time); \
                     restore the network configuration it was created with, or start from an empty directory",
                    dir.display()
                )));
            }
        }
        let view = store.read()?;
        let (height, hash) = view.head()?.ok_or_else(|| StoreError::Corrupt("no head after genesis".into()))?;
        let header = view.block(height)?.ok_or_else(|| StoreError::Corrupt(format!("head block {height} missing")))?.header;
        drop(view);
        let identity = match &spec.identity {
            Some(i) => Some(Arc::new(crate::identity::Registry::new(i, suite.as_ref(), spec.genesis_time_ms).map_err(|e| setup(format!("identity: {e}")))?)),
            None => None,
        };
        let pool = TxPool::new(spec.channel.clone(), PoolConfig { gas_limit: spec.gas_limit, ..PoolConfig::default() });
        let genesis_members = Arc::new(Members { validators: spec.validators.clone(), nodes: spec.nodes.clone() });
        let current = CurrentMembers::new(genesis_members.as_ref().clone(), vec![], vec![], suite.as_ref())?;
        let (blocks, _) = tokio::sync::broadcast::channel(256);
        let (admitted, _) = tokio::sync::broadcast::channel(1024);
        let chain = Chain {
            spec: spec.clone(),
            genesis_suite: suite,
            other_suites: Mutex::default(),
            store,
            health: Monitor::default(),
            pool: Mutex::new(pool),
            engines,
            rebound_engines: Mutex::default(),
            members: tokio::sync::watch::Sender::new(Arc::new(current)),
            signer,
            other_signers: RwLock::default(),
            policy: RwLock::new(policy),
            head: RwLock::new(Head { height, hash, header }),
            commit_lock: Mutex::new(()),
            blocks,
            admitted,
            account_ids: Mutex::default(),
            sender_checks: Mutex::default(),
            contracts: ContractEnv { vm: None, block_gas_limit: spec.block_gas_limit, deployers: spec.contract_deployers.clone(), genesis_members, identity },
            candidates: Mutex::default(),
            own_submissions: Mutex::default(),
            switched: Mutex::default(),
            dry_runs: Mutex::default(),
            side: Mutex::default(),
        };
        chain.backfill_storage_keys()?;
        chain.refresh_members(&Default::default())?;
        chain.engine()?;
        if chain.compaction_due() {
            // At start-up nothing reads yet; a failure costs disk space only.
            if let Err(e) = chain.compact_store() {
                tracing::warn!(channel = %chain.spec.channel, "compacting the chain store failed: {e}");
            }
        }
        metrics::gauge!("chain_head_block", "channel" => chain.spec.channel.to_string()).set(height as f64);
        Ok(chain)
    }

    /// Run contracts with `vm` (without one, contract transactions are refused as
    /// unsupported). The VM must charge the gas schedule the chain specification names.
    pub fn with_contract_vm(mut self, vm: Arc<dyn ContractVm>) -> Result<Self, ChainError> {
        if vm.schedule().version != self.spec.gas_schedule {
            return Err(ChainError::Setup {
                channel: self.spec.channel.to_string(),
                reason: format!(
                    "the chain uses gas schedule {}, this node's contract runtime charges schedule {}",
                    self.spec.gas_schedule,
                    vm.schedule().version
                ),
            });
        }
        self.contracts.vm = Some(vm);
        let mut pool = lock(&self.pool);
        let mut config = pool.config().clone();
        config.contracts = true;
        pool.set_config(config);
        drop(pool);
        Ok(self)
    }

    /// The contract VM, when this node runs contracts.
    pub fn contract_vm(&self) -> Option<&Arc<dyn ContractVm>> {
        self.contracts.vm.as_ref()
    }

    /// Run a read-only contract method on the head state (`query`; nothing is kept).
    pub fn query(&self, caller: Hash32, contract: &Hash32, method: &str, args: &[u8], gas_limit: u64) -> Result<joule_contract::Outcome, ChainError> {
        let vm = self.contracts.vm.as_ref().ok_or_else(|| ChainError::Query("this node does not run contracts".into()))?;
        let head = self.head();
        let view = Arc::new(self.read()?);
        // A query changes nothing: no governance settles in it.
        let block = BlockInfo {
            channel: self.spec.channel.to_string(),
            height: head.height,
            timestamp_ms: head.header.timestamp_ms,
            mode: Mode::Import,
            finality_depth: 0,
        };
        let q = execute::QueryCall { caller, contract: *contract, method, args, gas_limit: gas_limit.min(self.spec.gas_limit) };
        execute::query(&view, &self.suite_at(head.height)?, vm.as_ref(), &block, block_state(&head.header), &q).map_err(|e| match e {
            QueryError::NoContract(c) => ChainError::NotFound(format!("no contract at {c}")),
            e => ChainError::Query(e.to_string()),
        })
    }

    /// Deployed code by its hash.
    pub fn code(&self, code_hash: &Hash32) -> Result<Option<Vec<u8>>, ChainError> {
        Ok(self.read()?.code(code_hash)?)
    }

    /// On a chain with certificates: the sender holds a current certificate at the head's
    /// state, and an identity transaction would apply there (so a refused one costs no
    /// nonce). Elsewhere identity transactions are refused.
    fn identity_admission(&self, tx: &Transaction) -> Result<(), Rejection> {
        let internal = |e: String| counted(Rejection::Internal(e));
        let Some(registry) = &self.contracts.identity else {
            if matches!(tx.body.payload, Payload::Identity(_)) {
                return Err(counted(Rejection::Malformed(format!(
                    "channel {} has no certificates: identity transactions need a chain whose genesis sets identity",
                    self.spec.channel
                ))));
            }
            return Ok(());
        };
        let lookup = |e: crate::identity::LookupError<ChainError>| match e {
            crate::identity::LookupError::State(e) => internal(e.to_string()),
            crate::identity::LookupError::Corrupt(m) => internal(m),
        };
        let account = self.account_id(&tx.body.sender).map_err(|e| internal(e.to_string()))?;
        let now = joule_support::now_ms();
        // The certificate lookup at the head's state, once per sender and head; the clock
        // against its validity on every transaction.
        let head = self.head().hash;
        let cached = {
            let checks = lock(&self.sender_checks);
            if checks.head == head { checks.senders.get(&account).cloned() } else { None }
        };
        let checked = match cached {
            Some(c) => c,
            None => {
                let view = self.read().map_err(|e| internal(e.to_string()))?;
                let (root, block) = self.head_state(&view).map_err(|e| internal(e.to_string()))?;
                let suite = self.suite_at(root.version.saturating_add(1)).map_err(|e| internal(e.to_string()))?;
                let reader = self.governance_reader_in(&view, &root, suite).map_err(|e| internal(e.to_string()))?;
                let read = |key: &str| reader(key);
                let c = registry.standing(&read, &account).map_err(lookup)?.map(Arc::new);
                let mut checks = lock(&self.sender_checks);
                if checks.head != block || checks.senders.len() >= SENDER_CHECKS_KEPT {
                    checks.head = block;
                    checks.senders.clear();
                }
                checks.senders.insert(account, c.clone());
                c
            }
        };
        if let Err(why) = checked.and_then(|rec| crate::identity::within(&rec, now)) {
            return Err(counted(Rejection::NotPermitted(why)));
        }
        if let Payload::Identity(action) = &tx.body.payload {
            let view = self.read().map_err(|e| internal(e.to_string()))?;
            let (root, _) = self.head_state(&view).map_err(|e| internal(e.to_string()))?;
            let suite = self.suite_at(root.version.saturating_add(1)).map_err(|e| internal(e.to_string()))?;
            let reader = self.governance_reader_in(&view, &root, suite.clone()).map_err(|e| internal(e.to_string()))?;
            let read = |key: &str| reader(key);
            if let Err(why) = registry.apply(&read, suite.as_ref(), &account, root.version.saturating_add(1), now, action).map_err(lookup)? {
                return Err(counted(Rejection::NotPermitted(why)));
            }
        }
        Ok(())
    }

    /// The identity rules of a chain with certificates.
    pub fn identity(&self) -> Option<&Arc<crate::identity::Registry>> {
        self.contracts.identity.as_ref()
    }

    /// The current certificate record of `account` after the head block.
    pub fn certificate_of(&self, account: &Hash32) -> Result<Option<crate::identity::CertRecord>, ChainError> {
        self.at_head_identity(None, |registry, read| registry.certificate(read, account))
    }

    /// `f` on the identity rules and a reader of the head's state; `default` on a chain
    /// without certificates.
    fn at_head_identity<T>(
        &self,
        default: T,
        f: impl FnOnce(&crate::identity::Registry, crate::identity::Read<'_, ChainError>) -> Result<T, crate::identity::LookupError<ChainError>>,
    ) -> Result<T, ChainError> {
        let Some(registry) = &self.contracts.identity else { return Ok(default) };
        let view = self.read()?;
        let (root, _) = self.head_state(&view)?;
        let reader = self.governance_reader(&view, &root)?;
        let read = |key: &str| reader(key);
        f(registry, &read).map_err(identity_lookup)
    }

    /// Whether each node of `network_keys` (compressed points) may join the channel's
    /// network now, in order: always on a chain without certificates; otherwise it needs a
    /// current `peer` certificate at the head's state (`Err(why)` when not). One read of the
    /// head's state for them all.
    pub fn peers_permitted(&self, network_keys: &[&[u8]]) -> Result<Vec<Result<(), String>>, ChainError> {
        let all_in = network_keys.iter().map(|_| Ok(())).collect();
        self.at_head_identity(all_in, |registry, read| {
            let now = joule_support::now_ms();
            network_keys.iter().map(|k| Ok(registry.check_peer(read, k, now)?.map(|_| ()))).collect()
        })
    }

    /// The account whose `peer` certificate certifies the network key `network_key`, after
    /// the head block.
    pub fn peer_account(&self, network_key: &[u8]) -> Result<Option<Hash32>, ChainError> {
        self.at_head_identity(None, |registry, read| registry.peer_account(read, network_key))
    }

    /// The member organisations after the head block (those of genesis, as the state
    /// records them now).
    pub fn organisations(&self) -> Result<Vec<crate::identity::Organisation>, ChainError> {
        self.at_head_identity(vec![], |registry, read| {
            let mut out = vec![];
            for name in registry.organisation_names(read)? {
                if let Some(o) = registry.organisation(read, &name)? {
                    out.push(o);
                }
            }
            Ok(out)
        })
    }

    /// Drop from `txs` (and `hashes`) the transactions whose sender may not send in a block
    /// of timestamp `time_ms` on the state `root`, evicting all their sender's transactions
    /// from the pool: a revoked or expired certificate stays so.
    fn permitted_only(&self, view: &StoreView, root: &Root, time_ms: u64, txs: &mut Vec<Transaction>, hashes: &mut Vec<Hash32>) -> Result<(), ChainError> {
        let Some(registry) = &self.contracts.identity else { return Ok(()) };
        let suite = self.suite_at(root.version.saturating_add(1))?;
        let reader = self.governance_reader_in(view, root, suite.clone())?;
        let read = |key: &str| reader(key);
        let mut refused: std::collections::HashMap<Vec<u8>, String> = std::collections::HashMap::new();
        let mut allowed: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
        for tx in txs.iter() {
            let sender = tx.body.sender.as_slice();
            if allowed.contains(sender) || refused.contains_key(sender) {
                continue;
            }
            match registry.check_sender(&read, &suite.hash(sender)?, time_ms).map_err(identity_lookup)? {
                Ok(_) => {
                    allowed.insert(sender);
                }
                Err(why) => {
                    refused.insert(sender.to_vec(), why);
                }
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        let keep: Vec<bool> = txs.iter().map(|t| !refused.contains_key(&t.body.sender)).collect();
        let mut k = keep.iter();
        txs.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        hashes.retain(|_| *k.next().unwrap_or(&false));
        let now = joule_support::now_ms();
        let mut pool = lock(&self.pool);
        for (sender, why) in refused {
            tracing::info!(channel = %self.spec.channel, "a sender's transactions leave the pool: {why}");
            pool.drop_sender(&sender, super::pool::EvictionReason::NotPermitted { why }, now);
        }
        Ok(())
    }

    /// Admission checks that need more than the pool knows: who may deploy or govern, and
    /// whether the code may be deployed at all (so a module importing WASI
    /// is refused at once, naming the import, instead of costing its sender gas).
    fn permission_admission(&self, tx: &Transaction) -> Result<(), Rejection> {
        self.identity_admission(tx)?;
        let code = match &tx.body.payload {
            Payload::Deploy { code, .. } => {
                let sender = self.account_id(&tx.body.sender).map_err(|e| counted(Rejection::Internal(e.to_string())))?;
                if !self.contracts.deployers.allows(&sender, &self.members().validator_accounts) {
                    return Err(counted(Rejection::NotPermitted(format!("account {sender} may not deploy contracts on channel {}", self.spec.channel))));
                }
                code
            }
            Payload::Upgrade { code, .. } => code,
            // Execution checks it too (a reverted receipt); here a bad one costs no nonce.
            Payload::BindKey { suite, public_key, proof } => {
                let current = self.next_suite().map_err(|e| counted(Rejection::Internal(e.to_string())))?;
                let account = self.account_id(&tx.body.sender).map_err(|e| counted(Rejection::Internal(e.to_string())))?;
                return governance::check_binding(current.as_ref(), &self.spec.channel, &account, suite, public_key, proof)
                    .map(|_| ())
                    .map_err(|why| counted(Rejection::Malformed(why)));
            }
            // Execution refuses it too (a reverted receipt); here it costs nobody a nonce.
            Payload::Governance(_) => {
                if !self.members().validators.iter().any(|v| v.public_key == tx.body.sender && v.weight > 0) {
                    return Err(counted(Rejection::NotPermitted(format!(
                        "only the validators of channel {} govern it, and the sender is not one (sign with a validator's node key)",
                        self.spec.channel
                    ))));
                }
                if let Payload::Governance(joule_primitives::Governance::Propose { changes, components, .. }) = &tx.body.payload {
                    self.check_proposal(changes, components).map_err(|e| counted(Rejection::Malformed(e)))?;
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        match &self.contracts.vm {
            Some(vm) => vm.check(code).map_err(|r| counted(Rejection::DeployRefused(r.0))),
            None => Ok(()),
        }
    }

    pub fn channel(&self) -> &ChannelId {
        &self.spec.channel
    }

    /// The chain's specification (what block 0 commits to).
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The crypto suite of the next block: what new transactions are hashed and signed in.
    pub fn suite(&self) -> Arc<dyn ChainCrypto> {
        self.next_suite().unwrap_or_else(|_| self.genesis_suite.clone())
    }

    /// The suite of the next block; an error when this node cannot bind it.
    pub fn next_suite(&self) -> Result<Arc<dyn ChainCrypto>, ChainError> {
        self.suite_at(self.head().height.saturating_add(1))
    }

    /// The crypto suite of block `height` (and of the state it leaves), by the suite
    /// schedule after the head: history keeps the suites of its heights.
    pub fn suite_at(&self, height: u64) -> Result<Arc<dyn ChainCrypto>, ChainError> {
        self.suite_in(&self.members().suites, height)
    }

    fn suite_in(&self, schedule: &[SuiteActivation], height: u64) -> Result<Arc<dyn ChainCrypto>, ChainError> {
        self.suite_named(governance::suite_at(&self.spec.crypto_suite.id, schedule, height), height)
    }

    /// The suite `id`, bound (`height`: where the chain uses it, for the error).
    fn suite_named(&self, id: &str, height: u64) -> Result<Arc<dyn ChainCrypto>, ChainError> {
        if id == self.genesis_suite.suite().id {
            return Ok(self.genesis_suite.clone());
        }
        let mut others = lock(&self.other_suites);
        if let Some(s) = others.iter().find(|s| s.suite().id == id) {
            return Ok(s.clone());
        }
        let bound = self.genesis_suite.bind_suite(id).ok_or_else(|| ChainError::Setup {
            channel: self.spec.channel.to_string(),
            reason: format!("the chain uses crypto suite {id} at height {height}, and this node's crypto plugins do not serve it: install and activate them"),
        })?;
        others.push(bound.clone());
        Ok(bound)
    }

    /// Give the node its key for the crypto suite `suite`, which it signs and seals with
    /// from the height the chain switches to that suite on.
    pub fn add_signer(&self, suite: &str, signer: Arc<dyn BlockSigner>) {
        let mut signers = write(&self.other_signers);
        signers.retain(|(s, _)| s != suite);
        signers.push((suite.to_string(), signer));
    }

    /// This node's key for block `height`: the one of that height's suite.
    fn signer_at(&self, height: u64) -> Option<Arc<dyn BlockSigner>> {
        let id = governance::suite_at(&self.spec.crypto_suite.id, &self.members().suites, height).to_string();
        if id == self.spec.crypto_suite.id {
            return self.signer.clone();
        }
        read(&self.other_signers).iter().find(|(s, _)| *s == id).map(|(_, k)| k.clone())
    }

    pub fn head(&self) -> Head {
        read(&self.head).clone()
    }

    pub fn policy(&self) -> BlockPolicy {
        read(&self.policy).clone()
    }

    pub fn set_policy(&self, p: BlockPolicy) {
        *write(&self.policy) = p;
    }

    /// Largest encoded transaction the pool admits.
    pub fn max_tx_bytes(&self) -> usize {
        lock(&self.pool).config().max_tx_bytes
    }

    /// Transactions in the pool, pending and queued.
    pub fn pool_len(&self) -> usize {
        lock(&self.pool).len()
    }

    /// Transactions in the pool that are executable now (a full block of them makes a
    /// block due before the interval).
    pub fn pending_len(&self) -> usize {
        lock(&self.pool).pending_len()
    }

    /// The pool's limits.
    pub fn pool_config(&self) -> PoolConfig {
        lock(&self.pool).config().clone()
    }

    /// Set the pool's limits (the node's configuration); the gas limit stays the channel's.
    pub fn set_pool_config(&self, mut config: PoolConfig) {
        config.gas_limit = self.spec.gas_limit;
        config.contracts = self.contracts.vm.is_some();
        lock(&self.pool).set_config(config);
    }

    /// The public key this node seals the next block with, when it has one.
    pub fn signer_key(&self) -> Option<Vec<u8>> {
        self.signer_key_at(self.head().height.saturating_add(1))
    }

    /// The public key this node seals block `height` with (the key of that height's suite).
    pub fn signer_key_at(&self, height: u64) -> Option<Vec<u8>> {
        self.signer_at(height).map(|s| s.public_key().to_vec())
    }

    pub fn is_validator(&self) -> bool {
        self.signer_key().is_some_and(|k| self.members().validators.iter().any(|v| v.public_key == k && v.weight > 0))
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<CommittedBlock>> {
        self.blocks.subscribe()
    }

    /// Up to `max` of the pool's transactions (see [`TxPool::snapshot`]).
    pub fn pool_snapshot(&self, max: usize) -> Vec<Transaction> {
        lock(&self.pool).snapshot(max)
    }

    /// Transactions this node's clients submitted, as they are admitted (what a node
    /// gossips to its peers; those admitted from peers are not repeated here).
    pub fn subscribe_admitted(&self) -> tokio::sync::broadcast::Receiver<Arc<Vec<Transaction>>> {
        self.admitted.subscribe()
    }

    pub fn read(&self) -> Result<StoreView, ChainError> {
        Ok(self.store.read()?)
    }

    /// What each table of the chain store takes on disk.
    pub fn store_usage(&self) -> Result<Vec<super::store::TableUsage>, ChainError> {
        Ok(self.store.usage()?)
    }

    /// Bytes the chain store takes on disk (allocated blocks; a file's sparse tail is free).
    pub fn store_disk_bytes(&self) -> u64 {
        super::store::disk_bytes(&self.store.dir().join(super::store::FILE_NAME))
    }

    /// Whether the store is due for compaction: it takes a quarter more disk than after the
    /// last compaction, and at least [`super::store::COMPACT_FROM_BYTES`]. redb's compaction
    /// visits every page, so spacing it by growth keeps its cost proportional to what the
    /// chain wrote; between compactions redb reuses freed pages itself.
    pub fn compaction_due(&self) -> bool {
        let last = self.read().ok().and_then(|v| v.meta(super::store::COMPACTED_BYTES).ok().flatten());
        let last = last.and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
        let now = self.store_disk_bytes();
        now >= super::store::COMPACT_FROM_BYTES && now >= last.saturating_add(last / 4)
    }

    /// Compact the chain store: live pages move down and the file is truncated. Off the
    /// commit path (the producer runs it between blocks, [`Chain::open`] at start-up), but
    /// reads and commits wait for it. Returns the bytes on disk before and after, or
    /// `None` when a read was open (it is tried again later).
    pub fn compact_store(&self) -> Result<Option<(u64, u64)>, ChainError> {
        let before = self.store_disk_bytes();
        match self.store.compact() {
            Ok(_) => {}
            Err(StoreError::Busy(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let after = self.store_disk_bytes();
        self.store.set_meta(super::store::COMPACTED_BYTES, &after.to_le_bytes())?;
        tracing::info!(channel = %self.spec.channel, before, after, "chain store compacted");
        Ok(Some((before, after)))
    }

    /// The chain's health: a storage failure it is recovering from, the producer's last attempt.
    pub fn health(&self) -> ChainHealth {
        self.health.snapshot()
    }

    /// Admission stops while the store is failed: the pool would grow with transactions no
    /// block can take.
    fn admitting(&self) -> Result<(), Rejection> {
        match self.health.fault() {
            Some(f) => Err(counted(Rejection::StorageFailed(f.reason))),
            None => Ok(()),
        }
    }

    /// A failed commit: a store error (anything but a block that does not extend the head)
    /// means the store must be reopened before it takes another write.
    fn commit_failed(&self, height: u64, e: StoreError) -> ChainError {
        if matches!(e, StoreError::NotNext { .. }) {
            return e.into();
        }
        let reason = format!("commit of block {height} failed: {e}");
        tracing::error!(channel = %self.spec.channel, "{reason}; admission and production stop until the store is reopened");
        metrics::counter!("chain_storage_failures_total", "channel" => self.spec.channel.to_string()).increment(1);
        self.health.storage_failed(reason.clone());
        ChainError::StorageFailed(reason)
    }

    /// After a storage failure, when the backoff allows: check that the directory takes
    /// writes, reopen the store, and adopt its head (a commit reported as failed may have
    /// reached the disk). Returns whether the chain is healthy.
    pub fn recover(&self) -> bool {
        if !self.health.retry_due() {
            return self.health.fault().is_none();
        }
        let _serial = lock(&self.commit_lock);
        match self.reopen_store() {
            Ok(()) => {
                if let Some(f) = self.health.recovered() {
                    tracing::info!(channel = %self.spec.channel, retries = f.retries, "storage recovered; admission and production resume");
                }
                true
            }
            Err(e) => {
                tracing::warn!(channel = %self.spec.channel, "storage still failing: {e}");
                self.health.retry_failed(e.to_string());
                false
            }
        }
    }

    fn reopen_store(&self) -> Result<(), ChainError> {
        joule_support::fs::probe_writable(self.store.dir()).map_err(|e| StoreError::Db(format!("{} does not take writes: {e}", self.store.dir().display())))?;
        self.store.reopen()?;
        let view = self.read()?;
        let (height, hash) = view.head()?.ok_or_else(|| StoreError::Corrupt("no head".into()))?;
        let current = self.head();
        if (height, hash) != (current.height, current.hash) {
            let block = view.block(height)?.ok_or_else(|| StoreError::Corrupt(format!("head block {height} missing")))?;
            let receipts = view.receipts(height)?.ok_or_else(|| StoreError::Corrupt(format!("receipts of block {height}")))?;
            drop(view);
            tracing::info!(channel = %self.spec.channel, height, "the store's head is ahead of memory: adopting it");
            self.after_commit(&current, &Arc::new(CommittedBlock { hash, block, receipts }), Instant::now());
        }
        Ok(())
    }

    /// Mark the store failed, as a failed commit does (tests of the recovery path).
    #[cfg(test)]
    pub(crate) fn fail_storage_for_test(&self, reason: &str) {
        self.health.storage_failed(reason.into());
    }

    /// The engine serving this channel now.
    pub fn engine(&self) -> Result<Arc<dyn ConsensusEngine>, ChainError> {
        self.engine_for(self.head().height.saturating_add(1))
    }

    /// The engine of block `height`: the genesis engine (served by the node's plugins)
    /// until the schedule of the chain's state switches to an engine the chain carries.
    fn engine_for(&self, height: u64) -> Result<Arc<dyn ConsensusEngine>, ChainError> {
        self.engine_in(&self.members().engines, height)
    }

    /// The engine of block `height` under the engine schedule `engines`.
    fn engine_in(&self, engines: &[EngineActivation], height: u64) -> Result<Arc<dyn ConsensusEngine>, ChainError> {
        let setup = |e: ConsensusError| match e {
            ConsensusError::Unavailable(reason) => ChainError::Setup { channel: self.spec.channel.to_string(), reason },
            other => other.into(),
        };
        let suite = governance::suite_at(&self.spec.crypto_suite.id, &self.members().suites, height).to_string();
        let Some(a) = governance::engine_at(engines, height) else { return self.engine_source(&suite)?.current().map_err(setup) };
        self.component_engine(&a.component, &a.config, &suite, None).map_err(|e| match e {
            ChainError::Consensus(c) => setup(c),
            other => other,
        })
    }

    /// The engine source bound to suite `suite`.
    fn engine_source(&self, suite: &str) -> Result<Arc<dyn EngineSource>, ChainError> {
        if suite == self.spec.crypto_suite.id {
            return Ok(self.engines.clone());
        }
        let mut rebound = lock(&self.rebound_engines);
        if let Some((_, e)) = rebound.iter().find(|(s, _)| s == suite) {
            return Ok(e.clone());
        }
        let e = self.engines.rebind(suite).map_err(|e| ChainError::Setup { channel: self.spec.channel.to_string(), reason: e.to_string() })?;
        rebound.push((suite.to_string(), e.clone()));
        Ok(e)
    }

    /// The engine in component `hash` (its bytes given, or read from the code store) bound
    /// with `config` to suite `suite`: loaded once, then kept, whether a proposal, a vote or
    /// a block asked.
    fn component_engine(&self, hash: &Hash32, config: &str, suite: &str, bytes: Option<&[u8]>) -> Result<Arc<dyn ConsensusEngine>, ChainError> {
        if let Some((_, _, _, e)) = lock(&self.switched).iter().find(|(c, k, s, _)| c == hash && k == config && s == suite) {
            return Ok(e.clone());
        }
        let stored;
        let code = match bytes {
            Some(b) => b,
            None => {
                stored = self.code(hash)?.ok_or_else(|| StoreError::Corrupt(format!("the engine component {hash} is not in the code store")))?;
                stored.as_slice()
            }
        };
        let engine = self.engine_source(suite)?.load(code, config.as_bytes())?;
        tracing::info!(channel = %self.spec.channel, engine = engine.name(), component = %hash, suite, "consensus engine from a component on chain bound");
        let mut switched = lock(&self.switched);
        if switched.len() >= 4 {
            switched.remove(0);
        }
        switched.push((*hash, config.to_string(), suite.to_string(), engine.clone()));
        Ok(engine)
    }

    /// The sender's next nonce in the head state, read now.
    fn current_next_nonce(&self, sender: &[u8]) -> Result<u64, ChainError> {
        let view = self.read()?;
        let root = self.head_root(&view)?;
        self.next_nonce(&view, &root, sender)
    }

    /// The sender's next nonce in the state under `root`.
    fn next_nonce(&self, view: &StoreView, root: &Root, sender: &[u8]) -> Result<u64, ChainError> {
        let (here, next) = (self.suite_at(root.version)?, self.suite_at(root.version.saturating_add(1))?);
        if here.suite().id == next.suite().id {
            let id = if root.version == self.head().height { self.account_id(sender)? } else { next.hash(sender)? };
            return Ok(self.account_at(view, root, &id)?.map_or(0, |a| a.account.nonce));
        }
        // The next block switches the suite: a sender of the new suite is the account that
        // bound its key, still under its old id in this state.
        let claim = governance::bound_id_key(&next.suite().id, &next.hash(sender)?);
        let Some(old) = self.governance_reader(view, root)?(&claim)? else { return Ok(0) };
        let old = Hash32::from_slice(&old).ok_or_else(|| StoreError::Corrupt(format!("the governance value {claim:?} is not an account id")))?;
        Ok(self.account_at(view, root, &old)?.map_or(0, |a| a.account.nonce))
    }

    /// A sender's account id, remembered for the next transactions of the same sender.
    fn account_id(&self, sender: &[u8]) -> Result<Hash32, ChainError> {
        const KEPT: usize = 100_000;
        if let Some(id) = lock(&self.account_ids).get(sender) {
            return Ok(*id);
        }
        let id = self.next_suite()?.hash(sender)?;
        let mut ids = lock(&self.account_ids);
        if ids.len() >= KEPT {
            ids.clear();
        }
        ids.insert(sender.to_vec(), id);
        Ok(id)
    }

    fn account_at<S: NodeStore>(&self, view: &S, root: &Root, id: &Hash32) -> Result<Option<AccountState>, ChainError> {
        let suite = self.suite_at(root.version)?;
        let smt = Smt::new(view, suite.as_ref(), u64::MAX);
        Ok(smt.get(root, id)?.map(|leaf| AccountState::from_leaf(&leaf)).transpose()?)
    }

    /// What a proposal must pass before it costs anyone a block: usable validator keys,
    /// and every engine it switches to on chain (or brought) and loading here with its
    /// configuration, so a component that is not an engine never reaches a vote.
    fn check_proposal(&self, changes: &[joule_primitives::Change], components: &[Vec<u8>]) -> Result<(), String> {
        let suite = self.next_suite().map_err(|e| e.to_string())?;
        let brought: Vec<(Hash32, &Vec<u8>)> =
            components.iter().map(|c| Ok((suite.hash(c)?, c))).collect::<Result<_, HashError>>().map_err(|e| e.to_string())?;
        governance::check_changes(changes, &AdmissionChecks { chain: self, brought: &brought, suite: suite.clone() })?;
        for (i, c) in changes.iter().enumerate() {
            if let joule_primitives::Change::SwitchEngine { component, config, from_height, .. } = c {
                let bytes = brought.iter().find(|(h, _)| h == component).map(|(_, b)| b.as_slice());
                let at = governance::suite_at(&self.spec.crypto_suite.id, &self.members().suites, *from_height).to_string();
                self.component_engine(component, config, &at, bytes).map_err(|e| format!("change {i}: the engine does not load here: {e}"))?;
            }
        }
        Ok(())
    }

    /// Sign `payload` with this node's key and admit it, with the nonce after the node's
    /// own pending transactions and the payload's intrinsic gas as its limit: how an
    /// operator governs through the node's API without handling the validator key.
    pub fn submit_as_node(&self, payload: Payload) -> Result<Transaction, Rejection> {
        let internal = |e: &dyn std::fmt::Display| counted(Rejection::Internal(e.to_string()));
        let suite = self.next_suite().map_err(|e| internal(&e))?;
        let signer = self.signer_at(self.head().height.saturating_add(1)).ok_or_else(|| {
            counted(Rejection::NotPermitted(format!(
                "this node has no signing key of suite {} for channel {}: it can only follow the chain",
                suite.suite().id,
                self.spec.channel
            )))
        })?;
        let sender = signer.public_key().to_vec();
        // A validator votes for an engine switch only if its node runs the engine: loaded
        // from the chain's code store and configured here (a proposal is checked so at
        // admission already), so a broken engine cannot gather a majority.
        if let Payload::Governance(joule_primitives::Governance::Vote { proposal, .. }) = &payload {
            let open = self.governance().map_err(|e| internal(&e))?.proposals.into_iter().find(|p| p.id == *proposal);
            for change in open.map(|p| p.changes).unwrap_or_default() {
                if let joule_primitives::Change::SwitchEngine { component, config, .. } = change {
                    let d = self.dry_run(*proposal, &component, &config);
                    if !d.passed {
                        return Err(counted(Rejection::NotPermitted(format!(
                            "this node does not vote for proposal {proposal}: its engine {component} failed the dry run here: {} (GET /v1/governance shows the run)",
                            d.failure.unwrap_or_default()
                        ))));
                    }
                }
            }
        }
        let _one_at_a_time = lock(&self.own_submissions);
        let settled = self.current_next_nonce(&sender).map_err(|e| internal(&e))?;
        let nonce = lock(&self.pool).pending_end(&sender).map_or(settled, |n| n.max(settled));
        let mut body =
            UnsignedTransaction { channel: self.spec.channel.clone(), sender, nonce, gas_limit: 0, sig_alg: suite.suite().signature.clone(), payload };
        body.gas_limit = execute::intrinsic_gas(&body.clone().sign_with(vec![]));
        let signature = signer.sign(&body.signing_bytes()).map_err(|e| internal(&e))?;
        let tx = body.sign_with(signature);
        tx.validate().map_err(|e| counted(Rejection::Malformed(e.to_string())))?;
        self.submit(tx.clone())?;
        Ok(tx)
    }

    /// The governance state at `root` (a block's state).
    fn governed_at<S: NodeStore>(&self, view: &S, root: &Root) -> Result<Governed, ChainError> {
        self.governed_in(view, root, self.suite_at(root.version)?)
    }

    /// The governance state at `root`, a state under `suite`.
    fn governed_in<S: NodeStore>(&self, view: &S, root: &Root, suite: Arc<dyn ChainCrypto>) -> Result<Governed, ChainError> {
        let read = self.governance_reader_in(view, root, suite)?;
        Governed::load(&self.contracts.genesis_members, read, |key| StoreError::Corrupt(format!("the governance value {key:?} does not decode")).into())
    }

    /// A reader of the governance account's storage values at `root`.
    fn governance_reader<'a, S: NodeStore>(&'a self, view: &'a S, root: &Root) -> Result<impl Fn(&str) -> ValueRead + 'a, ChainError> {
        self.governance_reader_in(view, root, self.suite_at(root.version)?)
    }

    fn governance_reader_in<'a, S: NodeStore>(
        &'a self,
        view: &'a S,
        root: &Root,
        suite: Arc<dyn ChainCrypto>,
    ) -> Result<impl Fn(&str) -> ValueRead + 'a, ChainError> {
        let id = suite.hash(governance::NAMESPACE_PREIMAGE)?;
        let storage = {
            let smt = Smt::new(view, suite.as_ref(), u64::MAX);
            smt.get(root, &id)?.map(|leaf| AccountState::from_leaf(&leaf)).transpose()?.and_then(|a| a.storage_root())
        };
        Ok(move |key: &str| -> Result<Option<Vec<u8>>, ChainError> {
            let Some(r) = &storage else { return Ok(None) };
            let smt = Smt::new(view, suite.as_ref(), u64::MAX);
            let Some(leaf) = smt.get(r, &suite.hash(key.as_bytes())?)? else { return Ok(None) };
            match StoredValue::decode(&leaf.data) {
                Some(StoredValue::Inline(v)) => Ok(Some(v)),
                _ => Err(StoreError::Corrupt(format!("the governance value {key:?} is corrupt")).into()),
            }
        })
    }

    /// The key of `suite` that `account` bound after the head block, if it did.
    pub fn binding(&self, account: &Hash32, suite: &str) -> Result<Option<governance::Binding>, ChainError> {
        let view = self.read()?;
        let (root, _) = self.head_state(&view)?;
        let key = governance::binding_key(suite, account);
        let Some(bytes) = self.governance_reader(&view, &root)?(&key)? else { return Ok(None) };
        Ok(Some(borsh::from_slice(&bytes).map_err(|_| StoreError::Corrupt(format!("the governance value {key:?} does not decode")))?))
    }

    /// Read the members and schedules after the head block from its state, for the next
    /// block. When the next block starts a suite switch, its validators are the keys they
    /// bound and its nodes the switch's; the pool, kept under the old suite, is emptied.
    /// `committed`: the transactions of the block just committed (not evicted).
    fn refresh_members(&self, committed: &std::collections::HashSet<Hash32>) -> Result<(), ChainError> {
        let view = self.read()?;
        let root = self.head_root(&view)?;
        // The head block names its suite: the schedule is read from its state under it.
        let header = view.header(root.version)?.ok_or_else(|| StoreError::Corrupt(format!("header {} missing", root.version)))?;
        let before = self.suite_named(&header.crypto_suite, root.version)?;
        let governed = self.governed_in(&view, &root, before.clone())?;
        let next = root.version.saturating_add(1);
        let after = self.suite_in(&governed.suites, next)?;
        let mut members = governed.members;
        if before.suite().id != after.suite().id {
            let activation = governed.suites.iter().find(|a| a.from_height == next).ok_or_else(|| StoreError::Corrupt(format!("no suite switch at {next}")))?;
            let read = self.governance_reader_in(&view, &root, before.clone())?;
            let bound = |key: &[u8]| -> Option<Vec<u8>> {
                let account = before.hash(key).ok()?;
                let bytes = read(&governance::binding_key(&activation.suite, &account)).ok()??;
                borsh::from_slice::<governance::Binding>(&bytes).ok().map(|b| b.public_key)
            };
            members = governance::rekeyed(&members, activation, bound).map_err(StoreError::Corrupt)?;
            let reason = super::pool::EvictionReason::SuiteSwitched { suite: activation.suite.clone(), from_height: next };
            let dropped = lock(&self.pool).drop_all(&reason, committed, joule_support::now_ms());
            lock(&self.account_ids).clear();
            tracing::warn!(channel = %self.spec.channel, suite = %activation.suite, height = next, dropped, "the next block switches the crypto suite: validators sign with their bound keys, the pool starts empty");
        }
        drop(view);
        self.members.send_replace(Arc::new(CurrentMembers::new(members, governed.engines, governed.suites, after.as_ref())?));
        Ok(())
    }

    /// A store written before it recorded storage keys learns them from its blocks (data
    /// records' keys) and the governance keys, under the genesis suite (such a store has
    /// switched no suite).
    fn backfill_storage_keys(&self) -> Result<(), ChainError> {
        if self.store.storage_keys_complete()? {
            return Ok(());
        }
        let suite = self.genesis_suite.clone();
        let gov = suite.hash(governance::NAMESPACE_PREIMAGE)?;
        let fixed = [governance::MEMBERS_KEY, governance::PROPOSALS_KEY, governance::ENGINES_KEY, governance::SUITES_KEY]
            .iter()
            .map(|k| Ok((gov, suite.hash(k.as_bytes())?, k.as_bytes().to_vec())))
            .collect::<Result<Vec<_>, HashError>>()?;
        let started = Instant::now();
        let n = self.store.backfill_storage_keys(&fixed, |tx| match &tx.body.payload {
            Payload::Data { key, .. } => {
                let h = |b: &[u8]| suite.hash(b).map_err(|e| StoreError::Corrupt(e.to_string()));
                Ok(vec![(h(&tx.body.sender)?, h(key.as_bytes())?, key.as_bytes().to_vec())])
            }
            _ => Ok(vec![]),
        })?;
        tracing::info!(channel = %self.spec.channel, keys = n, ms = started.elapsed().as_millis() as u64, "the chain store learned the keys of its data records");
        Ok(())
    }

    /// The members as the state of block `height` holds them (what validated and connected
    /// for the block after it, before any suite switch re-keyed them).
    pub fn members_after(&self, height: u64) -> Result<Members, ChainError> {
        let view = self.read()?;
        let (root, _) = self.state_at(&view, Some(height))?;
        Ok(self.governed_at(&view, &root)?.members)
    }

    /// The members after the head block.
    pub fn members(&self) -> Arc<CurrentMembers> {
        self.members.borrow().clone()
    }

    /// Follow the members as votes change them (the network drops nodes voted out).
    pub fn watch_members(&self) -> tokio::sync::watch::Receiver<Arc<CurrentMembers>> {
        self.members.subscribe()
    }

    /// The governance state after the head block: members, and the open proposals with the
    /// votes that still count.
    pub fn governance(&self) -> Result<GovernanceView, ChainError> {
        let view = self.read()?;
        let (root, _) = self.head_state(&view)?;
        let governed = self.governed_at(&view, &root)?;
        drop(view);
        let mut out = GovernanceView::new(&governed, root.version);
        for p in &out.proposals {
            for c in &p.changes {
                if let joule_primitives::Change::SwitchEngine { component, config, .. } = c {
                    out.dry_runs.push(self.dry_run(p.id, component, config));
                }
            }
        }
        Ok(out)
    }

    /// This node's dry run of the engine in `component` with `config` (see
    /// [`governance::DryRun`]); kept per head, component and configuration.
    pub fn dry_run(&self, proposal: Hash32, component: &Hash32, config: &str) -> governance::DryRun {
        let head = self.head();
        if let Some(d) = lock(&self.dry_runs).iter().find(|(h, c, k, _)| *h == head.hash && c == component && k == config).map(|(_, _, _, d)| d.clone()) {
            return governance::DryRun { proposal, ..d };
        }
        let mut d = governance::DryRun {
            proposal,
            component: *component,
            engine: None,
            height: head.height,
            blocks: 0,
            accepted: 0,
            finality_depth: None,
            actions: vec![],
            passed: false,
            failure: None,
        };
        if let Err(e) = self.try_dry_run(&mut d, component, config) {
            d.failure = Some(e);
        } else {
            d.passed = true;
        }
        let mut runs = lock(&self.dry_runs);
        if runs.len() >= 8 {
            runs.remove(0);
        }
        runs.push((head.hash, *component, config.to_string(), d.clone()));
        d
    }

    fn try_dry_run(&self, d: &mut governance::DryRun, component: &Hash32, config: &str) -> Result<(), String> {
        const RECENT: u64 = 16;
        let suite = governance::suite_at(&self.spec.crypto_suite.id, &self.members().suites, self.head().height.saturating_add(1)).to_string();
        let engine = self.component_engine(component, config, &suite, None).map_err(|e| format!("it does not load here: {e}"))?;
        d.engine = Some(engine.name().to_string());
        let validators = self.members().validators.clone();
        let failed = |what: &str, e: ConsensusError| format!("{what}: {e}");
        let view = self.read().map_err(|e| e.to_string())?;
        let head = self.head();
        let mut parent: Option<EngineHeader> = None;
        for h in head.height.saturating_sub(RECENT)..=head.height {
            let Some(header) = view.header(h).map_err(|e| e.to_string())? else { continue };
            let header = self.engine_header(&header).map_err(|e| e.to_string())?;
            if let Some(p) = &parent {
                d.blocks += 1;
                match engine.verify_header(p, &header, &validators) {
                    Ok(()) => d.accepted += 1,
                    Err(ConsensusError::Rejected(_)) => {}
                    Err(e) => return Err(failed(&format!("judging block {h}"), e)),
                }
                engine.weight(&header, &validators).map_err(|e| failed(&format!("weighing block {h}"), e))?;
            }
            parent = Some(header);
        }
        drop(view);
        d.finality_depth = Some(engine.finality_depth(&validators).map_err(|e| failed("its finality depth", e))?);
        let me = self.signer.as_ref().map(|s| s.public_key().to_vec()).unwrap_or_default();
        let at = self.engine_head().map_err(|e| e.to_string())?;
        let mut participant = engine.participant(&me, &at, &[]).map_err(|e| failed("starting its participant", e))?;
        for event in [Event::NewHead(at), Event::Timer(u64::MAX), Event::Message(b"not a consensus message".to_vec())] {
            let actions = participant.handle(event).map_err(|e| failed("its participant", e))?;
            d.actions.extend(actions.iter().map(|a| a.kind().to_string()));
        }
        Ok(())
    }

    /// The head's state as `view` holds it: the head in memory, or the view's own when a
    /// commit since then has pruned the state of the former.
    fn head_root(&self, view: &StoreView) -> Result<Root, ChainError> {
        Ok(self.head_state(view)?.0)
    }

    /// [`Self::head_root`] and the hash of its block.
    fn head_state(&self, view: &StoreView) -> Result<(Root, Hash32), ChainError> {
        let head = self.head();
        let (height, hash) = view.head()?.ok_or_else(|| StoreError::Corrupt("no head".into()))?;
        // The head in memory, when the view holds its state: not when a reorganisation took
        // it off since (its nodes are gone), nor when pruning did.
        if hash == head.hash || (head.height < height && head.height >= view.state_from()? && view.height_of(&head.hash)? == Some(head.height)) {
            return Ok((block_state(&head.header), head.hash));
        }
        let header = view.header(height)?.ok_or_else(|| StoreError::Corrupt(format!("head block {height} missing")))?;
        Ok((block_state(&header), hash))
    }

    /// Keep the state of the last `blocks` blocks only (`None`: every block's, the default);
    /// recorded in the store. See [`super::store::ChainStore::set_state_history`].
    pub fn set_state_history(&self, blocks: Option<u64>) -> Result<(), ChainError> {
        Ok(self.store.set_meta(super::store::STATE_HISTORY, &blocks.unwrap_or(0).to_le_bytes())?)
    }

    /// Admit canonical transaction bytes.
    pub fn submit_bytes(&self, bytes: &[u8]) -> Result<Hash32, Rejection> {
        self.submit(super::pool::decode(bytes, self.max_tx_bytes())?)
    }

    /// Admit a transaction: every check but the signature under the pool lock, the
    /// signature outside it, then insertion.
    pub fn submit(&self, tx: Transaction) -> Result<Hash32, Rejection> {
        let copy = (self.admitted.receiver_count() > 0).then(|| tx.clone());
        let hash = self.admit(tx)?;
        if let Some(tx) = copy {
            let _ = self.admitted.send(Arc::new(vec![tx]));
        }
        Ok(hash)
    }

    fn admit(&self, tx: Transaction) -> Result<Hash32, Rejection> {
        self.admitting()?;
        let internal = |e: ChainError| counted(Rejection::Internal(e.to_string()));
        let commits = lock(&self.pool).commits();
        let next = self.current_next_nonce(&tx.body.sender).map_err(internal)?;
        let suite = self.next_suite().map_err(internal)?;
        let checked = lock(&self.pool).precheck(&tx, suite.as_ref(), |_| next)?.read_at(commits);
        verify_signature(&tx, suite.as_ref())?;
        self.permission_admission(&tx)?;
        let mut pool = lock(&self.pool);
        pool.insert(tx, checked, joule_support::now_ms(), |s| self.current_next_nonce(s).ok())
    }

    /// Admit many transactions at once: one state snapshot for the nonce checks, the
    /// signatures verified in parallel on every core, one pool lock for the insertions.
    /// Each transaction gets its own answer, in order.
    pub fn submit_batch(&self, txs: Vec<Transaction>) -> Vec<Result<Hash32, Rejection>> {
        let copies = (self.admitted.receiver_count() > 0).then(|| txs.clone());
        let results = self.admit_batch(txs);
        if let Some(copies) = copies {
            let admitted: Vec<Transaction> = copies.into_iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(t, _)| t).collect();
            if !admitted.is_empty() {
                let _ = self.admitted.send(Arc::new(admitted));
            }
        }
        results
    }

    /// Admit transactions a peer gossiped: as [`Chain::submit_batch`], without announcing
    /// them again (every peer already got them from their submitter's node).
    pub fn submit_from_peer(&self, txs: Vec<Transaction>) -> Vec<Result<Hash32, Rejection>> {
        self.admit_batch(txs)
    }

    fn admit_batch(&self, txs: Vec<Transaction>) -> Vec<Result<Hash32, Rejection>> {
        if let Err(r) = self.admitting() {
            return txs.iter().map(|_| Err(r.clone())).collect();
        }
        let internal = |e: ChainError| counted(Rejection::Internal(e.to_string()));
        let commits = lock(&self.pool).commits();
        let view = match self.read() {
            Ok(v) => v,
            Err(e) => {
                let r = internal(e);
                return txs.iter().map(|_| Err(r.clone())).collect();
            }
        };
        let root = match self.head_root(&view) {
            Ok(r) => r,
            Err(e) => {
                let r = internal(e);
                return txs.iter().map(|_| Err(r.clone())).collect();
            }
        };
        let suite = match self.suite_at(root.version.saturating_add(1)) {
            Ok(s) => s,
            Err(e) => {
                let r = internal(e);
                return txs.iter().map(|_| Err(r.clone())).collect();
            }
        };
        let mut nonces: std::collections::HashMap<Vec<u8>, Result<u64, Rejection>> = std::collections::HashMap::new();
        for tx in &txs {
            if !nonces.contains_key(&tx.body.sender) {
                let n = self.next_nonce(&view, &root, &tx.body.sender).map_err(internal);
                nonces.insert(tx.body.sender.clone(), n);
            }
        }
        drop(view);
        // Hashes in parallel; then the cheap checks in order under the pool lock; then the
        // signatures of the transactions that passed, in parallel.
        let hashed = parallel_map(&txs, |tx| {
            let e = tx.encode();
            suite.hash(&e).map(|h| (e.len(), h)).map_err(|e| counted(Rejection::Internal(e.to_string())))
        });
        let checked: Vec<Result<super::pool::Checked, Rejection>> = {
            let pool = lock(&self.pool);
            txs.iter()
                .zip(hashed)
                .map(|(tx, hashed)| {
                    let (size, hash) = hashed?;
                    match &nonces[&tx.body.sender] {
                        Ok(next) => pool.precheck_hashed(tx, size, hash, suite.as_ref(), |_| *next).map(|c| c.read_at(commits)),
                        Err(e) => Err(e.clone()),
                    }
                })
                .collect()
        };
        let to_verify: Vec<(&Transaction, bool)> = txs.iter().zip(&checked).map(|(tx, c)| (tx, c.is_ok())).collect();
        let signatures =
            parallel_map(
                &to_verify,
                |(tx, passed)| {
                    if *passed { verify_signature(tx, suite.as_ref()).and_then(|()| self.permission_admission(tx)) } else { Ok(()) }
                },
            );
        let now = joule_support::now_ms();
        let mut pool = lock(&self.pool);
        let out: Vec<Result<Hash32, Rejection>> = txs
            .into_iter()
            .zip(checked)
            .zip(signatures)
            .map(|((tx, c), sig)| c.and_then(|c| sig.and_then(|()| pool.insert(tx, c, now, |s| self.current_next_nonce(s).ok()))))
            .collect();
        drop(pool);
        out
    }

    /// The engine's view of a header.
    fn engine_header(&self, h: &BlockHeader) -> Result<EngineHeader, ChainError> {
        Ok(EngineHeader {
            height: h.height,
            parent_hash: h.parent_hash.0.to_vec(),
            timestamp_ms: h.timestamp_ms,
            seal_hash: self.suite_at(h.height)?.hash(&h.sealing_bytes())?.0.to_vec(),
            proposer: h.proposer.clone(),
            seal: h.seal.clone(),
        })
    }

    /// The head as the consensus engine sees it: header, hash, the next height's validators.
    pub fn engine_head(&self) -> Result<joule_consensus::Head, ChainError> {
        let head = self.head();
        Ok(joule_consensus::Head { header: self.engine_header(&head.header)?, hash: head.hash.0.to_vec(), validators: self.members().validators.clone() })
    }

    /// Build the next block on `parent` (which must be the head) from the pool, execute it
    /// and keep it, unsealed, for [`Chain::commit_built`]. `None`: nothing to put in a block
    /// (and the policy wants no empty ones). This node's consensus key is the proposer.
    pub fn build(&self, parent: &[u8], now_ms: u64) -> Result<Option<EngineHeader>, ChainError> {
        let _serial = lock(&self.commit_lock);
        let head = self.head();
        let signer = self
            .signer_at(head.height + 1)
            .ok_or_else(|| ChainError::Seal { height: head.height + 1, reason: "this node has no consensus key of the block's suite".into() })?;
        if head.hash.0.as_slice() != parent {
            return Err(ChainError::HeadMoved(format!(
                "the block was asked for on {}, the head is {} at height {}",
                hex::encode(parent),
                head.hash,
                head.height
            )));
        }
        let policy = self.policy();
        let view = self.read()?;
        let root = block_state(&head.header);
        // Leave room for the header in the block's byte budget.
        let budget = (policy.max_bytes as usize).saturating_sub(BlockHeader::MAX_BYTES);
        let ready = lock(&self.pool).ready(policy.max_transactions as usize, budget, joule_support::now_ms(), |s| self.next_nonce(&view, &root, s).ok());
        if ready.is_empty() && !policy.produce_empty_blocks {
            return Ok(None);
        }
        let (mut hashes, mut txs): (Vec<Hash32>, Vec<Transaction>) = ready.into_iter().unzip();
        // The block's timestamp, as `assemble` sets it.
        self.permitted_only(&view, &root, now_ms.max(head.header.timestamp_ms + 1), &mut txs, &mut hashes)?;
        if txs.is_empty() && !policy.produce_empty_blocks {
            return Ok(None);
        }
        drop(view);
        let started = Instant::now();
        let (block, hashes, exec) = self.assemble(&head, signer.public_key(), txs, Some(hashes), now_ms)?;
        let seal_hash = self.suite_at(block.header.height)?.hash(&block.header.sealing_bytes())?;
        let header = self.engine_header(&block.header)?;
        self.keep_candidate(Candidate { seal_hash, parent: head.hash, block, hashes, exec, started });
        Ok(Some(header))
    }

    /// Seal the block kept under `seal_hash` (built here, or a peer's proposal accepted
    /// with [`Chain::accept_proposal`]) and commit it. The engine checks the sealed header
    /// first, as every other node will: a seal its own rules refuse is never committed here.
    /// Its transactions were executed and their signatures verified when it was kept, so it
    /// is not executed again.
    pub fn commit_built(&self, seal_hash: &[u8], seal: Vec<u8>) -> Result<Arc<CommittedBlock>, ChainError> {
        let _serial = lock(&self.commit_lock);
        let head = self.head();
        let candidate = {
            let mut candidates = lock(&self.candidates);
            let i = candidates
                .iter()
                .position(|c| c.seal_hash.0.as_slice() == seal_hash)
                .ok_or_else(|| ChainError::NotFound(format!("no block built or proposed here has the seal hash {}", hex::encode(seal_hash))))?;
            candidates.remove(i)
        };
        let height = candidate.block.header.height;
        // The same block came in from a peer first (a BFT proposer broadcasts it once
        // committed): it is the head already, under whichever seal arrived.
        if head.hash == candidate.seal_hash {
            return Err(ChainError::Known { height });
        }
        if candidate.parent != head.hash {
            return Err(ChainError::HeadMoved(format!(
                "block {height} was built on {}, the head is {} at height {}",
                candidate.parent, head.hash, head.height
            )));
        }
        let mut candidate = candidate;
        let unsealed = std::mem::replace(&mut candidate.block.header.seal, seal);
        let verdict = self.engine().and_then(|engine| {
            let (parent, sealed) = (self.engine_header(&head.header)?, self.engine_header(&candidate.block.header)?);
            engine.verify_header(&parent, &sealed, &self.members().validators).map_err(|e| ChainError::Invalid { height, reason: e.to_string() })
        });
        if let Err(e) = verdict {
            // Kept for a seal that verifies.
            candidate.block.header.seal = unsealed;
            self.keep_candidate(candidate);
            return Err(e);
        }
        self.commit_executed(&head, candidate.block, candidate.hashes, candidate.exec, candidate.started)
    }

    /// Sign with this node's consensus key (a participant's `sign` action).
    pub fn sign_as_node(&self, message: &[u8]) -> Result<Vec<u8>, ChainError> {
        let height = self.head().height + 1;
        let signer = self.signer_at(height).ok_or_else(|| ChainError::Seal { height, reason: "this node has no consensus key of the block's suite".into() })?;
        signer.sign(message).map_err(|e| ChainError::Seal { height, reason: e.to_string() })
    }

    /// Search nonces (u64, big-endian, from 0) until `hash(seal_hash ‖ nonce)`, read as a
    /// big-endian number, is at most `target`; `None` when `cancel` is set first.
    pub fn work(&self, seal_hash: &[u8], target: &[u8], cancel: &std::sync::atomic::AtomicBool) -> Option<Vec<u8>> {
        let Ok(suite) = self.next_suite() else { return None };
        let mut input = seal_hash.to_vec();
        let at = input.len();
        input.extend([0u8; 8]);
        for nonce in 0u64.. {
            if nonce % 1024 == 0 && cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            input[at..].copy_from_slice(&nonce.to_be_bytes());
            let Ok(h) = suite.hash(&input) else { return None };
            if meets_target(&h.0, target) {
                return Some(nonce.to_be_bytes().to_vec());
            }
        }
        None
    }

    /// Make the next block now if this node's participant would: a participant of the
    /// engine runs to completion in this thread, its build answered from the pool, its
    /// signature from this node's key, a proof of work searched here; timers and messages go
    /// nowhere (tools and tests of a single node; a node runs the participant in the
    /// consensus driver instead). `None`: it is not this node's turn, or there is nothing to
    /// put in a block.
    pub fn produce(&self, now_ms: u64) -> Result<Option<Arc<CommittedBlock>>, ChainError> {
        let Some(signer) = self.signer_at(self.head().height + 1) else { return Ok(None) };
        let engine = self.engine()?;
        let head = self.engine_head()?;
        let parent = head.hash.clone();
        let mut participant = engine.participant(signer.public_key(), &head, &[])?;
        let mut events = std::collections::VecDeque::from([Event::NewHead(head)]);
        let never = std::sync::atomic::AtomicBool::new(false);
        while let Some(event) = events.pop_front() {
            for action in participant.handle(event)? {
                match action {
                    Action::Build => match self.build(&parent, now_ms) {
                        Ok(Some(header)) => events.push_back(Event::Built(header)),
                        // Nothing to put in a block; or a block was imported meanwhile, and
                        // the next call starts from it.
                        Ok(None) | Err(ChainError::HeadMoved(_)) => return Ok(None),
                        Err(e) => return Err(e),
                    },
                    Action::Sign { request, message } => events.push_back(Event::Signed { request, signature: self.sign_as_node(&message)? }),
                    Action::Work { seal_hash, target } => {
                        if let Some(nonce) = self.work(&seal_hash, &target, &never) {
                            events.push_back(Event::Worked { seal_hash, nonce });
                        }
                    }
                    Action::Commit { seal_hash, seal } => {
                        return match self.commit_built(&seal_hash, seal) {
                            Ok(b) => Ok(Some(b)),
                            Err(ChainError::HeadMoved(_)) => Ok(None),
                            Err(e) => Err(e),
                        };
                    }
                    Action::SetTimer { .. } | Action::Broadcast(_) | Action::Propose { .. } | Action::Persist(_) => {}
                }
            }
        }
        Ok(None)
    }

    /// Execute `txs` on the head state and build the unsealed block that carries them.
    /// `hashes` are the transactions' hashes when already known. Returns the block, its
    /// transactions' hashes and the execution its header commits to.
    fn assemble(
        &self,
        head: &Head,
        proposer: &[u8],
        mut txs: Vec<Transaction>,
        hashes: Option<Vec<Hash32>>,
        now_ms: u64,
    ) -> Result<(Block, Vec<Hash32>, execute::Execution), ChainError> {
        let height = head.height + 1;
        let suite = self.suite_at(height)?;
        let hashes = match hashes {
            Some(h) => h,
            None => txs.iter().map(|t| t.hash(suite.as_ref())).collect::<Result<_, _>>()?,
        };
        let mut hashes = hashes;
        let view = Arc::new(self.read()?);
        let t_exec = Instant::now();
        let timestamp_ms = now_ms.max(head.header.timestamp_ms + 1);
        let finality_depth = self.engine_for(height)?.finality_depth(&self.members().validators)?;
        let info = BlockInfo { channel: self.spec.channel.to_string(), height, timestamp_ms, mode: Mode::Produce, finality_depth };
        let from = self.suite_at(head.height)?;
        let members = self.members();
        let switch = self.switch_at(&members.suites, &from, height);
        let exec = execute::execute(&view, &suite, &self.contracts, &info, block_state(&head.header), &txs, &hashes, switch)?;
        tracing::debug!(height, txs = txs.len(), ms = t_exec.elapsed().as_secs_f64() * 1e3, "produce: executed");
        drop(view);
        // Those past the block gas limit wait for the next block.
        txs.truncate(exec.included);
        hashes.truncate(exec.included);
        let receipts: Vec<Vec<u8>> = exec.receipts.iter().map(Encode::encode).collect();
        let header = BlockHeader {
            channel: self.spec.channel.clone(),
            height,
            parent_hash: head.hash,
            timestamp_ms,
            tx_root: merkle::root_of_leaf_hashes(suite.as_ref(), &hashes)?,
            state_root: exec.state_root.hash,
            receipts_root: merkle::root(suite.as_ref(), &receipts)?,
            proposer: proposer.to_vec(),
            crypto_suite: suite.suite().id.clone(),
            seal: vec![],
        };
        Ok((Block { header, transactions: txs }, hashes, exec))
    }

    /// Validate and commit a block from anywhere (a peer, an import, this node's producer).
    pub fn import(&self, block: Block) -> Result<Arc<CommittedBlock>, ChainError> {
        let _serial = lock(&self.commit_lock);
        self.import_serialized(block)
    }

    fn import_serialized(&self, block: Block) -> Result<Arc<CommittedBlock>, ChainError> {
        let head = self.head();
        if block.header.parent_hash != head.hash
            && block.header.height > 0
            && !(block.header.height == head.height && block.header.hash(self.suite_at(head.height)?.as_ref())? == head.hash)
        {
            return self.import_fork(block);
        }
        let (hashes, exec, started) = self.check(&head, &block, Seal::Verify)?;
        self.commit_executed(&head, block, hashes, exec, started)
    }

    /// A block whose parent is not the head: checked in full on its parent's state and kept
    /// as a side block; when its chain then outweighs the head's, the chain reorganises
    /// onto it (see [`crate::fork`]). A fork deeper than the head's final blocks, the undo
    /// records or the kept state is refused.
    fn import_fork(&self, block: Block) -> Result<Arc<CommittedBlock>, ChainError> {
        let height = block.header.height;
        let hash = block.header.hash(self.suite_at(height)?.as_ref())?;
        let head = self.head();
        let view = Arc::new(self.read()?);
        if view.height_of(&hash)?.is_some() || lock(&self.side).contains(&hash) {
            return Err(ChainError::Known { height });
        }
        let (fork, path) = self.side_path(&view, block.header.parent_hash, height)?;
        let limit = self.reorg_limit(&view, &head, fork)?;
        if head.height - fork > limit {
            return Err(ChainError::BelowFinal { height, fork, depth: head.height - fork, limit });
        }
        // A crypto-suite switch is final before it starts: no fork reaches across it.
        if let Some(a) = self.members().suites.iter().find(|a| a.from_height > fork && a.from_height <= height.max(head.height)) {
            return Err(ChainError::BelowFinal { height, fork, depth: head.height - fork, limit: head.height.saturating_sub(a.from_height) });
        }
        let (state, parent) = self.fork_state(&view, fork, &path)?;
        let (rules, validators) = self.rules_at(state.as_ref(), &parent, height)?;
        let (hashes, exec, _) = self.check_on(&parent, &block, (rules.clone(), validators.clone()), Seal::Verify, || Ok(state))?;
        let weight = rules.weight(&self.engine_header(&block.header)?, &validators)?;
        let side_weight: u128 = {
            let side = lock(&self.side);
            path.iter().filter_map(|h| side.get(h).map(|s| u128::from(s.weight))).sum::<u128>() + u128::from(weight)
        };
        lock(&self.side).insert(SideBlock { block, hash, weight, exec: Some(Arc::new((hashes, exec))) });
        let weights = self.chain_weights(&view, fork, head.height)?;
        let ours: u128 = weights.iter().map(|w| u128::from(*w)).sum();
        // Heaviest wins; between equals the lower tip hash, so that every node that sees
        // both picks the same one (keeping one's own head would leave a tie split for ever
        // when no further block comes, as at the last block before an engine switch).
        if side_weight < ours || (side_weight == ours && hash.0 >= head.hash.0) {
            tracing::info!(channel = %self.spec.channel, height, fork, side_weight, ours, "a block on a side chain kept (the head's chain weighs more, or as much with a lower tip hash)");
            return Err(ChainError::Side { height, fork });
        }
        let mut path = path;
        path.push(hash);
        drop(view);
        self.reorganise(&head, fork, &path, weights)
    }

    /// Whether a block of this hash is on the chain or kept as a side block.
    pub fn knows_block(&self, hash: &Hash32) -> bool {
        lock(&self.side).contains(hash) || self.read().is_ok_and(|v| v.height_of(hash).is_ok_and(|h| h.is_some()))
    }

    /// From `parent` back to the chain: the fork point's height and the side blocks from
    /// there up to `parent`, lowest first.
    fn side_path(&self, view: &StoreView, parent: Hash32, height: u64) -> Result<(u64, Vec<Hash32>), ChainError> {
        let side = lock(&self.side);
        let mut path = vec![];
        let mut cursor = parent;
        loop {
            if let Some(h) = view.height_of(&cursor)? {
                if h + 1 + path.len() as u64 != height {
                    return Err(ChainError::Invalid {
                        height,
                        reason: format!("its parent is at height {}, not {}", h + path.len() as u64, height.saturating_sub(1)),
                    });
                }
                path.reverse();
                return Ok((h, path));
            }
            let Some(s) = side.get(&cursor) else { return Err(ChainError::UnknownParent { height, parent }) };
            path.push(cursor);
            cursor = s.block.header.parent_hash;
        }
    }

    /// Whether a fork from block `fork` may be taken from `head`: the lowest block it takes
    /// off is not final (fewer blocks on it than the finality depth of its own engine, so
    /// an engine switch keeps the old engine's rule for the old blocks), and it is within
    /// the undo records and the state the store keeps. Answers the depth allowed.
    fn reorg_limit(&self, view: &StoreView, head: &Head, fork: u64) -> Result<u64, ChainError> {
        let lowest = fork.saturating_add(1).min(head.height);
        let depth = self.engine_for(lowest)?.finality_depth(&self.members().validators).unwrap_or(0);
        Ok(depth.min(super::store::UNDO_BLOCKS).min(head.height.saturating_sub(view.state_from()?)))
    }

    /// The state after side block `path.last()` (or after block `fork` when `path` is
    /// empty), and that block as a head. Side blocks a reorganisation took off the chain
    /// are executed again on the way.
    fn fork_state(&self, view: &Arc<StoreView>, fork: u64, path: &[Hash32]) -> Result<(Arc<ForkState>, Head), ChainError> {
        let fork_header = view.header(fork)?.ok_or_else(|| StoreError::Corrupt(format!("header {fork} missing")))?;
        let fork_hash = match view.header(fork + 1)? {
            Some(h) => h.parent_hash,
            None => self.head().hash,
        };
        let mut parent = Head { height: fork, hash: fork_hash, header: fork_header };
        let mut execs = Vec::with_capacity(path.len());
        for hash in path {
            let (block, exec) = {
                let side = lock(&self.side);
                let s = side.get(hash).ok_or_else(|| ChainError::NotFound(format!("side block {hash} was dropped")))?;
                (s.block.clone(), s.exec.clone())
            };
            let exec = match exec {
                Some(e) => e,
                None => {
                    let state = Arc::new(ForkState::new(view.clone(), fork, execs.clone())?);
                    let rules = self.rules_at(state.as_ref(), &parent, block.header.height)?;
                    let (hashes, exec, _) = self.check_on(&parent, &block, rules, Seal::Later, || Ok(state))?;
                    let e = Arc::new((hashes, exec));
                    lock(&self.side).set_exec(hash, e.clone());
                    e
                }
            };
            execs.push(exec);
            parent = Head { height: block.header.height, hash: *hash, header: block.header };
        }
        Ok((Arc::new(ForkState::new(view.clone(), fork, execs)?), parent))
    }

    /// The engine and validators of block `height`, from its parent's state.
    fn rules_at<S: NodeStore>(&self, state: &S, parent: &Head, height: u64) -> Result<(Arc<dyn ConsensusEngine>, Vec<Validator>), ChainError> {
        let governed = self.governed_at(state, &block_state(&parent.header))?;
        let suite = self.suite_in(&governed.suites, height)?;
        let members = CurrentMembers::new(governed.members, governed.engines, governed.suites, suite.as_ref())?;
        Ok((self.engine_in(&members.engines, height)?, members.validators))
    }

    /// What each of blocks `fork + 1 ..= top` of the chain weighs, by the engine of its height.
    fn chain_weights(&self, view: &StoreView, fork: u64, top: u64) -> Result<Vec<u64>, ChainError> {
        let validators = self.members().validators.clone();
        (fork + 1..=top)
            .map(|h| {
                let header = view.header(h)?.ok_or_else(|| StoreError::Corrupt(format!("header {h} missing")))?;
                Ok(self.engine_for(h)?.weight(&self.engine_header(&header)?, &validators)?)
            })
            .collect()
    }

    /// Replace the blocks above `fork` with the side blocks `path` (executed), in one store
    /// transaction; the blocks taken off (weighing `old_weights`) become side blocks, and
    /// their transactions that the new chain lacks go back to the pool.
    fn reorganise(&self, head: &Head, fork: u64, path: &[Hash32], old_weights: Vec<u64>) -> Result<Arc<CommittedBlock>, ChainError> {
        let started = Instant::now();
        let view = Arc::new(self.read()?);
        // Executions for every block of the path (a block moved off earlier has none yet).
        let (_, tip) = self.fork_state(&view, fork, path)?;
        let new: Vec<(Block, Hash32, Executed)> = {
            let side = lock(&self.side);
            path.iter()
                .map(|h| {
                    let s = side.get(h).ok_or_else(|| ChainError::NotFound(format!("side block {h} was dropped")))?;
                    let e = s.exec.clone().ok_or_else(|| ChainError::NotFound(format!("side block {h} is not executed")))?;
                    Ok((s.block.clone(), *h, e))
                })
                .collect::<Result<_, ChainError>>()?
        };
        let mut old = Vec::with_capacity((head.height - fork) as usize);
        for h in fork + 1..=head.height {
            let block = view.block(h)?.ok_or_else(|| StoreError::Corrupt(format!("block {h} missing")))?;
            let hash = match view.header(h + 1)? {
                Some(next) if h < head.height => next.parent_hash,
                _ => head.hash,
            };
            old.push((block, hash));
        }
        let fork_header = view.header(fork)?.ok_or_else(|| StoreError::Corrupt(format!("header {fork} missing")))?;
        drop(view);
        let commits: Vec<BlockCommit<'_>> = new
            .iter()
            .map(|(b, hash, e)| BlockCommit {
                block: b,
                hash: *hash,
                tx_hashes: &e.0,
                receipts: &e.1.receipts,
                nodes: &e.1.nodes,
                stale: &e.1.stale,
                next_tree: e.1.next_tree,
                events: &e.1.events,
                codes: &e.1.codes,
                contract_kv: &e.1.contract_kv,
                storage_keys: &e.1.storage_keys,
            })
            .collect();
        match self.store.reorganise(fork, &commits) {
            Ok(()) => {}
            Err(e @ StoreError::Reorg(_)) => return Err(e.into()),
            Err(e) => return Err(self.commit_failed(tip.height, e)),
        }
        drop(commits);
        {
            let mut side = lock(&self.side);
            for h in path {
                side.remove(h);
            }
            for ((block, hash), weight) in old.iter().cloned().zip(old_weights) {
                side.insert(SideBlock { block, hash, weight, exec: None });
            }
        }
        lock(&self.candidates).clear();
        *write(&self.head) = tip.clone();
        self.refresh_members(&Default::default())?;
        let mut parent = Head { height: fork, hash: old.first().map_or(head.hash, |(b, _)| b.header.parent_hash), header: fork_header };
        let mut last = None;
        let mut included = std::collections::HashSet::new();
        for (block, hash, e) in new {
            included.extend(e.0.iter().copied());
            let next = Head { height: block.header.height, hash, header: block.header.clone() };
            let c = Arc::new(CommittedBlock { hash, block, receipts: e.1.receipts.clone() });
            self.after_commit(&parent, &c, started);
            parent = next;
            last = Some(c);
        }
        // The pool learns the nonces of the new chain for every sender of the blocks taken
        // off (lower than it thought: what it holds of theirs waits for the gap to fill),
        // then takes back their transactions the new chain lacks, and gossips them.
        if let Ok(view) = self.read() {
            let root = block_state(&parent.header);
            let mut senders: std::collections::HashMap<&[u8], u64> = std::collections::HashMap::new();
            for tx in old.iter().flat_map(|(b, _)| &b.transactions) {
                let sender = tx.body.sender.as_slice();
                if !senders.contains_key(sender)
                    && let Ok(next) = self.next_nonce(&view, &root, sender)
                {
                    senders.insert(sender, next);
                }
            }
            drop(view);
            lock(&self.pool).prune(senders, &std::collections::HashSet::new(), joule_support::now_ms());
        }
        let old_suite = self.suite_at(fork + 1)?;
        let back: Vec<Transaction> =
            old.into_iter().flat_map(|(b, _)| b.transactions).filter(|t| t.hash(old_suite.as_ref()).is_ok_and(|h| !included.contains(&h))).collect();
        let returned = back.len();
        let verdicts = self.admit_batch(back.clone());
        let readmitted: Vec<Transaction> = back.into_iter().zip(&verdicts).filter(|(_, v)| v.is_ok()).map(|(t, _)| t).collect();
        let readmitted_count = readmitted.len();
        if !readmitted.is_empty() {
            // No subscribers is fine.
            let _ = self.admitted.send(Arc::new(readmitted));
        }
        let ch = self.spec.channel.to_string();
        metrics::counter!("chain_reorgs_total", "channel" => ch.clone()).increment(1);
        metrics::histogram!("chain_reorg_depth_blocks", "channel" => ch).record((head.height - fork) as f64);
        tracing::warn!(
            channel = %self.spec.channel, fork, old_head = head.height, new_head = parent.height, returned, readmitted = readmitted_count,
            "reorganised onto a heavier chain"
        );
        last.ok_or_else(|| ChainError::NotFound("an empty reorganisation".into()))
    }

    /// A block a peer proposed on the head, before its seal (BFT: the validators vote on
    /// it, then seal it together): checked and executed as an import is, all but the seal,
    /// and kept as blocks built here are, until the participant commits it with a seal
    /// ([`Chain::commit_built`]) or the head moves. Answers the engine's view of it.
    pub fn accept_proposal(&self, block: Block) -> Result<EngineHeader, ChainError> {
        let _serial = lock(&self.commit_lock);
        let head = self.head();
        if let Some(known) = lock(&self.candidates).iter().find(|c| c.parent == head.hash && c.block.header == block.header) {
            return self.engine_header(&known.block.header);
        }
        let (hashes, exec, started) = self.check(&head, &block, Seal::Later)?;
        let seal_hash = self.suite_at(block.header.height)?.hash(&block.header.sealing_bytes())?;
        let header = self.engine_header(&block.header)?;
        self.keep_candidate(Candidate { seal_hash, parent: head.hash, block, hashes, exec, started });
        Ok(header)
    }

    /// The unsealed block kept under `seal_hash` (built here or accepted from a peer), to
    /// send as a proposal.
    pub fn candidate_block(&self, seal_hash: &[u8]) -> Option<Block> {
        lock(&self.candidates).iter().find(|c| c.seal_hash.0.as_slice() == seal_hash).map(|c| c.block.clone())
    }

    fn keep_candidate(&self, c: Candidate) {
        let mut candidates = lock(&self.candidates);
        candidates.retain(|k| k.parent == c.parent && k.seal_hash != c.seal_hash);
        if candidates.len() >= MAX_CANDIDATES {
            candidates.remove(0);
        }
        candidates.push(c);
    }

    /// Everything an import checks of `block` on `head`, the seal when `seal` says so; its
    /// transaction hashes and execution.
    fn check(&self, head: &Head, block: &Block, seal: Seal) -> Result<(Vec<Hash32>, execute::Execution, Instant), ChainError> {
        let rules = (self.engine()?, self.members().validators.clone());
        self.check_on(head, block, rules, seal, || Ok(Arc::new(self.read()?)))
    }

    /// [`Self::check`] on any parent: `head` is the parent, `rules` the engine and
    /// validators of the block's height, `seal` whether its seal is checked now, `state`
    /// the parent's state.
    fn check_on<S: execute::StateStore>(
        &self,
        head: &Head,
        block: &Block,
        rules: (Arc<dyn ConsensusEngine>, Vec<Validator>),
        seal: Seal,
        state: impl FnOnce() -> Result<Arc<S>, ChainError>,
    ) -> Result<(Vec<Hash32>, execute::Execution, Instant), ChainError> {
        if let Some(f) = self.health.fault() {
            return Err(ChainError::StorageFailed(f.reason));
        }
        let started = Instant::now();
        let h = &block.header;
        let height = h.height;
        let invalid = |reason: String| ChainError::Invalid { height, reason };
        block.validate().map_err(|e| invalid(e.to_string()))?;
        if h.channel != self.spec.channel {
            return Err(invalid(format!("it belongs to channel {}, not {}", h.channel, self.spec.channel)));
        }
        let members = self.members();
        let suite = self.suite_in(&members.suites, height)?;
        if h.crypto_suite != suite.suite().id {
            return Err(invalid(format!("crypto suite {} is not the channel's at this height ({})", h.crypto_suite, suite.suite().id)));
        }
        if height == head.height && h.hash(self.suite_in(&members.suites, head.height)?.as_ref())? == head.hash {
            return Err(ChainError::Known { height });
        }
        if height != head.height + 1 || h.parent_hash != head.hash {
            return Err(invalid(format!("it does not extend the head (height {}, hash {})", head.height, head.hash)));
        }
        let policy = self.policy();
        if block.transactions.len() > policy.max_transactions as usize {
            return Err(invalid(format!("{} transactions, over the policy's {}", block.transactions.len(), policy.max_transactions)));
        }
        let (engine, validators) = &rules;
        if seal == Seal::Verify {
            engine.verify_header(&self.engine_header(&head.header)?, &self.engine_header(h)?, validators).map_err(|e| invalid(e.to_string()))?;
        }
        let hashes = parallel_map(&block.transactions, |t| t.hash(suite.as_ref())).into_iter().collect::<Result<Vec<Hash32>, _>>()?;
        if merkle::root_of_leaf_hashes(suite.as_ref(), &hashes)? != h.tx_root {
            return Err(invalid("the transactions root does not match its transactions".into()));
        }
        // Signatures: those this node admitted were verified once, at admission.
        let unverified: Vec<usize> = {
            let pool = lock(&self.pool);
            (0..hashes.len()).filter(|&i| !pool.contains(&hashes[i])).collect()
        };
        for &i in &unverified {
            let tx = &block.transactions[i];
            if tx.body.sig_alg != suite.suite().signature {
                return Err(invalid(format!("transaction {i} is signed with {}, not {}", tx.body.sig_alg, suite.suite().signature)));
            }
        }
        let verdicts = parallel_map(&unverified, |&i| verify_signature(&block.transactions[i], suite.as_ref()));
        if let Some((i, e)) = unverified.iter().zip(verdicts).find_map(|(i, v)| v.err().map(|e| (i, e))) {
            return Err(invalid(format!("transaction {i}: {e}")));
        }
        for (i, tx) in block.transactions.iter().enumerate() {
            if tx.body.gas_limit > self.spec.gas_limit {
                return Err(invalid(format!("transaction {i} declares gas {} over the channel's limit {}", tx.body.gas_limit, self.spec.gas_limit)));
            }
        }
        let view = state()?;
        tracing::debug!(height, ms = started.elapsed().as_secs_f64() * 1e3, "import: header, roots and signatures checked");
        let finality_depth = engine.finality_depth(validators)?;
        let info = BlockInfo { channel: self.spec.channel.to_string(), height, timestamp_ms: h.timestamp_ms, mode: Mode::Import, finality_depth };
        let from = self.suite_in(&members.suites, head.height)?;
        let switch = self.switch_at(&members.suites, &from, height);
        let exec = match execute::execute(&view, &suite, &self.contracts, &info, block_state(&head.header), &block.transactions, &hashes, switch) {
            Ok(e) => e,
            // This node failed, not the block: say so rather than call the block invalid.
            Err(ExecError::Vm { index, fault }) => return Err(ChainError::Contract(format!("transaction {index}: {fault}"))),
            Err(e) => return Err(invalid(e.to_string())),
        };
        tracing::debug!(height, ms = started.elapsed().as_secs_f64() * 1e3, "import: re-executed");
        drop(view);
        if exec.state_root.hash != h.state_root {
            return Err(invalid(format!("state root {} but execution gives {}", h.state_root, exec.state_root.hash)));
        }
        let receipts: Vec<Vec<u8>> = exec.receipts.iter().map(Encode::encode).collect();
        if merkle::root(suite.as_ref(), &receipts)? != h.receipts_root {
            return Err(invalid("the receipts root does not match execution".into()));
        }
        Ok((hashes, exec, started))
    }

    /// Write a block whose execution `exec` is known to match its header, and make it the
    /// head (the caller holds the commit lock; `head` is its parent).
    fn commit_executed(
        &self,
        head: &Head,
        block: Block,
        hashes: Vec<Hash32>,
        exec: execute::Execution,
        started: Instant,
    ) -> Result<Arc<CommittedBlock>, ChainError> {
        if let Some(f) = self.health.fault() {
            return Err(ChainError::StorageFailed(f.reason));
        }
        let height = block.header.height;
        let hash = block.header.hash(self.suite_at(height)?.as_ref())?;
        self.store
            .commit(BlockCommit {
                block: &block,
                hash,
                tx_hashes: &hashes,
                receipts: &exec.receipts,
                nodes: &exec.nodes,
                stale: &exec.stale,
                next_tree: exec.next_tree,
                events: &exec.events,
                codes: &exec.codes,
                contract_kv: &exec.contract_kv,
                storage_keys: &exec.storage_keys,
            })
            .map_err(|e| self.commit_failed(height, e))?;
        tracing::debug!(height, ms = started.elapsed().as_secs_f64() * 1e3, "committed");
        let switch_next = self.members().suites.iter().any(|a| a.from_height == height + 1 || a.from_height == height);
        let committed = Arc::new(CommittedBlock { hash, block, receipts: exec.receipts });
        if let Some(g) = &exec.governance {
            tracing::info!(channel = %self.spec.channel, height, validators = g.members.validators.len(), nodes = g.members.nodes.len(), engine_switches = g.engines.len(), suite_switches = g.suites.len(), "the channel's governance state changed by vote");
        }
        // The head moves first: the members are those of the block after it.
        *write(&self.head) = Head { height, hash, header: committed.block.header.clone() };
        if (exec.governance.is_some() || switch_next)
            && let Err(e) = self.refresh_members(&committed.receipts.iter().map(|r| r.tx_hash).collect())
        {
            tracing::error!(channel = %self.spec.channel, "applying the new members failed: {e}");
        }
        self.after_commit(head, &committed, started);
        Ok(committed)
    }

    fn after_commit(&self, parent: &Head, c: &Arc<CommittedBlock>, started: Instant) {
        let header = c.block.header.clone();
        *write(&self.head) = Head { height: header.height, hash: c.hash, header: header.clone() };
        // A fork below the undo records can no longer be taken.
        if header.height > super::store::UNDO_BLOCKS && !lock(&self.side).is_empty() {
            lock(&self.side).prune_to(header.height - super::store::UNDO_BLOCKS);
        }
        // The pool hears of the block's senders only, their nonces read before its lock.
        if let Ok(view) = self.read() {
            let mut senders: std::collections::HashMap<&[u8], u64> = std::collections::HashMap::new();
            for tx in &c.block.transactions {
                let sender = tx.body.sender.as_slice();
                if !senders.contains_key(sender)
                    && let Ok(next) = self.next_nonce(&view, &block_state(&header), sender)
                {
                    senders.insert(sender, next);
                }
            }
            let committed: std::collections::HashSet<Hash32> = c.receipts.iter().map(|r| r.tx_hash).collect();
            drop(view);
            lock(&self.pool).prune(senders, &committed, joule_support::now_ms());
        }
        let ch = self.spec.channel.to_string();
        metrics::gauge!("chain_head_block", "channel" => ch.clone()).set(header.height as f64);
        metrics::histogram!("chain_block_interval_seconds", "channel" => ch.clone())
            .record(header.timestamp_ms.saturating_sub(parent.header.timestamp_ms) as f64 / 1000.0);
        metrics::histogram!("chain_block_transactions", "channel" => ch.clone()).record(c.block.transactions.len() as f64);
        metrics::counter!("chain_transactions_total", "channel" => ch.clone()).increment(c.block.transactions.len() as u64);
        if self.contracts.identity.is_some() {
            // What the block recorded about certificates (§4.6.7: the console shows it).
            for e in c.receipts.iter().flat_map(|r| &r.events) {
                if matches!(e.topic.as_str(), "certificate_registered" | "certificate_renewed" | "certificate_revoked") {
                    metrics::counter!("chain_certificate_events_total", "channel" => ch.clone(), "event" => e.topic.clone()).increment(1);
                }
            }
        }
        metrics::histogram!("chain_commit_seconds", "channel" => ch).record(started.elapsed().as_secs_f64());
        // No subscribers is fine.
        let _ = self.blocks.send(c.clone());
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>, ChainError> {
        Ok(self.read()?.block(height)?)
    }

    pub fn block_by_hash(&self, hash: &Hash32) -> Result<Option<Block>, ChainError> {
        let view = self.read()?;
        match view.height_of(hash)? {
            Some(h) => Ok(view.block(h)?),
            None => Ok(None),
        }
    }

    pub fn tx_hashes(&self, height: u64) -> Result<Option<Vec<Hash32>>, ChainError> {
        Ok(self.read()?.tx_hashes(height)?)
    }

    pub fn receipts(&self, height: u64) -> Result<Option<Vec<Receipt>>, ChainError> {
        Ok(self.read()?.receipts(height)?)
    }

    pub fn tx(&self, hash: &Hash32) -> Result<Option<TxRecord>, ChainError> {
        let view = self.read()?;
        let Some(at) = view.tx_location(hash)? else { return Ok(None) };
        let (transaction, receipt) = view.tx(at)?.ok_or_else(|| StoreError::Corrupt(format!("transaction {hash} at {}/{}", at.height, at.index)))?;
        let header = view.header(at.height)?.ok_or_else(|| StoreError::Corrupt(format!("block {} of transaction {hash}", at.height)))?;
        Ok(Some(TxRecord {
            hash: *hash,
            transaction,
            receipt,
            block_height: at.height,
            block_hash: header.hash(self.suite_at(at.height)?.as_ref())?,
            index: at.index,
        }))
    }

    /// Events of a contract (or a data-record sender), optionally of one topic, oldest
    /// first, from the events index; at most `limit`.
    pub fn events(&self, contract: &Hash32, topic: Option<&str>, limit: usize) -> Result<Vec<EventRecord>, ChainError> {
        self.events_in(contract, topic, 0, u64::MAX, limit)
    }

    /// Events of `contract` (of `topic`, when given) in blocks `from..=to`, in chain order
    /// (block, transaction, event), at most `limit`.
    pub fn events_in(&self, contract: &Hash32, topic: Option<&str>, from: u64, to: u64, limit: usize) -> Result<Vec<EventRecord>, ChainError> {
        let view = self.read()?;
        // Without a topic the index yields topic by topic: take every location in range,
        // then order them (bounded by the range the caller asked for).
        let fetch = if topic.is_some() { limit } else { usize::MAX };
        let mut locations = vec![];
        match topic {
            None => locations = view.event_locations_in(contract, None, from, to, fetch)?,
            // A topic is indexed by its hash in the suite of each block: ask for each suite's.
            Some(t) => {
                for (suite, lo, hi) in self.suite_ranges(from, to)? {
                    let h = suite.hash(t.as_bytes())?;
                    locations.extend(view.event_locations_in(contract, Some(&h), lo, hi, fetch)?);
                }
            }
        }
        locations.sort();
        locations.dedup();
        let mut out = vec![];
        for at in locations {
            let (_, receipt) = view.tx(at)?.ok_or_else(|| StoreError::Corrupt(format!("indexed transaction {}/{}", at.height, at.index)))?;
            // The index keys on prefixes: the receipt says whose events these are.
            for (n, e) in receipt.events.iter().enumerate().filter(|(_, e)| &e.contract == contract && topic.is_none_or(|t| e.topic == t)) {
                if out.len() == limit {
                    return Ok(out);
                }
                out.push(EventRecord {
                    height: at.height,
                    index: at.index,
                    event_index: n as u32,
                    tx_hash: receipt.tx_hash,
                    topic: e.topic.clone(),
                    indexed: e.indexed.clone(),
                    data: e.data.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Whether a transaction is waiting in the pool.
    pub fn pending(&self, hash: &Hash32) -> bool {
        lock(&self.pool).contains(hash)
    }

    /// Where the pool has a transaction: pending, queued, or evicted after it was accepted.
    pub fn pool_status(&self, hash: &Hash32) -> Option<PoolStatus> {
        lock(&self.pool).status(hash)
    }

    /// An account at the head, by id (the suite hash of its public key).
    pub fn account(&self, id: &Hash32) -> Result<AccountAnswer, ChainError> {
        self.account_at_height(id, None)
    }

    /// An account at `height` (`None`: the head), by id, with its proof against that
    /// block's state root. [`ChainError::Pruned`] when the node no longer keeps that state.
    pub fn account_at_height(&self, id: &Hash32, height: Option<u64>) -> Result<AccountAnswer, ChainError> {
        let view = self.read()?;
        let (root, block_hash) = self.state_at(&view, height)?;
        let account = self.account_at(&view, &root, id)?.map(|a| a.account);
        let suite = self.suite_at(root.version)?;
        let proof = Smt::new(&view, suite.as_ref(), u64::MAX).prove(&root, id)?;
        Ok(AccountAnswer {
            id: *id,
            height: root.version,
            block_hash,
            state_root: root.hash,
            account_encoding: account.as_ref().map(Encode::encode).unwrap_or_default(),
            account,
            proof: Some(proof),
        })
    }

    /// A storage key of an account at the head, with proofs when asked.
    pub fn state(&self, contract: &Hash32, key: &str, with_proof: bool) -> Result<StateAnswer, ChainError> {
        self.state_at_height(contract, key, with_proof, None)
    }

    /// A storage key of an account at `height` (`None`: the head), with proofs against that
    /// block's state root when asked. [`ChainError::Pruned`] when the node no longer keeps
    /// that state.
    pub fn state_at_height(&self, contract: &Hash32, key: &str, with_proof: bool, height: Option<u64>) -> Result<StateAnswer, ChainError> {
        let view = self.read()?;
        let (root, block_hash) = self.state_at(&view, height)?;
        let suite = self.suite_at(root.version)?;
        let smt = Smt::new(&view, suite.as_ref(), u64::MAX);
        let account = self.account_at(&view, &root, contract)?;
        let storage = account.as_ref().and_then(AccountState::storage_root);
        let storage_root = storage.map_or(EMPTY, |r| r.hash);
        let key_hash = suite.hash(key.as_bytes())?;
        let leaf = match &storage {
            Some(r) => smt.get(r, &key_hash)?,
            None => None,
        };
        let value = match leaf {
            Some(leaf) => Some(match StoredValue::decode(&leaf.data) {
                Some(StoredValue::Inline(v)) => v,
                Some(StoredValue::InTx(at)) => view.data_value(at)?,
                None => return Err(StoreError::Corrupt(format!("storage leaf {key_hash} of {contract}")).into()),
            }),
            None => None,
        };
        let proof = if with_proof {
            let storage_proof = match &storage {
                Some(r) => smt.prove(r, &key_hash)?,
                None => StateProof { siblings: vec![], terminal: joule_primitives::smt::Terminal::Empty },
            };
            Some(StateProofs {
                account_encoding: account.as_ref().map(|a| a.account.encode()).unwrap_or_default(),
                account: smt.prove(&root, contract)?,
                storage_root,
                storage: storage_proof,
            })
        } else {
            None
        };
        Ok(StateAnswer { contract: *contract, key: key.into(), key_hash, value, height: root.version, block_hash, state_root: root.hash, proof })
    }

    /// The state root of block `height` (`None`: the head) and the block's hash, if the
    /// node keeps that state.
    fn state_at(&self, view: &StoreView, height: Option<u64>) -> Result<(Root, Hash32), ChainError> {
        let Some(height) = height else { return self.head_state(view) };
        let head = view.head()?.map_or(0, |(h, _)| h);
        if height > head {
            return Err(ChainError::NoSuchHeight { height, head });
        }
        let oldest = view.state_from()?;
        if height < oldest {
            return Err(ChainError::Pruned { height, oldest });
        }
        let header = view.header(height)?.ok_or_else(|| StoreError::Corrupt(format!("block {height} missing")))?;
        Ok((block_state(&header), header.hash(self.suite_at(height)?.as_ref())?))
    }

    /// The switch block `height` starts, if it starts one: its parent's suite `from` and
    /// the activation.
    fn switch_at<'a>(&self, schedule: &'a [SuiteActivation], from: &'a Arc<dyn ChainCrypto>, height: u64) -> Option<execute::SuiteSwitch<'a>> {
        let a = schedule.iter().find(|a| a.from_height == height)?;
        (a.suite != from.suite().id).then_some(execute::SuiteSwitch { from: from.as_ref(), activation: a })
    }

    /// The blocks `from..=to` split by suite: each suite with the heights it served.
    fn suite_ranges(&self, from: u64, to: u64) -> Result<Vec<SuiteRange>, ChainError> {
        let mut starts: Vec<u64> = vec![0];
        starts.extend(self.members().suites.iter().map(|a| a.from_height));
        starts.sort_unstable();
        starts.dedup();
        let mut out = vec![];
        for (i, start) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(u64::MAX, |n| n - 1);
            let (lo, hi) = (from.max(*start), to.min(end));
            if lo <= hi {
                out.push((self.suite_at(lo)?, lo, hi));
            }
        }
        Ok(out)
    }
}

/// The state a block leaves: its root node is stored at the block's height.
fn block_state(header: &BlockHeader) -> Root {
    Root { tree: GLOBAL_TREE, version: header.height, hash: header.state_root }
}

/// `f` over `items` on every core, results in order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < 2 || cores == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(cores);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(chunk).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

/// Block 0: no transactions, empty state, its parent hash the hash of the chain spec.
pub fn genesis_block(spec: &ChainSpec, suite: &dyn ChainCrypto) -> Result<Block, ChainError> {
    let empty: [&[u8]; 0] = [];
    Ok(Block {
        header: BlockHeader {
            channel: spec.channel.clone(),
            height: 0,
            parent_hash: spec.hash(suite)?,
            timestamp_ms: spec.genesis_time_ms,
            tx_root: merkle::root_of_leaf_hashes(suite, &[])?,
            state_root: EMPTY,
            receipts_root: merkle::root(suite, &empty)?,
            proposer: vec![],
            crypto_suite: spec.crypto_suite.id.clone(),
            seal: vec![],
        },
        transactions: vec![],
    })
}

/// Whether `hash`, read as a big-endian number, is at most `target` (big-endian; a shorter
/// one is padded with leading zeros).
pub fn meets_target(hash: &[u8], target: &[u8]) -> bool {
    // Called once per nonce tried: compared in place, without padded copies.
    let width = hash.len().max(target.len());
    let digit = |b: &[u8], i: usize| i.checked_sub(width - b.len()).and_then(|j| b.get(j).copied()).unwrap_or(0);
    for i in 0..width {
        match digit(hash, i).cmp(&digit(target, i)) {
            std::cmp::Ordering::Less => return true,
            std::cmp::Ordering::Greater => return false,
            std::cmp::Ordering::Equal => {}
        }
    }
    true
}

impl Chain {
    /// Record an attempt to make a block (the consensus driver's builds and commits), for
    /// the health check: an error is shown until the next attempt succeeds.
    pub fn production_attempted(&self, error: Option<&str>) {
        if let Some(e) = error {
            metrics::counter!("chain_production_failures_total", "channel" => self.spec.channel.to_string()).increment(1);
            tracing::error!(channel = %self.spec.channel, "block production failed: {e}");
        }
        self.health.attempted(error.map(str::to_string));
    }

    /// The consensus driver is running, with no block due (for the health check's "has not
    /// run for" window; the last production error, if any, stands).
    pub fn production_alive(&self) {
        self.health.alive();
    }

    /// What the consensus participant last asked to keep (empty: nothing).
    pub fn consensus_state(&self) -> Result<Vec<u8>, ChainError> {
        Ok(self.read()?.meta(CONSENSUS_STATE)?.unwrap_or_default())
    }

    /// Keep the consensus participant's state across a restart.
    pub fn set_consensus_state(&self, state: &[u8]) -> Result<(), ChainError> {
        Ok(self.store.set_meta(CONSENSUS_STATE, state)?)
    }
}

/// The store's meta key of the consensus participant's state.
const CONSENSUS_STATE: &str = "consensus-participant";

/// Keep a channel's store healthy: while it is failed, retry reopening it (with backoff,
/// see [`Chain::recover`]); after commits, compact it when it has grown enough.
pub async fn run_maintenance(chain: Arc<Chain>) {
    const RECOVERY_POLL: std::time::Duration = std::time::Duration::from_millis(50);
    let mut blocks = chain.subscribe();
    loop {
        if chain.health.fault().is_some() {
            let c = chain.clone();
            let _ = tokio::task::spawn_blocking(move || c.recover()).await;
            tokio::time::sleep(RECOVERY_POLL).await;
            continue;
        }
        tokio::select! {
            b = blocks.recv() => if let Err(tokio::sync::broadcast::error::RecvError::Closed) = b { return },
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
        }
        if chain.compaction_due() {
            let c = chain.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || c.compact_store()).await {
                tracing::warn!(channel = %chain.spec.channel, "compacting the chain store failed: {e}");
            }
        }
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "identity_tests.rs"]
mod identity_tests;

#[cfg(test)]
#[path = "fork_tests.rs"]
mod fork_tests;
