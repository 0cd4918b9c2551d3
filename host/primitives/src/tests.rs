//! Encoding round trips and hostile input; Merkle proofs.

use crate::merkle::{self, HashError, Hasher, leaf_hash};
use crate::*;
use proptest::prelude::*;

/// A stand-in for the suite hash in unit tests (the node uses the plugins): FNV-1a
/// spread over 32 bytes. Not cryptographic; the Merkle logic only needs a function.
fn test_hash(data: &[u8]) -> Result<Hash32, HashError> {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let mut h: u64 = 0xcbf29ce484222325 ^ (i as u64).wrapping_mul(0x9e3779b97f4a7c15);
        for &b in data {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    Ok(Hash32(out))
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn arb_hash() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32)
}

fn arb_channel() -> impl Strategy<Value = ChannelId> {
    "[a-z0-9][a-z0-9-]{0,31}".prop_map(|s| ChannelId::new(&s).expect("valid by construction"))
}

fn arb_ident() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

fn arb_network_key() -> impl Strategy<Value = Vec<u8>> {
    (2u8..4, proptest::collection::vec(any::<u8>(), 32)).prop_map(|(tag, x)| [vec![tag], x].concat())
}

fn arb_change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (arb_bytes(100), 1..u64::MAX).prop_map(|(public_key, weight)| Change::AddValidator { public_key, weight }),
        arb_bytes(100).prop_map(|public_key| Change::RemoveValidator { public_key }),
        ("[a-z0-9_-]{1,64}", arb_network_key()).prop_map(|(name, network_key)| Change::AddNode { name, network_key }),
        arb_network_key().prop_map(|network_key| Change::RemoveNode { network_key }),
        (1..u64::MAX, "[a-z0-9_-]{1,16}", "[ -~]{0,64}", arb_hash()).prop_map(|(from_height, engine, config, component)| Change::SwitchEngine {
            from_height,
            engine,
            config,
            component
        }),
        (1..u64::MAX, "[a-z0-9_-]{1,16}", proptest::collection::vec(("[a-z0-9_-]{1,64}", arb_network_key()), 0..4)).prop_map(|(from_height, suite, nodes)| {
            Change::SwitchSuite { from_height, suite, nodes: nodes.into_iter().map(|(name, network_key)| NodeSpec { name, network_key }).collect() }
        }),
        (arb_hash(), arb_bytes(100)).prop_map(|(account, public_key)| Change::MoveAccount { account, public_key }),
        ("[a-z0-9_-]{1,64}", proptest::collection::vec(any::<u8>(), 1..200), proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..100), 0..3))
            .prop_map(|(name, ca_certificate, certificates)| Change::AddOrganisation { name, ca_certificate, certificates }),
        "[a-z0-9_-]{1,64}".prop_map(|name| Change::RemoveOrganisation { name }),
    ]
}

fn arb_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (arb_bytes(256), arb_bytes(64), any::<bool>()).prop_map(|(code, init_args, upgradable)| Payload::Deploy { code, init_args, upgradable }),
        (arb_hash(), arb_bytes(256), proptest::option::of(arb_bytes(64))).prop_map(|(contract, code, migrate_args)| Payload::Upgrade {
            contract,
            code,
            migrate_args
        }),
        (arb_hash(), arb_ident(), arb_bytes(64)).prop_map(|(contract, method, args)| Payload::Call { contract, method, args }),
        ("[ -~]{1,256}", arb_bytes(128)).prop_map(|(key, value)| Payload::Data { key, value }),
        (proptest::collection::vec(arb_change(), 1..4), any::<u64>(), proptest::collection::vec(arb_bytes(64), 0..2))
            .prop_map(|(changes, expires_at, components)| Payload::Governance(Governance::Propose { changes, expires_at, components })),
        (arb_hash(), any::<u64>()).prop_map(|(proposal, expires_at)| Payload::Governance(Governance::Vote { proposal, expires_at })),
        arb_hash().prop_map(|proposal| Payload::Governance(Governance::Withdraw { proposal })),
        ("[a-z0-9_-]{1,16}", arb_bytes(100), arb_bytes(80)).prop_map(|(suite, public_key, proof)| Payload::BindKey { suite, public_key, proof }),
        proptest::collection::vec(any::<u8>(), 1..300).prop_map(|certificate| Payload::Identity(IdentityAction::Register { certificate })),
        ("[a-z0-9_-]{1,16}", proptest::collection::vec(any::<u8>(), 1..20), proptest::collection::vec(any::<u8>(), 1..300))
            .prop_map(|(organisation, serial, crl)| Payload::Identity(IdentityAction::Revoke { organisation, serial, crl })),
    ]
}

fn arb_tx(channel: impl Strategy<Value = ChannelId>) -> impl Strategy<Value = Transaction> {
    (channel, arb_bytes(100), any::<u64>(), any::<u64>(), arb_ident(), arb_payload(), arb_bytes(80)).prop_map(
        |(channel, sender, nonce, gas_limit, sig_alg, payload, signature)| {
            UnsignedTransaction { channel, sender, nonce, gas_limit, sig_alg, payload }.sign_with(signature)
        },
    )
}

fn arb_header() -> impl Strategy<Value = BlockHeader> {
    (arb_channel(), any::<u64>(), arb_hash(), any::<u64>(), arb_hash(), arb_hash(), arb_hash(), arb_bytes(100), arb_ident(), arb_bytes(100)).prop_map(
        |(channel, height, parent_hash, timestamp_ms, tx_root, state_root, receipts_root, proposer, crypto_suite, seal)| BlockHeader {
            channel,
            height,
            parent_hash,
            timestamp_ms,
            tx_root,
            state_root,
            receipts_root,
            proposer,
            crypto_suite,
            seal,
        },
    )
}

fn arb_receipt() -> impl Strategy<Value = Receipt> {
    let status = prop_oneof![Just(ReceiptStatus::Success), Just(ReceiptStatus::OutOfGas), "[ -~]{0,40}".prop_map(ReceiptStatus::Reverted)];
    let event = (arb_hash(), "[ -~]{0,20}", proptest::collection::vec(arb_bytes(64), 0..4), arb_bytes(40)).prop_map(|(contract, topic, indexed, data)| Event {
        contract,
        topic,
        indexed,
        data,
    });
    (arb_hash(), status, any::<u64>(), arb_bytes(40), proptest::collection::vec(event, 0..4)).prop_map(|(tx_hash, status, gas_used, output, events)| Receipt {
        tx_hash,
        status,
        gas_used,
        output,
        events,
    })
}

proptest! {
    #[test]
    fn transactions_round_trip(tx in arb_tx(arb_channel())) {
        let bytes = tx.encode();
        prop_assert_eq!(Transaction::decode(&bytes).expect("decodes"), tx.clone());
        let json = serde_json::to_string(&tx).expect("json");
        prop_assert_eq!(serde_json::from_str::<Transaction>(&json).expect("json back"), tx);
    }

    #[test]
    fn blocks_round_trip(header in arb_header(), n in 0usize..4, seed in any::<u64>()) {
        let channel = header.channel.clone();
        let txs: Vec<Transaction> = (0..n).map(|i| UnsignedTransaction {
            channel: channel.clone(), sender: vec![i as u8; 65], nonce: seed.wrapping_add(i as u64), gas_limit: 1000,
            sig_alg: "sm2".into(), payload: Payload::Data { key: format!("k{i}"), value: vec![1, 2, 3] },
        }.sign_with(vec![9; 70])).collect();
        let block = Block { header, transactions: txs };
        prop_assert_eq!(Block::decode(&block.encode()).expect("decodes"), block.clone());
        prop_assert_eq!(BlockHeader::decode(&block.header.encode()).expect("header"), block.header.clone());
        let json = serde_json::to_string(&block).expect("json");
        prop_assert_eq!(serde_json::from_str::<Block>(&json).expect("json back"), block);
    }

    #[test]
    fn receipts_round_trip(r in arb_receipt()) {
        prop_assert_eq!(Receipt::decode(&r.encode()).expect("decodes"), r.clone());
        prop_assert_eq!(serde_json::from_str::<Receipt>(&serde_json::to_string(&r).expect("json")).expect("back"), r);
    }

    /// Arbitrary bytes: an error or a value, never a panic or a huge allocation.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in arb_bytes(2048)) {
        let _ = Transaction::decode(&bytes);
        let _ = Block::decode(&bytes);
        let _ = BlockHeader::decode(&bytes);
        let _ = Receipt::decode(&bytes);
        let mut versioned = vec![1u8];
        versioned.extend(&bytes);
        let _ = Transaction::decode(&versioned);
        let _ = Block::decode(&versioned);
    }

    /// Any single-byte change to an encoded transaction either fails to decode or decodes
    /// to a different transaction: the encoding has no slack.
    #[test]
    fn encoding_is_canonical(tx in arb_tx(arb_channel()), pos in any::<prop::sample::Index>(), flip in 1u8..) {
        let mut bytes = tx.encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        if let Ok(other) = Transaction::decode(&bytes) {
            prop_assert_ne!(other, tx);
        }
    }

    #[test]
    fn merkle_proofs_verify_and_tampering_fails(n in 1usize..40, pick in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
        let items: Vec<Vec<u8>> = (0..n).map(|i| format!("tx {i}").into_bytes()).collect();
        let h: &dyn Hasher = &test_hash;
        let leaves: Vec<Hash32> = items.iter().map(|d| leaf_hash(h, d).expect("hash")).collect();
        let root = merkle::root(h, &items).expect("root");
        let i = pick.index(n);
        let proof = merkle::prove(h, &leaves, i).expect("hash").expect("in range");
        prop_assert!(merkle::verify(h, &root, &leaves[i], &proof).expect("hash"));
        // Another leaf, another index, a tampered path or root: all fail.
        let other = leaf_hash(h, b"not in the tree").expect("hash");
        prop_assert!(!merkle::verify(h, &root, &other, &proof).expect("hash"));
        if n > 1 {
            let mut moved = proof.clone();
            moved.index = ((i + 1) % n) as u64;
            prop_assert!(!merkle::verify(h, &root, &leaves[i], &moved).expect("hash") || leaves[i] == leaves[(i + 1) % n]);
            let mut bent = proof.clone();
            let j = flip.index(bent.path.len());
            bent.path[j].0[0] ^= 1;
            prop_assert!(!merkle::verify(h, &root, &leaves[i], &bent).expect("hash"));
        }
        let mut bad_root = root;
        bad_root.0[31] ^= 0x80;
        prop_assert!(!merkle::verify(h, &bad_root, &leaves[i], &proof).expect("hash"));
    }
}

#[test]
fn empty_and_single_trees() {
    let h: &dyn Hasher = &test_hash;
    assert_eq!(merkle::root::<Vec<u8>>(h, &[]).unwrap(), test_hash(b"").unwrap());
    let leaf = leaf_hash(h, b"only").unwrap();
    assert_eq!(merkle::root(h, &[b"only".to_vec()]).unwrap(), leaf);
    assert!(merkle::prove(h, &[leaf], 1).unwrap().is_none());
}

#[test]
fn invalid_fields_are_refused_on_decode() {
    let good = UnsignedTransaction {
        channel: ChannelId::new("grid").unwrap(),
        sender: vec![4; 65],
        nonce: 1,
        gas_limit: 10,
        sig_alg: "sm2".into(),
        payload: Payload::Data { key: "meter/7".into(), value: vec![] },
    }
    .sign_with(vec![1; 70]);
    assert!(Transaction::decode(&good.encode()).is_ok());
    let mut bad = good.clone();
    bad.body.sig_alg = "sm2 with spaces".into();
    assert!(matches!(Transaction::decode(&bad.encode()), Err(DecodeError::Invalid(_))));
    let mut bad = good.clone();
    bad.body.payload = Payload::Data { key: String::new(), value: vec![] };
    assert!(Transaction::decode(&bad.encode()).is_err());
    let mut trailing = good.encode();
    trailing.push(0);
    assert!(matches!(Transaction::decode(&trailing), Err(DecodeError::Malformed(_))));
    let mut v2 = good.encode();
    v2[0] = 2;
    assert_eq!(Transaction::decode(&v2), Err(DecodeError::Version(2)));
    assert!(ChannelId::new("Grid").is_err() && ChannelId::new("-x").is_err() && ChannelId::new(&"a".repeat(33)).is_err());
    // A length prefix claiming 4 GiB is an error, not an allocation.
    let mut huge = vec![1u8];
    huge.extend(4u32.to_le_bytes());
    huge.extend(b"grid");
    huge.extend(u32::MAX.to_le_bytes());
    assert!(Transaction::decode(&huge).is_err());
}

#[test]
fn signing_bytes_exclude_the_signature_and_cover_everything_else() {
    let tx = UnsignedTransaction {
        channel: ChannelId::new("grid").unwrap(),
        sender: vec![4; 65],
        nonce: 1,
        gas_limit: 10,
        sig_alg: "sm2".into(),
        payload: Payload::Data { key: "k".into(), value: vec![7] },
    };
    let a = tx.signing_bytes();
    assert!(a.starts_with(b"joule-tx/1\n"));
    let mut other = tx.clone();
    other.nonce = 2;
    assert_ne!(a, other.signing_bytes());
    let signed = tx.clone().sign_with(vec![1, 2, 3]);
    assert_eq!(signed.body.signing_bytes(), a);
}

mod state {
    use super::{arb_bytes, test_hash};
    use crate::smt::{EMPTY, GLOBAL_TREE, Node, NodeKey, Root, Smt, Update};
    use crate::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    type Store = BTreeMap<NodeKey, Node>;

    fn key(k: &[u8]) -> Hash32 {
        test_hash(k).expect("hash")
    }

    fn empty() -> Root {
        Root::empty(GLOBAL_TREE, 0)
    }

    /// The update of key `k` to `v`, keeping `v` itself with the leaf.
    fn up(k: &[u8], v: Option<&Vec<u8>>) -> Update {
        (key(k), v.map(|v| (key(v), v.clone())))
    }

    /// Apply updates one by one as version `version`, committing them into `store`.
    fn apply(store: &mut Store, version: u64, root: Root, ops: &[(Vec<u8>, Option<Vec<u8>>)]) -> Root {
        let h: &dyn Hasher = &test_hash;
        let (root, written) = {
            let mut smt = Smt::new(store, h, version);
            let mut root = root;
            for (k, v) in ops {
                root = smt.update_many(&root, &[up(k, v.as_ref())]).expect("update");
            }
            (root, smt.written)
        };
        store.extend(written);
        root
    }

    /// The root as `docs/formats.md` defines it, from the contents alone: empty subtree 32
    /// zero bytes, a leaf `H(0x00 ‖ key ‖ value)` at the first depth where its path is
    /// unique, internal nodes `H(0x01 ‖ left ‖ right)`. `entries` sorted by key.
    fn documented_root(h: &dyn Hasher, entries: &[(Hash32, Hash32)], depth: usize) -> Hash32 {
        match entries {
            [] => Hash32([0; 32]),
            [(k, v)] => {
                let mut leaf = vec![0u8];
                leaf.extend(k.0);
                leaf.extend(v.0);
                h.hash(&leaf).unwrap()
            }
            _ => {
                let split = entries.partition_point(|(k, _)| k.0[depth / 8] >> (7 - depth % 8) & 1 == 0);
                let mut node = vec![1u8];
                node.extend(documented_root(h, &entries[..split], depth + 1).0);
                node.extend(documented_root(h, &entries[split..], depth + 1).0);
                h.hash(&node).unwrap()
            }
        }
    }

    proptest! {
        /// The tree agrees with a map, proves every present key and many absent ones, and
        /// its root depends only on the final contents.
        #[test]
        fn matches_a_map_and_proves_presence_and_absence(ops in proptest::collection::vec(((0u8..24).prop_map(|b| vec![b]), proptest::option::weighted(0.7, arb_bytes(4))), 0..80)) {
            let h: &dyn Hasher = &test_hash;
            let mut store = Store::new();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut root = empty();
            for (i, chunk) in ops.chunks(7).enumerate() {
                root = apply(&mut store, i as u64 + 1, root, chunk);
                for (k, v) in chunk {
                    match v { Some(v) => { model.insert(k.clone(), v.clone()); } None => { model.remove(k); } }
                }
            }
            // The root is the documented one: storing nodes by position changed no hash.
            let mut entries: Vec<(Hash32, Hash32)> = model.iter().map(|(k, v)| (key(k), key(v))).collect();
            entries.sort();
            prop_assert_eq!(root.hash, documented_root(h, &entries, 0));
            // Same contents inserted fresh, in reverse order: same root.
            let fresh: Vec<_> = model.iter().rev().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
            let mut store2 = Store::new();
            prop_assert_eq!(apply(&mut store2, 1, empty(), &fresh).hash, root.hash);
            let smt = Smt::new(&store, h, u64::MAX);
            for (k, v) in &model {
                let proof = smt.prove(&root, &key(k)).expect("prove");
                prop_assert!(proof.verify(h, &root.hash, &key(k), Some(&key(v))).expect("hash"), "present key");
                prop_assert!(!proof.verify(h, &root.hash, &key(k), Some(&key(b"other value"))).expect("hash"), "wrong value");
                prop_assert!(!proof.verify(h, &root.hash, &key(k), None).expect("hash"), "claims absence of a present key");
                let leaf = smt.get(&root, &key(k)).expect("get").expect("present");
                prop_assert_eq!((leaf.value, &leaf.data), (key(v), v), "the value and the bytes kept with it");
            }
            for probe in 0u8..20 {
                let k = vec![0xee, probe];
                if model.contains_key(&k) { continue; }
                let proof = smt.prove(&root, &key(&k)).expect("prove");
                prop_assert!(proof.verify(h, &root.hash, &key(&k), None).expect("hash"), "absent key");
                prop_assert!(!proof.verify(h, &root.hash, &key(&k), Some(&key(b"x"))).expect("hash"));
                if !proof.siblings.is_empty() {
                    let mut bad = proof.clone();
                    bad.siblings[0].0[5] ^= 1;
                    prop_assert!(!bad.verify(h, &root.hash, &key(&k), None).expect("hash"), "tampered sibling");
                }
            }
            if model.is_empty() {
                prop_assert_eq!(root.hash, EMPTY);
            }
        }
    }

    /// The keys of the nodes reachable from `root`.
    fn reachable(store: &Store, root: &Root) -> BTreeSet<NodeKey> {
        let mut out = BTreeSet::new();
        if root.hash == EMPTY {
            return out;
        }
        let mut stack = vec![NodeKey { version: root.version, tree: root.tree, path: crate::smt::Path::ROOT }];
        while let Some(at) = stack.pop() {
            if let Some(Node::Internal { left, right, .. }) = store.get(&at) {
                for (v, side) in [(left, false), (right, true)] {
                    if let Some(v) = v {
                        stack.push(NodeKey { version: *v, tree: at.tree, path: at.path.child(side).unwrap() });
                    }
                }
            }
            out.insert(at);
        }
        out
    }

    /// A chunk as one block's `update_many`: last write per key wins, as one by one. Returns
    /// the new root (relocated to the version), the nodes written and the nodes replaced.
    fn apply_many(store: &Store, version: u64, root: Root, ops: &[(Vec<u8>, Option<Vec<u8>>)]) -> (Root, Store, BTreeSet<NodeKey>) {
        let h: &dyn Hasher = &test_hash;
        let mut last: BTreeMap<Hash32, Option<(Hash32, Vec<u8>)>> = BTreeMap::new();
        for (k, v) in ops {
            last.insert(key(k), v.as_ref().map(|v| (key(v), v.clone())));
        }
        let ups: Vec<Update> = last.into_iter().collect();
        let mut smt = Smt::new(store, h, version);
        let root = smt.update_many(&root, &ups).expect("update_many");
        let root = smt.relocate(&root).expect("relocate");
        (root, smt.written, smt.stale)
    }

    proptest! {
        /// Batched updates give the roots one-by-one updates give, and write no node the
        /// resulting tree does not contain.
        #[test]
        fn batched_updates_match_single_updates(ops in proptest::collection::vec(((0u8..32).prop_map(|b| vec![b]), proptest::option::weighted(0.7, arb_bytes(4))), 0..120)) {
            let (mut one, mut many) = (Store::new(), Store::new());
            let (mut r1, mut r2) = (empty(), empty());
            for (i, chunk) in ops.chunks(9).enumerate() {
                let version = i as u64 + 1;
                r1 = apply(&mut one, version, r1, chunk);
                let (r, written, _) = apply_many(&many, version, r2, chunk);
                many.extend(written.clone());
                r2 = r;
                prop_assert_eq!(r1.hash, r2.hash);
                prop_assert_eq!(r2.version, version, "every version's root is at that version");
                let live = reachable(&many, &r2);
                prop_assert!(written.keys().all(|k| live.contains(k)), "{} nodes written, not all in the new tree", written.len());
            }
        }

        /// Deleting the nodes an update replaced, once the states that still used them are
        /// no longer kept, leaves exactly the nodes of the kept states, and they still read
        /// and prove.
        #[test]
        fn pruning_replaced_nodes_keeps_exactly_the_last_states(ops in proptest::collection::vec(((0u8..24).prop_map(|b| vec![b]), proptest::option::weighted(0.8, arb_bytes(3))), 0..150), keep in 1u64..4) {
            let h: &dyn Hasher = &test_hash;
            let mut store = Store::new();
            let mut stale_since: Vec<(u64, NodeKey)> = vec![];
            let mut roots = vec![empty()];
            let mut models: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = vec![BTreeMap::new()];
            for (i, chunk) in ops.chunks(6).enumerate() {
                let version = i as u64 + 1;
                let (root, written, stale) = apply_many(&store, version, *roots.last().unwrap(), chunk);
                store.extend(written);
                stale_since.extend(stale.into_iter().map(|k| (version, k)));
                let mut model = models.last().unwrap().clone();
                for (k, v) in chunk {
                    match v { Some(v) => { model.insert(k.clone(), v.clone()); } None => { model.remove(k); } }
                }
                roots.push(root);
                models.push(model);
                // Keep the states of versions kept_from..=version.
                let kept_from = (version + 1).saturating_sub(keep);
                stale_since.retain(|(since, k)| {
                    if *since <= kept_from { store.remove(k); false } else { true }
                });
                let live: BTreeSet<NodeKey> = roots[kept_from as usize..].iter().flat_map(|r| reachable(&store, r)).collect();
                prop_assert_eq!(store.keys().copied().collect::<BTreeSet<_>>(), live, "the store holds exactly the kept states' nodes");
                let smt = Smt::new(&store, h, u64::MAX);
                for v in kept_from..=version {
                    let (root, model) = (&roots[v as usize], &models[v as usize]);
                    for (k, val) in model {
                        prop_assert!(smt.prove(root, &key(k)).expect("prove").verify(h, &root.hash, &key(k), Some(&key(val))).expect("hash"));
                    }
                }
            }
        }
    }

    proptest! {
        /// Retiring a tree gives back every leaf in key order and marks exactly its
        /// nodes replaced, so a state rebuilt whole leaves the old one to pruning.
        #[test]
        fn retiring_a_tree_gives_its_leaves_in_order_and_marks_all_its_nodes(ops in proptest::collection::vec(((0u8..40).prop_map(|b| vec![b]), proptest::option::weighted(0.8, arb_bytes(3))), 0..120)) {
            let h: &dyn Hasher = &test_hash;
            let mut store = Store::new();
            let mut root = empty();
            let mut model: BTreeMap<Hash32, Hash32> = BTreeMap::new();
            for (i, chunk) in ops.chunks(7).enumerate() {
                let (r, written, _) = apply_many(&store, i as u64 + 1, root, chunk);
                store.extend(written);
                root = r;
                for (k, v) in chunk {
                    match v { Some(v) => { model.insert(key(k), key(v)); } None => { model.remove(&key(k)); } }
                }
            }
            let mut smt = Smt::new(&store, h, 1000);
            let leaves = smt.retire(&root).expect("retire");
            let got: Vec<(Hash32, Hash32)> = leaves.iter().map(|l| (l.key, l.value)).collect();
            prop_assert_eq!(got, model.into_iter().collect::<Vec<_>>());
            prop_assert_eq!(smt.stale, reachable(&store, &root));
            prop_assert!(smt.written.is_empty());
        }
    }

    #[test]
    fn update_many_refuses_unsorted_keys() {
        let h: &dyn Hasher = &test_hash;
        let store = Store::new();
        let mut smt = Smt::new(&store, h, 1);
        let (a, b) = (key(b"a"), key(b"b"));
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        assert!(smt.update_many(&empty(), &[(hi, Some((lo, vec![]))), (lo, Some((lo, vec![])))]).is_err());
        assert!(smt.update_many(&empty(), &[(lo, Some((lo, vec![]))), (lo, None)]).is_err());
    }

    #[test]
    fn old_roots_stay_readable() {
        let h: &dyn Hasher = &test_hash;
        let mut store = Store::new();
        let r1 = apply(&mut store, 1, empty(), &[(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), Some(b"2".to_vec()))]);
        let r2 = apply(&mut store, 2, r1, &[(b"a".to_vec(), Some(b"3".to_vec())), (b"b".to_vec(), None)]);
        let smt = Smt::new(&store, h, 3);
        let get = |r: &Root, k: &[u8]| smt.get(r, &key(k)).unwrap().map(|l| l.value);
        assert_eq!(get(&r1, b"a"), Some(key(b"1")));
        assert_eq!(get(&r1, b"b"), Some(key(b"2")));
        assert_eq!(get(&r2, b"a"), Some(key(b"3")));
        assert_eq!(get(&r2, b"b"), None);
        // A root that does not match its stored node is refused, not read.
        let wrong = Root { hash: key(b"not the root"), ..r2 };
        assert!(matches!(smt.get(&wrong, &key(b"a")), Err(crate::smt::StateError::RootMismatch { .. })));
    }

    #[test]
    fn paths_round_trip_and_refuse_stray_bits() {
        let p = crate::smt::Path::ROOT.child(true).unwrap().child(false).unwrap().child(true).unwrap();
        assert_eq!((p.depth(), p.bytes()), (3, &[0b1010_0000u8][..]));
        assert_eq!(crate::smt::Path::from_bytes(3, p.bytes()), Some(p));
        assert_eq!(crate::smt::Path::from_bytes(3, &[0b1011_0000]), None, "a bit past the depth");
        assert_eq!(crate::smt::Path::from_bytes(9, &[0]), None, "too few bytes");
    }
}
