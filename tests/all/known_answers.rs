//! Published vectors through the plugins (GB/T 32905, 32907, FIPS 180-4, RFC 8998,
//! GCM spec, RFC 8032, RFC 6979), beyond the self-tests the host runs at load.

use crate::support::crypto;
use joule_crypto::{AlgorithmKind, CryptoError};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

#[test]
fn every_first_party_algorithm_is_active() {
    let c = crypto();
    for (kind, ids) in [
        (AlgorithmKind::Hash, &["sha256", "sha3-256", "sha384", "sha512", "sm3"][..]),
        (AlgorithmKind::Signature, &["ecdsa-p256", "ed25519", "sm2"][..]),
        (AlgorithmKind::PublicKeyEncryption, &["ecies-p256", "sm2"][..]),
        (AlgorithmKind::SymmetricCipher, &["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305", "sm4-cbc", "sm4-ctr", "sm4-ecb", "sm4-gcm"][..]),
        (AlgorithmKind::KeyAgreement, &["ecdh-p256", "ecdh-sm2"][..]),
    ] {
        assert_eq!(c.algorithms(kind), ids, "{kind}");
    }
    let sm3 = c.info(AlgorithmKind::Hash, "sm3").expect("sm3 info");
    assert_eq!((sm3.oid.as_str(), sm3.output_size, sm3.block_size), ("1.2.156.10197.1.401", 32, 64));
}

#[test]
fn hashes_match_gbt_32905_and_fips_180_4() {
    let c = crypto();
    assert_eq!(c.digest("sm3", b"abc").unwrap(), h("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"));
    assert_eq!(c.digest("sm3", &b"abcd".repeat(16)).unwrap(), h("debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"));
    assert_eq!(
        c.digest("sha256", b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").unwrap(),
        h("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    );
    assert_eq!(
        c.digest("sha512", b"").unwrap(),
        h("cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")
    );
    assert_eq!(c.digest("sha3-256", b"").unwrap(), h("a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"));
    // One million 'a' (FIPS 180-4 / GB/T long-message style).
    assert_eq!(c.digest("sha256", &vec![b'a'; 1_000_000]).unwrap(), h("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

#[test]
fn sm4_matches_gbt_32907_and_rfc_8998() {
    let c = crypto();
    let k = h("0123456789abcdeffedcba9876543210");
    let ct = c.encrypt("sm4-ecb", &k, b"", b"", &k).unwrap();
    assert_eq!(&ct[..16], &h("681edf34d206965e86b3e94f536e4246")[..], "GB/T 32907 A.1");
    assert_eq!(c.decrypt("sm4-ecb", &k, b"", b"", &ct).unwrap(), k);
    let gcm = c
        .encrypt(
            "sm4-gcm",
            &k,
            &h("00001234567800000000abcd"),
            &h("feedfacedeadbeeffeedfacedeadbeefabaddad2"),
            &h("aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccddddddddddddddddeeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa"),
        )
        .unwrap();
    assert_eq!(hex::encode(&gcm[gcm.len() - 16..]), "83de3541e4c2b58177e065a9bf7b62ec", "RFC 8998 A.1 tag");
    // A wrong nonce length is a clear error, not garbage output.
    assert!(matches!(c.encrypt("sm4-cbc", &k, &[0u8; 8], b"", b"x"), Err(CryptoError::InvalidInput(_))));
    // Tampering with an AEAD ciphertext is detected.
    let mut bad = gcm.clone();
    bad[3] ^= 0x80;
    assert!(matches!(
        c.decrypt("sm4-gcm", &k, &h("00001234567800000000abcd"), &h("feedfacedeadbeeffeedfacedeadbeefabaddad2"), &bad),
        Err(CryptoError::DecryptionFailed)
    ));
}

#[test]
fn aes_gcm_matches_the_gcm_spec() {
    let c = crypto();
    // GCM spec test case 2 (AES-128, zero key, zero IV, one zero block).
    let out = c.encrypt("aes-128-gcm", &[0u8; 16], &[0u8; 12], b"", &[0u8; 16]).unwrap();
    assert_eq!(hex::encode(out), "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf");
}

#[test]
fn ed25519_signs_as_rfc_8032() {
    let c = crypto();
    // RFC 8032 7.1 TEST 2, private key wrapped in PKCS#8 (RFC 8410).
    let sk = h("302e020100300506032b6570042204204ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
    let sig = c.sign("ed25519", &sk, &h("72"), None).unwrap();
    assert_eq!(
        hex::encode(&sig),
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    );
    let pk = c.public_key("ed25519", &sk).unwrap();
    assert_eq!(hex::encode(&pk), "302a300506032b65700321003d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
    assert!(c.verify("ed25519", &pk, &h("72"), &sig, None).unwrap());
    assert!(!c.verify("ed25519", &pk, &h("73"), &sig, None).unwrap());
}

#[test]
fn ecdsa_p256_signs_as_rfc_6979() {
    let c = crypto();
    // RFC 6979 A.2.5, P-256 with SHA-256, message "sample": deterministic k.
    let sk = h("3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");
    let sig = c.sign("ecdsa-p256", &sk, b"sample", None).unwrap();
    assert_eq!(
        hex::encode(sig),
        "3046022100efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716022100f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"
    );
}

#[test]
fn sm2_user_id_is_part_of_the_signature() {
    let c = crypto();
    let kp = c.generate_key("sm2").unwrap();
    let sig = c.sign("sm2", &kp.private_key, b"meter 7: 42 kWh", Some(b"ALICE123@YAHOO.COM")).unwrap();
    assert!(c.verify("sm2", &kp.public_key, b"meter 7: 42 kWh", &sig, Some(b"ALICE123@YAHOO.COM")).unwrap());
    assert!(!c.verify("sm2", &kp.public_key, b"meter 7: 42 kWh", &sig, None).unwrap(), "a different Z value must not verify");
    let ct = c.pke_encrypt("sm2", &kp.public_key, b"settlement").unwrap();
    assert_eq!(c.pke_decrypt("sm2", &kp.private_key, &ct).unwrap(), b"settlement");
    assert!(matches!(c.sign("sm2", b"not a key", b"x", None), Err(CryptoError::InvalidKey(_))));
}

#[test]
fn unknown_algorithms_are_named() {
    let c = crypto();
    let e = c.digest("md5", b"x").unwrap_err();
    assert!(matches!(e, CryptoError::UnknownAlgorithm { .. }), "{e}");
    assert!(e.to_string().contains("sm3"), "lists what is available: {e}");
}

/// SM3 and SHA-256 take the host's `accel` compression from 512 bytes up and the plugin's
/// own below: both paths, across padding boundaries, agree with the crates natively.
#[test]
fn accelerated_hashes_agree_with_the_crates_on_both_sides_of_the_threshold() {
    use sha2::Digest as _;
    let c = crypto();
    let data: Vec<u8> = (0..70_000u32).map(|i| (i * 13 + 5) as u8).collect();
    for len in [0, 55, 56, 63, 64, 447, 448, 510, 511, 512, 513, 575, 576, 1000, 4151, 4152, 65_536, 70_000] {
        let d = &data[..len];
        assert_eq!(c.digest("sm3", d).unwrap(), sm3::Sm3::digest(d).to_vec(), "sm3 of {len} bytes");
        assert_eq!(c.digest("sha256", d).unwrap(), sha2::Sha256::digest(d).to_vec(), "sha256 of {len} bytes");
    }
}
