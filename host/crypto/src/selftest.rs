//! Known-answer tests a crypto plugin must pass before it can be activated.
//!
//! For every algorithm a plugin claims the host runs (1) the published vectors it holds
//! for that identifier (GB/T, FIPS, NIST, RFC; a few cross-implementation vectors made
//! with OpenSSL where the standard's own examples use a test curve), (2) the vendor's
//! vectors from the manifest, and (3) property checks: sizes match the metadata, sign →
//! verify and encrypt → decrypt round-trip, and tampering is detected. An identifier the
//! host has no vectors for (a vendor algorithm) must bring its own in the manifest, unless
//! round trips alone can judge it (signatures, public-key encryption).
//!
//! The first failure is returned, naming the algorithm and the case.

use crate::{AlgorithmInfo, AlgorithmKind, CryptoError, CryptoPlugin, PluginCrypto};
use joule_plugin_manifest::{KnownAnswer, Manifest};

/// A published vector.
enum Vector {
    Digest {
        input: &'static str,
        output: &'static str,
    },
    /// As `Digest`, with `input` in hex.
    DigestHex {
        input: &'static str,
        output: &'static str,
    },
    Cipher {
        key: &'static str,
        nonce: &'static str,
        aad: &'static str,
        plaintext: &'static str,
        ciphertext: &'static str,
    },
    Verify {
        public_key: &'static str,
        message: &'static str,
        signature: &'static str,
    },
    PkeDecrypt {
        private_key: &'static str,
        ciphertext: &'static str,
        plaintext: &'static str,
    },
    /// Raw scalar, compressed peer point, shared x-coordinate.
    Agree {
        private_key: &'static str,
        peer_public_key: &'static str,
        shared: &'static str,
    },
}

/// `(kind, id, source, vector)`.
const VECTORS: &[(AlgorithmKind, &str, &str, Vector)] = {
    use AlgorithmKind::*;
    use Vector::*;
    &[
        (Hash, "sm3", "GB/T 32905-2016 A.1", Digest { input: "abc", output: "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0" }),
        (
            Hash,
            "sm3",
            "GB/T 32905-2016 A.2",
            Digest {
                input: "abcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcd",
                output: "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732",
            },
        ),
        (Hash, "sha256", "FIPS 180-4 (abc)", Digest { input: "abc", output: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" }),
        (Hash, "sha256", "FIPS 180-4 (empty)", Digest { input: "", output: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" }),
        (
            Hash,
            "sha384",
            "FIPS 180-4 (abc)",
            Digest { input: "abc", output: "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7" },
        ),
        (
            Hash,
            "sha512",
            "FIPS 180-4 (abc)",
            Digest {
                input: "abc",
                output: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            },
        ),
        (Hash, "sha3-256", "FIPS 202 (abc)", Digest { input: "abc", output: "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532" }),
        (Hash, "sha3-256", "FIPS 202 (empty)", DigestHex { input: "", output: "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a" }),
        // GB/T 32907-2016 A.1: one block; the second block is the PKCS#7 padding (OpenSSL).
        (
            SymmetricCipher,
            "sm4-ecb",
            "GB/T 32907-2016 A.1 (+PKCS#7 block, OpenSSL)",
            Cipher {
                key: "0123456789abcdeffedcba9876543210",
                nonce: "",
                aad: "",
                plaintext: "0123456789abcdeffedcba9876543210",
                ciphertext: "681edf34d206965e86b3e94f536e4246002a8a4efa863ccad024ac0300bb40d2",
            },
        ),
        (
            SymmetricCipher,
            "sm4-cbc",
            "OpenSSL 3 enc -sm4-cbc",
            Cipher {
                key: "0123456789abcdeffedcba9876543210",
                nonce: "000102030405060708090a0b0c0d0e0f",
                aad: "",
                plaintext: "4a6f756c6520534d34206b6e6f776e20616e737765722c203220626c6f636b732b",
                ciphertext: "d7cc22d98aedb2a43ce0b199236906b8c521b5d5146405610b43cc86ce01bf9a85099c4fc28851fc76393253becd95b0",
            },
        ),
        (
            SymmetricCipher,
            "sm4-ctr",
            "OpenSSL 3 enc -sm4-ctr",
            Cipher {
                key: "0123456789abcdeffedcba9876543210",
                nonce: "000102030405060708090a0b0c0d0e0f",
                aad: "",
                plaintext: "4a6f756c6520534d34206b6e6f776e20616e737765722c203220626c6f636b732b",
                ciphertext: "4cf7e90d58863be01ead9cec8edf974a0e697e3c25d1d021e8b17189ee63c66937",
            },
        ),
        (
            SymmetricCipher,
            "sm4-gcm",
            "RFC 8998 A.1",
            Cipher {
                key: "0123456789abcdeffedcba9876543210",
                nonce: "00001234567800000000abcd",
                aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
                plaintext: "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccddddddddddddddddeeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa",
                ciphertext: "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d83de3541e4c2b58177e065a9bf7b62ec",
            },
        ),
        (
            SymmetricCipher,
            "aes-128-gcm",
            "GCM spec (McGrew-Viega) test case 3",
            Cipher {
                key: "feffe9928665731c6d6a8f9467308308",
                nonce: "cafebabefacedbaddecaf888",
                aad: "",
                plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
                ciphertext: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f59854d5c2af327cd64a62cf35abd2ba6fab4",
            },
        ),
        (
            SymmetricCipher,
            "aes-256-gcm",
            "GCM spec (McGrew-Viega) test case 15",
            Cipher {
                key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                nonce: "cafebabefacedbaddecaf888",
                aad: "",
                plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
                ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015adb094dac5d93471bdec1a502270e3cc6c",
            },
        ),
        (
            SymmetricCipher,
            "chacha20-poly1305",
            "RFC 8439 2.8.2",
            Cipher {
                key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
                nonce: "070000004041424344454647",
                aad: "50515253c0c1c2c3c4c5c6c7",
                plaintext: "4c616469657320616e642047656e746c656d656e206f662074686520636c617373206f66202739393a204966204920636f756c64206f6666657220796f75206f6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73637265656e20776f756c642062652069742e",
                ciphertext: "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b61161ae10b594f09e26a7e902ecbd0600691",
            },
        ),
        (
            Signature,
            "ed25519",
            "RFC 8032 7.1 test 1",
            Verify {
                public_key: "302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                message: "",
                signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            },
        ),
        (
            Signature,
            "ed25519",
            "RFC 8032 7.1 test 2",
            Verify {
                public_key: "302a300506032b65700321003d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                message: "72",
                signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            },
        ),
        // SM2 on the recommended curve (GB/T 32918.5); the standard's worked examples use
        // a test curve, so these were made with OpenSSL 3 (default user ID, SM3).
        (
            Signature,
            "sm2",
            "OpenSSL 3 pkeyutl -sign -digest sm3",
            Verify {
                public_key: "3059301306072a8648ce3d020106082a811ccf5501822d03420004847bd52b3c8ec918b8ad214928d962842032127c7cbebea18e0f91bd20ad7d0c7ba985f675afcfdc5b5215fbd9de94405de5714c5db615fb0a5ac646d490371e",
                message: "616263",
                signature: "30440220024825f2ff5233071e5785371b43491d61cd2b437346434d864b2e5f81edc6be0220510ae7d50b527eaaaf6abe8e39da8b0526970720bfe89dcfda4236af9c39fbe2",
            },
        ),
        (
            PublicKeyEncryption,
            "sm2",
            "OpenSSL 3 pkeyutl -encrypt (GM/T 0009 DER, C1C3C2)",
            PkeDecrypt {
                private_key: "308187020100301306072a8648ce3d020106082a811ccf5501822d046d306b0201010420536a9ce91329fae65de7be9cb298c441b9370e42a2a3619968d572c249402f2aa14403420004847bd52b3c8ec918b8ad214928d962842032127c7cbebea18e0f91bd20ad7d0c7ba985f675afcfdc5b5215fbd9de94405de5714c5db615fb0a5ac646d490371e",
                ciphertext: "307c022100c3179e413554df59beeccfb3dc28b855ea5d48add86cdd38089458c2b1e8428b02202ba17fff444d15f7d14b114cd485a1b4c0c4d1829acbb9f167a07606811dea1704201402e3cee85b1ed85acd52a8f45b93e2b456311f4a5805b3cf459b750a3e709a0413fffa3c751872de73c78d904689f650f0497e4e",
                plaintext: "656e6372797074696f6e207374616e64617264",
            },
        ),
        (
            Signature,
            "ecdsa-p256",
            "OpenSSL 3 dgst -sha256 -sign",
            Verify {
                public_key: "3059301306072a8648ce3d020106082a8648ce3d030107034200048d4096fcf7edba537dd0fd303bb4377c69b2f4738164b851c39cbf78f0b5cc992a0a325c9f0b761b64acff45487356c8718d01240472825c2d35c37bd80bb9ae",
                message: "616263",
                signature: "3046022100975bab79e2373c19cdfaa4ac7e5e57ce3c05e92ab61f773d648bfbfdb2295854022100b34b33e07ed1d80ef63b7ffa4544f87309d94840106cb2ae40855af393bffe55",
            },
        ),
        // NIST CAVS 14.1 KAS ECC CDH primitive, P-256, COUNT = 0 (also checked with Python
        // `cryptography`); the peer key compressed.
        (
            KeyAgreement,
            "ecdh-p256",
            "NIST CAVS ECC CDH P-256 #0",
            Agree {
                private_key: "7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534",
                peer_public_key: "02700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287",
                shared: "46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b",
            },
        ),
        // No standard publishes plain ECDH on the SM2 curve: computed with a textbook affine
        // double-and-add in Python over the GB/T 32918.5 parameters (scalar 01..20; the peer
        // is the SM2 key of the OpenSSL vectors above), both ways round.
        (
            KeyAgreement,
            "ecdh-sm2",
            "independent Python computation",
            Agree {
                private_key: "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
                peer_public_key: "02847bd52b3c8ec918b8ad214928d962842032127c7cbebea18e0f91bd20ad7d0c",
                shared: "9008e898139e036e8d6dbef6e2f9aac82e39ff8d4e42ee5d5ec2a231c502be78",
            },
        ),
    ]
};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_default()
}

/// Run every check for every algorithm `plugin` provides. `Err` names the failing case.
pub fn run(plugin: &CryptoPlugin, manifest: &Manifest) -> Result<usize, String> {
    let mut cases = 0usize;
    for info in &plugin.algorithms {
        let qualified = info.qualified();
        let fail = |case: &str, detail: String| format!("{qualified}: {case}: {detail}");
        let mut vectors_run = 0usize;
        for (kind, id, source, v) in VECTORS {
            if *kind != info.kind || *id != info.id {
                continue;
            }
            check_vector(plugin, info, v).map_err(|d| fail(source, d))?;
            vectors_run += 1;
        }
        for (n, k) in manifest.known_answers.iter().filter(|k| k.algorithm == qualified).enumerate() {
            check_vendor_vector(plugin, info, k).map_err(|d| fail(&format!("manifest known-answer #{}", n + 1), d))?;
            vectors_run += 1;
        }
        if vectors_run == 0 && matches!(info.kind, AlgorithmKind::Hash | AlgorithmKind::SymmetricCipher | AlgorithmKind::KeyAgreement) {
            return Err(fail("known answers", "no published vector is known for this identifier and the manifest gives none".into()));
        }
        cases += vectors_run + properties(plugin, info).map_err(|d| fail("properties", d))?;
    }
    Ok(cases)
}

fn eq_hex(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("{what} {} , expected {}", hex::encode(got), hex::encode(want))) }
}

fn err(e: CryptoError) -> String {
    e.to_string()
}

fn check_vector(p: &CryptoPlugin, info: &AlgorithmInfo, v: &Vector) -> Result<(), String> {
    let alg = info.id.as_str();
    match v {
        Vector::Digest { input, output } => eq_hex("digest", &p.digest(alg, input.as_bytes()).map_err(err)?, &h(output)),
        Vector::DigestHex { input, output } => eq_hex("digest", &p.digest(alg, &h(input)).map_err(err)?, &h(output)),
        Vector::Cipher { key, nonce, aad, plaintext, ciphertext } => {
            let ct = p.encrypt(alg, &h(key), &h(nonce), &h(aad), &h(plaintext)).map_err(err)?;
            eq_hex("ciphertext", &ct, &h(ciphertext))?;
            eq_hex("decryption", &p.decrypt(alg, &h(key), &h(nonce), &h(aad), &h(ciphertext)).map_err(err)?, &h(plaintext))
        }
        Vector::Verify { public_key, message, signature } => {
            if !p.verify(alg, &h(public_key), &h(message), &h(signature), None).map_err(err)? {
                return Err("a published signature does not verify".into());
            }
            let mut other = h(message);
            other.push(0);
            if p.verify(alg, &h(public_key), &other, &h(signature), None).map_err(err)? {
                return Err("a signature verifies for a message it does not sign".into());
            }
            Ok(())
        }
        Vector::PkeDecrypt { private_key, ciphertext, plaintext } => {
            eq_hex("decryption", &p.pke_decrypt(alg, &h(private_key), &h(ciphertext)).map_err(err)?, &h(plaintext))
        }
        Vector::Agree { private_key, peer_public_key, shared } => {
            eq_hex("shared secret", &p.agree(alg, &h(private_key), &h(peer_public_key)).map_err(err)?, &h(shared))
        }
    }
}

fn check_vendor_vector(p: &CryptoPlugin, info: &AlgorithmInfo, k: &KnownAnswer) -> Result<(), String> {
    let alg = info.id.as_str();
    match info.kind {
        AlgorithmKind::Hash => eq_hex("digest", &p.digest(alg, &h(&k.input)).map_err(err)?, &h(&k.output)),
        AlgorithmKind::SymmetricCipher => {
            eq_hex("ciphertext", &p.encrypt(alg, &h(&k.key), &h(&k.nonce), &h(&k.aad), &h(&k.input)).map_err(err)?, &h(&k.output))?;
            eq_hex("decryption", &p.decrypt(alg, &h(&k.key), &h(&k.nonce), &h(&k.aad), &h(&k.output)).map_err(err)?, &h(&k.input))
        }
        AlgorithmKind::Signature => match p.verify(alg, &h(&k.key), &h(&k.input), &h(&k.signature), None).map_err(err)? {
            true => Ok(()),
            false => Err("the vendor's signature vector does not verify".into()),
        },
        AlgorithmKind::PublicKeyEncryption => eq_hex("decryption", &p.pke_decrypt(alg, &h(&k.key), &h(&k.input)).map_err(err)?, &h(&k.output)),
        // key: the raw scalar; input: the peer's compressed point; output: the secret.
        AlgorithmKind::KeyAgreement => eq_hex("shared secret", &p.agree(alg, &h(&k.key), &h(&k.input)).map_err(err)?, &h(&k.output)),
    }
}

const PROBE: &[u8] = b"Joule self-test: energy settles on chain.";

/// `len` bytes of a fixed pattern, for a probe key or nonce of exactly the size the
/// plugin's metadata claims, whatever that size is.
fn probe_bytes(len: u32, step: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(step)).collect()
}

/// Largest key or nonce a cipher's metadata may claim (bytes); more is a broken plugin.
const MAX_SYMMETRIC_PARAMETER: u32 = 1024;

/// Size and round-trip checks. Returns how many checks ran.
fn properties(p: &CryptoPlugin, info: &AlgorithmInfo) -> Result<usize, String> {
    let alg = info.id.as_str();
    match info.kind {
        AlgorithmKind::Hash => {
            let d = p.digest(alg, PROBE).map_err(err)?;
            if d.len() != info.output_size as usize {
                return Err(format!("digest is {} bytes, metadata says {}", d.len(), info.output_size));
            }
            if p.digest(alg, PROBE).map_err(err)? != d {
                return Err("digest is not deterministic".into());
            }
            Ok(2)
        }
        AlgorithmKind::Signature => {
            let kp = p.generate(alg).map_err(err)?;
            if p.public_key(alg, &kp.private_key).map_err(err)? != kp.public_key {
                return Err("public-key derivation disagrees with key generation".into());
            }
            let sig = p.sign(alg, &kp.private_key, PROBE, None).map_err(err)?;
            if !p.verify(alg, &kp.public_key, PROBE, &sig, None).map_err(err)? {
                return Err("a fresh signature does not verify".into());
            }
            if p.verify(alg, &kp.public_key, &PROBE[1..], &sig, None).map_err(err)? {
                return Err("a signature verifies for another message".into());
            }
            let other = p.generate(alg).map_err(err)?;
            if p.verify(alg, &other.public_key, PROBE, &sig, None).map_err(err)? {
                return Err("a signature verifies under another key".into());
            }
            Ok(4)
        }
        AlgorithmKind::PublicKeyEncryption => {
            let kp = p.generate(alg).map_err(err)?;
            let ct = p.pke_encrypt(alg, &kp.public_key, PROBE).map_err(err)?;
            if ct.windows(PROBE.len()).any(|w| w == PROBE) {
                return Err("ciphertext contains the plaintext".into());
            }
            if ct.len() <= PROBE.len() {
                return Err(format!("ciphertext of a {}-byte message is {} bytes: it cannot carry the message", PROBE.len(), ct.len()));
            }
            eq_hex("round trip", &p.pke_decrypt(alg, &kp.private_key, &ct).map_err(err)?, PROBE)?;
            let mut bad = ct.clone();
            if let Some(last) = bad.last_mut() {
                *last ^= 1;
            }
            if let Ok(pt) = p.pke_decrypt(alg, &kp.private_key, &bad)
                && pt == PROBE
            {
                return Err("tampered ciphertext decrypts to the original".into());
            }
            Ok(3)
        }
        AlgorithmKind::SymmetricCipher => {
            for (what, size) in [("key-size", info.key_size), ("nonce-size", info.nonce_size)] {
                if size > MAX_SYMMETRIC_PARAMETER {
                    return Err(format!("{what} {size} is over {MAX_SYMMETRIC_PARAMETER} bytes"));
                }
            }
            let (key, nonce) = (probe_bytes(info.key_size, 1), probe_bytes(info.nonce_size, 7));
            let ct = p.encrypt(alg, &key, &nonce, b"", PROBE).map_err(err)?;
            // For ciphers `output-size` is the AEAD tag size: non-zero means authenticated.
            let aead = info.output_size > 0;
            if ct.len() < PROBE.len() + info.output_size as usize {
                return Err(format!(
                    "ciphertext of a {}-byte message is {} bytes, less than the message and its {}-byte tag",
                    PROBE.len(),
                    ct.len(),
                    info.output_size
                ));
            }
            eq_hex("round trip", &p.decrypt(alg, &key, &nonce, b"", &ct).map_err(err)?, PROBE)?;
            if aead {
                let mut bad = ct.clone();
                if let Some(first) = bad.first_mut() {
                    *first ^= 1;
                }
                if !matches!(p.decrypt(alg, &key, &nonce, b"", &bad), Err(CryptoError::DecryptionFailed)) {
                    return Err("tampered AEAD ciphertext was not rejected".into());
                }
            }
            Ok(2 + aead as usize)
        }
        AlgorithmKind::KeyAgreement => {
            let (a, b) = (probe_bytes(32, 3), probe_bytes(32, 5));
            let (pa, pb) = (p.agreement_public_key(alg, &a).map_err(err)?, p.agreement_public_key(alg, &b).map_err(err)?);
            if pa.len() != info.public_key_size as usize {
                return Err(format!("public key is {} bytes, not the {} of a compressed point", pa.len(), info.public_key_size));
            }
            let (ab, ba) = (p.agree(alg, &a, &pb).map_err(err)?, p.agree(alg, &b, &pa).map_err(err)?);
            if ab != ba {
                return Err("the two sides of an agreement disagree".into());
            }
            if ab.len() != info.output_size as usize || ab == p.agree(alg, &a, &pa).map_err(err)? {
                return Err("the shared secret does not depend on the peer's key, or has the wrong size".into());
            }
            // A compressed x-coordinate of all ones lies above the field prime of both curves.
            let mut off_curve = vec![0xffu8; 33];
            off_curve[0] = 2;
            if p.agree(alg, &a, &off_curve).is_ok() {
                return Err("a peer key that is not a point of the curve was accepted".into());
            }
            Ok(4)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::probe_bytes;

    #[test]
    fn probe_keys_have_the_claimed_size_beyond_255_bytes() {
        // A cipher with a 256-byte key once got an empty probe key (`key_size as u8`).
        for len in [0, 16, 32, 255, 256, 300, 1024] {
            assert_eq!(probe_bytes(len, 1).len(), len as usize);
        }
        assert_eq!(probe_bytes(3, 7), [0, 7, 14]);
    }
}
