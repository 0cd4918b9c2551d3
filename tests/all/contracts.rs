//! Smart contracts through a real node (§4.3): the example market trading among accounts,
//! hostile contracts getting precise receipts while the node stays healthy, permissions and
//! upgrades enforced, the same blocks giving the same roots and gas on a second node (one
//! that loads compiled code from its cache), and event subscriptions that survive a
//! reconnect.
//!
//! The contracts are the examples and fixtures `cargo xtask contracts` builds into
//! `target/contracts/` (`cargo xtask test` does it first).

use crate::support::{NodeProcess, init_node, root, suite, tempdir};
use borsh::BorshSerialize;
use joule_contract_math::{Decimal, U256};
use joule_crypto::{KeyPair, SuiteCrypto};
use joule_primitives::{ChainCrypto, ChannelId, Hash32, Hasher, Payload, Transaction, UnsignedTransaction};
use serde_json::{Value, json};
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

const GAS: u64 = 5_000_000;
/// A deployment pays for its bytes: 16 gas each as payload, 20 more as stored code.
const DEPLOY_GAS: u64 = 10_000_000;

fn contract_wasm(name: &str) -> Vec<u8> {
    let path = root().join("target/contracts").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; build the example contracts with `cargo xtask contracts`", path.display()))
}

fn args<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("borsh")
}

/// A key that signs transactions, with its own nonce.
struct Account {
    kp: KeyPair,
    id: Hash32,
    nonce: u64,
}

struct Chain<'a> {
    node: &'a NodeProcess,
    s: SuiteCrypto,
}

fn new_account(s: &SuiteCrypto) -> Account {
    let kp = s.crypto().generate_key("sm2").expect("key");
    let id = s.hash(&kp.public_key).expect("hash");
    Account { kp, id, nonce: 0 }
}

impl Chain<'_> {
    fn account(&self) -> Account {
        new_account(&self.s)
    }

    fn tx(&self, who: &mut Account, payload: Payload, gas_limit: u64) -> Transaction {
        let body = UnsignedTransaction {
            channel: ChannelId::new("grid").expect("channel"),
            sender: who.kp.public_key.clone(),
            nonce: who.nonce,
            gas_limit,
            sig_alg: self.s.suite().signature.clone(),
            payload,
        };
        who.nonce += 1;
        let sig = self.s.sign(&who.kp.private_key, &body.signing_bytes()).expect("sign");
        body.sign_with(sig)
    }

    /// Submit and wait for the receipt.
    fn send(&self, who: &mut Account, payload: Payload, gas_limit: u64) -> Value {
        let tx = self.tx(who, payload, gas_limit);
        let (status, v) = self.node.submit(&tx);
        assert_eq!(status, 202, "submit: {v}");
        let record = self.node.wait_tx(v["hash"].as_str().expect("hash"));
        record["receipt"].clone()
    }

    fn deploy(&self, who: &mut Account, name: &str, init: Vec<u8>, upgradable: bool) -> Hash32 {
        let r = self.send(who, Payload::Deploy { code: contract_wasm(name), init_args: init, upgradable }, DEPLOY_GAS);
        assert_eq!(r["status"], "success", "deploy {name}: {r}");
        Hash32::from_hex(r["output"].as_str().expect("output")).expect("the address is the output")
    }

    fn call(&self, who: &mut Account, contract: Hash32, method: &str, a: Vec<u8>) -> Value {
        self.send(who, Payload::Call { contract, method: method.into(), args: a }, GAS)
    }

    fn ok(&self, who: &mut Account, contract: Hash32, method: &str, a: Vec<u8>) -> Vec<u8> {
        let r = self.call(who, contract, method, a);
        assert_eq!(r["status"], "success", "{method}: {r}");
        hex::decode(r["output"].as_str().unwrap_or_default()).expect("hex output")
    }

    fn query(&self, contract: Hash32, method: &str, a: Vec<u8>) -> Value {
        let (status, v) = self.node.call("POST", &format!("/v1/contracts/{contract}/query"), Some(json!({"method": method, "args": hex::encode(a)})));
        assert_eq!(status, 200, "query {method}: {v}");
        v
    }

    fn query_ok(&self, contract: Hash32, method: &str, a: Vec<u8>) -> Vec<u8> {
        let v = self.query(contract, method, a);
        assert_eq!(v["status"], "success", "query {method}: {v}");
        hex::decode(v["output"].as_str().unwrap_or_default()).expect("hex")
    }
}

fn decode<T: borsh::BorshDeserialize>(bytes: &[u8]) -> T {
    borsh::from_slice(bytes).expect("borsh result")
}

fn tokens(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(18)
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

/// A node that lets anyone deploy, on a short block interval.
fn start(dir: &Path) -> NodeProcess {
    init_node(dir, &["--block-interval-ms", "100", "--contract-deployer", "anyone"]);
    NodeProcess::start(dir, &[])
}

/// The example market, deployed by an owner: the library, the token and the market (dispute
/// window 0, fee 1%), the roles granted, the buyer funded and its payment approved.
struct Market {
    token: Hash32,
    market: Hash32,
    producer: Account,
    meter: Account,
    buyer: Account,
}

fn set_up_market(c: &Chain) -> Market {
    let (mut owner, producer, meter, mut buyer) = (c.account(), c.account(), c.account(), c.account());
    let units = c.deploy(&mut owner, "energy-units", vec![], false);
    let token = c.deploy(&mut owner, "energy-token", args(&("Grid kWh token".to_string(), "GKT".to_string())), true);
    let market = c.deploy(&mut owner, "p2p-market", args(&(token.0, units.0, 0u64, 100u16)), true);
    c.ok(&mut owner, market, "grant_role", args(&("producer".to_string(), producer.id.0)));
    c.ok(&mut owner, market, "grant_role", args(&("meter".to_string(), meter.id.0)));
    c.ok(&mut owner, token, "mint", args(&(buyer.id.0, tokens(1000))));
    c.ok(&mut buyer, token, "approve", args(&(market.0, tokens(1000))));
    Market { token, market, producer, meter, buyer }
}

#[test]
fn the_market_trades_and_settles_through_a_node() {
    let d = tempdir();
    let node = start(d.path());
    let c = Chain { node: &node, s: suite("gm") };
    let Market { token, market, mut producer, mut meter, mut buyer, .. } = set_up_market(&c);

    // 10 kWh at 0.2 tokens per kWh; the buyer takes 4 (a partial fill), then 6.
    let offer: u64 = decode(&c.ok(&mut producer, market, "post_offer", args(&(dec("10"), dec("0.2"), 0u64, 1_000_000u64))));
    assert_eq!(offer, 1);
    let trade: u64 = decode(&c.ok(&mut buyer, market, "buy", args(&(offer, dec("4")))));
    let balance = |who: &Hash32| -> U256 { decode(&c.query_ok(token, "balance_of", args(&who.0))) };
    assert_eq!(balance(&buyer.id), tokens(1000) - U256::from(800_000_000_000_000_000u128), "0.8 tokens pulled into escrow");
    assert_eq!(balance(&market), U256::from(800_000_000_000_000_000u128));

    // The meter attests 4 kWh delivered: with no dispute window the trade settles at once,
    // the producer paid less the 1% fee.
    c.ok(&mut meter, market, "attest_delivery", args(&(trade, dec("4"), 0u64, 900_000u64)));
    assert_eq!(balance(&producer.id), U256::from(792_000_000_000_000_000u128));
    let second: u64 = decode(&c.ok(&mut buyer, market, "trade", args(&(offer, dec("6")))));
    assert_eq!(second, 2);

    // Buying more than is left fails with the market's reason and moves no tokens.
    let before = balance(&buyer.id);
    let r = c.call(&mut buyer, market, "buy", args(&(offer, dec("1"))));
    assert_eq!(r["status"], "reverted", "{r}");
    assert!(r["gas_used"].as_u64().unwrap() > 0);
    assert_eq!(balance(&buyer.id), before);

    // The market's events, by name, in order, queryable and decodable from the ABI.
    let (s, events) = node.get(&format!("/v1/events?contract={market}&topic=Traded"));
    assert_eq!(s, 200, "{events}");
    let traded: Vec<&Value> = events.as_array().unwrap().iter().collect();
    assert_eq!(traded.len(), 2, "{events}");
    assert_eq!(traded[0]["indexed"][0], hex::encode(1u64.to_le_bytes()), "the trade id is the first indexed topic");
    let (s, info) = node.get(&format!("/v1/contracts/{market}"));
    assert_eq!(s, 200, "{info}");
    assert!(info["abi"].as_array().unwrap().iter().any(|l| l["method"] == "trade"), "{info}");
    assert_eq!(info["upgrade_authority"].as_str().map(str::len), Some(64));
    assert_eq!(node.get("/readyz").0, 200);
}

#[test]
fn hostile_contracts_get_precise_receipts_and_the_node_stays_healthy() {
    let d = tempdir();
    let node = start(d.path());
    let c = Chain { node: &node, s: suite("gm") };
    let mut a = c.account();

    // An infinite loop runs out of gas, using exactly its limit, the same every time.
    let looper = c.deploy(&mut a, "looper", vec![], false);
    let first = c.send(&mut a, Payload::Call { contract: looper, method: "spin".into(), args: vec![] }, 2_000_000);
    let second = c.send(&mut a, Payload::Call { contract: looper, method: "spin".into(), args: vec![] }, 2_000_000);
    assert_eq!(first["status"], "out_of_gas", "{first}");
    assert_eq!((first["gas_used"].as_u64(), second["gas_used"].as_u64()), (Some(2_000_000), Some(2_000_000)));

    let bomb = c.deploy(&mut a, "memory-bomb", vec![], false);
    let r = c.call(&mut a, bomb, "explode", vec![]);
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("reverted"), Some("memory limit exceeded")), "{r}");

    let deep = c.deploy(&mut a, "deep-recursion", vec![], false);
    let r = c.call(&mut a, deep, "recurse_forever", vec![]);
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("reverted"), Some("stack depth exceeded")), "{r}");
    let again = c.call(&mut a, deep, "recurse_forever", vec![]);
    assert_eq!(again["gas_used"], r["gas_used"], "the same depth fails at the same gas");
    assert_eq!(decode::<u32>(&c.query_ok(deep, "recurse", args(&200u32))), 200);

    // Floats compute, NaNs with canonical bits.
    let floats = c.deploy(&mut a, "floats", vec![], false);
    let (nan, sqrt): (u64, u64) = decode(&c.query_ok(floats, "nan_bits", vec![]));
    assert_eq!((nan, sqrt), (0x7ff8_0000_0000_0000, 0x7ff8_0000_0000_0000));

    let big = c.deploy(&mut a, "big-return", vec![], false);
    let r = c.call(&mut a, big, "bytes_call", args(&(100u32 << 10)));
    assert_eq!(r["status"], "reverted", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("return data"), "{r}");
    assert_eq!(decode::<Vec<u8>>(&c.query_ok(big, "bytes", args(&1000u32))).len(), 1000);

    let events = c.deploy(&mut a, "big-event", vec![], false);
    let r = c.call(&mut a, events, "emit", args(&(64u32 << 10)));
    assert_eq!(r["status"], "reverted", "{r}");
    assert!(r["events"].as_array().unwrap().is_empty(), "a failed call keeps no events: {r}");

    let re = c.deploy(&mut a, "reentrant", vec![], false);
    let r = c.call(&mut a, re, "reenter", vec![]);
    assert_eq!(r["status"], "reverted", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("reentrancy"), "{r}");

    // A library that reverts: the caller gets the error back and carries on.
    let lib = c.deploy(&mut a, "reverting-library", vec![], false);
    let caller = c.deploy(&mut a, "reverting-library-caller", args(&lib.0), false);
    let out: Result<u32, String> = decode(&c.ok(&mut a, caller, "report", args(&("revert".to_string(), "no power".to_string()))));
    assert!(out.as_ref().is_err_and(|e| e.contains("no power")), "{out:?}");
    assert_eq!(decode::<u64>(&c.query_ok(caller, "calls", vec![])), 1, "the caller's own write stands");
    let r = c.call(&mut a, caller, "propagate", args(&("fail".to_string(), "tripped".to_string())));
    assert_eq!(r["status"], "reverted", "{r}");
    assert_eq!(decode::<u64>(&c.query_ok(caller, "calls", vec![])), 1, "a propagated failure undoes the caller's write too");

    // An import outside the world is refused at admission, naming it; nothing is charged.
    let tx = c.tx(&mut a, Payload::Deploy { code: contract_wasm("wasi-import"), init_args: vec![], upgradable: false }, GAS);
    a.nonce -= 1;
    let (status, v) = node.submit(&tx);
    assert_eq!((status, v["code"].as_str()), (400, Some("deploy_refused")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("wasi_snapshot_preview1") && v["error"].as_str().unwrap().contains("fd_write"), "{v}");

    let (s, ready) = node.get("/readyz");
    assert_eq!(s, 200, "{ready}");
    // Still making blocks.
    assert_eq!(decode::<u32>(&c.query_ok(deep, "recurse", args(&3u32))), 3);
    let r = c.call(&mut a, looper, "count", args(&10u64));
    assert_eq!(r["status"], "success", "{r}");
}

#[test]
fn unauthorised_deploys_calls_and_upgrades_are_refused_and_change_nothing() {
    let d = tempdir();
    let s = suite("gm");
    let mut deployer = new_account(&s);
    let mut stranger = new_account(&s);
    init_node(d.path(), &["--block-interval-ms", "100", "--contract-deployer", &deployer.id.to_hex()]);
    let node = NodeProcess::start(d.path(), &[]);
    let c = Chain { node: &node, s: suite("gm") };

    // Deploying is a role of the channel's configuration.
    let tx = c.tx(&mut stranger, Payload::Deploy { code: contract_wasm("energy-units"), init_args: vec![], upgradable: false }, GAS);
    stranger.nonce -= 1;
    let (status, v) = node.submit(&tx);
    assert_eq!((status, v["code"].as_str()), (403, Some("not_permitted")), "{v}");

    let token = c.deploy(&mut deployer, "energy-token", args(&("T".to_string(), "T".to_string())), true);
    let frozen = c.deploy(&mut deployer, "energy-token", args(&("F".to_string(), "F".to_string())), false);
    // A method guarded by ownership.
    let to = stranger.id.0;
    let r = c.call(&mut stranger, token, "mint", args(&(to, tokens(5))));
    assert_eq!(r["status"], "reverted", "{r}");
    let supply = |t: Hash32| -> U256 { decode(&c.query_ok(t, "total_supply", vec![])) };
    assert_eq!(supply(token), U256::ZERO);

    // Upgrades: only the authority, only when upgradable; the previous code is kept.
    let code_hash = |t: Hash32| node.get(&format!("/v1/contracts/{t}")).1["code_hash"].clone();
    let before = code_hash(token);
    let upgrade =
        |who: &mut Account, t: Hash32| c.send(who, Payload::Upgrade { contract: t, code: contract_wasm("green-certificates"), migrate_args: None }, GAS);
    let r = upgrade(&mut stranger, token);
    assert_eq!(r["status"], "reverted", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("not the upgrade authority"), "{r}");
    assert_eq!(code_hash(token), before);
    let r = upgrade(&mut deployer, frozen);
    assert!(r["reason"].as_str().unwrap().contains("not upgradable"), "{r}");
    let r = upgrade(&mut deployer, token);
    assert_eq!(r["status"], "success", "{r}");
    let (_, info) = node.get(&format!("/v1/contracts/{token}"));
    assert_eq!(info["previous_code_hash"], before, "{info}");
    assert_ne!(info["code_hash"], before);
    assert!(info["abi"].as_array().unwrap().iter().any(|l| l["method"] == "retire"), "the ABI follows the new code: {info}");
}

#[test]
fn a_second_node_importing_the_blocks_gets_the_same_roots_receipts_and_gas_from_cached_code() {
    let (a_dir, b_dir) = (tempdir(), tempdir());
    init_node(a_dir.path(), &["--block-interval-ms", "100", "--contract-deployer", "anyone"]);
    // B starts from the same configuration and keys: the same genesis.
    copy_dir(a_dir.path(), b_dir.path());
    let a = NodeProcess::start(a_dir.path(), &[]);
    let c = Chain { node: &a, s: suite("gm") };
    let Market { market, mut producer, mut buyer, .. } = set_up_market(&c);
    let offer: u64 = decode(&c.ok(&mut producer, market, "post_offer", args(&(dec("5"), dec("1.5"), 0u64, 1_000_000u64))));
    c.ok(&mut buyer, market, "trade", args(&(offer, dec("2"))));
    let head = a.height();

    // B gets A's compiled contracts: it loads them from disk, A compiled them.
    copy_dir(&a_dir.path().join("contract-cache"), &b_dir.path().join("contract-cache"));
    let b = NodeProcess::start(b_dir.path(), &[]);
    for h in 1..=head {
        let block = a.get_bytes(&format!("/v1/blocks/{h}?format=bytes"));
        let (s, v) = b.post_raw("/v1/blocks", "application/octet-stream", &block, true);
        assert_eq!(s, 200, "block {h} on the second node: {v}");
    }
    for h in 1..=head {
        let (_, ba) = a.get(&format!("/v1/blocks/{h}"));
        let (_, bb) = b.get(&format!("/v1/blocks/{h}"));
        assert_eq!(ba["header"]["state_root"], bb["header"]["state_root"], "block {h}");
        assert_eq!(ba["receipts"], bb["receipts"], "receipts of block {h}: statuses, gas, outputs, events");
    }
}

#[test]
fn an_event_subscriber_gets_every_matching_event_in_order_across_a_reconnect() {
    let d = tempdir();
    let node = start(d.path());
    let c = Chain { node: &node, s: suite("gm") };
    let mut owner = c.account();
    let token = c.deploy(&mut owner, "energy-token", args(&("T".to_string(), "T".to_string())), false);
    let holder = c.account();
    for n in 1..=3u64 {
        c.ok(&mut owner, token, "mint", args(&(holder.id.0, tokens(n))));
    }
    // From the start: three Transfer events replayed, then the stream is dropped.
    let url = format!("{}/v1/events/stream?contract={token}&topic=Transfer&from_height=0", node.base);
    let first = read_events(&url, None, 3);
    assert_eq!(first.len(), 3);
    let last_id = first[2].0.clone();
    // While disconnected, two more; a non-matching event (Approval) in between.
    c.ok(&mut owner, token, "mint", args(&(holder.id.0, tokens(4))));
    c.ok(&mut owner, token, "approve", args(&(holder.id.0, tokens(1))));
    c.ok(&mut owner, token, "mint", args(&(holder.id.0, tokens(5))));
    // Reconnecting with the last id: exactly the two missed, in order, then live ones.
    let url2 = url.clone();
    let reader = std::thread::spawn(move || read_events(&url2, Some(&last_id), 3));
    std::thread::sleep(Duration::from_millis(500));
    c.ok(&mut owner, token, "mint", args(&(holder.id.0, tokens(6))));
    let second = reader.join().expect("reader");
    let ids: Vec<&String> = first.iter().chain(&second).map(|(id, _)| id).collect();
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| id.split(':').map(|p| p.parse::<u64>().unwrap()).collect::<Vec<_>>());
    sorted.dedup();
    assert_eq!(ids, sorted, "in chain order, no duplicates");
    let amounts: Vec<U256> = first
        .iter()
        .chain(&second)
        .map(|(_, v)| {
            let data = hex::decode(v["data"].as_str().unwrap()).unwrap();
            decode::<U256>(&data)
        })
        .collect();
    assert_eq!(amounts, (1..=6).map(tokens).collect::<Vec<_>>());
}

/// Read `n` events of an SSE stream, optionally resuming after `last_id`: (id, data).
fn read_events(url: &str, last_id: Option<&str>, n: usize) -> Vec<(String, Value)> {
    let mut req = NodeProcess::agent().get(url);
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req.call().expect("stream");
    let reader = std::io::BufReader::new(resp.into_body().into_reader());
    let mut out = vec![];
    let mut id = String::new();
    for line in reader.lines() {
        let line = line.expect("line");
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            out.push((id.clone(), serde_json::from_str(v.trim()).expect("json event")));
            if out.len() == n {
                break;
            }
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

#[test]
fn green_certificates_are_issued_per_mwh_and_retired_once_through_a_node() {
    let d = tempdir();
    let node = start(d.path());
    let c = Chain { node: &node, s: suite("gm") };
    let (mut owner, mut issuer, mut producer, buyer) = (c.account(), c.account(), c.account(), c.account());
    let units = c.deploy(&mut owner, "energy-units", vec![], false);
    let certs = c.deploy(&mut owner, "green-certificates", args(&units.0), false);
    c.ok(&mut owner, certs, "grant_role", args(&("issuer".to_string(), issuer.id.0)));
    const WIND: u8 = 1;
    // 2.5 MWh of wind in period 7: two certificates (the half MWh is not certified).
    let (first, count): (u64, u64) = decode(&c.ok(&mut issuer, certs, "issue", args(&(producer.id.0, 7u64, dec("2500"), WIND))));
    assert_eq!(count, 2);
    // The same generation record again: no double counting.
    let r = c.call(&mut issuer, certs, "issue", args(&(producer.id.0, 7u64, dec("2500"), WIND)));
    assert_eq!(r["status"], "reverted", "{r}");
    // Only issuers issue.
    let pid = producer.id.0;
    let r = c.call(&mut producer, certs, "issue", args(&(pid, 8u64, dec("1000"), WIND)));
    assert_eq!(r["status"], "reverted", "{r}");

    c.ok(&mut producer, certs, "transfer", args(&(first, buyer.id.0)));
    let mut buyer = buyer;
    c.ok(&mut buyer, certs, "retire", args(&(first, "Grid Co. 2026 report".to_string())));
    for (method, a) in [("retire", args(&(first, "again".to_string()))), ("transfer", args(&(first, producer.id.0)))] {
        let r = c.call(&mut buyer, certs, method, a);
        assert_eq!(r["status"], "reverted", "a retired certificate cannot be {method}d again: {r}");
    }
    let (issued, retired): (u64, u64) = decode(&c.query_ok(certs, "totals", vec![]));
    assert_eq!((issued, retired), (2, 1));
}
