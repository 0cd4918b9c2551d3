//! The transaction pool: admission checks, per-sender nonce ordering, bounded memory.
//!
//! Admission (in this order, each failure a [`Rejection`] with a stable code): encoding and
//! size, channel, signature algorithm of the channel's suite, payload supported, gas limit
//! within the channel's limit and above the intrinsic cost, nonce not already used and not
//! too far ahead, not a duplicate, signature — verified once, here, through the plugin.
//! Pending transactions are kept per sender by nonce; [`TxPool::ready`] hands out, sender
//! by sender in order of first arrival, the runs of consecutive nonces that can execute
//! now. When the pool is full, a newcomer evicts the highest-nonce transaction of the
//! sender holding the most, if that is not itself.

use super::execute::{intrinsic_gas, supported};
use joule_primitives::{ChainCrypto, ChannelId, Encode, Hash32, SuiteError, Transaction};
use std::collections::{BTreeMap, HashMap};

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
    #[error("the pool is full")]
    PoolFull,
    #[error("cannot check the transaction: {0}")]
    Internal(String),
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
            Rejection::PoolFull => "pool_full",
            Rejection::Internal(_) => "internal",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_transactions: usize,
    pub max_bytes: usize,
    pub max_tx_bytes: usize,
    /// How far past the account's next nonce a transaction may queue.
    pub max_nonce_ahead: u64,
    /// The channel's per-transaction gas limit (§5.2.1 燃料限制).
    pub gas_limit: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig { max_transactions: 50_000, max_bytes: 256 << 20, max_tx_bytes: 128 << 10, max_nonce_ahead: 1_000, gas_limit: 10_000_000 }
    }
}

/// A transaction that passed every check but the signature.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    pub hash: Hash32,
    size: usize,
    next: u64,
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

struct Pending {
    tx: Transaction,
    hash: Hash32,
    size: usize,
}

struct SenderQueue {
    first_seen: u64,
    txs: BTreeMap<u64, Pending>,
}

pub struct TxPool {
    channel: ChannelId,
    config: PoolConfig,
    senders: HashMap<Vec<u8>, SenderQueue>,
    hashes: HashMap<Hash32, (Vec<u8>, u64)>,
    bytes: usize,
    seq: u64,
}

impl TxPool {
    pub fn new(channel: ChannelId, config: PoolConfig) -> Self {
        TxPool { channel, config, senders: HashMap::new(), hashes: HashMap::new(), bytes: 0, seq: 0 }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, hash: &Hash32) -> bool {
        self.hashes.contains_key(hash)
    }

    /// All admission checks and insertion, in one call (holding the pool for the whole
    /// signature check). Nodes use [`TxPool::precheck`], [`verify_signature`] and
    /// [`TxPool::insert`] instead, so signatures verify in parallel outside the pool lock.
    pub fn admit(&mut self, tx: Transaction, suite: &dyn ChainCrypto, next_nonce: impl Fn(&[u8]) -> u64) -> Result<Hash32, Rejection> {
        let checked = self.precheck(&tx, suite, &next_nonce)?;
        verify_signature(&tx, suite)?;
        self.insert(tx, checked)
    }

    fn reject(&self, e: Rejection) -> Rejection {
        counted(e)
    }

    /// Every admission check but the signature, without changing the pool.
    pub fn precheck(&self, tx: &Transaction, suite: &dyn ChainCrypto, next_nonce: impl Fn(&[u8]) -> u64) -> Result<Checked, Rejection> {
        self.precheck_inner(tx, None, suite, next_nonce).map_err(|e| self.reject(e))
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
        self.precheck_inner(tx, Some((size, hash)), suite, next_nonce).map_err(|e| self.reject(e))
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
        supported(&b.payload).map_err(Rejection::Unsupported)?;
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
        Ok(Checked { hash, size, next })
    }

    fn check_slot(&self, tx: &Transaction, hash: Hash32, next: u64) -> Result<(), Rejection> {
        if self.hashes.contains_key(&hash) {
            return Err(Rejection::Duplicate(hash));
        }
        if self.senders.get(&tx.body.sender).is_some_and(|q| q.txs.contains_key(&tx.body.nonce)) {
            return Err(Rejection::NonceUsed { got: tx.body.nonce, next });
        }
        Ok(())
    }

    /// Insert a transaction that passed [`TxPool::precheck`] and [`verify_signature`],
    /// evicting if the pool is full. The slot is checked again: another transaction may
    /// have taken it since the precheck.
    pub fn insert(&mut self, tx: Transaction, checked: Checked) -> Result<Hash32, Rejection> {
        let r = self.insert_inner(tx, checked);
        match r {
            Ok(h) => {
                metrics::gauge!("txpool_pending").set(self.len() as f64);
                Ok(h)
            }
            Err(e) => Err(self.reject(e)),
        }
    }

    fn insert_inner(&mut self, tx: Transaction, checked: Checked) -> Result<Hash32, Rejection> {
        let Checked { hash, size, next } = checked;
        self.check_slot(&tx, hash, next)?;
        let b = &tx.body;
        while self.len() >= self.config.max_transactions || self.bytes + size > self.config.max_bytes {
            if !self.evict_for(&b.sender, b.nonce) {
                return Err(Rejection::PoolFull);
            }
        }
        self.seq += 1;
        let sender = b.sender.clone();
        let nonce = b.nonce;
        let seq = self.seq;
        self.senders
            .entry(sender.clone())
            .or_insert_with(|| SenderQueue { first_seen: seq, txs: BTreeMap::new() })
            .txs
            .insert(nonce, Pending { tx, hash, size });
        self.hashes.insert(hash, (sender, nonce));
        self.bytes += size;
        Ok(hash)
    }

    /// Make room: drop the highest-nonce transaction of the sender with the most pending,
    /// unless that would be the newcomer's own slot (then the newcomer is refused).
    fn evict_for(&mut self, sender: &[u8], nonce: u64) -> bool {
        let Some((victim, _)) = self.senders.iter().max_by_key(|(s, q)| (q.txs.len(), std::cmp::Reverse(q.first_seen), s.to_vec())) else { return false };
        let victim = victim.clone();
        let Some(top) = self.senders.get(&victim).and_then(|q| q.txs.keys().next_back().copied()) else { return false };
        if victim == sender && top <= nonce {
            return false;
        }
        self.remove(&victim, top);
        metrics::counter!("txpool_evictions_total").increment(1);
        true
    }

    fn remove(&mut self, sender: &[u8], nonce: u64) {
        if let Some(q) = self.senders.get_mut(sender) {
            if let Some(p) = q.txs.remove(&nonce) {
                self.bytes -= p.size;
                self.hashes.remove(&p.hash);
            }
            if q.txs.is_empty() {
                self.senders.remove(sender);
            }
        }
    }

    /// Transactions that can execute now, in order: senders by first arrival, each sender's
    /// consecutive nonces from its next nonce; at most `max_txs` and `max_bytes`.
    pub fn ready(&self, max_txs: usize, max_bytes: usize, next_nonce: impl Fn(&[u8]) -> u64) -> Vec<(Hash32, Transaction)> {
        let mut senders: Vec<(&Vec<u8>, &SenderQueue)> = self.senders.iter().collect();
        senders.sort_by_key(|(s, q)| (q.first_seen, s.to_vec()));
        let (mut out, mut bytes) = (vec![], 0usize);
        for (sender, q) in senders {
            let first = next_nonce(sender);
            for (want, (&n, p)) in (first..).zip(q.txs.range(first..)) {
                if n != want || out.len() == max_txs || bytes + p.size > max_bytes {
                    break;
                }
                out.push((p.hash, p.tx.clone()));
                bytes += p.size;
            }
        }
        out
    }

    /// After a block commits: drop every transaction whose nonce is now used.
    pub fn prune(&mut self, next_nonce: impl Fn(&[u8]) -> u64) {
        let stale: Vec<(Vec<u8>, u64)> = self
            .senders
            .iter()
            .flat_map(|(s, q)| {
                let next = next_nonce(s);
                q.txs.range(..next).map(move |(n, _)| (s.clone(), *n))
            })
            .collect();
        for (s, n) in stale {
            self.remove(&s, n);
        }
        metrics::gauge!("txpool_pending").set(self.len() as f64);
    }
}
