//! Joule's integration tests: one binary, a module per property (wasmtime's layout).
//!
//! The plugins must be built first: `cargo xtask test` does it (`cargo xtask plugins`
//! alone builds them for a plain `cargo test`).

mod admin_api;
mod api_contract;
mod architecture;
mod bft;
mod chain_api;
mod cli;
mod cli_contracts;
mod connection_limits;
mod consensus_hot_swap;
mod consensus_plugins;
mod contracts;
mod crash_consistency;
mod determinism;
mod disk_full;
mod engine_switch;
mod file_modes;
mod governance;
mod health;
mod hostile_plugins;
mod hot_swap;
mod http_endpoints;
mod identity;
mod key_recovery;
mod keystore;
mod known_answers;
mod ledger;
mod liveness;
mod network;
mod openssl_interop;
mod partition;
mod pki;
mod pool_flood;
mod request_limits;
mod storage;
mod suite_switch;
mod support;
mod tx_rejections;
mod users;
mod vendor_readme;
mod wire;
