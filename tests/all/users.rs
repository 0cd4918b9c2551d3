//! Users of the admin API (guide §5.2.5, issue 11): names with Argon2id password hashes in
//! node.toml, sessions from `POST /v1/login` or HTTP Basic on each request, the role admin,
//! wrong passwords limited per address and logged, the shared admin token switchable off.

use crate::support::{NodeProcess, init_node, joule, run, tempdir};
use base64::Engine;
use serde_json::json;

/// (status, JSON) of a GET with an `Authorization` header.
fn get_with(node: &NodeProcess, path: &str, authorization: &str) -> (u16, serde_json::Value) {
    let mut r = NodeProcess::agent().get(&format!("{}{path}", node.base)).header("Authorization", authorization).call().expect("request");
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default())
}

fn login(node: &NodeProcess, name: &str, password: &str) -> (u16, serde_json::Value) {
    let mut r = NodeProcess::agent().post(&format!("{}/v1/login", node.base)).send_json(json!({"name": name, "password": password})).expect("request");
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default())
}

fn basic(name: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}")))
}

#[test]
fn users_sign_in_with_their_password_only_admins_administer_and_wrong_passwords_are_limited_and_logged() {
    let d = tempdir();
    init_node(d.path(), &[]);
    for (name, role) in [("alice", Some("admin")), ("bob", None)] {
        let mut cmd = joule();
        cmd.args(["user", "add", "--dir"]).arg(d.path()).args(["--name", name]).env("JOULE_PASSWORD", format!("{name}'s long password"));
        if let Some(r) = role {
            cmd.args(["--role", r]);
        }
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 0, "{out}{err}");
    }
    let toml = std::fs::read_to_string(d.path().join("node.toml")).expect("node.toml");
    assert!(toml.contains("$argon2id$v=19$") && !toml.contains("long password"), "only hashes are kept:\n{toml}");

    let (node, log) = NodeProcess::start_logged(d.path(), &["--listen", "127.0.0.1:0", "--admin-auth-max-failures", "3"]);
    // A session, or name and password on each request, opens the admin API to an admin.
    let (status, s) = login(&node, "alice", "alice's long password");
    assert_eq!((status, s["user"].as_str()), (200, Some("alice")), "{s}");
    let token = s["token"].as_str().expect("token").to_string();
    assert_eq!(get_with(&node, "/v1/plugins", &format!("Bearer {token}")).0, 200);
    assert_eq!(get_with(&node, "/v1/plugins", &basic("alice", "alice's long password")).0, 200);
    // Not to a user without the role.
    let (_, b) = login(&node, "bob", "bob's long password");
    let (status, v) = get_with(&node, "/v1/plugins", &format!("Bearer {}", b["token"].as_str().expect("token")));
    assert_eq!((status, v["code"].as_str()), (403, Some("not_permitted")), "{v}");
    // Signed out, the session no longer works.
    let mut r =
        NodeProcess::agent().post(&format!("{}/v1/logout", node.base)).header("Authorization", &format!("Bearer {token}")).send_empty().expect("request");
    assert!(r.body_mut().read_to_string().unwrap_or_default().contains("\"closed\":true"));
    let (status, v) = get_with(&node, "/v1/plugins", &format!("Bearer {token}"));
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_token")), "{v}");

    // Wrong passwords: 401 each, logged; with the dead session above they make the three
    // failures allowed, after which the address waits, even with the right password.
    let (status, v) = get_with(&node, "/v1/plugins", &basic("alice", "guess"));
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_credentials")), "{v}");
    let (status, v) = login(&node, "alice", "guess 2");
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_credentials")), "{v}");
    let (status, v) = login(&node, "alice", "alice's long password");
    assert_eq!((status, v["code"].as_str()), (429, Some("too_many_failures")), "{v}");
    let logged = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(logged.contains("a sign-in as \"alice\"") && logged.contains("wrong credentials (bad_credentials)"), "{logged}");
}

#[test]
fn the_shared_admin_token_can_be_switched_off_once_an_admin_user_exists() {
    let d = tempdir();
    init_node(d.path(), &[]);
    let node = NodeProcess::start(d.path(), &["--listen", "127.0.0.1:0"]);
    let text = std::fs::read_to_string(d.path().join("node.toml")).expect("node.toml");
    // Off with no admin user: refused, nothing changed.
    let (status, v) = node.put("/v1/config/node", &format!("admin-token = false\n{text}"));
    assert_eq!((status, v["code"].as_str()), (400, Some("bad_config")), "{v}");
    // `joule user add` hands the running node its new user at once.
    let (code, out, err) =
        run(joule().args(["user", "add", "--dir"]).arg(d.path()).args(["--name", "carol", "--role", "admin"]).env("JOULE_PASSWORD", "carol's long password"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("the running node took the change"), "{out}");
    let text = std::fs::read_to_string(d.path().join("node.toml")).expect("node.toml");
    let (status, v) = node.put("/v1/config/node", &format!("admin-token = false\n{text}"));
    assert_eq!((status, v["restart_required"].as_bool()), (200, Some(false)), "{v}");
    let (status, v) = get_with(&node, "/v1/plugins", &format!("Bearer {}", node.token));
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_token")), "the admin token is off: {v}");
    let (status, s) = login(&node, "carol", "carol's long password");
    assert_eq!(status, 200, "{s}");
    assert_eq!(get_with(&node, "/v1/plugins", &format!("Bearer {}", s["token"].as_str().expect("token"))).0, 200);
    // Removed, carol's session ends.
    let (code, out, err) = run(joule().args(["user", "remove", "--dir"]).arg(d.path()).args(["--name", "carol"]));
    assert!(code != 0 && err.contains("admin-token = false needs a [[user]] with the role admin"), "the last admin stays: {out}{err}");
}
