//! The market on the mock chain, with the real token and library deployed beside it.

use super::*;
use energy_token::EnergyToken;
use energy_units::EnergyUnits;
use joule_contract_std::testing::{self, DEFAULT_CONTRACT as MARKET, account};

const TOKEN: Address = Address([0x70; 32]);
const UNITS: Address = Address([0x71; 32]);
const OWNER: u8 = 1;
const PRODUCER: u8 = 2;
const BUYER: u8 = 3;
const METER: u8 = 4;
const ARBITER: u8 = 5;
const OUTSIDER: u8 = 6;
/// 10^18: one token in its smallest unit.
const TOKEN_UNIT: u128 = 1_000_000_000_000_000_000;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn tokens(s: &str) -> U256 {
    d(s).atomics()
}

/// Token, library and market deployed; the buyer holds 1000 tokens and approved the market.
fn setup(dispute_window: u64, fee_bps: u16) {
    testing::reset();
    testing::set_height(100);
    testing::set_caller(account(OWNER));
    testing::deploy::<EnergyToken, _>(TOKEN, &("Joule Energy".to_string(), "JEN".to_string())).unwrap();
    testing::register_contract::<EnergyUnits>(UNITS);
    testing::init::<P2pMarket, _>(&(TOKEN, UNITS, dispute_window, fee_bps)).unwrap();
    for (role, who) in [("producer", PRODUCER), ("meter", METER), ("arbiter", ARBITER)] {
        call::<()>("grant_role", &(role.to_string(), account(who))).unwrap();
    }
    testing::set_contract(TOKEN);
    testing::call::<EnergyToken, _, U256>("mint", &(account(BUYER), U256::new(1000 * TOKEN_UNIT))).unwrap();
    testing::set_caller(account(BUYER));
    testing::call::<EnergyToken, _, ()>("approve", &(MARKET, U256::MAX)).unwrap();
    testing::set_contract(MARKET);
}

fn call<R: BorshDeserialize>(method: &str, args: &impl BorshSerialize) -> Result<R, String> {
    testing::call::<P2pMarket, _, R>(method, args)
}

fn query<R: BorshDeserialize>(method: &str, args: &impl BorshSerialize) -> R {
    testing::query::<P2pMarket, _, R>(method, args).unwrap()
}

fn as_caller(who: u8) {
    testing::set_caller(account(who));
}

fn balance(who: Address) -> U256 {
    testing::set_contract(TOKEN);
    let b = testing::query::<EnergyToken, _, U256>("balance_of", &(who,)).unwrap();
    testing::set_contract(MARKET);
    b
}

/// The producer offers 10 kWh at 0.25 tokens/kWh from block 100 to 200.
fn post_offer() -> u64 {
    as_caller(PRODUCER);
    call("post_offer", &(d("10"), d("0.25"), 100u64, 200u64)).unwrap()
}

fn trade(id: u64) -> Trade {
    query::<Option<Trade>>("get_trade", &(id,)).unwrap()
}

#[test]
fn post_and_buy_partial_then_full() {
    setup(10, 0);
    let offer_id = post_offer();
    assert_eq!(offer_id, 1);
    as_caller(BUYER);
    let t1: u64 = call("buy", &(offer_id, d("4"))).unwrap();
    // 4 kWh × 0.25 = 1 token, in escrow.
    assert_eq!(trade(t1).amount, tokens("1"));
    assert_eq!(trade(t1).status, TradeStatus::Escrowed);
    assert_eq!(balance(account(BUYER)), tokens("999"));
    assert_eq!(balance(MARKET), tokens("1"));
    assert_eq!(query::<(U256, U256)>("balances", &()), (tokens("1"), U256::ZERO));
    let offer = query::<Option<Offer>>("offer", &(offer_id,)).unwrap();
    assert_eq!(offer.remaining_kwh, d("6"));
    // The rest through `trade` (the same hot path).
    let t2: u64 = call("trade", &(offer_id, d("6"))).unwrap();
    assert_eq!(t2, 2);
    assert_eq!(trade(t2).amount, tokens("1.5"));
    assert_eq!(
        call::<u64>("buy", &(offer_id, d("0.1"))).unwrap_err(),
        "offer 1 has 0 kWh left, not 0.1"
    );
    let events = testing::events();
    assert!(events.iter().any(|e| e.name == "OfferPosted"));
    let traded = events.iter().rfind(|e| e.name == "Traded").unwrap();
    assert!(traded.is(&Traded {
        trade_id: 2,
        offer_id: 1,
        buyer: account(BUYER),
        kwh: d("6"),
        amount: tokens("1.5")
    }));
    let trades: Vec<(u64, Trade)> = query("trades", &(None::<u64>, 10u32));
    assert_eq!(trades.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn buying_is_checked() {
    setup(10, 0);
    // Only producers post.
    as_caller(OUTSIDER);
    assert_eq!(
        call::<u64>("post_offer", &(d("1"), d("1"), 100u64, 200u64)).unwrap_err(),
        "caller lacks role producer"
    );
    let offer_id = post_offer();
    assert_eq!(
        call::<u64>("buy", &(offer_id, d("1"))).unwrap_err(),
        "a producer cannot buy its own offer"
    );
    // A buyer without tokens (no allowance): the payment fails, nothing is recorded.
    as_caller(OUTSIDER);
    let err = call::<u64>("buy", &(offer_id, d("1"))).unwrap_err();
    assert!(err.starts_with("payment: call failed: allowance exceeded"), "{err}");
    assert_eq!(query::<Option<Trade>>("get_trade", &(1u64,)), None);
    as_caller(BUYER);
    assert_eq!(call::<u64>("buy", &(9u64, d("1"))).unwrap_err(), "no offer 9");
    assert_eq!(
        call::<u64>("buy", &(offer_id, d("0"))).unwrap_err(),
        "buy at least some kWh"
    );
    testing::set_height(201);
    assert_eq!(
        call::<u64>("buy", &(offer_id, d("1"))).unwrap_err(),
        "offer 1 is valid from block 100 to 200, not at 201"
    );
    testing::set_height(150);
    as_caller(PRODUCER);
    call::<()>("cancel_offer", &(offer_id,)).unwrap();
    as_caller(BUYER);
    assert_eq!(
        call::<u64>("buy", &(offer_id, d("1"))).unwrap_err(),
        "offer 1 is cancelled"
    );
}

#[test]
fn attestation_by_a_non_meter_is_refused() {
    setup(10, 0);
    let offer_id = post_offer();
    as_caller(BUYER);
    let t: u64 = call("buy", &(offer_id, d("4"))).unwrap();
    for who in [OUTSIDER, PRODUCER, BUYER, OWNER] {
        as_caller(who);
        assert_eq!(
            call::<TradeStatus>("attest_delivery", &(t, d("4"), 0u64, 3_600_000u64)).unwrap_err(),
            "caller lacks role meter"
        );
    }
    assert_eq!(trade(t).status, TradeStatus::Escrowed);
}

#[test]
fn settlement_after_attestation() {
    setup(10, 100); // 1% fee
    let offer_id = post_offer();
    as_caller(BUYER);
    let full: u64 = call("buy", &(offer_id, d("4"))).unwrap();
    let half: u64 = call("buy", &(offer_id, d("4"))).unwrap();
    as_caller(METER);
    let status: TradeStatus = call("attest_delivery", &(full, d("4"), 0u64, 3_600_000u64)).unwrap();
    assert_eq!(status, TradeStatus::Delivered);
    // Half delivered: the producer is paid half, the buyer refunded half.
    call::<TradeStatus>("attest_delivery", &(half, d("2"), 0u64, 3_600_000u64)).unwrap();
    assert!(
        call::<TradeStatus>("attest_delivery", &(full, d("4"), 0u64, 1u64))
            .unwrap_err()
            .contains("not awaiting delivery")
    );
    as_caller(OUTSIDER);
    assert_eq!(
        call::<()>("settle", &(full,)).unwrap_err(),
        "trade 1 can be disputed until block 110"
    );
    testing::set_height(111);
    call::<()>("settle", &(full,)).unwrap();
    // 1 token less the 1% fee.
    assert_eq!(balance(account(PRODUCER)), tokens("0.99"));
    assert_eq!(trade(full).status, TradeStatus::Settled);
    let settled = testing::events().into_iter().find(|e| e.name == "Settled").unwrap();
    assert!(settled.is(&Settled {
        trade_id: full,
        producer: account(PRODUCER),
        to_producer: tokens("0.99"),
        refunded: U256::ZERO,
        fee: tokens("0.01")
    }));
    assert!(call::<()>("settle", &(full,)).unwrap_err().contains("not delivered"));
    call::<()>("settle", &(half,)).unwrap();
    assert_eq!(balance(account(PRODUCER)), tokens("1.485"));
    assert_eq!(balance(account(BUYER)), tokens("998.5"));
    assert_eq!(query::<(U256, U256)>("balances", &()), (U256::ZERO, tokens("0.015")));
    assert_eq!(balance(MARKET), tokens("0.015"));
    // The owner withdraws the fees.
    as_caller(OWNER);
    assert_eq!(
        call::<U256>("withdraw_fees", &(account(OWNER),)).unwrap(),
        tokens("0.015")
    );
    assert_eq!(balance(account(OWNER)), tokens("0.015"));
    assert_eq!(balance(MARKET), U256::ZERO);
}

#[test]
fn a_zero_window_settles_at_attestation() {
    setup(0, 0);
    let offer_id = post_offer();
    as_caller(BUYER);
    let t: u64 = call("buy", &(offer_id, d("10"))).unwrap();
    as_caller(METER);
    let status: TradeStatus = call("attest_delivery", &(t, d("12"), 0u64, 1u64)).unwrap();
    // More than bought is capped at what was bought.
    assert_eq!(status, TradeStatus::Settled);
    assert_eq!(balance(account(PRODUCER)), tokens("2.5"));
}

#[test]
fn dispute_refund() {
    setup(10, 100);
    let offer_id = post_offer();
    as_caller(BUYER);
    let t: u64 = call("buy", &(offer_id, d("8"))).unwrap();
    as_caller(OUTSIDER);
    assert_eq!(
        call::<()>("open_dispute", &(t, "never came".to_string())).unwrap_err(),
        "only the buyer disputes a trade"
    );
    as_caller(BUYER);
    call::<()>("open_dispute", &(t, "never came".to_string())).unwrap();
    assert_eq!(trade(t).status, TradeStatus::Disputed);
    assert!(testing::events().iter().any(|e| e.is(&DisputeOpened {
        trade_id: t,
        buyer: account(BUYER),
        reason: "never came".into()
    })));
    // A disputed trade is not attested nor settled.
    as_caller(METER);
    assert!(call::<TradeStatus>("attest_delivery", &(t, d("8"), 0u64, 1u64)).is_err());
    for who in [OUTSIDER, BUYER, PRODUCER, METER] {
        as_caller(who);
        assert_eq!(
            call::<()>("resolve_dispute", &(t, true)).unwrap_err(),
            "caller is neither the owner nor an arbiter"
        );
    }
    as_caller(ARBITER);
    call::<()>("resolve_dispute", &(t, true)).unwrap();
    assert_eq!(trade(t).status, TradeStatus::Refunded);
    assert_eq!(balance(account(BUYER)), tokens("1000"));
    assert_eq!(balance(MARKET), U256::ZERO);
    assert!(testing::events().iter().any(|e| e.name == "DisputeResolved"));
    assert!(
        call::<()>("resolve_dispute", &(t, false))
            .unwrap_err()
            .contains("not disputed")
    );
}

#[test]
fn dispute_window_and_release_by_the_owner() {
    setup(10, 0);
    let offer_id = post_offer();
    as_caller(BUYER);
    let late: u64 = call("buy", &(offer_id, d("4"))).unwrap();
    let released: u64 = call("buy", &(offer_id, d("4"))).unwrap();
    as_caller(METER);
    call::<TradeStatus>("attest_delivery", &(late, d("4"), 0u64, 1u64)).unwrap();
    testing::set_height(111);
    as_caller(BUYER);
    assert_eq!(
        call::<()>("open_dispute", &(late, String::new())).unwrap_err(),
        "the dispute window of trade 1 is over"
    );
    // Disputed before any attestation, then released by the owner: all to the producer.
    call::<()>("open_dispute", &(released, "late".to_string())).unwrap();
    assert_eq!(
        query::<Option<String>>("dispute_reason", &(released,)),
        Some("late".into())
    );
    as_caller(OWNER);
    call::<()>("resolve_dispute", &(released, false)).unwrap();
    assert_eq!(trade(released).status, TradeStatus::Settled);
    assert_eq!(balance(account(PRODUCER)), tokens("1"));
}

#[test]
fn pause_stops_trading() {
    setup(10, 0);
    let offer_id = post_offer();
    as_caller(OUTSIDER);
    assert_eq!(call::<()>("pause", &()).unwrap_err(), "caller is not the owner");
    as_caller(OWNER);
    call::<()>("pause", &()).unwrap();
    assert!(query::<bool>("is_paused", &()));
    as_caller(BUYER);
    assert_eq!(
        call::<u64>("buy", &(offer_id, d("1"))).unwrap_err(),
        "contract is paused"
    );
    as_caller(PRODUCER);
    assert_eq!(
        call::<u64>("post_offer", &(d("1"), d("1"), 100u64, 200u64)).unwrap_err(),
        "contract is paused"
    );
    as_caller(OWNER);
    call::<()>("unpause", &()).unwrap();
    as_caller(BUYER);
    call::<u64>("buy", &(offer_id, d("1"))).unwrap();
}

#[test]
fn roles_and_paging() {
    setup(10, 0);
    as_caller(OWNER);
    assert!(
        call::<()>("grant_role", &("admin".to_string(), account(9)))
            .unwrap_err()
            .starts_with("unknown role admin")
    );
    call::<()>("revoke_role", &("producer".to_string(), account(PRODUCER))).unwrap();
    assert!(!query::<bool>("has_role", &("producer".to_string(), account(PRODUCER))));
    call::<()>("grant_role", &("producer".to_string(), account(PRODUCER))).unwrap();
    for _ in 0..5 {
        post_offer();
    }
    let first: Vec<(u64, Offer)> = query("offers", &(None::<u64>, 2u32));
    assert_eq!(first.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2]);
    let next: Vec<(u64, Offer)> = query("offers", &(Some(2u64), 2u32));
    assert_eq!(next.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [3, 4]);
    let rest: Vec<(u64, Offer)> = query("offers", &(Some(4u64), 1000u32));
    assert_eq!(rest.len(), 1);
    let config: Config = query("get_config", &());
    assert_eq!((config.token, config.units, config.dispute_window), (TOKEN, UNITS, 10));
}
