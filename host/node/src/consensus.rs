//! A channel's consensus participant at work: the engine's participant for this node, run
//! by `joule_consensus::driver` with the node as its host (the chain builds, signs, searches
//! nonces, commits and keeps the participant's state; the peer-to-peer network carries its
//! messages). Every committed block, this node's or a peer's, is a new head for it.
//!
//! The participant comes from the engine of the next height: when the chain's engine
//! schedule switches engines at a height the validators voted, or an operator activates
//! another version of the genesis engine, the participant of the new one takes over at the
//! next block (the old one is dropped with whatever it was doing).

use joule_consensus::driver::{Build, Driver, DriverHost};
use joule_consensus::{ConsensusEngine, Event};
use joule_ledger::chain::{Chain, ChainError};
use joule_net::{Message, Network};
use joule_primitives::Encode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;

/// How soon a block that is not due yet is looked at again. A full block's worth of
/// pending transactions makes it due at once, so this bounds how late that is noticed.
const POLL: Duration = Duration::from_millis(20);
/// How long to wait before trying again when the channel has no usable engine.
const ENGINE_RETRY: Duration = Duration::from_secs(1);
/// Events (new heads, peers' messages) waiting for the participant, at most.
const INBOX: usize = 1024;

/// The node as the driver's host.
struct NodeHost {
    chain: Arc<Chain>,
    net: Option<Network>,
}

impl DriverHost for NodeHost {
    /// A block is due once the policy's interval has passed since the head's timestamp, or
    /// at once when a full block is pending.
    fn build(&self, parent: &[u8]) -> Result<Build, String> {
        let policy = self.chain.policy();
        let head = self.chain.head();
        let now = joule_support::now_ms();
        let due = head.header.timestamp_ms.saturating_add(policy.interval_ms);
        if now < due && self.chain.pending_len() < policy.max_transactions as usize {
            self.chain.production_alive();
            return Ok(Build::NotYet(Duration::from_millis(due - now).min(POLL)));
        }
        match self.chain.build(parent, now) {
            Ok(Some(header)) => Ok(Build::Built(header)),
            Ok(None) => {
                self.chain.production_attempted(None);
                Ok(Build::NotYet(POLL))
            }
            // A block arrived meanwhile; the participant hears of it next.
            Err(ChainError::HeadMoved(_)) => Ok(Build::NotYet(POLL)),
            Err(e) => {
                self.chain.production_attempted(Some(&e.to_string()));
                Err(e.to_string())
            }
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.chain.sign_as_node(message).map_err(|e| e.to_string())
    }

    fn broadcast(&self, message: Vec<u8>) {
        if let Some(net) = &self.net {
            net.broadcast(&Message::Consensus(message));
        }
    }

    /// The unsealed block, with the participant's message, to every peer.
    fn propose(&self, seal_hash: &[u8], message: Vec<u8>) {
        let Some(net) = &self.net else { return };
        match self.chain.candidate_block(seal_hash) {
            Some(block) => {
                net.broadcast(&Message::Proposal { block: block.encode(), message });
            }
            None => tracing::warn!(channel = %self.chain.channel(), "the participant proposed a block this node no longer holds ({})", hex::encode(seal_hash)),
        }
    }

    fn work(&self, seal_hash: &[u8], target: &[u8], cancel: &AtomicBool) -> Option<Vec<u8>> {
        self.chain.work(seal_hash, target, cancel)
    }

    fn commit(&self, seal_hash: &[u8], seal: Vec<u8>) -> Result<(), String> {
        match self.chain.commit_built(seal_hash, seal) {
            Ok(b) => {
                self.chain.production_attempted(None);
                tracing::debug!(channel = %self.chain.channel(), height = b.block.header.height, txs = b.block.transactions.len(), "block committed");
                Ok(())
            }
            Err(ChainError::HeadMoved(reason)) => Err(reason),
            // Committed already, from a peer: what the participant wanted.
            Err(ChainError::Known { .. }) => Ok(()),
            Err(e) => {
                self.chain.production_attempted(Some(&e.to_string()));
                Err(e.to_string())
            }
        }
    }

    fn persist(&self, state: &[u8]) -> Result<(), String> {
        self.chain.set_consensus_state(state).map_err(|e| e.to_string())
    }
}

fn same(a: &Arc<dyn ConsensusEngine>, b: &Arc<dyn ConsensusEngine>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// Run the channel's participant until the chain closes. `messages`: what peers sent for
/// it (consensus messages, and proposals the chain has checked).
pub async fn run(chain: Arc<Chain>, net: Option<Network>, mut messages: mpsc::Receiver<Event>) {
    let host = Arc::new(NodeHost { chain: chain.clone(), net });
    let mut blocks = chain.subscribe();
    let mut messages_open = true;
    loop {
        let started = chain.engine().and_then(|engine| {
            let me = chain.signer_key().unwrap_or_default().to_vec();
            let head = chain.engine_head()?;
            let participant = engine.participant(&me, &head, &chain.consensus_state()?)?;
            Ok((engine, head, participant))
        });
        let (engine, head, participant) = match started {
            Ok(s) => s,
            Err(e) => {
                chain.production_attempted(Some(&e.to_string()));
                tokio::time::sleep(ENGINE_RETRY).await;
                continue;
            }
        };
        let (tx, rx) = mpsc::channel(INBOX);
        let driver = tokio::spawn(Driver::new(participant, host.clone(), chain.channel().as_str()).run(rx));
        let _ = tx.send(Event::NewHead(head)).await;
        let mut tick = tokio::time::interval(ENGINE_RETRY);
        loop {
            tokio::select! {
                committed = blocks.recv() => {
                    if let Err(RecvError::Closed) = committed {
                        return;
                    }
                    // Blocks imported in a burst (sync) make one new head, the latest: the
                    // participant has nothing to do at the ones in between.
                    loop {
                        match blocks.try_recv() {
                            Ok(_) | Err(TryRecvError::Lagged(_)) => continue,
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Closed) => return,
                        }
                    }
                    // Another engine version took over: its participant starts at this head.
                    if !chain.engine().is_ok_and(|now| same(&now, &engine)) {
                        break;
                    }
                    match chain.engine_head() {
                        Ok(h) => {
                            if tx.send(Event::NewHead(h)).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => tracing::error!(channel = %chain.channel(), "consensus: reading the head failed: {e}"),
                    }
                }
                m = messages.recv(), if messages_open => match m {
                    // A full inbox drops a peer's message rather than the node's memory.
                    Some(m) => {
                        let _ = tx.try_send(m);
                    }
                    None => messages_open = false,
                },
                _ = tick.tick() => {
                    // Alive, for the health check, even when this node never builds.
                    chain.production_alive();
                    if driver.is_finished() || !chain.engine().is_ok_and(|now| same(&now, &engine)) {
                        break;
                    }
                }
            }
        }
        drop(tx);
        let _ = driver.await;
    }
}
