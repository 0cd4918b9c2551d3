//! Consensus engines as plugins: the PoA component judged through its WIT interface, with
//! the channel's suite behind its `chain-crypto` import; a chain stops producing when its
//! engine is deactivated and resumes when it is back.

use crate::support::{crypto, crypto_with, data_tx, package, suite, tempdir, test_plugin_dir};
use joule_consensus::{Action, ConsensusEngine, ConsensusError, EngineHeader, Event, Head, Validator};
use joule_consensus_wasm::EngineComponent;
use joule_crypto::SuiteCrypto;
use joule_ledger::chain::{BlockSigner, ChainError, LocalSigner};
use joule_node::config::{BlockPolicyConfig, ChannelConfig, ValidatorConfig};
use joule_node::open_chain;
use joule_primitives::ChannelId;
use joule_primitives::CryptoSuite;
use joule_primitives::{ChainCrypto, Hasher};
use joule_wasm::Limits;
use std::sync::Arc;
use std::time::Duration;

fn header(s: &SuiteCrypto, height: u64, ts: u64, proposer: &[u8], key: Option<&[u8]>) -> EngineHeader {
    let seal_hash = s.hash(format!("header {height}").as_bytes()).unwrap().0.to_vec();
    let seal = key.map(|k| s.sign(k, &seal_hash).unwrap()).unwrap_or_default();
    EngineHeader { height, parent_hash: vec![0; 32], timestamp_ms: ts, seal_hash, proposer: proposer.to_vec(), seal }
}

#[test]
fn the_poa_component_judges_headers_with_the_channel_suite() {
    let c = crypto();
    let plugin = c.registry().route("consensus", "consensus", "poa").expect("consensus-poa is active");
    assert_eq!(plugin.manifest.name, "consensus-poa");
    for suite_id in ["gm", "intl"] {
        let s = SuiteCrypto::new(CryptoSuite::named(suite_id).unwrap(), c.clone());
        let engine = plugin.linked::<EngineComponent>().unwrap().bind(Arc::new(s.clone()), b"min-block-interval-ms = 10".to_vec()).unwrap();
        assert_eq!(engine.name(), "poa/0.3.1");
        let (a, b) = (c.generate_key(&s.suite().signature).unwrap(), c.generate_key(&s.suite().signature).unwrap());
        let vals = vec![Validator { public_key: a.public_key.clone(), weight: 1 }, Validator { public_key: b.public_key.clone(), weight: 1 }];
        let parent = header(&s, 6, 1000, &a.public_key, Some(&a.private_key));
        let good = header(&s, 7, 1010, &b.public_key, Some(&b.private_key));
        // The participants, each in its own instance: height 7 is b's turn (7 mod 2), so b
        // builds, signs the built block's seal hash and commits with that signature and the
        // window of recent proposers (a, who sealed the head); a sealed the head, and with
        // two validators seals one block of any two, so it does not even wait to seal out of
        // turn.
        let head = Head { header: parent.clone(), hash: vec![6; 32], validators: vals.clone() };
        let mut pa = engine.participant(&a.public_key, &head, &[]).unwrap();
        let mut pb = engine.participant(&b.public_key, &head, &[]).unwrap();
        assert_eq!(pa.handle(Event::NewHead(head.clone())).unwrap(), vec![]);
        assert_eq!(pb.handle(Event::NewHead(head.clone())).unwrap(), vec![Action::Build]);
        let built = EngineHeader { parent_hash: head.hash.clone(), seal: vec![], ..good.clone() };
        assert_eq!(pb.handle(Event::Built(built)).unwrap(), vec![Action::Sign { request: 7, message: good.seal_hash.clone() }]);
        let window = a.public_key[a.public_key.len() - 4..].to_vec();
        let poa3 = [b"poa3".as_slice(), &[1], &window, &good.seal].concat();
        assert_eq!(
            pb.handle(Event::Signed { request: 7, signature: good.seal.clone() }).unwrap(),
            vec![Action::Commit { seal_hash: good.seal_hash.clone(), seal: poa3.clone() }]
        );
        let committed = EngineHeader { seal: poa3, ..good.clone() };
        engine.verify_header(&parent, &committed, &vals).unwrap_or_else(|e| panic!("{suite_id}: the committed seal: {e}"));
        assert_eq!(engine.weight(&good, &vals).unwrap(), 2, "in turn");
        let late = header(&s, 7, 4000, &a.public_key, Some(&a.private_key));
        engine.verify_header(&parent, &late, &vals).unwrap_or_else(|e| panic!("{suite_id}: out of turn after the delay: {e}"));
        assert_eq!(engine.weight(&late, &vals).unwrap(), 1, "out of turn");
        assert_eq!(engine.finality_depth(&vals).unwrap(), 2, "a majority of two validators");
        engine.verify_header(&parent, &good, &vals).unwrap_or_else(|e| panic!("{suite_id}: {e}"));
        let reject = |h: &EngineHeader| match engine.verify_header(&parent, h, &vals) {
            Err(ConsensusError::Rejected(r)) => r,
            other => panic!("{suite_id}: expected a rejection, got {other:?}"),
        };
        assert!(reject(&header(&s, 7, 1010, &a.public_key, Some(&a.private_key))).contains("turn"));
        assert!(reject(&header(&s, 7, 1010, &b.public_key, Some(&a.private_key))).contains("seal"), "signed by another validator");
        let mut garbage = good.clone();
        garbage.seal = vec![0x30, 0x03, 0x02, 0x01, 0x00];
        assert!(reject(&garbage).contains("seal"), "an unparsable seal is a rejection, not an engine failure");
        assert!(reject(&header(&s, 7, 1009, &b.public_key, Some(&b.private_key))).contains("timestamp"), "configured minimum interval");
        assert!(reject(&header(&s, 7, 1010, &b.public_key, None)).contains("not sealed"));
        // With its window, a's late block is refused: it sealed the parent.
        let late3 = EngineHeader { seal: [b"poa3".as_slice(), &[1], &window, &late.seal].concat(), ..late.clone() };
        assert!(reject(&late3).contains("one of the last 1"), "{suite_id}");
    }
    let s = SuiteCrypto::new(CryptoSuite::named("gm").unwrap(), c.clone());
    match plugin.linked::<EngineComponent>().unwrap().bind(Arc::new(s), b"min-block-interval = 1".to_vec()) {
        Err(ConsensusError::Engine { reason, .. }) => assert!(reason.contains("unknown field"), "{reason}"),
        other => panic!("a bad engine configuration must fail at bind, got {:?}", other.map(|e| e.name().to_string())),
    }
}

fn channel(consensus: &str, consensus_config: &str, validator: &[u8]) -> ChannelConfig {
    ChannelConfig {
        id: ChannelId::new("grid").unwrap(),
        crypto_suite: "gm".into(),
        consensus: consensus.into(),
        consensus_config: consensus_config.into(),
        gas_limit: 1_000_000,
        block_gas_limit: 1_000_000_000,
        gas_schedule: 1,
        contract_deployers: Default::default(),
        genesis_time_ms: 1_700_000_000_000,
        validators: vec![ValidatorConfig { public_key: hex::encode(validator), weight: 1 }],
        block_policy: BlockPolicyConfig { interval_ms: 100, max_transactions: 100, max_bytes: 1 << 20, produce_empty_blocks: false },
        nodes: vec![],
        identity: None,
    }
}

#[test]
fn a_misbehaving_consensus_engine_fails_its_block_and_leaves_the_chain_intact() {
    let c = crypto_with(Limits { call_timeout: Duration::from_millis(300), max_memory_bytes: 64 << 20, ..Limits::default() });
    c.registry().install(package(&test_plugin_dir().join("hostile-consensus.toml"))).unwrap();
    c.registry().activate("hostile-consensus", None).unwrap();
    let kp = c.generate_key("sm2").unwrap();
    for (mode, expect) in [
        ("loop-verify", "exceeded its time budget"),
        ("trap-seal", "trapped"),
        ("commit-unbuilt", "no block built or proposed here"),
        ("reject", "rejects every header"),
        ("grow-memory", "exceeded its memory limit of 64 MiB"),
    ] {
        let d = tempdir();
        let signer: Arc<dyn BlockSigner> = Arc::new(LocalSigner::new(kp.private_key.clone(), kp.public_key.clone(), Arc::new(suite("gm"))));
        let chain = open_chain(d.path(), &channel("hostile", mode, &kp.public_key), &c, Some(signer)).unwrap();
        let s = suite("gm");
        chain.submit(data_tx(&s, &kp, "grid", 0, "a", b"1")).unwrap();
        for attempt in 0..2 {
            let err = chain.produce(1_700_000_000_100 + attempt).err().map(|e| e.to_string()).unwrap_or_else(|| panic!("{mode}: a block was produced"));
            assert!(err.contains(expect), "{mode}, attempt {attempt}: {err}");
            assert_eq!(chain.head().height, 0, "{mode}: nothing committed");
            assert_eq!(chain.pool_len(), 1, "{mode}: the transaction waits in the pool");
        }
        // The chain still answers: state, blocks, and a reopen finds the same head.
        assert!(chain.state(&s.hash(&kp.public_key).unwrap(), "a", true).unwrap().value.is_none());
        drop(chain);
        assert_eq!(open_chain(d.path(), &channel("hostile", mode, &kp.public_key), &c, None).unwrap().head().height, 0);
    }
    // A configuration the engine refuses stops the channel at start-up, with its reason.
    let d = tempdir();
    let err = open_chain(d.path(), &channel("hostile", "nonsense", &kp.public_key), &c, None).err().expect("refused").to_string();
    assert!(err.contains("unknown mode"), "{err}");
}

#[test]
fn a_chain_stops_producing_without_its_engine_and_resumes_when_it_returns() {
    let c = crypto();
    let kp = c.generate_key("sm2").unwrap();
    let config = channel("poa", "", &kp.public_key);
    let d = tempdir();
    let signer: Arc<dyn BlockSigner> = Arc::new(LocalSigner::new(kp.private_key.clone(), kp.public_key.clone(), Arc::new(suite("gm"))));
    let chain = open_chain(d.path(), &config, &c, Some(signer)).unwrap();
    assert!(chain.produce(1_700_000_000_100).unwrap().is_none(), "nothing to put in a block, and no empty blocks");
    let s = suite("gm");
    chain.submit(data_tx(&s, &kp, "grid", 0, "a", b"1")).unwrap();
    let b1 = chain.produce(1_700_000_000_200).unwrap().expect("block 1");
    assert_eq!((b1.block.header.height, b1.block.transactions.len()), (1, 1));

    c.registry().deactivate("consensus-poa").unwrap();
    chain.submit(data_tx(&s, &kp, "grid", 1, "a", b"2")).unwrap();
    match chain.produce(1_700_000_000_300) {
        Err(ChainError::Setup { reason, .. }) => assert!(reason.contains("no active plugin provides the consensus engine \"poa\""), "{reason}"),
        other => panic!("expected a setup error, got {:?}", other.map(|b| b.map(|b| b.block.header.height))),
    }
    assert_eq!(chain.head().height, 1, "nothing was committed without an engine");
    c.registry().activate("consensus-poa", None).unwrap();
    let b2 = chain.produce(1_700_000_000_400).unwrap().expect("block 2");
    assert_eq!(b2.block.header.height, 2);
    // Reopening finds the same head; a different validator set is a different chain.
    drop(chain);
    let chain = open_chain(d.path(), &config, &c, None).unwrap();
    assert_eq!((chain.head().height, chain.head().hash), (2, b2.hash));
    drop(chain);
    let mut other = config.clone();
    other.validators[0].public_key = hex::encode(c.generate_key("sm2").unwrap().public_key);
    let err = open_chain(d.path(), &other, &c, None).err().expect("other genesis refused").to_string();
    assert!(err.contains("different genesis fields"), "{err}");
}
