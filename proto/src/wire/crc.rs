//! CRC32 (IEEE 802.3, the zlib/Ethernet polynomial) of every packet: a PCLMULQDQ folding
//! kernel where the CPU has it, else crc32fast's tables.
//!
//! crc32fast chooses its own PCLMULQDQ code at run time only with `std`, otherwise at compile
//! time; the workspace takes it without `std` (the static client), so every packet went
//! through its tables: 13 % of the client's CPU in the unshaped race (perf, 8 clients at
//! 500 Mbit/s). The kernel below is crc32fast 1.5.5's 128-bit fold (MIT OR Apache-2.0,
//! after Gopal et al., "Fast CRC computation for generic polynomials using PCLMULQDQ",
//! Intel, 2009), selected at run time with cpuid as the erasure code's kernels are. Where the
//! CPU has VPCLMULQDQ with AVX-512, packets of 256 bytes or more fold four 512-bit lanes
//! (256 bytes) per round instead of 64 bytes: 92 ns a 1440-byte packet became about 30 on
//! the lab's host, where every receiver checks every packet.
//!
//! The CPU's answer is kept: cpuid traps to the hypervisor in a virtual machine (microseconds),
//! and every packet in and out needs a CRC.

use core::sync::atomic::{AtomicU8, Ordering};

/// 0: not asked yet; 1: tables; 2: PCLMULQDQ; 3: VPCLMULQDQ with AVX-512 too.
static KERNEL: AtomicU8 = AtomicU8::new(0);

/// CRC32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= 16 {
        match kernel() {
            // SAFETY: kernel() found VPCLMULQDQ, AVX-512F/VL and what PCLMULQDQ's path needs.
            3 if data.len() >= x86::WIDE_MIN => return unsafe { x86::crc32_wide(data) },
            // SAFETY: kernel() found PCLMULQDQ, SSE4.1 and SSSE3 (SSE2 is x86_64's baseline).
            2 | 3 => return unsafe { x86::crc32(data) },
            _ => {}
        }
    }
    crc32_tables(data)
}

/// crc32fast's table code (also the reference the kernel is tested against).
fn crc32_tables(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(data);
    h.finalize()
}

#[cfg(target_arch = "x86_64")]
fn kernel() -> u8 {
    match KERNEL.load(Ordering::Relaxed) {
        0 => {
            let k = match (x86::detect(), x86::detect_wide()) {
                (true, true) => 3,
                (true, false) => 2,
                _ => 1,
            };
            KERNEL.store(k, Ordering::Relaxed);
            k
        }
        k => k,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64 as arch;

    const K3: i64 = 0x1751997d0;
    const K4: i64 = 0x0ccaa009e;
    const K5: i64 = 0x163cd6124;
    const K1: i64 = 0x154442bd4;
    const K2: i64 = 0x1c6e41596;
    const P_X: i64 = 0x1DB710641;
    const U_PRIME: i64 = 0x1F7011641;

    /// PCLMULQDQ (leaf 1 ECX bit 1), SSSE3 (bit 9) and SSE4.1 (bit 19).
    pub(super) fn detect() -> bool {
        let ecx = arch::__cpuid(1).ecx;
        ecx & (1 << 1) != 0 && ecx & (1 << 9) != 0 && ecx & (1 << 19) != 0
    }

    /// Fold constants over 2048 bits (256 bytes): x^(2048+32) and x^(2048-32) mod P,
    /// bit-reflected, as K1 and K2 are over 512 bits.
    const K2048_LO: i64 = 0x11542778a;
    const K2048_HI: i64 = 0x1322d1430;
    /// The least length that the wide kernel takes (one round of its four lanes).
    pub(super) const WIDE_MIN: usize = 256;

    /// VPCLMULQDQ (leaf 7 ECX bit 10) with AVX-512F (EBX bit 16) and AVX-512VL (EBX bit 31),
    /// and the OS saving the vector state (XCR0: SSE, AVX, opmask and both ZMM parts).
    pub(super) fn detect_wide() -> bool {
        let (Some(xcr0), Some(leaf7)) = (crate::cpu::xcr0(), crate::cpu::leaf7()) else {
            return false;
        };
        xcr0 & 0xe6 == 0xe6
            && leaf7.ecx & (1 << 10) != 0
            && leaf7.ebx & (1 << 16) != 0
            && leaf7.ebx & (1 << 31) != 0
    }

    /// CRC32 of `data` (at least [`WIDE_MIN`] bytes): four 512-bit accumulators fold 256
    /// bytes a round, then into one, whose four 128-bit lanes go on as [`crc32`]'s do.
    ///
    /// # Safety
    /// The CPU must have VPCLMULQDQ, AVX-512F and AVX-512VL ([`detect_wide`]) and what
    /// [`crc32`] needs.
    #[target_feature(
        enable = "avx512f",
        enable = "avx512vl",
        enable = "vpclmulqdq",
        enable = "pclmulqdq",
        enable = "sse4.1",
        enable = "ssse3"
    )]
    pub(super) unsafe fn crc32_wide(mut data: &[u8]) -> u32 {
        debug_assert!(data.len() >= WIDE_MIN);
        let init = arch::_mm512_zextsi128_si512(arch::_mm_cvtsi32_si128(!0u32 as i32));
        let mut x0 = arch::_mm512_xor_si512(get_wide(&mut data), init);
        let mut x1 = get_wide(&mut data);
        let mut x2 = get_wide(&mut data);
        let mut x3 = get_wide(&mut data);
        let k2048 = arch::_mm512_broadcast_i32x4(arch::_mm_set_epi64x(K2048_HI, K2048_LO));
        while data.len() >= 256 {
            x0 = fold_wide(x0, get_wide(&mut data), k2048);
            x1 = fold_wide(x1, get_wide(&mut data), k2048);
            x2 = fold_wide(x2, get_wide(&mut data), k2048);
            x3 = fold_wide(x3, get_wide(&mut data), k2048);
        }
        // The four accumulators are 64 bytes apart: fold them into the last, then on over
        // whole 64-byte groups.
        let k512 = arch::_mm512_broadcast_i32x4(arch::_mm_set_epi64x(K2, K1));
        let mut x = fold_wide(x0, x1, k512);
        x = fold_wide(x, x2, k512);
        x = fold_wide(x, x3, k512);
        while data.len() >= 64 {
            x = fold_wide(x, get_wide(&mut data), k512);
        }
        // Its four lanes are 16 bytes apart, the first the oldest.
        let lanes = [
            arch::_mm512_extracti32x4_epi32::<0>(x),
            arch::_mm512_extracti32x4_epi32::<1>(x),
            arch::_mm512_extracti32x4_epi32::<2>(x),
            arch::_mm512_extracti32x4_epi32::<3>(x),
        ];
        reduce_to_crc(fold_lanes(lanes), data)
    }

    /// `a` carried 512 bits on (each 128-bit lane by `keys`, as [`fold`] does) into `b`.
    #[target_feature(enable = "avx512f", enable = "vpclmulqdq")]
    fn fold_wide(a: arch::__m512i, b: arch::__m512i, keys: arch::__m512i) -> arch::__m512i {
        let t1 = arch::_mm512_clmulepi64_epi128::<0x00>(a, keys);
        let t2 = arch::_mm512_clmulepi64_epi128::<0x11>(a, keys);
        arch::_mm512_ternarylogic_epi64::<0x96>(t1, t2, b)
    }

    /// The next 64 bytes (panics with fewer: the callers loop only while 64 remain).
    #[target_feature(enable = "avx512f")]
    fn get_wide(a: &mut &[u8]) -> arch::__m512i {
        let block: &[u8; 64] = a[..64].try_into().expect("64 bytes");
        *a = &a[64..];
        // SAFETY: `block` is 64 readable bytes; the load needs no alignment; AVX-512F is
        // enabled for this function, and its callers run only where the CPU has it.
        unsafe { arch::_mm512_loadu_si512(block.as_ptr().cast()) }
    }

    /// CRC32 of `data` (16 bytes or more).
    ///
    /// # Safety
    /// The CPU must have PCLMULQDQ, SSE4.1 and SSSE3.
    #[target_feature(enable = "pclmulqdq", enable = "sse4.1", enable = "ssse3")]
    pub(super) unsafe fn crc32(mut data: &[u8]) -> u32 {
        debug_assert!(data.len() >= 16);
        // The initial value: the CRC of nothing, inverted as the algorithm wants.
        let init = arch::_mm_cvtsi32_si128(!0u32 as i32);
        if data.len() < 128 {
            let x = arch::_mm_xor_si128(get(&mut data), init);
            return reduce_to_crc(x, data);
        }
        // Fold four 128-bit lanes over 64-byte groups, then the lanes into one.
        let mut x3 = arch::_mm_xor_si128(get(&mut data), init);
        let mut x2 = get(&mut data);
        let mut x1 = get(&mut data);
        let mut x0 = get(&mut data);
        let k1k2 = arch::_mm_set_epi64x(K2, K1);
        while data.len() >= 64 {
            x3 = fold(x3, get(&mut data), k1k2);
            x2 = fold(x2, get(&mut data), k1k2);
            x1 = fold(x1, get(&mut data), k1k2);
            x0 = fold(x0, get(&mut data), k1k2);
        }
        reduce_to_crc(fold_lanes([x3, x2, x1, x0]), data)
    }

    /// Four 128-bit lanes 16 bytes apart (the oldest first) folded into one.
    #[target_feature(enable = "pclmulqdq")]
    fn fold_lanes(lanes: [arch::__m128i; 4]) -> arch::__m128i {
        let k3k4 = arch::_mm_set_epi64x(K4, K3);
        let [a, b, c, d] = lanes;
        fold(fold(fold(a, b, k3k4), c, k3k4), d, k3k4)
    }

    /// Folds the remaining whole 16-byte blocks into `x`, then the last partial one, and
    /// reduces the 128 bits to the CRC (Barrett reduction, bit-reflected).
    #[target_feature(enable = "pclmulqdq", enable = "sse4.1", enable = "ssse3")]
    fn reduce_to_crc(mut x: arch::__m128i, mut data: &[u8]) -> u32 {
        let k3k4 = arch::_mm_set_epi64x(K4, K3);
        while data.len() >= 16 {
            x = fold(x, get(&mut data), k3k4);
        }
        let n = data.len();
        if n > 0 {
            // The accumulator's last n bytes are shifted out and folded back over 128 bits;
            // the n new bytes move into the room left.
            let seq = arch::_mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let shl = arch::_mm_add_epi8(seq, arch::_mm_set1_epi8(n as i8 - 16));
            let shr = arch::_mm_xor_si128(shl, arch::_mm_set1_epi8(-128));
            let overflow = arch::_mm_shuffle_epi8(x, shl);
            x = arch::_mm_shuffle_epi8(x, shr);
            let (lo, hi) = partial_words(data);
            let part = arch::_mm_set_epi64x(hi as i64, lo as i64);
            x = arch::_mm_xor_si128(x, arch::_mm_shuffle_epi8(part, shl));
            x = fold(overflow, x, k3k4);
        }
        // 128 bits to 64, then to 32 (Barrett), the bit-reflected variant.
        let low32 = arch::_mm_set_epi32(0, 0, 0, !0);
        let x = arch::_mm_xor_si128(
            arch::_mm_clmulepi64_si128(x, k3k4, 0x10),
            arch::_mm_srli_si128(x, 8),
        );
        let x = arch::_mm_xor_si128(
            arch::_mm_clmulepi64_si128(
                arch::_mm_and_si128(x, low32),
                arch::_mm_set_epi64x(0, K5),
                0x00,
            ),
            arch::_mm_srli_si128(x, 4),
        );
        let pu = arch::_mm_set_epi64x(U_PRIME, P_X);
        let t1 = arch::_mm_clmulepi64_si128(arch::_mm_and_si128(x, low32), pu, 0x10);
        let t2 = arch::_mm_clmulepi64_si128(arch::_mm_and_si128(t1, low32), pu, 0x00);
        !(arch::_mm_extract_epi32(arch::_mm_xor_si128(x, t2), 1) as u32)
    }

    #[target_feature(enable = "pclmulqdq")]
    fn fold(a: arch::__m128i, b: arch::__m128i, keys: arch::__m128i) -> arch::__m128i {
        let t1 = arch::_mm_clmulepi64_si128(a, keys, 0x00);
        let t2 = arch::_mm_clmulepi64_si128(a, keys, 0x11);
        arch::_mm_xor_si128(arch::_mm_xor_si128(b, t1), t2)
    }

    /// The next 16 bytes (panics with fewer: the callers loop only while 16 remain).
    fn get(a: &mut &[u8]) -> arch::__m128i {
        let block: &[u8; 16] = a[..16].try_into().expect("16 bytes");
        *a = &a[16..];
        // SAFETY: `block` is 16 readable bytes; the load needs no alignment; SSE2 is in
        // every x86_64 CPU.
        unsafe { arch::_mm_loadu_si128(block.as_ptr().cast()) }
    }

    /// A final block of 1..=15 bytes as two zero-padded little-endian words.
    fn partial_words(data: &[u8]) -> (u64, u64) {
        let mut block = [0u8; 16];
        block[..data.len()].copy_from_slice(data);
        (
            u64::from_le_bytes(block[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(block[8..].try_into().expect("8 bytes")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length from 0 to 600 at every alignment within 16, and packet sizes, equal the
    /// table code (the reference), whichever kernel this CPU runs.
    #[test]
    fn equals_the_table_code_at_every_length_and_alignment() {
        let mut bytes = [0u8; 1600];
        let mut x = 0x9e37_79b9_u32;
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        for start in 0..16 {
            for len in (0..600).chain([1448, 1472, 1500, 1584]) {
                let d = &bytes[start..start + len];
                assert_eq!(crc32(d), crc32_tables(d), "start {start} len {len}");
            }
        }
        // The check value of the IEEE CRC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(&[0u8; 32]), crc32_tables(&[0u8; 32]));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_kernel_runs_where_the_cpu_has_it() {
        // On this project's machines (and CI) the CPU has PCLMULQDQ: the kernel, not the
        // tables, is what the test above compared.
        if x86::detect() {
            assert!(kernel() >= 2);
            let d = [0x5au8; 1400];
            // SAFETY: detect() found the features.
            assert_eq!(unsafe { x86::crc32(&d) }, crc32_tables(&d));
        }
        // And where it has VPCLMULQDQ with AVX-512 (this project's lab host), the wide one,
        // over one round, rounds and a tail of 64-byte groups and bytes.
        if x86::detect() && x86::detect_wide() {
            assert_eq!(kernel(), 3);
            let mut d = [0u8; 1500];
            for (i, b) in d.iter_mut().enumerate() {
                *b = (i * 131 + 7) as u8;
            }
            for len in [256, 257, 319, 320, 511, 512, 513, 1444, 1500] {
                // SAFETY: detect() and detect_wide() found the features; len >= WIDE_MIN.
                let wide = unsafe { x86::crc32_wide(&d[..len]) };
                assert_eq!(wide, crc32_tables(&d[..len]), "len {len}");
            }
        }
    }
}
