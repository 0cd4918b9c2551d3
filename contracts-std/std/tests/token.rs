//! A small token contract, unit-tested off-chain on the mock chain, through the generated
//! dispatch exactly as the host would call it.

use joule_contract_std::prelude::*;
use joule_contract_std::testing::{self, account};
use joule_contract_std::{Contract, ContractType, Entry, access};

/// Why a transfer fails.
#[contract_type]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    Insufficient { needed: u64, available: u64 },
    SelfTransfer,
}

impl core::fmt::Display for TokenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TokenError::Insufficient { needed, available } => write!(f, "insufficient balance: {available} < {needed}"),
            TokenError::SelfTransfer => f.write_str("transfer to self"),
        }
    }
}

/// A note attached to a transfer.
#[contract_type]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Memo {
    pub id: u64,
    pub text: String,
}

#[event]
#[derive(Debug)]
pub struct Transfer {
    #[indexed]
    pub from: Address,
    #[indexed]
    pub to: Address,
    pub amount: u64,
}

#[derive(ContractState)]
pub struct Token {
    owner: Ownable,
    roles: Roles,
    paused: Pausable,
    name: Value<String>,
    supply: Value<u64>,
    balances: Map<Address, u64>,
    ledger: Map<u64, u64>,
    memos: StorageVec<Memo>,
}

#[contract]
impl Token {
    #[init]
    pub fn new(name: String) -> Self {
        let token = Self::default();
        token.owner.init(env::caller());
        token.name.set(&name);
        token
    }

    #[guard(owner)]
    pub fn grant_minter(&mut self, account: Address) {
        self.roles.grant("minter", account);
    }

    #[guard(role = "minter", not_paused)]
    pub fn mint(&mut self, to: Address, amount: u64) -> u64 {
        self.balances.update(&to, |b| *b += amount);
        self.supply.update(|s| {
            *s += amount;
            *s
        })
    }

    #[guard(not_paused)]
    pub fn transfer(&mut self, to: Address, amount: u64) -> Result<u64, TokenError> {
        let from = env::caller();
        if from == to {
            return Err(TokenError::SelfTransfer);
        }
        let available = self.balances.get_or(&from, 0);
        if available < amount {
            return Err(TokenError::Insufficient {
                needed: amount,
                available,
            });
        }
        self.balances.insert(&from, &(available - amount));
        self.balances.update(&to, |b| *b += amount);
        Transfer { from, to, amount }.emit();
        Ok(available - amount)
    }

    #[guard(owner)]
    pub fn pause(&mut self) {
        self.paused.pause();
    }

    #[guard(owner)]
    pub fn unpause(&mut self) {
        self.paused.unpause();
    }

    /// Records `value` under `slot` in an ordered ledger.
    pub fn record(&mut self, slot: u64, value: u64) {
        self.ledger.insert(&slot, &value);
    }

    pub fn add_memo(&mut self, memo: Memo) -> u64 {
        self.memos.push(&memo)
    }

    pub fn pop_memo(&mut self) -> Option<Memo> {
        self.memos.pop()
    }

    pub fn fail(&mut self, message: String) {
        self.supply.set(&999);
        revert(message)
    }

    pub fn boom(&mut self) {
        self.supply.set(&999);
        panic!("kaboom {}", 42)
    }

    pub fn balance_of(&self, account: Address) -> u64 {
        self.balances.get_or(&account, 0)
    }

    pub fn supply(&self) -> u64 {
        self.supply.get_or(0)
    }

    pub fn name(&self) -> String {
        self.name.get().unwrap_or_default()
    }

    pub fn ledger_slots(&self) -> Vec<u64> {
        self.ledger.keys().collect()
    }

    pub fn memos(&self) -> Vec<Memo> {
        self.memos.iter().collect()
    }

    /// `&self`, yet sent as a transaction: `#[call]`.
    #[call]
    pub fn touch(&self) {
        self.supply.update(|s| *s += 0);
    }

    /// A query that writes (a mistake the host catches).
    pub fn sneaky_write(&self) {
        self.supply.set(&7);
    }

    /// Not exported: not `pub`.
    fn helper(&self) -> u64 {
        1
    }

    pub fn uses_helper(&self) -> u64 {
        self.helper()
    }
}

fn setup() {
    testing::reset();
    testing::set_caller(account(1));
    testing::init::<Token, _>(&("Joule".to_string(),)).unwrap();
}

fn call<R: BorshDeserialize>(method: &str, args: &impl BorshSerialize) -> Result<R, String> {
    testing::call::<Token, _, R>(method, args)
}

fn query<R: BorshDeserialize>(method: &str, args: &impl BorshSerialize) -> Result<R, String> {
    testing::query::<Token, _, R>(method, args)
}

#[test]
fn init_sets_owner_and_name() {
    setup();
    assert_eq!(query::<String>("name", &()).unwrap(), "Joule");
    let events = testing::events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "OwnershipTransferred");
    assert_eq!(events[0].topic::<Option<Address>>(0), Some(None));
    assert_eq!(events[0].topic::<Address>(1), Some(account(1)));
}

#[test]
fn mint_and_transfer() {
    setup();
    call::<()>("grant_minter", &(account(1),)).unwrap();
    assert_eq!(call::<u64>("mint", &(account(1), 100u64)).unwrap(), 100);
    assert_eq!(call::<u64>("mint", &(account(2), 5u64)).unwrap(), 105);
    assert_eq!(call::<u64>("transfer", &(account(3), 30u64)).unwrap(), 70);
    assert_eq!(query::<u64>("balance_of", &(account(1),)).unwrap(), 70);
    assert_eq!(query::<u64>("balance_of", &(account(3),)).unwrap(), 30);
    assert_eq!(query::<u64>("supply", &()).unwrap(), 105);
    assert_eq!(query::<u64>("uses_helper", &()).unwrap(), 1);
}

#[test]
fn events_recorded_with_topics() {
    setup();
    call::<()>("grant_minter", &(account(1),)).unwrap();
    call::<u64>("mint", &(account(1), 10u64)).unwrap();
    call::<u64>("transfer", &(account(2), 4u64)).unwrap();
    let events = testing::events();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["OwnershipTransferred", "RoleGranted", "Transfer"]);
    let granted = &events[1];
    assert_eq!(granted.topic::<String>(0).as_deref(), Some("minter"));
    assert_eq!(granted.topic::<Address>(1), Some(account(1)));
    assert_eq!(granted.decode_data::<Address>(), Some(account(1)));
    let transfer = &events[2];
    assert_eq!(transfer.contract, testing::DEFAULT_CONTRACT);
    assert_eq!(transfer.topics, vec![account(1).0.to_vec(), account(2).0.to_vec()]);
    assert_eq!(transfer.decode_data::<u64>(), Some(4));
    assert!(transfer.is(&Transfer {
        from: account(1),
        to: account(2),
        amount: 4
    }));
}

#[test]
fn result_errors_become_err_strings() {
    setup();
    assert_eq!(
        call::<u64>("transfer", &(account(2), 1u64)).unwrap_err(),
        "insufficient balance: 0 < 1"
    );
    assert_eq!(
        call::<u64>("transfer", &(account(1), 0u64)).unwrap_err(),
        "transfer to self"
    );
}

#[test]
fn revert_message_and_rollback() {
    setup();
    let before = testing::storage_of(&testing::DEFAULT_CONTRACT);
    assert_eq!(call::<()>("fail", &("no way".to_string(),)).unwrap_err(), "no way");
    assert_eq!(testing::storage_of(&testing::DEFAULT_CONTRACT), before);
    assert_eq!(query::<u64>("supply", &()).unwrap(), 0);
}

#[test]
fn panic_becomes_revert_with_message() {
    setup();
    assert_eq!(call::<()>("boom", &()).unwrap_err(), "panic: kaboom 42");
    assert_eq!(query::<u64>("supply", &()).unwrap(), 0);
}

#[test]
fn access_control_refusals() {
    setup();
    // Non-owner.
    testing::set_caller(account(2));
    assert_eq!(
        call::<()>("grant_minter", &(account(2),)).unwrap_err(),
        "caller is not the owner"
    );
    assert_eq!(call::<()>("pause", &()).unwrap_err(), "caller is not the owner");
    // Missing role.
    assert_eq!(
        call::<u64>("mint", &(account(2), 1u64)).unwrap_err(),
        "caller lacks role minter"
    );
    // Paused.
    testing::set_caller(account(1));
    call::<()>("grant_minter", &(account(1),)).unwrap();
    call::<()>("pause", &()).unwrap();
    assert_eq!(
        call::<u64>("mint", &(account(1), 1u64)).unwrap_err(),
        "contract is paused"
    );
    assert_eq!(
        call::<u64>("transfer", &(account(2), 0u64)).unwrap_err(),
        "contract is paused"
    );
    assert_eq!(call::<()>("pause", &()).unwrap_err(), "already paused");
    call::<()>("unpause", &()).unwrap();
    assert_eq!(call::<u64>("mint", &(account(1), 1u64)).unwrap(), 1);
    let names: Vec<String> = testing::events().into_iter().map(|e| e.name).collect();
    assert!(names.contains(&"Paused".to_string()) && names.contains(&"Unpaused".to_string()));
}

#[test]
fn dispatch_unknown_methods_and_bad_arguments() {
    setup();
    assert_eq!(
        testing::dispatch::<Token>(Entry::Call, "nope", &[]).unwrap_err(),
        "unknown method nope"
    );
    assert_eq!(
        testing::dispatch::<Token>(Entry::Query, "nope", &[]).unwrap_err(),
        "unknown method nope"
    );
    // Private helpers are not exported.
    assert_eq!(
        testing::dispatch::<Token>(Entry::Query, "helper", &[]).unwrap_err(),
        "unknown method helper"
    );
    let err = testing::dispatch::<Token>(Entry::Query, "balance_of", &[1, 2, 3]).unwrap_err();
    assert!(err.starts_with("bad arguments for balance_of: "), "{err}");
    let err = testing::dispatch::<Token>(Entry::Query, "supply", &[0]).unwrap_err();
    assert!(err.starts_with("bad arguments for supply: "), "{err}");
    let err = testing::dispatch::<Token>(Entry::Call, "mint", &[0; 5]).unwrap_err();
    assert!(err.starts_with("bad arguments for mint: "), "{err}");
    // A state-changing method through `query`.
    assert_eq!(
        testing::dispatch::<Token>(Entry::Query, "mint", &[]).unwrap_err(),
        "mint changes state: send it as a transaction"
    );
    assert_eq!(
        testing::dispatch::<Token>(Entry::Query, "touch", &[]).unwrap_err(),
        "touch changes state: send it as a transaction"
    );
    // Queries may be sent as transactions too.
    let bytes = testing::dispatch::<Token>(Entry::Call, "supply", &[]).unwrap();
    assert_eq!(bytes, 0u64.to_le_bytes());
    // The direct, unwrapped dispatch function gives the same answers.
    assert_eq!(
        Token::dispatch(Entry::Call, "nope", &[]).unwrap_err(),
        "unknown method nope"
    );
    // Init arguments are checked too.
    testing::reset();
    assert!(
        testing::dispatch::<Token>(Entry::Init, "init", &[9])
            .unwrap_err()
            .starts_with("bad arguments for new: ")
    );
}

#[test]
fn writes_in_a_query_trap() {
    setup();
    // `sneaky_write` takes `&self` (a query) but writes: the host (and the mock) trap.
    assert_eq!(
        query::<()>("sneaky_write", &()).unwrap_err(),
        "storage.set in a query (queries are read-only)"
    );
    // Sent as a transaction, the same method may write.
    call::<()>("sneaky_write", &()).unwrap();
    assert_eq!(query::<u64>("supply", &()).unwrap(), 7);
}

#[test]
fn map_iterates_in_numeric_order_across_pages() {
    setup();
    // 600 slots inserted out of order: more than two 256-entry scan pages.
    let mut slots: Vec<u64> = (0..600u64).map(|i| (i * 7919) % 600 * 1000 + 1).collect();
    for &slot in &slots {
        call::<()>("record", &(slot, slot * 2)).unwrap();
    }
    slots.sort_unstable();
    assert_eq!(query::<Vec<u64>>("ledger_slots", &()).unwrap(), slots);
}

#[test]
fn storage_vec_push_pop_iter() {
    setup();
    for i in 0..3u64 {
        let memo = Memo {
            id: i,
            text: format!("memo {i}"),
        };
        assert_eq!(call::<u64>("add_memo", &(memo,)).unwrap(), i);
    }
    let memos = query::<Vec<Memo>>("memos", &()).unwrap();
    assert_eq!(memos.iter().map(|m| m.id).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(
        call::<Option<Memo>>("pop_memo", &()).unwrap().map(|m| m.text),
        Some("memo 2".to_string())
    );
    assert_eq!(query::<Vec<Memo>>("memos", &()).unwrap().len(), 2);
}

#[test]
fn abi_lines() {
    let abi = Token::ABI;
    let lines: Vec<&str> = abi.lines().collect();
    assert!(abi.ends_with('\n'));
    assert_eq!(
        lines[0],
        format!(
            "{{\"contract\":\"Token\",\"version\":\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert!(lines.contains(
        &r#"{"method":"new","kind":"init","args":[{"name":"name","type":"String"}],"returns":"()","error":null}"#
    ));
    assert!(lines.contains(
        &r#"{"method":"transfer","kind":"call","args":[{"name":"to","type":"Address"},{"name":"amount","type":"u64"}],"returns":"u64","error":"TokenError"}"#
    ));
    assert!(lines.contains(
        &r#"{"method":"balance_of","kind":"query","args":[{"name":"account","type":"Address"}],"returns":"u64","error":null}"#
    ));
    assert!(lines.contains(&r#"{"method":"pop_memo","kind":"call","args":[],"returns":"Option<Memo>","error":null}"#));
    assert!(lines.contains(&r#"{"method":"touch","kind":"call","args":[],"returns":"()","error":null}"#));
    assert!(!abi.contains("\"method\":\"helper\""));
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    assert_eq!(
        Transfer::ABI,
        "{\"event\":\"Transfer\",\"indexed\":[{\"name\":\"from\",\"type\":\"Address\"},{\"name\":\"to\",\"type\":\"Address\"}],\"data\":[{\"name\":\"amount\",\"type\":\"u64\"}]}\n"
    );
    assert_eq!(
        Memo::ABI,
        "{\"type\":\"Memo\",\"kind\":\"struct\",\"fields\":[{\"name\":\"id\",\"type\":\"u64\"},{\"name\":\"text\",\"type\":\"String\"}]}\n"
    );
    assert_eq!(
        TokenError::ABI,
        "{\"type\":\"TokenError\",\"kind\":\"enum\",\"variants\":[{\"name\":\"Insufficient\",\"fields\":[{\"name\":\"needed\",\"type\":\"u64\"},{\"name\":\"available\",\"type\":\"u64\"}]},{\"name\":\"SelfTransfer\",\"fields\":[]}]}\n"
    );
    use joule_contract_std::access::{OwnershipTransferred, Paused, RoleGranted, RoleRevoked, Unpaused};
    assert_eq!(Ownable::EVENTS_ABI, OwnershipTransferred::ABI);
    assert_eq!(Roles::EVENTS_ABI, format!("{}{}", RoleGranted::ABI, RoleRevoked::ABI));
    assert_eq!(Pausable::EVENTS_ABI, format!("{}{}", Paused::ABI, Unpaused::ABI));
    for line in [Ownable::EVENTS_ABI, Roles::EVENTS_ABI, Pausable::EVENTS_ABI]
        .concat()
        .lines()
    {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    let _ = access::MAX_ROLE_BYTES;
}
