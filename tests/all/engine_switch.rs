//! Governed switching of the consensus engine on a running network (the consensus issue,
//! item 5): the validators vote an engine's component onto the chain with the height it
//! takes over at; every node switches there without a restart, PoW → PoA → BFT → PoA,
//! while transactions flow; a node that lost its store replays the whole history, each
//! block checked by the engine of its height.

use crate::governance::{governance, value_after};
use crate::network::{start_all, wait_for, wait_height};
use crate::support::{NodeProcess, data_tx, joule, plugin_dir, run, suite, tempdir};

fn engine(node: &NodeProcess) -> String {
    node.get("/v1/status").1["engine"].as_str().unwrap_or_default().to_string()
}

fn block(node: &NodeProcess, height: u64) -> serde_json::Value {
    let (status, b) = node.get(&format!("/v1/blocks/{height}?full=false"));
    assert_eq!(status, 200, "{b}");
    b
}

/// Which engine sealed a block, from its seal: a proof of work starts `pow1`; a BFT seal
/// holds a quorum of signatures; a PoA seal is one signature.
fn sealed_by(node: &NodeProcess, height: u64) -> &'static str {
    let seal = block(node, height)["header"]["seal"].as_str().unwrap_or_default().to_string();
    if seal.starts_with(&hex::encode(b"pow1")) {
        "pow/"
    } else if seal.len() / 2 > 3 * 64 {
        "bft/"
    } else {
        "poa/"
    }
}

/// Wait until every node holds the same block at `height` (under proof of work a fork
/// may take a moment to resolve).
fn agree(nodes: &[NodeProcess], height: u64) {
    let mut seen = vec![];
    wait_for(&format!("every node on one block {height}"), || {
        seen = nodes.iter().map(|n| block(n, height)["hash"].clone()).collect();
        seen.windows(2).all(|w| w[0] == w[1])
    });
}

#[test]
fn a_running_network_switches_from_pow_to_poa_to_bft_and_back_at_the_voted_heights_and_a_node_replays_it() {
    let dir = tempdir();
    let (code, out, err) = run(joule()
        .args(["up", "--nodes", "4", "--consensus", "pow", "--block-interval-ms", "300", "--traffic-seconds", "2", "--no-market", "--no-serve", "--dir"])
        .arg(dir.path()));
    assert_eq!(code, 0, "joule up --consensus pow failed:\n{out}\n{err}");
    let mut nodes = start_all(dir.path(), 4);
    let node_dir = |i: usize| dir.path().join(format!("node{i}"));
    assert!(engine(&nodes[0]).starts_with("pow/"), "{}", engine(&nodes[0]));
    let s = suite("gm");
    let kp = s.crypto().generate_key("sm2").expect("key");
    let mut nonce = 0u64;
    let mut traffic_until = |nodes: &[NodeProcess], height: u64| {
        while nodes[0].height() < height {
            let node = &nodes[nonce as usize % nodes.len()];
            let (status, v) = node.submit(&data_tx(&s, &kp, "grid", nonce, "meter/1", format!("{nonce} kWh").as_bytes()));
            assert_eq!(status, 202, "{v}");
            node.wait_tx(v["hash"].as_str().expect("hash"));
            nonce += 1;
        }
        for n in nodes {
            wait_height(n, height);
        }
    };

    for (component, name) in [("consensus-poa.wasm", "poa/"), ("consensus-bft.wasm", "bft/"), ("consensus-poa.wasm", "poa/")] {
        let all: Vec<&NodeProcess> = nodes.iter().collect();
        // Far enough ahead that the block passing the vote is final first (PoW: 6 deep here).
        let from = nodes[0].height() + 12;
        let wasm = plugin_dir().join(component);
        let out = governance(
            &node_dir(0),
            &["propose", "--switch-engine", wasm.to_str().expect("UTF-8 path"), "--from-height", &from.to_string(), "--engine-config", ""],
            &all,
        );
        let id = value_after(&out, "proposal ").trim_end_matches(':').to_string();
        // Before voting, each node has tried the engine on its own recent blocks.
        let (_, view) = nodes[1].get("/v1/governance");
        let run = view["dry_runs"].as_array().and_then(|r| r.iter().find(|d| d["proposal"] == id.as_str())).cloned().unwrap_or_default();
        assert_eq!(run["passed"], true, "{view}");
        assert!(run["engine"].as_str().is_some_and(|e| e.starts_with(name)) && run["blocks"].as_u64() > Some(0), "{run}");
        governance(&node_dir(1), &["vote", &id], &all);
        let out = governance(&node_dir(2), &["vote", &id], &all);
        assert!(out.contains("it passed"), "{out}");
        let (_, view) = nodes[3].get("/v1/governance");
        let scheduled = view["engines"].as_array().and_then(|e| e.last()).cloned().unwrap_or_default();
        assert_eq!(scheduled["from_height"], from, "{view}");
        assert!(nodes[0].height() < from, "the switch is still ahead");
        let before = engine(&nodes[0]);
        assert!(!before.starts_with(name), "{before}");
        // Blocks flow across the switch; every node moves at exactly `from`.
        traffic_until(&nodes, from + 3);
        agree(&nodes, from + 3);
        for n in &nodes {
            assert!(engine(n).starts_with(name), "{} runs {}", n.base, engine(n));
            for h in from - 2..=from + 3 {
                assert_eq!(block(n, h)["hash"], block(&nodes[0], h)["hash"], "block {h} differs on {}", n.base);
            }
        }
        // The last block before the switch is the old engine's, the first at it the new one's.
        assert_eq!(sealed_by(&nodes[0], from), name);
        assert_ne!(sealed_by(&nodes[0], from - 1), name);
    }
    let kinds: Vec<&str> = (1..=nodes[0].height()).map(|h| sealed_by(&nodes[0], h)).collect();
    assert_eq!(kinds.first(), Some(&"pow/"), "mined first");

    // node3 loses its store and replays the history: each block checked by the engine of
    // its height, the switches read from the chain itself.
    let top = nodes[0].height();
    let node3 = nodes.pop().expect("four");
    node3.kill();
    std::fs::remove_dir_all(node_dir(3).join("channels")).expect("remove node3's chain");
    let fresh = NodeProcess::start(&node_dir(3), &["--listen", "127.0.0.1:0"]);
    wait_height(&fresh, top);
    for h in 1..=top {
        assert_eq!(block(&fresh, h)["hash"], block(&nodes[0], h)["hash"], "block {h} replayed differently");
    }
    assert!(engine(&fresh).starts_with("poa/"));
}
