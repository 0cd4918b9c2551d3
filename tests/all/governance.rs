//! Governing a running network by vote (guide §4.2.2 a–b, §5.2.3–5.2.4): four validator
//! processes vote a fifth node in and one out through `joule governance`, withdrawn and
//! expired votes do not count, and a node outside the set cannot connect.

use crate::network::{start_all, up, wait_for, wait_height};
use crate::support::{NodeProcess, data_tx, joule, run, suite, tempdir};
use std::path::Path;

/// `joule governance ARGS --dir DIR` as the node in `dir`; its stdout, after asserting it
/// succeeded and once every node in `all` holds the block that counted it.
pub(crate) fn governance(dir: &Path, args: &[&str], all: &[&NodeProcess]) -> String {
    let (code, out, err) = run(joule().arg("governance").args(args).arg("--dir").arg(dir));
    assert_eq!(code, 0, "joule governance {args:?} failed:\n{out}\n{err}");
    let top = all.iter().map(|n| n.height()).max().unwrap_or(0);
    for n in all {
        wait_height(n, top);
    }
    out
}

/// The open proposal `id` as node sees it: (weight for, voters).
fn tally(node: &NodeProcess, id: &str) -> Option<(u64, Vec<String>)> {
    let (status, v) = node.get("/v1/governance");
    assert_eq!(status, 200, "{v}");
    let p = v["proposals"].as_array()?.iter().find(|p| p["id"] == id)?.clone();
    let voters = p["votes"].as_array().map(|vs| vs.iter().map(|x| x["voter"].as_str().unwrap_or_default().to_string()).collect()).unwrap_or_default();
    Some((p["weight_for"].as_u64().unwrap_or(0), voters))
}

pub(crate) fn value_after<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|r| r.split_whitespace().next().unwrap_or_default())
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
}

fn validator_key(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("node.toml")).expect("node.toml");
    let v: toml::Value = toml::from_str(&text).expect("node.toml is TOML");
    v["key"][0]["public-key"].as_str().expect("a node key").to_string()
}

#[test]
fn validators_vote_a_fifth_node_in_and_one_out_and_withdrawn_or_expired_votes_do_not_count() {
    let dir = tempdir();
    up(dir.path(), 4, "gm");
    let nodes = start_all(dir.path(), 4);
    let node_dir = |i: usize| dir.path().join(format!("node{i}"));

    // §5.2.3: the new node is configured and makes its keys; it is not a member yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let joining = node_dir(4);
    let (code, out, err) = run(joule()
        .args(["init", "--name", "node4", "--p2p-address", &format!("127.0.0.1:{port}"), "--dir"])
        .arg(&joining)
        .arg("--join")
        .arg(node_dir(0).join("network.toml")));
    assert_eq!(code, 0, "joule init --join failed:\n{out}\n{err}");
    let (new_validator, new_network_key) = (value_after(&out, "validator key "), value_after(&out, "network key "));
    assert!(out.contains("joule governance propose --add-node node4="), "{out}");
    let node4 = NodeProcess::start(&joining, &["--listen", "127.0.0.1:0"]);
    // A node not in the set cannot connect: every member refuses its handshake.
    wait_for("node0 to refuse node4", || {
        let m = NodeProcess::agent().get(&format!("{}/metrics", nodes[0].base)).call().unwrap().into_body().read_to_string().unwrap();
        m.lines().any(|l| l.starts_with("p2p_peers_refused_total{channel=\"grid\"}") && !l.ends_with(" 0"))
    });
    assert_eq!(node4.height(), 0, "it got no blocks");
    assert_eq!(node4.get("/v1/peers").1["peers"].as_array().map(Vec::len), Some(0));

    let all: Vec<&NodeProcess> = nodes.iter().collect();
    // node0 proposes: 1 of 4.
    let add_node = format!("node4={new_network_key}");
    let out = governance(&node_dir(0), &["propose", "--add-node", &add_node, "--add-validator", new_validator], &all);
    let id = value_after(&out, "proposal ").trim_end_matches(':').to_string();
    assert!(!out.contains("it passed"), "{out}");
    let voter = |i: usize| validator_key(&node_dir(i));
    assert_eq!(tally(&nodes[2], &id), Some((1, vec![voter(0)])), "every node counts the same votes");
    // node1 votes and takes its vote back: it no longer counts.
    governance(&node_dir(1), &["vote", &id], &all);
    assert_eq!(tally(&nodes[0], &id).map(|t| t.0), Some(2));
    governance(&node_dir(1), &["withdraw", &id], &all);
    assert_eq!(tally(&nodes[0], &id), Some((1, vec![voter(0)])));
    // node2 votes until 3 blocks past the head (it counts in the next block, which takes
    // it); node0 renews its vote (the block after); then node1 votes in a block where
    // node2's vote has expired: 2 of 4, not passed.
    let out = governance(&node_dir(2), &["vote", &id, "--expires-in", "3"], &all);
    assert!(!out.contains("it passed"), "{out}");
    governance(&node_dir(0), &["vote", &id], &all);
    let out = governance(&node_dir(1), &["vote", &id], &all);
    assert!(!out.contains("it passed"), "node2's vote had expired: {out}");
    let (weight, voters) = tally(&nodes[0], &id).expect("still open");
    assert_eq!(weight, 2, "{voters:?}");
    assert!(!voters.contains(&voter(2)), "the expired vote is gone: {voters:?}");
    // node2 votes again: 3 of 4 passes, and node4 is a member from the next block on.
    let out = governance(&node_dir(2), &["vote", &id], &all);
    assert!(out.contains("it passed"), "{out}");
    let (_, view) = nodes[0].get("/v1/governance");
    assert_eq!(view["members"]["validators"].as_array().map(Vec::len), Some(5), "{view}");
    assert_eq!(view["members"]["nodes"].as_array().map(Vec::len), Some(5), "{view}");
    assert!(view["proposals"].as_array().is_some_and(Vec::is_empty), "{view}");

    // node4 connects now, syncs every block, and seals blocks at its turn.
    wait_for("node4 to connect to the four", || node4.get("/v1/peers").1["peers"].as_array().map(Vec::len) == Some(4));
    let s = suite("gm");
    let kp = s.crypto().generate_key("sm2").expect("key");
    let mut by_node4 = false;
    let mut nonce = 0u64;
    for n in 0..15u64 {
        nonce = n + 1;
        let tx = data_tx(&s, &kp, "grid", n, "meter/1", format!("{n} kWh").as_bytes());
        let (status, v) = nodes[0].submit(&tx);
        assert_eq!(status, 202, "{v}");
        let record = nodes[0].wait_tx(v["hash"].as_str().expect("hash"));
        let height = record["block_height"].as_u64().expect("height");
        let (_, block) = nodes[0].get(&format!("/v1/blocks/{height}?full=false"));
        if block["header"]["proposer"] == new_validator {
            by_node4 = true;
            break;
        }
    }
    assert!(by_node4, "node4 sealed none of the blocks that followed");
    wait_height(&node4, nodes[0].height());

    // §5.2.4: node3 is voted out, as validator and node; the others drop it.
    let net: toml::Value = toml::from_str(&std::fs::read_to_string(node_dir(0).join("network.toml")).expect("network.toml")).expect("TOML");
    let node3_network_key = net["channel"][0]["node"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["name"].as_str() == Some("node3")))
        .and_then(|n| n["network-key"].as_str())
        .expect("node3's network key")
        .to_string();
    // node3 may never hear of the block that removes it: the others drop it at once.
    let all = [&nodes[0], &nodes[1], &nodes[2], &node4];
    let out = governance(&joining, &["propose", "--remove-validator", &voter(3), "--remove-node", &node3_network_key], &all);
    let id = value_after(&out, "proposal ").trim_end_matches(':').to_string();
    governance(&node_dir(0), &["vote", &id], &all);
    let out = governance(&node_dir(1), &["vote", &id], &all);
    assert!(out.contains("it passed"), "3 of 5: {out}");
    for n in [&nodes[0], &nodes[1], &nodes[2], &node4] {
        wait_for("the members to drop node3", || node3_dropped(n, &node3_network_key));
    }
    assert_eq!(nodes[0].get("/v1/governance").1["members"]["validators"].as_array().map(Vec::len), Some(4));
    // The chain goes on without it: its turn is gone from the rotation.
    for n in nonce..nonce + 5 {
        let (status, v) = nodes[1].submit(&data_tx(&s, &kp, "grid", n, "meter/1", b"after"));
        assert_eq!(status, 202, "{v}");
        nodes[1].wait_tx(v["hash"].as_str().expect("hash"));
    }
}

fn node3_dropped(node: &NodeProcess, key: &str) -> bool {
    let (_, peers) = node.get("/v1/peers");
    peers["peers"].as_array().is_some_and(|ps| ps.iter().all(|p| p["network_key"] != key))
}
