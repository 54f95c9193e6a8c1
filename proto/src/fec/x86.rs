//! x86_64 SIMD kernels (SSSE3, AVX2 and GFNI) for `dst ^= c * src`, plus CPU feature
//! detection without std (cpuid + xgetbv).
//!
//! The SSSE3 and AVX2 kernels use the split-nibble method: an element
//! x = n0 | n1 << 4 | n2 << 8 | n3 << 12 has c * x = T0[n0] ^ T1[n1] ^ T2[n2] ^ T3[n3], where
//! Tn[v] = c * (v << 4n). Each 16-entry table of u16 is held as two 16-byte `pshufb` tables
//! (low and high result bytes), so 32 elements (one 64-byte chunk of the symbol layout) cost
//! 8 shuffles with AVX2.
//!
//! The tables are built from the 16 products c * x^i, read as one 32-byte run of the
//! exponential table, with shuffles that select and zero words according to the bits of the
//! lane index (linearity: Tn[v] is the XOR of the products selected by the bits of v).
//!
//! The GFNI kernel uses that multiplying by c is linear over GF(2): a 16x16 bit matrix, four
//! 8x8 blocks that `vgf2p8affineqb` applies to the low and high byte planes of a chunk as
//! they are laid out (4 instructions per 32 elements, against 16 shuffles and the nibble
//! split).

use core::arch::x86_64::{
    __cpuid, __m128i, __m256i, _mm_and_si128, _mm_loadu_si128, _mm_set1_epi8, _mm_shuffle_epi8,
    _mm_srli_epi16, _mm_storeu_si128, _mm_xor_si128, _mm256_and_si256, _mm256_broadcastsi128_si256,
    _mm256_gf2p8affine_epi64_epi8, _mm256_loadu_si256, _mm256_permute4x64_epi64, _mm256_set1_epi8,
    _mm256_set1_epi64x, _mm256_shuffle_epi8, _mm256_srli_epi16, _mm256_storeu_si256,
    _mm256_xor_si256,
};

use super::{CHUNK, Kernel, MULTI_MAX};
use crate::gf16;

/// Detects the best kernel the CPU and OS support.
pub(super) fn detect() -> Kernel {
    // cpuid exists on every x86_64 CPU (a safe intrinsic); leaf 1 always exists.
    let leaf1 = __cpuid(1);
    let ssse3 = leaf1.ecx & (1 << 9) != 0;
    let avx = leaf1.ecx & (1 << 28) != 0;
    let mut avx2 = false;
    let mut gfni = false;
    if avx
        && let Some(leaf7) = crate::cpu::leaf7()
        && let Some(xcr0) = crate::cpu::xcr0()
    {
        // XMM (bit 1) and YMM (bit 2) state must both be saved by the OS.
        if xcr0 & 0b110 == 0b110 {
            avx2 = leaf7.ebx & (1 << 5) != 0;
            gfni = leaf7.ecx & (1 << 8) != 0;
        }
    }
    // GFNI's 256-bit form needs AVX (the YMM state checked above); every CPU with it has
    // AVX2, which keeps the kernels ordered.
    if gfni && avx2 && ssse3 {
        Kernel::Gfni
    } else if avx2 && ssse3 {
        Kernel::Avx2
    } else if ssse3 {
        Kernel::Ssse3
    } else {
        Kernel::Scalar
    }
}

const fn build_select() -> [[u8; 32]; 8] {
    // SELECT[h * 4 + b]: byte v of the low lane picks the low byte of word 4h+b when bit b of v
    // is set (else zero, 0x80); the high lane does the same for the high byte.
    let mut t = [[0x80u8; 32]; 8];
    let mut h = 0;
    while h < 2 {
        let mut b = 0;
        while b < 4 {
            let mut v = 0;
            while v < 16 {
                if v & (1 << b) != 0 {
                    let w = (2 * (4 * h + b)) as u8;
                    t[h * 4 + b][v] = w;
                    t[h * 4 + b][16 + v] = w + 1;
                }
                v += 1;
            }
            b += 1;
        }
        h += 1;
    }
    t
}

static SELECT: [[u8; 32]; 8] = build_select();

/// The 8 shuffle tables of one constant for AVX2, each broadcast to both 128-bit lanes.
#[derive(Clone, Copy)]
struct TablesAvx2 {
    lo: [__m256i; 4],
    hi: [__m256i; 4],
}

#[target_feature(enable = "avx2")]
fn tables_avx2(c: u16) -> TablesAvx2 {
    let run = gf16::mul_x_run(c);
    // SAFETY: `run` is 16 u16 = 32 readable bytes; loadu has no alignment requirement.
    let (p_lo, p_hi) = unsafe {
        let p = run.as_ptr() as *const __m128i;
        (_mm_loadu_si128(p), _mm_loadu_si128(p.add(1)))
    };
    let pv = [
        _mm256_broadcastsi128_si256(p_lo),
        _mm256_broadcastsi128_si256(p_hi),
    ];
    let mut lo = [pv[0]; 4];
    let mut hi = [pv[0]; 4];
    for n in 0..4 {
        let v = pv[n / 2];
        let h = n % 2;
        let mut acc = [pv[0]; 4];
        for (b, a) in acc.iter_mut().enumerate() {
            // SAFETY: SELECT rows are 32 bytes; loadu has no alignment requirement.
            let sel = unsafe { _mm256_loadu_si256(SELECT[h * 4 + b].as_ptr() as *const __m256i) };
            *a = _mm256_shuffle_epi8(v, sel);
        }
        let t = _mm256_xor_si256(
            _mm256_xor_si256(acc[0], acc[1]),
            _mm256_xor_si256(acc[2], acc[3]),
        );
        lo[n] = _mm256_permute4x64_epi64::<0x44>(t);
        hi[n] = _mm256_permute4x64_epi64::<0xEE>(t);
    }
    TablesAvx2 { lo, hi }
}

/// Multiplies one 64-byte chunk at `s` by the constant of `t` and XORs it into `d`.
macro_rules! avx2_chunk {
    ($t:expr, $mask:expr, $s:expr, $d:expr) => {{
        // SAFETY: the caller guarantees 64 readable bytes at `$s` and 64 writable bytes at `$d`;
        // unaligned loads and stores.
        unsafe {
            let s = $s as *const __m256i;
            let d = $d as *mut __m256i;
            let sl = _mm256_loadu_si256(s);
            let sh = _mm256_loadu_si256(s.add(1));
            let n0 = _mm256_and_si256(sl, $mask);
            let n1 = _mm256_and_si256(_mm256_srli_epi16::<4>(sl), $mask);
            let n2 = _mm256_and_si256(sh, $mask);
            let n3 = _mm256_and_si256(_mm256_srli_epi16::<4>(sh), $mask);
            let rl = _mm256_xor_si256(
                _mm256_xor_si256(
                    _mm256_shuffle_epi8($t.lo[0], n0),
                    _mm256_shuffle_epi8($t.lo[1], n1),
                ),
                _mm256_xor_si256(
                    _mm256_shuffle_epi8($t.lo[2], n2),
                    _mm256_shuffle_epi8($t.lo[3], n3),
                ),
            );
            let rh = _mm256_xor_si256(
                _mm256_xor_si256(
                    _mm256_shuffle_epi8($t.hi[0], n0),
                    _mm256_shuffle_epi8($t.hi[1], n1),
                ),
                _mm256_xor_si256(
                    _mm256_shuffle_epi8($t.hi[2], n2),
                    _mm256_shuffle_epi8($t.hi[3], n3),
                ),
            );
            _mm256_storeu_si256(d, _mm256_xor_si256(_mm256_loadu_si256(d), rl));
            _mm256_storeu_si256(d.add(1), _mm256_xor_si256(_mm256_loadu_si256(d.add(1)), rh));
        }
    }};
}

/// AVX2 `dst ^= c * src`. Requires AVX2 (checked by the caller) and
/// `dst.len() == src.len()`, a multiple of 64 (checked by the caller).
#[target_feature(enable = "avx2")]
pub(super) fn mul_add_avx2(dst: &mut [u8], src: &[u8], c: u16) {
    let t = tables_avx2(c);
    let mask = _mm256_set1_epi8(0x0f);
    let n = dst.len().min(src.len()) / CHUNK;
    let sp = src.as_ptr();
    let dp = dst.as_mut_ptr();
    let mut i = 0;
    while i + 2 <= n {
        // In bounds: chunks i and i + 1 are below n.
        avx2_chunk!(
            t,
            mask,
            sp.wrapping_add(i * CHUNK),
            dp.wrapping_add(i * CHUNK)
        );
        avx2_chunk!(
            t,
            mask,
            sp.wrapping_add((i + 1) * CHUNK),
            dp.wrapping_add((i + 1) * CHUNK)
        );
        i += 2;
    }
    if i < n {
        avx2_chunk!(
            t,
            mask,
            sp.wrapping_add(i * CHUNK),
            dp.wrapping_add(i * CHUNK)
        );
    }
}

/// Chunks per segment of the fused kernel: the nibbles of one segment of the source are split
/// once into a stack buffer (4 vectors per chunk), then reused for every output.
const SEG_CHUNKS: usize = 16;

/// AVX2 `dst[o] ^= coefs[o] * src` for up to [`MULTI_MAX`] outputs `dst[o]` of `src.len()`
/// bytes each, stored contiguously in `dst`. The source nibbles are split once per segment for
/// all outputs; each output then runs with its 8 tables held in registers.
#[target_feature(enable = "avx2")]
pub(super) fn mul_add_multi_avx2(dst: &mut [u8], src: &[u8], coefs: &[u16]) {
    let size = src.len() / CHUNK * CHUNK;
    let g = coefs.len().min(MULTI_MAX).min(dst.len() / size.max(1));
    if size == 0 || g == 0 {
        return;
    }
    let zero = tables_avx2(0);
    let mut tabs = [zero; MULTI_MAX];
    for (t, &c) in tabs.iter_mut().zip(coefs.iter()).take(g) {
        *t = tables_avx2(c);
    }
    let tabs = &tabs[..g];
    let mask = _mm256_set1_epi8(0x0f);
    let mut nib = [mask; 4 * SEG_CHUNKS];
    let sp = src.as_ptr();
    let dp = dst.as_mut_ptr();
    let chunks = size / CHUNK;
    let mut first = 0;
    while first < chunks {
        let n = (chunks - first).min(SEG_CHUNKS);
        for (c, v) in nib.chunks_exact_mut(4).take(n).enumerate() {
            // SAFETY: chunk first + c < chunks: its 64 bytes are inside `src`; unaligned loads.
            let (sl, sh) = unsafe {
                let s = sp.add((first + c) * CHUNK) as *const __m256i;
                (_mm256_loadu_si256(s), _mm256_loadu_si256(s.add(1)))
            };
            v[0] = _mm256_and_si256(sl, mask);
            v[1] = _mm256_and_si256(_mm256_srli_epi16::<4>(sl), mask);
            v[2] = _mm256_and_si256(sh, mask);
            v[3] = _mm256_and_si256(_mm256_srli_epi16::<4>(sh), mask);
        }
        for (o, t) in tabs.iter().enumerate() {
            let t = *t;
            for (c, v) in nib.chunks_exact(4).take(n).enumerate() {
                let rl = _mm256_xor_si256(
                    _mm256_xor_si256(
                        _mm256_shuffle_epi8(t.lo[0], v[0]),
                        _mm256_shuffle_epi8(t.lo[1], v[1]),
                    ),
                    _mm256_xor_si256(
                        _mm256_shuffle_epi8(t.lo[2], v[2]),
                        _mm256_shuffle_epi8(t.lo[3], v[3]),
                    ),
                );
                let rh = _mm256_xor_si256(
                    _mm256_xor_si256(
                        _mm256_shuffle_epi8(t.hi[0], v[0]),
                        _mm256_shuffle_epi8(t.hi[1], v[1]),
                    ),
                    _mm256_xor_si256(
                        _mm256_shuffle_epi8(t.hi[2], v[2]),
                        _mm256_shuffle_epi8(t.hi[3], v[3]),
                    ),
                );
                // SAFETY: o < g and g * size <= dst.len(), (first + c + 1) * 64 <= size: the
                // 64 bytes at o * size + (first + c) * 64 are inside `dst`; unaligned access.
                unsafe {
                    let d = dp.add(o * size + (first + c) * CHUNK) as *mut __m256i;
                    _mm256_storeu_si256(d, _mm256_xor_si256(_mm256_loadu_si256(d), rl));
                    _mm256_storeu_si256(
                        d.add(1),
                        _mm256_xor_si256(_mm256_loadu_si256(d.add(1)), rh),
                    );
                }
            }
        }
        first += n;
    }
}

/// The four 8x8 bit matrices of multiplication by `c`, as `vgf2p8affineqb` reads them:
/// `[lo from lo, lo from hi, hi from lo, hi from hi]` (result byte plane from source byte
/// plane). Output bit `i` of a byte is the parity of the matrix's byte `7 - i` ANDed with the
/// source byte, so byte `7 - i` holds bit `i` (of the result plane) of the products `c * x^j`
/// for the 8 source bits `j` of the plane.
pub(super) fn gfni_matrices(c: u16) -> [u64; 4] {
    let run = gf16::mul_x_run(c);
    let mut m = [0u64; 4];
    for (n, q) in m.iter_mut().enumerate() {
        let (out_plane, in_plane) = (n / 2, n % 2);
        // Byte j: the result plane's byte of c * x^(8 * in_plane + j), so bit 8j + i is the
        // matrix entry (i, j); transposed, byte i is row i, which goes to byte 7 - i.
        let mut cols = 0u64;
        for j in 0..8 {
            cols |= ((run[8 * in_plane + j] >> (8 * out_plane)) as u8 as u64) << (8 * j);
        }
        *q = transpose8(cols).swap_bytes();
    }
    m
}

/// Transposes the 8x8 bit matrix whose bit `8 * r + c` is entry (r, c) (Hacker's Delight,
/// 7-3): a few shifts per constant instead of a loop over 256 bits, which at 1408-byte
/// symbols cost as much as the multiplication.
fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// GFNI `dst ^= c * src`. Requires GFNI and AVX2 (checked by the caller) and
/// `dst.len() == src.len()`, a multiple of 64 (checked by the caller).
#[target_feature(enable = "gfni", enable = "avx2")]
pub(super) fn mul_add_gfni(dst: &mut [u8], src: &[u8], c: u16) {
    let m = gfni_matrices(c);
    let [ll, lh, hl, hh] = m.map(|q| _mm256_set1_epi64x(q as i64));
    let n = dst.len().min(src.len()) / CHUNK;
    let sp = src.as_ptr();
    let dp = dst.as_mut_ptr();
    for i in 0..n {
        // SAFETY: chunk i < n: its 64 bytes are inside `src` and `dst`; unaligned access.
        unsafe {
            let s = sp.add(i * CHUNK) as *const __m256i;
            let d = dp.add(i * CHUNK) as *mut __m256i;
            let lo = _mm256_loadu_si256(s);
            let hi = _mm256_loadu_si256(s.add(1));
            let rl = _mm256_xor_si256(
                _mm256_gf2p8affine_epi64_epi8::<0>(lo, ll),
                _mm256_gf2p8affine_epi64_epi8::<0>(hi, lh),
            );
            let rh = _mm256_xor_si256(
                _mm256_gf2p8affine_epi64_epi8::<0>(lo, hl),
                _mm256_gf2p8affine_epi64_epi8::<0>(hi, hh),
            );
            _mm256_storeu_si256(d, _mm256_xor_si256(_mm256_loadu_si256(d), rl));
            _mm256_storeu_si256(d.add(1), _mm256_xor_si256(_mm256_loadu_si256(d.add(1)), rh));
        }
    }
}

/// The 8 shuffle tables of one constant for SSSE3.
#[derive(Clone, Copy)]
struct TablesSsse3 {
    lo: [__m128i; 4],
    hi: [__m128i; 4],
}

#[target_feature(enable = "ssse3")]
fn tables_ssse3(c: u16) -> TablesSsse3 {
    let run = gf16::mul_x_run(c);
    // SAFETY: `run` is 16 u16 = 32 readable bytes; loadu has no alignment requirement.
    let pv = unsafe {
        let p = run.as_ptr() as *const __m128i;
        [_mm_loadu_si128(p), _mm_loadu_si128(p.add(1))]
    };
    let mut lo = [pv[0]; 4];
    let mut hi = [pv[0]; 4];
    for n in 0..4 {
        let v = pv[n / 2];
        let h = n % 2;
        let mut l = _mm_xor_si128(v, v);
        let mut u = l;
        for b in 0..4 {
            // SAFETY: SELECT rows are 32 bytes; both 16-byte halves are readable.
            let (sl, sh) = unsafe {
                let p = SELECT[h * 4 + b].as_ptr() as *const __m128i;
                (_mm_loadu_si128(p), _mm_loadu_si128(p.add(1)))
            };
            l = _mm_xor_si128(l, _mm_shuffle_epi8(v, sl));
            u = _mm_xor_si128(u, _mm_shuffle_epi8(v, sh));
        }
        lo[n] = l;
        hi[n] = u;
    }
    TablesSsse3 { lo, hi }
}

/// SSSE3 `dst ^= c * src`. Requires SSSE3 (checked by the caller) and
/// `dst.len() == src.len()`, a multiple of 64 (checked by the caller).
#[target_feature(enable = "ssse3")]
pub(super) fn mul_add_ssse3(dst: &mut [u8], src: &[u8], c: u16) {
    let t = tables_ssse3(c);
    let mask = _mm_set1_epi8(0x0f);
    for (d, s) in dst.chunks_exact_mut(CHUNK).zip(src.chunks_exact(CHUNK)) {
        for half in 0..2 {
            // SAFETY: `s` and `d` are 64-byte chunks; offsets 16*half and 32 + 16*half are in
            // bounds for 16-byte unaligned loads and stores.
            unsafe {
                let sp = s.as_ptr().add(16 * half) as *const __m128i;
                let dp = d.as_mut_ptr().add(16 * half) as *mut __m128i;
                let sl = _mm_loadu_si128(sp);
                let sh = _mm_loadu_si128(sp.add(2));
                let n0 = _mm_and_si128(sl, mask);
                let n1 = _mm_and_si128(_mm_srli_epi16::<4>(sl), mask);
                let n2 = _mm_and_si128(sh, mask);
                let n3 = _mm_and_si128(_mm_srli_epi16::<4>(sh), mask);
                let rl = _mm_xor_si128(
                    _mm_xor_si128(_mm_shuffle_epi8(t.lo[0], n0), _mm_shuffle_epi8(t.lo[1], n1)),
                    _mm_xor_si128(_mm_shuffle_epi8(t.lo[2], n2), _mm_shuffle_epi8(t.lo[3], n3)),
                );
                let rh = _mm_xor_si128(
                    _mm_xor_si128(_mm_shuffle_epi8(t.hi[0], n0), _mm_shuffle_epi8(t.hi[1], n1)),
                    _mm_xor_si128(_mm_shuffle_epi8(t.hi[2], n2), _mm_shuffle_epi8(t.hi[3], n3)),
                );
                _mm_storeu_si128(dp, _mm_xor_si128(_mm_loadu_si128(dp), rl));
                _mm_storeu_si128(dp.add(2), _mm_xor_si128(_mm_loadu_si128(dp.add(2)), rh));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `vgf2p8affineqb` computes for one byte (Intel's definition), in software.
    fn affine_byte(matrix: u64, x: u8) -> u8 {
        (0..8).fold(0u8, |out, i| {
            let row = (matrix >> (8 * (7 - i))) as u8;
            out | (((row & x).count_ones() & 1) as u8) << i
        })
    }

    #[test]
    fn gfni_matrices_multiply_by_the_constant() {
        let mut s = 0x9e37_79b9u32;
        for round in 0..3000u32 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let c = match round {
                0 => 0,
                1 => 1,
                2 => 0xffff,
                _ => (s >> 16) as u16,
            };
            let x = s as u16;
            let [ll, lh, hl, hh] = gfni_matrices(c);
            let (lo, hi) = (x as u8, (x >> 8) as u8);
            let got_lo = affine_byte(ll, lo) ^ affine_byte(lh, hi);
            let got_hi = affine_byte(hl, lo) ^ affine_byte(hh, hi);
            let got = got_lo as u16 | (got_hi as u16) << 8;
            assert_eq!(got, gf16::mul(c, x), "c={c:#x} x={x:#x}");
        }
    }
}
