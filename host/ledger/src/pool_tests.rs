//! The pool's parts, limits, promotion, expiry and eviction, with a native suite. Signatures
//! are not checked here (the chain's tests and `tests/all` do): transactions carry a dummy
//! one and go through `precheck` and `insert`, as a node's do after `verify_signature`.

use super::*;
use crate::testkit::TestCrypto;
use joule_primitives::{Hasher, Payload, UnsignedTransaction};
use std::time::{Duration, Instant};

const T0: u64 = 1_700_000_000_000;

fn pool(config: PoolConfig) -> TxPool {
    TxPool::new(ChannelId::new("grid").unwrap(), config)
}

fn sender(i: u32) -> Vec<u8> {
    let mut k = vec![0xa5; 32];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k
}

fn tx(sender: &[u8], nonce: u64) -> Transaction {
    UnsignedTransaction {
        channel: ChannelId::new("grid").unwrap(),
        sender: sender.to_vec(),
        nonce,
        gas_limit: 100_000,
        sig_alg: "ed25519".into(),
        payload: Payload::Data { key: "meter/1".into(), value: b"42 kWh".to_vec() },
    }
    .sign_with(vec![0; 64])
}

/// Admit without a signature check, the account at `next`, at `now`.
fn add(p: &mut TxPool, t: Transaction, next: u64, now: u64) -> Result<Hash32, Rejection> {
    let suite = TestCrypto::new();
    let checked = p.precheck(&t, suite.as_ref(), |_| next)?;
    p.insert(t, checked, now, |_| Some(next))
}

fn hash(t: &Transaction) -> Hash32 {
    TestCrypto::new().hash(&t.encode()).unwrap()
}

fn evicted_code(p: &TxPool, h: &Hash32) -> Option<&'static str> {
    match p.status(h) {
        Some(PoolStatus::Evicted(e)) => Some(e.reason.code()),
        _ => None,
    }
}

#[test]
fn future_nonces_are_queued_apart_with_a_smaller_limit_of_their_own() {
    let mut p = pool(PoolConfig { max_pending: 10, max_queued: 3, ..PoolConfig::default() });
    let (a, b) = (sender(1), sender(2));
    for n in 0..2 {
        add(&mut p, tx(&a, n), 0, T0).unwrap();
    }
    let gapped = add(&mut p, tx(&b, 5), 0, T0).unwrap();
    for i in 3..5 {
        add(&mut p, tx(&sender(i), 1), 0, T0 + u64::from(i)).unwrap();
    }
    assert_eq!((p.pending_len(), p.queued_len()), (2, 3));
    assert_eq!(p.status(&gapped), Some(PoolStatus::Queued));
    // The queue is full: a newcomer takes the oldest queued transaction's place, and the
    // pending part is untouched.
    add(&mut p, tx(&sender(9), 1), 0, T0 + 10).unwrap();
    assert_eq!((p.pending_len(), p.queued_len()), (2, 3));
    assert_eq!(evicted_code(&p, &gapped), Some("pool_full"));
    let ready: Vec<u64> = p.ready(100, usize::MAX, T0 + 10, |s| (s == a.as_slice()).then_some(0)).iter().map(|(_, t)| t.body.nonce).collect();
    assert_eq!(ready, [0, 1], "only a's run is executable");
}

#[test]
fn a_filled_gap_promotes_the_queue_on_arrival_and_on_commit() {
    let mut p = pool(PoolConfig::default());
    let (a, b) = (sender(1), sender(2));
    for n in [2, 3, 1] {
        add(&mut p, tx(&a, n), 0, T0).unwrap();
    }
    assert_eq!((p.pending_len(), p.queued_len()), (0, 3));
    add(&mut p, tx(&a, 0), 0, T0).unwrap();
    assert_eq!((p.pending_len(), p.queued_len()), (4, 0), "nonce 0 filled the gap");
    let order: Vec<u64> = p.ready(100, usize::MAX, T0, |_| Some(0)).iter().map(|(_, t)| t.body.nonce).collect();
    assert_eq!(order, [0, 1, 2, 3]);

    // b's nonce 0 is committed elsewhere (another node's block): 1 and 2 become pending.
    for n in [1, 2] {
        add(&mut p, tx(&b, n), 0, T0).unwrap();
    }
    assert_eq!(p.queued_len(), 2);
    p.prune([(b.as_slice(), 1)], &HashSet::new(), T0);
    assert_eq!((p.pending_len(), p.queued_len()), (6, 0));
}

#[test]
fn queued_transactions_expire_after_the_lifetime_and_pending_ones_do_not() {
    let mut p = pool(PoolConfig { queued_lifetime_ms: 60_000, ..PoolConfig::default() });
    let (a, b) = (sender(1), sender(2));
    let pending = add(&mut p, tx(&a, 0), 0, T0).unwrap();
    let queued = add(&mut p, tx(&b, 1), 0, T0).unwrap();
    let later = add(&mut p, tx(&b, 3), 0, T0 + 30_000).unwrap();
    p.expire(T0 + 59_999);
    assert_eq!(p.status(&queued), Some(PoolStatus::Queued));
    p.expire(T0 + 60_000);
    match p.status(&queued) {
        Some(PoolStatus::Evicted(e)) => {
            assert_eq!((e.reason.code(), e.at_ms), ("expired", T0 + 60_000));
            assert_eq!(e.reason.to_string(), "expired: queued for more than 60 s waiting for an earlier nonce");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.status(&later), Some(PoolStatus::Queued), "its own clock");
    // An arrival expires what is due, too.
    add(&mut p, tx(&sender(3), 0), 0, T0 + 90_000).unwrap();
    assert_eq!(evicted_code(&p, &later), Some("expired"));
    assert_eq!(p.status(&pending), Some(PoolStatus::Pending), "executable transactions wait for a block, however long");
    assert_eq!((p.pending_len(), p.queued_len()), (2, 0));
}

#[test]
fn one_sender_holds_at_most_its_share_of_each_part() {
    let mut p = pool(PoolConfig { max_pending_per_sender: 5, max_queued_per_sender: 2, ..PoolConfig::default() });
    let a = sender(1);
    for n in 0..5 {
        add(&mut p, tx(&a, n), 0, T0).unwrap();
    }
    let e = add(&mut p, tx(&a, 5), 0, T0).unwrap_err();
    assert_eq!((e.code(), e.to_string().as_str()), ("sender_limit", "the sender has 5 pending transactions in the pool, the most one sender may have"));
    for n in [7, 8] {
        add(&mut p, tx(&a, n), 0, T0).unwrap();
    }
    let e = add(&mut p, tx(&a, 9), 0, T0).unwrap_err();
    assert_eq!(e, Rejection::SenderLimit { part: "queued", limit: 2 });
    assert_eq!((p.pending_len(), p.queued_len()), (5, 2));
    // A commit of a's first three makes room; what follows the run is promoted only up to
    // the cap... and here nonce 5 is still missing, so 7 and 8 stay queued.
    p.prune([(a.as_slice(), 3)], &HashSet::new(), T0);
    add(&mut p, tx(&a, 5), 3, T0).unwrap();
    add(&mut p, tx(&a, 6), 3, T0).unwrap();
    assert_eq!((p.pending_len(), p.queued_len()), (5, 1), "5 and 6 joined 3 and 4, 7 was promoted up to the cap of 5, 8 waits");
    p.prune([(a.as_slice(), 6)], &HashSet::new(), T0);
    assert_eq!((p.pending_len(), p.queued_len()), (3, 0), "8 promoted once a's own commit made room");
}

#[test]
fn a_full_pending_part_takes_from_the_largest_sender_and_refuses_a_newcomer_of_lower_priority() {
    let mut p = pool(PoolConfig { max_pending: 4, ..PoolConfig::default() });
    let a = sender(1);
    let a_txs: Vec<Hash32> = (0..4).map(|n| add(&mut p, tx(&a, n), 0, T0).unwrap()).collect();
    assert_eq!(add(&mut p, tx(&a, 4), 0, T0).unwrap_err(), Rejection::PoolFull, "a sender cannot push out others' or its own executable transactions");
    add(&mut p, tx(&sender(2), 0), 0, T0).expect("b evicts a's newest nonce");
    assert_eq!(evicted_code(&p, &a_txs[3]), Some("pool_full"));
    match p.status(&a_txs[3]) {
        Some(PoolStatus::Evicted(e)) => assert!(e.reason.to_string().starts_with("pool_full: replaced by higher-priority transactions"), "{}", e.reason),
        other => panic!("{other:?}"),
    }
    add(&mut p, tx(&sender(3), 0), 0, T0).expect("c evicts a's next newest");
    add(&mut p, tx(&sender(4), 0), 0, T0).expect("d too: a still holds more than d will");
    assert_eq!(p.status(&a_txs[0]), Some(PoolStatus::Pending));
    assert_eq!(evicted_code(&p, &a_txs[1]), Some("pool_full"));
    // Everyone holds one: nobody gives way to a fifth sender, nor to a second of b's.
    assert_eq!(add(&mut p, tx(&sender(5), 0), 0, T0).unwrap_err(), Rejection::PoolFull);
    assert_eq!(add(&mut p, tx(&sender(2), 1), 0, T0).unwrap_err(), Rejection::PoolFull);
    assert_eq!((p.pending_len(), p.queued_len()), (4, 0));
}

#[test]
fn a_full_queue_evicts_the_oldest_of_other_senders() {
    let mut p = pool(PoolConfig { max_queued: 3, ..PoolConfig::default() });
    let (x, y, z) = (sender(1), sender(2), sender(3));
    let x1 = add(&mut p, tx(&x, 1), 0, T0).unwrap();
    let y1 = add(&mut p, tx(&y, 1), 0, T0 + 1).unwrap();
    let z1 = add(&mut p, tx(&z, 1), 0, T0 + 2).unwrap();
    // x's newcomer does not push out x's own older one: y's goes.
    add(&mut p, tx(&x, 2), 0, T0 + 3).unwrap();
    assert_eq!((p.status(&x1), evicted_code(&p, &y1), p.status(&z1)), (Some(PoolStatus::Queued), Some("pool_full"), Some(PoolStatus::Queued)));
    // Anyone else's newcomer: the oldest, x's nonce 1.
    add(&mut p, tx(&sender(4), 1), 0, T0 + 4).unwrap();
    assert_eq!(evicted_code(&p, &x1), Some("pool_full"));
    assert_eq!(p.queued_len(), 3);
}

#[test]
fn evictions_are_remembered_most_recent_first_and_forgotten_on_readmission() {
    let mut p = pool(PoolConfig { max_queued: 1, evictions_remembered: 2, ..PoolConfig::default() });
    let txs: Vec<Transaction> = (0..4).map(|i| tx(&sender(i), 1)).collect();
    let hashes: Vec<Hash32> = txs.iter().map(|t| add(&mut p, t.clone(), 0, T0).unwrap()).collect();
    assert_eq!(p.status(&hashes[0]), None, "only the two most recent evictions are remembered");
    assert_eq!((evicted_code(&p, &hashes[1]), evicted_code(&p, &hashes[2])), (Some("pool_full"), Some("pool_full")));
    assert_eq!(p.status(&hashes[3]), Some(PoolStatus::Queued));
    assert_eq!(p.status(&hash(&tx(&sender(99), 1))), None, "never seen");
    // Sent again, an evicted transaction is in the pool again (and evicts the last one).
    add(&mut p, txs[1].clone(), 0, T0).unwrap();
    assert_eq!(p.status(&hashes[1]), Some(PoolStatus::Queued));
    assert_eq!(evicted_code(&p, &hashes[3]), Some("pool_full"));
}

#[test]
fn prune_touches_the_blocks_senders_and_reports_nonces_used_by_other_transactions() {
    let mut p = pool(PoolConfig::default());
    let (a, b) = (sender(1), sender(2));
    let a0 = add(&mut p, tx(&a, 0), 0, T0).unwrap();
    let a1 = add(&mut p, tx(&a, 1), 0, T0).unwrap();
    let b0 = add(&mut p, tx(&b, 0), 0, T0).unwrap();
    // The block carried a0 and another transaction of a's with nonce 1.
    p.prune([(a.as_slice(), 2)], &HashSet::from([a0]), T0);
    assert_eq!(p.status(&a0), None, "committed: the chain answers for it");
    assert_eq!(evicted_code(&p, &a1), Some("nonce_used"));
    assert_eq!(p.status(&b0), Some(PoolStatus::Pending), "b was not in the block");
    assert_eq!(p.len(), 1);
    // An admission that read the state of a block whose prune is still to come: the pool
    // catches up, without calling b0 evicted.
    let b1 = add(&mut p, tx(&b, 1), 1, T0).unwrap();
    assert_eq!((p.status(&b0), p.status(&b1)), (None, Some(PoolStatus::Pending)));
    assert_eq!((p.pending_len(), p.queued_len()), (1, 0));
}

#[test]
fn an_admission_that_read_the_state_before_a_commit_that_emptied_its_sender_is_not_stranded() {
    let suite = TestCrypto::new();
    let mut p = pool(PoolConfig::default());
    let a = sender(1);
    let a0 = add(&mut p, tx(&a, 0), 0, T0).unwrap();
    // Nonce 1 is checked against the state before a0's block (next 0)...
    let commits = p.commits();
    let late = tx(&a, 1);
    let checked = p.precheck(&late, suite.as_ref(), |_| 0).unwrap().read_at(commits);
    // ...the block with a0 commits and a leaves the pool...
    p.prune([(a.as_slice(), 1)], &HashSet::from([a0]), T0);
    assert_eq!(p.len(), 0);
    // ...and the insertion reads the nonce again: 1 is next, so it is pending, not queued
    // behind a nonce 0 that will never come.
    let h = p.insert(late, checked, T0, |_| Some(1)).unwrap();
    assert_eq!(p.status(&h), Some(PoolStatus::Pending));
    let ready: Vec<u64> = p.ready(10, usize::MAX, T0, |_| Some(1)).iter().map(|(_, t)| t.body.nonce).collect();
    assert_eq!(ready, [1]);
    // A nonce a commit used (another node's block: the pool never held it) is refused on
    // the fresh reading.
    let b = sender(2);
    let commits = p.commits();
    let checked = p.precheck(&tx(&b, 0), suite.as_ref(), |_| 0).unwrap().read_at(commits);
    p.prune([(b.as_slice(), 1)], &HashSet::new(), T0);
    assert_eq!(p.insert(tx(&b, 0), checked, T0, |_| Some(1)), Err(Rejection::NonceUsed { got: 0, next: 1 }));
}

#[test]
fn ready_walks_senders_by_arrival_and_catches_up_with_the_state() {
    let mut p = pool(PoolConfig::default());
    let (a, b, c) = (sender(1), sender(2), sender(3));
    for n in [0, 1, 3] {
        add(&mut p, tx(&a, n), 0, T0).unwrap();
    }
    for n in [1, 0] {
        add(&mut p, tx(&b, n), 0, T0).unwrap();
    }
    let order: Vec<(u32, u64)> = p.ready(100, usize::MAX, T0, |_| Some(0)).iter().map(|(_, t)| (t.body.sender[3].into(), t.body.nonce)).collect();
    assert_eq!(order, [(1, 0), (1, 1), (2, 0), (2, 1)], "a's nonce 3 waits for 2");
    assert_eq!(p.ready(3, usize::MAX, T0, |_| Some(0)).len(), 3);
    let size = tx(&a, 0).encode().len();
    assert_eq!(p.ready(100, 2 * size + 1, T0, |_| Some(0)).len(), 2, "cut at the byte budget");
    // The state is ahead of the pool for c (its nonce 0 was committed while it was being
    // admitted): ready drops it rather than hand out a used nonce.
    let c0 = add(&mut p, tx(&c, 0), 0, T0).unwrap();
    let got = p.ready(100, usize::MAX, T0, |s| Some(if s == c.as_slice() { 1 } else { 0 }));
    assert!(got.iter().all(|(h, _)| *h != c0) && got.len() == 4);
    assert_eq!(p.status(&c0), None, "most likely committed: the chain answers for it");
    // Unknown state: the sender is skipped, nothing dropped.
    assert_eq!(p.ready(100, usize::MAX, T0, |s| (s != a.as_slice()).then_some(0)).len(), 2);
    assert_eq!(p.len(), 5);
}

/// The probe that found the old pool's limits, scaled down: throwaway keys each sending
/// nonce 1, which can never execute. Admission into the full queue must cost about what it
/// costs in an empty pool (the old pool scanned every sender for each eviction: ~20×
/// slower), an honest sender's batch must be accepted whole, and `ready` must visit only
/// the senders with something to execute.
#[test]
fn a_flood_of_never_executable_transactions_leaves_room_for_an_honest_batch() {
    const FLOOD: u32 = 20_000;
    const CHUNK: usize = 500;
    let suite = TestCrypto::new();
    let mut p = pool(PoolConfig::default());
    let max_queued = p.config().max_queued;
    let flood: Vec<(Transaction, Hash32, usize)> = (0..FLOOD)
        .map(|i| {
            let t = tx(&sender(i), 1);
            let e = t.encode();
            (t, suite.hash(&e).unwrap(), e.len())
        })
        .collect();
    let first_hash = flood[0].1;
    // Seconds per chunk of insertions, by chunk.
    let mut chunks: Vec<Duration> = vec![];
    for chunk in flood.chunks(CHUNK) {
        let start = Instant::now();
        for (t, h, size) in chunk {
            let checked = p.precheck_hashed(t, *size, *h, suite.as_ref(), |_| 0).unwrap();
            p.insert(t.clone(), checked, T0, |_| None).unwrap();
        }
        chunks.push(start.elapsed());
    }
    assert_eq!((p.pending_len(), p.queued_len()), (0, max_queued));
    // Best of the chunks before the queue filled, against the best once every insertion
    // evicts: the best of several resists a loaded machine.
    let filling = max_queued / CHUNK;
    let empty = chunks[..filling].iter().min().copied().unwrap_or_default();
    let full = chunks[chunks.len() - filling..].iter().min().copied().unwrap_or_default();
    assert!(full < empty * 5, "admission slowed by {:.1}× in a full pool ({full:?} vs {empty:?} per {CHUNK})", full.as_secs_f64() / empty.as_secs_f64());

    // The honest sender's batch, as the chain admits one: every precheck, then every insertion.
    let honest = sender(FLOOD + 1);
    let batch: Vec<Transaction> = (0..100).map(|n| tx(&honest, n)).collect();
    let checked: Vec<Checked> = batch.iter().map(|t| p.precheck(t, suite.as_ref(), |_| 0).unwrap()).collect();
    let hashes: Vec<Hash32> = batch.into_iter().zip(checked).map(|(t, c)| p.insert(t, c, T0, |_| None).unwrap()).collect();
    assert_eq!((p.pending_len(), p.queued_len()), (100, max_queued));

    let asked = std::cell::Cell::new(0);
    let ready = p.ready(2000, usize::MAX, T0, |s| {
        asked.set(asked.get() + 1);
        (s == honest.as_slice()).then_some(0)
    });
    assert_eq!(ready.iter().map(|(h, _)| *h).collect::<Vec<_>>(), hashes, "the whole batch, in nonce order");
    assert_eq!(asked.get(), 1, "ready asked the state about queued-only senders");
    p.prune([(honest.as_slice(), 100)], &hashes.iter().copied().collect(), T0);
    assert_eq!((p.pending_len(), p.queued_len()), (0, max_queued));
    assert_eq!(evicted_code(&p, &first_hash), Some("pool_full"), "the flood's oldest made room, and say so");
}

#[test]
fn a_snapshot_hands_over_each_senders_transactions_in_nonce_order_within_the_bound() {
    let mut p = pool(PoolConfig::default());
    let (a, b) = (sender(1), sender(2));
    add(&mut p, tx(&a, 0), 0, T0).unwrap();
    add(&mut p, tx(&b, 3), 0, T0).unwrap(); // queued: b's nonces 0-2 are missing
    add(&mut p, tx(&a, 1), 0, T0).unwrap();
    add(&mut p, tx(&b, 0), 0, T0).unwrap();
    let order: Vec<(Vec<u8>, u64)> = p.snapshot(10).iter().map(|t| (t.body.sender.clone(), t.body.nonce)).collect();
    assert_eq!(order, vec![(a.clone(), 0), (a.clone(), 1), (b.clone(), 0), (b.clone(), 3)]);
    assert_eq!(p.snapshot(3).len(), 3);
    assert!(pool(PoolConfig::default()).snapshot(10).is_empty());
}
