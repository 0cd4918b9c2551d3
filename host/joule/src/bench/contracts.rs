//! `joule bench contracts`: smart contracts, measured side by side in one run.
//!
//! 1. **Trade, wasm vs native.** The p2p market's `trade` (it calls the `energy-units`
//!    library to price the fill and the `energy-token` to pull the payment into escrow),
//!    through the node's contract runtime (`ContractRuntime`, in process, on an in-memory
//!    host: no signatures, no ledger) against the same crates compiled natively, on the
//!    contract SDK's mock chain (`examples-contracts/bench-native`, built and run with
//!    `cargo run --release`). Warm: after untimed trades; cold: the first trade, with a
//!    fresh runtime (the three contracts compiled from scratch, then instantiated) and in a
//!    fresh process natively. Every trade must succeed: a failure ends the bench.
//! 2. **Per-call overhead**: `energy-token`'s `total_supply` query (one storage read) through
//!    the runtime: instantiate, context, call, return.
//! 3. **Committed contract-call TPS** of one node (`energy-token` `transfer`s from many
//!    funded senders, over HTTP in batches, as `joule bench tps` submits), against the SM2
//!    verification ceiling measured in the same run on the very same transactions. Every
//!    committed receipt must be a success.

use super::tps::{RemoveOnDrop, drive, verify_ceiling};
use crate::cli::GlobalOpts;
use anyhow::{Context, Result, bail, ensure};
use borsh::BorshSerialize;
use joule_client::ApiClient;
use joule_contract::{ContractHost, ContractVm, Entry, Invocation, Outcome};
use joule_contract_math::{Decimal, U256};
use joule_contract_wasm::testing::MemoryHost;
use joule_contract_wasm::{ContractRuntime, RuntimeConfig};
use joule_crypto::{KeyPair, SuiteCrypto};
use joule_node::config::{InitArgs, init};
use joule_primitives::{ChainCrypto, ChannelId, CryptoSuite, Encode, Hash32, Hasher, Payload, Transaction, UnsignedTransaction};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct ContractsArgs {
    /// Timed trades per side (after untimed ones).
    #[arg(long, default_value_t = 10000)]
    pub trades: u32,
    /// Contract-call transactions submitted to the node (enough for several full blocks:
    /// with 6000, three blocks, the pipeline's start and end weigh on the rate).
    #[arg(long, default_value_t = 20_000)]
    pub txs: usize,
    /// Distinct sending accounts of the TPS part (each funded by a mint).
    #[arg(long, default_value_t = 100)]
    pub senders: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 2)]
    pub clients: usize,
    /// Transactions per request.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Block interval of the node, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub block_interval_ms: u64,
    /// Seconds of the verification-ceiling measurement.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Skip the node (part 3).
    #[arg(long)]
    pub no_tps: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, Default)]
pub struct ContractsReport {
    pub trades: u32,
    pub wasm_trade_us: f64,
    pub native_trade_us: f64,
    /// wasm_trade_us / native_trade_us.
    pub trade_ratio: f64,
    pub wasm_first_trade_ms: f64,
    pub native_first_trade_us: f64,
    pub trade_gas: u64,
    pub query_overhead_us: f64,
    pub query_gas: u64,
    pub tps: Option<TpsPart>,
}

#[derive(Debug, Serialize)]
pub struct TpsPart {
    pub transactions: usize,
    pub blocks: usize,
    pub committed_tps: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub sm2_verify_ceiling: f64,
    /// committed_tps / sm2_verify_ceiling.
    pub ratio: f64,
    pub transfer_gas: u64,
}

const OWNER: Hash32 = Hash32([1; 32]);
const PRODUCER: Hash32 = Hash32([2; 32]);
const BUYER: Hash32 = Hash32([3; 32]);
const UNITS: Hash32 = Hash32([0x71; 32]);
const TOKEN: Hash32 = Hash32([0x70; 32]);
const MARKET: Hash32 = Hash32([0xcc; 32]);
const GAS: u64 = 10_000_000;

fn args<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("borsh encodes into a Vec")
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("a decimal literal")
}

/// The market's contracts deployed on an in-memory host.
struct Bed {
    host: Option<Box<dyn ContractHost>>,
    code_hashes: [(Hash32, Hash32); 3],
    height: u64,
}

impl Bed {
    fn code_hash(&self, contract: Hash32) -> Hash32 {
        self.code_hashes.iter().find(|(a, _)| *a == contract).map_or(Hash32([0; 32]), |(_, h)| *h)
    }

    /// Run one entry; a failed call is an error naming it.
    fn run(&mut self, rt: &ContractRuntime, entry: Entry, sender: Hash32, contract: Hash32, method: &str, a: Vec<u8>) -> Result<Outcome> {
        self.height += 1;
        let call = Invocation {
            entry,
            contract,
            code_hash: self.code_hash(contract),
            method: method.into(),
            args: a,
            sender,
            channel: "bench".into(),
            height: self.height,
            timestamp_ms: 1_700_000_000_000 + self.height * 1000,
            gas_limit: GAS,
        };
        let host = self.host.take().context("the host was lost by a previous call")?;
        let (host, result) = rt.run(host, &call);
        self.host = Some(host);
        let outcome = result.map_err(|e| anyhow::anyhow!("{method}: node fault {e}"))?;
        if let Err(f) = &outcome.result {
            bail!("{method} failed: {f}");
        }
        Ok(outcome)
    }
}

/// Deploy units, token and market (dispute window 0, fee 1%), grant the producer, fund and
/// approve the buyer, post one big offer. Returns the bed and the offer id.
fn set_up(rt: &ContractRuntime, dir: &Path) -> Result<(Bed, u64)> {
    let code = |name: &str| std::fs::read(dir.join(format!("{name}.wasm"))).with_context(|| format!("read {name}.wasm"));
    let mut host = MemoryHost::new();
    let units = host.deploy(UNITS, &code("energy-units")?);
    let token = host.deploy(TOKEN, &code("energy-token")?);
    let market = host.deploy(MARKET, &code("p2p-market")?);
    let mut bed = Bed { host: Some(Box::new(host)), code_hashes: [(UNITS, units), (TOKEN, token), (MARKET, market)], height: 1 };
    bed.run(rt, Entry::Init, OWNER, TOKEN, "", args(&("Grid kWh token".to_string(), "GKT".to_string())))?;
    bed.run(rt, Entry::Init, OWNER, MARKET, "", args(&(TOKEN.0, UNITS.0, 0u64, 100u16)))?;
    bed.run(rt, Entry::Call, OWNER, MARKET, "grant_role", args(&("producer".to_string(), PRODUCER.0)))?;
    let funds = U256::from(1_000_000_000u64) * U256::from(10u64).pow(18);
    bed.run(rt, Entry::Call, OWNER, TOKEN, "mint", args(&(BUYER.0, funds)))?;
    bed.run(rt, Entry::Call, BUYER, TOKEN, "approve", args(&(MARKET.0, funds)))?;
    let out = bed.run(rt, Entry::Call, PRODUCER, MARKET, "post_offer", args(&(dec("1000000000"), dec("0.2"), 0u64, u64::MAX)))?;
    let offer: u64 = borsh::from_slice(&out.result.unwrap_or_default()).context("post_offer's result")?;
    Ok((bed, offer))
}

fn runtime() -> Result<ContractRuntime> {
    Ok(ContractRuntime::new(RuntimeConfig::default())?)
}

/// The native side: (first trade, warm per trade), from `bench-native`.
fn native(root: &Path, trades: u32) -> Result<(Duration, Duration)> {
    let dir = root.join("examples-contracts/bench-native");
    ensure!(dir.join("Cargo.toml").is_file(), "{} not found: run from the repository root", dir.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&dir);
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER"] {
        cmd.env_remove(var);
    }
    let out = cmd.args(["run", "--quiet", "--release", "--", &trades.to_string()]).stderr(Stdio::inherit()).output().context("run cargo for bench-native")?;
    ensure!(out.status.success(), "bench-native failed ({}): {}", out.status, String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Result<Duration> {
        let v = text.lines().find_map(|l| l.strip_prefix(name)).with_context(|| format!("bench-native printed no {name}: {text}"))?;
        Ok(Duration::from_nanos(v.trim().parse().with_context(|| format!("{name} {v}"))?))
    };
    Ok((field("first_ns ")?, field("warm_ns_per_trade ")?))
}

/// Rounds of the trade measurement, native and wasm in turns.
const ROUNDS: u32 = 3;

fn part_trades(dir: &Path, a: &ContractsArgs, r: &mut ContractsReport) -> Result<()> {
    let root = dir.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    eprintln!("bench contracts: building the native side (examples-contracts/bench-native)…");
    let (native_first, _) = native(&root, 1)?;
    // Cold: a fresh runtime, nothing compiled; the set-up ran on another runtime.
    let (mut bed, offer) = set_up(&runtime()?, dir)?;
    let trade_args = args(&(offer, dec("0.001")));
    let cold_rt = runtime()?;
    let t = Instant::now();
    bed.run(&cold_rt, Entry::Call, BUYER, MARKET, "trade", trade_args.clone())?;
    r.wasm_first_trade_ms = t.elapsed().as_secs_f64() * 1e3;
    r.native_first_trade_us = native_first.as_secs_f64() * 1e6;
    drop(cold_rt);

    let rt = runtime()?;
    let (mut bed, _) = set_up(&rt, dir)?;
    let (mut wasm_time, mut native_time) = (Duration::ZERO, Duration::ZERO);
    let per_round = a.trades.div_ceil(ROUNDS).max(1);
    for _ in 0..per_round {
        bed.run(&rt, Entry::Call, BUYER, MARKET, "trade", trade_args.clone())?;
    }
    for round in 0..ROUNDS {
        eprintln!("bench contracts: trades, round {}/{ROUNDS}…", round + 1);
        let (_, warm) = native(&root, per_round)?;
        native_time += warm * per_round;
        let t = Instant::now();
        for _ in 0..per_round {
            let o = bed.run(&rt, Entry::Call, BUYER, MARKET, "trade", trade_args.clone())?;
            r.trade_gas = o.gas_used;
        }
        wasm_time += t.elapsed();
    }
    let n = f64::from(per_round * ROUNDS);
    r.trades = per_round * ROUNDS;
    r.wasm_trade_us = wasm_time.as_secs_f64() * 1e6 / n;
    r.native_trade_us = native_time.as_secs_f64() * 1e6 / n;
    r.trade_ratio = r.wasm_trade_us / r.native_trade_us;

    // Per-call overhead: a query that reads one value.
    for _ in 0..200 {
        bed.run(&rt, Entry::Query, BUYER, TOKEN, "total_supply", vec![])?;
    }
    let calls = a.trades.max(100);
    let t = Instant::now();
    for _ in 0..calls {
        r.query_gas = bed.run(&rt, Entry::Query, BUYER, TOKEN, "total_supply", vec![])?.gas_used;
    }
    r.query_overhead_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(calls);
    Ok(())
}

/// Sign `per` transactions for each key `i` in parallel, nonces from 0, payload `payload(i)`.
fn sign_calls(suite: &SuiteCrypto, keys: &[KeyPair], per: usize, payload: impl Fn(usize) -> Payload + Sync) -> Result<Vec<Vec<Transaction>>> {
    let channel = ChannelId::new("grid").map_err(|e| anyhow::anyhow!("{e}"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, Vec<Transaction>)>> = Mutex::new(vec![]);
    std::thread::scope(|s| -> Result<()> {
        let threads: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(kp) = keys.get(i) else { return Ok(()) };
                        let mut v = Vec::with_capacity(per);
                        for nonce in 0..per as u64 {
                            let body = UnsignedTransaction {
                                channel: channel.clone(),
                                sender: kp.public_key.clone(),
                                nonce,
                                gas_limit: 1_000_000,
                                sig_alg: suite.suite().signature.clone(),
                                payload: payload(i),
                            };
                            let sig = suite.sign(&kp.private_key, &body.signing_bytes())?;
                            v.push(body.sign_with(sig));
                        }
                        out.lock().unwrap_or_else(|p| p.into_inner()).push((i, v));
                    }
                })
            })
            .collect();
        threads.into_iter().try_for_each(|t| t.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a signing thread panicked"))))
    })?;
    let mut v = out.into_inner().unwrap_or_else(|p| p.into_inner());
    v.sort_by_key(|(i, _)| *i);
    Ok(v.into_iter().map(|(_, t)| t).collect())
}

/// Submit set-up transactions in batches and wait for every receipt, each a success:
/// (output, gas used) of each.
fn submit_all(api: &ApiClient, txs: &[Transaction]) -> Result<Vec<(Vec<u8>, u64)>> {
    let mut out = vec![];
    for chunk in txs.chunks(500) {
        let frames = joule_client::wire::frame_batch(chunk.iter().map(|t| t.encode()).collect::<Vec<_>>().iter().map(Vec::as_slice));
        let v = api.post_bytes("/v1/txs", &frames)?;
        ensure!(v["rejected"] == 0, "set-up transactions refused: {v}");
        for row in v["results"].as_array().cloned().unwrap_or_default() {
            let hash = row["hash"].as_str().with_context(|| format!("no hash: {row}"))?;
            let record = api.wait_for_tx(hash, Duration::from_secs(60))?;
            let r = &record["receipt"];
            ensure!(r["status"] == "success", "set-up transaction {hash}: unexpected receipt {r}");
            out.push((hex::decode(r["output"].as_str().unwrap_or_default())?, r["gas_used"].as_u64().unwrap_or(0)));
        }
    }
    Ok(out)
}

fn part_tps(g: &GlobalOpts, dir: &Path, a: &ContractsArgs) -> Result<TpsPart> {
    let crypto = g.crypto()?;
    let suite = SuiteCrypto::new(CryptoSuite::named("gm").context("gm suite")?, crypto.clone());
    let node_dir = std::env::temp_dir().join(format!("joule-bench-contracts-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(node_dir.clone());
    let deployer = crypto.generate_key("sm2")?;
    let deployer_id = suite.hash(&deployer.public_key)?;
    init(
        &crypto,
        &InitArgs {
            network_id: "bench".into(),
            block_interval_ms: a.block_interval_ms,
            max_block_transactions: 5000,
            max_block_bytes: 32 << 20,
            block_gas_limit: 100_000_000_000,
            contract_deployer: vec![deployer_id.to_hex()],
            ..InitArgs::defaults(&node_dir)
        },
    )?;
    let senders = a.senders.clamp(1, a.txs.max(1));
    eprintln!("bench contracts: signing {} transfer calls from {senders} senders…", a.txs);
    let keys = (0..senders).map(|_| crypto.generate_key("sm2")).collect::<Result<Vec<_>, _>>()?;
    let ids = keys.iter().map(|k| suite.hash(&k.public_key)).collect::<Result<Vec<_>, _>>()?;

    let node = super::BenchNode::start(g, &node_dir)?;
    let result = (|| -> Result<TpsPart> {
        let api = ApiClient::new(&node.base, None);
        // The token, deployed by the deployer; every sender funded.
        let channel = ChannelId::new("grid").map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut nonce = 0u64;
        let mut tx = |payload: Payload, gas_limit: u64| -> Result<Transaction> {
            let body = UnsignedTransaction {
                channel: channel.clone(),
                sender: deployer.public_key.clone(),
                nonce,
                gas_limit,
                sig_alg: suite.suite().signature.clone(),
                payload,
            };
            nonce += 1;
            Ok(body.clone().sign_with(suite.sign(&deployer.private_key, &body.signing_bytes())?))
        };
        let code = std::fs::read(dir.join("energy-token.wasm")).context("read energy-token.wasm")?;
        let init_args = args(&("Grid kWh token".to_string(), "GKT".to_string()));
        let deployed = submit_all(&api, &[tx(Payload::Deploy { code, init_args, upgradable: false }, 10_000_000)?])?;
        let token = Hash32::from_hex(&hex::encode(&deployed[0].0)).context("the deployment's output is the address")?;
        let unit = U256::from(10u64).pow(18);
        let mints = ids
            .iter()
            .map(|id| tx(Payload::Call { contract: token, method: "mint".into(), args: args(&(id.0, unit * U256::from(1_000_000u64))) }, 1_000_000))
            .collect::<Result<Vec<_>>>()?;
        submit_all(&api, &mints)?;
        let per = a.txs.div_ceil(senders);
        let by_sender =
            sign_calls(&suite, &keys, per, |i| Payload::Call { contract: token, method: "transfer".into(), args: args(&(ids[(i + 1) % ids.len()].0, unit)) })?;
        let all: Vec<Transaction> = by_sender.iter().flatten().cloned().collect();
        eprintln!("bench contracts: measuring the SM2 verification ceiling on all cores…");
        let ceiling = verify_ceiling(&suite, &all, a.seconds)?;
        let start_height = api.get("/v1/status")?["height"].as_u64().unwrap_or(0);
        eprintln!("bench contracts: submitting {} transfer calls…", all.len());
        let super::tps::Driven { tps, p50_ms: p50, p99_ms: p99, blocks, .. } =
            drive(&node.base, std::slice::from_ref(&node.base), Some(node.child.id()), &by_sender, a.clients, a.batch)?;
        // Every committed call must have succeeded.
        let end = api.get("/v1/status")?["height"].as_u64().unwrap_or(0);
        let (mut ok, mut gas) = (0usize, 0u64);
        for h in start_height + 1..=end {
            let b = api.get(&format!("/v1/blocks/{h}"))?;
            for r in b["receipts"].as_array().into_iter().flatten() {
                ensure!(r["status"] == "success", "a transfer call in block {h} did not succeed: {r}");
                ok += 1;
                gas = r["gas_used"].as_u64().unwrap_or(gas);
            }
        }
        ensure!(ok >= all.len(), "only {ok} successful receipts for {} transfer calls", all.len());
        Ok(TpsPart {
            transactions: all.len(),
            blocks,
            committed_tps: tps,
            latency_p50_ms: p50,
            latency_p99_ms: p99,
            sm2_verify_ceiling: ceiling,
            ratio: tps / ceiling,
            transfer_gas: gas,
        })
    })();
    drop(node);
    result
}

pub fn run(g: &GlobalOpts, a: ContractsArgs) -> Result<()> {
    ensure!(a.trades > 0 && a.txs > 0 && a.clients > 0 && a.batch > 0, "--trades, --txs, --clients and --batch must be positive");
    let dir = crate::demo::contracts_dir(g)?;
    let mut r = ContractsReport::default();
    // The wasm side runs on a thread like the node's (joule_contract_wasm::THREAD_STACK_SIZE):
    // on a shallower stack every call would first map a stack of its own.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("bench-contracts".into())
            .stack_size(joule_contract_wasm::THREAD_STACK_SIZE)
            .spawn_scoped(s, || part_trades(&dir, &a, &mut r))
            .map_err(|e| anyhow::anyhow!("start the benchmark thread: {e}"))?
            .join()
            .map_err(|_| anyhow::anyhow!("the benchmark thread panicked"))?
    })?;
    if !a.no_tps {
        r.tps = Some(part_tps(g, &dir, &a)?);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("| measurement | wasm (contract runtime) | native | ratio |");
    println!("|---|---:|---:|---:|");
    println!("| `trade`, warm ({} calls; gas {}) | {:.1} µs | {:.1} µs | {:.2}x |", r.trades, r.trade_gas, r.wasm_trade_us, r.native_trade_us, r.trade_ratio);
    println!(
        "| `trade`, first call (cold: compile + instantiate) | {:.1} ms | {:.1} µs | {:.0}x |",
        r.wasm_first_trade_ms,
        r.native_first_trade_us,
        r.wasm_first_trade_ms * 1e3 / r.native_first_trade_us
    );
    println!("| per-call overhead: `total_supply` query (gas {}) | {:.1} µs | | |", r.query_gas, r.query_overhead_us);
    if let Some(t) = &r.tps {
        println!(
            "| committed `transfer` calls, one node ({} txs, {} blocks, p50 {:.0} ms, p99 {:.0} ms; gas {}) | {:.0} TPS | SM2 verify ceiling {:.0}/s on {cores} cores | {:.2} of the ceiling |",
            t.transactions, t.blocks, t.latency_p50_ms, t.latency_p99_ms, t.transfer_gas, t.committed_tps, t.sm2_verify_ceiling, t.ratio
        );
    }
    Ok(())
}
