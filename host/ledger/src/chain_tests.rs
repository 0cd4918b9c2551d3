//! The chain's produce and import paths with a native suite and engine: what a follower
//! accepts, and each way a block can be wrong.

use super::*;
use crate::testkit::{Key, TestCrypto, TestEngine, data_tx, signed_tx, spec};
use joule_primitives::Hasher;

struct Pair {
    producer: Chain,
    follower: Chain,
    key: Key,
    suite: Arc<TestCrypto>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn policy() -> BlockPolicy {
    BlockPolicy { interval_ms: 100, max_transactions: 100, max_bytes: 1 << 20, produce_empty_blocks: false }
}

fn open(dir: &Path, spec: &ChainSpec, suite: &Arc<TestCrypto>, signer: Option<Arc<dyn BlockSigner>>) -> Result<Chain, ChainError> {
    let engines: Arc<dyn EngineSource> = Arc::new(Arc::new(TestEngine { suite: suite.clone() }));
    Chain::open(dir, spec, policy(), suite.clone(), engines, signer)
}

/// A validator's chain and a follower's, from one spec.
fn pair() -> Pair {
    let key = Key::new(1);
    let suite = TestCrypto::new();
    let spec = spec(&[&key]);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let signer = Arc::new(LocalSigner::new(Zeroizing::new(key.private.clone()), key.public.clone(), suite.clone()));
    let producer = open(a.path(), &spec, &suite, Some(signer)).unwrap();
    let follower = open(b.path(), &spec, &suite, None).unwrap();
    Pair { producer, follower, key, suite, _dirs: (a, b) }
}

impl Pair {
    /// A block the producer seals over `txs`, without checking them (as a faulty or
    /// malicious validator might).
    fn sealed(&self, txs: Vec<Transaction>) -> Block {
        let signer = self.producer.signer.as_ref().unwrap();
        let block = self.producer.assemble(&self.producer.head(), signer.public_key(), txs, None, 1_700_000_001_000).unwrap().0;
        self.reseal(block, |_| {})
    }

    /// Change a sealed block's header and seal it again, so only the change is wrong.
    fn reseal(&self, mut block: Block, change: impl FnOnce(&mut BlockHeader)) -> Block {
        change(&mut block.header);
        let seal_hash = self.suite.hash(&block.header.sealing_bytes()).unwrap();
        block.header.seal = self.producer.sign_as_node(&seal_hash.0).unwrap();
        block
    }

    fn refused(&self, block: Block) -> String {
        match self.follower.import(block) {
            Err(ChainError::Invalid { reason, .. }) => {
                assert_eq!(self.follower.head().height, 0, "nothing committed");
                reason
            }
            Err(e) => panic!("expected an invalid block, got {e}"),
            Ok(b) => panic!("block {} was accepted", b.block.header.height),
        }
    }
}

#[test]
fn a_follower_imports_the_producers_blocks_to_the_same_state() {
    let p = pair();
    for n in 0..3 {
        p.producer.submit(data_tx(&p.suite, &p.key, n, &format!("meter/{n}"), b"42 kWh")).unwrap();
    }
    let b1 = p.producer.produce(1_700_000_001_000).unwrap().expect("block 1");
    assert_eq!(b1.block.transactions.len(), 3);
    assert_eq!(p.producer.pool_len(), 0, "committed transactions leave the pool");
    let f1 = p.follower.import(b1.block.clone()).unwrap();
    assert_eq!((f1.hash, f1.receipts.clone()), (b1.hash, b1.receipts.clone()));
    let account = Hasher::hash(p.suite.as_ref(), &p.key.public).unwrap();
    let a = p.producer.state(&account, "meter/2", true).unwrap();
    let b = p.follower.state(&account, "meter/2", true).unwrap();
    assert_eq!((a.value.as_deref(), a.state_root), (Some(&b"42 kWh"[..]), b.state_root));
    // Nothing to do: no block without transactions unless the policy asks for one.
    assert!(p.producer.produce(1_700_000_002_000).unwrap().is_none());
}

#[test]
fn import_refuses_a_transaction_whose_signature_does_not_verify() {
    let p = pair();
    let mut tx = data_tx(&p.suite, &p.key, 0, "k", b"v");
    if let Some(b) = tx.signature.last_mut() {
        *b ^= 1;
    }
    let reason = p.refused(p.sealed(vec![tx]));
    assert!(reason.contains("transaction 0") && reason.contains("signature does not verify"), "{reason}");
}

#[test]
fn import_refuses_a_transaction_signed_with_another_algorithm() {
    let p = pair();
    let mut tx = data_tx(&p.suite, &p.key, 0, "k", b"v");
    tx.body.sig_alg = "sm2".into();
    let reason = p.refused(p.sealed(vec![tx]));
    assert!(reason.contains("transaction 0 is signed with sm2, not ed25519"), "{reason}");
}

#[test]
fn import_refuses_gas_over_the_channel_limit() {
    let p = pair();
    let mut body = data_tx(&p.suite, &p.key, 0, "k", b"v").body;
    body.gas_limit = 2_000_000;
    let sig = p.suite.sign(&p.key.private, &body.signing_bytes()).unwrap();
    let reason = p.refused(p.sealed(vec![body.sign_with(sig)]));
    assert!(reason.contains("declares gas 2000000 over the channel's limit 1000000"), "{reason}");
}

#[test]
fn import_refuses_roots_that_do_not_match_execution() {
    let p = pair();
    let block = p.sealed(vec![data_tx(&p.suite, &p.key, 0, "k", b"v")]);
    let reason = p.refused(p.reseal(block.clone(), |h| h.receipts_root = Hash32([7; 32])));
    assert!(reason.contains("receipts root does not match"), "{reason}");
    let reason = p.refused(p.reseal(block.clone(), |h| h.state_root = Hash32([7; 32])));
    assert!(reason.contains("state root"), "{reason}");
    let reason = p.refused(p.reseal(block.clone(), |h| h.tx_root = Hash32([7; 32])));
    assert!(reason.contains("transactions root does not match"), "{reason}");
    // The untouched block is fine.
    p.follower.import(block).unwrap();
}

#[test]
fn import_refuses_a_seal_the_engine_rejects_and_blocks_that_do_not_extend_the_head() {
    let p = pair();
    let mut block = p.sealed(vec![]);
    if let Some(b) = block.header.seal.last_mut() {
        *b ^= 1;
    }
    assert!(p.refused(block).contains("bad seal"));
    let block = p.reseal(p.sealed(vec![]), |h| h.height = 2);
    assert!(p.refused(block).contains("does not extend the head"));
    let block = p.reseal(p.sealed(vec![]), |h| h.timestamp_ms = 1_600_000_000_000);
    assert!(p.refused(block).contains("timestamp"));
}

#[test]
fn admission_refusals_leave_the_pool_unchanged() {
    let p = pair();
    let good = data_tx(&p.suite, &p.key, 0, "k", b"v");
    p.producer.submit(good.clone()).unwrap();
    let mut bad_sig = data_tx(&p.suite, &p.key, 1, "k", b"v");
    bad_sig.body.nonce = 2;
    let mut other_channel = data_tx(&p.suite, &p.key, 1, "k", b"v");
    other_channel.body.channel = ChannelId::new("market").unwrap();
    for (tx, code) in [(good, "duplicate"), (bad_sig, "bad_signature"), (other_channel, "wrong_channel")] {
        assert_eq!(p.producer.submit(tx).unwrap_err().code(), code);
        assert_eq!(p.producer.pool_len(), 1, "{code}");
    }
    assert_eq!(p.producer.submit_bytes(&[1, 2, 3]).unwrap_err().code(), "malformed");
    let big = vec![0u8; p.producer.max_tx_bytes() + 1];
    assert_eq!(p.producer.submit_bytes(&big).unwrap_err().code(), "too_large");
}

#[test]
fn a_store_from_another_spec_is_refused_and_the_head_survives_reopening() {
    let key = Key::new(1);
    let suite = TestCrypto::new();
    let dir = tempfile::tempdir().unwrap();
    let signer =
        || -> Option<Arc<dyn BlockSigner>> { Some(Arc::new(LocalSigner::new(Zeroizing::new(key.private.clone()), key.public.clone(), suite.clone()))) };
    let s = spec(&[&key]);
    let chain = open(dir.path(), &s, &suite, signer()).unwrap();
    chain.submit(data_tx(&suite, &key, 0, "k", b"v")).unwrap();
    let b1 = chain.produce(1_700_000_001_000).unwrap().unwrap();
    drop(chain);
    let chain = open(dir.path(), &s, &suite, None).unwrap();
    assert_eq!((chain.head().height, chain.head().hash), (1, b1.hash));
    drop(chain);
    let mut other = s.clone();
    other.gas_limit += 1;
    let err = open(dir.path(), &other, &suite, None).err().expect("refused").to_string();
    assert!(err.contains("different genesis fields"), "{err}");
}

#[test]
fn a_flood_of_future_nonces_does_not_keep_an_honest_batch_out_of_the_next_block() {
    let p = pair();
    p.producer.set_pool_config(PoolConfig { max_queued: 200, ..PoolConfig::default() });
    // Throwaway keys, each sending nonce 1: never executable, as their next nonce is 0.
    let flood: Vec<Transaction> = (0..1000u32)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
            let key = Key { private: seed.to_vec(), public: sk.verifying_key().to_bytes().to_vec() };
            data_tx(&p.suite, &key, 1, "junk", b"x")
        })
        .collect();
    let flooded = p.producer.submit_batch(flood);
    assert!(flooded.iter().all(Result::is_ok), "each newcomer takes the oldest queued one's place");
    let honest: Vec<Transaction> = (0..100).map(|n| data_tx(&p.suite, &p.key, n, &format!("meter/{n}"), b"1 kWh")).collect();
    let answers = p.producer.submit_batch(honest);
    assert!(answers.iter().all(Result::is_ok), "{:?}", answers.iter().filter_map(|r| r.as_ref().err()).next());
    let b1 = p.producer.produce(1_700_000_001_000).unwrap().expect("block 1");
    assert_eq!(b1.block.transactions.len(), 100);
    assert!(b1.block.transactions.iter().all(|t| t.body.sender == p.key.public), "only the honest sender's");
    assert_eq!(p.producer.pool_len(), 200, "the honest batch left the pool; the queue stays full");
    let (first, last) = (flooded[0].clone().unwrap(), flooded[999].clone().unwrap());
    assert!(matches!(p.producer.pool_status(&first), Some(PoolStatus::Evicted(e)) if e.reason.code() == "pool_full"));
    assert_eq!(p.producer.pool_status(&last), Some(PoolStatus::Queued));
}

#[test]
fn a_proof_of_work_meets_its_target_as_big_endian_numbers_of_any_width() {
    use super::meets_target;
    assert!(meets_target(&[0x00, 0x10], &[0x00, 0x10]), "equal meets");
    assert!(meets_target(&[0x00, 0x0f], &[0x00, 0x10]));
    assert!(!meets_target(&[0x01, 0x00], &[0x00, 0xff]));
    // A shorter side counts as padded with leading zeros.
    assert!(meets_target(&[0x00, 0x00, 0x05], &[0x06]));
    assert!(!meets_target(&[0x01, 0x00, 0x05], &[0xff, 0xff]));
    assert!(meets_target(&[0x05], &[0x00, 0x06]));
    assert!(meets_target(&[], &[]));
}

#[test]
fn votes_change_the_validators_from_the_next_block_on_every_node_and_after_a_restart() {
    use joule_primitives::{Change, Governance, ReceiptStatus};
    let p = pair();
    let second = Key::new(2);
    let gov = |key: &Key, nonce: u64, action: Governance| signed_tx(&p.suite, key, nonce, Payload::Governance(action));
    // One validator of one: its proposal passes in the block that carries it.
    let add = Governance::Propose { changes: vec![Change::AddValidator { public_key: second.public.clone(), weight: 1 }], expires_at: 50, components: vec![] };
    p.producer.submit(gov(&p.key, 0, add)).unwrap();
    let b1 = p.producer.produce(1_700_000_001_000).unwrap().expect("block 1");
    assert_eq!(b1.receipts[0].status, ReceiptStatus::Success);
    let topics: Vec<&str> = b1.receipts[0].events.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(topics, ["proposed", "passed"]);
    let validators = |c: &Chain| c.members().validators.iter().map(|v| v.public_key.clone()).collect::<Vec<_>>();
    assert_eq!(validators(&p.producer), vec![p.key.public.clone(), second.public.clone()]);
    assert_eq!(p.producer.engine_head().unwrap().validators.len(), 2, "the engine sees them for the next block");

    // Two validators: one vote of two is not a majority. A vote by a non-validator is
    // refused at admission; a vote on no proposal is executed and reverted.
    let remove = Governance::Propose { changes: vec![Change::RemoveValidator { public_key: second.public.clone() }], expires_at: 10, components: vec![] };
    p.producer.submit(gov(&p.key, 1, remove)).unwrap();
    let stranger = Key::new(3);
    let refused = p.producer.submit(gov(&stranger, 0, Governance::Vote { proposal: Hash32([1; 32]), expires_at: 10 })).unwrap_err();
    assert_eq!(refused.code(), "not_permitted");
    p.producer.submit(gov(&p.key, 2, Governance::Vote { proposal: Hash32([1; 32]), expires_at: 10 })).unwrap();
    let b2 = p.producer.produce(1_700_000_002_000).unwrap().expect("block 2");
    assert_eq!(b2.receipts[0].status, ReceiptStatus::Success);
    assert!(matches!(&b2.receipts[1].status, ReceiptStatus::Reverted(why) if why.contains("no open proposal")), "{:?}", b2.receipts[1].status);
    let view = p.producer.governance().unwrap();
    assert_eq!((view.height, view.voting_weight, view.weight_needed), (2, 2, 2));
    assert_eq!(view.proposals.len(), 1);
    assert_eq!(view.proposals[0].weight_for, 1);
    assert_eq!(view.proposals[0].votes[0].expires_at, 10);
    assert_eq!(validators(&p.producer).len(), 2);

    // The follower counts the same votes, and so does a node restarted from its store.
    p.follower.import(b1.block.clone()).unwrap();
    p.follower.import(b2.block.clone()).unwrap();
    assert_eq!(validators(&p.follower), validators(&p.producer));
    assert_eq!(p.follower.governance().unwrap().proposals.len(), 1);
    let dir = p._dirs.1.path().to_path_buf();
    let Pair { follower, suite, .. } = p;
    let spec = follower.spec().clone();
    drop(follower);
    let reopened = open(&dir, &spec, &suite, None).unwrap();
    assert_eq!(reopened.members().validators.len(), 2, "members come from the chain's state, not the spec");
    assert_eq!(reopened.governance().unwrap().proposals[0].weight_for, 1);
}

#[test]
fn a_proposed_block_is_executed_before_its_seal_and_committed_with_the_seal_it_gets_later() {
    let p = pair();
    for n in 0..3 {
        p.producer.submit(data_tx(&p.suite, &p.key, n, &format!("meter/{n}"), b"7 kWh")).unwrap();
    }
    let head = p.producer.head();
    let header = p.producer.build(&head.hash.0, 1_700_000_001_000).unwrap().expect("a block");
    let block = p.producer.candidate_block(&header.seal_hash).expect("kept");
    assert!(block.header.seal.is_empty(), "proposed before its seal");
    // A tampered proposal is refused and not kept.
    let mut bad = block.clone();
    bad.header.state_root = Hash32([9; 32]);
    assert!(matches!(p.follower.accept_proposal(bad.clone()), Err(ChainError::Invalid { .. })));
    let bad_hash = p.suite.hash(&bad.header.sealing_bytes()).unwrap();
    assert!(p.follower.candidate_block(&bad_hash.0).is_none());
    // The follower executes it, without a seal, and says what the engine will judge.
    let seen = p.follower.accept_proposal(block.clone()).unwrap();
    assert_eq!(seen.seal_hash, header.seal_hash);
    assert_eq!(p.follower.head().height, 0, "nothing committed yet");
    // The seal arrives (in BFT: the validators' commit signatures); both commit the same block.
    let seal = p.producer.sign_as_node(&header.seal_hash).unwrap();
    assert!(matches!(p.follower.commit_built(&header.seal_hash, b"not a seal".to_vec()), Err(ChainError::Invalid { .. })), "the engine refuses a bad seal");
    assert!(p.follower.candidate_block(&header.seal_hash).is_some_and(|b| b.header.seal.is_empty()), "and the block stays, unsealed");
    let seen = p.follower.accept_proposal(block).unwrap();
    let mine = p.producer.commit_built(&header.seal_hash, seal.clone()).unwrap();
    let theirs = p.follower.commit_built(&seen.seal_hash, seal).unwrap();
    assert_eq!(mine.hash, theirs.hash);
    assert_eq!(theirs.receipts.len(), 3);
}

/// The test engine under another name, to tell which one serves a height.
struct Renamed(TestEngine, &'static str);

impl ConsensusEngine for Renamed {
    fn name(&self) -> &str {
        self.1
    }
    fn verify_header(&self, parent: &EngineHeader, header: &EngineHeader, validators: &[Validator]) -> Result<(), ConsensusError> {
        if self.1 == "broken/1" {
            // Loads and configures, then traps on its first real call.
            return Err(ConsensusError::Engine { engine: self.1.into(), reason: "wasm trap: unreachable".into() });
        }
        self.0.verify_header(parent, header, validators)
    }
    fn weight(&self, header: &EngineHeader, validators: &[Validator]) -> Result<u64, ConsensusError> {
        self.0.weight(header, validators)
    }
    fn finality_depth(&self, validators: &[Validator]) -> Result<u64, ConsensusError> {
        self.0.finality_depth(validators)
    }
    fn participant(&self, me: &[u8], head: &joule_consensus::Head, saved: &[u8]) -> Result<Box<dyn joule_consensus::Participant>, ConsensusError> {
        self.0.participant(me, head, saved)
    }
}

/// The genesis engine, and one "component" it can load: the bytes `second engine`.
struct Switchable(Arc<TestCrypto>);

impl EngineSource for Switchable {
    fn current(&self) -> Result<Arc<dyn ConsensusEngine>, ConsensusError> {
        Ok(Arc::new(Renamed(TestEngine { suite: self.0.clone() }, "first/1")))
    }
    fn load(&self, component: &[u8], config: &[u8]) -> Result<Arc<dyn ConsensusEngine>, ConsensusError> {
        match (component, config) {
            (b"second engine", b"") => Ok(Arc::new(Renamed(TestEngine { suite: self.0.clone() }, "second/1"))),
            (b"broken engine", b"") => Ok(Arc::new(Renamed(TestEngine { suite: self.0.clone() }, "broken/1"))),
            _ => Err(ConsensusError::Rejected("not a consensus engine".into())),
        }
    }
}

#[test]
fn an_engine_switch_takes_over_at_its_height_on_every_node_and_a_broken_engine_is_refused() {
    use joule_primitives::{Change, Governance};
    let key = Key::new(1);
    let suite = TestCrypto::new();
    let s = spec(&[&key]);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = || -> Arc<dyn EngineSource> { Arc::new(Switchable(suite.clone())) };
    let signer: Arc<dyn BlockSigner> = Arc::new(LocalSigner::new(Zeroizing::new(key.private.clone()), key.public.clone(), suite.clone()));
    let producer = Chain::open(a.path(), &s, policy(), suite.clone(), source(), Some(signer)).unwrap();
    let follower = Chain::open(b.path(), &s, policy(), suite.clone(), source(), None).unwrap();
    let propose = |nonce: u64, bytes: &[u8], config: &str| {
        let component = suite.hash(bytes).unwrap();
        let change = Change::SwitchEngine { from_height: 3, engine: "second".into(), config: config.into(), component };
        signed_tx(&suite, &key, nonce, Payload::Governance(Governance::Propose { changes: vec![change], expires_at: 50, components: vec![bytes.to_vec()] }))
    };
    // What does not load here never reaches a block.
    assert!(producer.submit(propose(0, b"junk", "")).unwrap_err().to_string().contains("does not load here"));
    assert!(producer.submit(propose(0, b"second engine", "bad = 1")).unwrap_err().to_string().contains("does not load here"));
    // One validator of one: it passes in block 1 and takes over at 3.
    producer.submit(propose(0, b"second engine", "")).unwrap();
    let mut blocks = vec![producer.produce(1_700_000_001_000).unwrap().expect("block 1")];
    assert_eq!(producer.governance().unwrap().engines.len(), 1);
    assert_eq!(producer.engine().unwrap().name(), "first/1", "block 2 is still the genesis engine's");
    producer.submit(data_tx(&suite, &key, 1, "k", b"v")).unwrap();
    blocks.push(producer.produce(1_700_000_002_000).unwrap().expect("block 2"));
    assert_eq!(producer.engine().unwrap().name(), "second/1", "block 3 is the new engine's");
    producer.submit(data_tx(&suite, &key, 2, "k", b"w")).unwrap();
    blocks.push(producer.produce(1_700_000_003_000).unwrap().expect("block 3"));
    // A follower meets the switch in the state as it imports, and ends on the same head.
    for b in &blocks {
        follower.import(b.block.clone()).unwrap();
    }
    assert_eq!(follower.head().hash, producer.head().hash);
    assert_eq!(follower.engine().unwrap().name(), "second/1");
}

#[test]
fn committing_a_proposal_that_arrived_sealed_from_a_peer_first_says_it_is_known() {
    let p = pair();
    p.producer.submit(data_tx(&p.suite, &p.key, 0, "k", b"v")).unwrap();
    let head = p.producer.head();
    let header = p.producer.build(&head.hash.0, 1_700_000_001_000).unwrap().expect("a block");
    p.follower.accept_proposal(p.producer.candidate_block(&header.seal_hash).unwrap()).unwrap();
    let seal = p.producer.sign_as_node(&header.seal_hash).unwrap();
    let committed = p.producer.commit_built(&header.seal_hash, seal.clone()).unwrap();
    // The sealed block reaches the follower before its own quorum does.
    p.follower.import(committed.block.clone()).unwrap();
    assert!(matches!(p.follower.commit_built(&header.seal_hash, seal), Err(ChainError::Known { height: 1 })));
    assert!(matches!(p.follower.import(committed.block.clone()), Err(ChainError::Known { height: 1 })), "and again from another peer");
    assert_eq!(p.follower.head().hash, committed.hash);
}

#[test]
fn a_validator_dry_runs_a_candidate_engine_on_its_recent_blocks_and_votes_only_when_it_passes() {
    use joule_primitives::{Change, Governance};
    let (k1, k2) = (Key::new(1), Key::new(2));
    let suite = TestCrypto::new();
    let s = spec(&[&k1, &k2]);
    let dir = tempfile::tempdir().unwrap();
    let signer: Arc<dyn BlockSigner> = Arc::new(LocalSigner::new(Zeroizing::new(k1.private.clone()), k1.public.clone(), suite.clone()));
    let node = Chain::open(dir.path(), &s, policy(), suite.clone(), Arc::new(Switchable(suite.clone())), Some(signer)).unwrap();
    let propose = |nonce: u64, bytes: &[u8]| {
        let component = suite.hash(bytes).unwrap();
        let change = Change::SwitchEngine { from_height: 40, engine: "next".into(), config: String::new(), component };
        (
            component,
            signed_tx(&suite, &k1, nonce, Payload::Governance(Governance::Propose { changes: vec![change], expires_at: 50, components: vec![bytes.to_vec()] })),
        )
    };
    // Validator 1 proposes both; validator 2 seals block 1 (1 mod 2); validator 1's node
    // imports it.
    let (good, p1) = propose(0, b"second engine");
    let (broken, p2) = propose(1, b"broken engine");
    let producer_dir = tempfile::tempdir().unwrap();
    let s2: Arc<dyn BlockSigner> = Arc::new(LocalSigner::new(Zeroizing::new(k2.private.clone()), k2.public.clone(), suite.clone()));
    let producer = Chain::open(producer_dir.path(), &s, policy(), suite.clone(), Arc::new(Switchable(suite.clone())), Some(s2)).unwrap();
    producer.submit(p1).unwrap();
    producer.submit(p2).unwrap();
    let b1 = producer.produce(1_700_000_001_000).unwrap().expect("block 1");
    node.import(b1.block.clone()).unwrap();
    let view = node.governance().unwrap();
    assert_eq!(view.proposals.len(), 2, "{view:?}");
    let run = |c: Hash32| view.dry_runs.iter().find(|d| d.component == c).cloned().expect("a dry run");
    let ok = run(good);
    assert!(ok.passed, "{ok:?}");
    assert_eq!((ok.engine.as_deref(), ok.blocks, ok.height), (Some("second/1"), 1, 1));
    assert_eq!(ok.accepted, 1, "block 1 is valid under the candidate too (same rules, another name)");
    assert_eq!(ok.actions, vec!["build".to_string()], "height 2 is this node's turn (2 mod 2)");
    let bad = run(broken);
    assert!(!bad.passed && bad.failure.as_deref().is_some_and(|f| f.contains("trap")), "{bad:?}");
    // The node votes for the one that passed, not for the broken one.
    let vote = |id| Payload::Governance(Governance::Vote { proposal: id, expires_at: 50 });
    let ids: Vec<Hash32> = view.proposals.iter().map(|p| p.id).collect();
    let voted: Vec<bool> = ids.iter().map(|id| node.submit_as_node(vote(*id)).is_ok()).collect();
    let refused = ids
        .iter()
        .position(|id| {
            view.proposals.iter().any(|p| p.id == *id && p.changes.iter().any(|c| matches!(c, Change::SwitchEngine { component, .. } if *component == broken)))
        })
        .unwrap();
    assert!(!voted[refused] && voted[1 - refused], "{voted:?}");
    let err = node.submit_as_node(vote(ids[refused])).unwrap_err().to_string();
    assert!(err.contains("failed the dry run"), "{err}");
}

/// A binding of `key`'s account to `new` in the second test suite, with its proof.
fn bind(p: &Pair, key: &Key, nonce: u64, new: &Key) -> Transaction {
    let account = p.suite.hash(&key.public).unwrap();
    let channel = p.producer.channel().clone();
    let second = TestCrypto::second();
    let proof = second.sign(&new.private, &joule_primitives::bind_key_message(&channel, &account, "test2", &new.public)).unwrap();
    signed_tx(&p.suite, key, nonce, Payload::BindKey { suite: "test2".into(), public_key: new.public.clone(), proof })
}

#[test]
fn a_suite_switch_passes_only_after_every_validator_bound_a_key_with_a_valid_proof() {
    use joule_primitives::{Change, Governance, ReceiptStatus};
    let p = pair();
    let (new, other, stranger) = (Key::new(21), Key::new(22), Key::new(3));
    let switch = Governance::Propose {
        changes: vec![Change::SwitchSuite { from_height: 10, suite: "test2".into(), nodes: vec![] }],
        expires_at: 50,
        components: vec![],
    };

    // Bad bindings are refused at admission and cost no nonce.
    let mut wrong_proof = bind(&p, &p.key, 0, &new);
    if let Payload::BindKey { proof, .. } = &mut wrong_proof.body.payload {
        proof[0] ^= 1;
    }
    let wrong_proof = signed_tx(&p.suite, &p.key, 0, wrong_proof.body.payload);
    assert!(p.producer.submit(wrong_proof).unwrap_err().to_string().contains("not the test2 key's signature"));
    let to_current = signed_tx(&p.suite, &p.key, 0, Payload::BindKey { suite: "test".into(), public_key: new.public.clone(), proof: vec![1] });
    assert!(p.producer.submit(to_current).unwrap_err().to_string().contains("already uses suite test"));
    let unknown = signed_tx(&p.suite, &p.key, 0, Payload::BindKey { suite: "sm9".into(), public_key: new.public.clone(), proof: vec![1] });
    assert!(p.producer.submit(unknown).unwrap_err().to_string().contains("cannot bind suite sm9"));

    // Before the validator has bound a key, the switch has the votes but fails.
    p.producer.submit(signed_tx(&p.suite, &p.key, 0, Payload::Governance(switch.clone()))).unwrap();
    let b1 = p.producer.produce(1_700_000_001_000).unwrap().expect("block 1");
    let failed = b1.receipts[0].events.iter().find(|e| e.topic == "failed").expect("the proposal failed");
    assert!(String::from_utf8_lossy(&failed.data).contains("1 of 1 validators have not bound a key of suite test2"), "{failed:?}");
    assert!(p.producer.governance().unwrap().suites.is_empty());

    // The validator binds; a stranger cannot bind the same key; the switch then passes.
    p.producer.submit(bind(&p, &p.key, 1, &new)).unwrap();
    p.producer.submit(bind(&p, &stranger, 0, &new)).unwrap();
    let b2 = p.producer.produce(1_700_000_002_000).unwrap().expect("block 2");
    assert_eq!(b2.receipts[0].status, ReceiptStatus::Success);
    assert_eq!(b2.receipts[0].events[0].topic, "key_bound");
    assert!(matches!(&b2.receipts[1].status, ReceiptStatus::Reverted(why) if why.contains("another account has bound")), "{:?}", b2.receipts[1].status);
    let account = p.suite.hash(&p.key.public).unwrap();
    assert_eq!(p.producer.binding(&account, "test2").unwrap().map(|b| b.public_key), Some(new.public.clone()));

    p.producer.submit(signed_tx(&p.suite, &p.key, 2, Payload::Governance(switch))).unwrap();
    let b3 = p.producer.produce(1_700_000_003_000).unwrap().expect("block 3");
    assert!(b3.receipts[0].events.iter().any(|e| e.topic == "passed"), "{:?}", b3.receipts[0].events);
    let suites = p.producer.governance().unwrap().suites;
    assert_eq!(suites.iter().map(|a| (a.from_height, a.suite.as_str())).collect::<Vec<_>>(), vec![(10, "test2")]);

    // Rebinding replaces the key and frees the old one for another account.
    p.producer.submit(bind(&p, &p.key, 3, &other)).unwrap();
    p.producer.submit(bind(&p, &stranger, 1, &new)).unwrap();
    let b4 = p.producer.produce(1_700_000_004_000).unwrap().expect("block 4");
    assert!(b4.receipts.iter().all(|r| r.status == ReceiptStatus::Success), "{:?}", b4.receipts);
    assert_eq!(p.producer.binding(&account, "test2").unwrap().map(|b| b.public_key), Some(other.public.clone()));

    // A follower executes the same blocks to the same state.
    for b in [b1, b2, b3, b4] {
        p.follower.import(b.block.clone()).unwrap();
    }
    assert_eq!(p.follower.head().hash, p.producer.head().hash);
    assert_eq!(p.follower.governance().unwrap().suites, suites);
}

#[test]
fn a_suite_switch_moves_the_state_accounts_and_validators_at_its_height_and_a_vote_frees_a_frozen_account() {
    use crate::testkit::TestEngines;
    use joule_primitives::{Change, Governance, ReceiptStatus};
    let (v, user, idle) = (Key::new(1), Key::new(5), Key::new(6));
    let (v2, user2) = (Key::new(21), Key::new(25));
    let (first, second) = (TestCrypto::new(), TestCrypto::second());
    let spec = spec(&[&v]);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let open = |dir: &Path, signer: Option<Arc<dyn BlockSigner>>| {
        let engines: Arc<dyn EngineSource> = Arc::new(TestEngines(Arc::new(TestEngine { suite: first.clone() })));
        Chain::open(dir, &spec, policy(), first.clone(), engines, signer).unwrap()
    };
    let producer = open(a.path(), Some(Arc::new(LocalSigner::new(Zeroizing::new(v.private.clone()), v.public.clone(), first.clone()))));
    producer.add_signer("test2", Arc::new(LocalSigner::new(Zeroizing::new(v2.private.clone()), v2.public.clone(), second.clone())));
    let follower = open(b.path(), None);
    let p = Pair { producer, follower, key: Key::new(1), suite: first.clone(), _dirs: (a, b) };
    let mut t = 1_700_000_001_000;
    let mut produce = |c: &Chain| {
        t += 1000;
        c.produce(t).unwrap().expect("a block")
    };
    let long = vec![7u8; 300];
    let mut blocks = vec![];

    // Block 1: the validator and a user bind keys of test2; the user writes a long record
    // (kept in its transaction) and a short one (kept in the tree); another user writes
    // and binds nothing.
    for tx in [
        bind(&p, &v, 0, &v2),
        data_tx(&first, &user, 0, "meter/long", &long),
        data_tx(&first, &user, 1, "meter/short", b"42"),
        bind(&p, &user, 2, &user2),
        data_tx(&first, &idle, 0, "idle", b"1"),
    ] {
        p.producer.submit(tx).unwrap();
    }
    blocks.push(produce(&p.producer));
    assert!(blocks[0].receipts.iter().all(|r| r.status == ReceiptStatus::Success), "{:?}", blocks[0].receipts);
    // Block 2: the switch to test2 from block 4 passes.
    let switch =
        Governance::Propose { changes: vec![Change::SwitchSuite { from_height: 4, suite: "test2".into(), nodes: vec![] }], expires_at: 50, components: vec![] };
    p.producer.submit(signed_tx(&first, &v, 1, Payload::Governance(switch))).unwrap();
    blocks.push(produce(&p.producer));
    assert!(blocks[1].receipts[0].events.iter().any(|e| e.topic == "passed"));
    // Block 3, the last under test: a transaction of the old suite waiting in the pool
    // (nonce gap) is dropped when it commits, saying why.
    p.producer.submit(data_tx(&first, &user, 3, "meter/short", b"43")).unwrap();
    let stranded = data_tx(&first, &user, 5, "late", b"x");
    let stranded_hash = stranded.hash(first.as_ref()).unwrap();
    p.producer.submit(stranded).unwrap();
    blocks.push(produce(&p.producer));
    assert_eq!(blocks[2].block.header.crypto_suite, "test");
    assert!(matches!(p.producer.pool_status(&stranded_hash), Some(PoolStatus::Evicted(e)) if e.reason.code() == "suite_switched"));
    assert_eq!(p.producer.suite().suite().id, "test2", "new transactions are for the next block's suite");
    assert_eq!(p.producer.members().validators[0].public_key, v2.public, "the next block's validator is the bound key");

    // Old-suite transactions are refused from now on; the moved account goes on from its
    // nonce under its new key.
    let refused = p.producer.submit(data_tx(&first, &user, 4, "k", b"v")).unwrap_err();
    assert_eq!(refused.code(), "wrong_algorithm", "{refused}");
    p.producer.submit(data_tx(&second, &user2, 4, "meter/short", b"44")).unwrap();
    blocks.push(produce(&p.producer));
    let b4 = &blocks[3];
    assert_eq!((b4.block.header.height, b4.block.header.crypto_suite.as_str()), (4, "test2"));
    assert_eq!(b4.block.header.proposer, v2.public, "sealed with the bound key");
    assert_eq!(b4.receipts[0].status, ReceiptStatus::Success);
    assert_eq!(b4.block.header.parent_hash, blocks[2].hash, "the parent is named by its own suite's hash");
    assert_eq!(b4.hash, b4.block.header.hash(second.as_ref()).unwrap());

    // The state under test2: the user's records under its new id, the idle account kept
    // under its old one (nobody can send from it), the governance account moved.
    let moved = second.hash(&user2.public).unwrap();
    let get = |c: &Chain, id: &Hash32, key: &str| c.state(id, key, true).unwrap().value;
    assert_eq!(get(&p.producer, &moved, "meter/long"), Some(long.clone()));
    assert_eq!(get(&p.producer, &moved, "meter/short"), Some(b"44".to_vec()));
    assert_eq!(p.producer.account(&moved).unwrap().account.map(|a| a.nonce), Some(5));
    let idle_id = first.hash(&idle.public).unwrap();
    assert_eq!(get(&p.producer, &idle_id, "idle"), Some(b"1".to_vec()));
    let answer = p.producer.state(&moved, "meter/long", true).unwrap();
    let proofs = answer.proof.unwrap();
    assert!(proofs.storage.verify(second.as_ref(), &proofs.storage_root, &second.hash(b"meter/long").unwrap(), Some(&second.hash(&long).unwrap())).unwrap());
    assert_eq!(p.producer.governance().unwrap().members.validators[0].public_key, v2.public);
    // History keeps its suite: block 1's transaction and state, proved under test.
    let before = p.producer.state_at_height(&first.hash(&user.public).unwrap(), "meter/short", true, Some(3)).unwrap();
    assert_eq!(before.value, Some(b"43".to_vec()));
    let tx1 = blocks[0].receipts[1].tx_hash;
    assert_eq!(p.producer.tx(&tx1).unwrap().unwrap().block_hash, blocks[0].hash);

    // The idle account, frozen (no test2 key hashes to its id), is moved by vote to a key
    // of test2; its holder then goes on from its nonce, its record under the new id.
    let idle2 = Key::new(26);
    let mv =
        Governance::Propose { changes: vec![Change::MoveAccount { account: idle_id, public_key: idle2.public.clone() }], expires_at: 50, components: vec![] };
    p.producer.submit(signed_tx(&second, &v2, 2, Payload::Governance(mv))).unwrap();
    blocks.push(produce(&p.producer));
    let events = &blocks[4].receipts[0].events;
    let moved_to = second.hash(&idle2.public).unwrap();
    assert!(events.iter().any(|e| e.topic == "account_moved" && e.data == moved_to.0.to_vec()), "{events:?}");
    assert_eq!(p.producer.account(&idle_id).unwrap().account, None, "the old id is empty");
    assert_eq!(get(&p.producer, &moved_to, "idle"), Some(b"1".to_vec()));
    p.producer.submit(data_tx(&second, &idle2, 1, "idle", b"2")).unwrap();
    blocks.push(produce(&p.producer));
    assert_eq!(get(&p.producer, &moved_to, "idle"), Some(b"2".to_vec()));
    // A move to a key in use, or of a contract-less account that does not exist, fails.
    let bad = Governance::Propose {
        changes: vec![Change::MoveAccount { account: Hash32([9; 32]), public_key: idle2.public.clone() }],
        expires_at: 50,
        components: vec![],
    };
    p.producer.submit(signed_tx(&second, &v2, 3, Payload::Governance(bad))).unwrap();
    blocks.push(produce(&p.producer));
    let failed = blocks[6].receipts[0].events.iter().find(|e| e.topic == "failed").expect("the move failed");
    assert!(String::from_utf8_lossy(&failed.data).contains("no such account"), "{failed:?}");

    // A follower crosses the switch the same way, and so does a node reopened after it.
    for c in &blocks {
        p.follower.import(c.block.clone()).unwrap();
    }
    assert_eq!(p.follower.head().hash, p.producer.head().hash);
    let dir = p._dirs.1.path().to_path_buf();
    let Pair { producer, follower, .. } = p;
    drop(follower);
    let reopened = open(&dir, None);
    assert_eq!(reopened.head().hash, producer.head().hash);
    assert_eq!(reopened.suite().suite().id, "test2");
    assert_eq!(reopened.members().validators[0].public_key, v2.public);
    producer.submit(data_tx(&second, &user2, 5, "after", b"restart")).unwrap();
    t += 1000;
    let next = producer.produce(t).unwrap().expect("a block after the reopening");
    reopened.import(next.block.clone()).unwrap();
    assert_eq!(get(&reopened, &moved, "after"), Some(b"restart".to_vec()));
}
