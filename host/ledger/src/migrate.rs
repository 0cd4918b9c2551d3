//! Moving a chain's state to another crypto suite, at the height a governed switch names
//! (`docs/formats.md`, "Suite switches").
//!
//! Block H of a switch executes its transactions on the parent's state rebuilt under the
//! new suite, so H's state root already commits to it. Every tree is rebuilt from its
//! leaves: keys are hashed again from their preimages (contract storage from the flat
//! `contract_kv` copy, data records and governance values from the store's
//! `storage_keys`), values again from their bytes (a data record's from its
//! transaction), and account leaves are re-keyed: the governance account to the new
//! suite's hash of its preimage, an account that bound a key of the new suite to that
//! key's id, the rest (contracts, accounts that did not bind) keep their 32-byte ids. An
//! account that did not bind keeps its state but no key of the new suite hashes to its
//! id, so nobody can send from it. The validators in the members value become the keys
//! they bound and the nodes the switch lists; votes of open proposals follow their
//! voters' keys. Every node of the old trees is marked replaced, for pruning.

use crate::execute::{ExecError, StateStore};
use crate::governance::{self, Binding, Governed, Members, SuiteActivation};
use crate::state::{AccountState, StoredValue};
use crate::store::StorageKey;
use joule_primitives::smt::{GLOBAL_TREE, Node, NodeKey, Root, Smt, StateError, TreeId, Update};
use joule_primitives::{ChainCrypto, Encode, Hash32};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The state of a switch's first block before its transactions.
pub struct Migrated {
    /// The global tree, at the block's height.
    pub root: Root,
    /// Nodes of the rebuilt trees (all at the block's height).
    pub nodes: BTreeMap<NodeKey, Node>,
    /// Every node of the old trees.
    pub stale: BTreeSet<NodeKey>,
    pub next_tree: TreeId,
    /// The preimages of the rehashed data-record and governance keys.
    pub storage_keys: Vec<StorageKey>,
    /// Accounts and storage values moved, for the log.
    pub accounts: usize,
    pub values: usize,
}

/// Rebuild the state `parent` (under `from`) under `to` as version `height`, the first
/// block of `activation`. `genesis`: the members of a state without a `members` value.
pub fn migrate<S: StateStore>(
    store: &S,
    from: &dyn ChainCrypto,
    to: &dyn ChainCrypto,
    parent: &Root,
    height: u64,
    genesis: &Members,
    activation: &SuiteActivation,
) -> Result<Migrated, ExecError> {
    let corrupt = |what: String| ExecError::State(StateError::Store(what));
    let mut old = Smt::new(store, from, height);
    let mut new = Smt::new(store, to, height);
    let mut next_tree = store.next_tree()?;
    let mut storage_keys = vec![];
    let accounts = old.retire(parent)?;
    let (old_gov, new_gov) = (from.hash(governance::NAMESPACE_PREIMAGE)?, to.hash(governance::NAMESPACE_PREIMAGE)?);

    // The governance values first: the bindings say where accounts move.
    let mut gov_values: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    // A switch that passed wrote the schedule, so the governance account has storage.
    let leaf = accounts.iter().find(|l| l.key == old_gov).ok_or_else(|| corrupt("the state has no governance account to switch suites by".into()))?;
    {
        let state = AccountState::from_leaf(leaf)?;
        if let Some(root) = state.storage_root() {
            for value in old.retire(&root)? {
                let key = store
                    .storage_key(&old_gov, &value.key)?
                    .ok_or_else(|| corrupt(format!("the key of governance value {} is not in the store", value.key)))?;
                match StoredValue::decode(&value.data) {
                    Some(StoredValue::Inline(v)) => gov_values.insert(key, v),
                    _ => return Err(corrupt(format!("governance value {:?} is corrupt", String::from_utf8_lossy(&key)))),
                };
            }
        }
    }
    let binding_prefix = format!("binding/{}/", activation.suite);
    let mut bound: HashMap<Hash32, Vec<u8>> = HashMap::new();
    for (key, value) in &gov_values {
        let Some(account) = key.strip_prefix(binding_prefix.as_bytes()) else { continue };
        let account = std::str::from_utf8(account).ok().and_then(Hash32::from_hex);
        let account = account.ok_or_else(|| corrupt(format!("governance key {:?} names no account", String::from_utf8_lossy(key))))?;
        let b: Binding = borsh::from_slice(value).map_err(|_| corrupt(format!("binding of {account} does not decode")))?;
        bound.insert(account, b.public_key);
    }
    let bound_key = |old_key: &[u8]| from.hash(old_key).ok().and_then(|id| bound.get(&id).cloned());
    rekey_governance(&mut gov_values, genesis, activation, &bound_key)?;

    let mut updates: Vec<Update> = Vec::with_capacity(accounts.len());
    let mut values = 0usize;
    for leaf in &accounts {
        let mut state = AccountState::from_leaf(leaf)?;
        let id = if leaf.key == old_gov {
            new_gov
        } else {
            match bound.get(&leaf.key) {
                Some(key) => to.hash(key)?,
                None => leaf.key,
            }
        };
        let entries: Vec<(Vec<u8>, Hash32, Vec<u8>)> = match state.storage_root() {
            None => vec![],
            Some(_) if leaf.key == old_gov => {
                gov_values.iter().map(|(k, v)| Ok((k.clone(), to.hash(v)?, StoredValue::Inline(v.clone()).encode()))).collect::<Result<_, ExecError>>()?
            }
            Some(root) if state.account.code_hash.is_some() => {
                let leaves = old.retire(&root)?;
                let rows = store.contract_scan(&leaf.key, b"", None, usize::MAX)?;
                if rows.len() != leaves.len() {
                    return Err(corrupt(format!("contract {}: {} values in its tree, {} in contract_kv", leaf.key, leaves.len(), rows.len())));
                }
                rows.into_iter().map(|(k, v)| Ok((k, to.hash(&v)?, StoredValue::Inline(v).encode()))).collect::<Result<_, ExecError>>()?
            }
            Some(root) => old
                .retire(&root)?
                .into_iter()
                .map(|value| {
                    let unknown = || corrupt(format!("the key of a value of account {} is not in the store", leaf.key));
                    let (key, bytes) = match StoredValue::decode(&value.data) {
                        Some(StoredValue::Inline(v)) => (store.storage_key(&leaf.key, &value.key)?.ok_or_else(unknown)?, v),
                        Some(StoredValue::InTx(at)) => {
                            let (key, v) = store.data_record(at)?;
                            (key.into_bytes(), v)
                        }
                        None => return Err(corrupt(format!("a value of account {} is corrupt", leaf.key))),
                    };
                    Ok((key, to.hash(&bytes)?, value.data))
                })
                .collect::<Result<_, ExecError>>()?,
        };
        if state.storage.is_some() {
            let mut writes: Vec<Update> = Vec::with_capacity(entries.len());
            for (key, value_hash, data) in entries {
                let key_hash = to.hash(&key)?;
                // Contracts' keys are in contract_kv; a data record kept in its
                // transaction has its key there.
                if state.account.code_hash.is_none() && matches!(StoredValue::decode(&data), Some(StoredValue::Inline(_))) {
                    storage_keys.push((id, key_hash, key));
                }
                writes.push((key_hash, Some((value_hash, data))));
            }
            values += writes.len();
            writes.sort_by_key(|w| w.0);
            let tree = next_tree;
            next_tree = next_tree.checked_add(1).ok_or(ExecError::TreesExhausted)?;
            let root = new.update_many(&Root::empty(tree, height), &writes)?;
            state.account.storage_root = root.hash;
            state.storage = Some((root.tree, root.version));
        }
        let encoded = state.account.encode();
        updates.push((id, Some((to.hash(&encoded)?, state.leaf_data(&encoded)))));
    }
    updates.sort_by_key(|u| u.0);
    if let Some(w) = updates.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(corrupt(format!("two accounts move to id {} under suite {}", w[0].0, activation.suite)));
    }
    let root = new.update_many(&Root::empty(GLOBAL_TREE, height), &updates)?;
    let root = new.relocate(&root)?;
    Ok(Migrated { root, nodes: new.written, stale: old.stale, next_tree, storage_keys, accounts: accounts.len(), values })
}

/// The governance values under the new suite: members re-keyed, votes following their
/// voters' keys.
fn rekey_governance(
    values: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    genesis: &Members,
    activation: &SuiteActivation,
    bound: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
) -> Result<(), ExecError> {
    let corrupt = |e: String| ExecError::State(StateError::Store(e));
    let read = |key: &str| -> Result<Option<Vec<u8>>, ExecError> { Ok(values.get(key.as_bytes()).cloned()) };
    let mut g = Governed::load(genesis, read, |key| corrupt(format!("the governance value {key:?} does not decode")))?;
    g.members = governance::rekeyed(&g.members, activation, bound).map_err(corrupt)?;
    for p in &mut g.proposals {
        for v in &mut p.votes {
            if let Some(k) = bound(&v.voter) {
                v.voter = k;
            }
        }
    }
    let encode = |v: Result<Vec<u8>, std::io::Error>| v.map_err(|e| corrupt(e.to_string()));
    values.insert(governance::MEMBERS_KEY.as_bytes().to_vec(), encode(borsh::to_vec(&g.members))?);
    values.insert(governance::PROPOSALS_KEY.as_bytes().to_vec(), encode(borsh::to_vec(&g.proposals))?);
    Ok(())
}
