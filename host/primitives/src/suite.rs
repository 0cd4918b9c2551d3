//! A channel's crypto suite (§4.1.1): which hash and signature algorithms its ledger
//! uses, and the trait through which the ledger reaches them.
//!
//! The ledger never implements an algorithm: the node binds a suite to the crypto plugins
//! (`joule-crypto`) and hands the ledger a [`ChainCrypto`]; tests hand it a native one.

use crate::merkle::Hasher;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// The algorithms a channel's genesis names.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CryptoSuite {
    /// `gm`, `intl`, or a custom name.
    pub id: String,
    /// Hash algorithm id, e.g. `sm3`.
    pub hash: String,
    /// Signature algorithm id, e.g. `sm2`.
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

    /// Ids of the built-in suites, for messages.
    pub const NAMED: &'static [&'static str] = &["gm", "intl"];
}

/// Why a suite operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    /// The key could not be parsed or does not fit the algorithm.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Another argument is malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The operation could not run (no active plugin, a plugin failure).
    #[error("{0}")]
    Unavailable(String),
}

/// A channel's suite, bound to implementations: hashing for trees and headers,
/// signatures for transactions and seals.
pub trait ChainCrypto: Hasher + Send + Sync {
    fn suite(&self) -> &CryptoSuite;

    /// Check a signature against an SPKI public key. A wrong or malformed signature is
    /// `Ok(false)`; a malformed key is [`SuiteError::InvalidKey`].
    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<bool, SuiteError>;

    /// Check a signature as X.509 carries it (certificates, CRLs), under the SM2
    /// distinguishing identifier `sm2_id` (`None`: the standard `1234567812345678`;
    /// ignored by algorithms without one). OpenSSL 3.0 signs and checks certificates under
    /// the empty identifier, transactions use the standard one.
    fn verify_with_sm2_id(&self, public_key: &[u8], message: &[u8], signature: &[u8], sm2_id: Option<&[u8]>) -> Result<bool, SuiteError> {
        let _ = sm2_id;
        self.verify(public_key, message, signature)
    }

    /// Sign with a PKCS#8 private key.
    fn sign(&self, private_key: &[u8], message: &[u8]) -> Result<Vec<u8>, SuiteError>;

    /// The same implementations bound to the suite `id` (for key bindings and suite
    /// switches), or `None` when they do not serve it.
    fn bind_suite(&self, id: &str) -> Option<std::sync::Arc<dyn ChainCrypto>> {
        let _ = id;
        None
    }
}
