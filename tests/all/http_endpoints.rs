//! Endpoints the documentation promises, driven over HTTP against a node process as a
//! client would: signature verification, rolling a plugin back, and a hostile upload that
//! must be refused with a reason while the node keeps serving.

use crate::support::{NodeProcess, crypto, tempdir, test_plugin_dir};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// (status, body) of `POST /v1/crypto/verify`.
fn verify(node: &NodeProcess, alg: &str, public_key: &str, message: &[u8], signature: &[u8]) -> (u16, Value) {
    node.call(
        "POST",
        "/v1/crypto/verify",
        Some(json!({"alg": alg, "public_key": public_key, "message_hex": hex::encode(message), "signature_hex": hex::encode(signature)})),
    )
}

/// An error answer: the status, and the body's `code` once it is checked to be the API's
/// JSON error (a code and a human message).
fn error_code(status: u16, body: &Value) -> (u16, &str) {
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "an error body with a message: {body}");
    (status, body["code"].as_str().unwrap_or_else(|| panic!("an error body with a code: {body}")))
}

#[test]
fn crypto_verify_accepts_a_valid_signature_rejects_a_tampered_one_and_refuses_a_garbage_key() {
    let d = tempdir();
    let node = NodeProcess::start(d.path(), &[]);
    let c = crypto();
    let message = b"meter 7: 42.5 kWh at 2026-11-25T10:00";
    for alg in ["sm2", "ecdsa-p256", "ed25519"] {
        let kp = c.generate_key(alg).unwrap();
        let signature = c.sign(alg, &kp.private_key, message, None).unwrap();
        let der = hex::encode(&kp.public_key);
        let pem = joule_crypto::pem::encode(joule_crypto::pem::PUBLIC_KEY, &kp.public_key);
        for key in [&der, &pem] {
            let (s, v) = verify(&node, alg, key, message, &signature);
            assert_eq!((s, v["valid"].as_bool()), (200, Some(true)), "{alg}: a valid signature: {v}");
        }
        // Tampered: another message under the same signature, or a flipped signature bit.
        let mut other = message.to_vec();
        other[6] ^= 1;
        let (s, v) = verify(&node, alg, &der, &other, &signature);
        assert_eq!((s, v["valid"].as_bool()), (200, Some(false)), "{alg}: a tampered message: {v}");
        let mut flipped = signature.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x10;
        let (s, v) = verify(&node, alg, &der, message, &flipped);
        assert_eq!((s, v["valid"].as_bool()), (200, Some(false)), "{alg}: a tampered signature: {v}");
        // Another key's signature is not this key's.
        let stranger = c.generate_key(alg).unwrap();
        let (s, v) = verify(&node, alg, &hex::encode(&stranger.public_key), message, &signature);
        assert_eq!((s, v["valid"].as_bool()), (200, Some(false)), "{alg}: someone else's key: {v}");

        // A key that is not one: a 400 with the API's JSON error, not a `false`, not a 5xx.
        let (s, v) = verify(&node, alg, "30030201ff", message, &signature);
        assert_eq!(error_code(s, &v), (400, "invalid_input"), "{alg}: a garbage DER key: {v}");
        assert!(v["error"].as_str().unwrap().contains("invalid key"), "{alg}: {v}");
        let (s, v) = verify(&node, alg, "not a key at all", message, &signature);
        assert_eq!(error_code(s, &v), (400, "bad_request"), "{alg}: neither hex nor PEM: {v}");
        assert!(v["error"].as_str().unwrap().contains("public_key"), "{alg}: names the field: {v}");
    }
    let (s, v) = verify(&node, "rot13", "00", message, b"");
    assert_eq!(error_code(s, &v), (400, "unknown_algorithm"), "{v}");
}

fn tagged(tag: &[u8], data: &[u8]) -> String {
    hex::encode(Sha256::new().chain_update(tag).chain_update(data).finalize())
}

#[test]
fn a_plugin_rolls_back_over_http_to_the_version_active_before() {
    let d = tempdir();
    let node = NodeProcess::start(d.path(), &[]);
    for v in ["tagged-v1", "tagged-v2"] {
        let dir = test_plugin_dir().join(v);
        let (s, body) = node.upload(&std::fs::read_to_string(dir.join("tagged.toml")).unwrap(), &std::fs::read(dir.join("tagged.wasm")).unwrap());
        assert_eq!(s, 201, "{v}: {body}");
    }
    let digest = || {
        let (s, v) = node.call("POST", "/v1/crypto/hash", Some(json!({"alg": "tagged-sha256", "data": "abc"})));
        assert_eq!(s, 200, "{v}");
        v["digest_hex"].as_str().unwrap().to_string()
    };
    let active = || {
        let (_, list) = node.call("GET", "/v1/plugins", None);
        list.as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "tagged" && p["active"] == true)
            .map(|p| p["version"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    for version in ["0.1.0", "0.2.0"] {
        let (s, v) = node.call("POST", "/v1/plugins/tagged/activate", Some(json!({"version": version})));
        assert_eq!((s, v["version"].as_str()), (200, Some(version)), "{v}");
    }
    assert_eq!(digest(), tagged(b"v2", b"abc"));
    assert_eq!(active(), ["0.2.0"]);

    let (s, v) = node.call("POST", "/v1/plugins/tagged/rollback", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["name"].as_str(), v["version"].as_str(), v["active"].as_bool()), (Some("tagged"), Some("0.1.0"), Some(true)), "{v}");
    assert_eq!(digest(), tagged(b"v1", b"abc"), "calls go to the version rolled back to");
    assert_eq!(active(), ["0.1.0"]);

    // Nothing earlier to go back to: a conflict, and nothing changes.
    let (s, v) = node.call("POST", "/v1/plugins/tagged/rollback", None);
    assert_eq!(error_code(s, &v), (409, "conflict"), "{v}");
    assert!(v["error"].as_str().unwrap().contains("no earlier version"), "{v}");
    assert_eq!(digest(), tagged(b"v1", b"abc"));
    let (s, v) = node.call("POST", "/v1/plugins/nope/rollback", None);
    assert_eq!(error_code(s, &v), (404, "not_found"), "{v}");
    let (_, audit) = node.call("GET", "/v1/plugins/audit", None);
    assert!(audit.as_array().unwrap().iter().any(|a| a["plugin"] == "tagged" && a["action"] == "rollback" && a["version"] == "0.1.0"), "{audit}");
}

#[test]
fn an_uploaded_cipher_with_empty_ciphertext_fails_its_self_test_and_the_node_keeps_serving() {
    let d = tempdir();
    let node = NodeProcess::start(d.path(), &[]);
    let fixtures = test_plugin_dir();
    let manifest = std::fs::read_to_string(fixtures.join("empty-cipher.toml")).unwrap();
    let wasm = std::fs::read(fixtures.join("empty-cipher.wasm")).unwrap();
    // Before the fix the self-test indexed into the empty ciphertext to tamper with it and
    // panicked: the upload was a 500 from a dead worker, naming nothing.
    let (s, v) = node.upload(&manifest, &wasm);
    assert_eq!(error_code(s, &v), (422, "self_test_failed"), "{v}");
    let reason = v["error"].as_str().unwrap();
    assert!(reason.contains("symmetric-cipher:empty-cipher"), "names the algorithm: {reason}");
    assert!(reason.contains("ciphertext"), "says what is wrong with it: {reason}");

    // The node is unharmed: it answers, nothing was installed, crypto calls work.
    let (s, health) = node.get("/v1/health");
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")), "{health}");
    let (_, list) = node.call("GET", "/v1/plugins", None);
    assert!(list.as_array().unwrap().iter().all(|p| p["name"] != "empty-cipher"), "{list}");
    let (s, v) = node.call("POST", "/v1/crypto/hash", Some(json!({"alg": "sm3", "data": "abc"})));
    assert_eq!((s, v["digest_hex"].as_str()), (200, Some("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")), "{v}");
    let c = crypto();
    let kp = c.generate_key("sm2").unwrap();
    let sig = c.sign("sm2", &kp.private_key, b"still here", None).unwrap();
    let (s, v) = verify(&node, "sm2", &hex::encode(&kp.public_key), b"still here", &sig);
    assert_eq!((s, v["valid"].as_bool()), (200, Some(true)), "{v}");
    // And refuses the same upload the same way again (no state was left behind).
    let (s, v) = node.upload(&manifest, &wasm);
    assert_eq!(error_code(s, &v), (422, "self_test_failed"), "{v}");
}
