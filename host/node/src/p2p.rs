//! A channel on the peer-to-peer network (`joule-net`): the node's network key, the
//! channel's node set, transaction and block gossip, and block sync (catching up from peers
//! after a start from empty, a restart or a partition).
//!
//! Gossip: transactions this node's clients submit go to every peer (peers do not repeat
//! them: the network is a full mesh of the channel's nodes); blocks this node seals go to
//! every peer; every committed block announces the new head (`Status`). Sync: a peer whose
//! head is higher is asked for the blocks after this node's head, up to
//! [`SYNC_BATCH`] at a time, which are imported in order: each is checked in full (seal,
//! transactions, execution, roots) as any block is. A peer whose block fails that check
//! is reported (`Offence::InvalidBlock`) and soon banned.
//!
//! Forks (PoW; see `joule_ledger::fork`): a block whose parent is not the head is kept as a
//! side block, and the chain reorganises when a side chain outweighs it. When a peer's
//! blocks do not connect (their parent is unknown here), the next request to that peer
//! starts further back, doubling up to the reorganisation limit, until they meet this
//! node's chain.

use anyhow::{Context, Result};
use joule_consensus::Event;
use joule_crypto::CryptoService;
use joule_ledger::chain::{Chain, ChainError};
use joule_net::{Message, NetConfig, NetEvent, Network, NodeKey, NodeSet, Offence, PeerKey, WireSuite};
use joule_primitives::{Block, Encode, Transaction};
use joule_support::fs::Mode;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// Blocks asked for in one sync request.
pub const SYNC_BATCH: u32 = 128;
/// Most bytes of blocks in one sync answer (under the transport's message limit).
const SYNC_BYTES: usize = 8 << 20;
/// Pool transactions handed to a peer when it connects, and per message.
const POOL_HANDOVER: usize = 20_000;
const POOL_BATCH: usize = 1_000;
/// Ticks (500 ms) between announcements of the head to every peer.
const STATUS_EVERY_TICKS: u64 = 4;
/// A sync request unanswered for this long goes to another peer.
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// The file holding a node's network key for a suite: the private scalar in hex, owner-only.
pub fn network_key_file(dir: &Path, suite: WireSuite) -> std::path::PathBuf {
    dir.join(format!("network-{suite}.key"))
}

/// The node's network key for a suite, created on first use (§5.2.3: a node generates its
/// keys before it joins), on the wire primitives of the node's crypto plugins.
pub fn network_key(dir: &Path, crypto: &CryptoService, suite: WireSuite) -> Result<NodeKey> {
    let primitives = crate::wire::PluginWire::shared(crypto.clone(), suite)?;
    let path = network_key_file(dir, suite);
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let bytes = hex::decode(text.trim()).with_context(|| format!("{} is not hex", path.display()))?;
        return NodeKey::from_private(primitives, &bytes)
            .with_context(|| format!("{}: not a {suite} network key; delete it to have a new one made", path.display()));
    }
    let key = NodeKey::generate(primitives)?;
    joule_support::fs::write_atomic(&path, hex::encode(key.private()).as_bytes(), Mode::Private).with_context(|| format!("write {}", path.display()))?;
    Ok(key)
}

/// Blocks after a crypto-suite switch during which a node still answers in the old suite,
/// for peers that have not reached the switch yet.
pub const SWITCH_GRACE_BLOCKS: u64 = 64;

/// Join the channel's network when its specification lists nodes and this node is one of
/// them: listen where the channel's configuration says this node is, dial the others.
pub async fn start(
    dir: &Path,
    crypto: &CryptoService,
    chain: Arc<Chain>,
    addresses: &[(PeerKey, std::net::SocketAddr)],
    consensus: tokio::sync::mpsc::Sender<Event>,
) -> Result<Option<Network>> {
    let spec = chain.spec();
    // The nodes of the chain's state: the genesis ones, then as votes change them.
    let current = chain.members();
    if current.members.nodes.is_empty() {
        return Ok(None);
    }
    let channel = spec.channel.to_string();
    let wire_of = move |id: &str| WireSuite::from_channel_suite(id).with_context(|| format!("channel {channel}: no peer transport for the crypto suite {id}"));
    // network.toml lists each node by its key of the genesis suite.
    let genesis_wire = wire_of(&spec.crypto_suite.id)?;
    let genesis_key = network_key(dir, crypto, genesis_wire)?;
    let Some(listen) = addresses.iter().find(|(k, _)| *k == genesis_key.public()).map(|(_, a)| *a) else {
        tracing::warn!(channel = %spec.channel, key = %genesis_key.public(), "this node's network key is not in the channel's node set: it runs without peers");
        return Ok(None);
    };
    // The wire speaks the suite of the next block.
    let wire = wire_of(&chain.suite().suite().id)?;
    let key = if wire == genesis_wire { Arc::new(genesis_key) } else { Arc::new(network_key(dir, crypto, wire)?) };
    let members = |m: &joule_ledger::governance::Members| node_keys(&chain, m);
    let me = key.public();
    let mut chain_binding = spec.channel.as_str().as_bytes().to_vec();
    chain_binding.push(0);
    let genesis = chain.block(0)?.context("the genesis block is missing")?;
    chain_binding.extend_from_slice(&genesis.header.parent_hash.0);
    let mut config = NetConfig::new(wire, key, &chain_binding, listen);
    config.bootstrap = addresses.iter().filter(|(_, a)| *a != listen).map(|(_, a)| *a).collect();
    let set = Arc::new(NodeSet::new(members(&current.members)));
    let (net, events) = Network::start(config, set.clone(), 1024).await.with_context(|| format!("channel {}: peer-to-peer listener", spec.channel))?;
    tracing::info!(channel = %spec.channel, %listen, key = %me.short(), %wire, members = current.members.nodes.len(), "peer-to-peer network started");
    let mut sets: HashMap<WireSuite, Arc<NodeSet>> = HashMap::from([(wire, set)]);
    // Restarted within the grace of a switch: peers that have not switched still get in.
    if let Some(a) = current.suites.iter().filter(|a| a.from_height <= chain.head().height + 1).max_by_key(|a| a.from_height)
        && chain.head().height + 1 < a.from_height + SWITCH_GRACE_BLOCKS
        && let Ok(before) = chain.suite_at(a.from_height.saturating_sub(1))
        && let Ok(old_wire) = wire_of(&before.suite().id)
        && old_wire != wire
    {
        let old = chain.members_after(a.from_height.saturating_sub(1)).map(|m| members(&m)).map_err(anyhow::Error::from);
        match (network_key(dir, crypto, old_wire), old) {
            (Ok(k), Ok(keys)) => {
                let s = Arc::new(NodeSet::new(keys));
                net.add_identity(Arc::new(k), s.clone());
                sets.insert(old_wire, s);
            }
            (Err(e), _) | (_, Err(e)) => tracing::warn!(channel = %spec.channel, "peers that have not switched suites cannot connect: {e:#}"),
        }
    }
    // Nodes voted in may connect from the block after the vote, and nodes voted out are
    // dropped and refused from then on (§5.2.3–5.2.4). At a crypto-suite switch the wire
    // follows: from the block before it, the node answers and dials in the new suite
    // (with the keys the switch lists), and answers in the old one for
    // SWITCH_GRACE_BLOCKS more blocks, for peers that have not switched yet.
    let mut watch = chain.watch_members();
    let mut heads = chain.subscribe();
    let follow = net.clone();
    let (dir, crypto, c) = (dir.to_path_buf(), crypto.clone(), chain.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = watch.changed() => if changed.is_err() { return },
                head = heads.recv() => if let Err(tokio::sync::broadcast::error::RecvError::Closed) = head { return },
            }
            let current = c.members();
            let members = |m: &joule_ledger::governance::Members| node_keys(&c, m);
            let Ok(next) = wire_of(&c.suite().suite().id) else { continue };
            if !follow.suites().contains(&next) {
                match network_key(&dir, &crypto, next) {
                    Ok(k) => {
                        if !members(&current.members).contains(&k.public()) {
                            tracing::error!(channel = %c.channel(), key = %k.public(), "this node's {next} network key is not in the switch's node list: peers will refuse it");
                        }
                        let s = Arc::new(NodeSet::new(members(&current.members)));
                        follow.add_identity(Arc::new(k), s.clone());
                        sets.insert(next, s);
                    }
                    Err(e) => {
                        tracing::error!(channel = %c.channel(), "the wire cannot follow the switch to {next}: {e:#}");
                        continue;
                    }
                }
            }
            if let Some(s) = sets.get(&next) {
                s.replace(members(&current.members));
            }
            if follow.suites().first() != Some(&next) {
                follow.dial_in(next);
            }
            let height = c.head().height + 1;
            let started = current.suites.iter().filter(|a| a.from_height <= height).map(|a| a.from_height).max().unwrap_or(0);
            if follow.suites().len() > 1 && height >= started + SWITCH_GRACE_BLOCKS {
                for old in follow.suites().into_iter().filter(|s| *s != next) {
                    follow.remove_identity(old);
                    sets.remove(&old);
                }
            }
            follow.enforce_membership();
        }
    });
    tokio::spawn(run(chain, net.clone(), events, consensus));
    Ok(Some(net))
}

/// The network keys of the channel's nodes that may connect: every node of `m`, and on a
/// chain with certificates only those with a current `peer` certificate at the head's
/// state (a revocation drops the node within a block).
fn node_keys(chain: &Chain, m: &joule_ledger::governance::Members) -> Vec<PeerKey> {
    let nodes: Vec<(&str, PeerKey)> = m.nodes.iter().filter_map(|n| PeerKey::from_slice(&n.network_key).map(|k| (n.name.as_str(), k))).collect();
    let keys: Vec<&[u8]> = nodes.iter().map(|(_, k)| k.as_bytes()).collect();
    let verdicts = match chain.peers_permitted(&keys) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(channel = %chain.channel(), "cannot read the nodes' certificates, so none may connect: {e}");
            return vec![];
        }
    };
    nodes
        .into_iter()
        .zip(verdicts)
        .filter_map(|((name, k), verdict)| match verdict {
            Ok(()) => Some(k),
            Err(why) => {
                tracing::debug!(channel = %chain.channel(), node = %name, "not a peer: {why}");
                None
            }
        })
        .collect()
}

/// An outstanding sync request.
struct Request {
    id: u64,
    peer: PeerKey,
    sent: Instant,
}

/// Gossip and sync for one channel until the network stops.
pub async fn run(chain: Arc<Chain>, net: Network, mut events: tokio::sync::mpsc::Receiver<NetEvent>, consensus: tokio::sync::mpsc::Sender<Event>) {
    let mut blocks = chain.subscribe();
    let mut admitted = chain.subscribe_admitted();
    let mut heights: HashMap<PeerKey, u64> = HashMap::new();
    let mut request: Option<Request> = None;
    // Per peer on another branch: how far below the head the next request starts.
    let mut back: HashMap<PeerKey, u64> = HashMap::new();
    let mut next_id = 1u64;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                match event {
                    NetEvent::Connected { peer, .. } => {
                        let head = chain.head();
                        let _ = net.send(&peer, &Message::Status { height: head.height, hash: head.hash.0 });
                        // What was gossiped before this connection existed: without it, a
                        // proposer that missed a sender's transaction would hold that sender's
                        // later ones queued behind the gap, and have nothing to propose.
                        let c = chain.clone();
                        let pool = tokio::task::spawn_blocking(move || c.pool_snapshot(POOL_HANDOVER)).await.unwrap_or_default();
                        for batch in pool.chunks(POOL_BATCH) {
                            let _ = net.send(&peer, &Message::Transactions(batch.iter().map(Encode::encode).collect()));
                        }
                    }
                    NetEvent::Disconnected { peer, .. } => {
                        heights.remove(&peer);
                        back.remove(&peer);
                        if request.as_ref().is_some_and(|r| r.peer == peer) {
                            request = None;
                        }
                    }
                    NetEvent::Message { peer, message } => match message {
                        Message::Status { height, hash } => {
                            heights.insert(peer, height);
                            // A head as high as ours that is not ours: a fork whose blocks
                            // did not reach us (or came before their parent). Ask for it.
                            let head = chain.head();
                            if height == head.height && hash != head.hash.0 && !back.contains_key(&peer) {
                                let c = chain.clone();
                                let known = tokio::task::spawn_blocking(move || c.knows_block(&joule_primitives::Hash32(hash))).await.unwrap_or(true);
                                if !known {
                                    back.insert(peer, 1);
                                }
                            }
                        }
                        Message::Transactions(txs) => gossiped(&chain, &net, peer, txs).await,
                        Message::Block(bytes) => {
                            match Block::decode(&bytes) {
                                Ok(block) => {
                                    let height = block.header.height;
                                    heights.entry(peer).and_modify(|h| *h = (*h).max(height)).or_insert(height);
                                    // The next block, or one of a fork (further ahead: sync asks).
                                    if height <= chain.head().height + 1 && let Imported::Unconnected = import(&chain, &net, peer, vec![block]).await {
                                        back.entry(peer).or_insert(u64::from(SYNC_BATCH));
                                    }
                                }
                                Err(_) => net.report(&peer, Offence::InvalidBlock),
                            }
                        }
                        Message::GetBlocks { request: id, from, max } => {
                            let c = chain.clone();
                            let blocks = tokio::task::spawn_blocking(move || blocks_from(&c, from, max)).await.unwrap_or_default();
                            let _ = net.send(&peer, &Message::Blocks { request: id, blocks });
                        }
                        Message::Blocks { request: id, blocks } => {
                            if request.as_ref().is_some_and(|r| r.id == id && r.peer == peer) {
                                request = None;
                                if blocks.is_empty() {
                                    // It announced blocks it then does not give: stop asking it
                                    // until it announces again, and count it against it.
                                    heights.insert(peer, chain.head().height);
                                    net.report(&peer, Offence::InvalidMessage);
                                    continue;
                                }
                                let mut decoded = Vec::with_capacity(blocks.len());
                                for b in &blocks {
                                    match Block::decode(b) {
                                        Ok(b) => decoded.push(b),
                                        Err(_) => {
                                            net.report(&peer, Offence::InvalidBlock);
                                            break;
                                        }
                                    }
                                }
                                match import(&chain, &net, peer, decoded).await {
                                    Imported::Unconnected => {
                                        let b = back.get(&peer).map_or(u64::from(SYNC_BATCH), |b| b.saturating_mul(2)).min(joule_ledger::store::UNDO_BLOCKS);
                                        tracing::info!(channel = %chain.channel(), peer = %peer.short(), back = b, "the peer's blocks are on another branch: asking from further back");
                                        back.insert(peer, b);
                                    }
                                    Imported::Done => {
                                        back.remove(&peer);
                                    }
                                    Imported::Failed => {}
                                }
                            }
                        }
                        // To the channel's participant; when it is behind by a full inbox,
                        // the message is dropped (engines that need it ask again by rounds).
                        Message::Consensus(m) => {
                            if consensus.try_send(Event::Message(m)).is_err() {
                                metrics::counter!("p2p_consensus_messages_dropped_total", "channel" => chain.channel().to_string()).increment(1);
                            }
                        }
                        // A block before its seal: executed on the head here, then the
                        // participant judges the proposal. One that does not extend the
                        // head is stale, not wrong; an invalid one is the proposer's fault.
                        Message::Proposal { block, message } => match Block::decode(&block) {
                            Ok(block) if block.header.height == chain.head().height + 1 => {
                                let c = chain.clone();
                                let checked = tokio::task::spawn_blocking(move || c.accept_proposal(block)).await;
                                match checked {
                                    Ok(Ok(header)) => {
                                        if consensus.try_send(Event::Proposed { header, message }).is_err() {
                                            metrics::counter!("p2p_consensus_messages_dropped_total", "channel" => chain.channel().to_string()).increment(1);
                                        }
                                    }
                                    Ok(Err(ChainError::Invalid { height, reason })) => {
                                        tracing::warn!(channel = %chain.channel(), peer = %peer.short(), height, "refused a proposed block: {reason}");
                                        net.report(&peer, Offence::InvalidBlock);
                                    }
                                    Ok(Err(e)) => tracing::debug!(channel = %chain.channel(), "a proposed block was not checked: {e}"),
                                    Err(e) => tracing::error!(channel = %chain.channel(), "checking a proposed block failed: {e}"),
                                }
                            }
                            Ok(_) => {}
                            Err(_) => net.report(&peer, Offence::InvalidBlock),
                        },
                        Message::Ping(_) | Message::Pong(_) => {}
                    },
                }
            }
            committed = blocks.recv() => {
                match committed {
                    Ok(b) => {
                        let header = &b.block.header;
                        if chain.signer_key_at(header.height).as_deref() == Some(header.proposer.as_slice()) {
                            net.broadcast(&Message::Block(b.block.encode()));
                        }
                        net.broadcast(&Message::Status { height: header.height, hash: b.hash.0 });
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
            txs = admitted.recv() => {
                match txs {
                    Ok(txs) => {
                        net.broadcast(&Message::Transactions(txs.iter().map(Encode::encode).collect()));
                    }
                    Err(RecvError::Lagged(n)) => tracing::warn!(channel = %chain.channel(), "{n} batches of transactions were not gossiped (the network fell behind)"),
                    Err(RecvError::Closed) => return,
                }
            }
            _ = tick.tick() => {
                publish_metrics(&chain, &net);
                // The head again now and then: a Status sent on a connection that a
                // simultaneous dial closed, or lost in a partition, would otherwise leave a
                // peer unaware of blocks it lacks until the next commit, which may not come.
                ticks += 1;
                if ticks.is_multiple_of(STATUS_EVERY_TICKS) {
                    let head = chain.head();
                    net.broadcast(&Message::Status { height: head.height, hash: head.hash.0 });
                }
            }
        }
        // Catch up: ask the highest peer for what follows our head.
        if request.as_ref().is_some_and(|r| r.sent.elapsed() > SYNC_TIMEOUT) {
            request = None;
        }
        let head = chain.head().height;
        if request.is_none()
            && let Some((&peer, _)) = heights.iter().filter(|(p, h)| **h > head || back.contains_key(p)).max_by_key(|(_, h)| **h)
        {
            let id = next_id;
            next_id += 1;
            let from = (head + 1).saturating_sub(back.get(&peer).copied().unwrap_or(0)).max(1);
            if net.send(&peer, &Message::GetBlocks { request: id, from, max: SYNC_BATCH }).is_ok() {
                metrics::counter!("p2p_sync_requests_total", "channel" => chain.channel().to_string()).increment(1);
                request = Some(Request { id, peer, sent: Instant::now() });
            }
        }
    }
}

/// The transport's counters and the peer count, as `/metrics` series.
fn publish_metrics(chain: &Chain, net: &Network) {
    use std::sync::atomic::Ordering::Relaxed;
    let channel = chain.channel().to_string();
    let c = net.counters();
    metrics::gauge!("p2p_peers", "channel" => channel.clone()).set(net.peers().len() as f64);
    metrics::counter!("p2p_messages_received_total", "channel" => channel.clone()).absolute(c.messages_in.load(Relaxed));
    metrics::counter!("p2p_messages_sent_total", "channel" => channel.clone()).absolute(c.messages_out.load(Relaxed));
    metrics::counter!("p2p_received_bytes_total", "channel" => channel.clone()).absolute(c.bytes_in.load(Relaxed));
    metrics::counter!("p2p_handshake_failures_total", "channel" => channel.clone()).absolute(c.handshakes_failed.load(Relaxed));
    metrics::counter!("p2p_peers_refused_total", "channel" => channel.clone()).absolute(c.peers_refused.load(Relaxed));
    metrics::counter!("p2p_disconnects_total", "channel" => channel.clone()).absolute(c.peers_dropped.load(Relaxed));
    metrics::counter!("p2p_messages_dropped_total", "channel" => channel).absolute(c.messages_dropped.load(Relaxed));
}

/// Up to `max` blocks from height `from`, within [`SYNC_BYTES`].
fn blocks_from(chain: &Chain, from: u64, max: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for height in from..from.saturating_add(u64::from(max.min(SYNC_BATCH))) {
        let Ok(Some(block)) = chain.block(height) else { break };
        let encoded = block.encode();
        bytes += encoded.len();
        if bytes > SYNC_BYTES && !out.is_empty() {
            break;
        }
        out.push(encoded);
    }
    out
}

/// How a peer's blocks went in.
enum Imported {
    /// Every block is on the chain or kept on a side chain.
    Done,
    /// A block's parent is unknown here: the peer is on another branch further back.
    Unconnected,
    Failed,
}

/// Import blocks in order; a block the chain refuses as invalid is the sender's offence.
async fn import(chain: &Arc<Chain>, net: &Network, peer: PeerKey, blocks: Vec<Block>) -> Imported {
    let c = chain.clone();
    let result = tokio::task::spawn_blocking(move || {
        for block in blocks {
            match c.import(block) {
                Ok(_) => metrics::counter!("p2p_blocks_imported_total", "channel" => c.channel().to_string()).increment(1),
                // Here already (gossip, this node's own production, a BFT validator's own
                // commit), or kept on a side chain: nobody's fault.
                Err(ChainError::Known { .. } | ChainError::Side { .. }) => continue,
                // A branch split off below our final blocks: not ours to follow, and not
                // proof of misbehaviour (a miner cut off long enough ends up so).
                Err(e @ ChainError::BelowFinal { .. }) => return Err((false, e)),
                Err(ChainError::UnknownParent { .. }) => return Ok(false),
                Err(e @ (ChainError::Invalid { .. } | ChainError::Consensus(_))) => return Err((true, e)),
                Err(e) => return Err((false, e)),
            }
        }
        Ok(true)
    })
    .await;
    match result {
        Ok(Ok(true)) => Imported::Done,
        Ok(Ok(false)) => Imported::Unconnected,
        Ok(Err((peers_fault, e))) => {
            tracing::warn!(channel = %chain.channel(), peer = %peer.short(), "block from a peer not imported: {e}");
            if peers_fault {
                net.report(&peer, Offence::InvalidBlock);
            }
            Imported::Failed
        }
        Err(e) => {
            tracing::error!(channel = %chain.channel(), "the import task failed: {e}");
            Imported::Failed
        }
    }
}

/// Admit a peer's transactions; those that do not decode are its offence (rejections such
/// as a nonce already used are normal: every node sees each transaction from several paths).
async fn gossiped(chain: &Arc<Chain>, net: &Network, peer: PeerKey, txs: Vec<Vec<u8>>) {
    let mut decoded: Vec<Transaction> = Vec::with_capacity(txs.len());
    for bytes in &txs {
        match Transaction::decode(bytes) {
            Ok(tx) => decoded.push(tx),
            Err(_) => {
                net.report(&peer, Offence::InvalidMessage);
                return;
            }
        }
    }
    let c = chain.clone();
    let _ = tokio::task::spawn_blocking(move || c.submit_from_peer(decoded)).await;
}
