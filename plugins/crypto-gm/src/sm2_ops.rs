//! SM2 signatures (GB/T 32918.2) and encryption (GB/T 32918.4, GM/T 0009 DER), on PKCS#8 / SPKI
//! keys as OpenSSL 3 writes them (id-ecPublicKey with curve OID 1.2.156.10197.1.301).

use joule_crypto_sdk::key_cache::SharedCache;
use joule_crypto_sdk::{Entropy, Error, KeyPair, Result};
use sm2::dsa::Signature;
use sm2::elliptic_curve::Curve;
use sm2::elliptic_curve::ff::PrimeField;
use sm2::elliptic_curve::group::Group;
use sm2::elliptic_curve::ops::{LinearCombination, MulByGeneratorVartime, Reduce};
use sm2::elliptic_curve::point::{AffineCoordinates, BatchNormalize};
use sm2::elliptic_curve::sec1::ToSec1Point;
use sm2::elliptic_curve::zeroize::Zeroize;
use sm2::pkcs8::der::Decode;
use sm2::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sm2::pke::{Cipher, DecryptingKey, EncryptingKey, Mode};
use sm2::{AffinePoint, FieldBytes, NonZeroScalar, ProjectivePoint, PublicKey, Scalar, SecretKey, Sm2, U256};
use sm3::{Digest, Sm3};

/// Largest DER `SEQUENCE { r INTEGER, s INTEGER }` for 256-bit r and s.
pub const MAX_SIGNATURE_SIZE: u32 = 72;

/// Largest growth of a GM/T 0009 ciphertext over its plaintext: x and y INTEGERs (35 + 35),
/// the SM3 OCTET STRING (34), the C2 OCTET STRING header (up to 6) and the SEQUENCE header
/// (up to 6) for plaintexts below 4 GiB.
pub const MAX_CIPHERTEXT_EXPANSION: u32 = 35 + 35 + 34 + 6 + 6;

/// Distinguishing identifier used when the caller gives none (GB/T 35276-2017, OpenSSL's default).
pub const DEFAULT_USER_ID: &[u8] = b"1234567812345678";

/// n - 1: a private key must lie in [1, n-2] so that 1 + d is invertible (GB/T 32918.1 §6.1).
const ORDER_MINUS_ONE: [u8; 32] = hex32("fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54122");

/// Curve parameters hashed into Z (GB/T 32918.5 recommended curve).
const CURVE_A: [u8; 32] = hex32("fffffffeffffffffffffffffffffffffffffffff00000000fffffffffffffffc");
const CURVE_B: [u8; 32] = hex32("28e9fa9e9d9f5e344d5a9e4bcf6509a7f39789f515ab8f92ddbcbd414d940e93");
const GENERATOR_X: [u8; 32] = hex32("32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7");
const GENERATOR_Y: [u8; 32] = hex32("bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0");

const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("bad hex"),
        }
    }
    let s = s.as_bytes();
    assert!(s.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(s[2 * i]) << 4 | nibble(s[2 * i + 1]);
        i += 1;
    }
    out
}

fn secret_key(private_key: &[u8]) -> Result<SecretKey> {
    let sk = SecretKey::from_pkcs8_der(private_key)
        .map_err(|e| Error::key(format!("not an SM2 PKCS#8 private key: {e}")))?;
    if sk.to_bytes().as_slice() == ORDER_MINUS_ONE {
        return Err(Error::key("SM2 private key n-1 is not allowed"));
    }
    Ok(sk)
}

fn public_key_from_spki(spki: &[u8]) -> Result<PublicKey> {
    PublicKey::from_public_key_der(spki).map_err(|e| Error::key(format!("not an SM2 SubjectPublicKeyInfo: {e}")))
}

fn spki(pk: &PublicKey) -> Result<Vec<u8>> {
    Ok(pk.to_public_key_der().map_err(Error::key)?.into_vec())
}

pub fn generate(rng: &mut Entropy) -> Result<KeyPair> {
    let sk = loop {
        let candidate: [u8; 32] = rng.bytes()?;
        // Rejection sampling: uniform over [1, n-2].
        if candidate != ORDER_MINUS_ONE
            && let Ok(sk) = SecretKey::from_slice(&candidate)
        {
            break sk;
        }
    };
    let private_key = sk.to_pkcs8_der().map_err(Error::key)?.as_bytes().to_vec();
    Ok(KeyPair {
        private_key,
        public_key: spki(&sk.public_key())?,
    })
}

pub fn public_key(private_key: &[u8]) -> Result<Vec<u8>> {
    spki(&secret_key(private_key)?.public_key())
}

/// Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA) (GB/T 32918.2 §5.5).
fn z_value(pk: &PublicKey, id: &[u8]) -> Result<[u8; 32]> {
    let entl = u16::try_from(id.len() * 8).map_err(|_| Error::input("SM2 user ID longer than 8191 bytes"))?;
    let point = pk.to_sec1_point(false);
    let xy = &point.as_bytes()[1..];
    Ok(Sm3::new()
        .chain_update(entl.to_be_bytes())
        .chain_update(id)
        .chain_update(CURVE_A)
        .chain_update(CURVE_B)
        .chain_update(GENERATOR_X)
        .chain_update(GENERATOR_Y)
        .chain_update(xy)
        .finalize()
        .into())
}

/// e = SM3(Z || M) (GB/T 32918.2 §6.1).
fn message_digest(z: &[u8; 32], message: &[u8]) -> [u8; 32] {
    Sm3::new().chain_update(z).chain_update(message).finalize().into()
}

/// Parsed signing keys, by PKCS#8 bytes and user ID. Each entry is a few hundred bytes.
static SIGNING_KEYS: SharedCache<SignKey, 4> = SharedCache::new();

/// Parsed verifying keys, by SPKI bytes and user ID. An entry grows a 19 KiB table of multiples
/// of its point once the key is used a second time: at most 8 x (19 KiB + key + ID) in all.
static VERIFYING_KEYS: SharedCache<VerifyKey, 8> = SharedCache::new();

/// Everything about a private key that does not depend on the message: the secret scalar d,
/// (1 + d)^-1 and Z (which needs the public point d*G). Secrets are wiped on drop.
struct SignKey {
    d: NonZeroScalar,
    d1_inv: Scalar,
    z: [u8; 32],
}

impl Drop for SignKey {
    fn drop(&mut self) {
        self.d.zeroize();
        self.d1_inv.zeroize();
    }
}

impl SignKey {
    fn new(private_key: &[u8], id: &[u8]) -> Result<Self> {
        let sk = secret_key(private_key)?;
        let d = sk.to_nonzero_scalar();
        let z = z_value(&PublicKey::from_secret_scalar(&d), id)?;
        // d is in [1, n-2], so 1 + d is invertible.
        let d1_inv = Option::<Scalar>::from((*d + Scalar::ONE).invert())
            .ok_or_else(|| Error::key("unusable SM2 private key"))?;
        Ok(Self { d, d1_inv, z })
    }

    /// Deterministic SM2 signature of the digest `e`, k from RFC 6979 over SM3: the same steps
    /// and the same results as the sm2 crate's `SigningKey::sign_prehash`, without recomputing
    /// (1 + d)^-1 on every call.
    #[allow(non_snake_case)]
    fn sign_prehash(&self, prehash: &[u8; 32]) -> Result<Signature> {
        let failed = || Error::key("SM2 signing failed for this key");
        let e = <Scalar as Reduce<U256>>::reduce(&U256::from_be_slice(prehash));
        let mut kgen = rfc6979::KGenerator::<Sm3, U256>::new(&self.d.to_repr(), &e.to_repr(), &[], &Sm2::ORDER);
        let mut k_bytes = FieldBytes::default();
        kgen.fill_next_k(&mut k_bytes);
        let k = Scalar::from_repr(k_bytes).into_option();
        k_bytes.as_mut_slice().zeroize();
        let mut k = k.ok_or_else(failed)?;
        // [k]G in constant time, through the crate's precomputed base-point table.
        let R = ProjectivePoint::mul_by_generator(&k).to_affine();
        let r = e + <Scalar as Reduce<FieldBytes>>::reduce(&R.x());
        if bool::from(r.is_zero() | (r + k).is_zero()) {
            k.zeroize();
            return Err(failed());
        }
        let s = self.d1_inv * (k - r * *self.d);
        k.zeroize();
        Signature::from_scalars(r, s).map_err(|_| failed())
    }
}

/// Deterministic SM2 signature (k from RFC 6979 over SM3), DER `SEQUENCE { r, s }`.
pub fn sign(private_key: &[u8], message: &[u8], user_id: Option<&[u8]>) -> Result<Vec<u8>> {
    let id = user_id.unwrap_or(DEFAULT_USER_ID);
    let mut cache = SIGNING_KEYS.lock();
    let mut uncached = None;
    let key = cache.get_or_insert_with(private_key, id, &mut uncached, || SignKey::new(private_key, id))?;
    let e = message_digest(&key.z, message);
    Ok(key.sign_prehash(&e)?.to_der().to_vec())
}

/// A public key with its Z value and, once it has been used twice, a table of its multiples.
struct VerifyKey {
    point: ProjectivePoint,
    z: [u8; 32],
    uses: u32,
    table: Option<PointTable>,
}

impl VerifyKey {
    fn new(public_key: &[u8], id: &[u8]) -> Result<Self> {
        let pk = public_key_from_spki(public_key)?;
        let z = z_value(&pk, id)?;
        Ok(Self {
            point: pk.to_projective(),
            z,
            uses: 0,
            table: None,
        })
    }

    /// [s]G + [t]P in variable time (every input is public).
    fn mul_add(&mut self, s: &Scalar, t: &Scalar) -> ProjectivePoint {
        self.uses = self.uses.saturating_add(1);
        if self.table.is_none() && self.uses >= 2 {
            self.table = Some(PointTable::new(&self.point));
        }
        match &self.table {
            // Base-point table for G, this key's table for P: no doublings at all.
            Some(table) => ProjectivePoint::mul_by_generator_vartime(s) + table.mul_vartime(t),
            // A key seen once: interleaved wNAF, whose doublings G and P share.
            None => ProjectivePoint::lincomb_vartime(&[(ProjectivePoint::GENERATOR, *s), (self.point, *t)]),
        }
    }

    /// The sm2 crate's `VerifyingKey::verify_prehash` (GB/T 32918.2 §7.1 B1-B7) with a faster
    /// [s]G + [t]P. The signature parser has already checked r, s in [1, n-1].
    fn verify_prehash(&mut self, prehash: &[u8; 32], signature: &Signature) -> bool {
        let (r, s) = (signature.r(), signature.s());
        let e = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*prehash));
        let t = *r + *s;
        if bool::from(t.is_zero()) {
            return false;
        }
        let point = self.mul_add(&s, &t);
        if bool::from(point.is_identity()) {
            return false;
        }
        *r == e + <Scalar as Reduce<FieldBytes>>::reduce(&point.to_affine().x())
    }
}

/// Multiples of a fixed point P for signed radix-16 scalar digits, laid out like the crate's
/// base-point table: row i holds 1..8 times 256^i P, in affine form for mixed additions.
struct PointTable(Vec<[AffinePoint; 8]>);

impl PointTable {
    const ROWS: usize = 33;

    fn new(p: &ProjectivePoint) -> Self {
        let mut points = Vec::with_capacity(Self::ROWS * 8);
        let mut base = *p;
        for _ in 0..Self::ROWS {
            let mut multiple = base;
            for _ in 0..8 {
                points.push(multiple);
                multiple += base;
            }
            for _ in 0..8 {
                base = base.double();
            }
        }
        let affine = <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(&points);
        Self(
            affine
                .chunks_exact(8)
                .map(|row| core::array::from_fn(|j| row[j]))
                .collect(),
        )
    }

    /// [k]P in variable time: 65 signed digits in [-8, 8], even ones summed directly, odd ones
    /// summed and multiplied by 16 at the end.
    fn mul_vartime(&self, k: &Scalar) -> ProjectivePoint {
        let digits = radix16(k);
        let mut even = ProjectivePoint::IDENTITY;
        let mut odd = ProjectivePoint::IDENTITY;
        let add = |acc: &mut ProjectivePoint, row: &[AffinePoint; 8], d: i8| match d {
            0 => {}
            1..=8 => *acc += &row[d as usize - 1],
            _ => *acc -= &row[d.unsigned_abs() as usize - 1],
        };
        for (i, row) in self.0.iter().enumerate() {
            add(&mut even, row, digits[2 * i]);
            if 2 * i + 1 < digits.len() {
                add(&mut odd, row, digits[2 * i + 1]);
            }
        }
        for _ in 0..4 {
            odd = odd.double();
        }
        even + odd
    }
}

/// k = sum d_i 16^i with every d_i in [-8, 8) (the last one in [0, 1]), as primeorder's
/// `Radix16Decomposition` computes it.
fn radix16(k: &Scalar) -> [i8; 65] {
    let bytes = k.to_repr();
    let mut d = [0i8; 65];
    for i in 0..32 {
        let b = bytes[31 - i];
        d[2 * i] = (b & 0xf) as i8;
        d[2 * i + 1] = (b >> 4) as i8;
    }
    for i in 0..64 {
        let carry = (d[i] + 8) >> 4;
        d[i] -= carry << 4;
        d[i + 1] += carry;
    }
    d
}

pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8], user_id: Option<&[u8]>) -> Result<bool> {
    let id = user_id.unwrap_or(DEFAULT_USER_ID);
    let mut cache = VERIFYING_KEYS.lock();
    let mut uncached = None;
    let key = cache.get_or_insert_with(public_key, id, &mut uncached, || VerifyKey::new(public_key, id))?;
    let e = message_digest(&key.z, message);
    let Ok(signature) = Signature::from_der(signature) else {
        return Ok(false);
    };
    Ok(key.verify_prehash(&e, &signature))
}

/// SM2 encryption, C1C3C2, DER-encoded as GM/T 0009 `SM2Cipher` (what `openssl pkeyutl -encrypt` emits).
pub fn encrypt(public_key: &[u8], plaintext: &[u8], rng: &mut Entropy) -> Result<Vec<u8>> {
    let pk = public_key_from_spki(public_key)?;
    if plaintext.is_empty() {
        return Err(Error::input("SM2 encryption needs a non-empty plaintext"));
    }
    EncryptingKey::new_with_mode(pk, Mode::C1C3C2)
        .encrypt_der(rng, plaintext)
        .map_err(|_| {
            if rng.failed() {
                Error::EntropyUnavailable
            } else {
                Error::input("SM2 encryption failed")
            }
        })
}

pub fn decrypt(private_key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
    let sk = secret_key(private_key)?;
    let cipher = Cipher::<sm2::Sm2, Sm3>::from_der(ciphertext)
        .map_err(|e| Error::input(format!("not a GM/T 0009 SM2 ciphertext: {e}")))?;
    DecryptingKey::new_with_mode(sk.to_nonzero_scalar(), Mode::C1C3C2)
        .decrypt_cipher(&cipher)
        .map_err(|_| Error::DecryptionFailed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;
    use sm2::dsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
    use sm2::dsa::signature::{Signer, Verifier};
    use sm2::dsa::{SigningKey, VerifyingKey};

    /// GB/T 32918.5 / draft-shen-sm2-ecdsa example key is on a different curve; this one is a fixed
    /// key on the recommended curve.
    fn fixed_key() -> Vec<u8> {
        SecretKey::from_slice(&hex!(
            "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8"
        ))
        .unwrap()
        .to_pkcs8_der()
        .unwrap()
        .as_bytes()
        .to_vec()
    }

    #[test]
    fn curve_constants_match_the_crate() {
        use sm2::elliptic_curve::Curve;
        let mut n1 = sm2::Sm2::ORDER.get().to_be_bytes().to_vec();
        n1[31] -= 1;
        assert_eq!(n1.as_slice(), ORDER_MINUS_ONE);
        let g = sm2::ProjectivePoint::GENERATOR;
        let g = PublicKey::from_affine(g.into()).unwrap().to_sec1_point(false);
        assert_eq!(&g.as_bytes()[1..33], GENERATOR_X);
        assert_eq!(&g.as_bytes()[33..], GENERATOR_Y);
    }

    #[test]
    fn z_value_agrees_with_the_crate() {
        // Sign through our Z; verify through the crate's own Z (UTF-8 IDs only there).
        let key = fixed_key();
        let sk = SecretKey::from_pkcs8_der(&key).unwrap();
        for (id, crate_id) in [
            (None, "1234567812345678"),
            (Some(&b"ALICE123@YAHOO.COM"[..]), "ALICE123@YAHOO.COM"),
        ] {
            let der = sign(&key, b"message digest", id).unwrap();
            let vk = VerifyingKey::new(crate_id, sk.public_key()).unwrap();
            vk.verify(b"message digest", &Signature::from_der(&der).unwrap())
                .unwrap();
            // And the other way round.
            let theirs: Signature = SigningKey::new(crate_id, &sk).unwrap().sign(b"other");
            let spki = public_key(&key).unwrap();
            assert!(verify(&spki, b"other", &theirs.to_der().to_vec(), id).unwrap());
        }
    }

    /// Vectors made with OpenSSL (`pkeyutl -sign -digest sm3 -pkeyopt distid:...` and
    /// `pkeyutl -encrypt`), as published in RustCrypto's sm2 test suite.
    #[test]
    fn openssl_made_vectors() {
        let pk = PublicKey::from_sec1_bytes(&hex!(
            "0408D77AE04C01CC4C1104360DD8AF6B6F7DF334283D7C1A6AFD5652407B87BEE5014E2A57C36C150D16324DC664E31E6432359609C4E79847A5B161C8C7364C8A"
        ))
        .unwrap();
        let sig = Signature::from_scalars(
            hex!("d1dcccedd9fb785e0f67c16b7c52901625c0b69de9bca2144acc7be713cad2fc"),
            hex!("f7d1eae6e3a157b36c65f672f738ca8b46298bf149a6510072c431b49cd88b1c"),
        )
        .unwrap()
        .to_der()
        .to_vec();
        let spki = spki(&pk).unwrap();
        assert!(verify(&spki, b"testing", &sig, Some(b"example@rustcrypto.org")).unwrap());
        assert!(!verify(&spki, b"testing", &sig, None).unwrap());

        let sk = SecretKey::from_slice(&hex!(
            "3DDD2A3679BF6F1DFC3B49D3E99114718E48EC170EB4E4D3A82052DAB19E8B50"
        ))
        .unwrap();
        let ct = hex!(
            "307202206ba17ad462a75beeb2caf8a1282687ab7e2f248b776a481612d89425a519ce6002210083e1de8c57dae995137227839d3880eaf9fe82a885a750be29ebe58193c8e31a0420d513a555087c2b17a88dd62749435133d325a4afca675284c85d754ba35670f80409bd3a294a6d50184b37"
        );
        assert_eq!(
            decrypt(sk.to_pkcs8_der().unwrap().as_bytes(), &ct).unwrap(),
            b"plaintext"
        );
    }

    #[test]
    fn sign_verify_round_trip() {
        let kp = generate(&mut Entropy::os()).unwrap();
        assert_eq!(public_key(&kp.private_key).unwrap(), kp.public_key);
        let sig = sign(&kp.private_key, b"hello", None).unwrap();
        assert!(sig.len() <= MAX_SIGNATURE_SIZE as usize && sig[0] == 0x30);
        assert!(verify(&kp.public_key, b"hello", &sig, None).unwrap());
        assert!(verify(&kp.public_key, b"hello", &sig, Some(DEFAULT_USER_ID)).unwrap());
        // Wrong message, wrong ID, garbage and truncated signatures: false, not an error.
        assert!(!verify(&kp.public_key, b"hellO", &sig, None).unwrap());
        assert!(!verify(&kp.public_key, b"hello", &sig, Some(b"bob")).unwrap());
        assert!(!verify(&kp.public_key, b"hello", b"junk", None).unwrap());
        assert!(!verify(&kp.public_key, b"hello", &sig[..sig.len() - 1], None).unwrap());
        // Non-UTF-8 user IDs work.
        let sig = sign(&kp.private_key, b"x", Some(&[0xff, 0x00, 0x80])).unwrap();
        assert!(verify(&kp.public_key, b"x", &sig, Some(&[0xff, 0x00, 0x80])).unwrap());
    }

    /// The crate's own signer and verifier, uncached, for comparison.
    fn crate_sign(private_key: &[u8], message: &[u8], id: &[u8]) -> Vec<u8> {
        let sk = SecretKey::from_pkcs8_der(private_key).unwrap();
        let e = message_digest(&z_value(&sk.public_key(), id).unwrap(), message);
        let sig: Signature = SigningKey::new("", &sk).unwrap().sign_prehash(&e).unwrap();
        sig.to_der().to_vec()
    }

    fn crate_verify(public_key: &[u8], message: &[u8], signature: &[u8], id: &[u8]) -> bool {
        let pk = PublicKey::from_public_key_der(public_key).unwrap();
        let e = message_digest(&z_value(&pk, id).unwrap(), message);
        let Ok(sig) = Signature::from_der(signature) else {
            return false;
        };
        VerifyingKey::new("", pk).unwrap().verify_prehash(&e, &sig).is_ok()
    }

    #[test]
    fn cached_keys_match_the_crate_across_keys_and_ids() {
        // More keys x IDs than either cache holds, interleaved, several rounds: hits, misses and
        // evictions, and verifying keys both before and after their point table exists.
        let keys: Vec<KeyPair> = (0..5).map(|_| generate(&mut Entropy::os()).unwrap()).collect();
        let ids: [Option<&[u8]>; 3] = [None, Some(b"alice@example.com"), Some(&[0xff, 0x00])];
        for round in 0..4u8 {
            for (k, kp) in keys.iter().enumerate() {
                for (i, id) in ids.iter().enumerate() {
                    let msg = [round, k as u8, i as u8];
                    let effective = id.unwrap_or(DEFAULT_USER_ID);
                    let sig = sign(&kp.private_key, &msg, *id).unwrap();
                    assert_eq!(sig, crate_sign(&kp.private_key, &msg, effective));
                    assert!(verify(&kp.public_key, &msg, &sig, *id).unwrap());
                    // Another ID, another key, another message, a tampered signature: all false,
                    // and the crate agrees.
                    let other_id = ids[(i + 1) % ids.len()];
                    assert!(!verify(&kp.public_key, &msg, &sig, other_id).unwrap());
                    let other_key = &keys[(k + 1) % keys.len()].public_key;
                    assert!(!verify(other_key, &msg, &sig, *id).unwrap());
                    assert!(!verify(&kp.public_key, b"other", &sig, *id).unwrap());
                    let mut bad = sig.clone();
                    let last = bad.len() - 1;
                    bad[last] ^= 1;
                    assert_eq!(
                        verify(&kp.public_key, &msg, &bad, *id).unwrap(),
                        crate_verify(&kp.public_key, &msg, &bad, effective)
                    );
                    assert!(!verify(&kp.public_key, &msg, &bad, *id).unwrap());
                }
            }
        }
        // Same key, many messages: the tabled path agrees with the crate on good and bad input.
        let kp = &keys[0];
        for n in 0..40u32 {
            let msg = n.to_be_bytes();
            let sig = sign(&kp.private_key, &msg, None).unwrap();
            assert!(verify(&kp.public_key, &msg, &sig, None).unwrap());
            let theirs: Signature =
                SigningKey::new("1234567812345678", &SecretKey::from_pkcs8_der(&kp.private_key).unwrap())
                    .unwrap()
                    .sign(&msg);
            assert_eq!(sig, theirs.to_der().to_vec());
            assert!(!verify(&kp.public_key, &(n + 1).to_be_bytes(), &sig, None).unwrap());
        }
    }

    #[test]
    fn point_table_multiplies() {
        use sm2::elliptic_curve::ops::MulVartime;
        let p = ProjectivePoint::mul_by_generator(&Scalar::from_u64(0x1234_5678_9abc));
        let table = PointTable::new(&p);
        let n_minus_1 = -Scalar::ONE;
        for k in [
            Scalar::ZERO,
            Scalar::ONE,
            Scalar::from_u64(8),
            Scalar::from_u64(0x88),
            n_minus_1,
            n_minus_1 - Scalar::from_u64(7),
        ]
        .into_iter()
        .chain((0..20u64).map(|i| Scalar::from_repr(Sm3::digest(i.to_be_bytes())).unwrap()))
        {
            assert_eq!(table.mul_vartime(&k), p.mul_vartime(&k));
        }
        assert!(bool::from(table.mul_vartime(&n_minus_1).add(&p).is_identity()));
    }

    #[test]
    fn bad_keys_are_errors() {
        assert!(matches!(verify(b"junk", b"m", b"s", None), Err(Error::InvalidKey(_))));
        assert!(matches!(sign(b"junk", b"m", None), Err(Error::InvalidKey(_))));
        let kp = generate(&mut Entropy::os()).unwrap();
        // A public key where a private key belongs and vice versa.
        assert!(matches!(sign(&kp.public_key, b"m", None), Err(Error::InvalidKey(_))));
        assert!(matches!(
            encrypt(&kp.private_key, b"m", &mut Entropy::os()),
            Err(Error::InvalidKey(_))
        ));
    }

    #[test]
    fn encrypt_decrypt_round_trip() {
        let kp = generate(&mut Entropy::os()).unwrap();
        for len in [1usize, 31, 32, 33, 1000] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ct = encrypt(&kp.public_key, &msg, &mut Entropy::os()).unwrap();
            assert!(ct.len() - msg.len() <= MAX_CIPHERTEXT_EXPANSION as usize);
            assert_eq!(decrypt(&kp.private_key, &ct).unwrap(), msg);
            // Tampering with C2 (the last byte) fails the C3 check.
            let mut bad = ct.clone();
            *bad.last_mut().unwrap() ^= 1;
            assert_eq!(decrypt(&kp.private_key, &bad), Err(Error::DecryptionFailed));
        }
        let other = generate(&mut Entropy::os()).unwrap();
        let ct = encrypt(&kp.public_key, b"secret", &mut Entropy::os()).unwrap();
        assert_eq!(decrypt(&other.private_key, &ct), Err(Error::DecryptionFailed));
        assert!(matches!(
            decrypt(&kp.private_key, b"\x30\x00"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            encrypt(&kp.public_key, b"", &mut Entropy::os()),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn encryption_without_entropy() {
        fn refuse(_: u32) -> Vec<u8> {
            Vec::new()
        }
        let kp = generate(&mut Entropy::os()).unwrap();
        assert_eq!(
            encrypt(&kp.public_key, b"m", &mut Entropy::new(refuse)),
            Err(Error::EntropyUnavailable)
        );
        assert_eq!(generate(&mut Entropy::new(refuse)), Err(Error::EntropyUnavailable));
    }
}
