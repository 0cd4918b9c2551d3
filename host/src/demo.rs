//! `joule demo`: a node on loopback with sample traffic, end to end over HTTP.
//!
//! Starts a node with the first-party plugins, then, as a client would: checks health,
//! lists plugins, hashes meter readings, verifies signatures made with a fresh SM2 key,
//! hot-swaps the `crypto-gm` plugin out and back in while requests continue, and prints
//! the node's metrics summary.

use crate::cli::GlobalOpts;
use crate::node::NodeArgs;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Data directory (default: a fresh temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Seconds of sample traffic.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Keep serving after the traffic, until Ctrl-C.
    #[arg(long)]
    serve: bool,
}

struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{}", self.base, path);
        let auth = format!("Bearer {}", self.token);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            (_, Some(b)) => self.agent.post(&url).header("Authorization", &auth).send_json(b),
            (_, None) => self.agent.post(&url).header("Authorization", &auth).send_empty(),
        };
        let mut resp = resp.with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let v: Value = resp.body_mut().read_json().with_context(|| format!("{method} {path}: body"))?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {v}");
        }
        Ok(v)
    }
}

pub fn run(g: &GlobalOpts, a: DemoArgs) -> Result<()> {
    let tmp;
    let dir = match a.dir {
        Some(d) => d,
        None => {
            tmp = std::env::temp_dir().join(format!("joule-demo-{}", std::process::id()));
            tmp.clone()
        }
    };
    let args = NodeArgs {
        dir: dir.clone(),
        listen: Some("127.0.0.1:0".parse()?),
        admin_token: None,
        require_signed: false,
        trusted_key: vec![],
        call_timeout_ms: 10_000,
        keystore: None,
        rotation_check_secs: 60,
    };
    let node = crate::node::build(g, &args)?;
    let token = node.admin_token.clone();
    let crypto = node.crypto.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(args.listen.unwrap_or_else(|| ([127, 0, 0, 1], 0).into())))?;
    let addr = listener.local_addr()?;
    let server = rt.spawn(crate::node::serve(listener, node));
    println!("joule node listening on http://{addr} (data in {})", dir.display());

    let client = Client { base: format!("http://{addr}"), token, agent: ureq::Agent::config_builder().http_status_as_error(false).build().into() };
    let health = client.call("GET", "/v1/health", None)?;
    println!("health: {health}");
    let plugins = client.call("GET", "/v1/plugins", None)?;
    for p in plugins.as_array().into_iter().flatten() {
        println!("plugin {} {} active={} algorithms={}", p["name"], p["version"], p["active"], p["algorithms"]);
    }
    // A meter operator's key, generated through the SM2 plugin.
    let kp = crypto.generate_key("sm2").context("the demo needs the crypto-gm plugin (cargo xtask plugins)")?;
    let pk_hex = hex::encode(&kp.public_key);

    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let (mut hashes, mut verifies, mut swaps) = (0u64, 0u64, 0u64);
    let mut reading = 0u64;
    while Instant::now() < deadline {
        reading += 1;
        let record = format!("meter=7 kWh={} t={reading}", 1000 + reading * 3);
        let d = client.call("POST", "/v1/crypto/hash", Some(json!({"alg": "sm3", "data": record})))?;
        anyhow::ensure!(d["digest_hex"].as_str().is_some_and(|s| s.len() == 64), "bad digest {d}");
        hashes += 1;
        let sig = crypto.sign("sm2", &kp.private_key, record.as_bytes(), None)?;
        let v = client.call(
            "POST",
            "/v1/crypto/verify",
            Some(json!({"alg": "sm2", "public_key": pk_hex, "message_hex": hex::encode(&record), "signature_hex": hex::encode(&sig)})),
        )?;
        anyhow::ensure!(v["valid"] == json!(true), "signature rejected: {v}");
        verifies += 1;
        if reading.is_multiple_of(50) {
            // Hot swap: the SM algorithms leave and come back while traffic continues.
            client.call("POST", "/v1/plugins/crypto-gm/deactivate", None)?;
            client.call("POST", "/v1/plugins/crypto-gm/activate", None)?;
            swaps += 1;
        }
    }
    println!("sample traffic: {hashes} SM3 hashes and {verifies} SM2 verifications over HTTP, {swaps} hot swaps of crypto-gm, 0 failures");
    let audit = client.call("GET", "/v1/plugins/audit", None)?;
    println!("audit log: {} plugin changes", audit.as_array().map(|a| a.len()).unwrap_or(0));
    if a.serve {
        println!("serving until Ctrl-C");
        rt.block_on(server)??;
    } else {
        server.abort();
    }
    Ok(())
}
