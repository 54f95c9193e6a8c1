//! Systematic Cauchy Reed-Solomon erasure code over GF(2^16) (see [`crate::gf16`]).
//!
//! A block has `k` source symbols (`1 <= k <= MAX_K`) of `S` bytes each, `S` a positive
//! multiple of [`SYMBOL_ALIGN`]. Symbols are named by an encoding symbol index `esi: u16`:
//! `esi < k` is source symbol `esi` itself; `esi >= k` is the repair symbol
//! `R_r = sum_j C(r, j) * X_j` with `C(r, j) = 1 / (r XOR j)`. The generator `[I; C]` is MDS:
//! any `k` distinct symbols of a block rebuild it.
//!
//! Layout of field elements inside a symbol: a sequence of 64-byte chunks; in each chunk bytes
//! `0..32` are the low bytes and bytes `32..64` the high bytes of 32 elements
//! (element `i = lo[i] | hi[i] << 8`). Scalar and SIMD kernels use this same layout, so their
//! results are bit-identical.
//!
//! Everything works in caller-provided buffers: no heap, `no_std`.

use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::gf16;

#[cfg(target_arch = "x86_64")]
mod x86;

/// Largest number of source symbols per block: [`crate::wire::MAX_K`] as a `usize`.
pub const MAX_K: usize = crate::wire::MAX_K as usize;

/// Number of source symbols per block used by default in the project.
pub const DEFAULT_K: usize = 512;

/// Symbol sizes must be a positive multiple of this (one chunk of 32 field elements):
/// [`crate::wire::SYMBOL_ALIGN`] as a `usize`.
pub const SYMBOL_ALIGN: usize = crate::wire::SYMBOL_ALIGN as usize;

const CHUNK: usize = SYMBOL_ALIGN;

/// Number of outputs the fused multi-output kernel processes per pass over a source symbol.
const MULTI_MAX: usize = 8;

/// Bytes of the duplicate-esi bitmap inside the decode scratch (one bit per esi).
const BITMAP_BYTES: usize = 65_536 / 8;

/// Errors of the erasure code. Validation happens before any output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FecError {
    /// `k` is 0 or above [`MAX_K`], or the symbol size is 0 or not a multiple of
    /// [`SYMBOL_ALIGN`] (or `k * S` overflows).
    BadGeometry,
    /// An esi is out of range (e.g. `first_esi + count` above 65536).
    BadEsi,
    /// Two positions hold the same repair esi.
    DuplicateEsi,
    /// A position `i` holds a source symbol `esi < k` with `esi != i`.
    MisplacedSource,
    /// A caller-provided buffer is shorter than required.
    BufferTooSmall,
    /// The requested SIMD kernel is not supported by this CPU or target.
    UnsupportedKernel,
}

impl fmt::Display for FecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FecError::BadGeometry => "bad block geometry (k or symbol size)",
            FecError::BadEsi => "encoding symbol index out of range",
            FecError::DuplicateEsi => "duplicate encoding symbol index",
            FecError::MisplacedSource => "source symbol stored at a position other than its esi",
            FecError::BufferTooSmall => "buffer too small",
            FecError::UnsupportedKernel => "kernel not supported on this CPU",
        })
    }
}

/// Implementation of the multiply-add primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kernel {
    /// Portable table-driven code (two 256-entry tables per constant).
    Scalar = 1,
    /// x86_64 SSSE3 `pshufb`, 16 bytes per shuffle.
    Ssse3 = 2,
    /// x86_64 AVX2 `vpshufb`, 32 bytes per shuffle.
    Avx2 = 3,
}

impl Kernel {
    /// All kernels, slowest first.
    pub const ALL: [Kernel; 3] = [Kernel::Scalar, Kernel::Ssse3, Kernel::Avx2];

    /// Short lower-case name (`scalar`, `ssse3`, `avx2`).
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Ssse3 => "ssse3",
            Kernel::Avx2 => "avx2",
        }
    }

    /// Whether this kernel can run on this CPU (scalar always can).
    pub fn is_available(self) -> bool {
        self <= best_kernel()
    }

    const fn from_u8(v: u8) -> Option<Kernel> {
        match v {
            1 => Some(Kernel::Scalar),
            2 => Some(Kernel::Ssse3),
            3 => Some(Kernel::Avx2),
            _ => None,
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Cached result of CPU detection (0 = not yet detected).
static DETECTED: AtomicU8 = AtomicU8::new(0);
/// Kernel used by [`mul_add`] and the codec (0 = the detected one).
static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// The fastest kernel this CPU supports (detected once with cpuid/xgetbv, then cached).
pub fn best_kernel() -> Kernel {
    if let Some(k) = Kernel::from_u8(DETECTED.load(Ordering::Relaxed)) {
        return k;
    }
    #[cfg(target_arch = "x86_64")]
    let k = x86::detect();
    #[cfg(not(target_arch = "x86_64"))]
    let k = Kernel::Scalar;
    DETECTED.store(k as u8, Ordering::Relaxed);
    k
}

/// The kernel currently used by [`mul_add`], [`encode_symbol`], [`encode_symbols`] and
/// [`decode_in_place`]: the one chosen by [`set_kernel`], else [`best_kernel`].
pub fn active_kernel() -> Kernel {
    Kernel::from_u8(ACTIVE.load(Ordering::Relaxed)).unwrap_or_else(best_kernel)
}

/// Forces the kernel used by the codec (process-wide), e.g. to benchmark or test the scalar
/// path. Results do not depend on the kernel, only speed does.
pub fn set_kernel(kernel: Kernel) -> Result<(), FecError> {
    if !kernel.is_available() {
        return Err(FecError::UnsupportedKernel);
    }
    ACTIVE.store(kernel as u8, Ordering::Relaxed);
    Ok(())
}

/// Checks `mul_add` operands: equal lengths, whole chunks.
fn check_operands(dst: &[u8], src: &[u8]) {
    assert!(
        dst.len() == src.len() && dst.len().is_multiple_of(CHUNK),
        "mul_add: dst and src must have the same length, a multiple of 64"
    );
}

/// `dst ^= c * src`, element-wise in the chunked layout, with the active kernel.
///
/// # Panics
/// If `dst.len() != src.len()` or the length is not a multiple of [`SYMBOL_ALIGN`].
pub fn mul_add(dst: &mut [u8], src: &[u8], c: u16) {
    check_operands(dst, src);
    run_mul_add(active_kernel(), dst, src, c);
}

/// `dst ^= c * src` with the portable scalar kernel (the reference for the SIMD kernels).
///
/// # Panics
/// Same as [`mul_add`].
pub fn mul_add_scalar(dst: &mut [u8], src: &[u8], c: u16) {
    check_operands(dst, src);
    scalar_mul_add(dst, src, c);
}

/// `dst ^= c * src` with an explicit kernel; `Err(UnsupportedKernel)` if the CPU lacks it.
///
/// # Panics
/// Same as [`mul_add`].
pub fn mul_add_with(kernel: Kernel, dst: &mut [u8], src: &[u8], c: u16) -> Result<(), FecError> {
    if !kernel.is_available() {
        return Err(FecError::UnsupportedKernel);
    }
    check_operands(dst, src);
    run_mul_add(kernel, dst, src, c);
    Ok(())
}

/// Dispatch; `kernel` must be available and the operands checked.
fn run_mul_add(kernel: Kernel, dst: &mut [u8], src: &[u8], c: u16) {
    match (kernel, c) {
        (_, 0) => {}
        (_, 1) => xor_into(dst, src),
        #[cfg(target_arch = "x86_64")]
        (Kernel::Avx2, _) => {
            // SAFETY: `kernel` is available (checked by every caller), so the CPU and OS
            // support AVX2; the operands have equal lengths in whole chunks.
            unsafe { x86::mul_add_avx2(dst, src, c) }
        }
        #[cfg(target_arch = "x86_64")]
        (Kernel::Ssse3, _) => {
            // SAFETY: `kernel` is available (checked by every caller), so the CPU supports
            // SSSE3; the operands have equal lengths in whole chunks.
            unsafe { x86::mul_add_ssse3(dst, src, c) }
        }
        _ => scalar_mul_add(dst, src, c),
    }
}

/// `dst ^= src` (multiplication by 1).
fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.chunks_exact_mut(8).zip(src.chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(d);
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        d.copy_from_slice(&(u64::from_ne_bytes(a) ^ u64::from_ne_bytes(b)).to_ne_bytes());
    }
}

/// Portable kernel: `c * (lo | hi << 8) = LO[lo] ^ HI[hi]` with two 256-entry tables built by
/// linearity from the 16 products `c * x^i`.
fn scalar_mul_add(dst: &mut [u8], src: &[u8], c: u16) {
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

/// `dst[o] ^= coefs[o] * src` for the `coefs.len()` outputs of `src.len()` bytes stored
/// contiguously in `dst`. Uses a fused kernel (one pass over `src` for up to 8 outputs) when
/// the active kernel is AVX2.
///
/// # Panics
/// If `src.len()` is not a multiple of [`SYMBOL_ALIGN`] or
/// `dst.len() != coefs.len() * src.len()`.
pub fn mul_add_multi(dst: &mut [u8], src: &[u8], coefs: &[u16]) {
    assert!(
        src.len().is_multiple_of(CHUNK) && Some(dst.len()) == coefs.len().checked_mul(src.len()),
        "mul_add_multi: dst must hold coefs.len() symbols of src.len() bytes"
    );
    let size = src.len();
    if size == 0 {
        return;
    }
    let kernel = active_kernel();
    for (group, cs) in dst
        .chunks_mut(MULTI_MAX * size)
        .zip(coefs.chunks(MULTI_MAX))
    {
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 if cs.len() > 1 => {
                // SAFETY: the active kernel is always an available one, so AVX2 is supported;
                // `group` holds exactly cs.len() symbols of `size` bytes, whole chunks.
                unsafe { x86::mul_add_multi_avx2(group, src, cs) }
            }
            _ => {
                for (d, &c) in group.chunks_exact_mut(size).zip(cs) {
                    run_mul_add(kernel, d, src, c);
                }
            }
        }
    }
}

/// Outputs per pass over the sources: `n` split into equal groups of at most [`MULTI_MAX`]
/// (26 outputs run as 7 + 7 + 6 + 6 rather than 8 + 8 + 8 + 2).
fn balanced_group(n: usize) -> usize {
    if n == 0 {
        return 1;
    }
    n.div_ceil(n.div_ceil(MULTI_MAX))
}

/// Validates `k` and the symbol size, returning the block size `k * S`.
fn block_bytes(k: usize, symbol_size: usize) -> Result<usize, FecError> {
    if k == 0 || k > MAX_K || symbol_size == 0 || !symbol_size.is_multiple_of(SYMBOL_ALIGN) {
        return Err(FecError::BadGeometry);
    }
    k.checked_mul(symbol_size).ok_or(FecError::BadGeometry)
}

/// Cauchy coefficient `C(r, j) = 1 / (r XOR j)` of source `j` in repair symbol `r`
/// (`r >= k > j`).
#[inline]
pub fn coefficient(r: u16, j: u16) -> u16 {
    gf16::inv(r ^ j)
}

/// Writes symbol `esi` of the block into `out[..symbol_size]`.
///
/// `block[..k * symbol_size]` holds the `k` source symbols contiguously. For `esi < k` this is
/// a copy of source symbol `esi`; otherwise the repair symbol `sum_j C(esi, j) * X_j`
/// (cost: `k` multiply-adds of one symbol).
pub fn encode_symbol(
    block: &[u8],
    k: usize,
    symbol_size: usize,
    esi: u16,
    out: &mut [u8],
) -> Result<(), FecError> {
    encode_symbols(block, k, symbol_size, esi, 1, out)
}

/// Writes the `count` consecutive symbols `first_esi .. first_esi + count` of the block into
/// `out[..count * symbol_size]` (symbol `first_esi + i` at offset `i * symbol_size`).
///
/// Repair symbols are computed up to 8 at a time in one pass over the source symbols, which is
/// faster than calling [`encode_symbol`] for each. `first_esi + count` must not exceed 65536.
pub fn encode_symbols(
    block: &[u8],
    k: usize,
    symbol_size: usize,
    first_esi: u16,
    count: usize,
    out: &mut [u8],
) -> Result<(), FecError> {
    let total = block_bytes(k, symbol_size)?;
    if first_esi as usize + count > 65_536 {
        return Err(FecError::BadEsi);
    }
    let out_bytes = count
        .checked_mul(symbol_size)
        .ok_or(FecError::BufferTooSmall)?;
    if block.len() < total || out.len() < out_bytes {
        return Err(FecError::BufferTooSmall);
    }
    let block = &block[..total];
    let out = &mut out[..out_bytes];
    let first = first_esi as usize;
    // Source symbols: verbatim copies.
    let n_src = k.saturating_sub(first).min(count);
    if n_src > 0 {
        out[..n_src * symbol_size]
            .copy_from_slice(&block[first * symbol_size..(first + n_src) * symbol_size]);
    }
    // Repair symbols, in groups sharing each pass over the sources.
    let repair = &mut out[n_src * symbol_size..];
    let mut esi = first + n_src;
    let per_group = balanced_group(count - n_src);
    for group in repair.chunks_mut(per_group * symbol_size) {
        let g = group.len() / symbol_size;
        group.fill(0);
        let mut coefs = [0u16; MULTI_MAX];
        for (j, x) in block.chunks_exact(symbol_size).enumerate() {
            for (o, c) in coefs[..g].iter_mut().enumerate() {
                *c = coefficient((esi + o) as u16, j as u16);
            }
            mul_add_multi(group, x, &coefs[..g]);
        }
        esi += g;
    }
    Ok(())
}

/// Bytes of `scratch` that [`decode_in_place`] needs for a block of `k` symbols of
/// `symbol_size` bytes: `k * symbol_size` for the repair symbols being solved, plus an
/// 8 KiB esi bitmap and `4 * k` bytes of index and logarithm lists.
pub const fn decode_scratch_bytes(k: usize, symbol_size: usize) -> usize {
    k * symbol_size + BITMAP_BYTES + 4 * k
}

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

/// Rebuilds a block in place from any `k` distinct symbols.
///
/// `block[..k * symbol_size]` holds at position `i` the symbol whose esi is `esi_at[i]`
/// (`esi_at[..k]` is used): a source symbol must sit at its own position (`esi_at[i] == i`),
/// repair symbols (`esi >= k`) sit at positions whose source is missing. All esis must be
/// distinct. `scratch` must hold at least [`decode_scratch_bytes`]`(k, symbol_size)` bytes.
///
/// On success every position `i` holds source symbol `i` and `esi_at[i] == i`. On error
/// (validation happens first) `block` and `esi_at` are unchanged.
///
/// Cost: with `e` repair symbols, `e * k` symbol multiply-adds, using the closed-form inverse
/// of the `e x e` Cauchy submatrix (O(e) memory).
pub fn decode_in_place(
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
            mul_add_multi(group, x, &coefs[..n]);
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
            run_mul_add(active_kernel(), dst, y, d);
        }
    }
    for m in 0..e {
        let p = pos(m);
        esi_at[p] = p as u16;
    }
    Ok(())
}
