//! Canonical, versioned binary encoding.

use borsh::{BorshDeserialize, BorshSerialize};

/// Version byte that prefixes every encoded value.
pub const ENCODING_VERSION: u8 = 1;

/// Largest encoded transaction a node accepts.
pub const MAX_TX_BYTES: usize = 1 << 20;
/// Largest encoded block a node accepts.
pub const MAX_BLOCK_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty input")]
    Empty,
    #[error("unknown encoding version {0} (this node reads version {ENCODING_VERSION})")]
    Version(u8),
    #[error("{got} bytes is over the limit of {limit}")]
    TooLarge { got: usize, limit: usize },
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("invalid value: {0}")]
    Invalid(String),
}

/// Types with a canonical encoding: `version byte || borsh(value)`.
pub trait Encode: BorshSerialize + BorshDeserialize + Sized {
    /// Size limit when decoding.
    const MAX_BYTES: usize;

    fn encode(&self) -> Vec<u8> {
        let mut out = vec![ENCODING_VERSION];
        // Writing into a Vec cannot fail.
        let _ = borsh::to_writer(&mut out, self);
        out
    }

    /// Decode exactly one value: version, size limit and no trailing bytes are checked, then
    /// the value's own invariants ([`Encode::validate`]).
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != ENCODING_VERSION {
            return Err(DecodeError::Version(version));
        }
        if bytes.len() > Self::MAX_BYTES {
            return Err(DecodeError::TooLarge { got: bytes.len(), limit: Self::MAX_BYTES });
        }
        let value = borsh::from_slice::<Self>(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        value.validate()?;
        Ok(value)
    }

    /// Invariants beyond the wire format (identifier syntax, field sizes).
    fn validate(&self) -> Result<(), DecodeError> {
        Ok(())
    }
}
