//! Proof of authority (guide §4.2.2 c–d) as a `joule:consensus/engine-plugin@0.2.0`
//! component.
//!
//! Validators with a non-zero weight take turns: the rotation goes on from the validator
//! after the parent's proposer (from `height mod n` at the start); the proposer
//! seals a block by signing its seal hash with the channel's signature algorithm, and the
//! seal is that signature. A header is valid when it extends its parent by one, its
//! timestamp is later than the parent's by at least `min-block-interval-ms` (and by at
//! least 1 ms), its proposer is a voting validator, and the seal verifies under the
//! proposer's key. The engine reads no clock and no randomness: everything it judges is
//! passed in, so every node reaches the same verdict.
//!
//! Liveness with a validator down (as Clique): the validator whose turn it is seals at
//! once; the k-th after it in the rotation may seal out of turn, once its block is at least
//! k × `out-of-turn-delay-ms` after the parent. An in-turn block weighs 2 and an
//! out-of-turn one 1, so where both exist the host's fork choice keeps the in-turn chain.
//! And as in Clique, a validator may seal at most one of any ⌊n/2⌋ + 1 consecutive blocks:
//! a minority cut off by a partition stalls instead of growing a branch deeper than the
//! finality depth, and the network converges when it heals. The seal carries the window of
//! recent proposers, which each block derives from its parent's, so a header is judged
//! from its parent alone: `poa3` ‖ k (u8) ‖ k × 4 bytes (the last 4 bytes of each of the
//! last k proposers' public keys, oldest first; k ≤ ⌊n/2⌋) ‖ the signature. A seal that is
//! only a signature (engine 0.2.0, before the window) counts as an empty window.
//!
//! A node's [`Participant`] asks the host to build a block when a new head makes it the
//! proposer of the next height, signs the built block's seal hash, and commits it. Out of
//! turn it waits its delay before it builds (so a live network does not execute every
//! block on every validator), then holds the built block back for the delay again (the
//! validator in turn may have had nothing to build until now), and drops it when another
//! block arrives first.
//!
//! The rules are plain Rust over the [`Crypto`] trait, so they are unit-tested natively;
//! the wasm32 build adds the component glue.

use serde::Deserialize;

pub const NAME: &str = "poa/0.3.1";

/// The engine's configuration (`[consensus.config]` of a channel, as TOML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    /// The least time between a block and its parent.
    pub min_block_interval_ms: u64,
    /// How long the k-th validator after the one in turn waits (k times this, from the
    /// parent's timestamp and from when it has a block) before it seals out of turn.
    pub out_of_turn_delay_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            min_block_interval_ms: 0,
            out_of_turn_delay_ms: 3000,
        }
    }
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "the PoA configuration is not UTF-8".to_string())?;
        toml::from_str(text).map_err(|e| format!("PoA configuration: {e}"))
    }
}

pub struct Validator<'a> {
    pub public_key: &'a [u8],
    pub weight: u64,
}

pub struct Header<'a> {
    pub height: u64,
    pub timestamp_ms: u64,
    pub seal_hash: &'a [u8],
    pub proposer: &'a [u8],
    pub seal: &'a [u8],
}

/// What the engine needs from the channel's crypto suite.
pub trait Crypto {
    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool;
}

/// Index (into the full list) of the validator whose turn it is, or `None` when no
/// validator has voting weight.
pub fn proposer(height: u64, round: u32, validators: &[Validator<'_>]) -> Option<usize> {
    let voting: Vec<usize> = validators
        .iter()
        .enumerate()
        .filter(|(_, v)| v.weight > 0)
        .map(|(i, _)| i)
        .collect();
    if voting.is_empty() {
        return None;
    }
    let turn = height.wrapping_add(u64::from(round)) % voting.len() as u64;
    Some(voting[turn as usize])
}

/// The seal's first bytes (engine 0.3.0 on).
pub const MAGIC: &[u8; 4] = b"poa3";

/// A proposer's fingerprint in the window: the last 4 bytes of its public key.
pub fn fingerprint(public_key: &[u8]) -> [u8; 4] {
    let mut f = [0u8; 4];
    let tail = &public_key[public_key.len().saturating_sub(4)..];
    f[4 - tail.len()..].copy_from_slice(tail);
    f
}

/// A seal's parts: the window of recent proposers and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal<'a> {
    pub recent: Vec<[u8; 4]>,
    pub signature: &'a [u8],
}

impl<'a> Seal<'a> {
    /// A `poa3` seal, or a bare signature (an empty window); `None`: malformed.
    pub fn parse(seal: &'a [u8]) -> Option<Seal<'a>> {
        let Some(rest) = seal.strip_prefix(MAGIC.as_slice()) else {
            return Some(Seal {
                recent: vec![],
                signature: seal,
            });
        };
        let (&k, rest) = rest.split_first()?;
        let k = usize::from(k);
        let window = rest.get(..k * 4)?;
        let recent = window.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
        Some(Seal {
            recent,
            signature: rest.get(k * 4..)?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(5 + 4 * self.recent.len() + self.signature.len());
        v.extend_from_slice(MAGIC);
        v.push(self.recent.len() as u8);
        for f in &self.recent {
            v.extend_from_slice(f);
        }
        v.extend_from_slice(self.signature);
        v
    }
}

/// The window a block at the next height carries: its parent's window, then its parent's
/// proposer, keeping the last ⌊n/2⌋ (n: the voting validators). A parent without a PoA
/// seal (genesis, another engine's block) starts an empty window.
pub fn next_window(parent: &Header<'_>, validators: &[Validator<'_>]) -> Vec<[u8; 4]> {
    let keep = validators.iter().filter(|v| v.weight > 0).count() / 2;
    if parent.seal.is_empty() || parent.proposer.is_empty() {
        return vec![];
    }
    let Some(seal) = Seal::parse(parent.seal) else {
        return vec![];
    };
    let mut w = seal.recent;
    w.push(fingerprint(parent.proposer));
    let excess = w.len().saturating_sub(keep);
    w.drain(..excess);
    w
}

pub fn verify_header(
    config: &Config,
    crypto: &dyn Crypto,
    parent: &Header<'_>,
    header: &Header<'_>,
    validators: &[Validator<'_>],
) -> Result<(), String> {
    if parent.height.checked_add(1) != Some(header.height) {
        return Err(format!(
            "height {} does not follow the parent's {}",
            header.height, parent.height
        ));
    }
    let earliest = parent.timestamp_ms.saturating_add(config.min_block_interval_ms.max(1));
    if header.timestamp_ms < earliest {
        return Err(format!(
            "timestamp {} is earlier than {earliest} (parent {} + interval)",
            header.timestamp_ms, parent.timestamp_ms
        ));
    }
    if header.seal.is_empty() {
        return Err("the block is not sealed".into());
    }
    let seal = Seal::parse(header.seal).ok_or("the seal is malformed (poa3 ‖ k ‖ k × 4 bytes ‖ signature)")?;
    // Bare signatures are the seals of chains begun before 0.3.0, accepted so their history
    // still verifies. Once a block carries a window every later one must: a bare seal
    // there would restart the window and let a validator seal blocks in a row.
    if !header.seal.starts_with(MAGIC) && parent.seal.starts_with(MAGIC) {
        return Err("a bare-signature seal after a poa3 seal: since 0.3.0 every seal carries its window (poa3 ‖ k ‖ window ‖ signature)".into());
    }
    if header.seal.starts_with(MAGIC) {
        let window = next_window(parent, validators);
        if seal.recent != window {
            return Err("the seal's window of recent proposers is not the one its parent gives".into());
        }
        if window.contains(&fingerprint(header.proposer)) {
            return Err(format!(
                "the proposer sealed one of the last {} blocks, and may seal one of any {} in a row",
                window.len(),
                window.len() + 1
            ));
        }
    }
    let position = position(header.height, header.proposer, validators, &seal.recent)?;
    if position > 0 {
        let earliest = parent
            .timestamp_ms
            .saturating_add(config.out_of_turn_delay_ms.saturating_mul(position));
        if header.timestamp_ms < earliest {
            return Err(format!(
                "the proposer is {position} after the validator whose turn it is at height {}, and may seal out of turn from {earliest} on, not at {}",
                header.height, header.timestamp_ms
            ));
        }
    }
    if !crypto.verify(header.proposer, header.seal_hash, seal.signature) {
        return Err("the seal is not the proposer's signature over the seal hash".into());
    }
    Ok(())
}

/// Where `proposer` stands in the rotation of the block at `height` whose window of recent
/// proposers is `window`: 0 in turn, k the k-th after the one in turn. The rotation goes
/// round the voting validators from the one after the parent's proposer (the window's
/// last; without a window, from `height mod n`), leaving out those in the window: so when a
/// validator is down only its own turns wait, and the turns after it go on as before.
/// An error when it is not a voting validator, or is in the window.
pub fn position(height: u64, proposer: &[u8], validators: &[Validator<'_>], window: &[[u8; 4]]) -> Result<u64, String> {
    let voting: Vec<&Validator<'_>> = validators.iter().filter(|v| v.weight > 0).collect();
    if voting.is_empty() {
        return Err("the channel has no voting validators".into());
    }
    let n = voting.len();
    let start = window
        .last()
        .and_then(|last| voting.iter().position(|v| fingerprint(v.public_key) == *last))
        .map_or((height % n as u64) as usize, |i| (i + 1) % n);
    let mut k = 0;
    for step in 0..n {
        let v = voting[(start + step) % n];
        if window.contains(&fingerprint(v.public_key)) {
            continue;
        }
        if v.public_key == proposer {
            return Ok(k);
        }
        k += 1;
    }
    Err(if voting.iter().any(|v| v.public_key == proposer) {
        "the proposer sealed one of the recent blocks".into()
    } else {
        "the proposer is not a voting validator".into()
    })
}

/// Fork choice: an in-turn block weighs 2, an out-of-turn one 1.
pub fn weight(header: &Header<'_>, validators: &[Validator<'_>]) -> u64 {
    let window = Seal::parse(header.seal).map(|s| s.recent).unwrap_or_default();
    match position(header.height, header.proposer, validators, &window) {
        Ok(0) => 2,
        _ => 1,
    }
}

/// A block is final once a majority of the voting validators have sealed blocks on top of
/// it (each in turn): a competing chain would need more than half of them to sign twice.
pub fn finality_depth(validators: &[Validator<'_>]) -> u64 {
    let voting = validators.iter().filter(|v| v.weight > 0).count() as u64;
    voting / 2 + 1
}

/// What the participant asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Build,
    /// Deliver timer `id` after this many milliseconds.
    Timer {
        id: u64,
        after_ms: u64,
    },
    Sign {
        request: u64,
        message: Vec<u8>,
    },
    Commit {
        seal_hash: Vec<u8>,
        seal: Vec<u8>,
    },
}

/// A node's part in PoA: propose at its turn, and out of turn after its delay.
#[derive(Debug, Default)]
pub struct Participant {
    config: Config,
    /// This node's consensus key; empty: it follows the chain.
    me: Vec<u8>,
    /// The head: height, hash, and this node's position in the next height's rotation.
    head: Option<(u64, Vec<u8>, Option<u64>)>,
    /// The window of recent proposers the next block carries.
    window: Vec<[u8; 4]>,
    /// Out of turn: the height whose delay runs before building.
    waiting: Option<u64>,
    /// A block built out of turn and held back: its height and seal hash.
    held: Option<(u64, Vec<u8>)>,
    /// The block being sealed: its height and seal hash.
    sealing: Option<(u64, Vec<u8>)>,
}

impl Participant {
    pub fn new(config: Config, me: Vec<u8>) -> Participant {
        Participant {
            config,
            me,
            ..Participant::default()
        }
    }

    /// A new head: build the next block (at once in turn; out of turn, the block is held
    /// back when built).
    pub fn new_head(&mut self, head: &Header<'_>, hash: &[u8], validators: &[Validator<'_>]) -> Vec<Step> {
        let height = head.height;
        let next = height.saturating_add(1);
        self.window = next_window(head, validators);
        // Not when this node sealed one of the recent blocks.
        let position = if self.me.is_empty() || self.window.contains(&fingerprint(&self.me)) {
            None
        } else {
            position(next, &self.me, validators, &self.window).ok()
        };
        self.head = Some((height, hash.to_vec(), position));
        self.sealing = None;
        self.held = None;
        self.waiting = None;
        match position {
            Some(0) => vec![Step::Build],
            Some(k) => {
                self.waiting = Some(next);
                vec![Step::Timer {
                    id: next,
                    after_ms: self.config.out_of_turn_delay_ms.saturating_mul(k),
                }]
            }
            None => vec![],
        }
    }

    /// The block the host built: sign its seal hash, if it is the next block on the head;
    /// out of turn, only after this node's delay.
    pub fn built(&mut self, height: u64, parent_hash: &[u8], seal_hash: &[u8]) -> Vec<Step> {
        match &self.head {
            Some((h, hash, Some(position))) if h.checked_add(1) == Some(height) && hash.as_slice() == parent_hash => {
                if *position > 0 {
                    self.held = Some((height, seal_hash.to_vec()));
                    return vec![Step::Timer {
                        id: height,
                        after_ms: self.config.out_of_turn_delay_ms.saturating_mul(*position),
                    }];
                }
                self.sealing = Some((height, seal_hash.to_vec()));
                vec![Step::Sign {
                    request: height,
                    message: seal_hash.to_vec(),
                }]
            }
            _ => vec![],
        }
    }

    /// A timer: no block came in this node's delay: build out of turn; or the built
    /// block's delay is over and still none came: sign it.
    pub fn timer(&mut self, id: u64) -> Vec<Step> {
        if self.waiting == Some(id) {
            self.waiting = None;
            return vec![Step::Build];
        }
        match self.held.take() {
            Some((height, seal_hash)) if height == id => {
                self.sealing = Some((height, seal_hash.clone()));
                vec![Step::Sign {
                    request: height,
                    message: seal_hash,
                }]
            }
            other => {
                self.held = other;
                vec![]
            }
        }
    }

    /// The signature: it is the seal; commit.
    pub fn signed(&mut self, request: u64, signature: Vec<u8>) -> Vec<Step> {
        match self.sealing.take() {
            Some((height, seal_hash)) if height == request => vec![Step::Commit {
                seal_hash,
                seal: Seal {
                    recent: self.window.clone(),
                    signature: &signature,
                }
                .encode(),
            }],
            other => {
                self.sealing = other;
                vec![]
            }
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit/consensus", world: "engine-plugin" });

    use exports::joule::consensus::engine::{Guest, GuestInstance, Instance};
    use joule::consensus::chain_crypto;
    use joule::consensus::types::{Action, Commit, Event, Head, Header, SignRequest, Timer, Validator};
    use std::cell::RefCell;

    thread_local! {
        static CONFIG: RefCell<super::Config> = RefCell::new(super::Config::default());
    }

    struct HostCrypto;

    impl super::Crypto for HostCrypto {
        fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
            chain_crypto::verify(public_key, message, signature)
        }
    }

    fn validators(v: &[Validator]) -> Vec<super::Validator<'_>> {
        v.iter()
            .map(|v| super::Validator {
                public_key: &v.public_key,
                weight: v.weight,
            })
            .collect()
    }

    fn header(h: &Header) -> super::Header<'_> {
        super::Header {
            height: h.height,
            timestamp_ms: h.timestamp_ms,
            seal_hash: &h.seal_hash,
            proposer: &h.proposer,
            seal: &h.seal,
        }
    }

    fn actions(steps: Vec<super::Step>) -> Vec<Action> {
        steps
            .into_iter()
            .map(|s| match s {
                super::Step::Build => Action::Build,
                super::Step::Timer { id, after_ms } => Action::SetTimer(Timer { id, after_ms }),
                super::Step::Sign { request, message } => Action::Sign(SignRequest { request, message }),
                super::Step::Commit { seal_hash, seal } => Action::Commit(Commit { seal_hash, seal }),
            })
            .collect()
    }

    struct Poa;

    impl Guest for Poa {
        type Instance = PoaInstance;

        fn name() -> String {
            super::NAME.into()
        }

        fn configure(config: Vec<u8>) -> Result<(), String> {
            let c = super::Config::parse(&config)?;
            CONFIG.with(|slot| *slot.borrow_mut() = c);
            Ok(())
        }

        fn verify_header(parent: Header, header: Header, validators: Vec<Validator>) -> Result<(), String> {
            CONFIG.with(|c| {
                super::verify_header(
                    &c.borrow(),
                    &HostCrypto,
                    &self::header(&parent),
                    &self::header(&header),
                    &self::validators(&validators),
                )
            })
        }

        fn weight(header: Header, validators: Vec<Validator>) -> u64 {
            super::weight(&self::header(&header), &self::validators(&validators))
        }

        fn finality_depth(validators: Vec<Validator>) -> u64 {
            super::finality_depth(&self::validators(&validators))
        }
    }

    struct PoaInstance(RefCell<super::Participant>);

    impl GuestInstance for PoaInstance {
        fn start(me: Vec<u8>, _head: Head, _saved: Vec<u8>) -> Result<Instance, String> {
            // PoA keeps nothing across a restart: the next head says whose turn it is.
            let config = CONFIG.with(|c| c.borrow().clone());
            Ok(Instance::new(PoaInstance(RefCell::new(super::Participant::new(
                config, me,
            )))))
        }

        fn handle(&self, event: Event) -> Vec<Action> {
            let mut p = self.0.borrow_mut();
            actions(match event {
                Event::NewHead(h) => p.new_head(&header(&h.header), &h.hash, &validators(&h.validators)),
                Event::Built(h) => p.built(h.height, &h.parent_hash, &h.seal_hash),
                Event::Signed(s) => p.signed(s.request, s.signature),
                Event::Timer(id) => p.timer(id),
                // No messages, no proofs of work: nothing to do.
                Event::Message(_) | Event::Proposed(_) | Event::Worked(_) => vec![],
            })
        }
    }

    export!(Poa);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Signatures" for tests: valid when the signature is the key followed by the message.
    struct Concat;
    impl Crypto for Concat {
        fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
            signature == [public_key, message].concat()
        }
    }

    fn set<'a>(keys: &'a [&'a [u8]]) -> Vec<Validator<'a>> {
        keys.iter()
            .map(|k| Validator {
                public_key: k,
                weight: 1,
            })
            .collect()
    }

    fn sealed<'a>(height: u64, ts: u64, proposer: &'a [u8], seal: &'a [u8]) -> Header<'a> {
        Header {
            height,
            timestamp_ms: ts,
            seal_hash: b"h",
            proposer,
            seal,
        }
    }

    #[test]
    fn proposers_rotate_by_height_and_round_skipping_observers() {
        let keys: [&[u8]; 3] = [b"a", b"b", b"c"];
        let mut v = set(&keys);
        assert_eq!(
            (0..4).map(|h| proposer(h, 0, &v).unwrap()).collect::<Vec<_>>(),
            [0, 1, 2, 0]
        );
        assert_eq!(proposer(0, 1, &v), Some(1));
        v[1].weight = 0;
        assert_eq!(
            (0..4).map(|h| proposer(h, 0, &v).unwrap()).collect::<Vec<_>>(),
            [0, 2, 0, 2]
        );
        v.iter_mut().for_each(|v| v.weight = 0);
        assert_eq!(proposer(0, 0, &v), None);
    }

    #[test]
    fn a_header_is_valid_only_from_the_right_proposer_with_its_seal() {
        let keys: [&[u8]; 2] = [b"a", b"b"];
        let v = set(&keys);
        let c = Config::default();
        let parent = sealed(4, 1000, b"a", b"ah");
        assert_eq!(
            verify_header(&c, &Concat, &parent, &sealed(5, 1001, b"b", b"bh"), &v),
            Ok(())
        );
        let early = verify_header(&c, &Concat, &parent, &sealed(5, 1001, b"a", b"ah"), &v).unwrap_err();
        assert!(early.contains("out of turn from 4000"), "{early}");
        // Out of turn after the delay: valid, and lighter than the in-turn block.
        assert_eq!(
            verify_header(&c, &Concat, &parent, &sealed(5, 4000, b"a", b"ah"), &v),
            Ok(())
        );
        assert_eq!(weight(&sealed(5, 4000, b"a", b"ah"), &v), 1);
        assert_eq!(weight(&sealed(5, 1001, b"b", b"bh"), &v), 2);
        let stranger = verify_header(&c, &Concat, &parent, &sealed(5, 9000, b"z", b"zh"), &v).unwrap_err();
        assert!(stranger.contains("not a voting validator"), "{stranger}");
        assert!(
            verify_header(&c, &Concat, &parent, &sealed(5, 1001, b"b", b"ah"), &v)
                .unwrap_err()
                .contains("seal")
        );
        assert!(
            verify_header(&c, &Concat, &parent, &sealed(5, 1001, b"b", b""), &v)
                .unwrap_err()
                .contains("not sealed")
        );
        assert!(
            verify_header(&c, &Concat, &parent, &sealed(6, 1001, b"a", b"ah"), &v)
                .unwrap_err()
                .contains("height")
        );
        assert!(
            verify_header(&c, &Concat, &parent, &sealed(5, 1000, b"b", b"bh"), &v)
                .unwrap_err()
                .contains("timestamp")
        );
        let slow = Config {
            min_block_interval_ms: 500,
            ..Config::default()
        };
        assert!(verify_header(&slow, &Concat, &parent, &sealed(5, 1499, b"b", b"bh"), &v).is_err());
        assert_eq!(
            verify_header(&slow, &Concat, &parent, &sealed(5, 1500, b"b", b"bh"), &v),
            Ok(())
        );
    }

    #[test]
    fn configuration_is_checked() {
        assert_eq!(Config::parse(b"").unwrap(), Config::default());
        assert_eq!(
            Config::parse(b"out-of-turn-delay-ms = 700")
                .unwrap()
                .out_of_turn_delay_ms,
            700
        );
        assert_eq!(
            Config::parse(b"min-block-interval-ms = 250")
                .unwrap()
                .min_block_interval_ms,
            250
        );
        assert!(
            Config::parse(b"min-block-interval = 250")
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(Config::parse(b"\xff").is_err());
    }

    #[test]
    fn the_proposer_of_the_next_height_builds_signs_and_commits_the_block_on_its_head() {
        let keys: [&[u8]; 2] = [b"a", b"b"];
        let v = set(&keys);
        // Height 4's successor is b's turn (5 mod 2 = 1).
        let mut b = Participant::new(Config::default(), b"b".to_vec());
        let mut a = Participant::new(Config::default(), b"a".to_vec());
        assert_eq!(b.new_head(&sealed(4, 1000, b"a", b""), b"h4", &v), vec![Step::Build]);
        // Out of turn, a waits its delay, builds, and holds the block back for the delay again.
        assert_eq!(
            a.new_head(&sealed(4, 1000, b"a", b""), b"h4", &v),
            vec![Step::Timer { id: 5, after_ms: 3000 }]
        );
        assert_eq!(a.timer(5), vec![Step::Build]);
        assert_eq!(a.built(5, b"h4", b"a5"), vec![Step::Timer { id: 5, after_ms: 3000 }]);
        assert_eq!(a.timer(4), vec![], "another height's timer");
        assert_eq!(
            a.timer(5),
            vec![Step::Sign {
                request: 5,
                message: b"a5".to_vec()
            }]
        );
        // A block arriving first drops what was held back.
        a.new_head(&sealed(4, 1000, b"a", b""), b"h4", &v);
        a.timer(5);
        a.built(5, b"h4", b"a5");
        a.new_head(&sealed(5, 1000, b"a", b""), b"h5", &v);
        assert_eq!(a.timer(5), vec![]);
        // A block built on another parent, or at another height, is not signed.
        assert_eq!(b.built(5, b"other", b"s5"), vec![]);
        assert_eq!(b.built(6, b"h4", b"s5"), vec![]);
        assert_eq!(
            b.built(5, b"h4", b"s5"),
            vec![Step::Sign {
                request: 5,
                message: b"s5".to_vec()
            }]
        );
        // A signature for another request does not commit; the right one does, once.
        assert_eq!(b.signed(9, b"x".to_vec()), vec![]);
        assert_eq!(
            b.signed(5, b"sig".to_vec()),
            vec![Step::Commit {
                seal_hash: b"s5".to_vec(),
                seal: Seal {
                    recent: vec![],
                    signature: b"sig"
                }
                .encode()
            }]
        );
        assert_eq!(b.signed(5, b"sig".to_vec()), vec![]);
        // A follower never builds.
        let mut f = Participant::new(Config::default(), vec![]);
        assert_eq!(f.new_head(&sealed(4, 1000, b"a", b""), b"h4", &v), vec![]);
        // A new head forgets the block being sealed.
        assert_eq!(b.new_head(&sealed(4, 1000, b"a", b""), b"h4", &v), vec![Step::Build]);
        b.built(5, b"h4", b"s5");
        b.new_head(&sealed(5, 1000, b"a", b""), b"h5", &v);
        assert_eq!(b.signed(5, b"sig".to_vec()), vec![]);
    }

    #[test]
    fn a_validator_seals_at_most_one_of_any_half_plus_one_blocks_in_a_row() {
        let keys: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
        let v = set(&keys);
        let c = Config::default();
        let window = |w: &[&[u8]]| w.iter().map(|k| fingerprint(k)).collect::<Vec<_>>();
        let seal = |w: &[&[u8]], sig: &'static [u8]| {
            Seal {
                recent: window(w),
                signature: sig,
            }
            .encode()
        };
        // Block 4 by a, after c and d: the next window is d, a (⌊4/2⌋ = 2 kept).
        let parent_seal = seal(&[b"c", b"d"], b"ah");
        let parent = sealed(4, 1000, b"a", &parent_seal);
        assert_eq!(next_window(&parent, &v), window(&[b"d", b"a"]));
        let good = seal(&[b"d", b"a"], b"bh");
        assert_eq!(
            verify_header(&c, &Concat, &parent, &sealed(5, 1001, b"b", &good), &v),
            Ok(()),
            "b in turn"
        );
        let stale = seal(&[b"c", b"d"], b"bh");
        let e = verify_header(&c, &Concat, &parent, &sealed(5, 1001, b"b", &stale), &v).unwrap_err();
        assert!(e.contains("window"), "{e}");
        // d sealed block 3: even after its out-of-turn delay it may not seal block 5.
        let by_d = seal(&[b"d", b"a"], b"dh");
        let e = verify_header(&c, &Concat, &parent, &sealed(5, 9000, b"d", &by_d), &v).unwrap_err();
        assert!(e.contains("one of the last 2"), "{e}");
        // c may, out of turn: its block 2 left the window.
        let by_c = seal(&[b"d", b"a"], b"ch");
        assert_eq!(
            verify_header(&c, &Concat, &parent, &sealed(5, 4000, b"c", &by_c), &v),
            Ok(())
        );
        // The participants agree: d does not even try; c waits its delay.
        let mut d = Participant::new(c.clone(), b"d".to_vec());
        assert_eq!(d.new_head(&parent, b"h4", &v), vec![]);
        let mut cp = Participant::new(c.clone(), b"c".to_vec());
        assert_eq!(
            cp.new_head(&parent, b"h4", &v),
            vec![Step::Timer { id: 5, after_ms: 3000 }]
        );
        // Parsing: a bare signature is an empty window; a truncated window is malformed.
        assert_eq!(Seal::parse(b"\x30\x44sig").map(|s| s.recent.len()), Some(0));
        // A bare seal cannot follow a windowed one (it would empty the window: d, which
        // sealed 4, could seal 5 in turn order again), but may follow a bare one (a chain
        // begun before 0.3.0).
        let e = verify_header(&c, &Concat, &parent, &sealed(5, 9000, b"d", b"dh"), &v).unwrap_err();
        assert!(e.contains("bare-signature seal after a poa3 seal"), "{e}");
        let bare_parent = sealed(4, 1000, b"d", b"dh");
        assert_eq!(
            verify_header(&c, &Concat, &bare_parent, &sealed(5, 2000, b"b", b"bh"), &v),
            Ok(())
        );
        assert_eq!(Seal::parse(b"poa3\x02abcd"), None);
        assert!(
            verify_header(&c, &Concat, &parent, &sealed(5, 1001, b"b", b"poa3\x09"), &v)
                .unwrap_err()
                .contains("malformed")
        );
    }

    #[test]
    fn when_a_validator_is_down_only_its_own_turns_wait() {
        let keys: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
        let v = set(&keys);
        let window = |w: &[&[u8]]| w.iter().map(|k| fingerprint(k)).collect::<Vec<_>>();
        // After d (and c before it): a is in turn, b next.
        assert_eq!(position(9, b"a", &v, &window(&[b"c", b"d"])), Ok(0));
        assert_eq!(position(9, b"b", &v, &window(&[b"c", b"d"])), Ok(1));
        // a is down; b seals 9 out of turn. The rotation goes on from b: c is in turn at 10
        // and weighs as an in-turn block; a comes after it.
        let w10 = window(&[b"d", b"b"]);
        assert_eq!(position(10, b"c", &v, &w10), Ok(0));
        assert_eq!(position(10, b"a", &v, &w10), Ok(1));
        assert!(position(10, b"d", &v, &w10).unwrap_err().contains("recent"));
        assert!(
            position(10, b"z", &v, &w10)
                .unwrap_err()
                .contains("not a voting validator")
        );
        let c10 = Seal {
            recent: w10,
            signature: b"ch",
        }
        .encode();
        assert_eq!(weight(&sealed(10, 5000, b"c", &c10), &v), 2);
        // Without a window (genesis, a bare-signature seal): by height, as before.
        assert_eq!(position(9, b"b", &v, &[]), Ok(0));
    }

    #[test]
    fn a_block_is_final_under_a_majority_of_the_voting_validators() {
        let keys: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
        let mut v = set(&keys);
        assert_eq!(finality_depth(&v), 3);
        v[3].weight = 0;
        assert_eq!(finality_depth(&v), 2);
        assert_eq!(finality_depth(&v[..1]), 1);
    }
}
