//! A plugin as delivered: manifest plus wasm bytes, and the checks made before any of its
//! code is compiled or run.

use super::trust::{Provenance, TrustPolicy};
use super::{PluginError, PluginKind};
use joule_plugin_manifest::{Manifest, componentize};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A plugin as read from disk or an upload, not yet checked.
#[derive(Clone)]
pub struct PluginPackage {
    pub manifest: Manifest,
    pub wasm: Vec<u8>,
}

impl PluginPackage {
    pub fn from_parts(manifest_toml: &str, wasm: Vec<u8>) -> Result<Self, PluginError> {
        Ok(PluginPackage { manifest: Manifest::parse(manifest_toml)?, wasm })
    }

    /// `NAME.toml` and the `NAME.wasm` beside it.
    pub fn from_manifest_path(path: &Path) -> Result<Self, PluginError> {
        let io = |context: String| move |source| PluginError::Io { context, source };
        let text = std::fs::read_to_string(path).map_err(io(format!("read {}", path.display())))?;
        let wasm_path = path.with_extension("wasm");
        let wasm = std::fs::read(&wasm_path).map_err(io(format!("read {}", wasm_path.display())))?;
        Self::from_parts(&text, wasm)
    }

    /// Every `*.toml` manifest in a directory, sorted by file name.
    pub fn manifests_in(dir: &Path) -> Result<Vec<PathBuf>, PluginError> {
        let rd = std::fs::read_dir(dir).map_err(|source| PluginError::Io { context: format!("read plugin directory {}", dir.display()), source })?;
        let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
        v.sort();
        Ok(v)
    }

    /// Content hash, vendor signature and trust policy: all before compiling anything.
    pub fn verify(&self, trust: &TrustPolicy) -> Result<Provenance, PluginError> {
        self.manifest.check_wasm(&self.wasm)?;
        trust.check(&self.manifest).map_err(|reason| PluginError::Untrusted { name: self.manifest.name.clone(), reason })
    }

    /// The bytes to compile: components as they are, core modules componentized.
    pub fn component_bytes(&self) -> Result<Vec<u8>, PluginError> {
        componentize(&self.wasm).map_err(|e| PluginError::Invalid { name: self.manifest.name.clone(), reason: e.to_string() })
    }
}

/// Refuse a manifest that lists something its kind does not serve, before compiling.
pub fn check_routes(kind: &dyn PluginKind, manifest: &Manifest) -> Result<(), PluginError> {
    for entry in &manifest.algorithms {
        let class = entry.split_once(':').map_or(entry.as_str(), |(c, _)| c);
        if !kind.route_classes().contains(&class) {
            return Err(PluginError::BadManifest {
                name: manifest.name.clone(),
                reason: format!("a {} plugin cannot provide {entry:?} (its classes: {})", kind.name(), kind.route_classes().join(", ")),
            });
        }
    }
    Ok(())
}

/// Refuse a component that imports anything its kind does not grant: no WASI, no host
/// functions of other worlds, so (for example) a consensus engine can never read a clock
/// or randomness. Export types are checked when the kind links the component.
pub fn check_imports(kind: &dyn PluginKind, engine: &Engine, component: &Component, manifest: &Manifest) -> Result<(), PluginError> {
    let granted = kind.granted_imports();
    for (name, _) in component.component_type().imports(engine) {
        if !granted.contains(&name) {
            return Err(PluginError::ForbiddenImport { name: manifest.name.clone(), import: name.to_string(), world: kind.world().to_string() });
        }
    }
    Ok(())
}
