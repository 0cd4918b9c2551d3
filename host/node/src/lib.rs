//! A Joule node: it assembles the kernel with the plugin kinds, the chains of the
//! channels in its configuration (each with its block producer and, when the channel lists
//! nodes, its peer-to-peer network), the keystore, the HTTP API and metrics.
//!
//! * [`config`] — `network.toml` and `node.toml`, `joule init`;
//! * [`keystore`] — §4.1.2 key management;
//! * [`health`] — readiness checks, and what the channels require of the plugin registry;
//! * [`api`] — the HTTP API and its OpenAPI document;
//! * [`server`] — the HTTP server under it: connection caps and timeouts, shutdown;
//! * [`p2p`] — a channel on the peer-to-peer network: gossip and block sync;
//! * [`plugins`] — the plugin kinds this node loads and where plugins come from.

pub mod api;
pub mod ca;
pub mod config;
pub mod consensus;
pub mod health;
pub mod keystore;
pub mod p2p;
pub mod plugins;
pub mod server;
pub mod users;
pub mod wire;

use anyhow::{Context, Result};
use config::Config;
use joule_consensus_wasm::PluginEngineSource;
use joule_crypto::{CryptoService, SuiteCrypto, pem};
use joule_kernel::PluginRegistry;
use joule_kernel::trust::{TrustPolicy, TrustedKey};
use joule_ledger::chain::{BlockSigner, Chain};
use joule_support::fs::Mode;
use joule_support::sync::lock;
use keystore::Keystore;
use plugins::PluginSources;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use joule_client::wire::API_ADDR_FILE;

#[derive(clap::Args, Clone)]
pub struct NodeArgs {
    /// The node's data directory (plugin store, admin token, audit log).
    #[arg(long)]
    pub dir: PathBuf,
    /// Address of the HTTP API; port 0 picks a free port. Default: `ip` and `port` of
    /// DIR/node.toml, else 127.0.0.1:0.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Bearer token for admin endpoints: at least 32 characters of A-Z a-z 0-9 - . _ ~ + / =.
    /// Default: `JOULE_ADMIN_TOKEN`, else DIR/admin.token, else a random token written there
    /// (mode 0600).
    #[arg(long, env = "JOULE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Accept only plugins whose manifest is signed by a trusted vendor key.
    #[arg(long)]
    pub require_signed: bool,
    /// A trusted vendor public key (SPKI PEM); repeatable.
    #[arg(long)]
    pub trusted_key: Vec<PathBuf>,
    /// Wall-clock budget of one plugin call, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub call_timeout_ms: u64,
    /// Keystore holding the node key, served and rotated on schedule (default:
    /// DIR/keystore.redb when it exists). Its passphrase comes from
    /// JOULE_KEYSTORE_PASSPHRASE, else --keystore-passphrase-file, else DIR/keystore.pass.
    #[arg(long)]
    pub keystore: Option<PathBuf>,
    /// A file whose first line is the keystore passphrase.
    #[arg(long)]
    pub keystore_passphrase_file: Option<PathBuf>,
    /// Seconds between checks for keys due for rotation.
    #[arg(long, default_value_t = 60)]
    pub rotation_check_secs: u64,
    /// Limits of the HTTP API (node.toml `[http]`, overridden here).
    #[command(flatten)]
    pub http: server::HttpArgs,
}

/// A running node's shared state, handed to every HTTP handler.
pub struct Node {
    pub crypto: CryptoService,
    pub admin_token: String,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub started: std::time::Instant,
    /// The node's keystore, when configured (§4.1.2).
    pub keystore: Option<Arc<Keystore>>,
    /// The node directory.
    pub dir: PathBuf,
    /// network.toml and node.toml, as last loaded or written (`None`: not initialised).
    pub config: std::sync::Mutex<Option<Config>>,
    /// The chains of the configured channels, in configuration order.
    pub chains: Vec<Arc<Chain>>,
    /// Readiness state between checks.
    pub health: health::HealthState,
    /// The HTTP API's limits.
    pub http: server::HttpLimits,
    /// What each request may take (expensive places, wrong tokens, body deadline).
    pub guards: api::Guards,
    /// The channels' peer-to-peer networks, once started (channels that list nodes).
    pub networks: std::sync::Mutex<Vec<(joule_primitives::ChannelId, joule_net::Network)>>,
    /// Certificate applications waiting for review, and their outcomes.
    pub applications: ca::Applications,
    /// Users signed in to the admin API.
    pub sessions: users::Sessions,
    /// Signatures of signed requests seen lately (replays are refused).
    pub signatures_seen: api::signed::Seen,
}

impl Node {
    /// The users of node.toml as last loaded, and whether the admin token is on.
    pub fn users(&self) -> (Vec<users::UserConfig>, bool) {
        let config = self.config.lock().unwrap_or_else(|p| p.into_inner());
        config.as_ref().map_or((vec![], true), |c| (c.node.users.clone(), c.node.admin_token))
    }
}

impl Node {
    pub fn registry(&self) -> &Arc<PluginRegistry> {
        self.crypto.registry()
    }

    /// A channel's chain; `None` picks the first channel.
    pub fn chain(&self, channel: Option<&str>) -> Option<&Arc<Chain>> {
        match channel {
            None => self.chains.first(),
            Some(id) => self.chains.iter().find(|c| c.channel().as_str() == id),
        }
    }
}

/// Build the node: registry restored from the data dir (seeded from the plugin directory
/// on first start), token, metrics recorder, keystore, chains.
pub fn build(sources: &PluginSources, a: &NodeArgs) -> Result<Arc<Node>> {
    joule_support::fs::create_private_dir(&a.dir).with_context(|| format!("create {}", a.dir.display()))?;
    // A full (or read-only) disk fails here, with its reason, before anything is announced.
    joule_support::fs::probe_writable(&a.dir)
        .with_context(|| format!("the data directory {} does not take writes (is the disk full?); free space and start again", a.dir.display()))?;
    // Before anything slow: a node nobody can administer should not start at all.
    let admin_token = match &a.admin_token {
        Some(t) => check_token(t).context("the admin token of --admin-token or JOULE_ADMIN_TOKEN")?.to_string(),
        None => token_file(&a.dir)?,
    };
    // First: metric handles created before the recorder exists would record nothing.
    let metrics = api::metrics_handle()?;
    let mut trust = TrustPolicy { require_signed: a.require_signed, trusted_keys: vec![] };
    for k in &a.trusted_key {
        let der = pem::decode(pem::PUBLIC_KEY, &std::fs::read(k).with_context(|| format!("read {}", k.display()))?)
            .with_context(|| format!("trusted key {}", k.display()))?;
        trust.trusted_keys.push(TrustedKey { spki_der: der });
    }
    let limits = joule_wasm::Limits { call_timeout: std::time::Duration::from_millis(a.call_timeout_ms.max(1)), ..joule_wasm::Limits::default() };
    let store = a.dir.join("plugins");
    joule_support::fs::create_private_dir(&store).with_context(|| format!("create {}", store.display()))?;
    let first_start = !store.join("active.json").exists();
    let registry = plugins::registry(limits, sources.cache(), trust, Some(store))?;
    for (path, e) in registry.restore() {
        tracing::error!("plugin {} not restored: {e}", path.display());
    }
    if first_start && let Some(dir) = sources.plugin_dir().filter(|d| d.is_dir()) {
        for (path, e) in registry.load_dir(&dir) {
            tracing::error!("plugin {} not loaded: {e}", path.display());
        }
    }
    let crypto = CryptoService::new(registry.clone());
    let keystore = match a.keystore.clone().or_else(|| Some(a.dir.join(keystore::KEYSTORE_FILE)).filter(|p| p.exists())) {
        Some(path) => {
            let pass = keystore::passphrase(a.keystore_passphrase_file.as_deref(), Some(&a.dir))?.with_context(|| {
                format!("the keystore {} needs its passphrase: set JOULE_KEYSTORE_PASSPHRASE or pass --keystore-passphrase-file", path.display())
            })?;
            Some(Arc::new(Keystore::open(&path, pass.as_bytes(), crypto.clone()).with_context(|| format!("open keystore {}", path.display()))?))
        }
        None => None,
    };
    let config = Config::load(&a.dir)?;
    config::make_private(&a.dir);
    let http = server::HttpLimits::resolve(&a.http, &config.as_ref().map(|c| c.node.http.clone()).unwrap_or_default())?;
    let mut chains = vec![];
    if let Some(cfg) = &config {
        // One contract VM for every channel; compiled contracts cached in the data dir.
        let vm: Arc<dyn joule_contract::ContractVm> = Arc::new(
            joule_contract_wasm::ContractRuntime::new(joule_contract_wasm::RuntimeConfig {
                cache_dir: Some(a.dir.join("contract-cache")),
                call_timeout: std::time::Duration::from_millis(a.call_timeout_ms.max(1)),
                ..joule_contract_wasm::RuntimeConfig::default()
            })
            .context("start the contract runtime")?,
        );
        for ch in &cfg.network.channels {
            let signer = node_signer(&cfg.node, &ch.suite()?.signature, keystore.as_ref())?;
            let chain = open_chain(&a.dir.join("channels").join(ch.id.as_str()), ch, &crypto, signer)
                .and_then(|c| Ok(c.with_contract_vm(vm.clone())?))
                .with_context(|| format!("open channel {}", ch.id))?;
            // Keys of the other suites (bound ahead of a switch) sign from the switch on.
            for id in joule_primitives::CryptoSuite::NAMED.iter().filter(|id| **id != ch.crypto_suite) {
                let Some(other) = joule_primitives::CryptoSuite::named(id) else { continue };
                if let Some(signer) = node_signer(&cfg.node, &other.signature, keystore.as_ref())? {
                    chain.add_signer(id, signer);
                }
            }
            chain.set_pool_config(cfg.node.txpool.pool_config());
            chain.set_state_history(cfg.node.storage.state_history_blocks).with_context(|| format!("channel {}: [storage]", ch.id))?;
            chains.push(Arc::new(chain));
        }
    }
    // From here on, the admin API cannot take away what the channels and the keystore use.
    health::require(&registry, &chains, keystore.as_ref());
    Ok(Arc::new(Node {
        crypto,
        admin_token,
        metrics,
        started: std::time::Instant::now(),
        keystore,
        dir: a.dir.clone(),
        config: std::sync::Mutex::new(config),
        chains,
        health: health::HealthState::default(),
        guards: api::Guards::new(&http),
        http,
        networks: std::sync::Mutex::new(Vec::new()),
        applications: ca::Applications::new(&a.dir),
        sessions: users::Sessions::default(),
        signatures_seen: api::signed::Seen::default(),
    }))
}

/// The node's sealing key for a signature algorithm, from its keystore; `None` when the
/// node has no key of that algorithm (it follows the channel).
fn node_signer(node: &config::NodeConfig, algorithm: &str, keystore: Option<&Arc<Keystore>>) -> Result<Option<Arc<dyn BlockSigner>>> {
    let Some(key) = node.key(algorithm) else { return Ok(None) };
    let keystore =
        keystore.with_context(|| format!("the node key {} is in a keystore, and none is open (DIR/keystore.redb or --keystore)", key.keystore_slot))?;
    let signer = keystore::KeystoreSigner::new(keystore.clone(), key.purpose()?).with_context(|| format!("node key {}", key.keystore_slot))?;
    if hex::encode(joule_ledger::chain::BlockSigner::public_key(&signer)) != key.public_key {
        anyhow::bail!("node key {}: the keystore's key is not the public key node.toml lists", key.keystore_slot);
    }
    Ok(Some(Arc::new(signer)))
}

/// The node's signing key of `algorithm`: the one `node.toml` lists, else a new one made
/// in the keystore and recorded in `node.toml` (a key bound ahead of a suite switch).
pub fn own_key(node: &Node, keystore: &Arc<Keystore>, algorithm: &str) -> Result<Arc<dyn BlockSigner>> {
    let mut config = node.config.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let cfg = config.as_mut().context("the node is not initialised")?;
    if let Some(signer) = node_signer(&cfg.node, algorithm, Some(keystore))? {
        return Ok(signer);
    }
    let purpose = keystore::seal_purpose(algorithm);
    let kp = node.crypto.generate_key(algorithm).with_context(|| format!("generate a {algorithm} node key"))?;
    keystore.set_policy(keystore::NODE_MODULE, &purpose, algorithm, None)?;
    keystore.import(keystore::NODE_MODULE, &purpose, kp.private_key)?;
    let mut updated = cfg.node.clone();
    updated.keys.push(config::NodeKeyConfig {
        algorithm: algorithm.to_string(),
        public_key: hex::encode(&kp.public_key),
        keystore_slot: format!("{}/{purpose}", keystore::NODE_MODULE),
    });
    config::write_atomic(&node.dir.join(config::NODE_FILE), updated.to_toml().as_bytes(), Mode::Private)?;
    cfg.node = updated;
    tracing::info!(algorithm, "a new node key made for a suite switch, recorded in node.toml");
    node_signer(&cfg.node, algorithm, Some(keystore))?.context("the key just made is not in node.toml")
}

/// Open (or create) a channel's chain in `dir`: its specification from the configuration,
/// its suite bound to the crypto plugins, its engine served by the consensus plugins.
pub fn open_chain(dir: &std::path::Path, channel: &config::ChannelConfig, crypto: &CryptoService, signer: Option<Arc<dyn BlockSigner>>) -> Result<Chain> {
    let suite = Arc::new(SuiteCrypto::new(channel.suite()?, crypto.clone()));
    let spec = channel.spec_with(|key| Ok(joule_primitives::Hasher::hash(suite.as_ref(), key)?))?;
    let engines = Arc::new(PluginEngineSource::new(
        crypto.registry().clone(),
        &spec.consensus,
        suite.clone(),
        spec.consensus_config.clone().into_bytes(),
        spec.channel.as_str(),
    ));
    Ok(Chain::open(dir, &spec, channel.policy(), suite, engines, signer)?)
}

/// Shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 32;

/// An admin token must be hard to guess and fit an `Authorization` header as it is:
/// at least [`MIN_TOKEN_LEN`] characters of the base64, base64url and hex alphabets.
pub fn check_token(token: &str) -> Result<&str> {
    if token.len() < MIN_TOKEN_LEN {
        anyhow::bail!("it has {} characters; it needs at least {MIN_TOKEN_LEN}", token.len());
    }
    if let Some(c) = token.chars().find(|c| !(c.is_ascii_alphanumeric() || "-._~+/=".contains(*c))) {
        anyhow::bail!("it contains {c:?}; only A-Z a-z 0-9 - . _ ~ + / = are allowed");
    }
    Ok(token)
}

fn token_file(dir: &std::path::Path) -> Result<String> {
    let path = dir.join(joule_client::wire::ADMIN_TOKEN_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        return check_token(text.trim()).map(str::to_string).with_context(|| {
            format!(
                "{} is not a usable admin token; delete the file to have the node generate one, or write a token of at least \
                 {MIN_TOKEN_LEN} characters of A-Z a-z 0-9 - . _ ~ + / = into it",
                path.display()
            )
        });
    }
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let token = hex::encode(raw);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(&path).with_context(|| format!("create {}", path.display()))?, token.as_bytes())?;
    Ok(token)
}

pub fn run(sources: &PluginSources, a: NodeArgs) -> Result<()> {
    let node = build(sources, &a)?;
    // Blocks (and contract queries) execute on these threads: with stacks this deep, a
    // contract call never needs a stack of its own (the contract runtime would otherwise
    // map one per call: joule_contract_wasm::NATIVE_STACK_NEEDED). Address space only.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(joule_contract_wasm::THREAD_STACK_SIZE)
        .build()
        .context("start the async runtime")?;
    let listen = a.listen.unwrap_or_else(|| match lock(&node.config).as_ref() {
        Some(c) => SocketAddr::new(c.node.ip, c.node.port),
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    });
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("bind {listen}"))?;
        let addr = listener.local_addr()?;
        // Clients find the API from the directory (`joule status --dir DIR`). Written before the
        // line below so that whoever waits for that line finds the file too.
        let addr_file = a.dir.join(API_ADDR_FILE);
        config::write_atomic(&addr_file, addr.to_string().as_bytes(), Mode::Default)?;
        // Tests and scripts read this line to find the API.
        println!("joule node listening on http://{addr}");
        if a.admin_token.is_none() {
            println!("admin token in {}", a.dir.join("admin.token").display());
        }
        for chain in &node.chains {
            let head = chain.head();
            println!(
                "channel {} at height {} ({}, {}, {})",
                chain.channel(),
                head.height,
                chain.spec().consensus,
                chain.spec().crypto_suite.id,
                if chain.is_validator() { "validator" } else { "follower" }
            );
        }
        if let Some(ks) = node.keystore.clone() {
            tokio::spawn(rotate_on_schedule(ks, std::time::Duration::from_secs(a.rotation_check_secs.max(1))));
        }
        let served = serve(listener, node).await;
        // A stale address would send clients to whatever listens there next; the file is
        // left alone when another node has written its own since.
        if std::fs::read_to_string(&addr_file).is_ok_and(|written| written == addr.to_string()) {
            let _ = std::fs::remove_file(&addr_file);
        }
        served
    });
    // Blocking work still running (a plugin call, a batch) gets a moment, not a veto.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// Scheduled key update (§4.1.2 b): rotate every slot whose interval has passed.
async fn rotate_on_schedule(ks: Arc<Keystore>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let ks = ks.clone();
        let now = joule_support::now_secs();
        match tokio::task::spawn_blocking(move || ks.rotate_due(now)).await {
            Ok(Ok(rotated)) => {
                for k in rotated {
                    tracing::info!(key = %k.id(), "scheduled key rotation");
                }
            }
            Ok(Err(e)) => tracing::error!("scheduled key rotation failed: {e}"),
            Err(e) => tracing::error!("scheduled key rotation task failed: {e}"),
        }
    }
}

/// Run the channels' consensus participants and store maintenance, join their peer-to-peer
/// networks, and serve the API until Ctrl-C / SIGTERM.
pub async fn serve(listener: tokio::net::TcpListener, node: Arc<Node>) -> Result<()> {
    for chain in &node.chains {
        let addresses = peer_addresses(&node, chain.channel())?;
        // Peers' consensus messages, for the channel's participant.
        let (consensus_tx, consensus_rx) = tokio::sync::mpsc::channel(1024);
        let net = p2p::start(&node.dir, &node.crypto, chain.clone(), &addresses, consensus_tx).await?;
        if let Some(net) = &net {
            println!("channel {} peer-to-peer on {} as {}", chain.channel(), net.local_addr(), net.key());
            lock(&node.networks).push((chain.channel().clone(), net.clone()));
        }
        tokio::spawn(consensus::run(chain.clone(), net, consensus_rx));
        tokio::spawn(joule_ledger::chain::run_maintenance(chain.clone()));
    }
    let app = api::router(node.clone());
    let served = server::run(listener, app, &node.http, node.guards.shutting_down(), server::shutdown_signal()).await.context("HTTP server");
    for (_, net) in lock(&node.networks).iter() {
        net.shutdown();
    }
    served
}

/// The channel's nodes from the configuration: network key and where to dial it.
fn peer_addresses(node: &Node, channel: &joule_primitives::ChannelId) -> Result<Vec<(joule_net::PeerKey, SocketAddr)>> {
    let config = lock(&node.config);
    let Some(ch) = config.as_ref().and_then(|c| c.network.channels.iter().find(|c| &c.id == channel)) else { return Ok(vec![]) };
    ch.nodes
        .iter()
        .map(|n| {
            let key = hex::decode(&n.network_key).ok().and_then(|k| joule_net::PeerKey::from_slice(&k));
            let key = key.with_context(|| format!("channel {channel}: node {}: network-key is not a 33-byte compressed point in hex", n.name))?;
            Ok((key, n.address))
        })
        .collect()
}
