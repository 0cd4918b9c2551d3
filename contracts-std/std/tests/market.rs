//! The tutorial contract of the crate documentation, verbatim, and its tests.

use joule_contract_std::prelude::*;

/// A struct or enum of the interface: `#[contract_type]` derives borsh and records its
/// shape in the ABI.
#[contract_type]
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    pub seller: Address,
    pub price: U256,
}

/// An event: the struct's name is its name, `#[indexed]` fields (at most 3) its topics.
#[event]
pub struct Traded {
    #[indexed]
    pub offer: u64,
    #[indexed]
    pub buyer: Address,
    pub price: U256,
}

/// The state: storage handles, each bound to the key prefix `field name ‖ '.'`. Never
/// stored as a whole: a method touches only the keys it uses.
#[derive(ContractState)]
pub struct Market {
    owner: Ownable,
    paused: Pausable,
    offers: Map<u64, Offer>,
    next_id: Value<u64>,
}

#[contract]
impl Market {
    /// The constructor (`entry.init`): returns `Self` or `Result<Self, E>`.
    #[init]
    pub fn new() -> Self {
        let market = Self::default(); // binds the handles, reads nothing
        market.owner.init(env::caller());
        market
    }

    /// `&mut self`: a transaction (`entry.call`).
    #[guard(not_paused)]
    pub fn offer(&mut self, price: U256) -> u64 {
        let id = self.next_id.update(|n| {
            *n += 1;
            *n
        });
        self.offers.insert(
            &id,
            &Offer {
                seller: env::caller(),
                price,
            },
        );
        id
    }

    /// `Err(e)` reverts with `e.to_string()`.
    pub fn buy(&mut self, offer: u64) -> Result<U256, String> {
        let Some(o) = self.offers.take(&offer) else {
            return Err(format!("no offer {offer}"));
        };
        Traded {
            offer,
            buyer: env::caller(),
            price: o.price,
        }
        .emit();
        Ok(o.price)
    }

    #[guard(owner)]
    pub fn pause(&mut self) {
        self.paused.pause();
    }

    /// `&self`: a query (`entry.query`), read-only.
    pub fn offers(&self, after: Option<u64>, limit: u32) -> Vec<(u64, Offer)> {
        let it = match after {
            Some(id) => self.offers.iter_from(&id),
            None => self.offers.iter(),
        };
        it.take(limit as usize).collect()
    }
}

use joule_contract_std::testing::{self, account};
use joule_contract_std::{Contract, Entry};

#[test]
fn tutorial_market_trades() {
    testing::reset();
    testing::set_caller(account(1));
    testing::init::<Market, _>(&()).unwrap();
    testing::set_caller(account(2));
    let id: u64 = testing::call::<Market, _, _>("offer", &(U256::new(500),)).unwrap();
    assert_eq!(id, 1);
    let listed: Vec<(u64, Offer)> = testing::query::<Market, _, _>("offers", &(None::<u64>, 10u32)).unwrap();
    assert_eq!(
        listed,
        [(
            1,
            Offer {
                seller: account(2),
                price: U256::new(500)
            }
        )]
    );
    testing::set_caller(account(3));
    assert_eq!(
        testing::call::<Market, _, U256>("buy", &(1u64,)).unwrap(),
        U256::new(500)
    );
    assert_eq!(
        testing::call::<Market, _, U256>("buy", &(1u64,)).unwrap_err(),
        "no offer 1"
    );
    let traded = testing::events().into_iter().find(|e| e.name == "Traded").unwrap();
    assert!(traded.is(&Traded {
        offer: 1,
        buyer: account(3),
        price: U256::new(500)
    }));
    assert_eq!(
        testing::call::<Market, _, ()>("pause", &()).unwrap_err(),
        "caller is not the owner"
    );
    testing::set_caller(account(1));
    testing::call::<Market, _, ()>("pause", &()).unwrap();
    assert_eq!(
        testing::call::<Market, _, u64>("offer", &(U256::new(1),)).unwrap_err(),
        "contract is paused"
    );
    assert_eq!(
        testing::dispatch::<Market>(Entry::Query, "offer", &[]).unwrap_err(),
        "offer changes state: send it as a transaction"
    );
}

#[test]
fn tutorial_market_abi() {
    let lines: Vec<&str> = Market::ABI.lines().collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(
        lines[3],
        r#"{"method":"buy","kind":"call","args":[{"name":"offer","type":"u64"}],"returns":"U256","error":"String"}"#
    );
    assert_eq!(
        lines[5],
        r#"{"method":"offers","kind":"query","args":[{"name":"after","type":"Option<u64>"},{"name":"limit","type":"u32"}],"returns":"Vec<(u64, Offer)>","error":null}"#
    );
}

#[test]
fn tutorial_market_keys() {
    testing::reset();
    testing::init::<Market, _>(&()).unwrap();
    testing::call::<Market, _, u64>("offer", &(U256::new(5),)).unwrap();
    let keys: Vec<Vec<u8>> = testing::storage_of(&testing::DEFAULT_CONTRACT).into_keys().collect();
    let mut offer_key = b"offers.".to_vec();
    offer_key.extend_from_slice(&1u64.to_be_bytes());
    assert_eq!(keys, [b"next_id.".to_vec(), offer_key, b"owner.owner.".to_vec()]);
}
