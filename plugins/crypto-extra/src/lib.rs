//! crypto-extra: additional algorithms (guide §4.1.1 d) as a Joule crypto plugin.
//!
//! - signature `ed25519` (RFC 8032): raw 64-byte signatures; keys as RFC 8410 PKCS#8 (v1, the
//!   form OpenSSL writes; v2 with the public key is read too) and SPKI
//! - hash `sha3-256` (FIPS 202)
//! - symmetric-cipher `chacha20-poly1305` (RFC 8439: 32-byte key, 12-byte nonce, ciphertext || tag)

use chacha20poly1305::ChaCha20Poly1305;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use joule_crypto_sdk::{AlgorithmInfo, Entropy, Error, KeyPair, Kind, Plugin, Result, aead_decrypt, aead_encrypt};
use sha3::Digest;

pub struct Extra;

impl Plugin for Extra {
    const ALGORITHMS: &'static [AlgorithmInfo] = &[
        AlgorithmInfo {
            id: "ed25519",
            kind: Kind::Signature,
            oid: "1.3.101.112",
            key_size: 32,
            public_key_size: 32,
            output_size: 64,
            nonce_size: 0,
            block_size: 0,
            standard: "RFC 8032",
        },
        AlgorithmInfo::hash("sha3-256", "2.16.840.1.101.3.4.2.8", 32, 136, "FIPS 202"),
        AlgorithmInfo {
            id: "chacha20-poly1305",
            kind: Kind::SymmetricCipher,
            oid: "1.2.840.113549.1.9.16.3.18", // id-alg-AEADChaCha20Poly1305 (RFC 8103)
            key_size: 32,
            public_key_size: 0,
            output_size: 16,
            nonce_size: 12,
            block_size: 0, // a stream cipher
            standard: "RFC 8439",
        },
    ];

    fn digest(alg: &str, data: &[u8]) -> Result<Vec<u8>> {
        match alg {
            "sha3-256" => Ok(sha3::Sha3_256::digest(data).to_vec()),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn generate(alg: &str, rng: &mut Entropy) -> Result<KeyPair> {
        ed25519(alg)?;
        let key = SigningKey::from_bytes(&rng.bytes()?);
        Ok(KeyPair {
            private_key: pkcs8(&key)?,
            public_key: spki(&key.verifying_key())?,
        })
    }

    fn public_key(alg: &str, private_key: &[u8]) -> Result<Vec<u8>> {
        ed25519(alg)?;
        spki(&signing_key(private_key)?.verifying_key())
    }

    fn sign(alg: &str, private_key: &[u8], message: &[u8], _user_id: Option<&[u8]>) -> Result<Vec<u8>> {
        use ed25519_dalek::Signer;
        ed25519(alg)?;
        Ok(signing_key(private_key)?.sign(message).to_bytes().to_vec())
    }

    /// Strict verification: rejects non-canonical encodings and small-order keys or R points, so
    /// every node reaches the same verdict.
    fn verify(alg: &str, public_key: &[u8], message: &[u8], signature: &[u8], _user_id: Option<&[u8]>) -> Result<bool> {
        ed25519(alg)?;
        let key = VerifyingKey::from_public_key_der(public_key)
            .map_err(|e| Error::key(format!("not an Ed25519 SubjectPublicKeyInfo: {e}")))?;
        let Ok(signature) = Signature::from_slice(signature) else {
            return Ok(false);
        };
        Ok(key.verify_strict(message, &signature).is_ok())
    }

    fn cipher_encrypt(alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        match alg {
            "chacha20-poly1305" => aead_encrypt::<ChaCha20Poly1305>(key, nonce, aad, plaintext),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn cipher_decrypt(alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
        match alg {
            "chacha20-poly1305" => aead_decrypt::<ChaCha20Poly1305>(key, nonce, aad, ciphertext),
            _ => Err(Error::unsupported(alg)),
        }
    }
}

joule_crypto_sdk::export_plugin!(crate::Extra, "../../wit/crypto");

fn ed25519(alg: &str) -> Result<()> {
    if alg == "ed25519" {
        Ok(())
    } else {
        Err(Error::unsupported(alg))
    }
}

fn signing_key(private_key: &[u8]) -> Result<SigningKey> {
    SigningKey::from_pkcs8_der(private_key).map_err(|e| Error::key(format!("not an Ed25519 PKCS#8 private key: {e}")))
}

/// PKCS#8 v1 (no embedded public key), as `openssl genpkey -algorithm ed25519` writes it.
fn pkcs8(key: &SigningKey) -> Result<Vec<u8>> {
    let bytes = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    Ok(bytes.to_pkcs8_der().map_err(Error::key)?.as_bytes().to_vec())
}

fn spki(key: &VerifyingKey) -> Result<Vec<u8>> {
    Ok(key.to_public_key_der().map_err(Error::key)?.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    #[test]
    fn manifest_matches() {
        assert_eq!(
            joule_crypto_sdk::check_manifest::<Extra>(include_str!("../plugin.toml")),
            Ok(())
        );
    }

    /// RFC 8032 §7.1 test 1 (empty message).
    #[test]
    fn ed25519_rfc8032_test_1() {
        let key = SigningKey::from_bytes(&hex!(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
        ));
        let sk = pkcs8(&key).unwrap();
        let pk = Extra::public_key("ed25519", &sk).unwrap();
        // RFC 8410 SPKI: 30 2a 30 05 06 03 2b 65 70 03 21 00 || key
        assert_eq!(pk[..12], hex!("302a300506032b6570032100"));
        assert_eq!(
            pk[12..],
            hex!("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let sig = Extra::sign("ed25519", &sk, b"", None).unwrap();
        assert_eq!(
            sig,
            hex!(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            )
        );
        assert!(Extra::verify("ed25519", &pk, b"", &sig, None).unwrap());
        assert!(!Extra::verify("ed25519", &pk, b"x", &sig, None).unwrap());
        assert!(!Extra::verify("ed25519", &pk, b"", &sig[..63], None).unwrap());
        assert!(matches!(
            Extra::verify("ed25519", &sk, b"", &sig, None),
            Err(Error::InvalidKey(_))
        ));
        // RFC 8410 §10.3 private key shape: 30 2e 02 01 00 30 05 06 03 2b 65 70 04 22 04 20 || seed
        assert_eq!(sk[..16], hex!("302e020100300506032b657004220420"));
    }

    #[test]
    fn ed25519_round_trip_and_v2_pkcs8() {
        let kp = Extra::generate("ed25519", &mut Entropy::os()).unwrap();
        let sig = Extra::sign("ed25519", &kp.private_key, b"hello", None).unwrap();
        assert!(Extra::verify("ed25519", &kp.public_key, b"hello", &sig, None).unwrap());
        let v2 = signing_key(&kp.private_key).unwrap().to_pkcs8_der().unwrap();
        assert_eq!(Extra::public_key("ed25519", v2.as_bytes()).unwrap(), kp.public_key);
        assert_eq!(
            Extra::generate("ecdsa-p256", &mut Entropy::os()),
            Err(Error::unsupported("ecdsa-p256"))
        );
    }

    #[test]
    fn sha3_256_fips_202() {
        assert_eq!(
            Extra::digest("sha3-256", b"").unwrap(),
            hex!("a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a")
        );
        assert_eq!(
            Extra::digest("sha3-256", b"abc").unwrap(),
            hex!("3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532")
        );
    }

    /// RFC 8439 §2.8.2.
    #[test]
    fn chacha20_poly1305_rfc8439() {
        let key = hex!("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let nonce = hex!("070000004041424344454647");
        let aad = hex!("50515253c0c1c2c3c4c5c6c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let ct = Extra::cipher_encrypt("chacha20-poly1305", &key, &nonce, &aad, pt).unwrap();
        assert_eq!(ct[..16], hex!("d31a8d34648e60db7b86afbc53ef7ec2"));
        assert_eq!(ct[ct.len() - 16..], hex!("1ae10b594f09e26a7e902ecbd0600691"));
        assert_eq!(
            Extra::cipher_decrypt("chacha20-poly1305", &key, &nonce, &aad, &ct).unwrap(),
            pt
        );
        assert_eq!(
            Extra::cipher_decrypt("chacha20-poly1305", &key, &nonce, &[], &ct),
            Err(Error::DecryptionFailed)
        );
        assert!(matches!(
            Extra::cipher_encrypt("chacha20-poly1305", &key, &[0; 8], &[], pt),
            Err(Error::InvalidInput(_))
        ));
    }
}

/// Interoperability with the `openssl` command line, which must be installed (a missing one fails).
#[cfg(test)]
mod openssl_interop {
    use super::*;
    use joule_crypto_sdk::openssl::{Scratch, require, run};

    #[test]
    fn ed25519_with_openssl() {
        require();
        let dir = Scratch::new();
        let msg = dir.write("msg", b"joule interop message");
        let pem = dir.path("key.pem");
        run(&["genpkey", "-algorithm", "ed25519", "-out", &pem]).unwrap();
        let sk = run(&["pkcs8", "-topk8", "-nocrypt", "-in", &pem, "-outform", "DER"]).unwrap();
        let pk = run(&["pkey", "-in", &pem, "-pubout", "-outform", "DER"]).unwrap();
        assert_eq!(Extra::public_key("ed25519", &sk).unwrap(), pk);
        let sig = run(&["pkeyutl", "-sign", "-rawin", "-inkey", &pem, "-in", &msg]).unwrap();
        assert_eq!(
            Extra::sign("ed25519", &sk, b"joule interop message", None).unwrap(),
            sig
        ); // deterministic

        let kp = Extra::generate("ed25519", &mut Entropy::os()).unwrap();
        let key = dir.write("ours.p8", &kp.private_key);
        assert_eq!(
            run(&["pkey", "-inform", "DER", "-in", &key, "-pubout", "-outform", "DER"]).unwrap(),
            kp.public_key
        );
        let sig = dir.write(
            "ours.sig",
            &Extra::sign("ed25519", &kp.private_key, b"joule interop message", None).unwrap(),
        );
        let public = dir.write("ours.pub", &kp.public_key);
        run(&[
            "pkeyutl", "-verify", "-rawin", "-pubin", "-keyform", "DER", "-inkey", &public, "-in", &msg, "-sigfile",
            &sig,
        ])
        .unwrap();
    }
}
