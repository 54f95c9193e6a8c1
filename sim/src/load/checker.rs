//! The load client's one real receiver: bb-proto's `Receiver`, fed every datagram the data
//! socket received (before any machine's simulated loss), with a sink that writes nothing
//! and keeps the content hash of every block it hands out. Blocks are decoded by the real
//! erasure decoder, decompressed, checked against their block check and, at the end,
//! against the image digest, once for all machines; each machine then adds the content
//! hash of every block it completed to its own digest.

use bb_proto::digest::{ZeroHashes, content_hash};
use bb_proto::fec;
use bb_proto::receiver::{Outcome, Receiver, ReceiverConfig, ReceiverStorage, Slot, Write};
use bb_proto::wire::Geometry;

use crate::image::Zstd;

/// Slots of the checker: it loses nothing on purpose, so partial blocks are few; a socket
/// overrun can leave some behind.
const CHECKER_SLOTS: usize = 32;

/// The shared receiver and the content hashes of the blocks it decoded.
pub struct Checker {
    rx: Receiver<'static>,
    geometry: Geometry,
    hashes: Vec<Option<[u8; 32]>>,
    zero_hashes: ZeroHashes,
    flushed: bool,
}

fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
    vec![v; n].leak()
}

impl Checker {
    /// A checker for `geometry`, fed from `now_us` on: the caller hands it the announce
    /// that gave the geometry first. Its memory lives as long as the process (one session
    /// per run).
    pub fn new(geometry: Geometry, now_us: u64) -> Self {
        let blocks = geometry.block_count() as usize;
        let (slot_bytes, slot_esis, scratch) = Receiver::slot_needs(&geometry);
        let words = blocks.div_ceil(64).max(1);
        let storage = ReceiverStorage {
            done: leak(0u64, words),
            pool: leak(0u8, slot_bytes * CHECKER_SLOTS),
            slots: leak(Slot::FREE, CHECKER_SLOTS),
            esi_at: leak(0u16, slot_esis * CHECKER_SLOTS),
            scratch: leak(0u8, scratch),
            zero: leak(0u64, words),
            out: leak(0u8, geometry.block_bytes() as usize),
        };
        let mut cfg = ReceiverConfig::new(0);
        cfg.engine = fec::Engine::detect();
        // It never reports and never gives up: the machines time out on their own.
        cfg.silence_timeout_us = u64::MAX / 4;
        let rx = Receiver::new(cfg, storage, now_us).expect("CHECKER_SLOTS <= MAX_SLOTS");
        Self {
            rx,
            geometry,
            hashes: vec![None; blocks],
            zero_hashes: ZeroHashes::new(),
            flushed: false,
        }
    }

    /// Content hashes of the blocks decoded and checked so far, by block.
    pub fn hashes(&self) -> &[Option<[u8; 32]>] {
        &self.hashes
    }

    /// Blocks decoded (or learned zero) and checked so far.
    pub fn blocks_done(&self) -> u32 {
        self.rx.progress().0
    }

    /// Feeds one datagram and records every block it completes.
    pub fn handle(&mut self, now_us: u64, pkt: &[u8]) {
        let _ = self.rx.handle_datagram(now_us, pkt);
        while let Some(w) = self.rx.poll_write(&mut Zstd) {
            match w {
                Write::Data { block, data, .. } => {
                    self.hashes[block as usize] = Some(content_hash(data));
                }
                Write::Zeros { offset, len } => {
                    let bb = self.geometry.block_bytes();
                    let first = (offset / bb) as u32;
                    let end = (offset + len).div_ceil(bb) as u32;
                    for b in first..end {
                        self.hashes[b as usize] = Some(self.zero_hashes.of(&self.geometry, b));
                    }
                }
            }
            self.rx.write_done();
        }
        if self.rx.needs_flush() && !self.flushed {
            self.flushed = true;
            self.rx.flushed(now_us, true);
        }
        if self.flushed && self.rx.outcome().is_none() {
            // The outcome is computed when the receiver is next asked to transmit (the
            // digest may come after the last block); what it builds is not sent.
            let mut sink = [0u8; 1500];
            let _ = self.rx.poll_transmit(now_us, 0, &mut sink);
        }
    }

    /// The real receiver's own verdict on the whole image: Some(true) once every block was
    /// decoded and the digest matched the announced one.
    pub fn verified(&self) -> Option<bool> {
        self.rx
            .outcome()
            .map(|o| matches!(o, Outcome::Verified { .. }))
    }

    /// Receiver counters (malformed, foreign, check failures ...).
    pub fn stats(&self) -> bb_proto::receiver::ReceiverStats {
        *self.rx.stats()
    }
}
