//! Example vendor plugin for Joule: one hash, `acme-blake2s-256` (BLAKE2s with a 256-bit digest,
//! RFC 7693), shipped as a WebAssembly component targeting `joule:crypto/plugin@0.1.1`.
//!
//! The algorithm is a plain function so that `cargo test` checks it natively; the component glue
//! below is compiled only for `wasm32`.

use blake2::{Blake2s256, Digest};

/// The identifier the node routes `hash` calls on.
pub const ALGORITHM: &str = "acme-blake2s-256";

/// BLAKE2s-256 of `data`.
pub fn acme_hash(data: &[u8]) -> Vec<u8> {
    Blake2s256::digest(data).to_vec()
}

#[cfg(target_arch = "wasm32")]
mod component {
    // Bindings for the world in the WIT package (a vendor keeps a copy of Joule's crypto.wit).
    wit_bindgen::generate!({ path: "../../wit/crypto", world: "plugin" });

    use exports::joule::crypto::{cipher, hash, key_agreement, keys, provider, public_key_encryption, signature};
    use joule::crypto::types::{AlgorithmInfo, AlgorithmKind, CryptoError};

    struct AcmePlugin;

    fn unsupported(alg: String) -> CryptoError {
        CryptoError::UnsupportedAlgorithm(alg)
    }

    impl provider::Guest for AcmePlugin {
        fn algorithms() -> Vec<AlgorithmInfo> {
            vec![AlgorithmInfo {
                id: super::ALGORITHM.into(),
                kind: AlgorithmKind::Hash,
                oid: "1.3.6.1.4.1.1722.12.2.2.8".into(), // id-blake2s256 (RFC 7693)
                key_size: 0,
                public_key_size: 0,
                output_size: 32,
                nonce_size: 0,
                block_size: 64,
                standard: "RFC 7693".into(),
            }]
        }
    }

    impl hash::Guest for AcmePlugin {
        fn digest(alg: String, data: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
            if alg == super::ALGORITHM {
                Ok(super::acme_hash(&data))
            } else {
                Err(unsupported(alg))
            }
        }
    }

    // The world requires every interface; kinds this plugin does not provide answer
    // `unsupported-algorithm`.
    impl keys::Guest for AcmePlugin {
        fn generate(alg: String) -> Result<keys::KeyPair, CryptoError> {
            Err(unsupported(alg))
        }
        fn public_key(alg: String, _: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
            Err(unsupported(alg))
        }
    }

    impl signature::Guest for AcmePlugin {
        fn sign(alg: String, _: Vec<u8>, _: Vec<u8>, _: signature::SignOptions) -> Result<Vec<u8>, CryptoError> {
            Err(unsupported(alg))
        }
        fn verify(
            alg: String,
            _: Vec<u8>,
            _: Vec<u8>,
            _: Vec<u8>,
            _: signature::SignOptions,
        ) -> Result<bool, CryptoError> {
            Err(unsupported(alg))
        }
    }

    impl public_key_encryption::Guest for AcmePlugin {
        fn encrypt(alg: String, _: Vec<u8>, _: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
            Err(unsupported(alg))
        }
        fn decrypt(alg: String, _: Vec<u8>, _: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
            Err(unsupported(alg))
        }
    }

    impl cipher::Guest for AcmePlugin {
        fn encrypt(alg: String, _: Vec<u8>, _: Vec<u8>, _: Vec<u8>, _: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
            Err(unsupported(alg))
        }
        fn decrypt(alg: String, _: Vec<u8>, _: Vec<u8>, _: Vec<u8>, _: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
            Err(unsupported(alg))
        }
    }

    // Key agreement (since 0.1.1): a plugin that serves none lists no algorithms.
    impl key_agreement::Guest for AcmePlugin {
        fn algorithms() -> Vec<String> {
            Vec::new()
        }
        fn public_key(alg: String, _: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
            Err(unsupported(alg))
        }
        fn agree(alg: String, _: Vec<u8>, _: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
            Err(unsupported(alg))
        }
    }

    export!(AcmePlugin);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc7693_appendix_b() {
        assert_eq!(
            hex(&acme_hash(b"abc")),
            "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"
        );
    }

    /// The known answers the node checks before activation must hold.
    #[test]
    fn manifest_known_answers() {
        let manifest = include_str!("../plugin.toml");
        let mut input = None;
        let mut checked = 0;
        for line in manifest.lines() {
            let value = || line.split('"').nth(1).unwrap().to_string();
            if line.starts_with("input") {
                input = Some(value());
            } else if line.starts_with("output") {
                let input = input.take().unwrap();
                let bytes: Vec<u8> = (0..input.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&input[i..i + 2], 16).unwrap())
                    .collect();
                assert_eq!(hex(&acme_hash(&bytes)), value());
                checked += 1;
            }
        }
        assert_eq!(checked, 2);
    }
}
