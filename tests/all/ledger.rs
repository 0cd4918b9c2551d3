//! The ledger core so far: execution, atomic commit, authenticated state with proofs,
//! determinism across nodes (issue 3, in progress).

use crate::support::{crypto, tempdir};
use joule_crypto::SuiteCrypto;
use joule_ledger::execute::{BlockInfo, ContractEnv, ExecError, Mode, execute};
use joule_ledger::state::{AccountState, StoredValue};
use joule_ledger::store::{BlockCommit, ChainStore};
use joule_primitives::CryptoSuite;
use joule_primitives::smt::{GLOBAL_TREE, Root, Smt};
use joule_primitives::{Block, BlockHeader, ChannelId, Encode, Hash32, Payload, ReceiptStatus, Transaction, UnsignedTransaction, merkle};
use joule_primitives::{ChainCrypto, Hasher};

fn suite(id: &str) -> SuiteCrypto {
    SuiteCrypto::new(CryptoSuite::named(id).expect("suite"), crypto())
}

fn data_tx(s: &SuiteCrypto, sk: &[u8], pk: &[u8], nonce: u64, key: &str, value: &[u8], gas_limit: u64) -> Transaction {
    let body = UnsignedTransaction {
        channel: ChannelId::new("grid").unwrap(),
        sender: pk.to_vec(),
        nonce,
        gas_limit,
        sig_alg: s.suite().signature.clone(),
        payload: Payload::Data { key: key.into(), value: value.to_vec() },
    };
    let sig = s.sign(sk, &body.signing_bytes()).expect("sign");
    body.sign_with(sig)
}

/// Execute and commit one block on top of the store's head; returns the committed block.
fn produce(store: &ChainStore, s: &SuiteCrypto, txs: Vec<Transaction>, timestamp_ms: u64) -> Result<(Block, Vec<joule_primitives::Receipt>), ExecError> {
    let view = store.read().unwrap();
    let head = view.head().unwrap();
    let (height, parent_hash, parent_root) = match head {
        Some((h, hash)) => (h + 1, hash, Root { tree: GLOBAL_TREE, version: h, hash: view.block(h).unwrap().unwrap().header.state_root }),
        None => (0, Hash32::ZERO, Root::empty(GLOBAL_TREE, 0)),
    };
    let hashes: Vec<Hash32> = txs.iter().map(|t| t.hash(s).unwrap()).collect();
    let view = std::sync::Arc::new(view);
    let suite: std::sync::Arc<dyn joule_primitives::ChainCrypto> = std::sync::Arc::new(s.clone());
    let info = BlockInfo { channel: "grid".into(), height, timestamp_ms, mode: Mode::Import, finality_depth: 0 };
    let exec = execute(&view, &suite, &ContractEnv::none(), &info, parent_root, &txs, &hashes, None)?;
    let encoded: Vec<Vec<u8>> = txs.iter().map(Encode::encode).collect();
    let receipts_enc: Vec<Vec<u8>> = exec.receipts.iter().map(Encode::encode).collect();
    let header = BlockHeader {
        channel: ChannelId::new("grid").unwrap(),
        height,
        parent_hash,
        timestamp_ms,
        tx_root: merkle::root(s, &encoded).unwrap(),
        state_root: exec.state_root.hash,
        receipts_root: merkle::root(s, &receipts_enc).unwrap(),
        proposer: vec![],
        crypto_suite: s.suite().id.clone(),
        seal: vec![],
    };
    let block = Block { header, transactions: txs };
    let hash = block.header.hash(s).unwrap();
    drop(view);
    store
        .commit(BlockCommit {
            block: &block,
            hash,
            tx_hashes: &hashes,
            receipts: &exec.receipts,
            nodes: &exec.nodes,
            stale: &exec.stale,
            next_tree: exec.next_tree,
            events: &exec.events,
            codes: &exec.codes,
            contract_kv: &exec.contract_kv,
            storage_keys: &exec.storage_keys,
        })
        .unwrap();
    Ok((block, exec.receipts))
}

#[test]
fn data_records_commit_with_provable_state_and_survive_reopen() {
    let s = suite("gm");
    let kp = s.crypto().generate_key("sm2").unwrap();
    let d = tempdir();
    let path = d.path().join("chain.redb");
    let store = ChainStore::open(&path).unwrap();
    produce(&store, &s, vec![], 1).unwrap();
    let txs = vec![
        data_tx(&s, &kp.private_key, &kp.public_key, 0, "meter/7/2026-11-25", b"42.5 kWh", 100_000),
        data_tx(&s, &kp.private_key, &kp.public_key, 1, "meter/9/2026-11-25", b"17.0 kWh", 100_000),
        data_tx(&s, &kp.private_key, &kp.public_key, 2, "meter/7/2026-11-25", b"43.0 kWh", 10),
    ];
    let (block, receipts) = produce(&store, &s, txs, 2).unwrap();
    assert_eq!(receipts.iter().map(|r| r.status.clone()).collect::<Vec<_>>(), [ReceiptStatus::Success, ReceiptStatus::Success, ReceiptStatus::OutOfGas]);
    assert_eq!(receipts[2].gas_used, 10, "an out-of-gas transaction is charged its limit");
    drop(store);

    // Reopen: head, block, tx index, receipts and state all come back.
    let store = ChainStore::open(&path).unwrap();
    let view = store.read().unwrap();
    let (height, hash) = view.head().unwrap().unwrap();
    assert_eq!((height, hash), (1, block.header.hash(&s).unwrap()));
    let tx1 = block.transactions[1].hash(&s).unwrap();
    assert_eq!(view.tx_location(&tx1).unwrap().map(|l| (l.height, l.index)), Some((1, 1)));
    assert_eq!(view.receipts(1).unwrap().unwrap(), receipts);
    assert_eq!(view.height_of(&hash).unwrap(), Some(1));

    // A client holding only the header's state root checks the account and the record.
    let root = Root { tree: GLOBAL_TREE, version: 1, hash: block.header.state_root };
    let smt = Smt::new(&view, &s, u64::MAX);
    let account_id = s.hash(&kp.public_key).unwrap();
    let leaf = smt.get(&root, &account_id).unwrap().expect("account present");
    let state = AccountState::from_leaf(&leaf).unwrap();
    let account = state.account.clone();
    assert_eq!(leaf.value, s.hash(&account.encode()).unwrap(), "the tree commits to the account's encoding");
    assert_eq!(account.nonce, 3, "the out-of-gas transaction still used its nonce");
    assert!(smt.prove(&root, &account_id).unwrap().verify(&s, &root.hash, &account_id, Some(&leaf.value)).unwrap());
    let key = s.hash(b"meter/7/2026-11-25").unwrap();
    let storage = state.storage_root().expect("a storage tree");
    let record = smt.get(&storage, &key).unwrap().unwrap();
    let value = match StoredValue::decode(&record.data).unwrap() {
        StoredValue::Inline(v) => v,
        StoredValue::InTx(at) => view.data_value(at).unwrap(),
    };
    assert_eq!(value, b"42.5 kWh", "the out-of-gas write did not happen");
    let proof = smt.prove(&storage, &key).unwrap();
    assert!(proof.verify(&s, &account.storage_root, &key, Some(&s.hash(b"42.5 kWh").unwrap())).unwrap());
    assert!(!proof.verify(&s, &account.storage_root, &key, Some(&s.hash(b"43.0 kWh").unwrap())).unwrap());
    let absent = s.hash(b"meter/8/2026-11-25").unwrap();
    assert!(smt.prove(&storage, &absent).unwrap().verify(&s, &account.storage_root, &absent, None).unwrap());
    // Events are indexed by contract (here the sender's account) and topic.
    let located = view.event_locations(&account_id, Some(&s.hash(b"data").unwrap()), 10).unwrap();
    assert_eq!(located.iter().map(|l| (l.height, l.index)).collect::<Vec<_>>(), [(1, 0), (1, 1)]);
}

#[test]
fn replayed_or_skipped_nonces_make_a_block_invalid_and_change_nothing() {
    let s = suite("intl");
    let kp = s.crypto().generate_key("ecdsa-p256").unwrap();
    let d = tempdir();
    let store = ChainStore::open(&d.path().join("chain.redb")).unwrap();
    produce(&store, &s, vec![data_tx(&s, &kp.private_key, &kp.public_key, 0, "k", b"v", 100_000)], 1).unwrap();
    let head = store.read().unwrap().head().unwrap();
    for nonce in [0, 2] {
        let e = produce(&store, &s, vec![data_tx(&s, &kp.private_key, &kp.public_key, nonce, "k", b"w", 100_000)], 2).expect_err("invalid nonce");
        assert!(matches!(e, ExecError::Nonce { got, want: 1, .. } if got == nonce), "{e}");
    }
    assert_eq!(store.read().unwrap().head().unwrap(), head);
    let deploy = UnsignedTransaction {
        channel: ChannelId::new("grid").unwrap(),
        sender: kp.public_key.clone(),
        nonce: 1,
        gas_limit: 1_000_000,
        sig_alg: "ecdsa-p256".into(),
        payload: Payload::Deploy { code: vec![0, 97, 115, 109], init_args: vec![], upgradable: false },
    }
    .sign_with(vec![]);
    assert!(matches!(produce(&store, &s, vec![deploy], 2), Err(ExecError::Unsupported { kind: "deploy", .. })));
}

#[test]
fn the_same_transactions_give_byte_identical_blocks_on_two_stores() {
    let s = suite("gm");
    let kp = s.crypto().generate_key("sm2").unwrap();
    let txs: Vec<Transaction> =
        (0..20).map(|n| data_tx(&s, &kp.private_key, &kp.public_key, n, &format!("k{}", n % 7), format!("v{n}").as_bytes(), 100_000)).collect();
    let (d1, d2) = (tempdir(), tempdir());
    let (a, b) = (ChainStore::open(&d1.path().join("c")).unwrap(), ChainStore::open(&d2.path().join("c")).unwrap());
    for store in [&a, &b] {
        for chunk in txs.chunks(6) {
            produce(store, &s, chunk.to_vec(), 1000).unwrap();
        }
    }
    let (va, vb) = (a.read().unwrap(), b.read().unwrap());
    assert_eq!(va.head().unwrap(), vb.head().unwrap());
    for h in 0..4 {
        assert_eq!(va.block(h).unwrap().unwrap().encode(), vb.block(h).unwrap().unwrap().encode(), "block {h}");
    }
}

mod pool {
    use super::{data_tx, suite};
    use joule_ledger::pool::{PoolConfig, Rejection, TxPool, decode};
    use joule_primitives::ChainCrypto;
    use joule_primitives::{ChannelId, Encode, Payload, UnsignedTransaction};
    use std::collections::HashSet;

    const T0: u64 = 1_700_000_000_000;

    fn pool(config: PoolConfig) -> TxPool {
        TxPool::new(ChannelId::new("grid").unwrap(), config)
    }

    #[test]
    fn every_bad_transaction_gets_a_precise_reason_and_changes_nothing() {
        let s = suite("gm");
        let kp = s.crypto().generate_key("sm2").unwrap();
        let mut p = pool(PoolConfig { gas_limit: 50_000, max_nonce_ahead: 5, max_tx_bytes: 4096, ..PoolConfig::default() });
        let at = |n: u64| move |_: &[u8]| n;
        let good = data_tx(&s, &kp.private_key, &kp.public_key, 3, "k", b"v", 20_000);
        let good_hash = p.admit(good.clone(), &s, T0, at(3)).expect("admitted");

        let mut cases: Vec<(&str, Result<_, Rejection>)> = vec![];
        let mut bad_sig = data_tx(&s, &kp.private_key, &kp.public_key, 4, "k", b"v", 20_000);
        bad_sig.body.nonce = 5; // signed over nonce 4
        cases.push(("bad_signature", p.admit(bad_sig, &s, T0, at(3))));
        cases.push(("nonce_used", p.admit(data_tx(&s, &kp.private_key, &kp.public_key, 2, "k", b"v", 20_000), &s, T0, at(3))));
        cases.push(("nonce_too_far_ahead", p.admit(data_tx(&s, &kp.private_key, &kp.public_key, 9, "k", b"v", 20_000), &s, T0, at(3))));
        cases.push(("duplicate", p.admit(good.clone(), &s, T0, at(3))));
        cases.push(("gas_over_limit", p.admit(data_tx(&s, &kp.private_key, &kp.public_key, 4, "k", b"v", 60_000), &s, T0, at(3))));
        cases.push(("gas_below_intrinsic", p.admit(data_tx(&s, &kp.private_key, &kp.public_key, 4, "k", b"v", 10), &s, T0, at(3))));
        cases.push(("too_large", p.admit(data_tx(&s, &kp.private_key, &kp.public_key, 4, "k", &[0u8; 5000], 50_000), &s, T0, at(3))));
        let mut other_channel = data_tx(&s, &kp.private_key, &kp.public_key, 4, "k", b"v", 20_000);
        other_channel.body.channel = ChannelId::new("market").unwrap();
        cases.push(("wrong_channel", p.admit(other_channel, &s, T0, at(3))));
        let mut other_alg = data_tx(&s, &kp.private_key, &kp.public_key, 4, "k", b"v", 20_000);
        other_alg.body.sig_alg = "ecdsa-p256".into();
        cases.push(("wrong_algorithm", p.admit(other_alg, &s, T0, at(3))));
        let call = UnsignedTransaction {
            channel: ChannelId::new("grid").unwrap(),
            sender: kp.public_key.clone(),
            nonce: 4,
            gas_limit: 20_000,
            sig_alg: "sm2".into(),
            payload: Payload::Call { contract: Default::default(), method: "settle".into(), args: vec![] },
        };
        let sig = s.sign(&kp.private_key, &call.signing_bytes()).unwrap();
        cases.push(("unsupported_payload", p.admit(call.sign_with(sig), &s, T0, at(3))));
        let mut garbage = good.encode();
        garbage.truncate(garbage.len() - 3);
        cases.push(("malformed", decode(&garbage, 4096).and_then(|tx| p.admit(tx, &s, T0, at(3)))));
        cases.push(("malformed", decode(b"{\"not\": \"a transaction\"}", 4096).and_then(|tx| p.admit(tx, &s, T0, at(3)))));
        for (want, got) in cases {
            let e = got.expect_err(want);
            assert_eq!(e.code(), want, "{e}");
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(p.len(), 1, "no rejected transaction entered the pool");
        assert!(p.contains(&good_hash));
    }

    #[test]
    fn ready_hands_out_consecutive_nonces_and_prune_drops_used_ones() {
        let s = suite("gm");
        let (a, b) = (s.crypto().generate_key("sm2").unwrap(), s.crypto().generate_key("sm2").unwrap());
        let mut p = pool(PoolConfig::default());
        let next = |_: &[u8]| 0;
        // a: 0, 1, 3 (gap at 2); b: 1, 0 (out of order).
        for n in [0, 1, 3] {
            p.admit(data_tx(&s, &a.private_key, &a.public_key, n, "k", b"v", 20_000), &s, T0, next).unwrap();
        }
        for n in [1, 0] {
            p.admit(data_tx(&s, &b.private_key, &b.public_key, n, "k", b"v", 20_000), &s, T0, next).unwrap();
        }
        let order: Vec<(bool, u64)> = p.ready(100, usize::MAX, T0, |_| Some(0)).iter().map(|(_, t)| (t.body.sender == a.public_key, t.body.nonce)).collect();
        assert_eq!(order, [(true, 0), (true, 1), (false, 0), (false, 1)], "a's nonce 3 waits for 2");
        assert_eq!(p.ready(3, usize::MAX, T0, |_| Some(0)).len(), 3);
        // a's 0 and 1 committed: they leave; 3 stays.
        let a_pk = a.public_key.clone();
        p.prune([(a_pk.as_slice(), 2)], &HashSet::new(), T0);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn a_full_pool_evicts_the_largest_sender_tail_and_refuses_its_own_overflow() {
        let s = suite("gm");
        let (a, b) = (s.crypto().generate_key("sm2").unwrap(), s.crypto().generate_key("sm2").unwrap());
        let mut p = pool(PoolConfig { max_pending: 4, ..PoolConfig::default() });
        let next = |_: &[u8]| 0;
        for n in 0..4 {
            p.admit(data_tx(&s, &a.private_key, &a.public_key, n, "k", b"v", 20_000), &s, T0, next).unwrap();
        }
        let e = p.admit(data_tx(&s, &a.private_key, &a.public_key, 4, "k", b"v", 20_000), &s, T0, next).unwrap_err();
        assert_eq!(e, Rejection::PoolFull, "a sender cannot push out its own earlier nonces");
        p.admit(data_tx(&s, &b.private_key, &b.public_key, 0, "k", b"v", 20_000), &s, T0, next).expect("another sender evicts a's highest nonce");
        assert_eq!(p.len(), 4);
        let a_nonces: Vec<u64> =
            p.ready(10, usize::MAX, T0, |_| Some(0)).iter().filter(|(_, t)| t.body.sender == a.public_key).map(|(_, t)| t.body.nonce).collect();
        assert_eq!(a_nonces, [0, 1, 2]);
    }
}
