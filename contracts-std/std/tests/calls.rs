//! Cross-contract calls through the generated `<Name>Ref` / `<Name>Lib`, on the mock chain.

use joule_contract_std::prelude::*;
use joule_contract_std::testing::{self, account};
use joule_contract_std::{Contract, Entry, crypto};

#[derive(ContractState)]
pub struct Registry {
    names: Map<String, Address>,
    by_owner: Map<(Address, u64), String>,
}

#[contract]
impl Registry {
    pub fn register(&mut self, name: String, serial: u64) -> Result<(), String> {
        if self.names.contains(name.as_str()) {
            return Err(format!("{name} is taken"));
        }
        let owner = env::caller();
        self.names.insert(name.as_str(), &owner);
        self.by_owner.insert(&(owner, serial), &name);
        Ok(())
    }

    pub fn resolve(&self, name: String) -> Option<Address> {
        self.names.get(name.as_str())
    }

    pub fn names_of(&self, owner: Address) -> Vec<(u64, String)> {
        self.by_owner
            .prefix_iter(&owner)
            .map(|((_, serial), name)| (serial, name))
            .collect()
    }

    pub fn all_names(&self) -> Vec<String> {
        self.names.keys().collect()
    }
}

/// Pure functions.
pub struct Fixed;

#[contract(library)]
impl Fixed {
    pub fn mul_div(a: u128, b: u128, c: u128) -> Result<u128, String> {
        if c == 0 {
            return Err("division by zero".into());
        }
        Ok(a * b / c)
    }
}

#[derive(ContractState)]
pub struct Client {
    registry: Value<Address>,
    fixed: Value<Address>,
    last: Value<u128>,
}

#[contract]
impl Client {
    #[init]
    pub fn new(registry: Address, fixed: Address) -> Self {
        let client = Self::default();
        client.registry.set(&registry);
        client.fixed.set(&fixed);
        client
    }

    fn registry(&self) -> RegistryRef {
        RegistryRef::new(self.registry.expect("no registry"))
    }

    pub fn claim(&mut self, name: String) -> Result<Option<Address>, CallError> {
        self.registry().with_gas(1_000_000).register(name.clone(), 7)?;
        self.registry().resolve(name)
    }

    pub fn scale(&mut self, a: u128) -> Result<u128, CallError> {
        let fixed = FixedLib::new(self.fixed.expect("no library"));
        let v = fixed.mul_div(a, 3, 2)?;
        self.last.set(&v);
        Ok(v)
    }

    pub fn scale_by_zero(&self) -> Result<u128, CallError> {
        FixedLib::new(self.fixed.expect("no library")).mul_div(1, 1, 0)
    }

    pub fn context(&self) -> (Address, Address, Address, String, u64, u64, u64) {
        (
            env::caller(),
            env::origin(),
            env::contract(),
            env::channel(),
            env::height(),
            env::timestamp_ms(),
            env::gas_left(),
        )
    }

    pub fn check_signature(&self, key: Vec<u8>, message: Vec<u8>, signature: Vec<u8>) -> (bool, Vec<u8>, Address) {
        (
            crypto::verify(&key, &message, &signature),
            crypto::hash(&message),
            Address::from_public_key(&key),
        )
    }
}

const REGISTRY: Address = Address([0xaa; 32]);
const FIXED: Address = Address([0xbb; 32]);

fn setup() {
    testing::reset();
    testing::set_caller(account(1));
    testing::deploy::<Registry, _>(REGISTRY, &()).unwrap();
    testing::register_contract::<Fixed>(FIXED);
    testing::init::<Client, _>(&(REGISTRY, FIXED)).unwrap();
}

#[test]
fn ref_calls_another_contract() {
    setup();
    let got: Result<Option<Address>, String> = testing::call::<Client, _, _>("claim", &("alice".to_string(),));
    // The registry saw the client contract as its caller.
    assert_eq!(got.unwrap(), Some(testing::DEFAULT_CONTRACT));
    let err = testing::call::<Client, _, Option<Address>>("claim", &("alice".to_string(),)).unwrap_err();
    assert_eq!(err, "call failed: alice is taken");
    // The registry's storage is its own.
    assert!(testing::storage_of(&REGISTRY).keys().any(|k| k.starts_with(b"names.")));
    assert!(
        !testing::storage_of(&testing::DEFAULT_CONTRACT)
            .keys()
            .any(|k| k.starts_with(b"names."))
    );
}

#[test]
fn lib_calls_a_library() {
    setup();
    assert_eq!(testing::call::<Client, _, u128>("scale", &(10u128,)).unwrap(), 15);
    assert_eq!(
        testing::query::<Client, _, u128>("scale_by_zero", &()).unwrap_err(),
        "call failed: division by zero"
    );
    // A library answers both entry points; it has no init arguments.
    assert_eq!(
        Fixed::dispatch(Entry::Query, "mul_div", &borsh::to_vec(&(4u128, 5u128, 2u128)).unwrap()),
        Ok(10u128.to_le_bytes().to_vec())
    );
    assert!(Fixed::ABI.contains("\"library\":true"));
}

#[test]
fn unknown_callee_fails() {
    testing::reset();
    testing::init::<Client, _>(&(account(9), account(8))).unwrap();
    let err = testing::call::<Client, _, Option<Address>>("claim", &("x".to_string(),)).unwrap_err();
    assert!(err.starts_with("call failed: no contract is deployed at 0909"), "{err}");
}

#[test]
fn string_and_tuple_keys_iterate_in_order() {
    setup();
    testing::set_contract(REGISTRY);
    for (who, name, serial) in [
        (2, "carol", 3u64),
        (1, "bob", 2),
        (2, "al", 1),
        (1, "b\0b", 9),
        (2, "dave", 2),
    ] {
        testing::set_caller(account(who));
        testing::call::<Registry, _, ()>("register", &(name.to_string(), serial)).unwrap();
    }
    assert_eq!(
        testing::query::<Registry, _, Vec<String>>("all_names", &()).unwrap(),
        ["al", "b\0b", "bob", "carol", "dave"]
    );
    let names: Vec<(u64, String)> = testing::query::<Registry, _, _>("names_of", &(account(2),)).unwrap();
    assert_eq!(
        names,
        [(1, "al".to_string()), (2, "dave".to_string()), (3, "carol".to_string())]
    );
}

#[test]
fn environment_and_crypto() {
    setup();
    testing::set_height(42);
    testing::set_timestamp_ms(1234);
    testing::set_channel("energy");
    testing::set_caller(account(5));
    testing::set_origin(account(6));
    let ctx: (Address, Address, Address, String, u64, u64, u64) =
        testing::query::<Client, _, _>("context", &()).unwrap();
    assert_eq!(
        ctx,
        (
            account(5),
            account(6),
            testing::DEFAULT_CONTRACT,
            "energy".to_string(),
            42,
            1234,
            u64::MAX
        )
    );

    let key = b"public key".to_vec();
    let message = b"hello".to_vec();
    let good = testing::mock_sign(&key, &message);
    let (ok, hash, id): (bool, Vec<u8>, Address) =
        testing::query::<Client, _, _>("check_signature", &(key.clone(), message.clone(), good)).unwrap();
    assert!(ok);
    assert_eq!(hash.len(), 32);
    assert_ne!(id, Address::ZERO);
    let (ok, _, _): (bool, Vec<u8>, Address) =
        testing::query::<Client, _, _>("check_signature", &(key, message, vec![0u8; 32])).unwrap();
    assert!(!ok);
}

#[test]
fn state_changes_refused_in_queries() {
    setup();
    // `scale` writes: sent through `query` it is refused by the dispatch…
    assert_eq!(
        testing::query::<Client, _, u128>("scale", &(1u128,)).unwrap_err(),
        "scale changes state: send it as a transaction"
    );
    // …and a `calls.call` reached from a query traps, as on chain.
    testing::set_contract(REGISTRY);
    let err = testing::query::<Registry, _, ()>("register", &("x".to_string(), 1u64)).unwrap_err();
    assert_eq!(err, "register changes state: send it as a transaction");
}
