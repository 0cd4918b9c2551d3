//! Exact `a * b / d` on 256-bit values through a 512-bit intermediate product.
//!
//! `Decimal` multiplication and division need it: the product of two 18-place fixed-point values
//! has 36 places and can exceed 256 bits even when the final result fits.

use crate::U256;
use ethnum::U256 as Raw;

/// The full 512-bit product `a * b`, as `(high, low)` 256-bit halves.
fn full_mul(a: Raw, b: Raw) -> (Raw, Raw) {
    let (a1, a0) = a.into_words();
    let (b1, b0) = b.into_words();
    // Each 128x128-bit partial product fits 256 bits exactly, so wrapping_mul never wraps here.
    let p00 = Raw::from(a0).wrapping_mul(Raw::from(b0));
    let p01 = Raw::from(a0).wrapping_mul(Raw::from(b1));
    let p10 = Raw::from(a1).wrapping_mul(Raw::from(b0));
    let p11 = Raw::from(a1).wrapping_mul(Raw::from(b1));
    // a * b = p11 * 2^256 + (p01 + p10) * 2^128 + p00
    let (mid, mid_carry) = p01.overflowing_add(p10);
    let (lo, lo_carry) = p00.overflowing_add(mid << 128);
    // The true product is < 2^512, so the high half cannot wrap.
    let mut hi = p11.wrapping_add(mid >> 128);
    if mid_carry {
        hi = hi.wrapping_add(Raw::ONE << 128);
    }
    if lo_carry {
        hi = hi.wrapping_add(Raw::ONE);
    }
    (hi, lo)
}

/// `floor(a * b / d)` and whether the division left a remainder, or `None` if `d` is 0 or the
/// quotient does not fit 256 bits.
pub(crate) fn mul_div(a: Raw, b: Raw, d: Raw) -> Option<(Raw, bool)> {
    if d == Raw::ZERO {
        return None;
    }
    let (hi, lo) = full_mul(a, b);
    if hi == Raw::ZERO {
        return Some((lo / d, lo % d != Raw::ZERO));
    }
    if hi >= d {
        return None;
    }
    if d <= Raw::from(u64::MAX) {
        // Small divisor (e.g. 10^18): schoolbook division by 64-bit limbs, 8 steps.
        let d = d.as_u128();
        let (h1, h0) = hi.into_words();
        let (l1, l0) = lo.into_words();
        let mut rem: u128 = 0;
        let mut q = [0u128; 2];
        for (i, word) in [h1, h0, l1, l0].into_iter().enumerate() {
            for half in [word >> 64, word & u128::from(u64::MAX)] {
                // rem < d <= 2^64, so (rem << 64 | half) fits in u128.
                let cur = (rem << 64) | half;
                let digit = cur / d;
                rem = cur % d;
                if i >= 2 {
                    q[i - 2] = (q[i - 2] << 64) | digit;
                }
            }
        }
        return Some((Raw::from_words(q[0], q[1]), rem != 0));
    }
    // General divisor: restoring binary long division of (hi, lo) by d, one bit of lo at a time.
    // Invariant: rem < d. Because hi < d the quotient fits 256 bits.
    let mut rem = hi;
    let mut q = Raw::ZERO;
    for i in (0..256u32).rev() {
        let carry = rem >> 255u32 != Raw::ZERO;
        rem = (rem << 1u32) | ((lo >> i) & Raw::ONE);
        if carry || rem >= d {
            // If carry is set the true value is >= 2^256 > d; the wrapped difference is still exact.
            rem = rem.wrapping_sub(d);
            q |= Raw::ONE << i;
        }
    }
    Some((q, rem != Raw::ZERO))
}

impl U256 {
    /// `floor(self * mul / div)` computed exactly (512-bit intermediate), or `None` if `div` is 0 or
    /// the result does not fit. Use it for pro-rata shares: `amount.checked_mul_div(part, total)`.
    pub fn checked_mul_div(self, mul: U256, div: U256) -> Option<U256> {
        mul_div(self.0, mul.0, div.0).map(|(q, _)| U256(q))
    }

    /// `ceil(self * mul / div)` computed exactly, or `None` if `div` is 0 or the result does not fit.
    pub fn checked_mul_div_ceil(self, mul: U256, div: U256) -> Option<U256> {
        let (q, inexact) = mul_div(self.0, mul.0, div.0)?;
        if inexact {
            q.checked_add(Raw::ONE).map(U256)
        } else {
            Some(U256(q))
        }
    }

    /// `floor(self * mul / div)` computed exactly.
    ///
    /// # Panics
    /// If `div` is 0 ("U256 division by zero") or the result overflows ("U256 overflow in mul_div").
    #[must_use]
    #[track_caller]
    pub fn mul_div(self, mul: U256, div: U256) -> U256 {
        if div.is_zero() {
            crate::int::division_by_zero("U256");
        }
        match self.checked_mul_div(mul, div) {
            Some(v) => v,
            None => crate::int::overflow("U256", "mul_div"),
        }
    }

    /// `ceil(self * mul / div)` computed exactly; panics like [`U256::mul_div`].
    #[must_use]
    #[track_caller]
    pub fn mul_div_ceil(self, mul: U256, div: U256) -> U256 {
        if div.is_zero() {
            crate::int::division_by_zero("U256");
        }
        match self.checked_mul_div_ceil(mul, div) {
            Some(v) => v,
            None => crate::int::overflow("U256", "mul_div"),
        }
    }
}
