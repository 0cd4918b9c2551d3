//! Four participants exchanging their messages in-process, as the host would carry them.

use super::*;
use std::collections::VecDeque;

/// "Signatures" for tests: valid when the signature is the key followed by the message.
struct Concat;
impl Crypto for Concat {
    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        signature == [public_key, message].concat()
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key{i}").into_bytes()
}

/// What arrives at a node.
enum Input {
    Head,
    Message(Vec<u8>),
    Proposed {
        seal_hash: Vec<u8>,
        proposer: Vec<u8>,
        message: Vec<u8>,
    },
    Built(Vec<u8>),
    Signed(u64, Vec<u8>),
    Timer(u64),
}

/// Which messages are lost: `(from, to, what)` → lost.
type Loss = Box<dyn Fn(usize, usize, &Body) -> bool>;

struct Net {
    nodes: Vec<Participant>,
    alive: Vec<bool>,
    height: u64,
    /// Who built each block (its seal hash), to fill in the header's proposer.
    builders: BTreeMap<Vec<u8>, usize>,
    timers: Vec<Vec<u64>>,
    committed: Vec<Option<(Vec<u8>, Vec<u8>)>>,
    queue: VecDeque<(usize, Input)>,
    built: usize,
    /// Lose every commit message on the way.
    drop_commits: bool,
    /// An equivocating validator: it proposes its block to the first nodes listed, and a
    /// second block of its own to the others, and votes for each where it sent it.
    equivocator: Option<(usize, Vec<usize>)>,
    /// Messages lost on the way: `(from, to, what)` for which it answers true.
    lose: Option<Loss>,
}

impl Net {
    fn new(n: usize) -> Net {
        Net {
            nodes: (0..n)
                .map(|i| Participant::new(Config::default(), key(i), &[]))
                .collect(),
            alive: vec![true; n],
            height: 0,
            builders: BTreeMap::new(),
            timers: vec![vec![]; n],
            committed: vec![None; n],
            queue: VecDeque::new(),
            built: 0,
            drop_commits: false,
            equivocator: None,
            lose: None,
        }
    }

    fn keys(&self) -> Vec<Vec<u8>> {
        (0..self.nodes.len()).map(key).collect()
    }

    fn start(&mut self) {
        for i in 0..self.nodes.len() {
            self.queue.push_back((i, Input::Head));
        }
        self.run();
    }

    fn run(&mut self) {
        let keys = self.keys();
        let validators: Vec<Validator<'_>> = keys
            .iter()
            .map(|k| Validator {
                public_key: k,
                weight: 1,
            })
            .collect();
        while let Some((i, input)) = self.queue.pop_front() {
            if !self.alive[i] {
                continue;
            }
            let p = &mut self.nodes[i];
            let steps = match input {
                Input::Head => p.new_head(&Concat, self.height, b"parent", &validators),
                Input::Message(m) => p.message_bytes(&Concat, &m),
                Input::Proposed {
                    seal_hash,
                    proposer,
                    message,
                } => p.proposed(&Concat, &seal_hash, &proposer, self.height + 1, &message),
                Input::Built(seal_hash) => p.built(self.height + 1, b"parent", &seal_hash),
                Input::Signed(request, signature) => p.signed(request, signature),
                Input::Timer(id) => p.timer(id),
            };
            for step in steps {
                self.carry(i, step);
            }
        }
    }

    fn others(&self, i: usize) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&j| j != i).collect()
    }

    fn carry(&mut self, i: usize, step: Step) {
        match step {
            Step::SetTimer { id, .. } => self.timers[i].push(id),
            Step::Build => {
                self.built += 1;
                let seal_hash = format!("block {} by {i} #{}", self.height + 1, self.built).into_bytes();
                self.builders.insert(seal_hash.clone(), i);
                self.queue.push_back((i, Input::Built(seal_hash)));
            }
            Step::Sign { request, message } => self
                .queue
                .push_back((i, Input::Signed(request, [key(i), message].concat()))),
            Step::Broadcast(m) => {
                if self.drop_commits && Msg::try_from_slice(&m).is_ok_and(|m| matches!(m.body, Body::Commit { .. })) {
                    return;
                }
                let body = Msg::try_from_slice(&m).map(|m| m.body).ok();
                for j in self.others(i) {
                    if let (Some(lose), Some(body)) = (&self.lose, &body)
                        && lose(i, j, body)
                    {
                        continue;
                    }
                    self.queue.push_back((j, Input::Message(m.clone())));
                }
            }
            Step::Propose { seal_hash, message } if self.equivocator.as_ref().is_some_and(|(e, _)| *e == i) => {
                let (_, first) = self.equivocator.clone().unwrap_or_default();
                let m = Msg::try_from_slice(&message).expect("its own proposal");
                let other = format!("another block {} by {i}", self.height + 1).into_bytes();
                self.builders.insert(other.clone(), i);
                let signed = |body: Body| {
                    let bytes = Msg::signing_bytes(m.height, m.round, m.from, &body);
                    Msg {
                        height: m.height,
                        round: m.round,
                        from: m.from,
                        body,
                        signature: [key(i), bytes].concat(),
                    }
                    .encode()
                };
                let second = signed(Body::Proposal {
                    seal_hash: other.clone(),
                    proposed_in: m.round,
                    justification: None,
                });
                let prepare = signed(Body::Prepare {
                    seal_hash: other.clone(),
                });
                let commit = Msg {
                    height: m.height,
                    round: m.round,
                    from: m.from,
                    body: Body::Commit {
                        seal_hash: other.clone(),
                        seal: [key(i), other.clone()].concat(),
                    },
                    signature: vec![],
                }
                .encode();
                for j in self.others(i) {
                    if first.contains(&j) {
                        self.queue.push_back((
                            j,
                            Input::Proposed {
                                seal_hash: seal_hash.clone(),
                                proposer: key(i),
                                message: message.clone(),
                            },
                        ));
                    } else {
                        self.queue.push_back((
                            j,
                            Input::Proposed {
                                seal_hash: other.clone(),
                                proposer: key(i),
                                message: second.clone(),
                            },
                        ));
                        self.queue.push_back((j, Input::Message(prepare.clone())));
                        self.queue.push_back((j, Input::Message(commit.clone())));
                    }
                }
            }
            Step::Propose { seal_hash, message } => {
                let proposer = key(self.builders[&seal_hash]);
                let body = Msg::try_from_slice(&message).map(|m| m.body).ok();
                for j in self.others(i) {
                    if let (Some(lose), Some(body)) = (&self.lose, &body)
                        && lose(i, j, body)
                    {
                        continue;
                    }
                    self.queue.push_back((
                        j,
                        Input::Proposed {
                            seal_hash: seal_hash.clone(),
                            proposer: proposer.clone(),
                            message: message.clone(),
                        },
                    ));
                }
            }
            Step::Commit { seal_hash, seal } => {
                assert!(self.committed[i].is_none(), "node {i} committed twice at one height");
                self.committed[i] = Some((seal_hash, seal));
            }
            Step::Persist(_) => {}
        }
    }

    /// Expire every live node's latest timer.
    fn time_out(&mut self) {
        for i in 0..self.nodes.len() {
            if let Some(&id) = self.timers[i].last() {
                self.queue.push_back((i, Input::Timer(id)));
            }
        }
        self.run();
    }

    /// A committed block's seal, checked as every node checks the header of the next height.
    fn check_seal(&self, seal_hash: &[u8], seal: &[u8]) -> Result<(), String> {
        let keys = self.keys();
        let validators: Vec<Validator<'_>> = keys
            .iter()
            .map(|k| Validator {
                public_key: k,
                weight: 1,
            })
            .collect();
        let proposer = key(self.builders[seal_hash]);
        let parent = Header {
            height: self.height,
            timestamp_ms: 1,
            seal_hash: b"p",
            proposer: b"",
            seal: b"",
        };
        let header = Header {
            height: self.height + 1,
            timestamp_ms: 2,
            seal_hash,
            proposer: &proposer,
            seal,
        };
        verify_header(&Concat, &parent, &header, &validators)
    }

    /// The block the live nodes committed, checked as every node checks a header.
    fn agreed(&self) -> (Vec<u8>, Seal) {
        let live: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.alive[i]).collect();
        let (seal_hash, seal) = self.committed[live[0]].clone().expect("the first live node committed");
        for &i in &live {
            assert_eq!(
                self.committed[i].as_ref().map(|c| &c.0),
                Some(&seal_hash),
                "node {i} committed another block"
            );
        }
        self.check_seal(&seal_hash, &seal).expect("the committed seal verifies");
        (seal_hash, Seal::try_from_slice(&seal).expect("a seal"))
    }
}

#[test]
fn four_validators_commit_the_same_block_with_a_quorum_of_commit_seals() {
    let mut net = Net::new(4);
    net.start();
    let (_, seal) = net.agreed();
    assert_eq!(seal.round, 0);
    assert!(seal.commits.len() >= 3);
    assert!(net.committed.iter().all(Option::is_some), "all four committed");
}

#[test]
fn a_silent_proposer_is_replaced_by_a_round_change_and_three_of_four_commit() {
    let mut net = Net::new(4);
    // Height 1, round 0: validator 1 proposes. It is down.
    net.alive[1] = false;
    net.start();
    assert!(net.committed.iter().all(Option::is_none), "nothing without a proposal");
    net.time_out();
    let (seal_hash, seal) = net.agreed();
    assert_eq!(seal.round, 1, "round 1's proposer built it");
    assert_eq!(net.builders[&seal_hash], 2);
    assert_eq!(seal.commits.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 2, 3]);
}

#[test]
fn a_block_the_validators_locked_on_is_proposed_again_in_the_next_round_not_replaced() {
    let mut net = Net::new(4);
    // Everyone prepares validator 1's block and locks on it, but the commits are lost.
    net.drop_commits = true;
    net.start();
    assert!(net.committed.iter().all(Option::is_none));
    let first = net.builders.keys().next().cloned().expect("validator 1 built");
    for p in &net.nodes {
        assert_eq!(
            p.locked.as_ref().map(|l| (l.seal_hash.clone(), l.proposed_in)),
            Some((first.clone(), 0))
        );
    }
    // Round 1: validator 2 proposes the locked block again instead of building its own.
    net.drop_commits = false;
    net.time_out();
    let (seal_hash, seal) = net.agreed();
    assert_eq!(seal_hash, first);
    assert_eq!(net.built, 1, "no second block was built");
    assert_eq!(seal.round, 0, "the seal names the round whose proposer built it");
}

/// Locks split between two blocks with one validator down: 0 locked on round 0's block A,
/// 1 and 2 on round 1's block B, 3 silent. Only a quorum with 0 in it can decide, and 0
/// prepares B only when shown B's prepared certificate from round 1, later than its lock.
#[test]
fn a_validator_locked_on_an_older_block_follows_a_newer_prepared_certificate() {
    let mut net = Net::new(4);
    // Round 0 (proposer 1): everyone prepares A, but only 0 hears a quorum of prepares; no
    // commit arrives. 2 never gets A at all.
    net.drop_commits = true;
    net.lose = Some(Box::new(|from, to, body| match body {
        Body::Proposal { .. } => to == 2,
        Body::Prepare { .. } => to != 0 && from != 2,
        _ => false,
    }));
    net.start();
    let a = net.builders.keys().next().cloned().expect("1 built A");
    assert_eq!(net.nodes[0].locked.as_ref().map(|l| &l.seal_hash), Some(&a));
    assert!(net.nodes[1..].iter().all(|p| p.locked.is_none()));
    // Round 1 (proposer 2): 0's round change does not reach 2, which holds no A and builds
    // B; 1, 2, 3 prepare and lock on B, 0 refuses (locked on A); commits are lost again.
    net.lose = Some(Box::new(|from, to, body| {
        matches!(body, Body::RoundChange { .. }) && from == 0 && to == 2
    }));
    net.time_out();
    let b = net.builders.keys().find(|k| **k != a).cloned().expect("2 built B");
    for i in 1..4 {
        assert_eq!(
            net.nodes[i].locked.as_ref().map(|l| (&l.seal_hash, l.round)),
            Some((&b, 1)),
            "node {i}"
        );
    }
    assert_eq!(net.nodes[0].locked.as_ref().map(|l| &l.seal_hash), Some(&a));
    // 3 goes down; round 2's proposer is 3, so round 3's (0) must decide with 1 and 2.
    net.alive[3] = false;
    net.drop_commits = false;
    net.lose = None;
    net.time_out();
    net.time_out();
    let (seal_hash, _) = net.agreed();
    assert_eq!(seal_hash, b, "B, the block with the newer certificate");
    assert_eq!(
        net.nodes[0].locked.as_ref().map(|l| &l.seal_hash),
        Some(&b),
        "0 moved its lock"
    );
}

/// A justification whose certificate is short of a quorum, or forged, or names another
/// block, moves no lock.
#[test]
fn a_forged_or_short_certificate_moves_no_lock() {
    let mut p = Participant::new(Config::default(), key(0), &[]);
    let keys: Vec<Vec<u8>> = (0..4).map(key).collect();
    let validators: Vec<Validator<'_>> = keys
        .iter()
        .map(|k| Validator {
            public_key: k,
            weight: 1,
        })
        .collect();
    p.new_head(&Concat, 0, b"parent", &validators);
    let prepare = |i: usize, round: u32, sh: &[u8]| {
        let body = Body::Prepare { seal_hash: sh.to_vec() };
        (
            i as u16,
            [key(i), Msg::signing_bytes(1, round, i as u16, &body)].concat(),
        )
    };
    let lock = |certificate| Lock {
        round: 1,
        seal_hash: b"B".to_vec(),
        proposed_in: 1,
        certificate,
    };
    assert!(p.certified(
        &Concat,
        &lock(vec![prepare(1, 1, b"B"), prepare(2, 1, b"B"), prepare(3, 1, b"B")])
    ));
    for (certificate, why) in [
        (vec![prepare(1, 1, b"B"), prepare(2, 1, b"B")], "short of a quorum"),
        (
            vec![prepare(1, 1, b"B"), prepare(2, 1, b"B"), prepare(2, 1, b"B")],
            "a vote twice",
        ),
        (
            vec![prepare(1, 1, b"B"), prepare(2, 1, b"B"), prepare(3, 0, b"B")],
            "another round",
        ),
        (
            vec![prepare(1, 1, b"B"), prepare(2, 1, b"B"), prepare(3, 1, b"A")],
            "another block",
        ),
        (
            vec![prepare(1, 1, b"B"), prepare(2, 1, b"B"), (3, b"forged".to_vec())],
            "forged",
        ),
    ] {
        assert!(!p.certified(&Concat, &lock(certificate)), "{why}");
    }
}

#[test]
fn an_equivocating_proposer_gets_at_most_one_of_its_blocks_committed_by_honest_nodes() {
    for first in [vec![0, 2], vec![0], vec![]] {
        let mut net = Net::new(4);
        // Height 1: validator 1 proposes; it sends one block to `first`, another to the rest.
        net.equivocator = Some((1, first.clone()));
        net.start();
        net.time_out();
        net.time_out();
        let honest: Vec<&Vec<u8>> = [0, 2, 3]
            .iter()
            .filter_map(|&i| net.committed[i].as_ref().map(|c| &c.0))
            .collect();
        assert!(
            honest.windows(2).all(|w| w[0] == w[1]),
            "honest nodes committed different blocks ({first:?}): {honest:?}"
        );
        assert!(!honest.is_empty(), "the honest three still decide ({first:?})");
        for (i, c) in net.committed.iter().enumerate() {
            if let Some((seal_hash, seal)) = c.as_ref().filter(|_| i != 1) {
                net.check_seal(seal_hash, seal)
                    .expect("what an honest node commits verifies");
            }
        }
    }
}

#[test]
fn a_seal_short_of_a_quorum_or_with_a_repeated_or_forged_vote_is_refused() {
    let keys: Vec<Vec<u8>> = (0..4).map(key).collect();
    let validators: Vec<Validator<'_>> = keys
        .iter()
        .map(|k| Validator {
            public_key: k,
            weight: 1,
        })
        .collect();
    let parent = Header {
        height: 4,
        timestamp_ms: 10,
        seal_hash: b"p",
        proposer: b"",
        seal: b"",
    };
    let sh = b"block 5";
    let vote = |i: usize| (i as u16, [key(i), sh.to_vec()].concat());
    let check = |round: u32, commits: Vec<(u16, Vec<u8>)>, proposer: &[u8]| {
        let seal = borsh::to_vec(&Seal { round, commits }).unwrap();
        let header = Header {
            height: 5,
            timestamp_ms: 11,
            seal_hash: sh,
            proposer,
            seal: &seal,
        };
        verify_header(&Concat, &parent, &header, &validators)
    };
    // Height 5, round 0: validator 1 proposes; round 2: validator 3.
    assert_eq!(check(0, vec![vote(0), vote(1), vote(3)], &key(1)), Ok(()));
    assert_eq!(check(2, vec![vote(0), vote(1), vote(2)], &key(3)), Ok(()));
    assert!(
        check(0, vec![vote(0), vote(1)], &key(1))
            .unwrap_err()
            .contains("needs 3")
    );
    assert!(
        check(0, vec![vote(0), vote(1), vote(1)], &key(1))
            .unwrap_err()
            .contains("twice")
    );
    assert!(
        check(0, vec![vote(0), vote(1), (2, b"forged".to_vec())], &key(1))
            .unwrap_err()
            .contains("does not verify")
    );
    assert!(
        check(1, vec![vote(0), vote(1), vote(3)], &key(1))
            .unwrap_err()
            .contains("proposer")
    );
    assert!(
        check(0, vec![vote(0), vote(1), (9, vec![])], &key(1))
            .unwrap_err()
            .contains("names validator 9")
    );
    let garbage = Header {
        height: 5,
        timestamp_ms: 11,
        seal_hash: sh,
        proposer: &key(1),
        seal: b"\xff",
    };
    assert!(verify_header(&Concat, &parent, &garbage, &validators).is_err());
}

#[test]
fn quorums_are_two_thirds_rounded_up() {
    assert_eq!((1..=7).map(quorum).collect::<Vec<_>>(), vec![1, 2, 2, 3, 4, 4, 5]);
}

#[test]
fn the_configuration_is_checked() {
    assert_eq!(Config::parse(b"").unwrap().round_timeout_ms, 2000);
    assert_eq!(Config::parse(b"round-timeout-ms = 500").unwrap().timeout(5), 4000);
    assert!(Config::parse(b"round-timeout-ms = 0").is_err());
    assert!(Config::parse(b"nonsense = 1").is_err());
}
