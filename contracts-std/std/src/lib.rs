//! The standard library of Joule contracts (guide §4.3).
//!
//! A contract is a Rust crate compiled to `wasm32-unknown-unknown` that depends on this
//! crate; the node turns the module into a component of the `joule:contract@0.2.0` world.
//!
//! # A contract
//!
//! ```ignore
//! use joule_contract_std::prelude::*;
//!
//! /// A struct or enum of the interface: `#[contract_type]` derives borsh and records its
//! /// shape in the ABI.
//! #[contract_type]
//! #[derive(Clone, Debug, PartialEq)]
//! pub struct Offer {
//!     pub seller: Address,
//!     pub price: U256,
//! }
//!
//! /// An event: the struct's name is its name, `#[indexed]` fields (at most 3) its topics.
//! #[event]
//! pub struct Traded {
//!     #[indexed]
//!     pub offer: u64,
//!     #[indexed]
//!     pub buyer: Address,
//!     pub price: U256,
//! }
//!
//! /// The state: storage handles, each bound to the key prefix `field name ‖ '.'`. Never
//! /// stored as a whole: a method touches only the keys it uses.
//! #[derive(ContractState)]
//! pub struct Market {
//!     owner: Ownable,
//!     paused: Pausable,
//!     offers: Map<u64, Offer>,
//!     next_id: Value<u64>,
//! }
//!
//! #[contract]
//! impl Market {
//!     /// The constructor (`entry.init`): returns `Self` or `Result<Self, E>`.
//!     #[init]
//!     pub fn new() -> Self {
//!         let market = Self::default(); // binds the handles, reads nothing
//!         market.owner.init(env::caller());
//!         market
//!     }
//!
//!     /// `&mut self`: a transaction (`entry.call`).
//!     #[guard(not_paused)]
//!     pub fn offer(&mut self, price: U256) -> u64 {
//!         let id = self.next_id.update(|n| {
//!             *n += 1;
//!             *n
//!         });
//!         self.offers.insert(&id, &Offer { seller: env::caller(), price });
//!         id
//!     }
//!
//!     /// `Err(e)` reverts with `e.to_string()`.
//!     pub fn buy(&mut self, offer: u64) -> Result<U256, String> {
//!         let Some(o) = self.offers.take(&offer) else {
//!             return Err(format!("no offer {offer}"));
//!         };
//!         Traded { offer, buyer: env::caller(), price: o.price }.emit();
//!         Ok(o.price)
//!     }
//!
//!     #[guard(owner)]
//!     pub fn pause(&mut self) {
//!         self.paused.pause();
//!     }
//!
//!     /// `&self`: a query (`entry.query`), read-only.
//!     pub fn offers(&self, after: Option<u64>, limit: u32) -> Vec<(u64, Offer)> {
//!         let it = match after {
//!             Some(id) => self.offers.iter_from(&id),
//!             None => self.offers.iter(),
//!         };
//!         it.take(limit as usize).collect()
//!     }
//! }
//! ```
//!
//! with, in the contract's `Cargo.toml`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! joule-contract-std = { path = "…/contracts-std/std" }
//!
//! [features]
//! # Declared by every contract crate: see "Calling other contracts".
//! no-export = []
//!
//! [profile.release]
//! opt-level = "s"
//! lto = true
//! codegen-units = 1
//! panic = "abort"
//! strip = true      # keeps the `joule-abi/1` and `component-type` custom sections
//! ```
//!
//! and `cargo build --release --target wasm32-unknown-unknown`.
//!
//! # What `#[contract]` generates
//!
//! * Exported methods are the `pub fn`s: `#[init]` (no `self`), `&mut self` (call),
//!   `&self` (query; `#[call]` makes a `&self` method a call, `#[query]` is accepted for
//!   clarity). Other functions are ordinary Rust.
//! * Dispatch by method name ([`Contract::dispatch`]): the arguments are the borsh encoding
//!   of the tuple of the parameters (`(a, b)`, `(a,)`, `()`), a decoding failure is
//!   `err("bad arguments for METHOD: …")`; the result is the borsh encoding of the return
//!   value, or of `T` for a `Result<T, E>` whose `Err(e)` is `err(e.to_string())`; other
//!   names are `err("unknown method NAME")`; a call method sent to `query` is
//!   `err("METHOD changes state: send it as a transaction")`.
//! * On wasm32, the `entry` export (via the world's `export!` macro) with a panic hook:
//!   a panic reverts with `"panic: MSG"`, so the message survives `panic = "abort"`.
//! * `#[guard(owner)]`, `#[guard(role = "name")]`, `#[guard(not_paused)]` (combinable:
//!   `#[guard(role = "meter", not_paused)]`) insert `require_owner()` / `require_role(..)` /
//!   `require_not_paused()` at the start of the method, on the state's first field of type
//!   [`Ownable`] / [`Roles`] / [`Pausable`].
//! * The ABI: [`Contract::ABI`] (also in the wasm custom section `joule-abi/1`, one JSON
//!   object per line, the linker concatenating the lines of every macro):
//!   `{"contract":"Market","version":"0.1.0"}`, then
//!   `{"method":"buy","kind":"call","args":[{"name":"offer","type":"u64"}],"returns":"U256","error":"String"}`
//!   per method; `#[contract_type]` adds `{"type":…,"kind":"struct"|"enum",…}`, `#[event]`
//!   `{"event":…,"indexed":[…],"data":[…]}`, and each `Ownable`/`Roles`/`Pausable` field the
//!   events it emits.
//! * `MarketRef { address, gas }`: `MarketRef::new(address).buy(7)` calls through
//!   `calls.call` (`calls.query` for queries) and returns `Result<U256, CallError>`.
//! * `#[contract(library)]` on `impl Name` of functions without `self`: a library (no
//!   state; both entry points run the functions) and `NameLib { address, gas }` calling it
//!   through `calls.library`.
//!
//! One `#[contract]` per crate is exported on wasm32 (the world has one `entry`).
//!
//! # Calling other contracts
//!
//! To call `market`'s methods from another contract, depend on its crate with its
//! `no-export` feature:
//!
//! ```toml
//! market = { path = "../market", features = ["no-export"] }
//! ```
//!
//! Every item the macros emit for wasm (the `entry` export and the `joule-abi/1` sections)
//! is behind `#[cfg(all(target_arch = "wasm32", not(feature = "no-export")))]`, evaluated in
//! the crate that uses the macros; so the dependency contributes its `MarketRef` and types
//! but neither a second `entry` export nor its ABI lines. This is why every crate using the
//! macros declares `no-export = []` in `[features]` (otherwise rustc warns about an unknown
//! feature in the `cfg`).
//!
//! # Storage
//!
//! See [`storage`]: [`Value`], [`Map`] (keys by an order-preserving encoding,
//! [`StorageKey`]: `Map<u64, _>` iterates numerically, pages of `storage.scan` fetched
//! lazily), [`StorageVec`]. Nothing panics on bad stored data: it reverts naming the key.
//!
//! # Tests
//!
//! Natively, every host call goes to a thread-local mock chain ([`testing`]): run the
//! contract with `cargo test` through the same generated dispatch the host uses.
//!
//! Every call to the host goes through one internal module (`sys`): the WIT bindings on
//! wasm32, the mock chain elsewhere.

extern crate self as joule_contract_std;

pub mod access;
mod address;
pub mod call;
pub mod contract;
pub mod crypto;
pub mod env;
pub mod event;
#[cfg(all(target_arch = "wasm32", feature = "heap"))]
pub mod heap;
pub mod storage;
mod sys;

/// The contract's allocator (see [`heap`]); a contract that wants its own turns off the
/// default feature `heap`.
#[cfg(all(target_arch = "wasm32", feature = "heap"))]
#[global_allocator]
static HEAP: heap::BumpHeap = heap::BumpHeap::new();
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[doc(hidden)]
pub mod __private;

/// The generated WIT bindings of the `joule:contract/contract` world (wasm32 only).
#[cfg(target_arch = "wasm32")]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/contract",
        world: "contract",
        pub_export_macro: true,
        default_bindings_module: "joule_contract_std::bindings",
        runtime_path: "joule_contract_std::__private::wit_bindgen::rt",
    });
}

/// The world's `export!` macro (wasm32 only). `#[contract]` invokes it; by hand:
/// `joule_contract_std::export!(MyGuest with_types_in joule_contract_std::bindings);` for a
/// type implementing `bindings::exports::joule::contract::entry::Guest`.
#[cfg(target_arch = "wasm32")]
pub use bindings::export;

pub use borsh;
pub use borsh::{BorshDeserialize, BorshSerialize};
pub use joule_contract_macros::{ContractState, contract, contract_type, event};
pub use joule_contract_math as math;
pub use joule_contract_math::{Decimal, I128, I256, U128, U256};

pub use access::{Ownable, Pausable, Roles};
pub use address::{Address, ParseAddressError};
pub use call::CallError;
pub use contract::{Contract, ContractType, Entry};
pub use env::revert;
pub use event::Event;
pub use storage::{ContractState, Map, StorageField, StorageKey, StorageVec, Value};

/// What a contract module usually imports: `use joule_contract_std::prelude::*;`.
pub mod prelude {
    pub use crate::access::{Ownable, Pausable, Roles};
    pub use crate::borsh::{BorshDeserialize, BorshSerialize};
    pub use crate::call::CallError;
    pub use crate::env::{self, revert};
    pub use crate::event::Event;
    pub use crate::storage::{Map, StorageVec, Value};
    pub use crate::{Address, Decimal, I128, I256, U128, U256};
    pub use crate::{ContractState, contract, contract_type, event};
}
