//! Runs a [`Participant`] for one channel: delivers its events one at a time and carries
//! out its actions through a [`DriverHost`] (the node: its chain, its network, its key).
//!
//! The driver owns time: timers the participant sets, the retries of a block that is not
//! due yet, and the proof-of-work search, which runs on a blocking thread and is cancelled
//! when the head moves. Answers (`built`, `signed`, `worked`) are queued and handled before
//! anything new from outside, so a participant sees the answer to what it asked before a
//! message that arrived meanwhile.

use crate::EngineHeader;
use crate::participant::Head;
use crate::participant::{Action, Event, Participant};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a block build gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// The block, unsealed, kept by the host under its seal hash.
    Built(EngineHeader),
    /// The block policy wants none yet (the interval has not passed, or there is nothing to
    /// put in it); ask again after this long.
    NotYet(Duration),
}

/// What the driver needs from the node. The blocking calls run on blocking threads.
pub trait DriverHost: Send + Sync + 'static {
    /// Build a block on the block whose hash is `parent` (the head the participant knows);
    /// an error when that is no longer the head.
    fn build(&self, parent: &[u8]) -> Result<Build, String>;
    /// Sign with the node's consensus key.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String>;
    /// Send a consensus message to every peer.
    fn broadcast(&self, message: Vec<u8>);
    /// Send the block built here under `seal_hash`, with `message`, to every peer.
    fn propose(&self, seal_hash: &[u8], message: Vec<u8>);
    /// Search nonces (blocking) until `hash(seal_hash ‖ nonce) ≤ target`; `None` once
    /// `cancel` is set.
    fn work(&self, seal_hash: &[u8], target: &[u8], cancel: &AtomicBool) -> Option<Vec<u8>>;
    /// Seal the block kept under `seal_hash` and commit it.
    fn commit(&self, seal_hash: &[u8], seal: Vec<u8>) -> Result<(), String>;
    /// Keep the participant's state across a restart.
    fn persist(&self, state: &[u8]) -> Result<(), String>;
}

/// How long a failed build waits before the next try, and a participant whose commit failed
/// before it starts over.
const BUILD_RETRY: Duration = Duration::from_secs(1);

/// A nonce found: the head it was searched on, the seal hash, the nonce.
type Found = (Vec<u8>, Vec<u8>, Vec<u8>);

/// A participant at work.
pub struct Driver<H: DriverHost> {
    participant: Box<dyn Participant>,
    host: Arc<H>,
    channel: String,
    timers: HashMap<u64, Instant>,
    /// The head's hash as the participant last saw it.
    head: Vec<u8>,
    /// The head as last delivered, to deliver again after a failed commit.
    last_head: Option<Head>,
    /// When to deliver it again (a commit failed: the participant starts over at its head).
    restart_at: Option<Instant>,
    /// A build asked for and not done: when to try (again).
    build_at: Option<Instant>,
    /// The running proof-of-work search: its cancel flag.
    work: Option<Arc<AtomicBool>>,
    found: (mpsc::Sender<Found>, mpsc::Receiver<Found>),
    queue: VecDeque<Event>,
    /// When the current head arrived (for the time each height takes).
    head_at: Option<Instant>,
}

impl<H: DriverHost> Driver<H> {
    pub fn new(participant: Box<dyn Participant>, host: Arc<H>, channel: &str) -> Self {
        Driver {
            participant,
            host,
            channel: channel.into(),
            timers: HashMap::new(),
            head: Vec::new(),
            last_head: None,
            restart_at: None,
            build_at: None,
            work: None,
            found: mpsc::channel(4),
            queue: VecDeque::new(),
            head_at: None,
        }
    }

    /// Deliver `inbox` (new heads, peers' messages and proposals) until it closes.
    pub async fn run(mut self, mut inbox: mpsc::Receiver<Event>) {
        loop {
            self.drain().await;
            let wake = self.timers.values().copied().chain(self.build_at).chain(self.restart_at).min();
            tokio::select! {
                event = inbox.recv() => match event {
                    Some(e) => {
                        self.queue.push_back(e);
                        // Take what else has arrived, so a burst of heads is seen as one.
                        while let Ok(e) = inbox.try_recv() {
                            self.queue.push_back(e);
                        }
                    }
                    None => {
                        self.cancel_work();
                        return;
                    }
                },
                Some((head, seal_hash, nonce)) = self.found.1.recv() => {
                    // A nonce for a block on a head that has since moved is worth nothing.
                    if head == self.head {
                        self.queue.push_back(Event::Worked { seal_hash, nonce });
                    }
                }
                _ = sleep_until(wake) => self.expire(Instant::now()).await,
            }
        }
    }

    /// Handle everything queued, answers first as they are queued.
    async fn drain(&mut self) {
        while let Some(event) = self.queue.pop_front() {
            // Only the latest head matters: during sync hundreds arrive at once, and the
            // participant would start (and the host build) on each in vain.
            if matches!(event, Event::NewHead(_)) && self.queue.iter().any(|e| matches!(e, Event::NewHead(_))) {
                continue;
            }
            metrics::counter!("consensus_events_total", "channel" => self.channel.clone(), "event" => event.kind()).increment(1);
            if let Event::NewHead(h) = &event {
                let now = Instant::now();
                if let Some(at) = self.head_at.replace(now)
                    && h.hash != self.head
                {
                    metrics::histogram!("consensus_height_seconds", "channel" => self.channel.clone()).record((now - at).as_secs_f64());
                }
                self.head = h.hash.clone();
                self.last_head = Some(h.clone());
                self.restart_at = None;
                self.build_at = None;
                self.cancel_work();
            }
            match self.participant.handle(event) {
                Ok(actions) => {
                    for a in actions {
                        self.apply(a).await;
                    }
                }
                Err(e) => tracing::error!(channel = %self.channel, "consensus participant failed: {e}"),
            }
        }
    }

    /// Fire the timers due by `now`, earliest first, and a build that is due.
    async fn expire(&mut self, now: Instant) {
        let mut due: Vec<(Instant, u64)> = self.timers.iter().filter(|(_, at)| **at <= now).map(|(id, at)| (*at, *id)).collect();
        due.sort();
        for (_, id) in due {
            self.timers.remove(&id);
            self.queue.push_back(Event::Timer(id));
        }
        if self.build_at.is_some_and(|at| at <= now) {
            self.try_build().await;
        }
        if self.restart_at.is_some_and(|at| at <= now) {
            self.restart_at = None;
            if let Some(h) = self.last_head.clone() {
                self.queue.push_back(Event::NewHead(h));
            }
        }
    }

    async fn apply(&mut self, action: Action) {
        metrics::counter!("consensus_actions_total", "channel" => self.channel.clone(), "action" => action.kind()).increment(1);
        match action {
            Action::SetTimer { id, after_ms } => {
                self.timers.insert(id, Instant::now() + Duration::from_millis(after_ms));
            }
            Action::Build => {
                self.build_at = Some(Instant::now());
                self.try_build().await;
            }
            Action::Sign { request, message } => {
                let host = self.host.clone();
                match blocking(move || host.sign(&message)).await {
                    Ok(signature) => self.queue.push_back(Event::Signed { request, signature }),
                    Err(e) => tracing::error!(channel = %self.channel, "consensus: signing failed: {e}"),
                }
            }
            Action::Broadcast(message) => self.host.broadcast(message),
            Action::Propose { seal_hash, message } => self.host.propose(&seal_hash, message),
            Action::Work { seal_hash, target } => {
                self.cancel_work();
                let cancel = Arc::new(AtomicBool::new(false));
                self.work = Some(cancel.clone());
                let (host, tx, head, channel) = (self.host.clone(), self.found.0.clone(), self.head.clone(), self.channel.clone());
                // A thread of its own at idle priority: the search takes only the CPU that
                // validating peers' blocks and admitting transactions leave, so a miner
                // never falls behind its peers' blocks for mining on a stale head.
                let spawned = std::thread::Builder::new().name("pow-search".into()).spawn(move || {
                    idle_priority();
                    let started = Instant::now();
                    if let Some(nonce) = host.work(&seal_hash, &target, &cancel) {
                        metrics::histogram!("consensus_work_seconds", "channel" => channel).record(started.elapsed().as_secs_f64());
                        let _ = tx.blocking_send((head, seal_hash, nonce));
                    }
                });
                if let Err(e) = spawned {
                    tracing::error!(channel = %self.channel, "consensus: no thread for the proof-of-work search: {e}");
                }
            }
            Action::Commit { seal_hash, seal } => {
                let host = self.host.clone();
                if let Err(e) = blocking(move || host.commit(&seal_hash, seal)).await {
                    // Nothing new will come to a participant that waits for its own block:
                    // it starts over at the same head, as if it had just arrived.
                    tracing::warn!(channel = %self.channel, "consensus: the block was not committed (starting over in {BUILD_RETRY:?}): {e}");
                    self.restart_at = Some(Instant::now() + BUILD_RETRY);
                }
            }
            Action::Persist(state) => {
                if let Err(e) = self.host.persist(&state) {
                    tracing::error!(channel = %self.channel, "consensus: keeping the participant's state failed: {e}");
                }
            }
        }
    }

    async fn try_build(&mut self) {
        let (host, parent) = (self.host.clone(), self.head.clone());
        match blocking(move || host.build(&parent)).await {
            Ok(Build::Built(header)) => {
                self.build_at = None;
                self.queue.push_back(Event::Built(header));
            }
            Ok(Build::NotYet(after)) => self.build_at = Some(Instant::now() + after),
            Err(e) => {
                tracing::warn!(channel = %self.channel, "consensus: building a block failed (retrying in {BUILD_RETRY:?}): {e}");
                self.build_at = Some(Instant::now() + BUILD_RETRY);
            }
        }
    }

    fn cancel_work(&mut self) {
        if let Some(flag) = self.work.take() {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

/// Run the calling thread under `SCHED_IDLE` (Linux): it gets a CPU only when nothing else
/// wants it. Elsewhere, or if the kernel refuses, it runs at normal priority.
fn idle_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` with pid 0 changes only the calling thread's policy
        // and reads `param`, a valid value on the stack for the duration of the call.
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if r != 0 {
            tracing::debug!("SCHED_IDLE refused for the proof-of-work search: {}", std::io::Error::last_os_error());
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Run a blocking host call off the async threads.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Result<R, String> + Send + 'static) -> Result<R, String> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(format!("the task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConsensusError;
    use std::sync::Mutex;

    /// The host side of the tests: records what it was asked, builds on demand.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
        /// Builds answered NotYet before the one that succeeds.
        not_yet: Mutex<u32>,
        /// Commits that fail before one succeeds.
        failing_commits: Mutex<u32>,
    }

    impl Recorder {
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
        fn log(&self, s: String) {
            self.calls.lock().unwrap().push(s);
        }
    }

    fn header(height: u64, parent: &[u8]) -> EngineHeader {
        EngineHeader { height, parent_hash: parent.to_vec(), timestamp_ms: 1, seal_hash: vec![height as u8; 4], proposer: b"me".to_vec(), seal: vec![] }
    }

    impl DriverHost for Recorder {
        fn build(&self, parent: &[u8]) -> Result<Build, String> {
            let mut n = self.not_yet.lock().unwrap();
            if *n > 0 {
                *n -= 1;
                self.log("not-yet".into());
                return Ok(Build::NotYet(Duration::from_millis(5)));
            }
            self.log(format!("build on {parent:?}"));
            Ok(Build::Built(header(7, parent)))
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
            self.log(format!("sign {message:?}"));
            Ok([b"sig:".as_slice(), message].concat())
        }
        fn broadcast(&self, message: Vec<u8>) {
            self.log(format!("broadcast {message:?}"));
        }
        fn propose(&self, seal_hash: &[u8], message: Vec<u8>) {
            self.log(format!("propose {seal_hash:?} {message:?}"));
        }
        fn work(&self, _seal_hash: &[u8], target: &[u8], cancel: &AtomicBool) -> Option<Vec<u8>> {
            // Target [0]: never found (until cancelled); anything else: found at once.
            if target == [0] {
                while !cancel.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                self.log("work cancelled".into());
                return None;
            }
            Some(vec![42])
        }
        fn commit(&self, seal_hash: &[u8], seal: Vec<u8>) -> Result<(), String> {
            let mut failing = self.failing_commits.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                self.log("commit failed".into());
                return Err("the store is failing".into());
            }
            self.log(format!("commit {seal_hash:?} {seal:?}"));
            Ok(())
        }
        fn persist(&self, state: &[u8]) -> Result<(), String> {
            self.log(format!("persist {state:?}"));
            Ok(())
        }
    }

    /// A participant that proposes on every head (build, sign, commit), reports the events
    /// it sees, and does what messages tell it: `t<id><ms>` sets a timer, `w<target>` works.
    struct Script(Arc<Mutex<Vec<String>>>);

    impl Participant for Script {
        fn handle(&mut self, event: Event) -> Result<Vec<Action>, ConsensusError> {
            self.0.lock().unwrap().push(format!("{event:?}").chars().take(40).collect());
            Ok(match event {
                Event::NewHead(_) => vec![Action::Build],
                Event::Built(h) => vec![Action::Sign { request: h.height, message: h.seal_hash }],
                Event::Signed { request, signature } => vec![Action::Commit { seal_hash: vec![request as u8; 4], seal: signature }],
                Event::Message(m) if m.first() == Some(&b't') => vec![Action::SetTimer { id: u64::from(m[1]), after_ms: u64::from(m[2]) }],
                Event::Message(m) if m.first() == Some(&b'w') => vec![Action::Work { seal_hash: vec![1], target: vec![m[1]] }],
                Event::Worked { nonce, .. } => vec![Action::Persist(nonce)],
                _ => vec![],
            })
        }
    }

    fn head(hash: u8) -> Event {
        Event::NewHead(Head { header: header(6, &[5]), hash: vec![hash], validators: vec![] })
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn start() -> (Arc<Recorder>, Arc<Mutex<Vec<String>>>, mpsc::Sender<Event>) {
        let host = Arc::new(Recorder::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(Driver::new(Box::new(Script(seen.clone())), host.clone(), "test").run(rx));
        (host, seen, tx)
    }

    #[tokio::test]
    async fn a_build_is_signed_and_committed_on_the_head_it_was_asked_for() {
        let (host, _, tx) = start();
        *host.not_yet.lock().unwrap() = 2;
        tx.send(head(9)).await.unwrap();
        until("the commit", || host.calls().iter().any(|c| c.starts_with("commit"))).await;
        assert_eq!(host.calls(), vec!["not-yet", "not-yet", "build on [9]", "sign [7, 7, 7, 7]", "commit [7, 7, 7, 7] [115, 105, 103, 58, 7, 7, 7, 7]"]);
    }

    #[tokio::test]
    async fn of_heads_that_arrive_together_only_the_latest_is_delivered_and_built_on() {
        let (host, seen, tx) = start();
        tx.send(head(1)).await.unwrap();
        tx.send(Event::Message(vec![b'x'])).await.unwrap();
        tx.send(head(2)).await.unwrap();
        tx.send(head(3)).await.unwrap();
        until("the commit", || host.calls().iter().any(|c| c.starts_with("commit"))).await;
        let heads: Vec<String> = seen.lock().unwrap().iter().filter(|e| e.starts_with("NewHead")).cloned().collect();
        assert_eq!(heads.len(), 1, "{heads:?}");
        assert!(seen.lock().unwrap().iter().any(|e| e.starts_with("Message")), "the message between the heads is still delivered");
        let builds: Vec<String> = host.calls().into_iter().filter(|c| c.starts_with("build")).collect();
        assert_eq!(builds, vec!["build on [3]"]);
    }

    #[tokio::test]
    async fn timers_fire_once_in_order_and_setting_one_again_replaces_it() {
        let (_, seen, tx) = start();
        let timers = || seen.lock().unwrap().iter().filter(|e| e.starts_with("Timer")).cloned().collect::<Vec<_>>();
        tx.send(Event::Message(vec![b't', 1, 60])).await.unwrap();
        tx.send(Event::Message(vec![b't', 2, 20])).await.unwrap();
        tx.send(Event::Message(vec![b't', 3, 200])).await.unwrap();
        tx.send(Event::Message(vec![b't', 3, 40])).await.unwrap();
        until("three timers", || timers().len() == 3).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(timers(), vec!["Timer(2)", "Timer(3)", "Timer(1)"]);
    }

    #[tokio::test]
    async fn a_proof_of_work_search_stops_when_the_head_moves_and_a_found_one_is_delivered() {
        let (host, seen, tx) = start();
        tx.send(head(1)).await.unwrap();
        tx.send(Event::Message(vec![b'w', 0])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(head(2)).await.unwrap();
        until("the cancelled search", || host.calls().contains(&"work cancelled".to_string())).await;
        tx.send(Event::Message(vec![b'w', 1])).await.unwrap();
        until("the nonce", || host.calls().contains(&"persist [42]".to_string())).await;
        assert!(seen.lock().unwrap().iter().any(|e| e.starts_with("Worked")));
    }

    #[tokio::test]
    async fn after_a_failed_commit_the_participant_starts_over_at_its_head() {
        let (host, seen, tx) = start();
        *host.failing_commits.lock().unwrap() = 1;
        tx.send(head(9)).await.unwrap();
        until("the second commit", || host.calls().iter().any(|c| c.starts_with("commit ["))).await;
        assert_eq!(host.calls().iter().filter(|c| c.starts_with("build on [9]")).count(), 2, "{:?}", host.calls());
        assert_eq!(seen.lock().unwrap().iter().filter(|e| e.starts_with("NewHead")).count(), 2);
    }
}
