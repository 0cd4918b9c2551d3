//! Typed storage over the contract's key-value store (§4.3.1).
//!
//! Three handles, each bound to a key prefix and holding borsh-encoded values:
//!
//! * [`Value<T>`]: one value at the prefix itself;
//! * [`Map<K, V>`]: entries at `prefix ‖ key encoding` (see [`StorageKey`]), iterated in
//!   ascending order of the encoded key;
//! * [`StorageVec<T>`]: a length at `prefix ‖ 0x00` and elements at
//!   `prefix ‖ 0x01 ‖ index (u64 big-endian)`.
//!
//! A contract's state is a struct of such handles (and of other such structs, e.g.
//! [`crate::Ownable`]) with `#[derive(ContractState)]`: field `name` is bound to the prefix
//! `parent prefix ‖ name ‖ '.'`, so `struct Market { offers: Map<u64, Offer> }` keeps the
//! offer 7 at `b"offers." ‖ 7u64.to_be_bytes()`. Field names hold no `.`, so no field's
//! prefix is a prefix of another's. The struct itself is never stored: creating it reads
//! nothing and a method touches only the keys it uses.
//!
//! Reading a value that does not decode as its type (the storage layout changed under the
//! contract) reverts with a message naming the key.

mod key;
mod map;
mod value;
mod vec;

pub use key::{KeyError, StorageKey, encode_key};
pub use map::{Iter, Map};
pub use value::Value;
pub use vec::{StorageVec, VecIter};

use borsh::{BorshDeserialize, BorshSerialize};

use crate::sys;

/// The separator appended to a field name to make its prefix.
pub const FIELD_SEPARATOR: u8 = b'.';

/// Entries asked of the host per `storage.scan` call when iterating (its maximum).
pub const SCAN_PAGE: u32 = 256;

/// A storage handle that can be a field of a `#[derive(ContractState)]` struct: built from
/// its key prefix alone, reading nothing.
pub trait StorageField {
    /// The handle bound to `prefix`.
    fn at(prefix: Vec<u8>) -> Self;
}

/// A contract's state: a struct of storage handles, `#[derive(ContractState)]`.
///
/// The derive also implements [`Default`] (binding the fields under the empty prefix, the
/// root of the contract's store), [`StorageField`] (so a state struct can be a field of
/// another), and [`crate::access::HasOwnable`] / [`crate::access::HasRoles`] /
/// [`crate::access::HasPausable`] for the first field of type `Ownable` / `Roles` /
/// `Pausable` (used by `#[guard(...)]`).
pub trait ContractState: StorageField + Default {}

/// The prefix of field `name` under `parent`: `parent ‖ name ‖ '.'`.
pub fn field_prefix(parent: &[u8], name: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(parent.len() + name.len() + 1);
    prefix.extend_from_slice(parent);
    prefix.extend_from_slice(name.as_bytes());
    prefix.push(FIELD_SEPARATOR);
    prefix
}

/// Hex of a key for messages, cut after 64 bytes.
pub(crate) fn show_key(key: &[u8]) -> String {
    let mut out = String::new();
    for byte in key.iter().take(64) {
        out.push_str(&format!("{byte:02x}"));
    }
    if key.len() > 64 {
        out.push('…');
    }
    out
}

pub(crate) fn decode_value<T: BorshDeserialize>(key: &[u8], bytes: &[u8]) -> T {
    match T::try_from_slice(bytes) {
        Ok(value) => value,
        Err(e) => crate::revert(format!(
            "corrupt storage at key {}: not a {}: {e}",
            show_key(key),
            core::any::type_name::<T>()
        )),
    }
}

pub(crate) fn encode_value<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    match borsh::to_vec(value) {
        Ok(bytes) => bytes,
        Err(e) => crate::revert(format!("cannot encode a {}: {e}", core::any::type_name::<T>())),
    }
}

pub(crate) fn read<T: BorshDeserialize>(key: &[u8]) -> Option<T> {
    sys::storage_get(key).map(|bytes| decode_value(key, &bytes))
}

pub(crate) fn write<T: BorshSerialize + ?Sized>(key: &[u8], value: &T) {
    sys::storage_set(key, &encode_value(value))
}

/// Raw access to the contract's store, for layouts the typed handles do not cover.
pub mod raw {
    use crate::sys;

    /// The value at `key`.
    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        sys::storage_get(key)
    }

    /// Whether `key` has a value.
    pub fn has(key: &[u8]) -> bool {
        sys::storage_has(key)
    }

    /// Set `key` to `value`.
    pub fn set(key: &[u8], value: &[u8]) {
        sys::storage_set(key, value)
    }

    /// Remove `key`.
    pub fn remove(key: &[u8]) {
        sys::storage_remove(key)
    }

    /// Up to `limit` (at most 256) entries under `prefix`, in ascending key order, after
    /// `after` when given.
    pub fn scan(prefix: &[u8], after: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        sys::storage_scan(prefix, after, limit)
    }
}
