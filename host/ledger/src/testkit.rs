//! Native stand-ins for the seams, so the ledger's logic is tested without wasm: a suite
//! with real SHA-256 and Ed25519, and a round-robin engine that checks seals with it.

use joule_consensus::{Action, ConsensusEngine, ConsensusError, EngineHeader, Event, Head, Participant, Validator};
use joule_primitives::merkle::{HashError, Hasher};
use joule_primitives::{ChainCrypto, ChainSpec, ChannelId, CryptoSuite, Hash32, Payload, SuiteError, Transaction, UnsignedTransaction, ValidatorSpec};
use sha2::Digest;
use std::sync::Arc;

/// SHA-256 and Ed25519 (keys: the 32-byte seed; the 32-byte verifying key). It binds a
/// second suite, `test2` (SHA-512/256, Ed25519 over `test2\n` ‖ the message), so suite
/// switches are tested with hashes and signatures that differ from the first's.
pub struct TestCrypto {
    suite: CryptoSuite,
}

impl TestCrypto {
    pub fn new() -> Arc<TestCrypto> {
        Arc::new(TestCrypto { suite: CryptoSuite { id: "test".into(), hash: "sha256".into(), signature: "ed25519".into() } })
    }

    /// The second suite.
    pub fn second() -> Arc<TestCrypto> {
        Arc::new(TestCrypto { suite: CryptoSuite { id: "test2".into(), hash: "sha512-256".into(), signature: "ed25519-test2".into() } })
    }

    /// SHA-256 and ECDSA P-256 as X.509 carries them (SPKI keys, PKCS#8 private keys, DER
    /// signatures): for chains with certificates.
    pub fn p256() -> Arc<TestCrypto> {
        Arc::new(TestCrypto { suite: CryptoSuite { id: "test-p256".into(), hash: "sha256".into(), signature: "ecdsa-p256".into() } })
    }

    fn is_p256(&self) -> bool {
        self.suite.signature == "ecdsa-p256"
    }

    fn domain(&self, message: &[u8]) -> Vec<u8> {
        if self.suite.id == "test2" { [b"test2\n".as_slice(), message].concat() } else { message.to_vec() }
    }
}

/// A key pair of the test suite.
pub struct Key {
    pub private: Vec<u8>,
    pub public: Vec<u8>,
}

impl Key {
    /// A P-256 key (for [`TestCrypto::p256`]): PKCS#8 and SPKI DER.
    pub fn p256(seed: u8) -> Key {
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let sk = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap();
        Key { private: sk.to_pkcs8_der().unwrap().as_bytes().to_vec(), public: sk.verifying_key().to_public_key_der().unwrap().as_bytes().to_vec() }
    }

    pub fn new(seed: u8) -> Key {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        Key { private: sk.to_bytes().to_vec(), public: sk.verifying_key().to_bytes().to_vec() }
    }
}

impl Hasher for TestCrypto {
    fn hash(&self, data: &[u8]) -> Result<Hash32, HashError> {
        if self.suite.id == "test2" { Ok(Hash32(sha2::Sha512_256::digest(data).into())) } else { Ok(Hash32(sha2::Sha256::digest(data).into())) }
    }
}

impl ChainCrypto for TestCrypto {
    fn suite(&self) -> &CryptoSuite {
        &self.suite
    }

    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<bool, SuiteError> {
        if self.is_p256() {
            use p256::pkcs8::DecodePublicKey;
            let vk = p256::ecdsa::VerifyingKey::from_public_key_der(public_key).map_err(|e| SuiteError::InvalidKey(e.to_string()))?;
            let Ok(sig) = p256::ecdsa::DerSignature::from_bytes(signature) else { return Ok(false) };
            return Ok(p256::ecdsa::signature::Verifier::verify(&vk, message, &sig).is_ok());
        }
        let pk: [u8; 32] = public_key.try_into().map_err(|_| SuiteError::InvalidKey(format!("{} bytes, not 32", public_key.len())))?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).map_err(|e| SuiteError::InvalidKey(e.to_string()))?;
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else { return Ok(false) };
        Ok(vk.verify_strict(&self.domain(message), &sig).is_ok())
    }

    fn sign(&self, private_key: &[u8], message: &[u8]) -> Result<Vec<u8>, SuiteError> {
        if self.is_p256() {
            use p256::pkcs8::DecodePrivateKey;
            let sk = p256::ecdsa::SigningKey::from_pkcs8_der(private_key).map_err(|e| SuiteError::InvalidKey(e.to_string()))?;
            let sig: p256::ecdsa::DerSignature = p256::ecdsa::signature::Signer::sign(&sk, message);
            return Ok(sig.as_bytes().to_vec());
        }
        let seed: [u8; 32] = private_key.try_into().map_err(|_| SuiteError::InvalidKey("not a 32-byte seed".into()))?;
        use ed25519_dalek::Signer;
        Ok(ed25519_dalek::SigningKey::from_bytes(&seed).sign(&self.domain(message)).to_bytes().to_vec())
    }

    fn bind_suite(&self, id: &str) -> Option<Arc<dyn ChainCrypto>> {
        match id {
            "test" => Some(TestCrypto::new()),
            "test2" => Some(TestCrypto::second()),
            _ => None,
        }
    }
}

/// Round-robin proposers (`height % n`), seals are the proposer's signature over the seal
/// hash, timestamps strictly increase.
pub struct TestEngine {
    pub suite: Arc<TestCrypto>,
}

fn turn(height: u64, validators: &[Validator]) -> Result<usize, ConsensusError> {
    if validators.is_empty() {
        return Err(ConsensusError::NoProposer);
    }
    Ok((height % validators.len() as u64) as usize)
}

impl ConsensusEngine for TestEngine {
    fn name(&self) -> &str {
        "test/1"
    }

    fn verify_header(&self, parent: &EngineHeader, header: &EngineHeader, validators: &[Validator]) -> Result<(), ConsensusError> {
        let turn = turn(header.height, validators)?;
        if validators.get(turn).is_none_or(|v| v.public_key != header.proposer) {
            return Err(ConsensusError::Rejected("not the proposer's turn".into()));
        }
        if header.timestamp_ms <= parent.timestamp_ms {
            return Err(ConsensusError::Rejected("timestamp does not increase".into()));
        }
        match self.suite.verify(&header.proposer, &header.seal_hash, &header.seal) {
            Ok(true) => Ok(()),
            _ => Err(ConsensusError::Rejected("bad seal".into())),
        }
    }

    fn weight(&self, _header: &EngineHeader, _validators: &[Validator]) -> Result<u64, ConsensusError> {
        Ok(1)
    }

    fn finality_depth(&self, _validators: &[Validator]) -> Result<u64, ConsensusError> {
        Ok(0)
    }

    fn participant(&self, me: &[u8], _head: &Head, _saved: &[u8]) -> Result<Box<dyn Participant>, ConsensusError> {
        Ok(Box::new(TestParticipant { me: me.to_vec(), sealing: None }))
    }
}

/// The test engine as a source that binds it to either test suite (for suite switches).
pub struct TestEngines(pub Arc<TestEngine>);

impl joule_consensus::EngineSource for TestEngines {
    fn current(&self) -> Result<Arc<dyn ConsensusEngine>, ConsensusError> {
        Ok(self.0.clone())
    }

    fn rebind(&self, suite: &str) -> Result<Arc<dyn joule_consensus::EngineSource>, ConsensusError> {
        let suite = match suite {
            "test" => TestCrypto::new(),
            "test2" => TestCrypto::second(),
            other => return Err(ConsensusError::Unavailable(format!("no test suite {other}"))),
        };
        Ok(Arc::new(TestEngines(Arc::new(TestEngine { suite }))))
    }
}

/// Builds at its turn, seals with its signature.
struct TestParticipant {
    me: Vec<u8>,
    sealing: Option<Vec<u8>>,
}

impl Participant for TestParticipant {
    fn handle(&mut self, event: Event) -> Result<Vec<Action>, ConsensusError> {
        Ok(match event {
            Event::NewHead(h) => {
                let t = turn(h.header.height + 1, &h.validators)?;
                if h.validators.get(t).is_some_and(|v| v.public_key == self.me) { vec![Action::Build] } else { vec![] }
            }
            Event::Built(h) => {
                self.sealing = Some(h.seal_hash.clone());
                vec![Action::Sign { request: h.height, message: h.seal_hash }]
            }
            Event::Signed { signature, .. } => match self.sealing.take() {
                Some(seal_hash) => vec![Action::Commit { seal_hash, seal: signature }],
                None => vec![],
            },
            _ => vec![],
        })
    }
}

pub fn spec(validators: &[&Key]) -> ChainSpec {
    ChainSpec {
        channel: ChannelId::new("grid").unwrap(),
        crypto_suite: TestCrypto::new().suite().clone(),
        consensus: "test".into(),
        consensus_config: String::new(),
        gas_limit: 1_000_000,
        block_gas_limit: 1_000_000_000,
        gas_schedule: 1,
        contract_deployers: joule_primitives::DeployPolicy::Validators,
        genesis_time_ms: 1_700_000_000_000,
        validators: validators.iter().map(|k| ValidatorSpec { public_key: k.public.clone(), weight: 1 }).collect(),
        nodes: vec![],
        identity: None,
    }
}

/// A signed data record.
pub fn data_tx(suite: &TestCrypto, key: &Key, nonce: u64, data_key: &str, value: &[u8]) -> Transaction {
    signed_tx(suite, key, nonce, Payload::Data { key: data_key.into(), value: value.to_vec() })
}

/// A signed transaction of any payload.
pub fn signed_tx(suite: &TestCrypto, key: &Key, nonce: u64, payload: Payload) -> Transaction {
    let body = UnsignedTransaction {
        channel: ChannelId::new("grid").unwrap(),
        sender: key.public.clone(),
        nonce,
        gas_limit: 100_000,
        sig_alg: suite.suite().signature.clone(),
        payload,
    };
    let sig = suite.sign(&key.private, &body.signing_bytes()).unwrap();
    body.sign_with(sig)
}
