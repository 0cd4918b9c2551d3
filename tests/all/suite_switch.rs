//! Switching a running chain's crypto suite by vote (the consensus issue, item 5): a node
//! on `intl` binds its key and a user's of `gm`, the switch passes, and from the voted
//! height the blocks, transactions and state are SM3/SM2 while history keeps verifying;
//! the bound user goes on from its nonce under its new key, old-suite transactions are
//! refused, and the node restarted after the switch seals under gm with the key it bound.

use crate::governance::value_after;
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
