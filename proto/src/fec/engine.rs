//! [`Engine`]: the erasure code with its multiply-add kernel chosen once, as a value.

#[cfg(target_arch = "x86_64")]
use super::x86;
use super::{CHUNK, FecError, Kernel, MULTI_MAX, fastest_kernel, scalar};

/// The erasure code bound to one multiply-add kernel that this CPU supports.
///
/// Cheap to copy (one byte); users keep one in their configuration and call the codec
/// through it ([`Engine::encode_symbols`], [`Engine::decode_in_place`]). The kernel only
/// changes speed: every engine produces the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engine {
    /// Invariant: supported by this CPU (checked by every constructor), which is what makes
    /// the SIMD dispatch below sound.
    kernel: Kernel,
}

impl Engine {
    /// The engine with the fastest kernel this CPU supports.
    pub fn detect() -> Engine {
        Engine {
            kernel: fastest_kernel(),
        }
    }

    /// The engine with `kernel`; `Err(UnsupportedKernel)` if this CPU lacks it.
    pub fn new(kernel: Kernel) -> Result<Engine, FecError> {
        if kernel <= fastest_kernel() {
            Ok(Engine { kernel })
        } else {
            Err(FecError::UnsupportedKernel)
        }
    }

    /// The engine with the portable scalar kernel (runs everywhere; the reference).
    pub const fn scalar() -> Engine {
        Engine {
            kernel: Kernel::Scalar,
        }
    }

    /// The kernel this engine runs.
    pub const fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// `dst ^= c * src`, element-wise in the chunked layout.
    ///
    /// # Panics
    /// If `dst.len() != src.len()` or the length is not a multiple of
    /// [`SYMBOL_ALIGN`](super::SYMBOL_ALIGN).
    pub fn mul_add(&self, dst: &mut [u8], src: &[u8], c: u16) {
        assert!(
            dst.len() == src.len() && dst.len().is_multiple_of(CHUNK),
            "mul_add: dst and src must have the same length, a multiple of 64"
        );
        self.mul_add_checked(dst, src, c);
    }

    /// `dst[o] ^= coefs[o] * src` for the `coefs.len()` outputs of `src.len()` bytes stored
    /// contiguously in `dst`. The AVX2 engine runs a fused kernel (one pass over `src` for up
    /// to 8 outputs).
    ///
    /// # Panics
    /// If `src.len()` is not a multiple of [`SYMBOL_ALIGN`](super::SYMBOL_ALIGN) or
    /// `dst.len() != coefs.len() * src.len()`.
    pub fn mul_add_multi(&self, dst: &mut [u8], src: &[u8], coefs: &[u16]) {
        assert!(
            src.len().is_multiple_of(CHUNK)
                && Some(dst.len()) == coefs.len().checked_mul(src.len()),
            "mul_add_multi: dst must hold coefs.len() symbols of src.len() bytes"
        );
        let size = src.len();
        if size == 0 {
            return;
        }
        for (group, cs) in dst
            .chunks_mut(MULTI_MAX * size)
            .zip(coefs.chunks(MULTI_MAX))
        {
            match self.kernel {
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2 if cs.len() > 1 => {
                    // SAFETY: an engine's kernel is supported by this CPU (constructor
                    // invariant), so AVX2 is; `group` holds exactly cs.len() symbols of
                    // `size` bytes, whole chunks.
                    unsafe { x86::mul_add_multi_avx2(group, src, cs) }
                }
                _ => {
                    for (d, &c) in group.chunks_exact_mut(size).zip(cs) {
                        self.mul_add_checked(d, src, c);
                    }
                }
            }
        }
    }

    /// `dst ^= c * src` with this engine's kernel; the operands are already checked (equal
    /// lengths, whole chunks).
    pub(super) fn mul_add_checked(&self, dst: &mut [u8], src: &[u8], c: u16) {
        match (self.kernel, c) {
            (_, 0) => {}
            (_, 1) => scalar::xor_into(dst, src),
            #[cfg(target_arch = "x86_64")]
            (Kernel::Gfni, _) => {
                // SAFETY: an engine's kernel is supported by this CPU (constructor invariant),
                // so the CPU and OS support GFNI and AVX2; the operands have equal lengths in
                // whole chunks (checked by the caller).
                unsafe { x86::mul_add_gfni(dst, src, c) }
            }
            #[cfg(target_arch = "x86_64")]
            (Kernel::Avx2, _) => {
                // SAFETY: an engine's kernel is supported by this CPU (constructor invariant),
                // so the CPU and OS support AVX2; the operands have equal lengths in whole
                // chunks (checked by the caller).
                unsafe { x86::mul_add_avx2(dst, src, c) }
            }
            #[cfg(target_arch = "x86_64")]
            (Kernel::Ssse3, _) => {
                // SAFETY: an engine's kernel is supported by this CPU (constructor invariant),
                // so SSSE3 is; the operands have equal lengths in whole chunks (checked by the
                // caller).
                unsafe { x86::mul_add_ssse3(dst, src, c) }
            }
            _ => scalar::mul_add(dst, src, c),
        }
    }
}
