//! The ledger: a channel's chain of blocks and the authenticated state they produce.
//!
//! * [`suite`] — the channel's crypto suite bound to the plugins;
//! * [`execute`] — the state transition (pure given parent state and suite);
//! * [`store`] — redb tables; a block and its state commit atomically;
//! * [`pool`] — admission checks and the pending transactions;
//! * [`chain`] — one channel's chain: genesis, production, the import path every block
//!   takes, commit, and notifications.

pub mod chain;
pub mod execute;
pub mod pool;
pub mod store;
pub mod suite;
