//! The receiver state machine (sans-IO), in fixed memory.
//!
//! The shell feeds it every datagram from the data port ([`Receiver::handle_datagram`]),
//! writes the blocks it hands out ([`Receiver::poll_write`], then
//! [`Receiver::write_done`]), flushes the target when [`Receiver::needs_flush`] says so,
//! and sends what [`Receiver::poll_transmit`] builds. Time comes in as microseconds and
//! randomness (for report jitter) as an argument.
//!
//! Memory is what the caller provides and never grows: one bit per block of the image
//! (`done`), and a fixed pool of block slots. Source symbols land at their position in a
//! slot; repair symbols fill positions of missing sources; once a slot holds k symbols it is
//! decoded in place, checked against the block check carried in every data packet, and
//! handed out for writing. Blocks are written in any order (or strictly in order for a
//! stdout sink, through the same slots as a bounded window).

use crate::digest::{DigestAccumulator, block_check, block_hash};
use crate::fec;
use crate::wire::{
    self, AnnounceFlags, ClientPhase, DeficitRange, FailReason, Geometry, MAX_RANGES, PacketType,
    ResultOutcome, ResultReport, StatusHead, WireError,
};

const EMPTY: u16 = 0xFFFF;

/// How the receiver behaves. Times in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct ReceiverConfig {
    /// Random id of this client (the shell draws it).
    pub client_id: u64,
    /// Hand out blocks strictly in order (a stdout sink) instead of as they complete.
    pub in_order: bool,
    /// A partial block is reported only after no symbol of it arrived for this long.
    pub holdoff_us: u64,
    /// A block already reported is reported again only after this long.
    pub rereport_us: u64,
    /// Status heartbeat when there is nothing to report.
    pub heartbeat_us: u64,
    /// Time between repeats of the result until the server acknowledges it.
    pub result_repeat_us: u64,
    /// Repeats of the result before giving up on an acknowledgement.
    pub result_repeats: u32,
    /// Erasure-code kernel that decodes the blocks (only speed depends on it).
    pub engine: fec::Engine,
}

impl ReceiverConfig {
    /// Defaults for a LAN.
    pub fn new(client_id: u64) -> Self {
        Self {
            client_id,
            in_order: false,
            holdoff_us: 20_000,
            rereport_us: 150_000,
            heartbeat_us: 1_000_000,
            result_repeat_us: 200_000,
            result_repeats: 25,
            engine: fec::Engine::detect(),
        }
    }
}

/// Metadata of one block slot.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    block: u32,
    state: SlotState,
    have: u16,
    check: u32,
    last_symbol_us: u64,
    reported_us: Option<u64>,
    hash: [u8; 32],
}

impl Slot {
    /// A free slot, for initialising storage arrays.
    pub const FREE: Slot = Slot {
        block: 0,
        state: SlotState::Free,
        have: 0,
        check: 0,
        last_symbol_us: 0,
        reported_us: None,
        hash: [0; 32],
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free,
    Filling,
    Ready,
}

/// Memory the receiver works in, all provided by the caller.
pub struct ReceiverStorage<'a> {
    /// One bit per block: the largest image is `64 * done.len()` blocks.
    pub done: &'a mut [u64],
    /// Symbol memory of the slots: `k * symbol_size` bytes per slot.
    pub pool: &'a mut [u8],
    /// Slot metadata; its length caps the number of slots.
    pub slots: &'a mut [Slot],
    /// Symbol index held at each position of each slot: `k` entries per slot.
    pub esi_at: &'a mut [u16],
    /// Decoder work space, at least `fec::decode_scratch_bytes(k, symbol_size)` bytes.
    pub scratch: &'a mut [u8],
}

/// Something the shell should know about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing new.
    Nothing,
    /// Bound to a session: check the target can hold `geometry.image_size` before writing.
    Bound {
        /// Session id.
        session: u64,
        /// Its geometry.
        geometry: Geometry,
    },
    /// The session cannot be received with this memory (image or blocks too large).
    Unsupported {
        /// Its geometry.
        geometry: Geometry,
    },
    /// The server acknowledged the result: the client may exit.
    ResultAcked,
    /// The server is ending the session before this client finished.
    ServerClosing,
}

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Malformed or damaged.
    Malformed(WireError),
    /// Not from the session this receiver is bound to.
    ForeignSession,
    /// Data before any announce.
    NotBound,
    /// A type the client does not expect.
    Unexpected,
    /// The symbol is one the receiver already has, or of a block already complete.
    Duplicate,
    /// No slot could take the block.
    NoSlot,
    /// The block check differs from the one the block's earlier symbols carried.
    CheckConflict,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReceiverStats {
    /// Data packets of the bound session accepted into a slot.
    pub symbols: u64,
    /// Data packets that were duplicates or for complete blocks.
    pub duplicates: u64,
    /// Malformed or damaged packets.
    pub malformed: u64,
    /// Packets of other sessions.
    pub foreign: u64,
    /// Data packets before any announce.
    pub unbound: u64,
    /// Packets of unexpected types.
    pub unexpected: u64,
    /// Data packets dropped for lack of a slot.
    pub no_slot: u64,
    /// Partial blocks evicted to make room.
    pub evictions: u64,
    /// Blocks that needed the erasure decoder.
    pub decoded: u64,
    /// Decoded blocks whose check failed (discarded and fetched again).
    pub check_failures: u64,
    /// Packets whose block check conflicted with the slot's.
    pub check_conflicts: u64,
    /// Status reports built.
    pub reports: u64,
    /// Results built.
    pub results: u64,
}

/// A block to write: `data` at byte `offset` of the target.
#[derive(Debug)]
pub struct BlockWrite<'a> {
    /// Block index.
    pub block: u32,
    /// Byte offset in the image.
    pub offset: u64,
    /// The block's image bytes (never past the image end).
    pub data: &'a [u8],
}

#[derive(Clone, Copy, Debug)]
struct Session {
    id: u64,
    geometry: Geometry,
    digest: Option<[u8; 32]>,
    report_interval_us: u64,
    blocks: u32,
    slots: usize,
}

/// Final outcome of this client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written, flushed and matching the announced digest.
    Verified {
        /// The image digest.
        digest: [u8; 32],
    },
    /// Failed, with the reason.
    Failed(FailReason),
}

/// The receiver.
pub struct Receiver<'a> {
    cfg: ReceiverConfig,
    done: &'a mut [u64],
    pool: &'a mut [u8],
    slots: &'a mut [Slot],
    esi_at: &'a mut [u16],
    scratch: &'a mut [u8],
    session: Option<Session>,
    done_count: u32,
    next_in_order: u32,
    acc: DigestAccumulator,
    bytes_written: u64,
    highest_seq: Option<u32>,
    // One past the highest block seen in data, and when data last came: blocks beyond the
    // front are not reported missing while data flows (the server has not sent them yet).
    front: u32,
    last_data_us: u64,
    window_start_seq: u32,
    window_received: u32,
    loss_ppm: u32,
    next_report_us: u64,
    report_gate_us: u64,
    last_report_us: Option<u64>,
    missing_reported_us: Option<u64>,
    report_cursor: u32,
    report_seq: u32,
    flushed: bool,
    outcome: Option<Outcome>,
    computed_digest: [u8; 32],
    result_sent: u32,
    next_result_us: u64,
    acked: bool,
    stats: ReceiverStats,
}

impl<'a> Receiver<'a> {
    /// Builds a receiver in `storage`.
    pub fn new(cfg: ReceiverConfig, storage: ReceiverStorage<'a>) -> Self {
        storage.slots.fill(Slot::FREE);
        Self {
            cfg,
            done: storage.done,
            pool: storage.pool,
            slots: storage.slots,
            esi_at: storage.esi_at,
            scratch: storage.scratch,
            session: None,
            done_count: 0,
            next_in_order: 0,
            acc: DigestAccumulator::new(),
            bytes_written: 0,
            highest_seq: None,
            front: 0,
            last_data_us: 0,
            window_start_seq: 0,
            window_received: 0,
            loss_ppm: 0,
            next_report_us: 0,
            report_gate_us: 0,
            last_report_us: None,
            missing_reported_us: None,
            report_cursor: 0,
            report_seq: 0,
            flushed: false,
            outcome: None,
            computed_digest: [0; 32],
            result_sent: 0,
            next_result_us: 0,
            acked: false,
            stats: ReceiverStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }
    /// The bound session's id and geometry.
    pub fn session(&self) -> Option<(u64, Geometry)> {
        self.session.map(|s| (s.id, s.geometry))
    }
    /// Blocks written and the image's block count (0 before binding).
    pub fn progress(&self) -> (u32, u32) {
        (self.done_count, self.session.map_or(0, |s| s.blocks))
    }
    /// Image bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }
    /// Loss this receiver measured, parts per million.
    pub fn loss_ppm(&self) -> u32 {
        self.loss_ppm
    }
    /// Block slots in use for this session.
    pub fn slot_count(&self) -> usize {
        self.session.map_or(0, |s| s.slots)
    }
    /// The outcome, once known.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }
    /// True when the result was acknowledged or repeated as often as configured.
    pub fn finished(&self) -> bool {
        // Before binding there is no session to report to: a local failure ends at once.
        self.outcome.is_some()
            && (self.acked || self.result_sent >= self.cfg.result_repeats || self.session.is_none())
    }
    /// True when every block is written and the shell should flush the target, then call
    /// [`Receiver::flushed`].
    pub fn needs_flush(&self) -> bool {
        self.session.is_some_and(|s| self.done_count == s.blocks)
            && !self.flushed
            && self.outcome.is_none()
    }

    /// Memory a session needs: (bytes per slot, esi entries per slot, scratch bytes).
    pub fn slot_needs(geometry: &Geometry) -> (usize, usize, usize) {
        let k = geometry.k as usize;
        let s = geometry.symbol_size as usize;
        (k * s, k, fec::decode_scratch_bytes(k, s))
    }

    fn is_done(&self, b: u32) -> bool {
        self.done[(b / 64) as usize] >> (b % 64) & 1 == 1
    }

    fn set_done(&mut self, b: u32) {
        self.done[(b / 64) as usize] |= 1 << (b % 64);
    }

    /// Handles one datagram from the data port.
    pub fn handle_datagram(&mut self, now_us: u64, pkt: &[u8]) -> Result<Event, Dropped> {
        let r = self.handle_inner(now_us, pkt);
        match r {
            Err(Dropped::Malformed(_)) => self.stats.malformed += 1,
            Err(Dropped::ForeignSession) => self.stats.foreign += 1,
            Err(Dropped::NotBound) => self.stats.unbound += 1,
            Err(Dropped::Unexpected) => self.stats.unexpected += 1,
            Err(Dropped::Duplicate) => self.stats.duplicates += 1,
            Err(Dropped::NoSlot) => self.stats.no_slot += 1,
            Err(Dropped::CheckConflict) => self.stats.check_conflicts += 1,
            Ok(_) => {}
        }
        r
    }

    fn handle_inner(&mut self, now_us: u64, pkt: &[u8]) -> Result<Event, Dropped> {
        let packet = wire::open(pkt).map_err(Dropped::Malformed)?;
        if let Some(s) = &self.session
            && s.id != packet.session()
        {
            return Err(Dropped::ForeignSession);
        }
        match packet.ty() {
            PacketType::Announce => {
                let a = packet.announce().map_err(Dropped::Malformed)?;
                self.handle_announce(now_us, packet.session(), &a)
            }
            PacketType::Data => {
                if self.session.is_none() {
                    // Validate anyway so garbage is counted as garbage.
                    packet.data().map_err(Dropped::Malformed)?;
                    return Err(Dropped::NotBound);
                }
                let d = packet.data().map_err(Dropped::Malformed)?;
                self.handle_data(now_us, &d).map(|_| Event::Nothing)
            }
            PacketType::ResultAck => {
                let id = packet.result_ack().map_err(Dropped::Malformed)?;
                if self.session.is_none() || id != self.cfg.client_id || self.outcome.is_none() {
                    return Err(Dropped::Unexpected);
                }
                let first = !self.acked;
                self.acked = true;
                Ok(if first {
                    Event::ResultAcked
                } else {
                    Event::Nothing
                })
            }
            PacketType::Status | PacketType::Result => Err(Dropped::Unexpected),
        }
    }

    fn handle_announce(
        &mut self,
        now_us: u64,
        id: u64,
        a: &wire::Announce,
    ) -> Result<Event, Dropped> {
        let interval = a.report_interval_ms as u64 * 1000;
        if let Some(s) = &mut self.session {
            if s.geometry != a.geometry {
                return Err(Dropped::Malformed(WireError::BadField("geometry changed")));
            }
            if let (Some(old), Some(new)) = (s.digest, a.digest)
                && old != new
            {
                return Err(Dropped::Malformed(WireError::BadField("digest changed")));
            }
            if s.digest.is_none() {
                s.digest = a.digest;
            }
            s.report_interval_us = interval;
            // The announce's sequence number is not evidence of data seen: a server that
            // batches its sends may announce before the data it numbered has left.
            if a.flags.contains(AnnounceFlags::CLOSING) && self.outcome.is_none() {
                return Ok(Event::ServerClosing);
            }
            return Ok(Event::Nothing);
        }
        let g = a.geometry;
        let blocks = g.block_count();
        let (slot_bytes, slot_esis, scratch) = Self::slot_needs(&g);
        let slots = (self.pool.len() / slot_bytes)
            .min(self.esi_at.len() / slot_esis)
            .min(self.slots.len());
        let min_slots = if self.cfg.in_order { 2 } else { 1 };
        if blocks as usize > self.done.len() * 64
            || slots < min_slots
            || self.scratch.len() < scratch
        {
            return Ok(Event::Unsupported { geometry: g });
        }
        self.done[..(blocks as usize).div_ceil(64)].fill(0);
        self.session = Some(Session {
            id,
            geometry: g,
            digest: a.digest,
            report_interval_us: interval,
            blocks,
            slots,
        });
        self.next_report_us = now_us;
        self.window_start_seq = a.seq;
        Ok(Event::Bound {
            session: id,
            geometry: g,
        })
    }

    /// Records a data packet's sequence number (loss measurement and report ordering).
    fn note_data_seq(&mut self, seq: u32) {
        match self.highest_seq {
            Some(h) if (seq.wrapping_sub(h) as i32) <= 0 => {}
            _ => self.highest_seq = Some(seq),
        }
        self.window_received = self.window_received.wrapping_add(1);
    }

    fn handle_data(&mut self, now_us: u64, d: &wire::Data<'_>) -> Result<(), Dropped> {
        let s = self.session.expect("bound");
        let g = s.geometry;
        let sym = g.symbol_size as usize;
        if d.block >= s.blocks {
            return Err(Dropped::Malformed(WireError::BadField("block")));
        }
        if d.payload.len() != sym {
            return Err(Dropped::Malformed(WireError::BadLength));
        }
        let k = g.block_k(d.block) as usize;
        self.note_data_seq(d.seq);
        self.front = self.front.max(d.block + 1);
        self.last_data_us = now_us;
        if self.is_done(d.block) {
            return Err(Dropped::Duplicate);
        }
        let slot = match self.slots[..s.slots]
            .iter()
            .position(|x| x.state != SlotState::Free && x.block == d.block)
        {
            Some(i) => i,
            None => self.claim_slot(d.block, d.block_check, k)?,
        };
        let meta = self.slots[slot];
        if meta.state == SlotState::Ready {
            return Err(Dropped::Duplicate);
        }
        if meta.check != d.block_check {
            return Err(Dropped::CheckConflict);
        }
        let slot_bytes = g.k as usize * sym;
        let esi_base = slot * g.k as usize;
        let esis = &mut self.esi_at[esi_base..esi_base + k];
        let mem = &mut self.pool[slot * slot_bytes..slot * slot_bytes + k * sym];
        let e = d.esi as usize;
        let pos = if e < k {
            if esis[e] == d.esi {
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
            if esis.contains(&d.esi) {
                return Err(Dropped::Duplicate);
            }
            esis.iter()
                .rposition(|&x| x == EMPTY)
                .ok_or(Dropped::Duplicate)?
        };
        mem[pos * sym..(pos + 1) * sym].copy_from_slice(d.payload);
        esis[pos] = d.esi;
        self.stats.symbols += 1;
        let m = &mut self.slots[slot];
        m.have += 1;
        m.last_symbol_us = now_us;
        if m.have as usize == k {
            self.complete_slot(slot);
        }
        Ok(())
    }

    /// Finds a slot for a new block. Out of order, the partial block with the fewest
    /// symbols is evicted (it costs least to fetch again); in order, the block farthest
    /// ahead gives way if it is behind the newcomer, so the window keeps the nearest blocks.
    fn claim_slot(&mut self, block: u32, check: u32, k: usize) -> Result<usize, Dropped> {
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
            check,
            last_symbol_us: 0,
            reported_us: None,
            hash: [0; 32],
        };
        Ok(i)
    }

    fn complete_slot(&mut self, slot: usize) {
        let s = self.session.expect("bound");
        let g = s.geometry;
        let sym = g.symbol_size as usize;
        let block = self.slots[slot].block;
        let k = g.block_k(block) as usize;
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
        let h = block_hash(block, &mem[..g.block_len(block)]);
        if block_check(&h) != self.slots[slot].check {
            self.stats.check_failures += 1;
            self.slots[slot] = Slot::FREE;
            return;
        }
        let m = &mut self.slots[slot];
        m.hash = h;
        m.state = SlotState::Ready;
    }

    /// The next block to write, if any. The same block is returned until
    /// [`Receiver::write_done`] is called for it.
    pub fn poll_write(&self) -> Option<BlockWrite<'_>> {
        let s = self.session?;
        let g = s.geometry;
        let slot = self.slots[..s.slots].iter().position(|x| {
            x.state == SlotState::Ready && (!self.cfg.in_order || x.block == self.next_in_order)
        })?;
        let block = self.slots[slot].block;
        let start = slot * g.k as usize * g.symbol_size as usize;
        Some(BlockWrite {
            block,
            offset: g.block_offset(block),
            data: &self.pool[start..start + g.block_len(block)],
        })
    }

    /// Records that `block` (from [`Receiver::poll_write`]) is written; frees its slot.
    pub fn write_done(&mut self, block: u32) {
        let Some(s) = self.session else { return };
        let Some(slot) = self.slots[..s.slots]
            .iter()
            .position(|x| x.state == SlotState::Ready && x.block == block)
        else {
            return;
        };
        let h = self.slots[slot].hash;
        self.slots[slot] = Slot::FREE;
        if self.is_done(block) {
            return;
        }
        self.set_done(block);
        self.acc.add(&h);
        self.done_count += 1;
        self.bytes_written += s.geometry.block_len(block) as u64;
        if self.cfg.in_order {
            self.next_in_order = block + 1;
        }
    }

    /// The shell flushed the target after the last write (`ok`: without error).
    pub fn flushed(&mut self, now_us: u64, ok: bool) {
        if self.outcome.is_some() {
            return;
        }
        self.flushed = true;
        if !ok {
            self.fail(now_us, FailReason::IoError);
            return;
        }
        self.try_verify(now_us);
    }

    fn try_verify(&mut self, now_us: u64) {
        let Some(s) = self.session else { return };
        if !self.flushed || self.outcome.is_some() || self.done_count != s.blocks {
            return;
        }
        let Some(want) = s.digest else { return };
        self.computed_digest = self.acc.finish(&s.geometry);
        self.outcome = Some(if self.computed_digest == want {
            Outcome::Verified { digest: want }
        } else {
            Outcome::Failed(FailReason::DigestMismatch)
        });
        self.next_result_us = now_us;
    }

    /// Ends this client with a failure (target too small, I/O error, timeout, ...). The
    /// result is still reported to the server.
    pub fn fail(&mut self, now_us: u64, reason: FailReason) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome::Failed(reason));
            self.next_result_us = now_us;
        }
    }

    /// When [`Receiver::poll_transmit`] next has something to send.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.session?;
        if self.outcome.is_some() {
            return (!self.finished()).then_some(self.next_result_us);
        }
        Some(self.next_report_us)
    }

    /// Builds the next packet for the server into `buf`, if one is due. `random` jitters
    /// the report timer.
    pub fn poll_transmit(&mut self, now_us: u64, random: u32, buf: &mut [u8]) -> Option<usize> {
        let s = self.session?;
        self.try_verify(now_us);
        if let Some(outcome) = self.outcome {
            if self.finished() || now_us < self.next_result_us {
                return None;
            }
            let r = ResultReport {
                client_id: self.cfg.client_id,
                outcome: match outcome {
                    Outcome::Verified { .. } => ResultOutcome::Verified,
                    Outcome::Failed(reason) => ResultOutcome::Failed(reason),
                },
                bytes_written: self.bytes_written,
                digest: self.computed_digest,
            };
            self.result_sent += 1;
            self.next_result_us = now_us + self.cfg.result_repeat_us;
            self.stats.results += 1;
            return wire::write_result(buf, s.id, &r).ok();
        }
        if now_us < self.next_report_us {
            return None;
        }
        // Reports come once per (jittered) interval; sooner, down to a quarter interval, only
        // when half the slots hold partial blocks and waiting would force evictions.
        let filling = self.slots[..s.slots]
            .iter()
            .filter(|m| m.state == SlotState::Filling)
            .count();
        if now_us < self.report_gate_us && filling * 2 < s.slots {
            self.next_report_us = self.report_gate_us.min(now_us + self.cfg.holdoff_us.max(1));
            return None;
        }
        let mut ranges = [DeficitRange::default(); MAX_RANGES];
        let n = self.build_ranges(now_us, &mut ranges);
        let heartbeat_due = self
            .last_report_us
            .is_none_or(|t| now_us.saturating_sub(t) >= self.cfg.heartbeat_us);
        if n == 0 && !heartbeat_due {
            // Nothing due: look again soon, so a block that becomes due is reported within
            // about a holdoff, not a whole interval later. Reports still come at most once
            // per interval, because the interval only restarts when one is sent.
            self.next_report_us = now_us + self.cfg.holdoff_us.max(1);
            return None;
        }
        // Jitter in [0.5, 1.5) of the interval keeps clients from reporting in step.
        let interval = s.report_interval_us.max(1);
        let jitter = interval / 2 + (interval * (random as u64 % 1024)) / 1024;
        self.report_gate_us = now_us + jitter;
        self.next_report_us = now_us + (interval / 4).max(self.cfg.holdoff_us);
        self.update_loss();
        let phase = if self.done_count == s.blocks {
            ClientPhase::Finishing
        } else {
            ClientPhase::Receiving
        };
        let head = StatusHead {
            client_id: self.cfg.client_id,
            report_seq: self.report_seq,
            last_seq: self.highest_seq.unwrap_or(0),
            blocks_done: self.done_count,
            loss_ppm: self.loss_ppm,
            phase,
        };
        self.report_seq = self.report_seq.wrapping_add(1);
        self.last_report_us = Some(now_us);
        self.stats.reports += 1;
        wire::write_status(buf, s.id, &head, &ranges[..n]).ok()
    }

    fn update_loss(&mut self) {
        let Some(h) = self.highest_seq else { return };
        let span = h.wrapping_sub(self.window_start_seq) as u64;
        if span < 200 || span > i32::MAX as u64 {
            return;
        }
        let got = (self.window_received as u64).min(span);
        let ppm = ((span - got) * 1_000_000 / span) as u32;
        self.loss_ppm = if self.loss_ppm == 0 {
            ppm
        } else {
            (self.loss_ppm + ppm) / 2
        };
        self.window_start_seq = h;
        self.window_received = 0;
    }

    /// Collects the deficit ranges due for reporting, ascending, starting at the report
    /// cursor so that successive reports cover everything even when one packet cannot.
    fn build_ranges(&mut self, now_us: u64, out: &mut [DeficitRange; MAX_RANGES]) -> usize {
        let s = self.session.expect("bound");
        let g = s.geometry;
        // Blocks in slots, sorted by block (a few dozen at most).
        let mut held = [(0u32, 0u16, false); 64];
        let mut nh = 0;
        for m in self.slots[..s.slots]
            .iter()
            .filter(|m| m.state != SlotState::Free)
        {
            if nh == held.len() {
                break;
            }
            let due = m.state == SlotState::Filling
                && now_us.saturating_sub(m.last_symbol_us) >= self.cfg.holdoff_us
                && m.reported_us
                    .is_none_or(|t| now_us.saturating_sub(t) >= self.cfg.rereport_us);
            held[nh] = (m.block, g.block_k(m.block) as u16 - m.have, due);
            nh += 1;
        }
        held[..nh].sort_unstable_by_key(|p| p.0);
        let mut rb = RangeBuf {
            out,
            n: 0,
            missing_due: self
                .missing_reported_us
                .is_none_or(|t| now_us.saturating_sub(t) >= self.cfg.rereport_us),
            last: s.blocks - 1,
            last_k: g.block_k(s.blocks - 1) as u16,
            k: g.k as u16,
        };
        // While data flows, only blocks behind the front can be missing; once it stops, the
        // tail may have been lost too, so everything counts.
        let limit = if now_us.saturating_sub(self.last_data_us) >= self.cfg.rereport_us {
            s.blocks
        } else {
            self.front
        };
        let start = if self.report_cursor >= limit {
            0
        } else {
            self.report_cursor
        };
        let mut b = start;
        let mut stopped_at = None;
        let mut hi = held[..nh].partition_point(|p| p.0 < start);
        'runs: while b < limit {
            let Some(run_start) = self.next_zero(b, limit) else {
                break;
            };
            let run_end = self.next_one(run_start, limit);
            // A run of blocks not done, split at the blocks held in slots.
            let mut a = run_start;
            while hi < nh && held[hi].0 < run_end {
                let (hb, deficit, due) = held[hi];
                if hb >= a {
                    if !rb.missing(a, hb) || (due && !rb.push(hb, 1, deficit)) {
                        stopped_at = Some(a);
                        break 'runs;
                    }
                    a = hb + 1;
                }
                hi += 1;
            }
            if !rb.missing(a, run_end) {
                stopped_at = Some(a);
                break;
            }
            b = run_end;
        }
        let (n, missing_due) = (rb.n, rb.missing_due);
        self.report_cursor = stopped_at.unwrap_or(0);
        if n > 0 {
            for m in self.slots[..s.slots].iter_mut() {
                if m.state == SlotState::Filling
                    && out[..n]
                        .iter()
                        .any(|r| r.first <= m.block && (m.block as u64) < r.end())
                {
                    m.reported_us = Some(now_us);
                }
            }
            if missing_due && stopped_at.is_none() {
                self.missing_reported_us = Some(now_us);
            }
        }
        n
    }

    /// First block in `[from, end)` not yet done.
    fn next_zero(&self, from: u32, end: u32) -> Option<u32> {
        let mut b = from;
        while b < end {
            let w = self.done[(b / 64) as usize] | ((1u64 << (b % 64)) - 1);
            if w != u64::MAX {
                let z = (b / 64) * 64 + (!w).trailing_zeros();
                return (z < end).then_some(z);
            }
            b = (b / 64 + 1) * 64;
        }
        None
    }

    /// First block in `[from, end)` already done, or `end`.
    fn next_one(&self, from: u32, end: u32) -> u32 {
        let mut b = from;
        while b < end {
            let w = self.done[(b / 64) as usize] & !((1u64 << (b % 64)) - 1);
            if w != 0 {
                return ((b / 64) * 64 + w.trailing_zeros()).min(end);
            }
            b = (b / 64 + 1) * 64;
        }
        end
    }
}

/// A status report's ranges under construction.
struct RangeBuf<'o> {
    out: &'o mut [DeficitRange; MAX_RANGES],
    n: usize,
    missing_due: bool,
    last: u32,
    last_k: u16,
    k: u16,
}

impl RangeBuf<'_> {
    /// Adds blocks `[first, first + len)` needing `deficit` each; false when full.
    fn push(&mut self, mut first: u32, mut len: u32, deficit: u16) -> bool {
        while len > 0 {
            if self.n == MAX_RANGES {
                return false;
            }
            let l = len.min(u16::MAX as u32);
            self.out[self.n] = DeficitRange {
                first,
                len: l as u16,
                deficit,
            };
            self.n += 1;
            first += l;
            len -= l;
        }
        true
    }

    /// Adds blocks `[a, b)` that the receiver lacks entirely, when such reports are due.
    fn missing(&mut self, a: u32, b: u32) -> bool {
        if a >= b || !self.missing_due {
            return true;
        }
        if b > self.last && self.last_k != self.k {
            self.push(a, self.last - a, self.k) && self.push(self.last, 1, self.last_k)
        } else {
            self.push(a, b - a, self.k)
        }
    }
}
