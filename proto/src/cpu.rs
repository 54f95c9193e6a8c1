//! What the OS saves of the CPU's vector state, asked of xgetbv without std: the erasure
//! code's and the CRC's kernels both need it before choosing a wide kernel.

use core::arch::x86_64::{__cpuid, _xgetbv};

/// XCR0 (which register state the OS saves and restores), or None when the OS did not
/// enable XSAVE (OSXSAVE clear): then no AVX register may be used.
pub(crate) fn xcr0() -> Option<u64> {
    // cpuid leaf 1 exists on every x86_64 CPU (a safe intrinsic).
    if __cpuid(1).ecx & (1 << 27) == 0 {
        return None;
    }
    // SAFETY: OSXSAVE is set, so the OS enabled XSAVE and xgetbv is a valid instruction.
    Some(unsafe { read_xcr0() })
}

#[target_feature(enable = "xsave")]
unsafe fn read_xcr0() -> u64 {
    // SAFETY: the caller checked OSXSAVE, so xgetbv(0) does not fault.
    unsafe { _xgetbv(0) }
}
