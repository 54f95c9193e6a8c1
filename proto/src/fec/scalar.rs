//! Portable kernels: the reference the SIMD kernels are checked against, and the fallback on
//! CPUs without them.

use super::CHUNK;
use crate::gf16;

/// `dst ^= src` (multiplication by 1), eight bytes at a time.
pub(super) fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.chunks_exact_mut(8).zip(src.chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(d);
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        d.copy_from_slice(&(u64::from_ne_bytes(a) ^ u64::from_ne_bytes(b)).to_ne_bytes());
    }
}

/// `dst ^= c * src`: `c * (lo | hi << 8) = LO[lo] ^ HI[hi]` with two 256-entry tables built by
/// linearity from the 16 products `c * x^i`.
pub(super) fn mul_add(dst: &mut [u8], src: &[u8], c: u16) {
    let run = gf16::mul_x_run(c);
    let mut lo = [0u16; 256];
    let mut hi = [0u16; 256];
    for v in 1..256usize {
        let low_bit = v.trailing_zeros() as usize;
        let rest = v & (v - 1);
        lo[v] = lo[rest] ^ run[low_bit];
        hi[v] = hi[rest] ^ run[8 + low_bit];
    }
    for (d, s) in dst.chunks_exact_mut(CHUNK).zip(src.chunks_exact(CHUNK)) {
        let (dl, dh) = d.split_at_mut(CHUNK / 2);
        let (sl, sh) = s.split_at(CHUNK / 2);
        for i in 0..CHUNK / 2 {
            let p = lo[sl[i] as usize] ^ hi[sh[i] as usize];
            dl[i] ^= p as u8;
            dh[i] ^= (p >> 8) as u8;
        }
    }
}
