//! The crypto plugin kind as it registers with the kernel.

use crate::bindings as wit;
use crate::calls::CallMetrics;
use crate::host::HostState;
use crate::{AlgorithmInfo, AlgorithmKind, selftest};
use joule_kernel::{Admitted, PluginKind, Refusal};
use joule_plugin_manifest::Manifest;
use joule_wasm::{InstancePool, Runtime, StoreLimiter};
use std::sync::Arc;
use wasmtime::component::{Component, HasSelf, Linker};

/// The manifest `kind` of crypto plugins.
pub const KIND: &str = "crypto";

/// `joule:crypto/plugin@0.1.1`: hashes, signatures, public-key encryption, ciphers, key
/// agreement (plugins built against 0.1.0 load too, without key agreement).
pub struct CryptoKind;

const GRANTED: &[&str] = &[
    "joule:crypto/types@0.1.0",
    "joule:crypto/entropy@0.1.0",
    "joule:crypto/accel@0.1.0",
    "joule:crypto/types@0.1.1",
    "joule:crypto/entropy@0.1.1",
    "joule:crypto/accel@0.1.1",
];
const CLASSES: &[&str] = &["hash", "signature", "public-key-encryption", "symmetric-cipher", "key-agreement"];

impl PluginKind for CryptoKind {
    fn name(&self) -> &str {
        KIND
    }

    fn world(&self) -> &str {
        "joule:crypto/plugin@0.1.1"
    }

    fn granted_imports(&self) -> &[&str] {
        GRANTED
    }

    fn route_classes(&self) -> &[&str] {
        CLASSES
    }

    /// Link against the crypto world, ask the plugin what it provides, and run the
    /// known-answer tests of every algorithm before the version can be activated.
    fn admit(&self, runtime: &Arc<Runtime>, component: &Component, manifest: &Manifest) -> Result<Admitted, Refusal> {
        let mut plugin = CryptoPlugin::link(runtime.clone(), component, manifest).map_err(Refusal::WrongWorld)?;
        plugin.algorithms = plugin.describe().map_err(|e| Refusal::SelfTest(format!("provider.algorithms: {e}")))?;
        let agreements = plugin.describe_key_agreements().map_err(|e| Refusal::SelfTest(format!("key-agreement.algorithms: {e}")))?;
        plugin.algorithms.extend(agreements);
        let routes = plugin.algorithms.iter().map(AlgorithmInfo::qualified).collect::<Vec<_>>();
        let mut listed = manifest.algorithms.clone();
        let mut claimed = routes.clone();
        listed.sort();
        claimed.sort();
        // Vectors are chosen by the manifest's list; the kernel refuses a mismatch too,
        // but the known answers must not run for algorithms the manifest does not declare.
        if listed == claimed {
            selftest::run(&plugin, manifest).map_err(Refusal::SelfTest)?;
        }
        Ok(Admitted { routes, linked: Arc::new(plugin) })
    }
}

/// A crypto plugin version, linked: its instance pool, what it provides, its metrics.
pub struct CryptoPlugin {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) instances: InstancePool<HostState, Exports>,
    /// The plugin's own description of its algorithms, checked against its manifest.
    pub algorithms: Vec<AlgorithmInfo>,
    pub(crate) metrics: CallMetrics,
}

/// One instance's exports: the baseline world's, and key agreement where the plugin has it.
pub(crate) struct Exports {
    pub(crate) baseline: wit::Baseline,
    pub(crate) key_agreement: Option<wit::key_agreement::KeyAgreementProvider>,
}

impl CryptoPlugin {
    /// Link the component against the crypto world. Fails if its exports do not match the
    /// world's types (a plugin built for another world, or another version of this one).
    pub fn link(runtime: Arc<Runtime>, component: &Component, manifest: &Manifest) -> Result<Self, String> {
        let mut linker: Linker<HostState> = Linker::new(runtime.engine());
        wit::Baseline::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s).map_err(|e| format!("{e:#}"))?;
        let instance_pre = linker.instantiate_pre(component).map_err(|e| format!("{e:#}"))?;
        let baseline = wit::BaselineIndices::new(&instance_pre).map_err(|e| format!("{e:#}"))?;
        // Absent in a plugin built against 0.1.0; present with the wrong types is an error.
        let key_agreement = match component.get_export_index(None, "joule:crypto/key-agreement@0.1.1") {
            None => None,
            Some(_) => Some(wit::key_agreement::KeyAgreementProviderIndices::new(&instance_pre).map_err(|e| format!("{e:#}"))?),
        };
        let limits = runtime.limits().clone();
        let instances = InstancePool::new(
            runtime,
            move || HostState { limiter: StoreLimiter::new(&limits) },
            move |store| {
                let instance = instance_pre.instantiate(&mut *store)?;
                Ok(Exports {
                    baseline: baseline.load(&mut *store, &instance)?,
                    key_agreement: key_agreement.as_ref().map(|k| k.load(&mut *store, &instance)).transpose()?,
                })
            },
        );
        Ok(CryptoPlugin {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            instances,
            algorithms: vec![],
            metrics: CallMetrics::new(&manifest.name, &manifest.version),
        })
    }

    /// The algorithm of `kind` with id `alg`, if this plugin provides it.
    pub fn algorithm(&self, kind: AlgorithmKind, alg: &str) -> Option<&AlgorithmInfo> {
        self.algorithms.iter().find(|a| a.kind == kind && a.id == alg)
    }
}
