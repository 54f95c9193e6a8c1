//! Arithmetic in the finite field GF(2^16).
//!
//! Elements are `u16` values read as polynomials over GF(2); the field is built modulo the
//! primitive polynomial x^16 + x^5 + x^3 + x^2 + 1 ([`POLY`] = `0x1002D`), so `x` (the value 2)
//! generates the multiplicative group of order 65535. Addition and subtraction are XOR.
//!
//! Multiplication, inversion and division use logarithm / exponential tables that are computed
//! by `const fn` at compile time and stored as `static` arrays: no heap, no runtime
//! initialisation, usable from `no_std`.

/// The reduction polynomial x^16 + x^5 + x^3 + x^2 + 1, with the x^16 bit included.
pub const POLY: u32 = 0x1_002D;

/// Order of the multiplicative group: 2^16 - 1. Logarithms are taken modulo this.
pub const GROUP_ORDER: u32 = 65_535;

/// Length of [`EXP`]: one full period plus 32 wrapped entries, so that 16 consecutive powers
/// `EXP[l..l + 16]` can be read for any logarithm `l < 65535` without wrapping.
const EXP_LEN: usize = GROUP_ORDER as usize + 32;

/// Multiplies `a` by x modulo [`POLY`].
#[inline]
pub const fn mul_x(a: u16) -> u16 {
    let wide = (a as u32) << 1;
    if wide & 0x1_0000 != 0 {
        (wide ^ POLY) as u16
    } else {
        wide as u16
    }
}

const fn build_exp() -> [u16; EXP_LEN] {
    let mut table = [0u16; EXP_LEN];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < GROUP_ORDER as usize {
        // x must not come back to 1 before the full period: POLY has to be primitive.
        assert!(i == 0 || x != 1, "reduction polynomial is not primitive");
        table[i] = x;
        x = mul_x(x);
        i += 1;
    }
    assert!(x == 1, "x^65535 must be 1");
    while i < EXP_LEN {
        table[i] = table[i - GROUP_ORDER as usize];
        i += 1;
    }
    table
}

const fn build_log() -> [u16; 65_536] {
    let exp = build_exp();
    let mut table = [0u16; 65_536];
    let mut i = 0;
    while i < GROUP_ORDER as usize {
        table[exp[i] as usize] = i as u16;
        i += 1;
    }
    table
}

/// `EXP[i] = x^(i mod 65535)` for `i < 65535 + 32`.
pub static EXP: [u16; EXP_LEN] = build_exp();

/// `LOG[a]` is the discrete logarithm of `a != 0` to base x, in `0..65535`. `LOG[0]` is 0 and
/// meaningless: callers must treat zero separately.
pub static LOG: [u16; 65_536] = build_log();

/// Field addition (and subtraction): XOR.
#[inline]
pub const fn add(a: u16, b: u16) -> u16 {
    a ^ b
}

/// Reduces a sum of logarithms (< 2 * 65535) modulo 65535.
#[inline]
const fn reduce_log(s: u32) -> usize {
    (if s >= GROUP_ORDER { s - GROUP_ORDER } else { s }) as usize
}

/// `x^e` for any exponent `e` (taken modulo 65535).
#[inline]
pub fn exp(e: u32) -> u16 {
    EXP[(e % GROUP_ORDER) as usize]
}

/// Discrete logarithm of `a` to base x, in `0..65535`; `None` for 0.
#[inline]
pub fn log(a: u16) -> Option<u16> {
    if a == 0 { None } else { Some(LOG[a as usize]) }
}

/// Field multiplication.
#[inline]
pub fn mul(a: u16, b: u16) -> u16 {
    if a == 0 || b == 0 {
        return 0;
    }
    EXP[reduce_log(LOG[a as usize] as u32 + LOG[b as usize] as u32)]
}

/// Multiplicative inverse. By convention `inv(0) == 0` (never panics); use [`checked_inv`] to
/// detect zero.
#[inline]
pub fn inv(a: u16) -> u16 {
    if a == 0 {
        return 0;
    }
    let l = LOG[a as usize] as usize;
    EXP[if l == 0 { 0 } else { GROUP_ORDER as usize - l }]
}

/// Multiplicative inverse, `None` for 0.
#[inline]
pub fn checked_inv(a: u16) -> Option<u16> {
    if a == 0 { None } else { Some(inv(a)) }
}

/// Field division `a / b`. By convention division by zero yields 0 (never panics); use
/// [`checked_div`] to detect it.
#[inline]
pub fn div(a: u16, b: u16) -> u16 {
    if a == 0 || b == 0 {
        return 0;
    }
    EXP[reduce_log(LOG[a as usize] as u32 + GROUP_ORDER - LOG[b as usize] as u32)]
}

/// Field division `a / b`, `None` if `b == 0`.
#[inline]
pub fn checked_div(a: u16, b: u16) -> Option<u16> {
    if b == 0 { None } else { Some(div(a, b)) }
}

/// Bit-serial multiplication (shift and add), independent of the tables: a reference for tests.
pub const fn mul_slow(a: u16, b: u16) -> u16 {
    let mut acc = 0u16;
    let mut a = a;
    let mut i = 0;
    while i < 16 {
        if b & (1 << i) != 0 {
            acc ^= a;
        }
        a = mul_x(a);
        i += 1;
    }
    acc
}

/// The 16 products `c * x^i` for `i` in `0..16` (so `c * v` is the XOR of the entries selected
/// by the set bits of `v`). All zero for `c == 0`. This is a direct slice of [`EXP`].
#[inline]
pub fn mul_x_run(c: u16) -> &'static [u16; 16] {
    static ZERO: [u16; 16] = [0; 16];
    if c == 0 {
        return &ZERO;
    }
    let l = LOG[c as usize] as usize;
    match EXP[l..l + 16].try_into() {
        Ok(run) => run,
        Err(_) => &ZERO, // unreachable: the slice has exactly 16 entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_agree_with_bit_serial() {
        let mut s = 0x1234_5678u32;
        for _ in 0..20_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let a = s as u16;
            let b = (s >> 16) as u16;
            assert_eq!(mul(a, b), mul_slow(a, b), "{a} * {b}");
        }
        assert_eq!(mul(2, 0x8000), 0x002D);
        assert_eq!(inv(1), 1);
        assert_eq!(inv(0), 0);
        for a in 1..=u16::MAX {
            assert_eq!(mul(a, inv(a)), 1);
        }
    }

    #[test]
    fn mul_x_run_matches() {
        for c in [0u16, 1, 2, 3, 0x8000, 0xFFFF, 0x1234] {
            let run = mul_x_run(c);
            for (i, &p) in run.iter().enumerate() {
                assert_eq!(p, mul_slow(c, 1 << i));
            }
        }
    }
}
