//! `energy-token`: the fungible token the energy market settles in.
//!
//! * 18 decimals: amounts are [`U256`]s in the smallest unit (1 token = 10^18 units), the unit
//!   `energy-units`' `settle` produces.
//! * Permissions: the owner (the deployer) mints; any holder transfers, approves and burns its
//!   own tokens; a spender with an allowance moves the holder's tokens with `transfer_from`
//!   (how the market pulls a buyer's payment into escrow).
//! * Events: [`Transfer`] (`from` is the zero address for a mint, `to` for a burn) and
//!   [`Approval`].

use joule_contract_std::prelude::*;

/// Tokens moved (`from` zero: minted; `to` zero: burnt).
#[event]
#[derive(Clone, Debug, PartialEq)]
pub struct Transfer {
    #[indexed]
    pub from: Address,
    #[indexed]
    pub to: Address,
    pub amount: U256,
}

/// `owner` let `spender` move up to `amount` of its tokens.
#[event]
#[derive(Clone, Debug, PartialEq)]
pub struct Approval {
    #[indexed]
    pub owner: Address,
    #[indexed]
    pub spender: Address,
    pub amount: U256,
}

/// The token's state.
#[derive(ContractState)]
pub struct EnergyToken {
    owner: Ownable,
    name: Value<String>,
    symbol: Value<String>,
    supply: Value<U256>,
    balances: Map<Address, U256>,
    allowances: Map<(Address, Address), U256>,
}

/// Decimals of the token: amounts are in units of 10^-18 token.
pub const DECIMALS: u8 = 18;

impl EnergyToken {
    fn balance(&self, account: &Address) -> U256 {
        self.balances.get_or(account, U256::ZERO)
    }

    fn set_balance(&self, account: &Address, amount: U256) {
        if amount.is_zero() {
            self.balances.remove(account);
        } else {
            self.balances.insert(account, &amount);
        }
    }

    fn move_tokens(&self, from: Address, to: Address, amount: U256) -> Result<(), String> {
        if to == Address::ZERO {
            return Err("transfer to the zero address".into());
        }
        let available = self.balance(&from);
        if available < amount {
            return Err(format!("insufficient balance: {available} < {amount}"));
        }
        if from != to {
            self.set_balance(&from, available - amount);
            let credited = self.balance(&to).checked_add(amount).ok_or("balance overflow")?;
            self.set_balance(&to, credited);
        }
        Transfer { from, to, amount }.emit();
        Ok(())
    }
}

#[contract]
impl EnergyToken {
    /// Deploy: the caller becomes the owner (the minter).
    #[init]
    pub fn new(name: String, symbol: String) -> Result<Self, String> {
        if name.is_empty() || name.len() > 64 || symbol.is_empty() || symbol.len() > 16 {
            return Err("name is 1-64 bytes, symbol 1-16".into());
        }
        let token = Self::default();
        token.owner.init(env::caller());
        token.name.set(&name);
        token.symbol.set(&symbol);
        Ok(token)
    }

    /// Create `amount` for `to` (owner only); returns the new total supply.
    #[guard(owner)]
    pub fn mint(&mut self, to: Address, amount: U256) -> Result<U256, String> {
        if to == Address::ZERO {
            return Err("mint to the zero address".into());
        }
        let supply = self
            .supply
            .get_or(U256::ZERO)
            .checked_add(amount)
            .ok_or("supply overflow")?;
        self.supply.set(&supply);
        self.set_balance(&to, self.balance(&to) + amount);
        Transfer {
            from: Address::ZERO,
            to,
            amount,
        }
        .emit();
        Ok(supply)
    }

    /// Destroy `amount` of the caller's tokens.
    pub fn burn(&mut self, amount: U256) -> Result<(), String> {
        let from = env::caller();
        let available = self.balance(&from);
        if available < amount {
            return Err(format!("insufficient balance: {available} < {amount}"));
        }
        self.set_balance(&from, available - amount);
        self.supply.set(&(self.supply.get_or(U256::ZERO) - amount));
        Transfer {
            from,
            to: Address::ZERO,
            amount,
        }
        .emit();
        Ok(())
    }

    /// Move `amount` of the caller's tokens to `to`.
    pub fn transfer(&mut self, to: Address, amount: U256) -> Result<(), String> {
        self.move_tokens(env::caller(), to, amount)
    }

    /// Let `spender` move up to `amount` of the caller's tokens (replacing any allowance).
    pub fn approve(&mut self, spender: Address, amount: U256) {
        let owner = env::caller();
        if amount.is_zero() {
            self.allowances.remove(&(owner, spender));
        } else {
            self.allowances.insert(&(owner, spender), &amount);
        }
        Approval { owner, spender, amount }.emit();
    }

    /// Move `amount` of `from`'s tokens to `to`, spending the caller's allowance from `from`.
    pub fn transfer_from(&mut self, from: Address, to: Address, amount: U256) -> Result<(), String> {
        let spender = env::caller();
        let key = (from, spender);
        let allowed = self.allowances.get_or(&key, U256::ZERO);
        if allowed < amount {
            return Err(format!("allowance exceeded: {allowed} < {amount}"));
        }
        self.move_tokens(from, to, amount)?;
        let left = allowed - amount;
        if left.is_zero() {
            self.allowances.remove(&key);
        } else {
            self.allowances.insert(&key, &left);
        }
        Ok(())
    }

    /// The balance of `account`.
    pub fn balance_of(&self, account: Address) -> U256 {
        self.balance(&account)
    }

    /// What `spender` may still move of `owner`'s tokens.
    pub fn allowance(&self, owner: Address, spender: Address) -> U256 {
        self.allowances.get_or(&(owner, spender), U256::ZERO)
    }

    /// All tokens in existence.
    pub fn total_supply(&self) -> U256 {
        self.supply.get_or(U256::ZERO)
    }

    /// `(name, symbol, decimals)`.
    pub fn metadata(&self) -> (String, String, u8) {
        (self.name.get_or_default(), self.symbol.get_or_default(), DECIMALS)
    }

    /// The owner (the minter).
    pub fn owner(&self) -> Option<Address> {
        self.owner.owner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use joule_contract_std::testing::{self, account};

    fn t(n: u128) -> U256 {
        U256::new(n)
    }

    fn setup() {
        testing::reset();
        testing::set_caller(account(1));
        testing::init::<EnergyToken, _>(&("Joule Energy".to_string(), "JEN".to_string())).unwrap();
    }

    fn balance(who: u8) -> U256 {
        testing::query::<EnergyToken, _, _>("balance_of", &(account(who),)).unwrap()
    }

    #[test]
    fn owner_mints_others_cannot() {
        setup();
        let supply: U256 = testing::call::<EnergyToken, _, _>("mint", &(account(2), t(100))).unwrap();
        assert_eq!(supply, t(100));
        testing::set_caller(account(2));
        let err = testing::call::<EnergyToken, _, U256>("mint", &(account(2), t(1))).unwrap_err();
        assert_eq!(err, "caller is not the owner");
        assert_eq!(balance(2), t(100));
        assert_eq!(
            testing::query::<EnergyToken, _, U256>("total_supply", &()).unwrap(),
            t(100)
        );
        let minted = testing::events().into_iter().find(|e| e.name == "Transfer").unwrap();
        assert!(minted.is(&Transfer {
            from: Address::ZERO,
            to: account(2),
            amount: t(100)
        }));
        let meta: (String, String, u8) = testing::query::<EnergyToken, _, _>("metadata", &()).unwrap();
        assert_eq!(meta, ("Joule Energy".to_string(), "JEN".to_string(), 18));
    }

    #[test]
    fn transfer_moves_balances() {
        setup();
        testing::call::<EnergyToken, _, U256>("mint", &(account(2), t(100))).unwrap();
        testing::set_caller(account(2));
        testing::call::<EnergyToken, _, ()>("transfer", &(account(3), t(30))).unwrap();
        assert_eq!((balance(2), balance(3)), (t(70), t(30)));
        let err = testing::call::<EnergyToken, _, ()>("transfer", &(account(3), t(71))).unwrap_err();
        assert_eq!(err, "insufficient balance: 70 < 71");
        let err = testing::call::<EnergyToken, _, ()>("transfer", &(Address::ZERO, t(1))).unwrap_err();
        assert_eq!(err, "transfer to the zero address");
        testing::call::<EnergyToken, _, ()>("burn", &(t(20),)).unwrap();
        assert_eq!(balance(2), t(50));
        assert_eq!(
            testing::query::<EnergyToken, _, U256>("total_supply", &()).unwrap(),
            t(80)
        );
    }

    #[test]
    fn approve_and_transfer_from() {
        setup();
        testing::call::<EnergyToken, _, U256>("mint", &(account(2), t(100))).unwrap();
        testing::set_caller(account(2));
        testing::call::<EnergyToken, _, ()>("approve", &(account(9), t(40))).unwrap();
        assert!(testing::events().iter().any(|e| e.is(&Approval {
            owner: account(2),
            spender: account(9),
            amount: t(40)
        })));
        testing::set_caller(account(9));
        testing::call::<EnergyToken, _, ()>("transfer_from", &(account(2), account(9), t(25))).unwrap();
        assert_eq!((balance(2), balance(9)), (t(75), t(25)));
        let left: U256 = testing::query::<EnergyToken, _, _>("allowance", &(account(2), account(9))).unwrap();
        assert_eq!(left, t(15));
        let err = testing::call::<EnergyToken, _, ()>("transfer_from", &(account(2), account(9), t(16))).unwrap_err();
        assert_eq!(err, "allowance exceeded: 15 < 16");
        // A spender without an allowance.
        testing::set_caller(account(8));
        assert!(
            testing::call::<EnergyToken, _, ()>("transfer_from", &(account(2), account(8), t(1)))
                .unwrap_err()
                .starts_with("allowance exceeded")
        );
    }
}
