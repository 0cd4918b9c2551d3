//! What a chain knows of its own health, and the seam that lets it recover from a failed
//! store without a restart.
//!
//! redb fails every operation after an I/O error (a full disk, say) until the database is
//! closed and opened again. So the chain keeps its store in a [`StoreSlot`], behind a lock
//! under which it can be dropped and reopened from the same file; a failed commit records a
//! [`StorageFault`], which stops admission and production and is retried with backoff
//! (`Chain::recover`): first a write probe of the directory, then the reopen. The node
//! reports the fault in its readiness, with the reason.

use super::store::{BlockCommit, ChainStore, StoreError, StoreView};
use joule_support::sync::{lock, read, write};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// The chain store, reopenable in place.
pub(crate) struct StoreSlot {
    path: PathBuf,
    /// `None` between dropping a failed database and opening it again.
    db: RwLock<Option<ChainStore>>,
}

impl StoreSlot {
    pub(crate) fn open(path: &Path) -> Result<StoreSlot, StoreError> {
        // Private before redb writes anything into it: it holds the whole ledger.
        joule_support::fs::private_file(path).map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
        Ok(StoreSlot { path: path.to_path_buf(), db: RwLock::new(Some(ChainStore::open(path)?)) })
    }

    fn with<R>(&self, f: impl FnOnce(&ChainStore) -> Result<R, StoreError>) -> Result<R, StoreError> {
        match read(&self.db).as_ref() {
            Some(db) => f(db),
            None => Err(StoreError::Db(format!("{} is closed, to be reopened after a storage failure", self.path.display()))),
        }
    }

    pub(crate) fn read(&self) -> Result<StoreView, StoreError> {
        self.with(ChainStore::read)
    }

    pub(crate) fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.with(|db| db.set_meta(key, value))
    }

    pub(crate) fn commit(&self, c: BlockCommit<'_>) -> Result<(), StoreError> {
        self.with(|db| db.commit(c))
    }

    pub(crate) fn reorganise(&self, ancestor: u64, blocks: &[BlockCommit<'_>]) -> Result<(), StoreError> {
        self.with(|db| db.reorganise(ancestor, blocks))
    }

    pub(crate) fn storage_keys_complete(&self) -> Result<bool, StoreError> {
        self.with(ChainStore::storage_keys_complete)
    }

    pub(crate) fn backfill_storage_keys(
        &self,
        fixed: &[super::store::StorageKey],
        keys: impl Fn(&joule_primitives::Transaction) -> Result<Vec<super::store::StorageKey>, StoreError>,
    ) -> Result<u64, StoreError> {
        self.with(|db| db.backfill_storage_keys(fixed, &keys))
    }

    #[cfg(test)]
    pub(crate) fn chain_tables(&self) -> Result<Vec<super::store::TableRow>, StoreError> {
        self.with(ChainStore::chain_tables)
    }

    pub(crate) fn usage(&self) -> Result<Vec<super::store::TableUsage>, StoreError> {
        self.with(ChainStore::usage)
    }

    /// Compact the store: it needs the database to itself, so it takes the slot's write
    /// lock (reads and commits wait for it).
    pub(crate) fn compact(&self) -> Result<bool, StoreError> {
        match write(&self.db).as_mut() {
            Some(db) => db.compact(),
            None => Err(StoreError::Db(format!("{} is closed, to be reopened after a storage failure", self.path.display()))),
        }
    }

    /// The directory the store lives in (what a write probe tests).
    pub(crate) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Close the database and open the file again. Views still held elsewhere see their
    /// reads fail; new ones read the reopened file.
    pub(crate) fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = write(&self.db);
        // Dropping closes the file and releases its lock, so it can be opened again.
        drop(slot.take());
        *slot = Some(ChainStore::open(&self.path)?);
        Ok(())
    }
}

/// A store failure the chain is recovering from.
#[derive(Debug, Clone, Serialize)]
pub struct StorageFault {
    /// What failed first, e.g. `commit of block 21: storage: … No space left on device`.
    pub reason: String,
    /// Unix milliseconds.
    pub since_ms: u64,
    /// Recovery attempts so far.
    pub retries: u32,
    /// Why the last recovery attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_retry_error: Option<String>,
}

/// A snapshot of a chain's health.
#[derive(Debug, Clone, Serialize)]
pub struct ChainHealth {
    /// Set while the store is failed: admission and production are stopped.
    pub storage: Option<StorageFault>,
    /// Why the producer's last attempt failed (absent when it succeeded or made nothing).
    pub production_error: Option<String>,
    /// Unix milliseconds of the producer's last attempt; 0 before the first.
    pub last_attempt_ms: u64,
}

/// First and longest wait between recovery attempts.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

struct Fault {
    public: StorageFault,
    retry_at: Instant,
}

#[derive(Default)]
struct Production {
    error: Option<String>,
    last_attempt_ms: u64,
}

/// A chain's health, as its commit path and producer record it.
#[derive(Default)]
pub(crate) struct Monitor {
    fault: Mutex<Option<Fault>>,
    production: Mutex<Production>,
}

impl Monitor {
    pub(crate) fn snapshot(&self) -> ChainHealth {
        let p = lock(&self.production);
        ChainHealth { storage: self.fault(), production_error: p.error.clone(), last_attempt_ms: p.last_attempt_ms }
    }

    pub(crate) fn fault(&self) -> Option<StorageFault> {
        lock(&self.fault).as_ref().map(|f| f.public.clone())
    }

    /// Record a store failure; the first reason is kept until the chain recovers.
    pub(crate) fn storage_failed(&self, reason: String) {
        let mut f = lock(&self.fault);
        if f.is_none() {
            *f = Some(Fault {
                public: StorageFault { reason, since_ms: joule_support::now_ms(), retries: 0, last_retry_error: None },
                retry_at: Instant::now() + RETRY_FIRST,
            });
        }
    }

    /// Whether a recovery attempt is due (there is a fault and its backoff has passed).
    pub(crate) fn retry_due(&self) -> bool {
        lock(&self.fault).as_ref().is_some_and(|f| Instant::now() >= f.retry_at)
    }

    /// A recovery attempt failed: wait twice as long (up to [`RETRY_MAX`]) before the next.
    pub(crate) fn retry_failed(&self, error: String) {
        if let Some(f) = lock(&self.fault).as_mut() {
            f.public.retries += 1;
            f.public.last_retry_error = Some(error);
            let wait = RETRY_FIRST.saturating_mul(1 << f.public.retries.min(8)).min(RETRY_MAX);
            f.retry_at = Instant::now() + wait;
        }
    }

    pub(crate) fn recovered(&self) -> Option<StorageFault> {
        lock(&self.fault).take().map(|f| f.public)
    }

    pub(crate) fn attempted(&self, error: Option<String>) {
        let mut p = lock(&self.production);
        p.error = error;
        p.last_attempt_ms = joule_support::now_ms();
    }

    /// The producer ran but made no attempt (no block due): alive, the last error stands.
    pub(crate) fn alive(&self) {
        lock(&self.production).last_attempt_ms = joule_support::now_ms();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{BlockSigner, Chain, ChainError, LocalSigner};
    use crate::pool::Rejection;
    use crate::testkit::{Key, TestCrypto, TestEngine, data_tx, spec};
    use joule_consensus::EngineSource;
    use joule_primitives::BlockPolicy;
    use std::sync::Arc;

    #[test]
    fn a_failed_store_stops_admission_until_the_chain_reopens_it() {
        let (key, suite, dir) = (Key::new(1), TestCrypto::new(), tempfile::tempdir().unwrap());
        let engines: Arc<dyn EngineSource> = Arc::new(Arc::new(TestEngine { suite: suite.clone() }));
        let signer: Arc<dyn BlockSigner> = Arc::new(LocalSigner::new(zeroize::Zeroizing::new(key.private.clone()), key.public.clone(), suite.clone()));
        let policy = BlockPolicy { interval_ms: 100, max_transactions: 100, max_bytes: 1 << 20, produce_empty_blocks: false };
        let chain = Chain::open(dir.path(), &spec(&[&key]), policy, suite.clone(), engines, Some(signer)).unwrap();
        chain.submit(data_tx(&suite, &key, 0, "a", b"1")).unwrap();
        chain.produce(1_700_000_000_100).unwrap().expect("block 1");

        chain.fail_storage_for_test("commit of block 2 failed: No space left on device");
        let fault = chain.health().storage.expect("the fault is reported");
        assert!(fault.reason.contains("No space left"), "{fault:?}");
        match chain.submit(data_tx(&suite, &key, 1, "a", b"2")) {
            Err(Rejection::StorageFailed(reason)) => assert!(reason.contains("No space left"), "{reason}"),
            other => panic!("admitted during a storage failure: {other:?}"),
        }
        assert!(matches!(chain.submit_batch(vec![data_tx(&suite, &key, 1, "a", b"2")]).as_slice(), [Err(Rejection::StorageFailed(_))]));
        let block = chain.block(1).unwrap().unwrap();
        assert!(matches!(chain.import(block), Err(ChainError::StorageFailed(_))), "no commit is attempted either");
        assert!(!chain.recover(), "not before the backoff has passed");

        std::thread::sleep(RETRY_FIRST + Duration::from_millis(20));
        assert!(chain.recover(), "the directory takes writes: the store is reopened");
        assert!(chain.health().storage.is_none());
        assert_eq!(chain.head().height, 1, "the head is the store's");
        assert!(chain.block(1).unwrap().is_some(), "reads go to the reopened store");
        chain.submit(data_tx(&suite, &key, 1, "a", b"2")).unwrap();
        assert_eq!(chain.produce(1_700_000_000_200).unwrap().expect("block 2").block.header.height, 2);
    }

    #[test]
    fn backoff_grows_to_its_limit_and_recovery_clears_the_fault() {
        let m = Monitor::default();
        assert!(!m.retry_due(), "no fault, nothing to retry");
        m.storage_failed("disk full".into());
        m.storage_failed("later failure".into());
        assert_eq!(m.fault().unwrap().reason, "disk full", "the first reason is kept");
        assert!(!m.retry_due(), "not before the first backoff");
        for _ in 0..10 {
            m.retry_failed("still full".into());
        }
        let wait = lock(&m.fault).as_ref().unwrap().retry_at - Instant::now();
        assert!(wait <= RETRY_MAX && wait > RETRY_MAX / 2, "{wait:?}");
        assert_eq!(m.fault().unwrap().retries, 10);
        assert_eq!(m.recovered().unwrap().last_retry_error.as_deref(), Some("still full"));
        assert!(m.snapshot().storage.is_none());
    }
}
