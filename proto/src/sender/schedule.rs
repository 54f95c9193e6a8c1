//! What to send next: the phase of the session, the forward pass's cursor, repair and
//! resend bursts, proactive repair, and the pending deficits reports feed.
//!
//! Priority among data symbols: a burst in progress; repair bursts for blocks with a
//! reported deficit (fresh repair symbols, as many as the largest deficit any client
//! reported); the forward pass (each block's source symbols, then a proactive number of
//! repair symbols sized from the loss clients report); after the forward pass, the
//! carousel: whole blocks that some client lacks entirely (late joiners, evicted blocks, very
//! lossy clients) are sent again as source symbols. Whole-block resends wait for the end of
//! the forward pass, so a late joiner or a client far behind never holds back the others.

use super::blockmap::BlockMap;
use super::suppression::{RECENT_BURSTS, Suppression};
use crate::deficit::DeficitTree;
use crate::wire::{DeficitRange, Geometry, MAX_ESI, MAX_RANGES, Status};

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Announcing, waiting for clients (or the start deadline) before sending data.
    Waiting,
    /// The forward pass: every block once, in order, with repairs as reports ask.
    Forward,
    /// Every block was sent once; serving what clients still lack.
    Carousel,
    /// The session is decided: announcing its end, acknowledging late results, no data.
    Closing,
    /// Over: nothing more to send.
    Ended,
}

/// Why a data symbol is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SymbolKind {
    /// A source symbol of the forward pass.
    Forward,
    /// A repair symbol of the forward pass, sent before anyone asked.
    Proactive,
    /// A repair symbol for a reported deficit.
    Repair,
    /// A source symbol sent again by the carousel.
    Resend,
}

/// A data symbol the schedule chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Symbol {
    pub block: u32,
    pub esi: u16,
    pub seq: u32,
    pub kind: SymbolKind,
    /// This symbol ends the forward pass.
    pub ends_forward: bool,
}

#[derive(Clone, Copy, Debug)]
struct Burst {
    block: u32,
    next_esi: u16,
    left: u32,
    source: bool,
}

/// What the schedule needs to know of the clients when it sizes repairs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LossView {
    /// The median loss clients report, parts per million.
    pub loss_ppm: u32,
    /// Clients still receiving or finishing.
    pub active_clients: u32,
    /// Send proactive repair at all.
    pub proactive: bool,
    /// Data packets the sender sends in two report intervals at its rate: a block followed
    /// by fewer source symbols than this (or by fewer than [`TAIL_MIN_BLOCKS`] data blocks)
    /// gets the tail margin ([`TAIL_Z10`]).
    pub tail_symbols: u32,
    /// The rate, and a data packet's bytes on the wire with its framing: what each
    /// duplicate source of a whole-block resend costs every client ([`Self::packet_ns`]).
    pub rate_bps: u64,
    pub wire_packet_bytes: u64,
}

impl LossView {
    /// How long one data packet takes on the wire at the rate, in nanoseconds. Asked only
    /// when a large deficit is served, not for every packet.
    fn packet_ns(&self) -> u64 {
        (self.wire_packet_bytes as u128 * 8_000_000_000 / self.rate_bps.max(1) as u128)
            .min(u64::MAX as u128) as u64
    }
}

/// Extra standard deviations (tenths) of proactive repair for the last blocks of the forward
/// pass. A deficit of a block in the middle of the pass is repaired while later blocks are
/// sent; one of the last blocks holds its client a report round trip (50-150 ms, more when
/// the repair is lost too) after the others are done. Two more deviations cover the worst
/// client almost always, for a few symbols per block, on the blocks of the last two report
/// intervals (about a second of data at 1,000 clients, whose reports come 500 ms apart).
const TAIL_Z10: u64 = 20;
/// A client's decoding time per missing source and per byte of its block, picoseconds:
/// 4.1 ms for 128 missing of a block of 512 x 1408 bytes, 8.8 ms for 256, on one core with
/// AVX2 (`bb-bench fec` at those erasures): 34 us per missing source there.
const DECODE_PS_PER_BLOCK_BYTE: u64 = 47;
/// The tail is at least this many data blocks.
const TAIL_MIN_BLOCKS: u32 = 4;

pub(crate) struct Schedule<'a> {
    geometry: Geometry,
    blocks: u32,
    phase: Phase,
    repair: DeficitTree<'a>,
    resend: DeficitTree<'a>,
    next_repair_esi: &'a mut [u16],
    seq: u32,
    // Forward pass position: `fwd_block` is the block being sent.
    fwd_block: u32,
    fwd_esi: u32,
    fwd_proactive_left: u32,
    // Repair or resend symbols sent since the last forward one (see `next_symbol`).
    bursts_since_forward: u32,
    // The next burst is picked from the resend tree first (they alternate with repairs).
    resend_turn: bool,
    burst: Option<Burst>,
    sweep: u32,
    // Every client at the start resumed from an earlier session of this image: the forward
    // pass sends nothing and only what they report lacking is sent.
    skip_forward: bool,
    // Source symbols and data blocks from `fwd_block` on: blocks not given yet count in
    // full, zero blocks not at all (how far the pass is from its end, for the tail margin).
    symbols_left: u64,
    data_blocks_left: u32,
}

impl<'a> Schedule<'a> {
    /// None when a storage slice is too short for the geometry.
    pub fn new(
        geometry: Geometry,
        repair_tree: &'a mut [u16],
        resend_tree: &'a mut [u16],
        next_repair_esi: &'a mut [u16],
    ) -> Option<Self> {
        let n = geometry.block_count();
        let repair = DeficitTree::new(repair_tree, n)?;
        let resend = DeficitTree::new(resend_tree, n)?;
        if next_repair_esi.len() < n as usize {
            return None;
        }
        Some(Self {
            geometry,
            blocks: n,
            phase: Phase::Waiting,
            repair,
            resend,
            next_repair_esi,
            seq: 0,
            fwd_block: 0,
            fwd_esi: 0,
            fwd_proactive_left: 0,
            bursts_since_forward: 0,
            resend_turn: false,
            burst: None,
            sweep: 0,
            skip_forward: false,
            symbols_left: geometry.source_symbols(),
            data_blocks_left: n,
        })
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }
    /// Data sequence number the next symbol gets.
    pub fn seq(&self) -> u32 {
        self.seq
    }
    pub fn forward_blocks_done(&self) -> u32 {
        self.fwd_block
    }
    pub fn forward_skipped(&self) -> bool {
        self.skip_forward
    }
    pub fn forward_done(&self) -> bool {
        self.fwd_block >= self.blocks
    }
    /// Whether the forward pass's current block (a data block) is among its last: followed
    /// by fewer than `tail_symbols` source symbols, or by fewer than [`TAIL_MIN_BLOCKS`]
    /// data blocks.
    fn in_tail(&self, coded_k: u32, tail_symbols: u32) -> bool {
        let symbols_after = self.symbols_left.saturating_sub(coded_k as u64);
        let blocks_after = self.data_blocks_left.saturating_sub(1);
        symbols_after < tail_symbols as u64 || blocks_after < TAIL_MIN_BLOCKS
    }
    /// The forward pass moves past its current block (given, so its size is known).
    fn pass_block(&mut self, map: &BlockMap<'_>) {
        let b = self.fwd_block;
        self.symbols_left = self.symbols_left.saturating_sub(map.coded_k(b) as u64);
        if !map.is_zero(b) {
            self.data_blocks_left = self.data_blocks_left.saturating_sub(1);
        }
        self.fwd_block += 1;
    }
    /// True when there is nothing left to send: forward pass done, no deficit pending.
    pub fn is_idle(&self) -> bool {
        self.forward_done() && self.burst.is_none() && !self.repair.any() && !self.resend.any()
    }

    /// Block `b` was given: its fresh repair symbols start after its `coded_k` sources.
    pub fn block_ready(&mut self, b: u32, coded_k: u32) {
        self.next_repair_esi[b as usize] = coded_k as u16;
        // Counted in full until given: now its coded size (0 for a zero block).
        let full = self.geometry.block_k(b) as u64;
        self.symbols_left = (self.symbols_left + coded_k as u64).saturating_sub(full);
        if coded_k == 0 {
            self.data_blocks_left = self.data_blocks_left.saturating_sub(1);
        }
    }

    /// The forward pass sends no data: every client present holds blocks of this image
    /// from an earlier session and reports what it lacks (served as repairs and resends).
    /// Blocks are still given in order (the digest is built from them); a client that
    /// joins later is served from its reports like any late joiner.
    pub fn skip_forward(&mut self) {
        self.skip_forward = true;
    }

    /// Moves the forward pass over blocks it does not send (zero blocks; every block when
    /// the forward pass is skipped); true when that ended the pass.
    pub fn skip_blocks(&mut self, map: &BlockMap<'_>) -> bool {
        if self.forward_done() || !self.sending() {
            return false;
        }
        while self.fwd_block < map.ready()
            && self.fwd_esi == 0
            && (self.skip_forward || map.is_zero(self.fwd_block))
        {
            self.pass_block(map);
        }
        if self.forward_done() {
            self.phase = Phase::Carousel;
            return true;
        }
        false
    }

    /// Waiting -> Forward.
    pub fn start(&mut self) {
        if self.phase == Phase::Waiting {
            self.phase = Phase::Forward;
        }
    }
    /// Any phase -> Closing (data stops).
    pub fn close(&mut self) {
        if self.phase != Phase::Ended {
            self.phase = Phase::Closing;
        }
    }
    /// Closing -> Ended.
    pub fn end(&mut self) {
        self.phase = Phase::Ended;
    }
    /// True while data may be sent.
    pub fn sending(&self) -> bool {
        matches!(self.phase, Phase::Forward | Phase::Carousel)
    }

    /// The next data symbol, if there is one to send.
    pub fn next_symbol(
        &mut self,
        now_us: u64,
        loss: LossView,
        map: &BlockMap<'_>,
        suppression: &mut Suppression,
    ) -> Option<Symbol> {
        if !self.sending() {
            return None;
        }
        if self.burst.is_none() {
            self.burst = self.pick_burst(loss, map);
        }
        // While the forward pass can go on, it gets at least every other symbol: repairs
        // come first, but no report (a real client's, or a forged one asking for every
        // block again and again) can starve it, so the pass takes at most twice as long.
        let forward_waiting = !self.forward_done() && self.fwd_block < map.ready();
        let forward_turn = forward_waiting && self.bursts_since_forward >= FORWARD_SHARE_EVERY;
        if let Some(mut b) = self.burst.filter(|_| !forward_turn) {
            self.bursts_since_forward += 1;
            let esi = if b.source {
                b.next_esi
            } else {
                self.repair_esi(b.block)
            };
            b.next_esi += 1;
            b.left -= 1;
            let seq = self.next_seq();
            if b.left == 0 {
                self.burst = None;
                suppression.burst_sent(b.block, seq, now_us);
            } else {
                self.burst = Some(b);
            }
            let kind = if b.source {
                SymbolKind::Resend
            } else {
                SymbolKind::Repair
            };
            return Some(Symbol {
                block: b.block,
                esi,
                seq,
                kind,
                ends_forward: false,
            });
        }
        // The forward pass waits for the shell to give the next block.
        if self.forward_done() || self.fwd_block >= map.ready() {
            return None;
        }
        self.bursts_since_forward = 0;
        let block = self.fwd_block;
        let k = map.coded_k(block);
        let seq = self.next_seq();
        let (esi, kind) = if self.fwd_esi < k {
            let e = self.fwd_esi as u16;
            self.fwd_esi += 1;
            if self.fwd_esi == k {
                let tail = self.in_tail(k, loss.tail_symbols);
                self.fwd_proactive_left = proactive_count(k, loss, tail);
            }
            (e, SymbolKind::Forward)
        } else {
            self.fwd_proactive_left -= 1;
            (self.repair_esi(block), SymbolKind::Proactive)
        };
        let mut ends_forward = false;
        if self.fwd_esi == k && self.fwd_proactive_left == 0 {
            suppression.forward_sent(block, seq, now_us);
            self.pass_block(map);
            self.fwd_esi = 0;
            if self.forward_done() {
                self.phase = Phase::Carousel;
                ends_forward = true;
            }
        }
        Some(Symbol {
            block,
            esi,
            seq,
            kind,
            ends_forward,
        })
    }

    fn next_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    fn repair_esi(&mut self, block: u32) -> u16 {
        let k = self.geometry.block_k(block) as u16;
        let e = self.next_repair_esi[block as usize];
        // Fresh indices run out only after 65535 - k repairs of one block; then reuse from
        // the raw source count, which is never below the coded one.
        self.next_repair_esi[block as usize] = if e >= MAX_ESI { k } else { e + 1 };
        e
    }

    fn pick_burst(&mut self, loss: LossView, map: &BlockMap<'_>) -> Option<Burst> {
        // Repairs and whole-block resends take turns: a stream of small deficits (a lossy
        // client's, or forged reports asking for every block) cannot hold back the blocks
        // another client lacks entirely.
        self.resend_turn = !self.resend_turn;
        if self.resend_turn
            && let Some(b) = self.pick_resend(loss, map)
        {
            return Some(b);
        }
        while let Some(b) = self.repair.next_nonzero_wrapping(self.sweep) {
            let d = self.repair.get(b) as u32;
            self.repair.set(b, 0);
            self.sweep = b + 1;
            // Zero blocks are never sent: clients that asked learn them from zero maps.
            if map.is_zero(b) {
                continue;
            }
            // A compressed block can have fewer sources than the deficit a client reports
            // before it knows the block's coded length: then send the whole block.
            let k = map.coded_k(b);
            let (left, source) = if d >= k {
                (k, true)
            } else {
                (repair_burst_len(d, loss.loss_ppm), false)
            };
            return Some(Burst {
                block: b,
                next_esi: 0,
                left,
                source,
            });
        }
        self.pick_resend(loss, map)
    }

    /// The next whole-block resend (or large repair), once the forward pass is done.
    fn pick_resend(&mut self, loss: LossView, map: &BlockMap<'_>) -> Option<Burst> {
        while self.forward_done()
            && let Some(b) = self.resend.next_nonzero_wrapping(self.sweep)
        {
            if map.is_zero(b) {
                self.resend.set(b, 0);
                self.repair.set(b, 0);
                self.sweep = b + 1;
                continue;
            }
            // A large deficit is served by sending the block's sources again when the
            // duplicates cost the wire less than decoding the missing sources from repairs
            // would cost the client: `(k - want) * packet < want * decode`, from a quarter
            // of the block ([`DECODE_PS_PER_BLOCK_BYTE`]). A startup overshoot costs 48
            // clients on 20 Mbit/s links about 30% of the first block, and more than half in
            // 2 of 14 runs on 2026-12-04 (a shaper's burst allowance passed the first
            // samples at the rate sent). Bounded at half the block, as it was, all 512
            // sources went again there (tx 1.12 against 1.08-1.10), where repairs of the
            // deficit d cost about 1.01 d.
            let k = map.coded_k(b);
            let want = (self.resend.get(b) as u32).max(self.repair.get(b) as u32);
            self.resend.set(b, 0);
            self.repair.set(b, 0);
            self.sweep = b + 1;
            let decode_ns =
                DECODE_PS_PER_BLOCK_BYTE * k as u64 * self.geometry.symbol_size as u64 / 1000;
            let packet_ns = loss.packet_ns() as u128;
            let even = (k as u128 * packet_ns / (packet_ns + decode_ns as u128).max(1)) as u32;
            let source = want > even.max(k / 4);
            let left = if source {
                k
            } else {
                repair_burst_len(want, loss.loss_ppm)
            };
            return Some(Burst {
                block: b,
                next_esi: 0,
                left,
                source,
            });
        }
        None
    }

    /// Merges a report's deficits into the pending trees, except where a burst the client
    /// had not yet seen when it reported already covers the block. Returns how many blocks
    /// were so protected.
    pub fn apply_deficits(&mut self, now_us: u64, st: &Status<'_>, sup: &Suppression) -> u64 {
        // Blocks whose latest burst (or the current one) postdates the report keep their
        // pending counts: save them, apply the ranges, restore. The cost is bounded and
        // linear: the ranges are copied once (the wire checked them ascending and apart),
        // each burst's block is looked up by bisection, and the saved blocks are made
        // unique by sorting, not by comparing each with all others.
        let mut ranges = [DeficitRange::default(); MAX_RANGES];
        let mut nranges = 0;
        for r in st.ranges().take(MAX_RANGES) {
            ranges[nranges] = r;
            nranges += 1;
        }
        let ranges = &ranges[..nranges];
        let in_ranges = |b: u32| {
            let i = ranges.partition_point(|r| r.end() <= b as u64);
            ranges.get(i).is_some_and(|r| r.first <= b)
        };
        let mut protected = [0u32; RECENT_BURSTS + 1];
        let mut nprotected = 0;
        if !ranges.is_empty() {
            let current = self.burst.map(|b| b.block);
            for b in sup
                .unseen_bursts(st.head.last_seq, now_us)
                .chain(current)
                .filter(|&b| in_ranges(b))
            {
                if nprotected < protected.len() {
                    protected[nprotected] = b;
                    nprotected += 1;
                }
            }
        }
        let protected = &mut protected[..nprotected];
        protected.sort_unstable();
        let mut unique = 0;
        for i in 0..protected.len() {
            if i == 0 || protected[i - 1] != protected[i] {
                protected[unique] = protected[i];
                unique += 1;
            }
        }
        let protected = &protected[..unique];

        let clip = sup.forward_clip(st.head.last_seq, now_us, self.fwd_block);
        let k = self.geometry.k;
        let last = self.blocks - 1;
        let last_k = self.geometry.block_k(last);
        // Large deficits (late joiners, evicted blocks, very lossy clients) wait for the end of
        // the forward pass so they hold back nobody; during the pass the bar is lower.
        let defer_above = if self.forward_done() { k / 4 } else { k / 8 }.max(1);
        let mut apply = |tree_lo: u32, tree_hi: u32, block_k: u32, d: u32| {
            let d = d.min(block_k);
            if d >= block_k || d > defer_above {
                self.resend.raise_range(tree_lo, tree_hi, d as u16);
            } else {
                self.repair.raise_range(tree_lo, tree_hi, d as u16);
            }
        };
        let mut apply_span = |lo: u32, hi: u32, d: u32| {
            if lo >= hi {
                return;
            }
            if hi > last && last_k != k {
                apply(last, last + 1, last_k, d);
                apply(lo, last, k, d);
            } else {
                apply(lo, hi, k, d);
            }
        };
        // Each range is applied around the protected blocks in it: both lists ascend, so
        // one pass over the two costs a tree update per piece.
        let mut p = 0;
        for r in ranges {
            let lo = r.first;
            let hi = (r.end().min(clip as u64)) as u32;
            if lo >= hi {
                continue;
            }
            let mut from = lo;
            while p < protected.len() && protected[p] < lo {
                p += 1;
            }
            while p < protected.len() && protected[p] < hi {
                apply_span(from, protected[p], r.deficit as u32);
                from = protected[p] + 1;
                p += 1;
            }
            apply_span(from, hi, r.deficit as u32);
        }
        unique as u64
    }
}

/// Repair or resend symbols in a row, at most, while the forward pass waits.
const FORWARD_SHARE_EVERY: u32 = 1;

/// Repair symbols to send for a largest deficit `d`: `d` plus what the typical client will
/// lose of the burst itself, rounded up, so one round usually suffices.
fn repair_burst_len(d: u32, loss_ppm: u32) -> u32 {
    d + (d as u64 * loss_ppm as u64).div_ceil(1_000_000) as u32
}

/// Proactive repair symbols for a block of `k` symbols: the mean loss plus `z` standard
/// deviations, with `z` a little below the expected maximum of as many normal variables as
/// there are clients (about sqrt(2 ln R)). The largest deficit among R clients is what the
/// block needs anyway, so this is rarely wasted, and it spares almost every client a round
/// trip (and the server almost every status report). The last blocks of the pass (`tail`)
/// get [`TAIL_Z10`] more: their round trip is no longer hidden behind later blocks.
fn proactive_count(k: u32, loss: LossView, tail: bool) -> u32 {
    let p = loss.loss_ppm as u64;
    if !loss.proactive || p == 0 {
        return 0;
    }
    let z10: u64 = match loss.active_clients {
        0..=1 => 10,
        2..=4 => 15,
        5..=9 => 18,
        10..=19 => 21,
        20..=49 => 24,
        50..=99 => 27,
        100..=199 => 29,
        200..=499 => 32,
        500..=999 => 34,
        _ => 36,
    } + if tail { TAIL_Z10 } else { 0 };
    let mean_e6 = k as u64 * p;
    let sd_e6 = isqrt(k as u64 * p * (1_000_000 - p.min(1_000_000)));
    (((mean_e6 + z10 * sd_e6 / 10) / 1_000_000) as u32).min(k / 4)
}

fn isqrt(v: u64) -> u64 {
    if v < 2 {
        return v;
    }
    let mut x = v;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + v / x) / 2;
    }
    x
}
