//! `joule crypto` and the `openssl` CLI read each other's keys, signatures and ciphertexts.

use crate::support::{joule, run, tempdir, tool};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(joule().args(args));
    assert_eq!(code, 0, "joule {args:?} failed: {err}");
    out
}

#[test]
fn sm2_signatures_both_ways() {
    let d = tempdir();
    let p = |n: &str| d.path().join(n);
    std::fs::write(p("msg"), b"grid operator settlement, block 1000").unwrap();
    // joule key and signature, verified by openssl.
    ok(&["crypto", "keygen", "--alg", "sm2", "--out", s(&p("k.pem"))]);
    ok(&["crypto", "pubkey", "--in", s(&p("k.pem")), "--out", s(&p("pub.pem"))]);
    for id in ["1234567812345678", "ALICE123@YAHOO.COM"] {
        ok(&["crypto", "sign", "--alg", "sm2", "--key", s(&p("k.pem")), "--id", id, "--in", s(&p("msg")), "--out", s(&p("sig.der"))]);
        let distid = format!("distid:{id}");
        let out = tool(
            "openssl",
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                s(&p("pub.pem")),
                "-rawin",
                "-in",
                s(&p("msg")),
                "-sigfile",
                s(&p("sig.der")),
                "-digest",
                "sm3",
                "-pkeyopt",
                &distid,
            ],
        );
        assert!(String::from_utf8_lossy(&out).contains("Signature Verified Successfully"));
    }
    // Default ID: joule's default is GB/T 35276's 1234567812345678.
    ok(&["crypto", "sign", "--alg", "sm2", "--key", s(&p("k.pem")), "--in", s(&p("msg")), "--out", s(&p("sig.der"))]);
    tool(
        "openssl",
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            s(&p("pub.pem")),
            "-rawin",
            "-in",
            s(&p("msg")),
            "-sigfile",
            s(&p("sig.der")),
            "-digest",
            "sm3",
            "-pkeyopt",
            "distid:1234567812345678",
        ],
    );
    // openssl key and signature, verified by joule.
    tool("openssl", &["genpkey", "-algorithm", "SM2", "-out", s(&p("ok.pem"))]);
    tool("openssl", &["pkey", "-in", s(&p("ok.pem")), "-pubout", "-out", s(&p("opub.pem"))]);
    tool(
        "openssl",
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            s(&p("ok.pem")),
            "-rawin",
            "-in",
            s(&p("msg")),
            "-digest",
            "sm3",
            "-pkeyopt",
            "distid:1234567812345678",
            "-out",
            s(&p("osig.der")),
        ],
    );
    ok(&["crypto", "verify", "--alg", "sm2", "--pub", s(&p("opub.pem")), "--in", s(&p("msg")), "--sig", s(&p("osig.der"))]);
    // The public key joule derives from openssl's private key is openssl's public key.
    ok(&["crypto", "pubkey", "--in", s(&p("ok.pem")), "--out", s(&p("derived.pem"))]);
    assert_eq!(std::fs::read(p("derived.pem")).unwrap(), std::fs::read(p("opub.pem")).unwrap());
    // And a tampered message is rejected with exit code 1.
    std::fs::write(p("msg"), b"grid operator settlement, block 1001").unwrap();
    let (code, _, _) = run(joule().args(["crypto", "verify", "--alg", "sm2", "--pub", s(&p("opub.pem")), "--in", s(&p("msg")), "--sig", s(&p("osig.der"))]));
    assert_eq!(code, 1);
}

#[test]
fn p256_signatures_both_ways() {
    let d = tempdir();
    let p = |n: &str| d.path().join(n);
    std::fs::write(p("msg"), b"interconnector capacity auction").unwrap();
    ok(&["crypto", "keygen", "--alg", "ecdsa-p256", "--out", s(&p("k.pem")), "--pub-out", s(&p("pub.pem"))]);
    ok(&["crypto", "sign", "--alg", "ecdsa-p256", "--key", s(&p("k.pem")), "--in", s(&p("msg")), "--out", s(&p("sig.der"))]);
    let out = tool("openssl", &["dgst", "-sha256", "-verify", s(&p("pub.pem")), "-signature", s(&p("sig.der")), s(&p("msg"))]);
    assert!(String::from_utf8_lossy(&out).contains("Verified OK"));
    tool("openssl", &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", s(&p("ok.pem"))]);
    tool("openssl", &["pkey", "-in", s(&p("ok.pem")), "-pubout", "-out", s(&p("opub.pem"))]);
    tool("openssl", &["dgst", "-sha256", "-sign", s(&p("ok.pem")), "-out", s(&p("osig.der")), s(&p("msg"))]);
    ok(&["crypto", "verify", "--alg", "ecdsa-p256", "--pub", s(&p("opub.pem")), "--in", s(&p("msg")), "--sig", s(&p("osig.der"))]);
}

#[test]
fn ed25519_signatures_both_ways() {
    let d = tempdir();
    let p = |n: &str| d.path().join(n);
    std::fs::write(p("msg"), b"demand response event 17").unwrap();
    ok(&["crypto", "keygen", "--alg", "ed25519", "--out", s(&p("k.pem")), "--pub-out", s(&p("pub.pem"))]);
    ok(&["crypto", "sign", "--alg", "ed25519", "--key", s(&p("k.pem")), "--in", s(&p("msg")), "--out", s(&p("sig"))]);
    tool("openssl", &["pkeyutl", "-verify", "-pubin", "-inkey", s(&p("pub.pem")), "-rawin", "-in", s(&p("msg")), "-sigfile", s(&p("sig"))]);
    tool("openssl", &["genpkey", "-algorithm", "ED25519", "-out", s(&p("ok.pem"))]);
    tool("openssl", &["pkey", "-in", s(&p("ok.pem")), "-pubout", "-out", s(&p("opub.pem"))]);
    tool("openssl", &["pkeyutl", "-sign", "-inkey", s(&p("ok.pem")), "-rawin", "-in", s(&p("msg")), "-out", s(&p("osig"))]);
    ok(&["crypto", "verify", "--alg", "ed25519", "--pub", s(&p("opub.pem")), "--in", s(&p("msg")), "--sig", s(&p("osig"))]);
}

#[test]
fn sm2_encryption_both_ways() {
    let d = tempdir();
    let p = |n: &str| d.path().join(n);
    std::fs::write(p("pt"), b"tariff schedule for Q3: 0.52 CNY/kWh peak").unwrap();
    ok(&["crypto", "keygen", "--alg", "sm2", "--out", s(&p("k.pem")), "--pub-out", s(&p("pub.pem"))]);
    ok(&["crypto", "encrypt", "--alg", "sm2", "--pub", s(&p("pub.pem")), "--in", s(&p("pt")), "--out", s(&p("ct"))]);
    let pt = tool("openssl", &["pkeyutl", "-decrypt", "-inkey", s(&p("k.pem")), "-in", s(&p("ct"))]);
    assert_eq!(pt, std::fs::read(p("pt")).unwrap());
    tool("openssl", &["pkeyutl", "-encrypt", "-pubin", "-inkey", s(&p("pub.pem")), "-in", s(&p("pt")), "-out", s(&p("oct"))]);
    ok(&["crypto", "decrypt", "--alg", "sm2", "--key", s(&p("k.pem")), "--in", s(&p("oct")), "--out", s(&p("back"))]);
    assert_eq!(std::fs::read(p("back")).unwrap(), std::fs::read(p("pt")).unwrap());
}

#[test]
fn sm4_cbc_both_ways() {
    let d = tempdir();
    let p = |n: &str| d.path().join(n);
    let (key, iv) = ("0123456789abcdeffedcba9876543210", "00112233445566778899aabbccddeeff");
    for len in [0usize, 1, 15, 16, 17, 1000] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(p("pt"), &data).unwrap();
        ok(&["crypto", "encrypt", "--alg", "sm4-cbc", "--key", key, "--iv", iv, "--in", s(&p("pt")), "--out", s(&p("ct"))]);
        let theirs = tool("openssl", &["enc", "-sm4-cbc", "-K", key, "-iv", iv, "-in", s(&p("pt"))]);
        assert_eq!(std::fs::read(p("ct")).unwrap(), theirs, "ciphertext of {len} bytes");
        let back = tool("openssl", &["enc", "-d", "-sm4-cbc", "-K", key, "-iv", iv, "-in", s(&p("ct"))]);
        assert_eq!(back, data);
        std::fs::write(p("oct"), &theirs).unwrap();
        ok(&["crypto", "decrypt", "--alg", "sm4-cbc", "--key", key, "--iv", iv, "--in", s(&p("oct")), "--out", s(&p("back"))]);
        assert_eq!(std::fs::read(p("back")).unwrap(), data);
    }
}

#[test]
fn digests_match_openssl_dgst() {
    let d = tempdir();
    let f = d.path().join("data");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(&f, &data).unwrap();
    for alg in ["sm3", "sha256", "sha384", "sha512", "sha3-256"] {
        let ours = ok(&["crypto", "hash", "--alg", alg, "--in", s(&f)]);
        let theirs = String::from_utf8(tool("openssl", &["dgst", &format!("-{alg}"), "-r", s(&f)])).unwrap();
        assert_eq!(ours.trim(), theirs.split_whitespace().next().unwrap(), "{alg}");
    }
}

/// ECIES-P256 as documented in docs/formats.md, decrypted by an independent implementation
/// (Python `cryptography`): ephemeral point (65) || AES-256-GCM ciphertext || tag, key and
/// nonce from HKDF-SHA256(ikm = ECDH x, salt = ephemeral point, info = "joule:ecies-p256:v1").
#[test]
fn ecies_p256_format_matches_the_documentation() {
    let d = tempdir();
    let p = |n: &str| d.path().join(n);
    std::fs::write(p("pt"), b"bid: 120 MW at 310 CNY/MWh").unwrap();
    ok(&["crypto", "keygen", "--alg", "ecies-p256", "--out", s(&p("k.pem")), "--pub-out", s(&p("pub.pem"))]);
    ok(&["crypto", "encrypt", "--alg", "ecies-p256", "--pub", s(&p("pub.pem")), "--in", s(&p("pt")), "--out", s(&p("ct"))]);
    let script = r#"
import sys
from cryptography.hazmat.primitives import serialization, hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
sk = serialization.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)
ct = open(sys.argv[2], 'rb').read()
eph = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ct[:65])
shared = sk.exchange(ec.ECDH(), eph)
okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=ct[:65], info=b"joule:ecies-p256:v1").derive(shared)
sys.stdout.buffer.write(AESGCM(okm[:32]).decrypt(okm[32:], ct[65:], None))
"#;
    let out = tool("python3", &["-c", script, s(&p("k.pem")), s(&p("ct"))]);
    assert_eq!(out, std::fs::read(p("pt")).unwrap());
}
