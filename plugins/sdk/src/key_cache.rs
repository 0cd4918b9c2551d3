//! A small bounded cache of parsed keys, keyed by the exact key bytes plus an ID (SM2's user ID;
//! empty for algorithms without one).
//!
//! The host calls a plugin statelessly (every `sign`/`verify` passes the DER key) but reuses
//! instances, so statics survive between calls: parsing a key and deriving what depends on it
//! alone (its public point, SM2's Z value) once per instance instead of once per call is where
//! much of a call's time goes. The cache holds at most `N` entries and evicts the least recently
//! used. Key bytes are compared in constant time (a cached private key must not leak through the
//! time a lookup with another key takes) and wiped when the entry goes; values must wipe their
//! own secrets on drop.

use std::sync::{Mutex, MutexGuard};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Keys longer than this are used but not cached (no real SM2, P-256 or Ed25519 key comes near it).
pub const MAX_CACHED_KEY: usize = 1024;

struct Entry<V> {
    key: Zeroizing<Vec<u8>>,
    id: Vec<u8>,
    value: V,
}

/// Least-recently-used list of at most `N` entries; the newest is last.
pub struct KeyCache<V, const N: usize> {
    entries: Vec<Entry<V>>,
}

impl<V, const N: usize> KeyCache<V, N> {
    pub const fn new() -> Self {
        Self { entries: Vec::new() }
    }

    /// The value cached for (`key`, `id`), made by `make` and cached on a miss. An error from
    /// `make` is returned and nothing is cached. Oversized keys are made into `slot` and not cached.
    pub fn get_or_insert_with<'a, E>(
        &'a mut self,
        key: &[u8],
        id: &[u8],
        slot: &'a mut Option<V>,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<&'a mut V, E> {
        // Look at every entry (no early exit), each comparison constant-time in the key bytes.
        let mut found = None;
        for (i, e) in self.entries.iter().enumerate() {
            if e.key.len() == key.len() && bool::from(e.key.as_slice().ct_eq(key)) && e.id == id {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            // Most recently used goes last.
            let hit = self.entries.remove(i);
            self.entries.push(hit);
            return Ok(&mut self.entries.last_mut().expect("just pushed").value);
        }
        let value = make()?;
        if key.len() > MAX_CACHED_KEY || N == 0 {
            return Ok(slot.insert(value));
        }
        if self.entries.len() >= N {
            // Dropping the entry wipes its key bytes and (through V's Drop) its secrets.
            drop(self.entries.remove(0));
        }
        self.entries.push(Entry {
            key: Zeroizing::new(key.to_vec()),
            id: id.to_vec(),
            value,
        });
        Ok(&mut self.entries.last_mut().expect("just pushed").value)
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<V, const N: usize> Default for KeyCache<V, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A process-wide (instance-wide, in wasm) cache behind a mutex. A poisoned lock is taken over:
/// entries are only ever replaced whole, so a panic cannot leave one half-written.
pub struct SharedCache<V, const N: usize>(Mutex<KeyCache<V, N>>);

impl<V, const N: usize> SharedCache<V, N> {
    pub const fn new() -> Self {
        Self(Mutex::new(KeyCache::new()))
    }

    pub fn lock(&self) -> MutexGuard<'_, KeyCache<V, N>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<V, const N: usize> Default for SharedCache<V, N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn bounded_lru_keyed_by_key_and_id() {
        let mut c = KeyCache::<u32, 2>::new();
        let made = Cell::new(0);
        let get = |c: &mut KeyCache<u32, 2>, k: &[u8], id: &[u8], v: u32| {
            let mut slot = None;
            *c.get_or_insert_with(k, id, &mut slot, || {
                made.set(made.get() + 1);
                Ok::<_, ()>(v)
            })
            .unwrap()
        };
        assert_eq!(get(&mut c, b"a", b"", 1), 1);
        assert_eq!(get(&mut c, b"a", b"", 99), 1); // hit
        assert_eq!(get(&mut c, b"a", b"x", 2), 2); // same key, other ID: miss
        assert_eq!(get(&mut c, b"ab", b"", 3), 3); // prefix is another key
        assert_eq!(c.len(), 2);
        assert_eq!(made.get(), 3);
        // ("a", "") was least recently used and is gone; ("a", "x") stays.
        assert_eq!(get(&mut c, b"a", b"x", 99), 2);
        assert_eq!(get(&mut c, b"a", b"", 4), 4);
        assert_eq!(made.get(), 4);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn errors_and_oversized_keys_are_not_cached() {
        let mut c = KeyCache::<u32, 2>::new();
        let mut slot = None;
        assert_eq!(c.get_or_insert_with(b"k", b"", &mut slot, || Err("bad")), Err("bad"));
        assert_eq!(c.len(), 0);
        let big = vec![0u8; MAX_CACHED_KEY + 1];
        assert_eq!(
            *c.get_or_insert_with(&big, b"", &mut slot, || Ok::<_, ()>(7)).unwrap(),
            7
        );
        assert_eq!(c.len(), 0);
        assert_eq!(slot, Some(7));
    }
}
