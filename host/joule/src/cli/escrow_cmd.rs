//! `joule escrow …`: key recovery by threshold escrow (guide §6.2.2, `joule_pki::escrow`).
//! Every step is a data record on chain, signed by whoever takes it:
//!
//! - `deposit`: the key's holder splits its key among recovery officers (k of n), each share
//!   sealed to an officer (`escrow` under the holder's account);
//! - `request`: a new key of the holder (its organisation certified it) asks for recovery
//!   (`recovery-request/<account>` under the new key's account);
//! - `approve`: an officer opens its share and seals it to the requester
//!   (`recovery-share/<account>/<requester>` under the officer's account);
//! - `recover`: the requester gathers the approvals, checks every share, combines k of
//!   them and writes the key, once it checked it is the escrowed one.

use super::chain_cmd::NodeSel;
use anyhow::{Context, Result, bail};
use joule_client::ApiClient;
use joule_crypto::{CryptoService, pem};
use joule_pki::escrow::{Approval, Escrow, Sealer};
use joule_primitives::{ChannelId, CryptoSuite};
use joule_support::fs::Mode;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum EscrowCmd {
    /// Escrow your key among recovery officers, `--threshold` of whom can recover it.
    Deposit {
        /// The key to escrow (PKCS#8 PEM); it also signs the record.
        #[arg(long)]
        key: PathBuf,
        /// An officer: its account id (its certificate on chain gives its key) or its
        /// public key (SPKI DER, hex). Repeat for each.
        #[arg(long = "officer", required = true)]
        officers: Vec<String>,
        #[arg(long)]
        threshold: usize,
        #[command(flatten)]
        sel: NodeSel,
    },
    /// Ask for the recovery of the key of account `--escrow`, with your new key.
    Request {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        escrow: String,
        #[command(flatten)]
        sel: NodeSel,
    },
    /// As an officer: hand your share of `--escrow` to the requester (sealed to its key).
    Approve {
        /// The officer's key.
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        escrow: String,
        /// The requester's account id.
        #[arg(long)]
        requester: String,
        #[command(flatten)]
        sel: NodeSel,
    },
    /// As the requester: recover the key from the officers' approvals.
    Recover {
        /// The requester's key.
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        escrow: String,
        /// Where to write the recovered key (PKCS#8 PEM, mode 0600).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        sel: NodeSel,
    },
}

/// The channel's suite through the plugins.
struct PluginSealer {
    crypto: CryptoService,
    suite: CryptoSuite,
}

impl PluginSealer {
    fn pke(&self) -> &'static str {
        if self.suite.signature == "sm2" { "sm2" } else { "ecies-p256" }
    }
}

impl Sealer for PluginSealer {
    fn seal(&self, public_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
        self.crypto.pke_encrypt(self.pke(), public_key, plaintext).map_err(|e| e.to_string())
    }
    fn open(&self, private_key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        self.crypto.pke_decrypt(self.pke(), private_key, ciphertext).map_err(|e| e.to_string())
    }
    fn digest(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        self.crypto.digest(&self.suite.hash, data).map_err(|e| e.to_string())
    }
    fn public_key(&self, private_key: &[u8]) -> Result<Vec<u8>, String> {
        self.crypto.public_key(&self.suite.signature, private_key).map_err(|e| e.to_string())
    }
}

/// What a command needs of the node and the key it runs with.
struct Ctx {
    client: ApiClient,
    channel: ChannelId,
    sealer: PluginSealer,
    key: zeroize::Zeroizing<Vec<u8>>,
    public_key: Vec<u8>,
    query: String,
}

impl Ctx {
    fn new(g: &super::GlobalOpts, sel: &NodeSel, key: &Path) -> Result<Ctx> {
        let client = sel.client()?;
        let query = sel.channel.as_ref().map(|c| format!("?channel={c}")).unwrap_or_default();
        let status = client.get(&format!("/v1/status{query}"))?;
        let suite_id = status["crypto_suite"].as_str().context("the node did not say its crypto suite")?;
        let suite = CryptoSuite::named(suite_id).with_context(|| format!("unknown crypto suite {suite_id}"))?;
        let channel = ChannelId::new(status["channel"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let crypto = g.crypto()?;
        let sk = zeroize::Zeroizing::new(pem::decode(pem::PRIVATE_KEY, &std::fs::read(key).with_context(|| format!("read {}", key.display()))?)?);
        let public_key = crypto.public_key(&suite.signature, &sk).with_context(|| format!("{} is not a {} private key", key.display(), suite.signature))?;
        Ok(Ctx { client, channel, sealer: PluginSealer { crypto, suite }, key: sk, public_key, query })
    }

    fn account_of(&self, public_key: &[u8]) -> Result<String> {
        Ok(hex::encode(self.sealer.digest(public_key).map_err(|e| anyhow::anyhow!("{e}"))?))
    }

    /// Record `value` under `data_key` of this key's account and wait for its block.
    fn record(&self, data_key: &str, value: &[u8]) -> Result<u64> {
        let sender = super::chain_cmd::DataSender {
            crypto: &self.sealer.crypto,
            suite: &self.sealer.suite,
            channel: self.channel.clone(),
            private_key: &self.key,
            public_key: &self.public_key,
        };
        let v = sender.send(&self.client, &self.query, data_key.into(), value.to_vec(), None, None)?;
        let hash = v["hash"].as_str().context("the node returned no hash")?;
        let r = self.client.wait_for_tx(hash, Duration::from_secs(60)).with_context(|| format!("the record {data_key} ({hash})"))?;
        Ok(r["block_height"].as_u64().unwrap_or(0))
    }

    /// A data record of `account`, if there is one.
    fn read(&self, account: &str, data_key: &str) -> Result<Option<Vec<u8>>> {
        let v = self.client.get(&format!("/v1/state/{account}/{data_key}{}", self.query))?;
        match v["value"].as_str() {
            Some(h) => Ok(Some(hex::decode(h).context("the record is not hex")?)),
            None => Ok(None),
        }
    }

    fn escrow(&self, account: &str) -> Result<Escrow> {
        let bytes = self.read(account, "escrow")?.with_context(|| format!("account {account} has escrowed no key (no `escrow` record)"))?;
        serde_json::from_slice(&bytes).context("the escrow record does not parse")
    }
}

fn account_arg(what: &str, s: &str) -> Result<String> {
    let s = s.trim().trim_start_matches("0x").to_ascii_lowercase();
    if s.len() != 64 || hex::decode(&s).is_err() {
        bail!("{what} {s:?} is not an account id (64 hex digits)");
    }
    Ok(s)
}

pub fn run(g: &super::GlobalOpts, cmd: EscrowCmd) -> Result<()> {
    match cmd {
        EscrowCmd::Deposit { key, officers, threshold, sel } => {
            let c = Ctx::new(g, &sel, &key)?;
            let mut keys = vec![];
            for o in &officers {
                let o = o.trim().trim_start_matches("0x");
                let k = if o.len() == 64 {
                    let v = c.client.get(&format!("/v1/pki/certificates/{o}{}", c.query)).with_context(|| format!("officer {o}'s certificate"))?;
                    if v["revoked_at"].as_u64().is_some() {
                        bail!("officer {o}'s certificate is revoked");
                    }
                    let cert = joule_pki::certificate(v["certificate_pem"].as_str().unwrap_or_default().as_bytes())?;
                    joule_pki::facts(&cert)?.public_key
                } else {
                    hex::decode(o).with_context(|| format!("officer {o:?}: give an account id or a public key in hex"))?
                };
                keys.push(k);
            }
            let e = joule_pki::escrow::escrow(&c.sealer, &c.key, &keys, threshold)?;
            let height = c.record("escrow", &serde_json::to_vec(&e)?)?;
            println!(
                "escrowed the key of account {} among {} officers, {threshold} needed to recover it (block {height})",
                c.account_of(&c.public_key)?,
                keys.len()
            );
            Ok(())
        }
        EscrowCmd::Request { key, escrow, sel } => {
            let c = Ctx::new(g, &sel, &key)?;
            let escrow = account_arg("--escrow", &escrow)?;
            c.escrow(&escrow)?;
            let height =
                c.record(&format!("recovery-request/{escrow}"), &serde_json::to_vec(&serde_json::json!({"requester": hex::encode(&c.public_key)}))?)?;
            println!(
                "asked for the recovery of account {escrow}'s key (block {height}); the officers approve with --requester {}",
                c.account_of(&c.public_key)?
            );
            Ok(())
        }
        EscrowCmd::Approve { key, escrow, requester, sel } => {
            let c = Ctx::new(g, &sel, &key)?;
            let (escrow, requester) = (account_arg("--escrow", &escrow)?, account_arg("--requester", &requester)?);
            let e = c.escrow(&escrow)?;
            let request = c
                .read(&requester, &format!("recovery-request/{escrow}"))?
                .with_context(|| format!("account {requester} has not asked for the recovery of {escrow}"))?;
            let request: serde_json::Value = serde_json::from_slice(&request).context("the request does not parse")?;
            let requester_key = hex::decode(request["requester"].as_str().unwrap_or_default()).context("the request names no key")?;
            if c.account_of(&requester_key)? != requester {
                bail!("the request of {requester} names another key than its own");
            }
            let a = joule_pki::escrow::approve(&c.sealer, &e, &c.key, &requester_key)?;
            let height = c.record(&format!("recovery-share/{escrow}/{requester}"), &serde_json::to_vec(&a)?)?;
            println!("approved: share {} of account {escrow}'s key sealed to {requester} (block {height})", a.index);
            Ok(())
        }
        EscrowCmd::Recover { key, escrow, out, sel } => {
            if out.exists() {
                bail!("{} exists: give another --out", out.display());
            }
            let c = Ctx::new(g, &sel, &key)?;
            let escrow = account_arg("--escrow", &escrow)?;
            let e = c.escrow(&escrow)?;
            let me = c.account_of(&c.public_key)?;
            let mut approvals: Vec<Approval> = vec![];
            for s in &e.shares {
                let officer = c.account_of(&s.officer)?;
                if let Some(bytes) = c.read(&officer, &format!("recovery-share/{escrow}/{me}"))? {
                    approvals.push(serde_json::from_slice(&bytes).with_context(|| format!("officer {officer}'s approval does not parse"))?);
                }
            }
            let recovered = joule_pki::escrow::recover(&c.sealer, &e, &approvals, &c.key)?;
            let key = zeroize::Zeroizing::new(recovered.key);
            joule_support::fs::write_atomic(&out, pem::encode(pem::PRIVATE_KEY, &key).as_bytes(), Mode::Private)
                .with_context(|| format!("write {}", out.display()))?;
            if !recovered.tampered.is_empty() {
                eprintln!("warning: the shares of officers {:?} were altered and did not count", recovered.tampered);
            }
            println!(
                "recovered account {escrow}'s key from {} approvals ({} needed) into {}",
                approvals.len() - recovered.tampered.len(),
                e.threshold,
                out.display()
            );
            Ok(())
        }
    }
}
