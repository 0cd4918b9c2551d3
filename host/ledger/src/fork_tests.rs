//! Forks: side blocks, fork choice by weight, and reorganisations that leave the store as
//! if the winning chain had been imported alone.

use super::*;
use crate::testkit::{Key, TestCrypto, TestEngine, data_tx, spec};
use joule_primitives::Hasher;

/// The test engine with forks allowed: each block weighs 1 (the longest chain wins), and a
/// block is final `depth` blocks down.
struct Forking(TestEngine, u64);

impl ConsensusEngine for Forking {
    fn name(&self) -> &str {
        "forking/1"
    }
    fn verify_header(&self, parent: &EngineHeader, header: &EngineHeader, validators: &[Validator]) -> Result<(), ConsensusError> {
        self.0.verify_header(parent, header, validators)
    }
    fn weight(&self, _header: &EngineHeader, _validators: &[Validator]) -> Result<u64, ConsensusError> {
        Ok(1)
    }
    fn finality_depth(&self, _validators: &[Validator]) -> Result<u64, ConsensusError> {
        Ok(self.1)
    }
    fn participant(&self, me: &[u8], head: &joule_consensus::Head, saved: &[u8]) -> Result<Box<dyn joule_consensus::Participant>, ConsensusError> {
        self.0.participant(me, head, saved)
    }
}

struct Net {
    suite: Arc<TestCrypto>,
    key: Key,
    spec: ChainSpec,
    depth: u64,
    dirs: Vec<tempfile::TempDir>,
}

impl Net {
    fn new(depth: u64) -> Net {
        let key = Key::new(1);
        let spec = spec(&[&key]);
        Net { suite: TestCrypto::new(), key, spec, depth, dirs: vec![] }
    }

    /// A node of the one validator (every node seals with its key: competing miners).
    fn node(&mut self, history: Option<u64>) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let engines: Arc<dyn EngineSource> = Arc::new(Arc::new(Forking(TestEngine { suite: self.suite.clone() }, self.depth)));
        let signer = Arc::new(LocalSigner::new(Zeroizing::new(self.key.private.clone()), self.key.public.clone(), self.suite.clone()));
        let policy = BlockPolicy { interval_ms: 100, max_transactions: 100, max_bytes: 1 << 20, produce_empty_blocks: true };
        let c = Chain::open(dir.path(), &self.spec, policy, self.suite.clone(), engines, Some(signer)).unwrap();
        c.set_state_history(history).unwrap();
        self.dirs.push(dir);
        c
    }
}

/// Produce `n` blocks on `c`, each with a data record of `sender` (nonces from `nonce`).
fn grow(c: &Chain, suite: &TestCrypto, sender: &Key, nonce: u64, n: u64, tag: &str) -> Vec<Arc<CommittedBlock>> {
    (0..n)
        .map(|i| {
            c.submit(data_tx(suite, sender, nonce + i, &format!("meter/{}", nonce + i), format!("{tag} {i}").as_bytes())).unwrap();
            let t = c.head().header.timestamp_ms + 1000;
            c.produce(t).unwrap().expect("a block")
        })
        .collect()
}

fn import_all(c: &Chain, blocks: &[Arc<CommittedBlock>]) -> Vec<Result<Hash32, String>> {
    blocks.iter().map(|b| c.import(b.block.clone()).map(|c| c.hash).map_err(|e| e.to_string())).collect()
}

#[test]
fn a_heavier_side_chain_replaces_the_head_and_the_store_is_as_if_only_it_was_imported() {
    let mut net = Net::new(8);
    let (a, b, follower, witness) = (net.node(None), net.node(None), net.node(None), net.node(None));
    let (alice, bob) = (Key::new(3), Key::new(4));
    let ours = grow(&a, &net.suite, &alice, 0, 2, "a");
    let theirs = grow(&b, &net.suite, &bob, 0, 3, "b");
    for r in import_all(&follower, &ours) {
        r.unwrap();
    }
    // One block of the other chain weighs less than the head's two: kept aside.
    assert!(matches!(follower.import(theirs[0].block.clone()), Err(ChainError::Side { height: 1, fork: 0 })));
    assert!(matches!(follower.import(theirs[0].block.clone()), Err(ChainError::Known { .. })));
    assert_eq!(follower.head().hash, ours[1].hash);
    // Two against two: the lower tip hash wins, whichever came first.
    let tie = follower.import(theirs[1].block.clone());
    if theirs[1].hash.0 < ours[1].hash.0 {
        assert_eq!(tie.map(|c| c.hash).ok(), Some(theirs[1].hash));
        // And back: the first chain's tip is higher, so it stays aside now.
        assert!(matches!(follower.import(ours[1].block.clone()), Err(ChainError::Known { .. })));
    } else {
        assert!(matches!(tie, Err(ChainError::Side { height: 2, fork: 0 })));
        assert_eq!(follower.head().hash, ours[1].hash);
    }
    // Alice's next record waits in the follower's pool, its nonce after her two on chain.
    let alices_next = data_tx(&net.suite, &alice, 2, "meter/2", b"a 0");
    let moved_at_tie = follower.head().hash == theirs[1].hash;
    if !moved_at_tie {
        follower.submit(alices_next.clone()).unwrap();
    }
    // The third outweighs it: the chain moves over (in one step, unless the tie did already).
    let mut heads = follower.subscribe();
    let tip = follower.import(theirs[2].block.clone()).unwrap();
    assert_eq!((tip.hash, follower.head().hash), (theirs[2].hash, theirs[2].hash));
    for t in &theirs[if moved_at_tie { 2 } else { 0 }..] {
        assert_eq!(heads.try_recv().unwrap().hash, t.hash, "subscribers hear each block of the new chain");
    }
    for r in import_all(&witness, &theirs) {
        r.unwrap();
    }
    assert_eq!(follower.store.chain_tables().unwrap(), witness.store.chain_tables().unwrap(), "byte for byte the store of a node that saw only that chain");
    // Alice's records are off the chain and back in the pool; the new chain's are found.
    let alices = ours[0].block.transactions[0].hash(net.suite.as_ref()).unwrap();
    assert!(follower.tx(&alices).unwrap().is_none());
    assert!(follower.pending(&alices), "a transaction of the dropped chain is pending again");
    if moved_at_tie {
        follower.submit(alices_next.clone()).unwrap();
    }
    // Her nonces start at 0 again on this chain: all three are executable, in order.
    assert_eq!((follower.pool_len(), follower.pending_len()), (3, 3));
    let bobs = theirs[0].block.transactions[0].hash(net.suite.as_ref()).unwrap();
    assert_eq!(follower.tx(&bobs).unwrap().map(|t| t.block_height), Some(1));
    // The first chain grows back heavier: its blocks, kept aside, are executed again.
    let more = grow(&a, &net.suite, &alice, 2, 2, "a");
    assert!(matches!(follower.import(more[0].block.clone()), Err(ChainError::Side { height: 3, fork: 0 })));
    follower.import(more[1].block.clone()).unwrap();
    let all: Vec<_> = ours.iter().chain(&more).cloned().collect();
    let witness2 = net.node(None);
    for r in import_all(&witness2, &all) {
        r.unwrap();
    }
    assert_eq!(follower.head().hash, a.head().hash);
    assert_eq!(follower.store.chain_tables().unwrap(), witness2.store.chain_tables().unwrap());
    assert_eq!(follower.pool_len(), 3, "alice's records are committed again, and bob's are pending");
}

#[test]
fn a_fork_below_a_final_block_or_from_an_unknown_parent_is_refused() {
    let mut net = Net::new(2);
    let (a, b, follower) = (net.node(None), net.node(None), net.node(None));
    let ours = grow(&a, &net.suite, &Key::new(3), 0, 4, "a");
    let theirs = grow(&b, &net.suite, &Key::new(4), 0, 6, "b");
    for r in import_all(&follower, &ours) {
        r.unwrap();
    }
    // Block 1 is 3 deep, past the engine's 2.
    match follower.import(theirs[0].block.clone()) {
        Err(e @ ChainError::BelowFinal { height: 1, fork: 0, depth: 4, limit: 2 }) => assert!(e.to_string().contains("final"), "{e}"),
        other => panic!("expected a refusal, got {:?}", other.map(|c| c.hash)),
    }
    assert!(matches!(follower.import(theirs[4].block.clone()), Err(ChainError::UnknownParent { height: 5, .. })));
    assert_eq!(follower.head().hash, ours[3].hash);
}

#[test]
fn a_pruning_node_reorganises_within_its_kept_state_and_keeps_its_pruning_exact() {
    let mut net = Net::new(8);
    let (a, b, follower, witness) = (net.node(None), net.node(None), net.node(Some(4)), net.node(Some(4)));
    let common = grow(&a, &net.suite, &Key::new(3), 0, 3, "common");
    for r in import_all(&b, &common) {
        r.unwrap();
    }
    let ours = grow(&a, &net.suite, &Key::new(3), 3, 2, "a");
    let theirs = grow(&b, &net.suite, &Key::new(4), 0, 3, "b");
    let first: Vec<_> = common.iter().chain(&ours).cloned().collect();
    for r in import_all(&follower, &first) {
        r.unwrap();
    }
    let verdicts = import_all(&follower, &theirs);
    assert!(verdicts[0].as_ref().is_err_and(|e| e.contains("side chain")), "{verdicts:?}");
    assert!(verdicts[2].is_ok(), "{verdicts:?}");
    assert_eq!(follower.head().hash, b.head().hash);
    let winner: Vec<_> = common.iter().chain(&theirs).cloned().collect();
    for r in import_all(&witness, &winner) {
        r.unwrap();
    }
    // The pruning after a reorganisation: the state kept is still whole.
    let account = Hasher::hash(net.suite.as_ref(), &Key::new(4).public).unwrap();
    let v = follower.state(&account, "meter/2", true).unwrap();
    assert_eq!(v.value.as_deref(), Some(&b"b 2"[..]));
    let w = witness.state(&account, "meter/2", true).unwrap();
    assert_eq!(v.state_root, w.state_root);
    assert_eq!(follower.store.chain_tables().unwrap(), witness.store.chain_tables().unwrap(), "the same nodes kept and pruned");
}
