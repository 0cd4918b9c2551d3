//! `build_contract`: a contract crate built for the chain from a test, then run.

use joule_contract_std::prelude::*;
use joule_contract_test::{TestChain, account, build_contract};
use std::path::Path;

#[test]
fn build_contract_builds_and_the_module_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples-contracts/energy-units");
    let wasm = build_contract(&dir);
    assert!(wasm.starts_with(b"\0asm"), "not a wasm module");
    // Built once per process.
    assert_eq!(build_contract(&dir), wasm);
    let mut chain = TestChain::new();
    let units = chain.deploy(&wasm, &[], account(1)).unwrap().address;
    let price: Decimal = "0.25".parse().unwrap();
    let kwh: Decimal = "4".parse().unwrap();
    let amount: U256 = chain.query_typed(units, "settle", &(kwh, price)).unwrap();
    assert_eq!(amount, "1".parse::<Decimal>().unwrap().atomics());
}
