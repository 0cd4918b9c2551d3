//! `joule user …`: the users of a node's admin API (guide §5.2.5), in its node.toml with
//! Argon2id password hashes (never the password). A running node takes the change at once
//! (`PUT /v1/config/node` with its admin token); otherwise it applies at its next start.

use super::chain_cmd::NodeSel;
use anyhow::{Context, Result, bail};
use joule_node::config::{Config, NODE_FILE};
use joule_node::users::UserConfig;
use joule_support::fs::Mode;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum UserCmd {
    /// Add a user (or, with --replace, change one's password and roles).
    Add {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// A role: `admin` uses the admin API; repeat for more.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A file whose first line is the password (default: JOULE_PASSWORD, else a line of
        /// standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[arg(long)]
        replace: bool,
    },
    /// Remove a user; its sessions end.
    Remove {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// The node's users and their roles.
    List {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Sign in and print a session token (for JOULE_ADMIN_TOKEN or `--admin-token`).
    Login {
        #[arg(long)]
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        sel: NodeSel,
    },
}

pub fn run(cmd: UserCmd) -> Result<()> {
    match cmd {
        UserCmd::Add { dir, name, roles, password_file, replace } => {
            let mut config = load(&dir)?;
            if config.node.users.iter().any(|u| u.name == name) && !replace {
                bail!("user {name} exists: give --replace to change its password and roles");
            }
            let password = password(password_file.as_deref())?;
            let password_hash = joule_node::users::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let user = UserConfig { name: name.clone(), password_hash, roles };
            user.check().map_err(|e| anyhow::anyhow!("{e}"))?;
            config.node.users.retain(|u| u.name != name);
            config.node.users.push(user);
            save(&dir, &config)?;
            println!("user {name} added to {} (its password is kept as an Argon2id hash)", dir.join(NODE_FILE).display());
            Ok(())
        }
        UserCmd::Remove { dir, name } => {
            let mut config = load(&dir)?;
            let before = config.node.users.len();
            config.node.users.retain(|u| u.name != name);
            if config.node.users.len() == before {
                bail!("no user {name} in {}", dir.join(NODE_FILE).display());
            }
            save(&dir, &config)?;
            println!("user {name} removed");
            Ok(())
        }
        UserCmd::List { dir } => {
            let config = load(&dir)?;
            if config.node.users.is_empty() {
                println!("no users (the admin token only)");
            }
            for u in &config.node.users {
                println!("{}  roles: {}", u.name, if u.roles.is_empty() { "none".into() } else { u.roles.join(", ") });
            }
            println!("admin token: {}", if config.node.admin_token { "on" } else { "off" });
            Ok(())
        }
        UserCmd::Login { name, password_file, sel } => {
            let password = password(password_file.as_deref())?;
            let v = sel.client()?.post_json("/v1/login", &serde_json::json!({"name": name, "password": password}))?;
            println!("{}", v["token"].as_str().context("no token in the answer")?);
            Ok(())
        }
    }
}

fn load(dir: &Path) -> Result<Config> {
    Config::load(dir)?.with_context(|| format!("{} has no node configuration: run `joule init` first", dir.display()))
}

/// Write node.toml, and hand it to the node if it is running.
fn save(dir: &Path, config: &Config) -> Result<()> {
    let text = config.node.to_toml();
    joule_node::config::NodeConfig::parse(&text)?;
    let addr = dir.join(joule_client::wire::API_ADDR_FILE);
    let token = std::fs::read_to_string(dir.join(joule_client::wire::ADMIN_TOKEN_FILE)).ok();
    if let (Ok(addr), Some(token)) = (std::fs::read_to_string(&addr), token) {
        let client = joule_client::ApiClient::new(&format!("http://{}", addr.trim()), Some(token.trim().to_string()));
        if client.put_toml("/v1/config/node", &text).is_ok() {
            println!("the running node took the change");
            return Ok(());
        }
    }
    joule_support::fs::write_atomic(&dir.join(NODE_FILE), text.as_bytes(), Mode::Private)
        .with_context(|| format!("write {}", dir.join(NODE_FILE).display()))?;
    println!("the node takes the change at its next start");
    Ok(())
}

/// The password: a file's first line, JOULE_PASSWORD, or a line of standard input.
fn password(file: Option<&Path>) -> Result<String> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?,
        None => match std::env::var("JOULE_PASSWORD") {
            Ok(p) => p,
            Err(_) => {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).context("read the password from standard input")?;
                line
            }
        },
    };
    let p = text.lines().next().unwrap_or_default().to_string();
    if p.is_empty() {
        bail!("no password given (--password-file, JOULE_PASSWORD, or standard input)");
    }
    Ok(p)
}
