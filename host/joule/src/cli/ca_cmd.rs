//! `joule ca …`: certificates on a channel with certificates (guide §6.1), over the node's
//! HTTP API. An applicant makes its key and request here (`apply`: only the request leaves
//! the machine) and fetches the outcome (`status`); an admin of the organisation reviews
//! (`list`, `approve`, `reject`), revokes and renews on a node that holds the
//! organisation's CA key.

use super::chain_cmd::NodeSel;
use anyhow::{Context, Result, bail};
use joule_client::ApiClient;
use joule_pki::SigAlg;
use joule_support::fs::Mode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// The node to ask, with its admin token.
#[derive(clap::Args, Clone, Debug)]
pub struct CaAdmin {
    #[command(flatten)]
    pub sel: NodeSel,
    /// The node's admin token. Default: JOULE_ADMIN_TOKEN, else DIR/admin.token with --dir.
    #[arg(long, env = "JOULE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Return once the node admitted the transaction, without waiting for its block.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(clap::Subcommand)]
pub enum CaCmd {
    /// The channel's root and member organisations, or an account's certificate.
    Show {
        /// An account id (64 hex digits).
        account: Option<String>,
        #[command(flatten)]
        sel: NodeSel,
    },
    /// Apply for a certificate: make a key (or take a request made elsewhere, e.g. by
    /// `openssl req`) and send the request for review.
    Apply {
        /// The member organisation to certify you.
        #[arg(long)]
        organisation: String,
        /// The subject to ask for (RFC 4514), e.g. `CN=meter-0042,O=Grid Co`.
        #[arg(long, required_unless_present = "csr")]
        subject: Option<String>,
        /// Where to write the new private key (PKCS#8 PEM, mode 0600).
        #[arg(long, required_unless_present = "csr", conflicts_with = "csr")]
        key_out: Option<PathBuf>,
        /// A PKCS#10 request (PEM or DER) made elsewhere, instead of a new key.
        #[arg(long)]
        csr: Option<PathBuf>,
        /// A role to ask for (`client`, `admin`, `peer`); repeat for more.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Your name, for the reviewer.
        #[arg(long, default_value = "")]
        name: String,
        /// How to reach you, for the reviewer.
        #[arg(long, default_value = "")]
        contact: String,
        #[command(flatten)]
        sel: NodeSel,
    },
    /// An application's outcome; with --out, write the certificate once issued.
    Status {
        id: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        sel: NodeSel,
    },
    /// Applications this node keeps (admin).
    List {
        #[command(flatten)]
        admin: CaAdmin,
    },
    /// Approve an application: the node issues the certificate and records it on chain.
    Approve {
        id: String,
        /// The roles to certify (default: those asked for); repeat for more.
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long, default_value_t = 365)]
        days: u32,
        #[command(flatten)]
        admin: CaAdmin,
    },
    /// Reject an application, saying why.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        admin: CaAdmin,
    },
    /// Revoke an account's certificate (a new CRL goes on chain with it); a node's, by its
    /// network key: it is dropped by its peers within a block and cannot reconnect.
    Revoke {
        #[arg(required_unless_present = "network_key")]
        account: Option<String>,
        /// A node's network key (`joule net key` prints it), instead of an account.
        #[arg(long, conflicts_with = "account")]
        network_key: Option<String>,
        #[command(flatten)]
        admin: CaAdmin,
    },
    /// Renew an account's certificate: same subject and key, new serial and validity.
    Renew {
        #[arg(required_unless_present = "network_key")]
        account: Option<String>,
        /// A node's network key, instead of an account.
        #[arg(long, conflicts_with = "account")]
        network_key: Option<String>,
        #[arg(long, default_value_t = 365)]
        days: u32,
        #[command(flatten)]
        admin: CaAdmin,
    },
    /// An organisation's last CRL.
    Crl {
        organisation: String,
        /// Where to write it (default: standard output, PEM).
        #[arg(long)]
        out: Option<PathBuf>,
        /// DER instead of PEM.
        #[arg(long)]
        der: bool,
        #[command(flatten)]
        sel: NodeSel,
    },
}

pub fn run(ctx: &super::GlobalOpts, cmd: CaCmd) -> Result<()> {
    match cmd {
        CaCmd::Show { account, sel } => {
            let client = sel.client()?;
            let q = channel_query(&sel, '?');
            let v = match &account {
                Some(a) => client.get(&format!("/v1/pki/certificates/{a}{q}"))?,
                None => client.get(&format!("/v1/pki{q}"))?,
            };
            if sel.json || account.is_some() {
                print_json(&v);
            } else if v["certificates"] != true {
                println!("this channel has no certificates: any key may send");
            } else {
                println!("organisations:");
                for o in v["organisations"].as_array().into_iter().flatten() {
                    let crl = o["crl_number"].as_str().filter(|n| !n.is_empty()).map_or("no CRL yet".to_string(), |n| format!("CRL number {n}"));
                    println!("  {}  CA {}  ({crl})", o["name"].as_str().unwrap_or("?"), o["ca_subject"].as_str().unwrap_or("?"));
                }
            }
            Ok(())
        }
        CaCmd::Apply { organisation, subject, key_out, csr, roles, name, contact, sel } => {
            let client = sel.client()?;
            let csr_pem = match (&csr, &key_out, &subject) {
                (Some(path), _, _) => {
                    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
                    if bytes.starts_with(b"-----BEGIN") {
                        String::from_utf8(bytes).with_context(|| format!("{} is not text", path.display()))?
                    } else {
                        joule_crypto::pem::encode("CERTIFICATE REQUEST", &bytes)
                    }
                }
                (None, Some(out), Some(subject)) => new_key_and_request(ctx, &client, &sel, out, subject)?,
                _ => bail!("give --subject and --key-out (a new key), or --csr FILE"),
            };
            let q = channel_query(&sel, '?');
            let a = client.post_json(
                &format!("/v1/pki/applications{q}"),
                &json!({"organisation": organisation, "csr": csr_pem, "roles": roles, "applicant": {"name": name, "contact": contact}}),
            )?;
            if sel.json {
                print_json(&a);
            } else {
                let id = a["id"].as_str().unwrap_or("?");
                println!("application {id} sent to organisation {organisation} for account {}", a["account"].as_str().unwrap_or("?"));
                println!("once an admin has reviewed it: joule ca status {id} --out CERT.pem");
            }
            Ok(())
        }
        CaCmd::Status { id, out, sel } => {
            let a = sel.client()?.get(&format!("/v1/pki/applications/{id}"))?;
            if sel.json {
                print_json(&a);
            }
            match a["status"].as_str() {
                Some("approved") => {
                    if let Some(out) = out {
                        joule_support::fs::write_atomic(&out, a["certificate"].as_str().unwrap_or_default().as_bytes(), Mode::Default)?;
                        println!("approved: certificate (serial {}) written to {}", a["serial"].as_str().unwrap_or("?"), out.display());
                    } else if !sel.json {
                        println!("approved: serial {}, recorded by transaction {}", a["serial"].as_str().unwrap_or("?"), a["tx"].as_str().unwrap_or("?"));
                    }
                    Ok(())
                }
                Some("rejected") => Err(super::Negative(format!("rejected: {}", a["reason"].as_str().unwrap_or("?"))).into()),
                _ => Err(super::Negative("pending: no admin has reviewed it yet".into()).into()),
            }
        }
        CaCmd::List { admin } => {
            let v = admin_client(&admin)?.get("/v1/pki/applications")?;
            if admin.sel.json {
                print_json(&v);
                return Ok(());
            }
            let all = v.as_array().cloned().unwrap_or_default();
            if all.is_empty() {
                println!("no applications");
            }
            for a in all {
                println!(
                    "{}  {:8}  {}  {}  roles {}  from {:?} {:?}",
                    a["id"].as_str().unwrap_or("?"),
                    a["status"].as_str().unwrap_or("?"),
                    a["organisation"].as_str().unwrap_or("?"),
                    a["subject"].as_str().unwrap_or("?"),
                    a["roles"],
                    a["applicant"]["name"].as_str().unwrap_or(""),
                    a["applicant"]["contact"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        CaCmd::Approve { id, roles, days, admin } => {
            let client = admin_client(&admin)?;
            let mut body = json!({"days": days});
            if !roles.is_empty() {
                body["roles"] = json!(roles);
            }
            let a = client.post_json(&format!("/v1/pki/applications/{id}/approve"), &body)?;
            wait(&admin, &client, a["tx"].as_str().unwrap_or_default(), "the certificate")?;
            if admin.sel.json {
                print_json(&a);
            } else {
                println!("issued serial {} to {} and recorded it on chain", a["serial"].as_str().unwrap_or("?"), a["subject"].as_str().unwrap_or("?"));
            }
            Ok(())
        }
        CaCmd::Reject { id, reason, admin } => {
            let a = admin_client(&admin)?.post_json(&format!("/v1/pki/applications/{id}/reject"), &json!({"reason": reason}))?;
            if admin.sel.json {
                print_json(&a);
            } else {
                println!("rejected application {id}");
            }
            Ok(())
        }
        CaCmd::Revoke { account, network_key, admin } => {
            let client = admin_client(&admin)?;
            let q = channel_query(&admin.sel, '?');
            let r = client.post_json(&format!("/v1/pki/revocations{q}"), &target(&account, &network_key))?;
            let account = r["account"].as_str().unwrap_or("?").to_string();
            wait(&admin, &client, r["tx"].as_str().unwrap_or_default(), "the revocation")?;
            if admin.sel.json {
                print_json(&r);
            } else {
                println!(
                    "revoked serial {} of organisation {}: from the next block no node admits account {account}",
                    r["serial"].as_str().unwrap_or("?"),
                    r["organisation"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        CaCmd::Renew { account, network_key, days, admin } => {
            let client = admin_client(&admin)?;
            let q = channel_query(&admin.sel, '?');
            let mut body = target(&account, &network_key);
            body["days"] = json!(days);
            let r = client.post_json(&format!("/v1/pki/renewals{q}"), &body)?;
            let account = r["account"].as_str().unwrap_or("?").to_string();
            wait(&admin, &client, r["tx"].as_str().unwrap_or_default(), "the renewal")?;
            if admin.sel.json {
                print_json(&r);
            } else {
                println!("renewed account {account}'s certificate: new serial {}", r["serial"].as_str().unwrap_or("?"));
            }
            Ok(())
        }
        CaCmd::Crl { organisation, out, der, sel } => {
            let client = sel.client()?;
            let q = channel_query(&sel, '&');
            let format = if der { "der" } else { "pem" };
            let bytes = client.get_bytes(&format!("/v1/pki/organisations/{organisation}/crl?format={format}{q}"))?;
            match out {
                Some(path) => joule_support::fs::write_atomic(&path, &bytes, Mode::Default).with_context(|| format!("write {}", path.display())),
                None => super::write_output(std::path::Path::new("-"), &bytes),
            }
        }
    }
}

/// The body naming whose certificate: an account, or a node's network key.
fn target(account: &Option<String>, network_key: &Option<String>) -> Value {
    match (account, network_key) {
        (Some(a), _) => json!({"account": a}),
        (None, Some(k)) => json!({"network_key": k}),
        (None, None) => json!({}),
    }
}

fn channel_query(sel: &NodeSel, first: char) -> String {
    sel.channel.as_ref().map(|c| format!("{first}channel={c}")).unwrap_or_default()
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn admin_client(admin: &CaAdmin) -> Result<ApiClient> {
    admin.sel.admin_client(admin.admin_token.as_deref(), "certificate administration")
}

/// Unless `--no-wait`, wait for the block that records transaction `hash`.
fn wait(admin: &CaAdmin, client: &ApiClient, hash: &str, what: &str) -> Result<()> {
    if admin.no_wait {
        return Ok(());
    }
    let r = client
        .wait_for_tx(hash, Duration::from_secs(60))
        .with_context(|| format!("the node admitted {what} ({hash}); no block has recorded it yet (`joule status` shows whether blocks are made)"))?;
    if r["receipt"]["status"] != "success" {
        bail!("{what} was not recorded: {}", r["receipt"]["status"]);
    }
    Ok(())
}

/// Make a key of the channel's suite, write it to `out` (0600), and return a request for
/// `subject` signed by it (PEM).
fn new_key_and_request(ctx: &super::GlobalOpts, client: &ApiClient, sel: &NodeSel, out: &std::path::Path, subject: &str) -> Result<String> {
    if out.exists() {
        bail!("{} exists: give another --key-out (a key is never overwritten)", out.display());
    }
    let status = client.get(&format!("/v1/status{}", channel_query(sel, '?')))?;
    let algorithm = match status["crypto_suite"].as_str() {
        Some("gm") => SigAlg::Sm2Sm3.plugin_algorithm(),
        Some("intl") => SigAlg::EcdsaP256Sha256.plugin_algorithm(),
        other => bail!("the channel's crypto suite {other:?} has no certificate algorithm here"),
    };
    let crypto = ctx.crypto().context("the crypto plugins (cargo xtask plugins)")?;
    let pair = crypto.generate_key(algorithm).with_context(|| format!("generate a {algorithm} key"))?;
    let key = joule_node::ca::LocalKey { crypto: &crypto, algorithm, pair: &pair };
    let der = joule_pki::request(&key, subject).with_context(|| format!("a request for {subject:?}"))?;
    joule_support::fs::write_atomic(out, joule_crypto::pem::encode(joule_crypto::pem::PRIVATE_KEY, &pair.private_key).as_bytes(), Mode::Private)
        .with_context(|| format!("write {}", out.display()))?;
    println!("wrote your new {algorithm} key to {} (keep it: it signs your transactions)", out.display());
    Ok(joule_crypto::pem::encode("CERTIFICATE REQUEST", &der))
}
