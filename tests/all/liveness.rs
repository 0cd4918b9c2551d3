//! PoA and PoW on four validator processes, one SIGKILLed under load: the other three go
//! on (PoA: out of turn after the back-off; PoW: every validator mines), competing blocks
//! resolve to the heaviest chain, and the killed one, restarted, catches up; every node
//! ends on the same chain with every transaction an API called committed. (BFT: `bft.rs`.)

use crate::network::{start_all, wait_for, wait_height};
use crate::support::{NodeProcess, data_tx, joule, run, suite, tempdir};

fn hash_at(node: &NodeProcess, height: u64) -> String {
    let (status, block) = node.get(&format!("/v1/blocks/{height}?full=false"));
    assert_eq!(status, 200, "block {height} on {}: {block}", node.base);
    block["hash"].as_str().unwrap_or_default().to_string()
}

fn head(node: &NodeProcess) -> (u64, String) {
    let (_, s) = node.get("/v1/status");
    (s["height"].as_u64().unwrap_or_default(), s["head_hash"].as_str().unwrap_or_default().to_string())
}

#[test]
fn four_pow_miners_converge_on_one_chain_and_a_killed_miner_catches_up() {
    let nodes = one_killed_under_load("pow");
    // Every block's seal is a proof of work at a retargeted difficulty, judged by every node
    // as it imported it; the difficulty is in the seal (pow1 ‖ difficulty ‖ …).
    let (height, _) = head(&nodes[0]);
    let (_, block) = nodes[1].get(&format!("/v1/blocks/{height}?full=false"));
    let seal = block["header"]["seal"].as_str().unwrap_or_default().to_string();
    assert!(seal.starts_with(&hex::encode(b"pow1")), "{block}");
}

#[test]
fn three_poa_validators_of_four_go_on_out_of_turn_when_one_is_killed_and_it_catches_up() {
    let nodes = one_killed_under_load("poa");
    // Node 2's turns while it was down went to the validators after it, out of turn.
    let (height, _) = head(&nodes[0]);
    let (_, g) = nodes[0].get("/v1/governance");
    let validators: Vec<String> =
        g["members"]["validators"].as_array().expect("validators").iter().filter_map(|v| v["public_key"].as_str().map(String::from)).collect();
    assert_eq!(validators.len(), 4, "{g}");
    let out_of_turn = (1..=height)
        .filter(|h| {
            let (_, b) = nodes[0].get(&format!("/v1/blocks/{h}?full=false"));
            let proposer = b["header"]["proposer"].as_str().unwrap_or_default();
            validators.iter().position(|k| k == proposer) != Some((h % 4) as usize)
        })
        .count();
    assert!(out_of_turn >= 1, "blocks sealed out of turn while a validator was down");
}

/// `joule up` with `engine`, then: traffic to all four, SIGKILL node2, traffic to the other
/// three, restart node2, and every node on one chain holding every transaction.
fn one_killed_under_load(engine: &str) -> Vec<NodeProcess> {
    let dir = tempdir();
    let (code, out, err) = run(joule()
        .args(["up", "--nodes", "4", "--consensus", engine, "--block-interval-ms", "300", "--traffic-seconds", "3", "--no-market", "--no-serve", "--dir"])
        .arg(dir.path()));
    assert_eq!(code, 0, "joule up --consensus {engine} failed:\n{out}\n{err}");
    assert!(out.contains("all 4 nodes hold block"), "{out}");
    let mut nodes = start_all(dir.path(), 4);
    let (_, status) = nodes[0].get("/v1/status");
    assert_eq!(status["consensus"], engine, "{status}");

    let s = suite("gm");
    let kp = s.crypto().generate_key("sm2").expect("key");
    let mut sent: Vec<String> = vec![];
    let send = |node: &NodeProcess, nonce: u64| {
        let (status, v) = node.submit(&data_tx(&s, &kp, "grid", nonce, &format!("meter/{nonce}"), b"5 kWh"));
        assert_eq!(status, 202, "{v}");
        let hash = v["hash"].as_str().expect("hash").to_string();
        node.wait_tx(&hash);
        hash
    };
    for nonce in 0..8 {
        sent.push(send(&nodes[nonce as usize % 4], nonce));
    }
    // SIGKILL a validator under load: the other three go on.
    let before = nodes[0].height();
    let killed = nodes.remove(2);
    killed.kill();
    for nonce in 8..20 {
        sent.push(send(&nodes[nonce as usize % 3], nonce));
    }
    let top = nodes[0].height();
    assert!(top >= before + 3, "the three made blocks: {before} -> {top}");
    // Restarted, it syncs; then the four settle on one head (blocks come only with
    // transactions, so the network goes quiet).
    let back = NodeProcess::start(&dir.path().join("node2"), &["--listen", "127.0.0.1:0"]);
    wait_height(&back, top);
    nodes.insert(2, back);
    let mut last = String::new();
    wait_for("the four nodes on one head", || {
        let heads: Vec<_> = nodes.iter().map(head).collect();
        last = format!("{heads:?}");
        heads.windows(2).all(|w| w[0] == w[1])
    });
    let (height, _) = head(&nodes[0]);
    for h in 1..=height {
        let first = hash_at(&nodes[0], h);
        for n in &nodes[1..] {
            assert_eq!(hash_at(n, h), first, "block {h} differs on {} ({last})", n.base);
        }
    }
    // No transaction a node called committed was lost: each is in the one chain, on every node.
    for tx in &sent {
        for n in &nodes {
            let (status, record) = n.get(&format!("/v1/tx/{tx}"));
            assert_eq!((status, record["status"].as_str()), (200, Some("committed")), "{tx} on {}: {record}", n.base);
        }
    }
    nodes
}
