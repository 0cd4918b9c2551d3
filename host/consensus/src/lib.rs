//! Consensus engines as the ledger sees them (guide §4.2).
//!
//! The ledger builds, seals and imports blocks; a [`ConsensusEngine`] decides whose turn
//! it is, how a block is sealed and whether a received header is acceptable. Engines are
//! plugins (`joule-consensus-wasm` adapts a `joule:consensus` component to this trait),
//! and an operator may activate another version at any time, so the ledger asks an
//! [`EngineSource`] for the current engine before each block.
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

/// How to finish a block at the next height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealPlan {
    /// Sign the seal hash with the node's consensus key; pass the signature to `finish_seal`.
    Sign,
    /// Search nonces until `hash(seal_hash ++ nonce)` meets the target.
    Work(Vec<u8>),
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

/// A consensus engine bound to one channel (its configuration and crypto suite).
pub trait ConsensusEngine: Send + Sync {
    /// Name and version, e.g. `poa/0.1.0`.
    fn name(&self) -> &str;
    /// Index in `validators` of the node allowed to propose at `height` in `round`.
    fn proposer(&self, height: u64, round: u32, validators: &[Validator]) -> Result<usize, ConsensusError>;
    /// How to seal the block that extends `parent`.
    fn plan_seal(&self, parent: &EngineHeader, validators: &[Validator]) -> Result<SealPlan, ConsensusError>;
    /// Seal bytes from the proof the host produced (a signature or a nonce).
    fn finish_seal(&self, proof: &[u8]) -> Result<Vec<u8>, ConsensusError>;
    /// Check a received header against its parent and the validator set.
    fn verify_header(&self, parent: &EngineHeader, header: &EngineHeader, validators: &[Validator]) -> Result<(), ConsensusError>;
}

/// Where a channel gets its engine: the one serving it now. Called before each block, so
/// an activated new version takes over at the next block.
pub trait EngineSource: Send + Sync {
    fn current(&self) -> Result<Arc<dyn ConsensusEngine>, ConsensusError>;
}

/// A fixed engine is its own source (tests, tools).
impl<E: ConsensusEngine + 'static> EngineSource for Arc<E> {
    fn current(&self) -> Result<Arc<dyn ConsensusEngine>, ConsensusError> {
        Ok(self.clone())
    }
}
