//! Peer scores: misbehaviour costs points, time earns them back, and a peer at the floor is
//! refused for a while (by its key, which the handshake authenticated).

use crate::suite::PeerKey;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The score at which a peer is banned.
pub const BAN_SCORE: i32 = -100;
/// Points a peer earns back per second, up to 0.
pub const RECOVERY_PER_SEC: i32 = 1;

/// What a peer did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    /// Bytes that are not a frame of the session (failed decryption, bad framing).
    Garbage,
    /// A message over the size limit.
    Oversized,
    /// More messages than the rate limit allows.
    Flood,
    /// A message that decrypted but does not decode (another version, a broken peer).
    InvalidMessage,
    /// A block the ledger or the consensus engine rejected (the node reports it).
    InvalidBlock,
    /// A consensus message the engine rejected (the node reports it).
    InvalidConsensus,
}

impl Offence {
    /// Points lost: garbage and oversized messages ban at once (no honest peer sends them);
    /// the rest take several.
    pub fn penalty(self) -> i32 {
        match self {
            Offence::Garbage | Offence::Oversized => 100,
            Offence::InvalidBlock => 50,
            Offence::Flood => 25,
            Offence::InvalidMessage | Offence::InvalidConsensus => 20,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    score: i32,
    at: Instant,
    banned_until: Option<Instant>,
}

/// Scores of every peer seen, banned or not.
#[derive(Debug)]
pub struct Scores {
    ban: Duration,
    entries: Mutex<HashMap<PeerKey, Entry>>,
}

impl Scores {
    pub fn new(ban: Duration) -> Self {
        Scores { ban, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerKey, Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn recovered(e: &Entry, now: Instant) -> i32 {
        let secs = i32::try_from(now.saturating_duration_since(e.at).as_secs()).unwrap_or(i32::MAX);
        e.score.saturating_add(secs.saturating_mul(RECOVERY_PER_SEC)).min(0)
    }

    /// Take the offence's points; true when the peer is now banned.
    pub fn penalize(&self, peer: &PeerKey, offence: Offence) -> bool {
        let now = Instant::now();
        let mut entries = self.lock();
        let e = entries.entry(*peer).or_insert(Entry { score: 0, at: now, banned_until: None });
        e.score = Self::recovered(e, now).saturating_sub(offence.penalty());
        e.at = now;
        if e.score <= BAN_SCORE {
            e.banned_until = Some(now + self.ban);
            e.score = BAN_SCORE;
        }
        e.banned_until.is_some_and(|t| t > now)
    }

    pub fn score(&self, peer: &PeerKey) -> i32 {
        let now = Instant::now();
        self.lock().get(peer).map_or(0, |e| Self::recovered(e, now))
    }

    pub fn is_banned(&self, peer: &PeerKey) -> bool {
        self.lock().get(peer).and_then(|e| e.banned_until).is_some_and(|t| t > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_offences_add_up_to_a_ban_and_garbage_bans_at_once() {
        let scores = Scores::new(Duration::from_secs(60));
        let a = PeerKey([1; 33]);
        let b = PeerKey([2; 33]);
        for _ in 0..4 {
            assert!(!scores.penalize(&a, Offence::InvalidMessage));
        }
        assert_eq!(scores.score(&a), -80);
        assert!(!scores.is_banned(&a));
        assert!(scores.penalize(&a, Offence::InvalidMessage));
        assert!(scores.is_banned(&a));
        assert!(scores.penalize(&b, Offence::Garbage), "garbage bans at once");
        assert!(!scores.is_banned(&PeerKey([3; 33])), "others are untouched");
    }

    #[test]
    fn a_ban_ends_after_its_duration() {
        let scores = Scores::new(Duration::from_millis(30));
        let a = PeerKey([1; 33]);
        assert!(scores.penalize(&a, Offence::Oversized));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!scores.is_banned(&a));
    }
}
