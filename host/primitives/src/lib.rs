//! The ledger's data model (guide §3.1, §4.3, §5.3): channels, transactions, blocks and
//! receipts; their canonical binary encoding; and the Merkle commitments a block header
//! carries.
//!
//! Nothing here hashes or signs by itself: each channel names its crypto suite, and the
//! node supplies the suite's hash through the [`Hasher`] trait (backed by the crypto
//! plugins), so the same code commits to SM3 on a `gm` channel and SHA-256 on an `intl` one.
//!
//! Encoding: one version byte, then Borsh (little-endian fixed-width integers, `u32`
//! length prefixes, `u8` enum tags, `u8` option flags). Borsh has exactly one encoding per
//! value, which is what hashing and signing need. The byte layout of every type is in
//! `docs/formats.md`. Decoding checks the version, sizes and trailing bytes and never
//! panics on arbitrary input.

pub mod encoding;
pub mod merkle;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod smt;
pub mod spec;
pub mod suite;
pub mod types;

pub use encoding::{DecodeError, Encode, MAX_BLOCK_BYTES, MAX_TX_BYTES};
pub use merkle::{HashError, Hasher, MerkleProof};
pub use spec::{ChainSpec, DeployPolicy, IdentitySpec, MAX_CERTIFICATE_BYTES, NETWORK_KEY_BYTES, NodeSpec, OrganisationSpec, ValidatorSpec};
pub use suite::{ChainCrypto, CryptoSuite, SuiteError};
pub use types::*;

#[cfg(test)]
mod tests;
