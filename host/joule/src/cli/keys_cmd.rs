//! `joule keys …`: the encrypted keystore. The passphrase comes from
//! `JOULE_KEYSTORE_PASSPHRASE` (or `--passphrase-file`), never from the command line.

use super::GlobalOpts;
use anyhow::{Context, Result};
use clap::Subcommand;
use joule_node::keystore::{DEFAULT_KDF_MEMORY_KIB, Keystore, Right};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct StoreArgs {
    /// The keystore file.
    #[arg(long, env = "JOULE_KEYSTORE")]
    keystore: PathBuf,
    /// A file whose first line is the passphrase (else JOULE_KEYSTORE_PASSPHRASE).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Create a keystore sealed with an AEAD cipher from the active plugins.
    Init {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value = "sm4-gcm")]
        cipher: String,
    },
    /// Set a slot's algorithm and rotation interval (e.g. `30d`, `12h`, `90m`).
    Policy {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        module: String,
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        alg: String,
        #[arg(long)]
        rotate_every: Option<String>,
    },
    /// Rotate one slot now, or (`--due`) every slot whose interval has passed.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, required_unless_present = "due")]
        module: Option<String>,
        #[arg(long, required_unless_present = "due")]
        purpose: Option<String>,
        #[arg(long)]
        due: bool,
    },
    /// Let a module read or use another module's keys.
    Grant {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        grantee: String,
        #[arg(long)]
        module: String,
        #[arg(long)]
        purpose: String,
        #[arg(long, value_parser = ["read", "use"])]
        right: String,
    },
    /// List slots and keys (public metadata only).
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
}

fn passphrase(s: &StoreArgs) -> Result<zeroize::Zeroizing<String>> {
    let p = match &s.passphrase_file {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?.lines().next().unwrap_or_default().to_string(),
        None => std::env::var("JOULE_KEYSTORE_PASSPHRASE").context("set JOULE_KEYSTORE_PASSPHRASE or pass --passphrase-file")?,
    };
    anyhow::ensure!(p.len() >= 8, "the keystore passphrase must be at least 8 characters");
    Ok(zeroize::Zeroizing::new(p))
}

/// `30d`, `12h`, `90m`, `45s` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => anyhow::bail!("bad duration unit in {s:?} (s, m, h, d)"),
    };
    Ok(Duration::from_secs(n.checked_mul(mult).context("duration too large")?))
}

fn open(g: &GlobalOpts, s: &StoreArgs) -> Result<Keystore> {
    Ok(Keystore::open(&s.keystore, passphrase(s)?.as_bytes(), g.crypto()?)?)
}

pub fn run(g: &GlobalOpts, cmd: KeysCmd) -> Result<()> {
    match cmd {
        KeysCmd::Init { store, cipher } => {
            let ks = Keystore::create(&store.keystore, passphrase(&store)?.as_bytes(), &cipher, g.crypto()?, DEFAULT_KDF_MEMORY_KIB)?;
            println!("created {} sealed with {}", store.keystore.display(), ks.cipher());
        }
        KeysCmd::Policy { store, module, purpose, alg, rotate_every } => {
            let every = rotate_every.as_deref().map(parse_duration).transpose()?;
            let slot = open(g, &store)?.set_policy(&module, &purpose, &alg, every)?;
            println!(
                "{}/{}: {} ({}), rotate every {}",
                slot.module,
                slot.purpose,
                slot.algorithm,
                slot.kind,
                slot.rotate_every.map(|s| format!("{s}s")).unwrap_or_else(|| "never (on demand)".into())
            );
        }
        KeysCmd::Rotate { store, module, purpose, due } => {
            let ks = open(g, &store)?;
            let rotated = if due {
                ks.rotate_due(joule_support::now_secs())?
            } else {
                vec![ks.rotate(module.as_deref().unwrap_or_default(), purpose.as_deref().unwrap_or_default())?]
            };
            for k in rotated {
                println!("{} is now current", k.id());
            }
        }
        KeysCmd::Grant { store, grantee, module, purpose, right } => {
            let r = if right == "use" { Right::Use } else { Right::Read };
            open(g, &store)?.grant(&grantee, &module, &purpose, r)?;
            println!("{grantee} may {right} keys of {module}/{purpose}");
        }
        KeysCmd::List { store, json } => {
            let ks = open(g, &store)?;
            let (slots, keys) = (ks.slots()?, ks.keys()?);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"slots": slots, "keys": keys.iter().map(|k| serde_json::json!({"module": k.module, "purpose": k.purpose, "period": k.period, "algorithm": k.algorithm, "created_at": k.created_at, "retired_at": k.retired_at, "public_key": k.public_key})).collect::<Vec<_>>()})
                    )?
                );
            } else {
                for k in keys {
                    println!("{}/{}/{} {} {}", k.module, k.purpose, k.period, k.algorithm, if k.retired_at.is_some() { "retired" } else { "current" });
                }
            }
        }
    }
    Ok(())
}
