//! Installed plugins, their versions, and which one serves each algorithm.
//!
//! Hot swap: the table that maps `(kind, algorithm)` to a plugin version is an immutable
//! snapshot behind an [`ArcSwap`]. A call loads the snapshot, takes an `Arc` to the plugin
//! and runs on it; activating another version builds a new snapshot and swaps the pointer
//! in one atomic store. Calls already running keep their `Arc` and finish on the old
//! version; calls that start after the store use the new one; no call waits or fails.
//!
//! Every install, activation, deactivation, rollback, removal and refusal is an
//! [`AuditEvent`]: logged through `tracing`, kept in memory, and appended as a JSON line to
//! `audit.log` in the plugin store when the registry has one.

use super::cache::ArtifactCache;
use super::engine::PluginEngine;
use super::instance::CryptoInstances;
use super::package::{PluginPackage, check_imports};
use super::trust::{Provenance, TrustPolicy};
use super::{PluginError, selftest};
use crate::consensus::EngineComponent;
use crate::crypto::calls::CallMetrics;
use crate::crypto::{AlgorithmInfo, AlgorithmKind};
use arc_swap::ArcSwap;
use joule_plugin_manifest::{Manifest, PluginKind};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

type Version = (u64, u64, u64);

/// A compiled, self-tested plugin version, ready to serve calls.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub provenance: Provenance,
    pub algorithms: Vec<AlgorithmInfo>,
    /// Unix milliseconds.
    pub installed_at: u64,
    pub(crate) runtime: Runtime,
    pub(crate) metrics: CallMetrics,
}

/// The linked form of a plugin, by kind.
pub enum Runtime {
    /// A pool of crypto instances, called directly.
    Crypto(CryptoInstances),
    /// A consensus engine; channels bind it to their suite and configuration.
    Consensus(EngineComponent),
}

impl LoadedPlugin {
    /// The consensus engine ids (`poa`) this plugin provides: its `consensus:` algorithms.
    pub fn engine_ids(&self) -> impl Iterator<Item = &str> {
        self.manifest.algorithms.iter().filter_map(|a| a.strip_prefix("consensus:"))
    }

    /// The consensus engine, if this is a consensus plugin.
    pub fn consensus(&self) -> Option<&EngineComponent> {
        match &self.runtime {
            Runtime::Consensus(c) => Some(c),
            Runtime::Crypto(_) => None,
        }
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("hash", &self.manifest.wasm_sha256)
            .finish_non_exhaustive()
    }
}

/// One row of `joule plugin list` and `GET /v1/plugins`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSummary {
    pub name: String,
    pub kind: PluginKind,
    pub version: String,
    pub vendor: String,
    pub description: String,
    pub algorithms: Vec<String>,
    pub hash: String,
    pub active: bool,
    pub signed: &'static str,
    pub installed_at: u64,
}

/// A change to the registry, or a refused one.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub at: u64,
    pub action: &'static str,
    pub plugin: String,
    pub version: String,
    pub detail: String,
}

#[derive(Default)]
struct Entry {
    versions: BTreeMap<Version, Arc<LoadedPlugin>>,
    active: Option<Version>,
    /// Versions active before the current one, oldest first (for rollback).
    history: Vec<Version>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    /// Names in activation order; a later activation wins an algorithm both provide.
    order: Vec<String>,
}

/// The routing snapshot: per kind, algorithm id -> plugin version.
#[derive(Default)]
struct Routes {
    by_kind: [HashMap<String, Arc<LoadedPlugin>>; 4],
    /// Consensus engine id -> plugin version.
    engines: HashMap<String, Arc<LoadedPlugin>>,
}

const AUDIT_KEPT: usize = 1000;

pub struct PluginRegistry {
    engine: Arc<PluginEngine>,
    cache: ArtifactCache,
    trust: TrustPolicy,
    /// Where installed packages and the active set persist (a node's data dir); `None`
    /// for a registry that lives only as long as the process (the CLI).
    store: Option<PathBuf>,
    state: Mutex<State>,
    routes: ArcSwap<Routes>,
    audit: Mutex<VecDeque<AuditEvent>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn fmt_version(v: Version) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

fn parse_version(name: &str, s: &str) -> Result<Version, PluginError> {
    joule_plugin_manifest::parse_version(s).ok_or_else(|| PluginError::NoSuchVersion { name: name.into(), version: s.into() })
}

impl PluginRegistry {
    pub fn new(engine: Arc<PluginEngine>, cache: ArtifactCache, trust: TrustPolicy, store: Option<PathBuf>) -> Self {
        PluginRegistry {
            engine,
            cache,
            trust,
            store,
            state: Mutex::new(State::default()),
            routes: ArcSwap::from_pointee(Routes::default()),
            audit: Mutex::new(VecDeque::new()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated in a way that
        // matters more than refusing all further changes would: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The plugin version serving `alg` of `kind`, if any. Lock-free.
    pub fn route(&self, kind: AlgorithmKind, alg: &str) -> Option<Arc<LoadedPlugin>> {
        self.routes.load().by_kind[kind as usize].get(alg).cloned()
    }

    /// The active plugin providing consensus engine `id` (e.g. `poa`). Lock-free.
    pub fn engine(&self, id: &str) -> Option<Arc<LoadedPlugin>> {
        self.routes.load().engines.get(id).cloned()
    }

    /// Active algorithm ids of a kind, sorted.
    pub fn algorithms(&self, kind: AlgorithmKind) -> Vec<String> {
        let mut v: Vec<String> = self.routes.load().by_kind[kind as usize].keys().cloned().collect();
        v.sort();
        v
    }

    /// Every active algorithm with the plugin serving it.
    pub fn active_algorithms(&self) -> Vec<(AlgorithmInfo, String, String)> {
        let routes = self.routes.load();
        let mut v: Vec<_> = routes
            .by_kind
            .iter()
            .flat_map(|m| m.iter())
            .filter_map(|(id, p)| {
                p.algorithms
                    .iter()
                    .find(|a| &a.id == id && routes.by_kind[a.kind as usize].get(id).is_some_and(|q| Arc::ptr_eq(p, q)))
                    .map(|a| (a.clone(), p.manifest.name.clone(), p.manifest.version.clone()))
            })
            .collect();
        v.sort_by(|a, b| (a.0.kind, &a.0.id).cmp(&(b.0.kind, &b.0.id)));
        v
    }

    fn record(&self, action: &'static str, plugin: &str, version: &str, detail: String) {
        let ev = AuditEvent { at: now_ms(), action, plugin: plugin.into(), version: version.into(), detail };
        if action == "refuse" {
            tracing::warn!(plugin, version, "plugin {action}: {}", ev.detail);
        } else {
            tracing::info!(plugin, version, "plugin {action}: {}", ev.detail);
        }
        metrics::counter!("joule_plugin_changes_total", "action" => action).increment(1);
        if let Some(dir) = &self.store
            && let Ok(line) = serde_json::to_string(&ev)
        {
            let appended = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("audit.log")).and_then(|mut f| writeln!(f, "{line}"));
            if let Err(e) = appended {
                tracing::warn!("cannot append to the plugin audit log: {e}");
            }
        }
        let mut audit = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        if audit.len() == AUDIT_KEPT {
            audit.pop_front();
        }
        audit.push_back(ev);
    }

    /// The most recent changes, oldest first.
    pub fn audit(&self) -> Vec<AuditEvent> {
        self.audit.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// Verify, compile, link and self-test a package, then add it (inactive). Installing
    /// the same name, version and content again is a no-op.
    pub fn install(&self, package: PluginPackage) -> Result<Arc<LoadedPlugin>, PluginError> {
        let (name, version) = (package.manifest.name.clone(), package.manifest.version.clone());
        match self.install_inner(package) {
            Ok((p, fresh)) => {
                if fresh {
                    self.record(
                        "install",
                        &name,
                        &version,
                        format!("sha256 {}, provides [{}], {:?}", p.manifest.wasm_sha256, p.manifest.algorithms.join(", "), p.provenance),
                    );
                }
                Ok(p)
            }
            Err(e) => {
                self.record("refuse", &name, &version, e.to_string());
                Err(e)
            }
        }
    }

    fn install_inner(&self, package: PluginPackage) -> Result<(Arc<LoadedPlugin>, bool), PluginError> {
        let provenance = package.verify(&self.trust)?;
        let m = &package.manifest;
        let name = m.name.clone();
        if let Some(existing) = self.state().entries.get(&name).and_then(|e| e.versions.get(&m.semver())) {
            if existing.manifest.wasm_sha256 == m.wasm_sha256 {
                return Ok((existing.clone(), false));
            }
            return Err(PluginError::Conflict { name, version: m.version.clone() });
        }
        let bytes = package.component_bytes()?;
        let component =
            self.cache.load(self.engine.engine(), &bytes, &m.wasm_sha256).map_err(|e| PluginError::Invalid { name: name.clone(), reason: format!("{e:#}") })?;
        check_imports(self.engine.engine(), &component, m)?;
        let wrong_world = |reason| PluginError::WrongWorld { name: name.clone(), world: m.kind.world(), reason };
        let runtime = match m.kind {
            PluginKind::Crypto => Runtime::Crypto(CryptoInstances::new(self.engine.clone(), &component).map_err(wrong_world)?),
            PluginKind::Consensus => Runtime::Consensus(EngineComponent::new(self.engine.clone(), &component).map_err(wrong_world)?),
            other => return Err(PluginError::UnsupportedKind(other)),
        };
        let mut loaded = LoadedPlugin {
            manifest: m.clone(),
            provenance,
            algorithms: vec![],
            installed_at: now_ms(),
            runtime,
            metrics: CallMetrics::new(&m.name, &m.version),
        };
        match &loaded.runtime {
            Runtime::Crypto(_) => {
                let algorithms = loaded.describe().map_err(|e| PluginError::SelfTest { name: name.clone(), case: format!("provider.algorithms: {e}") })?;
                let mut claimed: Vec<String> = algorithms.iter().map(AlgorithmInfo::qualified).collect();
                let mut listed = m.algorithms.clone();
                claimed.sort();
                listed.sort();
                if claimed != listed {
                    return Err(PluginError::SelfTest {
                        name,
                        case: format!("the plugin provides [{}] but its manifest lists [{}]", claimed.join(", "), listed.join(", ")),
                    });
                }
                loaded.algorithms = algorithms;
                selftest::run(&loaded).map_err(|case| PluginError::SelfTest { name: name.clone(), case })?;
            }
            Runtime::Consensus(engine) => {
                // The engine's own name must be one the manifest lists: `poa/0.1.0` for `consensus:poa`.
                let reported = engine.name().map_err(|e| PluginError::SelfTest { name: name.clone(), case: format!("engine.name: {e}") })?;
                let id = reported.split('/').next().unwrap_or_default();
                if !loaded.engine_ids().any(|listed| listed == id) {
                    return Err(PluginError::SelfTest {
                        name,
                        case: format!("the engine calls itself {reported:?} but the manifest lists {:?}", m.algorithms),
                    });
                }
            }
        }
        let loaded = Arc::new(loaded);
        let mut st = self.state();
        let entry = st.entries.entry(name.clone()).or_default();
        if let Some(raced) = entry.versions.get(&m.semver()) {
            return Ok((raced.clone(), false));
        }
        entry.versions.insert(m.semver(), loaded.clone());
        drop(st);
        if let Some(dir) = &self.store {
            persist_package(dir, &package).map_err(|source| PluginError::Io { context: format!("save plugin {name} in {}", dir.display()), source })?;
        }
        Ok((loaded, true))
    }

    /// Make `version` (default: the highest installed) of `name` the active one.
    pub fn activate(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedPlugin>, PluginError> {
        let mut st = self.state();
        let entry = st.entries.get_mut(name).ok_or_else(|| PluginError::NotInstalled(name.into()))?;
        let v = match version {
            Some(s) => parse_version(name, s)?,
            None => *entry.versions.keys().next_back().ok_or_else(|| PluginError::NotInstalled(name.into()))?,
        };
        let plugin = entry.versions.get(&v).cloned().ok_or_else(|| PluginError::NoSuchVersion { name: name.into(), version: fmt_version(v) })?;
        let previous = entry.active.replace(v);
        if let Some(prev) = previous
            && prev != v
        {
            entry.history.push(prev);
        }
        st.order.retain(|n| n != name);
        st.order.push(name.into());
        self.publish(&st);
        drop(st);
        let detail = match previous {
            Some(p) if p != v => format!("replaces {}", fmt_version(p)),
            Some(_) => "already active".into(),
            None => "activated".into(),
        };
        self.record("activate", name, &plugin.manifest.version, detail);
        Ok(plugin)
    }

    /// Stop routing calls to `name`; calls in flight finish.
    pub fn deactivate(&self, name: &str) -> Result<(), PluginError> {
        let mut st = self.state();
        let entry = st.entries.get_mut(name).ok_or_else(|| PluginError::NotInstalled(name.into()))?;
        let Some(v) = entry.active.take() else {
            return Ok(());
        };
        entry.history.push(v);
        st.order.retain(|n| n != name);
        self.publish(&st);
        drop(st);
        self.record("deactivate", name, &fmt_version(v), String::new());
        Ok(())
    }

    /// Re-activate the version that was active before the current one.
    pub fn rollback(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        let mut st = self.state();
        let entry = st.entries.get_mut(name).ok_or_else(|| PluginError::NotInstalled(name.into()))?;
        let current = entry.active;
        let target = loop {
            match entry.history.pop() {
                Some(v) if Some(v) != current && entry.versions.contains_key(&v) => break v,
                Some(_) => continue,
                None => return Err(PluginError::NoRollback(name.into())),
            }
        };
        entry.active = Some(target);
        let plugin = entry.versions[&target].clone();
        st.order.retain(|n| n != name);
        st.order.push(name.into());
        self.publish(&st);
        drop(st);
        self.record("rollback", name, &fmt_version(target), current.map(|c| format!("from {}", fmt_version(c))).unwrap_or_default());
        Ok(plugin)
    }

    /// Uninstall an inactive version.
    pub fn remove(&self, name: &str, version: &str) -> Result<(), PluginError> {
        let v = parse_version(name, version)?;
        let mut st = self.state();
        let entry = st.entries.get_mut(name).ok_or_else(|| PluginError::NotInstalled(name.into()))?;
        if entry.active == Some(v) {
            return Err(PluginError::Active { name: name.into(), version: version.into() });
        }
        if entry.versions.remove(&v).is_none() {
            return Err(PluginError::NoSuchVersion { name: name.into(), version: version.into() });
        }
        entry.history.retain(|h| *h != v);
        if entry.versions.is_empty() {
            st.entries.remove(name);
        }
        drop(st);
        if let Some(dir) = &self.store {
            for ext in ["wasm", "toml"] {
                let _ = std::fs::remove_file(dir.join(format!("{name}@{}.{ext}", fmt_version(v))));
            }
        }
        self.record("remove", name, &fmt_version(v), String::new());
        Ok(())
    }

    /// Build and swap in a new routing snapshot; persist the active set.
    fn publish(&self, st: &State) {
        let mut routes = Routes::default();
        for name in &st.order {
            let Some(entry) = st.entries.get(name) else { continue };
            let Some(p) = entry.active.and_then(|v| entry.versions.get(&v)) else { continue };
            for a in &p.algorithms {
                routes.by_kind[a.kind as usize].insert(a.id.clone(), p.clone());
            }
            for id in p.engine_ids() {
                routes.engines.insert(id.to_string(), p.clone());
            }
        }
        self.routes.store(Arc::new(routes));
        metrics::gauge!("joule_plugins_active").set(st.entries.values().filter(|e| e.active.is_some()).count() as f64);
        if let Some(dir) = &self.store {
            let active: Vec<(String, String)> =
                st.order.iter().filter_map(|n| st.entries.get(n).and_then(|e| e.active).map(|v| (n.clone(), fmt_version(v)))).collect();
            if let Err(e) = write_atomic(&dir.join("active.json"), serde_json::to_string_pretty(&active).unwrap_or_default().as_bytes()) {
                tracing::error!("cannot persist the active plugin set: {e}");
            }
        }
    }

    pub fn list(&self) -> Vec<PluginSummary> {
        let st = self.state();
        st.entries
            .values()
            .flat_map(|e| {
                e.versions.iter().map(move |(v, p)| PluginSummary {
                    name: p.manifest.name.clone(),
                    kind: p.manifest.kind,
                    version: p.manifest.version.clone(),
                    vendor: p.manifest.vendor.clone(),
                    description: p.manifest.description.clone(),
                    algorithms: p.algorithms.iter().map(AlgorithmInfo::qualified).collect(),
                    hash: p.manifest.wasm_sha256.clone(),
                    active: e.active == Some(*v),
                    signed: match p.provenance {
                        Provenance::Unsigned => "unsigned",
                        Provenance::SignedUnknown => "signed (unknown vendor key)",
                        Provenance::Trusted => "signed (trusted vendor)",
                    },
                    installed_at: p.installed_at,
                })
            })
            .collect()
    }

    /// Install every plugin in `dir` and activate the highest version of each. Problems
    /// with one plugin are reported and do not stop the others.
    pub fn load_dir(&self, dir: &Path) -> Vec<(PathBuf, PluginError)> {
        let mut failures = vec![];
        let manifests = match PluginPackage::manifests_in(dir) {
            Ok(m) => m,
            Err(e) => return vec![(dir.to_path_buf(), e)],
        };
        let mut names = vec![];
        for path in manifests {
            match PluginPackage::from_manifest_path(&path).and_then(|p| self.install(p)) {
                Ok(p) => names.push(p.manifest.name.clone()),
                Err(e) => failures.push((path, e)),
            }
        }
        names.dedup();
        for name in names {
            if let Err(e) = self.activate(&name, None) {
                failures.push((dir.join(&name), e));
            }
        }
        failures
    }

    /// A node's start-up: install everything in the store and restore the active set
    /// (or, on first start, activate the highest version of each).
    pub fn restore(&self) -> Vec<(PathBuf, PluginError)> {
        let Some(dir) = self.store.clone() else { return vec![] };
        let saved: Option<Vec<(String, String)>> = std::fs::read(dir.join("active.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let Some(saved) = saved else { return self.load_dir(&dir) };
        let mut failures = vec![];
        if let Ok(manifests) = PluginPackage::manifests_in(&dir) {
            for path in manifests {
                if let Err(e) = PluginPackage::from_manifest_path(&path).and_then(|p| self.install(p)) {
                    failures.push((path, e));
                }
            }
        }
        for (name, version) in saved {
            if let Err(e) = self.activate(&name, Some(&version)) {
                failures.push((dir.join(&name), e));
            }
        }
        failures
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)
}

fn persist_package(dir: &Path, p: &PluginPackage) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let stem = format!("{}@{}", p.manifest.name, p.manifest.version);
    let wasm = dir.join(format!("{stem}.wasm"));
    let toml = dir.join(format!("{stem}.toml"));
    if wasm.exists() && toml.exists() {
        return Ok(());
    }
    // Wasm first: a manifest without its wasm is skipped on restore, never half-loaded.
    write_atomic(&wasm, &p.wasm)?;
    write_atomic(&toml, p.manifest.to_toml().as_bytes())
}
