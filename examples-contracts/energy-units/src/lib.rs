//! `energy-units`: a contract library (guide §4.3.5) of energy-unit conversions and settlement
//! arithmetic, deployed once and called by other contracts through `calls.library` (the
//! generated [`EnergyUnitsLib`]). Pure functions: no storage, no events.
//!
//! # Units
//!
//! * Energy quantities are [`Decimal`]s (18 decimal places) in the unit the function names
//!   (Wh, kWh, MWh).
//! * A price is a [`Decimal`] number of **tokens per kWh**.
//! * A token amount is a [`U256`] in the token's **smallest unit**, for a token of 18
//!   decimals (as `energy-token`): 1 token = 10^18 units, so a token amount is the atomics of
//!   the [`Decimal`] number of tokens.
//!
//! # Rounding
//!
//! * Multiplying by a power of ten (kWh → Wh, MWh → kWh) is exact; a result above
//!   [`Decimal::MAX`] is an error.
//! * Dividing by a power of ten (Wh → kWh, kWh → MWh) rounds down to 18 places.
//! * [`EnergyUnits::settle`] and [`EnergyUnits::pro_rata`] round **down** (the payer never
//!   pays more than the exact value; the error is below one smallest unit).
//! * [`EnergyUnits::fee`] rounds **up** (in the fee collector's favour), so
//!   `net + fee == amount` always holds in [`EnergyUnits::split_fee`].
//!
//! Every error is a `String` (the call reverts, or, through `EnergyUnitsLib`, the caller gets
//! `CallError::Failed("…")`).

use joule_contract_std::prelude::*;

/// 10^18: the atomics of one unit of a [`Decimal`].
const ONE: u128 = 1_000_000_000_000_000_000;
/// Basis points in a whole.
pub const BPS_WHOLE: u16 = 10_000;

/// The library (no state).
pub struct EnergyUnits;

fn thousand() -> U256 {
    U256::new(1000)
}

#[contract(library)]
impl EnergyUnits {
    /// Wh → kWh (÷ 1000, rounded down to 18 places).
    pub fn wh_to_kwh(wh: Decimal) -> Decimal {
        Decimal::raw(wh.atomics() / thousand())
    }

    /// kWh → Wh (× 1000, exact; an error above `Decimal::MAX`).
    pub fn kwh_to_wh(kwh: Decimal) -> Result<Decimal, String> {
        scale_up(kwh, "kwh_to_wh")
    }

    /// kWh → MWh (÷ 1000, rounded down to 18 places).
    pub fn kwh_to_mwh(kwh: Decimal) -> Decimal {
        Decimal::raw(kwh.atomics() / thousand())
    }

    /// MWh → kWh (× 1000, exact; an error above `Decimal::MAX`).
    pub fn mwh_to_kwh(mwh: Decimal) -> Result<Decimal, String> {
        scale_up(mwh, "mwh_to_kwh")
    }

    /// The whole MWh in `kwh` (rounded down) and the kWh left over: `(mwh, rest_kwh)` with
    /// `kwh == mwh × 1000 + rest_kwh` exactly. An error if the MWh count exceeds `u64`.
    pub fn whole_mwh(kwh: Decimal) -> Result<(u64, Decimal), String> {
        let per_mwh = U256::new(ONE * 1000);
        let atomics = kwh.atomics();
        let mwh = u64::try_from(atomics / per_mwh).map_err(|_| format!("{kwh} kWh is too many MWh"))?;
        Ok((mwh, Decimal::raw(atomics % per_mwh)))
    }

    /// The token amount (smallest unit of an 18-decimal token) for `quantity_kwh` at
    /// `price_per_kwh` tokens per kWh: `floor(quantity × price × 10^18)`, computed exactly
    /// (512-bit intermediate) and rounded down. An error on overflow.
    pub fn settle(quantity_kwh: Decimal, price_per_kwh: Decimal) -> Result<U256, String> {
        price_per_kwh
            .checked_mul_int(quantity_kwh.atomics())
            .ok_or_else(|| format!("settle overflows: {quantity_kwh} kWh at {price_per_kwh}"))
    }

    /// `total × part / whole` rounded down (the share of `total` that `part` of `whole`
    /// earns): e.g. the payment for `part` kWh delivered out of `whole` kWh bought. An error
    /// if `whole` is 0 or `part > whole`.
    pub fn pro_rata(total: U256, part: Decimal, whole: Decimal) -> Result<U256, String> {
        if whole.is_zero() {
            return Err("pro_rata: whole is 0".into());
        }
        if part > whole {
            return Err(format!("pro_rata: part {part} is more than whole {whole}"));
        }
        total
            .checked_mul_div(part.atomics(), whole.atomics())
            .ok_or_else(|| "pro_rata overflows".to_string())
    }

    /// A fee of `bps` basis points (1/10 000) of `amount`, rounded up. An error if `bps` is
    /// over 10 000.
    pub fn fee(amount: U256, bps: u16) -> Result<U256, String> {
        if bps > BPS_WHOLE {
            return Err(format!("fee of {bps} bps is over {BPS_WHOLE}"));
        }
        amount
            .checked_mul_div_ceil(U256::from(bps), U256::from(BPS_WHOLE))
            .ok_or_else(|| "fee overflows".to_string())
    }

    /// `amount` split as `(net, fee)` for a fee of `bps` basis points (see
    /// [`EnergyUnits::fee`]); `net + fee == amount`.
    pub fn split_fee(amount: U256, bps: u16) -> Result<(U256, U256), String> {
        let fee = Self::fee(amount, bps)?;
        Ok((amount - fee, fee))
    }
}

fn scale_up(value: Decimal, what: &str) -> Result<Decimal, String> {
    value
        .atomics()
        .checked_mul(thousand())
        .map(Decimal::raw)
        .ok_or_else(|| format!("{what} overflows: {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use joule_contract_std::testing::{self, account};
    use joule_contract_std::{Contract, Entry, borsh};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn conversions_round_trip_and_round_down() {
        assert_eq!(EnergyUnits::wh_to_kwh(d("1500")), d("1.5"));
        assert_eq!(EnergyUnits::kwh_to_wh(d("1.5")).unwrap(), d("1500"));
        assert_eq!(EnergyUnits::kwh_to_mwh(d("2500")), d("2.5"));
        assert_eq!(EnergyUnits::mwh_to_kwh(d("2.5")).unwrap(), d("2500"));
        // Below 18 places: rounded down.
        assert_eq!(EnergyUnits::wh_to_kwh(d("0.000000000000000999")), Decimal::ZERO);
        assert_eq!(
            EnergyUnits::kwh_to_mwh(d("0.000000000000001999")),
            d("0.000000000000000001")
        );
        assert!(EnergyUnits::kwh_to_wh(Decimal::MAX).unwrap_err().contains("overflows"));
        assert!(EnergyUnits::mwh_to_kwh(Decimal::MAX).is_err());
    }

    #[test]
    fn whole_mwh_splits_exactly() {
        assert_eq!(EnergyUnits::whole_mwh(d("3999.5")).unwrap(), (3, d("999.5")));
        assert_eq!(EnergyUnits::whole_mwh(d("999.999")).unwrap(), (0, d("999.999")));
        assert_eq!(EnergyUnits::whole_mwh(d("1000")).unwrap(), (1, Decimal::ZERO));
        assert!(EnergyUnits::whole_mwh(Decimal::MAX).is_err());
    }

    #[test]
    fn settle_is_exact_and_rounds_down() {
        // 12.5 kWh at 0.2 tokens/kWh = 2.5 tokens = 2.5e18 units.
        assert_eq!(
            EnergyUnits::settle(d("12.5"), d("0.2")).unwrap(),
            U256::new(2_500_000_000_000_000_000)
        );
        // 1e-18 kWh at 0.5 tokens/kWh is half a unit: rounded down to 0.
        assert_eq!(
            EnergyUnits::settle(d("0.000000000000000001"), d("0.5")).unwrap(),
            U256::ZERO
        );
        // 3 × 1/3 tokens: the price already lost its last digit, the product is exact.
        assert_eq!(
            EnergyUnits::settle(d("3"), d("0.333333333333333333")).unwrap(),
            U256::new(999_999_999_999_999_999)
        );
        assert!(EnergyUnits::settle(Decimal::MAX, d("2")).is_err());
    }

    #[test]
    fn pro_rata_and_fees() {
        let total = U256::new(1000);
        assert_eq!(EnergyUnits::pro_rata(total, d("1"), d("3")).unwrap(), U256::new(333));
        assert_eq!(EnergyUnits::pro_rata(total, d("3"), d("3")).unwrap(), total);
        assert!(EnergyUnits::pro_rata(total, d("4"), d("3")).is_err());
        assert!(EnergyUnits::pro_rata(total, d("0"), d("0")).is_err());
        // 25 bps of 1001 = 2.5025, rounded up to 3.
        assert_eq!(EnergyUnits::fee(U256::new(1001), 25).unwrap(), U256::new(3));
        assert_eq!(EnergyUnits::fee(U256::new(1000), 0).unwrap(), U256::ZERO);
        assert_eq!(
            EnergyUnits::split_fee(U256::new(1001), 25).unwrap(),
            (U256::new(998), U256::new(3))
        );
        assert_eq!(EnergyUnits::fee(U256::MAX, 10_000).unwrap(), U256::MAX);
        assert!(EnergyUnits::fee(U256::new(1), 10_001).is_err());
    }

    #[test]
    fn dispatch_and_library_calls() {
        testing::reset();
        // Through the generated dispatch, as the host calls it.
        let args = borsh::to_vec(&(d("2"), d("0.5"))).unwrap();
        let out = EnergyUnits::dispatch(Entry::Query, "settle", &args).unwrap();
        assert_eq!(borsh::from_slice::<U256>(&out).unwrap(), U256::new(ONE));
        // Through `EnergyUnitsLib`, as a contract calls it (library mode: no storage).
        let at = account(0xe1);
        testing::register_contract::<EnergyUnits>(at);
        let lib = EnergyUnitsLib::new(at);
        assert_eq!(lib.kwh_to_mwh(d("1")).unwrap(), d("0.001"));
        assert_eq!(
            lib.pro_rata(U256::new(10), d("1"), d("0")).unwrap_err().to_string(),
            "call failed: pro_rata: whole is 0"
        );
        assert!(EnergyUnits::ABI.contains("\"library\":true"));
    }
}
