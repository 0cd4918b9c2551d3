//! Network partitions, made by a fault-injecting TCP relay between every pair of nodes:
//! each node dials its peers through relays the test cuts and heals. Under PoA a split
//! network converges on one chain when it heals (a minority cannot seal a branch deeper
//! than the finality depth); under BFT no two nodes ever commit different blocks at a
//! height, and a node cut off catches up.

use crate::network::{start_all, wait_for};
use crate::support::{NodeProcess, data_tx, joule, run, suite, tempdir};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A relay from a port of its own to one node's peer-to-peer address. Cut, it closes its
/// connections and drops new ones at once; healed, it relays again.
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn to(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a relay");
        let addr = listener.local_addr().expect("relay address");
        let (cut, open) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the dialler sees the connection close
                }
                let Ok(outbound) = TcpStream::connect(target) else { continue };
                if let (Ok(a), Ok(b)) = (inbound.try_clone(), outbound.try_clone()) {
                    o.lock().unwrap().extend([a, b]);
                }
                pipe(inbound.try_clone(), outbound.try_clone());
                pipe(Ok(outbound), Ok(inbound));
            }
        });
        Relay { addr, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Copy bytes from one stream to the other until either ends, then close both.
fn pipe(from: std::io::Result<TcpStream>, to: std::io::Result<TcpStream>) {
    let (Ok(mut from), Ok(mut to)) = (from, to) else { return };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// Relays for every ordered pair: `relays[i][j]` carries node i's connections to node j.
/// Each node's `network.toml` is rewritten so it dials its peers through them (the
/// addresses are not genesis fields); it still listens at its own address.
fn relay_all(dir: &Path, n: usize) -> Vec<Vec<Option<Relay>>> {
    let text = std::fs::read_to_string(dir.join("node0/network.toml")).expect("network.toml");
    let config: toml::Value = toml::from_str(&text).expect("network.toml parses");
    let addrs: Vec<String> =
        config["channel"][0]["node"].as_array().expect("channel nodes").iter().map(|node| node["address"].as_str().expect("address").to_string()).collect();
    assert_eq!(addrs.len(), n);
    (0..n)
        .map(|i| {
            let relays: Vec<Option<Relay>> = (0..n).map(|j| (i != j).then(|| Relay::to(addrs[j].parse().expect("address")))).collect();
            let mut mine = text.clone();
            for (j, r) in relays.iter().enumerate() {
                if let Some(r) = r {
                    mine = mine.replace(&format!("\"{}\"", addrs[j]), &format!("\"{}\"", r.addr));
                }
            }
            std::fs::write(dir.join(format!("node{i}/network.toml")), mine).expect("write network.toml");
            relays
        })
        .collect()
}

/// Cut (or heal) every link between the two sides, both ways.
fn split(relays: &[Vec<Option<Relay>>], side: &[usize], heal: bool) {
    for (i, row) in relays.iter().enumerate() {
        for (j, r) in row.iter().enumerate() {
            if let Some(r) = r
                && side.contains(&i) != side.contains(&j)
            {
                if heal { r.heal() } else { r.cut() }
            }
        }
    }
}

fn peers(node: &NodeProcess) -> usize {
    node.get("/v1/peers").1["peers"].as_array().map_or(0, Vec::len)
}

fn hash_at(node: &NodeProcess, height: u64) -> String {
    node.get(&format!("/v1/blocks/{height}?full=false")).1["hash"].as_str().unwrap_or_default().to_string()
}

fn head(node: &NodeProcess) -> (u64, String) {
    let (_, s) = node.get("/v1/status");
    (s["height"].as_u64().unwrap_or_default(), s["head_hash"].as_str().unwrap_or_default().to_string())
}

fn network(engine: &str) -> (tempfile::TempDir, Vec<NodeProcess>, Vec<Vec<Option<Relay>>>) {
    let dir = tempdir();
    let (code, out, err) = run(joule()
        .args(["up", "--nodes", "4", "--consensus", engine, "--block-interval-ms", "300", "--traffic-seconds", "1", "--no-market", "--no-serve", "--dir"])
        .arg(dir.path()));
    assert_eq!(code, 0, "joule up --consensus {engine} failed:\n{out}\n{err}");
    let relays = relay_all(dir.path(), 4);
    let nodes = start_all(dir.path(), 4);
    wait_for("a full mesh through the relays", || nodes.iter().all(|n| peers(n) == 3));
    (dir, nodes, relays)
}

/// One chain on every node, and each of `txs` committed in it everywhere.
fn converged(nodes: &[NodeProcess], txs: &[String]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let last = loop {
        let heads: Vec<_> = nodes.iter().map(head).collect();
        let last = format!("{heads:?}");
        if heads.windows(2).all(|w| w[0] == w[1]) {
            break last;
        }
        if std::time::Instant::now() > deadline {
            let logs: Vec<String> = nodes
                .iter()
                .map(|n| {
                    let (_, p) = n.get("/v1/peers");
                    format!("{}: {p}", n.base)
                })
                .collect();
            panic!("the nodes stayed on different heads: {last}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (height, _) = head(&nodes[0]);
    for h in 1..=height {
        let first = hash_at(&nodes[0], h);
        for n in &nodes[1..] {
            assert_eq!(hash_at(n, h), first, "block {h} differs on {} ({last})", n.base);
        }
    }
    for tx in txs {
        for n in nodes {
            wait_for(&format!("{tx} committed on {}", n.base), || n.get(&format!("/v1/tx/{tx}")).1["status"] == "committed");
        }
    }
}

#[test]
fn a_poa_network_split_in_two_halves_converges_on_one_chain_when_it_heals() {
    let (_dir, nodes, relays) = network("poa");
    let s = suite("gm");
    let (left, right) = (s.crypto().generate_key("sm2").expect("key"), s.crypto().generate_key("sm2").expect("key"));
    let mut sent = vec![];
    let mut send = |node: &NodeProcess, kp: &joule_crypto::KeyPair, nonce: u64| {
        let (status, v) = node.submit(&data_tx(&s, kp, "grid", nonce, &format!("meter/{nonce}"), b"1 kWh"));
        assert_eq!(status, 202, "{v}");
        sent.push(v["hash"].as_str().expect("hash").to_string());
    };
    let before = head(&nodes[0]).0;
    split(&relays, &[0, 1], false);
    wait_for("the halves to lose each other", || nodes.iter().all(|n| peers(n) == 1));
    // Each half has transactions to seal, but two validators of four may seal at most two
    // blocks in a row (one of any three each): each half's branch stays shallower than the
    // finality depth (3).
    for nonce in 0..6 {
        send(&nodes[0], &left, nonce);
        send(&nodes[2], &right, nonce);
        std::thread::sleep(Duration::from_millis(400));
    }
    std::thread::sleep(Duration::from_secs(3));
    let (l, r) = (head(&nodes[0]), head(&nodes[2]));
    assert!(l.0 <= before + 2 && r.0 <= before + 2, "a half went past two blocks: {before} -> {l:?} / {r:?}");
    wait_for("node1 to follow its half", || head(&nodes[1]) == l);
    wait_for("node3 to follow its half", || head(&nodes[3]) == r);
    split(&relays, &[0, 1], true);
    converged(&nodes, &sent);
}

#[test]
fn under_bft_no_two_nodes_commit_different_blocks_across_partitions_and_a_cut_off_node_catches_up() {
    let (_dir, nodes, relays) = network("bft");
    let s = suite("gm");
    let kp = s.crypto().generate_key("sm2").expect("key");
    let mut sent: Vec<String> = vec![];
    let send = |node: &NodeProcess, nonce: u64, sent: &mut Vec<String>| {
        let (status, v) = node.submit(&data_tx(&s, &kp, "grid", nonce, &format!("meter/{nonce}"), b"2 kWh"));
        assert_eq!(status, 202, "{v}");
        let hash = v["hash"].as_str().expect("hash").to_string();
        sent.push(hash.clone());
        hash
    };
    // Two against two: no side has a quorum (3 of 4), so nobody commits.
    let before: Vec<_> = nodes.iter().map(head).collect();
    split(&relays, &[0, 1], false);
    wait_for("the halves to lose each other", || nodes.iter().all(|n| peers(n) == 1));
    send(&nodes[0], 0, &mut sent);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(nodes.iter().map(head).collect::<Vec<_>>(), before, "a half without a quorum committed");
    split(&relays, &[0, 1], true);
    converged(&nodes, &sent);
    // One cut off: the other three commit on; the one alone does not, and catches up.
    split(&relays, &[3], false);
    wait_for("node3 to lose its peers", || peers(&nodes[3]) == 0);
    let alone = head(&nodes[3]);
    for (i, node) in nodes[..3].iter().enumerate() {
        let tx = send(node, 1 + i as u64, &mut sent);
        node.wait_tx(&tx);
    }
    assert_eq!(head(&nodes[3]), alone, "a node without a quorum committed");
    split(&relays, &[3], true);
    converged(&nodes, &sent);
}
