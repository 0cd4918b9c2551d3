//! The consensus plugin kind (guide §4.2): components of the
//! `joule:consensus/engine-plugin@0.2.0` world.
//!
//! A consensus plugin is installed and activated through the kernel like any other;
//! [`EngineComponent`] is its linked form. A channel binds it to its crypto suite and its
//! engine configuration, giving a [`WasmEngine`]: a pool of configured instances whose
//! `chain-crypto` import hashes and verifies with that channel's suite, adapted to the
//! ledger's [`ConsensusEngine`] trait (the rules), and for this node a
//! [`WasmParticipant`]: one configured instance in a store of its own holding the
//! participant resource, kept across events. [`PluginEngineSource`] is what a channel asks
//! for its engine before each block: the active version's binding, rebound when an
//! operator activates another version.

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/consensus",
        world: "engine-plugin",
        imports: { default: trappable },
    });
}

use bindings as wit;
use joule_consensus::{Action, ConsensusEngine, ConsensusError, EngineHeader, EngineSource, Event, Head, Participant, Validator};
use joule_kernel::{Admitted, LoadedPlugin, PluginKind, PluginRegistry, Refusal};
use joule_plugin_manifest::Manifest;
use joule_primitives::{ChainCrypto, SuiteError};
use joule_support::sync::lock;
use joule_wasm::{InstancePool, Limited, OwnedInstance, Runtime, StoreLimiter};
use std::sync::{Arc, Mutex};
use wasmtime::component::{Component, HasSelf, Linker, ResourceAny};

/// The manifest `kind` of consensus plugins.
pub const KIND: &str = "consensus";
/// The route class engines are served under: `consensus:poa`.
pub const CLASS: &str = "consensus";

/// `joule:consensus/engine-plugin@0.2.0`.
pub struct ConsensusKind;

impl PluginKind for ConsensusKind {
    fn name(&self) -> &str {
        KIND
    }

    fn world(&self) -> &str {
        "joule:consensus/engine-plugin@0.2.0"
    }

    /// No entropy, no clock, no I/O: only the channel's hash and signature check.
    fn granted_imports(&self) -> &[&str] {
        &["joule:consensus/types@0.2.0", "joule:consensus/chain-crypto@0.2.0"]
    }

    fn route_classes(&self) -> &[&str] {
        &[CLASS]
    }

    /// Link against the world; the engine's own name must be one the manifest lists
    /// (`poa/0.2.0` for `consensus:poa`).
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
            move |store| configured(&pre, store, &config),
        )
    }

    /// The engine's self-reported name (`poa/0.2.0`), with an empty configuration.
    pub fn name(&self) -> Result<String, String> {
        self.pool(None, vec![]).call(|p, s| p.joule_consensus_engine().call_name(s)).map_err(|e| e.to_string())
    }

    /// Bind to a channel: its suite for `chain-crypto`, its engine configuration. The
    /// configuration is checked here, once, so a bad one fails at start-up.
    pub fn bind(&self, suite: Arc<dyn ChainCrypto>, config: Vec<u8>) -> Result<WasmEngine, ConsensusError> {
        let pool = self.pool(Some(suite.clone()), config.clone());
        let name =
            pool.call(|p, s| p.joule_consensus_engine().call_name(s)).map_err(|e| ConsensusError::Engine { engine: "?".into(), reason: e.to_string() })?;
        Ok(WasmEngine { name, pool, runtime: self.runtime.clone(), pre: self.pre.clone(), suite, config })
    }
}

/// A new instance, configured.
fn configured(pre: &wit::EnginePluginPre<ConsensusHost>, store: &mut wasmtime::Store<ConsensusHost>, config: &[u8]) -> wasmtime::Result<wit::EnginePlugin> {
    let instance = pre.instantiate(&mut *store)?;
    instance.joule_consensus_engine().call_configure(&mut *store, config)?.map_err(|e| wasmtime::format_err!("configuration refused: {e}"))?;
    Ok(instance)
}

/// A consensus plugin bound to one channel.
pub struct WasmEngine {
    name: String,
    pool: InstancePool<ConsensusHost, wit::EnginePlugin>,
    /// What a participant needs to make its own instance.
    runtime: Arc<Runtime>,
    pre: wit::EnginePluginPre<ConsensusHost>,
    suite: Arc<dyn ChainCrypto>,
    config: Vec<u8>,
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

fn head_to_wit(h: &Head) -> wit::joule::consensus::types::Head {
    wit::joule::consensus::types::Head { header: to_wit(&h.header), hash: h.hash.clone(), validators: validators_to_wit(&h.validators) }
}

fn event_to_wit(e: Event) -> wit::joule::consensus::types::Event {
    use wit::joule::consensus::types as t;
    match e {
        Event::NewHead(h) => t::Event::NewHead(head_to_wit(&h)),
        Event::Timer(id) => t::Event::Timer(id),
        Event::Message(m) => t::Event::Message(m),
        Event::Built(h) => t::Event::Built(to_wit(&h)),
        Event::Proposed { header, message } => t::Event::Proposed(t::Proposal { header: to_wit(&header), message }),
        Event::Signed { request, signature } => t::Event::Signed(t::Signature { request, signature }),
        Event::Worked { seal_hash, nonce } => t::Event::Worked(t::WorkFound { seal_hash, nonce }),
    }
}

fn action_from_wit(a: wit::joule::consensus::types::Action) -> Action {
    use wit::joule::consensus::types as t;
    match a {
        t::Action::SetTimer(t::Timer { id, after_ms }) => Action::SetTimer { id, after_ms },
        t::Action::Build => Action::Build,
        t::Action::Sign(t::SignRequest { request, message }) => Action::Sign { request, message },
        t::Action::Broadcast(m) => Action::Broadcast(m),
        t::Action::Propose(t::ProposalOut { seal_hash, message }) => Action::Propose { seal_hash, message },
        t::Action::Work(t::WorkRequest { seal_hash, target }) => Action::Work { seal_hash, target },
        t::Action::Commit(t::Commit { seal_hash, seal }) => Action::Commit { seal_hash, seal },
        t::Action::Persist(state) => Action::Persist(state),
    }
}

impl ConsensusEngine for WasmEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn verify_header(&self, parent: &EngineHeader, header: &EngineHeader, validators: &[Validator]) -> Result<(), ConsensusError> {
        let (parent, header, vs) = (to_wit(parent), to_wit(header), validators_to_wit(validators));
        self.call(|p, s| p.joule_consensus_engine().call_verify_header(s, &parent, &header, &vs))?.map_err(ConsensusError::Rejected)
    }

    fn weight(&self, header: &EngineHeader, validators: &[Validator]) -> Result<u64, ConsensusError> {
        let (header, vs) = (to_wit(header), validators_to_wit(validators));
        self.call(|p, s| p.joule_consensus_engine().call_weight(s, &header, &vs))
    }

    fn finality_depth(&self, validators: &[Validator]) -> Result<u64, ConsensusError> {
        let vs = validators_to_wit(validators);
        self.call(|p, s| p.joule_consensus_engine().call_finality_depth(s, &vs))
    }

    fn participant(&self, me: &[u8], head: &Head, saved: &[u8]) -> Result<Box<dyn Participant>, ConsensusError> {
        let fail = |reason: String| ConsensusError::Engine { engine: self.name.clone(), reason };
        let limits = self.runtime.limits().clone();
        let state = ConsensusHost { limiter: StoreLimiter::new(&limits), suite: Some(self.suite.clone()) };
        let (pre, config) = (self.pre.clone(), self.config.clone());
        let mut owned = OwnedInstance::new(self.runtime.clone(), state, move |store| configured(&pre, store, &config)).map_err(|e| fail(e.to_string()))?;
        let head = head_to_wit(head);
        let resource = owned
            .call(|p, s| p.joule_consensus_engine().instance().call_start(s, me, &head, saved))
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(format!("the participant refused to start: {e}")))?;
        Ok(Box::new(WasmParticipant { engine: self.name.clone(), owned, resource }))
    }
}

/// This node's participant: the `instance` resource in a store of its own.
pub struct WasmParticipant {
    engine: String,
    owned: OwnedInstance<ConsensusHost, wit::EnginePlugin>,
    resource: ResourceAny,
}

impl Participant for WasmParticipant {
    fn handle(&mut self, event: Event) -> Result<Vec<Action>, ConsensusError> {
        let (event, resource) = (event_to_wit(event), self.resource);
        let actions = self
            .owned
            .call(|p, s| p.joule_consensus_engine().instance().call_handle(s, resource, &event))
            .map_err(|e| ConsensusError::Engine { engine: self.engine.clone(), reason: e.to_string() })?;
        Ok(actions.into_iter().map(action_from_wit).collect())
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

    /// A component the chain carries: compiled by the kernel's runtime, held to the imports
    /// the consensus kind grants (as an installed plugin is), linked against the world and
    /// bound to the channel's suite with `config`.
    fn load(&self, component: &[u8], config: &[u8]) -> Result<Arc<dyn ConsensusEngine>, ConsensusError> {
        let runtime = self.registry.runtime();
        let unusable = |reason: String| ConsensusError::Engine { engine: "(a component on chain)".into(), reason };
        let compiled = Component::new(runtime.engine(), component).map_err(|e| unusable(format!("not a WebAssembly component: {e:#}")))?;
        for (name, _) in compiled.component_type().imports(runtime.engine()) {
            if !ConsensusKind.granted_imports().contains(&name) {
                return Err(unusable(format!("it imports {name}, which {} does not grant", ConsensusKind.world())));
            }
        }
        let linked = EngineComponent::link(runtime.clone(), &compiled).map_err(unusable)?;
        Ok(Arc::new(linked.bind(self.suite.clone(), config.to_vec())?))
    }

    /// The engines bound to another suite on the same plugins (a governed suite switch).
    fn rebind(&self, suite: &str) -> Result<Arc<dyn EngineSource>, ConsensusError> {
        let other = self
            .suite
            .bind_suite(suite)
            .ok_or_else(|| ConsensusError::Unavailable(format!("this node's crypto plugins do not serve suite {suite}: install and activate them")))?;
        Ok(Arc::new(PluginEngineSource::new(self.registry.clone(), &self.engine_id, other, self.config.clone(), &self.channel)))
    }
}
