//! `joule contract …`: write, build, deploy and use smart contracts.
//!
//! * `new` writes a ready project (a counter with an event and unit tests) depending on this
//!   repository's standard contract library;
//! * `build` compiles it for wasm32 reproducibly (the same source gives the same code hash
//!   from any directory), checks it against the node's deployment policy, prepares and
//!   componentizes it as the node would, and writes its ABI next to the wasm;
//! * `deploy`, `call`, `query`, `upgrade`, `events`, `info` talk to a node, with arguments
//!   and results as JSON transcoded through the contract's ABI (`joule_contract::abi`).

use super::GlobalOpts;
use super::chain_cmd::NodeSel;
use anyhow::{Context, Result, bail};
use joule_client::ApiClient;
use joule_contract::abi::Abi;
use joule_crypto::pem;
use joule_primitives::{ChannelId, CryptoSuite, Encode, Hash32, Payload, UnsignedTransaction};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where this repository's standard contract library is (compiled in).
pub fn default_std_path() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts-std/std");
    p.canonicalize().unwrap_or(p)
}

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Default gas of a transaction: the default channel's transaction gas limit.
const DEFAULT_GAS: u64 = 10_000_000;

#[derive(clap::Subcommand)]
pub enum ContractCmd {
    /// Create a contract project from a template (a counter with an event and unit tests).
    New {
        /// The crate's name, e.g. `my-counter`.
        name: String,
        /// Parent directory of the project (default: the current directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The standard contract library to depend on (default: this repository's).
        #[arg(long)]
        std_path: Option<PathBuf>,
    },
    /// Build a contract for wasm32 reproducibly, check that the node accepts it, write its ABI.
    Build {
        /// The project's directory.
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// Copy the wasm here (its ABI goes next to it).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Deploy a contract: its init runs with --args.
    Deploy {
        /// The contract's wasm (as `joule contract build` wrote it).
        wasm: PathBuf,
        #[command(flatten)]
        tx: TxOpts,
        /// The init method's arguments, JSON values in order (or one object by name).
        #[arg(long, num_args = 1.., allow_negative_numbers = true)]
        args: Vec<String>,
        /// Let the deployer replace the code later (`joule contract upgrade`).
        #[arg(long)]
        upgradable: bool,
    },
    /// Call a state-changing method (a transaction).
    Call {
        /// The contract's address (64 hex digits).
        address: String,
        method: String,
        /// The arguments, JSON values in order (or one object by name).
        #[arg(allow_negative_numbers = true)]
        args: Vec<String>,
        #[command(flatten)]
        tx: TxOpts,
    },
    /// Run a read-only method on the head state (no transaction).
    Query {
        address: String,
        method: String,
        #[arg(allow_negative_numbers = true)]
        args: Vec<String>,
        /// Gas the query may use (default: the channel's transaction gas limit).
        #[arg(long)]
        gas: Option<u64>,
        /// Account id the contract sees as caller (default: zeros).
        #[arg(long)]
        caller: Option<String>,
        #[command(flatten)]
        sel: NodeSel,
    },
    /// Replace an upgradable contract's code; `migrate` runs with --migrate when given.
    Upgrade {
        address: String,
        wasm: PathBuf,
        #[command(flatten)]
        tx: TxOpts,
        /// Arguments of the new code's `migrate` method (JSON values); without it, no migration runs.
        #[arg(long, num_args = 0.., allow_negative_numbers = true)]
        migrate: Option<Vec<String>>,
    },
    /// A contract's events, decoded: committed ones, or live with --follow.
    Events {
        address: String,
        /// Only events of this name.
        #[arg(long)]
        topic: Option<String>,
        /// From this block height.
        #[arg(long)]
        from_height: Option<u64>,
        /// Most events listed (without --follow).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// Keep listening (server-sent events), reconnecting where the stream stopped.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        sel: NodeSel,
    },
    /// A deployed contract: code hash, upgrade authority, methods and events.
    Info {
        address: String,
        #[command(flatten)]
        sel: NodeSel,
    },
}

/// What a transaction needs: the key, the gas, the node.
#[derive(clap::Args)]
pub struct TxOpts {
    /// The sender's private key (PKCS#8 PEM or DER), for the channel's signature algorithm.
    #[arg(long)]
    key: PathBuf,
    /// Gas limit of the transaction.
    #[arg(long, default_value_t = DEFAULT_GAS)]
    gas: u64,
    /// How long to wait for the receipt, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    #[command(flatten)]
    sel: NodeSel,
}

pub fn run(g: &GlobalOpts, c: ContractCmd) -> Result<()> {
    match c {
        ContractCmd::New { name, dir, std_path } => {
            let parent = dir.unwrap_or_else(|| PathBuf::from("."));
            let std_path = std_path.unwrap_or_else(default_std_path);
            let project = new_project(&name, &parent, &std_path)?;
            println!("created contract project {} (depends on {})", project.display(), std_path.display());
            println!("next:");
            println!("  cd {} && cargo test          # native unit tests", project.display());
            println!("  joule contract build --path {}", project.display());
            Ok(())
        }
        ContractCmd::Build { path, out } => build(&path, out.as_deref()),
        ContractCmd::Deploy { wasm, tx, args, upgradable } => deploy(g, &wasm, &tx, &args, upgradable),
        ContractCmd::Call { address, method, args, tx } => call(g, &address, &method, &args, &tx),
        ContractCmd::Query { address, method, args, gas, caller, sel } => query(&address, &method, &args, gas, caller, &sel),
        ContractCmd::Upgrade { address, wasm, tx, migrate } => upgrade(g, &address, &wasm, &tx, migrate.as_deref()),
        ContractCmd::Events { address, topic, from_height, limit, follow, sel } => events(&address, topic.as_deref(), from_height, limit, follow, &sel),
        ContractCmd::Info { address, sel } => info(&address, &sel),
    }
}

// ---------------------------------------------------------------------------------------
// new
// ---------------------------------------------------------------------------------------

/// `my-counter` → `MyCounter`.
fn camel(name: &str) -> String {
    name.split(['-', '_']).filter(|p| !p.is_empty()).map(|p| p[..1].to_uppercase() + &p[1..]).collect()
}

/// Write the template project `parent/name`; its directory.
pub fn new_project(name: &str, parent: &Path, std_path: &Path) -> Result<PathBuf> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!("{name:?} is not a good crate name: use 1-64 lowercase letters, digits, `-` or `_`, starting with a letter (e.g. my-counter)");
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} already exists: choose another name or --dir, or remove it first", dir.display());
    }
    let std_path = std::path::absolute(std_path).with_context(|| format!("resolve {}", std_path.display()))?;
    if !std_path.join("Cargo.toml").exists() {
        bail!("{} is not the standard contract library (no Cargo.toml there): pass --std-path DIR of joule-contract-std", std_path.display());
    }
    let std_str = std_path.to_str().context("the standard library's path is not UTF-8: pass --std-path")?;
    let ty = camel(name);
    let files: [(&str, String); 4] = [
        ("Cargo.toml", template_cargo(name, std_str)),
        ("src/lib.rs", template_lib(&ty)),
        (".gitignore", "/target\n".to_string()),
        ("README.md", template_readme(name, &ty)),
    ];
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("create {}", dir.display()))?;
    for (file, text) in files {
        let p = dir.join(file);
        std::fs::write(&p, text).with_context(|| format!("write {}", p.display()))?;
    }
    Ok(dir)
}

fn template_cargo(name: &str, std_path: &str) -> String {
    let std_path = std_path.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
publish = false

[lib]
# cdylib: the wasm module deployed on chain; rlib: native unit tests and callers.
crate-type = ["cdylib", "rlib"]

[dependencies]
joule-contract-std = {{ path = "{std_path}" }}

[features]
# Leaves out the wasm export and the ABI section when another contract depends on this
# crate only to call it (through its generated Ref).
no-export = []

# Contracts are small and deterministic: size-optimised, one codegen unit, no unwinding
# (a panic reverts the call with its message), overflow checked.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true
debug = false
incremental = false
overflow-checks = true

# A workspace of its own, whatever directory the project is in.
[workspace]
"#
    )
}

fn template_lib(ty: &str) -> String {
    r#"//! __TYPE__: a counter with a limit. Anyone counts up to the limit; the owner (the
//! deployer) resets it. Every step emits `Counted`.

use joule_contract_std::prelude::*;

/// The counter moved.
#[event]
#[derive(Clone, Debug, PartialEq)]
pub struct Counted {
    #[indexed]
    pub by: Address,
    pub value: u64,
}

/// The contract's state: each field is its own storage entry.
#[derive(ContractState)]
pub struct __TYPE__ {
    owner: Ownable,
    label: Value<String>,
    limit: Value<u64>,
    value: Value<u64>,
}

#[contract]
impl __TYPE__ {
    /// Deploy: the caller becomes the owner.
    #[init]
    pub fn new(label: String, limit: u64) -> Result<Self, String> {
        if limit == 0 {
            return Err("limit must be positive".into());
        }
        let counter = Self::default();
        counter.owner.init(env::caller());
        counter.label.set(&label);
        counter.limit.set(&limit);
        Ok(counter)
    }

    /// Add `by`; returns the new value.
    pub fn increment(&mut self, by: u64) -> Result<u64, String> {
        let limit = self.limit.get_or(0);
        let value = self.value.get_or(0).checked_add(by).filter(|v| *v <= limit);
        let Some(value) = value else {
            return Err(format!("the counter would pass its limit {limit}"));
        };
        self.value.set(&value);
        Counted { by: env::caller(), value }.emit();
        Ok(value)
    }

    /// Back to zero (the owner only).
    #[guard(owner)]
    pub fn reset(&mut self) {
        self.value.set(&0);
    }

    /// The value.
    pub fn get(&self) -> u64 {
        self.value.get_or(0)
    }

    /// The label and the limit.
    pub fn describe(&self) -> (String, u64) {
        (self.label.get_or(String::new()), self.limit.get_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use joule_contract_std::testing::{self, account};

    fn deployed() {
        testing::reset();
        testing::set_caller(account(1));
        testing::init::<__TYPE__, _>(&("demo".to_string(), 10u64)).unwrap();
    }

    #[test]
    fn counts_up_to_the_limit_and_emits() {
        deployed();
        testing::set_caller(account(2));
        assert_eq!(testing::call::<__TYPE__, _, u64>("increment", &(4u64,)).unwrap(), 4);
        assert_eq!(testing::call::<__TYPE__, _, u64>("increment", &(6u64,)).unwrap(), 10);
        let err = testing::call::<__TYPE__, _, u64>("increment", &(1u64,)).unwrap_err();
        assert_eq!(err, "the counter would pass its limit 10");
        assert_eq!(testing::query::<__TYPE__, _, u64>("get", &()).unwrap(), 10);
        let events = testing::events();
        assert_eq!(events.len(), 2);
        assert!(events[1].is(&Counted { by: account(2), value: 10 }));
    }

    #[test]
    fn only_the_owner_resets() {
        deployed();
        testing::call::<__TYPE__, _, u64>("increment", &(3u64,)).unwrap();
        testing::set_caller(account(2));
        assert!(testing::call::<__TYPE__, _, ()>("reset", &()).is_err());
        testing::set_caller(account(1));
        testing::call::<__TYPE__, _, ()>("reset", &()).unwrap();
        assert_eq!(testing::query::<__TYPE__, _, u64>("get", &()).unwrap(), 0);
    }

    #[test]
    fn a_zero_limit_is_refused() {
        testing::reset();
        assert!(testing::init::<__TYPE__, _>(&("x".to_string(), 0u64)).is_err());
    }
}
"#
    .replace("__TYPE__", ty)
}

fn template_readme(name: &str, ty: &str) -> String {
    format!(
        r#"# {name}

The `{ty}` contract for Joule: a counter with a limit, an owner and a `Counted` event.

```sh
cargo test                                   # native unit tests (mock chain)
joule contract build                         # wasm + ABI in target/wasm32-unknown-unknown/release
joule contract deploy target/wasm32-unknown-unknown/release/{lib}.wasm \
    --key KEY.pem --dir NODE_DIR --args '"my counter"' 100
joule contract call ADDRESS increment 5 --key KEY.pem --dir NODE_DIR
joule contract query ADDRESS get --dir NODE_DIR
joule contract events ADDRESS --follow --dir NODE_DIR
joule contract info ADDRESS --dir NODE_DIR
```

Arguments are JSON values (a bare word is taken as a string): integers up to 64 bits as
numbers, wider ones and `U256` as decimal strings, addresses and bytes as hex.
"#,
        lib = name.replace('-', "_")
    )
}

// ---------------------------------------------------------------------------------------
// build
// ---------------------------------------------------------------------------------------

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

fn ensure_target() -> Result<()> {
    let Ok(out) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return Ok(()); // no rustup: cargo says whether the target is there
    };
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    eprintln!("installing the {WASM_TARGET} target (rustup target add {WASM_TARGET})");
    let ok = Command::new("rustup").args(["target", "add", WASM_TARGET]).status().is_ok_and(|s| s.success());
    if !ok {
        bail!("could not install the {WASM_TARGET} target: run `rustup target add {WASM_TARGET}`");
    }
    Ok(())
}

fn package_name(dir: &Path) -> Result<String> {
    let p = dir.join("Cargo.toml");
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("read {} (is --path a contract project? `joule contract new NAME` makes one)", p.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("{} is not valid TOML", p.display()))?;
    let lib_name = doc.get("lib").and_then(|l| l.get("name")).and_then(|n| n.as_str());
    let name = doc.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str());
    match lib_name.or(name) {
        Some(n) => Ok(n.replace('-', "_")),
        None => bail!("{} has no [package] name: build a contract crate, not a workspace", p.display()),
    }
}

/// Build the project in `dir` for wasm32 and check it as the node will.
pub fn build(dir: &Path, out: Option<&Path>) -> Result<()> {
    let dir = std::path::absolute(dir).with_context(|| format!("resolve {}", dir.display()))?;
    let lib = package_name(&dir)?;
    ensure_target()?;
    let mut flags: Vec<String> = joule_contract::WASM_RUSTFLAGS.iter().map(|f| f.to_string()).collect();
    flags.push(format!("--remap-path-prefix={}=/build", dir.display()));
    if let Some(home) = cargo_home() {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    // The standard library's own sources, wherever this checkout is.
    let std_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts-std");
    let std_root = std_root.canonicalize().unwrap_or(std_root);
    flags.push(format!("--remap-path-prefix={}=/joule-contracts-std", std_root.display()));
    let mut args = vec!["build", "--release", "--target", WASM_TARGET];
    if dir.join("Cargo.lock").exists() {
        args.push("--locked");
    } else {
        eprintln!(
            "no Cargo.lock yet in {}: building without --locked (the lock file written now pins the dependencies; keep it with the source)",
            dir.display()
        );
    }
    eprintln!("building {} (cargo {})", dir.display(), args.join(" "));
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(&args).current_dir(&dir);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let drop = matches!(
            k.as_str(),
            "RUSTFLAGS"
                | "CARGO_ENCODED_RUSTFLAGS"
                | "CARGO_TARGET_DIR"
                | "CARGO_BUILD_TARGET"
                | "CARGO_BUILD_RUSTFLAGS"
                | "RUSTC_WRAPPER"
                | "RUSTC_WORKSPACE_WRAPPER"
        ) || k.starts_with("CARGO_PROFILE_")
            || k.starts_with("CARGO_TARGET_")
            || k.starts_with("CARGO_BUILD_");
        if drop {
            cmd.env_remove(&k);
        }
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"));
    let status = cmd.status().context("run cargo (is Rust installed? https://rustup.rs)")?;
    if !status.success() {
        bail!("cargo build failed in {} (its errors are above)", dir.display());
    }
    let built = dir.join("target").join(WASM_TARGET).join("release").join(format!("{lib}.wasm"));
    let code = std::fs::read(&built).with_context(|| format!("read {} (does the crate have crate-type = [\"cdylib\", \"rlib\"]?)", built.display()))?;
    let wasm = match out {
        Some(o) => {
            if let Some(parent) = o.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
            }
            std::fs::write(o, &code).with_context(|| format!("write {}", o.display()))?;
            o.to_path_buf()
        }
        None => built,
    };
    check_module(&code).with_context(|| format!("{} would be refused by the node", wasm.display()))?;
    let abi = Abi::from_code(&code).context("the wasm's ABI section")?;
    if abi.is_empty() {
        bail!("{} carries no ABI: is the contract a `#[contract]` of joule-contract-std, built without the `no-export` feature?", wasm.display());
    }
    let stem = wasm.file_stem().and_then(|s| s.to_str()).unwrap_or(&lib).to_string();
    let abi_file = wasm.with_file_name(format!("{stem}.abi.json"));
    let doc = serde_json::to_string_pretty(&abi.to_json())? + "\n";
    std::fs::write(&abi_file, doc).with_context(|| format!("write {}", abi_file.display()))?;
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&code));
    let sm3 = hex::encode(<sm3::Sm3 as sm3::Digest>::digest(&code));
    println!("built {} {} ({})", abi.contract.as_deref().unwrap_or("?"), abi.version.as_deref().unwrap_or("?"), wasm.display());
    println!("  size          {} bytes", code.len());
    println!("  code hash     {sm3} (SM3: channels of suite gm)");
    println!("  code hash     {sha256} (SHA-256: channels of suite intl)");
    println!("  abi           {}", abi_file.display());
    println!("  node policy   accepted (checked, prepared and componentized)");
    for m in &abi.methods {
        println!("  {:<6} {}", m.kind, m.signature());
    }
    for e in &abi.events {
        let f: Vec<String> =
            e.indexed.iter().map(|f| format!("#[indexed] {}: {}", f.name, f.ty)).chain(e.data.iter().map(|f| format!("{}: {}", f.name, f.ty))).collect();
        println!("  event  {}({})", e.name, f.join(", "));
    }
    Ok(())
}

/// What the node does with code at deployment and first call: check, prepare, componentize.
pub fn check_module(code: &[u8]) -> Result<()> {
    let policy = joule_contract_wasm::policy::policy();
    joule_contract_prepare::check(code, policy)?;
    let prepared = joule_contract_prepare::prepare(code, policy)?;
    joule_plugin_manifest::componentize(&prepared).map_err(|e| anyhow::anyhow!("componentize: {e}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// talking to a node
// ---------------------------------------------------------------------------------------

fn channel_query(sel: &NodeSel, first: char) -> String {
    sel.channel.as_ref().map(|c| format!("{first}channel={c}")).unwrap_or_default()
}

fn parse_address(s: &str) -> Result<Hash32> {
    Hash32::from_hex(s).with_context(|| format!("{s:?} is not a contract address: give its 64 hex digits (the deployment printed it)"))
}

/// The ABI of the contract at `address`, as the node describes it; and the description.
fn remote_abi(client: &ApiClient, address: &Hash32, sel: &NodeSel) -> Result<(Abi, Value)> {
    let v = client.get(&format!("/v1/contracts/{address}{}", channel_query(sel, '?'))).with_context(|| format!("look up the contract {address}"))?;
    let lines = v["abi"].as_array().cloned().unwrap_or_default();
    let abi = Abi::from_values(&lines).context("the contract's ABI")?;
    Ok((abi, v))
}

/// CLI arguments as JSON: each parsed as JSON, or taken as a string when it is not JSON (a
/// bare word or hex). Where the parameter is a string, an address or bytes, the text is
/// kept as it was typed even when it would parse as a number.
fn json_args(raw: &[String], params: Option<&[joule_contract::abi::Field]>) -> Vec<Value> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            let textual = params.and_then(|p| p.get(i)).is_some_and(|f| {
                let t = f.ty.as_str();
                t == "String" || t == "Address" || t == "Decimal" || t == "Vec<u8>" || t.starts_with("[u8;")
            });
            match serde_json::from_str::<Value>(s) {
                Ok(Value::Number(_)) | Ok(Value::Bool(_)) if textual && raw.len() == params.map_or(0, <[_]>::len) => Value::String(s.clone()),
                Ok(v) => v,
                Err(_) => Value::String(s.clone()),
            }
        })
        .collect()
}

/// Sign and submit `payload`, wait for its receipt: (hash, record of `GET /v1/tx`).
fn submit(g: &GlobalOpts, tx: &TxOpts, payload: Payload) -> Result<(String, Value)> {
    let client = tx.sel.client()?;
    let status = client.get(&format!("/v1/status{}", channel_query(&tx.sel, '?'))).context("ask the node its status (is it running? check --node or --dir)")?;
    let suite_id = status["crypto_suite"].as_str().context("the node did not say its crypto suite")?;
    let suite = CryptoSuite::named(suite_id).with_context(|| format!("unknown crypto suite {suite_id}"))?;
    let channel = ChannelId::new(status["channel"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let crypto = g.crypto()?;
    let key = std::fs::read(&tx.key).with_context(|| format!("read {}", tx.key.display()))?;
    let sk = pem::decode(pem::PRIVATE_KEY, &key)?;
    let pk = crypto
        .public_key(&suite.signature, &sk)
        .with_context(|| format!("{} is not a {} private key (the channel's signature algorithm)", tx.key.display(), suite.signature))?;
    let account = client.get(&format!("/v1/accounts/{}{}", hex::encode(&pk), channel_query(&tx.sel, '?')))?;
    let nonce = account["next_nonce"].as_u64().context("the node did not give the account's next nonce")?;
    let body = UnsignedTransaction { channel, sender: pk, nonce, gas_limit: tx.gas, sig_alg: suite.signature.clone(), payload };
    let sig = crypto.sign(&suite.signature, &sk, &body.signing_bytes(), None)?;
    let signed = body.sign_with(sig);
    let v = client.post_bytes("/v1/tx", &signed.encode()).context("the node refused the transaction")?;
    let hash = v["hash"].as_str().context("the node returned no hash")?.to_string();
    eprintln!("sent {hash} (nonce {nonce}), waiting for its block");
    let r = client.wait_for_tx(&hash, Duration::from_secs(tx.timeout)).with_context(|| format!("wait for {hash} (look it up later: joule tx get {hash})"))?;
    Ok((hash, r))
}

/// Print the receipt's status and gas; an error (exit 1) when it failed.
fn report(hash: &str, r: &Value, what: &str) -> Result<()> {
    let receipt = &r["receipt"];
    let status = receipt["status"].as_str().unwrap_or("?");
    println!("{what} {hash}: {status} in block {}, gas used {}", r["block_height"], receipt["gas_used"]);
    match status {
        "success" => Ok(()),
        "out_of_gas" => {
            Err(super::Negative(format!("out of gas after {}: send it again with a higher --gas (at most the channel's gas limit)", receipt["gas_used"]))
                .into())
        }
        _ => {
            let reason = receipt["reason"].as_str().unwrap_or("(no reason given)");
            Err(super::Negative(format!(
                "{status}: {reason}\nthe contract refused the transaction: check the arguments against its methods (`joule contract info ADDRESS`) and the caller's rights"
            ))
            .into())
        }
    }
}

fn print_events(abi: &Abi, r: &Value) {
    for e in r["receipt"]["events"].as_array().into_iter().flatten() {
        println!("  event {}", event_json(abi, e, None));
    }
}

/// An event record (`topic`, `indexed`, `data` hex) decoded: `{"event", "fields"}` and the
/// position when known; the raw hex when the ABI does not describe it.
fn event_json(abi: &Abi, e: &Value, id: Option<&str>) -> Value {
    let name = e["topic"].as_str().unwrap_or_default();
    let indexed: Vec<Vec<u8>> = e["indexed"].as_array().into_iter().flatten().filter_map(|h| h.as_str().and_then(|h| hex::decode(h).ok())).collect();
    let data = e["data"].as_str().and_then(|h| hex::decode(h).ok()).unwrap_or_default();
    let mut out = json!({ "event": name });
    if let Some(id) = id {
        out["id"] = json!(id);
    }
    for k in ["height", "tx_hash"] {
        if !e[k].is_null() {
            out[k] = e[k].clone();
        }
    }
    match abi.decode_event_with_topics(name, &indexed, &data) {
        Ok(fields) => out["fields"] = fields,
        // Not the contract's own event (the chain's `deployed`, say): as it is.
        Err(_) if abi.event(name).is_err() => {
            out["indexed"] = e["indexed"].clone();
            out["data"] = e["data"].clone();
        }
        Err(err) => {
            out["indexed"] = e["indexed"].clone();
            out["data"] = e["data"].clone();
            out["undecoded"] = json!(err.to_string());
        }
    }
    out
}

fn deploy(g: &GlobalOpts, wasm: &Path, tx: &TxOpts, args: &[String], upgradable: bool) -> Result<()> {
    let code = std::fs::read(wasm).with_context(|| format!("read {}", wasm.display()))?;
    check_module(&code).with_context(|| format!("{} would be refused by the node (rebuild it with `joule contract build`)", wasm.display()))?;
    let abi = Abi::from_code(&code).context("the wasm's ABI section")?;
    let init = abi.init();
    let values = json_args(args, init.map(|m| m.args.as_slice()));
    let init_args = abi.encode_init(&values)?;
    let name = abi.contract.clone().unwrap_or_else(|| "contract".into());
    let (hash, r) = submit(g, tx, Payload::Deploy { code, init_args, upgradable })?;
    report(&hash, &r, &format!("deploy {name}"))?;
    let address = r["receipt"]["output"].as_str().unwrap_or_default();
    println!("address {address}");
    print_events(&abi, &r);
    Ok(())
}

fn call(g: &GlobalOpts, address: &str, method: &str, args: &[String], tx: &TxOpts) -> Result<()> {
    let contract = parse_address(address)?;
    let (abi, _) = remote_abi(&tx.sel.client()?, &contract, &tx.sel)?;
    let m = abi.method(method)?;
    if m.kind == "init" {
        bail!("{method} is the contract's init: it ran at deployment and cannot be called");
    }
    let encoded = abi.encode_args(method, &json_args(args, Some(&m.args)))?;
    let (hash, r) = submit(g, tx, Payload::Call { contract, method: method.to_string(), args: encoded })?;
    report(&hash, &r, &format!("call {method}"))?;
    let output = hex::decode(r["receipt"]["output"].as_str().unwrap_or_default()).unwrap_or_default();
    match abi.decode_result(method, &output) {
        Ok(v) => println!("result {v}"),
        Err(e) => println!("result (hex) {} — not decoded: {e}", hex::encode(&output)),
    }
    print_events(&abi, &r);
    Ok(())
}

fn query(address: &str, method: &str, args: &[String], gas: Option<u64>, caller: Option<String>, sel: &NodeSel) -> Result<()> {
    let contract = parse_address(address)?;
    let client = sel.client()?;
    let (abi, _) = remote_abi(&client, &contract, sel)?;
    let m = abi.method(method)?;
    let encoded = abi.encode_args(method, &json_args(args, Some(&m.args)))?;
    let mut body = json!({ "method": method, "args": hex::encode(&encoded) });
    if let Some(g) = gas {
        body["gas_limit"] = json!(g);
    }
    if let Some(c) = caller {
        body["caller"] = json!(c);
    }
    let v = client.post_json(&format!("/v1/contracts/{contract}/query{}", channel_query(sel, '?')), &body)?;
    let status = v["status"].as_str().unwrap_or("?");
    if status != "success" {
        let reason = v["reason"].as_str().unwrap_or("(no reason given)");
        let hint =
            if m.kind == "call" && !reason.contains("send it as a transaction") { " (it changes state: send it with `joule contract call`)" } else { "" };
        return Err(super::Negative(format!("{method} {status} at height {}: {reason}{hint}", v["height"])).into());
    }
    let output = hex::decode(v["output"].as_str().unwrap_or_default()).context("the node's output is not hex")?;
    if sel.json {
        println!("{}", json!({ "result": abi.decode_result(method, &output)?, "gas_used": v["gas_used"], "height": v["height"] }));
    } else {
        println!("{}", abi.decode_result(method, &output)?);
        eprintln!("(height {}, gas used {})", v["height"], v["gas_used"]);
    }
    Ok(())
}

fn upgrade(g: &GlobalOpts, address: &str, wasm: &Path, tx: &TxOpts, migrate: Option<&[String]>) -> Result<()> {
    let contract = parse_address(address)?;
    let code = std::fs::read(wasm).with_context(|| format!("read {}", wasm.display()))?;
    check_module(&code).with_context(|| format!("{} would be refused by the node (rebuild it with `joule contract build`)", wasm.display()))?;
    let abi = Abi::from_code(&code).context("the wasm's ABI section")?;
    let migrate_args = match migrate {
        None => None,
        Some(raw) => {
            let m = abi.method("migrate").context("--migrate runs the new code's `migrate` method, and it has none")?;
            Some(abi.encode_args("migrate", &json_args(raw, Some(&m.args)))?)
        }
    };
    let (hash, r) = submit(g, tx, Payload::Upgrade { contract, code, migrate_args })?;
    report(&hash, &r, &format!("upgrade {contract}"))?;
    print_events(&abi, &r);
    Ok(())
}

fn info(address: &str, sel: &NodeSel) -> Result<()> {
    let contract = parse_address(address)?;
    let (abi, v) = remote_abi(&sel.client()?, &contract, sel)?;
    if sel.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("contract  {} {}", abi.contract.as_deref().unwrap_or("(no ABI)"), abi.version.as_deref().unwrap_or(""));
    println!("address   {}", v["address"].as_str().unwrap_or(address));
    println!("code hash {} ({} bytes)", v["code_hash"].as_str().unwrap_or("?"), v["code_size"]);
    println!("authority {}", v["upgrade_authority"].as_str().unwrap_or("none (immutable)"));
    if let Some(p) = v["previous_code_hash"].as_str() {
        println!("previous  {p}");
    }
    for m in &abi.methods {
        println!("  {:<6} {}", m.kind, m.signature());
    }
    for e in &abi.events {
        let f: Vec<String> =
            e.indexed.iter().map(|f| format!("#[indexed] {}: {}", f.name, f.ty)).chain(e.data.iter().map(|f| format!("{}: {}", f.name, f.ty))).collect();
        println!("  event  {}({})", e.name, f.join(", "));
    }
    Ok(())
}

fn events(address: &str, topic: Option<&str>, from_height: Option<u64>, limit: u32, follow: bool, sel: &NodeSel) -> Result<()> {
    let contract = parse_address(address)?;
    let client = sel.client()?;
    let (abi, _) = remote_abi(&client, &contract, sel)?;
    let mut q = format!("contract={contract}");
    if let Some(t) = topic {
        q.push_str(&format!("&topic={t}"));
    }
    if let Some(c) = &sel.channel {
        q.push_str(&format!("&channel={c}"));
    }
    if !follow {
        let mut path = format!("/v1/events?{q}&limit={limit}");
        if let Some(h) = from_height {
            path.push_str(&format!("&from={h}"));
        }
        let list = client.get(&path)?;
        for e in list.as_array().into_iter().flatten() {
            let id = format!("{}:{}:{}", e["height"], e["index"], e["event_index"]);
            println!("{}", event_json(&abi, e, Some(&id)));
        }
        return Ok(());
    }
    if let Some(h) = from_height {
        q.push_str(&format!("&from_height={h}"));
    }
    follow_stream(&client.base, &q, &abi)
}

/// Print the event stream, one JSON line per event, reconnecting with `Last-Event-ID` where
/// it stopped whenever the connection drops. Runs until interrupted.
fn follow_stream(base: &str, query: &str, abi: &Abi) -> Result<()> {
    use std::io::Write;
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(None).build().into();
    let url = format!("{base}/v1/events/stream?{query}");
    let mut last_id: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let mut req = agent.get(&url).header("Accept", "text/event-stream");
        if let Some(id) = &last_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(e) => {
                failures += 1;
                eprintln!("stream: {e}; reconnecting{}", last_id.as_ref().map(|i| format!(" after {i}")).unwrap_or_default());
                std::thread::sleep(Duration::from_millis(500 * u64::from(failures.min(10))));
                continue;
            }
        };
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let text = resp.into_body().read_to_string().unwrap_or_default();
            bail!("the node refused the event stream ({status}): {text}");
        }
        failures = 0;
        let reader = BufReader::new(resp.into_body().into_reader());
        let (mut id, mut kind, mut data) = (None::<String>, String::new(), String::new());
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if line.is_empty() {
                if kind == "contract-event" || (kind.is_empty() && !data.is_empty()) {
                    if let Ok(e) = serde_json::from_str::<Value>(&data) {
                        println!("{}", event_json(abi, &e, id.as_deref()));
                        let _ = std::io::stdout().flush();
                    }
                    if id.is_some() {
                        last_id = id.clone();
                    }
                } else if kind == "error" {
                    eprintln!("stream error: {data}");
                }
                (id, kind, data) = (None, String::new(), String::new());
                continue;
            }
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("event:") {
                kind = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        eprintln!("stream closed; reconnecting{}", last_id.as_ref().map(|i| format!(" after {i}")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_types() {
        assert_eq!(camel("my-counter"), "MyCounter");
        assert_eq!(camel("escrow_v2"), "EscrowV2");
    }

    #[test]
    fn bare_words_are_strings_and_typed_text_stays_text() {
        let f = |ty: &str| joule_contract::abi::Field { name: "x".into(), ty: ty.into() };
        let params = [f("String"), f("u64")];
        let raw = ["1234".to_string(), "5".to_string()];
        assert_eq!(json_args(&raw, Some(&params)), vec![json!("1234"), json!(5)]);
        assert_eq!(json_args(&["hello".to_string()], None), vec![json!("hello")]);
        assert_eq!(json_args(&["[1,2]".to_string()], None), vec![json!([1, 2])]);
    }

    #[test]
    fn new_refuses_bad_names_and_existing_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(new_project("Bad Name", dir.path(), &default_std_path()).is_err());
        let p = new_project("ok-name", dir.path(), &default_std_path()).unwrap();
        assert!(p.join("src/lib.rs").exists());
        let e = new_project("ok-name", dir.path(), &default_std_path()).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        let cargo = std::fs::read_to_string(p.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("[workspace]") && cargo.contains("crate-type = [\"cdylib\", \"rlib\"]"));
        let lib = std::fs::read_to_string(p.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub struct OkName"));
    }
}
