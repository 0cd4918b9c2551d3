//! `joule net key`: a node's network key for a suite (§5.2.3: a node generates its keys,
//! then the consortium lists its public key in the channel's node set).

use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum NetCmd {
    /// Print the node's network public key (compressed point, hex) for a suite, creating the
    /// key (DIR/network-SUITE.key, owner-only) when the node has none yet.
    Key {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// `gm` (SM2 curve) or `intl` (P-256).
        #[arg(long, default_value = "gm")]
        crypto_suite: String,
    },
}

pub fn run(g: &super::GlobalOpts, c: NetCmd) -> Result<()> {
    match c {
        NetCmd::Key { dir, crypto_suite } => {
            let suite =
                joule_net::WireSuite::from_channel_suite(&crypto_suite).with_context(|| format!("unknown crypto suite {crypto_suite:?} (gm or intl)"))?;
            joule_support::fs::create_private_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
            let key = joule_node::p2p::network_key(&dir, &g.crypto()?, suite)?;
            println!("{}", key.public());
            Ok(())
        }
    }
}
