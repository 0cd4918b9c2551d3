use core::marker::PhantomData;
use std::collections::VecDeque;

use borsh::{BorshDeserialize, BorshSerialize};

use super::{SCAN_PAGE, StorageField, decode_value, read, write};
use crate::sys;

/// A growable array of borsh-encoded `T`s: the length at `prefix ‖ 0x00` (a `u64`), element
/// `i` at `prefix ‖ 0x01 ‖ i` (`u64` big-endian).
pub struct StorageVec<T> {
    prefix: Vec<u8>,
    _elements: PhantomData<fn() -> T>,
}

impl<T> StorageField for StorageVec<T> {
    fn at(prefix: Vec<u8>) -> Self {
        StorageVec {
            prefix,
            _elements: PhantomData,
        }
    }
}

impl<T: BorshSerialize + BorshDeserialize> StorageVec<T> {
    fn len_key(&self) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.push(0);
        key
    }

    fn elements_prefix(&self) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.push(1);
        key
    }

    fn element_key(&self, index: u64) -> Vec<u8> {
        let mut key = self.elements_prefix();
        key.extend_from_slice(&index.to_be_bytes());
        key
    }

    /// The number of elements.
    pub fn len(&self) -> u64 {
        read::<u64>(&self.len_key()).unwrap_or(0)
    }

    /// Whether there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn set_len(&self, len: u64) {
        if len == 0 {
            sys::storage_remove(&self.len_key())
        } else {
            write(&self.len_key(), &len)
        }
    }

    /// Element `index`, if `index < len()`.
    pub fn get(&self, index: u64) -> Option<T> {
        if index >= self.len() {
            return None;
        }
        read(&self.element_key(index))
    }

    /// The last element.
    pub fn last(&self) -> Option<T> {
        self.len().checked_sub(1).and_then(|i| read(&self.element_key(i)))
    }

    /// Replace element `index`; reverts when `index >= len()`.
    pub fn set(&self, index: u64, value: &T) {
        let len = self.len();
        if index >= len {
            crate::revert(format!("storage vector index {index} out of bounds (length {len})"));
        }
        write(&self.element_key(index), value)
    }

    /// Append `value`; returns its index.
    pub fn push(&self, value: &T) -> u64 {
        let len = self.len();
        write(&self.element_key(len), value);
        self.set_len(len + 1);
        len
    }

    /// Remove and return the last element.
    pub fn pop(&self) -> Option<T> {
        let len = self.len();
        let last = len.checked_sub(1)?;
        let key = self.element_key(last);
        let value = read(&key);
        sys::storage_remove(&key);
        self.set_len(last);
        value
    }

    /// Remove every element (one `remove` per element).
    pub fn clear(&self) {
        let len = self.len();
        for i in 0..len {
            sys::storage_remove(&self.element_key(i));
        }
        self.set_len(0);
    }

    /// The elements in index order, fetched a page at a time.
    pub fn iter(&self) -> VecIter<T> {
        VecIter {
            prefix: self.elements_prefix(),
            after: None,
            buffer: VecDeque::new(),
            done: false,
            _elements: PhantomData,
        }
    }
}

/// Elements of a [`StorageVec`] in index order.
pub struct VecIter<T> {
    prefix: Vec<u8>,
    after: Option<Vec<u8>>,
    buffer: VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
    _elements: PhantomData<fn() -> T>,
}

impl<T: BorshDeserialize> Iterator for VecIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.buffer.is_empty() && !self.done {
            let page = sys::storage_scan(&self.prefix, self.after.as_deref(), SCAN_PAGE);
            self.done = page.len() < SCAN_PAGE as usize;
            if let Some((last, _)) = page.last() {
                self.after = Some(last.clone());
            }
            self.buffer.extend(page);
        }
        let (key, value) = self.buffer.pop_front()?;
        Some(decode_value(&key, &value))
    }
}
