//! `joule bench network`: a network of validator processes on loopback against a network of
//! one, in the same run, on the same signed transactions; then the sync speed of a node
//! joining a long chain.
//!
//! 1. `--txs` data-record transactions from `--senders` accounts are signed in advance, once:
//!    both networks get the very same transactions (same channel, same nonces).
//! 2. For 1 node, then `--nodes`: a fresh network as `joule up` makes it (every node a
//!    validator, PoA in turn), each node its own process, all connected before the load.
//!    `--clients` threads submit over HTTP, client `c` to node `c mod n`, so every node
//!    admits and gossips its share. Measured on node0's block stream: committed TPS (all
//!    transactions over first submission to last commit), submit-to-commit latency p50/p99
//!    (on node0: a transaction sent to another node includes its gossip), and the block
//!    interval (header timestamps of the blocks that carried the load) against the target.
//!    Every node must then hold the same block at the last height.
//! 3. Sync: a network whose one validator makes empty blocks back to back until a follower
//!    holds `--sync-blocks`; the validator is stopped, and a fresh node joins and fetches
//!    and verifies every block from the follower. Reported: blocks per second from the
//!    joining node's start, and from its first imported block (without start-up and
//!    handshake).
//!
//! On one machine every node verifies every signature and executes every block, so the
//! issue's target for n nodes is ≥ 0.8 × (single-node TPS ÷ n).

use super::tps::{Driven, LoadArgs, RemoveOnDrop, drive, sign_all};
use crate::cli::GlobalOpts;
use crate::up::{self, Nodes, Plan};
use anyhow::{Context, Result, bail, ensure};
use joule_client::ApiClient;
use joule_client::wire::MAX_BATCH;
use joule_crypto::SuiteCrypto;
use joule_primitives::{CryptoSuite, Transaction};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct NetworkArgs {
    /// Validators of the network measured against one.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Transactions submitted to each network.
    #[arg(long, default_value_t = 20_000)]
    pub txs: usize,
    #[command(flatten)]
    pub load: LoadArgs,
    /// `gm` or `intl`.
    #[arg(long, default_value = "gm")]
    pub crypto_suite: String,
    /// The consensus engine of both networks and of the sync measurement: `poa` or `bft`.
    #[arg(long, default_value = "poa")]
    pub consensus: String,
    /// Blocks of the chain a joining node syncs (0: skip the sync measurement).
    #[arg(long, default_value_t = 10_000)]
    pub sync_blocks: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct LoadRow {
    pub nodes: usize,
    pub committed_tps: f64,
    pub blocks: usize,
    pub block_interval_target_ms: u64,
    /// Mean interval between the header timestamps of the blocks that carried the load.
    pub block_interval_ms: Option<f64>,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct SyncRow {
    pub blocks: u64,
    /// From the joining node's process start to its last block.
    pub seconds: f64,
    pub blocks_per_second: f64,
    /// From its first imported block to its last.
    pub seconds_after_first_block: f64,
    pub blocks_per_second_after_first_block: f64,
}

#[derive(Debug, Serialize)]
pub struct NetworkReport {
    pub transactions: usize,
    pub crypto_suite: String,
    pub consensus: String,
    pub cores: usize,
    pub load: Vec<LoadRow>,
    /// TPS of `nodes` validators / TPS of one.
    pub tps_ratio: f64,
    /// The target for that ratio: 0.8 / nodes.
    pub tps_ratio_target: f64,
    pub sync: Option<SyncRow>,
}

pub fn run(g: &GlobalOpts, a: NetworkArgs) -> Result<()> {
    if !(2..=16).contains(&a.nodes) {
        bail!("--nodes must be 2-16 (it is measured against a network of one)");
    }
    if a.txs == 0 || a.load.senders == 0 || a.load.clients == 0 || a.load.batch == 0 || a.load.batch > MAX_BATCH {
        bail!("--txs, --senders and --clients must be positive, --batch 1..={MAX_BATCH}");
    }
    if cfg!(debug_assertions) {
        eprintln!("bench network: this is a debug build; build with --release for figures worth keeping");
    }
    let suite = SuiteCrypto::new(CryptoSuite::named(&a.crypto_suite).with_context(|| format!("unknown crypto suite {:?}", a.crypto_suite))?, g.crypto()?);
    let alg = joule_primitives::ChainCrypto::suite(&suite).signature.clone();
    eprintln!("bench network: signing {} transactions from {} senders…", a.txs, a.load.senders.min(a.txs));
    let keys = (0..a.load.senders.min(a.txs)).map(|_| suite.crypto().generate_key(&alg)).collect::<Result<Vec<_>, _>>()?;
    let by_sender = sign_all(&suite, &keys, a.txs)?;
    let mut rows = Vec::new();
    for n in [1, a.nodes] {
        eprintln!("bench network: {n} validator(s)…");
        rows.push(load(g, &a, n, &by_sender).with_context(|| format!("the {n}-node network"))?);
    }
    let sync = if a.sync_blocks > 0 { Some(sync(g, &a).context("the sync measurement")?) } else { None };
    let tps_ratio = rows[1].committed_tps / rows[0].committed_tps;
    let report = NetworkReport {
        transactions: by_sender.iter().map(Vec::len).sum(),
        crypto_suite: a.crypto_suite.clone(),
        consensus: a.consensus.clone(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load: rows,
        tps_ratio,
        tps_ratio_target: 0.8 / a.nodes as f64,
        sync,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} transactions, {} suite, {} clients, {} per request, {}, {} cores",
        report.transactions,
        report.crypto_suite,
        a.load.clients,
        a.load.batch,
        report.consensus.to_uppercase(),
        report.cores
    );
    println!("| validators | committed TPS | blocks | block interval (target / measured) | submit→commit p50 / p99 |");
    println!("|---:|---:|---:|---:|---:|");
    for r in &report.load {
        println!(
            "| {} | {:.0} | {} | {} / {} ms | {:.0} / {:.0} ms |",
            r.nodes,
            r.committed_tps,
            r.blocks,
            r.block_interval_target_ms,
            r.block_interval_ms.map_or_else(|| "-".to_string(), |m| format!("{m:.0}")),
            r.latency_p50_ms,
            r.latency_p99_ms
        );
    }
    println!("TPS of {} validators / TPS of one: {:.2} (target ≥ {:.2})", a.nodes, report.tps_ratio, report.tps_ratio_target);
    if let Some(s) = &report.sync {
        println!(
            "sync: {} blocks in {:.1} s from start ({:.0} blocks/s); {:.1} s from the first block ({:.0} blocks/s)",
            s.blocks, s.seconds, s.blocks_per_second, s.seconds_after_first_block, s.blocks_per_second_after_first_block
        );
    }
    Ok(())
}

/// Node directories `node0` … under a fresh temporary directory, removed when dropped.
fn network_dirs(label: &str, n: usize) -> (RemoveOnDrop, Vec<PathBuf>) {
    let base = std::env::temp_dir().join(format!("joule-bench-network-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let dirs = (0..n).map(|i| base.join(format!("node{i}"))).collect();
    (RemoveOnDrop(base), dirs)
}

fn height(api: &ApiClient) -> Result<u64> {
    api.get("/v1/status")?["height"].as_u64().context("the node's status has no height")
}

fn header_field(api: &ApiClient, h: u64, field: &str) -> Result<serde_json::Value> {
    let b = api.get(&format!("/v1/blocks/{h}?full=false"))?;
    Ok(if field == "hash" { b["hash"].clone() } else { b["header"][field].clone() })
}

fn load(g: &GlobalOpts, a: &NetworkArgs, n: usize, by_sender: &[Vec<Transaction>]) -> Result<LoadRow> {
    let (_cleanup, dirs) = network_dirs(&format!("{n}"), n);
    let plan = Plan {
        validators: n,
        max_block_transactions: Some(a.load.max_block_transactions),
        max_block_bytes: Some(32 << 20),
        consensus: a.consensus.clone(),
        ..Plan::new(&a.crypto_suite, a.load.block_interval_ms)
    };
    up::create(g, &plan, &dirs)?;
    let mut nodes = Nodes::default();
    let apis = up::start(g, &dirs, &mut nodes)?;
    up::connected(&apis).map_err(|counts| anyhow::anyhow!("the nodes did not all connect in 30 s (peers per node: {counts:?})"))?;
    let bases: Vec<String> = apis.iter().map(|api| api.base.clone()).collect();
    let Driven { tps, p50_ms, p99_ms, blocks, heights: (first, last), .. } = drive(&bases[0], &bases, None, by_sender, a.load.clients, a.load.batch)?;
    // Every node holds the same block at the last height.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, api) in apis.iter().enumerate() {
        while height(api)? < last {
            ensure!(Instant::now() < deadline, "node{i} did not reach height {last} within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Under an engine with forks (PoW) the tip may differ for a moment: wait for it to resolve.
    loop {
        let reference = header_field(&apis[0], last, "hash")?;
        let mut differ = None;
        for (i, api) in apis.iter().enumerate().skip(1) {
            let hash = header_field(api, last, "hash")?;
            if hash != reference {
                differ = Some(format!("node{i} holds {hash} at height {last}, node0 {reference}"));
            }
        }
        match differ {
            None => break,
            Some(why) => ensure!(Instant::now() < deadline, "{why}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let interval = if last > first {
        let t0 = header_field(&apis[0], first, "timestamp_ms")?.as_u64().context("timestamp")?;
        let t1 = header_field(&apis[0], last, "timestamp_ms")?.as_u64().context("timestamp")?;
        Some((t1 - t0) as f64 / (last - first) as f64)
    } else {
        None
    };
    nodes.stop();
    Ok(LoadRow {
        nodes: n,
        committed_tps: tps,
        blocks,
        block_interval_target_ms: a.load.block_interval_ms,
        block_interval_ms: interval,
        latency_p50_ms: p50_ms,
        latency_p99_ms: p99_ms,
    })
}

fn sync(g: &GlobalOpts, a: &NetworkArgs) -> Result<SyncRow> {
    let (_cleanup, dirs) = network_dirs("sync", 3);
    // One validator making empty blocks as fast as it can; node1 follows, node2 joins later.
    let plan = Plan { validators: 1, empty_blocks: true, consensus: a.consensus.clone(), ..Plan::new(&a.crypto_suite, 1) };
    up::create(g, &plan, &dirs)?;
    let mut nodes = Nodes::default();
    let apis = up::start(g, &dirs[..2], &mut nodes)?;
    let started = Instant::now();
    let mut reported = Instant::now();
    loop {
        let (made, followed) = (height(&apis[0])?, height(&apis[1])?);
        if followed >= a.sync_blocks {
            break;
        }
        ensure!(started.elapsed() < Duration::from_secs(900), "the chain reached only {made} blocks ({followed} on the follower) in 15 minutes");
        if reported.elapsed() > Duration::from_secs(5) {
            eprintln!("bench network: making the chain to sync: {made} blocks, {followed} on the follower (of {})", a.sync_blocks);
            reported = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    nodes.stop_one("node0");
    let target = height(&apis[1])?;
    eprintln!("bench network: a fresh node joins and syncs {target} blocks from the follower…");
    let start = Instant::now();
    let joined = up::start(g, &dirs[2..], &mut nodes)?;
    let joiner = joined.first().context("the joining node")?;
    let mut first_block: Option<Instant> = None;
    let mut reported = Instant::now();
    loop {
        let h = height(joiner)?;
        if h > 0 && first_block.is_none() {
            first_block = Some(Instant::now());
        }
        if h >= target {
            break;
        }
        ensure!(start.elapsed() < Duration::from_secs(900), "the joining node synced only {h} of {target} blocks in 15 minutes");
        if reported.elapsed() > Duration::from_secs(5) {
            eprintln!("bench network: synced {h} of {target}");
            reported = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = Instant::now();
    ensure!(header_field(joiner, target, "hash")? == header_field(&apis[1], target, "hash")?, "the joining node synced another block at height {target}");
    nodes.stop();
    let seconds = done.duration_since(start).as_secs_f64();
    let after = first_block.map_or(seconds, |f| done.duration_since(f).as_secs_f64());
    Ok(SyncRow {
        blocks: target,
        seconds,
        blocks_per_second: target as f64 / seconds,
        seconds_after_first_block: after,
        blocks_per_second_after_first_block: target as f64 / after.max(1e-9),
    })
}
