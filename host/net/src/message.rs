//! The messages peers exchange, versioned. Payloads the ledger and the consensus engines
//! own (transactions, blocks, consensus messages) travel as their canonical bytes: this
//! crate neither parses nor judges them.

use borsh::{BorshDeserialize, BorshSerialize};

/// Version of the message set; the first byte of every message. A peer speaking another
/// version is refused at its first message (the handshake's prologue also names it).
pub const WIRE_VERSION: u8 = 1;

/// One message (after decryption and reassembly: `[WIRE_VERSION] ++ borsh(Message)`).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Message {
    /// Liveness (§10.1): answered by `Pong` with the same nonce; the transport sends these
    /// itself and never delivers them.
    Ping(u64),
    Pong(u64),
    /// The sender's head: sent on connecting and on each new head.
    Status {
        height: u64,
        hash: [u8; 32],
    },
    /// Transactions to gossip, each in its canonical encoding.
    Transactions(Vec<Vec<u8>>),
    /// A new block, canonical encoding.
    Block(Vec<u8>),
    /// Sync request: up to `max` blocks from height `from` on.
    GetBlocks {
        request: u64,
        from: u64,
        max: u32,
    },
    /// Sync response to the request of the same id, blocks in ascending height.
    Blocks {
        request: u64,
        blocks: Vec<Vec<u8>>,
    },
    /// A consensus engine's message (vote, round change, …), opaque here.
    Consensus(Vec<u8>),
    /// A block proposed before its seal (a BFT engine's proposal): the unsealed block's
    /// canonical encoding, and the proposer's consensus message about it.
    Proposal {
        block: Vec<u8>,
        message: Vec<u8>,
    },
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![WIRE_VERSION];
        // Writing into a Vec cannot fail.
        let _ = borsh::to_writer(&mut out, self);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != WIRE_VERSION {
            return Err(DecodeError::Version(version));
        }
        borsh::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::Status { .. } => "status",
            Message::Transactions(_) => "transactions",
            Message::Block(_) => "block",
            Message::GetBlocks { .. } => "get_blocks",
            Message::Blocks { .. } => "blocks",
            Message::Consensus(_) => "consensus",
            Message::Proposal { .. } => "proposal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty message")]
    Empty,
    #[error("wire version {0}, this node speaks {WIRE_VERSION}")]
    Version(u8),
    #[error("malformed message: {0}")]
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_a_foreign_version_or_garbage_is_refused() {
        let m = Message::Blocks { request: 7, blocks: vec![vec![1, 2, 3], vec![]] };
        let bytes = m.encode();
        assert_eq!(bytes[0], WIRE_VERSION);
        assert_eq!(Message::decode(&bytes), Ok(m));
        let mut other = bytes.clone();
        other[0] = 2;
        assert_eq!(Message::decode(&other), Err(DecodeError::Version(2)));
        assert!(matches!(Message::decode(&[WIRE_VERSION, 200]), Err(DecodeError::Malformed(_))));
        assert_eq!(Message::decode(&[]), Err(DecodeError::Empty));
        // Trailing bytes are refused too (one encoding per message).
        let mut trailing = Message::Ping(1).encode();
        trailing.push(0);
        assert!(matches!(Message::decode(&trailing), Err(DecodeError::Malformed(_))));
    }
}
