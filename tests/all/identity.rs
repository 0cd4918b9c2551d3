//! Identity by certificates on a network (issue 11): `joule up --certificates` makes a
//! consortium of one organisation per node; a user applies with `joule ca apply`, the
//! organisation's node approves, renews and revokes it; from the block after the
//! revocation every node refuses the user. Bad requests get a clear 4xx and change nothing.

use crate::network::{start_all, wait_for, wait_height, wait_metric};
use crate::support::{NodeProcess, assert_every_metric_has_help, data_tx, joule, run, suite, tempdir};
use joule_primitives::Hasher;
use serde_json::json;
use std::path::Path;

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(joule().args(args));
    assert_eq!(code, 0, "joule {args:?} failed:\n{out}\n{err}");
    out
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn a_user_certified_through_its_organisation_is_refused_by_every_node_from_the_block_after_its_revocation() {
    let d = tempdir();
    ok(&["up", "--nodes", "3", "--certificates", "--traffic-seconds", "0", "--no-market", "--no-serve", "--dir", p(d.path())]);
    let nodes = start_all(d.path(), 3);
    let dir = |i: usize| d.path().join(format!("node{i}"));
    let (status, v) = nodes[0].get("/v1/pki");
    assert_eq!((status, v["organisations"].as_array().map(Vec::len)), (200, Some(3)), "{v}");

    // The user makes its key and applies to org1 through node1; node1's admin approves.
    let key = d.path().join("user.key");
    let out = ok(&[
        "ca",
        "apply",
        "--dir",
        p(&dir(1)),
        "--organisation",
        "org1",
        "--subject",
        "CN=meter-9,O=org1",
        "--key-out",
        p(&key),
        "--role",
        "client",
        "--name",
        "Meter 9",
    ]);
    assert!(out.contains("wrote your new sm2 key"), "{out}");
    let id = out.lines().find_map(|l| l.strip_prefix("application ")).and_then(|l| l.split_whitespace().next()).expect("application id").to_string();
    let (code, out, _) = run(joule().args(["ca", "status", &id, "--dir", p(&dir(1))]));
    assert_eq!(code, 1, "pending is a negative answer: {out}");
    let out = ok(&["ca", "list", "--dir", p(&dir(1))]);
    assert!(out.contains(&id) && out.contains("pending") && out.contains("Meter 9"), "{out}");
    // node0 holds org0's CA key, not org1's.
    let (code, _, err) = run(joule().args(["ca", "approve", &id, "--dir", p(&dir(0))]));
    assert!(code != 0 && err.contains("no application"), "node0 keeps no such application: {err}");
    ok(&["ca", "approve", &id, "--dir", p(&dir(1)), "--days", "30"]);
    let cert = d.path().join("user.pem");
    ok(&["ca", "status", &id, "--dir", p(&dir(1)), "--out", p(&cert)]);

    // The user's key, as the node would use it.
    let gm = suite("gm");
    let pem = std::fs::read_to_string(&key).expect("key");
    let private_key = joule_crypto::pem::decode(joule_crypto::pem::PRIVATE_KEY, pem.as_bytes()).expect("PKCS#8 PEM");
    let public_key = gm.crypto().public_key("sm2", &private_key).expect("public key");
    let user = joule_crypto::KeyPair { private_key: private_key.into(), public_key };
    let account = gm.hash(&user.public_key).expect("account").to_hex();
    let (status, rec) = nodes[2].get(&format!("/v1/pki/certificates/{account}"));
    assert_eq!((status, rec["organisation"].as_str(), rec["roles"][0].as_str()), (200, Some("org1"), Some("client")), "{rec}");

    // It sends through node2; renewed, it keeps its account and sends on.
    let send = |node: &NodeProcess, nonce: u64| node.submit(&data_tx(&gm, &user, "grid", nonce, "meter/9", format!("{nonce} kWh").as_bytes()));
    let (status, v) = send(&nodes[2], 0);
    assert_eq!(status, 202, "{v}");
    nodes[2].wait_tx(v["hash"].as_str().expect("hash"));
    let out = ok(&["ca", "renew", &account, "--dir", p(&dir(1)), "--json"]);
    let renewed: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_ne!(renewed["serial"], rec["serial"], "a new serial");
    wait_for("the renewal on node0", || nodes[0].get(&format!("/v1/pki/certificates/{account}")).1["serial"] == renewed["serial"]);
    let (status, v) = send(&nodes[0], 1);
    assert_eq!(status, 202, "{v}");
    nodes[0].wait_tx(v["hash"].as_str().expect("hash"));

    // An admin of another organisation cannot revoke it.
    let (code, _, err) = run(joule().args(["ca", "revoke", &account, "--dir", p(&dir(0))]));
    assert!(code != 0 && err.contains("does not hold organisation org1's CA key"), "{err}");
    // Its own organisation can: from the block after, no node admits it.
    let out = ok(&["ca", "revoke", &account, "--dir", p(&dir(1)), "--json"]);
    let revoked: serde_json::Value = serde_json::from_str(&out).expect("json");
    let (_, tx) = nodes[1].get(&format!("/v1/tx/{}", revoked["tx"].as_str().expect("tx")));
    let height = tx["block_height"].as_u64().expect("committed");
    for (i, node) in nodes.iter().enumerate() {
        wait_height(node, height);
        let (status, v) = send(node, 2);
        assert_eq!((status, v["code"].as_str()), (403, Some("not_permitted")), "node{i}: {v}");
        assert!(v["error"].as_str().unwrap_or("").contains(&format!("revoked in block {height}")), "node{i}: {v}");
    }

    // Every node serves org1's CRL, which OpenSSL checks against org1's CA and which
    // revokes the user's certificate.
    let crl = d.path().join("org1.crl");
    ok(&["ca", "crl", "org1", "--dir", p(&dir(2)), "--out", p(&crl)]);
    let (_, pki) = nodes[2].get("/v1/pki");
    let org1 = pki["organisations"].as_array().and_then(|o| o.iter().find(|o| o["name"] == "org1")).expect("org1").clone();
    let (ca, root) = (d.path().join("org1.pem"), d.path().join("root.pem"));
    std::fs::write(&ca, org1["ca_certificate"].as_str().expect("pem")).expect("write");
    std::fs::write(&root, pki["root_certificate"].as_str().expect("pem")).expect("write");
    let checked = std::process::Command::new("openssl").args(["crl", "-in", p(&crl), "-CAfile", p(&ca), "-noout"]).output().expect("openssl");
    let said = format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && said.contains("verify OK"), "openssl crl: {said}");
    let verify = std::process::Command::new("openssl")
        .args(["verify", "-CAfile", p(&root), "-untrusted", p(&ca), "-crl_check", "-CRLfile", p(&crl), p(&cert)])
        .output()
        .expect("openssl");
    let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(!verify.status.success() && said.contains("certificate revoked"), "the first certificate, renewed since, is revoked with the key: {said}");
    // Revoking again is refused, and changes nothing.
    let (code, _, err) = run(joule().args(["ca", "revoke", &account, "--dir", p(&dir(1))]));
    assert!(code != 0 && err.contains("revoked in block"), "{err}");

    // The console's view (§4.6.7): every node counts what the blocks recorded, the CA node
    // its reviews.
    wait_metric(&nodes[2], "chain_certificate_events_total{channel=\"grid\",event=\"certificate_revoked\"} 1");
    let metrics = wait_metric(&nodes[2], "chain_certificate_events_total{channel=\"grid\",event=\"certificate_renewed\"} 1");
    assert_every_metric_has_help(&metrics);
    let metrics = wait_metric(&nodes[1], "pki_applications_total{outcome=\"approved\"} 1");
    assert!(metrics.contains("pki_applications_pending 0"), "{metrics}");
}

#[test]
fn bad_applications_and_reviews_get_a_clear_4xx_and_change_nothing() {
    let d = tempdir();
    ok(&["up", "--nodes", "1", "--certificates", "--traffic-seconds", "0", "--no-market", "--no-serve", "--dir", p(d.path())]);
    let node = NodeProcess::start(&d.path().join("node0"), &["--listen", "127.0.0.1:0"]);
    let apply = |body: serde_json::Value| node.call("POST", "/v1/pki/applications", Some(body));
    let gm = suite("gm");
    let kp = gm.crypto().generate_key("sm2").expect("key");
    let csr = {
        let key = joule_node::ca::LocalKey { crypto: gm.crypto(), algorithm: "sm2", pair: &kp };
        joule_crypto::pem::encode("CERTIFICATE REQUEST", &joule_pki::request(&key, "CN=meter-1,O=org0").expect("request"))
    };
    // A request whose signature is broken, one that is not a request, an unknown
    // organisation, a bad role.
    let mut broken = csr.clone().into_bytes();
    let at = broken.len() / 2;
    broken[at] = if broken[at] == b'A' { b'B' } else { b'A' };
    for (body, what) in [
        (json!({"organisation": "org0", "csr": String::from_utf8(broken).expect("utf-8")}), "request"),
        (json!({"organisation": "org0", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}), "request"),
        (json!({"organisation": "nobody", "csr": csr}), "not a member organisation"),
        (json!({"organisation": "org0", "csr": csr, "roles": ["a b"]}), "role"),
    ] {
        let (status, v) = apply(body);
        assert_eq!((status, v["code"].as_str()), (400, Some("bad_request")), "{v}");
        assert!(v["error"].as_str().unwrap_or("").contains(what), "{what}: {v}");
    }
    let (status, v) = node.call("GET", "/v1/pki/applications", None);
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(0)), "nothing kept: {v}");

    // A good one: reviews need the admin token; rejected, it cannot be approved after.
    let (status, a) = apply(json!({"organisation": "org0", "csr": csr, "roles": ["client"]}));
    assert_eq!(status, 201, "{a}");
    let id = a["id"].as_str().expect("id").to_string();
    let r = NodeProcess::agent().post(&format!("{}/v1/pki/applications/{id}/approve", node.base)).send_json(json!({})).expect("request");
    assert_eq!(r.status().as_u16(), 401, "approval without the admin token");
    let (status, v) = node.call("POST", &format!("/v1/pki/applications/{id}/reject"), Some(json!({"reason": "unknown meter"})));
    assert_eq!((status, v["status"].as_str()), (200, Some("rejected")), "{v}");
    let (status, v) = node.call("POST", &format!("/v1/pki/applications/{id}/approve"), Some(json!({})));
    assert_eq!((status, v["code"].as_str()), (409, Some("conflict")), "{v}");
    let (status, v) = node.get(&format!("/v1/pki/applications/{id}"));
    assert_eq!((status, v["status"].as_str(), v["reason"].as_str()), (200, Some("rejected"), Some("unknown meter")), "{v}");
    let account = gm.hash(&kp.public_key).expect("account").to_hex();
    let (status, _) = node.get(&format!("/v1/pki/certificates/{account}"));
    assert_eq!(status, 404, "no certificate was issued");
    // Revoking or renewing an account without a certificate: 404.
    for path in ["/v1/pki/revocations", "/v1/pki/renewals"] {
        let (status, v) = node.call("POST", path, Some(json!({"account": account})));
        assert_eq!((status, v["code"].as_str()), (404, Some("not_found")), "{path}: {v}");
    }
}

fn peer_keys(node: &NodeProcess) -> Vec<String> {
    let (_, peers) = node.get("/v1/peers");
    peers["peers"].as_array().into_iter().flatten().filter_map(|p| p["network_key"].as_str().map(str::to_string)).collect()
}

#[test]
fn a_node_whose_peer_certificate_is_revoked_is_dropped_within_a_block_and_cannot_reconnect() {
    let d = tempdir();
    ok(&["up", "--nodes", "4", "--consensus", "bft", "--certificates", "--traffic-seconds", "0", "--no-market", "--no-serve", "--dir", p(d.path())]);
    let nodes = start_all(d.path(), 4);
    let dir = |i: usize| d.path().join(format!("node{i}"));
    for n in &nodes {
        wait_for("every node to connect to the three others", || peer_keys(n).len() == 3);
    }
    let net: toml::Value = toml::from_str(&std::fs::read_to_string(dir(0).join("network.toml")).expect("network.toml")).expect("TOML");
    let node3_key = net["channel"][0]["node"][3]["network-key"].as_str().expect("node3's network key").to_string();

    // Its organisation (org3, whose CA key node3 holds) revokes the node's peer certificate.
    let out = ok(&["ca", "revoke", "--network-key", &node3_key, "--dir", p(&dir(3)), "--json"]);
    let revoked: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(revoked["organisation"], "org3", "{revoked}");
    for (i, n) in nodes.iter().take(3).enumerate() {
        wait_for(&format!("node{i} to drop node3"), || !peer_keys(n).contains(&node3_key));
    }

    // The others go on without it (3 of 4 under BFT) and it cannot get back in: a user
    // certified through node0 transacts, and node3 neither connects nor gets the blocks.
    let key = d.path().join("user.key");
    let out = ok(&["ca", "apply", "--dir", p(&dir(0)), "--organisation", "org0", "--subject", "CN=meter-1,O=org0", "--key-out", p(&key)]);
    let id = out.lines().find_map(|l| l.strip_prefix("application ")).and_then(|l| l.split_whitespace().next()).expect("id").to_string();
    ok(&["ca", "approve", &id, "--dir", p(&dir(0))]);
    let top = nodes[0].height();
    std::thread::sleep(std::time::Duration::from_secs(3));
    for (i, n) in nodes.iter().take(3).enumerate() {
        assert!(!peer_keys(n).contains(&node3_key), "node3 got back into node{i}");
    }
    assert!(peer_keys(&nodes[3]).is_empty(), "node3 has no peers: {:?}", peer_keys(&nodes[3]));
    assert!(nodes[3].height() < top, "node3 stayed behind at {} while the others reached {top}", nodes[3].height());
    // Its certificate, on the others' chain: revoked.
    let (_, pki) = nodes[0].get(&format!("/v1/pki/certificates/{}", revoked["account"].as_str().expect("account")));
    assert!(pki["revoked_at"].as_u64().is_some(), "{pki}");
}

#[test]
fn an_organisation_voted_in_brings_a_node_that_syncs_and_users_that_transact_and_voted_out_they_are_refused() {
    use crate::governance::{governance, value_after};
    let d = tempdir();
    ok(&["up", "--nodes", "3", "--certificates", "--traffic-seconds", "0", "--no-market", "--no-serve", "--dir", p(d.path())]);
    let nodes = start_all(d.path(), 3);
    let all: Vec<&NodeProcess> = nodes.iter().collect();
    let dir = |i: usize| d.path().join(format!("node{i}"));

    // The new organisation's node, its CA key and request; the root's holder (node0)
    // certifies it, another node cannot; its bundle certifies its node.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let out = ok(&["init", "--name", "node3", "--p2p-address", &format!("127.0.0.1:{port}"), "--dir", p(&dir(3)), "--join", p(&dir(0).join("network.toml"))]);
    let network_key = value_after(&out, "network key ").to_string();
    let (csr, ca, bundle) = (d.path().join("windco.csr"), d.path().join("windco-ca.pem"), d.path().join("windco.toml"));
    ok(&["org", "init", "--dir", p(&dir(3)), "--name", "windco", "--out", p(&csr)]);
    let (code, _, err) = run(joule().args(["org", "certify", "--dir", p(&dir(1)), "--name", "windco", "--csr", p(&csr), "--out", p(&ca)]));
    assert!(code != 0 && err.contains("does not hold the consortium's root CA key"), "{err}");
    ok(&["org", "certify", "--dir", p(&dir(0)), "--name", "windco", "--csr", p(&csr), "--out", p(&ca)]);
    let out = ok(&["org", "bundle", "--dir", p(&dir(3)), "--name", "windco", "--ca-certificate", p(&ca), "--out", p(&bundle)]);
    assert!(out.contains(&format!("--add-node node3={network_key}")), "{out}");

    // Two of three validators vote it in, with its node.
    let add_node = format!("node3={network_key}");
    let out = governance(&dir(0), &["propose", "--add-organisation", p(&bundle), "--add-node", &add_node], &all);
    let id = value_after(&out, "proposal ").trim_end_matches(':').to_string();
    assert!(!out.contains("it passed"), "{out}");
    let out = governance(&dir(1), &["vote", &id], &all);
    assert!(out.contains("it passed"), "{out}");
    let (_, pki) = nodes[2].get("/v1/pki");
    assert!(pki["organisations"].as_array().is_some_and(|o| o.iter().any(|o| o["name"] == "windco")), "{pki}");

    // Its node connects and syncs; its admin (node3) certifies a user, who transacts.
    let node3 = NodeProcess::start(&dir(3), &["--listen", "127.0.0.1:0"]);
    wait_height(&node3, nodes[0].height());
    let key = d.path().join("turbine.key");
    let out = ok(&["ca", "apply", "--dir", p(&dir(3)), "--organisation", "windco", "--subject", "CN=turbine-7,O=windco", "--key-out", p(&key)]);
    let app = out.lines().find_map(|l| l.strip_prefix("application ")).and_then(|l| l.split_whitespace().next()).expect("id").to_string();
    ok(&["ca", "approve", &app, "--dir", p(&dir(3))]);
    let gm = suite("gm");
    let pem = std::fs::read_to_string(&key).expect("key");
    let private_key = joule_crypto::pem::decode(joule_crypto::pem::PRIVATE_KEY, pem.as_bytes()).expect("PKCS#8 PEM");
    let public_key = gm.crypto().public_key("sm2", &private_key).expect("public key");
    let user = joule_crypto::KeyPair { private_key: private_key.into(), public_key };
    let (status, v) = node3.submit(&data_tx(&gm, &user, "grid", 0, "turbine/7", b"3 MWh"));
    assert_eq!(status, 202, "{v}");
    // Admitted at node3 (the others hear of it by gossip): committed there, then everywhere.
    let record = node3.wait_tx(v["hash"].as_str().expect("hash"));
    wait_height(&nodes[0], record["block_height"].as_u64().expect("height"));

    // Voted out: from the next block its user is refused and its node dropped.
    let all4: Vec<&NodeProcess> = nodes.iter().collect();
    let out = governance(&dir(0), &["propose", "--remove-organisation", "windco"], &all4);
    let id = value_after(&out, "proposal ").trim_end_matches(':').to_string();
    let out = governance(&dir(2), &["vote", &id], &all4);
    assert!(out.contains("it passed"), "{out}");
    for (i, n) in nodes.iter().enumerate() {
        let (status, v) = n.submit(&data_tx(&gm, &user, "grid", 1, "turbine/7", b"4 MWh"));
        assert_eq!((status, v["code"].as_str()), (403, Some("not_permitted")), "node{i}: {v}");
        assert!(v["error"].as_str().unwrap_or("").contains("organisation windco is not a member"), "node{i}: {v}");
        wait_for(&format!("node{i} to drop node3"), || !peer_keys(n).contains(&network_key));
    }
    // The audit trail: the organisation's record and the votes that changed it.
    let (_, pki) = nodes[1].get("/v1/pki");
    let windco = pki["organisations"].as_array().and_then(|o| o.iter().find(|o| o["name"] == "windco")).cloned().expect("windco stays on record");
    assert!(windco["removed_at"].as_u64().is_some() && windco["joined_at"].as_u64().is_some_and(|h| h > 0), "{windco}");
}

/// `Signature-Input`, `Signature` (and `Content-Digest` with a body) for a request signed
/// with `kp`, as `docs/formats.md` ("Signed requests") writes them.
fn signed_headers(
    gm: &joule_crypto::SuiteCrypto,
    kp: &joule_crypto::KeyPair,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
    created: u64,
) -> Vec<(String, String)> {
    use base64::Engine;
    use joule_primitives::ChainCrypto;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let account = gm.hash(&kp.public_key).expect("account").to_hex();
    let mut headers = vec![];
    let mut components = vec!["\"@method\"", "\"@path\"", "\"@query\""];
    let mut lines = vec![format!("\"@method\": {method}"), format!("\"@path\": {path}"), format!("\"@query\": ?{query}")];
    if !body.is_empty() {
        let digest = format!("sha-256=:{}:", b64(&suite("intl").hash(body).expect("sha-256").0));
        components.push("\"content-digest\"");
        lines.push(format!("\"content-digest\": {digest}"));
        headers.push(("Content-Digest".to_string(), digest));
    }
    let params = format!("({});created={created};keyid=\"{account}\"", components.join(" "));
    lines.push(format!("\"@signature-params\": {params}"));
    let signature = gm.sign(&kp.private_key, lines.join("\n").as_bytes()).expect("sign");
    headers.push(("Signature-Input".to_string(), format!("joule={params}")));
    headers.push(("Signature".to_string(), format!("joule=:{}:", b64(&signature))));
    headers
}

fn send_signed(node: &NodeProcess, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> (u16, serde_json::Value) {
    let url = format!("{}{path}", node.base);
    let agent = NodeProcess::agent();
    let mut r = match method {
        "GET" => {
            let mut req = agent.get(&url);
            for (k, v) in headers {
                req = req.header(k.as_str(), v.as_str());
            }
            req.call()
        }
        _ => {
            let mut req = agent.post(&url).header("Content-Type", "application/json");
            for (k, v) in headers {
                req = req.header(k.as_str(), v.as_str());
            }
            req.send(body)
        }
    }
    .expect("request");
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default())
}

#[test]
fn a_request_signed_with_an_admin_certificate_opens_the_admin_api_once_and_nothing_else_does() {
    let d = tempdir();
    ok(&["up", "--nodes", "1", "--certificates", "--traffic-seconds", "0", "--no-market", "--no-serve", "--dir", p(d.path())]);
    let node_dir = d.path().join("node0");
    let node = NodeProcess::start(&node_dir, &["--listen", "127.0.0.1:0", "--admin-auth-max-failures", "1000"]);
    let gm = suite("gm");
    // An operator certified as admin, a meter as client.
    let certify = |name: &str, role: &str| {
        let key = d.path().join(format!("{name}.key"));
        let out = ok(&[
            "ca",
            "apply",
            "--dir",
            p(&node_dir),
            "--organisation",
            "org0",
            "--subject",
            &format!("CN={name},O=org0"),
            "--key-out",
            p(&key),
            "--role",
            role,
        ]);
        let id = out.lines().find_map(|l| l.strip_prefix("application ")).and_then(|l| l.split_whitespace().next()).expect("id").to_string();
        ok(&["ca", "approve", &id, "--dir", p(&node_dir)]);
        let pem = std::fs::read_to_string(&key).expect("key");
        let private_key = joule_crypto::pem::decode(joule_crypto::pem::PRIVATE_KEY, pem.as_bytes()).expect("PKCS#8");
        let public_key = gm.crypto().public_key("sm2", &private_key).expect("public key");
        joule_crypto::KeyPair { private_key: private_key.into(), public_key }
    };
    let (operator, meter) = (certify("operator", "admin"), certify("meter-1", "client"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();

    let headers = signed_headers(&gm, &operator, "GET", "/v1/plugins", "", b"", now);
    assert_eq!(send_signed(&node, "GET", "/v1/plugins", &headers, b"").0, 200, "the operator's signed request");
    let (status, v) = send_signed(&node, "GET", "/v1/plugins", &headers, b"");
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_signature")), "a replay: {v}");
    // With a body: the digest is signed; the meter's account is revoked by the operator.
    let meter_account = gm.hash(&meter.public_key).expect("account").to_hex();
    let body = serde_json::to_vec(&serde_json::json!({"account": meter_account})).expect("json");
    let mut altered = body.clone();
    altered.push(b' ');
    let headers = signed_headers(&gm, &operator, "POST", "/v1/pki/revocations", "", &body, now);
    let (status, v) = send_signed(&node, "POST", "/v1/pki/revocations", &headers, &altered);
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_signature")), "another body than the one signed: {v}");
    let headers = signed_headers(&gm, &operator, "POST", "/v1/pki/revocations", "", &body, now + 1);
    let (status, v) = send_signed(&node, "POST", "/v1/pki/revocations", &headers, &body);
    assert_eq!(status, 202, "{v}");
    // A signed path other than the one requested, a stale signature, a client's key.
    let headers = signed_headers(&gm, &operator, "GET", "/v1/keys", "", b"", now + 2);
    assert_eq!(send_signed(&node, "GET", "/v1/plugins", &headers, b"").1["code"], "bad_signature");
    let headers = signed_headers(&gm, &operator, "GET", "/v1/plugins", "", b"", now - 3600);
    assert_eq!(send_signed(&node, "GET", "/v1/plugins", &headers, b"").1["code"], "bad_signature");
    let client = certify("meter-2", "client");
    let headers = signed_headers(&gm, &client, "GET", "/v1/plugins", "", b"", now + 3);
    let (status, v) = send_signed(&node, "GET", "/v1/plugins", &headers, b"");
    assert_eq!((status, v["code"].as_str()), (403, Some("not_permitted")), "a key without the role admin: {v}");
}
