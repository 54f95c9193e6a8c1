//! A bound receiver fed arbitrary datagrams (CRC made valid half the time, so the field
//! checks are reached; data packets and zero maps most often): never a panic, never a write
//! outside the image or off a block boundary.
#![no_main]

use bb_proto::receiver::{Decompress, DecompressError, Receiver, ReceiverConfig, ReceiverStorage, Slot, Write};
use bb_proto::wire::{self, Announce, AnnounceFlags, Geometry, PacketType};
use libfuzzer_sys::fuzz_target;

#[path = "datagrams.rs"]
mod datagrams;
use datagrams::datagrams;

const SESSION: u64 = 7;

/// The fuzzer links no zstd: every frame is refused, which is what a corrupt frame gets, so
/// zstd blocks exercise the failure path (the block is dropped and fetched again).
struct NoZstd;

impl Decompress for NoZstd {
    fn decompress(&mut self, _src: &[u8], _dst: &mut [u8]) -> Result<usize, DecompressError> {
        Err(DecompressError)
    }
}

/// Packet types given to datagrams with a made-valid header: the ones a client acts on,
/// data and zero maps twice as often, and a status (which a client never expects).
const TYPES: [u8; 7] = [
    PacketType::Data as u8,
    PacketType::ZeroMap as u8,
    PacketType::Data as u8,
    PacketType::ZeroMap as u8,
    PacketType::Announce as u8,
    PacketType::ResultAck as u8,
    PacketType::Status as u8,
];

fuzz_target!(|input: &[u8]| {
    let g = Geometry::new(5000, 64, 8).unwrap();
    let (slot_bytes, esis, scratch) = Receiver::slot_needs(&g);
    let block_bytes = g.block_bytes() as usize;
    let (mut done, mut zero, mut out) = (vec![0u64; 1], vec![0u64; 1], vec![0u8; block_bytes]);
    let (mut pool, mut slots, mut esi_at, mut scr) =
        (vec![0u8; slot_bytes * 3], vec![Slot::FREE; 3], vec![0u16; esis * 3], vec![0u8; scratch]);
    // Short deadlines, so that inputs of a few dozen datagrams reach the timers too.
    let mut cfg = ReceiverConfig::new(1);
    cfg.silence_timeout_us = 20_000;
    cfg.ack_wait_us = 30_000;
    let storage = ReceiverStorage {
        done: &mut done,
        pool: &mut pool,
        slots: &mut slots,
        esi_at: &mut esi_at,
        scratch: &mut scr,
        zero: &mut zero,
        out: &mut out,
    };
    let mut rx = Receiver::new(cfg, storage, 0).unwrap();
    let mut buf = [0u8; 256];
    let a = Announce { geometry: g, flags: AnnounceFlags::NONE, seq: 0, report_interval_ms: 100, digest: None };
    let n = wire::write_announce(&mut buf, SESSION, &a).unwrap();
    rx.handle_datagram(0, &buf[..n]).unwrap();
    let mut dec = NoZstd;
    let mut now = 0u64;
    for (_, pkt) in datagrams(input, SESSION, &TYPES) {
        now += 1000;
        let _ = rx.handle_datagram(now, &pkt);
        if rx.poll_timeout(now).is_some_and(|t| t <= now) {
            rx.handle_timeout(now);
        }
        while let Some(w) = rx.poll_write(&mut dec) {
            match w {
                Write::Data { block, offset, data } => {
                    assert!(block < g.block_count());
                    assert_eq!(offset, block as u64 * block_bytes as u64);
                    assert_eq!(data.len(), g.block_len(block));
                    assert!(offset + data.len() as u64 <= g.image_size);
                }
                Write::Zeros { offset, len } => {
                    assert!(len > 0);
                    assert_eq!(offset % block_bytes as u64, 0);
                    assert!(offset + len <= g.image_size);
                }
            }
            rx.write_done();
        }
        let (blocks_done, blocks) = rx.progress();
        assert!(blocks_done <= blocks);
        let mut out = [0u8; 1500];
        let _ = rx.poll_transmit(now, 0, &mut out);
    }
});
