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

/// Copy a node directory (its keys, configuration and chain), file by file.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "api.addr" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// POST each block to `base` in order (admin), until one fails to arrive (the node died).
fn post_blocks(base: String, token: String, blocks: Arc<Vec<Vec<u8>>>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into();
    for b in blocks.iter() {
        let sent = agent
            .post(&format!("{base}/v1/blocks"))
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", &format!("Bearer {token}"))
            .send(&b[..]);
        match sent {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let body = r.body_mut().read_to_string().unwrap_or_default();
                assert!(status == 200 || status == 409, "import: {status} {body}");
            }
            Err(_) => return,
        }
    }
}

/// A node killed at points across its import of a heavier branch (two PoW miners that
/// never saw each other; the node holds the lighter one), the reorganisation among them,
/// restarts on one whole branch, never a mix of the two, and then takes the heavier
/// branch when it is given it again.
#[test]
fn sigkill_during_a_reorganisation_leaves_one_whole_branch() {
    let pow = "block-time-ms = 1000\ninitial-difficulty = 1000\nmin-difficulty = 1000\nfinality-depth = 100\n";
    let (miner_a, miner_b, base) = (tempdir(), tempdir(), tempdir());
    init_node(miner_a.path(), &["--consensus", "pow", "--consensus-config", pow, "--block-interval-ms", "20", "--max-block-transactions", "300"]);
    // Two copies of one validator mine apart; the node under test is a follower of the
    // same network (its own key, the same genesis), so it only imports.
    copy_dir(miner_a.path(), miner_b.path());
    init_node(base.path(), &[]);
    std::fs::copy(miner_a.path().join("network.toml"), base.path().join("network.toml")).unwrap();
    let s = suite("gm");
    let mine = |dir: &std::path::Path, blocks: u64, tag: &str| -> Vec<Vec<u8>> {
        let node = NodeProcess::start(dir, &[]);
        let kp = s.crypto().generate_key("sm2").unwrap();
        let mut nonce = 0u64;
        while node.height() < blocks {
            let mut last = String::new();
            for _ in 0..300 {
                let (status, v) = node.submit(&data_tx(&s, &kp, "grid", nonce, &format!("{tag}/{}", nonce % 50), format!("{tag}{nonce}").as_bytes()));
                assert_eq!(status, 202, "{v}");
                last = v["hash"].as_str().unwrap().to_string();
                nonce += 1;
            }
            node.wait_tx(&last);
        }
        let out = (1..=node.height()).map(|h| node.get_bytes(&format!("/v1/blocks/{h}?format=bytes"))).collect();
        node.kill();
        out
    };
    let (a, b) = (mine(miner_a.path(), 6, "a"), mine(miner_b.path(), 12, "b"));
    let hashes = |bs: &[Vec<u8>]| bs.iter().map(|b| Block::decode(b).unwrap().header.hash(&s).unwrap()).collect::<Vec<Hash32>>();
    // Which weighs more (the sum of difficulties) is for a node to say: give one both.
    let probe = tempdir();
    copy_dir(base.path(), probe.path());
    let heavier_is_b = {
        let node = NodeProcess::start(probe.path(), &[]);
        post_blocks(node.base.clone(), node.token.clone(), Arc::new(a.clone()));
        post_blocks(node.base.clone(), node.token.clone(), Arc::new(b.clone()));
        let (_, status) = node.get("/v1/status");
        let head = status["head_hash"].as_str().unwrap_or_default().to_string();
        node.kill();
        head == hashes(&b).last().unwrap().to_string()
    };
    let (light, heavy) = if heavier_is_b { (a, b) } else { (b, a) };
    let heavy = Arc::new(heavy);
    let (ha, hb) = (hashes(&light), hashes(&heavy));
    assert_ne!(ha, hb);
    let whole_branch = |node: &NodeProcess| -> Vec<Hash32> {
        let head = node.height() as usize;
        let chain: Vec<Hash32> =
            (1..=head).map(|h| Block::decode(&node.get_bytes(&format!("/v1/blocks/{h}?format=bytes"))).unwrap().header.hash(&s).unwrap()).collect();
        let agree = |branch: &[Hash32]| chain.iter().zip(branch).take_while(|(x, y)| x == y).count();
        assert!(
            ha.get(..head) == Some(&chain[..]) || hb.get(..head) == Some(&chain[..]),
            "a mix of the two branches: {head} blocks, the first {} of the lighter branch ({} long), the first {} of the heavier ({} long)",
            agree(&ha),
            ha.len(),
            agree(&hb),
            hb.len()
        );
        chain
    };
    // The node under test holds the lighter branch.
    {
        let node = NodeProcess::start(base.path(), &[]);
        post_blocks(node.base.clone(), node.token.clone(), Arc::new(light.clone()));
        assert_eq!(whole_branch(&node), ha);
        node.kill();
    }
    // Round 0 times the whole import of the heavier branch; then kill at points across it.
    let mut took = Duration::ZERO;
    let mut reorganised_at_restart = 0;
    for fraction in [None, Some(0.3), Some(0.5), Some(0.65), Some(0.75), Some(0.85), Some(0.95)] {
        let round = tempdir();
        copy_dir(base.path(), round.path());
        let node = NodeProcess::start(round.path(), &[]);
        let started = std::time::Instant::now();
        let poster = {
            let (b, t, blocks) = (node.base.clone(), node.token.clone(), heavy.clone());
            std::thread::spawn(move || post_blocks(b, t, blocks))
        };
        match fraction {
            None => {
                poster.join().unwrap();
                took = started.elapsed();
                assert_eq!(whole_branch(&node), hb, "the heavier branch wins");
                node.kill();
                continue;
            }
            Some(f) => {
                std::thread::sleep(took.mul_f64(f));
                node.kill();
                let _ = poster.join();
            }
        }
        // Restarted: one whole branch; then given the heavier one again, it ends on it.
        let node = NodeProcess::start(round.path(), &[]);
        let held = whole_branch(&node);
        if hb.starts_with(&held) && held.len() > ha.len() {
            reorganised_at_restart += 1;
        }
        post_blocks(node.base.clone(), node.token.clone(), heavy.clone());
        assert_eq!(whole_branch(&node), hb);
    }
    eprintln!("reorganisation done before the kill in {reorganised_at_restart} of 6 rounds (import of the heavier branch: {took:?})");
}
