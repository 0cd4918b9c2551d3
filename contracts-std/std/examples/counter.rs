//! A minimal contract, built for wasm32 to check the export and the `joule-abi/1` section:
//!
//! ```text
//! cargo build --release --target wasm32-unknown-unknown --example counter
//! ```

use joule_contract_std::prelude::*;

/// A counter's configuration.
#[contract_type]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max: u64,
    pub step: Option<u64>,
}

/// The counter moved.
#[event]
pub struct Counted {
    #[indexed]
    pub by: Address,
    pub value: u64,
}

#[derive(ContractState)]
pub struct Counter {
    owner: Ownable,
    value: Value<u64>,
    limits: Value<Limits>,
    history: Map<u64, u64>,
}

#[contract]
impl Counter {
    #[init]
    pub fn new(limits: Limits) -> Result<Self, String> {
        if limits.max == 0 {
            return Err("max must be positive".into());
        }
        let counter = Self::default();
        counter.owner.init(env::caller());
        counter.limits.set(&limits);
        Ok(counter)
    }

    pub fn increment(&mut self) -> Result<u64, String> {
        let limits = self.limits.expect("not initialized");
        let value = self.value.get_or(0) + limits.step.unwrap_or(1);
        if value > limits.max {
            return Err(format!("counter would exceed {}", limits.max));
        }
        self.value.set(&value);
        self.history.insert(&env::height(), &value);
        Counted {
            by: env::caller(),
            value,
        }
        .emit();
        Ok(value)
    }

    #[guard(owner)]
    pub fn reset(&mut self) {
        self.value.set(&0);
    }

    pub fn get(&self) -> u64 {
        self.value.get_or(0)
    }

    pub fn history(&self, after: Option<u64>, limit: u32) -> Vec<(u64, u64)> {
        let it = match after {
            Some(h) => self.history.iter_from(&h),
            None => self.history.iter(),
        };
        it.take(limit as usize).collect()
    }
}
