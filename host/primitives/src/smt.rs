//! Authenticated key-value state: a binary sparse Merkle tree over 256-bit key hashes with
//! compressed leaves (a leaf sits at the first depth where its path is unique).
//!
//! What roots and proofs commit to (`docs/formats.md`, "State tree"):
//!
//! * Empty subtree: [`EMPTY`] (32 zero bytes, not hashed).
//! * Leaf: `H(0x00 || key_hash || value_hash)`; it carries its whole key, so it can move
//!   up or down the tree without changing hash.
//! * Internal: `H(0x01 || left || right)`; bit `d` of the key hash (most significant first)
//!   chooses the side at depth `d`.
//!
//! The root depends only on the set of `(key, value)` pairs, not on the order of updates
//! (deletions collapse a lone leaf upwards). A proof is the list of siblings from the root
//! down plus the terminal found where the key's path ends (empty, the key's leaf, or another
//! key's leaf), which proves inclusion or absence to a client that holds only the root.
//!
//! How nodes are stored is separate from how they hash. A node is addressed by position,
//! [`NodeKey`] `(version, tree, path)`: the version (block height) that wrote it, the tree
//! (a number the store gives each tree), and its path from the root. An internal node keeps
//! its own hash and the versions of its two children, whose paths follow from its own; a
//! leaf keeps its key, its value hash and bytes the store attaches (the value, or where to
//! find it). So every hash is stored once, not once as a key and once in the parent; the
//! nodes one version writes have adjacent keys; and an update knows exactly which older
//! nodes it replaced ([`Smt::stale`]), which is what pruning deletes once no kept state
//! needs them. A tree is read from a [`Root`]: its hash (what a header or an account
//! commits to) and the version that holds its root node. Every state stays readable from
//! its root until pruned.

use crate::merkle::{HashError, Hasher};
use crate::types::Hash32;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// The root of an empty tree (and of every empty subtree).
pub const EMPTY: Hash32 = Hash32::ZERO;

/// A tree's number in a store; the ledger's global state tree is [`GLOBAL_TREE`].
pub type TreeId = u32;

/// The global state tree (accounts by id).
pub const GLOBAL_TREE: TreeId = 0;

/// The deepest node a store addresses (its depth is one byte). Two keys sharing their first
/// 255 bits would need leaves at depth 256; for hash outputs that is a 2^-255 event, and
/// such an update is refused with [`StateError::TooDeep`] rather than stored wrongly.
pub const MAX_DEPTH: usize = 255;

/// A node's position below its tree's root: `depth` bits, most significant first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path {
    depth: u8,
    /// Bits past `depth` are zero, so equal paths have equal bytes.
    bits: [u8; 32],
}

impl Path {
    pub const ROOT: Path = Path { depth: 0, bits: [0; 32] };

    pub fn depth(&self) -> usize {
        self.depth as usize
    }

    /// The path's bits packed most significant first: `ceil(depth / 8)` bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bits[..self.depth().div_ceil(8)]
    }

    /// A path from its depth and packed bits; `None` unless there are exactly
    /// `ceil(depth / 8)` bytes and the bits past the depth are zero.
    pub fn from_bytes(depth: u8, bytes: &[u8]) -> Option<Path> {
        let n = (depth as usize).div_ceil(8);
        if bytes.len() != n {
            return None;
        }
        let mut bits = [0u8; 32];
        bits[..n].copy_from_slice(bytes);
        if !depth.is_multiple_of(8) && bits[n - 1] & (0xff >> (depth % 8)) != 0 {
            return None;
        }
        Some(Path { depth, bits })
    }

    /// The child on the `right` (bit 1) or left side.
    pub fn child(&self, right: bool) -> Result<Path, StateError> {
        let d = self.depth();
        if d >= MAX_DEPTH {
            return Err(StateError::TooDeep);
        }
        let mut p = *self;
        if right {
            p.bits[d / 8] |= 0x80 >> (d % 8);
        }
        p.depth += 1;
        Ok(p)
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.depth, hex::encode(self.bytes()))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where a node is stored. Ordered as the store's keys are (version, tree, path), so the
/// nodes of one version sort together and after every earlier version's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeKey {
    pub version: u64,
    pub tree: TreeId,
    pub path: Path,
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tree {}, version {}, path {}", self.tree, self.version, self.path)
    }
}

/// A tree as a store finds it: the root hash (what a header or an account commits to) and
/// the version whose nodes hold the root node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Root {
    pub tree: TreeId,
    pub version: u64,
    pub hash: Hash32,
}

impl Root {
    /// An empty tree.
    pub fn empty(tree: TreeId, version: u64) -> Root {
        Root { tree, version, hash: EMPTY }
    }
}

/// A key's entry: its value hash (what the tree commits to) and the bytes the store keeps
/// with it (not hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub key: Hash32,
    pub value: Hash32,
    pub data: Vec<u8>,
}

/// A stored node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Leaf(Leaf),
    /// Its own hash and the versions storing its children (`None`: an empty subtree).
    Internal {
        hash: Hash32,
        left: Option<u64>,
        right: Option<u64>,
    },
}

/// One update of [`Smt::update_many`]: a key, and its new value hash with the bytes to keep
/// with it, or `None` to delete it.
pub type Update = (Hash32, Option<(Hash32, Vec<u8>)>);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("state node ({0}) is missing from the store")]
    MissingNode(NodeKey),
    #[error("state node ({at}) does not hash to the root {expected}: the store is inconsistent")]
    RootMismatch { at: NodeKey, expected: Hash32 },
    #[error("two keys share their first {MAX_DEPTH} bits: the state tree cannot place them")]
    TooDeep,
    #[error("state store: {0}")]
    Store(String),
}

/// Where nodes live (redb in the node; a map in tests).
pub trait NodeStore {
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, StateError>;
}

impl NodeStore for BTreeMap<NodeKey, Node> {
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, StateError> {
        Ok(self.get(at).cloned())
    }
}

impl NodeStore for HashMap<NodeKey, Node> {
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, StateError> {
        Ok(self.get(at).cloned())
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

/// A subtree as an update leaves it.
enum Sub {
    Empty,
    /// A leaf; `at` is the version storing it at this very path, when it neither changed
    /// nor moved (otherwise it is written where its parent places it).
    Leaf {
        leaf: Leaf,
        hash: Hash32,
        at: Option<u64>,
    },
    /// An internal node stored at this path by `version`.
    Internal {
        hash: Hash32,
        version: u64,
    },
}

impl Sub {
    fn hash(&self) -> Hash32 {
        match self {
            Sub::Empty => EMPTY,
            Sub::Leaf { hash, .. } | Sub::Internal { hash, .. } => *hash,
        }
    }
}

/// Reads trees from a store and writes one version: new nodes collect in `written`, the
/// older nodes they replace in `stale`, until the caller commits both with the block.
pub struct Smt<'a> {
    store: &'a dyn NodeStore,
    hasher: &'a dyn Hasher,
    version: u64,
    /// Nodes this version writes.
    pub written: BTreeMap<NodeKey, Node>,
    /// Nodes of earlier versions that the trees of this version no longer contain: the
    /// states before this version still do, so they are deleted only by pruning.
    pub stale: BTreeSet<NodeKey>,
}

impl<'a> Smt<'a> {
    /// Read from `store`; updates write nodes at `version` (the block being built; a
    /// reader that updates nothing may pass any, e.g. `u64::MAX`).
    pub fn new(store: &'a dyn NodeStore, hasher: &'a dyn Hasher, version: u64) -> Self {
        Smt { store, hasher, version, written: BTreeMap::new(), stale: BTreeSet::new() }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    fn load(&self, at: &NodeKey) -> Result<Node, StateError> {
        if at.version == self.version
            && let Some(n) = self.written.get(at)
        {
            return Ok(n.clone());
        }
        self.store.node(at)?.ok_or(StateError::MissingNode(*at))
    }

    fn hash_of(&self, node: &Node) -> Result<Hash32, StateError> {
        Ok(match node {
            Node::Leaf(l) => leaf_hash(self.hasher, &l.key, &l.value)?,
            Node::Internal { hash, .. } => *hash,
        })
    }

    /// The root node of `root`, checked against the root's hash; `None` for an empty tree.
    fn load_root(&self, root: &Root) -> Result<Option<(NodeKey, Node)>, StateError> {
        if root.hash == EMPTY {
            return Ok(None);
        }
        let at = NodeKey { version: root.version, tree: root.tree, path: Path::ROOT };
        let node = self.load(&at)?;
        if self.hash_of(&node)? != root.hash {
            return Err(StateError::RootMismatch { at, expected: root.hash });
        }
        Ok(Some((at, node)))
    }

    fn child(at: &NodeKey, version: Option<u64>, right: bool) -> Result<Option<NodeKey>, StateError> {
        match version {
            None => Ok(None),
            Some(version) => Ok(Some(NodeKey { version, tree: at.tree, path: at.path.child(right)? })),
        }
    }

    /// The leaf of `key` in the tree `root`, if the key is present.
    pub fn get(&self, root: &Root, key: &Hash32) -> Result<Option<Leaf>, StateError> {
        let Some((mut at, mut node)) = self.load_root(root)? else { return Ok(None) };
        loop {
            match node {
                Node::Leaf(l) => return Ok((l.key == *key).then_some(l)),
                Node::Internal { left, right, .. } => {
                    let r = bit(key, at.path.depth());
                    let Some(next) = Self::child(&at, if r { right } else { left }, r)? else { return Ok(None) };
                    node = self.load(&next)?;
                    at = next;
                }
            }
        }
    }

    /// Proof of `key`'s value, or of its absence, in the tree `root`.
    pub fn prove(&self, root: &Root, key: &Hash32) -> Result<StateProof, StateError> {
        let mut siblings = vec![];
        let Some((mut at, mut node)) = self.load_root(root)? else { return Ok(StateProof { siblings, terminal: Terminal::Empty }) };
        loop {
            match node {
                Node::Leaf(l) => return Ok(StateProof { siblings, terminal: Terminal::Leaf { key: l.key, value: l.value } }),
                Node::Internal { left, right, .. } => {
                    let r = bit(key, at.path.depth());
                    let (next, other) = if r { (right, left) } else { (left, right) };
                    siblings.push(match Self::child(&at, other, !r)? {
                        Some(k) => self.hash_of(&self.load(&k)?)?,
                        None => EMPTY,
                    });
                    match Self::child(&at, next, r)? {
                        Some(k) => {
                            node = self.load(&k)?;
                            at = k;
                        }
                        None => return Ok(StateProof { siblings, terminal: Terminal::Empty }),
                    }
                }
            }
        }
    }

    /// Set (`Some`) or delete (`None`) one key; returns the new root.
    pub fn update(&mut self, root: &Root, key: &Hash32, value: Option<(Hash32, Vec<u8>)>) -> Result<Root, StateError> {
        self.update_many(root, &[(*key, value)])
    }

    /// Apply many updates at once: `updates` sorted by key, each key once. Gives the root
    /// that applying them one by one gives, hashes each changed node once, and writes only
    /// the nodes of the resulting tree, which is what a block needs. The new root is at
    /// this version, or stays where it was when nothing changed.
    pub fn update_many(&mut self, root: &Root, updates: &[Update]) -> Result<Root, StateError> {
        if updates.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(StateError::Store("update_many needs keys sorted and unique".into()));
        }
        let at = self.load_root(root)?.map(|(k, _)| k.version);
        let (sub, changed) = self.apply(root.tree, Path::ROOT, at, updates)?;
        if !changed {
            return Ok(*root);
        }
        let hash = sub.hash();
        let version = self.place(root.tree, Path::ROOT, sub).unwrap_or(self.version);
        Ok(Root { tree: root.tree, version, hash })
    }

    /// `root` with its root node at this version: copied there when the tree did not change,
    /// so that every version's state has its root at that version.
    pub fn relocate(&mut self, root: &Root) -> Result<Root, StateError> {
        if root.version == self.version {
            return Ok(*root);
        }
        let moved = Root { version: self.version, ..*root };
        let Some((at, node)) = self.load_root(root)? else { return Ok(moved) };
        self.replaced(at);
        self.written.insert(NodeKey { version: self.version, ..at }, node);
        Ok(moved)
    }

    /// Every leaf of the tree `root`, in key order, with all of its nodes marked replaced:
    /// for a state rebuilt whole (a switch of hash function), whose old nodes only the
    /// states before this version keep.
    pub fn retire(&mut self, root: &Root) -> Result<Vec<Leaf>, StateError> {
        let mut leaves = vec![];
        let Some((at, node)) = self.load_root(root)? else { return Ok(leaves) };
        let mut todo = vec![(at, node)];
        while let Some((at, node)) = todo.pop() {
            self.replaced(at);
            match node {
                Node::Leaf(l) => leaves.push(l),
                Node::Internal { left, right, .. } => {
                    // Right first, so the left subtree is walked first: leaves come in key order.
                    for (version, right) in [(right, true), (left, false)] {
                        if let Some(k) = Self::child(&at, version, right)? {
                            let n = self.load(&k)?;
                            todo.push((k, n));
                        }
                    }
                }
            }
        }
        Ok(leaves)
    }

    /// The node at `at` is no longer part of this version's trees.
    fn replaced(&mut self, at: NodeKey) {
        if at.version == self.version {
            self.written.remove(&at);
        } else {
            self.stale.insert(at);
        }
    }

    fn existing(&self, at: &NodeKey) -> Result<Sub, StateError> {
        Ok(match self.load(at)? {
            Node::Leaf(leaf) => Sub::Leaf { hash: leaf_hash(self.hasher, &leaf.key, &leaf.value)?, leaf, at: Some(at.version) },
            Node::Internal { hash, .. } => Sub::Internal { hash, version: at.version },
        })
    }

    /// The subtree at `path` (stored by version `at`, or empty) after `ups` (sorted, all
    /// under `path`), and whether it changed.
    fn apply(&mut self, tree: TreeId, path: Path, at: Option<u64>, ups: &[Update]) -> Result<(Sub, bool), StateError> {
        let key = at.map(|version| NodeKey { version, tree, path });
        if ups.is_empty() {
            return Ok((
                match key {
                    None => Sub::Empty,
                    Some(k) => self.existing(&k)?,
                },
                false,
            ));
        }
        let mut entries: Vec<Leaf> =
            ups.iter().filter_map(|(k, v)| v.as_ref().map(|(value, data)| Leaf { key: *k, value: *value, data: data.clone() })).collect();
        let Some(key) = key else {
            let changed = !entries.is_empty();
            return Ok((self.build(tree, path, &entries)?, changed));
        };
        match self.load(&key)? {
            Node::Leaf(old) => {
                if !ups.iter().any(|(k, _)| *k == old.key) {
                    if entries.is_empty() {
                        // Only deletions of keys that are not here.
                        return Ok((Sub::Leaf { hash: leaf_hash(self.hasher, &old.key, &old.value)?, leaf: old, at: Some(key.version) }, false));
                    }
                    let pos = entries.partition_point(|l| l.key < old.key);
                    entries.insert(pos, old);
                }
                self.replaced(key);
                Ok((self.build(tree, path, &entries)?, true))
            }
            Node::Internal { hash, left, right } => {
                let split = ups.partition_point(|(k, _)| !bit(k, path.depth()));
                let (l, l_changed) = self.apply(tree, path.child(false)?, left, &ups[..split])?;
                let (r, r_changed) = self.apply(tree, path.child(true)?, right, &ups[split..])?;
                if !l_changed && !r_changed {
                    return Ok((Sub::Internal { hash, version: key.version }, false));
                }
                self.replaced(key);
                Ok((self.join(tree, path, l, r)?, true))
            }
        }
    }

    /// The canonical subtree at `path` holding exactly `entries` (sorted by key).
    fn build(&mut self, tree: TreeId, path: Path, entries: &[Leaf]) -> Result<Sub, StateError> {
        match entries {
            [] => Ok(Sub::Empty),
            [one] => Ok(Sub::Leaf { hash: leaf_hash(self.hasher, &one.key, &one.value)?, leaf: one.clone(), at: None }),
            _ => {
                let split = entries.partition_point(|l| !bit(&l.key, path.depth()));
                let l = self.build(tree, path.child(false)?, &entries[..split])?;
                let r = self.build(tree, path.child(true)?, &entries[split..])?;
                self.join(tree, path, l, r)
            }
        }
    }

    /// The node at `path` over the children `l` and `r`: nothing, a lone leaf moved up
    /// (its hash does not depend on its depth), or a new internal node.
    fn join(&mut self, tree: TreeId, path: Path, l: Sub, r: Sub) -> Result<Sub, StateError> {
        match (l, r) {
            (Sub::Empty, Sub::Empty) => Ok(Sub::Empty),
            (Sub::Leaf { leaf, hash, at }, Sub::Empty) | (Sub::Empty, Sub::Leaf { leaf, hash, at }) => {
                if let Some(version) = at {
                    self.replaced(NodeKey { version, tree, path: path.child(bit(&leaf.key, path.depth()))? });
                }
                Ok(Sub::Leaf { leaf, hash, at: None })
            }
            (l, r) => {
                let hash = internal_hash(self.hasher, &l.hash(), &r.hash())?;
                let left = self.place(tree, path.child(false)?, l);
                let right = self.place(tree, path.child(true)?, r);
                self.written.insert(NodeKey { version: self.version, tree, path }, Node::Internal { hash, left, right });
                Ok(Sub::Internal { hash, version: self.version })
            }
        }
    }

    /// Store `sub` at `path` if it is new there; the version its parent refers to.
    fn place(&mut self, tree: TreeId, path: Path, sub: Sub) -> Option<u64> {
        match sub {
            Sub::Empty => None,
            Sub::Leaf { at: Some(version), .. } | Sub::Internal { version, .. } => Some(version),
            Sub::Leaf { leaf, at: None, .. } => {
                self.written.insert(NodeKey { version: self.version, tree, path }, Node::Leaf(leaf));
                Some(self.version)
            }
        }
    }
}
