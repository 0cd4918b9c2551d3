//! The transaction pool: admission checks, executable and future transactions kept apart,
//! bounded memory, and no transaction lost without a trace.
//!
//! Admission (in this order, each failure a [`Rejection`] with a stable code): encoding and
//! size, channel, signature algorithm of the channel's suite, payload supported, gas limit
//! within the channel's limit and above the intrinsic cost, nonce not already used and not
//! too far ahead, not a duplicate, signature — verified once, here, through the plugin.
//!
//! As in geth's pool, a sender's transactions are in one of two parts. **Pending**: the run
//! of consecutive nonces from the account's next nonce, which a block can carry now.
//! **Queued**: the rest, waiting for a gap to fill. Nothing says a gap ever fills (a key
//! used once, with nonce 1, never executes), so the queued part is much smaller, a sender
//! may hold few transactions there, and they expire after
//! [`PoolConfig::queued_lifetime_ms`]. A queued transaction is promoted when the gap before
//! it fills: by an arrival, or by a commit that advances the account's nonce.
//!
//! A full part makes room in O(log n), through ordered indexes, never by scanning senders:
//! a queued newcomer takes the place of the oldest queued transaction of another sender; a
//! pending newcomer takes the newest nonce of the sender with the most pending, only if
//! that sender keeps more than the newcomer's, so nobody pushes out others' executable
//! transactions to add more of its own: it is refused (`pool_full`) instead.
//! [`TxPool::ready`] walks only senders with pending transactions, in order of arrival, and
//! [`TxPool::prune`] only the senders of the committed block. A transaction that leaves
//! the pool after it was accepted, other than in a block, is remembered with why
//! ([`TxPool::status`]) among the most recent [`PoolConfig::evictions_remembered`], and
//! counted in `txpool_evictions_total`, so a client told "accepted" can find out.

use super::execute::{intrinsic_gas, supported};
use joule_primitives::{ChainCrypto, ChannelId, Encode, Hash32, SuiteError, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// Why a transaction was refused. `code()` is stable, for APIs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed transaction: {0}")]
    Malformed(String),
    #[error("transaction is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("transaction is for channel {got}, this is {want}")]
    WrongChannel { got: String, want: String },
    #[error("signature algorithm {got} is not the channel's ({want})")]
    WrongAlgorithm { got: String, want: String },
    #[error("{0} payloads are not executable by this node version")]
    Unsupported(&'static str),
    #[error("gas limit {got} is over the channel's limit of {limit}")]
    GasOverLimit { got: u64, limit: u64 },
    #[error("gas limit {got} is below the transaction's intrinsic cost of {need}")]
    GasBelowIntrinsic { got: u64, need: u64 },
    #[error("nonce {got} was already used (the account is at {next})")]
    NonceUsed { got: u64, next: u64 },
    #[error("nonce {got} is more than {max_ahead} ahead of the account's next nonce {next}")]
    NonceTooFarAhead { got: u64, next: u64, max_ahead: u64 },
    #[error("transaction {0} is already pending")]
    Duplicate(Hash32),
    #[error("signature does not verify")]
    BadSignature,
    #[error("the sender has {limit} {part} transactions in the pool, the most one sender may have")]
    SenderLimit { part: &'static str, limit: usize },
    #[error("the pool is full")]
    PoolFull,
    #[error("cannot check the transaction: {0}")]
    Internal(String),
    /// The code cannot be deployed (e.g. it imports outside the `joule:contract` world).
    #[error("{0}")]
    DeployRefused(String),
    /// The sender lacks the permission the transaction needs.
    #[error("{0}")]
    NotPermitted(String),
    /// The chain's store failed; admission resumes when it has recovered.
    #[error("the channel's storage failed and is recovering; try again later: {0}")]
    StorageFailed(String),
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::TooLarge { .. } => "too_large",
            Rejection::WrongChannel { .. } => "wrong_channel",
            Rejection::WrongAlgorithm { .. } => "wrong_algorithm",
            Rejection::Unsupported(_) => "unsupported_payload",
            Rejection::GasOverLimit { .. } => "gas_over_limit",
            Rejection::GasBelowIntrinsic { .. } => "gas_below_intrinsic",
            Rejection::NonceUsed { .. } => "nonce_used",
            Rejection::NonceTooFarAhead { .. } => "nonce_too_far_ahead",
            Rejection::Duplicate(_) => "duplicate",
            Rejection::BadSignature => "bad_signature",
            Rejection::SenderLimit { .. } => "sender_limit",
            Rejection::PoolFull => "pool_full",
            Rejection::Internal(_) => "internal",
            Rejection::DeployRefused(_) => "deploy_refused",
            Rejection::NotPermitted(_) => "not_permitted",
            Rejection::StorageFailed(_) => "storage_failed",
        }
    }
}

/// The pool's limits. Pending and queued have their own, the queued ones much smaller: a
/// flood of transactions that can never execute fills the queue, never the pending part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Executable transactions kept, all senders together.
    pub max_pending: usize,
    pub max_pending_bytes: usize,
    /// Future-nonce transactions kept, all senders together.
    pub max_queued: usize,
    pub max_queued_bytes: usize,
    /// One sender's pending transactions: room for a client's batch, not for the pool.
    pub max_pending_per_sender: usize,
    /// One sender's queued transactions.
    pub max_queued_per_sender: usize,
    /// How long a transaction may wait in the queued part before it is dropped.
    pub queued_lifetime_ms: u64,
    /// Evicted and expired transactions remembered for status lookups (the most recent).
    pub evictions_remembered: usize,
    pub max_tx_bytes: usize,
    /// How far past the account's next nonce a transaction may queue.
    pub max_nonce_ahead: u64,
    /// The channel's per-transaction gas limit (§5.2.1 燃料限制).
    pub gas_limit: u64,
    /// Whether the node runs contracts (set by the chain, not configured).
    pub contracts: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_pending: 50_000,
            max_pending_bytes: 256 << 20,
            max_queued: 5_000,
            max_queued_bytes: 32 << 20,
            max_pending_per_sender: 1_000,
            max_queued_per_sender: 64,
            queued_lifetime_ms: 10 * 60 * 1000,
            evictions_remembered: 100_000,
            // A contract deployment carries its code (up to 800 KiB).
            max_tx_bytes: joule_primitives::MAX_TX_BYTES,
            max_nonce_ahead: 1_000,
            gas_limit: 10_000_000,
            contracts: false,
        }
    }
}

/// A transaction that passed every check but the signature.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    pub hash: Hash32,
    size: usize,
    next: u64,
    /// The pool's commit count when `next` was read from the state.
    commits: u64,
}

impl Checked {
    /// Say that the nonce was read from the state when the pool had seen `commits`
    /// commits ([`TxPool::commits`], read before the state): a commit since then makes
    /// [`TxPool::insert`] read the nonce again for a sender it no longer holds.
    pub fn read_at(self, commits: u64) -> Self {
        Checked { commits, ..self }
    }
}

/// Why a transaction left the pool without being committed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvictionReason {
    /// The pending part was full and its sender held the most pending transactions.
    PendingFull,
    /// The queued part was full and it was the oldest queued transaction.
    QueuedFull,
    /// It waited in the queued part longer than the pool's lifetime.
    Expired { lifetime_ms: u64 },
    /// Another transaction of its sender with the same nonce was committed.
    NonceUsed,
    /// The chain switched its crypto suite: it was hashed and signed under the old one.
    SuiteSwitched { suite: String, from_height: u64 },
    /// Its sender may no longer send (on a chain with certificates: revoked, expired).
    NotPermitted { why: String },
}

impl EvictionReason {
    /// Stable, for APIs and the `reason` label of `txpool_evictions_total`.
    pub fn code(&self) -> &'static str {
        match self {
            EvictionReason::PendingFull | EvictionReason::QueuedFull => "pool_full",
            EvictionReason::Expired { .. } => "expired",
            EvictionReason::NonceUsed => "nonce_used",
            EvictionReason::SuiteSwitched { .. } => "suite_switched",
            EvictionReason::NotPermitted { .. } => "not_permitted",
        }
    }
}

impl std::fmt::Display for EvictionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvictionReason::PendingFull => write!(f, "pool_full: replaced by higher-priority transactions (its sender had the most pending)"),
            EvictionReason::QueuedFull => write!(f, "pool_full: replaced by higher-priority transactions (it was the oldest waiting for an earlier nonce)"),
            EvictionReason::Expired { lifetime_ms } => write!(f, "expired: queued for more than {} s waiting for an earlier nonce", lifetime_ms / 1000),
            EvictionReason::NonceUsed => write!(f, "nonce_used: another transaction of its sender with the same nonce was committed"),
            EvictionReason::SuiteSwitched { suite, from_height } => {
                write!(f, "suite_switched: the channel uses suite {suite} from block {from_height}; sign the transaction again with the key bound for it")
            }
            EvictionReason::NotPermitted { why } => write!(f, "not_permitted: {why}"),
        }
    }
}

/// A transaction that left the pool, and when (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub reason: EvictionReason,
    pub at_ms: u64,
}

/// Where a transaction is, as far as the pool knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolStatus {
    /// Executable now: it goes into the next block this node produces.
    Pending,
    /// Waiting for an earlier nonce of its sender.
    Queued,
    /// Dropped after it was accepted.
    Evicted(Eviction),
}

/// Count a rejection in `txpool_rejections_total` by its code; every refusal passes here.
pub fn counted(e: Rejection) -> Rejection {
    metrics::counter!("txpool_rejections_total", "reason" => e.code()).increment(1);
    e
}

/// Canonical transaction bytes, size-checked before decoding.
pub fn decode(bytes: &[u8], max_tx_bytes: usize) -> Result<Transaction, Rejection> {
    if bytes.len() > max_tx_bytes {
        return Err(counted(Rejection::TooLarge { size: bytes.len(), limit: max_tx_bytes }));
    }
    Transaction::decode(bytes).map_err(|e| counted(Rejection::Malformed(e.to_string())))
}

/// The signature check, once, through the plugin. Counted as a rejection when it fails.
pub fn verify_signature(tx: &Transaction, suite: &dyn ChainCrypto) -> Result<(), Rejection> {
    let b = &tx.body;
    let r = match suite.verify(&b.sender, &b.signing_bytes(), &tx.signature) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Rejection::BadSignature),
        Err(SuiteError::InvalidKey(m)) => Err(Rejection::Malformed(format!("sender key: {m}"))),
        Err(e) => Err(Rejection::Internal(e.to_string())),
    };
    r.map_err(counted)
}

struct Entry {
    tx: Transaction,
    hash: Hash32,
    size: usize,
    /// When it entered the queued part (Unix ms); its key in the age index while queued.
    since_ms: u64,
}

impl Entry {
    fn nonce(&self) -> u64 {
        self.tx.body.nonce
    }
}

struct Account {
    key: Vec<u8>,
    /// The account's next nonce, as the pool last learnt it (at admission or a commit).
    next: u64,
    /// Nonces `next`, `next + 1`, … without a gap.
    pending: VecDeque<Entry>,
    /// Nonces past the pending run, not all consecutive.
    queued: BTreeMap<u64, Entry>,
}

impl Account {
    /// The nonce a new pending transaction must have.
    fn pending_end(&self) -> u64 {
        self.next + self.pending.len() as u64
    }

    fn holds(&self, nonce: u64) -> bool {
        (self.next..self.pending_end()).contains(&nonce) || self.queued.contains_key(&nonce)
    }
}

/// The most recent evictions, oldest forgotten first.
struct Evicted {
    cap: usize,
    map: HashMap<Hash32, (u64, Eviction)>,
    /// Insertion order; entries whose hash was forgotten or recorded again are skipped.
    order: VecDeque<(u64, Hash32)>,
    seq: u64,
}

impl Evicted {
    fn new(cap: usize) -> Evicted {
        Evicted { cap, map: HashMap::new(), order: VecDeque::new(), seq: 0 }
    }

    fn record(&mut self, hash: Hash32, e: Eviction) {
        if self.cap == 0 {
            return;
        }
        self.seq += 1;
        self.map.insert(hash, (self.seq, e));
        self.order.push_back((self.seq, hash));
        while self.map.len() > self.cap {
            let Some((s, h)) = self.order.pop_front() else { break };
            if self.map.get(&h).is_some_and(|(seq, _)| *seq == s) {
                self.map.remove(&h);
            }
        }
        // Re-admitted hashes leave stale entries behind: keep the queue bounded too.
        if self.order.len() > 2 * self.cap + 64 {
            let map = &self.map;
            self.order.retain(|(s, h)| map.get(h).is_some_and(|(seq, _)| seq == s));
        }
    }
}

/// Room to make for a pending newcomer: (account, how many of its newest pending).
type PendingPlan = Vec<(u64, usize)>;
/// Room to make for a queued newcomer: keys of the age index.
type QueuedPlan = Vec<(u64, u64, u64)>;

pub struct TxPool {
    channel: ChannelId,
    config: PoolConfig,
    /// Accounts by id. An id is the account's arrival number, so ids order accounts by
    /// first arrival; an account leaves when it holds nothing.
    accounts: HashMap<u64, Account>,
    ids: HashMap<Vec<u8>, u64>,
    /// Every transaction held: its account and nonce.
    hashes: HashMap<Hash32, (u64, u64)>,
    /// Accounts with pending transactions, in order of arrival: what `ready` walks.
    executable: BTreeSet<u64>,
    /// (pending count, account) for accounts with pending transactions: who gives way.
    by_pending: BTreeSet<(usize, u64)>,
    /// (since, account, nonce) of every queued transaction: expiry and eviction order.
    queued_by_age: BTreeSet<(u64, u64, u64)>,
    /// Accounts whose first queued nonce follows their pending run but found no room: they
    /// are promoted when a commit makes some.
    stalled: BTreeSet<u64>,
    pending_bytes: usize,
    queued_bytes: usize,
    queued_count: usize,
    pending_count: usize,
    evicted: Evicted,
    next_id: u64,
    /// Blocks committed (calls of [`TxPool::prune`]): tells a nonce read before the last
    /// commit from one read after it.
    commits: u64,
}

impl TxPool {
    pub fn new(channel: ChannelId, config: PoolConfig) -> Self {
        let evicted = Evicted::new(config.evictions_remembered);
        TxPool {
            channel,
            config,
            accounts: HashMap::new(),
            ids: HashMap::new(),
            hashes: HashMap::new(),
            executable: BTreeSet::new(),
            by_pending: BTreeSet::new(),
            queued_by_age: BTreeSet::new(),
            stalled: BTreeSet::new(),
            pending_bytes: 0,
            queued_bytes: 0,
            queued_count: 0,
            pending_count: 0,
            evicted,
            next_id: 0,
            commits: 0,
        }
    }

    /// How many commits the pool has seen; read it before reading nonces from the state,
    /// and pass it to [`Checked::read_at`].
    pub fn commits(&self) -> u64 {
        self.commits
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// New limits, for the transactions that arrive from now on (what is held stays).
    pub fn set_config(&mut self, config: PoolConfig) {
        self.evicted.cap = config.evictions_remembered;
        self.config = config;
    }

    /// Transactions held, pending and queued.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Executable transactions held.
    pub fn pending_len(&self) -> usize {
        self.pending_count
    }

    /// Future-nonce transactions held.
    pub fn queued_len(&self) -> usize {
        self.queued_count
    }

    pub fn bytes(&self) -> usize {
        self.pending_bytes + self.queued_bytes
    }

    pub fn contains(&self, hash: &Hash32) -> bool {
        self.hashes.contains_key(hash)
    }

    /// Where a transaction is: pending, queued, or evicted (if among the most recent
    /// evictions); `None` when the pool does not know it.
    /// The nonce after `sender`'s pending run, when the pool holds any of its
    /// transactions.
    pub fn pending_end(&self, sender: &[u8]) -> Option<u64> {
        self.ids.get(sender).and_then(|id| self.accounts.get(id)).map(Account::pending_end)
    }

    pub fn status(&self, hash: &Hash32) -> Option<PoolStatus> {
        if let Some((id, nonce)) = self.hashes.get(hash) {
            let queued = self.accounts.get(id).is_some_and(|a| a.queued.contains_key(nonce));
            return Some(if queued { PoolStatus::Queued } else { PoolStatus::Pending });
        }
        self.evicted.map.get(hash).map(|(_, e)| PoolStatus::Evicted(e.clone()))
    }

    /// All admission checks and insertion, in one call (holding the pool for the whole
    /// signature check). Nodes use [`TxPool::precheck`], [`verify_signature`] and
    /// [`TxPool::insert`] instead, so signatures verify in parallel outside the pool lock.
    pub fn admit(&mut self, tx: Transaction, suite: &dyn ChainCrypto, now_ms: u64, next_nonce: impl Fn(&[u8]) -> u64) -> Result<Hash32, Rejection> {
        let checked = self.precheck(&tx, suite, &next_nonce)?;
        verify_signature(&tx, suite)?;
        self.insert(tx, checked, now_ms, |s| Some(next_nonce(s)))
    }

    /// Every admission check but the signature, without changing the pool. Room is not
    /// checked here: in a batch, earlier transactions change where later ones go.
    pub fn precheck(&self, tx: &Transaction, suite: &dyn ChainCrypto, next_nonce: impl Fn(&[u8]) -> u64) -> Result<Checked, Rejection> {
        self.precheck_inner(tx, None, suite, next_nonce).map_err(counted)
    }

    /// [`TxPool::precheck`] with the encoded size and hash already computed (in parallel,
    /// for a batch).
    pub fn precheck_hashed(
        &self,
        tx: &Transaction,
        size: usize,
        hash: Hash32,
        suite: &dyn ChainCrypto,
        next_nonce: impl Fn(&[u8]) -> u64,
    ) -> Result<Checked, Rejection> {
        self.precheck_inner(tx, Some((size, hash)), suite, next_nonce).map_err(counted)
    }

    fn precheck_inner(
        &self,
        tx: &Transaction,
        known: Option<(usize, Hash32)>,
        suite: &dyn ChainCrypto,
        next_nonce: impl Fn(&[u8]) -> u64,
    ) -> Result<Checked, Rejection> {
        let encoded = if known.is_some() { vec![] } else { tx.encode() };
        let size = known.map_or(encoded.len(), |(size, _)| size);
        if size > self.config.max_tx_bytes {
            return Err(Rejection::TooLarge { size, limit: self.config.max_tx_bytes });
        }
        tx.validate().map_err(|e| Rejection::Malformed(e.to_string()))?;
        let b = &tx.body;
        if b.channel != self.channel {
            return Err(Rejection::WrongChannel { got: b.channel.to_string(), want: self.channel.to_string() });
        }
        if b.sig_alg != suite.suite().signature {
            return Err(Rejection::WrongAlgorithm { got: b.sig_alg.clone(), want: suite.suite().signature.clone() });
        }
        supported(&b.payload, self.config.contracts).map_err(Rejection::Unsupported)?;
        if b.gas_limit > self.config.gas_limit {
            return Err(Rejection::GasOverLimit { got: b.gas_limit, limit: self.config.gas_limit });
        }
        let need = intrinsic_gas(tx);
        if b.gas_limit < need {
            return Err(Rejection::GasBelowIntrinsic { got: b.gas_limit, need });
        }
        let next = next_nonce(&b.sender);
        if b.nonce < next {
            return Err(Rejection::NonceUsed { got: b.nonce, next });
        }
        if b.nonce - next > self.config.max_nonce_ahead {
            return Err(Rejection::NonceTooFarAhead { got: b.nonce, next, max_ahead: self.config.max_nonce_ahead });
        }
        let hash = match known {
            Some((_, hash)) => hash,
            None => suite.hash(&encoded).map_err(|e| Rejection::Internal(e.to_string()))?,
        };
        self.check_slot(tx, hash, next)?;
        Ok(Checked { hash, size, next, commits: self.commits })
    }

    fn account(&self, sender: &[u8]) -> Option<(u64, &Account)> {
        let id = *self.ids.get(sender)?;
        self.accounts.get(&id).map(|a| (id, a))
    }

    fn check_slot(&self, tx: &Transaction, hash: Hash32, next: u64) -> Result<(), Rejection> {
        if self.hashes.contains_key(&hash) {
            return Err(Rejection::Duplicate(hash));
        }
        if let Some((_, a)) = self.account(&tx.body.sender) {
            let next = next.max(a.next);
            if tx.body.nonce < next || a.holds(tx.body.nonce) {
                return Err(Rejection::NonceUsed { got: tx.body.nonce, next });
            }
        }
        Ok(())
    }

    /// Insert a transaction that passed [`TxPool::precheck`] and [`verify_signature`],
    /// making room if its part is full. The slot is checked again: another transaction may
    /// have taken it since the precheck. `now_ms` is the wall clock (Unix ms).
    /// `next_nonce` reads the committed state now: it is called only when a block
    /// committed since the checked nonce was read and the pool no longer holds the sender
    /// (its account left with that block), so the checked nonce may be stale.
    pub fn insert(&mut self, tx: Transaction, checked: Checked, now_ms: u64, next_nonce: impl FnOnce(&[u8]) -> Option<u64>) -> Result<Hash32, Rejection> {
        self.expire(now_ms);
        let checked = match self.account(&tx.body.sender) {
            None if checked.commits != self.commits => match next_nonce(&tx.body.sender) {
                Some(now) => Checked { next: checked.next.max(now), commits: self.commits, ..checked },
                None => return Err(counted(Rejection::Internal("the sender's nonce could not be read again after a commit".into()))),
            },
            _ => checked,
        };
        let r = self.insert_inner(tx, checked, now_ms);
        self.publish();
        r.map_err(counted)
    }

    fn insert_inner(&mut self, tx: Transaction, checked: Checked, now_ms: u64) -> Result<Hash32, Rejection> {
        let Checked { hash, size, next, .. } = checked;
        if tx.body.nonce < next {
            return Err(Rejection::NonceUsed { got: tx.body.nonce, next });
        }
        self.check_slot(&tx, hash, next)?;
        // The admission may have read the state of a block whose prune is still to come.
        if let Some((id, a)) = self.account(&tx.body.sender)
            && next > a.next
        {
            self.advance(id, next, None, now_ms);
        }
        let nonce = tx.body.nonce;
        let (own, next, pending, queued) = match self.account(&tx.body.sender) {
            Some((id, a)) => (Some(id), a.next, a.pending.len(), a.queued.len()),
            None => (None, next, 0, 0),
        };
        let entry = Entry { tx, hash, size, since_ms: now_ms };
        if nonce == next + pending as u64 {
            if pending >= self.config.max_pending_per_sender {
                return Err(Rejection::SenderLimit { part: "pending", limit: self.config.max_pending_per_sender });
            }
            let plan = self.plan_pending(own, pending, size).ok_or(Rejection::PoolFull)?;
            self.evict_pending(plan, now_ms);
            let id = self.account_id(&entry.tx.body.sender, next);
            self.push_pending(id, entry);
            self.promote(id, now_ms);
        } else {
            if queued >= self.config.max_queued_per_sender {
                return Err(Rejection::SenderLimit { part: "queued", limit: self.config.max_queued_per_sender });
            }
            let plan = self.plan_queued(own, size).ok_or(Rejection::PoolFull)?;
            for (_, id, nonce) in plan {
                self.drop_queued(id, nonce, Some(EvictionReason::QueuedFull), now_ms);
            }
            let id = self.account_id(&entry.tx.body.sender, next);
            self.push_queued(id, entry);
        }
        self.evicted.map.remove(&hash);
        Ok(hash)
    }

    /// The pending transactions to evict so that one more of `size` bytes fits, from an
    /// account holding `own_count` (which never gives way itself): the newest nonces of
    /// the accounts with the most pending, each keeping more than the newcomer's will.
    /// `None` when there is no such room.
    fn plan_pending(&self, own: Option<u64>, own_count: usize, size: usize) -> Option<PendingPlan> {
        if size > self.config.max_pending_bytes {
            return None;
        }
        let mut need_n = (self.pending_count + 1).saturating_sub(self.config.max_pending);
        let mut need_b = (self.pending_bytes + size).saturating_sub(self.config.max_pending_bytes);
        let mut plan = vec![];
        for &(count, id) in self.by_pending.iter().rev() {
            if need_n == 0 && need_b == 0 {
                break;
            }
            if count <= own_count + 1 {
                break;
            }
            if Some(id) == own {
                continue;
            }
            let Some(a) = self.accounts.get(&id) else { continue };
            let mut k = 0;
            for e in a.pending.iter().rev() {
                if count - k <= own_count + 1 || (need_n == 0 && need_b == 0) {
                    break;
                }
                k += 1;
                need_n = need_n.saturating_sub(1);
                need_b = need_b.saturating_sub(e.size);
            }
            plan.push((id, k));
        }
        (need_n == 0 && need_b == 0).then_some(plan)
    }

    /// The queued transactions to evict so that one more of `size` bytes fits: the oldest,
    /// never the newcomer's own account's. `None` when there is no such room.
    fn plan_queued(&self, own: Option<u64>, size: usize) -> Option<QueuedPlan> {
        if size > self.config.max_queued_bytes {
            return None;
        }
        let mut need_n = (self.queued_count + 1).saturating_sub(self.config.max_queued);
        let mut need_b = (self.queued_bytes + size).saturating_sub(self.config.max_queued_bytes);
        let mut plan = vec![];
        for &key @ (_, id, nonce) in &self.queued_by_age {
            if need_n == 0 && need_b == 0 {
                break;
            }
            if Some(id) == own {
                continue;
            }
            let Some(e) = self.accounts.get(&id).and_then(|a| a.queued.get(&nonce)) else { continue };
            need_n = need_n.saturating_sub(1);
            need_b = need_b.saturating_sub(e.size);
            plan.push(key);
        }
        (need_n == 0 && need_b == 0).then_some(plan)
    }

    fn evict_pending(&mut self, plan: PendingPlan, now_ms: u64) {
        for (id, k) in plan {
            for _ in 0..k {
                if let Some(e) = self.pop_pending(id, true) {
                    self.record(e.hash, EvictionReason::PendingFull, now_ms);
                }
            }
            self.forget_if_empty(id);
        }
    }

    /// Move the account's queued transactions that continue its pending run to pending,
    /// while there is room.
    fn promote(&mut self, id: u64, now_ms: u64) {
        loop {
            let Some(a) = self.accounts.get(&id) else { return };
            let Some((&nonce, e)) = a.queued.first_key_value() else { break };
            if nonce != a.pending_end() || a.pending.len() >= self.config.max_pending_per_sender {
                // Its own commits will make room for the rest.
                break;
            }
            let Some(plan) = self.plan_pending(Some(id), a.pending.len(), e.size) else {
                self.stalled.insert(id);
                return;
            };
            self.evict_pending(plan, now_ms);
            if let Some(e) = self.drop_queued(id, nonce, None, now_ms) {
                self.push_pending(id, e);
            }
        }
        self.stalled.remove(&id);
    }

    /// The account now has `next` as its next nonce: what is below it leaves, and the
    /// queue is promoted. With the block's hashes (`committed`), a transaction not among
    /// them lost its nonce to another and is recorded as evicted; without (the state seen
    /// at admission or production, ahead of the pool), it most likely was committed itself.
    fn advance(&mut self, id: u64, next: u64, committed: Option<&HashSet<Hash32>>, now_ms: u64) {
        let Some(a) = self.accounts.get(&id) else { return };
        if next < a.next {
            // Nonces only advance; should the state say otherwise, nothing held is known
            // executable any more.
            while let Some(mut e) = self.pop_pending(id, true) {
                e.since_ms = now_ms;
                self.push_queued(id, e);
            }
        }
        loop {
            let Some(a) = self.accounts.get(&id) else { return };
            let gone = match (a.pending.front(), a.queued.first_key_value()) {
                (Some(e), _) if e.nonce() < next => self.pop_pending(id, false),
                (_, Some((&n, _))) if n < next => self.drop_queued(id, n, None, now_ms),
                _ => break,
            };
            if let (Some(e), Some(committed)) = (gone, committed)
                && !committed.contains(&e.hash)
            {
                self.record(e.hash, EvictionReason::NonceUsed, now_ms);
            }
        }
        if let Some(a) = self.accounts.get_mut(&id) {
            a.next = next;
        }
        self.promote(id, now_ms);
        self.forget_if_empty(id);
    }

    /// Drop every transaction, recording `reason` for each but those `committed` (a
    /// crypto-suite switch makes them all unusable; the block that committed some is the
    /// one before it). Returns how many were evicted.
    pub fn drop_all(&mut self, reason: &EvictionReason, committed: &HashSet<Hash32>, now_ms: u64) -> usize {
        let hashes: Vec<Hash32> = self.hashes.keys().filter(|h| !committed.contains(h)).copied().collect();
        for h in &hashes {
            self.record(*h, reason.clone(), now_ms);
        }
        let (evicted, commits, next_id) = (std::mem::replace(&mut self.evicted, Evicted::new(0)), self.commits, self.next_id);
        *self = TxPool { evicted, commits, next_id, ..TxPool::new(self.channel.clone(), self.config.clone()) };
        self.publish();
        hashes.len()
    }

    /// Drop every transaction of `sender`, recording `reason` for each.
    pub fn drop_sender(&mut self, sender: &[u8], reason: EvictionReason, now_ms: u64) {
        let Some(&id) = self.ids.get(sender) else { return };
        while let Some(e) = self.pop_pending(id, true) {
            self.record(e.hash, reason.clone(), now_ms);
        }
        let queued: Vec<u64> = self.accounts.get(&id).map(|a| a.queued.keys().copied().collect()).unwrap_or_default();
        for nonce in queued {
            if let Some(e) = self.drop_queued(id, nonce, None, now_ms) {
                self.record(e.hash, reason.clone(), now_ms);
            }
        }
        self.forget_if_empty(id);
        self.publish();
    }

    /// Drop queued transactions older than the lifetime.
    pub fn expire(&mut self, now_ms: u64) {
        let lifetime_ms = self.config.queued_lifetime_ms;
        while let Some(&(since, id, nonce)) = self.queued_by_age.first() {
            if now_ms.saturating_sub(since) < lifetime_ms {
                break;
            }
            self.drop_queued(id, nonce, Some(EvictionReason::Expired { lifetime_ms }), now_ms);
        }
    }

    /// Up to `max` transactions the pool holds, each sender's in nonce order (pending, then
    /// queued), senders by first arrival: what a node hands a peer that just connected, so
    /// that transactions gossiped before the connection existed still reach every proposer.
    pub fn snapshot(&self, max: usize) -> Vec<Transaction> {
        let mut ids: Vec<&u64> = self.accounts.keys().collect();
        ids.sort_unstable();
        ids.into_iter().filter_map(|id| self.accounts.get(id)).flat_map(|a| a.pending.iter().chain(a.queued.values())).take(max).map(|e| e.tx.clone()).collect()
    }

    /// Transactions that can execute now, in order: senders by first arrival, each sender's
    /// pending run; at most `max_txs` and `max_bytes` (cut at the first that does not fit).
    /// `next_nonce` is the committed state's (`None`: unknown, the sender is skipped); a
    /// sender the pool has behind it is brought up to date.
    pub fn ready(&mut self, max_txs: usize, max_bytes: usize, now_ms: u64, next_nonce: impl Fn(&[u8]) -> Option<u64>) -> Vec<(Hash32, Transaction)> {
        self.expire(now_ms);
        let (mut out, mut bytes) = (vec![], 0usize);
        let mut cursor = self.executable.first().copied();
        'senders: while let Some(id) = cursor {
            if out.len() >= max_txs {
                break;
            }
            if let Some(a) = self.accounts.get(&id)
                && let Some(next) = next_nonce(&a.key)
            {
                if next != a.next {
                    self.advance(id, next, None, now_ms);
                }
                for e in self.accounts.get(&id).map(|a| &a.pending).into_iter().flatten() {
                    if out.len() == max_txs {
                        break 'senders;
                    }
                    if bytes + e.size > max_bytes {
                        break 'senders;
                    }
                    out.push((e.hash, e.tx.clone()));
                    bytes += e.size;
                }
            }
            cursor = self.executable.range(id + 1..).next().copied();
        }
        self.publish();
        out
    }

    /// After a block commits: `accounts` are the block's senders with their next nonce
    /// now, `committed` the block's transaction hashes. Only those accounts are touched;
    /// then expired transactions leave and stalled queues are promoted into freed room.
    pub fn prune<'a>(&mut self, accounts: impl IntoIterator<Item = (&'a [u8], u64)>, committed: &HashSet<Hash32>, now_ms: u64) {
        self.commits += 1;
        for (sender, next) in accounts {
            if let Some(&id) = self.ids.get(sender) {
                self.advance(id, next, Some(committed), now_ms);
            }
        }
        self.expire(now_ms);
        while self.pending_count < self.config.max_pending {
            let Some(id) = self.stalled.pop_first() else { break };
            self.promote(id, now_ms);
            if self.stalled.contains(&id) {
                break;
            }
        }
        self.publish();
    }

    // Bookkeeping: every change to an account's parts goes through these, which keep the
    // counts and indexes in step.

    fn account_id(&mut self, sender: &[u8], next: u64) -> u64 {
        if let Some(&id) = self.ids.get(sender) {
            return id;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.ids.insert(sender.to_vec(), id);
        self.accounts.insert(id, Account { key: sender.to_vec(), next, pending: VecDeque::new(), queued: BTreeMap::new() });
        id
    }

    fn forget_if_empty(&mut self, id: u64) {
        if let Some(a) = self.accounts.get(&id)
            && a.pending.is_empty()
            && a.queued.is_empty()
        {
            self.ids.remove(&a.key);
            self.accounts.remove(&id);
            self.stalled.remove(&id);
        }
    }

    fn reindex_pending(&mut self, id: u64, before: usize, after: usize) {
        if before > 0 {
            self.by_pending.remove(&(before, id));
        }
        if after > 0 {
            self.by_pending.insert((after, id));
            self.executable.insert(id);
        } else {
            self.executable.remove(&id);
        }
    }

    fn push_pending(&mut self, id: u64, e: Entry) {
        let Some(a) = self.accounts.get_mut(&id) else { return };
        let before = a.pending.len();
        self.hashes.insert(e.hash, (id, e.nonce()));
        self.pending_count += 1;
        self.pending_bytes += e.size;
        a.pending.push_back(e);
        self.reindex_pending(id, before, before + 1);
    }

    /// Take the newest (`back`) or oldest pending transaction of an account.
    fn pop_pending(&mut self, id: u64, back: bool) -> Option<Entry> {
        let a = self.accounts.get_mut(&id)?;
        let before = a.pending.len();
        let e = if back { a.pending.pop_back() } else { a.pending.pop_front() }?;
        if !back {
            a.next = e.nonce() + 1;
        }
        self.hashes.remove(&e.hash);
        self.pending_count -= 1;
        self.pending_bytes -= e.size;
        self.reindex_pending(id, before, before - 1);
        Some(e)
    }

    fn push_queued(&mut self, id: u64, e: Entry) {
        let Some(a) = self.accounts.get_mut(&id) else { return };
        self.hashes.insert(e.hash, (id, e.nonce()));
        self.queued_by_age.insert((e.since_ms, id, e.nonce()));
        self.queued_count += 1;
        self.queued_bytes += e.size;
        a.queued.insert(e.nonce(), e);
    }

    /// Take a queued transaction out; with a reason, it is an eviction, and the account is
    /// forgotten if that left it empty.
    fn drop_queued(&mut self, id: u64, nonce: u64, reason: Option<EvictionReason>, now_ms: u64) -> Option<Entry> {
        let e = self.accounts.get_mut(&id)?.queued.remove(&nonce)?;
        self.queued_by_age.remove(&(e.since_ms, id, nonce));
        self.hashes.remove(&e.hash);
        self.queued_count -= 1;
        self.queued_bytes -= e.size;
        if let Some(reason) = reason {
            self.record(e.hash, reason, now_ms);
            self.forget_if_empty(id);
        }
        Some(e)
    }

    fn record(&mut self, hash: Hash32, reason: EvictionReason, now_ms: u64) {
        metrics::counter!("txpool_evictions_total", "reason" => reason.code(), "channel" => self.channel.to_string()).increment(1);
        self.evicted.record(hash, Eviction { reason, at_ms: now_ms });
    }

    fn publish(&self) {
        metrics::gauge!("txpool_pending", "channel" => self.channel.to_string()).set(self.pending_count as f64);
        metrics::gauge!("txpool_queued", "channel" => self.channel.to_string()).set(self.queued_count as f64);
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
