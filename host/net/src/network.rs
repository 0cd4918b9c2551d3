//! The peer set of one channel: listening, dialling, one task pair per connection, liveness,
//! scoring, and the bounded queues between the wire and the node.

use crate::message::Message;
use crate::score::{Offence, Scores};
use crate::secure::{self, HandshakeError, PROLOGUE_PREFIX, ReadError, Secured};
use crate::suite::{NodeKey, PeerKey, WireSuite};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How a node's transport behaves. Node-local settings, except `suite` and `chain`, which
/// every node of the channel must share.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub suite: WireSuite,
    pub key: Arc<NodeKey>,
    /// What binds handshakes to this channel: its name and genesis hash (the prologue).
    pub chain: Vec<u8>,
    pub listen: SocketAddr,
    /// Peers to dial and keep dialling.
    pub bootstrap: Vec<SocketAddr>,
    pub handshake_timeout: Duration,
    /// A ping is sent after this long without sending anything.
    pub heartbeat: Duration,
    /// A peer heard nothing from for this long is dropped (§10.1).
    pub peer_timeout: Duration,
    /// Largest message accepted (a block or a batch of them).
    pub max_message_bytes: usize,
    /// Messages waiting to be written to one peer; a peer that lets it fill is too slow and
    /// is dropped.
    pub peer_queue: usize,
    /// Connections at once.
    pub max_peers: usize,
    /// Messages per second a peer may send (sustained), and the burst above it.
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    /// Wait before dialling a bootstrap peer again.
    pub redial: Duration,
    /// How long a peer whose score fell to the floor stays refused.
    pub ban: Duration,
}

impl NetConfig {
    pub fn new(suite: WireSuite, key: Arc<NodeKey>, chain: &[u8], listen: SocketAddr) -> Self {
        NetConfig {
            suite,
            key,
            chain: chain.to_vec(),
            listen,
            bootstrap: Vec::new(),
            handshake_timeout: Duration::from_secs(5),
            heartbeat: Duration::from_secs(2),
            peer_timeout: Duration::from_secs(10),
            max_message_bytes: 16 << 20,
            peer_queue: 1024,
            max_peers: 64,
            rate_per_sec: 2_000,
            rate_burst: 4_000,
            redial: Duration::from_secs(1),
            ban: Duration::from_secs(300),
        }
    }

    fn prologue(&self, suite: WireSuite) -> Vec<u8> {
        let mut p = PROLOGUE_PREFIX.to_vec();
        p.extend_from_slice(suite.protocol_name().as_bytes());
        p.push(0);
        p.extend_from_slice(&self.chain);
        p
    }
}

/// A suite the node answers in on the wire: its static key, and who may connect with it.
/// A node has one, and two around a crypto-suite switch (the old suite's for peers that
/// have not switched yet).
#[derive(Clone)]
struct Identity {
    suite: WireSuite,
    key: Arc<NodeKey>,
    authorizer: Arc<dyn PeerAuthorizer>,
    prologue: Vec<u8>,
}

/// Who may connect: the channel's node set, from chain state (the node keeps it current).
pub trait PeerAuthorizer: Send + Sync + 'static {
    fn is_member(&self, peer: &PeerKey) -> bool;
}

/// A node set held in memory, replaced as the chain's changes.
#[derive(Debug, Default)]
pub struct NodeSet(RwLock<HashSet<PeerKey>>);

impl NodeSet {
    pub fn new(keys: impl IntoIterator<Item = PeerKey>) -> Self {
        NodeSet(RwLock::new(keys.into_iter().collect()))
    }

    pub fn replace(&self, keys: impl IntoIterator<Item = PeerKey>) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys.into_iter().collect();
    }
}

impl PeerAuthorizer for NodeSet {
    fn is_member(&self, peer: &PeerKey) -> bool {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(peer)
    }
}

/// What the transport tells the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    Connected { peer: PeerKey, addr: SocketAddr, outbound: bool },
    Disconnected { peer: PeerKey, reason: String },
    Message { peer: PeerKey, message: Message },
}

/// A connected peer, for the admin API and metrics.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub key: PeerKey,
    /// The suite the connection runs in.
    pub suite: WireSuite,
    pub addr: SocketAddr,
    pub outbound: bool,
    pub connected_for: Duration,
    pub last_heard_ago: Duration,
    pub rtt: Option<Duration>,
    pub score: i32,
}

/// Why a message could not be queued for a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("peer {0} is not connected")]
    NotConnected(PeerKey),
    #[error("peer {0}'s queue is full (it is dropped as too slow)")]
    Full(PeerKey),
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct NetCounters {
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub peers_refused: AtomicU64,
    pub peers_dropped: AtomicU64,
    pub messages_dropped: AtomicU64,
}

struct Connection {
    id: u64,
    suite: WireSuite,
    addr: SocketAddr,
    outbound: bool,
    /// Who initiated it: when both sides dial each other, both keep the connection the
    /// smaller key initiated.
    initiator: PeerKey,
    since: Instant,
    stats: Arc<Mutex<Stats>>,
    queue: mpsc::Sender<Arc<Vec<u8>>>,
    close: CancellationToken,
}

struct Stats {
    last_heard: Instant,
    rtt: Option<Duration>,
}

struct Shared {
    config: NetConfig,
    /// The suites the node answers in, the one it dials in first.
    identities: RwLock<Vec<Identity>>,
    peers: Mutex<HashMap<PeerKey, Connection>>,
    /// The key last found behind each dialled address, so a peer already connected (either
    /// way) is not dialled again.
    known: Mutex<HashMap<SocketAddr, PeerKey>>,
    scores: Scores,
    events: mpsc::Sender<NetEvent>,
    shutdown: CancellationToken,
    next_id: AtomicU64,
    counters: NetCounters,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running transport. Dropping it does not stop it: call [`Network::shutdown`].
#[derive(Clone)]
pub struct Network {
    shared: Arc<Shared>,
    local: SocketAddr,
}

impl Network {
    /// Listen, start dialling the bootstrap peers, and return the handle with the node's
    /// end of the event queue (`events` messages at most in flight: when the node falls
    /// behind, peers' readers wait, and TCP pushes back on the peers).
    pub async fn start(config: NetConfig, authorizer: Arc<dyn PeerAuthorizer>, events: usize) -> Result<(Network, mpsc::Receiver<NetEvent>), NetError> {
        let listener = TcpListener::bind(config.listen).await.map_err(|source| NetError::Listen { addr: config.listen, source })?;
        let local = listener.local_addr().map_err(|source| NetError::Listen { addr: config.listen, source })?;
        let (tx, rx) = mpsc::channel(events.max(1));
        let first = Identity { suite: config.suite, key: config.key.clone(), authorizer, prologue: config.prologue(config.suite) };
        let shared = Arc::new(Shared {
            identities: RwLock::new(vec![first]),
            scores: Scores::new(config.ban),
            config,
            peers: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            events: tx,
            shutdown: CancellationToken::new(),
            next_id: AtomicU64::new(1),
            counters: NetCounters::default(),
        });
        tokio::spawn(accept_loop(shared.clone(), listener));
        let net = Network { shared, local };
        for addr in net.shared.config.bootstrap.clone() {
            net.dial(addr);
        }
        Ok((net, rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// This node's key in the suite it dials in.
    pub fn key(&self) -> PeerKey {
        self.shared.dialing().key.public()
    }

    /// Answer in `suite` too, with `key`, to the peers `authorizer` admits (replacing an
    /// identity of that suite).
    pub fn add_identity(&self, key: Arc<NodeKey>, authorizer: Arc<dyn PeerAuthorizer>) {
        let suite = key.suite();
        let id = Identity { suite, key, authorizer, prologue: self.shared.config.prologue(suite) };
        let mut ids = write(&self.shared.identities);
        ids.retain(|i| i.suite != suite);
        ids.push(id);
        tracing::info!(%suite, "the wire answers in another suite too");
    }

    /// Dial in `suite` (an identity of it must be there): connections this node dialled in
    /// another suite close, and are dialled again in this one.
    pub fn dial_in(&self, suite: WireSuite) {
        {
            let mut ids = write(&self.shared.identities);
            let Some(i) = ids.iter().position(|i| i.suite == suite) else { return };
            if i == 0 {
                return;
            }
            let id = ids.remove(i);
            ids.insert(0, id);
        }
        tracing::info!(%suite, "the wire dials in another suite");
        for c in lock(&self.shared.peers).values().filter(|c| c.outbound && c.suite != suite) {
            c.close.cancel();
        }
    }

    /// Stop answering in `suite`: its connections close.
    pub fn remove_identity(&self, suite: WireSuite) {
        {
            let mut ids = write(&self.shared.identities);
            if ids.len() < 2 || !ids.iter().any(|i| i.suite == suite) {
                return;
            }
            ids.retain(|i| i.suite != suite);
        }
        tracing::info!(%suite, "the wire no longer answers in a suite");
        for c in lock(&self.shared.peers).values().filter(|c| c.suite == suite) {
            c.close.cancel();
        }
    }

    /// The suites the node answers in, the one it dials in first.
    pub fn suites(&self) -> Vec<WireSuite> {
        read(&self.shared.identities).iter().map(|i| i.suite).collect()
    }

    /// Keep a connection to `addr` (a peer added later, §5.2.3), redialling while it is down.
    pub fn dial(&self, addr: SocketAddr) {
        tokio::spawn(dial_loop(self.shared.clone(), addr));
    }

    /// Queue `message` for `peer`. A full queue drops the peer as too slow.
    pub fn send(&self, peer: &PeerKey, message: &Message) -> Result<(), SendError> {
        self.queue(peer, Arc::new(message.encode()))
    }

    /// Queue `message` for every connected peer; returns how many took it.
    pub fn broadcast(&self, message: &Message) -> usize {
        let bytes = Arc::new(message.encode());
        let keys: Vec<PeerKey> = lock(&self.shared.peers).keys().copied().collect();
        keys.iter().filter(|k| self.queue(k, bytes.clone()).is_ok()).count()
    }

    fn queue(&self, peer: &PeerKey, bytes: Arc<Vec<u8>>) -> Result<(), SendError> {
        let peers = lock(&self.shared.peers);
        let conn = peers.get(peer).ok_or(SendError::NotConnected(*peer))?;
        match conn.queue.try_send(bytes) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.counters.messages_dropped.fetch_add(1, Ordering::Relaxed);
                conn.close.cancel();
                Err(SendError::Full(*peer))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::NotConnected(*peer)),
        }
    }

    /// The node judged something `peer` sent (an invalid block, a bad consensus message).
    pub fn report(&self, peer: &PeerKey, offence: Offence) {
        if self.shared.scores.penalize(peer, offence)
            && let Some(c) = lock(&self.shared.peers).get(peer)
        {
            c.close.cancel();
        }
    }

    /// Drop connections of peers no longer in the node set of their suite (a node
    /// deleted, §5.2.4).
    pub fn enforce_membership(&self) {
        let ids = read(&self.shared.identities).clone();
        for (key, c) in lock(&self.shared.peers).iter() {
            if !ids.iter().any(|i| i.suite == c.suite && i.authorizer.is_member(key)) {
                c.close.cancel();
            }
        }
    }

    pub fn peers(&self) -> Vec<PeerInfo> {
        let now = Instant::now();
        let mut out: Vec<PeerInfo> = lock(&self.shared.peers)
            .iter()
            .map(|(key, c)| {
                let s = lock(&c.stats);
                PeerInfo {
                    key: *key,
                    suite: c.suite,
                    addr: c.addr,
                    outbound: c.outbound,
                    connected_for: now.saturating_duration_since(c.since),
                    last_heard_ago: now.saturating_duration_since(s.last_heard),
                    rtt: s.rtt,
                    score: self.shared.scores.score(key),
                }
            })
            .collect();
        out.sort_by_key(|p| p.key);
        out
    }

    pub fn score(&self, peer: &PeerKey) -> i32 {
        self.shared.scores.score(peer)
    }

    pub fn is_banned(&self, peer: &PeerKey) -> bool {
        self.shared.scores.is_banned(peer)
    }

    pub fn counters(&self) -> &NetCounters {
        &self.shared.counters
    }

    /// Stop listening and dialling and close every connection.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

impl Shared {
    /// The identity the node dials in.
    fn dialing(&self) -> Identity {
        let ids = read(&self.identities);
        // Never empty: `remove_identity` keeps the last one.
        ids.first().cloned().unwrap_or_else(|| Identity {
            suite: self.config.suite,
            key: self.config.key.clone(),
            authorizer: Arc::new(NodeSet::default()),
            prologue: self.config.prologue(self.config.suite),
        })
    }
}

/// Judge a remote key during a handshake in `suite`: not ourselves, not banned, a member of
/// that suite's node set.
fn admit(shared: &Shared, suite: WireSuite, key: &PeerKey) -> Result<(), HandshakeError> {
    let ids = read(&shared.identities);
    if ids.iter().any(|i| i.key.public() == *key) {
        return Err(HandshakeError::NotAuthorised(*key));
    }
    if shared.scores.is_banned(key) {
        return Err(HandshakeError::Banned(*key));
    }
    if !ids.iter().any(|i| i.suite == suite && i.authorizer.is_member(key)) {
        return Err(HandshakeError::NotAuthorised(*key));
    }
    Ok(())
}

async fn secure(shared: &Arc<Shared>, stream: TcpStream, initiator: bool) -> Result<Secured, HandshakeError> {
    let timeout = shared.config.handshake_timeout;
    let handshake = async {
        if initiator {
            let id = shared.dialing();
            secure::initiate(stream, id.suite, &id.key, &id.prologue, |k| admit(shared, id.suite, k)).await
        } else {
            let pick = |asked: Option<WireSuite>| {
                let ids = read(&shared.identities);
                // A version-1 peer speaks the suite the node has had longest.
                let id = match asked {
                    Some(s) => ids.iter().find(|i| i.suite == s),
                    None => ids.iter().find(|i| i.suite == shared.config.suite).or(ids.first()),
                }?;
                Some((id.suite, secure::Answer { key: id.key.clone(), prologue: id.prologue.clone() }))
            };
            secure::respond(stream, pick, |suite, k| admit(shared, suite, k)).await
        }
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(r) => r,
        Err(_) => Err(HandshakeError::Timeout(timeout)),
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, addr)) = accepted else { continue };
        if lock(&shared.peers).len() >= shared.config.max_peers {
            shared.counters.peers_refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            match secure(&shared, stream, false).await {
                Ok(s) => run_connection(shared, s, addr, false).await,
                Err(e) => refused(&shared, addr, &e),
            }
        });
    }
}

fn refused(shared: &Shared, addr: SocketAddr, e: &HandshakeError) {
    let counter = match e {
        HandshakeError::NotAuthorised(_) | HandshakeError::Banned(_) => &shared.counters.peers_refused,
        _ => &shared.counters.handshakes_failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%addr, "peer refused: {e}");
}

async fn dial_loop(shared: Arc<Shared>, addr: SocketAddr) {
    while !shared.shutdown.is_cancelled() {
        let connected = lock(&shared.known).get(&addr).is_some_and(|k| lock(&shared.peers).contains_key(k));
        if !connected {
            let attempt = tokio::time::timeout(shared.config.handshake_timeout, TcpStream::connect(addr)).await;
            if let Ok(Ok(stream)) = attempt {
                match secure(&shared, stream, true).await {
                    Ok(s) => {
                        lock(&shared.known).insert(addr, s.remote);
                        run_connection(shared.clone(), s, addr, true).await;
                    }
                    Err(e) => refused(&shared, addr, &e),
                }
            }
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(shared.config.redial) => {}
        }
    }
}

/// Register the connection (or lose a simultaneous-dial tie), then read until it ends while
/// a writer task drains its queue and keeps it alive.
async fn run_connection(shared: Arc<Shared>, secured: Secured, addr: SocketAddr, outbound: bool) {
    let Secured { remote, suite, mut reader, writer } = secured;
    let local = read(&shared.identities).iter().find(|i| i.suite == suite).map_or_else(|| shared.config.key.public(), |i| i.key.public());
    let initiator = if outbound { local } else { remote };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let close = shared.shutdown.child_token();
    let stats = Arc::new(Mutex::new(Stats { last_heard: Instant::now(), rtt: None }));
    let (queue, rx) = mpsc::channel(shared.config.peer_queue.max(1));
    {
        let mut peers = lock(&shared.peers);
        if let Some(existing) = peers.get(&remote) {
            if existing.initiator <= initiator {
                return;
            }
            existing.close.cancel();
        }
        let conn = Connection { id, suite, addr, outbound, initiator, since: Instant::now(), stats: stats.clone(), queue: queue.clone(), close: close.clone() };
        peers.insert(remote, conn);
    }
    tracing::info!(peer = %remote.short(), %addr, outbound, %suite, "peer connected");
    let _ = shared.events.send(NetEvent::Connected { peer: remote, addr, outbound }).await;
    let pings = Arc::new(Mutex::new(HashMap::<u64, Instant>::new()));
    let writer_task = tokio::spawn(write_loop(shared.clone(), writer, rx, close.clone(), pings.clone()));
    let reason = read_loop(&shared, remote, &mut reader, &queue, &close, &stats, &pings).await;
    close.cancel();
    let _ = writer_task.await;
    {
        let mut peers = lock(&shared.peers);
        if peers.get(&remote).is_some_and(|c| c.id == id) {
            peers.remove(&remote);
        }
    }
    shared.counters.peers_dropped.fetch_add(1, Ordering::Relaxed);
    tracing::info!(peer = %remote.short(), %addr, "peer disconnected: {reason}");
    let _ = shared.events.send(NetEvent::Disconnected { peer: remote, reason }).await;
}

async fn write_loop(
    shared: Arc<Shared>,
    mut writer: secure::SecureWriter,
    mut rx: mpsc::Receiver<Arc<Vec<u8>>>,
    close: CancellationToken,
    pings: Arc<Mutex<HashMap<u64, Instant>>>,
) {
    let heartbeat = shared.config.heartbeat;
    let mut nonce = 0u64;
    loop {
        let next = tokio::select! {
            biased;
            _ = close.cancelled() => return,
            m = rx.recv() => m,
            _ = tokio::time::sleep(heartbeat) => {
                nonce = nonce.wrapping_add(1);
                {
                    let mut p = lock(&pings);
                    p.retain(|_, sent| sent.elapsed() < shared.config.peer_timeout);
                    p.insert(nonce, Instant::now());
                }
                Some(Arc::new(Message::Ping(nonce).encode()))
            }
        };
        let Some(bytes) = next else { return };
        let sent = tokio::select! {
            _ = close.cancelled() => return,
            r = writer.send(&bytes) => r,
        };
        if sent.is_err() {
            close.cancel();
            return;
        }
        shared.counters.messages_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// A token bucket: `burst` messages at once, refilled at `rate` a second.
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn read_loop(
    shared: &Shared,
    peer: PeerKey,
    reader: &mut secure::SecureReader,
    queue: &mpsc::Sender<Arc<Vec<u8>>>,
    close: &CancellationToken,
    stats: &Mutex<Stats>,
    pings: &Mutex<HashMap<u64, Instant>>,
) -> String {
    let c = &shared.config;
    let mut bucket = Bucket { tokens: f64::from(c.rate_burst), rate: f64::from(c.rate_per_sec), burst: f64::from(c.rate_burst), at: Instant::now() };
    let offend = |offence: Offence, what: String| -> Option<String> {
        let banned = shared.scores.penalize(&peer, offence);
        tracing::warn!(peer = %peer.short(), ?offence, "{what}");
        banned.then(|| format!("{what} (banned for {:?})", c.ban))
    };
    loop {
        let read = tokio::select! {
            _ = close.cancelled() => return if shared.shutdown.is_cancelled() { "shutting down".into() } else { "closed by this node".into() },
            r = tokio::time::timeout(c.peer_timeout, reader.recv(c.max_message_bytes)) => r,
        };
        let bytes = match read {
            Err(_) => return format!("silent for {:?}", c.peer_timeout),
            Ok(Ok(None)) => return "closed by the peer".into(),
            Ok(Ok(Some(b))) => b,
            Ok(Err(ReadError::Io(e))) => return format!("connection: {e}"),
            Ok(Err(e @ ReadError::Garbage(_))) => return offend(Offence::Garbage, e.to_string()).unwrap_or_else(|| e.to_string()),
            Ok(Err(e @ ReadError::Oversized { .. })) => return offend(Offence::Oversized, e.to_string()).unwrap_or_else(|| e.to_string()),
        };
        lock(stats).last_heard = Instant::now();
        shared.counters.bytes_in.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if !bucket.take() {
            if let Some(reason) = offend(Offence::Flood, format!("more than {} messages a second", c.rate_per_sec)) {
                return reason;
            }
            continue;
        }
        let message = match Message::decode(&bytes) {
            Ok(m) => m,
            Err(e) => {
                if let Some(reason) = offend(Offence::InvalidMessage, e.to_string()) {
                    return reason;
                }
                continue;
            }
        };
        shared.counters.messages_in.fetch_add(1, Ordering::Relaxed);
        match message {
            Message::Ping(n) => {
                let _ = queue.try_send(Arc::new(Message::Pong(n).encode()));
            }
            Message::Pong(n) => {
                if let Some(sent) = lock(pings).remove(&n) {
                    lock(stats).rtt = Some(sent.elapsed());
                }
            }
            message => {
                let delivered = tokio::select! {
                    _ = close.cancelled() => return "closed by this node".into(),
                    r = shared.events.send(NetEvent::Message { peer, message }) => r,
                };
                if delivered.is_err() {
                    return "the node stopped listening".into();
                }
            }
        }
    }
}
