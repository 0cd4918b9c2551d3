//! `joule bench tps`: committed transactions per second of one node, against the machine's
//! SM2 verification ceiling measured in the same run.
//!
//! 1. A fresh node directory (`gm` suite, PoA, this node the validator) is initialised.
//! 2. `--txs` data-record transactions from `--senders` accounts are signed in advance
//!    (signing is the clients' cost, not the chain's).
//! 3. The ceiling: the signatures of those very transactions verified through the SM2
//!    plugin, exactly as admission does, on every core at once, for `--seconds`.
//! 4. A `joule node` process serves the chain; `--clients` threads submit the canonical
//!    bytes over HTTP (keep-alive), each thread its own senders in nonce order. A block
//!    stream subscriber records when each block commits and fetches its transaction hashes.
//! 5. Reported: committed TPS (all transactions / first submission to last commit),
//!    p50 and p99 of submit-to-commit latency, and TPS / ceiling. Because the clients share
//!    the machine with the node, also the node process's own CPU time per committed
//!    transaction (from /proc) against the CPU time of one signature verification: the
//!    share of the node's work that is signature checking, whatever the clients cost.
//! 6. Storage: the channel's `chain.redb` on disk once the node has stopped, as the node
//!    left it and after a compaction, per committed transaction and against the average
//!    encoded transaction.

use crate::cli::GlobalOpts;
use anyhow::{Context, Result, bail};
use joule_client::ApiClient;
use joule_client::wire::MAX_BATCH;
use joule_crypto::{KeyPair, SuiteCrypto};
use joule_ledger::pool::verify_signature;
use joule_node::config::{InitArgs, init};
use joule_primitives::CryptoSuite;
use joule_primitives::{ChainCrypto, ChannelId, Encode, Hash32, Payload, Transaction, UnsignedTransaction};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct TpsArgs {
    /// Transactions to submit.
    #[arg(long, default_value_t = 50_000)]
    pub txs: usize,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Seconds of the verification-ceiling measurement.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The load and block limits `bench tps` and `bench network` share.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Distinct sending accounts.
    #[arg(long, default_value_t = 200)]
    pub senders: usize,
    /// Concurrent HTTP clients (with several nodes, client c submits to node c mod n).
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Transactions per request: 1 submits each alone (`POST /v1/tx`), more batches them
    /// (`POST /v1/txs`).
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Block interval, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub block_interval_ms: u64,
    /// Most transactions per block.
    #[arg(long, default_value_t = 5000)]
    pub max_block_transactions: u32,
}

#[derive(Debug, Serialize)]
pub struct TpsReport {
    pub transactions: usize,
    pub clients: usize,
    pub batch: usize,
    pub cores: usize,
    pub blocks: usize,
    pub committed_tps: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// SM2 signatures per second the plugin verifies on all cores.
    pub sm2_verify_ceiling: f64,
    /// committed_tps / sm2_verify_ceiling.
    pub ratio: f64,
    /// CPU time of the node process per committed transaction (Linux only).
    pub node_cpu_us_per_tx: Option<f64>,
    /// CPU time of one SM2 verification through the plugin: cores / ceiling.
    pub verify_cpu_us: f64,
    /// verify_cpu_us / node_cpu_us_per_tx: the share of the node's work that is signature checking.
    pub verify_share_of_node_cpu: Option<f64>,
    /// The channel's chain.redb on disk (allocated bytes) as the node left it.
    pub store_bytes: u64,
    /// The same after compacting it (what the node does as the file grows).
    pub store_bytes_compacted: u64,
    /// store_bytes_compacted / committed transactions.
    pub store_bytes_per_tx: f64,
    /// Average encoded size of the committed transactions.
    pub tx_bytes: f64,
    /// store_bytes_per_tx / tx_bytes.
    pub store_ratio: f64,
}

/// Bytes the chain store takes on disk as left, and after compaction (the node is stopped).
fn store_bytes(dir: &std::path::Path) -> Result<(u64, u64)> {
    let path = dir.join("channels").join("grid").join(joule_ledger::store::FILE_NAME);
    let left = joule_ledger::store::disk_bytes(&path);
    let mut store = joule_ledger::store::ChainStore::open(&path).with_context(|| format!("open {}", path.display()))?;
    store.compact().context("compact the chain store")?;
    drop(store);
    Ok((left, joule_ledger::store::disk_bytes(&path)))
}

/// User + system CPU seconds of a process so far, from /proc (Linux; USER_HZ is 100).
pub(super) fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

pub(super) fn sign_all(suite: &SuiteCrypto, keys: &[KeyPair], txs: usize) -> Result<Vec<Vec<Transaction>>> {
    let channel = ChannelId::new("grid").map_err(|e| anyhow::anyhow!("{e}"))?;
    let per = txs.div_ceil(keys.len());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, Vec<Transaction>)>> = Mutex::new(vec![]);
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| -> Result<()> {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(kp) = keys.get(i) else { return Ok(()) };
                    let n = per.min(txs.saturating_sub(i * per));
                    let mut v = Vec::with_capacity(n);
                    for nonce in 0..n as u64 {
                        let body = UnsignedTransaction {
                            channel: channel.clone(),
                            sender: kp.public_key.clone(),
                            nonce,
                            gas_limit: 100_000,
                            sig_alg: suite.suite().signature.clone(),
                            payload: Payload::Data { key: format!("meter/{i}/{}", nonce % 16), value: format!("{}.{} kWh", nonce, i).into_bytes() },
                        };
                        let sig = suite.sign(&kp.private_key, &body.signing_bytes())?;
                        v.push(body.sign_with(sig));
                    }
                    out.lock().unwrap_or_else(|p| p.into_inner()).push((i, v));
                }
            });
        }
    });
    let mut v = out.into_inner().unwrap_or_else(|p| p.into_inner());
    v.sort_by_key(|(i, _)| *i);
    Ok(v.into_iter().map(|(_, t)| t).filter(|t| !t.is_empty()).collect())
}

/// Signatures per second verified through the plugin on every core at once. Every
/// verification must accept: one that fails ends the measurement with an error.
pub(super) fn verify_ceiling(suite: &SuiteCrypto, txs: &[Transaction], secs: f64) -> Result<f64> {
    if txs.is_empty() {
        bail!("no transactions to verify");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let start = Instant::now();
    let budget = Duration::from_secs_f64(secs);
    let outcomes: Vec<Result<()>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..cores)
            .map(|c| {
                let (done, failed) = (&done, &failed);
                s.spawn(move || -> Result<()> {
                    let mut i = c;
                    while start.elapsed() < budget && !failed.load(Ordering::Relaxed) {
                        let n = i % txs.len();
                        if let Err(e) = verify_signature(&txs[n], suite) {
                            failed.store(true, Ordering::Relaxed);
                            bail!("SM2 verification of signed transaction {n} through the plugin failed: {e}");
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                        i += cores;
                    }
                    Ok(())
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a verification thread panicked")))).collect()
    });
    outcomes.into_iter().collect::<Result<()>>().context("measuring the verification ceiling")?;
    let n = done.load(Ordering::Relaxed);
    if n == 0 {
        bail!("no signature verified");
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn run(g: &GlobalOpts, a: TpsArgs) -> Result<()> {
    if a.txs == 0 || a.load.senders == 0 || a.load.clients == 0 || a.load.batch == 0 || a.load.batch > MAX_BATCH {
        bail!("--txs, --senders and --clients must be positive, --batch 1..={MAX_BATCH}");
    }
    let crypto = g.crypto()?;
    let suite = SuiteCrypto::new(CryptoSuite::named("gm").context("gm suite")?, crypto.clone());
    let dir = std::env::temp_dir().join(format!("joule-bench-tps-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(dir.clone());
    init(
        &crypto,
        &InitArgs {
            network_id: "bench".into(),
            block_interval_ms: a.load.block_interval_ms,
            max_block_transactions: a.load.max_block_transactions,
            max_block_bytes: 32 << 20,
            ..InitArgs::defaults(&dir)
        },
    )?;
    eprintln!("bench tps: signing {} transactions from {} senders…", a.txs, a.load.senders.min(a.txs));
    let keys = (0..a.load.senders.min(a.txs)).map(|_| crypto.generate_key("sm2")).collect::<Result<Vec<_>, _>>()?;
    let by_sender = sign_all(&suite, &keys, a.txs)?;
    let all: Vec<Transaction> = by_sender.iter().flatten().cloned().collect();
    eprintln!("bench tps: measuring the SM2 verification ceiling on all cores…");
    let ceiling = verify_ceiling(&suite, &all, a.seconds)?;

    let node = super::BenchNode::start(g, &dir)?;
    let result = drive(&node.base, std::slice::from_ref(&node.base), Some(node.child.id()), &by_sender, a.load.clients, a.load.batch);
    drop(node);
    let Driven { tps, p50_ms: p50, p99_ms: p99, blocks, node_cpu, .. } = result?;
    let (left, compacted) = store_bytes(&dir)?;
    let tx_bytes = all.iter().map(|t| t.encode().len()).sum::<usize>() as f64 / all.len() as f64;
    let store_bytes_per_tx = compacted as f64 / all.len() as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let verify_cpu_us = cores as f64 * 1e6 / ceiling;
    let node_cpu_us_per_tx = node_cpu.map(|s| s * 1e6 / all.len() as f64);
    let report = TpsReport {
        transactions: all.len(),
        clients: a.load.clients,
        batch: a.load.batch,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        blocks,
        committed_tps: tps,
        latency_p50_ms: p50,
        latency_p99_ms: p99,
        sm2_verify_ceiling: ceiling,
        ratio: tps / ceiling,
        node_cpu_us_per_tx,
        verify_cpu_us,
        verify_share_of_node_cpu: node_cpu_us_per_tx.map(|n| verify_cpu_us / n),
        store_bytes: left,
        store_bytes_compacted: compacted,
        store_bytes_per_tx,
        tx_bytes,
        store_ratio: store_bytes_per_tx / tx_bytes,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "transactions          {} ({} clients over HTTP, {} per request, {} blocks)",
            report.transactions, report.clients, report.batch, report.blocks
        );
        println!("committed TPS         {:.0}", report.committed_tps);
        println!("submit→commit p50     {:.1} ms", report.latency_p50_ms);
        println!("submit→commit p99     {:.1} ms", report.latency_p99_ms);
        println!("SM2 verify ceiling    {:.0} /s on {} cores (plugin)", report.sm2_verify_ceiling, report.cores);
        println!("TPS / ceiling         {:.2}", report.ratio);
        if let (Some(n), Some(share)) = (report.node_cpu_us_per_tx, report.verify_share_of_node_cpu) {
            println!("node CPU per tx       {n:.0} µs (one SM2 verification: {:.0} µs; {:.0}% of the node's work)", report.verify_cpu_us, share * 100.0);
        }
        println!(
            "store per tx          {:.0} B on disk, compacted ({:.2}x the average transaction of {:.0} B; {:.0} B per tx as the node left it)",
            report.store_bytes_per_tx,
            report.store_ratio,
            report.tx_bytes,
            report.store_bytes as f64 / report.transactions as f64
        );
    }
    Ok(())
}

pub(super) struct RemoveOnDrop(pub(super) std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What [`drive`] measured.
pub(super) struct Driven {
    pub tps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Blocks committed from the first submission to the last commit.
    pub blocks: usize,
    /// Heights of the first and the last of those blocks.
    pub heights: (u64, u64),
    /// CPU seconds of the node process from the first submission to the last commit.
    pub node_cpu: Option<f64>,
}

/// Submit every transaction over HTTP (`clients` threads, client `c` to `submit[c % len]`,
/// each its own senders in nonce order) and follow the blocks of the node at `watch` until
/// all are committed there: TPS is all transactions over first submission to last commit,
/// latency is submission to commit on `watch`.
pub(super) fn drive(watch: &str, submit: &[String], node_pid: Option<u32>, by_sender: &[Vec<Transaction>], clients: usize, batch: usize) -> Result<Driven> {
    let base = watch;
    if submit.is_empty() {
        bail!("no node to submit to");
    }
    let total: usize = by_sender.iter().map(Vec::len).sum();
    let api = ApiClient::new(base, None);
    let heights: Arc<Mutex<Vec<u64>>> = Arc::default();
    let suite_hashes: Arc<Mutex<HashMap<Hash32, Instant>>> = Arc::default();
    let commits: Arc<Mutex<HashMap<Hash32, Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let blocks = Arc::new(AtomicUsize::new(0));
    // Block stream: commit time of each block, then its transaction hashes.
    let watcher = {
        let (base, commits, stop, blocks, heights) = (base.to_string(), commits.clone(), stop.clone(), blocks.clone(), heights.clone());
        std::thread::spawn(move || -> Result<()> {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let resp = agent.get(format!("{base}/v1/blocks/stream")).call().context("block stream")?;
            let api = ApiClient::new(&base, None);
            for line in BufReader::new(resp.into_body().into_reader()).lines() {
                let line = line?;
                let Some(data) = line.strip_prefix("data:") else { continue };
                let at = Instant::now();
                let ev: serde_json::Value = serde_json::from_str(data.trim())?;
                let height = ev["height"].as_u64().context("height")?;
                let b = api.get(&format!("/v1/blocks/{height}?full=false"))?;
                let mut c = commits.lock().unwrap_or_else(|p| p.into_inner());
                for h in b["tx_hashes"].as_array().into_iter().flatten() {
                    if let Some(h) = h.as_str().and_then(Hash32::from_hex) {
                        c.insert(h, at);
                    }
                }
                blocks.fetch_add(1, Ordering::Relaxed);
                heights.lock().unwrap_or_else(|p| p.into_inner()).push(height);
                if c.len() >= total || stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            Ok(())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let errors = AtomicUsize::new(0);
    let first_error: Mutex<Option<String>> = Mutex::new(None);
    let cpu_before = node_pid.and_then(process_cpu_seconds);
    let started = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let (submits, errors, first_error) = (&suite_hashes, &errors, &first_error);
            s.spawn(move || {
                let client = ApiClient::new(&submit[c % submit.len()], None);
                let mine: Vec<&Transaction> = by_sender.iter().skip(c).step_by(clients).flatten().collect();
                let fail = |e: String| {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                };
                for group in mine.chunks(batch) {
                    let at = Instant::now();
                    let answer = if batch == 1 {
                        client.post_bytes("/v1/tx", &group[0].encode()).map(|v| vec![v])
                    } else {
                        let mut body = Vec::new();
                        for tx in group {
                            let bytes = tx.encode();
                            body.extend((bytes.len() as u32).to_le_bytes());
                            body.extend(bytes);
                        }
                        client.post_bytes("/v1/txs", &body).map(|v| v["results"].as_array().cloned().unwrap_or_default())
                    };
                    match answer {
                        Ok(rows) => {
                            let mut s = submits.lock().unwrap_or_else(|p| p.into_inner());
                            for row in rows {
                                match row["hash"].as_str().and_then(Hash32::from_hex) {
                                    Some(h) => {
                                        s.insert(h, at);
                                    }
                                    None => fail(row.to_string()),
                                }
                            }
                        }
                        Err(e) => fail(e.to_string()),
                    }
                }
            });
        }
    });
    let submitted_in = started.elapsed();
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        stop.store(true, Ordering::Relaxed);
        bail!("{} submissions failed, the first: {e}", errors.load(Ordering::Relaxed));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while commits.lock().unwrap_or_else(|p| p.into_inner()).len() < total {
        if Instant::now() > deadline || watcher.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let node_cpu = node_pid.and_then(process_cpu_seconds).zip(cpu_before).map(|(after, before)| after - before);
    stop.store(true, Ordering::Relaxed);
    let commits = commits.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if commits.len() < total {
        let status = api.get("/v1/status").map(|v| v.to_string()).unwrap_or_default();
        bail!("only {} of {total} transactions committed (submitted in {submitted_in:?}); node: {status}", commits.len());
    }
    let submits = suite_hashes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let last = commits.values().max().copied().unwrap_or(started);
    let mut lat: Vec<f64> = submits.iter().filter_map(|(h, at)| commits.get(h).map(|c| c.saturating_duration_since(*at).as_secs_f64() * 1000.0)).collect();
    lat.sort_by(f64::total_cmp);
    let tps = total as f64 / last.duration_since(started).as_secs_f64();
    let heights = heights.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let span = (heights.iter().copied().min().unwrap_or(0), heights.iter().copied().max().unwrap_or(0));
    Ok(Driven { tps, p50_ms: percentile(&lat, 0.5), p99_ms: percentile(&lat, 0.99), blocks: blocks.load(Ordering::Relaxed), heights: span, node_cpu })
}
