//! Key management (§4.1.2): sealed storage, rotation that keeps old periods usable,
//! module access control.

use crate::support::{crypto, tempdir};
use joule_crypto::CryptoService;
use joule_node::keystore::{Keystore, KeystoreError, Right};
use std::time::Duration;

/// Low KDF cost so tests are quick; production uses the 64 MiB default.
const TEST_KDF_KIB: u32 = 1024;

fn store(c: &CryptoService, dir: &std::path::Path) -> Keystore {
    Keystore::create(&dir.join("keys.redb"), b"correct horse battery staple", "sm4-gcm", c.clone(), TEST_KDF_KIB).expect("create keystore")
}

#[test]
fn old_periods_still_verify_and_decrypt_after_rotation() {
    let c = crypto();
    let d = tempdir();
    let ks = store(&c, d.path());
    ks.set_policy("consensus", "block-signing", "sm2", Some(Duration::from_secs(86400))).unwrap();
    ks.set_policy("ledger", "payload", "sm2", None).unwrap();
    ks.set_policy("storage", "at-rest", "sm4-gcm", None).unwrap();
    for (m, p) in [("consensus", "block-signing"), ("ledger", "payload"), ("storage", "at-rest")] {
        ks.rotate(m, p).unwrap();
    }
    let consensus = ks.for_module("consensus");
    let (k1, sig1) = consensus.sign("consensus", "block-signing", b"block 1").unwrap();
    let ledger = ks.for_module("ledger");
    let (e1, ct1) = ledger.encrypt_to("ledger", "payload", b"meter data, period 1").unwrap();
    let storage = ks.for_module("storage");
    let (s1, sealed1) = storage.seal("storage", "at-rest", b"chunk 1", b"chunk-id-1").unwrap();

    let k2 = ks.rotate("consensus", "block-signing").unwrap();
    let e2 = ks.rotate("ledger", "payload").unwrap();
    ks.rotate("storage", "at-rest").unwrap();
    assert_eq!((k1.period, k2.period, e2.period), (1, 2, 2));

    // Reopen from disk: what survives is what was committed.
    drop((consensus, ledger, storage));
    drop(ks);
    let ks = Keystore::open(&d.path().join("keys.redb"), b"correct horse battery staple", c.clone()).unwrap();
    let consensus = ks.for_module("consensus");
    assert!(consensus.verify(&k1, b"block 1", &sig1).unwrap(), "period-1 signature verifies after rotation");
    assert!(!consensus.verify(&k1, b"block 2", &sig1).unwrap());
    let (k, sig2) = consensus.sign("consensus", "block-signing", b"block 2").unwrap();
    assert_eq!(k, k2, "new signatures use the new period");
    assert!(!consensus.verify(&k1, b"block 2", &sig2).unwrap(), "periods have different keys");
    assert_eq!(ks.for_module("ledger").decrypt(&e1, &ct1).unwrap().as_slice(), b"meter data, period 1");
    assert_eq!(ks.for_module("storage").open(&s1, &sealed1, b"chunk-id-1").unwrap().as_slice(), b"chunk 1");
    assert!(ks.for_module("storage").open(&s1, &sealed1, b"chunk-id-2").is_err(), "aad is bound");
    let keys = ks.keys().unwrap();
    assert_eq!(keys.len(), 6);
    assert_eq!(keys.iter().filter(|k| k.retired_at.is_some()).count(), 3);
}

#[test]
fn the_keystore_file_holds_no_key_in_clear() {
    let c = crypto();
    let d = tempdir();
    let ks = store(&c, d.path());
    ks.set_policy("consensus", "block-signing", "sm2", None).unwrap();
    ks.set_policy("gateway", "tls", "ecdsa-p256", None).unwrap();
    for _ in 0..3 {
        ks.rotate("consensus", "block-signing").unwrap();
        ks.rotate("gateway", "tls").unwrap();
    }
    drop(ks);
    let file = std::fs::read(d.path().join("keys.redb")).unwrap();
    let text = String::from_utf8_lossy(&file).to_lowercase();
    // PKCS#8 headers of SM2 and P-256 keys, and the ECPrivateKey scalar prefix, raw or hex.
    for marker in ["020100301306072a8648ce3d020106082a811ccf5501822d", "020100301306072a8648ce3d020106082a8648ce3d030107", "0201010420"] {
        assert!(!text.contains(marker), "hex key material {marker} in the file");
        let raw = hex::decode(marker).unwrap();
        assert!(!file.windows(raw.len()).any(|w| w == raw), "raw key material {marker} in the file");
    }
    // The public keys, by contrast, are stored (so the scan can see what is there).
    assert!(text.contains("3059301306072a8648ce3d020106082a811ccf5501822d034200"), "public SM2 keys are present in hex");
}

#[test]
fn wrong_passphrase_and_foreign_files_are_refused() {
    let c = crypto();
    let d = tempdir();
    drop(store(&c, d.path()));
    let e = Keystore::open(&d.path().join("keys.redb"), b"Tr0ub4dor&3", c.clone()).err().expect("wrong passphrase");
    assert!(matches!(e, KeystoreError::WrongPassphrase), "{e}");
    std::fs::write(d.path().join("other"), b"not a database").unwrap();
    assert!(matches!(Keystore::open(&d.path().join("other"), b"x", c.clone()), Err(KeystoreError::NotAKeystore(_))));
    assert!(Keystore::create(&d.path().join("keys.redb"), b"again", "sm4-gcm", c.clone(), TEST_KDF_KIB).is_err(), "never overwrites");
    assert!(Keystore::create(&d.path().join("k2.redb"), b"pass", "sm4-cbc", c, TEST_KDF_KIB).is_err(), "needs an AEAD cipher");
}

#[test]
fn modules_use_only_their_own_keys_unless_granted() {
    let c = crypto();
    let d = tempdir();
    let ks = store(&c, d.path());
    ks.set_policy("consensus", "block-signing", "sm2", None).unwrap();
    ks.rotate("consensus", "block-signing").unwrap();
    let gateway = ks.for_module("gateway");
    assert!(matches!(gateway.sign("consensus", "block-signing", b"x"), Err(KeystoreError::Denied { .. })));
    assert!(matches!(gateway.current("consensus", "block-signing"), Err(KeystoreError::Denied { .. })));
    ks.grant("gateway", "consensus", "block-signing", Right::Read).unwrap();
    let k = gateway.current("consensus", "block-signing").unwrap();
    assert!(gateway.public_key(&k).is_ok(), "read right gives the public key");
    assert!(matches!(gateway.sign("consensus", "block-signing", b"x"), Err(KeystoreError::Denied { .. })), "but not signing");
    ks.grant("gateway", "consensus", "block-signing", Right::Use).unwrap();
    let (_, sig) = gateway.sign("consensus", "block-signing", b"x").unwrap();
    assert!(ks.for_module("consensus").verify(&k, b"x", &sig).unwrap());
    ks.revoke("gateway", "consensus", "block-signing").unwrap();
    assert!(matches!(gateway.sign("consensus", "block-signing", b"x"), Err(KeystoreError::Denied { .. })));
}

#[test]
fn scheduled_rotation_rotates_only_what_is_due() {
    let c = crypto();
    let d = tempdir();
    let ks = store(&c, d.path());
    ks.set_policy("consensus", "block-signing", "sm2", Some(Duration::from_secs(3600))).unwrap();
    ks.set_policy("ledger", "payload", "sm2", None).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // First run: every slot without a key gets one.
    assert_eq!(ks.rotate_due(now).unwrap().len(), 2);
    assert!(ks.rotate_due(now + 10).unwrap().is_empty());
    let due = ks.rotate_due(now + 3601).unwrap();
    assert_eq!(due.iter().map(|k| k.id()).collect::<Vec<_>>(), ["consensus/block-signing/2"]);
    assert!(ks.set_policy("bad module!", "x", "sm2", None).is_err());
    assert!(ks.set_policy("m", "p", "rot13", None).is_err());
}

/// §4.1.2 asks for one key store: `joule init` seals the node key in the node's keystore
/// (no private key file in the node directory), OpenSSL reads the exported copy, and the
/// node seals blocks with the keystore's key.
#[test]
fn the_node_key_lives_sealed_in_the_keystore_and_seals_blocks() {
    use crate::support::{NodeProcess, init_node, tool};
    let d = tempdir();
    let node_dir = d.path().join("node");
    let exported = d.path().join("node-key.pem");
    init_node(&node_dir, &["--block-interval-ms", "100", "--empty-blocks", "--export-key", exported.to_str().unwrap()]);
    let names: Vec<String> = std::fs::read_dir(&node_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| !n.ends_with(".pem")), "no key file in the node directory: {names:?}");
    let der = joule_crypto::pem::decode(joule_crypto::pem::PRIVATE_KEY, &std::fs::read(&exported).unwrap()).unwrap();
    let store = std::fs::read(node_dir.join("keystore.redb")).unwrap();
    assert!(!store.windows(32).any(|w| der.windows(32).any(|k| k == w)), "the keystore holds the key sealed, not in the clear");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&exported).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // OpenSSL reads the export, and its public key is the one node.toml lists.
    let spki = tool("openssl", &["pkey", "-in", exported.to_str().unwrap(), "-pubout", "-outform", "DER"]);
    let node_toml = std::fs::read_to_string(node_dir.join("node.toml")).unwrap();
    assert!(node_toml.contains(&format!("public-key = \"{}\"", hex::encode(&spki))), "{node_toml}");
    assert!(node_toml.contains("keystore-slot = \"node/seal-sm2\""), "{node_toml}");

    // The node seals blocks with it: block 1's proposer is that key, and the PoA engine
    // (which checks the seal) accepted it on import.
    let node = NodeProcess::start(&node_dir, &[]);
    let start = std::time::Instant::now();
    while node.height() < 1 {
        assert!(start.elapsed() < Duration::from_secs(30), "no block sealed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, block) = node.get("/v1/blocks/1?full=false");
    assert_eq!(s, 200, "{block}");
    assert_eq!(block["header"]["proposer"].as_str(), Some(hex::encode(&spki).as_str()));
    drop(node);

    // Without its passphrase, the node does not start and says what to do.
    std::fs::remove_file(node_dir.join("keystore.pass")).unwrap();
    let (code, _, err) = crate::support::run(crate::support::joule().args(["node", "--dir"]).arg(&node_dir).env_remove("JOULE_KEYSTORE_PASSPHRASE"));
    assert_ne!(code, 0);
    assert!(err.contains("JOULE_KEYSTORE_PASSPHRASE"), "{err}");
}
