//! What every client pays per byte to check what it receives, whatever the rate: the CRC32
//! of each packet and the BLAKE3 content hash of each block (docs/PROTOCOL.md section 4).
//! The race's blast-verify receivers do this work beside writing their image (the ceiling
//! for a tool that verifies); these are its figures on one core.

use std::hint::black_box;

use bb_proto::{digest, fec, wire};

use crate::{fill, throughput};

/// The symbol that fills a 1500-byte MTU (bb-server's default).
const SYMBOL: usize = wire::DEFAULT_SYMBOL_SIZE as usize;
/// The default block: `DEFAULT_K` symbols.
const BLOCK: usize = fec::DEFAULT_K * SYMBOL;
/// A data packet as a client reads it (no key): header, one symbol, CRC.
const PACKET: usize = SYMBOL + wire::DATA_OVERHEAD;
/// The race's unshaped scenarios: 8 clients, 256 MiB each.
const RACE_BYTES: f64 = 8.0 * 256.0 * 1048576.0;

pub fn bench_integrity() {
    println!("# single core, MB/s = 10^6 bytes/s; CPU-s = for 8 clients x 256 MiB (8u-0)");
    let mut block = vec![0u8; BLOCK];
    fill(&mut block, 6);
    let hash = throughput(BLOCK, || {
        black_box(digest::content_hash(black_box(&block)));
    });
    let packets = BLOCK / PACKET;
    let crc = throughput(packets * PACKET, || {
        for p in block.chunks_exact(PACKET) {
            black_box(wire::crc32(black_box(p)));
        }
    });
    // Every packet is checked: its header too (PACKET bytes per SYMBOL of image).
    let crc_bytes = RACE_BYTES * PACKET as f64 / SYMBOL as f64;
    println!(
        "integrity content_hash block={BLOCK}: {hash:.1} MB/s, {:.2} CPU-s",
        RACE_BYTES / hash / 1e6
    );
    println!(
        "integrity crc32 packet={PACKET}: {crc:.1} MB/s, {:.2} CPU-s",
        crc_bytes / crc / 1e6
    );
}
