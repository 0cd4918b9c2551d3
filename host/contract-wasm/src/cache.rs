//! Compiled contracts: on disk (so a restart does not recompile every contract) and in
//! memory (pre-linked, so a call is an instantiation, not a compilation).
//!
//! A disk artifact is named `<sha256 of the code>-p<PREPARE_VERSION>-<engine hash>.cwasm`:
//! a new preparation pass, a wasmtime upgrade or another engine setting simply misses. The
//! file begins with the SHA-256 of the artifact that follows, so a torn or corrupted file is
//! recompiled, never handed to the deserializer (as `joule_wasm::ArtifactCache` does; that
//! cache needs the component bytes up front, which here would mean preparing the code on
//! every load).

use crate::exec::StoreData;
use joule_primitives::Hash32;
use joule_support::fs::{Mode, write_atomic};
use joule_support::sync::lock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wasmtime::{Engine, InstancePre, Module, ModuleExport};

/// A contract ready to instantiate.
pub(crate) struct Loaded {
    pub pre: InstancePre<StoreData>,
    /// Length of the deployed code (what instantiation is charged on).
    pub code_len: usize,
    /// The `init`, `call` and `query` exports of `joule:contract/entry` (wit-bindgen's names
    /// `joule:contract/entry@0.2.0#call`, …), when present.
    pub init: Option<ModuleExport>,
    pub call: Option<ModuleExport>,
    pub query: Option<ModuleExport>,
    /// `memory` and `cabi_realloc`, through which arguments and results travel.
    pub memory: Option<ModuleExport>,
    pub realloc: Option<ModuleExport>,
}

pub(crate) struct Cache {
    dir: Option<PathBuf>,
    engine_hash: String,
    capacity: usize,
    memory: Mutex<Lru>,
}

/// A small LRU: a map plus a use counter (eviction scans, which is fine at this size).
#[derive(Default)]
struct Lru {
    tick: u64,
    entries: HashMap<Hash32, (u64, Arc<Loaded>)>,
}

/// Feeds `Hash` output into SHA-256, for a hash that is stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl Cache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>, capacity: usize) -> Self {
        let mut h = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_hash = hex::encode(&h.0.finalize()[..12]);
        Cache { dir, engine_hash, capacity, memory: Mutex::new(Lru::default()) }
    }

    pub fn get(&self, code_hash: &Hash32) -> Option<Arc<Loaded>> {
        let mut lru = lock(&self.memory);
        lru.tick += 1;
        let tick = lru.tick;
        let entry = lru.entries.get_mut(code_hash)?;
        entry.0 = tick;
        Some(entry.1.clone())
    }

    pub fn insert(&self, code_hash: Hash32, loaded: Arc<Loaded>) {
        if self.capacity == 0 {
            return;
        }
        let mut lru = lock(&self.memory);
        lru.tick += 1;
        let tick = lru.tick;
        while lru.entries.len() >= self.capacity && !lru.entries.contains_key(&code_hash) {
            let Some(oldest) = lru.entries.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k) else { break };
            lru.entries.remove(&oldest);
        }
        lru.entries.insert(code_hash, (tick, loaded));
    }

    fn path_for(&self, code: &[u8]) -> Option<PathBuf> {
        let code_sha = hex::encode(Sha256::digest(code));
        self.dir.as_ref().map(|d| d.join(format!("{code_sha}-p{}-core-{}.cwasm", crate::PREPARE_VERSION, self.engine_hash)))
    }

    /// The compiled module for `code` from disk, if a good artifact is there.
    pub fn load_from_disk(&self, engine: &Engine, code: &[u8]) -> Option<Module> {
        let path = self.path_for(code)?;
        let file = std::fs::read(&path).ok()?;
        let (sum, artifact) = file.split_at_checked(32)?;
        if artifact.is_empty() || Sha256::digest(artifact)[..] != *sum {
            return None;
        }
        // SAFETY: the artifact was produced by `precompile_module` of an engine with the
        // same compatibility hash, written by this cache, and its checksum matches.
        match unsafe { Module::deserialize(engine, artifact) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "discarding cached contract artifact: {e:#}");
                None
            }
        }
    }

    /// Keep a compiled artifact on disk; I/O problems only cost a recompile later.
    pub fn store_on_disk(&self, code: &[u8], artifact: &[u8]) {
        let Some(path) = self.path_for(code) else { return };
        if let Err(e) = Self::write(&path, artifact) {
            tracing::warn!(path = %path.display(), "cannot cache compiled contract: {e}");
        }
    }

    fn write(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut data = Sha256::digest(artifact).to_vec();
        data.extend_from_slice(artifact);
        write_atomic(path, &data, Mode::Default)
    }
}
