//! Which vendors' plugins a node accepts.
//!
//! Vendor signatures are checked natively, before any plugin code runs: the root of trust
//! cannot be a plugin it is about to judge. Ed25519 and SM2 (with SM3 and the default
//! user ID) are accepted.

use joule_plugin_manifest::{Manifest, VendorSignature};

/// SM2's default distinguishing identifier (GB/T 35276-2017 §5.2.2), which vendor
/// signatures use.
pub const SM2_DEFAULT_ID: &str = "1234567812345678";

/// A vendor key the node trusts, as SubjectPublicKeyInfo DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub spki_der: Vec<u8>,
}

/// The node's setting for plugin provenance.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// Accept only manifests signed by one of `trusted_keys`.
    pub require_signed: bool,
    pub trusted_keys: Vec<TrustedKey>,
}

/// What the signature check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    Unsigned,
    /// Signed with a valid signature by a key the node does not list.
    SignedUnknown,
    /// Signed by a trusted vendor key.
    Trusted,
}

impl TrustPolicy {
    /// Check a manifest's signature against the policy. A signature that is present but
    /// does not verify is always refused, whatever the policy.
    pub fn check(&self, manifest: &Manifest) -> Result<Provenance, String> {
        let provenance = match &manifest.signature {
            None => Provenance::Unsigned,
            Some(sig) => {
                verify_vendor_signature(sig, &manifest.signing_bytes())?;
                let spki = hex::decode(&sig.public_key).map_err(|_| "signature public key is not hex".to_string())?;
                if self.trusted_keys.iter().any(|k| k.spki_der == spki) { Provenance::Trusted } else { Provenance::SignedUnknown }
            }
        };
        if self.require_signed && provenance != Provenance::Trusted {
            return Err(match provenance {
                Provenance::Unsigned => "the node accepts only plugins signed by a trusted vendor key, and this one is unsigned".into(),
                _ => "signed by a vendor key this node does not trust".into(),
            });
        }
        Ok(provenance)
    }
}

/// Verify a vendor signature over `message`.
pub fn verify_vendor_signature(sig: &VendorSignature, message: &[u8]) -> Result<(), String> {
    let spki = hex::decode(&sig.public_key).map_err(|_| "signature public key is not hex".to_string())?;
    let value = hex::decode(&sig.value).map_err(|_| "signature value is not hex".to_string())?;
    match sig.algorithm.as_str() {
        "ed25519" => {
            use ed25519_dalek::pkcs8::DecodePublicKey;
            let vk = ed25519_dalek::VerifyingKey::from_public_key_der(&spki).map_err(|e| format!("bad Ed25519 vendor key: {e}"))?;
            let s = ed25519_dalek::Signature::from_slice(&value).map_err(|e| format!("bad Ed25519 signature: {e}"))?;
            vk.verify_strict(message, &s).map_err(|_| "vendor signature does not verify".to_string())
        }
        "sm2" => {
            use sm2::dsa::signature::Verifier;
            use sm2::pkcs8::DecodePublicKey;
            let pk = sm2::PublicKey::from_public_key_der(&spki).map_err(|e| format!("bad SM2 vendor key: {e}"))?;
            let vk = sm2::dsa::VerifyingKey::new(SM2_DEFAULT_ID, pk).map_err(|e| format!("bad SM2 vendor key: {e}"))?;
            let s = sm2::dsa::Signature::from_der(&value).map_err(|e| format!("bad SM2 signature: {e}"))?;
            vk.verify(message, &s).map_err(|_| "vendor signature does not verify".to_string())
        }
        other => Err(format!("unsupported vendor signature algorithm {other:?} (ed25519 or sm2)")),
    }
}
