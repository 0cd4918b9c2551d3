//! Which Noise protocol a channel's wire speaks, and the node's static key for it.

use crate::crypto::{self, OsRandom, PUBLIC_KEY_LEN, SCALAR_LEN, WireCipher, WireDh, WireHash, WirePrimitives};
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::CryptoResolver;
use snow::types::{Cipher, Dh, Hash, Random};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The wire's crypto, following the channel's suite: a channel bound to national
/// algorithms never falls back to others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireSuite {
    /// P-256, AES-256-GCM, SHA-256.
    Intl,
    /// ECDH on the SM2 curve, SM4-GCM, SM3.
    Gm,
}

/// The template the suites' parameters are built from: the XX pattern, with the DH, cipher
/// and hash slots that the suite's resolver fills with its own primitives.
const TEMPLATE: &str = "Noise_XX_448_AESGCM_SHA256";

impl WireSuite {
    /// Every suite.
    pub const ALL: [WireSuite; 2] = [WireSuite::Intl, WireSuite::Gm];

    /// The suite of a channel's crypto-suite name (`intl`, `gm`).
    pub fn from_channel_suite(name: &str) -> Option<Self> {
        match name {
            "intl" => Some(WireSuite::Intl),
            "gm" => Some(WireSuite::Gm),
            _ => None,
        }
    }

    /// The Noise protocol name, hashed into the handshake (so the two suites can never
    /// complete a handshake with each other).
    pub fn protocol_name(self) -> &'static str {
        match self {
            WireSuite::Intl => "Noise_XX_P256_AESGCM_SHA256",
            WireSuite::Gm => "Noise_XX_SM2_SM4GCM_SM3",
        }
    }

    pub(crate) fn params(self) -> NoiseParams {
        // The template is a valid Noise name (a unit test parses it).
        let mut params: NoiseParams = TEMPLATE.parse().unwrap_or_else(|_| unreachable!("{TEMPLATE} parses"));
        params.name = self.protocol_name().to_string();
        params
    }

    /// Noise's names for the suite's DH, cipher and hash (in the protocol name).
    fn slot_names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            WireSuite::Intl => ("P256", "AESGCM", "SHA256"),
            WireSuite::Gm => ("SM2", "SM4GCM", "SM3"),
        }
    }
}

/// Snow's resolver for a suite's primitives: they fill the template's slots, and nothing
/// else resolves.
pub(crate) fn resolver(primitives: Arc<dyn WirePrimitives>) -> Box<dyn CryptoResolver + Send + Sync> {
    Box::new(SuiteResolver(primitives))
}

impl std::fmt::Display for WireSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WireSuite::Intl => "intl",
            WireSuite::Gm => "gm",
        })
    }
}

/// Answers snow with the suite's primitives for the template's slots, and nothing else.
struct SuiteResolver(Arc<dyn WirePrimitives>);

impl CryptoResolver for SuiteResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(OsRandom))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        let (name, _, _) = self.0.suite().slot_names();
        matches!(choice, DHChoice::Curve448).then(|| Box::new(WireDh::new(self.0.clone(), name)) as Box<dyn Dh>)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        let (_, _, name) = self.0.suite().slot_names();
        matches!(choice, HashChoice::SHA256).then(|| Box::new(WireHash::new(self.0.clone(), name)) as Box<dyn Hash>)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        let (_, name, _) = self.0.suite().slot_names();
        matches!(choice, CipherChoice::AESGCM).then(|| Box::new(WireCipher::new(self.0.clone(), name)) as Box<dyn Cipher>)
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a node's network key is a {SCALAR_LEN}-byte scalar on the suite's curve (nonzero, below the order)")]
    InvalidPrivateKey,
    #[error("no entropy from the operating system")]
    Entropy,
}

/// A node's static network key: the DH key its peers know it by (its public half is what
/// the channel's node set lists). Separate from the node's signing key. It carries the
/// primitives its handshakes run on.
pub struct NodeKey {
    primitives: Arc<dyn WirePrimitives>,
    private: Zeroizing<[u8; SCALAR_LEN]>,
    public: [u8; PUBLIC_KEY_LEN],
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey").field("suite", &self.suite()).field("public", &PeerKey(self.public)).finish_non_exhaustive()
    }
}

impl NodeKey {
    /// A fresh key from the operating system's entropy, on the primitives' curve.
    pub fn generate(primitives: Arc<dyn WirePrimitives>) -> Result<Self, KeyError> {
        let k = crypto::generate(primitives.as_ref(), &mut OsRandom).map_err(|_| KeyError::Entropy)?;
        Self::from_private(primitives, k.as_slice())
    }

    pub fn from_private(primitives: Arc<dyn WirePrimitives>, private: &[u8]) -> Result<Self, KeyError> {
        let public = primitives.public_key(private).ok_or(KeyError::InvalidPrivateKey)?;
        let private: [u8; SCALAR_LEN] = private.try_into().map_err(|_| KeyError::InvalidPrivateKey)?;
        Ok(NodeKey { primitives, private: Zeroizing::new(private), public })
    }

    pub fn suite(&self) -> WireSuite {
        self.primitives.suite()
    }

    /// The primitives the key's handshakes and sessions run on.
    pub fn primitives(&self) -> &Arc<dyn WirePrimitives> {
        &self.primitives
    }

    pub fn public(&self) -> PeerKey {
        PeerKey(self.public)
    }

    /// The private scalar (for the keystore to seal; never logged).
    pub fn private(&self) -> &[u8; SCALAR_LEN] {
        &self.private
    }
}

/// A peer's identity: its static public key (compressed SEC1 point, 33 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub [u8; PUBLIC_KEY_LEN]);

impl PeerKey {
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(PeerKey)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 8 bytes in hex, for logs.
    pub fn short(&self) -> String {
        self.to_hex().chars().take(16).collect()
    }
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerKey({})", self.to_hex())
    }
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}
