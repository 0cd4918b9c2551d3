//! Compiled plugin artifacts on disk, so a node or a CLI call compiles each plugin once.
//!
//! A file is named `<wasm sha256>-<engine hash>.cwasm`; the engine hash covers the
//! wasmtime version and every setting that affects generated code
//! ([`wasmtime::Engine::precompile_compatibility_hash`]), so an upgrade or a config change
//! simply misses. The file begins with the SHA-256 of the artifact that follows: a torn or
//! corrupted file is detected and recompiled, never handed to the deserializer.

use joule_support::fs::{Mode, write_atomic};
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
        let mut data = Sha256::digest(artifact).to_vec();
        data.extend_from_slice(artifact);
        write_atomic(path, &data, Mode::Default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Limits, Runtime};

    const WAT: &str = r#"(component (core module $m (func (export "f"))) (core instance (instantiate $m)))"#;

    fn cached_files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "cwasm")).collect()
    }

    #[test]
    fn a_compiled_component_is_cached_and_loaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(Limits::default()).unwrap();
        let bytes = wat::parse_str(WAT).unwrap();
        let cache = ArtifactCache::new(Some(dir.path().to_path_buf()));
        cache.load(runtime.engine(), &bytes, "abc").unwrap();
        let files = cached_files(dir.path());
        assert_eq!(files.len(), 1);
        let first = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
        cache.load(runtime.engine(), &bytes, "abc").unwrap();
        assert_eq!(std::fs::metadata(&files[0]).unwrap().modified().unwrap(), first, "a good artifact is not rewritten");
    }

    #[test]
    fn a_torn_artifact_is_recompiled_not_deserialized() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(Limits::default()).unwrap();
        let bytes = wat::parse_str(WAT).unwrap();
        let cache = ArtifactCache::new(Some(dir.path().to_path_buf()));
        cache.load(runtime.engine(), &bytes, "abc").unwrap();
        let path = cached_files(dir.path()).remove(0);
        let whole = std::fs::read(&path).unwrap();
        // Torn: the write stopped half-way. Corrupt: one byte of the artifact flipped.
        for damaged in [whole[..whole.len() / 2].to_vec(), {
            let mut v = whole.clone();
            let last = v.len() - 1;
            v[last] ^= 0xff;
            v
        }] {
            std::fs::write(&path, &damaged).unwrap();
            let component = cache.load(runtime.engine(), &bytes, "abc").expect("recompiled");
            assert_eq!(component.component_type().exports(runtime.engine()).count(), 0);
            assert_eq!(std::fs::read(&path).unwrap(), whole, "the damaged file is replaced by a good one");
        }
    }
}
