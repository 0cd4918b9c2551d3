//! The standard library's heap (a bump allocator over the memory the contract starts
//! with) as a contract sees it through the node's runtime: room beyond the initial memory
//! when asked, freed memory reused, the channel's memory limit enforced.

use joule_contract_test::{Status, TestChain, account, load_wasm};

fn bomb() -> (TestChain, joule_contract_test::Address) {
    let mut chain = TestChain::new();
    let bomb = chain.deploy(&load_wasm("memory-bomb"), &[], account(1)).unwrap().address;
    // Filling a MiB costs a MiB of gas (memory.fill and copy charge per byte).
    chain.set_gas_limit(200_000_000);
    (chain, bomb)
}

#[test]
fn a_call_gets_more_memory_than_it_started_with() {
    let (mut chain, bomb) = bomb();
    // 3 MiB held at once: more than the 2 MiB a contract is linked with.
    let held: u64 = chain.query_typed(bomb, "allocate", &(3u32,)).unwrap();
    assert_eq!(held, 3 << 20);
}

#[test]
fn freed_memory_is_reused_so_a_call_may_allocate_more_than_the_limit_in_turns() {
    let (mut chain, bomb) = bomb();
    // 48 MiB in all, 1 MiB at a time, each freed before the next: over the 32 MiB limit
    // only if freed blocks were never reused.
    let total: u64 = chain.query_typed(bomb, "churn", &(48u32, 1u32)).unwrap();
    assert_eq!(total, 48 << 20);
}

#[test]
fn holding_more_than_the_limit_reverts_with_the_memory_limit() {
    let (mut chain, bomb) = bomb();
    let r = chain.query(bomb, "allocate", &borsh::to_vec(&(40u32,)).unwrap());
    match r.status {
        Status::Reverted(reason) => assert_eq!(reason, "memory limit exceeded"),
        other => panic!("40 MiB held at once: {other:?}"),
    }
}
