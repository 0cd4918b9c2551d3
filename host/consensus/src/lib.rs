//! Consensus engines as the ledger sees them (guide §4.2).
//!
//! The ledger builds, seals and imports blocks; a [`ConsensusEngine`] judges headers
//! (whether one is valid, how much it weighs in the choice between chains, when it is
//! final) and gives each node a [`Participant`]: a state machine that decides when this node
//! builds, signs, sends and commits, run by the [`driver`]. Engines are plugins
//! (`joule-consensus-wasm` adapts a `joule:consensus@0.2.0` component to this trait), and
//! the ledger asks an [`EngineSource`] for the current engine before each block.
//!
//! An engine sees no clock, no randomness and no I/O: everything it needs is passed in,
//! so every node judging the same header reaches the same verdict.

use std::sync::Arc;

pub mod driver;
pub mod participant;

pub use participant::{Action, Event, Head, Participant};

/// A validator as the channel's specification lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// SubjectPublicKeyInfo, DER.
    pub public_key: Vec<u8>,
    /// Voting weight; 1 for plain PoA.
    pub weight: u64,
}

/// The fields of a block header an engine judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineHeader {
    pub height: u64,
    pub parent_hash: Vec<u8>,
    pub timestamp_ms: u64,
    /// Hash of the header with the seal left out: what seals sign or proof of work hashes.
    pub seal_hash: Vec<u8>,
    pub proposer: Vec<u8>,
    /// The engine's own bytes.
    pub seal: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// The engine judged the header invalid.
    #[error("consensus: {0}")]
    Rejected(String),
    /// The engine could not be called (trap, timeout, bad configuration).
    #[error("consensus engine {engine}: {reason}")]
    Engine { engine: String, reason: String },
    /// No engine serves the channel (none active, or none that accepts its configuration).
    #[error("{0}")]
    Unavailable(String),
    #[error("the channel has no validator whose turn it is")]
    NoProposer,
}

/// A consensus engine bound to one channel (its configuration and crypto suite): its
/// rules, and a participant for this node.
pub trait ConsensusEngine: Send + Sync {
    /// Name and version, e.g. `poa/0.2.0`.
    fn name(&self) -> &str;
    /// Check a received header against its parent and the validators of its height.
    fn verify_header(&self, parent: &EngineHeader, header: &EngineHeader, validators: &[Validator]) -> Result<(), ConsensusError>;
    /// What a valid block adds to its chain's weight (fork choice: the heaviest chain).
    fn weight(&self, header: &EngineHeader, validators: &[Validator]) -> Result<u64, ConsensusError>;
    /// Blocks on top of a block before it is final; 0: final when committed.
    fn finality_depth(&self, validators: &[Validator]) -> Result<u64, ConsensusError>;
    /// This node's participant, joining at `head`. `me`: the node's consensus key (empty: it
    /// follows); `saved`: what the participant last persisted.
    fn participant(&self, me: &[u8], head: &Head, saved: &[u8]) -> Result<Box<dyn Participant>, ConsensusError>;
}

/// Where a channel gets its engine: the one serving it now. Called before each block, so
/// an activated new version takes over at the next block.
pub trait EngineSource: Send + Sync {
    fn current(&self) -> Result<Arc<dyn ConsensusEngine>, ConsensusError>;

    /// The engine a governed switch names: a component the chain carries (its bytes) and
    /// its configuration, bound to the channel. Sources that cannot run components refuse.
    fn load(&self, component: &[u8], config: &[u8]) -> Result<Arc<dyn ConsensusEngine>, ConsensusError> {
        let _ = (component, config);
        Err(ConsensusError::Unavailable("this node cannot run consensus engines the chain carries".into()))
    }

    /// The same source with its engines bound to the crypto suite `suite` (the suite a
    /// governed switch moves the channel to). Sources that cannot rebind refuse.
    fn rebind(&self, suite: &str) -> Result<Arc<dyn EngineSource>, ConsensusError> {
        Err(ConsensusError::Unavailable(format!("this node's consensus engines cannot run under crypto suite {suite}")))
    }
}

/// A fixed engine is its own source (tests, tools).
impl<E: ConsensusEngine + 'static> EngineSource for Arc<E> {
    fn current(&self) -> Result<Arc<dyn ConsensusEngine>, ConsensusError> {
        Ok(self.clone())
    }
}
