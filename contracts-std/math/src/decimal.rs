//! [`Decimal`]: unsigned fixed-point number with 18 decimal places, stored as `U256` atomics
//! (value × 10^18). The type contracts use for kWh quantities, prices and ratios.

use core::fmt;
use core::iter::{Product, Sum};
use core::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Rem, RemAssign, Sub, SubAssign};
use core::str::FromStr;

use crate::U256;
use crate::int::{division_by_zero, overflow};
use crate::wide::mul_div;

/// 10^18 as the raw inner type.
const FRACTIONAL_RAW: ethnum::U256 = ethnum::U256::new(1_000_000_000_000_000_000);

/// Unsigned fixed-point number with exactly 18 decimal places (like cosmwasm-std's `Decimal256`).
///
/// Addition, subtraction and remainder are exact. Multiplication and division are computed through
/// a 512-bit intermediate and then **rounded down** (toward zero) to 18 places, so the only error
/// is the final truncation: `(1/3) * 3 == 0.999999999999999999`, not 1. All operators panic on
/// overflow or division by zero (reverting the contract call); `checked_*` variants return `None`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Decimal(U256);

/// Error of the fallible `Decimal` constructors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecimalError {
    /// The value does not fit (its atomics exceed `U256::MAX`).
    Overflow,
    /// A ratio with a zero denominator.
    DivisionByZero,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecimalError::Overflow => "Decimal overflow",
            DecimalError::DivisionByZero => "Decimal division by zero",
        })
    }
}

impl core::error::Error for DecimalError {}

/// Why a string is not a valid [`Decimal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseDecimalError {
    /// The empty string.
    Empty,
    /// A leading `-`: `Decimal` is unsigned.
    Negative,
    /// Anything but `DIGITS` or `DIGITS.DIGITS` (no sign, exponent, spaces or `_`).
    InvalidFormat,
    /// More than 18 digits after the point; rounding silently would lose value, so it is refused.
    TooManyDecimalPlaces,
    /// The value exceeds [`Decimal::MAX`].
    Overflow,
}

impl fmt::Display for ParseDecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseDecimalError::Empty => "cannot parse Decimal from empty string",
            ParseDecimalError::Negative => "Decimal cannot be negative",
            ParseDecimalError::InvalidFormat => "invalid Decimal: expected digits with an optional '.' and fraction",
            ParseDecimalError::TooManyDecimalPlaces => "Decimal has more than 18 decimal places",
            ParseDecimalError::Overflow => "Decimal value too large",
        })
    }
}

impl core::error::Error for ParseDecimalError {}

impl Decimal {
    /// Number of decimal places of every `Decimal`.
    pub const DECIMAL_PLACES: u32 = 18;
    /// 0.
    pub const ZERO: Self = Self(U256::ZERO);
    /// 1.
    pub const ONE: Self = Self(U256::from_inner(FRACTIONAL_RAW));
    /// The smallest value, 0.
    pub const MIN: Self = Self::ZERO;
    /// The largest value, `U256::MAX / 10^18` (≈ 1.16 × 10^59).
    pub const MAX: Self = Self(U256::MAX);

    /// 10^18: the atomics of 1.
    const FRACTIONAL: U256 = U256::from_inner(FRACTIONAL_RAW);

    /// Builds a `Decimal` directly from its atomics (value × 10^18), in `const` context.
    #[inline]
    pub const fn raw(atomics: U256) -> Self {
        Self(atomics)
    }

    /// `atomics / 10^decimal_places`, e.g. `from_atomics(12345u64, 3) == 12.345`.
    ///
    /// With more than 18 places the extra digits are truncated (rounded down), as in cosmwasm.
    /// Fails with [`DecimalError::Overflow`] if the value exceeds [`Decimal::MAX`].
    pub fn from_atomics(atomics: impl Into<U256>, decimal_places: u32) -> Result<Self, DecimalError> {
        let atomics = atomics.into();
        if decimal_places <= Self::DECIMAL_PLACES {
            let factor = U256::new(10).pow(Self::DECIMAL_PLACES - decimal_places);
            atomics.checked_mul(factor).map(Self).ok_or(DecimalError::Overflow)
        } else {
            // 10^78 > U256::MAX: beyond that every atomics value truncates to 0.
            match U256::new(10).checked_pow(decimal_places - Self::DECIMAL_PLACES) {
                Some(divisor) => Ok(Self(atomics / divisor)),
                None => Ok(Self::ZERO),
            }
        }
    }

    /// `numerator / denominator`, rounded down to 18 places, computed exactly (512-bit intermediate).
    pub fn checked_from_ratio(numerator: impl Into<U256>, denominator: impl Into<U256>) -> Result<Self, DecimalError> {
        let (n, d) = (numerator.into(), denominator.into());
        if d.is_zero() {
            return Err(DecimalError::DivisionByZero);
        }
        match mul_div(n.0, FRACTIONAL_RAW, d.0) {
            Some((q, _)) => Ok(Self(U256::from_inner(q))),
            None => Err(DecimalError::Overflow),
        }
    }

    /// `numerator / denominator`, rounded down to 18 places.
    ///
    /// # Panics
    /// If `denominator` is 0 or the ratio exceeds [`Decimal::MAX`].
    #[track_caller]
    pub fn from_ratio(numerator: impl Into<U256>, denominator: impl Into<U256>) -> Self {
        match Self::checked_from_ratio(numerator, denominator) {
            Ok(v) => v,
            Err(DecimalError::DivisionByZero) => division_by_zero("Decimal"),
            Err(DecimalError::Overflow) => overflow("Decimal", "from_ratio"),
        }
    }

    /// `n` as a `Decimal`, or `None` if `n > Decimal::MAX` (any `u128` fits).
    pub fn checked_from_integer(n: impl Into<U256>) -> Option<Self> {
        n.into().checked_mul(Self::FRACTIONAL).map(Self)
    }

    /// `n` as a `Decimal`. Panics if `n` exceeds [`Decimal::MAX`] (never for a `u128`).
    #[track_caller]
    pub fn from_integer(n: impl Into<U256>) -> Self {
        match Self::checked_from_integer(n) {
            Some(v) => v,
            None => overflow("Decimal", "from_integer"),
        }
    }

    /// `x` percent: `percent(50) == 0.5`.
    pub fn percent(x: u64) -> Self {
        Self(U256::from(x) * U256::new(10_000_000_000_000_000))
    }

    /// `x` per mille: `permille(125) == 0.125`.
    pub fn permille(x: u64) -> Self {
        Self(U256::from(x) * U256::new(1_000_000_000_000_000))
    }

    /// `x` basis points (1/10000): `bps(25) == 0.0025`.
    pub fn bps(x: u64) -> Self {
        Self(U256::from(x) * U256::new(100_000_000_000_000))
    }

    /// The atomics: value × 10^18.
    #[inline]
    pub const fn atomics(self) -> U256 {
        self.0
    }

    /// Always 18.
    #[inline]
    pub const fn decimal_places(self) -> u32 {
        Self::DECIMAL_PLACES
    }

    /// `true` for 0 (the counterpart of a truth test, as for the integer types).
    #[inline]
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Unary plus (§4.3.3 `+x`): returns `self`. Rust has no unary `+` operator.
    #[inline]
    #[must_use]
    pub const fn pos(self) -> Self {
        self
    }

    /// Largest integer `<= self`.
    pub fn floor(self) -> U256 {
        self.0 / Self::FRACTIONAL
    }

    /// Smallest integer `>= self`. Never overflows: `Decimal::MAX.ceil()` is far below `U256::MAX`.
    pub fn ceil(self) -> U256 {
        let floor = self.floor();
        if (self.0 % Self::FRACTIONAL).is_zero() {
            floor
        } else {
            floor + U256::ONE
        }
    }

    /// Nearest integer, halves rounded up (`2.5 → 3`, `2.4999… → 2`).
    pub fn round(self) -> U256 {
        let floor = self.floor();
        let frac = self.0 % Self::FRACTIONAL;
        if frac >= Self::FRACTIONAL / U256::new(2) {
            floor + U256::ONE
        } else {
            floor
        }
    }

    /// `self + rhs`, or `None` on overflow.
    pub fn checked_add(self, rhs: Self) -> Option<Self> {
        self.0.checked_add(rhs.0).map(Self)
    }

    /// `self - rhs`, or `None` if the result would be negative.
    pub fn checked_sub(self, rhs: Self) -> Option<Self> {
        self.0.checked_sub(rhs.0).map(Self)
    }

    /// `self * rhs` rounded down to 18 places, or `None` on overflow.
    pub fn checked_mul(self, rhs: Self) -> Option<Self> {
        mul_div(self.0.0, rhs.0.0, FRACTIONAL_RAW).map(|(q, _)| Self(U256::from_inner(q)))
    }

    /// `self / rhs` rounded down to 18 places, or `None` if `rhs` is 0 or the result overflows.
    pub fn checked_div(self, rhs: Self) -> Option<Self> {
        mul_div(self.0.0, FRACTIONAL_RAW, rhs.0.0).map(|(q, _)| Self(U256::from_inner(q)))
    }

    /// `self % rhs` (exact: `self - rhs * trunc(self / rhs)`), or `None` if `rhs` is 0.
    pub fn checked_rem(self, rhs: Self) -> Option<Self> {
        self.0.checked_rem(rhs.0).map(Self)
    }

    /// `self ** exp` by repeated squaring (each step rounded down), or `None` on overflow.
    pub fn checked_pow(self, mut exp: u32) -> Option<Self> {
        let mut base = self;
        let mut acc = Self::ONE;
        while exp > 0 {
            if exp & 1 == 1 {
                acc = acc.checked_mul(base)?;
            }
            exp >>= 1;
            if exp > 0 {
                base = base.checked_mul(base)?;
            }
        }
        Some(acc)
    }

    /// `1 / self` rounded down, or `None` for 0.
    pub fn checked_inv(self) -> Option<Self> {
        Self::ONE.checked_div(self)
    }

    /// §4.3.3 `**`: `self ** exp`, each squaring step rounded down. Panics on overflow.
    #[must_use]
    #[track_caller]
    pub fn pow(self, exp: u32) -> Self {
        match self.checked_pow(exp) {
            Some(v) => v,
            None => overflow("Decimal", "pow"),
        }
    }

    /// `self + rhs`, clamped to [`Decimal::MAX`].
    #[must_use]
    pub fn saturating_add(self, rhs: Self) -> Self {
        Self(self.0.saturating_add(rhs.0))
    }

    /// `self - rhs`, clamped to 0.
    #[must_use]
    pub fn saturating_sub(self, rhs: Self) -> Self {
        Self(self.0.saturating_sub(rhs.0))
    }

    /// `self * rhs`, clamped to [`Decimal::MAX`].
    #[must_use]
    pub fn saturating_mul(self, rhs: Self) -> Self {
        self.checked_mul(rhs).unwrap_or(Self::MAX)
    }

    /// `self ** exp`, clamped to [`Decimal::MAX`].
    #[must_use]
    pub fn saturating_pow(self, exp: u32) -> Self {
        self.checked_pow(exp).unwrap_or(Self::MAX)
    }

    /// `|self - other|`.
    #[must_use]
    pub fn abs_diff(self, other: Self) -> Self {
        Self(self.0.abs_diff(other.0))
    }

    /// `floor(self * n)`: e.g. price per kWh × kWh count → integer token amount. `None` on overflow.
    pub fn checked_mul_int(self, n: U256) -> Option<U256> {
        n.checked_mul_div(self.0, Self::FRACTIONAL)
    }

    /// `floor(self * n)`, computed exactly. Panics ("Decimal overflow in mul_int") on overflow.
    #[track_caller]
    pub fn mul_int(self, n: U256) -> U256 {
        match self.checked_mul_int(n) {
            Some(v) => v,
            None => overflow("Decimal", "mul_int"),
        }
    }

    /// `ceil(self * n)`: for amounts that must round in the protocol's favour (fees). `None` on overflow.
    pub fn checked_mul_int_ceil(self, n: U256) -> Option<U256> {
        n.checked_mul_div_ceil(self.0, Self::FRACTIONAL)
    }

    /// `ceil(self * n)`, computed exactly. Panics on overflow.
    #[track_caller]
    pub fn mul_int_ceil(self, n: U256) -> U256 {
        match self.checked_mul_int_ceil(n) {
            Some(v) => v,
            None => overflow("Decimal", "mul_int"),
        }
    }
}

macro_rules! decimal_binop {
    ($Tr:ident, $m:ident, $TrA:ident, $mA:ident, $checked:ident, $op:literal, $by_zero:expr) => {
        impl $Tr for Decimal {
            type Output = Self;

            /// Panics on overflow or division by zero, whatever the build profile.
            #[inline]
            #[track_caller]
            fn $m(self, rhs: Self) -> Self {
                match self.$checked(rhs) {
                    Some(v) => v,
                    None if $by_zero && rhs.is_zero() => division_by_zero("Decimal"),
                    None => overflow("Decimal", $op),
                }
            }
        }

        impl $TrA for Decimal {
            #[inline]
            #[track_caller]
            fn $mA(&mut self, rhs: Self) {
                *self = $Tr::$m(*self, rhs);
            }
        }
    };
}

decimal_binop!(Add, add, AddAssign, add_assign, checked_add, "add", false);
decimal_binop!(Sub, sub, SubAssign, sub_assign, checked_sub, "sub", false);
decimal_binop!(Mul, mul, MulAssign, mul_assign, checked_mul, "mul", false);
decimal_binop!(Div, div, DivAssign, div_assign, checked_div, "div", true);
decimal_binop!(Rem, rem, RemAssign, rem_assign, checked_rem, "rem", true);

impl Sum for Decimal {
    #[track_caller]
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, |a, b| a + b)
    }
}

impl<'a> Sum<&'a Decimal> for Decimal {
    #[track_caller]
    fn sum<I: Iterator<Item = &'a Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, |a, b| a + *b)
    }
}

impl Product for Decimal {
    #[track_caller]
    fn product<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ONE, |a, b| a * b)
    }
}

/// Parses `DIGITS` or `DIGITS.DIGITS` with at most 18 fractional digits.
impl FromStr for Decimal {
    type Err = ParseDecimalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseDecimalError::Empty);
        }
        if s.starts_with('-') {
            return Err(ParseDecimalError::Negative);
        }
        let (int_part, frac_part) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_part) || (s.contains('.') && !all_digits(frac_part)) {
            return Err(ParseDecimalError::InvalidFormat);
        }
        if frac_part.len() > Self::DECIMAL_PLACES as usize {
            return Err(ParseDecimalError::TooManyDecimalPlaces);
        }
        let frac_len = frac_part.len() as u32; // <= 18
        // Digits only at this point, so the only possible parse failure is overflow.
        let int = U256::from_str(int_part).map_err(|_| ParseDecimalError::Overflow)?;
        let frac = if frac_part.is_empty() {
            U256::ZERO
        } else {
            let digits = U256::from_str(frac_part).map_err(|_| ParseDecimalError::Overflow)?;
            digits * U256::new(10).pow(Self::DECIMAL_PLACES - frac_len)
        };
        int.checked_mul(Self::FRACTIONAL)
            .and_then(|v| v.checked_add(frac))
            .map(Self)
            .ok_or(ParseDecimalError::Overflow)
    }
}

/// Fixed-size stack buffer so that `Display` can honour width/alignment without allocating.
struct StackBuf {
    buf: [u8; 100],
    len: usize,
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Shortest exact form: no trailing zeros and no point for integers ("12.345", "0.5", "3").
impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let int = self.floor();
        // The fraction is < 10^18, so it fits a u64.
        let mut frac = (self.0 % Self::FRACTIONAL).into_inner().as_u64();
        let mut out = StackBuf { buf: [0; 100], len: 0 };
        write!(out, "{int}")?;
        if frac != 0 {
            let mut width = Self::DECIMAL_PLACES as usize;
            while frac.is_multiple_of(10) {
                frac /= 10;
                width -= 1;
            }
            write!(out, ".{frac:0width$}")?;
        }
        // Only ASCII digits and '.' were written.
        let s = core::str::from_utf8(&out.buf[..out.len]).map_err(|_| fmt::Error)?;
        f.pad(s)
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({self})")
    }
}

/// Borsh: the `U256` atomics, 32 bytes little-endian.
impl borsh::BorshSerialize for Decimal {
    fn serialize<W: borsh::io::Write>(&self, writer: &mut W) -> borsh::io::Result<()> {
        self.0.serialize(writer)
    }
}

impl borsh::BorshDeserialize for Decimal {
    fn deserialize_reader<R: borsh::io::Read>(reader: &mut R) -> borsh::io::Result<Self> {
        U256::deserialize_reader(reader).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{XorShift, assert_panics};
    use std::string::ToString;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn point_one_plus_point_two_is_exactly_point_three() {
        assert_eq!(d("0.1") + d("0.2"), d("0.3"));
        assert_eq!((d("0.1") + d("0.2")).to_string(), "0.3");
    }

    #[test]
    fn one_third_times_three_rounds_down() {
        // Documented behaviour: multiplication and division truncate to 18 places.
        let third = Decimal::from_ratio(1u8, 3u8);
        assert_eq!(third.to_string(), "0.333333333333333333");
        assert_eq!((third * Decimal::from_integer(3u8)).to_string(), "0.999999999999999999");
        assert_eq!(Decimal::ONE / Decimal::from_integer(3u8), third);
        assert_eq!(Decimal::from_ratio(2u8, 3u8).to_string(), "0.666666666666666666");
    }

    #[test]
    fn constructors_agree() {
        assert_eq!(Decimal::from_atomics(12345u64, 3), Ok(d("12.345")));
        assert_eq!(Decimal::from_atomics(5u8, 0), Ok(d("5")));
        assert_eq!(Decimal::from_atomics(1u8, 18), Ok(d("0.000000000000000001")));
        assert_eq!(Decimal::from_atomics(123u8, 20), Ok(d("0.000000000000000001")));
        assert_eq!(Decimal::from_atomics(U256::MAX, 100), Ok(Decimal::ZERO));
        assert_eq!(Decimal::from_atomics(U256::MAX, 0), Err(DecimalError::Overflow));
        assert_eq!(Decimal::from_ratio(1u8, 2u8), d("0.5"));
        assert_eq!(Decimal::percent(50), d("0.5"));
        assert_eq!(Decimal::permille(125), d("0.125"));
        assert_eq!(Decimal::bps(25), d("0.0025"));
        assert_eq!(Decimal::from_integer(u128::MAX).floor(), U256::from(u128::MAX));
        assert_eq!(Decimal::checked_from_integer(U256::MAX), None);
        assert_eq!(Decimal::raw(U256::new(7)).atomics(), U256::new(7));
        assert_eq!(Decimal::ONE.atomics(), U256::new(1_000_000_000_000_000_000));
        assert_eq!(Decimal::ONE.decimal_places(), 18);
        assert_eq!(Decimal::checked_from_ratio(1u8, 0u8), Err(DecimalError::DivisionByZero));
        assert_eq!(Decimal::checked_from_ratio(U256::MAX, 1u8), Err(DecimalError::Overflow));
        assert_panics("Decimal division by zero", || Decimal::from_ratio(1u8, 0u8));
        assert_panics("Decimal overflow in from_ratio", || Decimal::from_ratio(U256::MAX, 1u8));
    }

    #[test]
    fn display_has_no_trailing_zeros() {
        assert_eq!(d("12.345").to_string(), "12.345");
        assert_eq!(d("0.5").to_string(), "0.5");
        assert_eq!(d("3").to_string(), "3");
        assert_eq!(d("3.000").to_string(), "3");
        assert_eq!(d("0").to_string(), "0");
        assert_eq!(d("10.10").to_string(), "10.1");
        assert_eq!(d("0.000000000000000001").to_string(), "0.000000000000000001");
        assert_eq!(format!("{:>8}|{:<6}|", d("1.5"), d("2")), "     1.5|2     |");
        assert_eq!(format!("{:?}", d("1.5")), "Decimal(1.5)");
    }

    #[test]
    fn display_from_str_round_trip() {
        let max = Decimal::MAX.to_string();
        assert_eq!(
            max,
            "115792089237316195423570985008687907853269984665640564039457.584007913129639935"
        );
        assert_eq!(d(&max), Decimal::MAX);
        let mut rng = XorShift(7);
        for _ in 0..500 {
            let v = Decimal::raw(U256::from_words(rng.next_u128() >> 1, rng.next_u128()));
            assert_eq!(d(&v.to_string()), v);
        }
    }

    #[test]
    fn parse_rejects_bad_input() {
        use ParseDecimalError::*;
        let e = |s: &str| s.parse::<Decimal>().unwrap_err();
        assert_eq!(e(""), Empty);
        assert_eq!(e("-1"), Negative);
        assert_eq!(e("-0.5"), Negative);
        for bad in [
            "abc", "1.", ".5", ".", "1.2.3", "+1", " 1", "1 ", "1e5", "1_000", "1,5", "0x10", "١",
        ] {
            assert_eq!(e(bad), InvalidFormat, "{bad:?}");
        }
        assert_eq!(e("0.1234567890123456789"), TooManyDecimalPlaces);
        assert_eq!(
            e("115792089237316195423570985008687907853269984665640564039458"),
            Overflow
        );
        assert_eq!(
            e("115792089237316195423570985008687907853269984665640564039457.584007913129639936"),
            Overflow
        );
        assert_eq!(
            e("115792089237316195423570985008687907853269984665640564039457.59"),
            Overflow
        );
        assert_eq!(e("1".repeat(100).as_str()), Overflow);
        assert_eq!(e("0.1234567890123456789000"), TooManyDecimalPlaces);
        assert_eq!(d("007.50"), d("7.5"));
        assert_eq!(d("0.123456789012345678").atomics(), U256::new(123_456_789_012_345_678));
        assert!(!ParseDecimalError::TooManyDecimalPlaces.to_string().is_empty());
    }

    #[test]
    fn arithmetic_operators_and_assign_forms() {
        let (a, b) = (d("7.5"), d("2"));
        assert_eq!(a + b, d("9.5"));
        assert_eq!(a - b, d("5.5"));
        assert_eq!(a * b, d("15"));
        assert_eq!(a / b, d("3.75"));
        assert_eq!(a % b, d("1.5"));
        assert_eq!(a.pos(), a);
        let mut v = a;
        v += b;
        v -= d("0.5");
        v *= d("0.5");
        v /= d("0.25");
        v %= d("5");
        assert_eq!(v, d("3"));
        assert_eq!([a, b].iter().sum::<Decimal>(), d("9.5"));
        assert_eq!([a, b].into_iter().product::<Decimal>(), d("15"));
    }

    #[test]
    #[allow(clippy::nonminimal_bool)] // each operator is exercised on purpose, negations included
    fn comparisons_follow_numeric_order() {
        let (a, b) = (d("0.3"), d("0.25"));
        let a2 = d("0.30");
        assert!(b < a);
        assert!(!(a < a2));
        assert!(b <= a);
        assert!(a <= a2);
        assert!(a > b);
        assert!(!(a > a2));
        assert!(a >= b);
        assert!(!(b >= a));
        assert!(a != b);
        assert!(a == a2);
        assert!(Decimal::ZERO < Decimal::ONE && Decimal::ONE < Decimal::MAX && Decimal::MIN == Decimal::ZERO);
        assert!(d("2") > d("1.999999999999999999"));
    }

    #[test]
    fn overflow_and_underflow_panic() {
        assert_panics("Decimal overflow in add", || Decimal::MAX + Decimal::raw(U256::ONE));
        assert_panics("Decimal overflow in sub", || Decimal::ZERO - d("0.000000000000000001"));
        assert_panics("Decimal overflow in mul", || Decimal::MAX * d("1.000000000000000001"));
        assert_panics("Decimal overflow in pow", || d("10").pow(60));
        assert_panics("Decimal overflow in div", || Decimal::MAX / d("0.5"));
        assert_panics("Decimal overflow in add", || {
            let mut v = Decimal::MAX;
            v += Decimal::ONE;
            v
        });
        assert_eq!(Decimal::MAX.checked_add(Decimal::ONE), None);
        assert_eq!(Decimal::ZERO.checked_sub(Decimal::ONE), None);
        assert_eq!(Decimal::MAX.checked_mul(d("2")), None);
        assert_eq!(d("10").checked_pow(60), None);
        assert_eq!(Decimal::MAX * Decimal::ONE, Decimal::MAX);
        assert_eq!(Decimal::MAX / Decimal::ONE, Decimal::MAX);
    }

    #[test]
    fn division_and_remainder_by_zero_panic() {
        assert_panics("Decimal division by zero", || Decimal::ONE / Decimal::ZERO);
        assert_panics("Decimal division by zero", || Decimal::ONE % Decimal::ZERO);
        assert_eq!(Decimal::ONE.checked_div(Decimal::ZERO), None);
        assert_eq!(Decimal::ONE.checked_rem(Decimal::ZERO), None);
        assert_eq!(Decimal::ZERO.checked_inv(), None);
        assert_eq!(d("4").checked_inv(), Some(d("0.25")));
    }

    #[test]
    fn saturating_variants_clamp() {
        assert_eq!(Decimal::MAX.saturating_add(Decimal::ONE), Decimal::MAX);
        assert_eq!(Decimal::ONE.saturating_sub(d("2")), Decimal::ZERO);
        assert_eq!(Decimal::MAX.saturating_mul(d("2")), Decimal::MAX);
        assert_eq!(d("10").saturating_pow(100), Decimal::MAX);
        assert_eq!(d("1.5").abs_diff(d("4")), d("2.5"));
    }

    #[test]
    fn mul_and_div_keep_full_precision_at_large_values() {
        // The atomics product (~10^95) overflows 256 bits; the 512-bit intermediate keeps it exact.
        let big = d("100000000000000000000000000000000000000000.123456789012345678"); // ~1e41
        assert_eq!(big * Decimal::ONE, big);
        assert_eq!(big / Decimal::ONE, big);
        assert_eq!(
            big * d("0.5"),
            d("50000000000000000000000000000000000000000.061728394506172839")
        );
        assert_eq!(
            big / d("2"),
            d("50000000000000000000000000000000000000000.061728394506172839")
        );
        assert_eq!((big * d("1000")) / d("1000"), big);
        // Two large factors whose true product fits.
        let x = d("340282366920938463463374607431.768211455"); // (2^128 - 1) / 10^9
        // x * x = (2^128 - 1)^2 / 10^18 exactly, whose atomics exceed 2^255.
        assert_eq!(
            x * x,
            d("115792089237316195423570985008687907852589419931798687112530.834793049593217025")
        );
        assert_eq!((x * x) / x, x);
        // Small factors: 1e-18 * 1e-18 rounds down to 0; 1e-9 * 1e-9 is exact.
        let tiny = Decimal::raw(U256::ONE);
        assert_eq!(tiny * tiny, Decimal::ZERO);
        assert_eq!(d("0.000000001") * d("0.000000001"), tiny);
        assert_eq!(d("1") / d("1000000000000000000"), tiny);
    }

    #[test]
    fn pow_matches_repeated_multiplication() {
        assert_eq!(d("1.5").pow(2), d("2.25"));
        assert_eq!(d("2").pow(10), d("1024"));
        assert_eq!(d("0.5").pow(3), d("0.125"));
        assert_eq!(d("7.7").pow(0), Decimal::ONE);
        assert_eq!(Decimal::ZERO.pow(0), Decimal::ONE);
        assert_eq!(d("1.1").pow(5), d("1.61051"));
        assert_eq!(d("10").pow(41), Decimal::from_integer(U256::new(10).pow(41)));
    }

    #[test]
    fn floor_ceil_round_to_integers() {
        assert_eq!(
            (d("2.5").floor(), d("2.5").ceil(), d("2.5").round()),
            (U256::new(2), U256::new(3), U256::new(3))
        );
        assert_eq!(d("2.499999999999999999").round(), U256::new(2));
        assert_eq!(
            (d("3").floor(), d("3").ceil(), d("3").round()),
            (U256::new(3), U256::new(3), U256::new(3))
        );
        assert_eq!(d("0.000000000000000001").ceil(), U256::ONE);
        assert_eq!(Decimal::MAX.ceil(), Decimal::MAX.floor() + U256::ONE);
        assert_eq!(Decimal::MAX.round(), Decimal::MAX.floor() + U256::ONE);
    }

    #[test]
    fn mul_int_floors_and_mul_int_ceil_rounds_up() {
        // price 0.123 tokens/kWh × 1001 kWh = 123.123 → 123 tokens.
        assert_eq!(d("0.123").mul_int(U256::new(1001)), U256::new(123));
        assert_eq!(d("0.123").mul_int_ceil(U256::new(1001)), U256::new(124));
        assert_eq!(d("2").mul_int(U256::new(21)), U256::new(42));
        assert_eq!(d("2").mul_int_ceil(U256::new(21)), U256::new(42));
        assert_eq!(Decimal::ONE.mul_int(U256::MAX), U256::MAX);
        assert_eq!(d("0.5").mul_int(U256::MAX), U256::MAX / U256::new(2));
        assert_eq!(d("2").checked_mul_int(U256::MAX), None);
        assert_eq!(d("2").checked_mul_int_ceil(U256::MAX), None);
        assert_panics("Decimal overflow in mul_int", || d("1.5").mul_int(U256::MAX));
    }

    #[test]
    fn borsh_is_the_u256_atomics_little_endian() {
        let bytes = borsh::to_vec(&d("1")).unwrap();
        assert_eq!(bytes.len(), 32);
        assert_eq!(&bytes[..8], &1_000_000_000_000_000_000u64.to_le_bytes());
        assert!(bytes[8..].iter().all(|&b| b == 0));
        assert_eq!(bytes, borsh::to_vec(&Decimal::ONE.atomics()).unwrap());
        for v in [Decimal::ZERO, Decimal::MAX, d("12.345")] {
            assert_eq!(borsh::from_slice::<Decimal>(&borsh::to_vec(&v).unwrap()).unwrap(), v);
        }
        assert!(borsh::from_slice::<Decimal>(&[1, 2, 3]).is_err());
    }

    #[test]
    fn mul_and_div_agree_with_native_u128_on_small_values() {
        let mut rng = XorShift(99);
        let f = 1_000_000_000_000_000_000u128;
        for _ in 0..2000 {
            // Operands below 2^60 so that the u128 reference computation cannot overflow.
            let (a, b) = (rng.next_u64() as u128 >> 4, (rng.next_u64() as u128 >> 4) | 1);
            let (x, y) = (Decimal::raw(U256::from(a)), Decimal::raw(U256::from(b)));
            assert_eq!((x * y).atomics(), U256::from(a * b / f));
            if a < (1 << 60) / 1000 {
                assert_eq!((x / y).atomics(), U256::from(a * f / b));
            }
            assert_eq!((x % y).atomics(), U256::from(a % b));
            assert_eq!((x + y).atomics(), U256::from(a + b));
        }
    }
}
