//! `ecies-p256`: ECIES over NIST P-256 with HKDF-SHA256 and AES-256-GCM (profile
//! `joule:ecies-p256:v1`).
//!
//! Ciphertext bytes: `R || C || T`, where
//! - `R` is the sender's ephemeral public key as an uncompressed SEC1 point (65 bytes, `0x04 || X || Y`),
//! - `C` is the AES-256-GCM ciphertext, as long as the plaintext,
//! - `T` is the 16-byte GCM tag.
//!
//! Key schedule:
//! 1. `shared` = x-coordinate (32 bytes, big-endian) of the ECDH point `r·P` (sender, ephemeral
//!    scalar `r`, recipient key `P`) = `d·R` (recipient, private key `d`).
//! 2. `okm` = HKDF-SHA256(ikm = `shared`, salt = the 65 bytes of `R`,
//!    info = `"joule:ecies-p256:v1"`), expanded to 44 bytes.
//! 3. AES-256 key = `okm[0..32]`, GCM nonce = `okm[32..44]`; the associated data is empty.
//!
//! Every encryption draws a fresh ephemeral key from the host's entropy, so the derived key and
//! nonce are never reused. The overhead is 65 + 16 = 81 bytes. Decryption rejects an `R` that is
//! not an uncompressed point on the curve (`invalid-input`); a wrong key or any tampering fails
//! the tag check (`decryption-failed`).

use hkdf::Hkdf;
use joule_crypto_sdk::gcm::{AesGctr, Gcm};
use joule_crypto_sdk::{Entropy, Error, Result};
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{PublicKey, SecretKey, ecdh};
use sha2::Sha256;

/// HKDF `info` string: names the scheme and its version.
pub const INFO: &[u8] = b"joule:ecies-p256:v1";

const POINT_LEN: usize = 65;
const TAG_LEN: usize = 16;

/// Bytes a ciphertext adds to its plaintext.
pub const EXPANSION: u32 = (POINT_LEN + TAG_LEN) as u32;

/// AES-256 key and GCM nonce for one message.
fn derive(shared: &ecdh::SharedSecret, ephemeral: &[u8]) -> ([u8; 32], [u8; 12]) {
    let mut okm = [0u8; 44];
    Hkdf::<Sha256>::new(Some(ephemeral), shared.raw_secret_bytes())
        .expand(INFO, &mut okm)
        .expect("44 bytes is a valid HKDF-SHA256 output length");
    let (key, nonce) = okm.split_at(32);
    (key.try_into().unwrap(), nonce.try_into().unwrap())
}

pub fn encrypt(recipient: &PublicKey, plaintext: &[u8], rng: &mut Entropy) -> Result<Vec<u8>> {
    let ephemeral = crate::random_secret(rng)?;
    let point = ephemeral.public_key().to_sec1_point(false);
    let shared = ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), recipient.as_affine());
    let (key, nonce) = derive(&shared, point.as_bytes());
    let mut out = point.as_bytes().to_vec();
    out.extend(Gcm::new(AesGctr::one_time(&key)?).encrypt(&nonce, &[], plaintext)?);
    Ok(out)
}

pub fn decrypt(recipient: &SecretKey, ciphertext: &[u8]) -> Result<Vec<u8>> {
    if ciphertext.len() < POINT_LEN + TAG_LEN {
        return Err(Error::input("ecies-p256 ciphertext shorter than 81 bytes"));
    }
    let (point, sealed) = ciphertext.split_at(POINT_LEN);
    if point[0] != 0x04 {
        return Err(Error::input("ecies-p256 ephemeral key is not an uncompressed point"));
    }
    let ephemeral =
        PublicKey::from_sec1_bytes(point).map_err(|_| Error::input("ecies-p256 ephemeral key is not on P-256"))?;
    let shared = ecdh::diffie_hellman(recipient.to_nonzero_scalar(), ephemeral.as_affine());
    let (key, nonce) = derive(&shared, point);
    Gcm::new(AesGctr::one_time(&key)?).decrypt(&nonce, &[], sealed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Intl;
    use joule_crypto_sdk::Plugin;

    #[test]
    fn round_trip_and_tampering() {
        let kp = Intl::generate("ecies-p256", &mut Entropy::os()).unwrap();
        for len in [0usize, 1, 16, 1000] {
            let msg = vec![0xa5; len];
            let ct = Intl::pke_encrypt("ecies-p256", &kp.public_key, &msg, &mut Entropy::os()).unwrap();
            assert_eq!(ct.len(), len + EXPANSION as usize);
            assert_eq!(ct[0], 0x04);
            assert_eq!(Intl::pke_decrypt("ecies-p256", &kp.private_key, &ct).unwrap(), msg);
            for i in [0usize, 40, 70, ct.len() - 1] {
                let mut bad = ct.clone();
                bad[i] ^= 1;
                assert!(Intl::pke_decrypt("ecies-p256", &kp.private_key, &bad).is_err());
            }
        }
        let other = Intl::generate("ecies-p256", &mut Entropy::os()).unwrap();
        let ct = Intl::pke_encrypt("ecies-p256", &kp.public_key, b"m", &mut Entropy::os()).unwrap();
        assert_eq!(
            Intl::pke_decrypt("ecies-p256", &other.private_key, &ct),
            Err(Error::DecryptionFailed)
        );
        assert!(matches!(
            Intl::pke_decrypt("ecies-p256", &kp.private_key, &ct[..80]),
            Err(Error::InvalidInput(_))
        ));
    }

    /// Recomputes the documented key schedule by hand from a fixed ephemeral key.
    #[test]
    fn documented_format() {
        use aes_gcm::Aes256Gcm;
        use aes_gcm::aead::{Aead, KeyInit};
        fn fixed(len: u32) -> Vec<u8> {
            vec![0x11; len as usize]
        }
        let recipient = SecretKey::from_slice(&[0x22; 32]).unwrap();
        let ct = encrypt(&recipient.public_key(), b"attack at dawn", &mut Entropy::new(fixed)).unwrap();
        let r = SecretKey::from_slice(&[0x11; 32]).unwrap();
        let r_point = r.public_key().to_sec1_point(false);
        assert_eq!(&ct[..65], r_point.as_bytes());
        let shared =
            (p256::ProjectivePoint::from(*recipient.public_key().as_affine()) * *r.to_nonzero_scalar()).to_affine();
        let shared_x = &shared.to_sec1_point(false).as_bytes()[1..33].to_vec();
        let mut okm = [0u8; 44];
        Hkdf::<Sha256>::new(Some(r_point.as_bytes()), shared_x)
            .expand(b"joule:ecies-p256:v1", &mut okm)
            .unwrap();
        let aes = Aes256Gcm::new_from_slice(&okm[..32]).unwrap();
        let sealed = aes
            .encrypt(okm[32..].try_into().unwrap(), &b"attack at dawn"[..])
            .unwrap();
        assert_eq!(&ct[65..], &sealed[..]);
    }

    #[test]
    fn entropy_failure() {
        fn refuse(_: u32) -> Vec<u8> {
            Vec::new()
        }
        let kp = Intl::generate("ecies-p256", &mut Entropy::os()).unwrap();
        assert_eq!(
            Intl::pke_encrypt("ecies-p256", &kp.public_key, b"m", &mut Entropy::new(refuse)),
            Err(Error::EntropyUnavailable)
        );
    }
}
