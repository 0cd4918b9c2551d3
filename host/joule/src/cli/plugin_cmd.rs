//! `joule plugin …`: list the plugins a directory provides; pack and sign plugins the way
//! a vendor ships them.

use super::{GlobalOpts, read_input};
use anyhow::{Context, Result};
use clap::Subcommand;
use joule_crypto::pem;
use joule_plugin_manifest::{Manifest, VendorSignature, pack};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum PluginCmd {
    /// Load the plugin directory and list every plugin (runs their self-tests).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Package a built plugin: componentize the wasm, record its hash, optionally sign.
    Pack {
        /// The built `.wasm` (core module with wit-bindgen's type section, or a component).
        #[arg(long)]
        wasm: PathBuf,
        /// The plugin's `plugin.toml` (name, kind, vendor, algorithms, known answers).
        #[arg(long)]
        manifest: PathBuf,
        /// Version, overriding the manifest's. Without it, a manifest that has none takes
        /// the version of the `Cargo.toml` beside it (`[package] version`, or its workspace's).
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        out: PathBuf,
        /// Vendor's private key (PKCS#8 PEM, Ed25519 or SM2) to sign the manifest with.
        #[arg(long)]
        sign_key: Option<PathBuf>,
    },
    /// Sign (or re-sign) a packed manifest in place.
    Sign {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

pub fn run(g: &GlobalOpts, cmd: PluginCmd) -> Result<()> {
    match cmd {
        PluginCmd::List { json } => {
            let c = g.crypto()?;
            let list = c.registry().list();
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no plugins (plugin directory: {})", g.plugin_dir().map(|d| d.display().to_string()).unwrap_or_else(|| "none".into()));
            } else {
                for p in list {
                    println!(
                        "{:<24} {:<8} {:<8} {:<7} {}  {}",
                        p.name,
                        p.kind,
                        p.version,
                        if p.active { "active" } else { "-" },
                        &p.hash[..16],
                        p.algorithms.join(" ")
                    );
                }
            }
            Ok(())
        }
        PluginCmd::Pack { wasm, manifest, version, out, sign_key } => {
            let text = std::fs::read_to_string(&manifest).with_context(|| format!("read {}", manifest.display()))?;
            let mut table: toml::Table = toml::from_str(&text).with_context(|| format!("parse {}", manifest.display()))?;
            let version = match version {
                Some(v) => Some(v),
                None if table.contains_key("version") => None,
                None => Some(crate_version(&manifest)?),
            };
            if let Some(v) = version {
                table.insert("version".into(), toml::Value::String(v));
            }
            let m = Manifest::parse(&toml::to_string(&table)?)?;
            let bytes = read_input(&wasm)?;
            let (m, toml_path) = pack(&bytes, m, &out)?;
            if let Some(key) = sign_key {
                sign_manifest_file(g, &toml_path, &key)?;
            }
            println!("packed {} {} ({}) into {}", m.name, m.version, &m.wasm_sha256[..16], out.display());
            Ok(())
        }
        PluginCmd::Sign { manifest, key } => sign_manifest_file(g, &manifest, &key),
    }
}

/// The version of the crate a manifest sits in: its `Cargo.toml`'s, as `cargo` reads it.
fn crate_version(manifest: &Path) -> Result<String> {
    let dir = match manifest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    joule_plugin_manifest::cargo_package_version(dir).with_context(|| {
        format!(
            "{} has no version, and {} declares none (nor does its workspace): add `version = \"X.Y.Z\"` to one of them, or pass --version",
            manifest.display(),
            dir.join("Cargo.toml").display()
        )
    })
}

/// Sign a manifest file in place with a vendor key, through the crypto plugins.
fn sign_manifest_file(g: &GlobalOpts, path: &Path, key: &Path) -> Result<()> {
    let mut m = Manifest::parse(&std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?)?;
    let sk = zeroize::Zeroizing::new(pem::decode(pem::PRIVATE_KEY, &read_input(key)?)?);
    let alg = super::crypto_cmd::infer_algorithm(&sk).filter(|a| *a == "ed25519" || *a == "sm2").context("vendor keys must be Ed25519 or SM2")?;
    let c = g.crypto()?;
    let public_key = c.public_key(alg, &sk)?;
    let value = c.sign(alg, &sk, &m.signing_bytes(), None)?;
    m.signature = Some(VendorSignature { algorithm: alg.into(), public_key: hex::encode(public_key), value: hex::encode(value) });
    // The node checks this natively; check here too so a bad signature never ships.
    joule_kernel::trust::verify_vendor_signature(m.signature.as_ref().context("signature")?, &m.signing_bytes()).map_err(anyhow::Error::msg)?;
    std::fs::write(path, m.to_toml()).with_context(|| format!("write {}", path.display()))?;
    println!("signed {} with {alg}", path.display());
    Ok(())
}
