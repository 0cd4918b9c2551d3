//! Identity by certificates (guide §6.1, §6.3.1): on a chain whose specification sets
//! [`IdentitySpec`], a transaction's sender must hold a current certificate of a member
//! organisation, recorded on chain.
//!
//! The records live in the governance account's storage, beside the governance state, so
//! every node reads the same ones and a light client can prove them against a state root:
//! - `pki/org/{name}`: an [`Organisation`] (its CA certificate, its last CRL);
//! - `pki/cert/{account}`: the [`CertRecord`] of a key (account = suite hash of its SPKI);
//! - `pki/serial/{organisation}/{serial hex}`: a [`SerialRecord`], for every certificate
//!   an organisation ever recorded (revocation by serial, no serial twice).
//!
//! A value absent from the state falls back to the genesis one ([`Registry`], built from
//! the specification and checked once when the chain opens).
//!
//! A certificate's chain (signatures, names, validity, CA constraints) is verified once,
//! when it is recorded ([`IdentityAction::Register`]); what each transaction costs is the
//! record's lookup: present, not revoked, within its validity at the block's timestamp,
//! its organisation a member. The check reads the state of the block's parent, so a
//! revocation committed in block H binds every block after H.

use borsh::{BorshDeserialize, BorshSerialize};
use joule_pki::{Certificate, PkiError, SigAlg, SignatureCheck};
use joule_primitives::{ChainCrypto, Hash32, IdentityAction, IdentitySpec};
use serde::Serialize;
use std::collections::HashMap;

pub const ORG_PREFIX: &str = "pki/org/";
pub const CERT_PREFIX: &str = "pki/cert/";
pub const SERIAL_PREFIX: &str = "pki/serial/";
pub const PEER_PREFIX: &str = "pki/peer/";
/// Borsh list of the organisations added after genesis (their names), for lookups by CA.
pub const ORGS_KEY: &str = "pki/orgs";
/// The role that lets a certified network key (a node's) join the channel's network.
pub const PEER_ROLE: &str = "peer";
/// The role that lets a certificate's holder record and revoke its organisation's
/// certificates.
pub const ADMIN_ROLE: &str = "admin";

/// A member organisation.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Organisation {
    pub name: String,
    /// Its CA's subject, RFC 4514.
    pub ca_subject: String,
    /// Its CA certificate, DER.
    #[serde(with = "joule_primitives::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = joule_primitives::openapi::Hex))]
    pub ca_certificate: Vec<u8>,
    /// The block that made it a member (0: genesis).
    pub joined_at: u64,
    /// The last CRL its admins recorded (DER), and its number (big-endian, no leading
    /// zeros).
    #[serde(skip)]
    pub crl: Option<Vec<u8>>,
    #[serde(with = "joule_primitives::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = joule_primitives::openapi::Hex))]
    pub crl_number: Vec<u8>,
    /// The block that removed it: its certificates are no longer accepted.
    pub removed_at: Option<u64>,
}

/// The current certificate of a key.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertRecord {
    pub organisation: String,
    #[serde(with = "joule_primitives::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = joule_primitives::openapi::Hex))]
    pub serial: Vec<u8>,
    /// RFC 4514.
    pub subject: String,
    pub roles: Vec<String>,
    /// Unix milliseconds.
    pub not_before_ms: u64,
    pub not_after_ms: u64,
    /// The block that recorded it (0: genesis).
    pub registered_at: u64,
    /// The block that revoked it.
    pub revoked_at: Option<u64>,
    /// DER.
    #[serde(with = "joule_primitives::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = joule_primitives::openapi::Hex))]
    pub certificate: Vec<u8>,
    /// Serials of the key's earlier certificates from the organisation (renewals), newest
    /// last, at most [`MAX_SUPERSEDED`]: revoking the key revokes them too.
    #[serde(with = "joule_primitives::hex_list")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<joule_primitives::openapi::Hex>))]
    pub superseded: Vec<Vec<u8>>,
}

/// Earlier serials a record keeps.
pub const MAX_SUPERSEDED: usize = 64;

/// A certificate an organisation recorded, by serial.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SerialRecord {
    /// The account (key) it certified.
    pub account: Hash32,
    pub revoked_at: Option<u64>,
}

pub fn org_key(name: &str) -> String {
    format!("{ORG_PREFIX}{name}")
}

pub fn cert_key(account: &Hash32) -> String {
    format!("{CERT_PREFIX}{account}")
}

/// The key of a network key's record: its compressed point, hex.
pub fn peer_key(network_key: &[u8]) -> String {
    format!("{PEER_PREFIX}{}", hex::encode(network_key))
}

pub fn serial_key(organisation: &str, serial: &[u8]) -> String {
    format!("{SERIAL_PREFIX}{organisation}/{}", hex::encode(serial))
}

/// Signature checks in the channel's suite, for certificates and CRLs.
pub struct SuiteCheck<'a>(pub &'a dyn ChainCrypto);

impl SignatureCheck for SuiteCheck<'_> {
    fn verify(&self, alg: SigAlg, public_key: &[u8], message: &[u8], signature: &[u8], sm2_id: Option<&[u8]>) -> Result<bool, PkiError> {
        let suite = self.0.suite();
        if alg.plugin_algorithm() != suite.signature {
            return Err(PkiError::Unsupported(format!(
                "a {} signature, on a channel whose suite {} signs with {}",
                alg.plugin_algorithm(),
                suite.id,
                suite.signature
            )));
        }
        self.0.verify_with_sm2_id(public_key, message, signature, sm2_id).map_err(|e| PkiError::Signer(e.to_string()))
    }
}

/// Reads a storage value of the governance account (with the block's writes, or at a
/// block's state); `Err`: the state could not be read.
pub type Read<'a, E> = &'a dyn Fn(&str) -> Result<Option<Vec<u8>>, E>;

/// Why a lookup failed: the state, or a value that does not decode.
#[derive(Debug)]
pub enum LookupError<E> {
    State(E),
    Corrupt(String),
}

fn value<T: BorshDeserialize, E>(read: Read<'_, E>, key: &str) -> Result<Option<T>, LookupError<E>> {
    match read(key).map_err(LookupError::State)? {
        None => Ok(None),
        Some(bytes) => borsh::from_slice(&bytes).map(Some).map_err(|_| LookupError::Corrupt(format!("the identity value {key:?} does not decode"))),
    }
}

/// What an identity transaction writes (governance-account values) and tells (events:
/// topic, indexed account, data).
#[derive(Debug, Default)]
pub struct Applied {
    pub writes: Vec<(String, Vec<u8>)>,
    pub events: Vec<(&'static str, Hash32, Vec<u8>)>,
}

/// The chain's identity rules: the root, and the genesis records under the state's.
pub struct Registry {
    root: Certificate,
    root_der: Vec<u8>,
    orgs: HashMap<String, Organisation>,
    certs: HashMap<Hash32, CertRecord>,
    serials: HashMap<String, SerialRecord>,
    /// Network keys (compressed points) certified with the role `peer`, to their account.
    peers: HashMap<Vec<u8>, Hash32>,
}

fn encode<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).unwrap_or_default()
}

impl Registry {
    /// The rules of `spec`, with its certificates checked at `genesis_ms` under `suite`:
    /// each organisation CA issued by the root, each certificate by its organisation.
    pub fn new(spec: &IdentitySpec, suite: &dyn ChainCrypto, genesis_ms: u64) -> Result<Registry, String> {
        let check = SuiteCheck(suite);
        let root = joule_pki::certificate(&spec.root_certificate).map_err(|e| format!("the root certificate: {e}"))?;
        let at = joule_pki::at_ms(genesis_ms);
        let mut reg = Registry {
            root,
            root_der: spec.root_certificate.clone(),
            orgs: HashMap::new(),
            certs: HashMap::new(),
            serials: HashMap::new(),
            peers: HashMap::new(),
        };
        for o in &spec.organisations {
            let ca = joule_pki::certificate(&o.ca_certificate).map_err(|e| format!("organisation {}: its CA certificate: {e}", o.name))?;
            // The CA chains to the root: verify it as the leaf of a chain of two.
            joule_pki::verify_chain(&ca, &[], &reg.root, at, &[], &check).map_err(|e| format!("organisation {}: its CA certificate: {e}", o.name))?;
            let ca_facts = joule_pki::facts(&ca).map_err(|e| format!("organisation {}: {e}", o.name))?;
            if !ca_facts.ca {
                return Err(format!("organisation {}: its CA certificate is not a CA's (basic constraints)", o.name));
            }
            for (i, der) in o.certificates.iter().enumerate() {
                let cert = joule_pki::certificate(der).map_err(|e| format!("organisation {}, certificate {i}: {e}", o.name))?;
                joule_pki::verify_chain(&cert, std::slice::from_ref(&ca), &reg.root, at, &[], &check)
                    .map_err(|e| format!("organisation {}, certificate {i}: {e}", o.name))?;
                let f = joule_pki::facts(&cert).map_err(|e| format!("organisation {}, certificate {i}: {e}", o.name))?;
                if f.ca {
                    return Err(format!("organisation {}, certificate {i}: a CA's certificate cannot send transactions", o.name));
                }
                let account = suite.hash(&f.public_key).map_err(|e| e.to_string())?;
                if reg.certs.contains_key(&account) {
                    return Err(format!("organisation {}, certificate {i}: its key is certified twice at genesis", o.name));
                }
                let sk = serial_key(&o.name, &f.serial);
                if reg.serials.contains_key(&sk) {
                    return Err(format!("organisation {}, certificate {i}: serial {} twice", o.name, hex::encode(&f.serial)));
                }
                reg.serials.insert(sk, SerialRecord { account, revoked_at: None });
                if let Some(point) = f.compressed_point.clone().filter(|_| f.roles.iter().any(|r| r == PEER_ROLE)) {
                    reg.peers.insert(point, account);
                }
                reg.certs.insert(account, record(&o.name, f, der.clone(), 0));
            }
            reg.orgs.insert(
                o.name.clone(),
                Organisation {
                    name: o.name.clone(),
                    ca_subject: ca_facts.subject,
                    ca_certificate: o.ca_certificate.clone(),
                    joined_at: 0,
                    crl: None,
                    crl_number: vec![],
                    removed_at: None,
                },
            );
        }
        Ok(reg)
    }

    /// The consortium's root certificate, DER.
    pub fn root_certificate(&self) -> &[u8] {
        &self.root_der
    }

    /// Every organisation ever a member (genesis ones, then those added by vote), by name.
    pub fn organisation_names<E>(&self, read: Read<'_, E>) -> Result<Vec<String>, LookupError<E>> {
        let mut names: Vec<String> = self.orgs.keys().cloned().collect();
        let added: Vec<String> = value(read, ORGS_KEY)?.unwrap_or_default();
        for n in added {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names.sort();
        Ok(names)
    }

    /// A member organisation: recorded and not removed.
    pub fn member<E>(&self, read: Read<'_, E>, name: &str) -> Result<Option<Organisation>, LookupError<E>> {
        Ok(self.organisation(read, name)?.filter(|o| o.removed_at.is_none()))
    }

    pub fn organisation<E>(&self, read: Read<'_, E>, name: &str) -> Result<Option<Organisation>, LookupError<E>> {
        Ok(value(read, &org_key(name))?.or_else(|| self.orgs.get(name).cloned()))
    }

    pub fn certificate<E>(&self, read: Read<'_, E>, account: &Hash32) -> Result<Option<CertRecord>, LookupError<E>> {
        Ok(value(read, &cert_key(account))?.or_else(|| self.certs.get(account).cloned()))
    }

    fn serial<E>(&self, read: Read<'_, E>, organisation: &str, serial: &[u8]) -> Result<Option<SerialRecord>, LookupError<E>> {
        let key = serial_key(organisation, serial);
        Ok(value(read, &key)?.or_else(|| self.serials.get(&key).cloned()))
    }

    /// Whether `account` may send a transaction in a block of timestamp `time_ms` whose
    /// parent's state `read` reads: `Ok(Err(why))` when it may not.
    pub fn check_sender<E>(&self, read: Read<'_, E>, account: &Hash32, time_ms: u64) -> Result<Result<CertRecord, String>, LookupError<E>> {
        let rec = match self.standing(read, account)? {
            Ok(rec) => rec,
            Err(why) => return Ok(Err(why)),
        };
        Ok(within(&rec, time_ms).map(|()| rec))
    }

    /// The sender check without the clock: a certificate recorded, not revoked, of a member
    /// organisation. Its validity window is for [`within`].
    pub fn standing<E>(&self, read: Read<'_, E>, account: &Hash32) -> Result<Result<CertRecord, String>, LookupError<E>> {
        let Some(rec) = self.certificate(read, account)? else {
            return Ok(Err(format!(
                "the sender (account {account}) has no certificate on this channel: an admin of its organisation records one (joule ca register)"
            )));
        };
        if let Some(h) = rec.revoked_at {
            return Ok(Err(format!("the sender's certificate (serial {}) was revoked in block {h}", hex::encode(&rec.serial))));
        }
        if self.member(read, &rec.organisation)?.is_none() {
            return Ok(Err(format!("the sender's organisation {} is not a member of the channel", rec.organisation)));
        }
        Ok(Ok(rec))
    }

    /// The account whose certificate (role `peer`) certifies the network key `network_key`.
    pub fn peer_account<E>(&self, read: Read<'_, E>, network_key: &[u8]) -> Result<Option<Hash32>, LookupError<E>> {
        Ok(value(read, &peer_key(network_key))?.or_else(|| self.peers.get(network_key).copied()))
    }

    /// Whether the node whose network key is `network_key` (a compressed point) may join
    /// the channel's network at `time_ms`: it has a current certificate with the role
    /// `peer` of a member organisation. `Ok(Err(why))` when it may not.
    pub fn check_peer<E>(&self, read: Read<'_, E>, network_key: &[u8], time_ms: u64) -> Result<Result<CertRecord, String>, LookupError<E>> {
        let Some(account) = self.peer_account(read, network_key)? else {
            return Ok(Err("no certificate with the role peer certifies this network key on the channel".into()));
        };
        let rec = match self.check_sender(read, &account, time_ms)? {
            Ok(r) => r,
            Err(why) => return Ok(Err(why.replacen("the sender", "the node", 1))),
        };
        if !rec.roles.iter().any(|r| r == PEER_ROLE) {
            return Ok(Err("its certificate no longer carries the role peer".into()));
        }
        Ok(Ok(rec))
    }

    /// The sender must be a current admin of `organisation`.
    fn check_admin<E>(&self, read: Read<'_, E>, sender: &Hash32, organisation: &str, time_ms: u64) -> Result<Result<(), String>, LookupError<E>> {
        let rec = match self.check_sender(read, sender, time_ms)? {
            Ok(rec) => rec,
            Err(why) => return Ok(Err(why)),
        };
        if rec.organisation != organisation || !rec.roles.iter().any(|r| r == ADMIN_ROLE) {
            return Ok(Err(format!("only an admin of organisation {organisation} (a certificate of it with OU={ADMIN_ROLE}) may do this")));
        }
        Ok(Ok(()))
    }

    /// Apply an identity transaction of `sender` in block `height` (timestamp `time_ms`) on
    /// the state `read` reads. `Ok(Err(why))`: refused, nothing written.
    pub fn apply<E>(
        &self,
        read: Read<'_, E>,
        suite: &dyn ChainCrypto,
        sender: &Hash32,
        height: u64,
        time_ms: u64,
        action: &IdentityAction,
    ) -> Result<Result<Applied, String>, LookupError<E>> {
        match action {
            IdentityAction::Register { certificate } => self.register(read, suite, sender, height, time_ms, certificate),
            IdentityAction::Revoke { organisation, serial, crl } => self.revoke(read, suite, sender, height, time_ms, organisation, serial, crl),
        }
    }

    fn register<E>(
        &self,
        read: Read<'_, E>,
        suite: &dyn ChainCrypto,
        sender: &Hash32,
        height: u64,
        time_ms: u64,
        der: &[u8],
    ) -> Result<Result<Applied, String>, LookupError<E>> {
        let issuer = match joule_pki::certificate(der).and_then(|c| joule_pki::facts(&c)) {
            Ok(f) if f.ca => return Ok(Err("a CA's certificate cannot be registered for a sender".into())),
            Ok(f) => f.issuer,
            Err(e) => return Ok(Err(e.to_string())),
        };
        // The issuing organisation: the member whose CA's subject is the issuer.
        let Some(org) = self.member_by_subject(read, &issuer)? else {
            return Ok(Err(format!("the certificate is issued by {issuer}, which is no member organisation's CA")));
        };
        if let Err(why) = self.check_admin(read, sender, &org.name, time_ms)? {
            return Ok(Err(why));
        }
        let ca = match joule_pki::certificate(&org.ca_certificate) {
            Ok(c) => c,
            Err(e) => return Ok(Err(format!("organisation {}'s CA certificate: {e}", org.name))),
        };
        let (f, account) = match self.vet(read, suite, &org.name, &ca, der, time_ms)? {
            Ok(v) => v,
            Err(why) => return Ok(Err(why)),
        };
        let previous = match self.certificate(read, &account)? {
            None => None,
            Some(old) if old.revoked_at.is_some() => {
                return Ok(Err(format!("the key's certificate (serial {}) was revoked: certify a new key", hex::encode(&old.serial))));
            }
            Some(old) if old.organisation != org.name => {
                return Ok(Err(format!("the key is certified by organisation {}", old.organisation)));
            }
            Some(old) => Some(old),
        };
        let mut out = Applied::default();
        record_into(&mut out, &org.name, account, f, der, height, previous);
        Ok(Ok(out))
    }

    /// A certificate the organisation `organisation` (whose CA is `ca`) asks to record,
    /// checked: it chains to the root through `ca` at `time_ms`, is no CA's, and has a
    /// serial the organisation never recorded. Its facts and account.
    fn vet<E>(
        &self,
        read: Read<'_, E>,
        suite: &dyn ChainCrypto,
        organisation: &str,
        ca: &Certificate,
        der: &[u8],
        time_ms: u64,
    ) -> Result<Result<(joule_pki::Facts, Hash32), String>, LookupError<E>> {
        let checked = joule_pki::certificate(der).and_then(|cert| {
            joule_pki::verify_chain(&cert, std::slice::from_ref(ca), &self.root, joule_pki::at_ms(time_ms), &[], &SuiteCheck(suite))?;
            joule_pki::facts(&cert)
        });
        let f = match checked {
            Ok(f) if f.ca => return Ok(Err("a CA's certificate cannot be registered for a sender".into())),
            Ok(f) => f,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if self.serial(read, organisation, &f.serial)?.is_some() {
            return Ok(Err(format!("organisation {organisation} has recorded serial {} before: issue a new certificate", hex::encode(&f.serial))));
        }
        Ok(match suite.hash(&f.public_key) {
            Ok(account) => Ok((f, account)),
            Err(e) => Err(e.to_string()),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn revoke<E>(
        &self,
        read: Read<'_, E>,
        suite: &dyn ChainCrypto,
        sender: &Hash32,
        height: u64,
        time_ms: u64,
        organisation: &str,
        serial: &[u8],
        crl_der: &[u8],
    ) -> Result<Result<Applied, String>, LookupError<E>> {
        let Some(mut org) = self.member(read, organisation)? else {
            return Ok(Err(format!("{organisation} is not a member organisation")));
        };
        if let Err(why) = self.check_admin(read, sender, organisation, time_ms)? {
            return Ok(Err(why));
        }
        let Some(mut rec) = self.serial(read, organisation, serial)? else {
            return Ok(Err(format!("organisation {organisation} recorded no certificate with serial {}", hex::encode(serial))));
        };
        if let Some(h) = rec.revoked_at {
            return Ok(Err(format!("serial {} was revoked in block {h}", hex::encode(serial))));
        }
        let checked = joule_pki::crl(crl_der).and_then(|list| {
            let ca = joule_pki::certificate(&org.ca_certificate)?;
            joule_pki::verify_crl(&list, &ca, &SuiteCheck(suite))?;
            Ok(list)
        });
        let list = match checked {
            Ok(l) => l,
            Err(e) => return Ok(Err(e.to_string())),
        };
        // Revoking a key's current certificate revokes its earlier ones too: the CRL lists
        // them all.
        let current = self.certificate(read, &rec.account)?.filter(|c| c.serial == serial && c.organisation == organisation);
        let listed: Vec<&[u8]> = std::iter::once(serial).chain(current.iter().flat_map(|c| c.superseded.iter().map(Vec::as_slice))).collect();
        if let Some(missing) = listed.iter().find(|s| !joule_pki::crl_lists(&list, s)) {
            return Ok(Err(format!("the CRL does not list serial {} (the key's certificates are revoked together)", hex::encode(missing))));
        }
        let number = match joule_pki::crl_number(&list) {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(Err("the CRL has no CRL number".into())),
            Err(e) => return Ok(Err(e.to_string())),
        };
        if !greater(&number, &org.crl_number) {
            return Ok(Err(format!("the CRL's number {} is not above the last recorded, {}", hex::encode(&number), hex::encode(&org.crl_number))));
        }
        let der = match joule_pki::to_der(&list) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e.to_string())),
        };
        rec.revoked_at = Some(height);
        let mut out = Applied::default();
        out.writes.push((serial_key(organisation, serial), encode(&rec)));
        if let Some(mut current) = current {
            for old in &current.superseded {
                if let Some(mut r) = self.serial(read, organisation, old)?
                    && r.revoked_at.is_none()
                {
                    r.revoked_at = Some(height);
                    out.writes.push((serial_key(organisation, old), encode(&r)));
                }
            }
            current.revoked_at = Some(height);
            out.writes.push((cert_key(&rec.account), encode(&current)));
        }
        org.crl = Some(der);
        org.crl_number = number;
        out.writes.push((org_key(organisation), encode(&org)));
        out.events.push(("certificate_revoked", rec.account, serial.to_vec()));
        Ok(Ok(out))
    }

    /// The member organisation whose CA has the subject `subject`.
    fn member_by_subject<E>(&self, read: Read<'_, E>, subject: &str) -> Result<Option<Organisation>, LookupError<E>> {
        for name in self.organisation_names(read)? {
            if let Some(o) = self.member(read, &name)?
                && o.ca_subject == subject
            {
                return Ok(Some(o));
            }
        }
        Ok(None)
    }
}

impl Registry {
    /// Apply an organisation change a vote passed (`AddOrganisation`, `RemoveOrganisation`)
    /// in block `height` at `time_ms`. `Ok(Err(why))`: it cannot apply (the proposal fails).
    pub fn apply_organisation<E>(
        &self,
        read: Read<'_, E>,
        suite: &dyn ChainCrypto,
        height: u64,
        time_ms: u64,
        change: &joule_primitives::Change,
    ) -> Result<Result<Applied, String>, LookupError<E>> {
        use joule_primitives::Change;
        let mut out = Applied::default();
        match change {
            Change::AddOrganisation { name, ca_certificate, certificates } => {
                let check = SuiteCheck(suite);
                let at = joule_pki::at_ms(time_ms);
                let ca = match joule_pki::certificate(ca_certificate) {
                    Ok(c) => c,
                    Err(e) => return Ok(Err(format!("organisation {name}'s CA certificate: {e}"))),
                };
                if let Err(e) = joule_pki::verify_chain(&ca, &[], &self.root, at, &[], &check) {
                    return Ok(Err(format!("organisation {name}'s CA certificate: {e}")));
                }
                let facts = match joule_pki::facts(&ca) {
                    Ok(f) if f.ca => f,
                    Ok(_) => return Ok(Err(format!("organisation {name}'s CA certificate is not a CA's (basic constraints)"))),
                    Err(e) => return Ok(Err(e.to_string())),
                };
                if let Some(other) = self.member_by_subject(read, &facts.subject)?.filter(|o| &o.name != name) {
                    return Ok(Err(format!("organisation {}'s CA has the subject {} already", other.name, facts.subject)));
                }
                let previous = self.organisation(read, name)?;
                let org = Organisation {
                    name: name.clone(),
                    ca_subject: facts.subject,
                    ca_certificate: ca_certificate.clone(),
                    joined_at: match &previous {
                        Some(p) if p.removed_at.is_none() => p.joined_at,
                        _ => height,
                    },
                    crl: previous.as_ref().and_then(|p| p.crl.clone()),
                    crl_number: previous.as_ref().map(|p| p.crl_number.clone()).unwrap_or_default(),
                    removed_at: None,
                };
                let topic = match &previous {
                    Some(p) if p.removed_at.is_none() => "organisation_modified",
                    _ => "organisation_added",
                };
                out.writes.push((org_key(name), encode(&org)));
                let mut added: Vec<String> = value(read, ORGS_KEY)?.unwrap_or_default();
                if !self.orgs.contains_key(name) && !added.contains(name) {
                    added.push(name.clone());
                    out.writes.push((ORGS_KEY.to_string(), encode(&added)));
                }
                // Its certificates, each checked as a registration is (against its new CA).
                let mut seen: Vec<Hash32> = vec![];
                for (i, der) in certificates.iter().enumerate() {
                    let (f, account) = match self.vet(read, suite, name, &ca, der, time_ms)? {
                        Ok(v) => v,
                        Err(why) => return Ok(Err(format!("organisation {name}, certificate {i}: {why}"))),
                    };
                    if seen.contains(&account) {
                        return Ok(Err(format!("organisation {name}, certificate {i}: its key is certified twice")));
                    }
                    seen.push(account);
                    if let Some(old) = self.certificate(read, &account)?
                        && (old.organisation != *name || old.revoked_at.is_some())
                    {
                        return Ok(Err(format!(
                            "organisation {name}, certificate {i}: its key is certified by organisation {} already, or revoked",
                            old.organisation
                        )));
                    }
                    record_into(&mut out, name, account, f, der, height, None);
                }
                out.events.push((topic, Hash32::ZERO, name.as_bytes().to_vec()));
            }
            Change::RemoveOrganisation { name } => {
                let Some(mut org) = self.member(read, name)? else {
                    return Ok(Err(format!("{name} is not a member organisation")));
                };
                let remaining = self
                    .organisation_names(read)?
                    .into_iter()
                    .filter(|n| n != name)
                    .try_fold(0usize, |n, other| Ok::<usize, LookupError<E>>(n + usize::from(self.member(read, &other)?.is_some())))?;
                if remaining == 0 {
                    return Ok(Err(format!("{name} is the last member organisation: a channel with certificates keeps at least one")));
                }
                org.removed_at = Some(height);
                out.writes.push((org_key(name), encode(&org)));
                out.events.push(("organisation_removed", Hash32::ZERO, name.as_bytes().to_vec()));
            }
            _ => return Ok(Err("not an organisation change".into())),
        }
        Ok(Ok(out))
    }
}

/// Whether a certificate is within its validity at `time_ms`; `Err`: why not.
pub fn within(rec: &CertRecord, time_ms: u64) -> Result<(), String> {
    if time_ms < rec.not_before_ms {
        return Err(format!("the sender's certificate is not valid before {} (Unix ms)", rec.not_before_ms));
    }
    if time_ms > rec.not_after_ms {
        return Err(format!(
            "the sender's certificate (serial {}) expired at {} (Unix ms): its organisation renews it (joule ca renew)",
            hex::encode(&rec.serial),
            rec.not_after_ms
        ));
    }
    Ok(())
}

/// Whether the unsigned big-endian `a` (no leading zeros) is above `b`.
fn greater(a: &[u8], b: &[u8]) -> bool {
    a.len() > b.len() || (a.len() == b.len() && a > b)
}

/// Record the certificate `der` (facts `f`) of `organisation` for `account` in block
/// `height`: its record (after `previous`, a renewal, whose serial it supersedes), its
/// serial, its network key when it is a peer's; and the event.
fn record_into(out: &mut Applied, organisation: &str, account: Hash32, f: joule_pki::Facts, der: &[u8], height: u64, previous: Option<CertRecord>) {
    let serial = f.serial.clone();
    let peer = f.compressed_point.clone().filter(|_| f.roles.iter().any(|r| r == PEER_ROLE));
    let mut rec = record(organisation, f, der.to_vec(), height);
    let renewal = previous.is_some();
    if let Some(old) = previous {
        rec.superseded = old.superseded;
        rec.superseded.push(old.serial);
        let over = rec.superseded.len().saturating_sub(MAX_SUPERSEDED);
        rec.superseded.drain(..over);
    }
    out.writes.push((cert_key(&account), encode(&rec)));
    out.writes.push((serial_key(organisation, &serial), encode(&SerialRecord { account, revoked_at: None })));
    if let Some(point) = peer {
        out.writes.push((peer_key(&point), encode(&account)));
    }
    out.events.push((if renewal { "certificate_renewed" } else { "certificate_registered" }, account, serial));
}

fn record(organisation: &str, f: joule_pki::Facts, certificate: Vec<u8>, height: u64) -> CertRecord {
    CertRecord {
        organisation: organisation.to_string(),
        serial: f.serial,
        subject: f.subject,
        roles: f.roles,
        not_before_ms: f.not_before_ms,
        not_after_ms: f.not_after_ms,
        registered_at: height,
        revoked_at: None,
        certificate,
        superseded: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::greater;

    #[test]
    fn crl_numbers_compare_as_unsigned_integers() {
        assert!(greater(&[1], &[]));
        assert!(greater(&[1, 0], &[0xff]));
        assert!(greater(&[2], &[1]));
        assert!(!greater(&[1], &[1]));
        assert!(!greater(&[0xff], &[1, 0]));
    }
}
