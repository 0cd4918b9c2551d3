//! `joule org …`: a new organisation joins a consortium with certificates (guide §5.1).
//! Its node makes the organisation's CA key and a request for its certificate (`init`,
//! offline, in the new node's keystore); the node holding the consortium's root certifies
//! it (`certify`, an admin request); the new organisation issues its node's certificates
//! and writes its bundle (`bundle`, offline); the validators vote the bundle in
//! (`joule governance propose --add-organisation BUNDLE.toml`).

use super::chain_cmd::NodeSel;
use anyhow::{Context, Result, bail};
use joule_node::config::Config;
use joule_support::fs::Mode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Subcommand)]
pub enum OrgCmd {
    /// Make the new organisation's CA key in this (not yet running) node's keystore, and a
    /// request for its certificate.
    Init {
        /// The new organisation's node directory (after `joule init --join`).
        #[arg(long)]
        dir: PathBuf,
        /// The organisation's name: 1-64 characters of [a-z0-9_-].
        #[arg(long)]
        name: String,
        /// Where to write the request (PEM).
        #[arg(long)]
        out: PathBuf,
    },
    /// Certify a new organisation's CA with the consortium's root key (on the node holding it).
    Certify {
        #[arg(long)]
        name: String,
        /// The organisation's request (`joule org init` wrote it).
        #[arg(long)]
        csr: PathBuf,
        /// Where to write its CA certificate (PEM).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 3650)]
        days: u32,
        #[command(flatten)]
        sel: NodeSel,
        /// The node's admin token. Default: JOULE_ADMIN_TOKEN, else DIR/admin.token with --dir.
        #[arg(long, env = "JOULE_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
    /// Issue the new organisation's certificates for its node (signing key: admin; network
    /// key: peer) and write the bundle the validators vote on.
    Bundle {
        /// The new organisation's node directory.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// Its CA certificate (`joule org certify` wrote it).
        #[arg(long)]
        ca_certificate: PathBuf,
        /// Where to write the bundle (TOML).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

pub fn run(ctx: &super::GlobalOpts, cmd: OrgCmd) -> Result<()> {
    match cmd {
        OrgCmd::Init { dir, name, out } => {
            let (crypto, config) = node(ctx, &dir)?;
            let algorithm = config.network.channels.first().context("network.toml has no channel")?.suite()?.signature;
            let keystore = Arc::new(joule_node::config::node_keystore(&dir, &crypto)?);
            let csr = joule_node::ca::organisation_request(keystore, &algorithm, &name).map_err(|e| anyhow::anyhow!("{e}"))?;
            write_new(&out, csr.as_bytes())?;
            println!("made organisation {name}'s CA key (keystore slot pki/ca-{name}) and wrote its request to {}", out.display());
            println!("next: the node holding the consortium's root runs `joule org certify --name {name} --csr {}`", out.display());
            Ok(())
        }
        OrgCmd::Certify { name, csr, out, days, sel, admin_token } => {
            let client = sel.admin_client(admin_token.as_deref(), "certifying an organisation")?;
            let csr = std::fs::read_to_string(&csr).with_context(|| format!("read {}", csr.display()))?;
            let q = sel.channel.as_ref().map(|c| format!("?channel={c}")).unwrap_or_default();
            let v = client.post_json(&format!("/v1/pki/organisations{q}"), &json!({"name": name, "csr": csr, "days": days}))?;
            let pem = v["certificate"].as_str().context("no certificate in the answer")?;
            joule_support::fs::write_atomic(&out, pem.as_bytes(), Mode::Default).with_context(|| format!("write {}", out.display()))?;
            println!("certified organisation {name}'s CA: {}", out.display());
            Ok(())
        }
        OrgCmd::Bundle { dir, name, ca_certificate, out, days } => {
            let (crypto, config) = node(ctx, &dir)?;
            let channel = config.network.channels.first().context("network.toml has no channel")?;
            let suite = channel.suite()?;
            let node_key = config.node.key(&suite.signature).with_context(|| format!("{} has no {} node key", dir.display(), suite.signature))?;
            let node_key = hex::decode(&node_key.public_key).context("the node key in node.toml is not hex")?;
            let wire = joule_net::WireSuite::from_channel_suite(&suite.id).with_context(|| format!("no peer transport for suite {}", suite.id))?;
            let network_key = joule_node::p2p::network_key(&dir, &crypto, wire)?;
            let alg =
                if suite.signature == joule_pki::SigAlg::Sm2Sm3.plugin_algorithm() { joule_pki::SigAlg::Sm2Sm3 } else { joule_pki::SigAlg::EcdsaP256Sha256 };
            let network_spki = joule_pki::ec_public_key(alg, network_key.public().as_bytes())?;
            let pem = std::fs::read_to_string(&ca_certificate).with_context(|| format!("read {}", ca_certificate.display()))?;
            let keystore = Arc::new(joule_node::config::node_keystore(&dir, &crypto)?);
            let bundle = joule_node::ca::organisation_bundle(keystore, &name, &pem, &node_key, &network_spki, &config.node.name, days)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let text = toml::to_string(&bundle).context("write the bundle")?;
            write_new(&out, text.as_bytes())?;
            println!(
                "wrote organisation {name}'s bundle to {}: its CA certificate, and certificates for node {}'s key (admin) and network key (peer)",
                out.display(),
                config.node.name
            );
            println!(
                "next: a validator proposes `joule governance propose --add-organisation {} --add-node {}={}`",
                out.display(),
                config.node.name,
                network_key.public().to_hex()
            );
            Ok(())
        }
    }
}

/// The plugins and the configuration of the node in `dir`.
fn node(ctx: &super::GlobalOpts, dir: &Path) -> Result<(joule_crypto::CryptoService, Config)> {
    let crypto = ctx.crypto().context("the crypto plugins (cargo xtask plugins)")?;
    let config = Config::load(dir)?.with_context(|| format!("{} has no network.toml: run `joule init --join` there first", dir.display()))?;
    Ok((crypto, config))
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.exists() {
        bail!("{} exists: give another --out", path.display());
    }
    joule_support::fs::write_atomic(path, bytes, Mode::Default).with_context(|| format!("write {}", path.display()))
}
