//! Switching a running chain's crypto suite by vote (the consensus issue, item 5): a node
//! on `intl` binds its key and a user's of `gm`, the switch passes, and from the voted
//! height the blocks, transactions and state are SM3/SM2 while history keeps verifying;
//! the bound user goes on from its nonce under its new key, old-suite transactions are
//! refused, and the node restarted after the switch seals under gm with the key it bound.
//! On four nodes, the wire follows to `Noise_XX_SM2_SM4GCM_SM3`, and a node that lost its
//! chain syncs from genesis across the switch.

use crate::governance::{governance, value_after};
use crate::network::{start_all, wait_for, wait_height};
use crate::support::{NodeProcess, data_tx, init_node, joule, run, suite, tempdir};
use joule_crypto::{KeyPair, SuiteCrypto};
use joule_primitives::{ChainCrypto, Hasher, Payload, Transaction, UnsignedTransaction};
use serde_json::json;

fn signed(s: &SuiteCrypto, kp: &KeyPair, nonce: u64, payload: Payload) -> Transaction {
    let body = UnsignedTransaction {
        channel: joule_primitives::ChannelId::new("grid").expect("channel"),
        sender: kp.public_key.clone(),
        nonce,
        gas_limit: 100_000,
        sig_alg: s.suite().signature.clone(),
        payload,
    };
    let sig = s.sign(&kp.private_key, &body.signing_bytes()).expect("sign");
    body.sign_with(sig)
}

fn committed(node: &NodeProcess, tx: &Transaction) -> serde_json::Value {
    let (status, v) = node.submit(tx);
    assert_eq!(status, 202, "{v}");
    let r = node.wait_tx(v["hash"].as_str().expect("hash"));
    assert_eq!(r["receipt"]["status"], "success", "{r}");
    r
}

fn header(node: &NodeProcess, height: u64) -> serde_json::Value {
    let (status, b) = node.get(&format!("/v1/blocks/{height}?full=false"));
    assert_eq!(status, 200, "{b}");
    b
}

#[test]
fn a_running_chain_switches_from_intl_to_gm_at_the_voted_height_and_keeps_going_after_a_restart() {
    let d = tempdir();
    init_node(d.path(), &["--block-interval-ms", "100", "--channel", "grid", "--crypto-suite", "intl"]);
    let node = NodeProcess::start(d.path(), &[]);
    let (intl, gm) = (suite("intl"), suite("gm"));
    let user = intl.crypto().generate_key("ecdsa-p256").expect("p-256 key");
    let user_gm = gm.crypto().generate_key("sm2").expect("sm2 key");
    let first = committed(&node, &data_tx(&intl, &user, "grid", 0, "meter/1", b"1 kWh"));

    // The user binds its gm key (its intl key signs, the gm key proves possession).
    let account = intl.hash(&user.public_key).expect("account id");
    let channel = joule_primitives::ChannelId::new("grid").expect("channel");
    let proof = gm.sign(&user_gm.private_key, &joule_primitives::bind_key_message(&channel, &account, "gm", &user_gm.public_key)).expect("proof");
    let mut wrong = proof.clone();
    wrong[10] ^= 1;
    let (status, v) = node.submit(&signed(&intl, &user, 1, Payload::BindKey { suite: "gm".into(), public_key: user_gm.public_key.clone(), proof: wrong }));
    assert_eq!((status, v["code"].as_str()), (400, Some("malformed")), "{v}");
    committed(&node, &signed(&intl, &user, 1, Payload::BindKey { suite: "gm".into(), public_key: user_gm.public_key.clone(), proof }));

    // The node binds its own key of gm (`joule governance bind-key`, over the admin API),
    // then proposes the switch; as the only validator, its vote passes it.
    let (code, out, err) = run(joule().args(["governance", "bind-key", "--suite", "gm", "--dir"]).arg(d.path()));
    assert_eq!(code, 0, "joule governance bind-key failed:\n{out}\n{err}");
    let node_gm_key = value_after(&out, "bound a gm key: ").to_string();
    assert_eq!(value_after(&out, "network key for --suite-node: ").len(), 66, "{out}");
    let (status, v) = node.call("POST", "/v1/governance/bind-key", Some(json!({"suite": "intl"})));
    assert_eq!((status, v["code"].as_str()), (400, Some("malformed")), "binding the channel's own suite: {v}");
    let at = node.height() + 6;
    let propose = json!({"action": "propose", "changes": [{"change": "switch_suite", "from_height": at, "suite": "gm", "nodes": []}], "expires_at": at + 100});
    let (status, v) = node.call("POST", "/v1/governance/actions", Some(propose));
    assert_eq!(status, 202, "{v}");
    let r = node.wait_tx(v["hash"].as_str().expect("hash"));
    assert!(r["receipt"]["events"].as_array().expect("events").iter().any(|e| e["topic"] == "passed"), "{r}");
    let (_, g) = node.get("/v1/governance");
    assert_eq!(g["suites"][0]["from_height"], at, "{g}");
    let (code, out, err) = run(joule().args(["governance", "show", "--dir"]).arg(d.path()));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("crypto suite from block {at}: gm")), "{out}");

    // Transactions keep flowing under intl up to the block before the switch (blocks are
    // made only for transactions here).
    let mut nonce = 2;
    while node.height() + 1 < at {
        committed(&node, &data_tx(&intl, &user, "grid", nonce, "meter/1", format!("{nonce} kWh").as_bytes()));
        nonce += 1;
    }
    assert_eq!(node.height() + 1, at);
    assert_eq!(node.get("/v1/status").1["crypto_suite"], "gm", "the next block's suite");

    // From here on: intl transactions are refused, the user goes on under its gm key.
    let (status, v) = node.submit(&data_tx(&intl, &user, "grid", nonce, "meter/1", b"late"));
    assert_eq!((status, v["code"].as_str()), (400, Some("wrong_algorithm")), "{v}");
    let r = committed(&node, &data_tx(&gm, &user_gm, "grid", nonce, "meter/1", b"after the switch"));
    assert_eq!(r["block_height"], at, "{r}");
    let (before, switched) = (header(&node, at - 1), header(&node, at));
    assert_eq!(before["header"]["crypto_suite"], "intl");
    assert_eq!(switched["header"]["crypto_suite"], "gm");
    assert_eq!(switched["header"]["parent_hash"], before["hash"]);
    assert_eq!(switched["header"]["proposer"], node_gm_key.as_str(), "sealed with the key the node bound");
    let moved = gm.hash(&user_gm.public_key).expect("id");
    let (status, st) = node.get(&format!("/v1/state/{moved}/meter/1"));
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["value"], hex::encode(b"after the switch"), "{st}");
    // History keeps its suite: the first transaction is found in its intl block.
    let (status, t) = node.get(&format!("/v1/tx/{}", first["hash"].as_str().expect("hash")));
    assert_eq!((status, t["block_hash"].clone()), (200, header(&node, first["block_height"].as_u64().expect("height"))["hash"].clone()), "{t}");

    // Restarted, the node reads the schedule from its head and seals under gm.
    node.kill();
    let node = NodeProcess::start(d.path(), &[]);
    assert_eq!(node.get("/v1/status").1["crypto_suite"], "gm");
    let r = committed(&node, &data_tx(&gm, &user_gm, "grid", nonce + 1, "meter/1", b"after a restart"));
    let b = header(&node, r["block_height"].as_u64().expect("height"));
    assert_eq!((b["header"]["crypto_suite"].as_str(), b["header"]["proposer"].as_str()), (Some("gm"), Some(node_gm_key.as_str())));
}

/// Submit readings to the nodes in turn, each committed, until `nodes[0]` is at `height`.
/// A reading of the old suite that no block took before the switch is evicted, saying so
/// (its nonce is not used): then the old suite's traffic is over.
fn traffic_until(nodes: &[NodeProcess], s: &SuiteCrypto, kp: &KeyPair, nonce: &mut u64, height: u64) {
    while nodes[0].height() < height {
        let node = &nodes[*nonce as usize % nodes.len()];
        let (status, v) = node.submit(&data_tx(s, kp, "grid", *nonce, "meter/1", format!("{nonce} kWh").as_bytes()));
        assert_eq!(status, 202, "{v}");
        let hash = v["hash"].as_str().expect("hash").to_string();
        let started = std::time::Instant::now();
        loop {
            let (_, t) = node.get(&format!("/v1/tx/{hash}"));
            if t["status"] == "committed" {
                *nonce += 1;
                break;
            }
            if t["status"] == "evicted" {
                assert_eq!(t["code"], "suite_switched", "{t}");
                return;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "transaction {hash} not committed in 60 s: {t}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[test]
fn four_nodes_switch_from_intl_to_gm_under_traffic_the_wire_follows_and_a_node_that_lost_its_chain_syncs_across() {
    let dir = tempdir();
    let (code, out, err) = run(joule()
        .args(["up", "--nodes", "4", "--crypto-suite", "intl", "--block-interval-ms", "300", "--traffic-seconds", "1", "--no-market", "--no-serve", "--dir"])
        .arg(dir.path()));
    assert_eq!(code, 0, "joule up --crypto-suite intl failed:\n{out}\n{err}");
    let mut nodes = start_all(dir.path(), 4);
    let node_dir = |i: usize| dir.path().join(format!("node{i}"));
    let (intl, gm) = (suite("intl"), suite("gm"));
    let user = intl.crypto().generate_key("ecdsa-p256").expect("p-256 key");
    let user_gm = gm.crypto().generate_key("sm2").expect("sm2 key");
    let mut nonce = 0u64;

    // Every node binds its keys of gm; the user binds too.
    let mut suite_nodes = vec![];
    for i in 0..4 {
        let all: Vec<&NodeProcess> = nodes.iter().collect();
        let out = governance(&node_dir(i), &["bind-key", "--suite", "gm"], &all);
        suite_nodes.push(format!("node{i}={}", value_after(&out, "network key for --suite-node: ")));
    }
    let account = intl.hash(&user.public_key).expect("account id");
    let channel = joule_primitives::ChannelId::new("grid").expect("channel");
    let proof = gm.sign(&user_gm.private_key, &joule_primitives::bind_key_message(&channel, &account, "gm", &user_gm.public_key)).expect("proof");
    committed(&nodes[1], &signed(&intl, &user, nonce, Payload::BindKey { suite: "gm".into(), public_key: user_gm.public_key.clone(), proof }));
    nonce += 1;

    // Three of four vote the switch in.
    let from = nodes[0].height() + 20;
    let from_arg = from.to_string();
    let mut args = vec!["propose", "--switch-suite", "gm", "--from-height", &from_arg];
    for n in &suite_nodes {
        args.extend(["--suite-node", n.as_str()]);
    }
    let all: Vec<&NodeProcess> = nodes.iter().collect();
    let out = governance(&node_dir(0), &args, &all);
    let id = value_after(&out, "proposal ").trim_end_matches(':').to_string();
    for i in 1..3 {
        governance(&node_dir(i), &["vote", &id], &all);
    }
    for n in &nodes {
        assert_eq!(n.get("/v1/governance").1["suites"][0]["from_height"], from, "the switch is scheduled on {}", n.base);
    }

    // Readings flow under intl up to the block before the switch, then under gm.
    traffic_until(&nodes, &intl, &user, &mut nonce, from - 1);
    // A node takes gm transactions once it holds the block before the switch.
    for n in &nodes {
        wait_height(n, from - 1);
    }
    traffic_until(&nodes, &gm, &user_gm, &mut nonce, from + 3);
    for n in &nodes {
        wait_height(n, from + 3);
    }
    let hashes: Vec<serde_json::Value> = nodes.iter().map(|n| header(n, from)["hash"].clone()).collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "every node holds the same block {from}: {hashes:?}");
    assert_eq!(header(&nodes[0], from - 1)["header"]["crypto_suite"], "intl");
    assert_eq!(header(&nodes[0], from)["header"]["crypto_suite"], "gm");
    let (status, v) = nodes[0].submit(&data_tx(&intl, &user, "grid", nonce, "meter/1", b"late"));
    assert_eq!((status, v["code"].as_str()), (400, Some("wrong_algorithm")), "{v}");

    // The wire follows: every node dials in SM2/SM4-GCM/SM3, and its peers' connections
    // come over to it.
    let gm_protocol = "Noise_XX_SM2_SM4GCM_SM3";
    for n in &nodes {
        wait_for(&format!("{} connected to its 3 peers in gm only", n.base), || {
            let (_, p) = n.get("/v1/peers");
            let peers = p["peers"].as_array().cloned().unwrap_or_default();
            p["protocols"][0] == gm_protocol && peers.len() >= 3 && peers.iter().all(|x| x["protocol"] == gm_protocol)
        });
    }

    // A node that lost its chain replays it from genesis across the switch, each block
    // under its own suite, and follows the network on.
    nodes.pop().expect("node3").kill();
    std::fs::remove_dir_all(node_dir(3).join("channels")).expect("remove node3's chain");
    nodes.push(NodeProcess::start(&node_dir(3), &["--listen", "127.0.0.1:0"]));
    let top = nodes[0].height();
    wait_height(&nodes[3], top);
    assert_eq!(header(&nodes[3], from)["hash"], hashes[0]);
    assert_eq!(header(&nodes[3], from - 1)["hash"], header(&nodes[0], from - 1)["hash"]);
    traffic_until(&nodes, &gm, &user_gm, &mut nonce, top + 2);
    wait_height(&nodes[3], top + 2);
    assert_eq!(header(&nodes[3], top + 2)["hash"], header(&nodes[0], top + 2)["hash"]);
}
