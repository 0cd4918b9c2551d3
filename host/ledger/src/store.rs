//! The chain on redb. A block, its receipts, its indexes and the state it produces are
//! written in one redb write transaction: after a crash the store holds either the whole
//! block or none of it, and the head is the last block committed.
//!
//! Tables (keys and values are raw bytes unless noted):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"head"` | height (u64 LE) ‖ block hash |
//! | `meta` | `"spec"` | the channel's `ChainSpec` (canonical encoding) |
//! | `blocks` | height (u64) | `Block` encoding |
//! | `block_hashes` | block hash | height (u64 LE) |
//! | `txs` | tx hash | height (u64 LE) ‖ index (u32 LE) |
//! | `block_txs` | height (u64) | the block's transaction hashes, concatenated |
//! | `receipts` | height (u64) | `Vec<Receipt>` (Borsh, versioned) |
//! | `state_nodes` | node hash | `smt::Node` (Borsh) |
//! | `values` | value hash | value bytes (account encodings, storage values) |
//! | `events` | contract ‖ H(topic) ‖ height (u64 BE) ‖ index (u32 BE) | () |

use joule_primitives::smt::{Node, NodeStore, StateError};
use joule_primitives::{Block, Encode, Hash32, Receipt};
use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition};
use std::collections::HashMap;
use std::path::Path;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const BLOCK_HASHES: TableDefinition<&[u8], u64> = TableDefinition::new("block_hashes");
const TXS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("txs");
const BLOCK_TXS: TableDefinition<u64, &[u8]> = TableDefinition::new("block_txs");
const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
const STATE_NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state_nodes");
const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");
const EVENTS: TableDefinition<&[u8], ()> = TableDefinition::new("events");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Db(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("block {height} does not extend the head ({head:?})")]
    NotNext { height: u64, head: Option<u64> },
}

fn db_err<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

/// Where a transaction landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
}

/// Everything one block adds to the store.
pub struct BlockCommit<'a> {
    pub block: &'a Block,
    pub hash: Hash32,
    pub tx_hashes: &'a [Hash32],
    pub receipts: &'a [Receipt],
    pub nodes: &'a HashMap<Hash32, Node>,
    pub values: &'a HashMap<Hash32, Vec<u8>>,
    /// Event index keys (see the table above).
    pub events: &'a [Vec<u8>],
}

pub struct ChainStore {
    db: Database,
}

impl ChainStore {
    pub fn open(path: &Path) -> Result<ChainStore, StoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        {
            tx.open_table(META).map_err(db_err)?;
            tx.open_table(BLOCKS).map_err(db_err)?;
            tx.open_table(BLOCK_HASHES).map_err(db_err)?;
            tx.open_table(TXS).map_err(db_err)?;
            tx.open_table(BLOCK_TXS).map_err(db_err)?;
            tx.open_table(RECEIPTS).map_err(db_err)?;
            tx.open_table(STATE_NODES).map_err(db_err)?;
            tx.open_table(VALUES).map_err(db_err)?;
            tx.open_table(EVENTS).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(ChainStore { db })
    }

    pub fn read(&self) -> Result<StoreView, StoreError> {
        Ok(StoreView { tx: self.db.begin_read().map_err(db_err)? })
    }

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read()?.meta(key)
    }

    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(META).map_err(db_err)?.insert(key, value).map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// Append a block with everything it produced, atomically. The block must be the
    /// successor of the current head.
    pub fn commit(&self, c: BlockCommit<'_>) -> Result<(), StoreError> {
        let height = c.block.header.height;
        let head = self.read()?.head()?.map(|(h, _)| h);
        if head.map_or(height != 0, |h| height != h + 1) {
            return Err(StoreError::NotNext { height, head });
        }
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            tx.open_table(BLOCKS).map_err(db_err)?.insert(height, c.block.encode().as_slice()).map_err(db_err)?;
            tx.open_table(BLOCK_HASHES).map_err(db_err)?.insert(c.hash.0.as_slice(), height).map_err(db_err)?;
            let mut txs = tx.open_table(TXS).map_err(db_err)?;
            for (i, h) in c.tx_hashes.iter().enumerate() {
                let mut loc = height.to_le_bytes().to_vec();
                loc.extend((i as u32).to_le_bytes());
                txs.insert(h.0.as_slice(), loc.as_slice()).map_err(db_err)?;
            }
            let hashes: Vec<u8> = c.tx_hashes.iter().flat_map(|h| h.0).collect();
            tx.open_table(BLOCK_TXS).map_err(db_err)?.insert(height, hashes.as_slice()).map_err(db_err)?;
            let mut receipts = vec![joule_primitives::encoding::ENCODING_VERSION];
            borsh::to_writer(&mut receipts, c.receipts).map_err(db_err)?;
            tx.open_table(RECEIPTS).map_err(db_err)?.insert(height, receipts.as_slice()).map_err(db_err)?;
            let mut nodes = tx.open_table(STATE_NODES).map_err(db_err)?;
            for (h, n) in c.nodes {
                nodes.insert(h.0.as_slice(), borsh::to_vec(n).map_err(db_err)?.as_slice()).map_err(db_err)?;
            }
            let mut values = tx.open_table(VALUES).map_err(db_err)?;
            for (h, v) in c.values {
                values.insert(h.0.as_slice(), v.as_slice()).map_err(db_err)?;
            }
            let mut events = tx.open_table(EVENTS).map_err(db_err)?;
            for k in c.events {
                events.insert(k.as_slice(), ()).map_err(db_err)?;
            }
            let mut head_value = height.to_le_bytes().to_vec();
            head_value.extend(c.hash.0);
            tx.open_table(META).map_err(db_err)?.insert("head", head_value.as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }
}

/// A consistent snapshot of the store (a redb read transaction).
pub struct StoreView {
    tx: ReadTransaction,
}

impl StoreView {
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.tx.open_table(META).map_err(db_err)?;
        Ok(t.get(key).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    /// `(height, hash)` of the last committed block.
    pub fn head(&self) -> Result<Option<(u64, Hash32)>, StoreError> {
        let Some(v) = self.meta("head")? else { return Ok(None) };
        if v.len() != 40 {
            return Err(StoreError::Corrupt("head record".into()));
        }
        let height = u64::from_le_bytes(v[..8].try_into().map_err(|_| StoreError::Corrupt("head".into()))?);
        Ok(Some((height, Hash32::from_slice(&v[8..]).ok_or_else(|| StoreError::Corrupt("head hash".into()))?)))
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let t = self.tx.open_table(BLOCKS).map_err(db_err)?;
        match t.get(height).map_err(db_err)? {
            Some(v) => Ok(Some(Block::decode(v.value()).map_err(|e| StoreError::Corrupt(format!("block {height}: {e}")))?)),
            None => Ok(None),
        }
    }

    pub fn height_of(&self, hash: &Hash32) -> Result<Option<u64>, StoreError> {
        let t = self.tx.open_table(BLOCK_HASHES).map_err(db_err)?;
        Ok(t.get(hash.0.as_slice()).map_err(db_err)?.map(|v| v.value()))
    }

    pub fn tx_location(&self, hash: &Hash32) -> Result<Option<TxLocation>, StoreError> {
        let t = self.tx.open_table(TXS).map_err(db_err)?;
        let Some(v) = t.get(hash.0.as_slice()).map_err(db_err)? else { return Ok(None) };
        let v = v.value();
        if v.len() != 12 {
            return Err(StoreError::Corrupt("tx location".into()));
        }
        Ok(Some(TxLocation {
            height: u64::from_le_bytes(v[..8].try_into().unwrap_or_default()),
            index: u32::from_le_bytes(v[8..].try_into().unwrap_or_default()),
        }))
    }

    /// The transaction hashes of a block, in order (stored with it, so serving a block
    /// needs no hashing).
    pub fn tx_hashes(&self, height: u64) -> Result<Option<Vec<Hash32>>, StoreError> {
        let t = self.tx.open_table(BLOCK_TXS).map_err(db_err)?;
        let Some(v) = t.get(height).map_err(db_err)? else { return Ok(None) };
        let (chunks, rest) = v.value().as_chunks::<32>();
        if !rest.is_empty() {
            return Err(StoreError::Corrupt(format!("transaction hashes of block {height}")));
        }
        Ok(Some(chunks.iter().map(|c| Hash32(*c)).collect()))
    }

    pub fn receipts(&self, height: u64) -> Result<Option<Vec<Receipt>>, StoreError> {
        let t = self.tx.open_table(RECEIPTS).map_err(db_err)?;
        let Some(v) = t.get(height).map_err(db_err)? else { return Ok(None) };
        let bytes = v.value();
        if bytes.first() != Some(&joule_primitives::encoding::ENCODING_VERSION) {
            return Err(StoreError::Corrupt(format!("receipts {height}")));
        }
        borsh::from_slice(&bytes[1..]).map(Some).map_err(|e| StoreError::Corrupt(format!("receipts {height}: {e}")))
    }

    pub fn value(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.tx.open_table(VALUES).map_err(db_err)?;
        Ok(t.get(hash.0.as_slice()).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    /// Event index keys with this prefix (contract, or contract ‖ topic hash), in order.
    pub fn events_with_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let t = self.tx.open_table(EVENTS).map_err(db_err)?;
        let mut out = vec![];
        for row in t.range(prefix..).map_err(db_err)? {
            let (k, _) = row.map_err(db_err)?;
            let k = k.value();
            if !k.starts_with(prefix) || out.len() == limit {
                break;
            }
            out.push(k.to_vec());
        }
        Ok(out)
    }
}

impl NodeStore for StoreView {
    fn node(&self, hash: &Hash32) -> Result<Option<Node>, StateError> {
        let t = self.tx.open_table(STATE_NODES).map_err(|e| StateError::Store(e.to_string()))?;
        match t.get(hash.0.as_slice()).map_err(|e| StateError::Store(e.to_string()))? {
            Some(v) => borsh::from_slice(v.value()).map(Some).map_err(|e| StateError::Store(format!("node {hash}: {e}"))),
            None => Ok(None),
        }
    }
}
