//! What the CPU has and the OS saves of its vector state, asked of cpuid and xgetbv
//! without std: the erasure code's and the CRC's kernels both need it before choosing a
//! wide kernel.

use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv, CpuidResult};

/// cpuid leaf 7 (sub-leaf 0: the extended features), or None when the CPU has no such leaf.
pub(crate) fn leaf7() -> Option<CpuidResult> {
    // cpuid leaf 0 exists on every x86_64 CPU (a safe intrinsic) and gives the highest leaf.
    (__cpuid(0).eax >= 7).then(|| __cpuid_count(7, 0))
}

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
