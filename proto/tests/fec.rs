//! Property tests of the GF(2^16) field and the Cauchy Reed-Solomon code.
//!
//! Deterministic: a hand-written xorshift generator with fixed seeds (set `FEC_SEED` to explore
//! other seeds).

use bb_proto::fec::{Engine, FecError, Kernel, MAX_K, decode_scratch_bytes};
use bb_proto::gf16;

/// xorshift64* PRNG.
struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Rng {
        let seed = std::env::var("FEC_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Rng((seed ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi_inclusive: usize) -> usize {
        lo + self.below(hi_inclusive - lo + 1)
    }
    fn u16(&mut self) -> u16 {
        self.next() as u16
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
    /// `n` distinct values from `lo..=hi`, in random order (partial Fisher-Yates on demand).
    fn distinct(&mut self, n: usize, lo: usize, hi: usize) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::with_capacity(n);
        while out.len() < n {
            let v = self.range(lo, hi);
            if !out.contains(&v) {
                out.push(v);
            }
        }
        out
    }
}

/// One engine per kernel this CPU supports, slowest (scalar) first.
fn available_engines() -> Vec<Engine> {
    Kernel::ALL
        .into_iter()
        .filter_map(|k| Engine::new(k).ok())
        .collect()
}

/// Element `i` of a symbol in the chunked layout.
fn element(sym: &[u8], i: usize) -> u16 {
    let (c, o) = (i / 32, i % 32);
    sym[c * 64 + o] as u16 | (sym[c * 64 + 32 + o] as u16) << 8
}

fn set_element(sym: &mut [u8], i: usize, v: u16) {
    let (c, o) = (i / 32, i % 32);
    sym[c * 64 + o] = v as u8;
    sym[c * 64 + 32 + o] = (v >> 8) as u8;
}

#[test]
fn field_axioms() {
    let mut rng = Rng::new(1);
    for _ in 0..50_000 {
        let (a, b, c) = (rng.u16(), rng.u16(), rng.u16());
        assert_eq!(gf16::mul(a, b), gf16::mul_slow(a, b));
        assert_eq!(gf16::mul(a, b), gf16::mul(b, a));
        assert_eq!(gf16::mul(gf16::mul(a, b), c), gf16::mul(a, gf16::mul(b, c)));
        assert_eq!(
            gf16::mul(a, b ^ c),
            gf16::mul(a, b) ^ gf16::mul(a, c),
            "distributivity"
        );
        assert_eq!(gf16::mul(a, 1), a);
        assert_eq!(gf16::mul(a, 0), 0);
        assert_eq!(gf16::add(a, a), 0);
        if a != 0 {
            assert_eq!(gf16::mul(a, gf16::inv(a)), 1);
            assert_eq!(gf16::inv(gf16::inv(a)), a);
            assert_eq!(gf16::checked_inv(a), Some(gf16::inv(a)));
            assert_eq!(gf16::exp(gf16::log(a).unwrap() as u32), a);
        }
        if b != 0 {
            assert_eq!(gf16::div(gf16::mul(a, b), b), a);
            assert_eq!(gf16::div(a, b), gf16::mul(a, gf16::inv(b)));
        }
    }
    assert_eq!(gf16::checked_inv(0), None);
    assert_eq!(gf16::checked_div(5, 0), None);
    assert_eq!(gf16::div(5, 0), 0);
    // x^16 = x^5 + x^3 + x^2 + 1.
    assert_eq!(gf16::mul(0x8000, 2), 0x002D);
    assert_eq!(gf16::exp(16), 0x002D);
    assert_eq!(gf16::exp(65_535), 1);
}

#[test]
fn scalar_mul_add_matches_field() {
    let mut rng = Rng::new(2);
    for chunks in [1usize, 2, 3, 5] {
        let n = chunks * 64;
        let (mut src, mut dst) = (vec![0u8; n], vec![0u8; n]);
        rng.fill(&mut src);
        rng.fill(&mut dst);
        let c = rng.u16();
        let mut expect = dst.clone();
        for i in 0..n / 2 {
            let v = element(&expect, i) ^ gf16::mul(c, element(&src, i));
            set_element(&mut expect, i, v);
        }
        Engine::scalar().mul_add(&mut dst, &src, c);
        assert_eq!(dst, expect);
    }
}

#[test]
fn every_engine_matches_scalar() {
    let engines = available_engines();
    assert_eq!(engines[0], Engine::scalar());
    eprintln!("engines: {engines:?}, detected {:?}", Engine::detect());
    let scalar = Engine::scalar();
    let mut rng = Rng::new(3);
    for round in 0..200 {
        let chunks = if round < 40 {
            round % 10
        } else {
            rng.range(1, 40)
        };
        let n = chunks * 64;
        let mut src = vec![0u8; n];
        let mut dst = vec![0u8; n];
        rng.fill(&mut src);
        rng.fill(&mut dst);
        let c = match round % 7 {
            0 => 0,
            1 => 1,
            2 => 0xFFFF,
            _ => rng.u16(),
        };
        let mut expect = dst.clone();
        scalar.mul_add(&mut expect, &src, c);
        // Fused multi-output kernel against per-output scalar.
        let outs = rng.range(1, 11);
        let coefs: Vec<u16> = (0..outs).map(|_| rng.u16()).collect();
        let mut multi = vec![0u8; outs * n];
        rng.fill(&mut multi);
        let mut expect_multi = multi.clone();
        if n > 0 {
            for (d, &c) in expect_multi.chunks_exact_mut(n).zip(&coefs) {
                scalar.mul_add(d, &src, c);
            }
        }
        for engine in &engines {
            let kernel = engine.kernel();
            let mut got = dst.clone();
            engine.mul_add(&mut got, &src, c);
            assert_eq!(got, expect, "kernel {kernel} c={c:#x} chunks={chunks}");
            let mut got = multi.clone();
            engine.mul_add_multi(&mut got, &src, &coefs);
            assert_eq!(
                got, expect_multi,
                "{kernel} multi outs={outs} chunks={chunks}"
            );
        }
    }
}

#[test]
fn every_engine_encodes_the_same_bytes() {
    let engines = available_engines();
    let mut rng = Rng::new(10);
    for &(k, s, first, count) in &[
        (64usize, 1408usize, 64u16, 26usize),
        (33, 192, 30, 11),
        (5, 64, 65_520, 16),
    ] {
        let mut block = vec![0u8; k * s];
        rng.fill(&mut block);
        let mut expect = vec![0u8; count * s];
        Engine::scalar()
            .encode_symbols(&block, k, s, first, count, &mut expect)
            .unwrap();
        for engine in &engines {
            let mut got = vec![0u8; count * s];
            engine
                .encode_symbols(&block, k, s, first, count, &mut got)
                .unwrap();
            assert!(got == expect, "{} k={k} s={s}", engine.kernel());
        }
    }
}

#[test]
fn engine_kernels_follow_the_cpu() {
    // The expected fastest kernel, from std's own feature detection.
    #[cfg(target_arch = "x86_64")]
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("ssse3");
    #[cfg(target_arch = "x86_64")]
    let fastest = if avx2 && is_x86_feature_detected!("gfni") {
        Kernel::Gfni
    } else if avx2 {
        Kernel::Avx2
    } else if is_x86_feature_detected!("ssse3") {
        Kernel::Ssse3
    } else {
        Kernel::Scalar
    };
    #[cfg(not(target_arch = "x86_64"))]
    let fastest = Kernel::Scalar;
    assert_eq!(Engine::detect().kernel(), fastest);
    assert_eq!(Engine::scalar().kernel(), Kernel::Scalar);
    for kernel in Kernel::ALL {
        assert_eq!(kernel.is_available(), kernel <= fastest, "{kernel}");
        match Engine::new(kernel) {
            Ok(engine) => {
                assert!(kernel <= fastest, "{kernel} accepted");
                assert_eq!(engine.kernel(), kernel);
            }
            Err(e) => {
                assert!(kernel > fastest, "{kernel} refused");
                assert_eq!(e, FecError::UnsupportedKernel);
            }
        }
    }
}

/// Reference repair symbol, element by element with scalar field arithmetic.
fn reference_repair(block: &[u8], k: usize, s: usize, r: u16) -> Vec<u8> {
    let mut out = vec![0u8; s];
    for i in 0..s / 2 {
        let mut acc = 0u16;
        for j in 0..k {
            let c = gf16::inv(r ^ j as u16);
            acc ^= gf16::mul(c, element(&block[j * s..(j + 1) * s], i));
        }
        set_element(&mut out, i, acc);
    }
    out
}

#[test]
fn encode_sources_are_copies_and_repairs_match_reference() {
    let engine = Engine::detect();
    let mut rng = Rng::new(4);
    for &(k, s) in &[(1usize, 64usize), (3, 128), (10, 192), (17, 64)] {
        let mut block = vec![0u8; k * s];
        rng.fill(&mut block);
        let mut out = vec![0xAAu8; s];
        for esi in 0..k {
            engine
                .encode_symbol(&block, k, s, esi as u16, &mut out)
                .unwrap();
            assert_eq!(out, &block[esi * s..(esi + 1) * s]);
        }
        for r in [k as u16, k as u16 + 1, 1000, 65_534, 65_535] {
            engine.encode_symbol(&block, k, s, r, &mut out).unwrap();
            assert_eq!(out, reference_repair(&block, k, s, r), "k={k} r={r}");
        }
    }
    // Single-source block: the repair is C(r, 0) * X_0 = X_0 / r.
    let s = 64;
    let mut block = vec![0u8; s];
    rng.fill(&mut block);
    let mut out = vec![0u8; s];
    engine.encode_symbol(&block, 1, s, 1, &mut out).unwrap();
    assert_eq!(out, block, "1 / (1 ^ 0) = 1");
}

#[test]
fn encode_symbols_matches_encode_symbol() {
    let engine = Engine::detect();
    let mut rng = Rng::new(5);
    for &(k, s, first, count) in &[
        (20usize, 128usize, 0u16, 30usize),
        (20, 64, 15, 12),
        (7, 192, 7, 17),
        (50, 64, 65_530, 6),
        (1, 64, 0, 3),
    ] {
        let mut block = vec![0u8; k * s];
        rng.fill(&mut block);
        let mut out = vec![0u8; count * s];
        engine
            .encode_symbols(&block, k, s, first, count, &mut out)
            .unwrap();
        let mut one = vec![0u8; s];
        for i in 0..count {
            engine
                .encode_symbol(&block, k, s, first + i as u16, &mut one)
                .unwrap();
            assert_eq!(
                &out[i * s..(i + 1) * s],
                &one[..],
                "esi {}",
                first as usize + i
            );
        }
    }
}

/// Builds a received block from random source positions replaced by the given repair esis,
/// decodes it with `engine`, and checks the exact bytes.
fn roundtrip(
    engine: Engine,
    rng: &mut Rng,
    k: usize,
    s: usize,
    missing: &[usize],
    repairs: &[usize],
) {
    assert_eq!(missing.len(), repairs.len());
    let mut original = vec![0u8; k * s];
    rng.fill(&mut original);
    let mut block = original.clone();
    let mut esi_at: Vec<u16> = (0..k as u16).collect();
    for (&m, &r) in missing.iter().zip(repairs) {
        Engine::detect()
            .encode_symbol(&original, k, s, r as u16, &mut block[m * s..(m + 1) * s])
            .unwrap();
        esi_at[m] = r as u16;
    }
    let mut scratch = vec![0u8; decode_scratch_bytes(k, s)];
    rng.fill(&mut scratch);
    engine
        .decode_in_place(&mut block, k, s, &mut esi_at, &mut scratch)
        .unwrap();
    let identity: Vec<u16> = (0..k as u16).collect();
    let kernel = engine.kernel();
    assert_eq!(esi_at, identity, "{kernel} k={k} s={s}");
    assert!(
        block == original,
        "{kernel} decode mismatch k={k} s={s} missing={missing:?} repairs={repairs:?}"
    );
}

#[test]
fn decode_any_k_of_n() {
    // Every engine in turn: each must rebuild the exact bytes.
    let engines = available_engines();
    let mut rng = Rng::new(6);
    let mut work = 0usize;
    let mut cases = 0;
    while work < 150_000_000 && cases < 400 {
        let k = match cases % 10 {
            0 => 1,
            1 => rng.range(1, 8),
            _ => rng.range(1, 600),
        };
        let s = 64 * rng.range(1, 22);
        // Number of erasures: often small, sometimes all of them.
        let e = match rng.below(4) {
            0 => k,
            1 => rng.range(0, k.min(4)),
            _ => rng.range(0, k.min(40)),
        };
        let e = e.min((800_000 / (k * s)).max(1)).min(k);
        let missing = rng.distinct(e, 0, k - 1);
        let mut repairs = rng.distinct(e, k, 65_535);
        if e > 0 && rng.below(3) == 0 && !repairs.contains(&65_535) {
            repairs[0] = 65_535;
        }
        let engine = engines[cases % engines.len()];
        roundtrip(engine, &mut rng, k, s, &missing, &repairs);
        work += (e + 1) * k * s;
        cases += 1;
    }
    assert!(cases >= 100, "only {cases} cases");
}

#[test]
fn decode_edge_geometries() {
    let engine = Engine::detect();
    let mut rng = Rng::new(7);
    // k = 1: the single source replaced by the highest and lowest repairs.
    roundtrip(engine, &mut rng, 1, 64, &[0], &[1]);
    roundtrip(engine, &mut rng, 1, 1408, &[0], &[65_535]);
    // All sources missing: the code is MDS, the k repairs alone suffice.
    roundtrip(
        engine,
        &mut rng,
        12,
        128,
        &(0..12).collect::<Vec<_>>(),
        &(12..24).collect::<Vec<_>>(),
    );
    let high: Vec<usize> = (65_536 - 9..65_536).collect();
    roundtrip(
        engine,
        &mut rng,
        9,
        64,
        &(0..9).rev().collect::<Vec<_>>(),
        &high,
    );
    // Nothing missing.
    roundtrip(engine, &mut rng, 5, 64, &[], &[]);
    // k = MAX_K with small symbols.
    let missing = rng.distinct(6, 0, MAX_K - 1);
    let repairs = rng.distinct(6, MAX_K, 65_535);
    roundtrip(engine, &mut rng, MAX_K, 64, &missing, &repairs);
    roundtrip(
        engine,
        &mut rng,
        MAX_K,
        64,
        &[0, MAX_K - 1],
        &[65_535, MAX_K],
    );
}

#[test]
fn decode_errors_leave_block_untouched() {
    let engine = Engine::detect();
    let (k, s) = (8usize, 64usize);
    let mut rng = Rng::new(9);
    let mut original = vec![0u8; k * s];
    rng.fill(&mut original);
    let mut scratch = vec![0u8; decode_scratch_bytes(k, s)];
    let check = |esi: &[u16], scratch: &mut [u8], expect: FecError| {
        let mut block = original.clone();
        let mut esi_at = esi.to_vec();
        let r = engine.decode_in_place(&mut block, k, s, &mut esi_at, scratch);
        assert_eq!(r, Err(expect), "{esi:?}");
        assert_eq!(block, original);
        assert_eq!(esi_at, esi);
    };
    check(
        &[0, 1, 2, 3, 4, 5, 9, 9],
        &mut scratch,
        FecError::DuplicateEsi,
    );
    check(
        &[0, 1, 2, 3, 4, 5, 65_535, 65_535],
        &mut scratch,
        FecError::DuplicateEsi,
    );
    check(
        &[0, 1, 3, 3, 4, 5, 6, 7],
        &mut scratch,
        FecError::MisplacedSource,
    );
    check(
        &[1, 0, 2, 3, 4, 5, 6, 7],
        &mut scratch,
        FecError::MisplacedSource,
    );
    check(
        &[0, 1, 2, 3, 4, 5, 6],
        &mut scratch,
        FecError::BufferTooSmall,
    );
    let short = decode_scratch_bytes(k, s) - 1;
    check(
        &[0, 1, 2, 3, 4, 5, 6, 8],
        &mut scratch[..short],
        FecError::BufferTooSmall,
    );

    let mut esi_at: Vec<u16> = (0..k as u16).collect();
    let mut block = original.clone();
    assert_eq!(
        engine.decode_in_place(&mut block[..k * s - 1], k, s, &mut esi_at, &mut scratch),
        Err(FecError::BufferTooSmall)
    );
    for (kk, ss) in [(0, 64), (MAX_K + 1, 64), (k, 0), (k, 100), (k, 32)] {
        assert_eq!(
            engine.decode_in_place(&mut block, kk, ss, &mut esi_at, &mut scratch),
            Err(FecError::BadGeometry),
            "k={kk} s={ss}"
        );
    }
    assert_eq!(block, original);
}

#[test]
fn encode_errors() {
    let engine = Engine::detect();
    let (k, s) = (4usize, 128usize);
    let block = vec![7u8; k * s];
    let mut out = vec![0u8; 3 * s];
    assert_eq!(
        engine.encode_symbol(&block[..k * s - 64], k, s, 9, &mut out),
        Err(FecError::BufferTooSmall)
    );
    assert_eq!(
        engine.encode_symbol(&block, k, s, 9, &mut out[..s - 64]),
        Err(FecError::BufferTooSmall)
    );
    assert_eq!(
        engine.encode_symbols(&block, k, s, 9, 4, &mut out),
        Err(FecError::BufferTooSmall)
    );
    assert_eq!(
        engine.encode_symbols(&block, k, s, 65_534, 3, &mut out),
        Err(FecError::BadEsi)
    );
    assert_eq!(
        engine.encode_symbols(&block, k, s, 65_533, 3, &mut out),
        Ok(())
    );
    assert_eq!(
        engine.encode_symbol(&block, 0, s, 0, &mut out),
        Err(FecError::BadGeometry)
    );
    assert_eq!(
        engine.encode_symbol(&block, k, 65, 0, &mut out),
        Err(FecError::BadGeometry)
    );
    assert_eq!(engine.encode_symbols(&block, k, s, 0, 0, &mut out), Ok(()));
    // Errors display something readable.
    assert!(!FecError::DuplicateEsi.to_string().is_empty());
}
