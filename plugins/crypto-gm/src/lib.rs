//! crypto-gm: the Chinese commercial cryptography suite (guide §4.1.1 a) as a Joule crypto plugin.
//!
//! - hash `sm3` (GB/T 32905-2016)
//! - signature `sm2`: SM2 with SM3 and the Z value, DER signatures (GB/T 32918.2-2016)
//! - public-key-encryption `sm2`: C1C3C2, DER per GM/T 0009-2012 (GB/T 32918.4-2016)
//! - symmetric-cipher `sm4-ecb`, `sm4-cbc`, `sm4-ctr`, `sm4-gcm` (GB/T 32907-2016; GCM per
//!   RFC 8998, GHASH on the host)
//! - key-agreement `ecdh-sm2` (see [`ecdh`]): ECDH over the SM2 curve on raw keys (32-byte
//!   scalar, 33-byte compressed point), the peer-to-peer wire's Noise DH
//!
//! Keys interoperate with OpenSSL 3: PKCS#8 / SPKI with id-ecPublicKey and the SM2 curve OID.

use joule_crypto_sdk::{AlgorithmInfo, Entropy, Error, KeyPair, Kind, Plugin, Result};

pub mod ecdh;
mod sm2_ops;
mod sm4_modes;

#[cfg(test)]
mod openssl_interop;

pub struct Gm;

const fn sm4(
    id: &'static str,
    oid: &'static str,
    output_size: u32,
    nonce_size: u32,
    standard: &'static str,
) -> AlgorithmInfo {
    AlgorithmInfo {
        id,
        kind: Kind::SymmetricCipher,
        oid,
        key_size: 16,
        public_key_size: 0,
        output_size,
        nonce_size,
        block_size: 16,
        standard,
    }
}

impl Plugin for Gm {
    const ALGORITHMS: &'static [AlgorithmInfo] = &[
        AlgorithmInfo::hash("sm3", "1.2.156.10197.1.401", 32, 64, "GB/T 32905-2016"),
        AlgorithmInfo {
            id: "sm2",
            kind: Kind::Signature,
            oid: "1.2.156.10197.1.501", // SM2-with-SM3
            key_size: 32,
            public_key_size: 65,
            output_size: sm2_ops::MAX_SIGNATURE_SIZE,
            nonce_size: 0,
            block_size: 0,
            standard: "GB/T 32918.2-2016",
        },
        AlgorithmInfo {
            id: "sm2",
            kind: Kind::PublicKeyEncryption,
            oid: "1.2.156.10197.1.301.3", // sm2encrypt
            key_size: 32,
            public_key_size: 65,
            output_size: sm2_ops::MAX_CIPHERTEXT_EXPANSION,
            nonce_size: 0,
            block_size: 0,
            standard: "GB/T 32918.4-2016, GM/T 0009-2012",
        },
        sm4("sm4-ecb", "1.2.156.10197.1.104.1", 0, 0, "GB/T 32907-2016"),
        sm4("sm4-cbc", "1.2.156.10197.1.104.2", 0, 16, "GB/T 32907-2016"),
        sm4("sm4-ctr", "1.2.156.10197.1.104.7", 0, 16, "GB/T 32907-2016"),
        sm4("sm4-gcm", "1.2.156.10197.1.104.8", 16, 12, "GB/T 32907-2016, RFC 8998"),
    ];

    fn digest(alg: &str, data: &[u8]) -> Result<Vec<u8>> {
        match alg {
            "sm3" => Ok(joule_crypto_sdk::accel::sm3(data).to_vec()),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn generate(alg: &str, rng: &mut Entropy) -> Result<KeyPair> {
        match alg {
            "sm2" => sm2_ops::generate(rng),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn public_key(alg: &str, private_key: &[u8]) -> Result<Vec<u8>> {
        match alg {
            "sm2" => sm2_ops::public_key(private_key),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn sign(alg: &str, private_key: &[u8], message: &[u8], user_id: Option<&[u8]>) -> Result<Vec<u8>> {
        match alg {
            "sm2" => sm2_ops::sign(private_key, message, user_id),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn verify(alg: &str, public_key: &[u8], message: &[u8], signature: &[u8], user_id: Option<&[u8]>) -> Result<bool> {
        match alg {
            "sm2" => sm2_ops::verify(public_key, message, signature, user_id),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn pke_encrypt(alg: &str, public_key: &[u8], plaintext: &[u8], rng: &mut Entropy) -> Result<Vec<u8>> {
        match alg {
            "sm2" => sm2_ops::encrypt(public_key, plaintext, rng),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn pke_decrypt(alg: &str, private_key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
        match alg {
            "sm2" => sm2_ops::decrypt(private_key, ciphertext),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn cipher_encrypt(alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        sm4_modes::encrypt(alg, key, nonce, aad, plaintext)
    }

    fn cipher_decrypt(alg: &str, key: &[u8], nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
        sm4_modes::decrypt(alg, key, nonce, aad, ciphertext)
    }

    const KEY_AGREEMENTS: &'static [&'static str] = &[ecdh::ID];

    fn agreement_public_key(alg: &str, private_key: &[u8]) -> Result<Vec<u8>> {
        match alg {
            ecdh::ID => ecdh::public_key(private_key),
            _ => Err(Error::unsupported(alg)),
        }
    }

    fn agree(alg: &str, private_key: &[u8], peer_public_key: &[u8]) -> Result<Vec<u8>> {
        match alg {
            ecdh::ID => ecdh::agree(private_key, peer_public_key),
            _ => Err(Error::unsupported(alg)),
        }
    }
}

joule_crypto_sdk::export_plugin!(crate::Gm, "../../wit/crypto");

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    #[test]
    fn manifest_matches() {
        assert_eq!(
            joule_crypto_sdk::check_manifest::<Gm>(include_str!("../plugin.toml")),
            Ok(())
        );
    }

    #[test]
    fn sm3_gbt_32905_vectors() {
        assert_eq!(
            Gm::digest("sm3", b"abc").unwrap(),
            hex!("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
        );
        assert_eq!(
            Gm::digest("sm3", &b"abcd".repeat(16)).unwrap(),
            hex!("debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")
        );
    }

    #[test]
    fn unknown_ids_are_unsupported() {
        assert_eq!(Gm::digest("sha256", b""), Err(Error::unsupported("sha256")));
        assert_eq!(Gm::generate("sm3", &mut Entropy::os()), Err(Error::unsupported("sm3")));
        assert_eq!(
            Gm::cipher_encrypt("sm4-xts", &[0; 16], &[], &[], b""),
            Err(Error::unsupported("sm4-xts"))
        );
    }

    #[test]
    fn algorithm_list_is_consistent() {
        for a in Gm::ALGORITHMS {
            assert_eq!(a.id, a.id.to_lowercase());
            assert!(!a.standard.is_empty());
        }
        let kinds: Vec<_> = Gm::ALGORITHMS.iter().map(|a| (a.kind, a.id)).collect();
        let mut dedup = kinds.clone();
        dedup.dedup();
        assert_eq!(kinds, dedup);
    }
}
