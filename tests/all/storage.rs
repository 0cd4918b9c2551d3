//! What a node keeps of a channel's past: every block's state by default (proofs against
//! old roots), or, with `[storage] state-history-blocks`, the last blocks' state only, the
//! older answering 410 `pruned`. Blocks and receipts stay either way.

use crate::support::{NodeProcess, data_tx, init_node, suite, tempdir};
use joule_primitives::Hasher;
use joule_primitives::smt::StateProof;
use joule_primitives::{Hash32, Transaction};

/// One record per block: `meter/1` = "reading N" in the block of transaction N.
fn blocks_of_one_record(node: &NodeProcess, n: u64) -> Vec<u64> {
    let s = suite("gm");
    let kp = s.crypto().generate_key("sm2").unwrap();
    (0..n)
        .map(|nonce| {
            let tx: Transaction = data_tx(&s, &kp, "grid", nonce, "meter/1", format!("reading {nonce}").as_bytes());
            let (st, v) = node.submit(&tx);
            assert_eq!(st, 202, "{v}");
            node.wait_tx(v["hash"].as_str().unwrap())["block_height"].as_u64().unwrap()
        })
        .collect()
}

fn account_of(node: &NodeProcess) -> String {
    // The one sender's id: the first data event's contract is it.
    let (_, b) = node.get("/v1/blocks/1");
    b["receipts"][0]["events"][0]["contract"].as_str().unwrap().to_string()
}

/// The value at `height`, its proofs checked against that block's header.
fn proven(node: &NodeProcess, account: &str, height: u64) -> (u16, serde_json::Value) {
    let (st, v) = node.get(&format!("/v1/state/{account}/meter/1?proof=true&height={height}"));
    if st != 200 {
        return (st, v);
    }
    let s = suite("gm");
    let (_, block) = node.get(&format!("/v1/blocks/{height}?full=false"));
    let root = Hash32::from_hex(block["header"]["state_root"].as_str().unwrap()).unwrap();
    assert_eq!(Hash32::from_hex(v["state_root"].as_str().unwrap()), Some(root));
    let p = &v["proof"];
    let account_encoding = hex::decode(p["account_encoding"].as_str().unwrap()).unwrap();
    let account_proof: StateProof = serde_json::from_value(p["account"].clone()).unwrap();
    let id = Hash32::from_hex(account).unwrap();
    assert!(account_proof.verify(&s, &root, &id, Some(&s.hash(&account_encoding).unwrap())).unwrap());
    let storage_root = Hash32::from_hex(p["storage_root"].as_str().unwrap()).unwrap();
    let storage_proof: StateProof = serde_json::from_value(p["storage"].clone()).unwrap();
    let value = hex::decode(v["value"].as_str().unwrap()).unwrap();
    assert!(storage_proof.verify(&s, &storage_root, &s.hash(b"meter/1").unwrap(), Some(&s.hash(&value).unwrap())).unwrap());
    (st, serde_json::Value::String(String::from_utf8(value).unwrap()))
}

#[test]
fn an_archive_node_proves_every_blocks_state_and_a_pruning_node_only_the_last() {
    for history in [None, Some(2)] {
        let d = tempdir();
        init_node(d.path(), &["--block-interval-ms", "50", "--channel", "grid"]);
        if let Some(n) = history {
            let mut toml = std::fs::read_to_string(d.path().join("node.toml")).unwrap();
            toml.push_str(&format!("\n[storage]\nstate-history-blocks = {n}\n"));
            std::fs::write(d.path().join("node.toml"), toml).unwrap();
        }
        let node = NodeProcess::start(d.path(), &[]);
        let heights = blocks_of_one_record(&node, 5);
        let account = account_of(&node);
        let head = node.height();
        assert_eq!(heights.last(), Some(&head), "no block after the last record");
        for (n, &h) in heights.iter().enumerate() {
            let (st, v) = proven(&node, &account, h);
            let kept = history.is_none_or(|keep| h + keep > head);
            if kept {
                assert_eq!((st, v.as_str()), (200, Some(format!("reading {n}").as_str())), "{history:?}: block {h}");
            } else {
                assert_eq!((st, v["code"].as_str()), (410, Some("pruned")), "{history:?}: block {h}: {v}");
                let msg = v["error"].as_str().unwrap();
                assert!(msg.contains(&format!("the state of block {h} is pruned")), "{msg}");
                let (st, v) = node.get(&format!("/v1/accounts/{account}?height={h}"));
                assert_eq!((st, v["code"].as_str()), (410, Some("pruned")), "{v}");
                // The block and its receipts are still served.
                let (st, b) = node.get(&format!("/v1/blocks/{h}"));
                assert_eq!((st, b["receipts"].as_array().map(Vec::len)), (200, Some(1)));
            }
        }
        let (st, v) = node.get(&format!("/v1/state/{account}/meter/1?height={}", head + 100));
        assert_eq!((st, v["code"].as_str()), (404, Some("not_found")), "{v}");
    }
}
