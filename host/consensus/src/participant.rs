//! A node's participant in the consensus protocol (`joule:consensus@0.2.0`, `instance`):
//! a state machine that takes [`Event`]s and answers with [`Action`]s. The host (the
//! [`driver`](crate::driver)) owns time, the network and storage; the participant owns the
//! decisions.

use crate::{ConsensusError, EngineHeader, Validator};

/// The chain as of a committed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub header: EngineHeader,
    /// Its block hash (seal included).
    pub hash: Vec<u8>,
    /// The validators of the next height.
    pub validators: Vec<Validator>,
}

/// What the host tells a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The head changed: the next height begins.
    NewHead(Head),
    /// A timer the participant set has expired.
    Timer(u64),
    /// A consensus message from a peer, bytes as sent (not authenticated by the host).
    Message(Vec<u8>),
    /// The block asked for with [`Action::Build`], unsealed.
    Built(EngineHeader),
    /// A block a peer proposed, executed on the head and found valid, with its message.
    Proposed { header: EngineHeader, message: Vec<u8> },
    /// The answer to [`Action::Sign`].
    Signed { request: u64, signature: Vec<u8> },
    /// The answer to [`Action::Work`].
    Worked { seal_hash: Vec<u8>, nonce: Vec<u8> },
}

/// What a participant asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Deliver [`Event::Timer`] after `after_ms`; setting an id again replaces it.
    SetTimer { id: u64, after_ms: u64 },
    /// Build a block on the head from the pool when the block policy says one is due.
    Build,
    /// Sign with this node's consensus key.
    Sign { request: u64, message: Vec<u8> },
    /// Send a consensus message to every peer.
    Broadcast(Vec<u8>),
    /// Send a block built here, with a message, to every peer.
    Propose { seal_hash: Vec<u8>, message: Vec<u8> },
    /// Search nonces until `hash(seal_hash ‖ nonce) ≤ target` (big-endian).
    Work { seal_hash: Vec<u8>, target: Vec<u8> },
    /// Seal the block (built here or proposed by a peer) and commit it.
    Commit { seal_hash: Vec<u8>, seal: Vec<u8> },
    /// Keep these bytes across a restart (given back when the participant starts).
    Persist(Vec<u8>),
}

/// A node's participant: one per channel, fed one event at a time.
impl Event {
    /// A short name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::NewHead(_) => "new_head",
            Event::Timer(_) => "timer",
            Event::Message(_) => "message",
            Event::Built(_) => "built",
            Event::Proposed { .. } => "proposed",
            Event::Signed { .. } => "signed",
            Event::Worked { .. } => "worked",
        }
    }
}

impl Action {
    /// A short name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::SetTimer { .. } => "set_timer",
            Action::Build => "build",
            Action::Sign { .. } => "sign",
            Action::Broadcast(_) => "broadcast",
            Action::Propose { .. } => "propose",
            Action::Work { .. } => "work",
            Action::Commit { .. } => "commit",
            Action::Persist(_) => "persist",
        }
    }
}

pub trait Participant: Send {
    fn handle(&mut self, event: Event) -> Result<Vec<Action>, ConsensusError>;
}
