//! Joule's WebAssembly runtime: everything that runs wasm, and nothing about what it runs.
//!
//! * [`runtime`] — a wasmtime engine configured for determinism and bounded execution;
//! * [`cache`] — compiled artifacts on disk, keyed by content hash and engine build;
//! * [`pool`] — pools of ready instances so a call costs microseconds, with memory, table
//!   and time limits so a hostile component only fails its own call, and typed reasons
//!   ([`CallFailure`]) when it does.
//!
//! The plugin kernel (`joule-kernel`) and every plugin kind build on this crate; so will
//! the contract runtime, with a fuel-metered configuration of its own (contracts are
//! addressed by code hash on chain, not installed per node, so they do not go through the
//! kernel).

pub mod cache;
pub mod pool;
pub mod runtime;

pub use cache::ArtifactCache;
pub use pool::{CallFailure, InstancePool, Limited, OwnedInstance, StoreLimiter};
pub use runtime::{Limits, Runtime};
