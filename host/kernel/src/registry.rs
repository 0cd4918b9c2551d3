//! Installed plugins, their versions, and which one serves each algorithm.
//!
//! Hot swap: the table that maps `(kind, class, id)` to a plugin version is an immutable
//! snapshot behind an [`ArcSwap`]. A call loads the snapshot, takes an `Arc` to the plugin
//! and runs on it; activating another version builds a new snapshot and swaps the pointer
//! in one atomic store. Calls already running keep their `Arc` and finish on the old
//! version; calls that start after the store use the new one; no call waits or fails.
//!
//! Every install, activation, deactivation, rollback, removal and refusal is an
//! [`AuditEvent`]: logged through `tracing`, kept in memory, and appended as a JSON line to
//! `audit.log` in the plugin store when the registry has one (rotated by size: [`AuditLog`]).
//!
//! A change is prepared on a copy of the state, checked, persisted and only then swapped
//! in: one that would leave a [required](PluginRegistry::require) route unserved, or whose
//! active set cannot be written (a full disk), is refused and changes nothing.

use super::audit::AuditLog;
use super::package::{PluginPackage, check_imports, check_routes};
use super::trust::{Provenance, TrustPolicy};
use super::{Admitted, PluginError, PluginKind, Refusal};
use arc_swap::ArcSwap;
use joule_plugin_manifest::Manifest;
use joule_support::fs::{Mode, write_atomic};
use joule_support::now_ms;
use joule_support::sync::lock;
use joule_wasm::{ArtifactCache, Runtime};
use serde::Serialize;
use std::any::Any;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

type Version = (u64, u64, u64);

/// A compiled, admitted plugin version, ready to serve calls.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub provenance: Provenance,
    /// `class:id` of everything it provides, in the plugin's own order.
    pub routes: Vec<String>,
    /// Unix milliseconds.
    pub installed_at: u64,
    linked: Arc<dyn Any + Send + Sync>,
}

impl LoadedPlugin {
    /// The linked form its kind made of it (see [`PluginKind::admit`]); `None` when `T` is
    /// not that kind's type.
    pub fn linked<T: Any>(&self) -> Option<&T> {
        self.linked.downcast_ref::<T>()
    }

    /// The ids it provides of one route class (`poa` for `consensus:poa`).
    pub fn ids_of<'a>(&'a self, class: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.routes.iter().filter_map(move |r| r.split_once(':').filter(|(c, _)| *c == class).map(|(_, id)| id))
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct PluginSummary {
    pub name: String,
    pub kind: String,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub at: u64,
    pub action: &'static str,
    pub plugin: String,
    pub version: String,
    pub detail: String,
}

#[derive(Default, Clone)]
struct Entry {
    versions: BTreeMap<Version, Arc<LoadedPlugin>>,
    active: Option<Version>,
    /// Versions active before the current one, oldest first (for rollback).
    history: Vec<Version>,
}

#[derive(Default, Clone)]
struct State {
    entries: BTreeMap<String, Entry>,
    /// Names in activation order; a later activation wins an algorithm both provide.
    order: Vec<String>,
    /// Routes something outside the kernel depends on.
    required: Vec<Requirement>,
}

/// A route that something outside the kernel depends on (a channel on its suite's hash, a
/// keystore on its cipher): a change that would leave it unserved is refused while a
/// version serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Who depends on it, for the refusal's message (e.g. `channel grid`).
    pub holder: String,
    pub kind: String,
    pub class: String,
    pub id: String,
}

/// The routing snapshot: kind -> class -> id -> plugin version.
type Routes = HashMap<String, HashMap<String, HashMap<String, Arc<LoadedPlugin>>>>;

const AUDIT_KEPT: usize = 1000;

pub struct PluginRegistry {
    runtime: Arc<Runtime>,
    kinds: HashMap<String, Arc<dyn PluginKind>>,
    cache: ArtifactCache,
    trust: TrustPolicy,
    /// Where installed packages and the active set persist (a node's data dir); `None`
    /// for a registry that lives only as long as the process (the CLI).
    store: Option<PathBuf>,
    state: Mutex<State>,
    routes: ArcSwap<Routes>,
    audit: Mutex<VecDeque<AuditEvent>>,
    /// `audit.log` in the store.
    audit_log: Option<AuditLog>,
}

fn fmt_version(v: Version) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

fn parse_version(name: &str, s: &str) -> Result<Version, PluginError> {
    joule_plugin_manifest::parse_version(s).ok_or_else(|| PluginError::NoSuchVersion { name: name.into(), version: s.into() })
}

impl PluginRegistry {
    /// A registry that loads plugins of `kinds` (each registered by its own crate).
    pub fn new(runtime: Arc<Runtime>, kinds: Vec<Arc<dyn PluginKind>>, cache: ArtifactCache, trust: TrustPolicy, store: Option<PathBuf>) -> Self {
        PluginRegistry {
            runtime,
            kinds: kinds.into_iter().map(|k| (k.name().to_string(), k)).collect(),
            cache,
            trust,
            audit_log: store.as_ref().map(|d| AuditLog::new(d.join("audit.log"))),
            store,
            state: Mutex::new(State::default()),
            routes: ArcSwap::from_pointee(Routes::default()),
            audit: Mutex::new(VecDeque::new()),
        }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The active version serving `class:id` of `kind`, if any. Lock-free.
    pub fn route(&self, kind: &str, class: &str, id: &str) -> Option<Arc<LoadedPlugin>> {
        self.routes.load().get(kind)?.get(class)?.get(id).cloned()
    }

    /// Ids of one class of a kind that some active version serves, sorted.
    pub fn ids(&self, kind: &str, class: &str) -> Vec<String> {
        let mut v: Vec<String> = self.routes.load().get(kind).and_then(|k| k.get(class)).map(|m| m.keys().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }

    /// Every active route of a kind, `(class, id, version serving it)`, sorted by class and id.
    pub fn active(&self, kind: &str) -> Vec<(String, String, Arc<LoadedPlugin>)> {
        let routes = self.routes.load();
        let mut v: Vec<_> = routes
            .get(kind)
            .into_iter()
            .flat_map(|classes| classes.iter())
            .flat_map(|(class, ids)| ids.iter().map(move |(id, p)| (class.clone(), id.clone(), p.clone())))
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
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
        if let Some(log) = &self.audit_log
            && let Ok(line) = serde_json::to_string(&ev)
            && let Err(e) = log.append(&line)
        {
            tracing::warn!("cannot append to the plugin audit log {}: {e}", log.path().display());
        }
        let mut audit = lock(&self.audit);
        if audit.len() == AUDIT_KEPT {
            audit.pop_front();
        }
        audit.push_back(ev);
    }

    /// The most recent changes, oldest first.
    pub fn audit(&self) -> Vec<AuditEvent> {
        lock(&self.audit).iter().cloned().collect()
    }

    /// Verify, compile, link and self-test a package, then add it (inactive). Installing
    /// the same name, version and content again is a no-op.
    pub fn install(&self, package: PluginPackage) -> Result<Arc<LoadedPlugin>, PluginError> {
        self.install_once(package).map(|(p, _)| p)
    }

    /// [`PluginRegistry::install`], saying whether the package was new (`true`) or this
    /// name and version was already installed with the same content (`false`: nothing was
    /// compiled or stored again), so an upload API can tell the two apart.
    pub fn install_once(&self, package: PluginPackage) -> Result<(Arc<LoadedPlugin>, bool), PluginError> {
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
                Ok((p, fresh))
            }
            Err(e) => {
                self.record("refuse", &name, &version, e.to_string());
                Err(e)
            }
        }
    }

    fn install_inner(&self, package: PluginPackage) -> Result<(Arc<LoadedPlugin>, bool), PluginError> {
        let m = &package.manifest;
        let name = m.name.clone();
        let kind = self.kinds.get(&m.kind).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
            known.sort();
            PluginError::UnsupportedKind { kind: m.kind.clone(), known: known.join(", ") }
        })?;
        check_routes(kind.as_ref(), m)?;
        let provenance = package.verify(&self.trust)?;
        if let Some(existing) = self.state().entries.get(&name).and_then(|e| e.versions.get(&m.semver())) {
            if existing.manifest.wasm_sha256 == m.wasm_sha256 {
                return Ok((existing.clone(), false));
            }
            return Err(PluginError::Conflict { name, version: m.version.clone() });
        }
        let bytes = package.component_bytes()?;
        let component = self
            .cache
            .load(self.runtime.engine(), &bytes, &m.wasm_sha256)
            .map_err(|e| PluginError::Invalid { name: name.clone(), reason: format!("{e:#}") })?;
        check_imports(kind.as_ref(), self.runtime.engine(), &component, m)?;
        let Admitted { routes, linked } = kind.admit(&self.runtime, &component, m).map_err(|refusal| match refusal {
            Refusal::WrongWorld(reason) => PluginError::WrongWorld { name: name.clone(), world: kind.world().to_string(), reason },
            Refusal::SelfTest(case) => PluginError::SelfTest { name: name.clone(), case },
        })?;
        let mut claimed = routes.clone();
        let mut listed = m.algorithms.clone();
        claimed.sort();
        listed.sort();
        if claimed != listed {
            return Err(PluginError::SelfTest {
                name,
                case: format!("the plugin provides [{}] but its manifest lists [{}]", claimed.join(", "), listed.join(", ")),
            });
        }
        let loaded = Arc::new(LoadedPlugin { manifest: m.clone(), provenance, routes, installed_at: now_ms(), linked });
        // Stored before it is listed: a package that cannot be saved is not installed.
        if let Some(dir) = &self.store {
            persist_package(dir, &package).map_err(|source| PluginError::Io { context: format!("save plugin {name} in {}", dir.display()), source })?;
        }
        let mut st = self.state();
        let entry = st.entries.entry(name.clone()).or_default();
        if let Some(raced) = entry.versions.get(&m.semver()) {
            return Ok((raced.clone(), false));
        }
        entry.versions.insert(m.semver(), loaded.clone());
        Ok((loaded, true))
    }

    /// Make `version` (default: the highest installed) of `name` the active one.
    pub fn activate(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedPlugin>, PluginError> {
        let mut st = self.state();
        let mut next = st.clone();
        let entry = next.entries.get_mut(name).ok_or_else(|| PluginError::NotInstalled(name.into()))?;
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
        next.order.retain(|n| n != name);
        next.order.push(name.into());
        self.apply(&mut st, next).inspect_err(|e| self.refused_change(name, &plugin.manifest.version, e))?;
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
        let mut next = st.clone();
        let entry = next.entries.get_mut(name).ok_or_else(|| PluginError::NotInstalled(name.into()))?;
        let Some(v) = entry.active.take() else {
            return Ok(());
        };
        entry.history.push(v);
        next.order.retain(|n| n != name);
        self.apply(&mut st, next).inspect_err(|e| self.refused_change(name, &fmt_version(v), e))?;
        drop(st);
        self.record("deactivate", name, &fmt_version(v), String::new());
        Ok(())
    }

    /// Re-activate the version that was active before the current one.
    pub fn rollback(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        let mut st = self.state();
        let mut next = st.clone();
        let entry = next.entries.get_mut(name).ok_or_else(|| PluginError::NotInstalled(name.into()))?;
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
        next.order.retain(|n| n != name);
        next.order.push(name.into());
        self.apply(&mut st, next).inspect_err(|e| self.refused_change(name, &fmt_version(target), e))?;
        drop(st);
        self.record("rollback", name, &fmt_version(target), current.map(|c| format!("from {}", fmt_version(c))).unwrap_or_default());
        Ok(plugin)
    }

    /// Uninstall an inactive version.
    pub fn remove(&self, name: &str, version: &str) -> Result<(), PluginError> {
        let v = parse_version(name, version)?;
        let mut st = self.state();
        let active = st.entries.get(name).ok_or_else(|| PluginError::NotInstalled(name.into()))?.active;
        if active == Some(v) {
            // Name what depends on it, when something does: that is what the operator must see.
            let mut without = st.clone();
            without.order.retain(|n| n != name);
            return Err(self.lost_requirement(&without, &build_routes(&without)).unwrap_or(PluginError::Active { name: name.into(), version: version.into() }));
        }
        let entry = st.entries.get_mut(name).ok_or_else(|| PluginError::NotInstalled(name.into()))?;
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

    /// Declare that `holder` depends on `class:id` of `kind`: from now on, deactivating,
    /// rolling back, replacing or removing the last active version that serves it is
    /// refused ([`PluginError::InUse`]). Checked under the registry's lock, with the
    /// change itself, so two concurrent changes cannot each leave the other to serve it.
    pub fn require(&self, holder: &str, kind: &str, class: &str, id: &str) {
        let r = Requirement { holder: holder.into(), kind: kind.into(), class: class.into(), id: id.into() };
        let mut st = self.state();
        if !st.required.contains(&r) {
            st.required.push(r);
        }
    }

    /// The first requirement the current snapshot serves and `routes` (of `next`) would not.
    fn lost_requirement(&self, next: &State, routes: &Routes) -> Option<PluginError> {
        let current = self.routes.load();
        next.required.iter().find_map(|r| {
            let serving = lookup(&current, r)?;
            lookup(routes, r).is_none().then(|| PluginError::InUse {
                name: serving.manifest.name.clone(),
                version: serving.manifest.version.clone(),
                route: format!("{}:{}", r.class, r.id),
                holder: r.holder.clone(),
            })
        })
    }

    /// Make `next` the state: build its routing snapshot, refuse it if it leaves a
    /// requirement unserved, persist its active set, and only then swap both in. A refused
    /// or unpersisted change leaves memory and disk as they were.
    fn apply(&self, st: &mut State, next: State) -> Result<(), PluginError> {
        let routes = build_routes(&next);
        if let Some(e) = self.lost_requirement(&next, &routes) {
            return Err(e);
        }
        if let Some(dir) = &self.store {
            let active: Vec<(String, String)> =
                next.order.iter().filter_map(|n| next.entries.get(n).and_then(|e| e.active).map(|v| (n.clone(), fmt_version(v)))).collect();
            write_atomic(&dir.join("active.json"), serde_json::to_string_pretty(&active).unwrap_or_default().as_bytes(), Mode::Default)
                .map_err(|source| PluginError::Io { context: format!("persist the active plugin set in {}", dir.display()), source })?;
        }
        *st = next;
        self.routes.store(Arc::new(routes));
        metrics::gauge!("joule_plugins_active").set(st.entries.values().filter(|e| e.active.is_some()).count() as f64);
        Ok(())
    }

    /// Audit a change that was refused after the plugin was found (in use, not persisted).
    fn refused_change(&self, name: &str, version: &str, e: &PluginError) {
        self.record("refuse", name, version, e.to_string());
    }

    pub fn list(&self) -> Vec<PluginSummary> {
        let st = self.state();
        st.entries
            .values()
            .flat_map(|e| {
                e.versions.iter().map(move |(v, p)| PluginSummary {
                    name: p.manifest.name.clone(),
                    kind: p.manifest.kind.clone(),
                    version: p.manifest.version.clone(),
                    vendor: p.manifest.vendor.clone(),
                    description: p.manifest.description.clone(),
                    algorithms: p.routes.clone(),
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

/// The routing snapshot of a state: each active version's routes, later activations winning.
fn build_routes(st: &State) -> Routes {
    let mut routes = Routes::default();
    for name in &st.order {
        let Some(entry) = st.entries.get(name) else { continue };
        let Some(p) = entry.active.and_then(|v| entry.versions.get(&v)) else { continue };
        let by_class = routes.entry(p.manifest.kind.clone()).or_default();
        for r in &p.routes {
            if let Some((class, id)) = r.split_once(':') {
                by_class.entry(class.to_string()).or_default().insert(id.to_string(), p.clone());
            }
        }
    }
    routes
}

fn lookup<'a>(routes: &'a Routes, r: &Requirement) -> Option<&'a Arc<LoadedPlugin>> {
    routes.get(&r.kind)?.get(&r.class)?.get(&r.id)
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
    write_atomic(&wasm, &p.wasm, Mode::Default)?;
    write_atomic(&toml, p.manifest.to_toml().as_bytes(), Mode::Default).inspect_err(|_| {
        // Nothing half-stored is left for the next start to trip over.
        let _ = std::fs::remove_file(&wasm);
    })
}
