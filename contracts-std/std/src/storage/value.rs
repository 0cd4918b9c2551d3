use core::marker::PhantomData;

use borsh::{BorshDeserialize, BorshSerialize};

use super::{StorageField, read, write};
use crate::sys;

/// One borsh-encoded value at its prefix.
pub struct Value<T> {
    key: Vec<u8>,
    _value: PhantomData<fn() -> T>,
}

impl<T> StorageField for Value<T> {
    fn at(prefix: Vec<u8>) -> Self {
        Value {
            key: prefix,
            _value: PhantomData,
        }
    }
}

impl<T> Value<T> {
    /// The key the value is stored at.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Whether a value is stored.
    pub fn exists(&self) -> bool {
        sys::storage_has(&self.key)
    }

    /// Remove the value.
    pub fn remove(&self) {
        sys::storage_remove(&self.key)
    }
}

impl<T: BorshSerialize + BorshDeserialize> Value<T> {
    /// The value, if one is stored.
    pub fn get(&self) -> Option<T> {
        read(&self.key)
    }

    /// The value, or `default` when none is stored.
    pub fn get_or(&self, default: T) -> T {
        self.get().unwrap_or(default)
    }

    /// The value, or `T::default()` when none is stored.
    pub fn get_or_default(&self) -> T
    where
        T: Default,
    {
        self.get().unwrap_or_default()
    }

    /// The value; reverts with `message` when none is stored.
    pub fn expect(&self, message: &str) -> T {
        match self.get() {
            Some(value) => value,
            None => crate::revert(message),
        }
    }

    /// Store `value`.
    pub fn set(&self, value: &T) {
        write(&self.key, value)
    }

    /// Apply `f` to the value (`T::default()` when none is stored), store the result and
    /// return what `f` returns.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R
    where
        T: Default,
    {
        let mut value = self.get_or_default();
        let out = f(&mut value);
        self.set(&value);
        out
    }

    /// Remove the value and return it.
    pub fn take(&self) -> Option<T> {
        let value = self.get();
        if value.is_some() {
            self.remove();
        }
        value
    }
}
