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
//! The multiply-add kernel (scalar, SSSE3, AVX2, GFNI) is chosen by an [`Engine`] value that the
//! code's users carry, never by process-wide state: two engines with different kernels can
//! run side by side, and their results are identical.
//!
//! Everything works in caller-provided buffers: no heap, `no_std`.

use core::fmt;

use crate::gf16;

mod decode;
mod encode;
mod engine;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use engine::Engine;

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

/// Implementation of the multiply-add primitive. Ordered slowest first: a CPU that supports
/// a kernel supports every kernel below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernel {
    /// Portable table-driven code (two 256-entry tables per constant).
    Scalar,
    /// x86_64 SSSE3 `pshufb`, 16 bytes per shuffle.
    Ssse3,
    /// x86_64 AVX2 `vpshufb`, 32 bytes per shuffle.
    Avx2,
    /// x86_64 GFNI `vgf2p8affineqb` (with AVX2): multiplication as bit matrices on the byte
    /// planes, 32 bytes per instruction.
    Gfni,
}

impl Kernel {
    /// All kernels, slowest first.
    pub const ALL: [Kernel; 4] = [Kernel::Scalar, Kernel::Ssse3, Kernel::Avx2, Kernel::Gfni];

    /// Short lower-case name (`scalar`, `ssse3`, `avx2`, `gfni`).
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Ssse3 => "ssse3",
            Kernel::Avx2 => "avx2",
            Kernel::Gfni => "gfni",
        }
    }

    /// Whether this kernel can run on this CPU (scalar always can). Asks the CPU each time.
    pub fn is_available(self) -> bool {
        self <= fastest_kernel()
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The fastest kernel this CPU and OS support (cpuid and xgetbv on x86_64, not cached: the
/// answer cannot change and callers ask once per [`Engine`]).
fn fastest_kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    let kernel = x86::detect();
    #[cfg(not(target_arch = "x86_64"))]
    let kernel = Kernel::Scalar;
    kernel
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

/// Bytes of `scratch` that [`Engine::decode_in_place`] needs for a block of `k` symbols of
/// `symbol_size` bytes: `k * symbol_size` for the repair symbols being solved, plus an
/// 8 KiB esi bitmap and `4 * k` bytes of index and logarithm lists.
pub const fn decode_scratch_bytes(k: usize, symbol_size: usize) -> usize {
    k * symbol_size + BITMAP_BYTES + 4 * k
}
