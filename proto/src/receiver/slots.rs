//! Block slots: claiming one for a new block (evicting when all are taken), placing
//! symbols, decoding and checking a full slot, and the bitmap of blocks written.

use super::{Dropped, Receiver};
use crate::digest::{block_check, content_hash};
use crate::wire::{self, Encoding, WireError};

/// Data sequence numbers ahead of the highest one by more than this (about 95 MB of
/// symbols) are a jump that needs confirming before loss is measured against it.
pub(super) const SEQ_JUMP_MAX: u32 = 1 << 16;

/// Packets in a row that must follow a jump closely before it is believed.
const SEQ_JUMP_CONFIRMATIONS: u8 = 8;

/// Marks a position of a slot that holds no symbol yet.
const EMPTY: u16 = 0xFFFF;

/// Most block slots a receiver works with. The report builder sorts the blocks held in
/// slots in a fixed array of this size, so a storage with more slots is refused by
/// [`Receiver::new`] rather than left partly out of the reports.
pub const MAX_SLOTS: usize = 64;

/// Metadata of one block slot.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    pub(super) block: u32,
    pub(super) state: SlotState,
    pub(super) have: u16,
    pub(super) check: u32,
    pub(super) encoding: Encoding,
    pub(super) coded_len: u32,
    pub(super) last_symbol_us: u64,
    pub(super) reported_us: Option<u64>,
    /// Content hash of the block's image bytes, once checked.
    pub(super) content: [u8; 32],
    /// The one rival claim (check, encoding, coded length) that symbols of this block
    /// carried against the slot's, and how many symbols voted for it since: when the
    /// rival outnumbers the symbols held, the slot was claimed by a wrong first packet
    /// and starts over under the rival. One rival per slot keeps memory fixed.
    pub(super) rival: Claim,
    pub(super) rival_votes: u16,
}

/// What a data packet says about its block: check, encoding and coded length. Symbols of
/// one block must agree on it to be decoded together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Claim {
    pub(super) check: u32,
    pub(super) encoding: Encoding,
    pub(super) coded_len: u32,
}

impl Claim {
    const NONE: Claim = Claim {
        check: 0,
        encoding: Encoding::Raw,
        coded_len: 0,
    };
    fn of(h: &wire::DataHead) -> Self {
        Self {
            check: h.block_check,
            encoding: h.encoding,
            coded_len: h.coded_len,
        }
    }
}

impl Slot {
    /// A free slot, for initialising storage arrays.
    pub const FREE: Slot = Slot {
        block: 0,
        state: SlotState::Free,
        have: 0,
        check: 0,
        encoding: Encoding::Raw,
        coded_len: 0,
        last_symbol_us: 0,
        reported_us: None,
        content: [0; 32],
        rival: Claim::NONE,
        rival_votes: 0,
    };

    fn claim(&self) -> Claim {
        Claim {
            check: self.check,
            encoding: self.encoding,
            coded_len: self.coded_len,
        }
    }

    /// Source symbols of the slot's coded block.
    pub(super) fn coded_k(&self, symbol_size: u32) -> usize {
        self.coded_len.div_ceil(symbol_size) as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SlotState {
    Free,
    Filling,
    /// Raw block decoded and checked: ready to write from the slot.
    Ready,
    /// Zstd block decoded: decompressed and checked when it is handed out for writing.
    Coded,
}

impl<'a> Receiver<'a> {
    pub(super) fn is_done(&self, b: u32) -> bool {
        self.done[(b / 64) as usize] >> (b % 64) & 1 == 1
    }

    pub(super) fn set_done(&mut self, b: u32) {
        self.done[(b / 64) as usize] |= 1 << (b % 64);
    }

    /// True for a block the server's zero map names (written as zeros, or about to be).
    pub(super) fn is_zero(&self, b: u32) -> bool {
        self.zero[(b / 64) as usize] >> (b % 64) & 1 == 1
    }

    /// Records a data packet's sequence number (loss measurement and report ordering).
    /// A jump ahead by more than [`SEQ_JUMP_MAX`] is believed only once
    /// [`SEQ_JUMP_CONFIRMATIONS`] packets in a row follow it closely (a long outage):
    /// any packet that continues the old numbering in between refutes it. So forged
    /// packets with advanced numbers, sent among the real stream, never pass for millions
    /// of lost ones. A confirmed jump restarts the loss window: the outage is not counted
    /// as loss either.
    fn note_data_seq(&mut self, seq: u32, now_us: u64, arrived_us: u64) {
        match self.highest_seq {
            Some(h) if (seq.wrapping_sub(h) as i32) <= 0 => {}
            Some(h) if seq.wrapping_sub(h) > SEQ_JUMP_MAX => {
                let follows = self
                    .seq_jump
                    .filter(|&(j, _)| j != seq && seq.wrapping_sub(j) <= SEQ_JUMP_MAX);
                let count = follows.map_or(1, |(_, n)| n + 1);
                if count < SEQ_JUMP_CONFIRMATIONS {
                    self.seq_jump = Some((seq, count));
                    self.stats.seq_jumps_ignored += 1;
                    return;
                }
                self.highest_seq = Some(seq);
                self.highest_seq_arrived_us = arrived_us;
                self.loss.restart(seq);
                self.seq_jump = None;
            }
            _ => {
                self.highest_seq = Some(seq);
                self.highest_seq_arrived_us = arrived_us;
                self.seq_jump = None;
            }
        }
        self.loss.count();
        if self.interval_received == 0 {
            // The first data after an interval without any (the transfer's start, or after
            // a pause): the report it makes due goes as soon as the gate allows, not a
            // holdoff after the last look found nothing (the first sample, which the
            // sender's probing waits for, came 40-70 ms after the first data). Spread over a
            // quarter interval by the client's id: clients that all waited for the start
            // must not all report at once.
            let spread = self.session.map_or(1, |s| s.report_interval_us / 4).max(1);
            let due = now_us + self.cfg.client_id % spread;
            self.next_report_us = self.next_report_us.min(self.report_gate_us.max(due));
        }
        self.interval_received = self.interval_received.saturating_add(1);
    }

    pub(super) fn handle_data(
        &mut self,
        now_us: u64,
        arrived_us: u64,
        d: &wire::Data<'_>,
    ) -> Result<(), Dropped> {
        let s = self.session.expect("bound");
        let g = s.geometry;
        let sym = g.symbol_size as usize;
        let h = d.head;
        if h.block >= s.blocks {
            return Err(Dropped::Malformed(WireError::BadField("block")));
        }
        if d.payload.len() != sym {
            return Err(Dropped::Malformed(WireError::BadLength));
        }
        // A raw block is its image bytes; a compressed one is shorter than them.
        let block_len = g.block_len(h.block) as u32;
        let fits = match h.encoding {
            Encoding::Raw => h.coded_len == block_len,
            Encoding::Zstd => h.coded_len < block_len,
        };
        if !fits {
            return Err(Dropped::Malformed(WireError::BadField("coded_len")));
        }
        let k = h.coded_len.div_ceil(g.symbol_size) as usize;
        self.note_data_seq(h.seq, now_us, arrived_us);
        self.first_data_us.get_or_insert(now_us);
        self.front = self.front.max(h.block + 1);
        self.last_data_us = now_us;
        if self.is_done(h.block) || self.is_zero(h.block) {
            return Err(Dropped::Duplicate);
        }
        let slot = match self.slots[..s.slots]
            .iter()
            .position(|x| x.state != SlotState::Free && x.block == h.block)
        {
            Some(i) => i,
            None => self.claim_slot(&h, k)?,
        };
        let meta = self.slots[slot];
        if matches!(meta.state, SlotState::Ready | SlotState::Coded) {
            return Err(Dropped::Duplicate);
        }
        if meta.claim() != Claim::of(&h) && !self.vote_rival(slot, &h, k) {
            return Err(Dropped::CheckConflict);
        }
        let slot_bytes = g.k as usize * sym;
        let esi_base = slot * g.k as usize;
        let esis = &mut self.esi_at[esi_base..esi_base + k];
        let mem = &mut self.pool[slot * slot_bytes..slot * slot_bytes + k * sym];
        let e = h.esi as usize;
        let pos = if e < k {
            if esis[e] == h.esi {
                return Err(Dropped::Duplicate);
            }
            if esis[e] != EMPTY {
                // A repair symbol sits in this source's place: move it to a free position.
                let free = esis
                    .iter()
                    .rposition(|&x| x == EMPTY)
                    .ok_or(Dropped::Duplicate)?;
                mem.copy_within(e * sym..(e + 1) * sym, free * sym);
                esis[free] = esis[e];
            }
            e
        } else {
            if esis.contains(&h.esi) {
                return Err(Dropped::Duplicate);
            }
            esis.iter()
                .rposition(|&x| x == EMPTY)
                .ok_or(Dropped::Duplicate)?
        };
        mem[pos * sym..(pos + 1) * sym].copy_from_slice(d.payload);
        esis[pos] = h.esi;
        self.stats.symbols += 1;
        let m = &mut self.slots[slot];
        m.have += 1;
        m.last_symbol_us = now_us;
        if m.have as usize == k {
            self.complete_slot(slot);
        }
        Ok(())
    }

    /// A symbol whose claim differs from its slot's votes for it as the slot's rival (a
    /// new rival replaces the old one). When the rival's votes outnumber the symbols held,
    /// the majority wins: the slot is emptied and taken over by the rival's claim, and
    /// true says the symbol goes in. So one forged packet that claimed the slot first
    /// costs a few symbols, never the block; one forged packet among real ones is outvoted.
    fn vote_rival(&mut self, slot: usize, h: &wire::DataHead, k: usize) -> bool {
        let g = self.session.expect("bound").geometry;
        let m = &mut self.slots[slot];
        let claim = Claim::of(h);
        if m.rival_votes > 0 && m.rival == claim {
            m.rival_votes = m.rival_votes.saturating_add(1);
        } else {
            m.rival = claim;
            m.rival_votes = 1;
        }
        if m.rival_votes <= m.have {
            return false;
        }
        m.check = claim.check;
        m.encoding = claim.encoding;
        m.coded_len = claim.coded_len;
        m.have = 0;
        m.reported_us = None;
        m.rival = Claim::NONE;
        m.rival_votes = 0;
        let base = slot * g.k as usize;
        self.esi_at[base..base + k].fill(EMPTY);
        self.stats.claims_overturned += 1;
        true
    }

    /// Finds a slot for a new block. Out of order, the partial block with the fewest
    /// symbols is evicted (it costs least to fetch again); in order, the block farthest
    /// ahead gives way if it is behind the newcomer, so the window keeps the nearest blocks.
    fn claim_slot(&mut self, h: &wire::DataHead, k: usize) -> Result<usize, Dropped> {
        let block = h.block;
        let s = self.session.expect("bound");
        let slots = &self.slots[..s.slots];
        let i = match slots.iter().position(|x| x.state == SlotState::Free) {
            Some(i) => i,
            None => {
                let victim = if self.cfg.in_order {
                    slots
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| x.block != self.next_in_order)
                        .max_by_key(|(_, x)| x.block)
                        .filter(|(_, x)| x.block > block)
                } else {
                    slots
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| x.state == SlotState::Filling)
                        .min_by_key(|(_, x)| (x.have, u32::MAX - x.block))
                };
                let Some((v, _)) = victim else {
                    return Err(Dropped::NoSlot);
                };
                self.stats.evictions += 1;
                v
            }
        };
        let g = s.geometry;
        self.esi_at[i * g.k as usize..i * g.k as usize + k].fill(EMPTY);
        self.slots[i] = Slot {
            block,
            state: SlotState::Filling,
            have: 0,
            check: h.block_check,
            encoding: h.encoding,
            coded_len: h.coded_len,
            last_symbol_us: 0,
            reported_us: None,
            content: [0; 32],
            rival: Claim::NONE,
            rival_votes: 0,
        };
        Ok(i)
    }

    fn complete_slot(&mut self, slot: usize) {
        let s = self.session.expect("bound");
        let g = s.geometry;
        let sym = g.symbol_size as usize;
        let block = self.slots[slot].block;
        let k = self.slots[slot].coded_k(g.symbol_size);
        let slot_bytes = g.k as usize * sym;
        let esi_base = slot * g.k as usize;
        let esis = &mut self.esi_at[esi_base..esi_base + k];
        let mem = &mut self.pool[slot * slot_bytes..slot * slot_bytes + k * sym];
        if esis.iter().enumerate().any(|(i, &e)| e as usize != i) {
            self.stats.decoded += 1;
            if self
                .cfg
                .engine
                .decode_in_place(mem, k, sym, esis, self.scratch)
                .is_err()
            {
                self.stats.check_failures += 1;
                self.slots[slot] = Slot::FREE;
                return;
            }
        }
        if self.slots[slot].encoding == Encoding::Zstd {
            // Checked once decompressed, when it is handed out for writing.
            self.slots[slot].state = SlotState::Coded;
            return;
        }
        let content = content_hash(&mem[..g.block_len(block)]);
        if block_check(block, &content) != self.slots[slot].check {
            self.stats.check_failures += 1;
            self.slots[slot] = Slot::FREE;
            return;
        }
        let m = &mut self.slots[slot];
        m.content = content;
        m.state = SlotState::Ready;
    }

    /// Blocks of word `i` this receiver has or will have without data: written, or zero.
    fn have_word(&self, i: usize) -> u64 {
        self.done[i] | self.zero[i]
    }

    /// First block in `[from, end)` neither written nor known to be zero.
    pub(super) fn next_zero(&self, from: u32, end: u32) -> Option<u32> {
        let mut b = from;
        while b < end {
            let w = self.have_word((b / 64) as usize) | ((1u64 << (b % 64)) - 1);
            if w != u64::MAX {
                let z = (b / 64) * 64 + (!w).trailing_zeros();
                return (z < end).then_some(z);
            }
            b = (b / 64 + 1) * 64;
        }
        None
    }

    /// First block in `[from, end)` written or known to be zero, or `end`.
    pub(super) fn next_one(&self, from: u32, end: u32) -> u32 {
        let mut b = from;
        while b < end {
            let w = self.have_word((b / 64) as usize) & !((1u64 << (b % 64)) - 1);
            if w != 0 {
                return ((b / 64) * 64 + w.trailing_zeros()).min(end);
            }
            b = (b / 64 + 1) * 64;
        }
        end
    }
}
