//! Two fresh nodes, the same transactions: byte-identical blocks and state roots. The
//! second node computes its state itself, re-executing every block through the path a
//! follower uses (engine seal check, signatures, execution, roots), and refuses blocks
//! that were tampered with.

use crate::support::{NodeProcess, data_tx, init_node, suite, tempdir};
use joule_primitives::{Block, Encode, Hash32};
use joule_primitives::{ChainCrypto, Hasher};

#[test]
fn a_second_node_replays_the_same_transactions_to_identical_blocks_and_state() {
    let (da, db) = (tempdir(), tempdir());
    let exported = da.path().join("exported-node-key.pem");
    init_node(da.path(), &["--block-interval-ms", "100", "--max-block-transactions", "7", "--export-key", exported.to_str().unwrap()]);
    // B: its own node key, the same network (A is the channel's validator).
    init_node(db.path(), &[]);
    std::fs::copy(da.path().join("network.toml"), db.path().join("network.toml")).unwrap();
    let a = NodeProcess::start(da.path(), &[]);
    let b = NodeProcess::start(db.path(), &[]);
    let (_, sa) = a.get("/v1/status");
    let (_, sb) = b.get("/v1/status");
    assert_eq!(sa["head_hash"], sb["head_hash"], "same genesis fields, same block 0");
    assert_eq!(sb["validator"], false);

    let s = suite("gm");
    let senders: Vec<_> = (0..3).map(|_| s.crypto().generate_key("sm2").unwrap()).collect();
    // Each sender's last transaction: the pool orders by sender, so another sender's last
    // may commit in an earlier block.
    let mut lasts = vec![String::new(); senders.len()];
    for n in 0..8u64 {
        for (i, kp) in senders.iter().enumerate() {
            let (st, v) = a.submit(&data_tx(&s, kp, "grid", n, &format!("meter/{i}/{}", n % 3), format!("{n}.{i} kWh").as_bytes()));
            assert_eq!(st, 202, "{v}");
            lasts[i] = v["hash"].as_str().unwrap().to_string();
        }
    }
    for last in &lasts {
        a.wait_tx(last);
    }
    let head = a.height();
    assert!(head >= 4, "24 transactions at most 7 per block make several blocks (head {head})");

    // Tampered copies of block 1 are refused and change nothing on B.
    let block1 = a.get_bytes("/v1/blocks/1?format=bytes");
    let mut forged_state = Block::decode(&block1).unwrap();
    forged_state.header.state_root = Hash32([9; 32]);
    let mut dropped_tx = Block::decode(&block1).unwrap();
    dropped_tx.transactions.pop();
    let mut retimed = Block::decode(&block1).unwrap();
    retimed.header.timestamp_ms += 1;
    // The validator itself lying about the state: sealed properly, caught by re-execution.
    let validator_key = joule_crypto::pem::decode("PRIVATE KEY", &std::fs::read(&exported).unwrap()).unwrap();
    let mut lying = forged_state.clone();
    let seal_hash = s.hash(&lying.header.sealing_bytes()).unwrap();
    lying.header.seal = s.sign(&validator_key, &seal_hash.0).unwrap();
    for (what, blk, needle) in [
        ("forged state root", &forged_state, "seal"),
        ("dropped transaction", &dropped_tx, "transactions root"),
        ("changed timestamp", &retimed, "seal"),
        ("validator sealing a wrong state root", &lying, "execution gives"),
    ] {
        let (st, v) = b.post_raw("/v1/blocks", "application/octet-stream", &blk.encode(), true);
        assert_eq!((st, v["code"].as_str()), (422, Some("invalid_block")), "{what}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{what}: {v}");
        assert_eq!(b.height(), 0, "{what} changed B");
    }
    // Skipping ahead is refused too: the block's parent is not known here.
    let (st, v) = b.post_raw("/v1/blocks", "application/octet-stream", &a.get_bytes("/v1/blocks/2?format=bytes"), true);
    assert_eq!((st, v["code"].as_str()), (409, Some("unknown_parent")), "{v}");
    // Without the admin token, no import.
    let (st, _) = b.post_raw("/v1/blocks", "application/octet-stream", &block1, false);
    assert_eq!(st, 401);

    for h in 1..=head {
        let bytes = a.get_bytes(&format!("/v1/blocks/{h}?format=bytes"));
        let (st, v) = b.post_raw("/v1/blocks", "application/octet-stream", &bytes, true);
        assert_eq!(st, 200, "import of block {h}: {v}");
    }
    for h in 0..=head {
        assert_eq!(a.get_bytes(&format!("/v1/blocks/{h}?format=bytes")), b.get_bytes(&format!("/v1/blocks/{h}?format=bytes")), "block {h}");
        let (_, ra) = a.get(&format!("/v1/blocks/{h}"));
        let (_, rb) = b.get(&format!("/v1/blocks/{h}"));
        assert_eq!(ra["receipts"], rb["receipts"], "receipts of block {h}");
    }
    for (i, kp) in senders.iter().enumerate() {
        let id = s.hash(&kp.public_key).unwrap();
        let (_, va) = a.get(&format!("/v1/state/{id}/meter/{i}/1?proof=true"));
        let (_, vb) = b.get(&format!("/v1/state/{id}/meter/{i}/1?proof=true"));
        assert_eq!(va["value"], hex::encode(format!("7.{i} kWh")));
        assert_eq!((&va["state_root"], &va["value"], &va["proof"]), (&vb["state_root"], &vb["value"], &vb["proof"]));
    }
    // B found every transaction through its own indexes.
    for last in &lasts {
        let (_, rec) = b.get(&format!("/v1/tx/{last}"));
        assert_eq!(rec["status"], "committed");
    }
}
