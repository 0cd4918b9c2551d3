//! crypto-intl: international algorithms (guide §4.1.1 b) as a Joule crypto plugin.
//!
//! - hash `sha256`, `sha384`, `sha512` (FIPS 180-4)
//! - signature `ecdsa-p256`: ECDSA over P-256 with SHA-256 of the whole message, DER signatures,
//!   deterministic nonces (RFC 6979); interoperates with `openssl dgst -sha256 -sign/-verify`
//! - public-key-encryption `ecies-p256` (see [`ecies`])
//! - symmetric-cipher `aes-128-gcm`, `aes-256-gcm` (12-byte nonce, ciphertext || 16-byte tag):
//!   the SDK's GCM ([`joule_crypto_sdk::gcm`]) with AES-GCTR and GHASH on the host
//!   (`joule:crypto/accel`), since WebAssembly has no AES or carry-less multiply instructions
//! - key-agreement `ecdh-p256` (see [`ecdh`]): NIST SP 800-56A ECC CDH over P-256 on raw keys
//!   (32-byte scalar, 33-byte compressed point), the peer-to-peer wire's Noise DH
//!
//! Both `ecdsa-p256` and `ecies-p256` use P-256 keys: PKCS#8 (RFC 5915 inside) and SPKI, as OpenSSL.

use joule_crypto_sdk::gcm::{AesGctr, Gcm};
use joule_crypto_sdk::key_cache::SharedCache;
use joule_crypto_sdk::{AlgorithmInfo, Entropy, Error, KeyPair, Kind, Plugin, Result};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::{PublicKey, SecretKey};
use sha2::Digest;

pub mod ecdh;
pub mod ecies;

pub struct Intl;

const fn aes_gcm(id: &'static str, oid: &'static str, key_size: u32) -> AlgorithmInfo {
    AlgorithmInfo {
        id,
        kind: Kind::SymmetricCipher,
        oid,
        key_size,
        public_key_size: 0,
        output_size: 16,
        nonce_size: 12,
        block_size: 16,
        standard: "NIST SP 800-38D",
    }
}

impl Plugin for Intl {
    const ALGORITHMS: &'static [AlgorithmInfo] = &[
        AlgorithmInfo::hash("sha256", "2.16.840.1.101.3.4.2.1", 32, 64, "FIPS 180-4"),
        AlgorithmInfo::hash("sha384", "2.16.840.1.101.3.4.2.2", 48, 128, "FIPS 180-4"),
        AlgorithmInfo::hash("sha512", "2.16.840.1.101.3.4.2.3", 64, 128, "FIPS 180-4"),
        AlgorithmInfo {
            id: "ecdsa-p256",
            kind: Kind::Signature,
            oid: "1.2.840.10045.4.3.2", // ecdsa-with-SHA256
            key_size: 32,
            public_key_size: 65,
            output_size: 72,
            nonce_size: 0,
            block_size: 0,
            standard: "FIPS 186-5",
        },
        AlgorithmInfo {
            id: "ecies-p256",
            kind: Kind::PublicKeyEncryption,
            oid: "",
            key_size: 32,
            public_key_size: 65,
            output_size: ecies::EXPANSION,
            nonce_size: 0,
            block_size: 0,
            standard: "SEC 1 v2.0 ECIES (joule:ecies-p256:v1 profile)",
        },
        aes_gcm("aes-128-gcm", "2.16.840.1.101.3.4.1.6", 16),
        aes_gcm("aes-256-gcm", "2.16.840.1.101.3.4.1.46", 32),
    ];

    fn digest(alg: &str, data: &[u8]) -> Result<Vec<u8>> {
        match alg {
            "sha256" => Ok(joule_crypto_sdk::accel::sha256(data).to_vec()),
            "sha384" => Ok(sha2::Sha384::digest(data).to_vec()),
            "sha512" => Ok(sha2::Sha512::digest(data).to_vec()),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn generate(alg: &str, rng: &mut Entropy) -> Result<KeyPair> {
        p256_alg(alg)?;
        let sk = random_secret(rng)?;
        let private_key = sk.to_pkcs8_der().map_err(Error::key)?.as_bytes().to_vec();
        Ok(KeyPair {
            private_key,
            public_key: spki(&sk.public_key())?,
        })
    }

    fn public_key(alg: &str, private_key: &[u8]) -> Result<Vec<u8>> {
        p256_alg(alg)?;
        spki(&secret_key(private_key)?.public_key())
    }

    fn sign(alg: &str, private_key: &[u8], message: &[u8], _user_id: Option<&[u8]>) -> Result<Vec<u8>> {
        if alg != "ecdsa-p256" {
            return Err(Error::unsupported(alg));
        }
        let mut cache = SIGNING_KEYS.lock();
        let mut uncached = None;
        let signer = cache.get_or_insert_with(private_key, b"", &mut uncached, || {
            secret_key(private_key).map(SigningKey::from)
        })?;
        let signature: DerSignature = signer
            .try_sign(message)
            .map_err(|_| Error::key("ECDSA signing failed"))?;
        Ok(signature.as_bytes().to_vec())
    }

    fn verify(alg: &str, public_key: &[u8], message: &[u8], signature: &[u8], _user_id: Option<&[u8]>) -> Result<bool> {
        if alg != "ecdsa-p256" {
            return Err(Error::unsupported(alg));
        }
        let mut cache = VERIFYING_KEYS.lock();
        let mut uncached = None;
        let verifier = cache.get_or_insert_with(public_key, b"", &mut uncached, || {
            public_key_from_spki(public_key).map(VerifyingKey::from)
        })?;
        let Ok(signature) = Signature::from_der(signature) else {
            return Ok(false);
        };
        Ok(verifier.verify(message, &signature).is_ok())
    }

    fn pke_encrypt(alg: &str, public_key: &[u8], plaintext: &[u8], rng: &mut Entropy) -> Result<Vec<u8>> {
        match alg {
            "ecies-p256" => ecies::encrypt(&public_key_from_spki(public_key)?, plaintext, rng),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn pke_decrypt(alg: &str, private_key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
        match alg {
            "ecies-p256" => ecies::decrypt(&secret_key(private_key)?, ciphertext),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn cipher_encrypt(alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        keyed_aes_gcm(alg, key)?.encrypt(nonce, aad, plaintext)
    }

    fn cipher_decrypt(alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
        keyed_aes_gcm(alg, key)?.decrypt(nonce, aad, ciphertext)
    }

    const KEY_AGREEMENTS: &'static [&'static str] = &[ecdh::ID];

    fn agreement_public_key(alg: &str, private_key: &[u8]) -> Result<Vec<u8>> {
        ecdh_alg(alg)?;
        ecdh::public_key(private_key)
    }

    fn agree(alg: &str, private_key: &[u8], peer_public_key: &[u8]) -> Result<Vec<u8>> {
        ecdh_alg(alg)?;
        ecdh::agree(private_key, peer_public_key)
    }
}

/// AES-GCM keyed for `alg`: the key must have the identifier's size (16 or 32 bytes).
fn keyed_aes_gcm<'k>(alg: &str, key: &'k [u8]) -> Result<Gcm<AesGctr<'k>>> {
    let size = match alg {
        "aes-128-gcm" => 16,
        "aes-256-gcm" => 32,
        _ => return Err(Error::unsupported(alg)),
    };
    if key.len() != size {
        return Err(Error::key(format!("key must be {size} bytes")));
    }
    Ok(Gcm::new(AesGctr::new(key)?))
}

fn ecdh_alg(alg: &str) -> Result<()> {
    if alg == ecdh::ID {
        Ok(())
    } else {
        Err(Error::unsupported(alg))
    }
}

joule_crypto_sdk::export_plugin!(crate::Intl, "../../wit/crypto");

/// Parsed ECDSA signing keys, by PKCS#8 bytes. Building a `SigningKey` computes its public point
/// d·G, a base-point multiplication as dear as the signature's own k·G: done once per key and
/// instance instead of on every `sign`. An entry is the scalar and the point (~100 bytes); p256's
/// `SigningKey` zeroizes its scalar on drop (ecdsa's `Drop` / `ZeroizeOnDrop`), so an evicted entry
/// leaves neither key bytes nor scalar behind.
static SIGNING_KEYS: SharedCache<SigningKey, 4> = SharedCache::new();

/// Parsed ECDSA verifying keys, by SPKI bytes: saves the DER parsing and the on-curve check of a
/// key seen again (a few µs). Public data; at most 8 points.
static VERIFYING_KEYS: SharedCache<VerifyingKey, 8> = SharedCache::new();

fn p256_alg(alg: &str) -> Result<()> {
    match alg {
        "ecdsa-p256" | "ecies-p256" => Ok(()),
        _ => Err(Error::unsupported(alg)),
    }
}

/// A uniformly random scalar in [1, n-1] by rejection sampling.
pub(crate) fn random_secret(rng: &mut Entropy) -> Result<SecretKey> {
    loop {
        let candidate: [u8; 32] = rng.bytes()?;
        if let Ok(sk) = SecretKey::from_slice(&candidate) {
            return Ok(sk);
        }
    }
}

fn secret_key(private_key: &[u8]) -> Result<SecretKey> {
    SecretKey::from_pkcs8_der(private_key).map_err(|e| Error::key(format!("not a P-256 PKCS#8 private key: {e}")))
}

fn public_key_from_spki(spki: &[u8]) -> Result<PublicKey> {
    PublicKey::from_public_key_der(spki).map_err(|e| Error::key(format!("not a P-256 SubjectPublicKeyInfo: {e}")))
}

fn spki(pk: &PublicKey) -> Result<Vec<u8>> {
    Ok(pk.to_public_key_der().map_err(Error::key)?.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    #[test]
    fn manifest_matches() {
        assert_eq!(
            joule_crypto_sdk::check_manifest::<Intl>(include_str!("../plugin.toml")),
            Ok(())
        );
    }

    #[test]
    fn sha2_nist_vectors() {
        assert_eq!(
            Intl::digest("sha256", b"abc").unwrap(),
            hex!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            Intl::digest("sha256", b"").unwrap(),
            hex!("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(
            Intl::digest("sha256", b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").unwrap(),
            hex!("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        );
        assert_eq!(
            Intl::digest("sha384", b"abc").unwrap(),
            hex!("cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7")
        );
        assert_eq!(
            Intl::digest("sha512", b"abc").unwrap(),
            hex!(
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
            )
        );
        assert_eq!(Intl::digest("sm3", b""), Err(Error::unsupported("sm3")));
    }

    #[test]
    fn aes_gcm_nist_vectors() {
        // GCM spec (McGrew & Viega) test cases 3 and 16 style: AES-128 test case 2 (zero key).
        assert_eq!(
            Intl::cipher_encrypt("aes-128-gcm", &[0; 16], &[0; 12], &[], &[0; 16]).unwrap(),
            hex!("0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf")
        );
        // Test case 16 (AES-256, with AAD).
        let key = hex!("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let iv = hex!("cafebabefacedbaddecaf888");
        let pt = hex!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        );
        let aad = hex!("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let ct = Intl::cipher_encrypt("aes-256-gcm", &key, &iv, &aad, &pt).unwrap();
        assert_eq!(
            ct,
            hex!(
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
                "76fc6ece0f4e1768cddf8853bb2d551b"
            )
        );
        assert_eq!(Intl::cipher_decrypt("aes-256-gcm", &key, &iv, &aad, &ct).unwrap(), pt);
        assert_eq!(
            Intl::cipher_decrypt("aes-256-gcm", &key, &iv, &[], &ct),
            Err(Error::DecryptionFailed)
        );
        assert!(matches!(
            Intl::cipher_encrypt("aes-256-gcm", &key, &[0; 16], &[], b""),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            Intl::cipher_encrypt("aes-128-gcm", &key, &iv, &[], b""),
            Err(Error::InvalidKey(_))
        ));
    }

    #[test]
    fn ecdsa_round_trip() {
        let kp = Intl::generate("ecdsa-p256", &mut Entropy::os()).unwrap();
        assert_eq!(Intl::public_key("ecies-p256", &kp.private_key).unwrap(), kp.public_key);
        let sig = Intl::sign("ecdsa-p256", &kp.private_key, b"hello", None).unwrap();
        assert!(sig.len() <= 72 && sig[0] == 0x30);
        assert!(Intl::verify("ecdsa-p256", &kp.public_key, b"hello", &sig, None).unwrap());
        assert!(!Intl::verify("ecdsa-p256", &kp.public_key, b"hellO", &sig, None).unwrap());
        assert!(!Intl::verify("ecdsa-p256", &kp.public_key, b"hello", b"\x30\x00", None).unwrap());
        assert!(matches!(
            Intl::verify("ecdsa-p256", b"junk", b"hello", &sig, None),
            Err(Error::InvalidKey(_))
        ));
        assert!(matches!(
            Intl::sign("ecdsa-p256", &kp.public_key, b"hello", None),
            Err(Error::InvalidKey(_))
        ));
    }

    /// The key caches never hand one key's parsed form to another: more keys than the caches hold,
    /// two of them differing in the last scalar byte only, signed and verified in interleaved
    /// rounds (hits, misses, evictions). Each signature equals an uncached `SigningKey`'s (RFC 6979
    /// is deterministic), verifies under its own public key and not under any other.
    #[test]
    fn key_caches_never_mix_keys() {
        let mut scalars: Vec<[u8; 32]> = (1..=9u8).map(|i| sha2::Sha256::digest([i]).into()).collect();
        let mut twin = scalars[0];
        twin[31] ^= 1;
        scalars.push(twin);
        let keys: Vec<(Vec<u8>, Vec<u8>, SigningKey)> = scalars
            .iter()
            .map(|d| {
                let sk = SecretKey::from_slice(d).unwrap();
                let pkcs8 = sk.to_pkcs8_der().unwrap().as_bytes().to_vec();
                (pkcs8, spki(&sk.public_key()).unwrap(), SigningKey::from(&sk))
            })
            .collect();
        assert!(keys.len() > 8, "more keys than either cache holds");
        for round in 0..3u8 {
            // Forwards, then backwards: keys come back both as hits and after their eviction.
            let order: Vec<usize> = if round % 2 == 0 {
                (0..keys.len()).collect()
            } else {
                (0..keys.len()).rev().collect()
            };
            for &k in &order {
                let (pkcs8, pk, uncached) = &keys[k];
                for repeat in 0..2u8 {
                    let msg = [round, k as u8, repeat];
                    let sig = Intl::sign("ecdsa-p256", pkcs8, &msg, None).unwrap();
                    let expected: DerSignature = uncached.try_sign(&msg).unwrap();
                    assert_eq!(sig, expected.as_bytes(), "key {k}, round {round}");
                    assert!(Intl::verify("ecdsa-p256", pk, &msg, &sig, None).unwrap());
                    let parsed = Signature::from_der(&sig).unwrap();
                    assert!(uncached.verifying_key().verify(&msg, &parsed).is_ok());
                    for (j, (_, other_pk, other)) in keys.iter().enumerate() {
                        if j != k {
                            assert!(!Intl::verify("ecdsa-p256", other_pk, &msg, &sig, None).unwrap());
                            assert!(other.verifying_key().verify(&msg, &parsed).is_err());
                        }
                    }
                }
            }
        }
    }

    /// RFC 6979 A.2.5, P-256 with SHA-256, message "sample".
    #[test]
    fn ecdsa_rfc6979_vector() {
        let sk = SecretKey::from_slice(&hex!(
            "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"
        ))
        .unwrap();
        let der = Intl::sign("ecdsa-p256", sk.to_pkcs8_der().unwrap().as_bytes(), b"sample", None).unwrap();
        let sig = Signature::from_der(&der).unwrap();
        assert_eq!(
            sig.r().to_bytes().as_slice(),
            hex!("efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716")
        );
        assert_eq!(
            sig.s().to_bytes().as_slice(),
            hex!("f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8")
        );
    }
}

/// Interoperability with the `openssl` command line, which must be installed (a missing one fails).
#[cfg(test)]
mod openssl_interop {
    use super::*;
    use joule_crypto_sdk::openssl::{Scratch, require, run};

    #[test]
    fn ecdsa_p256_with_openssl_dgst() {
        require();
        let dir = Scratch::new();
        let msg = dir.write("msg", b"joule interop message");

        // OpenSSL's key and signature, checked by the plugin.
        let pem = dir.path("key.pem");
        run(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &pem,
        ])
        .unwrap();
        let sk = run(&["pkcs8", "-topk8", "-nocrypt", "-in", &pem, "-outform", "DER"]).unwrap();
        let pk = run(&["pkey", "-in", &pem, "-pubout", "-outform", "DER"]).unwrap();
        assert_eq!(Intl::public_key("ecdsa-p256", &sk).unwrap(), pk);
        let sig = run(&["dgst", "-sha256", "-sign", &pem, &msg]).unwrap();
        assert!(Intl::verify("ecdsa-p256", &pk, b"joule interop message", &sig, None).unwrap());

        // The plugin's key and signature, checked by OpenSSL.
        let kp = Intl::generate("ecdsa-p256", &mut Entropy::os()).unwrap();
        let key = dir.write("ours.p8", &kp.private_key);
        assert_eq!(
            run(&["pkey", "-inform", "DER", "-in", &key, "-pubout", "-outform", "DER"]).unwrap(),
            kp.public_key
        );
        let public = dir.write("ours.pub", &kp.public_key);
        let sig = dir.write(
            "ours.sig",
            &Intl::sign("ecdsa-p256", &kp.private_key, b"joule interop message", None).unwrap(),
        );
        let verdict = run(&[
            "dgst",
            "-sha256",
            "-verify",
            &public,
            "-keyform",
            "DER",
            "-signature",
            &sig,
            &msg,
        ])
        .unwrap();
        assert!(String::from_utf8_lossy(&verdict).contains("Verified OK"));
    }
}
