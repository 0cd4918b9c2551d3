//! Command-line interface: `joule init`, `joule node`, `joule status`, `joule tx …`,
//! `joule block …`, `joule contract …`, `joule crypto …`, `joule plugin …`, `joule keys …`,
//! `joule bench …`, `joule demo`, `joule up`, `joule net key`, `joule governance …`.
//!
//! Exit codes: 0 success, 1 a negative answer (`crypto verify`: invalid signature),
//! 2 an error (bad arguments, unreadable files, unknown algorithm, plugin failure).

mod ca_cmd;
pub mod chain_cmd;
mod contract_cmd;
mod crypto_cmd;
mod escrow_cmd;
mod governance_cmd;
mod keys_cmd;
mod net_cmd;
mod org_cmd;
mod plugin_cmd;
mod user_cmd;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "joule", version, about = "Joule: a WebAssembly-native consortium blockchain for the energy sector")]
pub struct Cli {
    /// Directory of crypto plugins (`NAME.wasm` + `NAME.toml`) to load. Default: the
    /// `plugins` directory next to the binary's directory (`target/plugins` in a checkout).
    #[arg(long, global = true, env = "JOULE_PLUGIN_DIR")]
    plugin_dir: Option<PathBuf>,
    /// Where compiled plugins are cached. Default: $XDG_CACHE_HOME/joule or ~/.cache/joule.
    #[arg(long, global = true, env = "JOULE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Log filter (tracing syntax), e.g. `info` or `joule=debug`.
    #[arg(long, global = true, env = "JOULE_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Cryptography through the crypto plugins: keys, signatures, hashes, encryption.
    #[command(subcommand)]
    Crypto(crypto_cmd::CryptoCmd),
    /// Inspect, pack and sign plugins.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCmd),
    /// The encrypted keystore (guide §4.1.2).
    #[command(subcommand)]
    Keys(keys_cmd::KeysCmd),
    /// Create a node directory: network and node configuration, node key (guide §5.2).
    Init(joule_node::config::InitArgs),
    /// Run a node: its channels' chains, the HTTP API, plugin registry, metrics.
    Node(joule_node::NodeArgs),
    /// A node's chain status.
    Status(chain_cmd::NodeSel),
    /// Sign and send transactions; look them up.
    #[command(subcommand)]
    Tx(chain_cmd::TxCmd),
    /// Look up blocks.
    #[command(subcommand)]
    Block(chain_cmd::BlockCmd),
    /// Smart contracts: new project, reproducible build, deploy, call, query, upgrade, events.
    #[command(subcommand)]
    Contract(contract_cmd::ContractCmd),
    /// Benchmarks that report ratios measured side by side in one run.
    #[command(subcommand)]
    Bench(crate::bench::BenchCmd),
    /// Start a node and drive sample traffic through it.
    Demo(crate::demo::DemoArgs),
    /// A local network of N validators on loopback with sample traffic (Ctrl-C stops it).
    Up(crate::up::UpArgs),
    /// Peer-to-peer: the node's network key.
    #[command(subcommand)]
    Net(net_cmd::NetCmd),
    /// The channel's validators and nodes, and the votes that change them.
    #[command(subcommand)]
    Governance(governance_cmd::GovernanceCmd),
    /// Certificates: apply, review, revoke, renew; the organisations and their CRLs.
    #[command(subcommand)]
    Ca(ca_cmd::CaCmd),
    /// A new organisation joins a consortium with certificates: its CA key, its
    /// certification by the root, its bundle for the vote.
    #[command(subcommand)]
    Org(org_cmd::OrgCmd),
    /// The users of a node's admin API: name, password (an Argon2id hash), roles.
    #[command(subcommand)]
    User(user_cmd::UserCmd),
    /// Key recovery: escrow a key among officers (k of n), request, approve, recover.
    #[command(subcommand)]
    Escrow(escrow_cmd::EscrowCmd),
}

/// A negative answer that is not an error (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Negative(pub String);

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    init_tracing(&cli.log);
    match run(cli) {
        Ok(()) => 0,
        Err(e) if e.downcast_ref::<Negative>().is_some() => {
            eprintln!("{e}");
            1
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

/// Where plugins and compiled artifacts come from: every command needs it.
pub type GlobalOpts = joule_node::plugins::PluginSources;

fn run(cli: Cli) -> Result<()> {
    let ctx = GlobalOpts { plugin_dir: cli.plugin_dir, cache_dir: cli.cache_dir };
    match cli.command {
        Command::Crypto(c) => crypto_cmd::run(&ctx, c),
        Command::Plugin(c) => plugin_cmd::run(&ctx, c),
        Command::Keys(c) => keys_cmd::run(&ctx, c),
        Command::Init(a) => {
            let cfg = joule_node::config::init(&ctx.crypto()?, &a)?;
            let ch = &cfg.network.channels[0];
            if a.join.is_some() {
                let me = ch.nodes.iter().find(|n| n.name == cfg.node.name && n.joined).context("the joining node is missing from its network.toml")?;
                let key = cfg.node.keys.first().context("joule init made no node key")?;
                println!(
                    "initialised {} to join network {}: channel {} ({}, {})",
                    a.dir.display(),
                    cfg.network.network_id,
                    ch.id,
                    ch.crypto_suite,
                    ch.consensus
                );
                println!("validator key {}", key.public_key);
                println!("network key   {} (listening on {})", me.network_key, me.address);
                println!(
                    "next: the channel's validators vote it in, e.g. `joule governance propose --add-node {}={} --add-validator {} --dir VALIDATOR_DIR`, then start it with `joule node --dir {}`",
                    me.name,
                    me.network_key,
                    key.public_key,
                    a.dir.display()
                );
                return Ok(());
            }
            println!(
                "initialised {} for network {}: channel {} ({}, {}), this node its validator",
                a.dir.display(),
                cfg.network.network_id,
                ch.id,
                ch.crypto_suite,
                ch.consensus
            );
            for k in &cfg.node.keys {
                println!(
                    "node key {}: {} (sealed in {}, slot {})",
                    k.algorithm,
                    k.public_key,
                    a.dir.join(joule_node::keystore::KEYSTORE_FILE).display(),
                    k.keystore_slot
                );
            }
            if let Some(path) = &a.export_key {
                println!("node key exported to {} (PKCS#8 PEM, mode 0600)", path.display());
            }
            let pass = a.dir.join(joule_node::keystore::PASSPHRASE_FILE);
            if pass.exists() && std::env::var_os(joule_node::keystore::PASSPHRASE_ENV).is_none() && a.keystore_passphrase_file.is_none() {
                println!(
                    "keystore passphrase in {} (development setup: in production set {} or pass --keystore-passphrase-file, and delete that file)",
                    pass.display(),
                    joule_node::keystore::PASSPHRASE_ENV
                );
            }
            Ok(())
        }
        Command::Node(a) => joule_node::run(&ctx, a),
        Command::Status(s) => chain_cmd::status(&s),
        Command::Tx(c) => chain_cmd::tx(&ctx, c),
        Command::Block(c) => chain_cmd::block(c),
        Command::Contract(c) => contract_cmd::run(&ctx, c),
        Command::Bench(c) => crate::bench::run(&ctx, c),
        Command::Demo(a) => crate::demo::run(&ctx, a),
        Command::Up(a) => crate::up::run(&ctx, a),
        Command::Net(c) => net_cmd::run(&ctx, c),
        Command::Governance(c) => governance_cmd::run(&ctx, c),
        Command::Ca(c) => ca_cmd::run(&ctx, c),
        Command::Org(c) => org_cmd::run(&ctx, c),
        Command::User(c) => user_cmd::run(c),
        Command::Escrow(c) => escrow_cmd::run(&ctx, c),
    }
}

/// Read a file, or standard input for `-`.
pub fn read_input(path: &std::path::Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut v = vec![];
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).context("read standard input")?;
        return Ok(v);
    }
    std::fs::read(path).with_context(|| format!("read {}", path.display()))
}

/// Write a file, or standard output for `-`.
pub fn write_output(path: &std::path::Path, data: &[u8]) -> Result<()> {
    if path.as_os_str() == "-" {
        return std::io::Write::write_all(&mut std::io::stdout(), data).context("write standard output");
    }
    std::fs::write(path, data).with_context(|| format!("write {}", path.display()))
}
