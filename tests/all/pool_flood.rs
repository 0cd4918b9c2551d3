//! A node's pool under the flood that once filled it for good: throwaway keys each sending
//! nonce 1, which can never execute. The flood stays in the small queued part, an honest
//! sender's batch is accepted whole and committed, and a transaction pushed out after it
//! was accepted says so at `GET /v1/tx/{hash}` and in `/metrics`.

use crate::support::{NodeProcess, data_tx, init_node, suite, tempdir};
use joule_crypto::SuiteCrypto;
use joule_primitives::{Encode, Transaction};
use serde_json::Value;

const QUEUED: usize = 200;
const FLOOD: usize = 1000;

/// Frames of `u32 LE length ‖ canonical bytes`, as `POST /v1/txs` takes them.
fn frames(txs: &[Transaction]) -> Vec<u8> {
    let mut out = vec![];
    for t in txs {
        let bytes = t.encode();
        out.extend((bytes.len() as u32).to_le_bytes());
        out.extend(bytes);
    }
    out
}

fn batch(node: &NodeProcess, txs: &[Transaction]) -> Value {
    let (st, v) = node.post_raw("/v1/txs", "application/octet-stream", &frames(txs), false);
    assert_eq!(st, 200, "{v}");
    v
}

/// The value of the series of `name` whose labels include `label`.
fn series(metrics: &str, name: &str, label: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

fn hash(s: &SuiteCrypto, t: &Transaction) -> String {
    t.hash(s).unwrap().to_hex()
}

#[test]
fn a_flood_of_future_nonces_leaves_an_honest_batch_whole_and_says_what_it_evicted() {
    let d = tempdir();
    init_node(d.path(), &["--block-interval-ms", "200"]);
    let node_toml = d.path().join("node.toml");
    let mut text = std::fs::read_to_string(&node_toml).unwrap();
    text.push_str(&format!("\n[txpool]\nmax-pending = 2000\nmax-queued = {QUEUED}\nmax-queued-per-sender = 16\n"));
    std::fs::write(&node_toml, text).unwrap();
    let node = NodeProcess::start(d.path(), &[]);
    let s = suite("gm");

    let flood: Vec<Transaction> = (0..FLOOD)
        .map(|i| {
            let throwaway = s.crypto().generate_key("sm2").unwrap();
            data_tx(&s, &throwaway, "grid", 1, "junk", format!("{i}").as_bytes())
        })
        .collect();
    let v = batch(&node, &flood);
    assert_eq!(v["accepted"], FLOOD, "each newcomer takes the oldest queued one's place: {}", v["results"][FLOOD - 1]);
    let (_, st) = node.get("/v1/status");
    assert_eq!(st["pending_transactions"], QUEUED, "the flood is held to the queued part's limit");

    // The honest sender's batch: all accepted, all committed.
    let honest = s.crypto().generate_key("sm2").unwrap();
    let txs: Vec<Transaction> = (0..100).map(|n| data_tx(&s, &honest, "grid", n, &format!("meter/{n}"), b"1 kWh")).collect();
    let v = batch(&node, &txs);
    assert_eq!((v["accepted"].as_u64(), v["rejected"].as_u64()), (Some(100), Some(0)), "{}", v["results"]);
    node.wait_tx(&hash(&s, &txs[99]));
    let (_, acc) = node.get(&format!("/v1/accounts/{}", hex::encode(&honest.public_key)));
    assert_eq!(acc["next_nonce"], 100, "{acc}");

    // The flood's oldest were evicted after a 202, and say so; the newest wait, queued.
    let (st, v) = node.get(&format!("/v1/tx/{}", hash(&s, &flood[0])));
    assert_eq!((st, v["status"].as_str(), v["code"].as_str()), (200, Some("evicted"), Some("pool_full")), "{v}");
    assert!(v["reason"].as_str().unwrap_or_default().starts_with("pool_full: replaced by higher-priority transactions"), "{v}");
    let (st, v) = node.get(&format!("/v1/tx/{}", hash(&s, &flood[FLOOD - 1])));
    assert_eq!((st, v["status"].as_str(), v["queued"].as_bool()), (200, Some("pending"), Some(true)), "{v}");

    // One sender cannot fill the queue either.
    let greedy = s.crypto().generate_key("sm2").unwrap();
    let gapped: Vec<Transaction> = (1..=17).map(|n| data_tx(&s, &greedy, "grid", n, "k", b"v")).collect();
    let v = batch(&node, &gapped[..16]);
    assert_eq!(v["accepted"], 16, "{v}");
    let (st, v) = node.submit(&gapped[16]);
    assert_eq!((st, v["code"].as_str()), (429, Some("sender_limit")), "{v}");

    let metrics = NodeProcess::agent().get(&format!("{}/metrics", node.base)).call().unwrap().into_body().read_to_string().unwrap();
    assert_eq!(series(&metrics, "txpool_queued", "channel=\"grid\""), Some(QUEUED as f64), "{metrics}");
    let evicted = series(&metrics, "txpool_evictions_total", "reason=\"pool_full\"").unwrap_or_default();
    assert!(evicted >= (FLOOD - QUEUED + 16) as f64, "txpool_evictions_total {evicted}");
    for name in ["txpool_pending", "txpool_queued", "txpool_evictions_total"] {
        assert!(metrics.contains(&format!("# HELP {name} ")), "no HELP for {name}");
    }
}
