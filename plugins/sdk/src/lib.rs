//! Shared scaffolding for Joule crypto plugins (the `joule:crypto/plugin@0.1.1` world).
//!
//! A plugin implements [`Plugin`] with plain Rust functions (testable natively) and calls
//! [`export_plugin!`], which on `wasm32` generates the WIT bindings and forwards every exported
//! function to the trait. Methods a plugin does not override answer `unsupported-algorithm`
//! (key agreement: lists no algorithms). [`key_cache`] keeps parsed keys between the stateless
//! calls of one instance; [`accel`] reaches the host's native primitives and [`gcm`] builds
//! GCM on them.

use core::fmt;

pub mod ecdh;
pub mod gcm;
pub mod key_cache;

/// Mirror of WIT `algorithm-kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hash,
    Signature,
    PublicKeyEncryption,
    SymmetricCipher,
}

/// Mirror of WIT `algorithm-info` (see the WIT for the meaning of each size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmInfo {
    pub id: &'static str,
    pub kind: Kind,
    pub oid: &'static str,
    pub key_size: u32,
    pub public_key_size: u32,
    pub output_size: u32,
    pub nonce_size: u32,
    pub block_size: u32,
    pub standard: &'static str,
}

impl AlgorithmInfo {
    /// A hash: only output and block sizes apply.
    pub const fn hash(
        id: &'static str,
        oid: &'static str,
        output_size: u32,
        block_size: u32,
        standard: &'static str,
    ) -> Self {
        Self {
            id,
            kind: Kind::Hash,
            oid,
            key_size: 0,
            public_key_size: 0,
            output_size,
            nonce_size: 0,
            block_size,
            standard,
        }
    }
}

/// Mirror of WIT `crypto-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    UnsupportedAlgorithm(String),
    InvalidKey(String),
    InvalidInput(String),
    DecryptionFailed,
    EntropyUnavailable,
}

impl Error {
    pub fn unsupported(alg: &str) -> Self {
        Error::UnsupportedAlgorithm(alg.to_string())
    }
    pub fn key(msg: impl fmt::Display) -> Self {
        Error::InvalidKey(msg.to_string())
    }
    pub fn input(msg: impl fmt::Display) -> Self {
        Error::InvalidInput(msg.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnsupportedAlgorithm(a) => write!(f, "unsupported algorithm {a:?}"),
            Error::InvalidKey(m) => write!(f, "invalid key: {m}"),
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::DecryptionFailed => f.write_str("decryption failed"),
            Error::EntropyUnavailable => f.write_str("entropy unavailable"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// Mirror of WIT `keys.key-pair`: PKCS#8 private key and SPKI public key, both DER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPair {
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
}

/// Randomness from the host (`joule:crypto/entropy.random-bytes`), usable as a rand_core 0.10
/// `TryCryptoRng` by the RustCrypto crates. A short answer from the host is an error, never
/// silently weak randomness.
pub struct Entropy {
    source: fn(u32) -> Vec<u8>,
    failed: bool,
}

/// The host refused or could not supply randomness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntropyUnavailable;

impl fmt::Display for EntropyUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("entropy unavailable")
    }
}

impl std::error::Error for EntropyUnavailable {}

impl From<EntropyUnavailable> for Error {
    fn from(_: EntropyUnavailable) -> Self {
        Error::EntropyUnavailable
    }
}

impl Entropy {
    /// Wrap a source that returns `len` random bytes (fewer means unavailable).
    pub fn new(source: fn(u32) -> Vec<u8>) -> Self {
        Self { source, failed: false }
    }

    /// Whether a request has failed: lets a caller tell an entropy failure from other errors
    /// when a library reports both the same way.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Fill `dest` entirely from the source.
    pub fn fill(&mut self, dest: &mut [u8]) -> core::result::Result<(), EntropyUnavailable> {
        for chunk in dest.chunks_mut(1 << 16) {
            let bytes = (self.source)(chunk.len() as u32);
            if bytes.len() != chunk.len() {
                self.failed = true;
                return Err(EntropyUnavailable);
            }
            chunk.copy_from_slice(&bytes);
        }
        Ok(())
    }

    /// `N` fresh random bytes.
    pub fn bytes<const N: usize>(&mut self) -> core::result::Result<[u8; N], EntropyUnavailable> {
        let mut out = [0u8; N];
        self.fill(&mut out)?;
        Ok(out)
    }

    /// The operating system's randomness, for native tests (reads /dev/urandom).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn os() -> Self {
        fn urandom(len: u32) -> Vec<u8> {
            use std::io::Read;
            let mut buf = vec![0u8; len as usize];
            match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)) {
                Ok(()) => buf,
                Err(_) => Vec::new(),
            }
        }
        Self::new(urandom)
    }
}

impl rand_core::TryRng for Entropy {
    type Error = EntropyUnavailable;

    fn try_next_u32(&mut self) -> core::result::Result<u32, Self::Error> {
        self.bytes().map(u32::from_le_bytes)
    }

    fn try_next_u64(&mut self) -> core::result::Result<u64, Self::Error> {
        self.bytes().map(u64::from_le_bytes)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Self::Error> {
        self.fill(dst)
    }
}

impl rand_core::TryCryptoRng for Entropy {}

pub use rand_core;

/// One crypto plugin. Every method receives the algorithm identifier; a method whose kind the
/// plugin does not provide keeps the default `unsupported-algorithm` answer, and an
/// implementation answers the same for identifiers it does not know.
pub trait Plugin {
    /// Every algorithm this plugin implements (WIT `provider.algorithms`).
    const ALGORITHMS: &'static [AlgorithmInfo];

    fn digest(alg: &str, _data: &[u8]) -> Result<Vec<u8>> {
        Err(Error::unsupported(alg))
    }

    fn generate(alg: &str, _rng: &mut Entropy) -> Result<KeyPair> {
        Err(Error::unsupported(alg))
    }

    fn public_key(alg: &str, _private_key: &[u8]) -> Result<Vec<u8>> {
        Err(Error::unsupported(alg))
    }

    /// `user_id` is WIT `sign-options.user-id` (SM2's distinguishing identifier).
    fn sign(alg: &str, _private_key: &[u8], _message: &[u8], _user_id: Option<&[u8]>) -> Result<Vec<u8>> {
        Err(Error::unsupported(alg))
    }

    fn verify(
        alg: &str,
        _public_key: &[u8],
        _message: &[u8],
        _signature: &[u8],
        _user_id: Option<&[u8]>,
    ) -> Result<bool> {
        Err(Error::unsupported(alg))
    }

    fn pke_encrypt(alg: &str, _public_key: &[u8], _plaintext: &[u8], _rng: &mut Entropy) -> Result<Vec<u8>> {
        Err(Error::unsupported(alg))
    }

    fn pke_decrypt(alg: &str, _private_key: &[u8], _ciphertext: &[u8]) -> Result<Vec<u8>> {
        Err(Error::unsupported(alg))
    }

    fn cipher_encrypt(alg: &str, _key: &[u8], _nonce: &[u8], _aad: &[u8], _plaintext: &[u8]) -> Result<Vec<u8>> {
        Err(Error::unsupported(alg))
    }

    fn cipher_decrypt(alg: &str, _key: &[u8], _nonce: &[u8], _aad: &[u8], _ciphertext: &[u8]) -> Result<Vec<u8>> {
        Err(Error::unsupported(alg))
    }

    /// Key-agreement algorithms this plugin serves (WIT `key-agreement.algorithms`), e.g.
    /// `"ecdh-p256"`; plugin.toml lists each as `key-agreement:ID` after [`Self::ALGORITHMS`].
    const KEY_AGREEMENTS: &'static [&'static str] = &[];

    /// The 33-byte compressed SEC1 public key of a raw 32-byte big-endian private scalar
    /// (WIT `key-agreement.public-key`).
    fn agreement_public_key(alg: &str, _private_key: &[u8]) -> Result<Vec<u8>> {
        Err(Error::unsupported(alg))
    }

    /// The 32-byte big-endian x-coordinate of `private_key` times `peer_public_key` (WIT
    /// `key-agreement.agree`); a peer key that is not a point of the curve is `invalid-key`.
    fn agree(alg: &str, _private_key: &[u8], _peer_public_key: &[u8]) -> Result<Vec<u8>> {
        Err(Error::unsupported(alg))
    }
}

/// Generate the `joule:crypto/plugin` bindings (wasm32 only) and export `$plugin`.
///
/// `$wit` is the path of the WIT package relative to the calling crate's Cargo.toml. The calling
/// crate must depend on `wit-bindgen` itself.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty, $wit:tt) => {
        #[cfg(target_arch = "wasm32")]
        mod __joule_component {
            wit_bindgen::generate!({ path: $wit, world: "plugin" });

            use exports::joule::crypto::{cipher, hash, key_agreement, keys, provider, public_key_encryption, signature};
            use joule::crypto::types::{AlgorithmInfo, AlgorithmKind, CryptoError};
            use $crate::Plugin as _;

            type P = $plugin;
            struct Component;

            fn err(e: $crate::Error) -> CryptoError {
                match e {
                    $crate::Error::UnsupportedAlgorithm(s) => CryptoError::UnsupportedAlgorithm(s),
                    $crate::Error::InvalidKey(s) => CryptoError::InvalidKey(s),
                    $crate::Error::InvalidInput(s) => CryptoError::InvalidInput(s),
                    $crate::Error::DecryptionFailed => CryptoError::DecryptionFailed,
                    $crate::Error::EntropyUnavailable => CryptoError::EntropyUnavailable,
                }
            }

            fn entropy() -> $crate::Entropy {
                $crate::Entropy::new(joule::crypto::entropy::random_bytes)
            }

            impl provider::Guest for Component {
                fn algorithms() -> Vec<AlgorithmInfo> {
                    P::ALGORITHMS
                        .iter()
                        .map(|a| AlgorithmInfo {
                            id: a.id.into(),
                            kind: match a.kind {
                                $crate::Kind::Hash => AlgorithmKind::Hash,
                                $crate::Kind::Signature => AlgorithmKind::Signature,
                                $crate::Kind::PublicKeyEncryption => AlgorithmKind::PublicKeyEncryption,
                                $crate::Kind::SymmetricCipher => AlgorithmKind::SymmetricCipher,
                            },
                            oid: a.oid.into(),
                            key_size: a.key_size,
                            public_key_size: a.public_key_size,
                            output_size: a.output_size,
                            nonce_size: a.nonce_size,
                            block_size: a.block_size,
                            standard: a.standard.into(),
                        })
                        .collect()
                }
            }

            /// `joule:crypto/accel` compressions, in the form [`$crate::accel`] takes. The
            /// host always returns 8 words; anything else is a broken host: trap.
            fn sha256_compress(state: &mut [u32; 8], blocks: &[u8]) {
                *state = joule::crypto::accel::sha256_compress(&state[..], blocks).try_into().expect("sha256-compress returns 8 words");
            }

            fn sm3_compress(state: &mut [u32; 8], blocks: &[u8]) {
                *state = joule::crypto::accel::sm3_compress(&state[..], blocks).try_into().expect("sm3-compress returns 8 words");
            }

            /// `joule:crypto/accel` AES-GCTR, in the form [`$crate::accel`] takes. The output is
            /// as long as the input, or the host is broken: trap.
            fn aes_gctr(key: &[u8], counter: &[u8; 16], data: &[u8]) -> Vec<u8> {
                let out = joule::crypto::accel::aes_gctr(key, counter, data);
                assert_eq!(out.len(), data.len(), "aes-gctr returns as many bytes as it is given");
                out
            }

            /// `joule:crypto/accel` GHASH; the host always returns 16 bytes.
            fn ghash(h: &[u8; 16], state: &mut [u8; 16], blocks: &[u8]) {
                *state = joule::crypto::accel::ghash(h, state, blocks).try_into().expect("ghash returns 16 bytes");
            }

            /// Hand the host's primitives to [`$crate::accel`] (once; later calls only look).
            fn install_accel() {
                $crate::accel::install(sha256_compress, sm3_compress);
                $crate::accel::install_aead(aes_gctr, ghash);
            }

            impl hash::Guest for Component {
                fn digest(alg: String, data: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
                    install_accel();
                    P::digest(&alg, &data).map_err(err)
                }
            }

            impl keys::Guest for Component {
                fn generate(alg: String) -> Result<keys::KeyPair, CryptoError> {
                    P::generate(&alg, &mut entropy())
                        .map(|k| keys::KeyPair { private_key: k.private_key, public_key: k.public_key })
                        .map_err(err)
                }
                fn public_key(alg: String, private_key: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
                    P::public_key(&alg, &private_key).map_err(err)
                }
            }

            impl signature::Guest for Component {
                fn sign(alg: String, private_key: Vec<u8>, message: Vec<u8>, options: signature::SignOptions) -> Result<Vec<u8>, CryptoError> {
                    P::sign(&alg, &private_key, &message, options.user_id.as_deref()).map_err(err)
                }
                fn verify(alg: String, public_key: Vec<u8>, message: Vec<u8>, sig: Vec<u8>, options: signature::SignOptions) -> Result<bool, CryptoError> {
                    P::verify(&alg, &public_key, &message, &sig, options.user_id.as_deref()).map_err(err)
                }
            }

            impl public_key_encryption::Guest for Component {
                fn encrypt(alg: String, public_key: Vec<u8>, plaintext: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
                    install_accel();
                    P::pke_encrypt(&alg, &public_key, &plaintext, &mut entropy()).map_err(err)
                }
                fn decrypt(alg: String, private_key: Vec<u8>, ciphertext: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
                    install_accel();
                    P::pke_decrypt(&alg, &private_key, &ciphertext).map_err(err)
                }
            }

            impl cipher::Guest for Component {
                fn encrypt(alg: String, key: Vec<u8>, nonce: Vec<u8>, aad: Vec<u8>, plaintext: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
                    install_accel();
                    P::cipher_encrypt(&alg, &key, &nonce, &aad, &plaintext).map_err(err)
                }
                fn decrypt(alg: String, key: Vec<u8>, nonce: Vec<u8>, aad: Vec<u8>, ciphertext: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
                    install_accel();
                    P::cipher_decrypt(&alg, &key, &nonce, &aad, &ciphertext).map_err(err)
                }
            }

            impl key_agreement::Guest for Component {
                fn algorithms() -> Vec<String> {
                    P::KEY_AGREEMENTS.iter().map(|a| a.to_string()).collect()
                }
                fn public_key(alg: String, private_key: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
                    P::agreement_public_key(&alg, &private_key).map_err(err)
                }
                fn agree(alg: String, private_key: Vec<u8>, peer_public_key: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
                    P::agree(&alg, &private_key, &peer_public_key).map_err(err)
                }
            }

            export!(Component);
        }
    };
}

pub use aead;

/// AEAD encryption in the WIT's byte format (ciphertext || tag). A key of the wrong length is
/// `invalid-key`, a nonce of the wrong length `invalid-input`.
pub fn aead_encrypt<A: aead::Aead + aead::KeyInit>(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let (cipher, nonce) = aead_setup::<A>(key, nonce)?;
    cipher
        .encrypt(&nonce, aead::Payload { msg: plaintext, aad })
        .map_err(|_| Error::input("message or associated data too long"))
}

/// AEAD decryption of ciphertext || tag; any authentication failure is `decryption-failed`.
pub fn aead_decrypt<A: aead::Aead + aead::KeyInit>(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>> {
    let (cipher, nonce) = aead_setup::<A>(key, nonce)?;
    cipher
        .decrypt(&nonce, aead::Payload { msg: ciphertext, aad })
        .map_err(|_| Error::DecryptionFailed)
}

fn aead_setup<A: aead::AeadCore + aead::KeyInit>(key: &[u8], nonce: &[u8]) -> Result<(A, aead::Nonce<A>)> {
    let cipher = A::new_from_slice(key).map_err(|_| Error::key(format!("key must be {} bytes", A::key_size())))?;
    let nonce = aead::Nonce::<A>::try_from(nonce).map_err(|_| {
        Error::input(format!(
            "nonce must be {} bytes",
            <A::NonceSize as aead::array::typenum::Unsigned>::USIZE
        ))
    })?;
    Ok((cipher, nonce))
}

/// Checks a plugin.toml against the plugin (native unit tests): the `algorithms` list must equal
/// [`Plugin::ALGORITHMS`] as `kind:id` strings followed by [`Plugin::KEY_AGREEMENTS`] as
/// `key-agreement:id`, and every `[[known-answer]]` must hold the way
/// the host checks it before activation (hex fields, absent ones empty): a hash's digest of
/// `input` is `output`; a cipher encrypts `input` to `output` and decrypts it back under `key`,
/// `nonce`, `aad`; a `signature` over `input` verifies under `key`; public-key decryption of
/// `input` with `key` gives `output`.
#[cfg(not(target_arch = "wasm32"))]
pub fn check_manifest<P: Plugin>(manifest: &str) -> core::result::Result<(), String> {
    let table: toml::Table = manifest.parse().map_err(|e| format!("plugin.toml: {e}"))?;
    for key in ["name", "kind", "vendor", "description"] {
        if !table.get(key).is_some_and(|v| v.is_str()) {
            return Err(format!("plugin.toml: missing string {key:?}"));
        }
    }
    let listed: Vec<&str> = table
        .get("algorithms")
        .and_then(|v| v.as_array())
        .ok_or("plugin.toml: missing algorithms")?
        .iter()
        .map(|v| v.as_str().unwrap_or("?"))
        .collect();
    let provided: Vec<String> = P::ALGORITHMS
        .iter()
        .map(|a| format!("{}:{}", a.kind.manifest_name(), a.id))
        .chain(P::KEY_AGREEMENTS.iter().map(|id| format!("key-agreement:{id}")))
        .collect();
    if listed != provided {
        return Err(format!(
            "plugin.toml lists {listed:?}, the plugin provides {provided:?}"
        ));
    }
    let empty = Vec::new();
    let answers = table.get("known-answer").and_then(|v| v.as_array()).unwrap_or(&empty);
    for answer in answers {
        let algorithm = answer
            .get("algorithm")
            .and_then(|v| v.as_str())
            .ok_or("known-answer without algorithm")?;
        if !listed.contains(&algorithm) {
            return Err(format!("known-answer for {algorithm}, which plugin.toml does not list"));
        }
        let bytes = |k: &str| {
            let text = answer.get(k).and_then(|v| v.as_str()).unwrap_or("");
            unhex(text).ok_or(format!("known-answer for {algorithm}: {k} is not hex"))
        };
        let failed = |e: Error| format!("known-answer for {algorithm}: {e}");
        let expect = |what: &str, got: &[u8], want: &[u8]| {
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "known-answer for {algorithm}: {what} {}, expected {}",
                    hex(got),
                    hex(want)
                ))
            }
        };
        let (input, output) = (bytes("input")?, bytes("output")?);
        match algorithm.split_once(':') {
            Some(("hash", id)) => expect("digest", &P::digest(id, &input).map_err(failed)?, &output)?,
            Some(("symmetric-cipher", id)) => {
                let (key, nonce, aad) = (bytes("key")?, bytes("nonce")?, bytes("aad")?);
                let ciphertext = P::cipher_encrypt(id, &key, &nonce, &aad, &input).map_err(failed)?;
                expect("ciphertext", &ciphertext, &output)?;
                let plaintext = P::cipher_decrypt(id, &key, &nonce, &aad, &output).map_err(failed)?;
                expect("decryption", &plaintext, &input)?;
            }
            Some(("signature", id)) => {
                if !P::verify(id, &bytes("key")?, &input, &bytes("signature")?, None).map_err(failed)? {
                    return Err(format!("known-answer for {algorithm}: the signature does not verify"));
                }
            }
            Some(("public-key-encryption", id)) => expect(
                "decryption",
                &P::pke_decrypt(id, &bytes("key")?, &input).map_err(failed)?,
                &output,
            )?,
            _ => return Err(format!("known-answer for {algorithm}: not `kind:id`")),
        }
    }
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Primitives the host can run natively (`joule:crypto/accel`): hash compression functions,
/// AES in GCM's counter mode, GHASH.
///
/// [`accel::sha256`] and [`accel::sm3`] do the padding and output encoding themselves and
/// hand whole blocks to a compression function: the host's (installed by
/// [`export_plugin!`] on wasm32) or, until one is installed and in native tests, the
/// software one of the `sha2` / `sm3` crates. [`accel::aes_gctr`] and [`accel::ghash`] are
/// the two halves of AES-GCM ([`crate::gcm`] puts them together), the host's once installed,
/// else the `aes` + `ctr` and `ghash` crates'.
pub mod accel {
    use crate::{Error, Result};
    use std::sync::OnceLock;

    /// Compresses whole 64-byte blocks into an 8-word state.
    pub type Compress = fn(&mut [u32; 8], &[u8]);

    static SHA256_COMPRESS: OnceLock<Compress> = OnceLock::new();
    static SM3_COMPRESS: OnceLock<Compress> = OnceLock::new();

    /// Use these for every later hash (the first installation wins).
    pub fn install(sha256: Compress, sm3: Compress) {
        let _ = SHA256_COMPRESS.set(sha256);
        let _ = SM3_COMPRESS.set(sm3);
    }

    fn sha256_software(state: &mut [u32; 8], blocks: &[u8]) {
        let (whole, _) = blocks.as_chunks::<64>();
        sha2::block_api::compress256(state, whole);
    }

    fn sm3_software(state: &mut [u32; 8], blocks: &[u8]) {
        use sm3::digest::block_api::UpdateCore;
        use sm3::digest::common::array::Array;
        use sm3::digest::common::hazmat::SerializableState;
        let mut serialized = Array::<u8, _>::default();
        for (chunk, w) in serialized.chunks_exact_mut(4).zip(*state) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        let Ok(mut core) = sm3::Sm3Core::deserialize(&serialized) else {
            return;
        };
        let (whole, _) = Array::slice_as_chunks(blocks);
        core.update_blocks(whole);
        for (w, c) in state.iter_mut().zip(core.serialize()[..32].chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
    }

    /// FIPS 180-4 §5.3.3.
    const SHA256_IV: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ];
    /// GB/T 32905-2016 §4.1.
    const SM3_IV: [u32; 8] = [
        0x7380166f, 0x4914b2b9, 0x172442d7, 0xda8a0600, 0xa96f30bc, 0x163138aa, 0xe38dee4d, 0xb0fb0e4e,
    ];

    /// Below this many bytes the host crossing costs more than it saves: hash in the plugin.
    /// (Transaction hashes and 64-byte Merkle nodes are the common case.)
    const HOST_THRESHOLD: usize = 512;

    fn pick(installed: &OnceLock<Compress>, software: Compress, len: usize) -> Compress {
        if len < HOST_THRESHOLD {
            software
        } else {
            installed.get().copied().unwrap_or(software)
        }
    }

    /// SHA-256 (FIPS 180-4).
    pub fn sha256(data: &[u8]) -> [u8; 32] {
        merkle_damgard(SHA256_IV, pick(&SHA256_COMPRESS, sha256_software, data.len()), data)
    }

    /// SM3 (GB/T 32905-2016).
    pub fn sm3(data: &[u8]) -> [u8; 32] {
        merkle_damgard(SM3_IV, pick(&SM3_COMPRESS, sm3_software, data.len()), data)
    }

    /// AES-GCTR: `data` XORed with the AES encryptions of `counter`, `counter` + 1, ... (the
    /// last 4 bytes counted big-endian modulo 2^32), as a new vector of `data`'s length.
    pub type AesGctrFn = fn(key: &[u8], counter: &[u8; 16], data: &[u8]) -> Vec<u8>;

    /// GHASH under `h`, continued from `state` over whole 16-byte `blocks`.
    pub type GhashFn = fn(h: &[u8; 16], state: &mut [u8; 16], blocks: &[u8]);

    static AES_GCTR: OnceLock<AesGctrFn> = OnceLock::new();
    static GHASH: OnceLock<GhashFn> = OnceLock::new();

    /// Use these for every later AES-GCTR and GHASH (the first installation wins). Only a
    /// 16- or 32-byte key and whole 16-byte blocks are ever passed on.
    pub fn install_aead(aes_gctr: AesGctrFn, ghash: GhashFn) {
        let _ = AES_GCTR.set(aes_gctr);
        let _ = GHASH.set(ghash);
    }

    /// Below this many bytes GHASH runs in the plugin. Measured with wasmtime 48 (Cranelift,
    /// x86-64 with CLMUL): the software GHASH of the `ghash` crate costs ~70 ns a block in
    /// wasm, one host call with its list copies ~0.8 µs, so the crossing pays from ~12 blocks
    /// on; at 128 bytes either way costs the same within the measurement's noise.
    const GHASH_HOST_THRESHOLD: usize = 128;

    /// AES-GCTR of any non-empty input when the host's is installed: software AES in wasm
    /// needs its key schedule on every call (the plugin keeps no expanded keys) and runs ~30
    /// times slower than AES-NI, so even one block costs more in the plugin (measured: a
    /// 16-byte AES-GCM message took 6.5 µs with the plugin's AES, 2 µs with the host's).
    pub fn aes_gctr(key: &[u8], counter: &[u8; 16], data: &[u8]) -> Result<Vec<u8>> {
        if key.len() != 16 && key.len() != 32 {
            return Err(Error::key("AES keys are 16 or 32 bytes"));
        }
        if data.len().div_ceil(16) > u32::MAX as usize {
            return Err(Error::input("more than 2^32 - 1 counter blocks"));
        }
        if data.is_empty() {
            return Ok(Vec::new());
        }
        Ok(match AES_GCTR.get() {
            Some(gctr) => gctr(key, counter, data),
            None => aes_gctr_software(key, counter, data),
        })
    }

    /// The `aes` + `ctr` crates' GCTR (`Ctr32BE`), on AES-NI where the CPU has it natively.
    /// Only called with a 16- or 32-byte key and at most 2^32 - 1 blocks (checked above); the
    /// remaining-keystream check cannot fail then, and would leave `data` as it was.
    fn aes_gctr_software(key: &[u8], counter: &[u8; 16], data: &[u8]) -> Vec<u8> {
        use aes::{Aes128, Aes256};
        use ctr::Ctr32BE;
        use ctr::cipher::{KeyIvInit, StreamCipher};
        let mut out = data.to_vec();
        if let Ok(mut c) = Ctr32BE::<Aes128>::new_from_slices(key, counter) {
            let _ = c.try_apply_keystream(&mut out);
        } else if let Ok(mut c) = Ctr32BE::<Aes256>::new_from_slices(key, counter) {
            let _ = c.try_apply_keystream(&mut out);
        }
        out
    }

    /// [`GhashFn`] with the host's implementation for inputs worth the crossing. Only whole
    /// blocks are hashed: a trailing partial block is an `invalid-input` error and leaves
    /// `state` alone.
    pub fn ghash(h: &[u8; 16], state: &mut [u8; 16], blocks: &[u8]) -> Result<()> {
        if !blocks.len().is_multiple_of(16) {
            return Err(Error::input("GHASH input is not whole 16-byte blocks"));
        }
        let installed = if blocks.len() >= GHASH_HOST_THRESHOLD {
            GHASH.get().copied()
        } else {
            None
        };
        installed.unwrap_or(ghash_software)(h, state, blocks);
        Ok(())
    }

    /// The `ghash` crate's GHASH. It starts from zero; continuing from `state` is the same as
    /// starting from zero with `state` XORed into the first block (Horner's rule in
    /// GF(2^128): the first step computes (0 + X1)·H).
    fn ghash_software(h: &[u8; 16], state: &mut [u8; 16], blocks: &[u8]) {
        use ghash::GHash;
        use ghash::universal_hash::UniversalHash;
        use ghash::universal_hash::array::Array;
        let (whole, _) = blocks.as_chunks::<16>();
        let Some((first, others)) = whole.split_first() else {
            return;
        };
        let mut g = GHash::new(&Array(*h));
        let mut head = *first;
        for (b, s) in head.iter_mut().zip(state.iter()) {
            *b ^= s;
        }
        g.update(&[Array(head)]);
        let (others, _) = Array::slice_as_chunks(others.as_flattened());
        g.update(others);
        *state = g.finalize().0;
    }

    /// The padding both share: all whole blocks in one compression call, then the tail with
    /// 0x80, zeros and the 64-bit big-endian bit length (one block, or two when fewer than
    /// 9 bytes are free in the last); output the state's words big-endian.
    fn merkle_damgard(iv: [u32; 8], compress: Compress, data: &[u8]) -> [u8; 32] {
        let mut state = iv;
        let whole = data.len() - data.len() % 64;
        if whole > 0 {
            compress(&mut state, &data[..whole]);
        }
        let rest = &data[whole..];
        let mut tail = [0u8; 128];
        tail[..rest.len()].copy_from_slice(rest);
        tail[rest.len()] = 0x80;
        let tail_len = if rest.len() < 56 { 64 } else { 128 };
        let bits = (data.len() as u64).wrapping_mul(8);
        tail[tail_len - 8..tail_len].copy_from_slice(&bits.to_be_bytes());
        compress(&mut state, &tail[..tail_len]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use sha2::Digest;

        fn data(len: usize) -> Vec<u8> {
            (0..len).map(|i| (i * 31 + 7) as u8).collect()
        }

        /// The software GCTR is the `ctr` crate's 32-bit big-endian counter mode over AES,
        /// including the wrap of the last 4 bytes from ff..ff to 00..00 (and not into byte 11).
        #[test]
        fn aes_gctr_equals_ctr32be() {
            use ctr::cipher::{KeyIvInit, StreamCipher};
            let key128 = [0x42u8; 16];
            let key256: [u8; 32] = core::array::from_fn(|i| i as u8);
            let counters = [[0u8; 16], [0xab; 16], {
                let mut c = [0x11u8; 16];
                c[12..].copy_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
                c
            }];
            for counter in counters {
                for len in [0usize, 1, 15, 16, 17, 64, 100, 1000] {
                    let input = data(len);
                    let mut want = input.clone();
                    ctr::Ctr32BE::<aes::Aes128>::new(&key128.into(), &counter.into()).apply_keystream(&mut want);
                    assert_eq!(
                        super::aes_gctr(&key128, &counter, &input).unwrap(),
                        want,
                        "aes-128 length {len}"
                    );
                    let mut want = input.clone();
                    ctr::Ctr32BE::<aes::Aes256>::new(&key256.into(), &counter.into()).apply_keystream(&mut want);
                    assert_eq!(
                        super::aes_gctr(&key256, &counter, &input).unwrap(),
                        want,
                        "aes-256 length {len}"
                    );
                }
            }
            // Wrap: block 2 of counter ..fffffffe is ..00000000 with byte 11 unchanged.
            let mut high = [0x11u8; 16];
            high[12..].copy_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
            let mut wrapped = high;
            wrapped[12..].copy_from_slice(&[0, 0, 0, 0]);
            let stream = super::aes_gctr(&key128, &high, &[0; 48]).unwrap();
            assert_eq!(stream[32..], super::aes_gctr(&key128, &wrapped, &[0; 16]).unwrap());
            assert!(matches!(
                super::aes_gctr(&[0; 24], &high, b"x"),
                Err(crate::Error::InvalidKey(_))
            ));
        }

        /// What `export_plugin!` installs on wasm32, stood in for by the software functions
        /// behind call counters: GCM hands the "host" only valid keys, non-empty data, whole
        /// blocks and nothing below the GHASH threshold, and the output is still the `aes-gcm`
        /// crate's. (Installation is for the whole test binary; the stand-ins compute the same
        /// as the fallbacks, so other tests are unaffected.)
        #[test]
        fn installed_host_primitives_get_only_what_they_accept() {
            use aes_gcm::aead::{Aead, KeyInit, Payload};
            use std::sync::atomic::{AtomicUsize, Ordering};
            static GCTR_CALLS: AtomicUsize = AtomicUsize::new(0);
            static GHASH_CALLS: AtomicUsize = AtomicUsize::new(0);
            fn host_gctr(key: &[u8], counter: &[u8; 16], data: &[u8]) -> Vec<u8> {
                assert!(key.len() == 16 || key.len() == 32, "key of {} bytes", key.len());
                assert!(!data.is_empty());
                GCTR_CALLS.fetch_add(1, Ordering::Relaxed);
                super::aes_gctr_software(key, counter, data)
            }
            fn host_ghash(h: &[u8; 16], state: &mut [u8; 16], blocks: &[u8]) {
                assert!(blocks.len().is_multiple_of(16) && blocks.len() >= super::GHASH_HOST_THRESHOLD);
                GHASH_CALLS.fetch_add(1, Ordering::Relaxed);
                super::ghash_software(h, state, blocks)
            }
            super::install_aead(host_gctr, host_ghash);
            let key = [7u8; 32];
            let nonce = [9u8; 12];
            let aes = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
            for len in [0usize, 1, 100, 1000, 1025, 65536] {
                for aad in [&[][..], &data(17), &data(300)] {
                    let (gctr_before, ghash_before) =
                        (GCTR_CALLS.load(Ordering::Relaxed), GHASH_CALLS.load(Ordering::Relaxed));
                    let pt = data(len);
                    let gcm = crate::gcm::Gcm::new(crate::gcm::AesGctr::new(&key).unwrap());
                    let ct = gcm.encrypt(&nonce, aad, &pt).unwrap();
                    let want = aes.encrypt(&nonce.into(), Payload { msg: &pt, aad }).unwrap();
                    assert_eq!(ct, want, "length {len}, aad {}", aad.len());
                    assert_eq!(gcm.decrypt(&nonce, aad, &ct).unwrap(), pt);
                    assert!(GCTR_CALLS.load(Ordering::Relaxed) > gctr_before);
                    if len + aad.len() >= 1000 {
                        assert!(GHASH_CALLS.load(Ordering::Relaxed) > ghash_before);
                    }
                }
            }
        }

        /// GHASH continued from an intermediate state (split at every block boundary) equals
        /// the one-shot GHASH of the whole input, which equals the `ghash` crate's.
        #[test]
        fn ghash_continued_from_a_state_equals_one_shot() {
            use ghash::universal_hash::{KeyInit, UniversalHash};
            let h: [u8; 16] = core::array::from_fn(|i| (i * 17 + 1) as u8);
            let input = data(16 * 9);
            let mut g = ghash::GHash::new_from_slice(&h).unwrap();
            let (blocks, _) = ghash::universal_hash::array::Array::slice_as_chunks(&input);
            g.update(blocks);
            let want: [u8; 16] = g.finalize().0;
            let mut one_shot = [0u8; 16];
            super::ghash(&h, &mut one_shot, &input).unwrap();
            assert_eq!(one_shot, want);
            for split in (0..=input.len()).step_by(16) {
                let mut state = [0u8; 16];
                super::ghash(&h, &mut state, &input[..split]).unwrap();
                super::ghash(&h, &mut state, &input[split..]).unwrap();
                assert_eq!(state, want, "split at {split}");
            }
            let mut state = want;
            assert!(matches!(
                super::ghash(&h, &mut state, &input[..17]),
                Err(crate::Error::InvalidInput(_))
            ));
            assert_eq!(state, want);
        }

        #[test]
        fn matches_the_crates_at_every_padding_boundary() {
            let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
            for len in (0..300).chain([447, 448, 511, 512, 513, 1000]) {
                assert_eq!(
                    super::sha256(&data[..len]).as_slice(),
                    sha2::Sha256::digest(&data[..len]).as_slice(),
                    "sha256 length {len}"
                );
                assert_eq!(
                    super::sm3(&data[..len]).as_slice(),
                    sm3::Sm3::digest(&data[..len]).as_slice(),
                    "sm3 length {len}"
                );
            }
        }
    }
}

/// Running the `openssl` command line from native tests, for interoperability checks. It must
/// be installed: [`openssl::require`] fails a test without it.
#[cfg(not(target_arch = "wasm32"))]
pub mod openssl {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Panics unless an `openssl` binary runs. The interoperability tests call it first: a
    /// missing reference implementation fails them, it never lets them pass untested.
    #[track_caller]
    pub fn require() {
        match Command::new("openssl").arg("version").output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "`openssl version` failed ({}): this interoperability test needs a working OpenSSL 3 \
                 command line (e.g. `apt-get install openssl`; .ci/run installs it)",
                o.status
            ),
            Err(e) => panic!(
                "cannot run `openssl` ({e}): this interoperability test needs the OpenSSL 3 command \
                 line; install it (e.g. `apt-get install openssl`; .ci/run installs it)"
            ),
        }
    }

    /// A scratch directory removed on drop.
    pub struct Scratch(PathBuf);

    impl Scratch {
        pub fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "joule-plugin-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        /// Path of `name` inside the directory, as a string for command lines.
        pub fn path(&self, name: &str) -> String {
            self.0.join(name).to_str().unwrap().to_string()
        }

        pub fn write(&self, name: &str, data: &[u8]) -> String {
            std::fs::write(self.0.join(name), data).unwrap();
            self.path(name)
        }

        pub fn read(&self, name: &str) -> Vec<u8> {
            std::fs::read(self.0.join(name)).unwrap()
        }

        pub fn dir(&self) -> &Path {
            &self.0
        }
    }

    impl Default for Scratch {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Runs `openssl ARGS`; returns stdout on success, or `Err(stderr)`.
    pub fn run(args: &[&str]) -> Result<Vec<u8>, String> {
        let out = Command::new("openssl").args(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "openssl {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Kind {
    /// The kind as written in plugin.toml's `algorithms` and `known-answer` entries.
    pub fn manifest_name(self) -> &'static str {
        match self {
            Kind::Hash => "hash",
            Kind::Signature => "signature",
            Kind::PublicKeyEncryption => "public-key-encryption",
            Kind::SymmetricCipher => "symmetric-cipher",
        }
    }
}

/// Lowercase hex, for tests and diagnostics.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::TryRng;

    #[test]
    fn short_entropy_is_an_error() {
        fn stingy(len: u32) -> Vec<u8> {
            vec![7; len.saturating_sub(1) as usize]
        }
        let mut rng = Entropy::new(stingy);
        assert!(!rng.failed());
        assert_eq!(rng.try_fill_bytes(&mut [0u8; 8]), Err(EntropyUnavailable));
        assert!(rng.failed());
        assert_eq!(Error::from(EntropyUnavailable), Error::EntropyUnavailable);
    }

    #[test]
    fn os_entropy_fills() {
        let mut rng = Entropy::os();
        let a: [u8; 32] = rng.bytes().unwrap();
        let b: [u8; 32] = rng.bytes().unwrap();
        assert_ne!(a, b);
        assert_eq!(hex(&[0, 0xab]), "00ab");
    }

    /// A toy cipher (XOR with the key's first byte, no tag) to check `check_manifest` with.
    struct Xor;

    impl Plugin for Xor {
        const ALGORITHMS: &'static [AlgorithmInfo] = &[AlgorithmInfo {
            id: "xor",
            kind: Kind::SymmetricCipher,
            oid: "",
            key_size: 1,
            public_key_size: 0,
            output_size: 0,
            nonce_size: 0,
            block_size: 1,
            standard: "test",
        }];

        fn cipher_encrypt(alg: &str, key: &[u8], _nonce: &[u8], _aad: &[u8], data: &[u8]) -> Result<Vec<u8>> {
            match (alg, key) {
                ("xor", [k]) => Ok(data.iter().map(|b| b ^ k).collect()),
                ("xor", _) => Err(Error::key("one byte")),
                _ => Err(Error::unsupported(alg)),
            }
        }

        fn cipher_decrypt(alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], data: &[u8]) -> Result<Vec<u8>> {
            Self::cipher_encrypt(alg, key, nonce, aad, data)
        }
    }

    #[test]
    fn manifest_cipher_known_answers_are_checked() {
        let manifest = |answer: &str| {
            format!(
                "name = \"x\"\nkind = \"crypto\"\nvendor = \"v\"\ndescription = \"d\"\n\
                 algorithms = [\"symmetric-cipher:xor\"]\n[[known-answer]]\n{answer}"
            )
        };
        let good = "algorithm = \"symmetric-cipher:xor\"\nkey = \"01\"\ninput = \"6162\"\noutput = \"6063\"";
        assert_eq!(check_manifest::<Xor>(&manifest(good)), Ok(()));
        let wrong = good.replace("6063", "6060");
        let e = check_manifest::<Xor>(&manifest(&wrong)).unwrap_err();
        assert!(e.contains("ciphertext 6063, expected 6060"), "{e}");
        let e = check_manifest::<Xor>(&manifest(&good.replace("\"01\"", "\"0102\""))).unwrap_err();
        assert!(e.contains("invalid key"), "{e}");
        let e = check_manifest::<Xor>(&manifest(&good.replace("\"6162\"", "\"61x2\""))).unwrap_err();
        assert!(e.contains("input is not hex"), "{e}");
        let unlisted = good.replace("symmetric-cipher:xor", "hash:xor");
        let e = check_manifest::<Xor>(&manifest(&unlisted)).unwrap_err();
        assert!(e.contains("does not list"), "{e}");
    }
}
