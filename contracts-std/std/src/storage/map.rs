use core::marker::PhantomData;
use std::collections::VecDeque;

use borsh::{BorshDeserialize, BorshSerialize};

use super::{SCAN_PAGE, StorageField, StorageKey, decode_value, read, show_key, write};
use crate::sys;

/// A mapping from `K` to borsh-encoded `V`s: the entry of `key` is stored at
/// `prefix ‖ key encoding` ([`StorageKey`]).
///
/// Iteration asks the host for pages of entries (`storage.scan`, [`SCAN_PAGE`] at a time)
/// and yields them in ascending order of the encoded key, which is the natural order of the
/// key (numeric for integers: `Map<u64, _>` iterates 1, 2, …, 10, not 1, 10, 2).
pub struct Map<K, V> {
    prefix: Vec<u8>,
    _entries: PhantomData<fn() -> (K, V)>,
}

impl<K, V> StorageField for Map<K, V> {
    fn at(prefix: Vec<u8>) -> Self {
        Map {
            prefix,
            _entries: PhantomData,
        }
    }
}

impl<K: StorageKey, V: BorshSerialize + BorshDeserialize> Map<K, V> {
    /// The prefix under which the entries are stored.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The storage key of `key`'s entry.
    pub fn key_of<Q: StorageKey + ?Sized>(&self, key: &Q) -> Vec<u8> {
        let mut out = self.prefix.clone();
        key.encode_key(&mut out);
        out
    }

    /// The value at `key`. `Q` is `K` or a borrowed form with the same encoding (`str` for
    /// `String`, `[u8]` for `Vec<u8>`).
    pub fn get<Q: StorageKey + ?Sized>(&self, key: &Q) -> Option<V> {
        read(&self.key_of(key))
    }

    /// The value at `key`, or `default`.
    pub fn get_or<Q: StorageKey + ?Sized>(&self, key: &Q, default: V) -> V {
        self.get(key).unwrap_or(default)
    }

    /// The value at `key`, or `V::default()`.
    pub fn get_or_default<Q: StorageKey + ?Sized>(&self, key: &Q) -> V
    where
        V: Default,
    {
        self.get(key).unwrap_or_default()
    }

    /// Whether `key` has an entry.
    pub fn contains<Q: StorageKey + ?Sized>(&self, key: &Q) -> bool {
        sys::storage_has(&self.key_of(key))
    }

    /// Set the entry of `key`.
    pub fn insert<Q: StorageKey + ?Sized>(&self, key: &Q, value: &V) {
        write(&self.key_of(key), value)
    }

    /// Remove the entry of `key`.
    pub fn remove<Q: StorageKey + ?Sized>(&self, key: &Q) {
        sys::storage_remove(&self.key_of(key))
    }

    /// Remove the entry of `key` and return its value.
    pub fn take<Q: StorageKey + ?Sized>(&self, key: &Q) -> Option<V> {
        let storage_key = self.key_of(key);
        let value = read(&storage_key);
        if value.is_some() {
            sys::storage_remove(&storage_key);
        }
        value
    }

    /// Apply `f` to the value at `key` (`V::default()` when absent), store the result and
    /// return what `f` returns.
    pub fn update<Q: StorageKey + ?Sized, R>(&self, key: &Q, f: impl FnOnce(&mut V) -> R) -> R
    where
        V: Default,
    {
        let storage_key = self.key_of(key);
        let mut value = read(&storage_key).unwrap_or_default();
        let out = f(&mut value);
        write(&storage_key, &value);
        out
    }

    /// All entries, in key order.
    pub fn iter(&self) -> Iter<K, V> {
        Iter::new(self.prefix.clone(), self.prefix.len(), None)
    }

    /// The entries after `after` (exclusive), in key order: resume an iteration.
    pub fn iter_from<Q: StorageKey + ?Sized>(&self, after: &Q) -> Iter<K, V> {
        Iter::new(self.prefix.clone(), self.prefix.len(), Some(self.key_of(after)))
    }

    /// The entries whose key encoding starts with `prefix`'s, in key order. `P` is a leading
    /// part of the key: for `Map<(Address, u64), V>`, `prefix_iter(&owner)` visits the
    /// entries of `owner`.
    pub fn prefix_iter<P: StorageKey + ?Sized>(&self, prefix: &P) -> Iter<K, V> {
        Iter::new(self.key_of(prefix), self.prefix.len(), None)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = K> {
        self.iter().map(|(k, _)| k)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl Iterator<Item = V> {
        self.iter().map(|(_, v)| v)
    }

    /// Whether the map has no entry (one `scan` of one entry).
    pub fn is_empty(&self) -> bool {
        sys::storage_scan(&self.prefix, None, 1).is_empty()
    }
}

/// Entries of a [`Map`] in key order, fetched a page at a time.
pub struct Iter<K, V> {
    scan_prefix: Vec<u8>,
    key_offset: usize,
    after: Option<Vec<u8>>,
    page: u32,
    buffer: VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
    _entries: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Iter<K, V> {
    fn new(scan_prefix: Vec<u8>, key_offset: usize, after: Option<Vec<u8>>) -> Self {
        Iter {
            scan_prefix,
            key_offset,
            after,
            page: SCAN_PAGE,
            buffer: VecDeque::new(),
            done: false,
            _entries: PhantomData,
        }
    }

    /// Ask the host for `page` entries at a time (1 to 256; [`SCAN_PAGE`] by default).
    pub fn page_size(mut self, page: u32) -> Self {
        self.page = page.clamp(1, SCAN_PAGE);
        self
    }
}

impl<K: StorageKey, V: BorshDeserialize> Iterator for Iter<K, V> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        if self.buffer.is_empty() && !self.done {
            let page = sys::storage_scan(&self.scan_prefix, self.after.as_deref(), self.page);
            self.done = page.len() < self.page as usize;
            if let Some((last, _)) = page.last() {
                self.after = Some(last.clone());
            }
            self.buffer.extend(page);
        }
        let (key, value) = self.buffer.pop_front()?;
        let mut rest = key.get(self.key_offset..).unwrap_or_default();
        let decoded = match K::decode_key(&mut rest) {
            Ok(k) if rest.is_empty() => k,
            Ok(_) => crate::revert(format!("corrupt storage: trailing bytes in map key {}", show_key(&key))),
            Err(e) => crate::revert(format!("corrupt storage: bad map key {}: {e}", show_key(&key))),
        };
        Some((decoded, decode_value(&key, &value)))
    }
}
