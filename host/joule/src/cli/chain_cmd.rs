//! Chain client commands over the node's HTTP API: `joule status`, `joule tx …`,
//! `joule block get`. Transactions are signed here, through the local crypto plugins;
//! the node only ever sees the signature.

use super::GlobalOpts;
use anyhow::{Context, Result, bail};
use joule_client::ApiClient;
use joule_crypto::pem;
use joule_primitives::CryptoSuite;
use joule_primitives::{ChannelId, Encode, Payload, UnsignedTransaction};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Which node to talk to.
#[derive(clap::Args, Clone, Debug)]
pub struct NodeSel {
    /// The node's API, e.g. http://127.0.0.1:8545.
    #[arg(long, env = "JOULE_NODE", conflicts_with = "dir")]
    pub node: Option<String>,
    /// Or the node's directory: its address is read from DIR/api.addr.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Channel (default: the node's first).
    #[arg(long)]
    pub channel: Option<String>,
    /// Print the API's JSON answer.
    #[arg(long)]
    pub json: bool,
}

impl NodeSel {
    pub fn client(&self) -> Result<ApiClient> {
        let base = match (&self.node, &self.dir) {
            (Some(n), _) => n.clone(),
            (None, Some(d)) => {
                let p = d.join(joule_client::wire::API_ADDR_FILE);
                let addr = std::fs::read_to_string(&p).with_context(|| format!("read {} (is the node running?)", p.display()))?;
                format!("http://{}", addr.trim())
            }
            (None, None) => bail!("say which node: --node URL (or JOULE_NODE) or --dir DIR"),
        };
        Ok(ApiClient::new(&base, None))
    }

    /// A client with the node's admin token: `token`, else DIR/admin.token with --dir.
    /// `what` names the requests that need it, for the error.
    pub fn admin_client(&self, token: Option<&str>, what: &str) -> Result<ApiClient> {
        let mut client = self.client()?;
        client.token = match (token, &self.dir) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(dir)) => {
                let p = dir.join(joule_client::wire::ADMIN_TOKEN_FILE);
                Some(std::fs::read_to_string(&p).with_context(|| format!("read {} (or give --admin-token)", p.display()))?.trim().to_string())
            }
            (None, None) => bail!("{what} need the node's admin token: --admin-token, JOULE_ADMIN_TOKEN, or --dir DIR for DIR/admin.token"),
        };
        Ok(client)
    }

    fn query(&self, first: char) -> String {
        self.channel.as_ref().map(|c| format!("{first}channel={c}")).unwrap_or_default()
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub fn status(sel: &NodeSel) -> Result<()> {
    let v = sel.client()?.get(&format!("/v1/status{}", sel.query('?')))?;
    if sel.json {
        print_json(&v);
    } else {
        println!("channel      {}", v["channel"].as_str().unwrap_or("?"));
        println!("height       {}", v["height"]);
        println!("head         {}", v["head_hash"].as_str().unwrap_or("?"));
        println!("consensus    {}", v["consensus"].as_str().unwrap_or("?"));
        println!("crypto suite {}", v["crypto_suite"].as_str().unwrap_or("?"));
        println!("pending      {}", v["pending_transactions"]);
        println!("peers        {}", v["peers"].as_array().map_or(0, Vec::len));
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum BlockCmd {
    /// A block by height, hash, or `latest`.
    Get {
        id: String,
        #[command(flatten)]
        sel: NodeSel,
    },
}

pub fn block(c: BlockCmd) -> Result<()> {
    let BlockCmd::Get { id, sel } = c;
    let v = sel.client()?.get(&format!("/v1/blocks/{id}{}", sel.query('?')))?;
    if sel.json {
        print_json(&v);
        return Ok(());
    }
    let h = &v["header"];
    println!("block {} {}", h["height"], v["hash"].as_str().unwrap_or("?"));
    println!("  parent      {}", h["parent_hash"].as_str().unwrap_or("?"));
    println!("  time        {} ms", h["timestamp_ms"]);
    println!("  state root  {}", h["state_root"].as_str().unwrap_or("?"));
    println!("  txs root    {}", h["tx_root"].as_str().unwrap_or("?"));
    let hashes = v["tx_hashes"].as_array().cloned().unwrap_or_default();
    println!("  transactions {}", hashes.len());
    for (i, (t, r)) in hashes.iter().zip(v["receipts"].as_array().cloned().unwrap_or_default()).enumerate() {
        println!("    {i:>4} {} {} gas {}", t.as_str().unwrap_or("?"), r["status"].as_str().unwrap_or("?"), r["gas_used"]);
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum TxCmd {
    /// Sign a data-record transaction with a local key and submit it.
    Send(SendArgs),
    /// A transaction by hash: pending, or committed with its receipt and block.
    Get {
        hash: String,
        #[command(flatten)]
        sel: NodeSel,
    },
}

#[derive(clap::Args)]
pub struct SendArgs {
    /// The sender's private key (PKCS#8 PEM or DER), for the channel's signature algorithm.
    #[arg(long)]
    key: PathBuf,
    /// Data record key, e.g. `meter/7/2026-11-25T10:00`.
    #[arg(long = "data-key")]
    data_key: String,
    /// Data record value (UTF-8).
    #[arg(long, conflicts_with = "value_hex")]
    value: Option<String>,
    /// Data record value (hex).
    #[arg(long)]
    value_hex: Option<String>,
    #[arg(long, default_value_t = 100_000)]
    gas_limit: u64,
    /// Default: the account's next nonce, from the node.
    #[arg(long)]
    nonce: Option<u64>,
    /// Wait until the transaction is committed and print its receipt.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    sel: NodeSel,
}

/// Signs data records with one key and submits them (`joule tx send`, `joule escrow`).
pub(super) struct DataSender<'a> {
    pub crypto: &'a joule_crypto::CryptoService,
    pub suite: &'a CryptoSuite,
    pub channel: ChannelId,
    pub private_key: &'a [u8],
    pub public_key: &'a [u8],
}

impl DataSender<'_> {
    /// Sign `key → value` and submit it; the node's answer (with the hash). `nonce`: the
    /// account's next from the node when `None`; `gas_limit`: the intrinsic cost when
    /// `None`.
    pub fn send(&self, client: &ApiClient, query: &str, key: String, value: Vec<u8>, nonce: Option<u64>, gas_limit: Option<u64>) -> Result<serde_json::Value> {
        let nonce = match nonce {
            Some(n) => n,
            None => client.get(&format!("/v1/accounts/{}{query}", hex::encode(self.public_key)))?["next_nonce"].as_u64().context("account nonce")?,
        };
        let mut body = UnsignedTransaction {
            channel: self.channel.clone(),
            sender: self.public_key.to_vec(),
            nonce,
            gas_limit: gas_limit.unwrap_or(0),
            sig_alg: self.suite.signature.clone(),
            payload: Payload::Data { key, value },
        };
        if gas_limit.is_none() {
            body.gas_limit = joule_ledger::execute::intrinsic_gas(&body.clone().sign_with(vec![]));
        }
        let sig = self.crypto.sign(&self.suite.signature, self.private_key, &body.signing_bytes(), None)?;
        Ok(client.post_bytes("/v1/tx", &body.sign_with(sig).encode())?)
    }
}

pub fn tx(g: &GlobalOpts, c: TxCmd) -> Result<()> {
    match c {
        TxCmd::Get { hash, sel } => {
            let v = sel.client()?.get(&format!("/v1/tx/{hash}{}", sel.query('?')))?;
            print_json(&v);
            Ok(())
        }
        TxCmd::Send(a) => send(g, a),
    }
}

fn send(g: &GlobalOpts, a: SendArgs) -> Result<()> {
    let client = a.sel.client()?;
    let status = client.get(&format!("/v1/status{}", a.sel.query('?')))?;
    let suite_id = status["crypto_suite"].as_str().context("the node did not say its crypto suite")?;
    let suite = CryptoSuite::named(suite_id).with_context(|| format!("unknown crypto suite {suite_id}"))?;
    let channel = ChannelId::new(status["channel"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let crypto = g.crypto()?;
    let sk = pem::decode(pem::PRIVATE_KEY, &std::fs::read(&a.key).with_context(|| format!("read {}", a.key.display()))?)?;
    let pk = crypto.public_key(&suite.signature, &sk).with_context(|| format!("{} is not a {} private key", a.key.display(), suite.signature))?;
    let value = match (a.value, a.value_hex) {
        (Some(v), None) => v.into_bytes(),
        (None, Some(h)) => hex::decode(h).context("--value-hex is not hex")?,
        _ => bail!("give --value or --value-hex"),
    };
    let sender = DataSender { crypto: &crypto, suite: &suite, channel, private_key: &sk, public_key: &pk };
    let v = sender.send(&client, &a.sel.query('?'), a.data_key, value, a.nonce, Some(a.gas_limit))?;
    let hash = v["hash"].as_str().context("the node returned no hash")?.to_string();
    if !a.wait {
        if a.sel.json {
            print_json(&v)
        } else {
            println!("{hash}")
        }
        return Ok(());
    }
    let r = client.wait_for_tx(&hash, Duration::from_secs(60))?;
    if a.sel.json {
        print_json(&r);
    } else {
        println!("{hash} committed in block {} ({}), gas {}", r["block_height"], r["receipt"]["status"].as_str().unwrap_or("?"), r["receipt"]["gas_used"]);
    }
    Ok(())
}
