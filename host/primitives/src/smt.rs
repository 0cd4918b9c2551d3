//! Authenticated key-value state: a binary sparse Merkle tree over 256-bit key hashes with
//! compressed leaves (a leaf sits at the first depth where its path is unique).
//!
//! * Empty subtree: [`EMPTY`] (32 zero bytes, not hashed).
//! * Leaf: `H(0x00 || key_hash || value_hash)`; it carries its whole key, so it can move
//!   up or down the tree without changing hash.
//! * Internal: `H(0x01 || left || right)`; bit `d` of the key hash (most significant first)
//!   chooses the side at depth `d`.
//!
//! The root depends only on the set of `(key, value)` pairs, not on the order of updates
//! (deletions collapse a lone leaf upwards). Nodes are content-addressed, so every old root
//! stays readable from the same store: a proof can be made against any committed block's
//! state root. A proof is the list of siblings from the root down plus the terminal found
//! where the key's path ends (empty, the key's leaf, or another key's leaf), which proves
//! inclusion or absence to a client that holds only the root (from a block header).

use crate::merkle::{HashError, Hasher};
use crate::types::Hash32;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The root of an empty tree (and of every empty subtree).
pub const EMPTY: Hash32 = Hash32::ZERO;

/// A stored tree node, addressed by its hash.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Node {
    Leaf { key: Hash32, value: Hash32 },
    Internal { left: Hash32, right: Hash32 },
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("state node {0} is missing from the store")]
    MissingNode(Hash32),
    #[error("state store: {0}")]
    Store(String),
}

/// Where nodes live (redb in the node; a map in tests).
pub trait NodeStore {
    fn node(&self, hash: &Hash32) -> Result<Option<Node>, StateError>;
}

impl NodeStore for HashMap<Hash32, Node> {
    fn node(&self, hash: &Hash32) -> Result<Option<Node>, StateError> {
        Ok(self.get(hash).cloned())
    }
}

fn bit(key: &Hash32, depth: usize) -> bool {
    key.0[depth / 8] >> (7 - depth % 8) & 1 == 1
}

pub fn leaf_hash(h: &dyn Hasher, key: &Hash32, value: &Hash32) -> Result<Hash32, HashError> {
    let mut buf = [0u8; 65];
    buf[1..33].copy_from_slice(&key.0);
    buf[33..].copy_from_slice(&value.0);
    h.hash(&buf)
}

fn internal_hash(h: &dyn Hasher, left: &Hash32, right: &Hash32) -> Result<Hash32, HashError> {
    crate::merkle::node_hash(h, left, right)
}

/// What a proof found where the key's path ends.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Terminal {
    Empty,
    Leaf { key: Hash32, value: Hash32 },
}

/// Proof of a key's value, or of its absence, against a state root.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct StateProof {
    /// Siblings from the root (depth 0) down.
    pub siblings: Vec<Hash32>,
    pub terminal: Terminal,
}

impl StateProof {
    /// Check the proof: `Some(value_hash)` claims the key maps to it, `None` claims absence.
    pub fn verify(&self, h: &dyn Hasher, root: &Hash32, key: &Hash32, value: Option<&Hash32>) -> Result<bool, HashError> {
        if self.siblings.len() > 256 {
            return Ok(false);
        }
        let mut cur = match (&self.terminal, value) {
            (Terminal::Empty, None) => EMPTY,
            (Terminal::Empty, Some(_)) => return Ok(false),
            (Terminal::Leaf { key: k, value: v }, Some(want)) if k == key && v == want => leaf_hash(h, k, v)?,
            (Terminal::Leaf { key: k, value: v }, None) if k != key => {
                // Another key's leaf ends this path: it must lie on the same path.
                if (0..self.siblings.len()).any(|d| bit(k, d) != bit(key, d)) {
                    return Ok(false);
                }
                leaf_hash(h, k, v)?
            }
            _ => return Ok(false),
        };
        for (depth, sibling) in self.siblings.iter().enumerate().rev() {
            cur = if bit(key, depth) { internal_hash(h, sibling, &cur)? } else { internal_hash(h, &cur, sibling)? };
        }
        Ok(cur == *root)
    }
}

/// A batch of updates against a store: new nodes collect in `written` until the caller
/// commits them with the block.
pub struct Smt<'a> {
    store: &'a dyn NodeStore,
    hasher: &'a dyn Hasher,
    pub written: HashMap<Hash32, Node>,
}

impl<'a> Smt<'a> {
    pub fn new(store: &'a dyn NodeStore, hasher: &'a dyn Hasher) -> Self {
        Smt { store, hasher, written: HashMap::new() }
    }

    fn load(&self, hash: &Hash32) -> Result<Node, StateError> {
        if let Some(n) = self.written.get(hash) {
            return Ok(n.clone());
        }
        self.store.node(hash)?.ok_or(StateError::MissingNode(*hash))
    }

    fn put(&mut self, node: Node) -> Result<Hash32, StateError> {
        let hash = match &node {
            Node::Leaf { key, value } => leaf_hash(self.hasher, key, value)?,
            Node::Internal { left, right } => internal_hash(self.hasher, left, right)?,
        };
        self.written.insert(hash, node);
        Ok(hash)
    }

    /// The value hash stored under `key` in the tree with `root`.
    pub fn get(&self, root: &Hash32, key: &Hash32) -> Result<Option<Hash32>, StateError> {
        Ok(match self.prove(root, key)?.terminal {
            Terminal::Leaf { key: k, value } if k == *key => Some(value),
            _ => None,
        })
    }

    pub fn prove(&self, root: &Hash32, key: &Hash32) -> Result<StateProof, StateError> {
        let mut siblings = vec![];
        let mut cur = *root;
        let mut depth = 0;
        loop {
            if cur == EMPTY {
                return Ok(StateProof { siblings, terminal: Terminal::Empty });
            }
            match self.load(&cur)? {
                Node::Leaf { key, value } => return Ok(StateProof { siblings, terminal: Terminal::Leaf { key, value } }),
                Node::Internal { left, right } => {
                    let (next, sibling) = if bit(key, depth) { (right, left) } else { (left, right) };
                    siblings.push(sibling);
                    cur = next;
                    depth += 1;
                }
            }
        }
    }

    /// Set (`Some`) or delete (`None`) one key; returns the new root.
    pub fn update(&mut self, root: Hash32, key: &Hash32, value: Option<&Hash32>) -> Result<Hash32, StateError> {
        match value {
            Some(v) => self.insert(root, key, v, 0),
            None => self.remove(root, key, 0),
        }
    }

    /// Apply many updates at once: `updates` sorted by key, each key once; `Some` sets,
    /// `None` deletes. Gives the same root as applying them one by one with
    /// [`Smt::update`], but hashes each changed node once and writes only the nodes of the
    /// resulting tree, which is what a block needs.
    pub fn update_many(&mut self, root: Hash32, updates: &[(Hash32, Option<Hash32>)]) -> Result<Hash32, StateError> {
        if updates.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(StateError::Store("update_many needs keys sorted and unique".into()));
        }
        self.apply(root, updates, 0)
    }

    fn apply(&mut self, at: Hash32, ups: &[(Hash32, Option<Hash32>)], depth: usize) -> Result<Hash32, StateError> {
        if ups.is_empty() {
            return Ok(at);
        }
        if depth > 256 {
            return Err(StateError::Store("two different keys with the same 256-bit path".into()));
        }
        if at == EMPTY {
            let entries: Vec<(Hash32, Hash32)> = ups.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
            return self.build(&entries, depth);
        }
        match self.load(&at)? {
            Node::Leaf { key, value } => {
                // The existing leaf joins the new entries unless one of them replaces it.
                let mut entries: Vec<(Hash32, Hash32)> = ups.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
                if !ups.iter().any(|(k, _)| *k == key) {
                    let pos = entries.partition_point(|(k, _)| *k < key);
                    entries.insert(pos, (key, value));
                }
                self.build(&entries, depth)
            }
            Node::Internal { left, right } => {
                let split = ups.partition_point(|(k, _)| !bit(k, depth));
                let l = self.apply(left, &ups[..split], depth + 1)?;
                let r = self.apply(right, &ups[split..], depth + 1)?;
                self.rejoin(at, (left, right), (l, r))
            }
        }
    }

    /// The canonical subtree at `depth` holding exactly `entries` (sorted by key).
    fn build(&mut self, entries: &[(Hash32, Hash32)], depth: usize) -> Result<Hash32, StateError> {
        match entries {
            [] => Ok(EMPTY),
            [(k, v)] => self.put(Node::Leaf { key: *k, value: *v }),
            _ => {
                if depth >= 256 {
                    return Err(StateError::Store("two different keys with the same 256-bit path".into()));
                }
                let split = entries.partition_point(|(k, _)| !bit(k, depth));
                let left = self.build(&entries[..split], depth + 1)?;
                let right = self.build(&entries[split..], depth + 1)?;
                self.put(Node::Internal { left, right })
            }
        }
    }

    fn insert(&mut self, at: Hash32, key: &Hash32, value: &Hash32, depth: usize) -> Result<Hash32, StateError> {
        if at == EMPTY {
            return self.put(Node::Leaf { key: *key, value: *value });
        }
        match self.load(&at)? {
            Node::Leaf { key: k, .. } if k == *key => self.put(Node::Leaf { key: *key, value: *value }),
            Node::Leaf { key: k, .. } => self.split(at, &k, key, value, depth),
            Node::Internal { left, right } => {
                if bit(key, depth) {
                    let r = self.insert(right, key, value, depth + 1)?;
                    self.put(Node::Internal { left, right: r })
                } else {
                    let l = self.insert(left, key, value, depth + 1)?;
                    self.put(Node::Internal { left: l, right })
                }
            }
        }
    }

    /// Two leaves that share a path down to `depth`: internal nodes until their bits differ.
    fn split(&mut self, existing: Hash32, k: &Hash32, key: &Hash32, value: &Hash32, depth: usize) -> Result<Hash32, StateError> {
        if depth >= 256 {
            return Err(StateError::Store("two different keys with the same 256-bit path".into()));
        }
        let new_leaf = self.put(Node::Leaf { key: *key, value: *value })?;
        let (a, b) = (bit(k, depth), bit(key, depth));
        if a != b {
            let (left, right) = if b { (existing, new_leaf) } else { (new_leaf, existing) };
            return self.put(Node::Internal { left, right });
        }
        self.written.remove(&new_leaf);
        let below = self.split(existing, k, key, value, depth + 1)?;
        let (left, right) = if b { (EMPTY, below) } else { (below, EMPTY) };
        self.put(Node::Internal { left, right })
    }

    fn remove(&mut self, at: Hash32, key: &Hash32, depth: usize) -> Result<Hash32, StateError> {
        if at == EMPTY {
            return Ok(EMPTY);
        }
        match self.load(&at)? {
            Node::Leaf { key: k, .. } => Ok(if k == *key { EMPTY } else { at }),
            Node::Internal { left, right } => {
                let (l, r) = if bit(key, depth) { (left, self.remove(right, key, depth + 1)?) } else { (self.remove(left, key, depth + 1)?, right) };
                self.rejoin(at, (left, right), (l, r))
            }
        }
    }

    /// The internal node `at`, whose children were `old` and are now `new`: unchanged, or
    /// collapsed when a lone leaf (or nothing) is left beside an empty side (a leaf's hash
    /// does not depend on its depth, so it moves up), or a new internal node.
    fn rejoin(&mut self, at: Hash32, old: (Hash32, Hash32), new: (Hash32, Hash32)) -> Result<Hash32, StateError> {
        if new == old {
            return Ok(at);
        }
        let (l, r) = new;
        for (lone, other) in [(l, r), (r, l)] {
            if other == EMPTY && (lone == EMPTY || matches!(self.load(&lone)?, Node::Leaf { .. })) {
                return Ok(lone);
            }
        }
        self.put(Node::Internal { left: l, right: r })
    }
}
