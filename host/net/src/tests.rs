//! Networks of real nodes on loopback: handshakes in both suites, authorisation, hostile
//! peers (played by a raw client that completes a real handshake and then misbehaves),
//! liveness and membership changes.

use crate::secure::{self, HandshakeError, PROLOGUE_PREFIX};
use crate::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const CHAIN: &[u8] = b"test-channel\0genesis-hash";
const WAIT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn config(key: &Arc<NodeKey>) -> NetConfig {
    let mut c = NetConfig::new(key.suite(), key.clone(), CHAIN, loopback());
    c.redial = Duration::from_millis(100);
    c
}

async fn start(c: NetConfig, set: &Arc<NodeSet>) -> (Network, Receiver<NetEvent>) {
    Network::start(c, set.clone(), 64).await.expect("listens on loopback")
}

fn keys(suite: WireSuite, n: usize) -> Vec<Arc<NodeKey>> {
    (0..n).map(|_| Arc::new(NodeKey::generate(NativePrimitives::shared(suite)).expect("entropy"))).collect()
}

fn set_of(keys: &[Arc<NodeKey>]) -> Arc<NodeSet> {
    Arc::new(NodeSet::new(keys.iter().map(|k| k.public())))
}

/// The next event that is not a message, or the next message, skipping the other kind.
async fn next_connected(rx: &mut Receiver<NetEvent>) -> PeerKey {
    loop {
        match timeout(WAIT, rx.recv()).await.expect("an event in time").expect("the network is running") {
            NetEvent::Connected { peer, .. } => return peer,
            _ => continue,
        }
    }
}

async fn next_disconnected(rx: &mut Receiver<NetEvent>) -> (PeerKey, String) {
    loop {
        match timeout(WAIT, rx.recv()).await.expect("an event in time").expect("the network is running") {
            NetEvent::Disconnected { peer, reason } => return (peer, reason),
            _ => continue,
        }
    }
}

async fn next_message(rx: &mut Receiver<NetEvent>) -> (PeerKey, Message) {
    loop {
        match timeout(WAIT, rx.recv()).await.expect("an event in time").expect("the network is running") {
            NetEvent::Message { peer, message } => return (peer, message),
            _ => continue,
        }
    }
}

/// No `Connected` event within `d`.
async fn no_connection_within(rx: &mut Receiver<NetEvent>, d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        assert!(!matches!(e, NetEvent::Connected { .. }), "unexpected {e:?}");
    }
}

fn prologue(suite: WireSuite, chain: &[u8]) -> Vec<u8> {
    let mut p = PROLOGUE_PREFIX.to_vec();
    p.extend_from_slice(suite.protocol_name().as_bytes());
    p.push(0);
    p.extend_from_slice(chain);
    p
}

/// A raw peer: a real handshake with `key`, then whatever the test sends.
async fn raw_peer(addr: SocketAddr, key: &NodeKey) -> Result<secure::Secured, HandshakeError> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    secure::handshake(stream, true, key.suite(), key, &prologue(key.suite(), CHAIN), |_| Ok(())).await
}

async fn pair_carries_messages(suite: WireSuite) {
    let k = keys(suite, 2);
    let set = set_of(&k);
    let (b, mut b_rx) = start(config(&k[1]), &set).await;
    let mut ca = config(&k[0]);
    ca.bootstrap = vec![b.local_addr()];
    let (a, mut a_rx) = start(ca, &set).await;
    assert_eq!(next_connected(&mut a_rx).await, k[1].public());
    assert_eq!(next_connected(&mut b_rx).await, k[0].public());

    // A block of 1 MiB crosses in 17 chunks and arrives whole.
    let block: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    a.send(&k[1].public(), &Message::Block(block.clone())).expect("queued");
    assert_eq!(next_message(&mut b_rx).await, (k[0].public(), Message::Block(block)));
    // And the other way, by broadcast; an empty payload too.
    assert_eq!(b.broadcast(&Message::Status { height: 7, hash: [9; 32] }), 1);
    assert_eq!(next_message(&mut a_rx).await, (k[1].public(), Message::Status { height: 7, hash: [9; 32] }));
    b.send(&k[0].public(), &Message::Transactions(vec![])).expect("queued");
    assert_eq!(next_message(&mut a_rx).await.1, Message::Transactions(vec![]));
    assert_eq!(a.peers().len(), 1);
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn intl_peers_complete_a_handshake_and_carry_messages_both_ways() {
    pair_carries_messages(WireSuite::Intl).await;
}

#[tokio::test]
async fn gm_peers_complete_a_handshake_and_carry_messages_both_ways() {
    pair_carries_messages(WireSuite::Gm).await;
}

#[tokio::test]
async fn a_stranger_is_dropped_and_never_heard() {
    let k = keys(WireSuite::Intl, 2);
    let members = set_of(&k[..1]);
    let (a, mut a_rx) = start(config(&k[0]), &members).await;
    // The stranger dials; its own side admits anyone.
    let mut cs = config(&k[1]);
    cs.bootstrap = vec![a.local_addr()];
    let (stranger, mut s_rx) = start(cs, &set_of(&k)).await;
    no_connection_within(&mut a_rx, Duration::from_millis(800)).await;
    assert!(a.peers().is_empty());
    assert!(a.counters().peers_refused.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    // However the stranger sees it, nothing it sends reaches A's node.
    let _ = stranger.broadcast(&Message::Block(vec![1]));
    while let Ok(Some(e)) = timeout(Duration::from_millis(300), a_rx.recv()).await {
        assert!(!matches!(e, NetEvent::Message { .. }), "a stranger's message was delivered: {e:?}");
    }
    // A dialling a stranger refuses it before revealing itself: no connection either side.
    let (a2, mut a2_rx) = {
        let mut c = config(&k[0]);
        c.bootstrap = vec![stranger.local_addr()];
        start(c, &members).await
    };
    no_connection_within(&mut a2_rx, Duration::from_millis(500)).await;
    drop(s_rx.try_recv());
    a.shutdown();
    a2.shutdown();
    stranger.shutdown();
}

#[tokio::test]
async fn other_suites_and_other_chains_cannot_complete_a_handshake() {
    let intl = keys(WireSuite::Intl, 1);
    let gm = keys(WireSuite::Gm, 1);
    // Both keys in both sets: only the protocol stands between them.
    let set = Arc::new(NodeSet::new([intl[0].public(), gm[0].public()]));
    let (a, mut a_rx) = start(config(&intl[0]), &set).await;
    let err = raw_peer(a.local_addr(), &gm[0]).await.err().expect("an intl node refuses a gm handshake");
    assert!(matches!(err, HandshakeError::Noise(_) | HandshakeError::Closed | HandshakeError::Io(_)), "{err}");
    // Same suite, another chain's prologue.
    let other = keys(WireSuite::Intl, 1);
    set.replace([intl[0].public(), other[0].public()]);
    let stream = tokio::net::TcpStream::connect(a.local_addr()).await.unwrap();
    let r = secure::handshake(stream, true, WireSuite::Intl, &other[0], &prologue(WireSuite::Intl, b"another chain"), |_| Ok(())).await;
    assert!(r.is_err(), "another chain's node completed a handshake");
    no_connection_within(&mut a_rx, Duration::from_millis(300)).await;
    assert!(a.counters().handshakes_failed.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    a.shutdown();
}

#[tokio::test]
async fn garbage_after_the_handshake_bans_the_peer() {
    let k = keys(WireSuite::Gm, 2);
    let set = set_of(&k);
    let (a, mut a_rx) = start(config(&k[0]), &set).await;
    let mut raw = raw_peer(a.local_addr(), &k[1]).await.expect("a member completes the handshake");
    assert_eq!(next_connected(&mut a_rx).await, k[1].public());
    raw.writer.send_raw_frame(b"definitely not a noise message of this session").await.unwrap();
    let (peer, reason) = next_disconnected(&mut a_rx).await;
    assert_eq!(peer, k[1].public());
    assert!(reason.contains("garbage") && reason.contains("banned"), "{reason}");
    assert!(a.is_banned(&k[1].public()));
    // Banned: its next handshake is refused.
    let again = raw_peer(a.local_addr(), &k[1]).await;
    if let Ok(mut s) = again {
        // The initiator finishes its side first; the responder's refusal shows as a close.
        assert!(s.reader.recv(1 << 20).await.map(|m| m.is_none()).unwrap_or(true), "a banned peer got a message");
    }
    no_connection_within(&mut a_rx, Duration::from_millis(300)).await;
    a.shutdown();
}

#[tokio::test]
async fn an_oversized_message_bans_the_sender() {
    let k = keys(WireSuite::Intl, 2);
    let set = set_of(&k);
    let mut ca = config(&k[0]);
    ca.max_message_bytes = 100_000;
    let (a, mut a_rx) = start(ca, &set).await;
    let mut cb = config(&k[1]);
    cb.bootstrap = vec![a.local_addr()];
    let (b, _b_rx) = start(cb, &set).await;
    assert_eq!(next_connected(&mut a_rx).await, k[1].public());
    b.send(&k[0].public(), &Message::Block(vec![0; 200_000])).unwrap();
    let (peer, reason) = next_disconnected(&mut a_rx).await;
    assert_eq!(peer, k[1].public());
    assert!(reason.contains("over 100000 bytes"), "{reason}");
    assert!(a.is_banned(&k[1].public()));
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn a_silent_peer_is_dropped_and_a_live_one_is_kept_by_heartbeats() {
    let k = keys(WireSuite::Intl, 3);
    let set = set_of(&k);
    let mut ca = config(&k[0]);
    ca.heartbeat = Duration::from_millis(100);
    ca.peer_timeout = Duration::from_millis(600);
    let (a, mut a_rx) = start(ca, &set).await;
    // A live peer, idle but answering pings.
    let mut cb = config(&k[1]);
    cb.heartbeat = Duration::from_millis(100);
    cb.peer_timeout = Duration::from_millis(600);
    cb.bootstrap = vec![a.local_addr()];
    let (b, _b_rx) = start(cb, &set).await;
    assert_eq!(next_connected(&mut a_rx).await, k[1].public());
    // A silent one: handshakes, then neither reads nor writes.
    let _silent = raw_peer(a.local_addr(), &k[2]).await.expect("handshake");
    assert_eq!(next_connected(&mut a_rx).await, k[2].public());
    let (peer, reason) = next_disconnected(&mut a_rx).await;
    assert_eq!(peer, k[2].public());
    assert!(reason.starts_with("silent for"), "{reason}");
    assert!(!a.is_banned(&k[2].public()), "silence is not an offence");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let peers = a.peers();
    assert_eq!(peers.iter().map(|p| p.key).collect::<Vec<_>>(), vec![k[1].public()], "the live peer stays");
    assert!(peers[0].rtt.is_some(), "pings measured a round trip");
    assert!(peers[0].last_heard_ago < Duration::from_millis(600));
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn a_flooding_peer_is_scored_down_and_dropped() {
    let k = keys(WireSuite::Intl, 2);
    let set = set_of(&k);
    let mut ca = config(&k[0]);
    ca.rate_per_sec = 20;
    ca.rate_burst = 20;
    let (a, mut a_rx) = start(ca, &set).await;
    let mut raw = raw_peer(a.local_addr(), &k[1]).await.expect("handshake");
    assert_eq!(next_connected(&mut a_rx).await, k[1].public());
    let status = Message::Status { height: 1, hash: [0; 32] }.encode();
    let mut delivered = 0;
    for _ in 0..200 {
        if raw.writer.send(&status).await.is_err() {
            break;
        }
    }
    let reason = loop {
        match timeout(WAIT, a_rx.recv()).await.unwrap().unwrap() {
            NetEvent::Message { .. } => delivered += 1,
            NetEvent::Disconnected { reason, .. } => break reason,
            NetEvent::Connected { .. } => {}
        }
    };
    assert!(reason.contains("messages a second") && reason.contains("banned"), "{reason}");
    assert!(delivered <= 21, "the burst passes, the flood does not: {delivered} delivered");
    assert!(a.is_banned(&k[1].public()));
    a.shutdown();
}

#[tokio::test]
async fn a_deleted_node_is_disconnected_and_refused_from_then_on() {
    let k = keys(WireSuite::Gm, 2);
    let set_a = set_of(&k);
    let mut ca = config(&k[0]);
    ca.redial = Duration::from_millis(50);
    let (a, mut a_rx) = start(ca, &set_a).await;
    let mut cb = config(&k[1]);
    cb.bootstrap = vec![a.local_addr()];
    cb.redial = Duration::from_millis(50);
    let (b, _b_rx) = start(cb, &set_of(&k)).await;
    assert_eq!(next_connected(&mut a_rx).await, k[1].public());
    set_a.replace([k[0].public()]);
    a.enforce_membership();
    let (peer, _) = next_disconnected(&mut a_rx).await;
    assert_eq!(peer, k[1].public());
    // B keeps redialling; A keeps refusing it.
    no_connection_within(&mut a_rx, Duration::from_millis(600)).await;
    assert!(a.peers().is_empty());
    assert!(a.counters().peers_refused.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn simultaneous_dials_settle_on_one_connection_each_way() {
    let k = keys(WireSuite::Intl, 2);
    let set = set_of(&k);
    // Bind both listeners first, then dial each other at once.
    let (a, mut a_rx) = start(config(&k[0]), &set).await;
    let (b, mut b_rx) = start(config(&k[1]), &set).await;
    a.dial(b.local_addr());
    b.dial(a.local_addr());
    next_connected(&mut a_rx).await;
    next_connected(&mut b_rx).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.peers().len(), 1);
    assert_eq!(b.peers().len(), 1);
    // The surviving connection is the same one on both sides: messages flow.
    a.send(&k[1].public(), &Message::Consensus(b"vote".to_vec())).unwrap();
    assert_eq!(next_message(&mut b_rx).await.1, Message::Consensus(b"vote".to_vec()));
    b.send(&k[0].public(), &Message::Consensus(b"back".to_vec())).unwrap();
    assert_eq!(next_message(&mut a_rx).await.1, Message::Consensus(b"back".to_vec()));
    a.shutdown();
    b.shutdown();
}

#[test]
fn keys_are_checked_and_the_suites_name_their_protocols() {
    assert_eq!(NodeKey::from_private(NativePrimitives::shared(WireSuite::Gm), &[0; 32]).err(), Some(KeyError::InvalidPrivateKey));
    assert_eq!(NodeKey::from_private(NativePrimitives::shared(WireSuite::Intl), &[0xff; 32]).err(), Some(KeyError::InvalidPrivateKey), "above the order");
    let k = NodeKey::from_private(NativePrimitives::shared(WireSuite::Intl), &[1; 32]).unwrap();
    assert_eq!(k.public().as_bytes().len(), 33);
    assert!(matches!(k.public().as_bytes()[0], 2 | 3), "compressed SEC1");
    assert_eq!(WireSuite::Gm.protocol_name(), "Noise_XX_SM2_SM4GCM_SM3");
    assert_eq!(WireSuite::Intl.protocol_name(), "Noise_XX_P256_AESGCM_SHA256");
    assert_eq!(WireSuite::from_channel_suite("gm"), Some(WireSuite::Gm));
    let _ = WireSuite::Gm.params();
}

/// Around a crypto-suite switch a node answers in both suites: peers of either connect;
/// when it dials in the new suite its dialled connections move over; when it drops the
/// old suite, nobody gets in with it any more. A version-1 peer (no hello) is answered in
/// the suite the node had first.
#[tokio::test]
async fn a_node_answers_in_two_suites_around_a_switch_and_drops_the_old_one_after() {
    let (intl, gm) = (keys(WireSuite::Intl, 3), keys(WireSuite::Gm, 3));
    let (intl_set, gm_set) = (set_of(&intl), set_of(&gm));
    let (a, mut a_rx) = start(config(&intl[0]), &intl_set).await;
    a.add_identity(gm[0].clone(), gm_set.clone());
    assert_eq!(a.suites(), vec![WireSuite::Intl, WireSuite::Gm]);

    // B has not switched: it dials in intl and gets in.
    let mut cb = config(&intl[1]);
    cb.bootstrap = vec![a.local_addr()];
    let (b, mut b_rx) = start(cb, &intl_set).await;
    assert_eq!(next_connected(&mut a_rx).await, intl[1].public());
    assert_eq!(next_connected(&mut b_rx).await, intl[0].public());
    // C speaks gm only, and gets in too.
    let mut cc = config(&gm[2]);
    cc.bootstrap = vec![a.local_addr()];
    let (c, mut c_rx) = start(cc, &gm_set).await;
    assert_eq!(next_connected(&mut c_rx).await, gm[0].public());
    let suites = |n: &Network| n.peers().iter().map(|p| (p.key, p.suite)).collect::<Vec<_>>();
    timeout(WAIT, async {
        while suites(&a).len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both peers connected");
    assert!(suites(&a).contains(&(intl[1].public(), WireSuite::Intl)) && suites(&a).contains(&(gm[2].public(), WireSuite::Gm)), "{:?}", suites(&a));

    // B switches: its dialled intl connection closes and comes back in gm.
    b.add_identity(gm[1].clone(), gm_set.clone());
    b.dial_in(WireSuite::Gm);
    assert_eq!(b.key(), gm[1].public());
    timeout(WAIT, async {
        while !suites(&b).contains(&(gm[0].public(), WireSuite::Gm)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("B reconnected in gm: {:?}", suites(&b)));

    // A version-1 peer (no hello) is answered in intl while A still has it.
    let a_addr = a.local_addr();
    let v1 = |key: Arc<NodeKey>| async move {
        let stream = tokio::net::TcpStream::connect(a_addr).await?;
        let (r, w) = secure::split(stream);
        secure::noise(r, w, true, key.suite(), &key, &prologue(key.suite(), CHAIN), None, |_| Ok(())).await
    };
    let old = v1(intl[2].clone()).await.expect("a version-1 peer in the first suite");
    drop(old);

    // A drops intl: an intl peer cannot get in any more, gm peers stay.
    a.remove_identity(WireSuite::Intl);
    assert_eq!(a.suites(), vec![WireSuite::Gm]);
    let refused = raw_peer(a.local_addr(), &intl[2]).await;
    assert!(refused.is_err(), "an intl peer got in after the node dropped intl");
    assert!(suites(&a).iter().all(|(_, s)| *s == WireSuite::Gm), "{:?}", suites(&a));
    for n in [a, b, c] {
        n.shutdown();
    }
}
