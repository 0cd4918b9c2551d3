//! `joule contract …`: a project from the template builds for wasm32 into code the node's
//! deployment policy accepts, with its ABI beside it; the same source gives the same code
//! hash from any directory; and the built contract is deployed, called, queried and its
//! events listed and followed on a running node, arguments and results as JSON.

use crate::support::{NodeProcess, init_node, joule, run, tempdir};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// `joule contract new NAME --dir PARENT`, then `joule contract build`: (project, wasm, build's stdout).
fn new_and_build(parent: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let (code, out, err) = run(joule().args(["contract", "new", name, "--dir"]).arg(parent));
    assert_eq!(code, 0, "contract new: {out}{err}");
    let project = parent.join(name);
    build(&project, name)
}

fn build(project: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let (code, out, err) = run(joule().args(["contract", "build", "--path"]).arg(project));
    assert_eq!(code, 0, "contract build: {out}{err}");
    let wasm = project.join("target/wasm32-unknown-unknown/release").join(format!("{}.wasm", name.replace('-', "_")));
    assert!(wasm.exists(), "{} missing after the build: {out}", wasm.display());
    (project.to_path_buf(), wasm, out)
}

fn sha256_line(out: &str) -> String {
    let line = out.lines().find(|l| l.contains("(SHA-256")).unwrap_or_else(|| panic!("no SHA-256 in {out}"));
    line.split_whitespace().nth(2).expect("hash").to_string()
}

/// Copies of the template in two directories of different depth build to the same code
/// (two wasm release builds from scratch: about 140 s on two cores).
#[test]
fn contract_builds_are_reproducible_across_directories() {
    let d = tempdir();
    let (code, out, err) = run(joule().args(["contract", "new", "same-source", "--dir"]).arg(d.path()));
    assert_eq!(code, 0, "{out}{err}");
    let template = d.path().join("same-source");
    let mut hashes = vec![];
    for (i, sub) in ["a", "b/c/d"].iter().enumerate() {
        let dest = d.path().join(sub).join("same-source");
        std::fs::create_dir_all(dest.join("src")).unwrap();
        for f in ["Cargo.toml", "src/lib.rs", ".gitignore", "README.md"] {
            std::fs::copy(template.join(f), dest.join(f)).unwrap();
        }
        // The second copy takes the lock file the first build wrote, as a clone would.
        if i == 1 {
            std::fs::copy(d.path().join("a/same-source/Cargo.lock"), dest.join("Cargo.lock")).unwrap();
        }
        let (_, wasm, out) = build(&dest, "same-source");
        let sha = sha256_line(&out);
        let file = sha256_hex(&std::fs::read(&wasm).unwrap());
        assert_eq!(sha, file, "the printed hash is the file's");
        hashes.push(sha);
        // Keep the disk use down: the first copy's build is no longer needed.
        let _ = std::fs::remove_dir_all(dest.join("target/release"));
    }
    assert_eq!(hashes[0], hashes[1], "the same source built in two directories gave different code");
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn ok(args: &[&str], node_dir: &Path) -> String {
    let (code, out, err) = run(joule().args(args).arg("--dir").arg(node_dir));
    assert_eq!(code, 0, "joule {args:?}: {out}{err}");
    out
}

#[test]
fn contract_new_build_deploy_call_query_and_events() {
    let d = tempdir();
    let (project, wasm, out) = new_and_build(d.path(), "tally");
    for f in ["Cargo.toml", "src/lib.rs", ".gitignore", "README.md", "Cargo.lock"] {
        assert!(project.join(f).exists(), "{f} missing");
    }
    let cargo = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("[workspace]") && cargo.contains("panic = \"abort\"") && cargo.contains("no-export = []"), "{cargo}");
    // A second `new` of the same name refuses to overwrite.
    let (code, _, err) = run(joule().args(["contract", "new", "tally", "--dir"]).arg(d.path()));
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");

    // The node's policy accepts the module, as the build said.
    let code = std::fs::read(&wasm).unwrap();
    joule_contract_prepare::check(&code, joule_contract_wasm::policy::policy()).expect("the node's policy accepts the template");
    assert!(out.contains("node policy   accepted"), "{out}");
    assert!(out.contains("call   increment(by: u64) -> u64 / error String"), "{out}");
    assert_eq!(sha256_line(&out), sha256_hex(&code));
    let abi: Value = serde_json::from_str(&std::fs::read_to_string(wasm.with_file_name("tally.abi.json")).unwrap()).unwrap();
    assert_eq!(abi["contract"], "Tally");
    let methods: Vec<&str> = abi["methods"].as_array().unwrap().iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["new", "increment", "reset", "get", "describe"]);
    assert!(abi["events"].as_array().unwrap().iter().any(|e| e["event"] == "Counted"));

    // A node that lets anyone deploy.
    let n = tempdir();
    let key = n.path().join("key.pem");
    init_node(n.path(), &["--block-interval-ms", "100", "--contract-deployer", "anyone", "--export-key", key.to_str().unwrap()]);
    let node = NodeProcess::start(n.path(), &[]);
    let key = key.to_str().unwrap();
    let nd = n.path();

    let out = ok(&["contract", "deploy", wasm.to_str().unwrap(), "--key", key, "--args", "\"my tally\"", "3"], nd);
    assert!(out.contains("deploy Tally") && out.contains(": success"), "{out}");
    let address = out.lines().find_map(|l| l.strip_prefix("address ")).expect("address line").trim().to_string();
    assert_eq!(address.len(), 64);

    let out = ok(&["contract", "info", &address], nd);
    assert!(out.contains("contract  Tally 0.1.0") && out.contains("query  get() -> u64"), "{out}");
    assert!(out.contains(&sm3_hex(&code)), "the gm channel's code hash is the SM3 the build printed: {out}");

    // A follower, started before the calls.
    let mut follower = joule()
        .args(["contract", "events", &address, "--follow", "--topic", "Counted", "--from-height", "0", "--dir"])
        .arg(nd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the follower");

    let out = ok(&["contract", "call", &address, "increment", "2", "--key", key], nd);
    assert!(out.contains("result 2"), "{out}");
    assert!(out.contains(r#""event":"Counted""#) && out.contains(r#""value":2"#), "{out}");
    // Named arguments, a number as a string.
    let out = ok(&["contract", "call", &address, "increment", r#"{"by":"1"}"#, "--key", key], nd);
    assert!(out.contains("result 3"), "{out}");

    // Past the limit: reverted, with the contract's reason, exit 1.
    let (code, out, err) = run(joule().args(["contract", "call", &address, "increment", "1", "--key", key, "--dir"]).arg(nd));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(": reverted") && err.contains("the counter would pass its limit 3"), "{out}{err}");
    // A bad argument is refused before anything is sent, naming it.
    let (code, _, err) = run(joule().args(["contract", "call", &address, "increment", "-1", "--key", key, "--dir"]).arg(nd));
    assert_eq!(code, 2);
    assert!(err.contains("argument `by` of increment") && err.contains("u64"), "{err}");
    let (code, _, err) = run(joule().args(["contract", "call", &address, "nope", "--key", key, "--dir"]).arg(nd));
    assert_eq!(code, 2);
    assert!(err.contains("no method `nope`") && err.contains("increment"), "{err}");

    assert_eq!(ok(&["contract", "query", &address, "get"], nd).trim(), "3");
    assert_eq!(ok(&["contract", "query", &address, "describe"], nd).trim(), r#"["my tally",3]"#);
    let (code, _, err) = run(joule().args(["contract", "query", &address, "increment", "1", "--dir"]).arg(nd));
    assert_eq!(code, 1);
    assert!(err.contains("send it as a transaction"), "{err}");

    let out = ok(&["contract", "events", &address, "--topic", "Counted"], nd);
    let events: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 2, "{out}");
    assert_eq!(events[1]["fields"]["value"], 3);
    assert_eq!(events[1]["fields"]["by"].as_str().unwrap().len(), 64);

    // The follower printed both, decoded.
    let stdout = follower.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = vec![];
    for _ in 0..2 {
        let line = lines.next().expect("a followed event").expect("read");
        seen.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(seen[0]["event"], "Counted");
    assert_eq!(seen[0]["fields"]["value"], 2);
    assert_eq!(seen[1]["fields"]["value"], 3);
    assert!(seen[1]["id"].as_str().unwrap().contains(':'));

    // Upgrades. The deployment above is immutable: its upgrade fails, naming why.
    let wasm_arg = wasm.to_str().unwrap();
    let (code_, out, err) = run(joule().args(["contract", "upgrade", &address, wasm_arg, "--key", key, "--dir"]).arg(nd));
    assert_eq!(code_, 1, "{out}{err}");
    assert!(err.contains("is not upgradable"), "{out}{err}");
    // An upgradable deployment takes new code that keeps its storage, runs its migration
    // and records the code it replaced.
    let out = ok(&["contract", "deploy", wasm_arg, "--key", key, "--upgradable", "--args", "\"v1\"", "5"], nd);
    let upgradable = out.lines().find_map(|l| l.strip_prefix("address ")).expect("address line").trim().to_string();
    assert!(ok(&["contract", "call", &upgradable, "increment", "4", "--key", key], nd).contains("result 4"));
    let v1 = std::fs::read(&wasm).unwrap();
    let lib = project.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let anchor = "    /// The value.\n";
    assert!(source.contains(anchor), "the template changed: update this test");
    let v2_methods = "    /// Set a new limit: the upgrade's migration (owner only).\n    #[guard(owner)]\n    pub fn migrate(&mut self, limit: u64) {\n        self.limit.set(&limit);\n    }\n\n    /// Twice the value (new in version 2).\n    pub fn doubled(&self) -> u64 {\n        self.value.get_or(0) * 2\n    }\n\n";
    std::fs::write(&lib, source.replace(anchor, &format!("{v2_methods}{anchor}"))).unwrap();
    let (_, wasm2, _) = build(&project, "tally");
    assert_ne!(std::fs::read(&wasm2).unwrap(), v1, "the new source built to new code");
    let out = ok(&["contract", "upgrade", &upgradable, wasm2.to_str().unwrap(), "--key", key, "--migrate", "10"], nd);
    assert!(out.contains(": success"), "{out}");
    assert_eq!(ok(&["contract", "query", &upgradable, "doubled"], nd).trim(), "8", "storage kept across the upgrade");
    assert_eq!(ok(&["contract", "query", &upgradable, "describe"], nd).trim(), r#"["v1",10]"#, "the migration ran");
    let info = ok(&["contract", "info", &upgradable], nd);
    assert!(info.contains(&format!("previous  {}", sm3_hex(&v1))), "{info}");
    assert!(info.contains("query  doubled() -> u64"), "{info}");
    // Someone else may not upgrade it.
    let stranger = n.path().join("stranger.pem");
    let kp = crate::support::suite("gm").crypto().generate_key("sm2").unwrap();
    std::fs::write(&stranger, joule_crypto::pem::encode("PRIVATE KEY", &kp.private_key)).unwrap();
    let (code_, out, err) = run(joule().args(["contract", "upgrade", &upgradable, wasm_arg, "--key"]).arg(&stranger).arg("--dir").arg(nd));
    assert_ne!(code_, 0, "{out}{err}");
    assert!(format!("{out}{err}").contains("is not the upgrade authority"), "{out}{err}");
    node.kill();
}

fn sm3_hex(data: &[u8]) -> String {
    use sm3::Digest;
    hex::encode(sm3::Sm3::digest(data))
}
