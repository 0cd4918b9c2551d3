//! Key management (guide §4.1.2): secure storage, periodic update, and a read/write
//! service for the node's internal modules.
//!
//! * Storage: a redb file. Every key belongs to a slot `(module, purpose)` and a period
//!   (1, 2, 3, …): the table `keys` maps `module/purpose/period` to that period's key, so
//!   each module has its own key per period. Private and symmetric key bytes are sealed
//!   with an AEAD cipher (SM4-GCM by default, through the crypto plugins) under a master
//!   key derived from the operator's passphrase with Argon2id (memory-hard); the slot's
//!   key id is the AEAD's associated data, so a sealed key cannot be moved to another slot.
//! * Update: each slot has a policy (algorithm, rotation interval). [`Keystore::rotate`]
//!   makes a new period current on demand; [`Keystore::rotate_due`] rotates every slot
//!   whose current key is older than its interval (the node calls it on a timer). Old
//!   periods stay, retired, so what they signed still verifies and what they encrypted
//!   still decrypts.
//! * Read/write service: modules get a [`ModuleKeys`] handle bound to their name. It can
//!   use (sign, decrypt, unseal) and read (public key) the module's own keys, and another
//!   module's only where the admin granted it. No API returns private key bytes; they are
//!   unsealed into zeroized buffers for the duration of one operation.

use joule_crypto::{AlgorithmKind, CryptoError, CryptoService};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `module/purpose/period` -> [`KeyRecord`] (JSON).
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
/// `module/purpose` -> [`Slot`] (JSON).
const SLOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("slots");
/// `grantee|module/purpose` -> [`Right`] (JSON).
const GRANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("grants");

const FORMAT_VERSION: &[u8] = b"joule-keystore/1";
const CHECK_PLAINTEXT: &[u8] = b"joule keystore passphrase check";

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("wrong passphrase (or the keystore was sealed with another cipher plugin)")]
    WrongPassphrase,
    #[error("{0} is not a Joule keystore")]
    NotAKeystore(String),
    #[error("no key slot {0} (set a policy for it first)")]
    NoSlot(String),
    #[error("no key {0}")]
    NoKey(String),
    #[error("module {caller:?} has no {right:?} right on keys of {slot}")]
    Denied { caller: String, right: Right, slot: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("keystore storage: {0}")]
    Storage(String),
}

fn storage<E: std::fmt::Display>(e: E) -> KeystoreError {
    KeystoreError::Storage(e.to_string())
}

/// What a module may do with another module's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Read public keys and metadata.
    Read,
    /// Read, and sign / decrypt / unseal with the key.
    Use,
}

/// A slot's policy and its current period.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Slot {
    pub module: String,
    pub purpose: String,
    pub algorithm: String,
    pub kind: AlgorithmKind,
    /// Seconds between scheduled rotations; `None` rotates only on demand.
    pub rotate_every: Option<u64>,
    /// 0 until the first key is generated.
    pub current_period: u64,
}

/// One period's key. Secret bytes are only ever present sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub module: String,
    pub purpose: String,
    pub period: u64,
    pub algorithm: String,
    pub kind: AlgorithmKind,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; set when a newer period replaced this one.
    pub retired_at: Option<u64>,
    /// SubjectPublicKeyInfo DER, hex (asymmetric keys).
    pub public_key: Option<String>,
    /// Nonce followed by the AEAD-sealed PKCS#8 or symmetric key, hex.
    sealed: String,
}

/// Names one period's key: what a signature or ciphertext records so it can be checked or
/// opened after rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyRef {
    pub module: String,
    pub purpose: String,
    pub period: u64,
}

impl KeyRef {
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.module, self.purpose, self.period)
    }
}

#[derive(Serialize, Deserialize)]
struct KdfParams {
    algorithm: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

/// Argon2id cost: 64 MiB and 3 passes (OWASP's recommendation for Argon2id).
pub const DEFAULT_KDF_MEMORY_KIB: u32 = 64 * 1024;

pub struct Keystore {
    db: Database,
    crypto: CryptoService,
    cipher: String,
    nonce_size: usize,
    master: Zeroizing<Vec<u8>>,
}

fn now() -> u64 {
    joule_support::now_secs()
}

fn check_name(field: &'static str, v: &str) -> Result<(), KeystoreError> {
    if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
        return Err(KeystoreError::Invalid { field, reason: format!("{v:?} must be 1-64 chars of [A-Za-z0-9._-]") });
    }
    Ok(())
}

fn random(n: usize) -> Result<Vec<u8>, KeystoreError> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).map_err(|e| KeystoreError::Storage(format!("no OS randomness: {e}")))?;
    Ok(v)
}

impl Keystore {
    /// Create a keystore sealed with `cipher` (an AEAD such as `sm4-gcm` or `aes-256-gcm`).
    pub fn create(path: &Path, passphrase: &[u8], cipher: &str, crypto: CryptoService, kdf_memory_kib: u32) -> Result<Self, KeystoreError> {
        if path.exists() {
            return Err(KeystoreError::Invalid { field: "path", reason: format!("{} already exists", path.display()) });
        }
        let info = crypto.info(AlgorithmKind::SymmetricCipher, cipher)?;
        if info.output_size == 0 {
            return Err(KeystoreError::Invalid { field: "cipher", reason: format!("{cipher} is not an authenticated cipher") });
        }
        let kdf = KdfParams { algorithm: "argon2id".into(), memory_kib: kdf_memory_kib, iterations: 3, parallelism: 1, salt: hex::encode(random(16)?) };
        let master = derive(passphrase, &kdf, info.key_size as usize)?;
        // Owner-only before redb writes anything into it.
        joule_support::fs::private_file(path).map_err(storage)?;
        let db = Database::create(path).map_err(storage)?;
        let ks = Keystore { db, crypto, cipher: cipher.into(), nonce_size: info.nonce_size as usize, master };
        let check = ks.seal(b"meta/check", CHECK_PLAINTEXT)?;
        let tx = ks.db.begin_write().map_err(storage)?;
        {
            let mut meta = tx.open_table(META).map_err(storage)?;
            meta.insert("format", FORMAT_VERSION).map_err(storage)?;
            meta.insert("kdf", serde_json::to_vec(&kdf).map_err(storage)?.as_slice()).map_err(storage)?;
            meta.insert("cipher", cipher.as_bytes()).map_err(storage)?;
            meta.insert("check", check.as_slice()).map_err(storage)?;
            tx.open_table(KEYS).map_err(storage)?;
            tx.open_table(SLOTS).map_err(storage)?;
            tx.open_table(GRANTS).map_err(storage)?;
        }
        tx.commit().map_err(storage)?;
        Ok(ks)
    }

    /// Open an existing keystore; a wrong passphrase is detected before anything is used.
    pub fn open(path: &Path, passphrase: &[u8], crypto: CryptoService) -> Result<Self, KeystoreError> {
        // A keystore an older version created with the default mode becomes owner-only.
        if path.is_file()
            && let Err(e) = joule_support::fs::set_mode(path, 0o600)
        {
            tracing::warn!("cannot make the keystore {} owner-only: {e}", path.display());
        }
        let db = Database::open(path).map_err(|_| KeystoreError::NotAKeystore(path.display().to_string()))?;
        let (kdf, cipher, check) = {
            let tx = db.begin_read().map_err(storage)?;
            let meta = tx.open_table(META).map_err(|_| KeystoreError::NotAKeystore(path.display().to_string()))?;
            let get = |k: &str| -> Result<Vec<u8>, KeystoreError> {
                meta.get(k).map_err(storage)?.map(|v| v.value().to_vec()).ok_or_else(|| KeystoreError::NotAKeystore(path.display().to_string()))
            };
            if get("format")? != FORMAT_VERSION {
                return Err(KeystoreError::NotAKeystore(path.display().to_string()));
            }
            let kdf: KdfParams = serde_json::from_slice(&get("kdf")?).map_err(storage)?;
            (kdf, String::from_utf8_lossy(&get("cipher")?).into_owned(), get("check")?)
        };
        let info = crypto.info(AlgorithmKind::SymmetricCipher, &cipher)?;
        let master = derive(passphrase, &kdf, info.key_size as usize)?;
        let ks = Keystore { db, crypto, cipher, nonce_size: info.nonce_size as usize, master };
        match ks.unseal(b"meta/check", &check) {
            Ok(pt) if pt.as_slice() == CHECK_PLAINTEXT => Ok(ks),
            Ok(_) | Err(KeystoreError::Crypto(CryptoError::DecryptionFailed)) => Err(KeystoreError::WrongPassphrase),
            Err(e) => Err(e),
        }
    }

    pub fn cipher(&self) -> &str {
        &self.cipher
    }

    fn seal(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        let nonce = random(self.nonce_size)?;
        let ct = self.crypto.encrypt(&self.cipher, &self.master, &nonce, aad, secret)?;
        Ok([nonce, ct].concat())
    }

    fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
        if sealed.len() < self.nonce_size {
            return Err(KeystoreError::Storage("sealed key is truncated".into()));
        }
        let (nonce, ct) = sealed.split_at(self.nonce_size);
        Ok(Zeroizing::new(self.crypto.decrypt(&self.cipher, &self.master, nonce, aad, ct)?))
    }

    /// Set (or change) the algorithm and rotation interval of a slot. A changed algorithm
    /// applies from the next period.
    pub fn set_policy(&self, module: &str, purpose: &str, algorithm: &str, rotate_every: Option<Duration>) -> Result<Slot, KeystoreError> {
        check_name("module", module)?;
        check_name("purpose", purpose)?;
        let kind = [AlgorithmKind::Signature, AlgorithmKind::PublicKeyEncryption, AlgorithmKind::SymmetricCipher]
            .into_iter()
            .find(|k| self.crypto.info(*k, algorithm).is_ok())
            .ok_or_else(|| KeystoreError::Invalid {
                field: "algorithm",
                reason: format!("no active plugin provides a signature, public-key-encryption or cipher algorithm {algorithm:?}"),
            })?;
        let slot_id = format!("{module}/{purpose}");
        let current_period = self.slot(&slot_id).map(|s| s.current_period).unwrap_or(0);
        let slot = Slot {
            module: module.into(),
            purpose: purpose.into(),
            algorithm: algorithm.into(),
            kind,
            rotate_every: rotate_every.map(|d| d.as_secs().max(1)),
            current_period,
        };
        self.put(SLOTS, &slot_id, &slot)?;
        Ok(slot)
    }

    fn put<T: Serialize>(&self, table: TableDefinition<&str, &[u8]>, key: &str, value: &T) -> Result<(), KeystoreError> {
        let tx = self.db.begin_write().map_err(storage)?;
        tx.open_table(table).map_err(storage)?.insert(key, serde_json::to_vec(value).map_err(storage)?.as_slice()).map_err(storage)?;
        tx.commit().map_err(storage)
    }

    fn get<T: for<'de> Deserialize<'de>>(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Result<Option<T>, KeystoreError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let t = tx.open_table(table).map_err(storage)?;
        match t.get(key).map_err(storage)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(storage)?)),
            None => Ok(None),
        }
    }

    pub fn slot(&self, slot_id: &str) -> Result<Slot, KeystoreError> {
        self.get(SLOTS, slot_id)?.ok_or_else(|| KeystoreError::NoSlot(slot_id.into()))
    }

    pub fn slots(&self) -> Result<Vec<Slot>, KeystoreError> {
        self.scan(SLOTS)
    }

    /// Every key record (no secret material is in them but sealed bytes).
    pub fn keys(&self) -> Result<Vec<KeyRecord>, KeystoreError> {
        self.scan(KEYS)
    }

    fn scan<T: for<'de> Deserialize<'de>>(&self, table: TableDefinition<&str, &[u8]>) -> Result<Vec<T>, KeystoreError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let t = tx.open_table(table).map_err(storage)?;
        let mut out = vec![];
        for row in t.iter().map_err(storage)? {
            let (_, v) = row.map_err(storage)?;
            out.push(serde_json::from_slice(v.value()).map_err(storage)?);
        }
        Ok(out)
    }

    /// Start a new period for a slot: a fresh key becomes current, the old one is retired
    /// (kept for verification and decryption).
    pub fn rotate(&self, module: &str, purpose: &str) -> Result<KeyRef, KeystoreError> {
        let slot = self.slot(&format!("{module}/{purpose}"))?;
        let (public_key, secret) = match slot.kind {
            AlgorithmKind::SymmetricCipher => {
                let info = self.crypto.info(AlgorithmKind::SymmetricCipher, &slot.algorithm)?;
                (None, Zeroizing::new(random(info.key_size as usize)?))
            }
            _ => {
                let kp = self.crypto.generate_key(&slot.algorithm)?;
                (Some(kp.public_key), kp.private_key)
            }
        };
        self.add_period(slot, module, purpose, public_key, secret)
    }

    /// Make an existing key pair (PKCS#8 private key) the next period of a slot: for keys
    /// created outside the keystore, such as a node key that was also exported for OpenSSL.
    /// The public key must belong to the private key.
    pub fn import(&self, module: &str, purpose: &str, private_key: Zeroizing<Vec<u8>>) -> Result<KeyRef, KeystoreError> {
        let slot = self.slot(&format!("{module}/{purpose}"))?;
        if slot.kind == AlgorithmKind::SymmetricCipher {
            return Err(KeystoreError::Invalid { field: "key", reason: format!("{module}/{purpose} holds symmetric keys; import takes key pairs") });
        }
        let public_key = self.crypto.public_key(&slot.algorithm, &private_key)?;
        self.add_period(slot, module, purpose, Some(public_key), private_key)
    }

    fn add_period(
        &self,
        mut slot: Slot,
        module: &str,
        purpose: &str,
        public_key: Option<Vec<u8>>,
        secret: Zeroizing<Vec<u8>>,
    ) -> Result<KeyRef, KeystoreError> {
        let slot_id = format!("{module}/{purpose}");
        let period = slot.current_period + 1;
        let key_ref = KeyRef { module: module.into(), purpose: purpose.into(), period };
        let id = key_ref.id();
        let public_key = public_key.map(hex::encode);
        let record = KeyRecord {
            module: module.into(),
            purpose: purpose.into(),
            period,
            algorithm: slot.algorithm.clone(),
            kind: slot.kind,
            created_at: now(),
            retired_at: None,
            public_key,
            sealed: hex::encode(self.seal(id.as_bytes(), &secret)?),
        };
        let previous = (slot.current_period > 0).then(|| format!("{slot_id}/{}", slot.current_period));
        slot.current_period = period;
        // New key, retired old key and the slot's pointer change in one transaction.
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut keys = tx.open_table(KEYS).map_err(storage)?;
            if let Some(prev) = previous {
                let old: Option<KeyRecord> =
                    keys.get(prev.as_str()).map_err(storage)?.map(|v| serde_json::from_slice(v.value())).transpose().map_err(storage)?;
                if let Some(mut old) = old {
                    old.retired_at = Some(now());
                    keys.insert(prev.as_str(), serde_json::to_vec(&old).map_err(storage)?.as_slice()).map_err(storage)?;
                }
            }
            keys.insert(id.as_str(), serde_json::to_vec(&record).map_err(storage)?.as_slice()).map_err(storage)?;
            tx.open_table(SLOTS).map_err(storage)?.insert(slot_id.as_str(), serde_json::to_vec(&slot).map_err(storage)?.as_slice()).map_err(storage)?;
        }
        tx.commit().map_err(storage)?;
        tracing::info!(key = %id, algorithm = %slot.algorithm, "key rotated");
        metrics::counter!("joule_key_rotations_total").increment(1);
        Ok(key_ref)
    }

    /// Rotate every slot whose current key is older than its interval (or that has no
    /// key yet). Returns the new keys.
    pub fn rotate_due(&self, at: u64) -> Result<Vec<KeyRef>, KeystoreError> {
        let mut rotated = vec![];
        for slot in self.slots()? {
            let due = match (slot.current_period, slot.rotate_every) {
                (0, _) => true,
                (_, None) => false,
                (p, Some(every)) => {
                    let rec: Option<KeyRecord> = self.get(KEYS, &format!("{}/{}/{p}", slot.module, slot.purpose))?;
                    rec.is_none_or(|r| at.saturating_sub(r.created_at) >= every)
                }
            };
            if due {
                rotated.push(self.rotate(&slot.module, &slot.purpose)?);
            }
        }
        Ok(rotated)
    }

    /// Let `grantee` read or use the keys of `module/purpose`.
    pub fn grant(&self, grantee: &str, module: &str, purpose: &str, right: Right) -> Result<(), KeystoreError> {
        check_name("grantee", grantee)?;
        self.slot(&format!("{module}/{purpose}"))?;
        self.put(GRANTS, &format!("{grantee}|{module}/{purpose}"), &right)
    }

    pub fn revoke(&self, grantee: &str, module: &str, purpose: &str) -> Result<(), KeystoreError> {
        let tx = self.db.begin_write().map_err(storage)?;
        tx.open_table(GRANTS).map_err(storage)?.remove(format!("{grantee}|{module}/{purpose}").as_str()).map_err(storage)?;
        tx.commit().map_err(storage)
    }

    /// The key service as seen by one internal module.
    pub fn for_module<'a>(&'a self, module: &str) -> ModuleKeys<'a> {
        ModuleKeys { store: self, caller: module.into() }
    }

    fn record(&self, key: &KeyRef) -> Result<KeyRecord, KeystoreError> {
        self.get(KEYS, &key.id())?.ok_or_else(|| KeystoreError::NoKey(key.id()))
    }

    fn current(&self, module: &str, purpose: &str) -> Result<KeyRef, KeystoreError> {
        let slot = self.slot(&format!("{module}/{purpose}"))?;
        if slot.current_period == 0 {
            return Err(KeystoreError::NoKey(format!("{module}/{purpose} (no key generated yet)")));
        }
        Ok(KeyRef { module: module.into(), purpose: purpose.into(), period: slot.current_period })
    }
}

fn derive(passphrase: &[u8], kdf: &KdfParams, len: usize) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
    if kdf.algorithm != "argon2id" {
        return Err(KeystoreError::Invalid { field: "kdf", reason: format!("unsupported KDF {}", kdf.algorithm) });
    }
    let params = argon2::Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(len))
        .map_err(|e| KeystoreError::Invalid { field: "kdf", reason: e.to_string() })?;
    let salt = hex::decode(&kdf.salt).map_err(storage)?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase, &salt, &mut out)
        .map_err(|e| KeystoreError::Invalid { field: "kdf", reason: e.to_string() })?;
    Ok(out)
}

/// Where a keystore's passphrase comes from, in order: the `JOULE_KEYSTORE_PASSPHRASE`
/// environment variable, a passphrase file the operator names, or the `keystore.pass`
/// file `joule init` writes into a node directory for development setups (mode 0600;
/// production operators supply the passphrase from outside the data directory and
/// delete that file).
pub fn passphrase(file: Option<&Path>, node_dir: Option<&Path>) -> Result<Option<Zeroizing<String>>, KeystoreError> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return check_passphrase(p).map(Some);
    }
    let file = match (file, node_dir) {
        (Some(f), _) => f.to_path_buf(),
        (None, Some(d)) if d.join(PASSPHRASE_FILE).exists() => d.join(PASSPHRASE_FILE),
        _ => return Ok(None),
    };
    let text = std::fs::read_to_string(&file).map_err(|e| KeystoreError::Storage(format!("read {}: {e}", file.display())))?;
    check_passphrase(text.lines().next().unwrap_or_default().to_string()).map(Some)
}

fn check_passphrase(p: String) -> Result<Zeroizing<String>, KeystoreError> {
    if p.len() < 8 {
        return Err(KeystoreError::Invalid { field: "passphrase", reason: "the keystore passphrase must be at least 8 characters".into() });
    }
    Ok(Zeroizing::new(p))
}

/// The environment variable a keystore passphrase is read from.
pub const PASSPHRASE_ENV: &str = "JOULE_KEYSTORE_PASSPHRASE";
/// The development passphrase file in a node directory.
pub const PASSPHRASE_FILE: &str = "keystore.pass";
/// A node directory's keystore.
pub const KEYSTORE_FILE: &str = "keystore.redb";
/// The keystore module that owns the node's own keys.
pub const NODE_MODULE: &str = "node";

/// The slot purpose of the node's block-sealing key for a signature algorithm.
pub fn seal_purpose(algorithm: &str) -> String {
    format!("seal-{algorithm}")
}

/// The node's block-sealing key in the keystore: unsealed for each signature only.
pub struct KeystoreSigner {
    keystore: std::sync::Arc<Keystore>,
    purpose: String,
    public_key: Vec<u8>,
}

impl KeystoreSigner {
    /// The current key of `node/<purpose>`.
    pub fn new(keystore: std::sync::Arc<Keystore>, purpose: &str) -> Result<Self, KeystoreError> {
        let keys = keystore.for_module(NODE_MODULE);
        let current = keys.current(NODE_MODULE, purpose)?;
        let public_key = keys.public_key(&current)?;
        Ok(KeystoreSigner { keystore, purpose: purpose.into(), public_key })
    }
}

impl joule_ledger::chain::BlockSigner for KeystoreSigner {
    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, joule_primitives::SuiteError> {
        self.keystore
            .for_module(NODE_MODULE)
            .sign(NODE_MODULE, &self.purpose, message)
            .map(|(_, sig)| sig)
            .map_err(|e| joule_primitives::SuiteError::Unavailable(format!("node key {NODE_MODULE}/{}: {e}", self.purpose)))
    }
}

/// The key read/write service bound to the calling module.
pub struct ModuleKeys<'a> {
    store: &'a Keystore,
    caller: String,
}

impl ModuleKeys<'_> {
    fn check(&self, module: &str, purpose: &str, right: Right) -> Result<(), KeystoreError> {
        if self.caller == module {
            return Ok(());
        }
        let granted: Option<Right> = self.store.get(GRANTS, &format!("{}|{module}/{purpose}", self.caller))?;
        if granted.is_some_and(|g| g >= right) {
            Ok(())
        } else {
            Err(KeystoreError::Denied { caller: self.caller.clone(), right, slot: format!("{module}/{purpose}") })
        }
    }

    fn secret(&self, key: &KeyRef) -> Result<(KeyRecord, Zeroizing<Vec<u8>>), KeystoreError> {
        self.check(&key.module, &key.purpose, Right::Use)?;
        let rec = self.store.record(key)?;
        let sealed = hex::decode(&rec.sealed).map_err(storage)?;
        let secret = self.store.unseal(key.id().as_bytes(), &sealed)?;
        Ok((rec, secret))
    }

    /// The current key of a slot.
    pub fn current(&self, module: &str, purpose: &str) -> Result<KeyRef, KeystoreError> {
        self.check(module, purpose, Right::Read)?;
        self.store.current(module, purpose)
    }

    /// SPKI DER public key of an asymmetric key.
    pub fn public_key(&self, key: &KeyRef) -> Result<Vec<u8>, KeystoreError> {
        self.check(&key.module, &key.purpose, Right::Read)?;
        let rec = self.store.record(key)?;
        rec.public_key
            .and_then(|p| hex::decode(p).ok())
            .ok_or_else(|| KeystoreError::Invalid { field: "key", reason: format!("{} is a symmetric key", key.id()) })
    }

    /// Sign with the slot's current key; the returned [`KeyRef`] names the period.
    pub fn sign(&self, module: &str, purpose: &str, message: &[u8]) -> Result<(KeyRef, Vec<u8>), KeystoreError> {
        self.sign_with_id(module, purpose, message, None)
    }

    /// Sign as [`ModuleKeys::sign`], with an SM2 distinguishing identifier (`None`: the
    /// standard one; X.509 uses the empty one).
    pub fn sign_with_id(&self, module: &str, purpose: &str, message: &[u8], user_id: Option<&[u8]>) -> Result<(KeyRef, Vec<u8>), KeystoreError> {
        let key = self.current(module, purpose)?;
        let (rec, sk) = self.secret(&key)?;
        Ok((key, self.store.crypto.sign(&rec.algorithm, &sk, message, user_id)?))
    }

    /// Verify with the key of any period, current or retired.
    pub fn verify(&self, key: &KeyRef, message: &[u8], signature: &[u8]) -> Result<bool, KeystoreError> {
        let pk = self.public_key(key)?;
        let rec = self.store.record(key)?;
        Ok(self.store.crypto.verify(&rec.algorithm, &pk, message, signature, None)?)
    }

    /// Encrypt to the slot's current public key (public-key encryption slots).
    pub fn encrypt_to(&self, module: &str, purpose: &str, plaintext: &[u8]) -> Result<(KeyRef, Vec<u8>), KeystoreError> {
        let key = self.current(module, purpose)?;
        let pk = self.public_key(&key)?;
        let rec = self.store.record(&key)?;
        Ok((key, self.store.crypto.pke_encrypt(&rec.algorithm, &pk, plaintext)?))
    }

    pub fn decrypt(&self, key: &KeyRef, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
        let (rec, sk) = self.secret(key)?;
        Ok(Zeroizing::new(self.store.crypto.pke_decrypt(&rec.algorithm, &sk, ciphertext)?))
    }

    /// Encrypt data under the slot's current symmetric key: `nonce || ciphertext`.
    pub fn seal(&self, module: &str, purpose: &str, plaintext: &[u8], aad: &[u8]) -> Result<(KeyRef, Vec<u8>), KeystoreError> {
        let key = self.current(module, purpose)?;
        let (rec, k) = self.secret(&key)?;
        let nonce = random(self.store.crypto.info(AlgorithmKind::SymmetricCipher, &rec.algorithm)?.nonce_size as usize)?;
        let ct = self.store.crypto.encrypt(&rec.algorithm, &k, &nonce, aad, plaintext)?;
        Ok((key, [nonce, ct].concat()))
    }

    pub fn open(&self, key: &KeyRef, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
        let (rec, k) = self.secret(key)?;
        let n = self.store.crypto.info(AlgorithmKind::SymmetricCipher, &rec.algorithm)?.nonce_size as usize;
        if sealed.len() < n {
            return Err(KeystoreError::Invalid { field: "sealed", reason: "shorter than the nonce".into() });
        }
        let (nonce, ct) = sealed.split_at(n);
        Ok(Zeroizing::new(self.store.crypto.decrypt(&rec.algorithm, &k, nonce, aad, ct)?))
    }
}
