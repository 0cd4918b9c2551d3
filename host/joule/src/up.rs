//! `joule up --nodes N`: a local network of N validators on loopback, each a `joule node`
//! process of its own, joined by the peer-to-peer transport (Noise in the channel's suite),
//! with sample traffic sent to every node in turn and the energy market run on node0; it
//! checks that every node committed the same blocks, prints where each node's API is, and
//! stops every node cleanly on Ctrl-C.
//!
//! The network lives in `--dir` (default: a fresh temporary directory, removed at the
//! end): `node0` … `nodeN-1`, each an ordinary node directory (`network.toml` shared,
//! `node.toml`, keystore, network key, chain store, `node.log`). Run it again on the same
//! `--dir` and the network restarts where it stopped.

use crate::cli::GlobalOpts;
use crate::demo::{Meters, post_batch};
use anyhow::{Context, Result, bail, ensure};
use joule_client::ApiClient;
use joule_crypto::SuiteCrypto;
use joule_node::config::{ChannelNodeConfig, Config, InitArgs, NETWORK_FILE, ValidatorConfig, init};
use joule_primitives::ChannelId;
use joule_support::fs::Mode;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct UpArgs {
    /// Validators in the network (each a node process).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Where the nodes' directories go (default: a fresh temporary directory, removed at the
    /// end). An existing network there is restarted.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// `gm` (SM2/SM3/SM4 on chain and on the wire) or `intl` (P-256/SHA-256/AES-GCM).
    #[arg(long, default_value = "gm")]
    crypto_suite: String,
    /// The consensus engine: `poa` (validators take turns), `bft` (rounds of votes; a
    /// block is final once committed, and the network goes on with a validator down) or
    /// `pow` (every validator mines; the heaviest chain wins).
    #[arg(long, default_value = "poa")]
    consensus: String,
    #[arg(long, default_value_t = 500)]
    block_interval_ms: u64,
    /// Seconds of sample traffic (signed meter readings, sent to each node in turn); 0: none.
    #[arg(long, default_value_t = 8)]
    traffic_seconds: u64,
    /// Smart meters sending readings.
    #[arg(long, default_value_t = 8)]
    meters: usize,
    /// Skip the smart-contract market (run on node0 after the readings when the contracts
    /// are built: `cargo xtask contracts`).
    #[arg(long)]
    no_market: bool,
    /// Stop once the traffic is committed everywhere, instead of serving until Ctrl-C.
    #[arg(long)]
    no_serve: bool,
    /// Identity by certificates (guide §6.3.1): a consortium root CA (its key in node0's
    /// keystore), an organisation per node (`org0`…, its CA key in that node's keystore,
    /// its node's key certified as admin); every meter and market party applies for a
    /// certificate and its organisation's node approves it before it sends.
    #[arg(long)]
    certificates: bool,
}

/// The node processes; dropped, they are stopped (SIGTERM, then SIGKILL after a grace).
#[derive(Default)]
pub(crate) struct Nodes {
    children: Vec<(String, Child)>,
}

impl Nodes {
    /// Stop one node (by its name, `node2`) and wait for it.
    pub fn stop_one(&mut self, name: &str) {
        let mut rest = Nodes::default();
        for (n, c) in std::mem::take(&mut self.children) {
            if n == name {
                let mut one = Nodes { children: vec![(n, c)] };
                one.stop();
            } else {
                rest.children.push((n, c));
            }
        }
        self.children = std::mem::take(&mut rest.children);
    }

    pub fn stop(&mut self) {
        for (_, c) in &mut self.children {
            if let Ok(pid) = i32::try_from(c.id()) {
                // SAFETY: `kill` with a valid signal on a child's pid has no memory effects.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (name, c) in &mut self.children {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                    Ok(None) => {
                        eprintln!("{name} did not stop in time; killing it");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        self.children.clear();
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn run(g: &GlobalOpts, a: UpArgs) -> Result<()> {
    ensure!((1..=16).contains(&a.nodes), "--nodes must be 1-16 on one machine");
    let temporary = a.dir.is_none();
    let base = a.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("joule-up-{}", std::process::id())));
    let dirs: Vec<PathBuf> = (0..a.nodes).map(|i| base.join(format!("node{i}"))).collect();
    if dirs[0].join(NETWORK_FILE).exists() {
        println!("restarting the network in {}", base.display());
    } else {
        let plan =
            Plan { validators: a.nodes, consensus: a.consensus.clone(), certificates: a.certificates, ..Plan::new(&a.crypto_suite, a.block_interval_ms) };
        create(g, &plan, &dirs).with_context(|| format!("create a {}-node network in {}", a.nodes, base.display()))?;
        println!("created a {}-node network in {} (channel grid, {} suite, {})", a.nodes, base.display(), a.crypto_suite, a.consensus.to_uppercase());
    }
    let mut nodes = Nodes::default();
    let apis = start(g, &dirs, &mut nodes)?;
    let config = Config::load(&dirs[0])?.context("node0's configuration")?;
    let channel = &config.network.channels[0];
    for (i, api) in apis.iter().enumerate() {
        let p2p = channel
            .nodes
            .get(i)
            .map_or_else(String::new, |n| format!(" · peer-to-peer {} · network key {}…", n.address, n.network_key.get(..16).unwrap_or(&n.network_key)));
        println!("node{i}: API {}{p2p}", api.base);
    }
    match connected(&apis) {
        Ok(()) => println!("all {} nodes connected to each other", apis.len()),
        Err(counts) => println!("not every node is connected yet (peers per node: {counts:?}); going on"),
    }
    let suite = SuiteCrypto::new(channel.suite()?, g.crypto()?);
    let enroller = match &channel.identity {
        Some(identity) => {
            let orgs = dirs
                .iter()
                .zip(&apis)
                .zip(&identity.organisations)
                .map(|((dir, api), org)| {
                    let token =
                        std::fs::read_to_string(dir.join(joule_client::wire::ADMIN_TOKEN_FILE)).with_context(|| format!("{}'s admin token", dir.display()))?;
                    Ok((ApiClient::new(&api.base, Some(token.trim().to_string())), org.name.clone()))
                })
                .collect::<Result<Vec<_>>>()?;
            println!(
                "identity by certificates: {} organisations ({}), each node the CA of its own",
                orgs.len(),
                identity.organisations.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
            );
            Some(crate::enrol::Enroller::new(orgs, g.crypto()?, &channel.suite()?.signature))
        }
        None => None,
    };
    if a.traffic_seconds > 0 {
        traffic(&suite, &channel.id, &apis, &a, enroller.as_ref())?;
    }
    if !a.no_market {
        match crate::demo::contracts_dir(g) {
            Ok(contracts) => crate::demo::run_market(&apis[0], &suite, channel.id.clone(), &contracts, enroller.as_ref()).context("the contract market")?,
            Err(e) => println!("(no market: {e:#})"),
        }
    }
    if !a.no_serve {
        println!("serving until Ctrl-C (node logs: {}/node*/node.log)", base.display());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(tokio::signal::ctrl_c()).context("wait for Ctrl-C")?;
        println!("stopping the nodes");
    }
    nodes.stop();
    if temporary {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(())
}

/// What a local network is made of.
pub(crate) struct Plan {
    pub crypto_suite: String,
    /// The engine id (`poa`, `bft`).
    pub consensus: String,
    pub block_interval_ms: u64,
    /// The first this many nodes are validators; the others follow the chain.
    pub validators: usize,
    pub max_block_transactions: Option<u32>,
    pub max_block_bytes: Option<u32>,
    pub empty_blocks: bool,
    /// Identity by certificates: an organisation per node, each the CA of its own.
    pub certificates: bool,
}

impl Plan {
    pub fn new(crypto_suite: &str, block_interval_ms: u64) -> Plan {
        Plan {
            crypto_suite: crypto_suite.into(),
            consensus: "poa".into(),
            block_interval_ms,
            validators: usize::MAX,
            max_block_transactions: None,
            max_block_bytes: None,
            empty_blocks: false,
            certificates: false,
        }
    }
}

/// Node directories with one shared genesis: every node a member of the channel's node
/// set, the first `plan.validators` validators, each with its own sealing key (in its
/// keystore) and network key.
pub(crate) fn create(g: &GlobalOpts, plan: &Plan, dirs: &[PathBuf]) -> Result<()> {
    let crypto = g.crypto().context("the crypto plugins (cargo xtask plugins)")?;
    let genesis_time_ms = joule_support::now_ms();
    let suite = joule_net::WireSuite::from_channel_suite(&plan.crypto_suite).with_context(|| format!("unknown crypto suite {:?}", plan.crypto_suite))?;
    let mut configs = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let defaults = InitArgs::defaults(dir);
        let init_args = InitArgs {
            network_id: "joule-local".into(),
            name: format!("node{i}"),
            crypto_suite: plan.crypto_suite.clone(),
            consensus: plan.consensus.clone(),
            consensus_config: consensus_config(&plan.consensus, plan.block_interval_ms),
            block_interval_ms: plan.block_interval_ms,
            max_block_transactions: plan.max_block_transactions.unwrap_or(defaults.max_block_transactions),
            max_block_bytes: plan.max_block_bytes.unwrap_or(defaults.max_block_bytes),
            empty_blocks: plan.empty_blocks,
            genesis_time_ms: Some(genesis_time_ms),
            contract_deployer: vec!["anyone".into()],
            ..defaults
        };
        configs.push(init(&crypto, &init_args)?);
    }
    let mut network = configs[0].network.clone();
    network.node_count = u32::try_from(dirs.len()).unwrap_or(u32::MAX);
    let channel = &mut network.channels[0];
    channel.validators =
        configs.iter().take(plan.validators.max(1)).map(|c| ValidatorConfig { public_key: c.node.keys[0].public_key.clone(), weight: 1 }).collect();
    let addresses = free_ports(dirs.len())?;
    channel.nodes = dirs
        .iter()
        .zip(addresses)
        .enumerate()
        .map(|(i, (dir, address))| {
            let key = joule_node::p2p::network_key(dir, &crypto, suite)?;
            Ok(ChannelNodeConfig { name: format!("node{i}"), network_key: key.public().to_hex(), address, joined: false })
        })
        .collect::<Result<_>>()?;
    if plan.certificates {
        let keystores = dirs.iter().map(|d| joule_node::config::node_keystore(d, &crypto).map(Arc::new)).collect::<Result<Vec<_>>>()?;
        let keys = configs.iter().map(|c| hex::decode(&c.node.keys[0].public_key).context("a node key is not hex")).collect::<Result<Vec<_>>>()?;
        let alg = if plan.crypto_suite == "gm" { joule_pki::SigAlg::Sm2Sm3 } else { joule_pki::SigAlg::EcdsaP256Sha256 };
        // Each node: its signing key as its organisation's admin, its network key as a peer.
        let net_keys = network.channels[0]
            .nodes
            .iter()
            .map(|n| joule_pki::ec_public_key(alg, &hex::decode(&n.network_key).context("a network key is not hex")?).map_err(anyhow::Error::from))
            .collect::<Result<Vec<_>>>()?;
        let members: Vec<joule_node::ca::Member> = keystores
            .iter()
            .zip(keys.iter().zip(&net_keys))
            .enumerate()
            .map(|(i, (ks, (key, net)))| joule_node::ca::Member {
                name: format!("org{i}"),
                keystore: ks.clone(),
                certified: vec![(key.clone(), format!("node{i}"), vec!["admin".into()]), (net.clone(), format!("node{i}-network"), vec!["peer".into()])],
            })
            .collect();
        let root = keystores.first().context("no node")?.clone();
        let identity =
            joule_node::ca::consortium(root, alg.plugin_algorithm(), &members, 3650).map_err(|e| anyhow::anyhow!("the consortium's certificates: {e}"))?;
        network.channels[0].identity = Some(identity);
    }
    network.check()?;
    for dir in dirs {
        joule_support::fs::write_atomic(&dir.join(NETWORK_FILE), network.to_toml().as_bytes(), Mode::Private)?;
    }
    Ok(())
}

/// The engine configuration of a local network: PoW retargets to the block interval, from
/// a difficulty a few loopback nodes on a laptop find in about that time.
fn consensus_config(engine: &str, block_interval_ms: u64) -> String {
    match engine {
        "pow" => {
            format!(
                "block-time-ms = {}\ninitial-difficulty = {}\nmin-difficulty = 1000\nfinality-depth = 6\n",
                block_interval_ms.max(1),
                block_interval_ms.saturating_mul(200).max(1000)
            )
        }
        _ => String::new(),
    }
}

/// `n` distinct loopback addresses with ports free now, below the kernel's ephemeral range:
/// a node binds its port only when it starts, and meanwhile a port the kernel hands out for
/// an outgoing connection or a `:0` listener could be taken from under it. Every probe
/// listener is held until all `n` are found, so no two nodes of one network get the same
/// port; the random start keeps networks set up at the same time apart.
pub(crate) fn free_ports(n: usize) -> Result<Vec<std::net::SocketAddr>> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    let mut seed = [0u8; 2];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let span = high - low;
    let start = u16::from_le_bytes(seed) % span;
    let mut held = Vec::with_capacity(n);
    for i in 0..span.min(4000) {
        if held.len() == n {
            break;
        }
        let port = low + (start + i) % span;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    while held.len() < n {
        held.push(std::net::TcpListener::bind(("127.0.0.1", 0)).context("find a free port")?);
    }
    held.iter().map(|l| l.local_addr().context("read a probe listener's address")).collect()
}

/// Start a node process per directory and wait until each serves its API.
pub(crate) fn start(g: &GlobalOpts, dirs: &[PathBuf], nodes: &mut Nodes) -> Result<Vec<ApiClient>> {
    let exe = std::env::current_exe().context("find the joule binary")?;
    // Nodes started earlier stay in `nodes` ahead of these.
    let first = nodes.children.len();
    for (i, dir) in dirs.iter().enumerate() {
        let _ = std::fs::remove_file(dir.join(joule_node::API_ADDR_FILE));
        let log = std::fs::File::create(dir.join("node.log")).with_context(|| format!("create {}", dir.join("node.log").display()))?;
        let mut cmd = Command::new(&exe);
        if let Some(p) = &g.plugin_dir {
            cmd.arg("--plugin-dir").arg(p);
        }
        if let Some(c) = &g.cache_dir {
            cmd.arg("--cache-dir").arg(c);
        }
        cmd.args(["--log", "info", "node", "--dir"]).arg(dir).args(["--listen", "127.0.0.1:0"]);
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let name = dir.file_name().map_or_else(|| format!("node{i}"), |n| n.to_string_lossy().into_owned());
        let child = cmd.spawn().with_context(|| format!("start {name}"))?;
        nodes.children.push((name, child));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut apis = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let file = dir.join(joule_node::API_ADDR_FILE);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&file) {
                apis.push(ApiClient::new(&format!("http://{}", addr.trim()), None));
                break;
            }
            if let Some((name, child)) = nodes.children.get_mut(first + i)
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("{name} exited ({status}) before serving; its log: {}\n{}", dir.join("node.log").display(), tail(&dir.join("node.log")));
            }
            if Instant::now() > deadline {
                bail!("{} did not start within 2 minutes; its log: {}", dir.display(), dir.join("node.log").display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(apis)
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Wait (up to 30 s) until every node is connected to all the others, so the traffic
/// starts on a whole network. Err: the peer count of each node when the wait ended.
pub(crate) fn connected(apis: &[ApiClient]) -> Result<(), Vec<usize>> {
    let want = apis.len().saturating_sub(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts: Vec<usize> = apis.iter().map(|api| api.get("/v1/peers").ok().and_then(|p| p["peers"].as_array().map(Vec::len)).unwrap_or(0)).collect();
        if counts.iter().all(|&c| c >= want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(counts);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Meter readings to each node in turn; then wait until every node has committed them and
/// check that all hold the same block at the same height.
fn traffic(suite: &SuiteCrypto, channel: &ChannelId, apis: &[ApiClient], a: &UpArgs, enroller: Option<&crate::enrol::Enroller>) -> Result<()> {
    let mut meters = Meters::new(suite, channel, a.meters, None)?;
    if let Some(e) = enroller {
        for (i, kp) in meters.keys().enumerate() {
            e.enrol(kp, &format!("meter-{i}"), "client")?;
        }
        e.settle(&apis.iter().collect::<Vec<_>>())?;
        println!(
            "{} meters applied and were certified by their organisations' nodes; every node committed the certificates ({} in {} ms)",
            meters.len(),
            e.issued.get(),
            e.spent.get().as_millis()
        );
    }
    println!("sample traffic: {} meters send signed readings to the {} nodes in turn for {} s", meters.len(), apis.len(), a.traffic_seconds);
    let deadline = Instant::now() + Duration::from_secs(a.traffic_seconds);
    let mut sent = 0usize;
    let mut last = String::new();
    while Instant::now() < deadline {
        let api = &apis[(meters.rounds as usize + 1) % apis.len()];
        let (n, h) = post_batch(api, &meters.round(500.0)?)?;
        last = h.unwrap_or(last);
        sent += n;
        std::thread::sleep(Duration::from_millis(200));
    }
    // The last reading, committed on every node; then the same head everywhere.
    for api in apis {
        api.wait_for_tx(&last, Duration::from_secs(60)).with_context(|| format!("the last reading on {}", api.base))?;
    }
    let heights: Vec<u64> = apis.iter().map(|api| Ok(api.get("/v1/status")?["height"].as_u64().unwrap_or(0))).collect::<Result<_>>()?;
    let common = heights.iter().copied().min().unwrap_or(0);
    let hashes: Vec<String> = apis
        .iter()
        .map(|api| Ok(api.get(&format!("/v1/blocks/{common}?full=false"))?["hash"].as_str().unwrap_or_default().to_string()))
        .collect::<Result<_>>()?;
    ensure!(hashes.windows(2).all(|w| w[0] == w[1]), "the nodes disagree on block {common}: {hashes:?}");
    println!("{sent} readings committed; all {} nodes hold block {common} {} ✓", apis.len(), hashes[0]);
    for (i, h) in heights.iter().enumerate() {
        println!("  node{i} at height {h}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::free_ports;

    #[test]
    fn the_ports_of_one_network_are_distinct_and_free() {
        let ports = free_ports(32).expect("free ports");
        let mut seen: Vec<u16> = ports.iter().map(|a| a.port()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 32, "{ports:?}");
        let _bound: Vec<_> = ports.iter().map(|a| std::net::TcpListener::bind(a).expect("the port is free")).collect();
    }
}
