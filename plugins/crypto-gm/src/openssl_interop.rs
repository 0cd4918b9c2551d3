//! Interoperability with the `openssl` command line (3.x): keys, SM2 signatures with a
//! distinguishing ID, SM2 encryption (GM/T 0009 DER) and SM4. A missing openssl fails them.

use crate::Gm;
use joule_crypto_sdk::openssl::{Scratch, require, run};
use joule_crypto_sdk::{Entropy, Plugin};

const ID: &str = "1234567812345678";

/// An SM2 key made by OpenSSL: (PKCS#8 DER, SPKI DER, PEM path).
fn openssl_key(dir: &Scratch) -> (Vec<u8>, Vec<u8>, String) {
    let pem = dir.path("key.pem");
    run(&["genpkey", "-algorithm", "SM2", "-out", &pem]).unwrap();
    run(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        &pem,
        "-outform",
        "DER",
        "-out",
        &dir.path("key.p8"),
    ])
    .unwrap();
    run(&[
        "pkey",
        "-in",
        &pem,
        "-pubout",
        "-outform",
        "DER",
        "-out",
        &dir.path("pub.der"),
    ])
    .unwrap();
    (dir.read("key.p8"), dir.read("pub.der"), pem)
}

#[test]
fn sm2_keys() {
    require();
    let dir = Scratch::new();
    // OpenSSL's key through the plugin: the same public key.
    let (sk, pk, _) = openssl_key(&dir);
    assert_eq!(Gm::public_key("sm2", &sk).unwrap(), pk);
    // The plugin's key through OpenSSL: it parses both halves and derives the same public key.
    let kp = Gm::generate("sm2", &mut Entropy::os()).unwrap();
    let key = dir.write("ours.p8", &kp.private_key);
    let text = run(&["pkey", "-inform", "DER", "-in", &key, "-text", "-noout"]).unwrap();
    assert!(
        String::from_utf8_lossy(&text).contains("ASN1 OID: SM2"),
        "{}",
        String::from_utf8_lossy(&text)
    );
    let derived = run(&["pkey", "-inform", "DER", "-in", &key, "-pubout", "-outform", "DER"]).unwrap();
    assert_eq!(derived, kp.public_key);
    let public = dir.write("ours.pub", &kp.public_key);
    run(&["pkey", "-pubin", "-inform", "DER", "-in", &public, "-noout"]).unwrap();
}

#[test]
fn sm2_signatures() {
    require();
    let dir = Scratch::new();
    let (sk, pk, pem) = openssl_key(&dir);
    let msg = dir.write("msg", b"joule interop message");
    let distid = format!("distid:{ID}");

    // OpenSSL signs with the default ID spelled out; the plugin verifies with and without it.
    let sig = dir.path("sig");
    run(&[
        "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-pkeyopt", &distid, "-inkey", &pem, "-in", &msg, "-out", &sig,
    ])
    .unwrap();
    let sig = dir.read("sig");
    assert!(Gm::verify("sm2", &pk, b"joule interop message", &sig, None).unwrap());
    assert!(Gm::verify("sm2", &pk, b"joule interop message", &sig, Some(ID.as_bytes())).unwrap());
    assert!(!Gm::verify("sm2", &pk, b"joule interop message", &sig, Some(b"alice@example.com")).unwrap());

    // Another ID.
    run(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        "distid:alice@example.com",
        "-inkey",
        &pem,
        "-in",
        &msg,
        "-out",
        &dir.path("sig2"),
    ])
    .unwrap();
    assert!(
        Gm::verify(
            "sm2",
            &pk,
            b"joule interop message",
            &dir.read("sig2"),
            Some(b"alice@example.com")
        )
        .unwrap()
    );

    // Note: OpenSSL 3.0 without -pkeyopt distid uses an EMPTY ID, not 1234567812345678.
    run(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-digest",
        "sm3",
        "-inkey",
        &pem,
        "-in",
        &msg,
        "-out",
        &dir.path("sig3"),
    ])
    .unwrap();
    assert!(Gm::verify("sm2", &pk, b"joule interop message", &dir.read("sig3"), Some(b"")).unwrap());
    assert!(!Gm::verify("sm2", &pk, b"joule interop message", &dir.read("sig3"), None).unwrap());

    // The plugin signs (default ID); OpenSSL verifies with the OpenSSL key file and with the SPKI.
    let ours = dir.write(
        "ours.sig",
        &Gm::sign("sm2", &sk, b"joule interop message", None).unwrap(),
    );
    let pub_der = dir.path("pub.der");
    let verdict = run(&[
        "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", &distid, "-inkey", &pem, "-in", &msg, "-sigfile",
        &ours,
    ])
    .unwrap();
    assert!(String::from_utf8_lossy(&verdict).contains("Signature Verified Successfully"));
    run(&[
        "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", &distid, "-pubin", "-keyform", "DER", "-inkey",
        &pub_der, "-in", &msg, "-sigfile", &ours,
    ])
    .unwrap();
    // ... and refuses it under another ID.
    assert!(
        run(&[
            "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", "distid:x", "-inkey", &pem, "-in", &msg,
            "-sigfile", &ours
        ])
        .is_err()
    );

    // A plugin-generated key signing, OpenSSL verifying from the plugin's own SPKI.
    let kp = Gm::generate("sm2", &mut Entropy::os()).unwrap();
    let ours = dir.write(
        "ours2.sig",
        &Gm::sign("sm2", &kp.private_key, b"joule interop message", Some(b"bob")).unwrap(),
    );
    let public = dir.write("ours2.pub", &kp.public_key);
    run(&[
        "pkeyutl",
        "-verify",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        "distid:bob",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        &public,
        "-in",
        &msg,
        "-sigfile",
        &ours,
    ])
    .unwrap();
}

#[test]
fn sm2_encryption() {
    require();
    let dir = Scratch::new();
    let (sk, pk, pem) = openssl_key(&dir);
    let plaintext = b"sixty-four bytes of plaintext, more or less; SM2 has no limit...";
    let input = dir.write("pt", plaintext);

    // OpenSSL encrypts, the plugin decrypts.
    run(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        &dir.path("pub.der"),
        "-in",
        &input,
        "-out",
        &dir.path("ct"),
    ])
    .unwrap();
    assert_eq!(Gm::pke_decrypt("sm2", &sk, &dir.read("ct")).unwrap(), plaintext);

    // The plugin encrypts, OpenSSL decrypts.
    for msg in [&b"x"[..], plaintext, &[0u8; 1000][..]] {
        let ct = dir.write(
            "ours.ct",
            &Gm::pke_encrypt("sm2", &pk, msg, &mut Entropy::os()).unwrap(),
        );
        let out = run(&["pkeyutl", "-decrypt", "-inkey", &pem, "-in", &ct]).unwrap();
        assert_eq!(out, msg);
    }
    // With a plugin-generated key read by OpenSSL.
    let kp = Gm::generate("sm2", &mut Entropy::os()).unwrap();
    let key = dir.write("ours.p8", &kp.private_key);
    let ct = dir.write(
        "ours2.ct",
        &Gm::pke_encrypt("sm2", &kp.public_key, plaintext, &mut Entropy::os()).unwrap(),
    );
    assert_eq!(
        run(&["pkeyutl", "-decrypt", "-keyform", "DER", "-inkey", &key, "-in", &ct]).unwrap(),
        plaintext
    );
}

#[test]
fn sm4_modes() {
    require();
    let dir = Scratch::new();
    let key = [0x42u8; 16];
    let iv = [0x24u8; 16];
    let (key_hex, iv_hex) = (joule_crypto_sdk::hex(&key), joule_crypto_sdk::hex(&iv));
    for len in [0usize, 5, 16, 33] {
        let msg: Vec<u8> = (0..len as u8).collect();
        let input = dir.write("pt", &msg);
        for (alg, nonce, args) in [
            ("sm4-cbc", &iv[..], vec!["-sm4-cbc", "-iv", &iv_hex]),
            ("sm4-ecb", &[][..], vec!["-sm4-ecb"]),
            ("sm4-ctr", &iv[..], vec!["-sm4-ctr", "-iv", &iv_hex]),
        ] {
            let mut cmd = vec!["enc", "-K", &key_hex, "-in", &input];
            cmd.extend(&args);
            let theirs = run(&cmd).unwrap();
            assert_eq!(
                Gm::cipher_encrypt(alg, &key, nonce, &[], &msg).unwrap(),
                theirs,
                "{alg} {len}"
            );
            let ours = dir.write("ct", &theirs);
            let mut cmd = vec!["enc", "-d", "-K", &key_hex, "-in", &ours];
            cmd.extend(&args);
            assert_eq!(run(&cmd).unwrap(), msg, "{alg} {len}");
        }
    }
}
