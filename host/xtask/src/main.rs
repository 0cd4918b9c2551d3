//! `cargo xtask` — the project's own build tooling.
//!
//! * `cargo xtask plugins` builds every plugin for `wasm32-unknown-unknown` (installing the
//!   target with rustup if it is missing) and packs it (component + manifest) into
//!   `target/plugins/` (the first-party plugins a node loads by default, `consensus-bft`
//!   from its own workspace among them) and
//!   `target/test-plugins/` (the vendor example and the test fixtures).
//! * `cargo xtask contracts` builds the example contracts and the hostile contract fixtures
//!   (`examples-contracts/`, its own workspace) for `wasm32-unknown-unknown`, one crate at a
//!   time, and copies each core module, as built, to `target/contracts/CRATE-NAME.wasm` (the
//!   node prepares and componentizes a module at deployment), printing its size and SHA-256.
//! * `cargo xtask test [ARGS]` builds the plugins and the contracts, runs
//!   `cargo test --workspace ARGS`, then (without ARGS) the other workspaces' tests natively
//!   (`cargo test` in `plugins/`, `plugins/crypto-vendor-example/`, `plugins/consensus-bft/`,
//!   `examples-contracts/` and
//!   `contracts-std/`) and fuzzes the decoders for `JOULE_FUZZ_SECONDS` each (default 15).
//!   Each workspace's tests start with a line `xtask: test workspace NAME` (NAME: `host`,
//!   `plugins`, `vendor-example`, `consensus-bft`, `examples`, `contracts-std`), which `.ci/run` uses to count
//!   them per workspace against `.ci/expected-tests`.
//! * `cargo xtask demo` builds the plugins, the contracts and a release `joule`, then runs
//!   `joule up --nodes 4` (a local network with sample traffic and the market; Ctrl-C
//!   stops it).
//! * `cargo xtask fuzz [SECONDS]` builds the decoder fuzz targets (`host/primitives/fuzz`,
//!   cargo-fuzz layout) with libFuzzer's coverage instrumentation on stable Rust, and runs
//!   each for SECONDS (default 30). A crash fails the command and leaves its input in
//!   `target/fuzz/artifacts/`.

mod fuzz_seeds;

use anyhow::{Context, Result, bail};
use joule_plugin_manifest::{Manifest, cargo_package_version, pack};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Plugins a node loads by default.
const FIRST_PARTY: &[&str] = &["crypto-gm", "crypto-intl", "crypto-extra", "consensus-poa", "consensus-pow"];
/// Fixtures for the host's tests (hostile and deliberately wrong plugins).
const FIXTURES: &[&str] = &["fake-sm3", "hostile", "hostile-consensus", "empty-cipher", "crypto-0-1-0"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("plugins") => build_plugins(&root),
        Some("contracts") => build_contracts(&root),
        Some("test") => {
            build_plugins(&root)?;
            build_contracts(&root)?;
            let every = args.len() == 1;
            test(&root, &args[1..])?;
            // The decoders' fuzz targets, briefly (JOULE_FUZZ_SECONDS each; 0 skips).
            let seconds = std::env::var("JOULE_FUZZ_SECONDS").ok().map(|s| s.parse::<u64>()).transpose().context("JOULE_FUZZ_SECONDS")?.unwrap_or(15);
            if seconds > 0 && every { fuzz(&root, seconds) } else { Ok(()) }
        }
        Some("demo") => {
            build_plugins(&root)?;
            build_contracts(&root)?;
            run(Command::new(cargo()).current_dir(&root).args(["build", "--release", "--bin", "joule"]))?;
            let joule = root.join("target/release/joule");
            run(Command::new(joule).current_dir(&root).arg("--plugin-dir").arg(root.join("target/plugins")).args(["up", "--nodes", "4"]).args(&args[1..]))
        }
        Some("fuzz") => fuzz(&root, args.get(1).map(|s| s.parse::<u64>()).transpose().context("SECONDS must be a whole number")?.unwrap_or(30)),
        _ => {
            eprintln!("usage: cargo xtask plugins | contracts | test [CARGO TEST ARGS] | demo | fuzz [SECONDS]");
            std::process::exit(2);
        }
    }
}

/// The fuzz targets of `host/primitives/fuzz`.
const FUZZ_TARGETS: &[&str] = &["decode_tx", "decode_block", "decode_json"];

/// Build with the instrumentation cargo-fuzz uses (SanitizerCoverage for libFuzzer; no
/// sanitizer, so no nightly), then run each target for `seconds` from a seeded corpus.
fn fuzz(root: &Path, seconds: u64) -> Result<()> {
    let dir = root.join("host/primitives/fuzz");
    let out = Command::new("rustc").arg("-vV").output().context("rustc -vV")?;
    let host = String::from_utf8_lossy(&out.stdout).lines().find_map(|l| l.strip_prefix("host: ").map(str::to_string)).context("host triple")?;
    let flags = [
        "-Cpasses=sancov-module",
        "-Cllvm-args=-sanitizer-coverage-level=4",
        "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
        "-Cllvm-args=-sanitizer-coverage-pc-table",
        "-Cllvm-args=-sanitizer-coverage-trace-compares",
        "--cfg",
        "fuzzing",
        "-Cdebug-assertions",
        "-Coverflow-checks",
    ];
    let target_dir = root.join("target/fuzz");
    let mut build = Command::new(cargo());
    build
        .current_dir(&dir)
        .args(["build", "--release", "--target", &host, "--target-dir"])
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env_remove("RUSTFLAGS");
    run(&mut build)?;
    let bin = target_dir.join(&host).join("release");
    let corpus = target_dir.join("corpus");
    let artifacts = target_dir.join("artifacts");
    std::fs::create_dir_all(&artifacts)?;
    fuzz_seeds::write(&corpus)?;
    for t in FUZZ_TARGETS {
        eprintln!("xtask: fuzzing {t} for {seconds} s");
        run(Command::new(bin.join(t))
            .arg(corpus.join(t))
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/{t}-", artifacts.display()))
            .arg("-max_len=65536")
            .arg("-print_final_stats=1"))?;
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    // host/xtask -> repository root
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// `rustup target add` when the wasm target's standard library is not installed.
fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustc").args(["--print", "target-libdir", "--target", WASM_TARGET]).output();
    let installed = match out {
        Ok(o) if o.status.success() => {
            Path::new(String::from_utf8_lossy(&o.stdout).trim()).join("libcore").exists()
                || std::fs::read_dir(String::from_utf8_lossy(&o.stdout).trim())
                    .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libcore")))
                    .unwrap_or(false)
        }
        _ => false,
    };
    if !installed {
        eprintln!("xtask: installing the {WASM_TARGET} target");
        run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    Ok(())
}

/// A cargo command for a plugin workspace, clean of the outer build's flags (the plugins'
/// own `.cargo/config.toml` sets their rustflags, and cargo reads it from the cwd).
fn plugin_cargo(dir: &Path) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(dir);
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER"] {
        cmd.env_remove(var);
    }
    cmd
}

/// `cargo build --release` of a plugin workspace for the wasm target.
fn wasm_cargo(dir: &Path) -> Command {
    let mut cmd = plugin_cargo(dir);
    cmd.args(["build", "--release", "--target", WASM_TARGET]);
    cmd
}

/// The workspaces whose tests `cargo xtask test` runs: `(name, directory under the root)`.
/// The names are the ones `.ci/expected-tests` lists.
const TEST_WORKSPACES: &[(&str, &str)] = &[
    ("host", "."),
    ("plugins", "plugins"),
    ("vendor-example", "plugins/crypto-vendor-example"),
    ("consensus-bft", "plugins/consensus-bft"),
    ("examples", "examples-contracts"),
    ("contracts-std", "contracts-std"),
];

/// `cargo test --workspace ARGS` for the host; without ARGS also `cargo test` natively (host
/// target, none of the outer build's flags) in each plugin workspace. ARGS are the host's
/// (`-p CRATE`, a filter): with them only the host's tests run. Every workspace runs even
/// when an earlier one fails, and every test binary of a workspace (`--no-fail-fast`), so a
/// failure never hides how many tests the others ran.
fn test(root: &Path, args: &[String]) -> Result<()> {
    let mut failed = Vec::new();
    for &(name, dir) in TEST_WORKSPACES {
        let mut cmd = if name == "host" {
            let mut c = Command::new(cargo());
            c.current_dir(root).args(["test", "--workspace", "--no-fail-fast"]).args(args);
            c
        } else if args.is_empty() {
            let mut c = plugin_cargo(&root.join(dir));
            c.args(["test", "--no-fail-fast"]);
            c
        } else {
            continue;
        };
        eprintln!("xtask: test workspace {name}");
        if let Err(e) = run(&mut cmd) {
            eprintln!("xtask: {e:#}");
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        bail!("tests failed in: {}", failed.join(", "));
    }
    Ok(())
}

fn build_plugins(root: &Path) -> Result<()> {
    ensure_wasm_target()?;
    let plugins = root.join("plugins");
    run(&mut wasm_cargo(&plugins))?;
    // The hot-swap fixture a second time, tagged v2, in its own target dir.
    run(wasm_cargo(&plugins).args(["-p", "tagged", "--target-dir", "target/tag-v2"]).env("JOULE_FIXTURE_TAG", "v2"))?;
    // The vendor example is built the way a vendor builds it: its own workspace.
    let vendor = plugins.join("crypto-vendor-example");
    run(&mut wasm_cargo(&vendor))?;
    // So is the BFT engine, which shows the consensus world fits an engine nobody in the
    // plugins workspace wrote; it ships with the first-party plugins.
    let bft = plugins.join("consensus-bft");
    run(&mut wasm_cargo(&bft))?;

    let out = root.join("target/plugins");
    let test_out = root.join("target/test-plugins");
    let release = plugins.join("target").join(WASM_TARGET).join("release");
    for name in FIRST_PARTY {
        pack_crate(&plugins.join(name), &release, &out)?;
    }
    for name in FIXTURES {
        pack_crate(&plugins.join("fixtures").join(name), &release, &test_out)?;
    }
    pack_crate(&plugins.join("fixtures/tagged"), &release, &test_out.join("tagged-v1"))?;
    let v2 = pack_crate_with(
        &plugins.join("fixtures/tagged"),
        &plugins.join("target/tag-v2").join(WASM_TARGET).join("release"),
        &test_out.join("tagged-v2"),
        |m| {
            m.version = "0.2.0".into();
            for k in &mut m.known_answers {
                let input = hex::decode(&k.input).unwrap_or_default();
                k.output = hex::encode(Sha256::new().chain_update(b"v2").chain_update(&input).finalize());
            }
        },
    )?;
    eprintln!("xtask: tagged v2 packed as {}", v2.version);
    pack_crate(&vendor, &vendor.join("target").join(WASM_TARGET).join("release"), &test_out)?;
    pack_crate(&bft, &bft.join("target").join(WASM_TARGET).join("release"), &out)?;
    eprintln!("xtask: plugins in {} and {}", out.display(), test_out.display());
    Ok(())
}

/// Build every crate of the `examples-contracts` workspace for the wasm target and copy its
/// core module to `target/contracts/CRATE-NAME.wasm`. One `cargo build -p` per crate: in a
/// single build, a contract that another depends on with `features = ["no-export"]` would be
/// compiled with that feature (features unify) and lose its own `entry` export.
fn build_contracts(root: &Path) -> Result<()> {
    ensure_wasm_target()?;
    let dir = root.join("examples-contracts");
    let workspace: toml::Table = toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).context("examples-contracts/Cargo.toml")?)?;
    let members = workspace.get("workspace").and_then(|w| w.get("members")).and_then(|m| m.as_array()).context("examples-contracts: no workspace.members")?;
    let mut names = Vec::new();
    for member in members {
        let member = member.as_str().context("a workspace member is not a string")?;
        let manifest: toml::Table =
            toml::from_str(&std::fs::read_to_string(dir.join(member).join("Cargo.toml")).with_context(|| format!("{member}/Cargo.toml"))?)?;
        let name = manifest.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str()).with_context(|| format!("{member}: no package.name"))?;
        names.push(name.to_string());
    }
    for name in &names {
        run(wasm_cargo(&dir).args(["-p", name]))?;
    }
    let release = dir.join("target").join(WASM_TARGET).join("release");
    let out = root.join("target/contracts");
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    for name in &names {
        let built = release.join(format!("{}.wasm", name.replace('-', "_")));
        let wasm = std::fs::read(&built).with_context(|| format!("read {}", built.display()))?;
        std::fs::write(out.join(format!("{name}.wasm")), &wasm).with_context(|| format!("write {name}.wasm"))?;
        eprintln!("xtask: contract {name:<26} {:>8} bytes  sha256 {}", wasm.len(), hex::encode(Sha256::digest(&wasm)));
    }
    eprintln!("xtask: contracts in {}", out.display());
    Ok(())
}

fn pack_crate(dir: &Path, release: &Path, out: &Path) -> Result<Manifest> {
    pack_crate_with(dir, release, out, |_| {})
}

/// Pack one plugin crate: its `plugin.toml` plus the version from its `Cargo.toml`.
fn pack_crate_with(dir: &Path, release: &Path, out: &Path, adjust: impl FnOnce(&mut Manifest)) -> Result<Manifest> {
    let cargo_toml: toml::Table = toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml"))?)?;
    let package = cargo_toml.get("package").and_then(|p| p.as_table()).context("no [package]")?;
    let crate_name = package.get("name").and_then(|v| v.as_str()).context("no package.name")?;
    let version = cargo_package_version(dir).with_context(|| format!("{}/Cargo.toml: no package version (nor a workspace one)", dir.display()))?;
    let mut template: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("plugin.toml")).with_context(|| format!("{}/plugin.toml", dir.display()))?)?;
    template.insert("version".into(), toml::Value::String(version));
    let mut manifest = Manifest::parse(&toml::to_string(&template)?).with_context(|| format!("{}/plugin.toml", dir.display()))?;
    adjust(&mut manifest);
    let wasm_path = release.join(format!("{}.wasm", crate_name.replace('-', "_")));
    let wasm = std::fs::read(&wasm_path).with_context(|| format!("read {}", wasm_path.display()))?;
    let (manifest, _) = pack(&wasm, manifest, out).with_context(|| format!("pack {}", dir.display()))?;
    Ok(manifest)
}
