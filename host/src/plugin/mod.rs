//! The plugin kernel: every subsystem beyond this kernel is a WebAssembly component.
//!
//! * [`engine`] — one wasmtime engine configured for determinism and bounded execution;
//! * [`cache`] — compiled artifacts on disk, keyed by content hash and engine build;
//! * [`package`] — reading a plugin (wasm + manifest), checking hash, vendor signature
//!   and the world it implements;
//! * [`instance`] — pools of ready instances so a call costs microseconds, with memory,
//!   table and time limits so a hostile plugin only fails its own call;
//! * [`selftest`] — known-answer tests a crypto plugin must pass before activation;
//! * [`registry`] — installed plugins and versions, atomic activation (hot swap),
//!   rollback, and an audit trail of every change.

pub mod bindings;
pub mod cache;
pub mod engine;
pub mod instance;
pub mod package;
pub mod registry;
pub mod selftest;
pub mod trust;

pub use engine::{EngineLimits, PluginEngine};
pub use package::PluginPackage;
pub use registry::{AuditEvent, PluginRegistry, PluginSummary};

/// Why a plugin could not be loaded, activated or called.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Manifest(#[from] joule_plugin_manifest::ManifestError),
    #[error("plugin {name}: untrusted: {reason}")]
    Untrusted { name: String, reason: String },
    #[error("plugin {name}: not a valid component: {reason}")]
    Invalid { name: String, reason: String },
    #[error("plugin {name}: imports {import:?}, which the {world} world does not grant")]
    ForbiddenImport { name: String, import: String, world: &'static str },
    #[error("plugin {name}: does not implement {world}: {reason}")]
    WrongWorld { name: String, world: &'static str, reason: String },
    #[error("plugin {name}: self-test failed: {case}")]
    SelfTest { name: String, case: String },
    #[error("plugin {name} {version}: call to {op} failed: {reason}")]
    Call { name: String, version: String, op: &'static str, reason: String },
    #[error("no plugin named {0:?} is installed")]
    NotInstalled(String),
    #[error("plugin {name} has no version {version}")]
    NoSuchVersion { name: String, version: String },
    #[error("plugin {name} {version} is already installed with different content")]
    Conflict { name: String, version: String },
    #[error("plugin {name} {version} is active; deactivate it first")]
    Active { name: String, version: String },
    #[error("plugin {0} has no earlier version to roll back to")]
    NoRollback(String),
    #[error("plugin kind {0} cannot be loaded by this node yet")]
    UnsupportedKind(joule_plugin_manifest::PluginKind),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}
