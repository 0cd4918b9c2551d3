//! Bad transactions over HTTP: each a 4xx with a stable code and a reason, none changing
//! the chain, the state or the pool.

use crate::support::{NodeProcess, data_tx, init_node, suite, tempdir};
use joule_primitives::{ChainCrypto, Encode, Payload};
use serde_json::Value;

/// What a rejection must leave unchanged.
fn snapshot(node: &NodeProcess, account: &str) -> (u64, Value, Value) {
    let (_, st) = node.get("/v1/status");
    let (_, acc) = node.get(&format!("/v1/accounts/{account}"));
    (st["height"].as_u64().unwrap(), st["pending_transactions"].clone(), acc["account"].clone())
}

#[test]
fn every_bad_transaction_gets_a_precise_4xx_and_changes_nothing() {
    let d = tempdir();
    init_node(d.path(), &["--block-interval-ms", "100", "--gas-limit", "1000000"]);
    let node = NodeProcess::start(d.path(), &[]);
    let s = suite("gm");
    let kp = s.crypto().generate_key("sm2").unwrap();
    let other = s.crypto().generate_key("sm2").unwrap();
    let account = hex::encode(&kp.public_key);

    // One good transaction first, so "replayed" has something to replay.
    let good = data_tx(&s, &kp, "grid", 0, "meter/1", b"1 kWh");
    let (st, v) = node.submit(&good);
    assert_eq!(st, 202, "{v}");
    node.wait_tx(v["hash"].as_str().unwrap());
    let before = snapshot(&node, &account);

    let mut bad_sig = data_tx(&s, &kp, "grid", 1, "meter/1", b"2 kWh");
    bad_sig.signature = data_tx(&s, &other, "grid", 1, "meter/1", b"2 kWh").signature;
    let mut tampered = data_tx(&s, &kp, "grid", 1, "meter/1", b"2 kWh");
    tampered.body.payload = Payload::Data { key: "meter/1".into(), value: b"2000 kWh".to_vec() };
    let wrong_channel = data_tx(&s, &kp, "other-grid", 1, "meter/1", b"2 kWh");
    let oversized = data_tx(&s, &kp, "grid", 1, "meter/1", &vec![7u8; 1200 << 10]);
    let mut gas_over = data_tx(&s, &kp, "grid", 1, "meter/1", b"2 kWh");
    gas_over.body.gas_limit = 2_000_000;
    let gas_over = {
        let sig = s.sign(&kp.private_key, &gas_over.body.signing_bytes()).unwrap();
        gas_over.body.sign_with(sig)
    };
    let mut gas_under = data_tx(&s, &kp, "grid", 1, "meter/1", b"2 kWh");
    gas_under.body.gas_limit = 10;
    let gas_under = {
        let sig = s.sign(&kp.private_key, &gas_under.body.signing_bytes()).unwrap();
        gas_under.body.sign_with(sig)
    };
    let mut wrong_alg = data_tx(&s, &kp, "grid", 1, "meter/1", b"2 kWh");
    wrong_alg.body.sig_alg = "ecdsa-p256".into();
    let far_ahead = data_tx(&s, &kp, "grid", 5000, "meter/1", b"2 kWh");
    let signed = |payload: Payload| {
        let mut t = data_tx(&s, &kp, "grid", 1, "x", b"");
        t.body.payload = payload;
        let sig = s.sign(&kp.private_key, &t.body.signing_bytes()).unwrap();
        t.body.sign_with(sig)
    };
    let governance = signed(Payload::Governance(joule_primitives::Governance::Propose {
        changes: vec![joule_primitives::Change::AddValidator { public_key: kp.public_key.clone(), weight: 1 }],
        expires_at: 100,
        components: vec![],
    }));
    // Only the channel's validators may deploy (the default policy); this key is not one.
    let deploy = signed(Payload::Deploy { code: b"\0asm".to_vec(), init_args: vec![], upgradable: false });

    let bytes = |t: &joule_primitives::Transaction| t.encode();
    let json = |t: &joule_primitives::Transaction| serde_json::to_vec(t).unwrap();
    // (what, content type, body, status, code, words the reason must contain)
    type Case<'a> = (&'a str, &'a str, Vec<u8>, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        ("bad signature", "application/octet-stream", bytes(&bad_sig), 400, "bad_signature", "signature does not verify"),
        ("tampered after signing", "application/json", json(&tampered), 400, "bad_signature", "signature does not verify"),
        ("replayed nonce", "application/octet-stream", bytes(&good), 409, "nonce_used", "nonce 0 was already used"),
        ("wrong channel", "application/octet-stream", bytes(&wrong_channel), 400, "wrong_channel", "for channel other-grid, this is grid"),
        ("oversized", "application/octet-stream", bytes(&oversized), 413, "too_large", "over the limit"),
        ("gas over the channel limit", "application/json", json(&gas_over), 400, "gas_over_limit", "over the channel's limit of 1000000"),
        ("gas under the intrinsic cost", "application/octet-stream", bytes(&gas_under), 400, "gas_below_intrinsic", "below the transaction's intrinsic cost"),
        ("algorithm not the suite's", "application/octet-stream", bytes(&wrong_alg), 400, "wrong_algorithm", "not the channel's (sm2)"),
        ("nonce too far ahead", "application/octet-stream", bytes(&far_ahead), 400, "nonce_too_far_ahead", "more than 1000 ahead"),
        (
            "governance by a non-validator",
            "application/octet-stream",
            bytes(&governance),
            403,
            "not_permitted",
            "only the validators of channel grid govern it",
        ),
        ("deploy by a non-deployer", "application/octet-stream", bytes(&deploy), 403, "not_permitted", "may not deploy contracts on channel grid"),
        ("malformed JSON", "application/json", b"{\"channel\": \"grid\", \"nonce\": ".to_vec(), 400, "malformed", "malformed transaction JSON"),
        ("JSON of the wrong shape", "application/json", b"{\"channel\": \"grid\"}".to_vec(), 400, "malformed", "missing field"),
        ("garbage bytes", "application/octet-stream", b"\x01\xff\xff\xff\xff".to_vec(), 400, "malformed", "malformed transaction"),
        (
            "wrong encoding version",
            "application/octet-stream",
            {
                let mut b = bytes(&good);
                b[0] = 9;
                b
            },
            400,
            "malformed",
            "version",
        ),
    ];
    for (what, ct, body, status, code, reason) in cases {
        let (got, v) = node.post_raw("/v1/tx", ct, &body, false);
        assert_eq!(got, status, "{what}: {v}");
        assert_eq!(v["code"], code, "{what}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains(reason), "{what}: {msg:?} should say {reason:?}");
    }
    // A duplicate of a pending transaction is refused too.
    let next = data_tx(&s, &kp, "grid", 2, "meter/1", b"3 kWh"); // nonce 1 missing: stays pending
    let (st, _) = node.submit(&next);
    assert_eq!(st, 202);
    let (st, v) = node.submit(&next);
    assert_eq!((st, v["code"].as_str()), (409, Some("duplicate")), "{v}");

    std::thread::sleep(std::time::Duration::from_millis(400));
    let after = snapshot(&node, &account);
    assert_eq!((after.0, &after.2), (before.0, &before.2), "a rejected transaction changed the chain or the account");
    assert_eq!(after.1, 1, "only the gapped transaction is pending");
    let metrics = NodeProcess::agent().get(&format!("{}/metrics", node.base)).call().unwrap().into_body().read_to_string().unwrap();
    for code in ["bad_signature", "nonce_used", "wrong_channel", "too_large", "gas_over_limit", "malformed", "duplicate"] {
        assert!(metrics.contains(&format!("txpool_rejections_total{{reason=\"{code}\"}}")), "no rejection metric for {code}");
    }
}

#[test]
fn a_batch_answers_each_transaction_and_admits_only_the_good_ones() {
    let d = tempdir();
    init_node(d.path(), &["--block-interval-ms", "100"]);
    let node = NodeProcess::start(d.path(), &[]);
    let s = suite("gm");
    let kp = s.crypto().generate_key("sm2").unwrap();
    let good: Vec<_> = (0..5).map(|n| data_tx(&s, &kp, "grid", n, &format!("meter/{n}"), b"1 kWh")).collect();
    let mut forged = data_tx(&s, &kp, "grid", 5, "meter/5", b"1 kWh");
    forged.signature[10] ^= 1;
    let mut frames = Vec::new();
    let mut push = |bytes: &[u8]| {
        frames.extend((bytes.len() as u32).to_le_bytes());
        frames.extend(bytes);
    };
    for t in &good {
        push(&t.encode());
    }
    push(&forged.encode());
    push(b"\x01garbage");
    push(&good[0].encode()); // a duplicate within the batch
    // A frame over the pool's 1 MiB limit is refused by size, before it is decoded (the
    // API once decoded oversized frames and called this one malformed).
    push(&vec![0u8; 1200 << 10]);
    let (st, v) = node.post_raw("/v1/txs", "application/octet-stream", &frames, false);
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["accepted"].as_u64(), v["rejected"].as_u64()), (Some(5), Some(4)), "{v}");
    let codes: Vec<&str> = v["results"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap_or("ok")).collect();
    assert_eq!(codes, ["ok", "ok", "ok", "ok", "ok", "bad_signature", "malformed", "duplicate", "too_large"]);
    assert!(v["results"][8]["error"].as_str().unwrap().contains("limit of 1048576"), "{v}");
    assert_eq!(v["results"][4]["hash"], good[4].hash(&s).unwrap().to_hex());
    node.wait_tx(v["results"][4]["hash"].as_str().unwrap());
    // JSON batches too; a broken frame fails the whole request and admits nothing.
    let next = data_tx(&s, &kp, "grid", 5, "meter/5", b"2 kWh");
    let (st, v) = node.post_raw("/v1/txs", "application/json", serde_json::to_string(&[&next]).unwrap().as_bytes(), false);
    assert_eq!((st, v["accepted"].as_u64()), (200, Some(1)), "{v}");
    let last = v["results"][0]["hash"].as_str().unwrap().to_string();
    let mut truncated = (1000u32).to_le_bytes().to_vec();
    truncated.extend(data_tx(&s, &kp, "grid", 6, "m", b"x").encode());
    let (st, v) = node.post_raw("/v1/txs", "application/octet-stream", &truncated, false);
    assert_eq!((st, v["code"].as_str()), (400, Some("malformed")), "{v}");
    let (st, v) = node.post_raw("/v1/txs", "application/json", b"{\"not\": \"an array\"}", false);
    assert_eq!((st, v["code"].as_str()), (400, Some("malformed")), "{v}");
    node.wait_tx(&last);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, acc) = node.get(&format!("/v1/accounts/{}", hex::encode(&kp.public_key)));
    assert_eq!(acc["next_nonce"], 6, "exactly the six good transactions were committed");
}
