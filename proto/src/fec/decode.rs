//! Decoding: any `k` distinct symbols of a block rebuild its sources in place.

use super::{
    BITMAP_BYTES, Engine, FecError, MULTI_MAX, balanced_group, block_bytes, coefficient,
    decode_scratch_bytes,
};
use crate::gf16;

fn get16(buf: &[u8], i: usize) -> u16 {
    u16::from_ne_bytes([buf[2 * i], buf[2 * i + 1]])
}

fn set16(buf: &mut [u8], i: usize, v: u16) {
    buf[2 * i..2 * i + 2].copy_from_slice(&v.to_ne_bytes());
}

/// Sum of logarithms reduced modulo 65535.
fn log_mod(s: u64) -> u32 {
    (s % gf16::GROUP_ORDER as u64) as u32
}

impl Engine {
    /// Rebuilds a block in place from any `k` distinct symbols.
    ///
    /// `block[..k * symbol_size]` holds at position `i` the symbol whose esi is `esi_at[i]`
    /// (`esi_at[..k]` is used): a source symbol must sit at its own position
    /// (`esi_at[i] == i`), repair symbols (`esi >= k`) sit at positions whose source is
    /// missing. All esis must be distinct. `scratch` must hold at least
    /// [`decode_scratch_bytes`]`(k, symbol_size)` bytes.
    ///
    /// On success every position `i` holds source symbol `i` and `esi_at[i] == i`. On error
    /// (validation happens first) `block` and `esi_at` are unchanged.
    ///
    /// Cost: with `e` repair symbols, `e * k` symbol multiply-adds, using the closed-form
    /// inverse of the `e x e` Cauchy submatrix (O(e) memory).
    pub fn decode_in_place(
        &self,
        block: &mut [u8],
        k: usize,
        symbol_size: usize,
        esi_at: &mut [u16],
        scratch: &mut [u8],
    ) -> Result<(), FecError> {
        let s = symbol_size;
        let total = block_bytes(k, s)?;
        if block.len() < total
            || esi_at.len() < k
            || scratch.len() < decode_scratch_bytes(k, symbol_size)
        {
            return Err(FecError::BufferTooSmall);
        }
        let block = &mut block[..total];
        let esi_at = &mut esi_at[..k];
        let (slots, rest) = scratch.split_at_mut(total);
        let (bitmap, rest) = rest.split_at_mut(BITMAP_BYTES);
        let (miss, rest) = rest.split_at_mut(2 * k);
        let svals = &mut rest[..2 * k];

        // Validate, and list the missing positions (those holding repair symbols).
        bitmap.fill(0);
        let mut e = 0;
        for (i, &esi) in esi_at.iter().enumerate() {
            let r = esi as usize;
            if r < k {
                if r != i {
                    return Err(FecError::MisplacedSource);
                }
                continue;
            }
            let (byte, bit) = (r / 8, 1u8 << (r % 8));
            if bitmap[byte] & bit != 0 {
                return Err(FecError::DuplicateEsi);
            }
            bitmap[byte] |= bit;
            set16(miss, e, i as u16);
            e += 1;
        }
        if e == 0 {
            return Ok(());
        }
        let miss = &miss[..2 * e];
        let pos = |i: usize| get16(miss, i) as usize;
        let a = |i: usize| esi_at[pos(i)];

        // Y_i = R_{a_i} - sum over received sources j of C(a_i, j) X_j = sum_m C(a_i, b_m) X_{b_m}.
        let slots = &mut slots[..e * s];
        for i in 0..e {
            slots[i * s..(i + 1) * s].copy_from_slice(&block[pos(i) * s..(pos(i) + 1) * s]);
        }
        let per_group = balanced_group(e);
        for (g, group) in slots.chunks_mut(per_group * s).enumerate() {
            let first = g * per_group;
            let n = group.len() / s;
            let mut coefs = [0u16; MULTI_MAX];
            for (j, x) in block.chunks_exact(s).enumerate() {
                if esi_at[j] as usize != j {
                    continue;
                }
                for (o, c) in coefs[..n].iter_mut().enumerate() {
                    *c = coefficient(a(first + o), j as u16);
                }
                self.mul_add_multi(group, x, &coefs[..n]);
            }
        }

        // Closed-form inverse of the Cauchy matrix C_im = 1 / (a_i + b_m):
        // D_mi = U_i V_m / ((a_i + b_m) W_i Z_m) with U_i = prod_l (a_i + b_l),
        // V_m = prod_l (a_l + b_m), W_i = prod_{l != i} (a_i + a_l), Z_m = prod_{l != m} (b_m + b_l).
        // In the log domain: s_i = log U_i - log W_i, t_m = log V_m - log Z_m.
        let order = gf16::GROUP_ORDER as u64;
        for i in 0..e {
            let ai = a(i);
            let mut lu = 0u64;
            let mut lw = 0u64;
            for l in 0..e {
                lu += gf16::LOG[(ai ^ pos(l) as u16) as usize] as u64;
                if l != i {
                    lw += gf16::LOG[(ai ^ a(l)) as usize] as u64;
                }
            }
            let si = log_mod(log_mod(lu) as u64 + order - log_mod(lw) as u64);
            set16(svals, i, si as u16);
        }
        for m in 0..e {
            let bm = pos(m) as u16;
            let mut lv = 0u64;
            let mut lz = 0u64;
            for l in 0..e {
                lv += gf16::LOG[(a(l) ^ bm) as usize] as u64;
                if l != m {
                    lz += gf16::LOG[(bm ^ pos(l) as u16) as usize] as u64;
                }
            }
            let tm = log_mod(lv) as u64 + order - log_mod(lz) as u64;
            let dst = &mut block[bm as usize * s..(bm as usize + 1) * s];
            dst.fill(0);
            for (i, y) in slots.chunks_exact(s).enumerate() {
                let l_den = gf16::LOG[(a(i) ^ bm) as usize] as u64;
                let d = gf16::exp(log_mod(get16(svals, i) as u64 + tm + order - l_den));
                self.mul_add_checked(dst, y, d);
            }
        }
        for m in 0..e {
            let p = pos(m);
            esi_at[p] = p as u16;
        }
        Ok(())
    }
}
