//! Killing the node (SIGKILL) while it commits under load never loses or corrupts what
//! it had committed: after every restart, each block and receipt the API had returned is
//! still there, unchanged; the chain links up; and the state is exactly what replaying
//! the committed transactions gives.

use crate::support::{NodeProcess, data_tx, init_node, suite, tempdir};
use joule_primitives::Hasher;
use joule_primitives::smt::StateProof;
use joule_primitives::{Block, Encode, Hash32, Payload};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the API said was committed: block height -> (block hash, tx hashes, receipts).
type Seen = BTreeMap<u64, (String, Value, Value)>;

fn load(base: String, senders: Arc<Vec<joule_crypto::KeyPair>>, stop: Arc<AtomicBool>, round: usize) {
    let s = suite("gm");
    let node = NodeProcess::probe(&base);
    std::thread::scope(|scope| {
        for (i, kp) in senders.iter().enumerate() {
            let (s, node, stop) = (&s, &node, &stop);
            scope.spawn(move || {
                let Some(mut nonce) = node.try_get(&format!("/v1/accounts/{}", hex::encode(&kp.public_key))).and_then(|v| v["next_nonce"].as_u64()) else {
                    return;
                };
                while !stop.load(Ordering::Relaxed) {
                    let tx = data_tx(s, kp, "grid", nonce, &format!("meter/{i}/{}", nonce % 4), format!("r{round}n{nonce}").as_bytes());
                    match node.try_post(&tx.encode()) {
                        Some(202) => nonce += 1,
                        // The pool refuses nonces too far ahead: let blocks catch up.
                        Some(_) => std::thread::sleep(Duration::from_millis(20)),
                        None => return, // the node is gone
                    }
                }
            });
        }
    });
}

fn observe(base: String, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let node = NodeProcess::probe(&base);
    let mut next = seen.lock().unwrap().keys().next_back().map_or(1, |h| h + 1);
    while !stop.load(Ordering::Relaxed) {
        match node.try_get(&format!("/v1/blocks/{next}")) {
            Some(b) if b["hash"].is_string() => {
                seen.lock().unwrap().insert(next, (b["hash"].as_str().unwrap().to_string(), b["tx_hashes"].clone(), b["receipts"].clone()));
                next += 1;
            }
            Some(_) => std::thread::sleep(Duration::from_millis(5)),
            None => return,
        }
    }
}

#[test]
fn sigkill_during_commits_never_loses_or_corrupts_committed_blocks() {
    let d = tempdir();
    init_node(d.path(), &["--block-interval-ms", "20", "--max-block-transactions", "50"]);
    let s = suite("gm");
    let senders: Arc<Vec<_>> = Arc::new((0..4).map(|_| s.crypto().generate_key("sm2").unwrap()).collect());
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let mut sampled: HashMap<String, Value> = HashMap::new();
    for (round, kill_after_ms) in [700u64, 1100, 450, 1500, 900].into_iter().enumerate() {
        let node = NodeProcess::start(d.path(), &[]);
        check_seen(&node, &seen.lock().unwrap(), &sampled);
        let stop = Arc::new(AtomicBool::new(false));
        let loader = {
            let (b, senders, stop) = (node.base.clone(), senders.clone(), stop.clone());
            std::thread::spawn(move || load(b, senders, stop, round))
        };
        let observer = {
            let (b, seen, stop) = (node.base.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || observe(b, seen, stop))
        };
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        // Receipts through the transaction endpoint too, for a sample of committed ones.
        let recent: Vec<(String, Value)> = seen.lock().unwrap().values().rev().take(3).map(|(_, txs, _)| (String::new(), txs.clone())).collect();
        for (_, txs) in recent {
            if let Some(h) = txs.get(0).and_then(Value::as_str) {
                let (st, r) = node.get(&format!("/v1/tx/{h}"));
                if st == 200 && r["status"] == "committed" {
                    sampled.insert(h.to_string(), r);
                }
            }
        }
        node.kill();
        stop.store(true, Ordering::Relaxed);
        loader.join().unwrap();
        observer.join().unwrap();
    }
    let node = NodeProcess::start(d.path(), &[]);
    let seen = seen.lock().unwrap();
    check_seen(&node, &seen, &sampled);
    let txs: usize = seen.values().map(|(_, t, _)| t.as_array().unwrap().len()).sum();
    assert!(seen.len() >= 20 && txs >= 200, "too little load to mean anything: {} blocks, {txs} transactions", seen.len());
    assert!(!sampled.is_empty());

    // The chain links up from genesis, and replaying it gives the state the node serves.
    let head = node.height();
    let mut parent: Option<Hash32> = None;
    let mut nonces: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut latest: HashMap<(Vec<u8>, String), Vec<u8>> = HashMap::new();
    let mut head_root = Hash32::ZERO;
    for h in 0..=head {
        let b = Block::decode(&node.get_bytes(&format!("/v1/blocks/{h}?format=bytes"))).unwrap_or_else(|e| panic!("block {h}: {e}"));
        assert_eq!(b.header.height, h);
        if let Some(p) = parent {
            assert_eq!(b.header.parent_hash, p, "block {h} does not link to its parent");
        }
        parent = Some(b.header.hash(&s).unwrap());
        head_root = b.header.state_root;
        for tx in b.transactions {
            let n = nonces.entry(tx.body.sender.clone()).or_default();
            assert_eq!(tx.body.nonce, *n, "nonces are consecutive per sender");
            *n += 1;
            if let Payload::Data { key, value } = tx.body.payload {
                latest.insert((tx.body.sender, key), value);
            }
        }
    }
    for kp in senders.iter() {
        let (_, acc) = node.get(&format!("/v1/accounts/{}", hex::encode(&kp.public_key)));
        assert_eq!(acc["next_nonce"].as_u64(), Some(nonces.get(&kp.public_key).copied().unwrap_or(0)));
    }
    let mut checked = 0;
    for ((sender, key), value) in &latest {
        let id = s.hash(sender).unwrap();
        let (_, st) = node.get(&format!("/v1/state/{id}/{key}?proof=true"));
        assert_eq!(st["value"].as_str(), Some(hex::encode(value).as_str()), "{key}");
        if st["height"].as_u64() == Some(head) {
            assert_eq!(Hash32::from_hex(st["state_root"].as_str().unwrap()), Some(head_root));
            let p = &st["proof"];
            let storage_root = Hash32::from_hex(p["storage_root"].as_str().unwrap()).unwrap();
            let proof: StateProof = serde_json::from_value(p["storage"].clone()).unwrap();
            assert!(proof.verify(&s, &storage_root, &s.hash(key.as_bytes()).unwrap(), Some(&s.hash(value).unwrap())).unwrap());
            checked += 1;
        }
    }
    assert!(checked > 0);
}

/// Every block and sampled receipt the API returned before is still served, unchanged.
fn check_seen(node: &NodeProcess, seen: &Seen, sampled: &HashMap<String, Value>) {
    if let Some(&top) = seen.keys().next_back() {
        assert!(node.height() >= top, "the node restarted below a block it had served ({} < {top})", node.height());
    }
    for (h, (hash, txs, receipts)) in seen {
        let (st, b) = node.get(&format!("/v1/blocks/{h}"));
        assert_eq!(st, 200, "block {h} is gone after the restart");
        assert_eq!((&b["hash"].as_str().unwrap().to_string(), &b["tx_hashes"], &b["receipts"]), (hash, txs, receipts), "block {h} changed after the restart");
    }
    for (hash, r) in sampled {
        let (_, now) = node.get(&format!("/v1/tx/{hash}"));
        assert_eq!(&now, r, "the receipt of {hash} changed after the restart");
    }
}
