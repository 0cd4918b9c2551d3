//! The crypto plugin kind (guide §4.1.1): cryptography for the rest of the node, always
//! through the active crypto plugins.
//!
//! * [`kind`] — [`CryptoKind`], registered with the kernel: the `joule:crypto/plugin`
//!   world, its grants (entropy, accel), linking and the known-answer [`selftest`];
//! * [`CryptoService`] — routes each call by algorithm kind and identifier to the plugin
//!   version the registry has active for it; nothing here implements an algorithm. With no
//!   plugin providing `sm2`, `sm2` is an unknown algorithm;
//! * [`suite`] — a channel's suite bound to the plugins, as the ledger's `ChainCrypto`;
//! * [`pem`] — PEM armour for keys, as OpenSSL writes them.

mod bindings;
pub mod calls;
mod host;
pub mod kind;
pub mod pem;
pub mod selftest;
pub mod suite;

use bindings::joule::crypto::types as wit;
use joule_kernel::{LoadedPlugin, PluginError, PluginRegistry};
use std::fmt;
use std::sync::Arc;

pub use calls::PluginCrypto;
pub use kind::{CryptoKind, CryptoPlugin, KIND};
pub use suite::SuiteCrypto;

/// SM2's default distinguishing identifier (GB/T 35276-2017 §5.2.2).
pub const SM2_DEFAULT_ID: &str = joule_kernel::trust::SM2_DEFAULT_ID;

/// The kinds of algorithm a crypto plugin provides (key agreement since `joule:crypto@0.1.1`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlgorithmKind {
    Hash,
    Signature,
    PublicKeyEncryption,
    SymmetricCipher,
    KeyAgreement,
}

impl AlgorithmKind {
    pub const ALL: [AlgorithmKind; 5] =
        [AlgorithmKind::Hash, AlgorithmKind::Signature, AlgorithmKind::PublicKeyEncryption, AlgorithmKind::SymmetricCipher, AlgorithmKind::KeyAgreement];

    pub fn as_str(self) -> &'static str {
        match self {
            AlgorithmKind::Hash => "hash",
            AlgorithmKind::Signature => "signature",
            AlgorithmKind::PublicKeyEncryption => "public-key-encryption",
            AlgorithmKind::SymmetricCipher => "symmetric-cipher",
            AlgorithmKind::KeyAgreement => "key-agreement",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AlgorithmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<wit::AlgorithmKind> for AlgorithmKind {
    fn from(k: wit::AlgorithmKind) -> Self {
        match k {
            wit::AlgorithmKind::Hash => AlgorithmKind::Hash,
            wit::AlgorithmKind::Signature => AlgorithmKind::Signature,
            wit::AlgorithmKind::PublicKeyEncryption => AlgorithmKind::PublicKeyEncryption,
            wit::AlgorithmKind::SymmetricCipher => AlgorithmKind::SymmetricCipher,
        }
    }
}

/// One algorithm as a plugin describes it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AlgorithmInfo {
    pub id: String,
    pub kind: AlgorithmKind,
    pub oid: String,
    pub key_size: u32,
    pub public_key_size: u32,
    pub output_size: u32,
    pub nonce_size: u32,
    pub block_size: u32,
    pub standard: String,
}

impl AlgorithmInfo {
    /// `kind:id`, as manifests list algorithms.
    pub fn qualified(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }
}

impl From<wit::AlgorithmInfo> for AlgorithmInfo {
    fn from(a: wit::AlgorithmInfo) -> Self {
        AlgorithmInfo {
            id: a.id,
            kind: a.kind.into(),
            oid: a.oid,
            key_size: a.key_size,
            public_key_size: a.public_key_size,
            output_size: a.output_size,
            nonce_size: a.nonce_size,
            block_size: a.block_size,
            standard: a.standard,
        }
    }
}

/// Why a cryptographic operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("unknown {kind} algorithm {alg:?} (no active plugin provides it; available: {available})")]
    UnknownAlgorithm { kind: AlgorithmKind, alg: String, available: String },
    #[error("{0}: the plugin routed to does not support it")]
    Unsupported(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("decryption failed: wrong key, wrong nonce or tampered data")]
    DecryptionFailed,
    #[error("the plugin could not get randomness from the host")]
    EntropyUnavailable,
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

impl From<wit::CryptoError> for CryptoError {
    fn from(e: wit::CryptoError) -> Self {
        match e {
            wit::CryptoError::UnsupportedAlgorithm(a) => CryptoError::Unsupported(a),
            wit::CryptoError::InvalidKey(m) => CryptoError::InvalidKey(m),
            wit::CryptoError::InvalidInput(m) => CryptoError::InvalidInput(m),
            wit::CryptoError::DecryptionFailed => CryptoError::DecryptionFailed,
            wit::CryptoError::EntropyUnavailable => CryptoError::EntropyUnavailable,
        }
    }
}

/// A generated key pair: PKCS#8 and SPKI DER.
pub struct KeyPair {
    pub private_key: zeroize::Zeroizing<Vec<u8>>,
    pub public_key: Vec<u8>,
}

/// Cryptography as the node and the CLI use it: routed to active plugins.
#[derive(Clone)]
pub struct CryptoService {
    registry: Arc<PluginRegistry>,
}

/// The plugin version serving one call.
struct Routed(Arc<LoadedPlugin>);

impl Routed {
    fn plugin(&self) -> Result<&CryptoPlugin, CryptoError> {
        self.0.linked::<CryptoPlugin>().ok_or_else(|| CryptoError::Unsupported(format!("{} is not a crypto plugin", self.0.manifest.name)))
    }
}

impl CryptoService {
    pub fn new(registry: Arc<PluginRegistry>) -> Self {
        CryptoService { registry }
    }

    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    fn route(&self, kind: AlgorithmKind, alg: &str) -> Result<Routed, CryptoError> {
        self.registry.route(KIND, kind.as_str(), alg).map(Routed).ok_or_else(|| CryptoError::UnknownAlgorithm {
            kind,
            alg: alg.to_string(),
            available: {
                let v = self.registry.ids(KIND, kind.as_str());
                if v.is_empty() { "none".into() } else { v.join(", ") }
            },
        })
    }

    /// Active algorithm ids of a kind, sorted.
    pub fn algorithms(&self, kind: AlgorithmKind) -> Vec<String> {
        self.registry.ids(KIND, kind.as_str())
    }

    /// Whether an active plugin provides `alg` of `kind`.
    pub fn provides(&self, kind: AlgorithmKind, alg: &str) -> bool {
        self.registry.route(KIND, kind.as_str(), alg).is_some()
    }

    /// Every active algorithm with the plugin name and version serving it, by kind and id.
    pub fn active_algorithms(&self) -> Vec<(AlgorithmInfo, String, String)> {
        let mut v: Vec<_> = self
            .registry
            .active(KIND)
            .into_iter()
            .filter_map(|(class, id, p)| {
                let info = p.linked::<CryptoPlugin>()?.algorithms.iter().find(|a| a.kind.as_str() == class && a.id == id)?.clone();
                Some((info, p.manifest.name.clone(), p.manifest.version.clone()))
            })
            .collect();
        v.sort_by(|a, b| (a.0.kind, &a.0.id).cmp(&(b.0.kind, &b.0.id)));
        v
    }

    /// Metadata of an active algorithm.
    pub fn info(&self, kind: AlgorithmKind, alg: &str) -> Result<AlgorithmInfo, CryptoError> {
        let r = self.route(kind, alg)?;
        r.plugin()?.algorithms.iter().find(|a| a.kind == kind && a.id == alg).cloned().ok_or_else(|| CryptoError::Unsupported(alg.into()))
    }

    pub fn digest(&self, alg: &str, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.route(AlgorithmKind::Hash, alg)?.plugin()?.digest(alg, data)
    }

    /// A key pair for a signature or public-key-encryption algorithm.
    pub fn generate_key(&self, alg: &str) -> Result<KeyPair, CryptoError> {
        self.key_plugin(alg)?.plugin()?.generate(alg)
    }

    pub fn public_key(&self, alg: &str, private_key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.key_plugin(alg)?.plugin()?.public_key(alg, private_key)
    }

    fn key_plugin(&self, alg: &str) -> Result<Routed, CryptoError> {
        self.route(AlgorithmKind::Signature, alg).or_else(|_| self.route(AlgorithmKind::PublicKeyEncryption, alg))
    }

    pub fn sign(&self, alg: &str, private_key: &[u8], message: &[u8], user_id: Option<&[u8]>) -> Result<Vec<u8>, CryptoError> {
        self.route(AlgorithmKind::Signature, alg)?.plugin()?.sign(alg, private_key, message, user_id)
    }

    pub fn verify(&self, alg: &str, public_key: &[u8], message: &[u8], signature: &[u8], user_id: Option<&[u8]>) -> Result<bool, CryptoError> {
        self.route(AlgorithmKind::Signature, alg)?.plugin()?.verify(alg, public_key, message, signature, user_id)
    }

    pub fn pke_encrypt(&self, alg: &str, public_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.route(AlgorithmKind::PublicKeyEncryption, alg)?.plugin()?.pke_encrypt(alg, public_key, plaintext)
    }

    pub fn pke_decrypt(&self, alg: &str, private_key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.route(AlgorithmKind::PublicKeyEncryption, alg)?.plugin()?.pke_decrypt(alg, private_key, ciphertext)
    }

    pub fn encrypt(&self, alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.route(AlgorithmKind::SymmetricCipher, alg)?.plugin()?.encrypt(alg, key, nonce, aad, plaintext)
    }

    pub fn decrypt(&self, alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.route(AlgorithmKind::SymmetricCipher, alg)?.plugin()?.decrypt(alg, key, nonce, aad, ciphertext)
    }

    /// The compressed public key of a raw key-agreement scalar (`ecdh-p256`, `ecdh-sm2`).
    pub fn agreement_public_key(&self, alg: &str, private_key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.route(AlgorithmKind::KeyAgreement, alg)?.plugin()?.agreement_public_key(alg, private_key)
    }

    /// The ECDH shared secret of a raw scalar and a peer's compressed public key.
    pub fn agree(&self, alg: &str, private_key: &[u8], peer_public_key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.route(AlgorithmKind::KeyAgreement, alg)?.plugin()?.agree(alg, private_key, peer_public_key)
    }
}
