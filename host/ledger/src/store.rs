//! The chain on redb, format `joule-chain-store/3` (byte by byte in `docs/formats.md`, "Chain
//! store"). A block, its transactions and receipts, its indexes and the state nodes it
//! writes are committed in one redb write transaction: after a crash the store holds either
//! the whole block or none of it, and the head is the last block committed.
//!
//! The layout is chosen for bytes on disk (a data record used to cost ~10x its size):
//!
//! * one row per transaction, keyed by (height, index): its hash, its receipt (compact: the
//!   event contracts are numbers the store gives each contract once) and its encoding. A
//!   block is its header row plus a range of rows; nothing is stored twice, and no value is
//!   a large blob (redb rounds those up to a power of two of pages).
//! * keys that grow with the chain (heights, versions) lead, so a block's rows are appended
//!   to the B-trees and pages are packed full. The transaction index keys on 8 bytes of the
//!   hash (a prefix may be shared: candidates are checked against the row's full hash).
//! * state nodes are addressed by position ([`joule_primitives::smt::NodeKey`]), so each
//!   hash is stored once, and the nodes one block writes in four levels of a tree share one
//!   key (a page); values live in their leaves, and a data record's value is not copied at
//!   all: the leaf points at the transaction that carries it.
//! * with a state history ([`ChainStore::set_state_history`]), the nodes a block replaces
//!   are listed in `stale` and deleted once no kept state needs them.

use crate::codec::{Reader, put_varint};
use joule_primitives::smt::{Leaf, Node, NodeKey, NodeStore, Path, StateError, TreeId};
use joule_primitives::{Block, BlockHeader, Encode, Event, Hash32, Payload, Receipt, ReceiptStatus, Transaction};
use redb::{Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path as FsPath;

/// What `meta/format` holds in a store of this layout.
pub const FORMAT: &str = "joule-chain-store/3";

/// The store's file in a channel's directory.
pub const FILE_NAME: &str = "chain.redb";

/// The `meta` key of the bytes on disk right after the last compaction (u64 LE).
pub const COMPACTED_BYTES: &str = "compacted_bytes";

/// Below this size a store is not compacted: there is little to gain.
pub const COMPACT_FROM_BYTES: u64 = 64 << 20;

/// Bytes a file takes on disk: its allocated blocks where the platform says (a file's
/// sparse tail, which redb leaves when it grows the file, takes none), else its length.
pub fn disk_bytes(path: &FsPath) -> u64 {
    let Ok(m) = std::fs::metadata(path) else { return 0 };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        m.blocks() * 512
    }
    #[cfg(not(unix))]
    {
        m.len()
    }
}

/// The `meta` key of the state history: blocks whose state is kept (u64 LE; absent or 0:
/// every block's). In the store, so that it holds across reopening.
pub const STATE_HISTORY: &str = "state_history";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new("headers");
const BLOCK_HASHES: TableDefinition<&[u8; 32], u64> = TableDefinition::new("block_hashes");
const TXS: TableDefinition<&[u8; 12], &[u8]> = TableDefinition::new("txs");
const TX_INDEX: TableDefinition<&[u8; 8], &[u8]> = TableDefinition::new("tx_index");
const EVENTS: TableDefinition<&[u8; 20], &[u8]> = TableDefinition::new("events");
const CONTRACTS: TableDefinition<u32, &[u8; 32]> = TableDefinition::new("contracts");
const CONTRACT_NUMBERS: TableDefinition<&[u8; 32], u32> = TableDefinition::new("contract_numbers");
const NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("nodes");
const STALE: TableDefinition<&[u8], ()> = TableDefinition::new("stale");
/// Height → Borsh([`UndoRecord`]) of each of the last [`UNDO_BLOCKS`] blocks.
const UNDO: TableDefinition<u64, &[u8]> = TableDefinition::new("undo");
/// Deployed contract code by code hash.
const CODES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("codes");
/// Contracts' storage at the head, flat: contract id ‖ key → value. The storage trees
/// authenticate it (their roots are in the header); this copy serves execution's reads and
/// `scan` in key order, which a tree keyed by hashes cannot.
const CONTRACT_KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("contract_kv");
/// The keys of data records kept inline and of governance values, by account id ‖ key
/// hash: the trees keep only hashes, and moving the state to another suite rehashes the
/// keys themselves (a data record kept in its transaction has its key there).
/// Rows are never removed (a superset serves every state), so a reorganisation leaves them.
const STORAGE_KEYS: TableDefinition<&[u8; 64], &[u8]> = TableDefinition::new("storage_keys");
/// Meta key set once `storage_keys` holds every key of the chain (see
/// [`ChainStore::backfill_storage_keys`]).
const STORAGE_KEYS_COMPLETE: &str = "storage_keys";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Db(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("block {height} does not extend the head ({head:?})")]
    NotNext { height: u64, head: Option<u64> },
    #[error("{0}")]
    Format(String),
    #[error("the store is busy ({0}); try again when no read is open")]
    Busy(String),
    /// A reorganisation the store cannot make (too deep, or below the kept state).
    #[error("cannot reorganise: {0}")]
    Reorg(String),
}

fn db_err<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// Where a transaction landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
}

impl TxLocation {
    /// The `txs` key: height (u64 BE) ‖ index (u32 BE), so a block's rows are adjacent and in order.
    fn key(&self) -> [u8; 12] {
        let mut k = [0u8; 12];
        k[..8].copy_from_slice(&self.height.to_be_bytes());
        k[8..].copy_from_slice(&self.index.to_be_bytes());
        k
    }

    fn from_key(k: &[u8]) -> Option<TxLocation> {
        Some(TxLocation { height: u64::from_be_bytes(k.get(..8)?.try_into().ok()?), index: u32::from_be_bytes(k.get(8..12)?.try_into().ok()?) })
    }
}

/// An event to index: the contract that emitted it, the hash of its topic, and the index of
/// its transaction in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef {
    pub contract: Hash32,
    pub topic: Hash32,
    pub index: u32,
}

/// A contract storage write: contract, key, value (`None`: removed).
pub type KvWrite = (Hash32, Vec<u8>, Option<Vec<u8>>);

type KvTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Everything one block adds to the store.
pub struct BlockCommit<'a> {
    pub block: &'a Block,
    pub hash: Hash32,
    pub tx_hashes: &'a [Hash32],
    pub receipts: &'a [Receipt],
    /// State nodes the block writes (all at its height).
    pub nodes: &'a BTreeMap<NodeKey, Node>,
    /// Nodes of earlier blocks its state no longer contains.
    pub stale: &'a BTreeSet<NodeKey>,
    /// The next unused storage tree number after the block.
    pub next_tree: TreeId,
    pub events: &'a [EventRef],
    /// Code deployed in the block, by hash.
    pub codes: &'a [(Hash32, std::sync::Arc<[u8]>)],
    /// Contract storage writes of the block (`None`: removed), in any order, one per key.
    pub contract_kv: &'a [KvWrite],
    /// Keys of the data records and governance values the block wrote: account, key hash,
    /// key.
    pub storage_keys: &'a [StorageKey],
}

/// A storage key the trees know only by hash: account id, key hash, key.
pub type StorageKey = (Hash32, Hash32, Vec<u8>);

fn storage_key_row(account: &Hash32, key_hash: &Hash32) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(&account.0);
    k[32..].copy_from_slice(&key_hash.0);
    k
}

/// Storage one table takes, as redb reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TableUsage {
    pub table: String,
    pub entries: u64,
    /// Keys and values as inserted.
    pub stored_bytes: u64,
    /// Branch pages' keys and other B-tree metadata.
    pub metadata_bytes: u64,
    /// Unused space inside the table's pages.
    pub fragmented_bytes: u64,
}

pub struct ChainStore {
    db: Database,
}

impl ChainStore {
    /// Open or create a store. A store of another layout is refused with a message saying so.
    pub fn open(path: &FsPath) -> Result<ChainStore, StoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        {
            let mut meta = tx.open_table(META).map_err(db_err)?;
            let format = meta.get("format").map_err(db_err)?.map(|v| v.value().to_vec());
            match format {
                Some(f) if f == FORMAT.as_bytes() => {}
                Some(f) => {
                    return Err(StoreError::Format(format!(
                        "{}: chain store format {:?}, this node reads {FORMAT}",
                        path.display(),
                        String::from_utf8_lossy(&f)
                    )));
                }
                None if meta.get("head").map_err(db_err)?.is_some() => {
                    return Err(StoreError::Format(format!(
                        "{}: a chain store of the first format (before {FORMAT}); this node cannot read it: \
                         start the channel from an empty directory (its blocks can be imported again with POST /v1/blocks)",
                        path.display()
                    )));
                }
                None => {
                    meta.insert("format", FORMAT.as_bytes()).map_err(db_err)?;
                }
            }
            drop(meta);
            tx.open_table(HEADERS).map_err(db_err)?;
            tx.open_table(BLOCK_HASHES).map_err(db_err)?;
            tx.open_table(TXS).map_err(db_err)?;
            tx.open_table(TX_INDEX).map_err(db_err)?;
            tx.open_table(EVENTS).map_err(db_err)?;
            tx.open_table(CONTRACTS).map_err(db_err)?;
            tx.open_table(CONTRACT_NUMBERS).map_err(db_err)?;
            tx.open_table(NODES).map_err(db_err)?;
            tx.open_table(STALE).map_err(db_err)?;
            tx.open_table(UNDO).map_err(db_err)?;
            tx.open_table(STORAGE_KEYS).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(ChainStore { db })
    }

    /// Whether `storage_keys` holds the keys of every block (a store written before the
    /// table existed lacks them until [`ChainStore::backfill_storage_keys`]).
    pub fn storage_keys_complete(&self) -> Result<bool, StoreError> {
        Ok(self.meta(STORAGE_KEYS_COMPLETE)?.is_some())
    }

    /// Fill `storage_keys` from the blocks: `keys(transaction)` names the keys each
    /// committed transaction wrote, `fixed` the keys written outside transactions. Then
    /// mark it complete. Runs once, for a store written before the table existed.
    pub fn backfill_storage_keys(&self, fixed: &[StorageKey], keys: impl Fn(&Transaction) -> Result<Vec<StorageKey>, StoreError>) -> Result<u64, StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let mut n = 0u64;
        {
            let rows = tx.open_table(TXS).map_err(db_err)?;
            let mut table = tx.open_table(STORAGE_KEYS).map_err(db_err)?;
            for (account, key_hash, key) in fixed {
                table.insert(&storage_key_row(account, key_hash), key.as_slice()).map_err(db_err)?;
            }
            for row in rows.iter().map_err(db_err)? {
                let (k, v) = row.map_err(db_err)?;
                let at = TxLocation::from_key(k.value()).ok_or_else(|| corrupt("transaction row key"))?;
                for (account, key_hash, key) in keys(&Row::parse(at, v.value())?.transaction()?)? {
                    table.insert(&storage_key_row(&account, &key_hash), key.as_slice()).map_err(db_err)?;
                    n += 1;
                }
            }
            tx.open_table(META).map_err(db_err)?.insert(STORAGE_KEYS_COMPLETE, [1u8].as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(n)
    }

    /// Keep the state of the last `blocks` blocks only (`None`: every block's, the default),
    /// recorded in the store. From then on each commit lists the nodes its block replaced and deletes those no kept
    /// state needs; state older than [`StoreView::state_from`] is not served. Nodes replaced
    /// while the store kept everything are not listed, so they stay.
    pub fn set_state_history(&self, blocks: Option<u64>) -> Result<(), StoreError> {
        self.set_meta(STATE_HISTORY, &blocks.unwrap_or(0).to_le_bytes())
    }

    pub fn read(&self) -> Result<StoreView, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let nodes = tx.open_table(NODES).map_err(db_err)?;
        Ok(StoreView { tx, nodes })
    }

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read()?.meta(key)
    }

    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(META).map_err(db_err)?.insert(key, value).map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// Give the pages redb freed back to the file system (redb compaction: live pages move
    /// down, the file is truncated). Needs the database alone: [`StoreError::Busy`] while a
    /// read or write is open. Returns whether anything moved.
    pub fn compact(&mut self) -> Result<bool, StoreError> {
        let mut any = false;
        loop {
            match self.db.compact() {
                Ok(true) => any = true,
                Ok(false) => return Ok(any),
                Err(redb::CompactionError::TransactionInProgress) => return Err(StoreError::Busy("a read or write is open".into())),
                Err(e) => return Err(db_err(e)),
            }
        }
    }

    /// The contents of the tables a reorganisation rewrites, and the meta values it
    /// restores: equal for two stores that hold the same chain, however they got there.
    #[cfg(test)]
    pub(crate) fn chain_tables(&self) -> Result<Vec<TableRow>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let mut out = vec![];
        macro_rules! dump {
            ($def:expr, $k:expr, $v:expr) => {{
                let t = tx.open_table($def).map_err(db_err)?;
                for r in t.iter().map_err(db_err)? {
                    let (k, v) = r.map_err(db_err)?;
                    out.push((redb::TableHandle::name(&$def).to_string(), $k(k.value()), $v(v.value())));
                }
            }};
        }
        let bytes = |b: &[u8]| b.to_vec();
        dump!(HEADERS, |k: u64| k.to_be_bytes().to_vec(), bytes);
        dump!(BLOCK_HASHES, |k: &[u8; 32]| k.to_vec(), |v: u64| v.to_be_bytes().to_vec());
        dump!(TXS, |k: &[u8; 12]| k.to_vec(), bytes);
        dump!(TX_INDEX, |k: &[u8; 8]| k.to_vec(), bytes);
        dump!(EVENTS, |k: &[u8; 20]| k.to_vec(), bytes);
        dump!(CONTRACTS, |k: u32| k.to_be_bytes().to_vec(), |v: &[u8; 32]| v.to_vec());
        dump!(CONTRACT_NUMBERS, |k: &[u8; 32]| k.to_vec(), |v: u32| v.to_be_bytes().to_vec());
        dump!(NODES, bytes, bytes);
        dump!(STALE, bytes, |_: ()| vec![]);
        if let Ok(t) = tx.open_table(CONTRACT_KV) {
            for r in t.iter().map_err(db_err)? {
                let (k, v) = r.map_err(db_err)?;
                out.push(("contract_kv".into(), k.value().to_vec(), v.value().to_vec()));
            }
        }
        let meta = tx.open_table(META).map_err(db_err)?;
        for key in ["head", "next_tree", "state_from"] {
            if let Some(v) = meta.get(key).map_err(db_err)? {
                out.push(("meta".into(), key.as_bytes().to_vec(), v.value().to_vec()));
            }
        }
        Ok(out)
    }

    /// What each table takes (for measurements: `joule bench tps`, the storage tests).
    pub fn usage(&self) -> Result<Vec<TableUsage>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let mut out = vec![];
        macro_rules! usage {
            ($($def:expr),*) => {$({
                let t = tx.open_table($def).map_err(db_err)?;
                let s = t.stats().map_err(db_err)?;
                out.push(TableUsage {
                    table: redb::TableHandle::name(&$def).to_string(),
                    entries: t.len().map_err(db_err)?,
                    stored_bytes: s.stored_bytes(),
                    metadata_bytes: s.metadata_bytes(),
                    fragmented_bytes: s.fragmented_bytes(),
                });
            })*};
        }
        usage!(META, HEADERS, BLOCK_HASHES, TXS, TX_INDEX, EVENTS, CONTRACTS, CONTRACT_NUMBERS, NODES, STALE, UNDO);
        Ok(out)
    }

    /// Append a block with everything it produced, atomically. The block must be the
    /// successor of the current head.
    pub fn commit(&self, c: BlockCommit<'_>) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        write_block(&tx, &c)?;
        tx.commit().map_err(db_err)
    }

    /// Replace the blocks above `ancestor` with `blocks` (its successors, in order), in one
    /// write transaction: after a crash the store holds the old chain or the new one. Each
    /// block above `ancestor` is undone from its undo record (see [`UNDO_BLOCKS`]); its
    /// state must still be kept (`ancestor` ≥ [`StoreView::state_from`]).
    pub fn reorganise(&self, ancestor: u64, blocks: &[BlockCommit<'_>]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let head = {
            let meta = tx.open_table(META).map_err(db_err)?;
            let head = meta_head(&meta)?.ok_or_else(|| StoreError::Db("an empty store has nothing to reorganise".into()))?;
            let state_from = meta_u64_in(&meta, "state_from")?.unwrap_or(0);
            if ancestor > head || ancestor < state_from {
                return Err(StoreError::Reorg(format!("the fork point {ancestor} is not between the oldest kept state {state_from} and the head {head}")));
            }
            head
        };
        for height in (ancestor + 1..=head).rev() {
            undo_block(&tx, height)?;
        }
        for c in blocks {
            write_block(&tx, c)?;
        }
        tx.commit().map_err(db_err)
    }
}

/// A row of a table, for comparing stores in tests: table, key, value.
#[cfg(test)]
pub(crate) type TableRow = (String, Vec<u8>, Vec<u8>);

/// Blocks whose undo records are kept: the deepest reorganisation the store can make.
pub const UNDO_BLOCKS: u64 = 1024;

/// What undoing a block needs that the store would otherwise lose (table `undo`).
#[derive(borsh::BorshSerialize, borsh::BorshDeserialize)]
struct UndoRecord {
    hash: [u8; 32],
    /// `next_tree` before the block.
    next_tree: u32,
    /// `contract_kv` rows the block wrote, with their values before it (`None`: absent).
    kv: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// `events` keys the block wrote.
    events: Vec<[u8; 20]>,
    /// Contract numbers the block gave (the highest, so undoing them in reverse order
    /// lets the next block give them again, as a store that never saw them would).
    contracts: Vec<u32>,
}

fn meta_head(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Option<u64>, StoreError> {
    match meta.get("head").map_err(db_err)? {
        Some(v) => Ok(Some(u64::from_le_bytes(v.value().get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| corrupt("head record"))?))),
        None => Ok(None),
    }
}

fn meta_u64_in(meta: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<Option<u64>, StoreError> {
    match meta.get(key).map_err(db_err)? {
        Some(v) => Ok(Some(u64::from_le_bytes(v.value().try_into().map_err(|_| corrupt(format!("meta {key}")))?))),
        None => Ok(None),
    }
}

/// Append one block in `tx`: everything it produced, its undo record, and the new head.
fn write_block(tx: &redb::WriteTransaction, c: &BlockCommit<'_>) -> Result<(), StoreError> {
    let height = c.block.header.height;
    let n = c.block.transactions.len();
    if c.tx_hashes.len() != n || c.receipts.len() != n {
        return Err(StoreError::Db(format!("block {height}: {n} transactions, {} hashes, {} receipts", c.tx_hashes.len(), c.receipts.len())));
    }
    let mut meta = tx.open_table(META).map_err(db_err)?;
    let history = meta_u64_in(&meta, STATE_HISTORY)?.unwrap_or(0);
    let head = meta_head(&meta)?;
    if head.map_or(height != 0, |h| height != h + 1) {
        return Err(StoreError::NotNext { height, head });
    }
    let mut record = UndoRecord {
        hash: c.hash.0,
        next_tree: match meta.get("next_tree").map_err(db_err)? {
            Some(v) => u32::from_le_bytes(v.value().try_into().map_err(|_| corrupt("meta next_tree"))?),
            None => 1,
        },
        kv: Vec::with_capacity(c.contract_kv.len()),
        events: vec![],
        contracts: vec![],
    };
    // Receipts and the events index name a contract by its number, given once.
    let mut contract_index: BTreeMap<Hash32, u32> = BTreeMap::new();
    {
        let mut numbers = tx.open_table(CONTRACT_NUMBERS).map_err(db_err)?;
        let mut contracts = tx.open_table(CONTRACTS).map_err(db_err)?;
        let mut next = match contracts.last().map_err(db_err)? {
            Some((n, _)) => n.value().checked_add(1).ok_or_else(|| StoreError::Db("every contract number is used".into()))?,
            None => 0,
        };
        for e in c.receipts.iter().flat_map(|r| &r.events) {
            if contract_index.contains_key(&e.contract) {
                continue;
            }
            let known = numbers.get(&e.contract.0).map_err(db_err)?.map(|v| v.value());
            let n = match known {
                Some(n) => n,
                None => {
                    let n = next;
                    next = next.checked_add(1).ok_or_else(|| StoreError::Db("every contract number is used".into()))?;
                    record.contracts.push(n);
                    numbers.insert(&e.contract.0, n).map_err(db_err)?;
                    contracts.insert(n, &e.contract.0).map_err(db_err)?;
                    n
                }
            };
            contract_index.insert(e.contract, n);
        }
    }
    tx.open_table(HEADERS).map_err(db_err)?.insert(height, c.block.header.encode().as_slice()).map_err(db_err)?;
    tx.open_table(BLOCK_HASHES).map_err(db_err)?.insert(&c.hash.0, height).map_err(db_err)?;
    let mut rows = tx.open_table(TXS).map_err(db_err)?;
    let mut by_prefix: BTreeMap<[u8; 8], Vec<u8>> = BTreeMap::new();
    for (i, ((t, hash), receipt)) in c.block.transactions.iter().zip(c.tx_hashes).zip(c.receipts).enumerate() {
        let loc = TxLocation { height, index: u32::try_from(i).map_err(db_err)? };
        rows.insert(&loc.key(), tx_row(hash, receipt, &contract_index, t).as_slice()).map_err(db_err)?;
        let entry = by_prefix.entry(prefix8(hash)).or_default();
        put_varint(entry, height);
        put_varint(entry, u64::from(loc.index));
    }
    drop(rows);
    let mut index = tx.open_table(TX_INDEX).map_err(db_err)?;
    for (prefix, mut locations) in by_prefix {
        if let Some(earlier) = index.get(&prefix).map_err(db_err)? {
            let mut all = earlier.value().to_vec();
            all.append(&mut locations);
            locations = all;
        }
        index.insert(&prefix, locations.as_slice()).map_err(db_err)?;
    }
    drop(index);
    let mut grouped: BTreeMap<[u8; 20], BTreeSet<u32>> = BTreeMap::new();
    for e in c.events {
        let n = *contract_index.get(&e.contract).ok_or_else(|| StoreError::Db(format!("an indexed event of {} is in no receipt", e.contract)))?;
        grouped.entry(event_key(n, &e.topic, height)).or_default().insert(e.index);
    }
    let mut events = tx.open_table(EVENTS).map_err(db_err)?;
    for (key, indexes) in grouped {
        let mut v = vec![];
        let mut last = 0u64;
        for (n, i) in indexes.into_iter().enumerate() {
            let i = u64::from(i);
            put_varint(&mut v, if n == 0 { i } else { i - last });
            last = i;
        }
        events.insert(&key, v.as_slice()).map_err(db_err)?;
        record.events.push(key);
    }
    drop(events);
    let mut nodes = tx.open_table(NODES).map_err(db_err)?;
    if let Some(at) = c.nodes.keys().find(|at| at.version != height) {
        return Err(StoreError::Db(format!("block {height} writes a state node at version {}", at.version)));
    }
    write_pages(&mut nodes, c.nodes)?;
    if history > 0 {
        let mut stale = tx.open_table(STALE).map_err(db_err)?;
        for at in c.stale {
            stale.insert(stale_key(height, at).as_slice(), ()).map_err(db_err)?;
        }
        // Nodes replaced at `since` belong to states up to since - 1: delete those
        // no kept state (kept_from..=height) needs.
        let kept_from = (height + 1).saturating_sub(history);
        let end = (kept_from + 1).to_be_bytes();
        let doomed = stale
            .range::<&[u8]>(..end.as_slice())
            .map_err(db_err)?
            .map(|r| r.map(|(k, _)| k.value().to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        let mut gone = Vec::with_capacity(doomed.len());
        for k in doomed {
            gone.push(stale_node(&k).ok_or_else(|| corrupt("stale node key"))?);
            stale.remove(k.as_slice()).map_err(db_err)?;
        }
        delete_nodes(&mut nodes, &gone)?;
        // After a reorganisation the new chain is lower: what was pruned stays pruned.
        let kept_from = kept_from.max(meta_u64_in(&meta, "state_from")?.unwrap_or(0));
        meta.insert("state_from", kept_from.to_le_bytes().as_slice()).map_err(db_err)?;
    }
    if !c.codes.is_empty() {
        let mut codes = tx.open_table(CODES).map_err(db_err)?;
        for (hash, code) in c.codes {
            codes.insert(&hash.0, &code[..]).map_err(db_err)?;
        }
    }
    if !c.contract_kv.is_empty() {
        let mut kv = tx.open_table(CONTRACT_KV).map_err(db_err)?;
        for (contract, key, value) in c.contract_kv {
            let k = kv_key(contract, key);
            let before = kv.get(k.as_slice()).map_err(db_err)?.map(|v| v.value().to_vec());
            record.kv.push((k.clone(), before));
            match value {
                Some(v) => kv.insert(k.as_slice(), v.as_slice()).map_err(db_err)?,
                None => kv.remove(k.as_slice()).map_err(db_err)?,
            };
        }
    }
    if !c.storage_keys.is_empty() {
        let mut table = tx.open_table(STORAGE_KEYS).map_err(db_err)?;
        for (account, key_hash, key) in c.storage_keys {
            table.insert(&storage_key_row(account, key_hash), key.as_slice()).map_err(db_err)?;
        }
    }
    if height == 0 {
        // A store that starts here records every key from the first block on.
        meta.insert(STORAGE_KEYS_COMPLETE, [1u8].as_slice()).map_err(db_err)?;
    }
    meta.insert("next_tree", c.next_tree.to_le_bytes().as_slice()).map_err(db_err)?;
    let mut head_value = height.to_le_bytes().to_vec();
    head_value.extend(c.hash.0);
    meta.insert("head", head_value.as_slice()).map_err(db_err)?;
    drop(meta);
    let mut undo = tx.open_table(UNDO).map_err(db_err)?;
    undo.insert(height, borsh::to_vec(&record).map_err(db_err)?.as_slice()).map_err(db_err)?;
    if let Some(old) = height.checked_sub(UNDO_BLOCKS) {
        undo.retain_in(..=old, |_, _| false).map_err(db_err)?;
    }
    Ok(())
}

/// Take the head block `height` off in `tx`, from its undo record: the parent becomes the
/// head, with the `contract_kv` rows and `next_tree` it had.
fn undo_block(tx: &redb::WriteTransaction, height: u64) -> Result<(), StoreError> {
    let record = {
        let mut undo = tx.open_table(UNDO).map_err(db_err)?;
        let bytes = undo.remove(height).map_err(db_err)?.map(|v| v.value().to_vec());
        let bytes = bytes.ok_or_else(|| StoreError::Reorg(format!("block {height} has no undo record (older than the last {UNDO_BLOCKS} blocks)")))?;
        borsh::from_slice::<UndoRecord>(&bytes).map_err(|e| corrupt(format!("undo record {height}: {e}")))?
    };
    let header = {
        let mut headers = tx.open_table(HEADERS).map_err(db_err)?;
        let v = headers.remove(height).map_err(db_err)?.map(|v| v.value().to_vec());
        let v = v.ok_or_else(|| corrupt(format!("header {height} missing")))?;
        BlockHeader::decode(&v).map_err(|e| corrupt(format!("header {height}: {e}")))?
    };
    tx.open_table(BLOCK_HASHES).map_err(db_err)?.remove(&record.hash).map_err(db_err)?;
    // Rows, and their index entries (a block's are the last of each list).
    let from = TxLocation { height, index: 0 }.key();
    let to = TxLocation { height: height + 1, index: 0 }.key();
    let mut prefixes = BTreeSet::new();
    {
        let mut rows = tx.open_table(TXS).map_err(db_err)?;
        let doomed = rows
            .range::<&[u8; 12]>(&from..&to)
            .map_err(db_err)?
            .map(|r| r.map(|(k, v)| (*k.value(), v.value().get(..8).and_then(|p| <[u8; 8]>::try_from(p).ok()))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        for (k, prefix) in doomed {
            prefixes.insert(prefix.ok_or_else(|| corrupt("transaction row"))?);
            rows.remove(&k).map_err(db_err)?;
        }
    }
    let mut index = tx.open_table(TX_INDEX).map_err(db_err)?;
    for prefix in prefixes {
        let Some(list) = index.get(&prefix).map_err(db_err)?.map(|v| v.value().to_vec()) else { continue };
        let mut kept = vec![];
        let mut r = Reader::new(&list);
        while !r.end() {
            let (h, i) = (r.varint().ok_or_else(|| corrupt("tx index"))?, r.varint().ok_or_else(|| corrupt("tx index"))?);
            if h != height {
                put_varint(&mut kept, h);
                put_varint(&mut kept, i);
            }
        }
        if kept.is_empty() {
            index.remove(&prefix).map_err(db_err)?;
        } else {
            index.insert(&prefix, kept.as_slice()).map_err(db_err)?;
        }
    }
    drop(index);
    let mut events = tx.open_table(EVENTS).map_err(db_err)?;
    for k in &record.events {
        events.remove(k).map_err(db_err)?;
    }
    drop(events);
    let (mut contracts, mut numbers) = (tx.open_table(CONTRACTS).map_err(db_err)?, tx.open_table(CONTRACT_NUMBERS).map_err(db_err)?);
    for n in &record.contracts {
        if let Some(id) = contracts.remove(*n).map_err(db_err)?.map(|v| *v.value()) {
            numbers.remove(&id).map_err(db_err)?;
        }
    }
    drop((contracts, numbers));
    // State pages of version `height`, and the stale entries since `height`.
    let (lo, hi) = (height.to_be_bytes(), (height + 1).to_be_bytes());
    tx.open_table(NODES).map_err(db_err)?.retain_in::<&[u8], _>(lo.as_slice()..hi.as_slice(), |_, _| false).map_err(db_err)?;
    tx.open_table(STALE).map_err(db_err)?.retain_in::<&[u8], _>(lo.as_slice()..hi.as_slice(), |_, _| false).map_err(db_err)?;
    if !record.kv.is_empty() {
        let mut kv = tx.open_table(CONTRACT_KV).map_err(db_err)?;
        for (k, before) in &record.kv {
            match before {
                Some(v) => kv.insert(k.as_slice(), v.as_slice()).map_err(db_err)?,
                None => kv.remove(k.as_slice()).map_err(db_err)?,
            };
        }
    }
    let mut meta = tx.open_table(META).map_err(db_err)?;
    meta.insert("next_tree", record.next_tree.to_le_bytes().as_slice()).map_err(db_err)?;
    let parent = height.checked_sub(1).ok_or_else(|| StoreError::Reorg("the genesis block cannot be undone".into()))?;
    let mut head_value = parent.to_le_bytes().to_vec();
    head_value.extend(header.parent_hash.0);
    meta.insert("head", head_value.as_slice()).map_err(db_err)?;
    Ok(())
}

fn prefix8(h: &Hash32) -> [u8; 8] {
    let mut p = [0u8; 8];
    p.copy_from_slice(&h.0[..8]);
    p
}

/// `contract_kv` key: contract id ‖ key.
fn kv_key(contract: &Hash32, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + key.len());
    k.extend_from_slice(&contract.0);
    k.extend_from_slice(key);
    k
}

/// `events` key: contract number (u32 BE) ‖ topic hash[..8] ‖ height (u64 BE).
fn event_key(contract: u32, topic: &Hash32, height: u64) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&contract.to_be_bytes());
    k[4..12].copy_from_slice(&topic.0[..8]);
    k[12..].copy_from_slice(&height.to_be_bytes());
    k
}

/// `txs` value: tx hash ‖ LEB128 length ‖ compact receipt ‖ transaction encoding.
fn tx_row(hash: &Hash32, receipt: &Receipt, contracts: &BTreeMap<Hash32, u32>, t: &Transaction) -> Vec<u8> {
    let mut r = vec![];
    match &receipt.status {
        ReceiptStatus::Success => r.push(0),
        ReceiptStatus::Reverted(reason) => {
            r.push(1);
            put_varint(&mut r, reason.len() as u64);
            r.extend(reason.as_bytes());
        }
        ReceiptStatus::OutOfGas => r.push(2),
    }
    put_varint(&mut r, receipt.gas_used);
    put_varint(&mut r, receipt.output.len() as u64);
    r.extend(&receipt.output);
    put_varint(&mut r, receipt.events.len() as u64);
    for e in &receipt.events {
        put_varint(&mut r, u64::from(contracts.get(&e.contract).copied().unwrap_or_default()));
        put_varint(&mut r, e.topic.len() as u64);
        r.extend(e.topic.as_bytes());
        put_varint(&mut r, e.indexed.len() as u64);
        for t in &e.indexed {
            put_varint(&mut r, t.len() as u64);
            r.extend(t);
        }
        match &t.body.payload {
            // A data record's event carries its key, which the transaction holds already.
            Payload::Data { key, .. } if key.as_bytes() == e.data.as_slice() => r.push(0),
            _ => {
                put_varint(&mut r, e.data.len() as u64 + 1);
                r.extend(&e.data);
            }
        }
    }
    let enc = t.encode();
    let mut v = Vec::with_capacity(32 + 3 + r.len() + enc.len());
    v.extend(hash.0);
    put_varint(&mut v, r.len() as u64);
    v.extend(r);
    v.extend(enc);
    v
}

/// Nodes are stored in pages: the nodes one version writes in a window of four levels of
/// one tree, under one key. A window starts at a depth that is a multiple of four; the
/// nodes of its four levels have positions 1..=15 (heap order: the window's root 1, its
/// children 2 and 3, …), so a page names each node in one byte instead of a key of its own.
const WINDOW: usize = 4;

/// `nodes` key of the page holding the node `at`: version (u64 BE) ‖ tree (u32 BE) ‖ the
/// window's depth (u8) ‖ the window root's path bits, ceil(depth / 8) bytes.
fn page_key(at: &NodeKey) -> (Vec<u8>, u8) {
    let d = at.path.depth();
    let window = d - d % WINDOW;
    let bytes = at.path.bytes();
    let mut k = Vec::with_capacity(13 + window.div_ceil(8));
    k.extend(at.version.to_be_bytes());
    k.extend(at.tree.to_be_bytes());
    k.push(window as u8);
    let mut root = bytes[..window.div_ceil(8)].to_vec();
    if !window.is_multiple_of(8)
        && let Some(last) = root.last_mut()
    {
        *last &= 0xff << (8 - window % 8);
    }
    k.extend(root);
    // Position in the window: the bits below the window's root, after a leading 1.
    let mut pos = 1u8;
    for i in window..d {
        pos = pos << 1 | (bytes[i / 8] >> (7 - i % 8) & 1);
    }
    (k, pos)
}

/// `stale` key: since (u64 BE) ‖ version (u64 BE) ‖ tree (u32 BE) ‖ depth (u8) ‖ path bits.
fn stale_key(since: u64, at: &NodeKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(29 + at.path.bytes().len());
    k.extend(since.to_be_bytes());
    k.extend(at.version.to_be_bytes());
    k.extend(at.tree.to_be_bytes());
    k.push(at.path.depth() as u8);
    k.extend(at.path.bytes());
    k
}

fn stale_node(k: &[u8]) -> Option<NodeKey> {
    let version = u64::from_be_bytes(k.get(8..16)?.try_into().ok()?);
    let tree = u32::from_be_bytes(k.get(16..20)?.try_into().ok()?);
    Some(NodeKey { version, tree, path: Path::from_bytes(*k.get(20)?, k.get(21..)?)? })
}

/// One node of a page: position << 1 | kind, then an internal node's hash ‖ left ‖ right
/// (each child LEB128: 0 empty, else 1 + this version − the child's), or a leaf's key ‖
/// value hash ‖ LEB128 length ‖ data.
fn put_node(page: &mut Vec<u8>, pos: u8, version: u64, node: &Node) -> Result<(), StoreError> {
    match node {
        Node::Internal { hash, left, right } => {
            page.push(pos << 1);
            page.extend(hash.0);
            for child in [left, right] {
                match child {
                    None => page.push(0),
                    Some(c) => put_varint(page, version.checked_sub(*c).ok_or_else(|| StoreError::Db(format!("a child at version {c} under {version}")))? + 1),
                }
            }
        }
        Node::Leaf(l) => {
            page.push(pos << 1 | 1);
            page.extend(l.key.0);
            page.extend(l.value.0);
            put_varint(page, l.data.len() as u64);
            page.extend(&l.data);
        }
    }
    Ok(())
}

/// The entries of a page: position and the bytes of the node (as [`put_node`] wrote them).
fn page_entries(page: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = vec![];
    scan_page(page, |pos, entry| {
        out.push((pos, entry));
        false
    })?;
    Some(out)
}

/// The bytes of the node at `pos` in a page, if it is there; `None` if the page is corrupt.
fn page_find(page: &[u8], pos: u8) -> Option<Option<&[u8]>> {
    let mut found = None;
    scan_page(page, |p, entry| {
        if p == pos {
            found = Some(entry);
        }
        p >= pos
    })?;
    Some(found)
}

/// Walk a page's entries in order until `f` says stop; `None` if the page is corrupt.
fn scan_page<'p>(page: &'p [u8], mut f: impl FnMut(u8, &'p [u8]) -> bool) -> Option<()> {
    let mut r = Reader::new(page);
    while !r.end() {
        let start = r.rest_len();
        let head = r.byte()?;
        if head & 1 == 0 {
            r.take(32)?;
            r.varint()?;
            r.varint()?;
        } else {
            r.take(64)?;
            let n = usize::try_from(r.varint()?).ok()?;
            r.take(n)?;
        }
        let len = start - r.rest_len();
        let at = page.len() - start;
        if f(head >> 1, &page[at..at + len]) {
            break;
        }
    }
    Some(())
}

fn decode_node(version: u64, entry: &[u8]) -> Option<Node> {
    let mut r = Reader::new(entry);
    let head = r.byte()?;
    if head & 1 == 0 {
        let hash = Hash32::from_slice(r.take(32)?)?;
        let mut child = || -> Option<Option<u64>> {
            match r.varint()? {
                0 => Some(None),
                d => Some(Some(version.checked_sub(d - 1)?)),
            }
        };
        let (left, right) = (child()?, child()?);
        Some(Node::Internal { hash, left, right })
    } else {
        let key = Hash32::from_slice(r.take(32)?)?;
        let value = Hash32::from_slice(r.take(32)?)?;
        let n = usize::try_from(r.varint()?).ok()?;
        Some(Node::Leaf(Leaf { key, value, data: r.take(n)?.to_vec() }))
    }
}

/// Write the nodes of one version, page by page.
fn write_pages(nodes: &mut redb::Table<&[u8], &[u8]>, written: &BTreeMap<NodeKey, Node>) -> Result<(), StoreError> {
    let mut pages: BTreeMap<Vec<u8>, Vec<(u8, &NodeKey, &Node)>> = BTreeMap::new();
    for (at, node) in written {
        let (key, pos) = page_key(at);
        pages.entry(key).or_default().push((pos, at, node));
    }
    for (key, mut entries) in pages {
        entries.sort_by_key(|(pos, _, _)| *pos);
        let mut page = vec![];
        for (pos, at, node) in entries {
            put_node(&mut page, pos, at.version, node)?;
        }
        nodes.insert(key.as_slice(), page.as_slice()).map_err(db_err)?;
    }
    Ok(())
}

/// Delete nodes from their pages (a page goes when its last node does).
fn delete_nodes(nodes: &mut redb::Table<&[u8], &[u8]>, doomed: &[NodeKey]) -> Result<(), StoreError> {
    let mut by_page: BTreeMap<Vec<u8>, BTreeSet<u8>> = BTreeMap::new();
    for at in doomed {
        let (key, pos) = page_key(at);
        by_page.entry(key).or_default().insert(pos);
    }
    for (key, gone) in by_page {
        let Some(page) = nodes.get(key.as_slice()).map_err(db_err)?.map(|v| v.value().to_vec()) else { continue };
        let entries = page_entries(&page).ok_or_else(|| corrupt("state page"))?;
        let kept: Vec<u8> = entries.iter().filter(|(pos, _)| !gone.contains(pos)).flat_map(|(_, e)| e.iter().copied()).collect();
        if kept.is_empty() {
            nodes.remove(key.as_slice()).map_err(db_err)?;
        } else {
            nodes.insert(key.as_slice(), kept.as_slice()).map_err(db_err)?;
        }
    }
    Ok(())
}

/// A consistent snapshot of the store (a redb read transaction).
pub struct StoreView {
    tx: ReadTransaction,
    /// Opened once: execution reads many nodes per block.
    nodes: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl StoreView {
    /// Deployed code by its hash.
    pub fn code(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        let t = match self.tx.open_table(CODES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(e)),
        };
        Ok(t.get(&hash.0).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    fn kv_table(&self) -> Result<Option<KvTable>, StoreError> {
        match self.tx.open_table(CONTRACT_KV) {
            Ok(t) => Ok(Some(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(db_err(e)),
        }
    }

    /// A contract's storage value at the head.
    pub fn contract_value(&self, contract: &Hash32, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(t) = self.kv_table()? else { return Ok(None) };
        Ok(t.get(kv_key(contract, key).as_slice()).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    /// Up to `limit` of a contract's entries at the head whose keys start with `prefix`,
    /// ascending, after `after` when given.
    pub fn contract_scan(&self, contract: &Hash32, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<joule_contract::Entries, StoreError> {
        let Some(t) = self.kv_table()? else { return Ok(vec![]) };
        let start = kv_key(contract, prefix);
        let mut out = vec![];
        for item in t.range::<&[u8]>(start.as_slice()..).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let k = k.value();
            let Some(key) = k.strip_prefix(&contract.0[..]) else { break };
            if !key.starts_with(prefix) {
                break;
            }
            if after.is_some_and(|a| key <= a) {
                continue;
            }
            out.push((key.to_vec(), v.value().to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.tx.open_table(META).map_err(db_err)?;
        Ok(t.get(key).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    fn meta_u64(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.meta(key)? {
            Some(v) => Ok(Some(u64::from_le_bytes(v.as_slice().try_into().map_err(|_| corrupt(format!("meta {key}")))?))),
            None => Ok(None),
        }
    }

    /// `(height, hash)` of the last committed block.
    pub fn head(&self) -> Result<Option<(u64, Hash32)>, StoreError> {
        let Some(v) = self.meta("head")? else { return Ok(None) };
        if v.len() != 40 {
            return Err(corrupt("head record"));
        }
        let height = u64::from_le_bytes(v[..8].try_into().map_err(|_| corrupt("head"))?);
        Ok(Some((height, Hash32::from_slice(&v[8..]).ok_or_else(|| corrupt("head hash"))?)))
    }

    /// `contract_kv` as it was after block `height`, where it differs from the head's: the
    /// rows the blocks above `height` wrote, with their values then (`None`: absent). From
    /// the undo records, so `height` must be within the last [`UNDO_BLOCKS`] blocks.
    pub fn kv_after(&self, height: u64) -> Result<BTreeMap<Vec<u8>, Option<Vec<u8>>>, StoreError> {
        let mut out = BTreeMap::new();
        // Deepest last: the value before the lowest block that wrote a row wins.
        for (_, r) in self.undo_records(height + 1)?.into_iter().rev() {
            for (k, before) in r.kv {
                out.insert(k, before);
            }
        }
        Ok(out)
    }

    /// `next_tree` as it was after block `height` (below the head: from the undo records).
    pub fn next_tree_after(&self, height: u64) -> Result<TreeId, StoreError> {
        match self.undo_records(height + 1)?.into_iter().next() {
            Some((_, r)) => Ok(r.next_tree),
            None => self.next_tree(),
        }
    }

    /// The undo records of blocks `from` to the head, ascending; an error if one is missing.
    fn undo_records(&self, from: u64) -> Result<Vec<(u64, UndoRecord)>, StoreError> {
        let Some((head, _)) = self.head()? else { return Ok(vec![]) };
        if from > head {
            return Ok(vec![]);
        }
        let t = self.tx.open_table(UNDO).map_err(db_err)?;
        let mut out = Vec::new();
        for h in from..=head {
            let v = t
                .get(h)
                .map_err(db_err)?
                .ok_or_else(|| StoreError::Reorg(format!("block {h} has no undo record (older than the last {UNDO_BLOCKS} blocks)")))?;
            out.push((h, borsh::from_slice::<UndoRecord>(v.value()).map_err(|e| corrupt(format!("undo record {h}: {e}")))?));
        }
        Ok(out)
    }

    /// The oldest height whose state is kept (0 unless the store prunes).
    pub fn state_from(&self) -> Result<u64, StoreError> {
        Ok(self.meta_u64("state_from")?.unwrap_or(0))
    }

    /// The next unused storage tree number (tree 0 is the global state tree).
    pub fn next_tree(&self) -> Result<TreeId, StoreError> {
        match self.meta("next_tree")? {
            Some(v) => Ok(u32::from_le_bytes(v.as_slice().try_into().map_err(|_| corrupt("meta next_tree"))?)),
            None => Ok(1),
        }
    }

    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        let t = self.tx.open_table(HEADERS).map_err(db_err)?;
        let Some(v) = t.get(height).map_err(db_err)? else { return Ok(None) };
        Ok(Some(BlockHeader::decode(v.value()).map_err(|e| corrupt(format!("header {height}: {e}")))?))
    }

    /// Contract ids by the numbers receipts use.
    fn contracts(&self) -> Result<Contracts, StoreError> {
        Ok(Contracts { table: self.tx.open_table(CONTRACTS).map_err(db_err)?, seen: BTreeMap::new() })
    }

    /// `f` over the rows of a block, in order.
    fn map_rows<T>(&self, height: u64, mut f: impl FnMut(&Row) -> Result<T, StoreError>) -> Result<Vec<T>, StoreError> {
        let t = self.tx.open_table(TXS).map_err(db_err)?;
        let (from, to) = (TxLocation { height, index: 0 }.key(), TxLocation { height, index: u32::MAX }.key());
        let mut out = vec![];
        for row in t.range::<&[u8; 12]>(&from..=&to).map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let loc = TxLocation::from_key(k.value()).ok_or_else(|| corrupt("transaction key"))?;
            if loc.index as usize != out.len() {
                return Err(corrupt(format!("block {height}: transaction {} missing", out.len())));
            }
            out.push(f(&Row::parse(loc, v.value())?)?);
        }
        Ok(out)
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let Some(header) = self.header(height)? else { return Ok(None) };
        let transactions = self.map_rows(height, |r| r.transaction())?;
        Ok(Some(Block { header, transactions }))
    }

    pub fn height_of(&self, hash: &Hash32) -> Result<Option<u64>, StoreError> {
        let t = self.tx.open_table(BLOCK_HASHES).map_err(db_err)?;
        Ok(t.get(&hash.0).map_err(db_err)?.map(|v| v.value()))
    }

    pub fn tx_location(&self, hash: &Hash32) -> Result<Option<TxLocation>, StoreError> {
        let index = self.tx.open_table(TX_INDEX).map_err(db_err)?;
        let Some(v) = index.get(&prefix8(hash)).map_err(db_err)? else { return Ok(None) };
        let rows = self.tx.open_table(TXS).map_err(db_err)?;
        let mut r = Reader::new(v.value());
        while !r.end() {
            let height = r.varint().ok_or_else(|| corrupt("transaction index"))?;
            let index = r.varint().and_then(|i| u32::try_from(i).ok()).ok_or_else(|| corrupt("transaction index"))?;
            let at = TxLocation { height, index };
            // A prefix may be shared: the row holds the full hash.
            if let Some(row) = rows.get(&at.key()).map_err(db_err)?
                && row.value().get(..32) == Some(&hash.0[..])
            {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// A transaction and its receipt, by where it landed.
    pub fn tx(&self, at: TxLocation) -> Result<Option<(Transaction, Receipt)>, StoreError> {
        let t = self.tx.open_table(TXS).map_err(db_err)?;
        let Some(v) = t.get(&at.key()).map_err(db_err)? else { return Ok(None) };
        let row = Row::parse(at, v.value())?;
        Ok(Some((row.transaction()?, row.receipt(&mut self.contracts()?)?)))
    }

    /// The transaction hashes of a block, in order (stored with it, so serving a block
    /// needs no hashing).
    pub fn tx_hashes(&self, height: u64) -> Result<Option<Vec<Hash32>>, StoreError> {
        if self.header(height)?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.map_rows(height, |r| Ok(r.hash))?))
    }

    pub fn receipts(&self, height: u64) -> Result<Option<Vec<Receipt>>, StoreError> {
        if self.header(height)?.is_none() {
            return Ok(None);
        }
        let mut contracts = self.contracts()?;
        Ok(Some(self.map_rows(height, |r| r.receipt(&mut contracts))?))
    }

    /// Transactions that may have emitted events of `contract` (with `topic`'s hash, if
    /// given): oldest first within a topic, at most `limit`. The index keys on 8-byte
    /// prefixes, so a caller checks each receipt's events.
    pub fn event_locations(&self, contract: &Hash32, topic: Option<&Hash32>, limit: usize) -> Result<Vec<TxLocation>, StoreError> {
        self.event_locations_in(contract, topic, 0, u64::MAX, limit)
    }

    /// [`StoreView::event_locations`] of blocks `from..=to` only. Without a topic the
    /// locations come topic by topic: sort them if order across topics matters.
    pub fn event_locations_in(
        &self,
        contract: &Hash32,
        topic: Option<&Hash32>,
        from_height: u64,
        to_height: u64,
        limit: usize,
    ) -> Result<Vec<TxLocation>, StoreError> {
        let numbers = self.tx.open_table(CONTRACT_NUMBERS).map_err(db_err)?;
        let Some(n) = numbers.get(&contract.0).map_err(db_err)?.map(|v| v.value()) else { return Ok(vec![]) };
        let t = self.tx.open_table(EVENTS).map_err(db_err)?;
        let mut from = [0u8; 20];
        from[..4].copy_from_slice(&n.to_be_bytes());
        let mut to = [0xffu8; 20];
        to[..4].copy_from_slice(&n.to_be_bytes());
        if let Some(topic) = topic {
            from[4..12].copy_from_slice(&topic.0[..8]);
            to[4..12].copy_from_slice(&topic.0[..8]);
        }
        if topic.is_some() {
            from[12..].copy_from_slice(&from_height.to_be_bytes());
            to[12..].copy_from_slice(&to_height.to_be_bytes());
        }
        let mut out = vec![];
        for row in t.range::<&[u8; 20]>(&from..=&to).map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let height = u64::from_be_bytes(k.value()[12..].try_into().map_err(|_| corrupt("event key"))?);
            if height < from_height || height > to_height {
                continue;
            }
            let mut r = Reader::new(v.value());
            let mut index = 0u64;
            let mut first = true;
            while !r.end() {
                let d = r.varint().ok_or_else(|| corrupt("event index"))?;
                index = if first { d } else { index.checked_add(d).ok_or_else(|| corrupt("event index"))? };
                first = false;
                if out.len() == limit {
                    return Ok(out);
                }
                out.push(TxLocation { height, index: u32::try_from(index).map_err(|_| corrupt("event index"))? });
            }
        }
        Ok(out)
    }

    /// The key of a data record or governance value, by its account and key hash.
    pub fn storage_key(&self, account: &Hash32, key_hash: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.tx.open_table(STORAGE_KEYS).map_err(db_err)?;
        Ok(t.get(&storage_key_row(account, key_hash)).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    /// The keys `storage_keys` holds of `account`: key hash and key.
    pub fn storage_keys_of(&self, account: &Hash32) -> Result<Vec<(Hash32, Vec<u8>)>, StoreError> {
        let t = self.tx.open_table(STORAGE_KEYS).map_err(db_err)?;
        let (lo, hi) = (storage_key_row(account, &Hash32([0; 32])), storage_key_row(account, &Hash32([0xff; 32])));
        let mut out = vec![];
        for row in t.range::<&[u8; 64]>(&lo..=&hi).map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let hash = Hash32::from_slice(&k.value()[32..]).ok_or_else(|| corrupt("storage_keys row"))?;
            out.push((hash, v.value().to_vec()));
        }
        Ok(out)
    }

    /// The value a data record wrote, from the transaction that carries it.
    pub fn data_value(&self, at: TxLocation) -> Result<Vec<u8>, StoreError> {
        Ok(self.data_record(at)?.1)
    }

    /// The key and value of the data record a transaction wrote.
    pub fn data_record(&self, at: TxLocation) -> Result<(String, Vec<u8>), StoreError> {
        let t = self.tx.open_table(TXS).map_err(db_err)?;
        let v = t.get(&at.key()).map_err(db_err)?.ok_or_else(|| corrupt(format!("value in transaction {}/{}", at.height, at.index)))?;
        match Row::parse(at, v.value())?.transaction()?.body.payload {
            Payload::Data { key, value } => Ok((key, value)),
            _ => Err(corrupt(format!("transaction {}/{} carries no data record", at.height, at.index))),
        }
    }
}

/// Contract ids by number, remembered for the rest of a read.
struct Contracts {
    table: ReadOnlyTable<u32, &'static [u8; 32]>,
    seen: BTreeMap<u32, Hash32>,
}

impl Contracts {
    fn get(&mut self, n: u32) -> Result<Hash32, StoreError> {
        if let Some(c) = self.seen.get(&n) {
            return Ok(*c);
        }
        let c = Hash32(*self.table.get(n).map_err(db_err)?.ok_or_else(|| corrupt(format!("contract number {n}")))?.value());
        self.seen.insert(n, c);
        Ok(c)
    }
}

/// A `txs` row, split but not decoded.
struct Row<'a> {
    at: TxLocation,
    hash: Hash32,
    receipt: &'a [u8],
    tx: &'a [u8],
}

impl<'a> Row<'a> {
    fn parse(at: TxLocation, v: &'a [u8]) -> Result<Row<'a>, StoreError> {
        let bad = || corrupt(format!("transaction row {}/{}", at.height, at.index));
        let mut r = Reader::new(v);
        let hash = Hash32::from_slice(r.take(32).ok_or_else(bad)?).ok_or_else(bad)?;
        let len = usize::try_from(r.varint().ok_or_else(bad)?).map_err(|_| bad())?;
        let receipt = r.take(len).ok_or_else(bad)?;
        Ok(Row { at, hash, receipt, tx: r.rest() })
    }

    fn transaction(&self) -> Result<Transaction, StoreError> {
        Transaction::decode(self.tx).map_err(|e| corrupt(format!("transaction {}/{}: {e}", self.at.height, self.at.index)))
    }

    fn receipt(&self, contracts: &mut Contracts) -> Result<Receipt, StoreError> {
        let bad = || corrupt(format!("receipt {}/{}", self.at.height, self.at.index));
        let mut r = Reader::new(self.receipt);
        let string = |r: &mut Reader| -> Result<String, StoreError> {
            let n = usize::try_from(r.varint().ok_or_else(bad)?).map_err(|_| bad())?;
            String::from_utf8(r.take(n).ok_or_else(bad)?.to_vec()).map_err(|_| bad())
        };
        let status = match r.byte().ok_or_else(bad)? {
            0 => ReceiptStatus::Success,
            1 => ReceiptStatus::Reverted(string(&mut r)?),
            2 => ReceiptStatus::OutOfGas,
            _ => return Err(bad()),
        };
        let gas_used = r.varint().ok_or_else(bad)?;
        let output_len = usize::try_from(r.varint().ok_or_else(bad)?).map_err(|_| bad())?;
        let output = r.take(output_len).ok_or_else(bad)?.to_vec();
        let n = r.varint().ok_or_else(bad)?;
        let mut events = vec![];
        let mut record_key: Option<Vec<u8>> = None;
        for _ in 0..n {
            let n = u32::try_from(r.varint().ok_or_else(bad)?).map_err(|_| bad())?;
            let contract = contracts.get(n)?;
            let topic = string(&mut r)?;
            let topics = r.varint().ok_or_else(bad)?;
            if topics > 3 {
                return Err(bad());
            }
            let mut indexed = Vec::with_capacity(topics as usize);
            for _ in 0..topics {
                let len = usize::try_from(r.varint().ok_or_else(bad)?).map_err(|_| bad())?;
                indexed.push(r.take(len).ok_or_else(bad)?.to_vec());
            }
            let data = match usize::try_from(r.varint().ok_or_else(bad)?).map_err(|_| bad())? {
                0 => match &record_key {
                    Some(k) => k.clone(),
                    None => {
                        let Payload::Data { key, .. } = self.transaction()?.body.payload else { return Err(bad()) };
                        record_key.insert(key.into_bytes()).clone()
                    }
                },
                len => r.take(len - 1).ok_or_else(bad)?.to_vec(),
            };
            events.push(Event { contract, topic, indexed, data });
        }
        if !r.end() {
            return Err(bad());
        }
        Ok(Receipt { tx_hash: self.hash, status, gas_used, output, events })
    }
}

impl NodeStore for StoreView {
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, StateError> {
        let (key, pos) = page_key(at);
        let Some(page) = self.nodes.get(key.as_slice()).map_err(|e| StateError::Store(e.to_string()))? else { return Ok(None) };
        let bad = || StateError::Store(format!("state page of ({at}) is corrupt"));
        match page_find(page.value(), pos).ok_or_else(bad)? {
            Some(entry) => decode_node(at.version, entry).map(Some).ok_or_else(bad),
            None => Ok(None),
        }
    }
}
