//! `joule demo`: a local network with sample traffic, end to end over HTTP.
//!
//! Initialises a node directory (network and node configuration, the node's SM2 key made
//! by the crypto plugin), starts the node (PoA through the consensus plugin, `gm` suite),
//! then acts as a set of smart meters would: each meter signs its readings locally and
//! submits them as data-record transactions, alone and in batches. It follows the blocks
//! as they commit, checks one reading's proof against a block header the way a light
//! client would, and prints what happened. Multi-node networks arrive with the consensus
//! issue; this network has one validator.
//!
//! Then the smart-contract market (`target/contracts/`, built by `cargo xtask contracts`):
//! the demo's deployer (the one account the node lets deploy) deploys `energy-units`,
//! `energy-token` and `p2p-market`, grants the producer and meter roles, mints tokens to
//! consumers who approve the market; producers post offers, consumers buy parts of them, the
//! meter attests the deliveries and the trades settle. Every call's receipt must succeed;
//! the balances and the escrow are read back with queries at the end.

use crate::cli::GlobalOpts;
use anyhow::{Context, Result, ensure};
use borsh::BorshSerialize;
use joule_client::ApiClient;
use joule_contract_math::{Decimal, U256};
use joule_crypto::{KeyPair, SuiteCrypto};
use joule_node::NodeArgs;
use joule_node::config::{InitArgs, init};
use joule_primitives::CryptoSuite;
use joule_primitives::smt::StateProof;
use joule_primitives::{ChainCrypto, ChannelId, Encode, Hash32, Hasher, Payload, Transaction, UnsignedTransaction};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Node directory (default: a fresh temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Seconds of sample traffic.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Smart meters sending readings.
    #[arg(long, default_value_t = 20)]
    meters: usize,
    /// Keep serving after the traffic, until Ctrl-C.
    #[arg(long)]
    serve: bool,
    /// Skip the smart-contract market.
    #[arg(long)]
    no_market: bool,
}

pub fn run(g: &GlobalOpts, a: DemoArgs) -> Result<()> {
    let dir = a.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("joule-demo-{}", std::process::id())));
    let crypto = g.crypto()?;
    let suite = SuiteCrypto::new(CryptoSuite::named("gm").context("gm")?, crypto.clone());
    // The market's contracts, found before anything starts; the deployer is the one account
    // the node lets deploy.
    let contracts = if a.no_market { None } else { Some(contracts_dir(g)?) };
    let deployer = Party::new(&suite, "grid-operator")?;
    if !dir.join(joule_node::config::NETWORK_FILE).exists() {
        init(
            &crypto,
            &InitArgs {
                network_id: "demo-grid".into(),
                name: "substation-1".into(),
                block_interval_ms: 500,
                contract_deployer: vec![deployer.id.to_hex()],
                ..InitArgs::defaults(&dir)
            },
        )
        .context("the demo needs the first-party plugins (cargo xtask plugins)")?;
        println!("initialised {} (network.toml, node.toml, node SM2 key sealed in its keystore)", dir.display());
    }
    let args = NodeArgs {
        dir: dir.clone(),
        listen: Some("127.0.0.1:0".parse()?),
        admin_token: None,
        require_signed: false,
        trusted_key: vec![],
        call_timeout_ms: 10_000,
        keystore: None,
        keystore_passphrase_file: None,
        rotation_check_secs: 60,
        http: Default::default(),
    };
    let node = joule_node::build(g, &args)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let server = rt.spawn(joule_node::serve(listener, node));
    println!("joule node listening on http://{addr} (data in {})", dir.display());

    let api = ApiClient::new(&format!("http://{addr}"), None);
    let status = api.get("/v1/status")?;
    println!(
        "channel {} · consensus {} · crypto suite {} · height {}",
        status["channel"].as_str().unwrap_or("?"),
        status["consensus"].as_str().unwrap_or("?"),
        status["crypto_suite"].as_str().unwrap_or("?"),
        status["height"]
    );
    let start_height = status["height"].as_u64().unwrap_or(0);
    let channel = ChannelId::new(status["channel"].as_str().unwrap_or("grid")).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Each meter's key, generated through the suite's signature plugin; nonces from the node.
    let mut meters = Meters::new(&suite, &channel, a.meters, Some(&api))?;
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let (mut sent, mut batches) = (0usize, 0usize);
    let mut last_hash = String::new();
    let mut sample: Option<(Vec<u8>, String, String)> = None;
    while Instant::now() < deadline {
        let mut readings = meters.round(1000.0)?;
        if sample.is_none() {
            sample = readings.first().map(|r| (r.meter.clone(), r.key.clone(), r.value.clone()));
        }
        if meters.rounds % 2 == 1 && !readings.is_empty() {
            // Some readings alone, the rest in one batch per round.
            let alone = readings.remove(0);
            last_hash = api.post_bytes("/v1/tx", &alone.tx)?["hash"].as_str().unwrap_or_default().to_string();
            sent += 1;
        }
        let (n, last) = post_batch(&api, &readings)?;
        last_hash = last.unwrap_or(last_hash);
        sent += n;
        batches += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let committed = api.wait_for_tx(&last_hash, Duration::from_secs(30))?;
    let end = api.get("/v1/status")?;
    let height = end["height"].as_u64().unwrap_or(0);
    println!(
        "sample traffic: {sent} signed meter readings from {} meters ({batches} batches) in {} blocks, all committed; last in block {}",
        meters.len(),
        height - start_height,
        committed["block_height"]
    );
    for h in (start_height + 1..=height).rev().take(3).collect::<Vec<_>>().into_iter().rev() {
        let b = api.get(&format!("/v1/blocks/{h}?full=false"))?;
        println!("  block {h} {} · {} transactions", b["hash"].as_str().unwrap_or("?"), b["tx_hashes"].as_array().map_or(0, Vec::len));
    }
    // A light client's check: the reading, proved against the state root of a header.
    if let Some((pk, key, value)) = sample {
        let account = suite.hash(&pk)?;
        let st = api.get(&format!("/v1/state/{account}/{key}?proof=true"))?;
        let header = api.get(&format!("/v1/blocks/{}?full=false", st["height"]))?;
        let root = Hash32::from_hex(header["header"]["state_root"].as_str().unwrap_or_default()).context("state root")?;
        let p = &st["proof"];
        let account_bytes = hex::decode(p["account_encoding"].as_str().unwrap_or_default())?;
        let account_proof: StateProof = serde_json::from_value(p["account"].clone())?;
        let storage_proof: StateProof = serde_json::from_value(p["storage"].clone())?;
        let acc = joule_primitives::Account::decode(&account_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        let ok = account_proof.verify(&suite, &root, &account, Some(&suite.hash(&account_bytes)?))?
            && storage_proof.verify(&suite, &acc.storage_root, &suite.hash(key.as_bytes())?, Some(&suite.hash(value.as_bytes())?))?;
        ensure!(ok, "the proof of {key} does not verify");
        println!("light-client check: {key} = {value:?} proved against the state root of block {} ✓", st["height"]);
    }
    if let Some(contracts) = contracts {
        let chain = Chain { api: &api, suite: &suite, channel: channel.clone(), enrol: None };
        market(&chain, &contracts, deployer).context("the contract market")?;
    }
    println!("metrics: {}/metrics · API: {}/v1/openapi.json", api.base, api.base);
    if a.serve {
        println!("serving until Ctrl-C");
        rt.block_on(server)??;
    } else {
        server.abort();
        if a.dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(())
}

/// Smart meters: each signs its readings with a key of its own, in the channel's signature
/// algorithm, as data-record transactions (`meter/I/reading/ROUND`). `joule demo` and
/// `joule up` send the same traffic.
pub(crate) struct Meters<'a> {
    suite: &'a SuiteCrypto,
    channel: ChannelId,
    /// Key and next nonce of each meter.
    keys: Vec<(KeyPair, u64)>,
    /// Rounds sent so far.
    pub rounds: u64,
}

/// One signed reading.
pub(crate) struct Reading {
    pub meter: Vec<u8>,
    pub key: String,
    pub value: String,
    /// The transaction, encoded.
    pub tx: Vec<u8>,
}

impl<'a> Meters<'a> {
    /// `count` meters (at least one) with fresh keys; their nonces from `api` when given
    /// (the keys are new, so otherwise 0).
    pub fn new(suite: &'a SuiteCrypto, channel: &ChannelId, count: usize, api: Option<&ApiClient>) -> Result<Meters<'a>> {
        let alg = suite.suite().signature.clone();
        let mut keys = Vec::new();
        for _ in 0..count.max(1) {
            let kp = suite.crypto().generate_key(&alg)?;
            let nonce = match api {
                Some(api) => api.get(&format!("/v1/accounts/{}", hex::encode(&kp.public_key)))?["next_nonce"].as_u64().unwrap_or(0),
                None => 0,
            };
            keys.push((kp, nonce));
        }
        Ok(Meters { suite, channel: channel.clone(), keys, rounds: 0 })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The meters' keys.
    pub fn keys(&self) -> impl Iterator<Item = &KeyPair> {
        self.keys.iter().map(|(k, _)| k)
    }

    /// The next round: one signed reading from every meter, around `base` kWh.
    pub fn round(&mut self, base: f64) -> Result<Vec<Reading>> {
        self.rounds += 1;
        let round = self.rounds;
        let alg = self.suite.suite().signature.clone();
        let mut out = Vec::with_capacity(self.keys.len());
        for (i, (kp, nonce)) in self.keys.iter_mut().enumerate() {
            let key = format!("meter/{i}/reading/{round}");
            let value = format!("{:.2} kWh", base + i as f64 * 7.5 + round as f64 * 0.25);
            let body = UnsignedTransaction {
                channel: self.channel.clone(),
                sender: kp.public_key.clone(),
                nonce: *nonce,
                gas_limit: 100_000,
                sig_alg: alg.clone(),
                payload: Payload::Data { key: key.clone(), value: value.clone().into_bytes() },
            };
            let tx = body.clone().sign_with(self.suite.sign(&kp.private_key, &body.signing_bytes())?);
            *nonce += 1;
            out.push(Reading { meter: kp.public_key.clone(), key, value, tx: tx.encode() });
        }
        Ok(out)
    }
}

/// Submit `readings` as one batch (`POST /v1/txs`); every one must be accepted. Returns how
/// many were sent and the hash of the last.
pub(crate) fn post_batch(api: &ApiClient, readings: &[Reading]) -> Result<(usize, Option<String>)> {
    if readings.is_empty() {
        return Ok((0, None));
    }
    let mut frames = Vec::new();
    for r in readings {
        frames.extend((r.tx.len() as u32).to_le_bytes());
        frames.extend(&r.tx);
    }
    let v = api.post_bytes("/v1/txs", &frames)?;
    ensure!(v["rejected"] == 0, "readings rejected by {}: {v}", api.base);
    let last = v["results"].as_array().and_then(|r| r.last()).and_then(|r| r["hash"].as_str()).map(str::to_string);
    Ok((readings.len(), last))
}

/// `target/contracts`: next to the plugin directory (`target/plugins`), else under the
/// current directory.
pub(crate) fn contracts_dir(g: &GlobalOpts) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> =
        g.plugin_dir().and_then(|p| p.parent().map(|t| t.join("contracts"))).into_iter().chain([PathBuf::from("target/contracts")]).collect();
    candidates.iter().find(|d| MARKET_CONTRACTS.iter().all(|c| d.join(format!("{c}.wasm")).is_file())).cloned().with_context(|| {
        format!(
            "the market's contracts ({}) are not in {}: build them with `cargo xtask contracts` (or skip the market with --no-market)",
            MARKET_CONTRACTS.map(|c| format!("{c}.wasm")).join(", "),
            candidates.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" nor ")
        )
    })
}

pub(crate) const MARKET_CONTRACTS: [&str; 3] = ["energy-units", "energy-token", "p2p-market"];
const CALL_GAS: u64 = 5_000_000;
/// A deployment pays for its bytes.
const DEPLOY_GAS: u64 = 10_000_000;

/// An account of the demo: a name, an SM2 key, its account id and next nonce.
struct Party {
    name: &'static str,
    kp: KeyPair,
    id: Hash32,
    nonce: u64,
}

impl Party {
    fn new(suite: &SuiteCrypto, name: &'static str) -> Result<Party> {
        let kp = suite.crypto().generate_key(&suite.suite().signature)?;
        let id = suite.hash(&kp.public_key)?;
        Ok(Party { name, kp, id, nonce: 0 })
    }
}

struct Chain<'a> {
    api: &'a ApiClient,
    suite: &'a SuiteCrypto,
    channel: ChannelId,
    /// On a channel with certificates: who certifies the parties.
    enrol: Option<&'a crate::enrol::Enroller>,
}

/// A signed transaction and what to call it in the log.
struct Step {
    label: String,
    tx: Transaction,
}

fn args<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("borsh encodes into a Vec")
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("a decimal literal")
}

/// A token amount (18 decimals) in whole tokens.
fn tok(amount: U256) -> Decimal {
    Decimal::raw(amount)
}

impl Chain<'_> {
    fn step(&self, who: &mut Party, label: impl Into<String>, payload: Payload, gas_limit: u64) -> Result<Step> {
        let body = UnsignedTransaction {
            channel: self.channel.clone(),
            sender: who.kp.public_key.clone(),
            nonce: who.nonce,
            gas_limit,
            sig_alg: self.suite.suite().signature.clone(),
            payload,
        };
        who.nonce += 1;
        let tx = body.clone().sign_with(self.suite.sign(&who.kp.private_key, &body.signing_bytes())?);
        Ok(Step { label: label.into(), tx })
    }

    fn call(&self, who: &mut Party, contract: Hash32, method: &str, a: Vec<u8>) -> Result<Step> {
        let label = format!("{} → {method}", who.name);
        self.step(who, label, Payload::Call { contract, method: method.into(), args: a }, CALL_GAS)
    }

    /// Submit the steps in one batch and wait for every receipt: each must be a success.
    /// Returns (output bytes, gas used) per step, in order.
    /// A new party, certified when the channel needs it.
    fn party(&self, name: &'static str) -> Result<Party> {
        let p = Party::new(self.suite, name)?;
        if let Some(e) = self.enrol {
            e.enrol(&p.kp, name, "client")?;
        }
        Ok(p)
    }

    fn run(&self, steps: Vec<Step>) -> Result<Vec<(Vec<u8>, u64)>> {
        if let Some(e) = self.enrol {
            e.settle(&[self.api])?;
        }
        let frames = joule_client::wire::frame_batch(steps.iter().map(|s| s.tx.encode()).collect::<Vec<_>>().iter().map(Vec::as_slice));
        let v = self.api.post_bytes("/v1/txs", &frames)?;
        let rows = v["results"].as_array().cloned().unwrap_or_default();
        ensure!(v["rejected"] == 0 && rows.len() == steps.len(), "the node refused part of the batch: {v}");
        let mut out = vec![];
        for (step, row) in steps.iter().zip(rows) {
            let hash = row["hash"].as_str().with_context(|| format!("{}: no hash in {row}", step.label))?;
            let record = self.api.wait_for_tx(hash, Duration::from_secs(30)).with_context(|| step.label.clone())?;
            let r = &record["receipt"];
            ensure!(
                r["status"] == "success",
                "{}: unexpected receipt {} ({}), gas {}",
                step.label,
                r["status"],
                r["reason"].as_str().unwrap_or("no reason"),
                r["gas_used"]
            );
            let output = hex::decode(r["output"].as_str().unwrap_or_default()).with_context(|| format!("{}: output", step.label))?;
            out.push((output, r["gas_used"].as_u64().unwrap_or(0)));
        }
        Ok(out)
    }

    fn query(&self, contract: Hash32, method: &str, a: Vec<u8>) -> Result<Vec<u8>> {
        let v = self.api.post_json(&format!("/v1/contracts/{contract}/query"), &json!({"method": method, "args": hex::encode(a)}))?;
        ensure!(v["status"] == "success", "query {method}: {v}");
        Ok(hex::decode(v["output"].as_str().unwrap_or_default())?)
    }
}

fn decode<T: borsh::BorshDeserialize>(what: &str, bytes: &[u8]) -> Result<T> {
    borsh::from_slice(bytes).with_context(|| format!("decode the result of {what}"))
}

/// The market on a running network through `api` (any node): a fresh operator account
/// deploys and runs it (the channel must let it deploy).
pub(crate) fn run_market(
    api: &ApiClient,
    suite: &SuiteCrypto,
    channel: ChannelId,
    contracts: &std::path::Path,
    enrol: Option<&crate::enrol::Enroller>,
) -> Result<()> {
    let c = Chain { api, suite, channel, enrol };
    let operator = c.party("grid-operator")?;
    market(&c, contracts, operator)
}

fn market(c: &Chain, contracts: &std::path::Path, mut operator: Party) -> Result<()> {
    let started = Instant::now();
    let code = |name: &str| std::fs::read(contracts.join(format!("{name}.wasm"))).with_context(|| format!("read {name}.wasm"));
    println!("\nsmart-contract market (contracts from {}):", contracts.display());

    // 1. The operator deploys the library and the token, then the market that uses them
    //    (dispute window 0: an attestation settles at once; fee 1%).
    let deploy = |c: &Chain, who: &mut Party, name: &str, init: Vec<u8>, upgradable: bool| -> Result<Step> {
        c.step(who, format!("deploy {name}"), Payload::Deploy { code: code(name)?, init_args: init, upgradable }, DEPLOY_GAS)
    };
    let steps = vec![
        deploy(c, &mut operator, "energy-units", vec![], false)?,
        deploy(c, &mut operator, "energy-token", args(&("Grid kWh token".to_string(), "GKT".to_string())), true)?,
    ];
    let out = c.run(steps)?;
    let address = |o: &(Vec<u8>, u64)| -> Result<Hash32> { Hash32::from_hex(&hex::encode(&o.0)).context("a deployment's output is the address") };
    let (units, token) = (address(&out[0])?, address(&out[1])?);
    let market_out = c.run(vec![deploy(c, &mut operator, "p2p-market", args(&(token.0, units.0, 0u64, 100u16)), true)?])?;
    let market = address(&market_out[0])?;
    for (name, addr, (_, gas)) in [("energy-units", units, &out[0]), ("energy-token", token, &out[1]), ("p2p-market", market, &market_out[0])] {
        println!("  {} deployed {name:<13} at {}…  gas {gas}", operator.name, &addr.to_hex()[..16]);
    }

    // 2. Roles, and tokens for the consumers, who let the market pull payments.
    let mut producers = [c.party("solar-farm")?, c.party("wind-coop")?];
    let mut meter = c.party("meter-7")?;
    let mut consumers = [c.party("alice-home")?, c.party("bakery")?, c.party("school")?];
    let funding = U256::from(100u64) * U256::from(10u64).pow(18);
    let mut steps = vec![];
    for p in &producers {
        steps.push(c.call(&mut operator, market, "grant_role", args(&("producer".to_string(), p.id.0)))?);
    }
    steps.push(c.call(&mut operator, market, "grant_role", args(&("meter".to_string(), meter.id.0)))?);
    for who in &consumers {
        steps.push(c.call(&mut operator, token, "mint", args(&(who.id.0, funding)))?);
    }
    for who in consumers.iter_mut() {
        steps.push(c.call(who, token, "approve", args(&(market.0, funding)))?);
    }
    let gas: Vec<u64> = c.run(steps)?.into_iter().map(|(_, g)| g).collect();
    println!("  roles: producer → {}, {}; meter → {}  (gas {} each)", producers[0].name, producers[1].name, meter.name, gas[0]);
    println!(
        "  minted {} GKT to each of {}, {}, {}, who approved the market  (mint gas {}, approve gas {})",
        tok(funding),
        consumers[0].name,
        consumers[1].name,
        consumers[2].name,
        gas[3],
        gas[6]
    );

    // 3. Offers: kWh, tokens per kWh, valid from block 0 for a long while.
    let offers = [(0usize, "12", "0.21"), (1, "20", "0.18")];
    let mut steps = vec![];
    for (p, kwh, price) in offers {
        steps.push(c.call(&mut producers[p], market, "post_offer", args(&(dec(kwh), dec(price), 0u64, 1_000_000u64)))?);
    }
    let mut offer_ids = vec![];
    for ((p, kwh, price), (out, gas)) in offers.iter().zip(c.run(steps)?) {
        let id: u64 = decode("post_offer", &out)?;
        println!("  {} offers {kwh} kWh at {price} GKT/kWh → offer #{id}  (gas {gas})", producers[*p].name);
        offer_ids.push(id);
    }

    // 4. Consumers buy parts of the offers (partial fills); one buys from both.
    let buys = [(0usize, 0usize, "4"), (1, 0, "5.5"), (2, 1, "15"), (0, 1, "3")];
    let mut steps = vec![];
    for (who, offer, kwh) in buys {
        steps.push(c.call(&mut consumers[who], market, "buy", args(&(offer_ids[offer], dec(kwh))))?);
    }
    let mut trades = vec![];
    for ((who, offer, kwh), (out, gas)) in buys.iter().zip(c.run(steps)?) {
        let id: u64 = decode("buy", &out)?;
        let (p, _, price) = offers[*offer];
        let paid = dec(kwh) * dec(price);
        println!(
            "  {} buys {kwh} kWh of offer #{} from {} at {price} GKT/kWh → trade #{id}, {paid} GKT in escrow  (gas {gas})",
            consumers[*who].name, offer_ids[*offer], producers[p].name
        );
        trades.push((id, *who, p, dec(kwh)));
    }

    // 5. The meter attests each delivery; the school's came short (refunded pro rata).
    let mut steps = vec![];
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut delivered = vec![];
    for &(id, who, _, kwh) in &trades {
        let got = if consumers[who].name == "school" { dec("13.5") } else { kwh };
        delivered.push(got);
        steps.push(c.call(&mut meter, market, "attest_delivery", args(&(id, got, now_ms - 900_000, now_ms)))?);
    }
    for ((&(id, who, p, kwh), got), (_, gas)) in trades.iter().zip(&delivered).zip(c.run(steps)?) {
        println!(
            "  {} attests {got} of {kwh} kWh delivered by {} to {} (trade #{id}) → settled  (gas {gas})",
            meter.name, producers[p].name, consumers[who].name
        );
    }

    // 6. The state, read back with queries.
    let balance = |who: &Hash32| -> Result<U256> { decode("balance_of", &c.query(token, "balance_of", args(&who.0))?) };
    println!("  balances (GKT, read back with queries):");
    for p in producers.iter().chain(&consumers) {
        println!("    {:<14} {:>12}", p.name, tok(balance(&p.id)?).to_string());
    }
    let (escrow, fees): (U256, U256) = decode("balances", &c.query(market, "balances", vec![])?)?;
    println!("    {:<14} {:>12}  (escrow {}, fees {})", "p2p-market", tok(balance(&market)?).to_string(), tok(escrow), tok(fees));
    let supply: U256 = decode("total_supply", &c.query(token, "total_supply", vec![])?)?;
    println!("    {:<14} {:>12}", "total supply", tok(supply).to_string());
    println!("  market done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
