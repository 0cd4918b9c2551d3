//! Liveness and readiness as an orchestrator probes them, and the plugins a running channel
//! depends on: the admin API cannot deactivate or remove the last plugin serving a
//! channel's suite or engine (409, naming the channel), which used to leave `POST /v1/tx`
//! answering 500 and production failing while `/v1/health` said `ok`.

use crate::support::{NodeProcess, data_tx, init_node, suite, tempdir};

#[test]
fn a_working_node_is_live_and_ready_and_says_why() {
    let d = tempdir();
    init_node(d.path(), &["--block-interval-ms", "100"]);
    let node = NodeProcess::start(d.path(), &[]);
    let (s, live) = node.get("/livez");
    assert_eq!((s, live["status"].as_str()), (200, Some("alive")), "{live}");
    let (s, ready) = node.get("/readyz");
    assert_eq!((s, ready["status"].as_str()), (200, Some("ready")), "{ready}");
    let names: Vec<&str> = ready["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["storage", "plugins", "progress"]);
    assert!(ready["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{ready}");
    let (s, health) = node.get("/v1/health");
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")), "{health}");
    assert_eq!(health["checks"], ready["checks"], "the same checks");
}

#[test]
fn the_plugins_serving_a_channel_cannot_be_taken_away() {
    let d = tempdir();
    init_node(d.path(), &["--crypto-suite", "intl", "--block-interval-ms", "100"]);
    let node = NodeProcess::start(d.path(), &[]);
    let in_use = |path: &str, what: &str| {
        let (s, body) = node.call("POST", path, None);
        assert_eq!((s, body["code"].as_str()), (409, Some("in_use")), "{path}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(what), "{path}: {error}");
    };
    // The channel's suite (sha256, ecdsa-p256) and engine; the keystore's cipher (sm4-gcm).
    in_use("/v1/plugins/crypto-intl/deactivate", "channel grid");
    in_use("/v1/plugins/consensus-poa/deactivate", "channel grid");
    in_use("/v1/plugins/crypto-gm/deactivate", "the keystore");
    let (_, plugins) = node.call("GET", "/v1/plugins", None);
    let version = plugins.as_array().unwrap().iter().find(|p| p["name"] == "crypto-intl").unwrap()["version"].as_str().unwrap().to_string();
    let (s, body) = node.call("DELETE", &format!("/v1/plugins/crypto-intl/{version}"), None);
    assert_eq!((s, body["code"].as_str()), (409, Some("in_use")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("channel grid"), "{body}");

    // What no channel uses still comes and goes.
    let (s, body) = node.call("POST", "/v1/plugins/crypto-extra/deactivate", None);
    assert_eq!(s, 200, "{body}");
    let (s, body) = node.call("POST", "/v1/plugins/crypto-extra/activate", None);
    assert_eq!(s, 200, "{body}");

    // The channel kept working throughout.
    let s_intl = suite("intl");
    let kp = s_intl.crypto().generate_key("ecdsa-p256").unwrap();
    let (s, body) = node.submit(&data_tx(&s_intl, &kp, "grid", 0, "meter/1", b"42"));
    assert_eq!(s, 202, "{body}");
    node.wait_tx(body["hash"].as_str().unwrap());
    let (s, ready) = node.get("/readyz");
    assert_eq!(s, 200, "{ready}");
    let (_, audit) = node.call("GET", "/v1/plugins/audit", None);
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "refuse" && e["plugin"] == "crypto-intl"), "refusals are audited: {audit}");
}
