//! Blocks off the head's chain, and the state they execute on (see `docs/design/forks.md`).
//!
//! A block whose parent is not the head is checked in full on its parent's state and kept
//! as a [`SideBlock`]; when its chain outweighs the head's, the chain reorganises onto it
//! in one store transaction ([`crate::store::ChainStore::reorganise`]). The parent's state
//! is a [`ForkState`]: the store as of the fork point (state trees are versioned; the flat
//! contract storage is rolled back from undo records), with the side blocks in between
//! applied from their executions, in memory.

use crate::execute::{Execution, StateStore};
use crate::store::{StoreError, StoreView};
use joule_contract::Entries;
use joule_primitives::smt::{Node, NodeKey, NodeStore, StateError, TreeId};
use joule_primitives::{Block, Hash32};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A block's transaction hashes and its execution on its parent's state.
pub type Executed = Arc<(Vec<Hash32>, Execution)>;

/// Side blocks kept at most; past that, the lowest go first.
pub const MAX_SIDE_BLOCKS: usize = 256;

/// A block executed and kept off the head's chain.
pub struct SideBlock {
    pub block: Block,
    pub hash: Hash32,
    /// What it adds to its chain's weight (the engine's `weight`).
    pub weight: u64,
    /// Its transactions' hashes and execution on its parent's state; `None` for a block a
    /// reorganisation took off the chain, executed again if its chain is chosen.
    pub exec: Option<Executed>,
}

/// The side blocks, by hash.
#[derive(Default)]
pub struct SideBlocks {
    blocks: HashMap<Hash32, SideBlock>,
}

impl SideBlocks {
    pub fn get(&self, hash: &Hash32) -> Option<&SideBlock> {
        self.blocks.get(hash)
    }

    pub fn contains(&self, hash: &Hash32) -> bool {
        self.blocks.contains_key(hash)
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn insert(&mut self, b: SideBlock) {
        if self.blocks.len() >= MAX_SIDE_BLOCKS
            && let Some(lowest) = self.blocks.values().min_by_key(|s| s.block.header.height).map(|s| s.hash)
        {
            self.blocks.remove(&lowest);
        }
        self.blocks.insert(b.hash, b);
    }

    pub fn remove(&mut self, hash: &Hash32) -> Option<SideBlock> {
        self.blocks.remove(hash)
    }

    pub fn set_exec(&mut self, hash: &Hash32, exec: Executed) {
        if let Some(b) = self.blocks.get_mut(hash) {
            b.exec = Some(exec);
        }
    }

    /// Forget blocks at or below `height`: a fork there can no longer win.
    pub fn prune_to(&mut self, height: u64) {
        self.blocks.retain(|_, b| b.block.header.height > height);
    }
}

/// The state after a block off the head's chain: the store's state at the fork point, plus
/// the executions of the side blocks from there to the block, lowest first.
pub struct ForkState {
    base: Arc<StoreView>,
    fork: u64,
    /// `contract_kv` rows that differ between the fork point and the head, as at the fork.
    kv_at_fork: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    next_tree_at_fork: TreeId,
    /// Executions of the side blocks at heights fork + 1, fork + 2, …
    side: Vec<Executed>,
    /// Their `contract_kv` writes, the last of each row, by row key (contract ‖ key).
    side_kv: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

fn store_err(e: StoreError) -> StateError {
    StateError::Store(e.to_string())
}

fn kv_key(contract: &Hash32, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + key.len());
    k.extend_from_slice(&contract.0);
    k.extend_from_slice(key);
    k
}

impl ForkState {
    pub fn new(base: Arc<StoreView>, fork: u64, side: Vec<Executed>) -> Result<ForkState, StoreError> {
        let kv_at_fork = base.kv_after(fork)?;
        let next_tree_at_fork = base.next_tree_after(fork)?;
        let side_kv = side.iter().flat_map(|s| &s.1.contract_kv).map(|(c, key, v)| (kv_key(c, key), v.clone())).collect();
        Ok(ForkState { base, fork, kv_at_fork, next_tree_at_fork, side, side_kv })
    }

    /// Rows of `contract` in `prefix` after `after` that differ from the head's: as at the
    /// fork point, then as the side blocks wrote them.
    fn changed(&self, contract: &Hash32, prefix: &[u8], after: Option<&[u8]>) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        let start = kv_key(contract, prefix);
        let mut out = BTreeMap::new();
        for rows in [&self.kv_at_fork, &self.side_kv] {
            for (k, v) in rows.range(start.clone()..) {
                let Some(key) = k.strip_prefix(&contract.0[..]) else { break };
                if !key.starts_with(prefix) {
                    break;
                }
                if after.is_none_or(|a| key > a) {
                    out.insert(key.to_vec(), v.clone());
                }
            }
        }
        out
    }
}

impl NodeStore for ForkState {
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, StateError> {
        if at.version > self.fork {
            // Versions above the fork are the side blocks' (the store's are the old chain's).
            let i = usize::try_from(at.version - self.fork - 1).map_err(|_| StateError::Store("version out of range".into()))?;
            return Ok(self.side.get(i).and_then(|s| s.1.nodes.get(at).cloned()));
        }
        self.base.node(at)
    }
}

/// Side blocks never start a suite switch (the chain refuses forks across one), so the
/// migration's reads go to the store.
impl StateStore for ForkState {
    fn storage_key(&self, account: &Hash32, key_hash: &Hash32) -> Result<Option<Vec<u8>>, StateError> {
        self.base.storage_key(account, key_hash).map_err(store_err)
    }

    fn data_record(&self, at: crate::store::TxLocation) -> Result<(String, Vec<u8>), StateError> {
        self.base.data_record(at).map_err(store_err)
    }

    fn storage_keys_of(&self, account: &Hash32) -> Result<Vec<(Hash32, Vec<u8>)>, StateError> {
        self.base.storage_keys_of(account).map_err(store_err)
    }

    fn next_tree(&self) -> Result<TreeId, StateError> {
        Ok(self.side.last().map_or(self.next_tree_at_fork, |s| s.1.next_tree))
    }

    fn code(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StateError> {
        for s in &self.side {
            if let Some((_, c)) = s.1.codes.iter().find(|(h, _)| h == hash) {
                return Ok(Some(c.to_vec()));
            }
        }
        self.base.code(hash).map_err(store_err)
    }

    fn contract_value(&self, contract: &Hash32, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let k = kv_key(contract, key);
        if let Some(v) = self.side_kv.get(&k).or_else(|| self.kv_at_fork.get(&k)) {
            return Ok(v.clone());
        }
        self.base.contract_value(contract, key).map_err(store_err)
    }

    fn contract_scan(&self, contract: &Hash32, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Entries, StateError> {
        // Rows that differ from the head's.
        let changed = self.changed(contract, prefix, after);
        // At most this many of the head's rows are hidden, so this many cover `limit`.
        let hidden = changed.len();
        let stored = self.base.contract_scan(contract, prefix, after, limit.saturating_add(hidden)).map_err(store_err)?;
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = stored.into_iter().map(|(k, v)| (k, Some(v))).collect();
        merged.extend(changed);
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BlockCommit, ChainStore};
    use joule_primitives::smt::Root;
    use joule_primitives::{BlockHeader, ChannelId};

    fn block(height: u64) -> Block {
        let header = BlockHeader {
            channel: ChannelId::new("grid").unwrap(),
            height,
            parent_hash: Hash32([height as u8; 32]),
            timestamp_ms: height,
            tx_root: Hash32::default(),
            state_root: Hash32::default(),
            receipts_root: Hash32::default(),
            proposer: vec![],
            crypto_suite: "test".into(),
            seal: vec![],
        };
        Block { header, transactions: vec![] }
    }

    fn commit(store: &ChainStore, height: u64, next_tree: TreeId, kv: &[(&str, Option<&str>)]) {
        let c = Hash32([7; 32]);
        let writes: Vec<_> = kv.iter().map(|(k, v)| (c, k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))).collect();
        let b = block(height);
        store
            .commit(BlockCommit {
                block: &b,
                hash: Hash32([height as u8 + 1; 32]),
                tx_hashes: &[],
                receipts: &[],
                nodes: &Default::default(),
                stale: &Default::default(),
                next_tree,
                events: &[],
                codes: &[],
                contract_kv: &writes,
                storage_keys: &[],
            })
            .unwrap();
    }

    fn side(next_tree: TreeId, kv: &[(&str, Option<&str>)]) -> Executed {
        let c = Hash32([7; 32]);
        Arc::new((
            vec![],
            Execution {
                receipts: vec![],
                state_root: Root { tree: 0, version: 0, hash: Hash32::default() },
                nodes: Default::default(),
                stale: Default::default(),
                next_tree,
                events: vec![],
                codes: vec![],
                contract_kv: kv.iter().map(|(k, v)| (c, k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))).collect(),
                included: 0,
                governance: None,
                storage_keys: vec![],
            },
        ))
    }

    fn entries(e: Entries) -> Vec<(String, String)> {
        e.into_iter().map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())).collect()
    }

    #[test]
    fn contract_storage_reads_as_at_the_fork_point_with_the_side_blocks_writes_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        commit(&store, 0, 1, &[("a", Some("1")), ("b", Some("2")), ("c", Some("3"))]);
        commit(&store, 1, 5, &[("a", None), ("b", Some("20")), ("d", Some("4"))]);
        commit(&store, 2, 7, &[("c", Some("30")), ("e", Some("5")), ("b", Some("21"))]);
        let view = Arc::new(store.read().unwrap());
        let c = Hash32([7; 32]);
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();

        // At block 0, as block 0 left it; block 1's view; and a side block on block 0.
        let at0 = ForkState::new(view.clone(), 0, vec![]).unwrap();
        assert_eq!(entries(at0.contract_scan(&c, b"", None, 10).unwrap()), pairs(&[("a", "1"), ("b", "2"), ("c", "3")]));
        assert_eq!(at0.next_tree().unwrap(), 1);
        let at1 = ForkState::new(view.clone(), 1, vec![]).unwrap();
        assert_eq!(entries(at1.contract_scan(&c, b"", None, 10).unwrap()), pairs(&[("b", "20"), ("c", "3"), ("d", "4")]));
        assert_eq!(at1.next_tree().unwrap(), 5);
        let s = ForkState::new(view, 0, vec![side(9, &[("b", Some("200")), ("f", Some("6")), ("c", None)])]).unwrap();
        assert_eq!(s.next_tree().unwrap(), 9);
        assert_eq!(s.contract_value(&c, b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.contract_value(&c, b"b").unwrap().as_deref(), Some(&b"200"[..]));
        assert_eq!(s.contract_value(&c, b"c").unwrap(), None);
        assert_eq!(s.contract_value(&c, b"e").unwrap(), None, "written above the fork only");
        assert_eq!(entries(s.contract_scan(&c, b"", None, 10).unwrap()), pairs(&[("a", "1"), ("b", "200"), ("f", "6")]));
        assert_eq!(entries(s.contract_scan(&c, b"", None, 2).unwrap()), pairs(&[("a", "1"), ("b", "200")]));
        assert_eq!(entries(s.contract_scan(&c, b"", Some(b"a"), 10).unwrap()), pairs(&[("b", "200"), ("f", "6")]));
    }

    #[test]
    fn undoing_blocks_restores_contract_storage_and_the_tree_counter() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        commit(&store, 0, 1, &[("a", Some("1"))]);
        commit(&store, 1, 5, &[("a", Some("2")), ("b", Some("x"))]);
        commit(&store, 2, 7, &[("a", None)]);
        store.reorganise(0, &[]).unwrap();
        let view = store.read().unwrap();
        let c = Hash32([7; 32]);
        assert_eq!(view.head().unwrap().map(|(h, _)| h), Some(0));
        assert_eq!(view.contract_scan(&c, b"", None, 10).unwrap(), vec![(b"a".to_vec(), b"1".to_vec())]);
        assert_eq!(view.next_tree().unwrap(), 1);
        assert!(view.header(1).unwrap().is_none());
        drop(view);
        assert!(matches!(store.reorganise(0, &[]), Ok(())), "a no-op at the head");
        commit(&store, 1, 5, &[]);
        let e = store.reorganise(5, &[]).unwrap_err();
        assert!(e.to_string().contains("fork point 5"), "{e}");
    }
}
