//! The BFT engine (`consensus-bft`, built in its own workspace) on four validator processes:
//! every block agreed, a killed validator does not stop the other three, and restarted it
//! catches up without losing a committed transaction.

use crate::network::{start_all, wait_height};
use crate::support::{NodeProcess, data_tx, joule, run, suite, tempdir};

fn hash_at(node: &NodeProcess, height: u64) -> String {
    let (status, block) = node.get(&format!("/v1/blocks/{height}?full=false"));
    assert_eq!(status, 200, "block {height} on {}: {block}", node.base);
    block["hash"].as_str().unwrap_or_default().to_string()
}

#[test]
fn three_bft_validators_of_four_go_on_when_one_is_killed_under_load_and_it_catches_up() {
    let dir = tempdir();
    let (code, out, err) =
        run(joule().args(["up", "--nodes", "4", "--consensus", "bft", "--traffic-seconds", "2", "--no-market", "--no-serve", "--dir"]).arg(dir.path()));
    assert_eq!(code, 0, "joule up --consensus bft failed:\n{out}\n{err}");
    assert!(out.contains("all 4 nodes hold block"), "{out}");
    let mut nodes = start_all(dir.path(), 4);
    let (_, engine) = nodes[0].get("/v1/status");
    assert_eq!(engine["consensus"], "bft", "{engine}");

    let s = suite("gm");
    let kp = s.crypto().generate_key("sm2").expect("key");
    let mut committed: Vec<(String, String)> = vec![];
    // Send one reading to `node` and wait until it is committed: (tx hash, block hash).
    let send = |node: &NodeProcess, nonce: u64| {
        let (status, v) = node.submit(&data_tx(&s, &kp, "grid", nonce, &format!("meter/{nonce}"), b"3 kWh"));
        assert_eq!(status, 202, "{v}");
        let hash = v["hash"].as_str().expect("hash").to_string();
        let record = node.wait_tx(&hash);
        (hash, record["block_hash"].as_str().unwrap_or_default().to_string())
    };
    for nonce in 0..8 {
        committed.push(send(&nodes[nonce as usize % 4], nonce));
    }
    // SIGKILL validator 1 mid-load: the other three are a quorum and go on, through its
    // turns by round changes.
    let before = nodes[0].height();
    let killed = nodes.remove(1);
    killed.kill();
    for nonce in 8..24 {
        committed.push(send(&nodes[nonce as usize % 3], nonce));
    }
    let top = nodes[0].height();
    assert!(top >= before + 4, "the three made blocks: {before} -> {top}");
    for n in &nodes[1..] {
        wait_height(n, top);
        for h in 1..=top {
            assert_eq!(hash_at(n, h), hash_at(&nodes[0], h), "block {h} differs on {}", n.base);
        }
    }
    // Restarted, it syncs every block and holds every transaction that was committed.
    let back = NodeProcess::start(&dir.path().join("node1"), &["--listen", "127.0.0.1:0"]);
    wait_height(&back, top);
    for h in 1..=top {
        assert_eq!(hash_at(&back, h), hash_at(&nodes[0], h), "block {h} synced differently");
    }
    for (tx, block) in &committed {
        let (status, record) = back.get(&format!("/v1/tx/{tx}"));
        assert_eq!(status, 200, "{record}");
        assert_eq!(record["status"], "committed", "{record}");
        assert_eq!(record["block_hash"].as_str(), Some(block.as_str()));
    }
    // And it takes part again: more blocks, with it in the quorum.
    let mut nodes = nodes;
    nodes.insert(1, back);
    for nonce in 24..28 {
        send(&nodes[nonce as usize % 4], nonce);
    }
}
