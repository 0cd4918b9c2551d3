//! The suites' primitives in snow's traits: Diffie-Hellman on P-256 or the SM2 curve,
//! AES-256-GCM or SM4-GCM, SHA-256 or SM3 (byte formats in `docs/formats.md`, "Peer
//! transport").
//!
//! - **DH**: private keys are 32-byte big-endian scalars; public keys are *compressed* SEC1
//!   points (33 bytes: snow's buffers hold at most 56 without its own P-256 support, and
//!   compressed points keep the handshake short); the DH output is the shared point's
//!   x-coordinate (32 bytes), as in SEC1 ECDH and RFC 8998.
//! - **Ciphers**: the nonce is 4 zero bytes then the 64-bit counter big-endian (Noise's
//!   `AESGCM`); SM4 takes the first 16 bytes of Noise's 32-byte key `k`.
//! - **Hashes**: Noise's HMAC and HKDF over the suite hash (snow's default methods, with the
//!   block length 64 of both).

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use elliptic_curve::{AffinePoint, CurveArithmetic, FieldBytesSize, PublicKey, SecretKey};
use sha2::Digest;
use snow::Error;
use snow::types::{Cipher, Dh, Hash, Random};
use zeroize::Zeroize;

/// Length of a private key (a scalar) and of a DH output (an x-coordinate).
pub const SCALAR_LEN: usize = 32;
/// Length of a public key: a compressed SEC1 point.
pub const PUBLIC_KEY_LEN: usize = 33;

/// The operating system's entropy, for ephemeral keys (node-local, never consensus).
pub(crate) struct OsRandom;

impl Random for OsRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        getrandom::fill(dest).map_err(|_| Error::Rng)
    }
}

/// The public key (compressed SEC1) of a private scalar on curve `C`, if the scalar is valid.
pub(crate) fn public_key<C>(private: &[u8]) -> Option<[u8; PUBLIC_KEY_LEN]>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let secret = SecretKey::<C>::from_slice(private).ok()?;
    let point = secret.public_key().as_affine().to_sec1_point(true);
    point.as_bytes().try_into().ok()
}

/// A fresh private scalar on curve `C` from the OS's entropy.
pub(crate) fn generate<C>(rng: &mut dyn Random) -> Result<[u8; SCALAR_LEN], Error>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    // A uniformly random 256-bit string is a valid scalar except with probability ~2^-32 on
    // either curve; draw again in that case.
    for _ in 0..64 {
        let mut k = [0u8; SCALAR_LEN];
        rng.try_fill_bytes(&mut k)?;
        if public_key::<C>(&k).is_some() {
            return Ok(k);
        }
    }
    Err(Error::Rng)
}

/// Noise DH on a short-Weierstrass curve (P-256 or SM2).
pub(crate) struct EcDh<C> {
    name: &'static str,
    private: [u8; SCALAR_LEN],
    public: [u8; PUBLIC_KEY_LEN],
    /// Whether `set`/`generate` gave a valid key (snow's `set` cannot fail).
    valid: bool,
    curve: std::marker::PhantomData<fn() -> C>,
}

impl<C> EcDh<C> {
    pub(crate) fn new(name: &'static str) -> Self {
        EcDh { name, private: [0; SCALAR_LEN], public: [0; PUBLIC_KEY_LEN], valid: false, curve: std::marker::PhantomData }
    }
}

impl<C> Drop for EcDh<C> {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

impl<C> Dh for EcDh<C>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
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
        match (<[u8; SCALAR_LEN]>::try_from(privkey), public_key::<C>(privkey)) {
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
        let k = generate::<C>(rng)?;
        self.set(&k);
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
        let secret = SecretKey::<C>::from_slice(&self.private).map_err(|_| Error::Dh)?;
        // snow passes its whole key buffer (56 bytes); the point is its first 33.
        let point = pubkey.get(..PUBLIC_KEY_LEN).ok_or(Error::Dh)?;
        let peer = PublicKey::<C>::from_sec1_bytes(point).map_err(|_| Error::Dh)?;
        let shared = elliptic_curve::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
        let x = shared.raw_secret_bytes();
        let dst = out.get_mut(..SCALAR_LEN).ok_or(Error::Dh)?;
        dst.copy_from_slice(x.as_slice());
        Ok(())
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

/// Noise's cipher functions over GCM with a 128-bit block cipher; `None` until snow sets
/// the key (it never encrypts before).
macro_rules! gcm_cipher {
    ($name:ident, $block:ty, $label:literal, $key_len:expr) => {
        pub(crate) struct $name(Option<AesGcm<$block, U12>>);

        impl $name {
            pub(crate) fn new() -> Self {
                $name(None)
            }
        }

        impl Cipher for $name {
            fn name(&self) -> &'static str {
                $label
            }

            fn set(&mut self, key: &[u8; 32]) {
                self.0 = AesGcm::<$block, U12>::new_from_slice(&key[..$key_len]).ok();
            }

            fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
                // snow sizes `out` for the ciphertext and its tag.
                let (Some(key), Some((body, rest))) = (&self.0, out.split_at_mut_checked(plaintext.len())) else { return 0 };
                body.copy_from_slice(plaintext);
                let Ok(tag) = key.encrypt_inout_detached(&Nonce::<AesGcm<$block, U12>>::from(noise_nonce(nonce)), authtext, body.into()) else { return 0 };
                match rest.get_mut(..TAG_LEN) {
                    Some(t) => {
                        t.copy_from_slice(tag.as_slice());
                        plaintext.len() + TAG_LEN
                    }
                    None => 0,
                }
            }

            fn decrypt(&self, nonce: u64, authtext: &[u8], ciphertext: &[u8], out: &mut [u8]) -> Result<usize, Error> {
                let key = self.0.as_ref().ok_or(Error::Decrypt)?;
                let body_len = ciphertext.len().checked_sub(TAG_LEN).ok_or(Error::Decrypt)?;
                let (body, tag) = ciphertext.split_at(body_len);
                let tag = aes_gcm::Tag::<U16>::try_from(tag).map_err(|_| Error::Decrypt)?;
                let dst = out.get_mut(..body_len).ok_or(Error::Decrypt)?;
                dst.copy_from_slice(body);
                match key.decrypt_inout_detached(&Nonce::<AesGcm<$block, U12>>::from(noise_nonce(nonce)), authtext, (&mut *dst).into(), &tag) {
                    Ok(()) => Ok(body_len),
                    Err(_) => {
                        dst.zeroize();
                        Err(Error::Decrypt)
                    }
                }
            }
        }
    };
}

const TAG_LEN: usize = 16;

gcm_cipher!(Aes256Gcm, aes::Aes256, "AESGCM", 32);
gcm_cipher!(Sm4Gcm, sm4::Sm4, "SM4GCM", 16);

/// Noise's hash functions over SHA-256 or SM3 (both: 64-byte blocks, 32-byte output).
pub(crate) struct SuiteHash<D: Digest + Default> {
    name: &'static str,
    state: D,
}

impl<D: Digest + Default> SuiteHash<D> {
    pub(crate) fn new(name: &'static str) -> Self {
        SuiteHash { name, state: D::default() }
    }
}

impl<D: Digest + Default + Send + Sync> Hash for SuiteHash<D> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn block_len(&self) -> usize {
        64
    }

    fn hash_len(&self) -> usize {
        32
    }

    fn reset(&mut self) {
        self.state = D::default();
    }

    fn input(&mut self, data: &[u8]) {
        self.state.update(data);
    }

    fn result(&mut self, out: &mut [u8]) {
        let digest = std::mem::take(&mut self.state).finalize();
        if let Some(dst) = out.get_mut(..digest.len()) {
            dst.copy_from_slice(&digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cipher speaks Noise's AESGCM layout (nonce = 4 zero bytes ++ counter big-endian,
    /// tag appended), checked against the AEAD called directly; a flipped bit fails.
    #[test]
    fn sm4_gcm_uses_noise_nonces_and_the_first_16_key_bytes() {
        let mut c = Sm4Gcm::new();
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
        let mut c = Aes256Gcm::new();
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
        fn agree<C>(name: &'static str)
        where
            C: CurveArithmetic,
            FieldBytesSize<C>: ModulusSize,
            AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
        {
            let (mut a, mut b) = (EcDh::<C>::new(name), EcDh::<C>::new(name));
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
        agree::<p256::NistP256>("P256");
        agree::<sm2::Sm2>("SM2");
    }
}
