//! Joule: a WebAssembly-native consortium blockchain kernel for the energy sector.
//!
//! The kernel is small on purpose: it loads every subsystem (crypto algorithms now;
//! consensus engines, gateway auth policies and log analyzers next) as a WIT-defined
//! WebAssembly component, and keeps for itself only what must be trusted: the plugin
//! runtime and registry, key storage, storage and the HTTP edge.

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
