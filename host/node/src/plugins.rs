//! The plugin kinds this node loads, and where its plugins come from.
//!
//! Every kind crate registers its [`PluginKind`] here; the kernel itself names none. A
//! gateway-auth or log-analyzer kind is one more line in [`kinds`].

use anyhow::Result;
use joule_consensus_wasm::ConsensusKind;
use joule_crypto::{CryptoKind, CryptoService};
use joule_kernel::trust::TrustPolicy;
use joule_kernel::{PluginKind, PluginRegistry};
use joule_wasm::{ArtifactCache, Limits, Runtime};
use std::path::PathBuf;
use std::sync::Arc;

/// The plugin kinds a node loads.
pub fn kinds() -> Vec<Arc<dyn PluginKind>> {
    vec![Arc::new(CryptoKind), Arc::new(ConsensusKind)]
}

/// A registry for the node's kinds on a fresh runtime.
pub fn registry(limits: Limits, cache: ArtifactCache, trust: TrustPolicy, store: Option<PathBuf>) -> Result<Arc<PluginRegistry>> {
    let runtime = Arc::new(Runtime::new(limits).map_err(|e| anyhow::anyhow!("start the wasm runtime: {e:#}"))?);
    Ok(Arc::new(PluginRegistry::new(runtime, kinds(), cache, trust, store)))
}

/// Where plugins and compiled artifacts are found: the command line's `--plugin-dir` and
/// `--cache-dir` (or their environment variables).
#[derive(Debug, Clone, Default)]
pub struct PluginSources {
    pub plugin_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

impl PluginSources {
    /// The plugin directory: the option, or `<exe dir>/../plugins` when that exists.
    pub fn plugin_dir(&self) -> Option<PathBuf> {
        self.plugin_dir.clone().or_else(|| {
            let exe = std::env::current_exe().ok()?;
            let dir = exe.parent()?.parent()?.join("plugins");
            dir.is_dir().then_some(dir)
        })
    }

    /// The artifact cache: the option, else $XDG_CACHE_HOME/joule or ~/.cache/joule.
    pub fn cache(&self) -> ArtifactCache {
        ArtifactCache::new(self.cache_dir.clone().or_else(default_cache_dir))
    }

    /// A registry with every plugin of the plugin directory installed and active, for
    /// commands that run without a node. Plugins that fail to load are reported on stderr
    /// and skipped.
    pub fn crypto(&self) -> Result<CryptoService> {
        let registry = registry(Limits::default(), self.cache(), TrustPolicy::default(), None)?;
        if let Some(dir) = self.plugin_dir() {
            if dir.is_dir() {
                for (path, err) in registry.load_dir(&dir) {
                    eprintln!("warning: plugin {} not loaded: {err}", path.display());
                }
            } else if self.plugin_dir.is_some() {
                anyhow::bail!("plugin directory {} does not exist", dir.display());
            }
        }
        Ok(CryptoService::new(registry))
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache"))).map(|d| d.join("joule"))
}
