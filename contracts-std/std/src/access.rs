//! First-party access control (§4.3.2): [`Ownable`], [`Roles`], [`Pausable`].
//!
//! Each is a storage handle, usable as a field of a `#[derive(ContractState)]` struct:
//!
//! ```ignore
//! #[derive(ContractState)]
//! pub struct Meter {
//!     owner: Ownable,
//!     roles: Roles,
//!     paused: Pausable,
//!     readings: Map<u64, u64>,
//! }
//! ```
//!
//! and checked either by hand (`self.owner.require_owner()`) or by `#[guard(owner)]`,
//! `#[guard(role = "meter")]`, `#[guard(not_paused)]` on a `#[contract]` method.
//!
//! A refusal reverts with a message naming what is missing. Changes emit the events
//! [`OwnershipTransferred`], [`RoleGranted`], [`RoleRevoked`], [`Paused`], [`Unpaused`].
//! Their ABI lines ([`Ownable::EVENTS_ABI`], …) are put into the contract's `joule-abi/1`
//! section by `#[derive(ContractState)]` for each field of these types.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::event::{Event, data, topic};
use crate::storage::{Map, StorageField, Value, field_prefix};
use crate::{Address, env};

macro_rules! std_event {
    (
        $(#[$doc:meta])*
        $name:ident { indexed: [$($ifield:ident : $ity:ty => $ityname:literal),*], data: [$($dfield:ident : $dty:ty => $dtyname:literal),*] }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
        #[borsh(crate = "borsh")]
        pub struct $name {
            $(#[allow(missing_docs)] pub $ifield: $ity,)*
            $(#[allow(missing_docs)] pub $dfield: $dty,)*
        }

        impl Event for $name {
            const NAME: &'static str = stringify!($name);
            const ABI: &'static str = concat!(
                "{\"event\":\"", stringify!($name), "\",\"indexed\":[",
                std_event!(@fields $($ifield $ityname),*),
                "],\"data\":[",
                std_event!(@fields $($dfield $dtyname),*),
                "]}\n"
            );

            fn topics(&self) -> Vec<Vec<u8>> {
                vec![$(topic(stringify!($name), stringify!($ifield), &self.$ifield)),*]
            }

            fn data(&self) -> Vec<u8> {
                data(&($(&self.$dfield,)*))
            }
        }
    };
    (@fields) => { "" };
    (@fields $f:ident $t:literal) => { concat!("{\"name\":\"", stringify!($f), "\",\"type\":\"", $t, "\"}") };
    (@fields $f:ident $t:literal, $($rest:tt)*) => {
        concat!(std_event!(@fields $f $t), ",", std_event!(@fields $($rest)*))
    };
}

std_event! {
    /// The owner of an [`Ownable`] changed (`previous` is `None` at initialization).
    OwnershipTransferred {
        indexed: [previous: Option<Address> => "Option<Address>", new_owner: Address => "Address"],
        data: []
    }
}

std_event! {
    /// `account` was granted `role` by `sender`.
    RoleGranted {
        indexed: [role: String => "String", account: Address => "Address"],
        data: [sender: Address => "Address"]
    }
}

std_event! {
    /// `account` lost `role`, revoked by `sender`.
    RoleRevoked {
        indexed: [role: String => "String", account: Address => "Address"],
        data: [sender: Address => "Address"]
    }
}

std_event! {
    /// `account` paused the contract.
    Paused {
        indexed: [account: Address => "Address"],
        data: []
    }
}

std_event! {
    /// `account` unpaused the contract.
    Unpaused {
        indexed: [account: Address => "Address"],
        data: []
    }
}

/// A single owner, set at initialization.
pub struct Ownable {
    owner: Value<Address>,
}

impl StorageField for Ownable {
    fn at(prefix: Vec<u8>) -> Self {
        Ownable {
            owner: Value::at(field_prefix(&prefix, "owner")),
        }
    }
}

impl Ownable {
    /// The ABI lines of the events an `Ownable` emits.
    pub const EVENTS_ABI: &'static str = OwnershipTransferred::ABI;

    /// Set the first owner (in `#[init]`); reverts if there is one already.
    pub fn init(&self, owner: Address) {
        if self.owner.exists() {
            env::revert("owner already set");
        }
        self.owner.set(&owner);
        OwnershipTransferred {
            previous: None,
            new_owner: owner,
        }
        .emit();
    }

    /// The owner (`None` before [`Ownable::init`]).
    pub fn owner(&self) -> Option<Address> {
        self.owner.get()
    }

    /// Whether `account` is the owner.
    pub fn is_owner(&self, account: &Address) -> bool {
        self.owner().as_ref() == Some(account)
    }

    /// Revert with "caller is not the owner" unless the caller is the owner.
    pub fn require_owner(&self) {
        if !self.is_owner(&env::caller()) {
            env::revert("caller is not the owner");
        }
    }

    /// Hand the contract to `new_owner`; only the owner may.
    pub fn transfer_ownership(&self, new_owner: Address) {
        self.require_owner();
        let previous = self.owner();
        self.owner.set(&new_owner);
        OwnershipTransferred { previous, new_owner }.emit();
    }
}

/// Named roles held by accounts: entries at `prefix ‖ "members." ‖ (role, account)`.
///
/// [`Roles::grant`] and [`Roles::revoke`] check nothing: gate the contract methods that
/// call them (e.g. with `#[guard(owner)]`).
pub struct Roles {
    members: Map<(String, Address), bool>,
}

impl StorageField for Roles {
    fn at(prefix: Vec<u8>) -> Self {
        Roles {
            members: Map::at(field_prefix(&prefix, "members")),
        }
    }
}

/// Most bytes of a role name (so that its topic fits 64 bytes).
pub const MAX_ROLE_BYTES: usize = 60;

impl Roles {
    /// The ABI lines of the events `Roles` emits.
    pub const EVENTS_ABI: &'static str = concat!(
        "{\"event\":\"RoleGranted\",\"indexed\":[{\"name\":\"role\",\"type\":\"String\"},{\"name\":\"account\",\"type\":\"Address\"}],\"data\":[{\"name\":\"sender\",\"type\":\"Address\"}]}\n",
        "{\"event\":\"RoleRevoked\",\"indexed\":[{\"name\":\"role\",\"type\":\"String\"},{\"name\":\"account\",\"type\":\"Address\"}],\"data\":[{\"name\":\"sender\",\"type\":\"Address\"}]}\n",
    );

    fn check_name(role: &str) {
        if role.is_empty() || role.len() > MAX_ROLE_BYTES {
            env::revert(format!("a role name is 1 to {MAX_ROLE_BYTES} bytes"));
        }
    }

    /// Give `role` to `account` (no-op, no event, if it has it).
    pub fn grant(&self, role: &str, account: Address) {
        Self::check_name(role);
        let key = (role.to_string(), account);
        if !self.members.contains(&key) {
            self.members.insert(&key, &true);
            RoleGranted {
                role: key.0,
                account,
                sender: env::caller(),
            }
            .emit();
        }
    }

    /// Take `role` from `account` (no-op, no event, if it lacks it).
    pub fn revoke(&self, role: &str, account: Address) {
        let key = (role.to_string(), account);
        if self.members.contains(&key) {
            self.members.remove(&key);
            RoleRevoked {
                role: key.0,
                account,
                sender: env::caller(),
            }
            .emit();
        }
    }

    /// Whether `account` has `role`.
    pub fn has(&self, role: &str, account: &Address) -> bool {
        self.members.contains(&(role.to_string(), *account))
    }

    /// Revert with "caller lacks role ROLE" unless the caller has `role`.
    pub fn require_role(&self, role: &str) {
        if !self.has(role, &env::caller()) {
            env::revert(format!("caller lacks role {role}"));
        }
    }

    /// The accounts holding `role`, in address order.
    pub fn members(&self, role: &str) -> impl Iterator<Item = Address> {
        self.members
            .prefix_iter(&role.to_string())
            .map(|((_, account), _)| account)
    }
}

/// A pause switch for emergency stops.
pub struct Pausable {
    paused: Value<bool>,
}

impl StorageField for Pausable {
    fn at(prefix: Vec<u8>) -> Self {
        Pausable {
            paused: Value::at(field_prefix(&prefix, "paused")),
        }
    }
}

impl Pausable {
    /// The ABI lines of the events a `Pausable` emits.
    pub const EVENTS_ABI: &'static str = concat!(
        "{\"event\":\"Paused\",\"indexed\":[{\"name\":\"account\",\"type\":\"Address\"}],\"data\":[]}\n",
        "{\"event\":\"Unpaused\",\"indexed\":[{\"name\":\"account\",\"type\":\"Address\"}],\"data\":[]}\n",
    );

    /// Whether the contract is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.get().unwrap_or(false)
    }

    /// Pause; reverts with "already paused" if it is.
    pub fn pause(&self) {
        if self.is_paused() {
            env::revert("already paused");
        }
        self.paused.set(&true);
        Paused { account: env::caller() }.emit();
    }

    /// Unpause; reverts with "not paused" unless paused.
    pub fn unpause(&self) {
        if !self.is_paused() {
            env::revert("not paused");
        }
        self.paused.remove();
        Unpaused { account: env::caller() }.emit();
    }

    /// Revert with "contract is paused" when paused.
    pub fn require_not_paused(&self) {
        if self.is_paused() {
            env::revert("contract is paused");
        }
    }

    /// Revert with "contract is not paused" unless paused.
    pub fn require_paused(&self) {
        if !self.is_paused() {
            env::revert("contract is not paused");
        }
    }
}

/// A state with an [`Ownable`], for `#[guard(owner)]`; derived by `ContractState`.
pub trait HasOwnable {
    /// The `Ownable` field.
    fn ownable(&self) -> &Ownable;
}

/// A state with [`Roles`], for `#[guard(role = "...")]`; derived by `ContractState`.
pub trait HasRoles {
    /// The `Roles` field.
    fn roles(&self) -> &Roles;
}

/// A state with a [`Pausable`], for `#[guard(not_paused)]`; derived by `ContractState`.
pub trait HasPausable {
    /// The `Pausable` field.
    fn pausable(&self) -> &Pausable;
}
