//! Proof of authority (guide §4.2.2 c–d) as a `joule:consensus/engine-plugin@0.2.0`
//! component.
//!
//! Validators with a non-zero weight take turns by height (`height mod n`); the proposer
//! seals a block by signing its seal hash with the channel's signature algorithm, and the
//! seal is that signature. A header is valid when it extends its parent by one, its
//! timestamp is later than the parent's by at least `min-block-interval-ms` (and by at
//! least 1 ms), its proposer is the validator whose turn it is, and the seal verifies under
//! the proposer's key. The engine reads no clock and no randomness: everything it judges is
//! passed in, so every node reaches the same verdict.
//!
//! A node's [`Participant`] asks the host to build a block when a new head makes it the
//! proposer of the next height, signs the built block's seal hash, and commits it.
//!
//! The rules are plain Rust over the [`Crypto`] trait, so they are unit-tested natively;
//! the wasm32 build adds the component glue.

use serde::Deserialize;

pub const NAME: &str = "poa/0.2.0";

/// The engine's configuration (`[consensus.config]` of a channel, as TOML).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The least time between a block and its parent.
    #[serde(default)]
    pub min_block_interval_ms: u64,
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
    let turn = proposer(header.height, 0, validators).ok_or("the channel has no voting validators")?;
    if validators[turn].public_key != header.proposer {
        return Err(format!(
            "the proposer is not validator {turn}, whose turn it is at height {}",
            header.height
        ));
    }
    if header.seal.is_empty() {
        return Err("the block is not sealed".into());
    }
    if !crypto.verify(header.proposer, header.seal_hash, header.seal) {
        return Err("the seal is not the proposer's signature over the seal hash".into());
    }
    Ok(())
}

/// Fork choice: with one valid proposer per height, every valid block weighs the same.
pub fn weight() -> u64 {
    1
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
    Sign { request: u64, message: Vec<u8> },
    Commit { seal_hash: Vec<u8>, seal: Vec<u8> },
}

/// A node's part in PoA: propose at its turn.
#[derive(Debug, Default)]
pub struct Participant {
    /// This node's consensus key; empty: it follows the chain.
    me: Vec<u8>,
    /// The head: height and hash.
    head: Option<(u64, Vec<u8>)>,
    /// The block being sealed: its height and seal hash.
    sealing: Option<(u64, Vec<u8>)>,
}

impl Participant {
    pub fn new(me: Vec<u8>) -> Participant {
        Participant {
            me,
            ..Participant::default()
        }
    }

    /// A new head: build the next block when it is this node's turn.
    pub fn new_head(&mut self, height: u64, hash: &[u8], validators: &[Validator<'_>]) -> Vec<Step> {
        self.head = Some((height, hash.to_vec()));
        self.sealing = None;
        let next = height.saturating_add(1);
        let mine = !self.me.is_empty()
            && proposer(next, 0, validators)
                .is_some_and(|i| validators.get(i).is_some_and(|v| v.public_key == self.me));
        if mine { vec![Step::Build] } else { vec![] }
    }

    /// The block the host built: sign its seal hash, if it is the next block on the head.
    pub fn built(&mut self, height: u64, parent_hash: &[u8], seal_hash: &[u8]) -> Vec<Step> {
        match &self.head {
            Some((h, hash)) if h.checked_add(1) == Some(height) && hash.as_slice() == parent_hash => {
                self.sealing = Some((height, seal_hash.to_vec()));
                vec![Step::Sign {
                    request: height,
                    message: seal_hash.to_vec(),
                }]
            }
            _ => vec![],
        }
    }

    /// The signature: it is the seal; commit.
    pub fn signed(&mut self, request: u64, signature: Vec<u8>) -> Vec<Step> {
        match self.sealing.take() {
            Some((height, seal_hash)) if height == request => vec![Step::Commit {
                seal_hash,
                seal: signature,
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
    use joule::consensus::types::{Action, Commit, Event, Head, Header, SignRequest, Validator};
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

        fn weight(_header: Header, _validators: Vec<Validator>) -> u64 {
            super::weight()
        }

        fn finality_depth(validators: Vec<Validator>) -> u64 {
            super::finality_depth(&self::validators(&validators))
        }
    }

    struct PoaInstance(RefCell<super::Participant>);

    impl GuestInstance for PoaInstance {
        fn start(me: Vec<u8>, _head: Head, _saved: Vec<u8>) -> Result<Instance, String> {
            // PoA keeps nothing across a restart: the next head says whose turn it is.
            Ok(Instance::new(PoaInstance(RefCell::new(super::Participant::new(me)))))
        }

        fn handle(&self, event: Event) -> Vec<Action> {
            let mut p = self.0.borrow_mut();
            actions(match event {
                Event::NewHead(h) => p.new_head(h.header.height, &h.hash, &validators(&h.validators)),
                Event::Built(h) => p.built(h.height, &h.parent_hash, &h.seal_hash),
                Event::Signed(s) => p.signed(s.request, s.signature),
                // No rounds, no messages, no proofs of work: nothing to do.
                Event::Timer(_) | Event::Message(_) | Event::Proposed(_) | Event::Worked(_) => vec![],
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
        let wrong_turn = verify_header(&c, &Concat, &parent, &sealed(5, 1001, b"a", b"ah"), &v).unwrap_err();
        assert!(wrong_turn.contains("turn"), "{wrong_turn}");
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
        let mut b = Participant::new(b"b".to_vec());
        let mut a = Participant::new(b"a".to_vec());
        assert_eq!(a.new_head(4, b"h4", &v), vec![]);
        assert_eq!(b.new_head(4, b"h4", &v), vec![Step::Build]);
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
                seal: b"sig".to_vec()
            }]
        );
        assert_eq!(b.signed(5, b"sig".to_vec()), vec![]);
        // A follower never builds.
        let mut f = Participant::new(vec![]);
        assert_eq!(f.new_head(4, b"h4", &v), vec![]);
        // A new head forgets the block being sealed.
        assert_eq!(b.new_head(4, b"h4", &v), vec![Step::Build]);
        b.built(5, b"h4", b"s5");
        b.new_head(5, b"h5", &v);
        assert_eq!(b.signed(5, b"sig".to_vec()), vec![]);
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
