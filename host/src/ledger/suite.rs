//! A channel's crypto suite: the hash and signature algorithms its genesis names. Every
//! hash and signature of the channel goes through the active crypto plugins.

use crate::crypto::{CryptoError, CryptoService};
use joule_primitives::Hash32;
use joule_primitives::merkle::{HashError, Hasher};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CryptoSuite {
    /// `gm`, `intl`, or a custom name.
    pub id: String,
    pub hash: String,
    pub signature: String,
}

impl CryptoSuite {
    /// The built-in suites: `gm` (SM3 + SM2) and `intl` (SHA-256 + ECDSA P-256).
    pub fn named(id: &str) -> Option<CryptoSuite> {
        let (hash, signature) = match id {
            "gm" => ("sm3", "sm2"),
            "intl" => ("sha256", "ecdsa-p256"),
            _ => return None,
        };
        Some(CryptoSuite { id: id.into(), hash: hash.into(), signature: signature.into() })
    }
}

/// The suite bound to the plugins: hashing for Merkle trees and headers, signatures for
/// transactions and seals.
#[derive(Clone)]
pub struct SuiteCrypto {
    pub suite: CryptoSuite,
    pub crypto: CryptoService,
}

impl SuiteCrypto {
    pub fn hash32(&self, data: &[u8]) -> Result<Hash32, HashError> {
        let d = self.crypto.digest(&self.suite.hash, data).map_err(|e| HashError(e.to_string()))?;
        Hash32::from_slice(&d).ok_or_else(|| HashError(format!("{} returned {} bytes; a chain hash must be 32", self.suite.hash, d.len())))
    }

    pub fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<bool, CryptoError> {
        self.crypto.verify(&self.suite.signature, public_key, message, signature, None)
    }

    pub fn sign(&self, private_key: &[u8], message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.crypto.sign(&self.suite.signature, private_key, message, None)
    }
}

impl Hasher for SuiteCrypto {
    fn hash(&self, data: &[u8]) -> Result<Hash32, HashError> {
        self.hash32(data)
    }
}
