//! The peer-to-peer wire's primitives served by the node's crypto plugins, so a channel
//! bound to national algorithms runs its Noise handshakes and frames on the same SM2, SM4
//! and SM3 code as its ledger, and never falls back to other algorithms.

use anyhow::{Result, bail};
use joule_crypto::{AlgorithmKind, CryptoService};
use joule_net::{HASH_LEN, PUBLIC_KEY_LEN, SCALAR_LEN, WirePrimitives, WireSuite};
use std::sync::Arc;

/// A suite's wire algorithms, each routed to the active plugin that provides it.
pub struct PluginWire {
    crypto: CryptoService,
    suite: WireSuite,
    key_agreement: &'static str,
    hash: &'static str,
    cipher: &'static str,
    /// Bytes of Noise's 32-byte key the cipher takes (SM4: the first 16).
    cipher_key: usize,
}

impl PluginWire {
    /// The wire of `suite` on `crypto`'s active plugins; an error names what is missing.
    pub fn shared(crypto: CryptoService, suite: WireSuite) -> Result<Arc<dyn WirePrimitives>> {
        let (key_agreement, hash, cipher, cipher_key) = match suite {
            WireSuite::Intl => ("ecdh-p256", "sha256", "aes-256-gcm", 32),
            WireSuite::Gm => ("ecdh-sm2", "sm3", "sm4-gcm", 16),
        };
        for (kind, alg) in [(AlgorithmKind::KeyAgreement, key_agreement), (AlgorithmKind::Hash, hash), (AlgorithmKind::SymmetricCipher, cipher)] {
            if !crypto.provides(kind, alg) {
                bail!(
                    "the {suite} wire needs {kind} {alg}, and no active crypto plugin provides it: install the suite's plugin \
                     (cargo xtask plugins builds crypto-{suite}; a plugin built against joule:crypto 0.1.0 has no key agreement)"
                );
            }
        }
        Ok(Arc::new(PluginWire { crypto, suite, key_agreement, hash, cipher, cipher_key }))
    }

    fn cipher_key<'k>(&self, key: &'k [u8; HASH_LEN]) -> Option<&'k [u8]> {
        key.get(..self.cipher_key)
    }
}

/// A failed plugin call is a failed handshake or frame; the reason goes to the log.
fn logged<T>(what: &str, r: Result<T, joule_crypto::CryptoError>) -> Option<T> {
    r.map_err(|e| tracing::debug!("wire {what}: {e}")).ok()
}

impl WirePrimitives for PluginWire {
    fn suite(&self) -> WireSuite {
        self.suite
    }

    fn public_key(&self, private: &[u8]) -> Option<[u8; PUBLIC_KEY_LEN]> {
        logged("public key", self.crypto.agreement_public_key(self.key_agreement, private))?.try_into().ok()
    }

    fn agree(&self, private: &[u8], peer: &[u8]) -> Option<[u8; SCALAR_LEN]> {
        logged("key agreement", self.crypto.agree(self.key_agreement, private, peer))?.try_into().ok()
    }

    fn hash(&self, data: &[u8]) -> Option<[u8; HASH_LEN]> {
        logged("hash", self.crypto.digest(self.hash, data))?.try_into().ok()
    }

    fn seal(&self, key: &[u8; HASH_LEN], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        logged("seal", self.crypto.encrypt(self.cipher, self.cipher_key(key)?, nonce, aad, plaintext))
    }

    fn open(&self, key: &[u8; HASH_LEN], nonce: &[u8; 12], aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        // A wrong tag is a peer's fault, not worth a log line per frame.
        self.crypto.decrypt(self.cipher, self.cipher_key(key)?, nonce, aad, ciphertext).ok()
    }
}
