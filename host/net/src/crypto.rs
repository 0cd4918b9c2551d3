//! The wire's primitives behind one trait ([`WirePrimitives`]), and snow's traits on top of
//! it (byte formats in `docs/formats.md`, "Peer transport").
//!
//! A node serves the trait from its crypto plugins (`joule-node`'s `PluginWire`), so a
//! channel bound to national algorithms runs its wire on the same SM2/SM4/SM3 code as its
//! ledger. [`NativePrimitives`] is the same suite on RustCrypto, called directly: the
//! reference the plugin route is tested against and benchmarked with.
//!
//! - **DH**: private keys are 32-byte big-endian scalars; public keys are *compressed* SEC1
//!   points (33 bytes: snow's buffers hold at most 56 without its own P-256 support, and
//!   compressed points keep the handshake short); the DH output is the shared point's
//!   x-coordinate (32 bytes), as in SEC1 ECDH and RFC 8998.
//! - **Ciphers**: the nonce is 4 zero bytes then the 64-bit counter big-endian (Noise's
//!   `AESGCM`); SM4 takes the first 16 bytes of Noise's 32-byte key `k`.
//! - **Hashes**: Noise's HMAC and HKDF over the suite hash (snow's default methods, with the
//!   block length 64 of both).

use crate::suite::WireSuite;
use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use elliptic_curve::{AffinePoint, CurveArithmetic, FieldBytesSize, PublicKey, SecretKey};
use sha2::Digest;
use snow::Error;
use snow::types::{Cipher, Dh, Hash, Random};
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

/// Length of a private key (a scalar) and of a DH output (an x-coordinate).
pub const SCALAR_LEN: usize = 32;
/// Length of a public key: a compressed SEC1 point.
pub const PUBLIC_KEY_LEN: usize = 33;
/// Length of a suite hash (SHA-256, SM3) and of Noise's cipher key.
pub const HASH_LEN: usize = 32;
/// The AEAD tag.
pub const TAG_LEN: usize = 16;

/// What the wire needs of a suite. `None` means the operation failed (an invalid key or
/// point, a wrong tag, or a crypto plugin that could not serve the call); the handshake or
/// the frame fails with it.
pub trait WirePrimitives: Send + Sync {
    /// The suite served; the protocol name follows it.
    fn suite(&self) -> WireSuite;
    /// The compressed public key of a scalar; `None` for zero or a scalar above the order.
    fn public_key(&self, private: &[u8]) -> Option<[u8; PUBLIC_KEY_LEN]>;
    /// ECDH: the x-coordinate of `private` × `peer` (a compressed point).
    fn agree(&self, private: &[u8], peer: &[u8]) -> Option<[u8; SCALAR_LEN]>;
    fn hash(&self, data: &[u8]) -> Option<[u8; HASH_LEN]>;
    /// The suite's AEAD under Noise's key: ciphertext then the 16-byte tag.
    fn seal(&self, key: &[u8; HASH_LEN], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>>;
    fn open(&self, key: &[u8; HASH_LEN], nonce: &[u8; 12], aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>>;
}

/// The suite on RustCrypto in this process (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct NativePrimitives(pub WireSuite);

impl NativePrimitives {
    pub fn shared(suite: WireSuite) -> Arc<dyn WirePrimitives> {
        Arc::new(NativePrimitives(suite))
    }
}

fn native_public_key<C>(private: &[u8]) -> Option<[u8; PUBLIC_KEY_LEN]>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let secret = SecretKey::<C>::from_slice(private).ok()?;
    let point = secret.public_key().as_affine().to_sec1_point(true);
    point.as_bytes().try_into().ok()
}

fn native_agree<C>(private: &[u8], peer: &[u8]) -> Option<[u8; SCALAR_LEN]>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let secret = SecretKey::<C>::from_slice(private).ok()?;
    let peer = PublicKey::<C>::from_sec1_bytes(peer).ok()?;
    let shared = elliptic_curve::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    shared.raw_secret_bytes().as_slice().try_into().ok()
}

/// GCM with a 96-bit nonce over a 128-bit block cipher (RustCrypto `aes-gcm`).
macro_rules! gcm {
    ($block:ty, $key:expr, $nonce:expr, $aad:expr, $msg:expr, $op:ident) => {
        AesGcm::<$block, U12>::new_from_slice($key).ok()?.$op(&aes_gcm::Nonce::<U12>::from(*$nonce), Payload { msg: $msg, aad: $aad }).ok()
    };
}

impl WirePrimitives for NativePrimitives {
    fn suite(&self) -> WireSuite {
        self.0
    }

    fn public_key(&self, private: &[u8]) -> Option<[u8; PUBLIC_KEY_LEN]> {
        match self.0 {
            WireSuite::Intl => native_public_key::<p256::NistP256>(private),
            WireSuite::Gm => native_public_key::<sm2::Sm2>(private),
        }
    }

    fn agree(&self, private: &[u8], peer: &[u8]) -> Option<[u8; SCALAR_LEN]> {
        match self.0 {
            WireSuite::Intl => native_agree::<p256::NistP256>(private, peer),
            WireSuite::Gm => native_agree::<sm2::Sm2>(private, peer),
        }
    }

    fn hash(&self, data: &[u8]) -> Option<[u8; HASH_LEN]> {
        Some(match self.0 {
            WireSuite::Intl => sha2::Sha256::digest(data).into(),
            WireSuite::Gm => sm3::Sm3::digest(data).into(),
        })
    }

    fn seal(&self, key: &[u8; HASH_LEN], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        match self.0 {
            WireSuite::Intl => gcm!(aes::Aes256, key, nonce, aad, plaintext, encrypt),
            WireSuite::Gm => gcm!(sm4::Sm4, key.get(..16)?, nonce, aad, plaintext, encrypt),
        }
    }

    fn open(&self, key: &[u8; HASH_LEN], nonce: &[u8; 12], aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        match self.0 {
            WireSuite::Intl => gcm!(aes::Aes256, key, nonce, aad, ciphertext, decrypt),
            WireSuite::Gm => gcm!(sm4::Sm4, key.get(..16)?, nonce, aad, ciphertext, decrypt),
        }
    }
}

/// The operating system's entropy, for ephemeral keys (node-local, never consensus).
pub(crate) struct OsRandom;

impl Random for OsRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        getrandom::fill(dest).map_err(|_| Error::Rng)
    }
}

/// A fresh scalar: random bytes until one is a valid private key (all but a negligible
/// fraction of 256-bit strings are, on both curves).
pub(crate) fn generate(primitives: &dyn WirePrimitives, rng: &mut dyn Random) -> Result<Zeroizing<[u8; SCALAR_LEN]>, Error> {
    for _ in 0..64 {
        let mut k = Zeroizing::new([0u8; SCALAR_LEN]);
        rng.try_fill_bytes(k.as_mut_slice())?;
        if primitives.public_key(k.as_slice()).is_some() {
            return Ok(k);
        }
    }
    Err(Error::Rng)
}

/// Noise's DH slot.
pub(crate) struct WireDh {
    primitives: Arc<dyn WirePrimitives>,
    name: &'static str,
    private: [u8; SCALAR_LEN],
    public: [u8; PUBLIC_KEY_LEN],
    valid: bool,
}

impl WireDh {
    pub(crate) fn new(primitives: Arc<dyn WirePrimitives>, name: &'static str) -> Self {
        WireDh { primitives, name, private: [0; SCALAR_LEN], public: [0; PUBLIC_KEY_LEN], valid: false }
    }
}

impl Drop for WireDh {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

impl Dh for WireDh {
    fn name(&self) -> &'static str {
        self.name
    }

    fn pub_len(&self) -> usize {
        PUBLIC_KEY_LEN
    }

    fn priv_len(&self) -> usize {
        SCALAR_LEN
    }

    fn set(&mut self, privkey: &[u8]) {
        match (<[u8; SCALAR_LEN]>::try_from(privkey), self.primitives.public_key(privkey)) {
            (Ok(k), Some(p)) => {
                self.private = k;
                self.public = p;
                self.valid = true;
            }
            _ => {
                self.private.zeroize();
                self.valid = false;
            }
        }
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), Error> {
        let k = generate(self.primitives.as_ref(), rng)?;
        self.set(k.as_slice());
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.private
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), Error> {
        if !self.valid {
            return Err(Error::Dh);
        }
        // snow hands over its whole 56-byte buffer: the point is the first 33 bytes.
        let point = pubkey.get(..PUBLIC_KEY_LEN).ok_or(Error::Dh)?;
        let mut shared = self.primitives.agree(&self.private, point).ok_or(Error::Dh)?;
        let dst = out.get_mut(..SCALAR_LEN).ok_or(Error::Dh);
        let r = dst.map(|d| d.copy_from_slice(&shared));
        shared.zeroize();
        r
    }

    fn dh_len(&self) -> usize {
        SCALAR_LEN
    }
}

fn noise_nonce(n: u64) -> [u8; 12] {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_be_bytes());
    bytes
}

/// Noise's cipher slot: the suite's AEAD with Noise's nonces.
pub(crate) struct WireCipher {
    primitives: Arc<dyn WirePrimitives>,
    name: &'static str,
    key: Option<Zeroizing<[u8; HASH_LEN]>>,
}

impl WireCipher {
    pub(crate) fn new(primitives: Arc<dyn WirePrimitives>, name: &'static str) -> Self {
        WireCipher { primitives, name, key: None }
    }
}

impl Cipher for WireCipher {
    fn name(&self) -> &'static str {
        self.name
    }

    fn set(&mut self, key: &[u8; 32]) {
        self.key = Some(Zeroizing::new(*key));
    }

    fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let Some(key) = &self.key else { return 0 };
        let Some(sealed) = self.primitives.seal(key, &noise_nonce(nonce), authtext, plaintext) else { return 0 };
        match out.get_mut(..sealed.len()) {
            Some(dst) if sealed.len() == plaintext.len() + TAG_LEN => {
                dst.copy_from_slice(&sealed);
                sealed.len()
            }
            _ => 0,
        }
    }

    fn decrypt(&self, nonce: u64, authtext: &[u8], ciphertext: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let key = self.key.as_ref().ok_or(Error::Decrypt)?;
        let mut plain = self.primitives.open(key, &noise_nonce(nonce), authtext, ciphertext).ok_or(Error::Decrypt)?;
        let r = match out.get_mut(..plain.len()) {
            Some(dst) if plain.len() + TAG_LEN == ciphertext.len() => {
                dst.copy_from_slice(&plain);
                Ok(plain.len())
            }
            _ => Err(Error::Decrypt),
        };
        plain.zeroize();
        r
    }
}

/// Noise's hash slot: the input gathered, then hashed in one call (Noise hashes short
/// inputs: handshake transcripts, HMAC blocks).
pub(crate) struct WireHash {
    primitives: Arc<dyn WirePrimitives>,
    name: &'static str,
    input: Zeroizing<Vec<u8>>,
}

impl WireHash {
    pub(crate) fn new(primitives: Arc<dyn WirePrimitives>, name: &'static str) -> Self {
        WireHash { primitives, name, input: Zeroizing::new(Vec::new()) }
    }
}

impl Hash for WireHash {
    fn name(&self) -> &'static str {
        self.name
    }

    fn block_len(&self) -> usize {
        64
    }

    fn hash_len(&self) -> usize {
        HASH_LEN
    }

    fn reset(&mut self) {
        self.input.clear();
    }

    fn input(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
    }

    fn result(&mut self, out: &mut [u8]) {
        // snow's Hash cannot fail: a failed plugin call leaves a zero digest, and the peers'
        // keys then disagree, so the handshake fails its first authenticated message.
        let digest = self.primitives.hash(&self.input).unwrap_or([0; HASH_LEN]);
        self.input.clear();
        if let Some(dst) = out.get_mut(..HASH_LEN) {
            dst.copy_from_slice(&digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::AeadInOut;

    /// The cipher speaks Noise's AESGCM layout (nonce = 4 zero bytes ++ counter big-endian,
    /// tag appended), checked against the AEAD called directly; a flipped bit fails.
    #[test]
    fn sm4_gcm_uses_noise_nonces_and_the_first_16_key_bytes() {
        let mut c = WireCipher::new(NativePrimitives::shared(WireSuite::Gm), "SM4GCM");
        let key = [7u8; 32];
        c.set(&key);
        let mut out = [0u8; 64];
        let n = c.encrypt(0x0102_0304_0506_0708, b"ad", b"hello noise", &mut out);
        assert_eq!(n, 11 + 16);
        let mut body = *b"hello noise";
        let nonce = [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        let tag = AesGcm::<sm4::Sm4, U12>::new_from_slice(&key[..16]).unwrap().encrypt_inout_detached(&nonce.into(), b"ad", (&mut body[..]).into()).unwrap();
        assert_eq!(&out[..11], &body);
        assert_eq!(&out[11..n], tag.as_slice());
        let mut plain = [0u8; 64];
        assert_eq!(c.decrypt(0x0102_0304_0506_0708, b"ad", &out[..n], &mut plain), Ok(11));
        assert_eq!(&plain[..11], b"hello noise");
        out[3] ^= 1;
        assert!(c.decrypt(0x0102_0304_0506_0708, b"ad", &out[..n], &mut plain).is_err());
    }

    #[test]
    fn aes_gcm_uses_noise_nonces_and_detects_tampering() {
        let mut c = WireCipher::new(NativePrimitives::shared(WireSuite::Intl), "AESGCM");
        let key = [9u8; 32];
        c.set(&key);
        let mut out = [0u8; 64];
        let n = c.encrypt(5, b"", b"block", &mut out);
        let mut body = *b"block";
        let tag = AesGcm::<aes::Aes256, U12>::new_from_slice(&key)
            .unwrap()
            .encrypt_inout_detached(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5].into(), b"", (&mut body[..]).into())
            .unwrap();
        assert_eq!(&out[..5], &body);
        assert_eq!(&out[5..n], tag.as_slice());
        let mut plain = [0u8; 64];
        assert!(c.decrypt(6, b"", &out[..n], &mut plain).is_err(), "another nonce fails");
    }

    #[test]
    fn both_sides_of_an_ecdh_agree_on_both_curves() {
        for (suite, name) in [(WireSuite::Intl, "P256"), (WireSuite::Gm, "SM2")] {
            let p = NativePrimitives::shared(suite);
            let (mut a, mut b) = (WireDh::new(p.clone(), name), WireDh::new(p, name));
            a.generate(&mut OsRandom).unwrap();
            b.generate(&mut OsRandom).unwrap();
            let (mut ab, mut ba) = ([0u8; 56], [0u8; 56]);
            // snow hands over its whole 56-byte buffer.
            let mut b_pub = [0u8; 56];
            b_pub[..33].copy_from_slice(b.pubkey());
            a.dh(&b_pub, &mut ab).unwrap();
            b.dh(a.pubkey(), &mut ba).unwrap();
            assert_eq!(ab[..32], ba[..32]);
            assert_ne!(ab[..32], [0u8; 32]);
            assert!(a.dh(&[4u8; 33], &mut ab).is_err(), "not a point");
        }
    }

    /// The gathered-input hash is the suite hash of everything fed since the last result.
    #[test]
    fn the_hash_slot_hashes_what_was_fed_since_the_last_result() {
        let mut h = WireHash::new(NativePrimitives::shared(WireSuite::Gm), "SM3");
        let mut out = [0u8; 32];
        h.input(b"a");
        h.input(b"bc");
        h.result(&mut out);
        assert_eq!(hex::encode(out), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
        h.input(b"abc");
        h.result(&mut out);
        assert_eq!(hex::encode(out), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
    }
}
