//! Upgrades in the harness, as a node runs them: only the upgrade authority of an
//! upgradable contract may replace its code; storage stays; a failed migration changes
//! nothing; the `upgraded` event names the old and new code.

use joule_contract_std::prelude::*;
use joule_contract_test::{Status, TestChain, account, load_wasm};

const OWNER: Address = account(1);
const OTHER: Address = account(2);

fn token(chain: &mut TestChain, upgradable: bool) -> Address {
    let args = borsh::to_vec(&("Joule Energy".to_string(), "JEN".to_string())).unwrap();
    let wasm = load_wasm("energy-token");
    let d = if upgradable { chain.deploy_upgradable(&wasm, &args, OWNER) } else { chain.deploy(&wasm, &args, OWNER) };
    let address = d.unwrap().address;
    let supply: U256 = chain.call_typed(address, "mint", &(OWNER, U256::from(500u64)), OWNER).unwrap();
    assert_eq!(supply, U256::from(500u64));
    address
}

#[test]
fn the_authority_replaces_the_code_and_storage_stays() {
    let mut chain = TestChain::new();
    let t = token(&mut chain, true);
    let (old, previous) = chain.code_hashes(t).unwrap();
    assert_eq!(previous, None);
    let storage = chain.storage(t);
    // New code: the market's (any code the policy accepts will do for the mechanics).
    let r = chain.upgrade(t, &load_wasm("p2p-market"), None, OWNER);
    assert_eq!(r.status, Status::Success, "{r:?}");
    let (new, previous) = chain.code_hashes(t).unwrap();
    assert_ne!(new, old);
    assert_eq!(previous, Some(old));
    assert_eq!(chain.storage(t), storage, "storage is kept");
    let ev = r.event("upgraded").expect("upgraded event");
    assert_eq!(ev.topics, vec![old.to_vec(), new.to_vec()]);
    // Back to the token's code: its storage is still its own.
    assert_eq!(chain.upgrade(t, &load_wasm("energy-token"), None, OWNER).status, Status::Success);
    let supply: U256 = chain.query_typed(t, "total_supply", &()).unwrap();
    assert_eq!(supply, U256::from(500u64));
}

#[test]
fn strangers_immutable_contracts_and_failed_migrations_change_nothing() {
    let mut chain = TestChain::new();
    let t = token(&mut chain, true);
    let before = chain.code_hashes(t).unwrap();
    let market = load_wasm("p2p-market");
    let r = chain.upgrade(t, &market, None, OTHER);
    assert!(r.reason().unwrap().contains("is not the upgrade authority"), "{r:?}");
    // A migration that fails (the new code has no `migrate`): the old code stays.
    let r = chain.upgrade(t, &load_wasm("energy-units"), Some(&[]), OWNER);
    assert!(matches!(r.status, Status::Reverted(_)), "{r:?}");
    assert_eq!(chain.code_hashes(t).unwrap(), before);
    assert!(r.events.is_empty());
    // Code the deployment policy refuses.
    let r = chain.upgrade(t, &load_wasm("wasi-import"), None, OWNER);
    assert!(r.reason().unwrap().starts_with("upgrade refused"), "{r:?}");
    assert_eq!(chain.code_hashes(t).unwrap(), before);
    // Deployed without `upgradable`: never.
    let fixed = token(&mut chain, false);
    let r = chain.upgrade(fixed, &market, None, OWNER);
    assert!(r.reason().unwrap().contains("is not upgradable"), "{r:?}");
}
