//! `bench-native TRADES`: the p2p market's `trade` compiled natively, on the mock chain, with
//! the same deployment and the same calls as `joule bench contracts` makes through the
//! contract runtime: the library, the token and the market (dispute window 0, fee 1%), one
//! big offer, and a buyer taking 0.001 kWh of it per call. Every call must succeed.
//!
//! Prints `first_ns N` (the first trade) and `warm_ns_per_trade N` (TRADES trades after as
//! many untimed ones), one per line: N consecutive trades on one chain, as on the wasm side.
//!
//! The mock chain undoes a failed (nested) call with an undo journal, as the node's runtime
//! does, so a call costs what it writes, not what the chain holds.

use energy_token::EnergyToken;
use energy_units::EnergyUnits;
use joule_contract_std::prelude::*;
use joule_contract_std::testing::{self, DEFAULT_CONTRACT as MARKET, account};
use p2p_market::P2pMarket;
use std::hint::black_box;
use std::time::Instant;

const TOKEN: Address = Address([0x70; 32]);
const UNITS: Address = Address([0x71; 32]);
const OWNER: u8 = 1;
const PRODUCER: u8 = 2;
const BUYER: u8 = 3;

fn d(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn trade(offer: u64, kwh: Decimal) -> u64 {
    match testing::call::<P2pMarket, _, u64>("trade", &(offer, kwh)) {
        Ok(id) => black_box(id),
        Err(e) => {
            eprintln!("bench-native: a trade failed: {e}");
            std::process::exit(1);
        }
    }
}

/// A fresh chain: token, library and market deployed, the buyer funded and approved, one
/// big offer. Returns the offer.
fn setup() -> u64 {
    testing::reset();
    testing::set_height(100);
    testing::set_caller(account(OWNER));
    testing::deploy::<EnergyToken, _>(TOKEN, &("Grid kWh token".to_string(), "GKT".to_string())).expect("token");
    testing::register_contract::<EnergyUnits>(UNITS);
    testing::init::<P2pMarket, _>(&(TOKEN, UNITS, 0u64, 100u16)).expect("market");
    testing::call::<P2pMarket, _, ()>("grant_role", &("producer".to_string(), account(PRODUCER))).expect("grant");
    testing::set_contract(TOKEN);
    let funds = U256::from(1_000_000_000u64) * U256::from(10u64).pow(18);
    testing::call::<EnergyToken, _, U256>("mint", &(account(BUYER), funds)).expect("mint");
    testing::set_caller(account(BUYER));
    testing::call::<EnergyToken, _, ()>("approve", &(MARKET, funds)).expect("approve");
    testing::set_contract(MARKET);
    testing::set_caller(account(PRODUCER));
    let offer: u64 =
        testing::call::<P2pMarket, _, u64>("post_offer", &(d("1000000000"), d("0.2"), 0u64, u64::MAX)).expect("offer");
    testing::set_caller(account(BUYER));
    offer
}

/// `trades` consecutive trades on `offer`: the time they take.
fn timed(trades: u32, offer: u64, kwh: Decimal) -> std::time::Duration {
    let t = Instant::now();
    for _ in 0..trades {
        trade(offer, kwh);
    }
    t.elapsed()
}

fn main() {
    let trades: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let kwh = d("0.001");
    let offer = setup();
    let t = Instant::now();
    trade(offer, kwh);
    let first = t.elapsed();
    timed(trades, offer, kwh);
    let warm = timed(trades, offer, kwh);
    println!("first_ns {}", first.as_nanos());
    println!("warm_ns_per_trade {}", warm.as_nanos() / u128::from(trades.max(1)));
}
