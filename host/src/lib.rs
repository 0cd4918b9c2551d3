//! Joule: a WebAssembly-native consortium blockchain kernel for the energy sector.
//!
//! The kernel is small on purpose: it loads every subsystem (crypto algorithms and
//! consensus engines now; gateway auth policies and log analyzers next) as a WIT-defined
//! WebAssembly component, and keeps for itself only what must be trusted: the plugin
//! runtime and registry, key storage, the ledger (execution, storage, the block
//! pipeline) and the HTTP edge.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "512"]

pub mod api;
pub mod bench;
pub mod cli;
pub mod consensus;
pub mod crypto;
pub mod demo;
pub mod keystore;
pub mod ledger;
pub mod node;
pub mod plugin;
