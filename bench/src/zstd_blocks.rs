//! zstd figures at the protocol's block size: every block of a corpus of real files compressed
//! on its own at level 3, as the server does, and decompressed by the client's heap-free
//! decompressor (`bb_zstd::StaticDecompressor`).

use std::path::{Path, PathBuf};

use bb_proto::receiver::Decompress;
use bb_zstd::{DctxWorkspace, StaticDecompressor};

use crate::throughput;

/// The default geometry's block: 512 symbols of 1408 B.
const BLOCK: usize = bb_proto::fec::DEFAULT_K * bb_proto::wire::DEFAULT_SYMBOL_SIZE as usize;
const LEVEL: i32 = 3;
/// Corpus size when no file is given: enough blocks to leave the caches, quick to compress.
const CORPUS_BYTES: usize = 48 << 20;

/// One zstd frame of `data` at `level` (zstd's one-shot API).
fn compress(data: &[u8], level: i32) -> Vec<u8> {
    // SAFETY: ZSTD_compressBound gives the most bytes a frame of data.len() bytes needs.
    let bound = unsafe { zstd_sys::ZSTD_compressBound(data.len()) };
    let mut out = vec![0u8; bound];
    // SAFETY: out and data are valid for their lengths and do not overlap.
    let n = unsafe {
        zstd_sys::ZSTD_compress(
            out.as_mut_ptr().cast(),
            out.len(),
            data.as_ptr().cast(),
            data.len(),
            level,
        )
    };
    // SAFETY: a pure test of a return code.
    assert_eq!(
        unsafe { zstd_sys::ZSTD_isError(n) },
        0,
        "zstd compression failed"
    );
    out.truncate(n);
    out
}

/// The regular files under `dir`, in a stable order, read until `limit` bytes (like a tar of
/// the tree without its headers).
fn read_tree(dir: &Path, limit: usize, out: &mut Vec<u8>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if out.len() >= limit {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            read_tree(&p, limit, out);
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&p)
        {
            out.extend_from_slice(&bytes[..bytes.len().min(limit - out.len())]);
        }
    }
}

pub fn bench_zstd(file: Option<&str>) -> Result<(), String> {
    let (source, corpus) = match file {
        Some(f) => (
            f.to_string(),
            std::fs::read(f).map_err(|e| format!("cannot read {f}: {e}"))?,
        ),
        None => {
            let mut v = Vec::with_capacity(CORPUS_BYTES);
            read_tree(Path::new("/usr/share"), CORPUS_BYTES, &mut v);
            ("the files under /usr/share".to_string(), v)
        }
    };
    let mut zero = 0usize;
    let mut raw = 0usize;
    let mut frames = Vec::new();
    let (mut in_bytes, mut out_bytes) = (0usize, 0usize);
    for block in corpus.chunks(BLOCK) {
        if block.iter().all(|&b| b == 0) {
            zero += 1;
            continue;
        }
        let frame = compress(block, LEVEL);
        if frame.len() >= block.len() {
            raw += 1;
            continue;
        }
        in_bytes += block.len();
        out_bytes += frame.len();
        frames.push((frame, block.len()));
    }
    if frames.is_empty() {
        return Err(format!("{source}: no block compresses, nothing to measure"));
    }
    println!(
        "# zstd: {source}, {} MB in blocks of {BLOCK} B: {} compressed (ratio {:.3}), {raw} sent raw, {zero} zero",
        corpus.len() / 1_000_000,
        frames.len(),
        out_bytes as f64 / in_bytes as f64
    );

    let blocks: Vec<&[u8]> = corpus
        .chunks(BLOCK)
        .filter(|b| !b.iter().all(|&x| x == 0))
        .collect();
    let mbs = throughput(in_bytes, || {
        for b in &blocks {
            std::hint::black_box(compress(b, LEVEL));
        }
    });
    println!("zstd -{LEVEL} compress, one block per frame: {mbs:.1} MB/s of input");

    let mut workspace = Box::new(DctxWorkspace::new());
    let mut dec = StaticDecompressor::new(&mut workspace)
        .map_err(|e| format!("zstd needs a {} B context, {} B reserved", e.needed, e.have))?;
    let mut out = vec![0u8; BLOCK];
    for (frame, len) in &frames {
        assert_eq!(dec.decompress(frame, &mut out), Ok(*len));
    }
    let mbs = throughput(in_bytes, || {
        for (frame, _) in &frames {
            std::hint::black_box(dec.decompress(frame, &mut out).unwrap());
        }
    });
    println!(
        "zstd decompress, static context ({} B, no heap): {mbs:.1} MB/s of output",
        StaticDecompressor::needed_bytes()
    );
    Ok(())
}
