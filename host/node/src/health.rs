//! Whether the node can do its work, checked the way an orchestrator asks (`/readyz`,
//! `/v1/health`): its storage takes writes and no chain is recovering from a failed store;
//! every channel's suite algorithms and consensus engine (and the keystore's cipher) are
//! served by an active plugin; each channel's producer keeps running without failing.
//!
//! The same knowledge guards the plugin registry: [`require`] declares what the channels
//! and the keystore use, and the registry then refuses, atomically with the change itself,
//! to deactivate, roll back or replace the last version that serves it.

use crate::Node;
use crate::keystore::Keystore;
use joule_crypto::AlgorithmKind;
use joule_kernel::PluginRegistry;
use joule_ledger::chain::Chain;
use joule_support::sync::lock;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One readiness check.
#[derive(Debug, Clone)]
pub struct Check {
    /// `storage`, `plugins` or `progress`.
    pub name: &'static str,
    pub ok: bool,
    /// What is wrong (empty when `ok`).
    pub detail: String,
}

/// How long a write probe's answer is reused: readiness is polled, and a probe writes.
const PROBE_REUSE: Duration = Duration::from_secs(1);
/// A producer that has not run for this long (or three intervals, if longer) is stuck.
const STALL_AFTER: Duration = Duration::from_secs(10);

/// The node's health state between checks.
#[derive(Default)]
pub struct HealthState {
    probe: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl HealthState {
    /// Whether the data directory takes writes; probed at most once per [`PROBE_REUSE`].
    fn writable(&self, dir: &Path) -> Result<(), String> {
        let mut last = lock(&self.probe);
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < PROBE_REUSE
        {
            return result.clone();
        }
        let result = joule_support::fs::probe_writable(dir).map_err(|e| format!("{} does not take writes: {e}", dir.display()));
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

/// What a chain needs served: `(kind, class, id)` of its suite's hash and signature
/// algorithms and of its consensus engine.
pub fn chain_routes(chain: &Chain) -> Vec<(&'static str, &'static str, String)> {
    let spec = chain.spec();
    vec![
        (joule_crypto::KIND, AlgorithmKind::Hash.as_str(), spec.crypto_suite.hash.clone()),
        (joule_crypto::KIND, AlgorithmKind::Signature.as_str(), spec.crypto_suite.signature.clone()),
        (joule_consensus_wasm::KIND, joule_consensus_wasm::CLASS, spec.consensus.clone()),
    ]
}

/// Everything this node uses, with who uses it: `(holder, kind, class, id)`.
fn required(chains: &[Arc<Chain>], keystore: Option<&Arc<Keystore>>) -> Vec<(String, &'static str, &'static str, String)> {
    let mut out = vec![];
    for c in chains {
        for (kind, class, id) in chain_routes(c) {
            out.push((format!("channel {}", c.channel()), kind, class, id));
        }
    }
    if let Some(ks) = keystore {
        out.push(("the keystore (it seals the node's keys)".into(), joule_crypto::KIND, AlgorithmKind::SymmetricCipher.as_str(), ks.cipher().to_string()));
    }
    out
}

/// Declare to the registry what the channels and the keystore use (see the module docs).
pub fn require(registry: &PluginRegistry, chains: &[Arc<Chain>], keystore: Option<&Arc<Keystore>>) {
    for (holder, kind, class, id) in required(chains, keystore) {
        registry.require(&holder, kind, class, &id);
    }
}

/// Run every check. Blocking: the storage check writes to the data directory.
pub fn checks(node: &Node) -> Vec<Check> {
    let check = |name, problems: Vec<String>| Check { name, ok: problems.is_empty(), detail: problems.join("; ") };
    let mut storage = vec![];
    if let Err(e) = node.health.writable(&node.dir) {
        storage.push(e);
    }
    let mut progress = vec![];
    let now = joule_support::now_ms();
    for c in &node.chains {
        let h = c.health();
        if let Some(f) = &h.storage {
            storage.push(format!("channel {}: {} (recovering: {} attempts so far)", c.channel(), f.reason, f.retries));
            continue;
        }
        if let Some(e) = &h.production_error {
            progress.push(format!("channel {}: block production failed: {e}", c.channel()));
        }
        let window = STALL_AFTER.max(Duration::from_millis(c.policy().interval_ms.saturating_mul(3)));
        let idle = if h.last_attempt_ms == 0 { node.started.elapsed() } else { Duration::from_millis(now.saturating_sub(h.last_attempt_ms)) };
        if idle > window {
            progress.push(format!("channel {}: the block producer has not run for {} s", c.channel(), idle.as_secs()));
        }
    }
    let registry = node.registry();
    let plugins = required(&node.chains, node.keystore.as_ref())
        .into_iter()
        .filter(|(_, kind, class, id)| registry.route(kind, class, id).is_none())
        .map(|(holder, _, class, id)| format!("{holder}: no active plugin serves {class}:{id}"))
        .collect();
    vec![check("storage", storage), check("plugins", plugins), check("progress", progress)]
}
