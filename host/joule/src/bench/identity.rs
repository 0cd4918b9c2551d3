//! `joule bench identity`: what identity by certificates costs (issue 11), measured side by
//! side in one run on one node each.
//!
//! 1. The same signed load (`--txs` data records from `--senders` accounts, as `bench tps`)
//!    goes to two fresh single-node chains in turn: one without certificates, one whose
//!    genesis sets identity (a root, one organisation whose CA key is in the node's keystore,
//!    the node's key its admin).
//! 2. Before the load, every sender of the second chain applies for a certificate and the
//!    node approves it (`POST /v1/pki/applications`, `…/approve`: the request checked, the
//!    certificate issued with the CA key through the SM2 plugin, recorded by a transaction
//!    whose chain check runs at its block): certificates issued per second, counted to the
//!    block that commits the last.
//! 3. Reported: committed TPS of each chain and their ratio (the certificate check per
//!    transaction: a record lookup at the parent's state per sender and block, and at
//!    admission), with p50/p99 submit-to-commit latency.

use super::tps::{Driven, RemoveOnDrop, drive, sign_all};
use crate::cli::GlobalOpts;
use anyhow::{Context, Result, bail};
use joule_client::ApiClient;
use joule_crypto::SuiteCrypto;
use joule_node::config::{Config, InitArgs, init};
use joule_primitives::CryptoSuite;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct IdentityArgs {
    /// Transactions to submit to each chain.
    #[arg(long, default_value_t = 30_000)]
    pub txs: usize,
    #[command(flatten)]
    pub load: super::tps::LoadArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct IdentityReport {
    pub transactions: usize,
    pub senders: usize,
    pub tps_without_certificates: f64,
    pub tps_with_certificates: f64,
    /// tps_with_certificates / tps_without_certificates (target ≥ 0.90).
    pub ratio: f64,
    pub p99_ms_without: f64,
    pub p99_ms_with: f64,
    /// Certificates applied for, issued and committed per second (one node, over HTTP).
    pub certificates_per_second: f64,
}

fn node_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("joule-bench-identity-{}-{name}", std::process::id()))
}

fn init_dir(g: &GlobalOpts, a: &IdentityArgs, dir: &std::path::Path) -> Result<()> {
    init(
        &g.crypto()?,
        &InitArgs {
            network_id: "bench".into(),
            block_interval_ms: a.load.block_interval_ms,
            max_block_transactions: a.load.max_block_transactions,
            max_block_bytes: 32 << 20,
            ..InitArgs::defaults(dir)
        },
    )?;
    Ok(())
}

fn run_load(
    g: &GlobalOpts,
    dir: &std::path::Path,
    by_sender: &[Vec<joule_primitives::Transaction>],
    a: &IdentityArgs,
    enrol: Option<&[joule_crypto::KeyPair]>,
) -> Result<(Driven, Option<f64>)> {
    let node = super::BenchNode::start(g, dir)?;
    let mut issued_per_s = None;
    if let Some(keys) = enrol {
        let token = std::fs::read_to_string(dir.join(joule_client::wire::ADMIN_TOKEN_FILE)).context("the node's admin token")?;
        let admin = ApiClient::new(&node.base, Some(token.trim().to_string()));
        let enroller = crate::enrol::Enroller::new(vec![(admin, "org0".into())], g.crypto()?, "sm2");
        eprintln!("bench identity: {} senders apply and are certified…", keys.len());
        let started = Instant::now();
        for (i, kp) in keys.iter().enumerate() {
            enroller.enrol(kp, &format!("meter-{i}"), "client")?;
        }
        let api = ApiClient::new(&node.base, None);
        enroller.settle(&[&api])?;
        issued_per_s = Some(keys.len() as f64 / started.elapsed().as_secs_f64());
    }
    let driven = drive(&node.base, std::slice::from_ref(&node.base), Some(node.child.id()), by_sender, a.load.clients, a.load.batch)?;
    drop(node);
    Ok((driven, issued_per_s))
}

pub fn run(g: &GlobalOpts, a: IdentityArgs) -> Result<()> {
    if a.txs == 0 || a.load.senders == 0 || a.load.clients == 0 || a.load.batch == 0 {
        bail!("--txs, --senders, --clients and --batch must be positive");
    }
    let crypto = g.crypto()?;
    let suite = SuiteCrypto::new(CryptoSuite::named("gm").context("gm suite")?, crypto.clone());
    let senders = a.load.senders.min(a.txs);
    eprintln!("bench identity: signing {} transactions from {senders} senders…", a.txs);
    let keys = (0..senders).map(|_| crypto.generate_key("sm2")).collect::<Result<Vec<_>, _>>()?;
    let by_sender = sign_all(&suite, &keys, a.txs)?;

    // Without certificates.
    let plain = node_dir("plain");
    let _clean_plain = RemoveOnDrop(plain.clone());
    init_dir(g, &a, &plain)?;
    eprintln!("bench identity: the chain without certificates…");
    let (without, _) = run_load(g, &plain, &by_sender, &a, None)?;

    // With certificates: a root and one organisation, the node its CA and admin.
    let certified = node_dir("certified");
    let _clean_certified = RemoveOnDrop(certified.clone());
    init_dir(g, &a, &certified)?;
    let mut config = Config::load(&certified)?.context("the new node's configuration")?;
    let keystore = Arc::new(joule_node::config::node_keystore(&certified, &crypto)?);
    let node_key = hex::decode(&config.node.keys[0].public_key).context("the node key is not hex")?;
    let member = joule_node::ca::Member { name: "org0".into(), keystore: keystore.clone(), certified: vec![(node_key, "node0".into(), vec!["admin".into()])] };
    let identity = joule_node::ca::consortium(keystore, "sm2", &[member], 3650).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.network.channels[0].identity = Some(identity);
    joule_support::fs::write_atomic(&certified.join(joule_node::config::NETWORK_FILE), config.network.to_toml().as_bytes(), joule_support::fs::Mode::Private)?;
    eprintln!("bench identity: the chain with certificates…");
    let (with, issued) = run_load(g, &certified, &by_sender, &a, Some(&keys))?;

    let report = IdentityReport {
        transactions: a.txs,
        senders,
        tps_without_certificates: without.tps,
        tps_with_certificates: with.tps,
        ratio: with.tps / without.tps,
        p99_ms_without: without.p99_ms,
        p99_ms_with: with.p99_ms,
        certificates_per_second: issued.unwrap_or(0.0),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("transactions            {} from {} senders ({} clients, {} per request)", report.transactions, report.senders, a.load.clients, a.load.batch);
        println!("committed TPS           {:.0} without certificates, {:.0} with", report.tps_without_certificates, report.tps_with_certificates);
        println!("with / without          {:.2}", report.ratio);
        println!("submit→commit p99       {:.1} ms without, {:.1} ms with", report.p99_ms_without, report.p99_ms_with);
        println!("certificates issued     {:.0} /s (applied, approved, committed; one node over HTTP)", report.certificates_per_second);
    }
    Ok(())
}
