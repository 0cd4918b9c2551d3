//! The harness on the example contracts as built for the chain (`cargo xtask contracts`):
//! token, library and market deployed from their wasm, a whole trade run through the node's
//! runtime, balances, gas and reverts checked.

use joule_contract_std::prelude::*;
use joule_contract_test::{Address, BASE_GAS, Deployed, GAS_PER_PAYLOAD_BYTE, Status, TestChain, account, load_wasm, schedule, try_load_wasm};

const OWNER: Address = account(1);
const PRODUCER: Address = account(2);
const BUYER: Address = account(3);
const METER: Address = account(4);
const OUTSIDER: Address = account(6);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A token amount in the smallest unit (18 decimals).
fn tokens(s: &str) -> U256 {
    d(s).atomics()
}

struct Market {
    chain: TestChain,
    token: Address,
    units: Address,
    market: Address,
}

impl Market {
    fn balance(&mut self, who: Address) -> U256 {
        self.chain.query_typed(self.token, "balance_of", &(who,)).unwrap()
    }

    fn trade(&mut self, id: u64) -> p2p::Trade {
        self.chain.query_typed::<Option<p2p::Trade>>(self.market, "get_trade", &(id,)).unwrap().unwrap()
    }

    /// The producer offers 10 kWh at 0.25 tokens/kWh from block 100 to 200.
    fn post_offer(&mut self) -> u64 {
        self.chain.call_typed(self.market, "post_offer", &(d("10"), d("0.25"), 100u64, 200u64), PRODUCER).unwrap()
    }
}

/// The market's types as its ABI encodes them (the harness needs no native copy of the
/// contract: these mirror `p2p_market::Trade`).
mod p2p {
    use joule_contract_std::prelude::*;

    #[derive(BorshDeserialize, Debug, Clone, PartialEq, Eq)]
    pub enum TradeStatus {
        Escrowed,
        Delivered,
        Disputed,
        Settled,
        Refunded,
    }

    #[derive(BorshDeserialize, Debug, Clone, PartialEq, Eq)]
    pub struct Attestation {
        pub meter: Address,
        pub delivered_kwh: Decimal,
        pub interval_start_ms: u64,
        pub interval_end_ms: u64,
        pub height: u64,
    }

    #[derive(BorshDeserialize, Debug, Clone, PartialEq, Eq)]
    pub struct Trade {
        pub offer_id: u64,
        pub producer: Address,
        pub buyer: Address,
        pub kwh: Decimal,
        pub price_per_kwh: Decimal,
        pub amount: U256,
        pub height: u64,
        pub status: TradeStatus,
        pub attestation: Option<Attestation>,
    }
}

/// Token, library and market deployed at height 100; producer, meter roles granted; the buyer
/// holds 1000 tokens and approved the market.
fn setup(dispute_window: u64, fee_bps: u16) -> Market {
    let mut chain = TestChain::new();
    chain.set_height(100);
    let token = chain.deploy_with(&load_wasm("energy-token"), &("Joule Energy".to_string(), "JEN".to_string()), OWNER).unwrap().address;
    let units = chain.deploy(&load_wasm("energy-units"), &[], OWNER).unwrap().address;
    let market = chain.deploy_with(&load_wasm("p2p-market"), &(token, units, dispute_window, fee_bps), OWNER).unwrap().address;
    chain.set_label(token, "energy-token");
    chain.set_label(units, "energy-units");
    chain.set_label(market, "p2p-market");
    for (role, who) in [("producer", PRODUCER), ("meter", METER)] {
        chain.call_typed::<()>(market, "grant_role", &(role.to_string(), who), OWNER).unwrap();
    }
    let supply: U256 = chain.call_typed(token, "mint", &(BUYER, tokens("1000")), OWNER).unwrap();
    assert_eq!(supply, tokens("1000"));
    chain.call_typed::<()>(token, "approve", &(market, U256::MAX), BUYER).unwrap();
    Market { chain, token, units, market }
}

#[test]
fn deploy_charges_the_node_formula_and_emits_deployed() {
    let mut chain = TestChain::new();
    let wasm = load_wasm("energy-token");
    let args = borsh::to_vec(&("Joule Energy".to_string(), "JEN".to_string())).unwrap();
    let expected_address = chain.next_address(OWNER);
    let Deployed { address, gas_used, vm_gas, events, .. } = chain.deploy(&wasm, &args, OWNER).unwrap();
    assert_eq!(address, expected_address);
    assert!(chain.is_contract(address));
    // Payload::Deploy borsh: tag (1) + code (4 + len) + init_args (4 + len) + upgradable (1).
    let payload = 1 + 4 + wasm.len() as u64 + 4 + args.len() as u64 + 1;
    let code_gas = schedule().deploy_per_code_byte * wasm.len() as u64;
    assert!(vm_gas > 0);
    assert_eq!(gas_used, BASE_GAS + GAS_PER_PAYLOAD_BYTE * payload + code_gas + vm_gas);
    let deployed = events.last().unwrap();
    assert_eq!(deployed.name, "deployed");
    assert_eq!(deployed.data, OWNER.0.to_vec());
    // The same deployer's next deployment goes elsewhere (its nonce moved on).
    assert_eq!(chain.nonce(OWNER), 1);
    assert_ne!(chain.next_address(OWNER), address);
}

#[test]
fn offer_trade_attest_settle_moves_balances() {
    let mut m = setup(10, 100);
    let offer_id = m.post_offer();
    assert_eq!(offer_id, 1);

    let bought = m.chain.call(m.market, "buy", &borsh::to_vec(&(offer_id, d("4"))).unwrap(), BUYER);
    assert_eq!(bought.status, Status::Success, "{bought:?}");
    let trade_id: u64 = bought.decode();
    // 4 kWh × 0.25 = 1 token in escrow; the token's transfer_from ran inside the same call.
    let traded = bought.event("Traded").expect("a Traded event");
    assert_eq!(traded.contract, m.market);
    assert_eq!(traded.topic::<u64>(0), Some(trade_id));
    assert_eq!(traded.topic::<Address>(2), Some(BUYER));
    assert_eq!(traded.decode_data::<(Decimal, U256)>(), Some((d("4"), tokens("1"))));
    assert!(bought.events.iter().any(|e| e.contract == m.token && e.name == "Transfer"));
    assert_eq!(m.balance(BUYER), tokens("999"));
    assert_eq!(m.balance(m.market), tokens("1"));
    assert_eq!(m.trade(trade_id).status, p2p::TradeStatus::Escrowed);

    // The same hot path through `trade`: a partial fill of what is left.
    let t2: u64 = m.chain.call_typed(m.market, "trade", &(offer_id, d("2")), BUYER).unwrap();
    assert_eq!(t2, 2);
    assert_eq!(m.balance(m.market), tokens("1.5"));

    // The meter attests 4 kWh for trade 1; the window is 10 blocks.
    let status: p2p::TradeStatus = m.chain.call_typed(m.market, "attest_delivery", &(trade_id, d("4"), 1_000u64, 2_000u64), METER).unwrap();
    assert_eq!(status, p2p::TradeStatus::Delivered);
    let early = m.chain.call_typed::<()>(m.market, "settle", &(trade_id,), OUTSIDER).unwrap_err();
    assert_eq!(early.reason(), Some("trade 1 can be disputed until block 110"));
    m.chain.advance_blocks(11);
    m.chain.call_typed::<()>(m.market, "settle", &(trade_id,), OUTSIDER).unwrap();

    // 1 token: 1 % fee (0.01) kept by the market, 0.99 to the producer.
    assert_eq!(m.balance(PRODUCER), tokens("0.99"));
    assert_eq!(m.balance(BUYER), tokens("998.5"));
    assert_eq!(m.balance(m.market), tokens("0.51"));
    let (escrow, fees): (U256, U256) = m.chain.query_typed(m.market, "balances", &()).unwrap();
    assert_eq!((escrow, fees), (tokens("0.5"), tokens("0.01")));
    let trade = m.trade(trade_id);
    assert_eq!(trade.status, p2p::TradeStatus::Settled);
    assert_eq!(trade.attestation.unwrap().height, 100);
    assert!(m.chain.events().iter().any(|e| e.name == "Settled" && e.topic::<u64>(0) == Some(trade_id)));
    // The library holds no state.
    assert!(m.chain.storage(m.units).is_empty());
}

#[test]
fn gas_of_the_same_calls_is_identical_on_two_chains() {
    let run = || {
        let mut m = setup(0, 250);
        let offer_id = m.post_offer();
        let receipt = m.chain.call(m.market, "trade", &borsh::to_vec(&(offer_id, d("3"))).unwrap(), BUYER);
        assert!(receipt.is_success(), "{receipt:?}");
        let settled = m.chain.call(m.market, "attest_delivery", &borsh::to_vec(&(1u64, d("3"), 0u64, 1u64)).unwrap(), METER);
        assert!(settled.is_success(), "{settled:?}");
        (receipt, settled, m.chain.gas_report().clone())
    };
    let (a_trade, a_settle, a_report) = run();
    let (b_trade, b_settle, b_report) = run();
    assert_eq!((a_trade.gas_used, a_trade.vm_gas), (b_trade.gas_used, b_trade.vm_gas));
    assert_eq!((a_settle.gas_used, a_settle.vm_gas), (b_settle.gas_used, b_settle.vm_gas));
    assert_eq!(a_report, b_report);
    // The receipt's gas is the node's: intrinsic (1000 + 16 per payload byte) plus the VM's.
    // Payload::Call borsh: tag (1) + contract (32) + method (4 + len) + args (4 + len).
    let args = borsh::to_vec(&(1u64, d("3"))).unwrap();
    let payload = 1 + 32 + 4 + "trade".len() as u64 + 4 + args.len() as u64;
    assert_eq!(a_trade.gas_used, BASE_GAS + GAS_PER_PAYLOAD_BYTE * payload + a_trade.vm_gas);
}

#[test]
fn a_reverted_call_leaves_storage_unchanged() {
    let mut m = setup(10, 0);
    let offer_id = m.post_offer();
    let before = (m.chain.storage(m.market), m.chain.storage(m.token), m.chain.events());

    // Only producers post.
    let r = m.chain.call(m.market, "post_offer", &borsh::to_vec(&(d("1"), d("1"), 100u64, 200u64)).unwrap(), OUTSIDER);
    assert_eq!(r.status, Status::Reverted("caller lacks role producer".into()));
    assert!(r.output.is_empty() && r.events.is_empty());
    // A revert in a nested call: the token's transfer_from refuses (the outsider approved
    // nothing) and the market fails with it.
    let r = m.chain.call(m.market, "buy", &borsh::to_vec(&(offer_id, d("4"))).unwrap(), OUTSIDER);
    assert!(r.reason().unwrap().starts_with("payment:"), "{r:?}");
    assert!(r.vm_gas > 0 && r.gas_used > r.vm_gas);
    // A method that does not exist.
    let r = m.chain.call(m.market, "no_such_method", &[], BUYER);
    assert_eq!(r.reason(), Some("unknown method no_such_method"));

    assert_eq!((m.chain.storage(m.market), m.chain.storage(m.token), m.chain.events()), before);
    // Failed transactions still use their senders' nonces, as on the node.
    assert_eq!(m.chain.nonce(OUTSIDER), 2);
}

#[test]
fn out_of_gas_charges_the_whole_limit_and_changes_nothing() {
    let mut m = setup(10, 0);
    let before = m.chain.storage(m.market);
    m.chain.set_gas_limit(20_000);
    let r = m.chain.call(m.market, "post_offer", &borsh::to_vec(&(d("10"), d("0.25"), 100u64, 200u64)).unwrap(), PRODUCER);
    assert_eq!(r.status, Status::OutOfGas);
    assert_eq!(r.gas_used, 20_000);
    assert_eq!(m.chain.storage(m.market), before);
    // Below the intrinsic gas: not even run.
    m.chain.set_gas_limit(100);
    let r = m.chain.call(m.market, "pause", &[], OWNER);
    assert_eq!((r.status, r.gas_used, r.vm_gas), (Status::OutOfGas, 100, 0));
}

#[test]
fn queries_do_not_write_and_calls_to_nobody_revert() {
    let mut m = setup(10, 0);
    let q = m.chain.query(m.token, "mint", &borsh::to_vec(&(BUYER, tokens("1"))).unwrap());
    assert_eq!(q.status, Status::Reverted("mint changes state: send it as a transaction".into()));
    let nobody = account(0x99);
    let r = m.chain.call(nobody, "anything", &[], BUYER);
    assert!(r.reason().unwrap().starts_with("no contract at "), "{r:?}");
    assert_eq!(r.vm_gas, 0);
    assert!(!m.chain.is_contract(nobody));
}

#[test]
fn snapshot_and_revert_to() {
    let mut m = setup(0, 0);
    let snap = m.chain.snapshot();
    let events = m.chain.events();
    let offer_id = m.post_offer();
    m.chain.call_typed::<u64>(m.market, "buy", &(offer_id, d("4")), BUYER).unwrap();
    m.chain.advance_blocks(5);
    let other = m.chain.deploy(&load_wasm("energy-units"), &[], OUTSIDER).unwrap().address;
    assert_eq!(m.balance(BUYER), tokens("999"));

    m.chain.revert_to(&snap);
    assert_eq!(m.balance(BUYER), tokens("1000"));
    assert_eq!(m.chain.height(), 100);
    assert!(!m.chain.is_contract(other));
    assert_eq!(m.chain.next_address(OUTSIDER), other);
    assert!(m.chain.query_typed::<Option<p2p::Trade>>(m.market, "get_trade", &(1u64,)).unwrap().is_none());
    // The same again from the snapshot gives the same trade id: the snapshot is reusable.
    let offer_id = m.post_offer();
    assert_eq!(offer_id, 1);
    m.chain.revert_to(&snap);
    assert_eq!(m.chain.events(), events);
}

#[test]
fn the_gas_report_lists_the_calls() {
    let mut m = setup(10, 0);
    let offer_id = m.post_offer();
    m.chain.call_typed::<u64>(m.market, "buy", &(offer_id, d("1")), BUYER).unwrap();
    let _ = m.chain.call(m.market, "buy", &borsh::to_vec(&(offer_id, d("100"))).unwrap(), BUYER);
    let report = m.chain.gas_report();
    let methods: Vec<(&str, &str)> = report.entries.iter().map(|e| (e.label.as_str(), e.method.as_str())).collect();
    // Labels are set after the deployments: those rows carry the short address.
    assert_eq!(
        methods[3..],
        [
            ("p2p-market", "grant_role"),
            ("p2p-market", "grant_role"),
            ("energy-token", "mint"),
            ("energy-token", "approve"),
            ("p2p-market", "post_offer"),
            ("p2p-market", "buy"),
            ("p2p-market", "buy"),
        ]
    );
    assert_eq!(report.of("(deploy)").count(), 3);
    let buys: Vec<_> = report.of("buy").collect();
    assert_eq!(buys[0].status, Status::Success);
    assert!(matches!(buys[1].status, Status::Reverted(_)));
    assert!(report.entries.iter().all(|e| e.gas_used >= BASE_GAS && e.gas_used >= e.vm_gas));
    let printed = report.to_string();
    assert!(printed.contains("post_offer") && printed.contains("energy-token") && printed.contains("reverted: offer 1 has"));
    println!("{printed}");
}

#[test]
fn a_missing_contract_says_how_to_build_it() {
    let err = try_load_wasm("no-such-contract").unwrap_err();
    assert!(err.contains("cargo xtask contracts"), "{err}");
}
