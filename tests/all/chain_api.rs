//! A single node serving its chain over HTTP: a transaction from submission to block to
//! provable state, the block stream, the CLI client, configuration over the admin API.

use crate::support::{NodeProcess, data_tx, init_node, joule, run, suite, tempdir};
use joule_primitives::Hasher;
use joule_primitives::smt::StateProof;
use joule_primitives::{Block, Encode, Hash32};
use serde_json::{Value, json};
use std::io::BufRead;
use std::time::Duration;

fn hash(v: &Value) -> Hash32 {
    Hash32::from_hex(v.as_str().expect("hash string")).expect("hash hex")
}

fn proof(v: &Value) -> StateProof {
    serde_json::from_value(v.clone()).expect("state proof")
}

#[test]
fn a_data_record_flows_from_http_to_block_to_provable_state() {
    let d = tempdir();
    init_node(d.path(), &["--block-interval-ms", "100", "--channel", "grid"]);
    let node = NodeProcess::start(d.path(), &[]);
    let (s, st) = node.get("/v1/status");
    assert_eq!(s, 200, "{st}");
    assert_eq!(
        (st["channel"].as_str(), st["height"].as_u64(), st["consensus"].as_str(), st["crypto_suite"].as_str()),
        (Some("grid"), Some(0), Some("poa"), Some("gm"))
    );
    assert_eq!(st["peers"], json!([]));
    assert!(st["validator"].as_bool().unwrap());

    // A subscriber to the block stream, from before the transaction.
    let stream_url = format!("{}/v1/blocks/stream", node.base);
    let (tx_events, rx_events) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let resp = NodeProcess::agent().get(&stream_url).call().expect("stream");
        let reader = std::io::BufReader::new(resp.into_body().into_reader());
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(data) = line.strip_prefix("data:")
                && tx_events.send(serde_json::from_str::<Value>(data.trim()).expect("event JSON")).is_err()
            {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));

    let s_gm = suite("gm");
    let kp = s_gm.crypto().generate_key("sm2").unwrap();
    // One transaction as JSON, one as canonical bytes.
    let t0 = data_tx(&s_gm, &kp, "grid", 0, "meter/7/2026-11-25T10:00", b"42.5 kWh");
    let t1 = data_tx(&s_gm, &kp, "grid", 1, "meter/9/2026-11-25T10:00", b"17.0 kWh");
    let (s, v0) = node.post_raw("/v1/tx", "application/json", serde_json::to_string(&t0).unwrap().as_bytes(), false);
    assert_eq!(s, 202, "{v0}");
    let (s, v1) = node.submit(&t1);
    assert_eq!(s, 202, "{v1}");
    assert_eq!(hash(&v0["hash"]), t0.hash(&s_gm).unwrap(), "the API returns the transaction hash");
    let r1 = node.wait_tx(v1["hash"].as_str().unwrap());
    let r0 = node.wait_tx(v0["hash"].as_str().unwrap());
    assert_eq!(r0["receipt"]["status"], "success");
    assert!(r0["receipt"]["gas_used"].as_u64().unwrap() > 1000);
    assert_eq!(r0["transaction"]["payload"]["key"], "meter/7/2026-11-25T10:00");
    let height = r1["block_height"].as_u64().unwrap();
    assert!(height >= 1);

    // The block by height, by hash, and as canonical bytes hashing to the same block hash.
    let (s, b) = node.get(&format!("/v1/blocks/{height}"));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["hash"], r1["block_hash"]);
    let (_, by_hash) = node.get(&format!("/v1/blocks/{}", b["hash"].as_str().unwrap()));
    assert_eq!(by_hash, b);
    let raw = Block::decode(&node.get_bytes(&format!("/v1/blocks/{height}?format=bytes"))).expect("canonical block");
    assert_eq!(raw.header.hash(&s_gm).unwrap(), hash(&b["hash"]));
    assert!(raw.transactions.contains(&t1));
    let (s, missing) = node.get("/v1/blocks/999999");
    assert_eq!((s, missing["code"].as_str()), (404, Some("not_found")));

    // The record, proved against the state root of a header the client holds. The state is
    // served at the head, which may have moved past `height`: the client takes the header
    // at the height the answer names and checks the answer's root against it, so the check
    // runs whatever the head is, and the proofs are checked against the header's root.
    let account_id = s_gm.hash(&kp.public_key).unwrap();
    let (s, st) = node.get(&format!("/v1/state/{account_id}/meter/7/2026-11-25T10:00?proof=true"));
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["value"], hex::encode(b"42.5 kWh"));
    let state_height = st["height"].as_u64().unwrap_or_else(|| panic!("the state answer names its height: {st}"));
    assert!(state_height >= height, "state at height {state_height}, before the record's block {height}");
    let header = Block::decode(&node.get_bytes(&format!("/v1/blocks/{state_height}?format=bytes"))).expect("canonical block").header;
    assert_eq!(header.height, state_height);
    assert_eq!(hash(&st["state_root"]), header.state_root, "the answer's state root is the header's at height {state_height}");
    let root = header.state_root;
    let p = &st["proof"];
    let account_bytes = hex::decode(p["account_encoding"].as_str().unwrap()).unwrap();
    let account_hash = s_gm.hash(&account_bytes).unwrap();
    assert!(proof(&p["account"]).verify(&s_gm, &root, &account_id, Some(&account_hash)).unwrap(), "account proof");
    let account = joule_primitives::Account::decode(&account_bytes).unwrap();
    assert_eq!(account.nonce, 2);
    assert_eq!(account.storage_root, hash(&p["storage_root"]));
    let key_hash = s_gm.hash(b"meter/7/2026-11-25T10:00").unwrap();
    let storage = proof(&p["storage"]);
    assert!(storage.verify(&s_gm, &account.storage_root, &key_hash, Some(&s_gm.hash(b"42.5 kWh").unwrap())).unwrap());
    assert!(!storage.verify(&s_gm, &account.storage_root, &key_hash, Some(&s_gm.hash(b"43 kWh").unwrap())).unwrap(), "a forged value fails");
    // Absence: a key never written, proved absent.
    let (_, none) = node.get(&format!("/v1/state/{account_id}/meter/8?proof=true"));
    assert!(none.get("value").is_none(), "{none}");
    let absent = s_gm.hash(b"meter/8").unwrap();
    assert!(proof(&none["proof"]["storage"]).verify(&s_gm, &account.storage_root, &absent, None).unwrap());

    // The account by public key and by id.
    let (_, acc) = node.get(&format!("/v1/accounts/{}", hex::encode(&kp.public_key)));
    assert_eq!((acc["next_nonce"].as_u64(), hash(&acc["id"])), (Some(2), account_id));
    let (_, acc2) = node.get(&format!("/v1/accounts/{account_id}"));
    assert_eq!(acc2["account"], acc["account"]);

    // Events by contract (here the sender's account) and topic, from the index.
    let (s, ev) = node.get(&format!("/v1/events?contract={account_id}&topic=data"));
    assert_eq!(s, 200, "{ev}");
    let keys: Vec<String> = ev.as_array().unwrap().iter().map(|e| String::from_utf8(hex::decode(e["data"].as_str().unwrap()).unwrap()).unwrap()).collect();
    assert_eq!(keys, ["meter/7/2026-11-25T10:00", "meter/9/2026-11-25T10:00"]);
    assert_eq!(ev[1]["tx_hash"], v1["hash"]);
    let (_, none) = node.get(&format!("/v1/events?contract={account_id}&topic=other"));
    assert_eq!(none, json!([]));
    let (s, _) = node.get("/v1/events");
    assert_eq!(s, 400, "contract is required");

    // The stream saw the block.
    let mut seen = vec![];
    while let Ok(ev) = rx_events.recv_timeout(Duration::from_secs(5)) {
        seen.push(ev["height"].as_u64().unwrap());
        if seen.contains(&height) {
            break;
        }
    }
    assert!(seen.contains(&height), "block {height} not streamed (saw {seen:?})");

    // Chain metrics, in the Ethereum clients' style.
    let metrics = NodeProcess::agent().get(&format!("{}/metrics", node.base)).call().unwrap().into_body().read_to_string().unwrap();
    for name in
        ["chain_head_block", "txpool_pending", "chain_block_interval_seconds", "chain_block_transactions", "chain_commit_seconds", "chain_transactions_total"]
    {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let head_line = metrics.lines().find(|l| l.starts_with("chain_head_block{")).unwrap();
    assert!(head_line.ends_with(&format!(" {}", node.height())) || node.height() > height, "{head_line}");
}

#[test]
fn cli_client_sends_transactions_and_reads_blocks_and_status() {
    let d = tempdir();
    let key = d.path().join("node-ecdsa-p256.key.pem");
    init_node(d.path(), &["--block-interval-ms", "100", "--crypto-suite", "intl", "--export-key", key.to_str().unwrap()]);
    let _node = NodeProcess::start(d.path(), &[]);
    let dir = d.path().to_str().unwrap();
    let (code, out, err) = run(joule().args(["status", "--dir", dir, "--json"]));
    assert_eq!(code, 0, "{err}");
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["crypto_suite"], "intl");
    // The node key (exported by `joule init`) signs with ECDSA P-256 here.
    let (code, out, err) =
        run(joule().args(["tx", "send", "--dir", dir, "--key"]).arg(&key).args(["--data-key", "feeder/3", "--value", "on", "--wait", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((r["status"].as_str(), r["receipt"]["status"].as_str()), (Some("committed"), Some("success")));
    let height = r["block_height"].as_u64().unwrap().to_string();
    // The next send picks the next nonce from the node.
    let (code, out, err) = run(joule().args(["tx", "send", "--dir", dir, "--key"]).arg(&key).args(["--data-key", "feeder/3", "--value", "off", "--wait"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("committed in block"), "{out}");
    let (code, out, _) = run(joule().args(["block", "get", &height, "--dir", dir, "--json"]));
    assert_eq!(code, 0);
    let b: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(b["tx_hashes"][0], r["hash"]);
    let (code, out, _) = run(joule().args(["block", "get", &height, "--dir", dir]));
    assert_eq!(code, 0);
    assert!(out.contains(r["hash"].as_str().unwrap()) && out.contains("success"), "{out}");
    let (code, out, _) = run(joule().args(["status", "--dir", dir]));
    assert_eq!(code, 0);
    assert!(out.contains("crypto suite intl") && out.contains("consensus    poa"), "{out}");
    // A bad request is an error with the API's reason, exit code 2.
    let (code, _, err) = run(joule().args(["block", "get", "nonsense", "--dir", dir]));
    assert_eq!(code, 2);
    assert!(err.contains("bad_request") && err.contains("not a 32-byte hash"), "{err}");
}

#[test]
fn configuration_is_readable_and_editable_over_the_admin_api() {
    let d = tempdir();
    init_node(d.path(), &["--block-interval-ms", "5000", "--network-id", "east-grid", "--region", "cn-east-1"]);
    let node = NodeProcess::start(d.path(), &[]);
    let get = |path: &str| {
        let r = NodeProcess::agent().get(&format!("{}{path}", node.base)).header("Authorization", &format!("Bearer {}", node.token)).call().unwrap();
        (r.status().as_u16(), r.into_body().read_to_string().unwrap())
    };
    let (s, text) = get("/v1/config/network");
    assert_eq!(s, 200);
    assert!(text.contains("network-id = \"east-grid\"") && text.contains("region = \"cn-east-1\"") && text.contains("gas-limit = 10000000"), "{text}");
    let (s, node_toml) = get("/v1/config/node");
    assert_eq!(s, 200);
    assert!(node_toml.contains("ip = \"127.0.0.1\"") && !node_toml.contains("PRIVATE"), "{node_toml}");
    let (s, _) = node.get("/v1/config/network");
    assert_eq!(s, 401, "configuration needs the admin token");

    // A faster block policy applies at once: a transaction commits well before 5 s.
    let faster = text.replace("interval-ms = 5000", "interval-ms = 100");
    let (s, v) = node.put("/v1/config/network", &faster);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["applied"][0], "channel grid: block policy");
    let s_gm = suite("gm");
    let kp = s_gm.crypto().generate_key("sm2").unwrap();
    let started = std::time::Instant::now();
    let (_, sub) = node.submit(&data_tx(&s_gm, &kp, "grid", 0, "k", b"v"));
    node.wait_tx(sub["hash"].as_str().unwrap());
    assert!(started.elapsed() < Duration::from_millis(2500), "the new interval did not apply ({:?})", started.elapsed());
    assert!(std::fs::read_to_string(d.path().join("network.toml")).unwrap().contains("interval-ms = 100"));

    // Genesis fields cannot change under a running chain; bad TOML is refused; nothing is written.
    let (s, v) = node.put("/v1/config/network", &faster.replace("gas-limit = 10000000", "gas-limit = 20000000"));
    assert_eq!((s, v["code"].as_str()), (409, Some("genesis_change")), "{v}");
    let (s, v) = node.put("/v1/config/network", "network-id = ");
    assert_eq!((s, v["code"].as_str()), (400, Some("bad_config")), "{v}");
    let (s, v) = node.put("/v1/config/network", &faster.replace("crypto-suite = \"gm\"", "crypto-suite = \"rot13\""));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("unknown crypto suite"), "{v}");
    assert_eq!(std::fs::read_to_string(d.path().join("network.toml")).unwrap(), NetworkText::normalise(&faster));

    // Node config: a new port is saved for the next start.
    let (s, v) = node.put("/v1/config/node", &node_toml.replace("port = 0", "port = 0\n").replace("name = \"node0\"", "name = \"substation-7\""));
    assert_eq!((s, v["restart_required"].as_bool()), (200, Some(true)), "{v}");
    let (s, v) = node.put("/v1/config/node", &node_toml.replace("node/seal-sm2", "node/missing"));
    assert_eq!((s, v["code"].as_str()), (400, Some("bad_config")), "{v}");
    assert!(std::fs::read_to_string(d.path().join("node.toml")).unwrap().contains("substation-7"));
}

/// The node writes configuration in its own canonical TOML form.
struct NetworkText;
impl NetworkText {
    fn normalise(text: &str) -> String {
        joule_node::config::NetworkConfig::parse(text).unwrap().to_toml()
    }
}

#[test]
fn a_node_refuses_a_chain_created_from_other_genesis_fields() {
    let d = tempdir();
    init_node(d.path(), &["--genesis-time-ms", "1700000000000"]);
    let node = NodeProcess::start(d.path(), &[]);
    assert_eq!(node.height(), 0);
    node.kill();
    // Same directory, a new validator key and genesis time: not the same chain.
    init_node(d.path(), &["--force", "--genesis-time-ms", "1700000000001"]);
    let (code, _, err) = run(joule().args(["node", "--dir"]).arg(d.path()));
    assert_eq!(code, 2);
    assert!(err.contains("different genesis fields"), "{err}");
}

#[test]
fn the_demo_runs_a_network_with_sample_traffic_and_proves_a_reading() {
    let d = tempdir();
    let (code, out, err) = run(joule().args(["demo", "--seconds", "1", "--meters", "5", "--dir"]).arg(d.path().join("demo")));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("all committed") && out.contains("light-client check") && out.contains("✓"), "{out}");
    assert!(d.path().join("demo/channels/grid/chain.redb").exists(), "--dir keeps the node directory");
}

#[test]
fn two_channels_on_one_node_are_independent_ledgers() {
    use joule_node::config::NetworkConfig;
    let d = tempdir();
    init_node(d.path(), &["--block-interval-ms", "100"]);
    let path = d.path().join("network.toml");
    let mut net = NetworkConfig::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut meters = net.channels[0].clone();
    meters.id = joule_primitives::ChannelId::new("meters").unwrap();
    meters.block_policy.produce_empty_blocks = true;
    net.channels.push(meters);
    std::fs::write(&path, net.to_toml()).unwrap();
    let node = NodeProcess::start(d.path(), &[]);
    let (_, grid) = node.get("/v1/status");
    let (_, m) = node.get("/v1/status?channel=meters");
    assert_eq!((grid["channel"].as_str(), m["channel"].as_str()), (Some("grid"), Some("meters")));
    assert_ne!(grid["head_hash"], m["head_hash"], "each channel has its own genesis");
    assert_eq!(grid["channels"], json!(["grid", "meters"]));
    let (s, v) = node.get("/v1/status?channel=nope");
    assert_eq!((s, v["code"].as_str()), (404, Some("no_such_channel")));

    // A transaction goes to the chain of the channel it names.
    let s_gm = suite("gm");
    let kp = s_gm.crypto().generate_key("sm2").unwrap();
    let (st, v) = node.submit(&data_tx(&s_gm, &kp, "meters", 0, "m/1", b"5 kWh"));
    assert_eq!(st, 202, "{v}");
    let r = node.wait_tx(v["hash"].as_str().unwrap());
    assert_eq!(r["channel"], "meters");
    // The same account is new on the other channel: its nonce 0 is still free there.
    let (st, v) = node.submit(&data_tx(&s_gm, &kp, "grid", 0, "g/1", b"6 kWh"));
    assert_eq!(st, 202, "{v}");
    node.wait_tx(v["hash"].as_str().unwrap());
    let id = s_gm.hash(&kp.public_key).unwrap();
    let (_, on_meters) = node.get(&format!("/v1/state/{id}/g/1?channel=meters"));
    assert!(on_meters.get("value").is_none(), "grid's record is not on meters: {on_meters}");

    // meters produces empty blocks at its interval; grid only blocks with transactions.
    let grid_h = node.height();
    std::thread::sleep(Duration::from_millis(600));
    let (_, m2) = node.get("/v1/status?channel=meters");
    assert!(m2["height"].as_u64().unwrap() >= r["block_height"].as_u64().unwrap() + 3, "empty blocks on meters: {m2}");
    assert_eq!(node.height(), grid_h, "no empty blocks on grid");
    let (_, b) = node.get(&format!("/v1/blocks/{}?channel=meters", m2["height"]));
    assert_eq!(b["tx_hashes"], json!([]));
}
