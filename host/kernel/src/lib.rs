//! The plugin kernel: every subsystem beyond it is a WebAssembly component.
//!
//! The kernel knows how to take a plugin from delivered bytes to a version that serves
//! calls, and how to swap versions atomically; it knows nothing of what any plugin does.
//! A plugin kind (crypto, consensus, and next gateway auth policies and log analyzers)
//! registers itself as a [`PluginKind`]: its WIT world, the imports it grants, which route
//! classes it serves, and how a compiled component of it is linked and admitted.
//!
//! * [`package`] — a plugin as delivered: hash check, trust policy, componentizing, and
//!   the import check against the kind's grants;
//! * [`trust`] — vendor signatures and the node's provenance policy;
//! * [`registry`] — installed plugins and versions, the routing snapshot, atomic
//!   activation (hot swap), rollback, persistence and an audit trail of every change;
//! * [`audit`] — the audit trail on disk, rotated by size.

pub mod audit;
pub mod package;
pub mod registry;
pub mod trust;

pub use package::PluginPackage;
pub use registry::{AuditEvent, LoadedPlugin, PluginRegistry, PluginSummary, Requirement};

use joule_plugin_manifest::Manifest;
use std::any::Any;
use std::sync::Arc;
use wasmtime::component::Component;

/// A kind of plugin, as it registers itself with the kernel.
///
/// The kernel verifies, compiles and import-checks a package, then hands the compiled
/// component to [`PluginKind::admit`], which links it against the kind's world and tests
/// it (a crypto plugin runs its known answers; a consensus engine must name itself as its
/// manifest says). What `admit` returns is stored with the version and handed back to the
/// kind's own service on every call ([`LoadedPlugin::linked`]).
pub trait PluginKind: Send + Sync + 'static {
    /// The manifest's `kind` value, e.g. `crypto`.
    fn name(&self) -> &str;
    /// The fully qualified WIT world the kind's components target (`package/world@version`).
    fn world(&self) -> &str;
    /// Interfaces a component of this kind may import; anything else (WASI, other worlds'
    /// host functions) is refused by name before the component is linked.
    fn granted_imports(&self) -> &[&str];
    /// Route classes this kind serves: the `class` of the manifest's `class:id` entries
    /// (`hash`, `signature`, … for crypto; `consensus` for consensus).
    fn route_classes(&self) -> &[&str];
    /// Link and test a compiled component. On success, the routes it serves (`class:id`;
    /// they must be exactly the manifest's list) and its linked form.
    fn admit(&self, runtime: &Arc<joule_wasm::Runtime>, component: &Component, manifest: &Manifest) -> Result<Admitted, Refusal>;
}

/// A version the kind accepted.
pub struct Admitted {
    /// `class:id` of everything it provides, in the plugin's own order.
    pub routes: Vec<String>,
    /// The kind's linked form of the component (instance pools, metadata), opaque to the kernel.
    pub linked: Arc<dyn Any + Send + Sync>,
}

/// Why a kind refused a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its exports do not match the world's types (built for another world or version).
    WrongWorld(String),
    /// It links, but fails the kind's tests; the first failing case.
    SelfTest(String),
}

/// Why a plugin could not be loaded, activated or called.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Manifest(#[from] joule_plugin_manifest::ManifestError),
    #[error("plugin {name}: {reason}")]
    BadManifest { name: String, reason: String },
    #[error("plugin {name}: untrusted: {reason}")]
    Untrusted { name: String, reason: String },
    #[error("plugin {name}: not a valid component: {reason}")]
    Invalid { name: String, reason: String },
    #[error("plugin {name}: imports {import:?}, which the {world} world does not grant")]
    ForbiddenImport { name: String, import: String, world: String },
    #[error("plugin {name}: does not implement {world}: {reason}")]
    WrongWorld { name: String, world: String, reason: String },
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
    #[error("plugin {name} {version} serves {route} for {holder}, and no other active plugin does: activate another provider of {route} first")]
    InUse { name: String, version: String, route: String, holder: String },
    #[error("plugin kind {kind:?} is not one this node loads (it loads: {known})")]
    UnsupportedKind { kind: String, known: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}
