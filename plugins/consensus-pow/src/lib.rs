//! Proof of work (guide §4.2.1) as a `joule:consensus/engine-plugin@0.2.0` component.
//!
//! A consortium chain mines with permission: every validator with voting weight mines, and
//! nobody else can, because the seal carries the miner's signature over the seal hash.
//! A block is sealed when `hash(seal_hash ‖ nonce)`, with the channel's hash (SHA-256 or
//! SM3), read as a big-endian number, is at most `⌊(2²⁵⁶ − 1) / difficulty⌋`. The
//! difficulty of each block follows from its parent's and the time between them (see
//! [`next_difficulty`]), so the block time stays near `block-time-ms` however many miners
//! there are. A block weighs its difficulty: the host follows the chain with the most work
//! and reorganises onto a heavier one, never deeper than `finality-depth` blocks.
//!
//! Seal: `pow1` ‖ difficulty (u64 BE) ‖ nonce (8 bytes, as the host's search found it) ‖
//! the miner's signature over the seal hash.
//!
//! The rules are plain Rust over the [`Crypto`] trait, so they are unit-tested natively;
//! the wasm32 build adds the component glue.

use serde::Deserialize;

pub const NAME: &str = "pow/0.2.0";

/// The seal's first bytes.
pub const MAGIC: &[u8; 4] = b"pow1";

/// The engine's configuration (`[consensus.config]` of a channel, as TOML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    /// The block time difficulty retargets to.
    pub block_time_ms: u64,
    /// The difficulty of the first block mined (after genesis, or after a switch from
    /// another engine).
    pub initial_difficulty: u64,
    /// Retargeting never goes below this.
    pub min_difficulty: u64,
    /// Blocks on top of a block before no heavier chain may replace it.
    pub finality_depth: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            block_time_ms: 2000,
            initial_difficulty: 100_000,
            min_difficulty: 1000,
            finality_depth: 12,
        }
    }
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "the PoW configuration is not UTF-8".to_string())?;
        let c: Config = toml::from_str(text).map_err(|e| format!("PoW configuration: {e}"))?;
        if c.block_time_ms == 0 {
            return Err("PoW configuration: block-time-ms must be at least 1".into());
        }
        if c.min_difficulty == 0 || c.initial_difficulty < c.min_difficulty {
            return Err(
                "PoW configuration: min-difficulty must be at least 1 and initial-difficulty at least min-difficulty"
                    .into(),
            );
        }
        if c.finality_depth == 0 {
            return Err(
                "PoW configuration: finality-depth must be at least 1 (forks happen under proof of work)".into(),
            );
        }
        Ok(c)
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
    fn hash(&self, data: &[u8]) -> Vec<u8>;
    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool;
}

/// A seal's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal<'a> {
    pub difficulty: u64,
    pub nonce: &'a [u8],
    pub signature: &'a [u8],
}

impl<'a> Seal<'a> {
    /// `None`: not a PoW seal (genesis, or a block of another engine).
    pub fn parse(seal: &'a [u8]) -> Option<Seal<'a>> {
        let rest = seal.strip_prefix(MAGIC.as_slice())?;
        let difficulty = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        Some(Seal {
            difficulty,
            nonce: rest.get(8..16)?,
            signature: rest.get(16..)?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + 8 + self.nonce.len() + self.signature.len());
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&self.difficulty.to_be_bytes());
        v.extend_from_slice(self.nonce);
        v.extend_from_slice(self.signature);
        v
    }
}

/// The difficulty of a block whose parent has `parent_difficulty` (`None`: the parent is
/// not a PoW block) and came `interval_ms` before it: the parent's scaled by block time ÷
/// interval, so the next block is expected one block time away at the hash rate the last
/// interval showed, but at most doubled or halved per block (one lucky or unlucky search
/// moves it only so far); never below the minimum. (0.1.0 moved a sixteenth per block, and
/// took dozens of blocks to find the network's hash rate: meanwhile miners outran their
/// peers' blocks.)
pub fn next_difficulty(config: &Config, parent_difficulty: Option<u64>, interval_ms: u64) -> u64 {
    let Some(d) = parent_difficulty else {
        return config.initial_difficulty;
    };
    let scaled = u128::from(d) * u128::from(config.block_time_ms) / u128::from(interval_ms.max(1));
    let bounded = scaled.clamp(u128::from(d / 2), u128::from(d) * 2);
    u64::try_from(bounded).unwrap_or(u64::MAX).max(config.min_difficulty)
}

/// `⌊(2²⁵⁶ − 1) / difficulty⌋`, 32 bytes big-endian.
pub fn target(difficulty: u64) -> [u8; 32] {
    let d = u128::from(difficulty.max(1));
    let mut out = [0u8; 32];
    let mut rem: u128 = 0;
    // Long division of 2²⁵⁶ − 1 (all ones) by d, 32 bits at a time.
    for i in 0..8 {
        let cur = (rem << 32) | 0xffff_ffff;
        let q = cur / d;
        rem = cur % d;
        out[i * 4..i * 4 + 4].copy_from_slice(&(q as u32).to_be_bytes());
    }
    out
}

/// Whether `hash`, read as a big-endian number, is at most `target` (both 32 bytes or the
/// hash shorter: leading zeros).
pub fn meets(hash: &[u8], target: &[u8; 32]) -> bool {
    if hash.len() > 32 {
        return false;
    }
    let mut padded = [0u8; 32];
    padded[32 - hash.len()..].copy_from_slice(hash);
    padded.as_slice() <= target.as_slice()
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
    if header.timestamp_ms <= parent.timestamp_ms {
        return Err(format!(
            "timestamp {} is not after the parent's {}",
            header.timestamp_ms, parent.timestamp_ms
        ));
    }
    if !validators
        .iter()
        .any(|v| v.weight > 0 && v.public_key == header.proposer)
    {
        return Err("the miner is not a validator with voting weight".into());
    }
    let seal = Seal::parse(header.seal)
        .ok_or("the seal is not a proof-of-work seal (pow1 ‖ difficulty ‖ nonce ‖ signature)")?;
    let expected = next_difficulty(
        config,
        Seal::parse(parent.seal).map(|s| s.difficulty),
        header.timestamp_ms - parent.timestamp_ms,
    );
    if seal.difficulty != expected {
        return Err(format!(
            "difficulty {} but the retargeting rule gives {expected}",
            seal.difficulty
        ));
    }
    if !crypto.verify(header.proposer, header.seal_hash, seal.signature) {
        return Err("the seal's signature is not the miner's over the seal hash".into());
    }
    let work = crypto.hash(&[header.seal_hash, seal.nonce].concat());
    if !meets(&work, &target(seal.difficulty)) {
        return Err(format!(
            "the proof of work does not meet difficulty {}",
            seal.difficulty
        ));
    }
    Ok(())
}

/// Fork choice: a block weighs the work it took (its difficulty). A block without a PoW
/// seal (genesis, or one of another engine before a switch) weighs 1.
pub fn weight(header: &Header<'_>) -> u64 {
    Seal::parse(header.seal).map_or(1, |s| s.difficulty)
}

/// What the participant asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Build,
    Sign { request: u64, message: Vec<u8> },
    Work { seal_hash: Vec<u8>, target: Vec<u8> },
    Commit { seal_hash: Vec<u8>, seal: Vec<u8> },
}

/// A node's part in PoW: mine on every new head.
#[derive(Debug, Default)]
pub struct Participant {
    config: Config,
    /// This node's consensus key; empty: it follows the chain.
    me: Vec<u8>,
    /// The head: height, hash, timestamp and its difficulty (if a PoW block).
    head: Option<(u64, Vec<u8>, u64, Option<u64>)>,
    mining: Option<Mining>,
}

/// The block being mined.
#[derive(Debug)]
struct Mining {
    height: u64,
    seal_hash: Vec<u8>,
    difficulty: u64,
    /// The miner's signature, once made.
    signature: Option<Vec<u8>>,
}

impl Participant {
    pub fn new(config: Config, me: Vec<u8>) -> Participant {
        Participant {
            config,
            me,
            ..Participant::default()
        }
    }

    /// A new head: mine on it, if this node is a validator.
    pub fn new_head(&mut self, head: &Header<'_>, hash: &[u8], validators: &[Validator<'_>]) -> Vec<Step> {
        self.head = Some((
            head.height,
            hash.to_vec(),
            head.timestamp_ms,
            Seal::parse(head.seal).map(|s| s.difficulty),
        ));
        self.mining = None;
        let miner = !self.me.is_empty() && validators.iter().any(|v| v.weight > 0 && v.public_key == self.me);
        if miner { vec![Step::Build] } else { vec![] }
    }

    /// The block the host built on the head: sign it (the signature goes into the seal).
    pub fn built(&mut self, height: u64, parent_hash: &[u8], timestamp_ms: u64, seal_hash: &[u8]) -> Vec<Step> {
        match &self.head {
            Some((h, hash, ts, d))
                if h.checked_add(1) == Some(height) && hash.as_slice() == parent_hash && timestamp_ms > *ts =>
            {
                let difficulty = next_difficulty(&self.config, *d, timestamp_ms - ts);
                self.mining = Some(Mining {
                    height,
                    seal_hash: seal_hash.to_vec(),
                    difficulty,
                    signature: None,
                });
                vec![Step::Sign {
                    request: height,
                    message: seal_hash.to_vec(),
                }]
            }
            _ => vec![],
        }
    }

    /// The signature: search for the nonce.
    pub fn signed(&mut self, request: u64, signature: Vec<u8>) -> Vec<Step> {
        match &mut self.mining {
            Some(m) if m.height == request && m.signature.is_none() => {
                m.signature = Some(signature);
                vec![Step::Work {
                    seal_hash: m.seal_hash.clone(),
                    target: target(m.difficulty).to_vec(),
                }]
            }
            _ => vec![],
        }
    }

    /// The nonce: seal and commit.
    pub fn worked(&mut self, seal_hash: &[u8], nonce: &[u8]) -> Vec<Step> {
        match self.mining.take() {
            Some(Mining {
                seal_hash: mined,
                difficulty,
                signature: Some(signature),
                ..
            }) if mined == seal_hash => {
                let seal = Seal {
                    difficulty,
                    nonce,
                    signature: &signature,
                }
                .encode();
                vec![Step::Commit { seal_hash: mined, seal }]
            }
            other => {
                self.mining = other;
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
    use joule::consensus::types::{Action, Commit, Event, Head, Header, SignRequest, Validator, WorkRequest};
    use std::cell::RefCell;

    thread_local! {
        static CONFIG: RefCell<super::Config> = RefCell::new(super::Config::default());
    }

    struct HostCrypto;

    impl super::Crypto for HostCrypto {
        fn hash(&self, data: &[u8]) -> Vec<u8> {
            chain_crypto::hash(data)
        }
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
                super::Step::Sign { request, message } => Action::Sign(SignRequest { request, message }),
                super::Step::Work { seal_hash, target } => Action::Work(WorkRequest { seal_hash, target }),
                super::Step::Commit { seal_hash, seal } => Action::Commit(Commit { seal_hash, seal }),
            })
            .collect()
    }

    struct Pow;

    impl Guest for Pow {
        type Instance = PowInstance;

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

        fn weight(header: Header, _validators: Vec<Validator>) -> u64 {
            super::weight(&self::header(&header))
        }

        fn finality_depth(_validators: Vec<Validator>) -> u64 {
            CONFIG.with(|c| c.borrow().finality_depth)
        }
    }

    struct PowInstance(RefCell<super::Participant>);

    impl GuestInstance for PowInstance {
        fn start(me: Vec<u8>, _head: Head, _saved: Vec<u8>) -> Result<Instance, String> {
            // Nothing to keep across a restart: mining starts again on the head.
            let config = CONFIG.with(|c| c.borrow().clone());
            Ok(Instance::new(PowInstance(RefCell::new(super::Participant::new(
                config, me,
            )))))
        }

        fn handle(&self, event: Event) -> Vec<Action> {
            let mut p = self.0.borrow_mut();
            actions(match event {
                Event::NewHead(h) => p.new_head(&header(&h.header), &h.hash, &validators(&h.validators)),
                Event::Built(h) => p.built(h.height, &h.parent_hash, h.timestamp_ms, &h.seal_hash),
                Event::Signed(s) => p.signed(s.request, s.signature),
                Event::Worked(w) => p.worked(&w.seal_hash, &w.nonce),
                // No rounds and no messages.
                Event::Timer(_) | Event::Message(_) | Event::Proposed(_) => vec![],
            })
        }
    }

    export!(Pow);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy suite: "hash" is a real 64-bit FNV-1a spread over 32 bytes (good enough to
    /// search nonces against), a signature is the key followed by the message.
    struct Toy;
    impl Crypto for Toy {
        fn hash(&self, data: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(32);
            for round in 0u8..4 {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(round);
                for b in data {
                    h ^= u64::from(*b);
                    h = h.wrapping_mul(0x100_0000_01b3);
                }
                out.extend(h.to_be_bytes());
            }
            out
        }
        fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
            signature == [public_key, message].concat()
        }
    }

    fn mine(seal_hash: &[u8], difficulty: u64) -> [u8; 8] {
        let t = target(difficulty);
        (0u64..)
            .map(u64::to_be_bytes)
            .find(|n| meets(&Toy.hash(&[seal_hash, n].concat()), &t))
            .unwrap()
    }

    fn config() -> Config {
        Config {
            block_time_ms: 1000,
            initial_difficulty: 64,
            min_difficulty: 16,
            finality_depth: 6,
        }
    }

    #[test]
    fn the_target_is_the_largest_hash_that_meets_the_difficulty() {
        assert_eq!(target(1), [0xff; 32]);
        let t2 = target(2);
        assert_eq!(t2[0], 0x7f);
        assert!(t2[1..].iter().all(|b| *b == 0xff));
        assert_eq!(&target(256)[..2], &[0x00, 0xff]);
        // A multiple of the difficulty plus the target stays under 2^256.
        let t3 = target(3);
        assert_eq!(&t3[..2], &[0x55, 0x55]);
        assert!(meets(&[0u8; 32], &target(u64::MAX)));
        assert!(!meets(&[0xff; 32], &target(2)));
        assert!(meets(&[0x7f; 1], &target(2)), "a shorter hash has leading zeros");
    }

    #[test]
    fn difficulty_follows_the_block_time_at_most_doubling_or_halving_and_not_below_the_minimum() {
        let c = config();
        assert_eq!(c.block_time_ms, 1000);
        assert_eq!(next_difficulty(&c, None, 5), 64, "after genesis or another engine");
        assert_eq!(
            next_difficulty(&c, Some(160), 800),
            200,
            "a fifth faster: a quarter harder"
        );
        assert_eq!(next_difficulty(&c, Some(160), 1000), 160, "on time: unchanged");
        assert_eq!(next_difficulty(&c, Some(160), 1600), 100);
        assert_eq!(next_difficulty(&c, Some(160), 1), 320, "at most doubled");
        assert_eq!(next_difficulty(&c, Some(160), 0), 320, "a zero interval too");
        assert_eq!(next_difficulty(&c, Some(160), 60_000), 80, "at most halved");
        assert_eq!(next_difficulty(&c, Some(20), 60_000), 16, "never below the minimum");
        assert_eq!(next_difficulty(&c, Some(u64::MAX), 1), u64::MAX, "no overflow");
    }

    #[test]
    fn a_mined_header_verifies_and_every_tampering_is_refused() {
        let c = config();
        let v = [
            Validator {
                public_key: b"m",
                weight: 1,
            },
            Validator {
                public_key: b"obs",
                weight: 0,
            },
        ];
        let parent_seal = Seal {
            difficulty: 160,
            nonce: &[0; 8],
            signature: b"",
        }
        .encode();
        let parent = Header {
            height: 7,
            timestamp_ms: 10_000,
            seal_hash: b"p",
            proposer: b"m",
            seal: &parent_seal,
        };
        let d = next_difficulty(&c, Some(160), 400);
        let nonce = mine(b"s8", d);
        let sig = [b"m".as_slice(), b"s8"].concat();
        let seal = Seal {
            difficulty: d,
            nonce: &nonce,
            signature: &sig,
        }
        .encode();
        let good = Header {
            height: 8,
            timestamp_ms: 10_400,
            seal_hash: b"s8",
            proposer: b"m",
            seal: &seal,
        };
        assert_eq!(verify_header(&c, &Toy, &parent, &good, &v), Ok(()));
        assert_eq!(weight(&good), d);
        let refuse = |h: Header<'_>, what: &str| {
            let e = verify_header(&c, &Toy, &parent, &h, &v).unwrap_err();
            assert!(e.contains(what), "{e} should mention {what}");
        };
        refuse(Header { height: 9, ..good }, "height");
        refuse(
            Header {
                timestamp_ms: 10_000,
                ..good
            },
            "timestamp",
        );
        refuse(
            Header {
                proposer: b"obs",
                ..good
            },
            "not a validator",
        );
        refuse(
            Header {
                seal: b"poa signature",
                ..good
            },
            "not a proof-of-work seal",
        );
        // A different timestamp means a different difficulty than the one mined for.
        refuse(
            Header {
                timestamp_ms: 13_000,
                ..good
            },
            "retargeting",
        );
        let wrong_sig = Seal {
            difficulty: d,
            nonce: &nonce,
            signature: b"x",
        }
        .encode();
        refuse(
            Header {
                seal: &wrong_sig,
                ..good
            },
            "signature",
        );
        // A nonce that misses the target (searched for a much easier difficulty).
        let easy = (0u64..)
            .map(u64::to_be_bytes)
            .find(|n| !meets(&Toy.hash(&[b"s8".as_slice(), n].concat()), &target(d)))
            .unwrap();
        let weak = Seal {
            difficulty: d,
            nonce: &easy,
            signature: &sig,
        }
        .encode();
        refuse(Header { seal: &weak, ..good }, "does not meet");
    }

    #[test]
    fn a_miner_builds_signs_searches_and_commits_on_each_new_head_and_a_follower_does_not() {
        let c = config();
        let v = [Validator {
            public_key: b"m",
            weight: 1,
        }];
        let mut p = Participant::new(c.clone(), b"m".to_vec());
        let head = Header {
            height: 3,
            timestamp_ms: 5000,
            seal_hash: b"h3s",
            proposer: b"m",
            seal: b"",
        };
        assert_eq!(p.new_head(&head, b"h3", &v), vec![Step::Build]);
        assert_eq!(p.built(4, b"other", 5100, b"s4"), vec![], "not on the head");
        assert_eq!(
            p.built(4, b"h3", 5100, b"s4"),
            vec![Step::Sign {
                request: 4,
                message: b"s4".to_vec()
            }]
        );
        assert_eq!(
            p.signed(4, b"sig".to_vec()),
            vec![Step::Work {
                seal_hash: b"s4".to_vec(),
                target: target(64).to_vec()
            }]
        );
        assert_eq!(p.worked(b"s3", b"nonce123"), vec![], "work for another block");
        let seal = Seal {
            difficulty: 64,
            nonce: b"nonce123",
            signature: b"sig",
        }
        .encode();
        assert_eq!(
            p.worked(b"s4", b"nonce123"),
            vec![Step::Commit {
                seal_hash: b"s4".to_vec(),
                seal
            }]
        );
        // A new head abandons the search.
        p.new_head(&head, b"h3", &v);
        p.built(4, b"h3", 5100, b"s4");
        p.signed(4, b"sig".to_vec());
        p.new_head(&Header { height: 4, ..head }, b"h4", &v);
        assert_eq!(p.worked(b"s4", b"nonce123"), vec![]);
        let mut f = Participant::new(c, vec![]);
        assert_eq!(f.new_head(&head, b"h3", &v), vec![]);
    }

    #[test]
    fn configuration_is_checked() {
        assert_eq!(Config::parse(b"").unwrap(), Config::default());
        assert_eq!(
            Config::parse(b"block-time-ms = 500\nfinality-depth = 3")
                .unwrap()
                .block_time_ms,
            500
        );
        for bad in [
            &b"block-time-ms = 0"[..],
            b"min-difficulty = 0",
            b"initial-difficulty = 5\nmin-difficulty = 10",
            b"finality-depth = 0",
            b"speed = 1",
            b"\xff",
        ] {
            assert!(Config::parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
