//! GCM (NIST SP 800-38D) over any 128-bit block cipher, in the WIT `cipher` interface's byte
//! format: 96-bit nonces only, output ciphertext || 16-byte tag.
//!
//! GCM needs two things of its cipher: single-block encryption (the hash subkey H = E_K(0^128)
//! and the tag mask E_K(J0)) and counter mode (GCTR), which [`Gctr`] provides; GHASH is a
//! function of H alone, [`crate::accel::ghash`] by default. AES-GCM runs both halves on the
//! host ([`AesGctr`] over [`crate::accel::aes_gctr`]); SM4-GCM brings its own GCTR.
//!
//! Per message, with J0 = IV || 0^31 || 1:
//! - C = GCTR(inc32(J0), P)
//! - S = GHASH_H(A || 0^v || C || 0^u || [len(A)]_64 || [len(C)]_64) (lengths in bits)
//! - T = E_K(J0) XOR S
//!
//! Copies and calls. Encryption writes C once, into the vector it returns (GCTR's output),
//! appends C's padding and the length block there so that GHASH reads C in place, then puts
//! the tag where the padding was. Decryption hashes the caller's ciphertext in place and
//! compares the tag in constant time before it releases any plaintext. Where every GCTR call
//! crosses to the host (AES), a short message costs one crossing for E_K(J0) and the text
//! together: GCTR from J0 over a zero block followed by the text yields E_K(J0) followed by
//! GCTR(inc32(J0), text) ([`Gctr::ONE_CALL_LIMIT`]), for the price of copying the short text
//! twice; H is kept per AES key ([`AesGctr::new`]). So a short AES-GCM message costs one host
//! call (GHASH stays in the plugin below [`crate::accel`]'s threshold), a long one three: GCTR,
//! E_K(J0), GHASH. (Decrypting a short text that way computes the plaintext together with
//! E_K(J0); it is returned only if the tag matches and wiped otherwise.)

use crate::key_cache::SharedCache;
use crate::{Error, Result};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Block size of the cipher, GHASH's block.
pub const BLOCK: usize = 16;
/// The only nonce size accepted (96 bits: J0 = IV || 0^31 || 1).
pub const NONCE_SIZE: usize = 12;
/// Tag size: full 128-bit tags only.
pub const TAG_SIZE: usize = 16;

/// SP 800-38D §5.2.1.1: len(P) ≤ 2^39 - 256 bits (2^32 - 2 blocks: the 32-bit counter starting
/// at inc32(J0) = 2 never wraps).
const MAX_TEXT: u64 = (1 << 36) - 32;
/// len(A) ≤ 2^64 - 1 bits.
const MAX_AAD: u64 = (1 << 61) - 1;

/// What GCM needs of a block cipher keyed with the message key.
pub trait Gctr {
    /// Texts up to this many bytes get E_K(J0) from the same [`Gctr::gctr`] call as the text
    /// itself (the text is copied behind a zero block, and the output moved down a block).
    /// Worth it where a call has a fixed cost that dwarfs copying the text: a host crossing.
    const ONE_CALL_LIMIT: usize = 0;

    /// GCTR_K(`counter`, `data`) (SP 800-38D §6.5: `data` XORed with E_K(`counter`),
    /// E_K(inc32(`counter`)), ...) as a new vector of `data`'s length, with capacity for at
    /// least `spare` more bytes (so appending the tag does not reallocate).
    fn gctr(&self, counter: &[u8; BLOCK], data: &[u8], spare: usize) -> Vec<u8>;

    /// E_K(`block`).
    fn encrypt_block(&self, block: &[u8; BLOCK]) -> [u8; BLOCK];

    /// The hash subkey H = E_K(0^128).
    fn hash_subkey(&self) -> [u8; BLOCK] {
        self.encrypt_block(&[0; BLOCK])
    }
}

/// GHASH under `h`, continued from `state` over whole blocks (see [`crate::accel::GhashFn`]);
/// an error only for a partial block, which [`Gcm`] never passes.
pub type Ghash = fn(h: &[u8; BLOCK], state: &mut [u8; BLOCK], blocks: &[u8]) -> Result<()>;

/// Hash subkeys of recent AES keys, by key bytes: a Noise transport key is used for many
/// messages, and each H saved is a host call saved. Wiped on eviction.
static HASH_SUBKEYS: SharedCache<Zeroizing<[u8; BLOCK]>, 8> = SharedCache::new();

/// AES (16- or 32-byte key) through [`crate::accel::aes_gctr`]: the host's AES-NI on wasm32.
pub struct AesGctr<'k> {
    key: &'k [u8],
    cache_h: bool,
}

impl<'k> AesGctr<'k> {
    /// A 16-byte key is AES-128, a 32-byte one AES-256; anything else is `invalid-key`. H is
    /// cached for the key (8 most recent keys per instance).
    pub fn new(key: &'k [u8]) -> Result<Self> {
        Self::checked(key, true)
    }

    /// As [`AesGctr::new`] for a key used once (ECIES): H is not cached.
    pub fn one_time(key: &'k [u8]) -> Result<Self> {
        Self::checked(key, false)
    }

    fn checked(key: &'k [u8], cache_h: bool) -> Result<Self> {
        match key.len() {
            16 | 32 => Ok(Self { key, cache_h }),
            _ => Err(Error::key("AES-GCM keys are 16 or 32 bytes")),
        }
    }
}

impl Gctr for AesGctr<'_> {
    /// Copying 1 KiB twice in wasm costs well under one host crossing.
    const ONE_CALL_LIMIT: usize = 1024;

    fn gctr(&self, counter: &[u8; BLOCK], data: &[u8], spare: usize) -> Vec<u8> {
        // The key length was checked in `checked` and `Gcm` never passes more than 2^32 - 1
        // blocks, so `aes_gctr` cannot fail; an empty vector would fail the tag check anyway.
        let mut out = crate::accel::aes_gctr(self.key, counter, data).unwrap_or_default();
        out.reserve_exact(spare);
        out
    }

    fn encrypt_block(&self, block: &[u8; BLOCK]) -> [u8; BLOCK] {
        let out = crate::accel::aes_gctr(self.key, block, &[0; BLOCK]).unwrap_or_default();
        out.try_into().unwrap_or([0; BLOCK])
    }

    fn hash_subkey(&self) -> [u8; BLOCK] {
        if !self.cache_h {
            return self.encrypt_block(&[0; BLOCK]);
        }
        let mut cache = HASH_SUBKEYS.lock();
        let mut uncached = None;
        let h = cache.get_or_insert_with(self.key, b"", &mut uncached, || {
            Ok::<_, core::convert::Infallible>(Zeroizing::new(self.encrypt_block(&[0; BLOCK])))
        });
        match h {
            Ok(h) => **h,
            Err(never) => match never {},
        }
    }
}

/// GCM with a keyed cipher: H computed once, any number of messages.
pub struct Gcm<C: Gctr> {
    cipher: C,
    h: [u8; BLOCK],
    ghash: Ghash,
}

impl<C: Gctr> Gcm<C> {
    /// GCM over `cipher` with [`crate::accel::ghash`].
    pub fn new(cipher: C) -> Self {
        Self::with_ghash(cipher, crate::accel::ghash)
    }

    /// GCM over `cipher` with another GHASH implementation.
    pub fn with_ghash(cipher: C, ghash: Ghash) -> Self {
        let h = cipher.hash_subkey();
        Self { cipher, h, ghash }
    }

    /// Ciphertext || tag. A nonce that is not 12 bytes is `invalid-input`, and so is a
    /// plaintext or associated data beyond GCM's limits.
    pub fn encrypt(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let j0 = j0(nonce)?;
        if !within_limits(aad.len(), plaintext.len()) {
            return Err(Error::input("message or associated data too long"));
        }
        let mut s = self.hash_aad(aad)?;
        // Room behind C for its padding (< 16) and the length block, later for the tag.
        let (mut out, mask) = self.gctr_and_mask(&j0, plaintext, 2 * BLOCK);
        let text_len = out.len();
        out.resize(text_len.next_multiple_of(BLOCK), 0);
        out.extend_from_slice(&length_block(aad.len(), text_len));
        (self.ghash)(&self.h, &mut s, &out)?;
        out.truncate(text_len);
        out.extend_from_slice(&xor(mask, s));
        Ok(out)
    }

    /// The plaintext of ciphertext || tag, released only after the tag has been checked (in
    /// constant time). A wrong key, nonce, associated data or any tampering is
    /// `decryption-failed`, and so is input shorter than a tag; a nonce that is not 12 bytes
    /// is `invalid-input`.
    pub fn decrypt(&self, nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
        let j0 = j0(nonce)?;
        let split = ciphertext.len().checked_sub(TAG_SIZE).ok_or(Error::DecryptionFailed)?;
        let (text, tag) = ciphertext.split_at(split);
        if !within_limits(aad.len(), text.len()) {
            return Err(Error::DecryptionFailed);
        }
        let mut s = self.hash_aad(aad)?;
        let (whole, rest) = text.as_chunks::<BLOCK>();
        (self.ghash)(&self.h, &mut s, whole.as_flattened())?;
        let mut last = [0u8; 2 * BLOCK];
        last[..rest.len()].copy_from_slice(rest);
        let end = if rest.is_empty() { BLOCK } else { 2 * BLOCK };
        last[end - BLOCK..end].copy_from_slice(&length_block(aad.len(), text.len()));
        (self.ghash)(&self.h, &mut s, &last[..end])?;
        if text.len() <= C::ONE_CALL_LIMIT {
            // The plaintext comes with the mask; it stays here unless the tag is right.
            let (mut plaintext, mask) = self.gctr_and_mask(&j0, text, 0);
            if self.tag_matches(mask, s, tag) {
                return Ok(plaintext);
            }
            plaintext.zeroize();
            return Err(Error::DecryptionFailed);
        }
        if !self.tag_matches(self.cipher.encrypt_block(&j0), s, tag) {
            return Err(Error::DecryptionFailed);
        }
        Ok(self.cipher.gctr(&inc32(&j0), text, 0))
    }

    /// GCTR(inc32(J0), `text`) with `spare` capacity, and E_K(J0): from one GCTR call for short
    /// texts (see [`Gctr::ONE_CALL_LIMIT`]), else from two.
    fn gctr_and_mask(&self, j0: &[u8; BLOCK], text: &[u8], spare: usize) -> (Vec<u8>, [u8; BLOCK]) {
        if text.len() > C::ONE_CALL_LIMIT {
            return (self.cipher.gctr(&inc32(j0), text, spare), self.cipher.encrypt_block(j0));
        }
        let mut input = Zeroizing::new(Vec::with_capacity(BLOCK + text.len()));
        input.extend_from_slice(&[0; BLOCK]);
        input.extend_from_slice(text);
        let mut out = self.cipher.gctr(j0, &input, spare);
        let mut mask = [0u8; BLOCK];
        for (m, k) in mask.iter_mut().zip(out.drain(..BLOCK.min(out.len()))) {
            *m = k;
        }
        (out, mask)
    }

    /// GHASH over A and its padding, from zero.
    fn hash_aad(&self, aad: &[u8]) -> Result<[u8; BLOCK]> {
        let mut s = [0u8; BLOCK];
        let (whole, rest) = aad.as_chunks::<BLOCK>();
        (self.ghash)(&self.h, &mut s, whole.as_flattened())?;
        if !rest.is_empty() {
            let mut last = [0u8; BLOCK];
            last[..rest.len()].copy_from_slice(rest);
            (self.ghash)(&self.h, &mut s, &last)?;
        }
        Ok(s)
    }

    /// Whether `tag` is E_K(J0) XOR S, compared in constant time.
    fn tag_matches(&self, mask: [u8; BLOCK], s: [u8; BLOCK], tag: &[u8]) -> bool {
        bool::from(xor(mask, s).as_slice().ct_eq(tag))
    }
}

impl<C: Gctr> Drop for Gcm<C> {
    fn drop(&mut self) {
        self.h.zeroize();
    }
}

fn xor(mut a: [u8; BLOCK], b: [u8; BLOCK]) -> [u8; BLOCK] {
    for (a, b) in a.iter_mut().zip(b) {
        *a ^= b;
    }
    a
}

/// J0 = IV || 0^31 || 1 for a 96-bit IV.
fn j0(nonce: &[u8]) -> Result<[u8; BLOCK]> {
    let iv: &[u8; NONCE_SIZE] = nonce
        .try_into()
        .map_err(|_| Error::input(format!("nonce must be {NONCE_SIZE} bytes")))?;
    let mut j0 = [0u8; BLOCK];
    j0[..NONCE_SIZE].copy_from_slice(iv);
    j0[BLOCK - 1] = 1;
    Ok(j0)
}

/// The block with its last 32 bits incremented modulo 2^32.
fn inc32(block: &[u8; BLOCK]) -> [u8; BLOCK] {
    let mut out = *block;
    let low = u32::from_be_bytes([block[12], block[13], block[14], block[15]]).wrapping_add(1);
    out[12..].copy_from_slice(&low.to_be_bytes());
    out
}

/// [len(A)]_64 || [len(C)]_64, in bits.
fn length_block(aad_len: usize, text_len: usize) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    block[..8].copy_from_slice(&(aad_len as u64).wrapping_mul(8).to_be_bytes());
    block[8..].copy_from_slice(&(text_len as u64).wrapping_mul(8).to_be_bytes());
    block
}

fn within_limits(aad_len: usize, text_len: usize) -> bool {
    aad_len as u64 <= MAX_AAD && text_len as u64 <= MAX_TEXT
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use hex_literal::hex;

    fn seal(key: &[u8], nonce: &[u8], aad: &[u8], pt: &[u8]) -> Result<Vec<u8>> {
        Gcm::new(AesGctr::new(key)?).encrypt(nonce, aad, pt)
    }

    fn open(key: &[u8], nonce: &[u8], aad: &[u8], ct: &[u8]) -> Result<Vec<u8>> {
        Gcm::new(AesGctr::new(key)?).decrypt(nonce, aad, ct)
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn aes_gcm_equals_the_aes_gcm_crate() {
        let key128 = bytes(16, 1);
        let key256 = bytes(32, 2);
        let nonce = bytes(12, 3);
        for aad in [Vec::new(), bytes(1, 4), bytes(16, 5), bytes(20, 6), bytes(100, 7)] {
            for len in [0usize, 1, 15, 16, 17, 63, 64, 65, 1000, 65536] {
                let pt = bytes(len, 8);
                let payload = || Payload { msg: &pt, aad: &aad };
                let want128 = aes_gcm::Aes128Gcm::new_from_slice(&key128)
                    .unwrap()
                    .encrypt(nonce.as_slice().try_into().unwrap(), payload())
                    .unwrap();
                let want256 = aes_gcm::Aes256Gcm::new_from_slice(&key256)
                    .unwrap()
                    .encrypt(nonce.as_slice().try_into().unwrap(), payload())
                    .unwrap();
                let what = format!("length {len}, aad {}", aad.len());
                assert_eq!(seal(&key128, &nonce, &aad, &pt).unwrap(), want128, "AES-128 {what}");
                assert_eq!(seal(&key256, &nonce, &aad, &pt).unwrap(), want256, "AES-256 {what}");
                assert_eq!(open(&key128, &nonce, &aad, &want128).unwrap(), pt, "AES-128 {what}");
                assert_eq!(open(&key256, &nonce, &aad, &want256).unwrap(), pt, "AES-256 {what}");
            }
        }
    }

    /// H is cached per AES key: more keys than the cache holds, two differing in one bit, AES-128
    /// and AES-256 keys sharing a prefix, used in interleaved rounds (hits, misses, evictions),
    /// each message equal to the `aes-gcm` crate's under its own key.
    #[test]
    fn hash_subkey_cache_never_mixes_keys() {
        let mut keys: Vec<Vec<u8>> = (0..10u8).map(|i| bytes(if i % 2 == 0 { 16 } else { 32 }, i)).collect();
        let mut twin = keys[1].clone();
        twin[31] ^= 1;
        keys.push(twin);
        keys.push(keys[1][..16].to_vec());
        let nonce = bytes(12, 99);
        for round in 0..3u8 {
            for (k, key) in keys.iter().enumerate().rev().chain(keys.iter().enumerate()) {
                let pt = [round, k as u8];
                let payload = Payload { msg: &pt, aad: b"" };
                let want = match key.len() {
                    16 => aes_gcm::Aes128Gcm::new_from_slice(key)
                        .unwrap()
                        .encrypt(nonce.as_slice().try_into().unwrap(), payload),
                    _ => aes_gcm::Aes256Gcm::new_from_slice(key)
                        .unwrap()
                        .encrypt(nonce.as_slice().try_into().unwrap(), payload),
                }
                .unwrap();
                assert_eq!(seal(key, &nonce, b"", &pt).unwrap(), want, "key {k}, round {round}");
                assert_eq!(open(key, &nonce, b"", &want).unwrap(), pt);
            }
        }
    }

    /// Test case name, key, IV, A, P, C, T.
    type Case<'a> = (&'a str, &'a [u8], &'a [u8], &'a [u8], &'a [u8], &'a [u8], &'a [u8]);

    /// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)" (the GCM submission to
    /// NIST), test cases 1-4 (AES-128) and 13-16 (AES-256).
    #[test]
    fn mcgrew_viega_test_cases() {
        let k = hex!("feffe9928665731c6d6a8f9467308308");
        let k256 = hex!("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let iv = hex!("cafebabefacedbaddecaf888");
        let p = hex!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
        );
        let a = hex!("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        #[rustfmt::skip]
        let cases: [Case; 8] = [
            ("1", &[0; 16], &[0; 12], &[], &[], &[], &hex!("58e2fccefa7e3061367f1d57a4e7455a")),
            ("2", &[0; 16], &[0; 12], &[], &[0; 16], &hex!("0388dace60b6a392f328c2b971b2fe78"),
                &hex!("ab6e47d42cec13bdf53a67b21257bddf")),
            ("3", &k, &iv, &[], &p,
                &hex!("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
                      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"),
                &hex!("4d5c2af327cd64a62cf35abd2ba6fab4")),
            ("4", &k, &iv, &a, &p[..60],
                &hex!("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
                      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"),
                &hex!("5bc94fbc3221a5db94fae95ae7121a47")),
            ("13", &[0; 32], &[0; 12], &[], &[], &[], &hex!("530f8afbc74536b9a963b4f1c4cb738b")),
            ("14", &[0; 32], &[0; 12], &[], &[0; 16], &hex!("cea7403d4d606b6e074ec5d3baf39d18"),
                &hex!("d0d1c8a799996bf0265b98b5d48ab919")),
            ("15", &k256, &iv, &[], &p,
                &hex!("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"),
                &hex!("b094dac5d93471bdec1a502270e3cc6c")),
            ("16", &k256, &iv, &a, &p[..60],
                &hex!("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"),
                &hex!("76fc6ece0f4e1768cddf8853bb2d551b")),
        ];
        for (name, key, iv, aad, pt, ct, tag) in cases {
            let sealed = seal(key, iv, aad, pt).unwrap();
            assert_eq!(&sealed[..pt.len()], ct, "test case {name}: ciphertext");
            assert_eq!(&sealed[pt.len()..], tag, "test case {name}: tag");
            assert_eq!(open(key, iv, aad, &sealed).unwrap(), pt, "test case {name}: decryption");
        }
    }

    #[test]
    fn tampered_tag_ciphertext_aad_or_nonce_fails_decryption() {
        let key = bytes(32, 9);
        let nonce = bytes(12, 10);
        let aad = b"header";
        for len in [0usize, 1, 16, 33, 1000] {
            let ct = seal(&key, &nonce, aad, &bytes(len, 11)).unwrap();
            for i in [0, len / 2, ct.len() - 1] {
                let mut bad = ct.clone();
                bad[i] ^= 0x80;
                assert_eq!(
                    open(&key, &nonce, aad, &bad),
                    Err(Error::DecryptionFailed),
                    "byte {i} of {len}"
                );
            }
            let mut other_nonce = nonce.clone();
            other_nonce[11] ^= 1;
            assert_eq!(open(&key, &other_nonce, aad, &ct), Err(Error::DecryptionFailed));
            assert_eq!(open(&key, &nonce, b"headex", &ct), Err(Error::DecryptionFailed));
            assert_eq!(open(&bytes(32, 12), &nonce, aad, &ct), Err(Error::DecryptionFailed));
            assert_eq!(
                open(&key, &nonce, aad, &ct[..ct.len() - 1]),
                Err(Error::DecryptionFailed)
            );
        }
        assert_eq!(open(&key, &nonce, aad, &[0; 15]), Err(Error::DecryptionFailed));
        assert_eq!(open(&key, &nonce, aad, &[]), Err(Error::DecryptionFailed));
    }

    #[test]
    fn bad_key_and_nonce_sizes_are_errors() {
        assert!(matches!(AesGctr::new(&[0; 24]), Err(Error::InvalidKey(_))));
        assert!(matches!(AesGctr::new(&[]), Err(Error::InvalidKey(_))));
        for nonce in [&[0u8; 0][..], &[0; 11], &[0; 13], &[0; 16]] {
            assert!(matches!(seal(&[0; 16], nonce, b"", b"x"), Err(Error::InvalidInput(_))));
            assert!(matches!(
                open(&[0; 16], nonce, b"", &[0; 17]),
                Err(Error::InvalidInput(_))
            ));
        }
    }

    #[test]
    fn inc32_wraps_within_the_last_four_bytes() {
        let mut b = [0x77u8; 16];
        b[12..].copy_from_slice(&[0xff; 4]);
        let mut want = b;
        want[12..].copy_from_slice(&[0; 4]);
        assert_eq!(inc32(&b), want);
        assert_eq!(inc32(&[0; 16])[15], 1);
    }
}
