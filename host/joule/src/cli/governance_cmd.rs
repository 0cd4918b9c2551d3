//! `joule governance …`: the channel's validators and nodes, and the votes that change
//! them (guide §4.2.2 a–b, §5.2.3–5.2.4), over the node's HTTP API. Proposing, voting and
//! withdrawing are admin requests: the node signs them with its own validator key.

use super::chain_cmd::NodeSel;
use anyhow::{Context, Result, bail};
use joule_client::ApiClient;
use serde_json::{Value, json};
use std::time::Duration;

/// The node to ask, and its admin token for actions.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminSel {
    #[command(flatten)]
    pub sel: NodeSel,
    /// The node's admin token. Default: JOULE_ADMIN_TOKEN, else DIR/admin.token with --dir.
    #[arg(long, env = "JOULE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Blocks the vote counts for, from the node's head.
    #[arg(long, default_value_t = 1000)]
    pub expires_in: u64,
    /// Return once the node admitted it, without waiting for the block that counts it.
    #[arg(long)]
    pub no_wait: bool,
}

// Parsed once per run: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand)]
pub enum GovernanceCmd {
    /// Members (validators, nodes) and open proposals with their votes.
    Show(NodeSel),
    /// Open a proposal and vote for it. Changes apply together, in the order given.
    Propose {
        /// A validator's public key (SPKI DER, hex), optionally `:WEIGHT` (default 1).
        #[arg(long, value_name = "KEY[:WEIGHT]")]
        add_validator: Vec<String>,
        #[arg(long, value_name = "KEY")]
        remove_validator: Vec<String>,
        /// A node that may join the network: `NAME=NETWORK_KEY` (`joule net key` prints it).
        #[arg(long, value_name = "NAME=NETWORK_KEY")]
        add_node: Vec<String>,
        #[arg(long, value_name = "NETWORK_KEY")]
        remove_node: Vec<String>,
        /// Switch the chain to the consensus engine in this component (a packaged
        /// consensus plugin's `.wasm`, e.g. target/plugins/consensus-bft.wasm); its bytes go
        /// on chain with the proposal.
        #[arg(long, value_name = "COMPONENT.wasm", requires = "from_height")]
        switch_engine: Option<std::path::PathBuf>,
        /// With --switch-engine: the engine's id, for people (default: the file's stem
        /// without `consensus-`).
        #[arg(long, requires = "switch_engine")]
        engine: Option<String>,
        /// With --switch-engine: the engine's configuration (TOML text).
        #[arg(long, default_value = "", requires = "switch_engine")]
        engine_config: String,
        /// With --switch-engine or --switch-suite: the first block under the new engine or
        /// suite.
        #[arg(long)]
        from_height: Option<u64>,
        /// Switch the chain's crypto suite (`gm`, `intl`) from --from-height on. Every
        /// validator must have bound a key of it first (`joule governance bind-key`).
        #[arg(long, value_name = "SUITE", requires = "from_height")]
        switch_suite: Option<String>,
        /// With --switch-suite: each node of the channel, `NAME=NETWORK_KEY` with its network
        /// key of the new suite (`bind-key` prints it).
        #[arg(long, value_name = "NAME=NETWORK_KEY", requires = "switch_suite")]
        suite_node: Vec<String>,
        /// Move an account to a new key (a lost key, or an account that did not bind a key
        /// before a suite switch): `ACCOUNT_ID=PUBLIC_KEY` (hex).
        #[arg(long, value_name = "ACCOUNT=KEY")]
        move_account: Vec<String>,
        /// On a channel with certificates: an organisation to make a member (or whose CA
        /// certificate to replace), from its bundle (`joule org bundle` writes it: name, CA
        /// certificate, its admins' and nodes' certificates).
        #[arg(long, value_name = "BUNDLE.toml")]
        add_organisation: Vec<std::path::PathBuf>,
        /// An organisation that stops being a member: its senders and nodes are refused.
        #[arg(long, value_name = "NAME")]
        remove_organisation: Vec<String>,
        #[command(flatten)]
        admin: AdminSel,
    },
    /// Make this node's keys of another crypto suite and bind its account to them, ahead
    /// of a switch to that suite (prints the network key a --switch-suite proposal lists).
    BindKey {
        /// The suite (`gm`, `intl`).
        #[arg(long)]
        suite: String,
        #[command(flatten)]
        admin: AdminSel,
    },
    /// Vote for an open proposal (again: renew the vote's expiry).
    Vote {
        proposal: String,
        #[command(flatten)]
        admin: AdminSel,
    },
    /// Take this node's vote back.
    Withdraw {
        proposal: String,
        #[command(flatten)]
        admin: AdminSel,
    },
}

pub fn run(ctx: &super::GlobalOpts, cmd: GovernanceCmd) -> Result<()> {
    match cmd {
        GovernanceCmd::Show(sel) => show(&sel),
        GovernanceCmd::Propose {
            add_validator,
            remove_validator,
            add_node,
            remove_node,
            switch_engine,
            engine,
            engine_config,
            from_height,
            switch_suite,
            suite_node,
            move_account,
            add_organisation,
            remove_organisation,
            admin,
        } => {
            let mut changes = vec![];
            if switch_engine.is_none() && switch_suite.is_none() && from_height.is_some() {
                bail!("--from-height goes with --switch-engine or --switch-suite");
            }
            if let (Some(suite), Some(from_height)) = (&switch_suite, from_height) {
                let nodes = suite_node
                    .iter()
                    .map(|n| {
                        let (name, key) = n.split_once('=').with_context(|| format!("--suite-node {n}: give NAME=NETWORK_KEY"))?;
                        Ok(json!({"name": name, "network_key": hex_arg("--suite-node", key)?}))
                    })
                    .collect::<Result<Vec<_>>>()?;
                changes.push(json!({"change": "switch_suite", "from_height": from_height, "suite": suite, "nodes": nodes}));
            }
            let mut components = vec![];
            if let (Some(path), Some(from_height)) = (&switch_engine, from_height) {
                let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
                let status =
                    admin.sel.client()?.get(&format!("/v1/status{}", admin.sel.channel.as_ref().map(|c| format!("?channel={c}")).unwrap_or_default()))?;
                let suite_id = status["crypto_suite"].as_str().context("the node's status names no crypto suite")?;
                let suite = joule_primitives::CryptoSuite::named(suite_id).with_context(|| format!("unknown crypto suite {suite_id:?}"))?;
                let hash = ctx.crypto()?.digest(&suite.hash, &bytes).with_context(|| format!("hash the component with {}", suite.hash))?;
                let id = engine.clone().unwrap_or_else(|| {
                    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    stem.strip_prefix("consensus-").unwrap_or(&stem).to_string()
                });
                changes.push(
                    json!({"change": "switch_engine", "from_height": from_height, "engine": id, "config": engine_config, "component": hex::encode(hash)}),
                );
                components.push(hex::encode(&bytes));
            }
            for v in &add_validator {
                let (key, weight) = match v.rsplit_once(':') {
                    Some((k, w)) => (k, w.parse::<u64>().with_context(|| format!("--add-validator {v}: the weight after ':' is not a number"))?),
                    None => (v.as_str(), 1),
                };
                changes.push(json!({"change": "add_validator", "public_key": hex_arg("--add-validator", key)?, "weight": weight}));
            }
            for k in &remove_validator {
                changes.push(json!({"change": "remove_validator", "public_key": hex_arg("--remove-validator", k)?}));
            }
            for n in &add_node {
                let (name, key) = n.split_once('=').with_context(|| format!("--add-node {n}: give NAME=NETWORK_KEY"))?;
                changes.push(json!({"change": "add_node", "name": name, "network_key": hex_arg("--add-node", key)?}));
            }
            for k in &remove_node {
                changes.push(json!({"change": "remove_node", "network_key": hex_arg("--remove-node", k)?}));
            }
            for m in &move_account {
                let (account, key) = m.split_once('=').with_context(|| format!("--move-account {m}: give ACCOUNT_ID=PUBLIC_KEY"))?;
                changes.push(json!({"change": "move_account", "account": hex_arg("--move-account", account)?, "public_key": hex_arg("--move-account", key)?}));
            }
            for path in &add_organisation {
                let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
                let o: joule_node::config::OrganisationConfig =
                    toml::from_str(&text).with_context(|| format!("{} is not an organisation bundle", path.display()))?;
                let der = |what: &str, pem: &str| -> Result<String> {
                    let cert = joule_pki::certificate(pem.as_bytes()).with_context(|| format!("{}: {what}", path.display()))?;
                    Ok(hex::encode(joule_pki::to_der(&cert).with_context(|| format!("{}: {what}", path.display()))?))
                };
                let certificates = o.certificates.iter().enumerate().map(|(i, c)| der(&format!("certificate {i}"), c)).collect::<Result<Vec<_>>>()?;
                changes.push(json!({"change": "add_organisation", "name": o.name, "ca_certificate": der("ca-certificate", &o.ca_certificate)?, "certificates": certificates}));
            }
            for name in &remove_organisation {
                changes.push(json!({"change": "remove_organisation", "name": name}));
            }
            if changes.is_empty() {
                bail!(
                    "nothing to propose: give --add-validator, --remove-validator, --add-node, --remove-node, --switch-engine, --switch-suite, --move-account, --add-organisation or --remove-organisation"
                );
            }
            act(&admin, |expires_at| json!({"action": "propose", "changes": changes, "expires_at": expires_at, "components": components}))
        }
        GovernanceCmd::BindKey { suite, admin } => bind_key(&admin, &suite),
        GovernanceCmd::Vote { proposal, admin } => {
            let id = hex_arg("PROPOSAL", &proposal)?;
            act(&admin, |expires_at| json!({"action": "vote", "proposal": id, "expires_at": expires_at}))
        }
        GovernanceCmd::Withdraw { proposal, admin } => {
            let id = hex_arg("PROPOSAL", &proposal)?;
            act(&admin, |_| json!({"action": "withdraw", "proposal": id}))
        }
    }
}

/// Hex as the API takes it (no `0x`), checked here so a typo is named before any request.
fn hex_arg(what: &str, s: &str) -> Result<String> {
    let s = s.trim().trim_start_matches("0x");
    hex::decode(s).with_context(|| format!("{what}: {s:?} is not hex"))?;
    Ok(s.to_ascii_lowercase())
}

fn show(sel: &NodeSel) -> Result<()> {
    let q = sel.channel.as_ref().map(|c| format!("?channel={c}")).unwrap_or_default();
    let v = sel.client()?.get(&format!("/v1/governance{q}"))?;
    if sel.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!("after block {}: voting weight {}, a proposal needs {}", v["height"], v["voting_weight"], v["weight_needed"]);
    println!("validators:");
    for val in v["members"]["validators"].as_array().into_iter().flatten() {
        println!("  {}  weight {}", val["public_key"].as_str().unwrap_or("?"), val["weight"]);
    }
    println!("nodes:");
    for n in v["members"]["nodes"].as_array().into_iter().flatten() {
        println!("  {:<12} {}", n["name"].as_str().unwrap_or("?"), n["network_key"].as_str().unwrap_or("?"));
    }
    for a in v["engines"].as_array().into_iter().flatten() {
        println!("engine from block {}: {} (component {})", a["from_height"], a["engine"].as_str().unwrap_or("?"), a["component"].as_str().unwrap_or("?"));
    }
    for a in v["suites"].as_array().into_iter().flatten() {
        let nodes: Vec<&str> = a["nodes"].as_array().into_iter().flatten().filter_map(|n| n["name"].as_str()).collect();
        println!("crypto suite from block {}: {} (nodes {})", a["from_height"], a["suite"].as_str().unwrap_or("?"), nodes.join(", "));
    }
    let proposals = v["proposals"].as_array().cloned().unwrap_or_default();
    if proposals.is_empty() {
        println!("no open proposals");
    }
    for p in proposals {
        println!("proposal {} (block {}): weight {} of {}", p["id"].as_str().unwrap_or("?"), p["proposed_at"], p["weight_for"], v["weight_needed"]);
        for c in p["changes"].as_array().into_iter().flatten() {
            let what = c["public_key"].as_str().or(c["network_key"].as_str()).or(c["suite"].as_str()).unwrap_or("?");
            let name = c["name"].as_str().map(|n| format!(" {n}")).unwrap_or_default();
            println!("  {}{name} {what}", c["change"].as_str().unwrap_or("?"));
        }
        for vote in p["votes"].as_array().into_iter().flatten() {
            println!("  vote by {} until block {}", vote["voter"].as_str().unwrap_or("?"), vote["expires_at"]);
        }
        for d in v["dry_runs"].as_array().into_iter().flatten().filter(|d| d["proposal"] == p["id"]) {
            let engine = d["engine"].as_str().unwrap_or("(did not load)");
            match d["passed"].as_bool() {
                Some(true) => println!(
                    "  dry run here at block {}: {engine} passed ({} of {} recent blocks accepted by its rules; finality depth {}; answers the head with {})",
                    d["height"], d["accepted"], d["blocks"], d["finality_depth"], d["actions"]
                ),
                _ => println!(
                    "  dry run here at block {}: {engine} FAILED: {} (this node will not vote for it)",
                    d["height"],
                    d["failure"].as_str().unwrap_or("?")
                ),
            }
        }
    }
    Ok(())
}

fn client(admin: &AdminSel) -> Result<ApiClient> {
    admin.sel.admin_client(admin.admin_token.as_deref(), "governance actions")
}

/// `bind-key`: the node makes its keys and sends the binding; unless `--no-wait`, wait
/// for the block that records it.
fn bind_key(admin: &AdminSel, suite: &str) -> Result<()> {
    let client = client(admin)?;
    let q = admin.sel.channel.as_ref().map(|c| format!("?channel={c}")).unwrap_or_default();
    let bound = client.post_json(&format!("/v1/governance/bind-key{q}"), &json!({"suite": suite}))?;
    let hash = bound["hash"].as_str().unwrap_or_default().to_string();
    if !admin.no_wait {
        let r = client.wait_for_tx(&hash, Duration::from_secs(60)).with_context(|| {
            format!("the node admitted binding {hash}; no block has recorded it yet (is the validator whose turn it is running? `joule status`)")
        })?;
        if r["receipt"]["status"] != "success" {
            bail!("the binding was not recorded: {}", r["receipt"]["status"]);
        }
    }
    if admin.sel.json {
        println!("{}", serde_json::to_string_pretty(&bound).unwrap_or_default());
    } else {
        println!("bound a {suite} key: {}", bound["public_key"].as_str().unwrap_or("?"));
        println!("network key for --suite-node: {}", bound["network_key"].as_str().unwrap_or("?"));
    }
    Ok(())
}

/// Send the action `body(expires_at)` and, unless `--no-wait`, wait for its receipt.
fn act(admin: &AdminSel, body: impl FnOnce(u64) -> Value) -> Result<()> {
    let client = client(admin)?;
    let q = admin.sel.channel.as_ref().map(|c| format!("?channel={c}")).unwrap_or_default();
    let height = client.get(&format!("/v1/status{q}"))?["height"].as_u64().context("the node's status has no height")?;
    let submitted = client.post_json(&format!("/v1/governance/actions{q}"), &body(height.saturating_add(admin.expires_in)))?;
    let (hash, proposal) = (submitted["hash"].as_str().unwrap_or_default().to_string(), submitted["proposal"].as_str().unwrap_or("?"));
    if admin.no_wait {
        if admin.sel.json {
            println!("{}", serde_json::to_string_pretty(&submitted).unwrap_or_default());
        } else {
            println!("proposal {proposal}: transaction {hash} admitted");
        }
        return Ok(());
    }
    let r = client.wait_for_tx(&hash, Duration::from_secs(60)).with_context(|| {
        format!(
            "proposal {proposal}: the node admitted transaction {hash}; no block has counted it yet (is the validator whose turn it is running? `joule status`)"
        )
    })?;
    if admin.sel.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(());
    }
    let receipt = &r["receipt"];
    match receipt["status"].as_str() {
        Some("success") => {
            let passed = receipt["events"].as_array().into_iter().flatten().any(|e| e["topic"] == "passed");
            println!("proposal {proposal}: counted in block {}{}", r["block_height"], if passed { "; it passed, and applies from the next block" } else { "" });
            Ok(())
        }
        _ => bail!("proposal {proposal}: not counted in block {}: {}", r["block_height"], receipt["reason"].as_str().unwrap_or("see the receipt")),
    }
}
