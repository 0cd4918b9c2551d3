//! Shared helpers: where the built plugins are, registries, the `joule` binary, a node.

use joule_crypto::{CryptoService, KeyPair, SuiteCrypto};
use joule_kernel::trust::TrustPolicy;
use joule_kernel::{PluginPackage, PluginRegistry};
use joule_primitives::{ChainCrypto, CryptoSuite};
use joule_wasm::{ArtifactCache, Limits};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("repository root").to_path_buf()
}

fn built(dir: PathBuf) -> PathBuf {
    assert!(
        dir.join("crypto-gm.toml").exists() || dir.join("hostile.toml").exists(),
        "{} has no plugins: run `cargo xtask plugins` (or `cargo xtask test`)",
        dir.display()
    );
    dir
}

/// First-party plugins, as `cargo xtask plugins` packs them.
pub fn plugin_dir() -> PathBuf {
    built(root().join("target/plugins"))
}

/// Fixtures and the vendor example.
pub fn test_plugin_dir() -> PathBuf {
    built(root().join("target/test-plugins"))
}

pub fn cache_dir() -> PathBuf {
    root().join("target/test-cache")
}

pub fn package(path: &Path) -> PluginPackage {
    PluginPackage::from_manifest_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A registry of the node's plugin kinds, in memory.
pub fn registry_with(limits: Limits, trust: TrustPolicy) -> Arc<PluginRegistry> {
    joule_node::plugins::registry(limits, ArtifactCache::new(Some(cache_dir())), trust, None).expect("registry")
}

/// A registry with the first-party plugins installed and active.
pub fn crypto_with(limits: Limits) -> CryptoService {
    let reg = registry_with(limits, TrustPolicy::default());
    let failures = reg.load_dir(&plugin_dir());
    assert!(failures.is_empty(), "first-party plugins failed to load: {:?}", failures.iter().map(|(p, e)| format!("{}: {e}", p.display())).collect::<Vec<_>>());
    CryptoService::new(reg)
}

pub fn crypto() -> CryptoService {
    crypto_with(Limits::default())
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("joule-test-").tempdir().expect("tempdir")
}

/// The `joule` binary with the test cache and the first-party plugin directory.
pub fn joule() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_joule"));
    c.env("JOULE_CACHE_DIR", cache_dir()).env("JOULE_PLUGIN_DIR", plugin_dir()).env_remove("JOULE_ADMIN_TOKEN");
    c
}

/// Run `joule ARGS`; returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run joule");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Run an external tool, panicking with its stderr when it fails.
pub fn tool(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} is required for this test (.ci/run installs it): {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A `joule node` child process on a loopback port; killed on drop.
pub struct NodeProcess {
    pub child: Child,
    pub base: String,
    pub token: String,
}

impl NodeProcess {
    pub fn start(dir: &Path, extra: &[&str]) -> NodeProcess {
        Self::start_env(dir, extra, &[])
    }

    pub fn start_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> NodeProcess {
        let mut child = joule()
            .args(["node", "--dir"])
            .arg(dir)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start joule node");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        let base = first.strip_prefix("joule node listening on ").unwrap_or_else(|| panic!("unexpected first line from node: {first:?}")).to_string();
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(dir.join("admin.token")).expect("admin.token").trim().to_string();
        NodeProcess { child, base, token }
    }

    /// Like [`NodeProcess::start`], keeping what the node logs (stderr) for the test to read.
    pub fn start_logged(dir: &Path, extra: &[&str]) -> (NodeProcess, Arc<std::sync::Mutex<String>>) {
        let mut child = joule().args(["node", "--dir"]).arg(dir).args(extra).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start joule node");
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        let base = first.strip_prefix("joule node listening on ").unwrap_or_else(|| panic!("unexpected first line from node: {first:?}")).to_string();
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(dir.join("admin.token")).expect("admin.token").trim().to_string();
        (NodeProcess { child, base, token }, log)
    }

    /// `host:port` of the API.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into()
    }

    /// (status, JSON body) of a request with the admin token.
    pub fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let a = Self::agent();
        let resp = match (method, body) {
            ("GET", _) => a.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => a.delete(&url).header("Authorization", &auth).call(),
            (_, Some(b)) => a.post(&url).header("Authorization", &auth).send_json(b),
            (_, None) => a.post(&url).header("Authorization", &auth).send_empty(),
        };
        let mut resp = resp.expect("request");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    /// Upload a plugin as `multipart/form-data` (parts `manifest` and `wasm`).
    pub fn upload(&self, manifest: &str, wasm: &[u8]) -> (u16, serde_json::Value) {
        let boundary = "joule-test-boundary-7e3f";
        let mut body = Vec::new();
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"manifest\"; filename=\"p.toml\"\r\nContent-Type: application/toml\r\n\r\n{manifest}\r\n"
            )
            .as_bytes(),
        );
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"wasm\"; filename=\"p.wasm\"\r\nContent-Type: application/wasm\r\n\r\n").as_bytes(),
        );
        body.extend(wasm);
        body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut resp = Self::agent()
            .post(&format!("{}/v1/plugins", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", &format!("multipart/form-data; boundary={boundary}"))
            .send(&body[..])
            .expect("upload");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a raw request went: status and body (JSON when it parses, else a string).
fn answer(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, serde_json::Value) {
    let mut resp = resp.expect("request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

impl NodeProcess {
    /// GET without the admin token (public endpoints).
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        answer(Self::agent().get(&format!("{}{path}", self.base)).call())
    }

    /// GET raw bytes; panics unless 200.
    pub fn get_bytes(&self, path: &str) -> Vec<u8> {
        let mut r = Self::agent().get(&format!("{}{path}", self.base)).call().expect("request");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.body_mut().with_config().limit(1 << 30).read_to_vec().expect("body")
    }

    /// POST a body with a content type, optionally with the admin token.
    pub fn post_raw(&self, path: &str, content_type: &str, body: &[u8], admin: bool) -> (u16, serde_json::Value) {
        let mut req = Self::agent().post(&format!("{}{path}", self.base)).header("Content-Type", content_type);
        if admin {
            req = req.header("Authorization", &format!("Bearer {}", self.token));
        }
        answer(req.send(body))
    }

    /// PUT a body with the admin token.
    pub fn put(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        answer(Self::agent().put(&format!("{}{path}", self.base)).header("Authorization", &format!("Bearer {}", self.token)).send(body))
    }

    /// Submit a transaction's canonical bytes.
    pub fn submit(&self, tx: &joule_primitives::Transaction) -> (u16, serde_json::Value) {
        self.post_raw("/v1/tx", "application/octet-stream", &joule_primitives::Encode::encode(tx), false)
    }

    /// Poll until the transaction is committed; its record.
    pub fn wait_tx(&self, hash: &str) -> serde_json::Value {
        let start = std::time::Instant::now();
        loop {
            let (s, v) = self.get(&format!("/v1/tx/{hash}"));
            assert!(s == 200, "GET /v1/tx/{hash}: {s} {v}");
            if v["status"] == "committed" {
                return v;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "transaction {hash} not committed in 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn height(&self) -> u64 {
        self.get("/v1/status").1["height"].as_u64().expect("height")
    }

    /// Kill the process (SIGKILL on Unix) and reap it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `joule init --dir DIR ARGS`; panics if it fails.
pub fn init_node(dir: &Path, args: &[&str]) {
    let (code, out, err) = run(joule().args(["init", "--dir"]).arg(dir).args(args));
    assert_eq!(code, 0, "joule init failed: {out}{err}");
}

/// A channel's suite bound to an in-process registry of the first-party plugins.
pub fn suite(id: &str) -> SuiteCrypto {
    SuiteCrypto::new(CryptoSuite::named(id).expect("suite"), crypto())
}

/// A signed data-record transaction.
pub fn data_tx(s: &SuiteCrypto, kp: &KeyPair, channel: &str, nonce: u64, key: &str, value: &[u8]) -> joule_primitives::Transaction {
    let body = joule_primitives::UnsignedTransaction {
        channel: joule_primitives::ChannelId::new(channel).expect("channel"),
        sender: kp.public_key.clone(),
        nonce,
        gas_limit: 100_000,
        sig_alg: s.suite().signature.clone(),
        payload: joule_primitives::Payload::Data { key: key.into(), value: value.to_vec() },
    };
    let sig = s.sign(&kp.private_key, &body.signing_bytes()).expect("sign");
    body.sign_with(sig)
}

/// A client of a node that may die at any moment (crash tests): `None` when the node is
/// unreachable.
pub struct Probe {
    base: String,
    agent: ureq::Agent,
}

impl Probe {
    pub fn try_get(&self, path: &str) -> Option<serde_json::Value> {
        let mut r = self.agent.get(&format!("{}{path}", self.base)).call().ok()?;
        let text = r.body_mut().read_to_string().ok()?;
        Some(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    /// POST canonical transaction bytes; the status.
    pub fn try_post(&self, tx: &[u8]) -> Option<u16> {
        let mut r = self.agent.post(&format!("{}/v1/tx", self.base)).header("Content-Type", "application/octet-stream").send(tx).ok()?;
        let _ = r.body_mut().read_to_string();
        Some(r.status().as_u16())
    }
}

impl NodeProcess {
    pub fn probe(base: &str) -> Probe {
        Probe {
            base: base.to_string(),
            agent: ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(5))).build().into(),
        }
    }
}

/// `promtool check metrics` (in .ci/api-contract) wants a HELP line for every metric.
pub fn assert_every_metric_has_help(metrics: &str) {
    let helped: Vec<&str> = metrics.lines().filter_map(|l| l.strip_prefix("# HELP ")).filter_map(|l| l.split(' ').next()).collect();
    for typed in metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()) {
        assert!(helped.contains(&typed), "{typed} has no HELP: describe it in joule_node::api::metrics_handle");
    }
    assert!(helped.len() >= 5, "{metrics}");
}
