//! The channel's crypto suite (SM3/SM2 for `gm`, SHA-256/P-256 for `intl`).
//!
//! The mock chain of native tests hashes with SHA-256 and accepts the signatures made by
//! [`crate::testing::mock_sign`].

use crate::sys;

/// The suite hash of `data` (32 bytes for both suites).
pub fn hash(data: &[u8]) -> Vec<u8> {
    sys::hash(data)
}

/// Whether `signature` signs `message` under `public_key` (SubjectPublicKeyInfo DER), by
/// the suite's signature algorithm.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    sys::verify(public_key, message, signature)
}
