//! Binary Merkle trees as in RFC 9162 §2.1 (Certificate Transparency): leaves hashed as
//! `H(0x00 || data)`, interior nodes as `H(0x01 || left || right)`, the tree split at the
//! largest power of two below its size, the empty tree's root `H("")`. The prefixes keep
//! a leaf from ever being read as a node. Used for transaction and receipt roots; the hash
//! is the channel suite's, supplied by the node.

use crate::types::Hash32;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// The hash failed (a plugin call failed) or returned something other than 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hash failed: {0}")]
pub struct HashError(pub String);

/// The channel suite's hash function.
pub trait Hasher {
    fn hash(&self, data: &[u8]) -> Result<Hash32, HashError>;
}

impl<F: Fn(&[u8]) -> Result<Hash32, HashError>> Hasher for F {
    fn hash(&self, data: &[u8]) -> Result<Hash32, HashError> {
        self(data)
    }
}

pub fn leaf_hash(h: &dyn Hasher, data: &[u8]) -> Result<Hash32, HashError> {
    let mut buf = Vec::with_capacity(data.len() + 1);
    buf.push(0x00);
    buf.extend_from_slice(data);
    h.hash(&buf)
}

/// `H(0x01 || left || right)`: interior nodes here and in the state tree.
pub(crate) fn node_hash(h: &dyn Hasher, left: &Hash32, right: &Hash32) -> Result<Hash32, HashError> {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(&left.0);
    buf[33..].copy_from_slice(&right.0);
    h.hash(&buf)
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

fn subtree_root(h: &dyn Hasher, leaves: &[Hash32]) -> Result<Hash32, HashError> {
    match leaves.len() {
        0 => h.hash(b""),
        1 => Ok(leaves[0]),
        n => {
            let k = split(n);
            node_hash(h, &subtree_root(h, &leaves[..k])?, &subtree_root(h, &leaves[k..])?)
        }
    }
}

/// Root over already-hashed leaves (see [`leaf_hash`]).
pub fn root_of_leaf_hashes(h: &dyn Hasher, leaves: &[Hash32]) -> Result<Hash32, HashError> {
    subtree_root(h, leaves)
}

/// Root over items' bytes.
pub fn root<T: AsRef<[u8]>>(h: &dyn Hasher, items: &[T]) -> Result<Hash32, HashError> {
    let leaves = items.iter().map(|d| leaf_hash(h, d.as_ref())).collect::<Result<Vec<_>, _>>()?;
    subtree_root(h, &leaves)
}

/// Inclusion proof of one leaf: its index, the tree size and the audit path (siblings
/// from the leaf upwards).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct MerkleProof {
    pub index: u64,
    pub size: u64,
    pub path: Vec<Hash32>,
}

/// The audit path of leaf `index` (RFC 9162 §2.1.3.1).
pub fn prove(h: &dyn Hasher, leaves: &[Hash32], index: usize) -> Result<Option<MerkleProof>, HashError> {
    if index >= leaves.len() {
        return Ok(None);
    }
    fn path(h: &dyn Hasher, m: usize, leaves: &[Hash32], out: &mut Vec<Hash32>) -> Result<(), HashError> {
        let n = leaves.len();
        if n <= 1 {
            return Ok(());
        }
        let k = split(n);
        if m < k {
            path(h, m, &leaves[..k], out)?;
            out.push(subtree_root(h, &leaves[k..])?);
        } else {
            path(h, m - k, &leaves[k..], out)?;
            out.push(subtree_root(h, &leaves[..k])?);
        }
        Ok(())
    }
    let mut p = vec![];
    path(h, index, leaves, &mut p)?;
    Ok(Some(MerkleProof { index: index as u64, size: leaves.len() as u64, path: p }))
}

/// Check that `leaf` (a leaf hash) is at `proof.index` of the tree with `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify(h: &dyn Hasher, root: &Hash32, leaf: &Hash32, proof: &MerkleProof) -> Result<bool, HashError> {
    if proof.index >= proof.size {
        return Ok(false);
    }
    let (mut f, mut s) = (proof.index, proof.size - 1);
    let mut r = *leaf;
    for p in &proof.path {
        if s == 0 {
            return Ok(false);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(h, p, &r)?;
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(h, &r, p)?;
        }
        f >>= 1;
        s >>= 1;
    }
    Ok(s == 0 && r == *root)
}
