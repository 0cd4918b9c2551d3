//! What the ledger keeps with the state tree's leaves. The tree commits only to hashes (an
//! account's is the hash of its encoding, a storage value's the hash of the value); the
//! leaf also carries the bytes a read needs, so there is no separate table of values:
//!
//! * account leaf: LEB128 storage tree number (0: none yet) ‖ LEB128 version holding the
//!   storage tree's root (when there is a tree) ‖ the account's encoding;
//! * storage leaf: `0x00` ‖ the value, or `0x01` ‖ LEB128 height ‖ LEB128 index: the value
//!   is the data record of that transaction, which the store keeps anyway (so it is not
//!   stored twice).

use crate::codec::{Reader, put_varint};
use crate::store::TxLocation;
use joule_primitives::smt::{Leaf, Root, StateError, TreeId};
use joule_primitives::{Account, Encode};

/// An account as its leaf holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountState {
    pub account: Account,
    /// Its storage tree's number and the version holding its root, once it has one.
    pub storage: Option<(TreeId, u64)>,
}

impl AccountState {
    pub fn from_leaf(leaf: &Leaf) -> Result<AccountState, StateError> {
        let bad = || StateError::Store(format!("account leaf {} is corrupt", leaf.key));
        let mut r = Reader::new(&leaf.data);
        let tree = TreeId::try_from(r.varint().ok_or_else(bad)?).map_err(|_| bad())?;
        let storage = if tree == 0 { None } else { Some((tree, r.varint().ok_or_else(bad)?)) };
        let account = Account::decode(r.rest()).map_err(|_| bad())?;
        Ok(AccountState { account, storage })
    }

    /// The bytes its leaf keeps.
    pub fn leaf_data(&self, encoding: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(encoding.len() + 8);
        match self.storage {
            None => put_varint(&mut v, 0),
            Some((tree, version)) => {
                put_varint(&mut v, u64::from(tree));
                put_varint(&mut v, version);
            }
        }
        v.extend(encoding);
        v
    }

    /// Its storage tree, to read (`None`: it has never had storage).
    pub fn storage_root(&self) -> Option<Root> {
        self.storage.map(|(tree, version)| Root { tree, version, hash: self.account.storage_root })
    }
}

/// Where a storage value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredValue {
    Inline(Vec<u8>),
    /// The value of the data record of this transaction.
    InTx(TxLocation),
}

impl StoredValue {
    /// A data record's value: in its transaction unless the bytes are shorter than the pointer.
    pub fn data_record(value: &[u8], at: TxLocation) -> StoredValue {
        let pointer = StoredValue::InTx(at);
        if pointer.encode().len() < 1 + value.len() { pointer } else { StoredValue::Inline(value.to_vec()) }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            StoredValue::Inline(v) => {
                let mut out = Vec::with_capacity(1 + v.len());
                out.push(0);
                out.extend(v);
                out
            }
            StoredValue::InTx(at) => {
                let mut out = vec![1];
                put_varint(&mut out, at.height);
                put_varint(&mut out, u64::from(at.index));
                out
            }
        }
    }

    pub fn decode(data: &[u8]) -> Option<StoredValue> {
        let mut r = Reader::new(data);
        match r.byte()? {
            0 => Some(StoredValue::Inline(r.rest().to_vec())),
            1 => {
                let height = r.varint()?;
                let index = u32::try_from(r.varint()?).ok()?;
                r.end().then_some(StoredValue::InTx(TxLocation { height, index }))
            }
            _ => None,
        }
    }
}
