//! Handing blocks and zero ranges out for writing, and recording them written.
//!
//! A raw block is written from its slot. A zstd block is decompressed (through the shell's
//! [`Decompress`]) into the one output buffer and checked there first: a block whose
//! decompressed bytes do not match its check is dropped and fetched again, exactly like a
//! raw block whose decoding failed its check. Zero blocks named by the server's zero map
//! are handed out as runs of [`Write::Zeros`]; each costs one leaf of the digest, never a
//! pass over its bytes.

use super::{Receiver, Slot, SlotState};
use crate::digest::{block_check, content_hash};

/// Zero blocks handed out in one write at most (about 23 MB at the default geometry), so
/// that zeroing them on a disk or a stream, and recording them written (one leaf each),
/// stays short and the shell goes back to its socket in time.
const ZERO_RUN_MAX: u32 = 32;

/// Decompresses a block's zstd frame. The shell provides it (a static zstd context in the
/// heap-free client), so the core stays free of any compressor.
pub trait Decompress {
    /// Decompresses the frame `src` into `dst`; returns the bytes written. Fails on a
    /// corrupt frame or one whose output does not fit `dst`.
    fn decompress(&mut self, src: &[u8], dst: &mut [u8]) -> Result<usize, DecompressError>;
}

/// A frame that could not be decompressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecompressError;

/// What to write next.
#[derive(Debug, PartialEq, Eq)]
pub enum Write<'a> {
    /// `data` at byte `offset` of the target: block `block`'s image bytes.
    Data {
        /// Block index.
        block: u32,
        /// Byte offset in the image.
        offset: u64,
        /// The block's image bytes (never past the image end).
        data: &'a [u8],
    },
    /// `len` zero bytes at byte `offset`: whole zero blocks. A regular file keeps a hole, a
    /// block device must be zeroed (its old contents must not survive), a stream gets zeros.
    Zeros {
        /// Byte offset in the image.
        offset: u64,
        /// Bytes.
        len: u64,
    },
}

/// The write last handed out, until the shell says it is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pending {
    /// From a slot (a raw block in place, or a zstd block decompressed into `out`).
    Slot(usize),
    /// Zero blocks `[first, end)`.
    Zeros(u32, u32),
}

impl<'a> Receiver<'a> {
    /// The next write, if any; the same write comes back until [`Receiver::write_done`].
    /// Zstd blocks are decompressed here through `dec`.
    pub fn poll_write(&mut self, dec: &mut dyn Decompress) -> Option<Write<'_>> {
        let s = self.session?;
        let g = s.geometry;
        if self.pending.is_none() {
            self.pending = self.next_pending(dec);
        }
        match self.pending? {
            Pending::Slot(slot) => {
                let m = self.slots[slot];
                let len = g.block_len(m.block);
                let data = if m.state == SlotState::Coded {
                    &self.out[..len]
                } else {
                    let start = slot * g.k as usize * g.symbol_size as usize;
                    &self.pool[start..start + len]
                };
                Some(Write::Data {
                    block: m.block,
                    offset: g.block_offset(m.block),
                    data,
                })
            }
            Pending::Zeros(first, end) => Some(Write::Zeros {
                offset: g.block_offset(first),
                len: (first..end).map(|b| g.block_len(b) as u64).sum(),
            }),
        }
    }

    /// Picks the next write: a ready slot first (it frees memory), then a run of zero
    /// blocks; in order for an in-order sink.
    fn next_pending(&mut self, dec: &mut dyn Decompress) -> Option<Pending> {
        let s = self.session?;
        loop {
            let ready = |x: &Slot| matches!(x.state, SlotState::Ready | SlotState::Coded);
            let slot = self.slots[..s.slots]
                .iter()
                .position(|x| ready(x) && (!self.cfg.in_order || x.block == self.next_in_order));
            if let Some(slot) = slot {
                if self.slots[slot].state == SlotState::Coded && !self.decompress(slot, dec) {
                    continue;
                }
                return Some(Pending::Slot(slot));
            }
            return self.zero_run().map(|(a, b)| Pending::Zeros(a, b));
        }
    }

    /// Decompresses the zstd block in `slot` into `out` and checks it; on failure the slot
    /// is freed (the block is fetched again) and false returned.
    fn decompress(&mut self, slot: usize, dec: &mut dyn Decompress) -> bool {
        let s = self.session.expect("bound");
        let g = s.geometry;
        let m = self.slots[slot];
        let len = g.block_len(m.block);
        let start = slot * g.k as usize * g.symbol_size as usize;
        let frame = &self.pool[start..start + m.coded_len as usize];
        let ok = dec.decompress(frame, &mut self.out[..len]) == Ok(len) && {
            let content = content_hash(&self.out[..len]);
            self.slots[slot].content = content;
            block_check(m.block, &content) == m.check
        };
        if !ok {
            self.stats.check_failures += 1;
            self.slots[slot] = Slot::FREE;
        }
        ok
    }

    /// The next run of zero blocks not yet written: from the next block in order for an
    /// in-order sink, else from the cursor (wrapping once).
    fn zero_run(&mut self) -> Option<(u32, u32)> {
        let blocks = self.session?.blocks;
        let pending = |r: &Self, b: u32| r.is_zero(b) && !r.is_done(b);
        let first = if self.cfg.in_order {
            let b = self.next_in_order;
            (b < blocks && pending(self, b)).then_some(b)?
        } else {
            if self.zeros_unwritten == 0 {
                return None;
            }
            let from = self.zero_cursor.min(blocks);
            (from..blocks).chain(0..from).find(|&b| pending(self, b))?
        };
        let mut end = first + 1;
        while end < blocks && end - first < ZERO_RUN_MAX && pending(self, end) {
            end += 1;
        }
        self.zero_cursor = end;
        Some((first, end))
    }

    /// Records that the write last handed out by [`Receiver::poll_write`] is on the target.
    pub fn write_done(&mut self) {
        let Some(mut s) = self.session else { return };
        let g = s.geometry;
        match self.pending.take() {
            None => {}
            Some(Pending::Slot(slot)) => {
                let m = self.slots[slot];
                self.slots[slot] = Slot::FREE;
                self.block_written(m.block, &m.content);
            }
            Some(Pending::Zeros(first, end)) => {
                for b in first..end {
                    let content = s.zero_hashes.of(&g, b);
                    self.block_written(b, &content);
                }
                self.session = Some(s);
            }
        }
    }

    fn block_written(&mut self, block: u32, content: &[u8; 32]) {
        let Some(s) = self.session else { return };
        if self.is_done(block) {
            return;
        }
        self.set_done(block);
        if self.is_zero(block) {
            // Named zero by a zero map, yet written as data (a server that sent both): no
            // longer a zero block waiting to be written.
            self.zeros_unwritten = self.zeros_unwritten.saturating_sub(1);
        }
        self.acc.add(block, content);
        self.done_count += 1;
        self.bytes_written += s.geometry.block_len(block) as u64;
        if self.cfg.in_order {
            self.next_in_order = block + 1;
        }
    }

    /// Marks blocks `[first, end)` as zero (from the server's zero map), except those
    /// already written.
    /// Frees the slots of blocks of bitmap word `w` (bits `newly`) that a zero map just named:
    /// their data will never complete (a correct server never sends both), and an in-order
    /// sink would otherwise hold the slots for good.
    fn drop_slots_of_zero_blocks(&mut self, w: usize, newly: u64) {
        let Some(s) = self.session else { return };
        for m in self.slots[..s.slots].iter_mut() {
            let b = m.block as usize;
            if m.state == SlotState::Filling && b / 64 == w && newly >> (b % 64) & 1 == 1 {
                *m = Slot::FREE;
            }
        }
    }

    pub(super) fn mark_zero(&mut self, first: u32, end: u32) {
        // A word at a time: zero maps repeat, and a range can span most of a disk.
        let mut b = first;
        while b < end {
            let w = (b / 64) as usize;
            let lo = b % 64;
            let hi = (end - (b - lo)).min(64);
            let mask = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            let newly = mask & !self.zero[w] & !self.done[w];
            if newly != 0 {
                self.drop_slots_of_zero_blocks(w, newly);
            }
            self.zero[w] |= newly;
            self.zeros_unwritten += newly.count_ones();
            self.stats.zero_blocks += newly.count_ones() as u64;
            b = (b - lo) + hi;
        }
    }
}
