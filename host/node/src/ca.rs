//! The node's certificate authority (guide §6.1–6.2): CA keys in the keystore, issuance
//! from applications an organisation admin reviewed, revocation with a new CRL, renewal.
//!
//! CA keys live in the keystore's `pki` module, one slot per CA (`ca-root`,
//! `ca-<organisation>`), and sign through the crypto plugins without leaving it. A node
//! acts for an organisation when it holds the key of that organisation's CA as the chain
//! records it; what it issues goes on chain in a transaction it signs with its own key,
//! which must hold the organisation's `admin` role.
//!
//! Applications (§6.1.1) are kept in `DIR/pki/applications/<id>.json` until reviewed: the
//! applicant sends a PKCS#10 request made with its own key (only the request travels) and
//! who it is; an admin approves (the certificate is issued and recorded on chain) or
//! rejects (with a reason). Its random id lets the applicant fetch the outcome.

use crate::keystore::Keystore;
use joule_crypto::CryptoService;
use joule_ledger::chain::Chain;
use joule_ledger::identity::Organisation;
use joule_pki::{CaSigner, Certificate, PkiError, SigAlg, SignatureCheck, Sm2Id};
use joule_primitives::{Hash32, Hasher, IdentityAction, Payload};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The keystore module of CA keys.
pub const CA_MODULE: &str = "pki";
/// Applications a node keeps pending at most.
pub const MAX_PENDING_APPLICATIONS: usize = 1000;
/// Applications a node keeps at most, pending or reviewed: past it, the oldest reviewed
/// ones are deleted (their certificates are on chain).
pub const MAX_KEPT_APPLICATIONS: usize = 10_000;
/// Longest certificate lifetime issued.
pub const MAX_DAYS: u32 = 3650;

/// The keystore slot of a CA: `ca-root` or `ca-<organisation>`.
pub fn ca_purpose(name: &str) -> String {
    format!("ca-{name}")
}

/// What can go wrong, by who can fix it.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The request is wrong (a malformed CSR, an unknown organisation, a bad role).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The state forbids it now (already reviewed, not this node's organisation).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooMany(String),
    /// The chain refused the transaction.
    #[error(transparent)]
    Rejected(#[from] joule_ledger::pool::Rejection),
    #[error("{0}")]
    Internal(String),
}

fn internal(e: impl std::fmt::Display) -> CaError {
    CaError::Internal(e.to_string())
}

/// A CA key in the keystore, signing through the plugins (SM2 with the empty identifier,
/// as OpenSSL checks CA signatures: `joule_pki::Sm2Id`).
pub struct KeystoreCa {
    keystore: Arc<Keystore>,
    purpose: String,
    public_key: Vec<u8>,
    sm2: bool,
}

impl KeystoreCa {
    /// Make a new CA key of `algorithm` (`sm2`, `ecdsa-p256`) for `name`.
    pub fn create(keystore: Arc<Keystore>, algorithm: &str, name: &str) -> Result<KeystoreCa, CaError> {
        let purpose = ca_purpose(name);
        keystore.set_policy(CA_MODULE, &purpose, algorithm, None).map_err(internal)?;
        keystore.rotate(CA_MODULE, &purpose).map_err(internal)?;
        KeystoreCa::open(keystore, name)?.ok_or_else(|| CaError::Internal(format!("the CA key {CA_MODULE}/{purpose} vanished")))
    }

    /// The CA key of `name`, if the keystore holds one.
    pub fn open(keystore: Arc<Keystore>, name: &str) -> Result<Option<KeystoreCa>, CaError> {
        let purpose = ca_purpose(name);
        let Ok(slot) = keystore.slot(&format!("{CA_MODULE}/{purpose}")) else { return Ok(None) };
        let keys = keystore.for_module(CA_MODULE);
        let Ok(current) = keys.current(CA_MODULE, &purpose) else { return Ok(None) };
        let public_key = keys.public_key(&current).map_err(internal)?;
        let sm2 = slot.algorithm == SigAlg::Sm2Sm3.plugin_algorithm();
        Ok(Some(KeystoreCa { keystore, purpose, public_key, sm2 }))
    }
}

impl CaSigner for KeystoreCa {
    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let id = if self.sm2 { Sm2Id::default().plugin_id() } else { None };
        self.keystore
            .for_module(CA_MODULE)
            .sign_with_id(CA_MODULE, &self.purpose, message, id)
            .map(|(_, sig)| sig)
            .map_err(|e| PkiError::Signer(format!("{CA_MODULE}/{}: {e}", self.purpose)))
    }
}

/// A key pair held in memory (an applicant's own key), signing its request through the
/// plugins (SM2 with the empty identifier, as OpenSSL does).
pub struct LocalKey<'a> {
    pub crypto: &'a CryptoService,
    pub algorithm: &'a str,
    pub pair: &'a joule_crypto::KeyPair,
}

impl CaSigner for LocalKey<'_> {
    fn public_key(&self) -> &[u8] {
        &self.pair.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let id = if self.algorithm == SigAlg::Sm2Sm3.plugin_algorithm() { Sm2Id::default().plugin_id() } else { None };
        self.crypto.sign(self.algorithm, &self.pair.private_key, message, id).map_err(|e| PkiError::Signer(e.to_string()))
    }
}

/// Signature checks through the plugins.
pub struct PluginCheck(pub CryptoService);

impl SignatureCheck for PluginCheck {
    fn verify(&self, alg: SigAlg, public_key: &[u8], message: &[u8], signature: &[u8], sm2_id: Option<&[u8]>) -> Result<bool, PkiError> {
        self.0.verify(alg.plugin_algorithm(), public_key, message, signature, sm2_id).map_err(|e| PkiError::Signer(e.to_string()))
    }
}

/// A validity from a minute ago for `days`.
fn days_from_now(days: u32) -> Result<joule_pki::x509::time::Validity, CaError> {
    if days == 0 || days > MAX_DAYS {
        return Err(CaError::Invalid(format!("days must be 1-{MAX_DAYS}")));
    }
    joule_pki::validity(SystemTime::now() - Duration::from_secs(60), Duration::from_secs(u64::from(days) * 86_400)).map_err(internal)
}

/// Who the applicant says it is (checked by the reviewing admin, not by Joule).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Applicant {
    /// A person's or a device's name.
    #[serde(default)]
    pub name: String,
    /// How to reach them (an address, a phone, a meter's site).
    #[serde(default)]
    pub contact: String,
    /// Anything else the reviewer should know.
    #[serde(default)]
    pub note: String,
}

/// Where an application stands.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Review {
    Pending,
    /// Issued and recorded: `certificate` is the PEM, `certified_roles` the roles it
    /// carries, `tx` the transaction recording it.
    Approved {
        certificate: String,
        serial: String,
        certified_roles: Vec<String>,
        tx: Hash32,
        at_ms: u64,
    },
    Rejected {
        reason: String,
        at_ms: u64,
    },
}

/// A request for a certificate (§6.1.1).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Application {
    /// 32 hex digits, random: whoever holds it may read the outcome.
    pub id: String,
    pub channel: String,
    pub organisation: String,
    /// The PKCS#10 request, PEM.
    pub csr: String,
    /// The subject it asks for (RFC 4514).
    pub subject: String,
    /// The account its key will be: the channel suite's hash of the key.
    pub account: Hash32,
    /// The roles asked for (`client`, `admin`, `peer`…).
    pub roles: Vec<String>,
    pub applicant: Applicant,
    pub submitted_ms: u64,
    #[serde(flatten)]
    pub review: Review,
}

const MAX_FIELD: usize = 256;
const MAX_ROLES: usize = 8;

fn check_roles(roles: &[String]) -> Result<(), CaError> {
    if roles.len() > MAX_ROLES {
        return Err(CaError::Invalid(format!("at most {MAX_ROLES} roles")));
    }
    for r in roles {
        if r.is_empty() || r.len() > 32 || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(CaError::Invalid(format!("role {r:?}: roles are 1-32 characters of [A-Za-z0-9_-]")));
        }
    }
    Ok(())
}

/// The node's applications, one JSON file each.
pub struct Applications {
    dir: PathBuf,
    lock: std::sync::Mutex<()>,
}

impl Applications {
    pub fn new(node_dir: &Path) -> Applications {
        Applications { dir: node_dir.join("pki").join("applications"), lock: std::sync::Mutex::new(()) }
    }

    fn path(&self, id: &str) -> Result<PathBuf, CaError> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CaError::NotFound(format!("{id:?} is no application id (32 hex digits)")));
        }
        Ok(self.dir.join(format!("{}.json", id.to_ascii_lowercase())))
    }

    pub fn get(&self, id: &str) -> Result<Application, CaError> {
        let path = self.path(id)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CaError::NotFound(format!("no application {id}"))),
            Err(e) => return Err(internal(format!("read {}: {e}", path.display()))),
        };
        serde_json::from_slice(&bytes).map_err(|e| internal(format!("{} does not parse: {e}", path.display())))
    }

    /// Every application, newest first.
    pub fn list(&self) -> Result<Vec<Application>, CaError> {
        let mut out = vec![];
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(internal(format!("read {}: {e}", self.dir.display()))),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(id) = name.strip_suffix(".json") {
                out.push(self.get(id)?);
            }
        }
        out.sort_by(|a, b| b.submitted_ms.cmp(&a.submitted_ms).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    fn save(&self, a: &Application) -> Result<(), CaError> {
        joule_support::fs::create_private_dir(&self.dir).map_err(|e| internal(format!("create {}: {e}", self.dir.display())))?;
        let bytes = serde_json::to_vec_pretty(a).map_err(internal)?;
        joule_support::fs::write_atomic(&self.path(&a.id)?, &bytes, joule_support::fs::Mode::Private).map_err(internal)
    }

    /// Check and keep an application for `organisation` of `chain`.
    pub fn submit(
        &self,
        chain: &Chain,
        crypto: &CryptoService,
        organisation: &str,
        csr: &str,
        roles: Vec<String>,
        applicant: Applicant,
    ) -> Result<Application, CaError> {
        if chain.identity().is_none() {
            return Err(CaError::Invalid(format!("channel {} has no certificates", chain.channel())));
        }
        organisation_of(chain, organisation)?;
        check_roles(&roles)?;
        for (what, v) in [("name", &applicant.name), ("contact", &applicant.contact), ("note", &applicant.note)] {
            if v.len() > MAX_FIELD {
                return Err(CaError::Invalid(format!("{what} is over {MAX_FIELD} bytes")));
            }
        }
        let request = joule_pki::Request::parse(csr.as_bytes(), &PluginCheck(crypto.clone())).map_err(|e| CaError::Invalid(format!("the request: {e}")))?;
        let account = chain.suite().hash(&request.public_key).map_err(internal)?;
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let all = self.list()?;
        let pending = all.iter().filter(|a| matches!(a.review, Review::Pending)).count();
        if pending >= MAX_PENDING_APPLICATIONS {
            return Err(CaError::TooMany(format!("{pending} applications wait for review here; try again once an admin has reviewed some")));
        }
        // Newest first: the reviewed ones past the limit go, oldest first.
        let excess = (all.len() + 1).saturating_sub(MAX_KEPT_APPLICATIONS);
        for old in all.iter().rev().filter(|a| !matches!(a.review, Review::Pending)).take(excess) {
            if let Ok(path) = self.path(&old.id) {
                let _ = std::fs::remove_file(path);
            }
        }
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|e| internal(format!("no OS randomness: {e}")))?;
        let a = Application {
            id: hex::encode(raw),
            channel: chain.channel().to_string(),
            organisation: organisation.into(),
            csr: csr.trim().to_string() + "\n",
            subject: request.subject.to_string(),
            account,
            roles,
            applicant,
            submitted_ms: joule_support::now_ms(),
            review: Review::Pending,
        };
        self.save(&a)?;
        metrics::counter!("pki_applications_total", "outcome" => "submitted").increment(1);
        metrics::gauge!("pki_applications_pending").set((pending + 1) as f64);
        Ok(a)
    }

    /// Count the pending applications into `pki_applications_pending`.
    fn publish_pending(&self) {
        if let Ok(all) = self.list() {
            metrics::gauge!("pki_applications_pending").set(all.iter().filter(|a| matches!(a.review, Review::Pending)).count() as f64);
        }
    }

    /// Issue the certificate an application asks for (with `roles`, or the ones asked),
    /// record it on chain, and keep the outcome.
    pub fn approve(
        &self,
        chain: &Chain,
        crypto: &CryptoService,
        keystore: Option<&Arc<Keystore>>,
        id: &str,
        roles: Option<Vec<String>>,
        days: u32,
    ) -> Result<Application, CaError> {
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut a = self.get(id)?;
        if !matches!(a.review, Review::Pending) {
            return Err(CaError::Conflict(format!("application {id} was reviewed already")));
        }
        if a.channel != chain.channel().as_str() {
            return Err(CaError::Invalid(format!("application {id} is for channel {}", a.channel)));
        }
        let roles = roles.unwrap_or_else(|| a.roles.clone());
        check_roles(&roles)?;
        let (org_ca, ca) = authority(chain, keystore, &a.organisation)?;
        let request = joule_pki::Request::parse(a.csr.as_bytes(), &PluginCheck(crypto.clone())).map_err(|e| CaError::Invalid(format!("the request: {e}")))?;
        let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
        let cert = joule_pki::issue_end_entity(&org_ca, &ca, &request, &role_refs, days_from_now(days)?).map_err(internal)?;
        let tx = record(chain, &cert)?;
        a.review = Review::Approved {
            certificate: joule_pki::to_pem(&cert).map_err(internal)?,
            serial: hex::encode(joule_pki::serial(&cert)),
            certified_roles: roles,
            tx,
            at_ms: joule_support::now_ms(),
        };
        self.save(&a)?;
        metrics::counter!("pki_applications_total", "outcome" => "approved").increment(1);
        self.publish_pending();
        Ok(a)
    }

    pub fn reject(&self, id: &str, reason: String) -> Result<Application, CaError> {
        if reason.len() > MAX_FIELD {
            return Err(CaError::Invalid(format!("the reason is over {MAX_FIELD} bytes")));
        }
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut a = self.get(id)?;
        if !matches!(a.review, Review::Pending) {
            return Err(CaError::Conflict(format!("application {id} was reviewed already")));
        }
        a.review = Review::Rejected { reason, at_ms: joule_support::now_ms() };
        self.save(&a)?;
        metrics::counter!("pki_applications_total", "outcome" => "rejected").increment(1);
        self.publish_pending();
        Ok(a)
    }
}

fn organisation_of(chain: &Chain, name: &str) -> Result<Organisation, CaError> {
    let orgs = chain.organisations().map_err(internal)?;
    let known: Vec<String> = orgs.iter().map(|o| o.name.clone()).collect();
    orgs.into_iter().find(|o| o.name == name).ok_or_else(|| CaError::Invalid(format!("{name:?} is not a member organisation (members: {})", known.join(", "))))
}

/// The organisation's CA certificate, and its key when this node holds it.
fn authority(chain: &Chain, keystore: Option<&Arc<Keystore>>, organisation: &str) -> Result<(Certificate, KeystoreCa), CaError> {
    let org = organisation_of(chain, organisation)?;
    let not_here = || CaError::Conflict(format!("this node does not hold organisation {organisation}'s CA key: ask a node of {organisation}"));
    let keystore = keystore.ok_or_else(not_here)?;
    let ca = KeystoreCa::open(keystore.clone(), organisation)?.ok_or_else(not_here)?;
    let org_ca = joule_pki::certificate(&org.ca_certificate).map_err(internal)?;
    let spki = joule_pki::facts(&org_ca).map_err(internal)?.public_key;
    if spki != ca.public_key() {
        return Err(CaError::Conflict(format!(
            "this node's key {CA_MODULE}/{} is not the CA key organisation {organisation} has on chain",
            ca_purpose(organisation)
        )));
    }
    Ok((org_ca, ca))
}

/// Record `cert` on chain, signed by this node (an admin of its organisation).
fn record(chain: &Chain, cert: &Certificate) -> Result<Hash32, CaError> {
    let der = joule_pki::to_der(cert).map_err(internal)?;
    let tx = chain.submit_as_node(Payload::Identity(IdentityAction::Register { certificate: der }))?;
    tx.hash(chain.suite().as_ref() as &dyn Hasher).map_err(internal)
}

/// What a revocation or renewal did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Issued {
    pub account: Hash32,
    pub organisation: String,
    /// The serial revoked, or the new certificate's.
    pub serial: String,
    /// The transaction that records it: `GET /v1/tx/{hash}`.
    pub tx: Hash32,
    /// The new certificate (renewals) or CRL (revocations), PEM.
    pub pem: String,
}

/// Revoke the current certificate of `account`: a new CRL of its organisation (the last
/// one's entries and this serial, the next number), recorded on chain with the revocation.
pub fn revoke(chain: &Chain, keystore: Option<&Arc<Keystore>>, account: &Hash32) -> Result<Issued, CaError> {
    let rec = chain.certificate_of(account).map_err(internal)?.ok_or_else(|| CaError::NotFound(format!("account {account} has no certificate")))?;
    if let Some(h) = rec.revoked_at {
        return Err(CaError::Conflict(format!("its certificate was revoked in block {h}")));
    }
    let (org_ca, ca) = authority(chain, keystore, &rec.organisation)?;
    let org = organisation_of(chain, &rec.organisation)?;
    let now = SystemTime::now();
    let mut entries = vec![];
    let mut number: u64 = 1;
    if let Some(der) = &org.crl {
        let last = joule_pki::crl(der).map_err(internal)?;
        for r in last.tbs_cert_list.revoked_certificates.iter().flatten() {
            entries.push(joule_pki::Revoked { serial: r.serial_number.as_bytes().to_vec(), at: r.revocation_date.to_system_time() });
        }
        let n = org.crl_number.iter().try_fold(0u64, |acc, b| acc.checked_mul(256).map(|v| v | u64::from(*b)));
        number = n.and_then(|n| n.checked_add(1)).ok_or_else(|| CaError::Internal("the CRL number is past 2^64".into()))?;
    }
    // The key's current certificate and its earlier ones (renewals) are revoked together.
    for serial in rec.superseded.iter().chain(std::iter::once(&rec.serial)) {
        if !entries.iter().any(|e| &e.serial == serial) {
            entries.push(joule_pki::Revoked { serial: serial.clone(), at: now - Duration::from_secs(1) });
        }
    }
    let list = joule_pki::issue_crl(&org_ca, &ca, number, now - Duration::from_secs(60), now + Duration::from_secs(30 * 86_400), &entries).map_err(internal)?;
    let crl = joule_pki::to_der(&list).map_err(internal)?;
    let tx = chain.submit_as_node(Payload::Identity(IdentityAction::Revoke { organisation: rec.organisation.clone(), serial: rec.serial.clone(), crl }))?;
    Ok(Issued {
        account: *account,
        organisation: rec.organisation,
        serial: hex::encode(&rec.serial),
        tx: tx.hash(chain.suite().as_ref() as &dyn Hasher).map_err(internal)?,
        pem: joule_pki::to_pem(&list).map_err(internal)?,
    })
}

/// Renew the certificate of `account` (§6.1.4): the same subject and key, a new serial and
/// validity; the account stays.
pub fn renew(chain: &Chain, keystore: Option<&Arc<Keystore>>, account: &Hash32, days: u32) -> Result<Issued, CaError> {
    let rec = chain.certificate_of(account).map_err(internal)?.ok_or_else(|| CaError::NotFound(format!("account {account} has no certificate")))?;
    if let Some(h) = rec.revoked_at {
        return Err(CaError::Conflict(format!("its certificate was revoked in block {h}: a revoked key is not renewed; certify a new key")));
    }
    let (org_ca, ca) = authority(chain, keystore, &rec.organisation)?;
    let old = joule_pki::certificate(&rec.certificate).map_err(internal)?;
    let facts = joule_pki::facts(&old).map_err(internal)?;
    let request = joule_pki::Request { subject: old.tbs_certificate().subject().clone(), public_key: facts.public_key };
    let cert = joule_pki::issue_end_entity(&org_ca, &ca, &request, &[], days_from_now(days)?).map_err(internal)?;
    let tx = record(chain, &cert)?;
    Ok(Issued {
        account: *account,
        organisation: rec.organisation,
        serial: hex::encode(joule_pki::serial(&cert)),
        tx,
        pem: joule_pki::to_pem(&cert).map_err(internal)?,
    })
}

/// The genesis certificates of a consortium made here: a root CA key in `root`'s keystore,
/// and for each organisation its CA key in its node's keystore and certificates for the
/// given keys with the given roles (its admins, its validators).
pub struct Member {
    pub name: String,
    pub keystore: Arc<Keystore>,
    /// Keys (SPKI DER) to certify, with the common name and roles of each.
    pub certified: Vec<(Vec<u8>, String, Vec<String>)>,
}

/// Make a consortium's root and organisations (for `joule up --certificates` and tests):
/// PEM texts for `[channel.identity]`.
pub fn consortium(root: Arc<Keystore>, algorithm: &str, members: &[Member], days: u32) -> Result<crate::config::IdentityConfig, CaError> {
    let root_ca = KeystoreCa::create(root, algorithm, "root")?;
    let root_cert = joule_pki::issue_root(&root_ca, "CN=Joule Consortium Root,O=Joule Consortium", days_from_now(days)?).map_err(internal)?;
    let mut organisations = vec![];
    for m in members {
        let ca = KeystoreCa::create(m.keystore.clone(), algorithm, &m.name)?;
        let subject = format!("CN={} CA,O={}", m.name, m.name);
        let org_ca = joule_pki::issue_organisation_ca(&root_cert, &root_ca, &subject, ca.public_key(), days_from_now(days)?).map_err(internal)?;
        let mut certificates = vec![];
        for (key, cn, roles) in &m.certified {
            let request = joule_pki::Request { subject: joule_pki::name(&format!("CN={cn},O={}", m.name)).map_err(internal)?, public_key: key.clone() };
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            let cert = joule_pki::issue_end_entity(&org_ca, &ca, &request, &roles, days_from_now(days)?).map_err(internal)?;
            certificates.push(joule_pki::to_pem(&cert).map_err(internal)?);
        }
        organisations.push(crate::config::OrganisationConfig {
            name: m.name.clone(),
            ca_certificate: joule_pki::to_pem(&org_ca).map_err(internal)?,
            certificates,
        });
    }
    Ok(crate::config::IdentityConfig { root_certificate: joule_pki::to_pem(&root_cert).map_err(internal)?, organisations })
}

fn check_name(name: &str) -> Result<(), CaError> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
        return Err(CaError::Invalid(format!("organisation name {name:?}: 1-64 characters of [a-z0-9_-]")));
    }
    Ok(())
}

/// Issue the CA certificate of a new organisation `name` from its request (§5.1.1), with the
/// consortium's root key this node holds; the organisation joins when the validators vote
/// its bundle in (`Change::AddOrganisation`). PEM.
pub fn certify_organisation(
    chain: &Chain,
    crypto: &CryptoService,
    keystore: Option<&Arc<Keystore>>,
    name: &str,
    csr: &str,
    days: u32,
) -> Result<String, CaError> {
    check_name(name)?;
    let registry = chain.identity().ok_or_else(|| CaError::Invalid(format!("channel {} has no certificates", chain.channel())))?;
    let root = joule_pki::certificate(registry.root_certificate()).map_err(internal)?;
    let not_here = || CaError::Conflict("this node does not hold the consortium's root CA key: ask the node that does".into());
    let ca = KeystoreCa::open(keystore.ok_or_else(not_here)?.clone(), "root")?.ok_or_else(not_here)?;
    if joule_pki::facts(&root).map_err(internal)?.public_key != ca.public_key() {
        return Err(not_here());
    }
    let request = joule_pki::Request::parse(csr.as_bytes(), &PluginCheck(crypto.clone())).map_err(|e| CaError::Invalid(format!("the request: {e}")))?;
    let cert = joule_pki::issue_organisation_ca(&root, &ca, &format!("CN={name} CA,O={name}"), &request.public_key, days_from_now(days)?).map_err(internal)?;
    joule_pki::to_pem(&cert).map_err(internal)
}

/// A new organisation's CA key in `keystore` and a request for its CA certificate (PEM),
/// for the root's holder to certify ([`certify_organisation`]).
pub fn organisation_request(keystore: Arc<Keystore>, algorithm: &str, name: &str) -> Result<String, CaError> {
    check_name(name)?;
    if KeystoreCa::open(keystore.clone(), name)?.is_some() {
        return Err(CaError::Conflict(format!("this keystore holds a CA key for {name} already (slot {CA_MODULE}/{})", ca_purpose(name))));
    }
    let ca = KeystoreCa::create(keystore, algorithm, name)?;
    let der = joule_pki::request(&ca, &format!("CN={name} CA,O={name}")).map_err(internal)?;
    Ok(joule_crypto::pem::encode("CERTIFICATE REQUEST", &der))
}

/// The bundle a new organisation brings to the vote: its CA certificate (which must be for
/// the CA key in `keystore`), and certificates its CA issues for `node_key` (its node's
/// signing key: `admin`) and `network_key` (the node's network key as SPKI: `peer`).
pub fn organisation_bundle(
    keystore: Arc<Keystore>,
    name: &str,
    ca_certificate: &str,
    node_key: &[u8],
    network_key: &[u8],
    node_name: &str,
    days: u32,
) -> Result<crate::config::OrganisationConfig, CaError> {
    check_name(name)?;
    let ca_cert = joule_pki::certificate(ca_certificate.as_bytes()).map_err(|e| CaError::Invalid(format!("the CA certificate: {e}")))?;
    let ca =
        KeystoreCa::open(keystore, name)?.ok_or_else(|| CaError::Conflict(format!("this keystore holds no CA key for {name} (joule org init makes one)")))?;
    if joule_pki::facts(&ca_cert).map_err(internal)?.public_key != ca.public_key() {
        return Err(CaError::Invalid(format!("the CA certificate is not for {name}'s CA key in this keystore")));
    }
    let mut certificates = vec![];
    for (key, cn, role) in [(node_key, node_name.to_string(), "admin"), (network_key, format!("{node_name}-network"), "peer")] {
        let subject = joule_pki::name(&format!("CN={cn},O={name}")).map_err(|e| CaError::Invalid(e.to_string()))?;
        let request = joule_pki::Request { subject, public_key: key.to_vec() };
        let cert = joule_pki::issue_end_entity(&ca_cert, &ca, &request, &[role], days_from_now(days)?).map_err(internal)?;
        certificates.push(joule_pki::to_pem(&cert).map_err(internal)?);
    }
    Ok(crate::config::OrganisationConfig { name: name.into(), ca_certificate: joule_pki::to_pem(&ca_cert).map_err(internal)?, certificates })
}
