//! The ledger: a channel's chain of blocks and the authenticated state they produce.
//!
//! It depends on traits, not on wasm: the channel's suite comes in as a
//! `joule_primitives::ChainCrypto` and its consensus engine from a
//! `joule_consensus::EngineSource`, so the logic here is tested with a native hasher and a
//! test engine, and the node binds both to plugins.
//!
//! * [`execute`] — the state transition (pure given parent state and suite);
//! * [`store`] — redb tables; a block and its state commit atomically;
//! * [`pool`] — admission checks and the pending transactions;
//! * [`chain`] — one channel's chain: genesis, production, the import path every block
//!   takes, commit, and notifications.

pub mod chain;
pub mod execute;
pub mod pool;
pub mod store;

#[cfg(test)]
pub(crate) mod testkit;
