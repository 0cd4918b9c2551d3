//! Joule's integration tests: one binary, a module per property (wasmtime's layout).
//!
//! The plugins must be built first: `cargo xtask test` does it (`cargo xtask plugins`
//! alone builds them for a plain `cargo test`).

mod admin_api;
mod chain_api;
mod cli;
mod consensus_plugins;
mod crash_consistency;
mod determinism;
mod hostile_plugins;
mod hot_swap;
mod keystore;
mod known_answers;
mod ledger;
mod openssl_interop;
mod support;
mod tx_rejections;
