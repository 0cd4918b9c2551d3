//! The ledger: a channel's chain of blocks and the authenticated state they produce.
//!
//! It depends on traits, not on wasm: the channel's suite comes in as a
//! `joule_primitives::ChainCrypto` and its consensus engine from a
//! `joule_consensus::EngineSource`, so the logic here is tested with a native hasher and a
//! test engine, and the node binds both to plugins.
//!
//! * [`execute`] — the state transition (pure given parent state and suite);
//! * [`store`] — redb tables; a block and its state commit atomically;
//! * [`state`] — what the state tree's leaves keep besides their hashes (account encodings,
//!   storage values or where they are);
//! * [`governance`] — the channel's validators and nodes, and the votes that change them;
//! * [`migrate`] — the state rebuilt under another crypto suite at a governed switch;
//! * [`pool`] — admission checks and the pending transactions;
//! * [`health`] — a chain's health, and the reopenable store that lets it recover from a
//!   failed disk without a restart;
//! * [`chain`] — one channel's chain: genesis, production, the import path every block
//!   takes, commit, and notifications.

pub mod chain;
mod codec;
pub mod execute;
pub mod fork;
pub mod governance;
pub mod health;
pub mod identity;
pub mod migrate;
pub mod pool;
pub mod state;
pub mod store;

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod storage_tests;
