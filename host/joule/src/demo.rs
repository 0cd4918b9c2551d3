//! `joule demo`: a local network with sample traffic, end to end over HTTP.
//!
//! Initialises a node directory (network and node configuration, the node's SM2 key made
//! by the crypto plugin), starts the node (PoA through the consensus plugin, `gm` suite),
//! then acts as a set of smart meters would: each meter signs its readings locally and
//! submits them as data-record transactions, alone and in batches. It follows the blocks
//! as they commit, checks one reading's proof against a block header the way a light
//! client would, and prints what happened. Multi-node networks arrive with the consensus
//! issue; this network has one validator.

use crate::cli::GlobalOpts;
use anyhow::{Context, Result, ensure};
use joule_client::ApiClient;
use joule_crypto::SuiteCrypto;
use joule_node::NodeArgs;
use joule_node::config::{InitArgs, init};
use joule_primitives::CryptoSuite;
use joule_primitives::smt::StateProof;
use joule_primitives::{ChainCrypto, ChannelId, Encode, Hash32, Hasher, Payload, UnsignedTransaction};
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
}

pub fn run(g: &GlobalOpts, a: DemoArgs) -> Result<()> {
    let dir = a.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("joule-demo-{}", std::process::id())));
    let crypto = g.crypto()?;
    if !dir.join(joule_node::config::NETWORK_FILE).exists() {
        init(&crypto, &InitArgs { network_id: "demo-grid".into(), name: "substation-1".into(), block_interval_ms: 500, ..InitArgs::defaults(&dir) })
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
    let suite = SuiteCrypto::new(CryptoSuite::named("gm").context("gm")?, crypto.clone());
    let channel = ChannelId::new(status["channel"].as_str().unwrap_or("grid")).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Each meter's key, generated through the SM2 plugin; nonces from the node.
    let mut meters = vec![];
    for _ in 0..a.meters.max(1) {
        let kp = crypto.generate_key("sm2")?;
        let nonce = api.get(&format!("/v1/accounts/{}", hex::encode(&kp.public_key)))?["next_nonce"].as_u64().unwrap_or(0);
        meters.push((kp, nonce));
    }
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let (mut sent, mut batches, mut round) = (0usize, 0usize, 0u64);
    let mut last_hash = String::new();
    let mut sample: Option<(Vec<u8>, String, String)> = None;
    while Instant::now() < deadline {
        round += 1;
        let mut frames = Vec::new();
        for (i, (kp, nonce)) in meters.iter_mut().enumerate() {
            let key = format!("meter/{i}/reading/{round}");
            let value = format!("{:.2} kWh", 1000.0 + i as f64 * 7.5 + round as f64 * 0.25);
            let body = UnsignedTransaction {
                channel: channel.clone(),
                sender: kp.public_key.clone(),
                nonce: *nonce,
                gas_limit: 100_000,
                sig_alg: "sm2".into(),
                payload: Payload::Data { key: key.clone(), value: value.clone().into_bytes() },
            };
            let tx = body.clone().sign_with(suite.sign(&kp.private_key, &body.signing_bytes())?);
            *nonce += 1;
            if sample.is_none() {
                sample = Some((kp.public_key.clone(), key, value));
            }
            let bytes = tx.encode();
            if round % 2 == 1 && i == 0 {
                // Some readings alone, the rest in one batch per round.
                last_hash = api.post_bytes("/v1/tx", &bytes)?["hash"].as_str().unwrap_or_default().to_string();
                sent += 1;
                continue;
            }
            frames.extend((bytes.len() as u32).to_le_bytes());
            frames.extend(bytes);
        }
        let v = api.post_bytes("/v1/txs", &frames)?;
        ensure!(v["rejected"] == 0, "readings rejected: {v}");
        let rows = v["results"].as_array().cloned().unwrap_or_default();
        if let Some(h) = rows.last().and_then(|r| r["hash"].as_str()) {
            last_hash = h.to_string();
        }
        sent += rows.len();
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
