//! The node's admin HTTP API, driven as an operator would: a vendor plugin uploaded into a
//! running node, used, swapped out; auth; trust policy; persistence across restarts;
//! metrics. The API against its OpenAPI document: `api_contract`.

use crate::support::{NodeProcess, joule, run, tempdir, test_plugin_dir};
use serde_json::json;

fn vendor_files() -> (String, Vec<u8>) {
    let dir = test_plugin_dir();
    (std::fs::read_to_string(dir.join("acme-crypto.toml")).unwrap(), std::fs::read(dir.join("acme-crypto.wasm")).unwrap())
}

#[test]
fn vendor_plugin_uploaded_used_and_swapped_out_of_a_running_node() {
    let d = tempdir();
    let node = NodeProcess::start(d.path(), &[]);
    let (s, health) = node.call("GET", "/v1/health", None);
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(health["plugins_active"], 6, "first-party plugins (3 crypto, 3 consensus) seeded from the plugin dir");

    let hash = json!({"alg": "acme-blake2s-256", "data": "abc"});
    let (s, body) = node.call("POST", "/v1/crypto/hash", Some(hash.clone()));
    assert_eq!((s, body["code"].as_str()), (400, Some("unknown_algorithm")), "{body}");

    let (manifest, wasm) = vendor_files();
    let (s, body) = node.upload(&manifest, &wasm);
    assert_eq!(s, 201, "{body}");
    assert_eq!((body["name"].as_str(), body["active"].as_bool()), (Some("acme-crypto"), Some(false)));
    // The same package again changes nothing, and says so: 200, not a second 201.
    let (s, again) = node.upload(&manifest, &wasm);
    assert_eq!((s, &again["installed_at"]), (200, &body["installed_at"]), "{again}");
    let (s, _) = node.call("POST", "/v1/plugins/acme-crypto/activate", None);
    assert_eq!(s, 200);
    let (s, body) = node.call("POST", "/v1/crypto/hash", Some(hash.clone()));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["digest_hex"], "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982", "RFC 7693 BLAKE2s-256(abc)");

    // Removing an active plugin is refused; deactivate first.
    let version = body_version(&node, "acme-crypto");
    let (s, _) = node.call("DELETE", &format!("/v1/plugins/acme-crypto/{version}"), None);
    assert_eq!(s, 409);
    let (s, _) = node.call("POST", "/v1/plugins/acme-crypto/deactivate", None);
    assert_eq!(s, 200);
    let (s, _) = node.call("POST", "/v1/crypto/hash", Some(hash.clone()));
    assert_eq!(s, 400, "swapped out");

    // Restart: installed plugins and the active set survive.
    let (s, _) = node.call("POST", "/v1/plugins/acme-crypto/activate", None);
    assert_eq!(s, 200);
    drop(node);
    let node = NodeProcess::start(d.path(), &[]);
    let (s, body) = node.call("POST", "/v1/crypto/hash", Some(hash));
    assert_eq!((s, body["digest_hex"].as_str().map(str::len)), (200, Some(64)), "{body}");
    let (s, audit) = node.call("GET", "/v1/plugins/audit", None);
    assert_eq!(s, 200);
    assert!(audit.as_array().unwrap().iter().any(|a| a["plugin"] == "acme-crypto" && a["action"] == "activate"));
    assert!(std::fs::read_to_string(d.path().join("plugins/audit.log")).unwrap().contains("\"deactivate\""), "audit log persisted");
    let (s, _) = node.call("DELETE", &format!("/v1/plugins/acme-crypto/{version}"), None);
    assert_eq!(s, 409);
}

fn body_version(node: &NodeProcess, name: &str) -> String {
    let (_, list) = node.call("GET", "/v1/plugins", None);
    list.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["version"].as_str().unwrap().to_string()
}

#[test]
fn bad_uploads_get_precise_errors_and_change_nothing() {
    let d = tempdir();
    let node = NodeProcess::start(d.path(), &[]);
    let fixtures = test_plugin_dir();
    let fake = (std::fs::read_to_string(fixtures.join("fake-sm3.toml")).unwrap(), std::fs::read(fixtures.join("fake-sm3.wasm")).unwrap());
    let (s, body) = node.upload(&fake.0, &fake.1);
    assert_eq!((s, body["code"].as_str()), (422, Some("self_test_failed")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("hash:sm3"));
    let (manifest, mut wasm) = vendor_files();
    wasm[100] ^= 1;
    let (s, body) = node.upload(&manifest, &wasm);
    assert_eq!((s, body["code"].as_str()), (400, Some("bad_manifest")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("hash mismatch"));
    let (s, body) = node.upload("name = 1", b"");
    assert_eq!(s, 400, "{body}");
    // A description is a line for listings, not a place for a megabyte.
    let (manifest, wasm) = vendor_files();
    let described = |text: &str| -> String {
        manifest.lines().map(|l| if l.starts_with("description") { format!("description = \"{text}\"") } else { l.to_string() }).collect::<Vec<_>>().join("\n")
    };
    let (s, body) = node.upload(&described(&"x".repeat(1 << 20)), &wasm);
    assert_eq!((s, body["code"].as_str()), (413, Some("too_large")), "{body}");
    let long = described(&"x".repeat(2000));
    let (s, body) = node.upload(&long, &wasm);
    assert_eq!((s, body["code"].as_str()), (400, Some("bad_manifest")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("description"), "{body}");
    let (s, body) = node.call("POST", "/v1/plugins/nope/activate", None);
    assert_eq!((s, body["code"].as_str()), (404, Some("not_found")));
    let (s, body) = node.call("POST", "/v1/crypto/hash", Some(json!({"alg": "sm3", "data_hex": "zz"})));
    assert_eq!(s, 400, "{body}");
    let (s, body) = node.call("POST", "/v1/crypto/hash", Some(json!({"algo": "sm3"})));
    assert_eq!(s, 400, "{body}");
    let (_, list) = node.call("GET", "/v1/plugins", None);
    assert_eq!(list.as_array().unwrap().len(), 6, "nothing was installed");
    // SM3 still answers the standard vector.
    let (s, body) = node.call("POST", "/v1/crypto/hash", Some(json!({"alg": "sm3", "data": "abc"})));
    assert_eq!((s, body["digest_hex"].as_str()), (200, Some("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")));
}

#[test]
fn admin_endpoints_need_the_token() {
    let d = tempdir();
    let node = NodeProcess::start(d.path(), &[]);
    let a = NodeProcess::agent();
    let r = a.get(&format!("{}/v1/plugins", node.base)).call().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = a.post(&format!("{}/v1/plugins/crypto-gm/deactivate", node.base)).header("Authorization", "Bearer wrong-token-wrong-token").send_empty().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (_, health) = node.call("GET", "/v1/health", None);
    assert_eq!(health["plugins_active"], 6, "the refused request changed nothing");
    for open in ["/v1/health", "/v1/openapi.json", "/metrics"] {
        assert_eq!(a.get(&format!("{}{open}", node.base)).call().unwrap().status().as_u16(), 200, "{open}");
    }
}

#[test]
fn only_signed_plugins_when_the_node_requires_them() {
    let d = tempdir();
    let p = |n: &str| d.path().join(n);
    let (code, _, err) = run(joule().args(["crypto", "keygen", "--alg", "sm2", "--out"]).arg(p("vendor.pem")).arg("--pub-out").arg(p("vendor.pub")));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(joule().args(["crypto", "keygen", "--alg", "sm2", "--out"]).arg(p("other.pem")));
    assert_eq!(code, 0, "{err}");
    let data = p("node");
    let node = NodeProcess::start(&data, &["--require-signed", "--trusted-key", p("vendor.pub").to_str().unwrap()]);
    // The first-party plugins in the plugin dir are unsigned: refused under this policy.
    let (_, health) = node.call("GET", "/v1/health", None);
    assert_eq!(health["plugins_active"], 0);
    let (manifest, wasm) = vendor_files();
    let (s, body) = node.upload(&manifest, &wasm);
    assert_eq!((s, body["code"].as_str()), (403, Some("untrusted_plugin")), "{body}");
    // Signed by an unknown key: refused. Signed by the trusted vendor: accepted.
    std::fs::write(p("m.toml"), &manifest).unwrap();
    for (key, want) in [("other.pem", 403), ("vendor.pem", 201)] {
        let (code, _, err) = run(joule().args(["plugin", "sign", "--manifest"]).arg(p("m.toml")).arg("--key").arg(p(key)));
        assert_eq!(code, 0, "{err}");
        let (s, body) = node.upload(&std::fs::read_to_string(p("m.toml")).unwrap(), &wasm);
        assert_eq!(s, want, "{key}: {body}");
    }
    let (_, list) = node.call("GET", "/v1/plugins", None);
    assert_eq!(list[0]["signed"], "signed (trusted vendor)");
    // A signed manifest altered after signing is refused even though its hash is right.
    let mut m = joule_plugin_manifest::Manifest::parse(&std::fs::read_to_string(p("m.toml")).unwrap()).unwrap();
    m.version = "9.9.9".into();
    let (s, body) = node.upload(&m.to_toml(), &wasm);
    assert_eq!((s, body["code"].as_str()), (403, Some("untrusted_plugin")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("does not verify"));
}

#[test]
fn metrics_are_exported_each_with_its_help() {
    let d = tempdir();
    crate::support::init_node(d.path(), &[]);
    let node = NodeProcess::start(d.path(), &[]);
    let (s, _) = node.call("POST", "/v1/crypto/hash", Some(json!({"alg": "sm3", "data": "abc"})));
    assert_eq!(s, 200);
    let (s, _) = node.call("GET", "/v1/nope", None);
    assert_eq!(s, 404);
    let a = NodeProcess::agent();
    let metrics = a.get(&format!("{}/metrics", node.base)).call().unwrap().into_body().read_to_string().unwrap();
    assert!(metrics.contains("joule_plugin_calls_total{plugin=\"crypto-gm\""), "{metrics}");
    assert!(metrics.contains("joule_plugins_active 6"), "{metrics}");
    assert!(metrics.contains("joule_api_errors_total{code=\"no_route\"} 1"), "{metrics}");
    crate::support::assert_every_metric_has_help(&metrics);
}

#[test]
fn the_node_rotates_keys_on_schedule_and_on_demand() {
    let d = tempdir();
    let store = d.path().join("keystore.redb");
    let pass = ("JOULE_KEYSTORE_PASSPHRASE", "energy settles on chain");
    let keys = |args: &[&str]| {
        let (code, out, err) = run(joule().env(pass.0, pass.1).arg("keys").args(args).arg("--keystore").arg(&store));
        assert_eq!(code, 0, "keys {args:?}: {err}");
        out
    };
    keys(&["init"]);
    keys(&["policy", "--module", "consensus", "--purpose", "block-signing", "--alg", "sm2", "--rotate-every", "1s"]);
    keys(&["policy", "--module", "ledger", "--purpose", "payload", "--alg", "sm4-gcm"]);
    let node = NodeProcess::start_env(d.path(), &["--rotation-check-secs", "1"], &[pass]);
    let period = |module: &str| {
        let (s, body) = node.call("GET", "/v1/keys", None);
        assert_eq!(s, 200, "{body}");
        body["slots"].as_array().unwrap().iter().find(|x| x["module"] == module).unwrap()["current_period"].as_u64().unwrap()
    };
    let start = std::time::Instant::now();
    while period("consensus") < 3 {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "scheduled rotation did not run");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(period("ledger"), 1, "a slot without an interval gets its first key, then rotates only on demand");
    let (s, body) = node.call("POST", "/v1/keys/ledger/payload/rotate", None);
    assert_eq!((s, body["period"].as_u64()), (200, Some(2)), "{body}");
    let (_, body) = node.call("GET", "/v1/keys", None);
    let text = body.to_string();
    assert!(!text.contains("sealed"), "no sealed or clear secret leaves the node: {text}");
    assert!(body["keys"].as_array().unwrap().iter().any(|k| k["module"] == "ledger" && k["period"] == 1 && !k["retired_at"].is_null()));
    let (s, body) = node.call("POST", "/v1/keys/nobody/nothing/rotate", None);
    assert_eq!((s, body["code"].as_str()), (404, Some("not_found")), "{body}");
}
