//! Consensus engines as plugins (guide §4.2): components of the
//! `joule:consensus/engine-plugin@0.1.0` world.
//!
//! A consensus plugin is installed and activated through the plugin registry like any
//! other; [`EngineComponent`] is its linked form. A channel binds it to its crypto suite
//! and its engine configuration with [`EngineComponent::bind`], giving a
//! [`ChannelEngine`]: a pool of configured instances whose `chain-crypto` import hashes
//! and verifies with that channel's suite. The engine sees no clock, no randomness and no
//! I/O, so every node judging the same header reaches the same verdict.

use crate::ledger::suite::SuiteCrypto;
use crate::plugin::PluginEngine;
use crate::plugin::bindings::consensus as wit;
use crate::plugin::instance::{InstancePool, Limited, store_limits};
use std::sync::Arc;
use wasmtime::StoreLimits;
use wasmtime::component::{Component, HasSelf, Linker};

pub use wit::joule::consensus::types::{Header as EngineHeader, SealPlan, Validator};

#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// The engine judged the header invalid.
    #[error("consensus: {0}")]
    Rejected(String),
    /// The engine could not be called (trap, timeout, bad configuration).
    #[error("consensus engine {engine}: {reason}")]
    Engine { engine: String, reason: String },
    #[error("the channel has no validator whose turn it is")]
    NoProposer,
}

/// Store state of a consensus instance: limits, and the channel suite behind `chain-crypto`
/// (`None` only while the registry self-tests a plugin, which never calls it).
pub struct ConsensusHost {
    limits: StoreLimits,
    suite: Option<SuiteCrypto>,
}

impl Limited for ConsensusHost {
    fn limits(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }
}

impl ConsensusHost {
    fn suite(&self) -> wasmtime::Result<&SuiteCrypto> {
        self.suite.as_ref().ok_or_else(|| wasmtime::format_err!("chain-crypto is not available outside a channel"))
    }
}

impl wit::joule::consensus::types::Host for ConsensusHost {}

impl wit::joule::consensus::chain_crypto::Host for ConsensusHost {
    fn hash(&mut self, data: Vec<u8>) -> wasmtime::Result<Vec<u8>> {
        let suite = self.suite()?;
        suite.crypto.digest(&suite.suite.hash, &data).map_err(|e| wasmtime::format_err!("chain-crypto hash: {e}"))
    }

    fn verify(&mut self, public_key: Vec<u8>, message: Vec<u8>, signature: Vec<u8>) -> wasmtime::Result<bool> {
        use crate::crypto::CryptoError;
        match self.suite()?.verify(&public_key, &message, &signature) {
            Ok(ok) => Ok(ok),
            // Garbage keys or signatures in a header are a "no", not a failure of the node.
            Err(CryptoError::InvalidKey(_) | CryptoError::InvalidInput(_)) => Ok(false),
            Err(e) => Err(wasmtime::format_err!("chain-crypto verify: {e}")),
        }
    }
}

/// A consensus plugin, compiled and linked against its world.
pub struct EngineComponent {
    engine: Arc<PluginEngine>,
    pre: wit::EnginePluginPre<ConsensusHost>,
}

impl EngineComponent {
    /// Link the component. Fails if its exports do not match the world's types.
    pub fn new(engine: Arc<PluginEngine>, component: &Component) -> Result<Self, String> {
        let mut linker: Linker<ConsensusHost> = Linker::new(engine.engine());
        wit::EnginePlugin::add_to_linker::<ConsensusHost, HasSelf<ConsensusHost>>(&mut linker, |s| s).map_err(|e| format!("{e:#}"))?;
        let instance_pre = linker.instantiate_pre(component).map_err(|e| format!("{e:#}"))?;
        let pre = wit::EnginePluginPre::new(instance_pre).map_err(|e| format!("{e:#}"))?;
        Ok(EngineComponent { engine, pre })
    }

    fn pool(&self, suite: Option<SuiteCrypto>, config: Vec<u8>) -> InstancePool<ConsensusHost, wit::EnginePlugin> {
        let engine = self.engine.clone();
        let pre = self.pre.clone();
        InstancePool::with(
            self.engine.clone(),
            move || ConsensusHost { limits: store_limits(&engine), suite: suite.clone() },
            move |store| {
                let instance = pre.instantiate(&mut *store)?;
                instance.joule_consensus_engine().call_configure(&mut *store, &config)?.map_err(|e| wasmtime::format_err!("configuration refused: {e}"))?;
                Ok(instance)
            },
        )
    }

    /// The engine's self-reported name (`poa/0.1.0`), with an empty configuration.
    pub fn name(&self) -> Result<String, String> {
        self.pool(None, vec![]).call(|p, s| p.joule_consensus_engine().call_name(s))
    }

    /// Bind to a channel: its suite for `chain-crypto`, its engine configuration. The
    /// configuration is checked here, once, so a bad one fails at start-up.
    pub fn bind(&self, suite: SuiteCrypto, config: Vec<u8>) -> Result<ChannelEngine, ConsensusError> {
        let pool = self.pool(Some(suite), config);
        let name = pool.call(|p, s| p.joule_consensus_engine().call_name(s)).map_err(|reason| ConsensusError::Engine { engine: "?".into(), reason })?;
        Ok(ChannelEngine { name, pool })
    }
}

/// A consensus engine bound to one channel.
pub struct ChannelEngine {
    name: String,
    pool: InstancePool<ConsensusHost, wit::EnginePlugin>,
}

impl ChannelEngine {
    pub fn name(&self) -> &str {
        &self.name
    }

    fn call<R>(&self, f: impl FnOnce(&wit::EnginePlugin, &mut wasmtime::Store<ConsensusHost>) -> wasmtime::Result<R>) -> Result<R, ConsensusError> {
        self.pool.call(f).map_err(|reason| ConsensusError::Engine { engine: self.name.clone(), reason })
    }

    /// Index of the validator allowed to propose at `height` in `round`.
    pub fn proposer(&self, height: u64, round: u32, validators: &[Validator]) -> Result<usize, ConsensusError> {
        let i = self.call(|p, s| p.joule_consensus_engine().call_proposer(s, height, round, validators))? as usize;
        if i < validators.len() { Ok(i) } else { Err(ConsensusError::NoProposer) }
    }

    pub fn plan_seal(&self, parent: &EngineHeader, validators: &[Validator]) -> Result<SealPlan, ConsensusError> {
        self.call(|p, s| p.joule_consensus_engine().call_plan_seal(s, parent, validators))
    }

    pub fn finish_seal(&self, proof: &[u8]) -> Result<Vec<u8>, ConsensusError> {
        self.call(|p, s| p.joule_consensus_engine().call_finish_seal(s, proof))
    }

    pub fn verify_header(&self, parent: &EngineHeader, header: &EngineHeader, validators: &[Validator]) -> Result<(), ConsensusError> {
        self.call(|p, s| p.joule_consensus_engine().call_verify_header(s, parent, header, validators))?.map_err(ConsensusError::Rejected)
    }
}
