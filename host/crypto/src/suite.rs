//! A channel's crypto suite bound to the plugins: the `ChainCrypto` the ledger and the
//! consensus engines use. Every hash and signature of the channel goes through the
//! active crypto plugins.

use crate::{AlgorithmKind, CryptoError, CryptoService};
use joule_primitives::merkle::{HashError, Hasher};
use joule_primitives::{ChainCrypto, CryptoSuite, Hash32, SuiteError};

#[derive(Clone)]
pub struct SuiteCrypto {
    suite: CryptoSuite,
    crypto: CryptoService,
}

impl SuiteCrypto {
    pub fn new(suite: CryptoSuite, crypto: CryptoService) -> Self {
        SuiteCrypto { suite, crypto }
    }

    pub fn crypto(&self) -> &CryptoService {
        &self.crypto
    }

    /// The suite's algorithms that no active plugin provides (empty when it is served).
    pub fn unserved(&self) -> Vec<String> {
        let mut missing = vec![];
        if !self.crypto.provides(AlgorithmKind::Hash, &self.suite.hash) {
            missing.push(format!("hash:{}", self.suite.hash));
        }
        if !self.crypto.provides(AlgorithmKind::Signature, &self.suite.signature) {
            missing.push(format!("signature:{}", self.suite.signature));
        }
        missing
    }
}

impl From<CryptoError> for SuiteError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::InvalidKey(m) => SuiteError::InvalidKey(m),
            CryptoError::InvalidInput(m) => SuiteError::InvalidInput(m),
            other => SuiteError::Unavailable(other.to_string()),
        }
    }
}

impl Hasher for SuiteCrypto {
    fn hash(&self, data: &[u8]) -> Result<Hash32, HashError> {
        let d = self.crypto.digest(&self.suite.hash, data).map_err(|e| HashError(e.to_string()))?;
        Hash32::from_slice(&d).ok_or_else(|| HashError(format!("{} returned {} bytes; a chain hash must be 32", self.suite.hash, d.len())))
    }
}

impl ChainCrypto for SuiteCrypto {
    fn suite(&self) -> &CryptoSuite {
        &self.suite
    }

    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<bool, SuiteError> {
        Ok(self.crypto.verify(&self.suite.signature, public_key, message, signature, None)?)
    }

    fn verify_with_sm2_id(&self, public_key: &[u8], message: &[u8], signature: &[u8], sm2_id: Option<&[u8]>) -> Result<bool, SuiteError> {
        Ok(self.crypto.verify(&self.suite.signature, public_key, message, signature, sm2_id)?)
    }

    fn sign(&self, private_key: &[u8], message: &[u8]) -> Result<Vec<u8>, SuiteError> {
        Ok(self.crypto.sign(&self.suite.signature, private_key, message, None)?)
    }

    /// A built-in suite, when the active plugins serve both its algorithms.
    fn bind_suite(&self, id: &str) -> Option<std::sync::Arc<dyn ChainCrypto>> {
        let other = SuiteCrypto::new(CryptoSuite::named(id)?, self.crypto.clone());
        if other.unserved().is_empty() { Some(std::sync::Arc::new(other)) } else { None }
    }
}
