//! Compiled plugin artifacts on disk, so a node or a CLI call compiles each plugin once.
//!
//! A file is named `<wasm sha256>-<engine hash>.cwasm`; the engine hash covers the
//! wasmtime version and every setting that affects generated code
//! ([`wasmtime::Engine::precompile_compatibility_hash`]), so an upgrade or a config change
//! simply misses. The file begins with the SHA-256 of the artifact that follows: a torn or
//! corrupted file is detected and recompiled, never handed to the deserializer.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ArtifactCache {
    dir: Option<PathBuf>,
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

impl ArtifactCache {
    /// `None` disables caching (every load compiles).
    pub fn new(dir: Option<PathBuf>) -> Self {
        ArtifactCache { dir }
    }

    fn engine_hash(engine: &Engine) -> String {
        let mut h = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        hex::encode(&h.0.finalize()[..12])
    }

    fn path_for(&self, engine: &Engine, content_hash: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{content_hash}-{}.cwasm", Self::engine_hash(engine))))
    }

    /// The component for `bytes` (whose SHA-256 is `content_hash`), from the cache or
    /// compiled now and stored. Cache I/O problems only cost a recompile.
    pub fn load(&self, engine: &Engine, bytes: &[u8], content_hash: &str) -> wasmtime::Result<Component> {
        let Some(path) = self.path_for(engine, content_hash) else {
            return Component::new(engine, bytes);
        };
        if let Ok(file) = std::fs::read(&path)
            && file.len() > 32
            && Sha256::digest(&file[32..])[..] == file[..32]
        {
            // SAFETY: the artifact was produced by `precompile_component` of an engine with
            // the same compatibility hash, written by this cache, and its checksum matches.
            match unsafe { Component::deserialize(engine, &file[32..]) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(path = %path.display(), "discarding cached artifact: {e}"),
            }
        }
        let artifact = engine.precompile_component(bytes)?;
        let component = {
            // SAFETY: the bytes were just produced by this engine.
            unsafe { Component::deserialize(engine, &artifact)? }
        };
        if let Err(e) = Self::store(&path, &artifact) {
            tracing::warn!(path = %path.display(), "cannot cache compiled plugin: {e}");
        }
        Ok(component)
    }

    fn store(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut data = Sha256::digest(artifact).to_vec();
        data.extend_from_slice(artifact);
        std::fs::write(&tmp, &data)?;
        std::fs::rename(&tmp, path)
    }
}
