//! The consensus plugin kind (guide §4.2): components of the
//! `joule:consensus/engine-plugin@0.1.0` world.
//!
//! A consensus plugin is installed and activated through the kernel like any other;
//! [`EngineComponent`] is its linked form. A channel binds it to its crypto suite and its
//! engine configuration, giving a [`WasmEngine`]: a pool of configured instances whose
//! `chain-crypto` import hashes and verifies with that channel's suite, adapted to the
//! ledger's [`ConsensusEngine`] trait. [`PluginEngineSource`] is what a channel asks for
//! its engine before each block: the active version's binding, rebound when an operator
//! activates another version.

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/consensus",
        world: "engine-plugin",
        imports: { default: trappable },
    });
}

use bindings as wit;
use joule_consensus::{ConsensusEngine, ConsensusError, EngineHeader, EngineSource, SealPlan, Validator};
use joule_kernel::{Admitted, LoadedPlugin, PluginKind, PluginRegistry, Refusal};
use joule_plugin_manifest::Manifest;
use joule_primitives::{ChainCrypto, SuiteError};
use joule_support::sync::lock;
use joule_wasm::{InstancePool, Limited, Runtime, StoreLimiter};
use std::sync::{Arc, Mutex};
use wasmtime::component::{Component, HasSelf, Linker};

/// The manifest `kind` of consensus plugins.
pub const KIND: &str = "consensus";
/// The route class engines are served under: `consensus:poa`.
pub const CLASS: &str = "consensus";

/// `joule:consensus/engine-plugin@0.1.0`.
pub struct ConsensusKind;

impl PluginKind for ConsensusKind {
    fn name(&self) -> &str {
        KIND
    }

    fn world(&self) -> &str {
        "joule:consensus/engine-plugin@0.1.0"
    }

    /// No entropy, no clock, no I/O: only the channel's hash and signature check.
    fn granted_imports(&self) -> &[&str] {
        &["joule:consensus/types@0.1.0", "joule:consensus/chain-crypto@0.1.0"]
    }

    fn route_classes(&self) -> &[&str] {
        &[CLASS]
    }

    /// Link against the world; the engine's own name must be one the manifest lists
    /// (`poa/0.1.0` for `consensus:poa`).
    fn admit(&self, runtime: &Arc<Runtime>, component: &Component, manifest: &Manifest) -> Result<Admitted, Refusal> {
        let engine = EngineComponent::link(runtime.clone(), component).map_err(Refusal::WrongWorld)?;
        let reported = engine.name().map_err(|e| Refusal::SelfTest(format!("engine.name: {e}")))?;
        let id = reported.split('/').next().unwrap_or_default();
        let route = format!("{CLASS}:{id}");
        if !manifest.algorithms.contains(&route) {
            return Err(Refusal::SelfTest(format!("the engine calls itself {reported:?} but the manifest lists {:?}", manifest.algorithms)));
        }
        Ok(Admitted { routes: manifest.algorithms.clone(), linked: Arc::new(engine) })
    }
}

/// Store state of a consensus instance: its limiter, and the channel suite behind
/// `chain-crypto` (`None` only while the kernel admits a plugin, which never calls it).
pub struct ConsensusHost {
    limiter: StoreLimiter,
    suite: Option<Arc<dyn ChainCrypto>>,
}

impl Limited for ConsensusHost {
    fn limiter(&mut self) -> &mut StoreLimiter {
        &mut self.limiter
    }
}

impl ConsensusHost {
    fn suite(&self) -> wasmtime::Result<&Arc<dyn ChainCrypto>> {
        self.suite.as_ref().ok_or_else(|| wasmtime::format_err!("chain-crypto is not available outside a channel"))
    }
}

impl wit::joule::consensus::types::Host for ConsensusHost {}

impl wit::joule::consensus::chain_crypto::Host for ConsensusHost {
    fn hash(&mut self, data: Vec<u8>) -> wasmtime::Result<Vec<u8>> {
        let h = self.suite()?.hash(&data).map_err(|e| wasmtime::format_err!("chain-crypto hash: {e}"))?;
        Ok(h.0.to_vec())
    }

    fn verify(&mut self, public_key: Vec<u8>, message: Vec<u8>, signature: Vec<u8>) -> wasmtime::Result<bool> {
        match self.suite()?.verify(&public_key, &message, &signature) {
            Ok(ok) => Ok(ok),
            // Garbage keys or signatures in a header are a "no", not a failure of the node.
            Err(SuiteError::InvalidKey(_) | SuiteError::InvalidInput(_)) => Ok(false),
            Err(e) => Err(wasmtime::format_err!("chain-crypto verify: {e}")),
        }
    }
}

/// A consensus plugin, compiled and linked against its world.
pub struct EngineComponent {
    runtime: Arc<Runtime>,
    pre: wit::EnginePluginPre<ConsensusHost>,
}

impl EngineComponent {
    /// Link the component. Fails if its exports do not match the world's types.
    pub fn link(runtime: Arc<Runtime>, component: &Component) -> Result<Self, String> {
        let mut linker: Linker<ConsensusHost> = Linker::new(runtime.engine());
        wit::EnginePlugin::add_to_linker::<ConsensusHost, HasSelf<ConsensusHost>>(&mut linker, |s| s).map_err(|e| format!("{e:#}"))?;
        let instance_pre = linker.instantiate_pre(component).map_err(|e| format!("{e:#}"))?;
        let pre = wit::EnginePluginPre::new(instance_pre).map_err(|e| format!("{e:#}"))?;
        Ok(EngineComponent { runtime, pre })
    }

    fn pool(&self, suite: Option<Arc<dyn ChainCrypto>>, config: Vec<u8>) -> InstancePool<ConsensusHost, wit::EnginePlugin> {
        let limits = self.runtime.limits().clone();
        let pre = self.pre.clone();
        InstancePool::new(
            self.runtime.clone(),
            move || ConsensusHost { limiter: StoreLimiter::new(&limits), suite: suite.clone() },
            move |store| {
                let instance = pre.instantiate(&mut *store)?;
                instance.joule_consensus_engine().call_configure(&mut *store, &config)?.map_err(|e| wasmtime::format_err!("configuration refused: {e}"))?;
                Ok(instance)
            },
        )
    }

    /// The engine's self-reported name (`poa/0.1.0`), with an empty configuration.
    pub fn name(&self) -> Result<String, String> {
        self.pool(None, vec![]).call(|p, s| p.joule_consensus_engine().call_name(s)).map_err(|e| e.to_string())
    }

    /// Bind to a channel: its suite for `chain-crypto`, its engine configuration. The
    /// configuration is checked here, once, so a bad one fails at start-up.
    pub fn bind(&self, suite: Arc<dyn ChainCrypto>, config: Vec<u8>) -> Result<WasmEngine, ConsensusError> {
        let pool = self.pool(Some(suite), config);
        let name =
            pool.call(|p, s| p.joule_consensus_engine().call_name(s)).map_err(|e| ConsensusError::Engine { engine: "?".into(), reason: e.to_string() })?;
        Ok(WasmEngine { name, pool })
    }
}

/// A consensus plugin bound to one channel.
pub struct WasmEngine {
    name: String,
    pool: InstancePool<ConsensusHost, wit::EnginePlugin>,
}

fn to_wit(h: &EngineHeader) -> wit::joule::consensus::types::Header {
    wit::joule::consensus::types::Header {
        height: h.height,
        parent_hash: h.parent_hash.clone(),
        timestamp_ms: h.timestamp_ms,
        seal_hash: h.seal_hash.clone(),
        proposer: h.proposer.clone(),
        seal: h.seal.clone(),
    }
}

fn validators_to_wit(v: &[Validator]) -> Vec<wit::joule::consensus::types::Validator> {
    v.iter().map(|v| wit::joule::consensus::types::Validator { public_key: v.public_key.clone(), weight: v.weight }).collect()
}

impl WasmEngine {
    fn call<R>(&self, f: impl FnOnce(&wit::EnginePlugin, &mut wasmtime::Store<ConsensusHost>) -> wasmtime::Result<R>) -> Result<R, ConsensusError> {
        self.pool.call(f).map_err(|e| ConsensusError::Engine { engine: self.name.clone(), reason: e.to_string() })
    }
}

impl ConsensusEngine for WasmEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn proposer(&self, height: u64, round: u32, validators: &[Validator]) -> Result<usize, ConsensusError> {
        let vs = validators_to_wit(validators);
        let i = self.call(|p, s| p.joule_consensus_engine().call_proposer(s, height, round, &vs))? as usize;
        if i < validators.len() { Ok(i) } else { Err(ConsensusError::NoProposer) }
    }

    fn plan_seal(&self, parent: &EngineHeader, validators: &[Validator]) -> Result<SealPlan, ConsensusError> {
        let (parent, vs) = (to_wit(parent), validators_to_wit(validators));
        Ok(match self.call(|p, s| p.joule_consensus_engine().call_plan_seal(s, &parent, &vs))? {
            wit::joule::consensus::types::SealPlan::Sign => SealPlan::Sign,
            wit::joule::consensus::types::SealPlan::Work(target) => SealPlan::Work(target),
        })
    }

    fn finish_seal(&self, proof: &[u8]) -> Result<Vec<u8>, ConsensusError> {
        self.call(|p, s| p.joule_consensus_engine().call_finish_seal(s, proof))
    }

    fn verify_header(&self, parent: &EngineHeader, header: &EngineHeader, validators: &[Validator]) -> Result<(), ConsensusError> {
        let (parent, header, vs) = (to_wit(parent), to_wit(header), validators_to_wit(validators));
        self.call(|p, s| p.joule_consensus_engine().call_verify_header(s, &parent, &header, &vs))?.map_err(ConsensusError::Rejected)
    }
}

/// A channel's engine from the kernel: the active version providing its engine id, bound
/// to its suite and configuration, and bound again when another version becomes active.
pub struct PluginEngineSource {
    registry: Arc<PluginRegistry>,
    engine_id: String,
    suite: Arc<dyn ChainCrypto>,
    config: Vec<u8>,
    channel: String,
    bound: Mutex<Option<(Arc<LoadedPlugin>, Arc<WasmEngine>)>>,
}

impl PluginEngineSource {
    pub fn new(registry: Arc<PluginRegistry>, engine_id: &str, suite: Arc<dyn ChainCrypto>, config: Vec<u8>, channel: &str) -> Self {
        PluginEngineSource { registry, engine_id: engine_id.into(), suite, config, channel: channel.into(), bound: Mutex::new(None) }
    }

    /// Whether an active plugin provides the engine.
    pub fn served(&self) -> bool {
        self.registry.route(KIND, CLASS, &self.engine_id).is_some()
    }

    /// The plugin version the channel's engine was last bound to (`consensus-poa 0.1.0`
    /// as `("consensus-poa", "0.1.0")`): what served its latest block, or `None` before
    /// the first one. An activation elsewhere changes it only when the channel next asks
    /// for its engine.
    pub fn bound_to(&self) -> Option<(String, String)> {
        lock(&self.bound).as_ref().map(|(p, _)| (p.manifest.name.clone(), p.manifest.version.clone()))
    }
}

impl EngineSource for PluginEngineSource {
    fn current(&self) -> Result<Arc<dyn ConsensusEngine>, ConsensusError> {
        let id = &self.engine_id;
        let plugin = self.registry.route(KIND, CLASS, id).ok_or_else(|| {
            ConsensusError::Unavailable(format!("no active plugin provides the consensus engine {id:?} (install and activate one, e.g. consensus-poa)"))
        })?;
        let mut bound = lock(&self.bound);
        if let Some((_, engine)) = bound.as_ref().filter(|(p, _)| Arc::ptr_eq(p, &plugin)) {
            return Ok(engine.clone());
        }
        let component =
            plugin.linked::<EngineComponent>().ok_or_else(|| ConsensusError::Unavailable(format!("{} is not a consensus plugin", plugin.manifest.name)))?;
        let engine = Arc::new(component.bind(self.suite.clone(), self.config.clone())?);
        tracing::info!(channel = %self.channel, engine = engine.name(), plugin = %plugin.manifest.name, version = %plugin.manifest.version, "consensus engine bound");
        *bound = Some((plugin, engine.clone()));
        Ok(engine)
    }
}
