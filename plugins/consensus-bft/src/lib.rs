//! A BFT engine (guide §4.2.2 e–f) as a `joule:consensus/engine-plugin@0.2.0` component:
//! QBFT-style rounds among the validators of a height.
//!
//! A round's proposer (`voting[(height + round) mod n]`) builds a block and proposes it
//! unsealed. Each validator that accepts the proposal broadcasts a signed `prepare`; on a
//! quorum of prepares (`⌈2n/3⌉`, which is `2f + 1` for `n = 3f + 1`) it locks on the block
//! and broadcasts a `commit` carrying its commit seal, its signature over the block's seal
//! hash. A quorum of commit seals is the block's seal: every validator that sees them
//! commits the block, and it is final at once (finality depth 0; fork choice never has to
//! choose). A round whose block is not committed in time ends with a `round-change`; the
//! next proposer proposes once a quorum has moved, re-proposing the block some validator
//! is locked on if it holds it, so a block that may have been committed is never replaced.
//!
//! Safety rests on quorum intersection and on locks: a validator locked on a block prepares
//! no other at that height unless shown a newer *prepared certificate* for it (a quorum's
//! signed prepares of that block in a later round than its lock), and any two quorums share
//! an honest validator while at most `f` are faulty. So once a block may have been committed
//! in round r, no other block can gather a certificate in a round after r, and no honest
//! validator unlocks from it. Locks carry their certificate: round changes report them, and
//! a proposer re-proposing the latest locked block attaches it as the proposal's
//! justification, so validators locked on older blocks can follow (QBFT's justification;
//! without it, locks split between two blocks with one validator down would stall the
//! height forever). The lock is persisted, so a restarted validator keeps it.
//!
//! The rules are plain Rust over the [`Crypto`] trait, so they are unit-tested natively
//! (four participants exchanging messages in-process); the wasm32 build adds the glue.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

pub const NAME: &str = "bft/0.2.0";

/// Domain of every signed consensus message.
const MESSAGE_DOMAIN: &[u8] = b"joule-bft/1\n";
/// Messages for later heights kept until the head gets there, at most.
const MAX_FUTURE: usize = 1024;
/// Rounds ahead of ours whose votes are kept.
const MAX_ROUNDS_AHEAD: u32 = 16;

/// The engine's configuration (`[consensus.config]` of a channel, as TOML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// How long round 0 of a height waits for its block; round `r` waits
    /// `2^min(r, 3)` times as long.
    #[serde(default = "default_round_timeout")]
    pub round_timeout_ms: u64,
}

fn default_round_timeout() -> u64 {
    2000
}

impl Default for Config {
    fn default() -> Self {
        Config {
            round_timeout_ms: default_round_timeout(),
        }
    }
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "the BFT configuration is not UTF-8".to_string())?;
        let c: Config = toml::from_str(text).map_err(|e| format!("BFT configuration: {e}"))?;
        if c.round_timeout_ms == 0 {
            return Err("BFT configuration: round-timeout-ms must be at least 1".into());
        }
        Ok(c)
    }

    fn timeout(&self, round: u32) -> u64 {
        self.round_timeout_ms.saturating_mul(1 << round.min(3))
    }
}

pub struct Validator<'a> {
    pub public_key: &'a [u8],
    pub weight: u64,
}

pub struct Header<'a> {
    pub height: u64,
    pub timestamp_ms: u64,
    pub seal_hash: &'a [u8],
    pub proposer: &'a [u8],
    pub seal: &'a [u8],
}

/// What the engine needs from the channel's crypto suite.
pub trait Crypto {
    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool;
}

/// Votes needed among `n` validators: `⌈2n/3⌉` (3 of 4, 5 of 7; every validator for 1–2).
pub fn quorum(n: usize) -> usize {
    (2 * n).div_ceil(3)
}

/// The validators that vote (weight above 0), in order; each has one vote.
fn voting<'a>(validators: &[Validator<'a>]) -> Vec<&'a [u8]> {
    validators
        .iter()
        .filter(|v| v.weight > 0)
        .map(|v| v.public_key)
        .collect()
}

/// Index (among the voting validators) of the proposer of `round` at `height`.
pub fn proposer(height: u64, round: u32, n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    Some((height.wrapping_add(u64::from(round)) % n as u64) as usize)
}

/// A committed block's seal: the round whose proposer built it, and the commit seals
/// (signatures over the seal hash) of at least a quorum, by voting-validator index,
/// ascending.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Seal {
    pub round: u32,
    pub commits: Vec<(u16, Vec<u8>)>,
}

pub fn verify_header(
    crypto: &dyn Crypto,
    parent: &Header<'_>,
    header: &Header<'_>,
    validators: &[Validator<'_>],
) -> Result<(), String> {
    if parent.height.checked_add(1) != Some(header.height) {
        return Err(format!(
            "height {} does not follow the parent's {}",
            header.height, parent.height
        ));
    }
    if header.timestamp_ms <= parent.timestamp_ms {
        return Err(format!(
            "timestamp {} is not after the parent's {}",
            header.timestamp_ms, parent.timestamp_ms
        ));
    }
    let voting = voting(validators);
    let seal = Seal::try_from_slice(header.seal)
        .map_err(|_| "the seal is not a BFT seal (round and commit seals)".to_string())?;
    let turn = proposer(header.height, seal.round, voting.len()).ok_or("the channel has no voting validators")?;
    if voting.get(turn).is_none_or(|k| *k != header.proposer) {
        return Err(format!(
            "the proposer is not validator {turn}, whose turn round {} of height {} is",
            seal.round, header.height
        ));
    }
    let mut last: Option<u16> = None;
    for (i, signature) in &seal.commits {
        if last.is_some_and(|l| l >= *i) {
            return Err("the commit seals are not in ascending validator order, or one is there twice".into());
        }
        last = Some(*i);
        let key = voting
            .get(usize::from(*i))
            .ok_or_else(|| format!("a commit seal names validator {i}, of {}", voting.len()))?;
        if !crypto.verify(key, header.seal_hash, signature) {
            return Err(format!("the commit seal of validator {i} does not verify"));
        }
    }
    let need = quorum(voting.len());
    if seal.commits.len() < need {
        return Err(format!(
            "{} commit seals, a block needs {need} of {}",
            seal.commits.len(),
            voting.len()
        ));
    }
    Ok(())
}

/// Fork choice: a committed block is final, so there is nothing to weigh.
pub fn weight() -> u64 {
    1
}

/// Final when committed.
pub fn finality_depth() -> u64 {
    0
}

/// A validator's lock: the round in which it saw a quorum prepare the block, its seal hash,
/// the round whose proposer built it, and the certificate: the quorum's prepare signatures
/// (by voting-validator index, ascending), each over the `Prepare` message of that round.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Lock {
    pub round: u32,
    pub seal_hash: Vec<u8>,
    pub proposed_in: u32,
    pub certificate: Vec<(u16, Vec<u8>)>,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Body {
    /// Sent with the proposed block: it is proposed in this round; `proposed_in` is the
    /// round whose proposer built it (earlier when a locked block is proposed again), and
    /// `justification` the lock on it, with its certificate, that made the proposer pick it.
    Proposal {
        seal_hash: Vec<u8>,
        proposed_in: u32,
        justification: Option<Lock>,
    },
    Prepare {
        seal_hash: Vec<u8>,
    },
    /// `seal`: the sender's signature over `seal_hash`, which goes into the block's seal;
    /// it authenticates the message (which carries no other signature).
    Commit {
        seal_hash: Vec<u8>,
        seal: Vec<u8>,
    },
    /// The sender moves to this round; `locked`: the block it is locked on.
    RoundChange {
        locked: Option<Lock>,
    },
}

/// A consensus message: `signature` is the sender's over `joule-bft/1\n ‖ Borsh(height,
/// round, from, body)` (empty for a commit).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Msg {
    pub height: u64,
    pub round: u32,
    /// The sender's index among the voting validators.
    pub from: u16,
    pub body: Body,
    pub signature: Vec<u8>,
}

impl Msg {
    pub fn signing_bytes(height: u64, round: u32, from: u16, body: &Body) -> Vec<u8> {
        let mut out = MESSAGE_DOMAIN.to_vec();
        // Writing into a Vec cannot fail.
        let _ = borsh::to_writer(&mut out, &(height, round, from, body));
        out
    }

    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }
}

/// What the participant asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    SetTimer { id: u64, after_ms: u64 },
    Build,
    Sign { request: u64, message: Vec<u8> },
    Broadcast(Vec<u8>),
    Propose { seal_hash: Vec<u8>, message: Vec<u8> },
    Commit { seal_hash: Vec<u8>, seal: Vec<u8> },
    Persist(Vec<u8>),
}

/// A signature asked for, and what it is for.
#[derive(Debug, Clone)]
enum Pending {
    Message {
        height: u64,
        round: u32,
        body: Body,
    },
    CommitSeal {
        height: u64,
        round: u32,
        seal_hash: Vec<u8>,
    },
}

/// What a validator keeps across a restart: its lock at a height.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct Saved {
    height: u64,
    round: u32,
    locked: Option<Lock>,
}

/// A node's part in the protocol at the height after its head.
#[derive(Debug, Default)]
pub struct Participant {
    config: Config,
    me: Vec<u8>,
    /// The height being decided, and its parent.
    height: u64,
    parent: Vec<u8>,
    voting: Vec<Vec<u8>>,
    /// This node's index among them (`None`: it follows).
    index: Option<u16>,
    round: u32,
    /// Blocks the host holds for this height (built here or accepted), with the round whose
    /// proposer built them.
    known: BTreeMap<Vec<u8>, u32>,
    /// Proposals by round (this round's and later ones'), with `proposed_in` and their
    /// justification (checked).
    proposals: BTreeMap<u32, (Vec<u8>, u32, Option<Lock>)>,
    /// The block this node prepared in the current round.
    prepared: Option<Vec<u8>>,
    building: bool,
    proposed: bool,
    /// Prepares by round and block: each sender's signature (ours is empty until signed).
    prepares: BTreeMap<(u32, Vec<u8>), BTreeMap<u16, Vec<u8>>>,
    commit_sent: BTreeSet<u32>,
    commits: BTreeMap<Vec<u8>, BTreeMap<u16, Vec<u8>>>,
    round_changes: BTreeMap<u32, BTreeMap<u16, Option<Lock>>>,
    locked: Option<Lock>,
    done: bool,
    pending: BTreeMap<u64, Pending>,
    next_request: u64,
    future: Vec<Msg>,
    /// What was saved, to restore at the first head.
    restored: Option<Saved>,
}

fn timer_id(height: u64, round: u32) -> u64 {
    (height << 16) | u64::from(round & 0xffff)
}

impl Participant {
    pub fn new(config: Config, me: Vec<u8>, saved: &[u8]) -> Participant {
        Participant {
            config,
            me,
            restored: Saved::try_from_slice(saved).ok(),
            ..Participant::default()
        }
    }

    fn n(&self) -> usize {
        self.voting.len()
    }

    fn quorum(&self) -> usize {
        quorum(self.n())
    }

    fn proposer_of(&self, round: u32) -> Option<usize> {
        proposer(self.height, round, self.n())
    }

    fn am_proposer(&self, round: u32) -> bool {
        self.index
            .is_some_and(|i| self.proposer_of(round) == Some(usize::from(i)))
    }

    fn sign(&mut self, what: Pending, message: Vec<u8>) -> Step {
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        self.pending.insert(request, what);
        Step::Sign { request, message }
    }

    /// Sign `body` as a message of the current round.
    fn send(&mut self, body: Body) -> Vec<Step> {
        let Some(from) = self.index else { return vec![] };
        let bytes = Msg::signing_bytes(self.height, self.round, from, &body);
        vec![self.sign(
            Pending::Message {
                height: self.height,
                round: self.round,
                body,
            },
            bytes,
        )]
    }

    fn persist(&self) -> Step {
        Step::Persist(
            borsh::to_vec(&Saved {
                height: self.height,
                round: self.round,
                locked: self.locked.clone(),
            })
            .unwrap_or_default(),
        )
    }

    /// A new head: the next height begins at round 0 (or where a restart left it).
    pub fn new_head(
        &mut self,
        crypto: &dyn Crypto,
        height: u64,
        hash: &[u8],
        validators: &[Validator<'_>],
    ) -> Vec<Step> {
        let (config, me, next_request) = (self.config.clone(), std::mem::take(&mut self.me), self.next_request);
        let future = std::mem::take(&mut self.future);
        let restored = self.restored.take();
        *self = Participant {
            config,
            me,
            next_request,
            ..Participant::default()
        };
        self.height = height.saturating_add(1);
        self.parent = hash.to_vec();
        self.voting = voting(validators).into_iter().map(<[u8]>::to_vec).collect();
        self.index = self
            .voting
            .iter()
            .position(|k| !self.me.is_empty() && *k == self.me)
            .and_then(|i| u16::try_from(i).ok());
        if self.index.is_none() {
            return vec![];
        }
        if let Some(s) = restored.filter(|s| s.height == self.height) {
            self.round = s.round;
            self.locked = s.locked;
        }
        let mut steps = self.enter_round(self.round);
        for m in future {
            if m.height == self.height && self.authentic(crypto, &m) {
                steps.extend(self.message(crypto, m));
            }
        }
        steps
    }

    /// Whether `lock` holds a quorum of distinct validators' signed prepares of its block
    /// in its round at this height.
    fn certified(&self, crypto: &dyn Crypto, lock: &Lock) -> bool {
        let prepare = Body::Prepare {
            seal_hash: lock.seal_hash.clone(),
        };
        let mut last: Option<u16> = None;
        for (i, signature) in &lock.certificate {
            if last.is_some_and(|l| l >= *i) {
                return false;
            }
            last = Some(*i);
            let Some(key) = self.voting.get(usize::from(*i)) else {
                return false;
            };
            if !crypto.verify(
                key,
                &Msg::signing_bytes(self.height, lock.round, *i, &prepare),
                signature,
            ) {
                return false;
            }
        }
        lock.certificate.len() >= self.quorum()
    }

    /// Start `round`: its timer, a proposal if it is ours, and what already arrived for it.
    fn enter_round(&mut self, round: u32) -> Vec<Step> {
        self.round = round;
        self.prepared = None;
        self.building = false;
        self.proposed = false;
        let mut steps = vec![Step::SetTimer {
            id: timer_id(self.height, round),
            after_ms: self.config.timeout(round),
        }];
        if round > 0 {
            steps.push(self.persist());
        }
        steps.extend(self.maybe_propose());
        if let Some((seal_hash, _, justification)) = self.proposals.get(&round).cloned() {
            steps.extend(self.consider(round, seal_hash, justification));
        }
        steps.extend(self.maybe_commit());
        steps
    }

    /// The proposer of round 0 builds; a later round's proposes once a quorum has moved to
    /// it, the block locked by the latest lock among them if it holds it, else a new one.
    fn maybe_propose(&mut self) -> Vec<Step> {
        if self.done || self.proposed || self.building || !self.am_proposer(self.round) {
            return vec![];
        }
        if self.round == 0 {
            self.building = true;
            return vec![Step::Build];
        }
        let moved = self.round_changes.get(&self.round).map_or(0, BTreeMap::len);
        if moved < self.quorum() {
            return vec![];
        }
        let latest = self
            .round_changes
            .get(&self.round)
            .into_iter()
            .flat_map(|m| m.values().flatten())
            .chain(self.locked.iter())
            .max_by_key(|l| l.round)
            .cloned();
        match latest {
            Some(lock) if self.known.contains_key(&lock.seal_hash) => {
                let (seal_hash, proposed_in) = (lock.seal_hash.clone(), lock.proposed_in);
                self.propose(seal_hash, proposed_in, Some(lock))
            }
            Some(_) if self.locked.is_some() => vec![],
            _ => {
                self.building = true;
                vec![Step::Build]
            }
        }
    }

    fn propose(&mut self, seal_hash: Vec<u8>, proposed_in: u32, justification: Option<Lock>) -> Vec<Step> {
        self.proposed = true;
        let mut steps = self.send(Body::Proposal {
            seal_hash: seal_hash.clone(),
            proposed_in,
            justification: justification.clone(),
        });
        steps.extend(self.consider(self.round, seal_hash, justification));
        steps
    }

    /// The block the host built on the head: propose it if it is still our turn.
    pub fn built(&mut self, height: u64, parent_hash: &[u8], seal_hash: &[u8]) -> Vec<Step> {
        if height != self.height || parent_hash != self.parent || !self.building || self.proposed || self.done {
            return vec![];
        }
        self.building = false;
        self.known.insert(seal_hash.to_vec(), self.round);
        self.propose(seal_hash.to_vec(), self.round, None)
    }

    /// A peer's proposal the host has executed and holds.
    pub fn proposed(
        &mut self,
        crypto: &dyn Crypto,
        seal_hash: &[u8],
        proposer_key: &[u8],
        height: u64,
        message: &[u8],
    ) -> Vec<Step> {
        let Ok(m) = Msg::try_from_slice(message) else {
            return vec![];
        };
        let Body::Proposal {
            seal_hash: said,
            proposed_in,
            justification,
        } = &m.body
        else {
            return vec![];
        };
        if m.height != self.height
            || height != self.height
            || said.as_slice() != seal_hash
            || *proposed_in > m.round
            || !self.authentic(crypto, &m)
        {
            return vec![];
        }
        // The sender proposes in its round; the block is the one its round's proposer built.
        if self.proposer_of(m.round) != Some(usize::from(m.from))
            || self
                .proposer_of(*proposed_in)
                .and_then(|i| self.voting.get(i))
                .is_none_or(|k| k != proposer_key)
        {
            return vec![];
        }
        self.known.insert(seal_hash.to_vec(), *proposed_in);
        if m.round < self.round || m.round > self.round.saturating_add(MAX_ROUNDS_AHEAD) {
            return self.maybe_commit();
        }
        // A justification counts only for this block, from an earlier round, certified.
        let justification = justification
            .clone()
            .filter(|j| j.seal_hash == seal_hash && j.round < m.round && self.certified(crypto, j));
        self.proposals
            .entry(m.round)
            .or_insert((seal_hash.to_vec(), *proposed_in, justification.clone()));
        let mut steps = if m.round == self.round {
            self.consider(m.round, seal_hash.to_vec(), justification)
        } else {
            vec![]
        };
        steps.extend(self.maybe_commit());
        steps
    }

    /// Prepare this round's proposal unless locked on another block; a lock gives way to a
    /// justification (checked before it gets here) from a later round than its own.
    fn consider(&mut self, round: u32, seal_hash: Vec<u8>, justification: Option<Lock>) -> Vec<Step> {
        if round != self.round || self.prepared.is_some() || self.done || !self.known.contains_key(&seal_hash) {
            return vec![];
        }
        let mut steps = vec![];
        if let Some(locked) = self.locked.as_ref().filter(|l| l.seal_hash != seal_hash) {
            match justification {
                Some(j) if j.seal_hash == seal_hash && j.round > locked.round => {
                    self.locked = Some(j);
                    steps.push(self.persist());
                }
                _ => return vec![],
            }
        }
        self.prepared = Some(seal_hash.clone());
        if let Some(i) = self.index {
            self.prepares
                .entry((round, seal_hash.clone()))
                .or_default()
                .entry(i)
                .or_default();
        }
        steps.extend(self.send(Body::Prepare { seal_hash }));
        steps.extend(self.maybe_lock());
        steps
    }

    /// The signed prepares of `seal_hash` in `round`, by validator, ascending.
    fn certificate(&self, round: u32, seal_hash: &[u8]) -> Vec<(u16, Vec<u8>)> {
        self.prepares
            .get(&(round, seal_hash.to_vec()))
            .into_iter()
            .flatten()
            .filter(|(_, s)| !s.is_empty())
            .map(|(i, s)| (*i, s.clone()))
            .collect()
    }

    /// A quorum prepared our round's block: lock on it and send our commit seal.
    fn maybe_lock(&mut self) -> Vec<Step> {
        let Some(seal_hash) = self.prepared.clone() else {
            return vec![];
        };
        let round = self.round;
        if self.commit_sent.contains(&round)
            || self.prepares.get(&(round, seal_hash.clone())).map_or(0, BTreeMap::len) < self.quorum()
        {
            return vec![];
        }
        self.commit_sent.insert(round);
        let proposed_in = self.known.get(&seal_hash).copied().unwrap_or(round);
        // Our own prepare's signature joins the certificate when it is made (`signed`).
        self.locked = Some(Lock {
            round,
            certificate: self.certificate(round, &seal_hash),
            seal_hash: seal_hash.clone(),
            proposed_in,
        });
        let request = self.sign(
            Pending::CommitSeal {
                height: self.height,
                round,
                seal_hash: seal_hash.clone(),
            },
            seal_hash,
        );
        vec![self.persist(), request]
    }

    /// A quorum of commit seals on a block the host holds: commit it.
    fn maybe_commit(&mut self) -> Vec<Step> {
        if self.done {
            return vec![];
        }
        let need = self.quorum();
        let ready = self
            .commits
            .iter()
            .find(|(sh, seals)| seals.len() >= need && self.known.contains_key(*sh))
            .map(|(sh, seals)| (sh.clone(), seals.clone()));
        let Some((seal_hash, seals)) = ready else { return vec![] };
        let round = self.known.get(&seal_hash).copied().unwrap_or_default();
        self.done = true;
        let seal = Seal {
            round,
            commits: seals.into_iter().collect(),
        };
        vec![Step::Commit {
            seal_hash,
            seal: borsh::to_vec(&seal).unwrap_or_default(),
        }]
    }

    fn authentic(&self, crypto: &dyn Crypto, m: &Msg) -> bool {
        let Some(key) = self.voting.get(usize::from(m.from)) else {
            return false;
        };
        match &m.body {
            Body::Commit { seal_hash, seal } => crypto.verify(key, seal_hash, seal),
            body => crypto.verify(key, &Msg::signing_bytes(m.height, m.round, m.from, body), &m.signature),
        }
    }

    /// A peer's message (bytes as sent).
    pub fn message_bytes(&mut self, crypto: &dyn Crypto, bytes: &[u8]) -> Vec<Step> {
        let Ok(m) = Msg::try_from_slice(bytes) else {
            return vec![];
        };
        if m.height > self.height {
            if self.future.len() < MAX_FUTURE {
                self.future.push(m);
            }
            return vec![];
        }
        if m.height < self.height || self.index.is_none() || !self.authentic(crypto, &m) {
            return vec![];
        }
        self.message(crypto, m)
    }

    /// An authentic message of this height (or one kept for it).
    fn message(&mut self, crypto: &dyn Crypto, m: Msg) -> Vec<Step> {
        if m.height != self.height || m.round > self.round.saturating_add(MAX_ROUNDS_AHEAD) {
            return vec![];
        }
        match m.body {
            Body::Prepare { seal_hash } => {
                self.prepares
                    .entry((m.round, seal_hash))
                    .or_default()
                    .insert(m.from, m.signature);
                if m.round == self.round {
                    self.maybe_lock()
                } else {
                    vec![]
                }
            }
            Body::Commit { seal_hash, seal } => {
                self.commits.entry(seal_hash).or_default().insert(m.from, seal);
                self.maybe_commit()
            }
            Body::RoundChange { locked } => {
                if m.round <= self.round && !(m.round == self.round && self.round > 0) {
                    return vec![];
                }
                // A lock without its certificate, or from the future, says nothing.
                let locked = locked.filter(|l| l.round < m.round && self.certified(crypto, l));
                self.round_changes.entry(m.round).or_default().insert(m.from, locked);
                let moved = self.round_changes.get(&m.round).map_or(0, BTreeMap::len);
                let f = self.n().saturating_sub(1) / 3;
                if m.round > self.round && moved > f && !self.done {
                    // More than f validators moved on: one honest one timed out; follow.
                    self.change_round(m.round)
                } else if m.round == self.round {
                    self.maybe_propose()
                } else {
                    vec![]
                }
            }
            // Proposals come with their block, through `proposed`.
            Body::Proposal { .. } => vec![],
        }
    }

    /// This round ran out of time.
    pub fn timer(&mut self, id: u64) -> Vec<Step> {
        if self.done || self.index.is_none() || id != timer_id(self.height, self.round) {
            return vec![];
        }
        self.change_round(self.round.saturating_add(1))
    }

    fn change_round(&mut self, round: u32) -> Vec<Step> {
        let Some(i) = self.index else { return vec![] };
        self.round_changes
            .entry(round)
            .or_default()
            .insert(i, self.locked.clone());
        self.round = round;
        let mut steps = self.send(Body::RoundChange {
            locked: self.locked.clone(),
        });
        steps.extend(self.enter_round(round));
        steps
    }

    /// A signature asked for: finish the message and send it.
    pub fn signed(&mut self, request: u64, signature: Vec<u8>) -> Vec<Step> {
        let Some(what) = self.pending.remove(&request) else {
            return vec![];
        };
        let Some(from) = self.index else { return vec![] };
        match what {
            Pending::Message { height, round, body } if height == self.height => {
                let proposal = match &body {
                    Body::Proposal { seal_hash, .. } => Some(seal_hash.clone()),
                    _ => None,
                };
                let mut steps = vec![];
                if let Body::Prepare { seal_hash } = &body {
                    self.prepares
                        .entry((round, seal_hash.clone()))
                        .or_default()
                        .insert(from, signature.clone());
                    // A lock made before our signature was gets it now.
                    if let Some(l) = self
                        .locked
                        .as_mut()
                        .filter(|l| l.round == round && &l.seal_hash == seal_hash)
                        && !l.certificate.iter().any(|(i, _)| *i == from)
                    {
                        l.certificate.push((from, signature.clone()));
                        l.certificate.sort_by_key(|(i, _)| *i);
                        steps.push(self.persist());
                    }
                }
                let message = Msg {
                    height,
                    round,
                    from,
                    body,
                    signature,
                }
                .encode();
                steps.push(match proposal {
                    Some(seal_hash) => Step::Propose { seal_hash, message },
                    None => Step::Broadcast(message),
                });
                steps
            }
            Pending::CommitSeal {
                height,
                round,
                seal_hash,
            } if height == self.height => {
                self.commits
                    .entry(seal_hash.clone())
                    .or_default()
                    .insert(from, signature.clone());
                let message = Msg {
                    height,
                    round,
                    from,
                    body: Body::Commit {
                        seal_hash,
                        seal: signature,
                    },
                    signature: vec![],
                }
                .encode();
                let mut steps = vec![Step::Broadcast(message)];
                steps.extend(self.maybe_commit());
                steps
            }
            _ => vec![],
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit/consensus", world: "engine-plugin" });

    use exports::joule::consensus::engine::{Guest, GuestInstance, Instance};
    use joule::consensus::chain_crypto;
    use joule::consensus::types::{Action, Commit, Event, Head, Header, ProposalOut, SignRequest, Timer, Validator};
    use std::cell::RefCell;

    thread_local! {
        static CONFIG: RefCell<super::Config> = RefCell::new(super::Config::default());
    }

    struct HostCrypto;

    impl super::Crypto for HostCrypto {
        fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
            chain_crypto::verify(public_key, message, signature)
        }
    }

    fn validators(v: &[Validator]) -> Vec<super::Validator<'_>> {
        v.iter()
            .map(|v| super::Validator {
                public_key: &v.public_key,
                weight: v.weight,
            })
            .collect()
    }

    fn header(h: &Header) -> super::Header<'_> {
        super::Header {
            height: h.height,
            timestamp_ms: h.timestamp_ms,
            seal_hash: &h.seal_hash,
            proposer: &h.proposer,
            seal: &h.seal,
        }
    }

    fn actions(steps: Vec<super::Step>) -> Vec<Action> {
        steps
            .into_iter()
            .map(|s| match s {
                super::Step::SetTimer { id, after_ms } => Action::SetTimer(Timer { id, after_ms }),
                super::Step::Build => Action::Build,
                super::Step::Sign { request, message } => Action::Sign(SignRequest { request, message }),
                super::Step::Broadcast(m) => Action::Broadcast(m),
                super::Step::Propose { seal_hash, message } => Action::Propose(ProposalOut { seal_hash, message }),
                super::Step::Commit { seal_hash, seal } => Action::Commit(Commit { seal_hash, seal }),
                super::Step::Persist(bytes) => Action::Persist(bytes),
            })
            .collect()
    }

    struct Bft;

    impl Guest for Bft {
        type Instance = BftInstance;

        fn name() -> String {
            super::NAME.into()
        }

        fn configure(config: Vec<u8>) -> Result<(), String> {
            let c = super::Config::parse(&config)?;
            CONFIG.with(|slot| *slot.borrow_mut() = c);
            Ok(())
        }

        fn verify_header(parent: Header, header: Header, validators: Vec<Validator>) -> Result<(), String> {
            super::verify_header(
                &HostCrypto,
                &self::header(&parent),
                &self::header(&header),
                &self::validators(&validators),
            )
        }

        fn weight(_header: Header, _validators: Vec<Validator>) -> u64 {
            super::weight()
        }

        fn finality_depth(_validators: Vec<Validator>) -> u64 {
            super::finality_depth()
        }
    }

    struct BftInstance(RefCell<super::Participant>);

    impl GuestInstance for BftInstance {
        fn start(me: Vec<u8>, _head: Head, saved: Vec<u8>) -> Result<Instance, String> {
            let config = CONFIG.with(|c| c.borrow().clone());
            Ok(Instance::new(BftInstance(RefCell::new(super::Participant::new(
                config, me, &saved,
            )))))
        }

        fn handle(&self, event: Event) -> Vec<Action> {
            let mut p = self.0.borrow_mut();
            actions(match event {
                Event::NewHead(h) => p.new_head(&HostCrypto, h.header.height, &h.hash, &validators(&h.validators)),
                Event::Timer(id) => p.timer(id),
                Event::Message(m) => p.message_bytes(&HostCrypto, &m),
                Event::Built(h) => p.built(h.height, &h.parent_hash, &h.seal_hash),
                Event::Proposed(prop) => p.proposed(
                    &HostCrypto,
                    &prop.header.seal_hash,
                    &prop.header.proposer,
                    prop.header.height,
                    &prop.message,
                ),
                Event::Signed(s) => p.signed(s.request, s.signature),
                // No proofs of work.
                Event::Worked(_) => vec![],
            })
        }
    }

    export!(Bft);
}

#[cfg(test)]
mod tests;
