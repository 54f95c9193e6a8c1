//! `bb-bench`: prints throughput figures of broadband components, one line per figure.
//!
//! Usage: `bb-bench [fec | zstd [FILE] | status | mac | integrity]` (default `fec`, then
//! `integrity`, then `zstd` over files under /usr/share; `status`: the sender's cost of a
//! status report, worst case; `mac` measures the tag candidates of keyed sessions;
//! `integrity`: a client's packet CRC and block hash). Every figure is single-threaded (per
//! core), timed with `std::time::Instant` over at least 0.5 s of repeated runs (best of 5
//! windows of 0.1 s).

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bb_proto::fec::{self, Engine, Kernel};

mod integrity;
mod mac;
mod status_report;
mod zstd_blocks;

const MIN_TIME: Duration = Duration::from_millis(500);
const WINDOWS: u32 = 5;

/// Runs `f` repeatedly for at least [`MIN_TIME`], split into [`WINDOWS`] windows of equal
/// length; returns the MB/s (10^6 bytes per second, `bytes` processed per run) of the fastest
/// window, which is robust to noisy neighbours on a shared machine.
fn throughput(bytes: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up caches and tables
    let window = MIN_TIME / WINDOWS;
    let mut best = 0.0f64;
    for _ in 0..WINDOWS {
        let start = Instant::now();
        let mut runs = 0u64;
        loop {
            f();
            runs += 1;
            let t = start.elapsed();
            if t >= window {
                best = best.max(bytes as f64 * runs as f64 / t.as_secs_f64() / 1e6);
                break;
            }
        }
    }
    best
}

/// xorshift64 fill: deterministic pseudo-random data.
fn fill(buf: &mut [u8], mut seed: u64) {
    for b in buf {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed as u8;
    }
}

/// One engine per kernel this CPU supports, slowest first.
fn engines() -> Vec<Engine> {
    Kernel::ALL
        .into_iter()
        .filter_map(|k| Engine::new(k).ok())
        .collect()
}

fn bench_mul_add() {
    for s in [1408usize, 64 * 1024] {
        let mut src = vec![0u8; s];
        let mut dst = vec![0u8; s];
        fill(&mut src, 1);
        fill(&mut dst, 2);
        for engine in engines() {
            let mut c = 0x1234u16;
            let mbs = throughput(s * 64, || {
                for _ in 0..64 {
                    c = c.wrapping_mul(31).wrapping_add(7) | 2;
                    engine.mul_add(black_box(&mut dst), black_box(&src), c);
                }
            });
            println!("fec mul_add S={s} {}: {mbs:.1} MB/s", engine.kernel());
        }
    }
    // Fused multi-output kernel (8 outputs per pass), with the fastest kernel.
    let engine = Engine::detect();
    let s = bb_proto::wire::DEFAULT_SYMBOL_SIZE as usize;
    let mut src = vec![0u8; s];
    let mut dst = vec![0u8; 8 * s];
    fill(&mut src, 3);
    let coefs = [3u16, 5, 7, 11, 13, 17, 19, 23];
    let mbs = throughput(8 * s * 64, || {
        for _ in 0..64 {
            engine.mul_add_multi(black_box(&mut dst), black_box(&src), &coefs);
        }
    });
    println!(
        "fec mul_add_multi x8 S={s} {}: {mbs:.1} MB/s (of output)",
        engine.kernel()
    );
}

fn bench_encode(k: usize, s: usize, engine: Engine) {
    let repair = (k * 5).div_ceil(100);
    let mut block = vec![0u8; k * s];
    fill(&mut block, 4);
    let mut out = vec![0u8; repair * s];
    let mbs = throughput(k * s, || {
        engine
            .encode_symbols(black_box(&block), k, s, k as u16, repair, &mut out)
            .expect("encode");
    });
    let kernel = engine.kernel();
    println!("fec encode k={k} S={s} repair=5% ({repair} symbols) {kernel}: {mbs:.1} MB/s");
}

fn bench_decode(k: usize, s: usize, engine: Engine) {
    let e = k.div_ceil(100);
    let mut original = vec![0u8; k * s];
    fill(&mut original, 5);
    // Lose e sources spread over the block; replace them by repairs with high esis.
    let missing: Vec<usize> = (0..e).map(|i| (i * k / e + 7) % k).collect();
    let repairs: Vec<u16> = (0..e).map(|i| (60_000 + 97 * i) as u16).collect();
    let mut repair_data = vec![0u8; e * s];
    for (i, &r) in repairs.iter().enumerate() {
        engine
            .encode_symbol(&original, k, s, r, &mut repair_data[i * s..(i + 1) * s])
            .expect("encode");
    }
    let mut block = original.clone();
    let mut esi_at: Vec<u16> = (0..k as u16).collect();
    let mut scratch = vec![0u8; fec::decode_scratch_bytes(k, s)];
    let mbs = throughput(k * s, || {
        // Re-create the received state: repairs stored at the missing positions.
        for (i, &m) in missing.iter().enumerate() {
            block[m * s..(m + 1) * s].copy_from_slice(&repair_data[i * s..(i + 1) * s]);
            esi_at[m] = repairs[i];
        }
        engine
            .decode_in_place(black_box(&mut block), k, s, &mut esi_at, &mut scratch)
            .expect("decode");
    });
    assert!(block == original, "decode produced wrong bytes");
    let kernel = engine.kernel();
    println!("fec decode k={k} S={s} erasures=1% ({e} symbols) {kernel}: {mbs:.1} MB/s");
}

fn bench_fec() {
    let best = Engine::detect();
    println!(
        "# single core, MB/s = 10^6 bytes/s; best kernel: {}",
        best.kernel()
    );
    bench_mul_add();
    let s = bb_proto::wire::DEFAULT_SYMBOL_SIZE as usize;
    for engine in engines() {
        bench_encode(512, s, engine);
    }
    for engine in engines() {
        bench_decode(512, s, engine);
    }
    for k in [256, 1024] {
        bench_encode(k, s, best);
        bench_decode(k, s, best);
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {
            bench_fec();
            integrity::bench_integrity();
            zstd_figures(None)
        }
        Some("fec") => {
            bench_fec();
            ExitCode::SUCCESS
        }
        Some("zstd") => zstd_figures(args.get(1).map(String::as_str)),
        Some("status") => {
            status_report::bench_status();
            ExitCode::SUCCESS
        }
        Some("mac") => {
            mac::bench_mac();
            ExitCode::SUCCESS
        }
        Some("integrity") => {
            integrity::bench_integrity();
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!(
                "usage: bb-bench [fec | zstd [FILE] | status | mac | integrity]\nunknown benchmark: {other}"
            );
            ExitCode::from(2)
        }
    }
}

fn zstd_figures(file: Option<&str>) -> ExitCode {
    match zstd_blocks::bench_zstd(file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bb-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
