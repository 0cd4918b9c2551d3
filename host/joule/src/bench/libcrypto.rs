//! The system's OpenSSL libcrypto, opened at run time, for what `openssl speed` cannot
//! measure: verifying under a key seen once (parse the SubjectPublicKeyInfo, set up the
//! verification, verify, free). Nothing links against libcrypto; where it cannot be opened
//! the caller reports n/a.
//!
//! Only the OpenSSL 3 calls below are used, through function pointers declared with the
//! exact C signatures of OpenSSL 3.0's headers (`<openssl/x509.h>`, `<openssl/evp.h>`).

use anyhow::{Context, Result, bail, ensure};
use libloading::Library;
use std::ffi::{c_char, c_int, c_long, c_void};

/// Opaque OpenSSL objects, only ever handled by pointer.
type EvpPkey = c_void;
type EvpPkeyCtx = c_void;
type EvpMdCtx = c_void;
type EvpMd = c_void;

/// `EVP_PKEY *d2i_PUBKEY(EVP_PKEY **a, const unsigned char **pp, long length)`
type D2iPubkey = unsafe extern "C" fn(*mut *mut EvpPkey, *mut *const u8, c_long) -> *mut EvpPkey;
/// `void EVP_PKEY_free(EVP_PKEY *pkey)`
type PkeyFree = unsafe extern "C" fn(*mut EvpPkey);
/// `EVP_MD_CTX *EVP_MD_CTX_new(void)`
type MdCtxNew = unsafe extern "C" fn() -> *mut EvpMdCtx;
/// `void EVP_MD_CTX_free(EVP_MD_CTX *ctx)`
type MdCtxFree = unsafe extern "C" fn(*mut EvpMdCtx);
/// `const EVP_MD *EVP_sha256(void)`, `const EVP_MD *EVP_sm3(void)`
type GetMd = unsafe extern "C" fn() -> *const EvpMd;
/// `int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type, ENGINE *e, EVP_PKEY *pkey)`
type DigestVerifyInit = unsafe extern "C" fn(*mut EvpMdCtx, *mut *mut EvpPkeyCtx, *const EvpMd, *mut c_void, *mut EvpPkey) -> c_int;
/// `int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs, size_t tbslen)`
type DigestVerify = unsafe extern "C" fn(*mut EvpMdCtx, *const u8, usize, *const u8, usize) -> c_int;
/// `int EVP_PKEY_CTX_set1_id(EVP_PKEY_CTX *ctx, const void *id, int len)`
type PkeyCtxSet1Id = unsafe extern "C" fn(*mut EvpPkeyCtx, *const c_void, c_int) -> c_int;
/// `const char *OpenSSL_version(int type)`
type OpensslVersion = unsafe extern "C" fn(c_int) -> *const c_char;

/// How a signature algorithm is verified through `EVP_DigestVerify`.
#[derive(Clone, Copy, Debug)]
pub enum Verify {
    /// SM2 with SM3 and this distinguishing identifier (Z is computed from it).
    Sm2 { id: &'static [u8] },
    /// ECDSA over P-256 with SHA-256, DER signatures.
    EcdsaP256,
    /// Ed25519 (PureEdDSA: no separate digest), raw 64-byte signatures.
    Ed25519,
}

pub struct Libcrypto {
    d2i_pubkey: D2iPubkey,
    pkey_free: PkeyFree,
    md_ctx_new: MdCtxNew,
    md_ctx_free: MdCtxFree,
    sha256: GetMd,
    sm3: GetMd,
    digest_verify_init: DigestVerifyInit,
    digest_verify: DigestVerify,
    set1_id: PkeyCtxSet1Id,
    /// `OpenSSL_version(OPENSSL_VERSION)`, e.g. "OpenSSL 3.0.19 27 Jan 2026".
    pub version: String,
    /// Keeps the function pointers above valid; dropped last.
    _lib: Library,
}

/// Frees what it holds when dropped, whichever way a verification ends.
struct Owned<'a> {
    lib: &'a Libcrypto,
    pkey: *mut EvpPkey,
    ctx: *mut EvpMdCtx,
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        // SAFETY: each pointer is null or was returned by the matching allocator of this
        // library and is freed exactly once, here (both functions accept null).
        unsafe {
            (self.lib.md_ctx_free)(self.ctx);
            (self.lib.pkey_free)(self.pkey);
        }
    }
}

impl Libcrypto {
    /// libcrypto 3 (`libcrypto.so.3`), or why it cannot be used.
    pub fn open() -> Result<Self> {
        // SAFETY: loading libcrypto runs only its own initialisers, which have no
        // preconditions on the loading process.
        let lib = unsafe { Library::new("libcrypto.so.3") }.context("open libcrypto.so.3")?;
        // SAFETY: each symbol is given the type of its C declaration in OpenSSL 3.0 (quoted on
        // the type aliases above), and the pointers are used only while `lib` is alive (it is
        // stored alongside them and never unloaded before them).
        unsafe {
            let version: OpensslVersion = *lib.get(b"OpenSSL_version\0")?;
            let text = version(0); // OPENSSL_VERSION
            let version =
                if text.is_null() { String::from("OpenSSL (unknown version)") } else { std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned() };
            if !version.starts_with("OpenSSL 3.") {
                bail!("libcrypto.so.3 reports {version:?}, not OpenSSL 3");
            }
            Ok(Libcrypto {
                d2i_pubkey: *lib.get(b"d2i_PUBKEY\0")?,
                pkey_free: *lib.get(b"EVP_PKEY_free\0")?,
                md_ctx_new: *lib.get(b"EVP_MD_CTX_new\0")?,
                md_ctx_free: *lib.get(b"EVP_MD_CTX_free\0")?,
                sha256: *lib.get(b"EVP_sha256\0")?,
                sm3: *lib.get(b"EVP_sm3\0")?,
                digest_verify_init: *lib.get(b"EVP_DigestVerifyInit\0")?,
                digest_verify: *lib.get(b"EVP_DigestVerify\0")?,
                set1_id: *lib.get(b"EVP_PKEY_CTX_set1_id\0")?,
                version,
                _lib: lib,
            })
        }
    }

    /// Verify `signature` on `message` under the DER SubjectPublicKeyInfo `spki`, parsing the
    /// key and setting up the verification from nothing, as for a sender seen once.
    /// `Ok(false)` is a signature OpenSSL rejects; `Err` a key or call it could not use.
    pub fn verify_fresh(&self, alg: Verify, spki: &[u8], message: &[u8], signature: &[u8]) -> Result<bool> {
        let len = c_long::try_from(spki.len()).context("key too long")?;
        let mut owned = Owned { lib: self, pkey: std::ptr::null_mut(), ctx: std::ptr::null_mut() };
        // SAFETY: every pointer passed points into a live slice of the stated length or to a
        // local; OpenSSL reads `spki`, `message` and `signature` only during the call; objects
        // it returns are checked for null before use and freed by `owned`.
        unsafe {
            let mut p = spki.as_ptr();
            owned.pkey = (self.d2i_pubkey)(std::ptr::null_mut(), &mut p, len);
            ensure!(!owned.pkey.is_null(), "OpenSSL could not parse the public key");
            owned.ctx = (self.md_ctx_new)();
            ensure!(!owned.ctx.is_null(), "EVP_MD_CTX_new failed");
            let md = match alg {
                Verify::Sm2 { .. } => (self.sm3)(),
                Verify::EcdsaP256 => (self.sha256)(),
                Verify::Ed25519 => std::ptr::null(),
            };
            let mut pctx: *mut EvpPkeyCtx = std::ptr::null_mut();
            ensure!((self.digest_verify_init)(owned.ctx, &mut pctx, md, std::ptr::null_mut(), owned.pkey) == 1, "EVP_DigestVerifyInit failed");
            if let Verify::Sm2 { id } = alg {
                // Before any data: Z is computed from the identifier on the first update.
                let id_len = c_int::try_from(id.len()).context("SM2 identifier too long")?;
                ensure!(!pctx.is_null() && (self.set1_id)(pctx, id.as_ptr().cast(), id_len) > 0, "EVP_PKEY_CTX_set1_id failed");
            }
            match (self.digest_verify)(owned.ctx, signature.as_ptr(), signature.len(), message.as_ptr(), message.len()) {
                1 => Ok(true),
                0 => Ok(false),
                _ => bail!("EVP_DigestVerify failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use pkcs8::EncodePublicKey;

    const MSG: &[u8] = b"transfer 42 kWh from meter 7 to meter 9 at block 1000";

    /// Signatures made by the native crates, as the plugins make them: OpenSSL accepts them
    /// for their message and key, and rejects them otherwise. Passes without checking where
    /// the machine has no libcrypto.so.3 (the benchmark then reports n/a).
    #[test]
    fn verifies_what_the_crates_sign_and_rejects_the_rest() {
        let lib = match Libcrypto::open() {
            Ok(lib) => lib,
            Err(e) => {
                eprintln!("skipped: {e:#}");
                return;
            }
        };

        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        // RFC 8410 SubjectPublicKeyInfo: a fixed 12-byte header, then the key.
        let spki = [&[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00][..], sk.verifying_key().as_bytes()].concat();
        let sig = sk.sign(MSG).to_bytes();
        assert!(lib.verify_fresh(Verify::Ed25519, &spki, MSG, &sig).expect("ed25519"));
        assert!(!lib.verify_fresh(Verify::Ed25519, &spki, b"another message", &sig).expect("ed25519"));

        let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("p256 key");
        let spki = sk.verifying_key().to_public_key_der().expect("spki");
        let sig: p256::ecdsa::Signature = sk.sign(MSG);
        assert!(lib.verify_fresh(Verify::EcdsaP256, spki.as_bytes(), MSG, sig.to_der().as_bytes()).expect("p256"));
        assert!(!lib.verify_fresh(Verify::EcdsaP256, spki.as_bytes(), b"another message", sig.to_der().as_bytes()).expect("p256"));

        let id = joule_crypto::SM2_DEFAULT_ID;
        let sk = sm2::SecretKey::from_slice(&[7; 32]).expect("sm2 key");
        let spki = sk.public_key().to_public_key_der().expect("spki");
        let sig: sm2::dsa::Signature = sm2::dsa::SigningKey::new(id, &sk).expect("signer").sign(MSG);
        let der = sig.to_der();
        assert!(lib.verify_fresh(Verify::Sm2 { id: id.as_bytes() }, spki.as_bytes(), MSG, der.as_bytes()).expect("sm2"));
        // Another distinguishing identifier is another Z: rejected.
        assert!(!lib.verify_fresh(Verify::Sm2 { id: b"alice@example" }, spki.as_bytes(), MSG, der.as_bytes()).expect("sm2"));

        assert!(lib.verify_fresh(Verify::Ed25519, b"not a key", MSG, &[0; 64]).is_err());
    }
}
