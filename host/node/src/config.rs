//! Network and node configuration (guide §5.2.1) and node initialisation (§5.2.2).
//!
//! `joule init --dir DIR` writes two TOML files:
//!
//! * `network.toml` — the network: id, region, node count, and its channels (§5.3). A
//!   channel's genesis fields (id, crypto suite, consensus engine and its configuration,
//!   validators, gas limit, genesis time) map to its [`ChainSpec`], whose canonical
//!   encoding block 0 commits to: nodes with different specifications never share a chain,
//!   a node refuses to start on a store created from another, and the names of this file's
//!   fields are not part of it. The block policy is operational: it may change at any time
//!   and applies to the blocks this node produces.
//! * `node.toml` — this node: name, IP and port of its API, its keys (public key inline,
//!   private key in a PEM file beside it, mode 0600), generated through the crypto plugins,
//!   and optionally its transaction pool's limits (`[txpool]`) and how much history its
//!   chain stores keep (`[storage]`).
//!
//! Both are readable and editable over the admin API (`GET`/`PUT /v1/config/…`); a `PUT`
//! is validated like a file read at start-up and written atomically.

use crate::keystore::{DEFAULT_KDF_MEMORY_KIB, KEYSTORE_FILE, Keystore, NODE_MODULE, PASSPHRASE_FILE, seal_purpose};
use anyhow::{Context, Result, bail};
use joule_crypto::CryptoService;
use joule_crypto::pem;
use joule_primitives::{BlockPolicy, ChainSpec, ChannelId, CryptoSuite, DeployPolicy, Encode, Hash32, IdentitySpec, NodeSpec, OrganisationSpec, ValidatorSpec};
use joule_support::fs::Mode;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const NETWORK_FILE: &str = "network.toml";
pub const NODE_FILE: &str = "node.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkConfig {
    pub network_id: String,
    /// Where the network runs (所在地域), free text, e.g. `cn-east-1`.
    pub region: String,
    /// Nodes in the network.
    pub node_count: u32,
    #[serde(rename = "channel")]
    pub channels: Vec<ChannelConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ChannelConfig {
    pub id: ChannelId,
    /// `gm` (SM3 + SM2) or `intl` (SHA-256 + ECDSA P-256).
    pub crypto_suite: String,
    /// The consensus engine id a plugin provides, e.g. `poa`.
    pub consensus: String,
    /// The engine's own configuration (TOML text), passed to its `configure`.
    #[serde(default)]
    pub consensus_config: String,
    /// Largest gas limit a transaction may declare (燃料限制).
    pub gas_limit: u64,
    /// Most gas one block's transactions may use.
    #[serde(default = "default_block_gas_limit")]
    pub block_gas_limit: u64,
    /// Version of the contract gas schedule (docs/contracts.md).
    #[serde(default = "default_gas_schedule")]
    pub gas_schedule: u32,
    /// Who may deploy contracts: `"anyone"`, `"validators"` (the default), or a list of
    /// account ids or public keys (hex SubjectPublicKeyInfo DER).
    #[serde(default)]
    pub contract_deployers: DeployersConfig,
    /// Unix milliseconds: block 0's timestamp.
    pub genesis_time_ms: u64,
    pub validators: Vec<ValidatorConfig>,
    pub block_policy: BlockPolicyConfig,
    /// The channel's nodes (`[[channel.node]]`): who may join its peer-to-peer network, and
    /// where to reach them. Empty: a chain of one node, with no peers.
    #[serde(default, rename = "node", skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<ChannelNodeConfig>,
    /// Identity by certificates (`[channel.identity]`, guide §6.3.1): every sender holds a
    /// certificate of a member organisation, recorded on chain. A genesis field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityConfig>,
}

/// The consortium's certificates at genesis, as PEM text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IdentityConfig {
    /// The root CA's certificate (PEM).
    pub root_certificate: String,
    #[serde(rename = "organisation")]
    pub organisations: Vec<OrganisationConfig>,
}

/// A member organisation at genesis (`[[channel.identity.organisation]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OrganisationConfig {
    /// 1-64 characters of [a-z0-9_-].
    pub name: String,
    /// Its CA certificate (PEM), issued by the root.
    pub ca_certificate: String,
    /// Certificates (PEM) of its admins and validators the chain starts with.
    #[serde(default)]
    pub certificates: Vec<String>,
}

impl IdentityConfig {
    fn spec(&self, channel: &ChannelId) -> Result<IdentitySpec> {
        let der = |what: &str, pem: &str| -> Result<Vec<u8>> {
            let cert = joule_pki::certificate(pem.as_bytes()).with_context(|| format!("channel {channel}: identity: {what}"))?;
            joule_pki::to_der(&cert).with_context(|| format!("channel {channel}: identity: {what}"))
        };
        Ok(IdentitySpec {
            root_certificate: der("root-certificate", &self.root_certificate)?,
            organisations: self
                .organisations
                .iter()
                .map(|o| {
                    Ok(OrganisationSpec {
                        name: o.name.clone(),
                        ca_certificate: der(&format!("organisation {}: ca-certificate", o.name), &o.ca_certificate)?,
                        certificates: o
                            .certificates
                            .iter()
                            .enumerate()
                            .map(|(i, c)| der(&format!("organisation {}: certificate {i}", o.name), c))
                            .collect::<Result<_>>()?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }
}

/// A node of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ChannelNodeConfig {
    pub name: String,
    /// Its static network key: compressed SEC1 point, hex (`joule net key` prints a node's).
    pub network_key: String,
    /// Where its peer-to-peer listener is (not consensus: only where to dial).
    pub address: std::net::SocketAddr,
    /// A node the validators added by vote after genesis (§5.2.3): listed here only for
    /// where to dial it, it is not one of the channel's genesis fields.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub joined: bool,
}

fn default_block_gas_limit() -> u64 {
    1_000_000_000
}

fn default_gas_schedule() -> u32 {
    joule_contract::gas::V1.version
}

/// Who may deploy contracts, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeployersConfig {
    /// `anyone` or `validators`.
    Named(String),
    /// Account ids (64 hex digits) or public keys (hex SPKI DER).
    List(Vec<String>),
}

impl Default for DeployersConfig {
    fn default() -> Self {
        DeployersConfig::Named("validators".into())
    }
}

impl DeployersConfig {
    /// The policy, with public keys turned into account ids by `hash`.
    pub fn policy(&self, hash: impl Fn(&[u8]) -> Result<Hash32>) -> Result<DeployPolicy> {
        match self {
            DeployersConfig::Named(n) if n == "anyone" => Ok(DeployPolicy::Anyone),
            DeployersConfig::Named(n) if n == "validators" => Ok(DeployPolicy::Validators),
            DeployersConfig::Named(n) => bail!("contract-deployers {n:?}: give \"anyone\", \"validators\" or a list of account ids or public keys"),
            DeployersConfig::List(list) => list
                .iter()
                .map(|s| {
                    let bytes = hex::decode(s.trim_start_matches("0x")).with_context(|| format!("contract-deployers: {s:?} is not hex"))?;
                    if bytes.len() == 32 { Ok(Hash32::from_slice(&bytes).unwrap_or(Hash32::ZERO)) } else { hash(&bytes) }
                })
                .collect::<Result<Vec<_>>>()
                .map(DeployPolicy::Accounts),
        }
    }
}

/// The block policy (§5.3 出块策略) as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BlockPolicyConfig {
    /// Time between blocks, in milliseconds; a full block may come sooner.
    pub interval_ms: u64,
    pub max_transactions: u32,
    pub max_bytes: u32,
    /// Produce a block at every interval even with no transactions.
    pub produce_empty_blocks: bool,
}

impl From<&BlockPolicyConfig> for BlockPolicy {
    fn from(c: &BlockPolicyConfig) -> BlockPolicy {
        BlockPolicy { interval_ms: c.interval_ms, max_transactions: c.max_transactions, max_bytes: c.max_bytes, produce_empty_blocks: c.produce_empty_blocks }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ValidatorConfig {
    /// SubjectPublicKeyInfo DER, hex.
    pub public_key: String,
    #[serde(default = "one")]
    pub weight: u64,
}

fn one() -> u64 {
    1
}

impl ChannelConfig {
    pub fn suite(&self) -> Result<CryptoSuite> {
        CryptoSuite::named(&self.crypto_suite)
            .with_context(|| format!("channel {}: unknown crypto suite {:?} (known: {})", self.id, self.crypto_suite, CryptoSuite::NAMED.join(", ")))
    }

    /// The chain specification these genesis fields define; `hash` is the suite's hash
    /// (public keys listed as contract deployers become account ids).
    pub fn spec_with(&self, hash: impl Fn(&[u8]) -> Result<Hash32>) -> Result<ChainSpec> {
        let spec = ChainSpec {
            channel: self.id.clone(),
            crypto_suite: self.suite()?,
            consensus: self.consensus.clone(),
            consensus_config: self.consensus_config.clone(),
            gas_limit: self.gas_limit,
            block_gas_limit: self.block_gas_limit,
            gas_schedule: self.gas_schedule,
            contract_deployers: self.contract_deployers.policy(hash).with_context(|| format!("channel {}", self.id))?,
            genesis_time_ms: self.genesis_time_ms,
            validators: self.validator_keys()?.into_iter().map(|(public_key, weight)| ValidatorSpec { public_key, weight }).collect(),
            nodes: self
                .nodes
                .iter()
                .filter(|n| !n.joined)
                .enumerate()
                .map(|(i, n)| {
                    let network_key =
                        hex::decode(&n.network_key).with_context(|| format!("channel {}: node {i} ({}): network-key is not hex", self.id, n.name))?;
                    Ok(NodeSpec { name: n.name.clone(), network_key })
                })
                .collect::<Result<_>>()?,
            identity: self.identity.as_ref().map(|i| i.spec(&self.id)).transpose()?,
        };
        spec.validate().map_err(|e| anyhow::anyhow!("channel {}: {e}", self.id))?;
        Ok(spec)
    }

    /// The chain specification, for checks that need no hash (public keys among the
    /// contract deployers are then refused: [`ChannelConfig::spec_with`] takes them).
    pub fn spec(&self) -> Result<ChainSpec> {
        self.spec_with(|_| bail!("public keys among contract-deployers need the channel's hash here; list account ids"))
    }

    pub fn policy(&self) -> BlockPolicy {
        (&self.block_policy).into()
    }

    pub fn validator_keys(&self) -> Result<Vec<(Vec<u8>, u64)>> {
        self.validators
            .iter()
            .enumerate()
            .map(|(i, v)| Ok((hex::decode(&v.public_key).with_context(|| format!("channel {}: validator {i}: public-key is not hex", self.id))?, v.weight)))
            .collect()
    }

    fn check(&self) -> Result<()> {
        if self.validators.is_empty() {
            bail!("channel {}: at least one validator is needed", self.id);
        }
        self.spec_with(|_| Ok(Hash32::ZERO))?;
        if joule_contract::GasSchedule::by_version(self.gas_schedule).is_none() {
            bail!("channel {}: gas-schedule {} is unknown to this node (it knows {})", self.id, self.gas_schedule, joule_contract::gas::V1.version);
        }
        if self.gas_limit < joule_ledger::execute::BASE_GAS {
            bail!("channel {}: gas-limit {} is below the cost of the smallest transaction ({})", self.id, self.gas_limit, joule_ledger::execute::BASE_GAS);
        }
        let p = &self.block_policy;
        if p.max_transactions == 0 || p.max_bytes < 1024 {
            bail!("channel {}: block-policy needs max-transactions ≥ 1 and max-bytes ≥ 1024", self.id);
        }
        if p.max_bytes as usize > joule_primitives::encoding::MAX_BLOCK_BYTES {
            bail!("channel {}: block-policy max-bytes is over the block encoding limit of {}", self.id, joule_primitives::encoding::MAX_BLOCK_BYTES);
        }
        Ok(())
    }
}

impl NetworkConfig {
    pub fn parse(text: &str) -> Result<NetworkConfig> {
        let c: NetworkConfig = toml::from_str(text).context("network configuration")?;
        c.check()?;
        Ok(c)
    }

    pub fn check(&self) -> Result<()> {
        if self.network_id.trim().is_empty() || self.network_id.len() > 64 {
            bail!("network-id must be 1-64 characters");
        }
        if self.channels.is_empty() {
            bail!("the network needs at least one [[channel]]");
        }
        for (i, c) in self.channels.iter().enumerate() {
            c.check()?;
            if self.channels[..i].iter().any(|o| o.id == c.id) {
                bail!("channel {} is defined twice", c.id);
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    pub name: String,
    /// Address the HTTP API binds to; loopback unless the operator opens it.
    pub ip: std::net::IpAddr,
    /// Port of the HTTP API; 0 picks a free one (printed at start-up).
    pub port: u16,
    #[serde(rename = "key")]
    pub keys: Vec<NodeKeyConfig>,
    /// Limits of the HTTP API; each unset key takes its default (`--http-…` flags override).
    #[serde(default, skip_serializing_if = "HttpConfig::is_empty")]
    pub http: HttpConfig,
    /// The transaction pool's limits, for every channel; each unset key takes its default.
    #[serde(default, skip_serializing_if = "TxPoolConfig::is_default")]
    pub txpool: TxPoolConfig,
    /// How much history the chain stores keep; unset: everything (archive).
    #[serde(default, skip_serializing_if = "StorageConfig::is_default")]
    pub storage: StorageConfig,
    /// Users of the admin API (`[[user]]`: name, Argon2id password hash, roles), §5.2.5.
    #[serde(default, rename = "user", skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<crate::users::UserConfig>,
    /// Whether the admin token (DIR/admin.token) opens the admin API; with users
    /// configured, `false` leaves only them.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub admin_token: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// `[storage]` of node.toml: what the node keeps of each channel's past. Operational, so
/// nodes of one network may differ; a node serving proofs against old blocks keeps all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageConfig {
    /// Keep the state of the last N blocks only (N ≥ 2); unset: every block's (archive).
    /// Blocks, transactions and receipts are always kept; queries of older state answer
    /// 410 `pruned`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_history_blocks: Option<u64>,
}

impl StorageConfig {
    pub fn is_default(&self) -> bool {
        self == &StorageConfig::default()
    }

    pub fn check(&self) -> Result<()> {
        if let Some(n) = self.state_history_blocks
            && n < 2
        {
            bail!("state-history-blocks = {n}: keep at least 2 blocks' state (the head and its parent, which reads in flight may still use)");
        }
        Ok(())
    }
}

/// `[txpool]` of node.toml: operational, so nodes of one network may differ. Executable
/// (pending) and future-nonce (queued) transactions have separate limits, the queued ones
/// much smaller, since nothing says a queued transaction will ever execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TxPoolConfig {
    pub max_pending: usize,
    pub max_pending_bytes: usize,
    pub max_queued: usize,
    pub max_queued_bytes: usize,
    pub max_pending_per_sender: usize,
    pub max_queued_per_sender: usize,
    /// Seconds a transaction may wait for an earlier nonce before it is dropped.
    pub queued_lifetime_secs: u64,
    /// Evicted and expired transactions remembered, so `GET /v1/tx/{hash}` can say so.
    pub evictions_remembered: usize,
}

impl Default for TxPoolConfig {
    fn default() -> Self {
        let d = joule_ledger::pool::PoolConfig::default();
        TxPoolConfig {
            max_pending: d.max_pending,
            max_pending_bytes: d.max_pending_bytes,
            max_queued: d.max_queued,
            max_queued_bytes: d.max_queued_bytes,
            max_pending_per_sender: d.max_pending_per_sender,
            max_queued_per_sender: d.max_queued_per_sender,
            queued_lifetime_secs: d.queued_lifetime_ms / 1000,
            evictions_remembered: d.evictions_remembered,
        }
    }
}

impl TxPoolConfig {
    pub fn is_default(&self) -> bool {
        self == &TxPoolConfig::default()
    }

    /// The pool's configuration: these limits over the defaults (the chain sets its gas limit).
    pub fn pool_config(&self) -> joule_ledger::pool::PoolConfig {
        joule_ledger::pool::PoolConfig {
            max_pending: self.max_pending,
            max_pending_bytes: self.max_pending_bytes,
            max_queued: self.max_queued,
            max_queued_bytes: self.max_queued_bytes,
            max_pending_per_sender: self.max_pending_per_sender,
            max_queued_per_sender: self.max_queued_per_sender,
            queued_lifetime_ms: self.queued_lifetime_secs.saturating_mul(1000),
            evictions_remembered: self.evictions_remembered,
            ..joule_ledger::pool::PoolConfig::default()
        }
    }

    fn check(&self) -> Result<()> {
        if self.max_pending == 0 || self.max_pending_per_sender == 0 || self.queued_lifetime_secs == 0 {
            bail!("max-pending, max-pending-per-sender and queued-lifetime-secs must be at least 1");
        }
        if self.max_pending_per_sender > self.max_pending || self.max_queued_per_sender > self.max_queued {
            bail!("a per-sender limit is over the limit of its part of the pool");
        }
        let max_tx = joule_ledger::pool::PoolConfig::default().max_tx_bytes;
        if self.max_pending_bytes < max_tx {
            bail!("max-pending-bytes must hold the largest transaction ({max_tx} bytes)");
        }
        Ok(())
    }
}

/// `[http]` of node.toml: how much one client, and all of them, may hold of the API. The
/// defaults and their meaning are in [`crate::server::HttpLimits`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_address: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_expensive_requests: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_auth_max_failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_ms: Option<u64>,
}

impl HttpConfig {
    pub fn is_empty(&self) -> bool {
        self == &HttpConfig::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeKeyConfig {
    /// Signature algorithm, e.g. `sm2`.
    pub algorithm: String,
    /// SubjectPublicKeyInfo DER, hex.
    pub public_key: String,
    /// The keystore slot (`node/<purpose>`) that holds the private key, sealed.
    pub keystore_slot: String,
}

impl NodeKeyConfig {
    /// The slot's purpose within the node's own keystore module.
    pub fn purpose(&self) -> Result<&str> {
        match self.keystore_slot.split_once('/') {
            Some((NODE_MODULE, purpose)) if !purpose.is_empty() && !purpose.contains('/') => Ok(purpose),
            _ => bail!("key {}: keystore-slot {:?} must be \"{NODE_MODULE}/<purpose>\"", self.algorithm, self.keystore_slot),
        }
    }
}

impl NodeConfig {
    pub fn parse(text: &str) -> Result<NodeConfig> {
        let c: NodeConfig = toml::from_str(text).context("node configuration")?;
        if c.name.trim().is_empty() {
            bail!("node name must not be empty");
        }
        for k in &c.keys {
            hex::decode(&k.public_key).with_context(|| format!("key {}: public-key is not hex", k.algorithm))?;
            k.purpose()?;
        }
        crate::server::HttpLimits::resolve(&crate::server::HttpArgs::default(), &c.http).context("[http]")?;
        c.txpool.check().context("[txpool]")?;
        c.storage.check().context("[storage]")?;
        for (i, u) in c.users.iter().enumerate() {
            u.check().map_err(|e| anyhow::anyhow!("[[user]] {i}: {e}"))?;
            if c.users[..i].iter().any(|o| o.name == u.name) {
                bail!("[[user]] {i}: user {} is listed twice", u.name);
            }
        }
        if !c.admin_token && !c.users.iter().any(crate::users::UserConfig::is_admin) {
            bail!("admin-token = false needs a [[user]] with the role admin, or nobody could administer the node");
        }
        Ok(c)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The node's key for a signature algorithm.
    pub fn key(&self, algorithm: &str) -> Option<&NodeKeyConfig> {
        self.keys.iter().find(|k| k.algorithm == algorithm)
    }
}

/// Both files of a node directory.
#[derive(Debug, Clone)]
pub struct Config {
    pub network: NetworkConfig,
    pub node: NodeConfig,
}

impl Config {
    /// `None` when the directory was never initialised.
    pub fn load(dir: &Path) -> Result<Option<Config>> {
        let net_path = dir.join(NETWORK_FILE);
        if !net_path.exists() {
            return Ok(None);
        }
        let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()));
        let network = NetworkConfig::parse(&read(&net_path)?).with_context(|| net_path.display().to_string())?;
        let node_path = dir.join(NODE_FILE);
        let node = NodeConfig::parse(&read(&node_path)?).with_context(|| node_path.display().to_string())?;
        Ok(Some(Config { network, node }))
    }
}

/// Make the configuration files and the keystore owner-only (0600), as this version writes
/// them: files an older version wrote with the default mode are tightened at start.
pub fn make_private(dir: &Path) {
    for name in [NETWORK_FILE, NODE_FILE, KEYSTORE_FILE] {
        let path = dir.join(name);
        if path.exists()
            && let Err(e) = joule_support::fs::set_mode(&path, 0o600)
        {
            tracing::warn!("cannot make {} owner-only: {e}", path.display());
        }
    }
}

/// Write a file via a temporary and a rename, so a crash leaves the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Mode) -> Result<()> {
    joule_support::fs::write_atomic(path, bytes, mode).with_context(|| format!("write {}", path.display()))
}

#[derive(clap::Args, Clone, Debug)]
pub struct InitArgs {
    /// The node directory to create.
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, default_value = "joule-local")]
    pub network_id: String,
    #[arg(long, default_value = "local")]
    pub region: String,
    #[arg(long, default_value = "node0")]
    pub name: String,
    /// The first channel's id.
    #[arg(long, default_value = "grid")]
    pub channel: String,
    /// `gm` (SM3 + SM2) or `intl` (SHA-256 + ECDSA P-256).
    #[arg(long, default_value = "gm")]
    pub crypto_suite: String,
    /// The consensus engine: `poa`, `pow` or `bft` (a plugin providing `consensus:<id>`).
    #[arg(long, default_value = "poa")]
    pub consensus: String,
    /// The engine's configuration (TOML), e.g. `block-time-ms = 1000` for `pow`; see the
    /// engine plugin's documentation. A genesis field.
    #[arg(long, default_value = "")]
    pub consensus_config: String,
    /// Largest gas limit a transaction may declare.
    #[arg(long, default_value_t = 10_000_000)]
    pub gas_limit: u64,
    /// Most gas one block's transactions may use.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub block_gas_limit: u64,
    /// Who may deploy contracts besides nobody: `anyone`, or an account id or public key
    /// (hex); repeat for several. Default: the channel's validators.
    #[arg(long)]
    pub contract_deployer: Vec<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: std::net::IpAddr,
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Block interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub block_interval_ms: u64,
    #[arg(long, default_value_t = 2000)]
    pub max_block_transactions: u32,
    #[arg(long, default_value_t = 8 << 20)]
    pub max_block_bytes: u32,
    /// Produce blocks with no transactions at every interval.
    #[arg(long)]
    pub empty_blocks: bool,
    /// Genesis time (Unix ms); default now. Nodes of one network must agree on it.
    #[arg(long)]
    pub genesis_time_ms: Option<u64>,
    /// Replace an existing configuration (the chain data is kept and will be checked
    /// against the new genesis at start-up).
    #[arg(long)]
    pub force: bool,
    /// Also write the node key as a PKCS#8 PEM file (mode 0600), for OpenSSL and other
    /// tools; the node itself uses the copy sealed in its keystore.
    #[arg(long)]
    pub export_key: Option<PathBuf>,
    /// A file whose first line is the keystore passphrase (else JOULE_KEYSTORE_PASSPHRASE;
    /// with neither, a random one is written to DIR/keystore.pass for development).
    #[arg(long)]
    pub keystore_passphrase_file: Option<PathBuf>,
    /// Join an existing network (§5.2.3) instead of starting one: its network.toml (from
    /// any of its nodes) gives the genesis fields, and this node is added to its first
    /// channel's nodes as `joined`. The validators then vote it in with
    /// `joule governance propose --add-node … --add-validator …`.
    #[arg(long, value_name = "NETWORK_TOML", conflicts_with_all = ["crypto_suite", "channel", "consensus", "genesis_time_ms"])]
    pub join: Option<PathBuf>,
    /// With --join: where this node listens for its peers (they dial it there).
    #[arg(long, requires = "join")]
    pub p2p_address: Option<std::net::SocketAddr>,
}

impl InitArgs {
    /// The command's defaults for a node directory (what `joule init --dir DIR` does).
    pub fn defaults(dir: &Path) -> InitArgs {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: InitArgs,
        }
        // The only required argument is given, and every default is valid.
        <Wrap as clap::Parser>::try_parse_from([std::ffi::OsStr::new("init"), std::ffi::OsStr::new("--dir"), dir.as_os_str()])
            .map(|w| w.args)
            .unwrap_or_else(|e| unreachable!("InitArgs defaults: {e}"))
    }
}

/// `joule init`: generate the node's key through the crypto plugin and write both files.
/// This node is the channel's single validator.
pub fn init(crypto: &CryptoService, a: &InitArgs) -> Result<Config> {
    let net_path = a.dir.join(NETWORK_FILE);
    if net_path.exists() && !a.force {
        bail!("{} exists; pass --force to overwrite it", net_path.display());
    }
    let joining = match &a.join {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("read {} (the network.toml of a node of the network to join)", path.display()))?;
            Some(NetworkConfig::parse(&text).with_context(|| format!("{}", path.display()))?)
        }
        None => None,
    };
    let suite_name = joining.as_ref().and_then(|n| n.channels.first()).map_or(a.crypto_suite.as_str(), |c| c.crypto_suite.as_str());
    let channel = ChannelId::new(&a.channel).map_err(|e| anyhow::anyhow!("{e}"))?;
    let suite = CryptoSuite::named(suite_name).with_context(|| format!("unknown crypto suite {suite_name:?} (known: {})", CryptoSuite::NAMED.join(", ")))?;
    joule_support::fs::create_private_dir(&a.dir).with_context(|| format!("create {}", a.dir.display()))?;
    let kp = crypto.generate_key(&suite.signature).with_context(|| format!("generate a {} node key", suite.signature))?;
    if let Some(path) = &a.export_key {
        write_atomic(path, pem::encode(pem::PRIVATE_KEY, &kp.private_key).as_bytes(), Mode::Private)?;
    }
    let keystore = open_or_create_keystore(&a.dir, a.keystore_passphrase_file.as_deref(), crypto)?;
    let purpose = seal_purpose(&suite.signature);
    keystore.set_policy(NODE_MODULE, &purpose, &suite.signature, None)?;
    keystore.import(NODE_MODULE, &purpose, kp.private_key)?;
    let public_key = hex::encode(&kp.public_key);
    let genesis_time_ms = a.genesis_time_ms.unwrap_or_else(joule_support::now_ms);
    let network = NetworkConfig {
        network_id: a.network_id.clone(),
        region: a.region.clone(),
        node_count: 1,
        channels: vec![ChannelConfig {
            id: channel,
            crypto_suite: suite.id.clone(),
            consensus: a.consensus.clone(),
            consensus_config: a.consensus_config.clone(),
            gas_limit: a.gas_limit,
            block_gas_limit: a.block_gas_limit,
            gas_schedule: joule_contract::gas::V1.version,
            contract_deployers: if a.contract_deployer.iter().any(|d| d == "anyone") {
                DeployersConfig::Named("anyone".into())
            } else if a.contract_deployer.is_empty() {
                DeployersConfig::default()
            } else {
                DeployersConfig::List(a.contract_deployer.clone())
            },
            genesis_time_ms,
            validators: vec![ValidatorConfig { public_key: public_key.clone(), weight: 1 }],
            block_policy: BlockPolicyConfig {
                interval_ms: a.block_interval_ms,
                max_transactions: a.max_block_transactions,
                max_bytes: a.max_block_bytes,
                produce_empty_blocks: a.empty_blocks,
            },
            nodes: vec![],
            identity: None,
        }],
    };
    let network = match joining {
        None => network,
        Some(mut joined) => {
            let address = a.p2p_address.context("--join needs --p2p-address: where this node listens for its peers")?;
            let ch = joined.channels.first_mut().context("the network to join has no channel")?;
            let wire = joule_net::WireSuite::from_channel_suite(&ch.crypto_suite)
                .with_context(|| format!("channel {}: no peer transport for the crypto suite {}", ch.id, ch.crypto_suite))?;
            let key = crate::p2p::network_key(&a.dir, crypto, wire)?;
            if ch.nodes.iter().any(|n| n.name == a.name && !n.joined) {
                bail!("node name {:?} is taken by a genesis node of channel {}: pick another with --name", a.name, ch.id);
            }
            ch.nodes.retain(|n| n.name != a.name);
            ch.nodes.push(ChannelNodeConfig { name: a.name.clone(), network_key: key.public().to_hex(), address, joined: true });
            joined.node_count = joined.node_count.saturating_add(1);
            joined
        }
    };
    network.check()?;
    let node = NodeConfig {
        name: a.name.clone(),
        ip: a.ip,
        port: a.port,
        keys: vec![NodeKeyConfig { algorithm: suite.signature.clone(), public_key, keystore_slot: format!("{NODE_MODULE}/{purpose}") }],
        http: HttpConfig::default(),
        txpool: TxPoolConfig::default(),
        storage: StorageConfig::default(),
        users: vec![],
        admin_token: true,
    };
    write_atomic(&net_path, network.to_toml().as_bytes(), Mode::Private)?;
    write_atomic(&a.dir.join(NODE_FILE), node.to_toml().as_bytes(), Mode::Private)?;
    Ok(Config { network, node })
}

/// The node directory's keystore, created on first use. Its passphrase comes from
/// JOULE_KEYSTORE_PASSPHRASE or `passphrase_file`; with neither, a fresh random one is
/// written to `DIR/keystore.pass` (mode 0600), a development setup.
/// The keystore of the node in `dir` (its passphrase from JOULE_KEYSTORE_PASSPHRASE or
/// DIR/keystore.pass), made if it does not exist yet.
pub fn node_keystore(dir: &Path, crypto: &CryptoService) -> Result<Keystore> {
    open_or_create_keystore(dir, None, crypto)
}

fn open_or_create_keystore(dir: &Path, passphrase_file: Option<&Path>, crypto: &CryptoService) -> Result<Keystore> {
    let path = dir.join(KEYSTORE_FILE);
    let passphrase = match crate::keystore::passphrase(passphrase_file, Some(dir))? {
        Some(p) => p,
        None if path.exists() => bail!("{} exists: give its passphrase in JOULE_KEYSTORE_PASSPHRASE or --keystore-passphrase-file", path.display()),
        None => {
            let mut raw = [0u8; 24];
            getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
            let p = zeroize::Zeroizing::new(hex::encode(raw));
            write_atomic(&dir.join(PASSPHRASE_FILE), p.as_bytes(), Mode::Private)?;
            p
        }
    };
    let keystore = if path.exists() {
        Keystore::open(&path, passphrase.as_bytes(), crypto.clone())
    } else {
        Keystore::create(&path, passphrase.as_bytes(), "sm4-gcm", crypto.clone(), DEFAULT_KDF_MEMORY_KIB)
    };
    keystore.with_context(|| format!("keystore {}", path.display()))
}
