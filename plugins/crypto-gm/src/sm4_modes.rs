//! SM4 (GB/T 32907-2016) in ECB, CBC (PKCS#7 padding), CTR (128-bit big-endian counter, as
//! OpenSSL's sm4-ctr) and GCM (12-byte nonce, ciphertext || 16-byte tag; RFC 8998).
//!
//! GCM is the SDK's ([`joule_crypto_sdk::gcm`]): SM4's counter mode runs here in the plugin
//! (the host has no SM4), GHASH on the host (`joule:crypto/accel`).

use ctr::CtrCore;
use ctr::cipher::array::Array;
use ctr::cipher::{InnerIvInit, StreamCipherCore};
use joule_crypto_sdk::gcm::{Gcm, Gctr};
use joule_crypto_sdk::{Error, Result};
use sm4::Sm4;
use sm4::cipher::block_padding::Pkcs7;
use sm4::cipher::{BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit, StreamCipher};

const BLOCK: usize = 16;

/// SM4 in GCM's counter mode: `ctr`'s 32-bit big-endian counter over the keyed cipher (the
/// `sm4` crate encrypts one block at a time: it has no parallel-blocks backend to batch with).
struct Sm4Gctr(Sm4);

impl Gctr for Sm4Gctr {
    fn gctr(&self, counter: &[u8; BLOCK], data: &[u8], spare: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len().saturating_add(spare));
        out.extend_from_slice(data);
        let ctr = CtrCore::<&Sm4, ctr::flavors::Ctr32BE>::inner_iv_init(&self.0, &Array(*counter));
        // GCM passes at most 2^32 - 2 blocks from inc32(J0), within the counter's range; past
        // it the output would stay plaintext and fail every tag check.
        let _ = ctr.try_apply_keystream_partial(out.as_mut_slice().into());
        out
    }

    fn encrypt_block(&self, block: &[u8; BLOCK]) -> [u8; BLOCK] {
        let mut b = Array(*block);
        self.0.encrypt_block(&mut b);
        b.0
    }
}

fn sm4_gcm(key: &[u8]) -> Result<Gcm<Sm4Gctr>> {
    let cipher = Sm4::new_from_slice(key).map_err(|_| Error::key("key must be 16 bytes"))?;
    Ok(Gcm::new(Sm4Gctr(cipher)))
}

fn no_aad(aad: &[u8]) -> Result<()> {
    if aad.is_empty() {
        Ok(())
    } else {
        Err(Error::input("associated data is only accepted by sm4-gcm"))
    }
}

fn nonce_len(alg: &str, nonce: &[u8], len: usize) -> Result<()> {
    if nonce.len() == len {
        Ok(())
    } else {
        Err(Error::input(format!(
            "{alg} needs a {len}-byte nonce, got {}",
            nonce.len()
        )))
    }
}

fn bad_key<E>(_: E) -> Error {
    Error::key("SM4 keys are 16 bytes")
}

fn whole_blocks(ciphertext: &[u8]) -> Result<()> {
    if !ciphertext.is_empty() && ciphertext.len().is_multiple_of(BLOCK) {
        Ok(())
    } else {
        Err(Error::input("ciphertext is not a non-empty multiple of 16 bytes"))
    }
}

pub fn encrypt(alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    match alg {
        "sm4-ecb" => {
            nonce_len(alg, nonce, 0)?;
            no_aad(aad)?;
            Ok(ecb::Encryptor::<Sm4>::new_from_slice(key)
                .map_err(bad_key)?
                .encrypt_padded_vec::<Pkcs7>(plaintext))
        }
        "sm4-cbc" => {
            nonce_len(alg, nonce, BLOCK)?;
            no_aad(aad)?;
            Ok(cbc::Encryptor::<Sm4>::new_from_slices(key, nonce)
                .map_err(bad_key)?
                .encrypt_padded_vec::<Pkcs7>(plaintext))
        }
        "sm4-ctr" => ctr(key, nonce, aad, plaintext),
        "sm4-gcm" => sm4_gcm(key)?.encrypt(nonce, aad, plaintext),
        _ => Err(Error::unsupported(alg)),
    }
}

pub fn decrypt(alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
    match alg {
        "sm4-ecb" => {
            nonce_len(alg, nonce, 0)?;
            no_aad(aad)?;
            let mode = ecb::Decryptor::<Sm4>::new_from_slice(key).map_err(bad_key)?;
            whole_blocks(ciphertext)?;
            mode.decrypt_padded_vec::<Pkcs7>(ciphertext)
                .map_err(|_| Error::DecryptionFailed)
        }
        "sm4-cbc" => {
            nonce_len(alg, nonce, BLOCK)?;
            no_aad(aad)?;
            let mode = cbc::Decryptor::<Sm4>::new_from_slices(key, nonce).map_err(bad_key)?;
            whole_blocks(ciphertext)?;
            mode.decrypt_padded_vec::<Pkcs7>(ciphertext)
                .map_err(|_| Error::DecryptionFailed)
        }
        "sm4-ctr" => ctr(key, nonce, aad, ciphertext),
        "sm4-gcm" => sm4_gcm(key)?.decrypt(nonce, aad, ciphertext),
        _ => Err(Error::unsupported(alg)),
    }
}

/// CTR is its own inverse. The nonce is the whole initial counter block; it wraps modulo 2^128.
fn ctr(key: &[u8], nonce: &[u8], aad: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    nonce_len("sm4-ctr", nonce, BLOCK)?;
    no_aad(aad)?;
    let mut cipher = ctr::Ctr128BE::<Sm4>::new_from_slices(key, nonce).map_err(bad_key)?;
    let mut out = data.to_vec();
    cipher
        .try_apply_keystream(&mut out)
        .map_err(|_| Error::input("message too long for sm4-ctr"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    const KEY: [u8; 16] = hex!("0123456789abcdeffedcba9876543210");

    #[test]
    fn gbt_32907_example() {
        // Example 1 of GB/T 32907-2016: key = plaintext = 0123456789abcdeffedcba9876543210.
        let ct = encrypt("sm4-ecb", &KEY, &[], &[], &KEY).unwrap();
        assert_eq!(ct.len(), 32); // PKCS#7 adds a whole block
        assert_eq!(ct[..16], hex!("681edf34d206965e86b3e94f536e4246"));
        assert_eq!(decrypt("sm4-ecb", &KEY, &[], &[], &ct).unwrap(), KEY);
    }

    #[test]
    fn rfc_8998_gcm_vector() {
        let iv = hex!("00001234567800000000abcd");
        let aad = hex!("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let pt = hex!(
            "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd"
            "eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa"
        );
        let expected = hex!(
            "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
            "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"
            "83de3541e4c2b58177e065a9bf7b62ec"
        );
        assert_eq!(encrypt("sm4-gcm", &KEY, &iv, &aad, &pt).unwrap(), expected);
        assert_eq!(decrypt("sm4-gcm", &KEY, &iv, &aad, &expected).unwrap(), pt);
        let mut tampered = expected;
        tampered[0] ^= 1;
        assert_eq!(
            decrypt("sm4-gcm", &KEY, &iv, &aad, &tampered),
            Err(Error::DecryptionFailed)
        );
        assert_eq!(
            decrypt("sm4-gcm", &KEY, &iv, b"other", &expected),
            Err(Error::DecryptionFailed)
        );
        assert!(matches!(
            encrypt("sm4-gcm", &KEY, &[0; 16], &[], b"x"),
            Err(Error::InvalidInput(_))
        ));
    }

    /// The SDK-based SM4-GCM gives the bytes the previous implementation (the `aes-gcm`
    /// crate's generic `AesGcm<Sm4, U12>`) gave, for every length around the block and
    /// GHASH-threshold boundaries, with and without associated data, and opens them again.
    #[test]
    fn sm4_gcm_equals_the_previous_implementation() {
        use aes_gcm::aead::consts::U12;
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let previous = aes_gcm::AesGcm::<Sm4, U12>::new_from_slice(&KEY).unwrap();
        let nonce = hex!("00001234567800000000abcd");
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + 1) as u8).collect();
        for aad in [&[][..], &data[..1], &data[..20], &data[..64], &data[..100]] {
            for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 1000, 65536] {
                let pt = &data[..len];
                let want = previous.encrypt(&nonce.into(), Payload { msg: pt, aad }).unwrap();
                let got = encrypt("sm4-gcm", &KEY, &nonce, aad, pt).unwrap();
                assert_eq!(got, want, "length {len}, aad {}", aad.len());
                assert_eq!(decrypt("sm4-gcm", &KEY, &nonce, aad, &got).unwrap(), pt);
            }
        }
        for short in [&[][..], &[0u8; 15][..]] {
            assert_eq!(
                decrypt("sm4-gcm", &KEY, &nonce, &[], short),
                Err(Error::DecryptionFailed)
            );
        }
        let ct = encrypt("sm4-gcm", &KEY, &nonce, &[], b"joule").unwrap();
        let mut other_nonce = nonce;
        other_nonce[0] ^= 1;
        assert_eq!(
            decrypt("sm4-gcm", &KEY, &other_nonce, &[], &ct),
            Err(Error::DecryptionFailed)
        );
        let mut bad_tag = ct.clone();
        *bad_tag.last_mut().unwrap() ^= 1;
        assert_eq!(
            decrypt("sm4-gcm", &KEY, &nonce, &[], &bad_tag),
            Err(Error::DecryptionFailed)
        );
    }

    #[test]
    fn ctr_matches_ecb_keystream_and_wraps() {
        // Counter block all-ones: the second block's counter wraps to zero.
        let iv = [0xffu8; 16];
        let ct = encrypt("sm4-ctr", &KEY, &iv, &[], &[0u8; 40]).unwrap();
        let ks0 = encrypt("sm4-ecb", &KEY, &[], &[], &iv).unwrap();
        let ks1 = encrypt("sm4-ecb", &KEY, &[], &[], &[0u8; 16]).unwrap();
        let ks2 = encrypt("sm4-ecb", &KEY, &[], &[], &hex!("00000000000000000000000000000001")).unwrap();
        assert_eq!(ct[..16], ks0[..16]);
        assert_eq!(ct[16..32], ks1[..16]);
        assert_eq!(ct[32..], ks2[..8]);
        assert_eq!(decrypt("sm4-ctr", &KEY, &iv, &[], &ct).unwrap(), [0u8; 40]);
    }

    #[test]
    fn cbc_round_trip_and_errors() {
        let iv = [7u8; 16];
        for len in [0usize, 1, 15, 16, 17, 100] {
            let msg = vec![0x5a; len];
            let ct = encrypt("sm4-cbc", &KEY, &iv, &[], &msg).unwrap();
            assert_eq!(ct.len(), (len / 16 + 1) * 16);
            assert_eq!(decrypt("sm4-cbc", &KEY, &iv, &[], &ct).unwrap(), msg);
        }
        let ct = encrypt("sm4-cbc", &KEY, &iv, &[], b"hello").unwrap();
        assert_eq!(
            decrypt("sm4-cbc", &[1; 16], &iv, &[], &ct),
            Err(Error::DecryptionFailed)
        );
        assert!(matches!(
            decrypt("sm4-cbc", &KEY, &iv, &[], &ct[..15]),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            encrypt("sm4-cbc", &KEY, &[0; 12], &[], b"x"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            encrypt("sm4-ecb", &KEY, &[0; 16], &[], b"x"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            encrypt("sm4-cbc", &KEY, &iv, b"aad", b"x"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            encrypt("sm4-cbc", &[0; 15], &iv, &[], b"x"),
            Err(Error::InvalidKey(_))
        ));
        assert!(matches!(
            encrypt("sm4-gcm", &[0; 32], &[0; 12], &[], b"x"),
            Err(Error::InvalidKey(_))
        ));
    }
}
