//! Typed calls into one crypto plugin, with per-plugin metrics.

use super::{CryptoError, KeyPair};
use crate::bindings::Baseline as Bindings;
use crate::bindings::exports::joule::crypto::signature::SignOptions;
use crate::bindings::joule::crypto::types::CryptoError as WitError;
use crate::bindings::key_agreement::KeyAgreementProvider as KeyAgreementExports;
use crate::host::HostState;
use crate::kind::{CryptoPlugin, Exports};
use joule_kernel::PluginError;
use std::time::Instant;

/// The operations of the crypto world, for metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Algorithms,
    Digest,
    Generate,
    PublicKey,
    Sign,
    Verify,
    PkeEncrypt,
    PkeDecrypt,
    Encrypt,
    Decrypt,
    AgreementPublicKey,
    Agree,
}

impl Op {
    pub const ALL: [Op; 12] = [
        Op::Algorithms,
        Op::Digest,
        Op::Generate,
        Op::PublicKey,
        Op::Sign,
        Op::Verify,
        Op::PkeEncrypt,
        Op::PkeDecrypt,
        Op::Encrypt,
        Op::Decrypt,
        Op::AgreementPublicKey,
        Op::Agree,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Algorithms => "algorithms",
            Op::Digest => "digest",
            Op::Generate => "generate",
            Op::PublicKey => "public_key",
            Op::Sign => "sign",
            Op::Verify => "verify",
            Op::PkeEncrypt => "pke_encrypt",
            Op::PkeDecrypt => "pke_decrypt",
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
            Op::AgreementPublicKey => "agreement_public_key",
            Op::Agree => "agree",
        }
    }
}

/// Metric handles registered once per loaded plugin, so a call does no label lookups.
pub struct CallMetrics {
    calls: Vec<metrics::Counter>,
    failures: Vec<metrics::Counter>,
    seconds: Vec<metrics::Histogram>,
}

impl CallMetrics {
    pub fn new(plugin: &str, version: &str) -> Self {
        let labels = |op: Op| [("plugin", plugin.to_string()), ("version", version.to_string()), ("op", op.as_str().to_string())];
        CallMetrics {
            calls: Op::ALL.iter().map(|&op| metrics::counter!("joule_plugin_calls_total", &labels(op))).collect(),
            failures: Op::ALL.iter().map(|&op| metrics::counter!("joule_plugin_call_failures_total", &labels(op))).collect(),
            seconds: Op::ALL.iter().map(|&op| metrics::histogram!("joule_plugin_call_seconds", &labels(op))).collect(),
        }
    }
}

impl CryptoPlugin {
    /// One call: pooled instance, deadline, metrics, and errors mapped to [`CryptoError`].
    fn invoke<R>(&self, op: Op, f: impl FnOnce(&Bindings, &mut wasmtime::Store<HostState>) -> wasmtime::Result<Result<R, WitError>>) -> Result<R, CryptoError> {
        self.invoke_exports(op, |e, s| f(&e.baseline, s))
    }

    /// A call to the `key-agreement` export; a plugin built without it has no algorithms
    /// there, so nothing is routed to it and this answers `Unsupported`.
    fn invoke_key_agreement<R>(
        &self,
        op: Op,
        alg: &str,
        f: impl FnOnce(&KeyAgreementExports, &mut wasmtime::Store<HostState>) -> wasmtime::Result<Result<R, WitError>>,
    ) -> Result<R, CryptoError> {
        self.invoke_exports(op, |e, s| match &e.key_agreement {
            Some(k) => f(k, s),
            None => Ok(Err(WitError::UnsupportedAlgorithm(alg.to_string()))),
        })
    }

    fn invoke_exports<R>(
        &self,
        op: Op,
        f: impl FnOnce(&Exports, &mut wasmtime::Store<HostState>) -> wasmtime::Result<Result<R, WitError>>,
    ) -> Result<R, CryptoError> {
        let i = op as usize;
        let start = Instant::now();
        let out = self.instances.call(f);
        self.metrics.seconds[i].record(start.elapsed().as_secs_f64());
        self.metrics.calls[i].increment(1);
        match out {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(e.into()),
            Err(reason) => {
                self.metrics.failures[i].increment(1);
                Err(PluginError::Call { name: self.name.clone(), version: self.version.clone(), op: op.as_str(), reason: reason.to_string() }.into())
            }
        }
    }
}

fn options(user_id: Option<&[u8]>) -> SignOptions {
    SignOptions { user_id: user_id.map(<[u8]>::to_vec) }
}

/// The crypto world's operations on one specific plugin (routing is the caller's job).
pub trait PluginCrypto {
    fn digest(&self, alg: &str, data: &[u8]) -> Result<Vec<u8>, CryptoError>;
    fn generate(&self, alg: &str) -> Result<KeyPair, CryptoError>;
    fn public_key(&self, alg: &str, private_key: &[u8]) -> Result<Vec<u8>, CryptoError>;
    fn sign(&self, alg: &str, private_key: &[u8], message: &[u8], user_id: Option<&[u8]>) -> Result<Vec<u8>, CryptoError>;
    fn verify(&self, alg: &str, public_key: &[u8], message: &[u8], signature: &[u8], user_id: Option<&[u8]>) -> Result<bool, CryptoError>;
    fn pke_encrypt(&self, alg: &str, public_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError>;
    fn pke_decrypt(&self, alg: &str, private_key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError>;
    fn encrypt(&self, alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError>;
    fn decrypt(&self, alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// The compressed public key of a raw key-agreement scalar.
    fn agreement_public_key(&self, alg: &str, private_key: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// The ECDH shared secret (x-coordinate) of a raw scalar and a compressed peer key.
    fn agree(&self, alg: &str, private_key: &[u8], peer_public_key: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

impl PluginCrypto for CryptoPlugin {
    fn digest(&self, alg: &str, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.invoke(Op::Digest, |p, s| p.joule_crypto_hash().call_digest(s, alg, data))
    }

    fn generate(&self, alg: &str) -> Result<KeyPair, CryptoError> {
        let kp = self.invoke(Op::Generate, |p, s| p.joule_crypto_keys().call_generate(s, alg))?;
        Ok(KeyPair { private_key: zeroize::Zeroizing::new(kp.private_key), public_key: kp.public_key })
    }

    fn public_key(&self, alg: &str, private_key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.invoke(Op::PublicKey, |p, s| p.joule_crypto_keys().call_public_key(s, alg, private_key))
    }

    fn sign(&self, alg: &str, private_key: &[u8], message: &[u8], user_id: Option<&[u8]>) -> Result<Vec<u8>, CryptoError> {
        let o = options(user_id);
        self.invoke(Op::Sign, |p, s| p.joule_crypto_signature().call_sign(s, alg, private_key, message, &o))
    }

    fn verify(&self, alg: &str, public_key: &[u8], message: &[u8], signature: &[u8], user_id: Option<&[u8]>) -> Result<bool, CryptoError> {
        let o = options(user_id);
        self.invoke(Op::Verify, |p, s| p.joule_crypto_signature().call_verify(s, alg, public_key, message, signature, &o))
    }

    fn pke_encrypt(&self, alg: &str, public_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.invoke(Op::PkeEncrypt, |p, s| p.joule_crypto_public_key_encryption().call_encrypt(s, alg, public_key, plaintext))
    }

    fn pke_decrypt(&self, alg: &str, private_key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.invoke(Op::PkeDecrypt, |p, s| p.joule_crypto_public_key_encryption().call_decrypt(s, alg, private_key, ciphertext))
    }

    fn encrypt(&self, alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.invoke(Op::Encrypt, |p, s| p.joule_crypto_cipher().call_encrypt(s, alg, key, nonce, aad, plaintext))
    }

    fn decrypt(&self, alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.invoke(Op::Decrypt, |p, s| p.joule_crypto_cipher().call_decrypt(s, alg, key, nonce, aad, ciphertext))
    }

    fn agreement_public_key(&self, alg: &str, private_key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.invoke_key_agreement(Op::AgreementPublicKey, alg, |p, s| p.joule_crypto_key_agreement().call_public_key(s, alg, private_key))
    }

    fn agree(&self, alg: &str, private_key: &[u8], peer_public_key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.invoke_key_agreement(Op::Agree, alg, |p, s| p.joule_crypto_key_agreement().call_agree(s, alg, private_key, peer_public_key))
    }
}

impl CryptoPlugin {
    /// The plugin's own list of algorithms.
    pub(crate) fn describe(&self) -> Result<Vec<super::AlgorithmInfo>, CryptoError> {
        let v = self.invoke(Op::Algorithms, |p, s| p.joule_crypto_provider().call_algorithms(s).map(Ok))?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    /// The plugin's key-agreement algorithms, described by the sizes the interface fixes
    /// (raw 32-byte scalars, 33-byte compressed points, 32-byte secrets).
    pub(crate) fn describe_key_agreements(&self) -> Result<Vec<super::AlgorithmInfo>, CryptoError> {
        let ids = self.invoke_key_agreement(Op::Algorithms, "key-agreement", |p, s| p.joule_crypto_key_agreement().call_algorithms(s).map(Ok));
        let ids = match ids {
            Err(CryptoError::Unsupported(_)) => vec![],
            other => other?,
        };
        Ok(ids
            .into_iter()
            .map(|id| super::AlgorithmInfo {
                standard: match id.as_str() {
                    "ecdh-p256" => "NIST SP 800-56A (P-256)",
                    "ecdh-sm2" => "NIST SP 800-56A primitive on the GB/T 32918.1 curve",
                    _ => "",
                }
                .to_string(),
                id,
                kind: super::AlgorithmKind::KeyAgreement,
                oid: String::new(),
                key_size: 32,
                public_key_size: 33,
                output_size: 32,
                nonce_size: 0,
                block_size: 0,
            })
            .collect())
    }
}
