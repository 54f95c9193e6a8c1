//! The sender state machine (sans-IO).
//!
//! It never touches a socket, a clock or a random source. The shell feeds it the datagrams
//! that reach the control port with [`Sender::handle_datagram`] and asks what to send next
//! with [`Sender::poll_transmit`], passing the current time in microseconds. When it says
//! [`Transmit::Symbol`], the shell loads that block and calls [`Sender::build_symbol`],
//! which encodes the symbol into the packet buffer.
//!
//! Scheduling, in priority order:
//! 1. result acknowledgements; 2. the announce, on its cadence; 3. a burst in progress;
//! 4. repair bursts for blocks with a reported deficit (fresh repair symbols, as many as the
//!    largest deficit any client reported); 5. the forward pass (each block's source symbols,
//!    then a proactive number of repair symbols sized from the loss clients report);
//! 6. after the forward pass, the carousel: whole blocks that some client lacks entirely
//!    (late joiners, evicted blocks, very lossy clients) are sent again as source symbols.
//!
//! Whole-block resends wait for the forward pass to end, so a late joiner or a client far
//! behind never holds back the others.

use crate::deficit::DeficitTree;
use crate::digest::{DigestAccumulator, block_check, block_hash};
use crate::fec;
use crate::wire::{
    self, ANNOUNCE_LEN, Announce, AnnounceFlags, ClientPhase, DATA_HEADER_LEN, DATA_OVERHEAD,
    FRAMING_BYTES, FailReason, Geometry, MAX_ESI, PacketType, RESULT_ACK_LEN, ResultOutcome,
    WireError,
};

/// How the sender behaves. Times are in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct SenderConfig {
    /// Random session id (the shell draws it).
    pub session_id: u64,
    /// Image size and block geometry.
    pub geometry: Geometry,
    /// Complete once this many clients have verified (0: never by count).
    pub wanted_clients: u32,
    /// Start the forward pass once this many clients are present (0: at once).
    pub min_clients: u32,
    /// Start the forward pass at this time even with fewer clients (None: only by count).
    pub start_deadline_us: Option<u64>,
    /// Sending rate in bits per second (the ceiling when adapting).
    pub rate_bps: u64,
    /// Floor for the adapted rate (it never goes below a sixteenth of `rate_bps` either).
    pub min_rate_bps: u64,
    /// Lower the rate when most clients report heavy loss; raise it back when they do not.
    pub adapt_rate: bool,
    /// Send repair symbols with each block, sized from the reported loss.
    pub proactive_repair: bool,
    /// Token bucket depth in bytes (how far sending may run ahead of the rate).
    pub burst_bytes: u64,
    /// Time between announces once started.
    pub announce_interval_us: u64,
    /// Also announce after this many data packets, so a client that joins during a fast
    /// transfer binds within about a block instead of losing a whole interval of data.
    pub announce_every_packets: u32,
    /// A client not heard from for this long is declared lost.
    pub client_timeout_us: u64,
    /// How long a send may still be on its way to a client (in its socket buffer or
    /// queue): a report that predates it is not trusted for its block within this time.
    pub in_flight_us: u64,
    /// Shortest status interval the sender asks clients for, in milliseconds.
    pub report_interval_ms: u32,
    /// Status reports per second the sender is willing to handle from all clients together.
    pub report_budget_per_s: u32,
}

impl SenderConfig {
    /// Defaults for a LAN: 500 Mbit/s, adaptive, proactive repair, no start gate.
    pub fn new(session_id: u64, geometry: Geometry) -> Self {
        Self {
            session_id,
            geometry,
            wanted_clients: 0,
            min_clients: 0,
            start_deadline_us: None,
            rate_bps: 500_000_000,
            min_rate_bps: 1_000_000,
            adapt_rate: true,
            proactive_repair: true,
            burst_bytes: 64 * 1024,
            announce_interval_us: 100_000,
            announce_every_packets: 512,
            client_timeout_us: 10_000_000,
            in_flight_us: 300_000,
            report_interval_ms: 200,
            report_budget_per_s: 2000,
        }
    }
}

/// Where a client stands, as the sender sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// Reporting progress.
    Receiving,
    /// All blocks written; flushing or waiting for the digest.
    Finishing,
    /// Reported the image written and verified, with the right digest.
    Verified,
    /// Reported a failure.
    Failed(FailReason),
    /// Silent for longer than the client timeout before finishing.
    Lost,
}

impl ClientState {
    /// True for states that end a client's session (verified, failed or lost).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Verified | Self::Failed(_) | Self::Lost)
    }
}

/// One row of the client table.
#[derive(Clone, Copy, Debug)]
pub struct ClientInfo<A> {
    /// Random id the client chose.
    pub id: u64,
    /// Where its packets come from (the shell's address type).
    pub addr: A,
    /// First packet from it.
    pub first_heard_us: u64,
    /// Latest packet from it.
    pub last_heard_us: u64,
    /// Blocks it has written.
    pub blocks_done: u32,
    /// Loss it measured, parts per million.
    pub loss_ppm: u32,
    /// Status reports received.
    pub reports: u32,
    /// Blocks with a deficit in its latest report.
    pub blocks_lacking: u64,
    /// State.
    pub state: ClientState,
    /// Bytes written, from its result.
    pub bytes_written: u64,
    /// When it verified or failed.
    pub finished_us: u64,
}

/// The client table counted by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientTally {
    /// Rows in the table.
    pub seen: u32,
    /// Verified.
    pub verified: u32,
    /// Reported a failure.
    pub failed: u32,
    /// Declared lost.
    pub lost: u32,
}

impl ClientTally {
    /// Still receiving or finishing.
    pub fn active(&self) -> u32 {
        self.seen - self.verified - self.failed - self.lost
    }
}

/// Memory the sender works in, provided by the caller (sizes from [`SenderStorage::words`]).
pub struct SenderStorage<'a, A> {
    /// `DeficitTree::storage_len(blocks)` words: pending repair counts.
    pub repair_tree: &'a mut [u16],
    /// `DeficitTree::storage_len(blocks)` words: blocks to resend whole.
    pub resend_tree: &'a mut [u16],
    /// One per block: the next fresh repair symbol index.
    pub next_repair_esi: &'a mut [u16],
    /// One per block: the block check (first 4 bytes of its hash), filled by the first pass.
    pub block_checks: &'a mut [u32],
    /// The client table; its length is the most clients tracked.
    pub clients: &'a mut [Option<ClientInfo<A>>],
}

impl<A> SenderStorage<'_, A> {
    /// (tree words, per-block entries) needed for `geometry`.
    pub fn words(geometry: &Geometry) -> (usize, usize) {
        let n = geometry.block_count();
        (DeficitTree::storage_len(n), n as usize)
    }
}

/// Why the sender could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderError {
    /// A storage slice is shorter than the geometry needs.
    StorageTooSmall,
    /// The image is empty.
    EmptyImage,
    /// The shell asked to build a symbol out of order or with a wrong block buffer.
    BadBlock,
    /// Encoding failed.
    Fec(fec::FecError),
    /// Building the packet failed.
    Wire(WireError),
}

impl core::fmt::Display for SenderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::StorageTooSmall => f.write_str("sender storage too small for the image"),
            Self::EmptyImage => f.write_str("the image is empty"),
            Self::BadBlock => f.write_str("block buffer does not match the scheduled symbol"),
            Self::Fec(e) => write!(f, "erasure code: {e}"),
            Self::Wire(e) => write!(f, "packet: {e}"),
        }
    }
}

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmit<A> {
    /// Send an announce: build it with [`Sender::build_announce`].
    Announce,
    /// Send symbol `esi` of `block` with data sequence number `seq`:
    /// load the block and build it with [`Sender::build_symbol`].
    Symbol {
        /// Block index.
        block: u32,
        /// Encoding symbol index.
        esi: u16,
        /// Data sequence number.
        seq: u32,
    },
    /// Acknowledge a client's result, unicast to `to`: [`Sender::build_result_ack`].
    ResultAck {
        /// The client's address.
        to: A,
        /// Its id.
        client_id: u64,
    },
    /// Nothing to send before this time.
    Wait {
        /// Time to poll again, in microseconds.
        until_us: u64,
    },
}

/// What a datagram was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A status report from client table row `client` (`new`: first time heard).
    Status {
        /// Row in the client table.
        client: usize,
        /// The client was not in the table before.
        new: bool,
    },
    /// A result from client table row `client`.
    Result {
        /// Row in the client table.
        client: usize,
        /// Its state after the result (verified or failed).
        state: ClientState,
        /// The result repeats one already recorded.
        repeat: bool,
    },
}

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Malformed or damaged.
    Malformed(WireError),
    /// Another session's packet.
    ForeignSession,
    /// A packet type the server does not expect.
    Unexpected,
    /// The client table is full.
    TableFull,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct SenderStats {
    /// Data packets sent (all kinds).
    pub data_packets: u64,
    /// Source symbols sent in the forward pass.
    pub forward_packets: u64,
    /// Repair symbols sent proactively in the forward pass.
    pub proactive_packets: u64,
    /// Repair symbols sent for reported deficits.
    pub repair_packets: u64,
    /// Source symbols sent again by the carousel.
    pub resend_packets: u64,
    /// Announces sent.
    pub announces: u64,
    /// Bytes sent (UDP payload).
    pub bytes: u64,
    /// Status reports handled.
    pub status_reports: u64,
    /// Deficit ranges handled.
    pub ranges: u64,
    /// Results handled.
    pub results: u64,
    /// Datagrams dropped as malformed.
    pub malformed: u64,
    /// Datagrams of another session.
    pub foreign: u64,
    /// Datagrams of an unexpected type.
    pub unexpected: u64,
    /// Reports dropped because the client table was full.
    pub table_full: u64,
    /// Deficits ignored because a burst already on its way covers them.
    pub suppressed: u64,
}

#[derive(Clone, Copy, Debug)]
struct Burst {
    block: u32,
    next_esi: u16,
    left: u32,
    source: bool,
}

/// Where and when a block was last sent: the end of its forward transmission, or of a burst.
#[derive(Clone, Copy, Debug)]
struct SentMark {
    block: u32,
    seq: u32,
    at_us: u64,
}

impl SentMark {
    const NONE: SentMark = SentMark {
        block: u32::MAX,
        seq: 0,
        at_us: 0,
    };

    /// True when a report that had seen data up to `last_seq`, arriving at `now_us`, may
    /// predate this send: the send came after the report's view, and recently enough to
    /// still be on its way. Without the time bound a client that lost a whole burst (its
    /// view never moves past it, since nothing more is sent) would be ignored forever.
    fn unseen_by(&self, last_seq: u32, now_us: u64, window_us: u64) -> bool {
        self.block != u32::MAX
            && seq_after(self.seq, last_seq)
            && now_us.saturating_sub(self.at_us) < window_us
    }
}

const RECENT: usize = 256;
const FWD_ENDS: usize = 512;
const ACK_QUEUE: usize = 32;
const LOSS_ESTIMATE_EVERY_US: u64 = 100_000;
const RATE_ADAPT_EVERY_US: u64 = 500_000;

/// True when sequence number `a` comes after `b` (wrapping).
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
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

/// The sender. `A` is the shell's address type.
pub struct Sender<'a, A> {
    cfg: SenderConfig,
    repair: DeficitTree<'a>,
    resend: DeficitTree<'a>,
    next_repair_esi: &'a mut [u16],
    block_checks: &'a mut [u32],
    clients: &'a mut [Option<ClientInfo<A>>],
    blocks: u32,
    started: bool,
    closing: bool,
    seq: u32,
    // Forward pass position: `fwd_block` is the block being sent.
    fwd_block: u32,
    fwd_esi: u32,
    fwd_proactive_left: u32,
    burst: Option<Burst>,
    sweep: u32,
    recent: [SentMark; RECENT],
    recent_at: usize,
    // Where the forward pass ended each recent block (a ring; block u32::MAX is unused).
    fwd_ends: [SentMark; FWD_ENDS],
    fwd_ends_at: usize,
    acks: [(u64, Option<A>); ACK_QUEUE],
    ack_len: usize,
    hashed: u32,
    acc: DigestAccumulator,
    digest: Option<[u8; 32]>,
    next_announce_us: u64,
    data_since_announce: u32,
    credit: i64,
    credit_at_us: u64,
    rate_bps: u64,
    loss_estimate_ppm: u32,
    loss_estimated_at_us: Option<u64>,
    rate_adapted_at_us: u64,
    stats: SenderStats,
}

impl<'a, A: Copy + PartialEq> Sender<'a, A> {
    /// Builds a sender in `storage`; `now_us` starts the clocks.
    pub fn new(
        cfg: SenderConfig,
        storage: SenderStorage<'a, A>,
        now_us: u64,
    ) -> Result<Self, SenderError> {
        let n = cfg.geometry.block_count();
        if n == 0 {
            return Err(SenderError::EmptyImage);
        }
        let repair =
            DeficitTree::new(storage.repair_tree, n).ok_or(SenderError::StorageTooSmall)?;
        let resend =
            DeficitTree::new(storage.resend_tree, n).ok_or(SenderError::StorageTooSmall)?;
        if storage.next_repair_esi.len() < n as usize || storage.block_checks.len() < n as usize {
            return Err(SenderError::StorageTooSmall);
        }
        for (b, esi) in storage.next_repair_esi[..n as usize].iter_mut().enumerate() {
            *esi = cfg.geometry.block_k(b as u32) as u16;
        }
        storage.clients.fill(None);
        let mut s = Self {
            cfg,
            repair,
            resend,
            next_repair_esi: storage.next_repair_esi,
            block_checks: storage.block_checks,
            clients: storage.clients,
            blocks: n,
            started: false,
            closing: false,
            seq: 0,
            fwd_block: 0,
            fwd_esi: 0,
            fwd_proactive_left: 0,
            burst: None,
            sweep: 0,
            recent: [SentMark::NONE; RECENT],
            recent_at: 0,
            fwd_ends: [SentMark::NONE; FWD_ENDS],
            fwd_ends_at: 0,
            acks: [(0, None); ACK_QUEUE],
            ack_len: 0,
            hashed: 0,
            acc: DigestAccumulator::new(),
            digest: None,
            next_announce_us: now_us,
            data_since_announce: 0,
            credit: cfg.burst_bytes as i64,
            credit_at_us: now_us,
            rate_bps: cfg.rate_bps.max(1),
            loss_estimate_ppm: 0,
            loss_estimated_at_us: None,
            rate_adapted_at_us: now_us,
            stats: SenderStats::default(),
        };
        s.maybe_start(now_us);
        Ok(s)
    }

    /// Configuration in force.
    pub fn config(&self) -> &SenderConfig {
        &self.cfg
    }
    /// Counters.
    pub fn stats(&self) -> &SenderStats {
        &self.stats
    }
    /// The client table.
    pub fn clients(&self) -> impl Iterator<Item = &ClientInfo<A>> {
        self.clients.iter().flatten()
    }
    /// Client table row `row`, as named by [`Received`]. Rows are never reused within a
    /// session, so a row keeps naming the same client.
    pub fn client(&self, row: usize) -> Option<&ClientInfo<A>> {
        self.clients.get(row)?.as_ref()
    }
    /// Current sending rate in bits per second.
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }
    /// Median loss reported by receiving clients, parts per million.
    pub fn loss_estimate_ppm(&self) -> u32 {
        self.loss_estimate_ppm
    }
    /// True once the forward pass has started.
    pub fn started(&self) -> bool {
        self.started
    }
    /// Blocks the forward pass has finished.
    pub fn forward_blocks_done(&self) -> u32 {
        self.fwd_block
    }
    /// True once every block was sent at least once.
    pub fn forward_done(&self) -> bool {
        self.fwd_block >= self.blocks
    }
    /// The image digest, once the first pass has hashed every block.
    pub fn digest(&self) -> Option<&[u8; 32]> {
        self.digest.as_ref()
    }
    /// Data packets sent divided by the source symbols the image needs.
    pub fn wire_ratio(&self) -> f64 {
        self.stats.data_packets as f64 / self.cfg.geometry.source_symbols() as f64
    }
    /// The client table counted by state, in one pass.
    pub fn tally(&self) -> ClientTally {
        let mut t = ClientTally::default();
        for c in self.clients() {
            t.seen += 1;
            match c.state {
                ClientState::Verified => t.verified += 1,
                ClientState::Failed(_) => t.failed += 1,
                ClientState::Lost => t.lost += 1,
                ClientState::Receiving | ClientState::Finishing => {}
            }
        }
        t
    }
    /// Clients that verified.
    pub fn verified_count(&self) -> u32 {
        self.tally().verified
    }
    /// Clients that reported a failure.
    pub fn failed_count(&self) -> u32 {
        self.tally().failed
    }
    /// Clients that are still receiving or finishing.
    pub fn active_count(&self) -> u32 {
        self.tally().active()
    }
    /// True once the wanted number of clients has verified.
    pub fn is_complete(&self) -> bool {
        self.cfg.wanted_clients > 0 && self.verified_count() >= self.cfg.wanted_clients
    }
    /// True when there is nothing left to send: forward pass done, no deficit pending.
    pub fn is_idle(&self) -> bool {
        self.forward_done() && self.burst.is_none() && !self.repair.any() && !self.resend.any()
    }
    /// Marks the session as ending: announces from now on carry the closing flag.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// The report interval the sender asks of clients: longer with more clients, so that
    /// all reports together stay within the budget.
    pub fn report_interval_ms(&self) -> u32 {
        let clients = self.clients().count() as u64;
        let by_budget = clients * 1000 / self.cfg.report_budget_per_s.max(1) as u64;
        (self.cfg.report_interval_ms as u64)
            .max(by_budget)
            .clamp(10, 60_000) as u32
    }

    fn maybe_start(&mut self, now_us: u64) {
        if self.started {
            return;
        }
        let present = self.clients().count() as u32;
        let by_count = self.cfg.min_clients == 0 || present >= self.cfg.min_clients;
        let by_time = self.cfg.start_deadline_us.is_some_and(|t| now_us >= t);
        if by_count || by_time {
            self.started = true;
            self.next_announce_us = now_us;
        }
    }

    /// Handles one datagram that arrived on the control port from `from`.
    pub fn handle_datagram(
        &mut self,
        now_us: u64,
        from: A,
        pkt: &[u8],
    ) -> Result<Received, Dropped> {
        let packet = match wire::open(pkt) {
            Ok(x) => x,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(Dropped::Malformed(e));
            }
        };
        if packet.session() != self.cfg.session_id {
            self.stats.foreign += 1;
            return Err(Dropped::ForeignSession);
        }
        let r = match packet.ty() {
            PacketType::Status => self.handle_status(now_us, from, &packet),
            PacketType::Result => self.handle_result(now_us, from, &packet),
            _ => {
                self.stats.unexpected += 1;
                return Err(Dropped::Unexpected);
            }
        };
        if let Err(Dropped::Malformed(_)) = r {
            self.stats.malformed += 1;
        }
        if let Err(Dropped::TableFull) = r {
            self.stats.table_full += 1;
        }
        r
    }

    fn client_row(&mut self, now_us: u64, id: u64, from: A) -> Result<(usize, bool), Dropped> {
        if let Some(i) = self
            .clients
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.id == id))
        {
            return Ok((i, false));
        }
        let i = self
            .clients
            .iter()
            .position(|c| c.is_none())
            .ok_or(Dropped::TableFull)?;
        self.clients[i] = Some(ClientInfo {
            id,
            addr: from,
            first_heard_us: now_us,
            last_heard_us: now_us,
            blocks_done: 0,
            loss_ppm: 0,
            reports: 0,
            blocks_lacking: 0,
            state: ClientState::Receiving,
            bytes_written: 0,
            finished_us: 0,
        });
        Ok((i, true))
    }

    fn handle_status(
        &mut self,
        now_us: u64,
        from: A,
        packet: &wire::Packet<'_>,
    ) -> Result<Received, Dropped> {
        let st = packet.status().map_err(Dropped::Malformed)?;
        let (row, new) = self.client_row(now_us, st.head.client_id, from)?;
        self.stats.status_reports += 1;
        let mut lacking = 0u64;
        for r in st.ranges() {
            lacking += r.len as u64;
        }
        {
            let c = self.clients[row].as_mut().expect("row just found");
            c.addr = from;
            c.last_heard_us = now_us;
            c.reports += 1;
            c.blocks_done = st.head.blocks_done.min(self.blocks);
            c.loss_ppm = st.head.loss_ppm;
            c.blocks_lacking = lacking;
            if !matches!(c.state, ClientState::Verified | ClientState::Failed(_)) {
                c.state = match st.head.phase {
                    ClientPhase::Receiving => ClientState::Receiving,
                    ClientPhase::Finishing => ClientState::Finishing,
                };
            }
        }
        if new {
            self.maybe_start(now_us);
        }
        self.apply_deficits(now_us, &st);
        Ok(Received::Status { client: row, new })
    }

    /// Merges a report's deficits into the pending trees, except where a burst the client
    /// had not yet seen when it reported already covers the block.
    fn apply_deficits(&mut self, now_us: u64, st: &wire::Status<'_>) {
        // Blocks whose latest burst (or the current one) postdates the report keep their
        // pending counts: save them, apply the ranges, restore.
        let mut saved = [(0u32, 0u16, 0u16); RECENT + 1];
        let mut nsaved = 0;
        let in_ranges = |b: u32| st.ranges().any(|r| r.first <= b && (b as u64) < r.end());
        let mut protect = |b: u32, repair: &DeficitTree<'_>, resend: &DeficitTree<'_>| {
            if nsaved < saved.len() && saved[..nsaved].iter().all(|s| s.0 != b) && in_ranges(b) {
                saved[nsaved] = (b, repair.get(b), resend.get(b));
                nsaved += 1;
            }
        };
        let window = self.cfg.in_flight_us;
        for r in self
            .recent
            .iter()
            .filter(|r| r.unseen_by(st.head.last_seq, now_us, window))
        {
            protect(r.block, &self.repair, &self.resend);
        }
        if let Some(b) = self.burst {
            protect(b.block, &self.repair, &self.resend);
        }
        self.stats.suppressed += nsaved as u64;

        let clip = self.forward_clip(st.head.last_seq, now_us);
        let k = self.cfg.geometry.k;
        let last = self.blocks - 1;
        let last_k = self.cfg.geometry.block_k(last);
        // Large deficits (late joiners, evicted blocks, very lossy clients) wait for the end of
        // the forward pass so they hold back nobody; during the pass the bar is lower.
        let defer_above = if self.forward_done() { k / 4 } else { k / 8 }.max(1);
        for r in st.ranges() {
            self.stats.ranges += 1;
            let lo = r.first;
            let hi = (r.end().min(clip as u64)) as u32;
            if lo >= hi {
                continue;
            }
            let mut apply = |tree_lo: u32, tree_hi: u32, block_k: u32, d: u32| {
                let d = d.min(block_k);
                if d >= block_k || d > defer_above {
                    self.resend.raise_range(tree_lo, tree_hi, d as u16);
                } else {
                    self.repair.raise_range(tree_lo, tree_hi, d as u16);
                }
            };
            if hi > last && last_k != k {
                apply(last, last + 1, last_k, r.deficit as u32);
                apply(lo, last, k, r.deficit as u32);
            } else {
                apply(lo, hi, k, r.deficit as u32);
            }
        }
        for &(b, rep, res) in &saved[..nsaved] {
            self.repair.set(b, rep);
            self.resend.set(b, res);
        }
    }

    /// The first block whose forward transmission the client had not seen the end of when
    /// it reported (`last_seq`): blocks from there on may still be in its receive queue.
    fn forward_clip(&self, last_seq: u32, now_us: u64) -> u32 {
        let window = self.cfg.in_flight_us;
        let mut clip = self.fwd_block;
        let mut all_unseen = true;
        for m in self.fwd_ends.iter() {
            if m.unseen_by(last_seq, now_us, window) {
                clip = clip.min(m.block);
            } else {
                all_unseen = false;
            }
        }
        // Lagging further behind than the ring remembers: trust none of its ranges.
        if all_unseen {
            return 0;
        }
        clip
    }

    fn handle_result(
        &mut self,
        now_us: u64,
        from: A,
        packet: &wire::Packet<'_>,
    ) -> Result<Received, Dropped> {
        let res = packet.result().map_err(Dropped::Malformed)?;
        let (row, _) = self.client_row(now_us, res.client_id, from)?;
        self.stats.results += 1;
        let digest = self.digest;
        let c = self.clients[row].as_mut().expect("row just found");
        c.addr = from;
        c.last_heard_us = now_us;
        let repeat = matches!(c.state, ClientState::Verified | ClientState::Failed(_));
        if !repeat {
            c.bytes_written = res.bytes_written;
            c.finished_us = now_us;
            c.state = match res.outcome {
                ResultOutcome::Verified if digest == Some(res.digest) => ClientState::Verified,
                // The client believes it verified, but not against this image's digest.
                ResultOutcome::Verified => ClientState::Failed(FailReason::DigestMismatch),
                ResultOutcome::Failed(reason) => ClientState::Failed(reason),
            };
            if c.state == ClientState::Verified {
                c.blocks_done = self.blocks;
            }
        }
        let state = c.state;
        if self.ack_len < ACK_QUEUE {
            self.acks[self.ack_len] = (res.client_id, Some(from));
            self.ack_len += 1;
        }
        Ok(Received::Result {
            client: row,
            state,
            repeat,
        })
    }

    /// Marks clients silent for longer than the timeout as lost; returns how many changed.
    pub fn expire_clients(&mut self, now_us: u64) -> u32 {
        let mut n = 0;
        for c in self.clients.iter_mut().flatten() {
            if !c.state.is_final()
                && now_us.saturating_sub(c.last_heard_us) > self.cfg.client_timeout_us
            {
                c.state = ClientState::Lost;
                c.finished_us = now_us;
                n += 1;
            }
        }
        n
    }

    fn refill(&mut self, now_us: u64) {
        let dt = now_us.saturating_sub(self.credit_at_us);
        self.credit_at_us = now_us;
        let add = (dt as u128 * self.rate_bps as u128 / 8_000_000) as i64;
        self.credit = (self.credit + add).min(self.cfg.burst_bytes.max(2 * 9000) as i64);
    }

    fn spend(&mut self, bytes: usize) {
        self.credit -= bytes as i64 + FRAMING_BYTES as i64;
        self.stats.bytes += bytes as u64;
    }

    fn wait_for_credit(&self, bytes: usize, now_us: u64) -> u64 {
        let short = bytes as i64 + FRAMING_BYTES as i64 - self.credit;
        let us = (short.max(1) as u128 * 8_000_000).div_ceil(self.rate_bps as u128) as u64;
        now_us + us.max(1)
    }

    fn estimate_loss(&mut self, now_us: u64) {
        if self
            .loss_estimated_at_us
            .is_some_and(|t| now_us.saturating_sub(t) < LOSS_ESTIMATE_EVERY_US)
        {
            return;
        }
        self.loss_estimated_at_us = Some(now_us);
        // Median over receiving clients, by bisection on the value: no sorting, no heap.
        let active = || {
            self.clients
                .iter()
                .flatten()
                .filter(|c| !c.state.is_final())
        };
        let n = active().count() as u32;
        if n == 0 {
            self.loss_estimate_ppm = 0;
            return;
        }
        let (mut lo, mut hi) = (0u32, 1_000_000u32);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if active().filter(|c| c.loss_ppm <= mid).count() as u32 * 2 >= n {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.loss_estimate_ppm = lo;
    }

    fn adapt_rate(&mut self, now_us: u64) {
        if !self.cfg.adapt_rate
            || now_us.saturating_sub(self.rate_adapted_at_us) < RATE_ADAPT_EVERY_US
        {
            return;
        }
        self.rate_adapted_at_us = now_us;
        let loss = self.loss_estimate_ppm;
        // The median client decides: a slow link that every client shares lowers the rate;
        // one slow client does not (it catches up from the carousel). The bar is 10%: below
        // it, loss is more often random or starved receivers than a link the sender
        // overruns, and cutting would not help. The floor keeps a burst of such loss from
        // collapsing the rate altogether.
        if loss > 100_000 {
            // Down to a little under what the clients actually receive: an overrun link
            // converges in one step instead of many.
            let floor = self.cfg.min_rate_bps.max(self.cfg.rate_bps / 16);
            let delivered =
                self.rate_bps as u128 * (1_000_000 - loss.min(1_000_000)) as u128 / 1_000_000;
            self.rate_bps = ((delivered * 95 / 100) as u64).max(floor);
        } else if loss < 30_000 {
            self.rate_bps = (self.rate_bps + self.rate_bps / 16 + 1).min(self.cfg.rate_bps);
        }
    }

    /// Proactive repair symbols for a block of `k` symbols: the mean loss plus `z` standard
    /// deviations, with `z` a little below the expected maximum of as many normal variables
    /// as there are clients (about sqrt(2 ln R)). The largest deficit among R clients is what
    /// the block needs anyway, so this is rarely wasted, and it spares almost every client a
    /// round trip (and the server almost every status report).
    fn proactive_count(&self, k: u32) -> u32 {
        let p = self.loss_estimate_ppm as u64;
        if !self.cfg.proactive_repair || p == 0 {
            return 0;
        }
        let z10: u64 = match self.active_count() {
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
        };
        let mean_e6 = k as u64 * p;
        let sd_e6 = isqrt(k as u64 * p * (1_000_000 - p.min(1_000_000)));
        (((mean_e6 + z10 * sd_e6 / 10) / 1_000_000) as u32).min(k / 4)
    }

    fn next_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    fn remember_burst_end(&mut self, block: u32, seq: u32, now_us: u64) {
        self.recent[self.recent_at] = SentMark {
            block,
            seq,
            at_us: now_us,
        };
        self.recent_at = (self.recent_at + 1) % RECENT;
    }

    fn repair_esi(&mut self, block: u32) -> u16 {
        let k = self.cfg.geometry.block_k(block) as u16;
        let e = self.next_repair_esi[block as usize];
        // Fresh indices run out only after 65535 - k repairs of one block; then reuse.
        self.next_repair_esi[block as usize] = if e >= MAX_ESI { k } else { e + 1 };
        e
    }

    /// Repair symbols to send for a largest deficit `d`: `d` plus what the typical client
    /// will lose of the burst itself, rounded up, so one round usually suffices.
    fn repair_burst_len(&self, d: u32) -> u32 {
        d + (d as u64 * self.loss_estimate_ppm as u64).div_ceil(1_000_000) as u32
    }

    fn pick_burst(&mut self) -> Option<Burst> {
        if let Some(b) = self.repair.next_nonzero_wrapping(self.sweep) {
            let left = self.repair_burst_len(self.repair.get(b) as u32);
            self.repair.set(b, 0);
            self.sweep = b + 1;
            return Some(Burst {
                block: b,
                next_esi: 0,
                left,
                source: false,
            });
        }
        if self.forward_done()
            && let Some(b) = self.resend.next_nonzero_wrapping(self.sweep)
        {
            // A deficit above a quarter of the block is served by sending the block's
            // sources again: the client lacks most of them, and decoding hundreds of repair
            // symbols would cost it far more than the few duplicate sources cost the wire.
            let k = self.cfg.geometry.block_k(b);
            let want = (self.resend.get(b) as u32).max(self.repair.get(b) as u32);
            self.resend.set(b, 0);
            self.repair.set(b, 0);
            self.sweep = b + 1;
            let source = want > k / 4;
            let left = if source {
                k
            } else {
                self.repair_burst_len(want)
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

    /// Decides what to send now. Returns `Wait` when pacing or an empty schedule says to
    /// wait. Every other answer is a commitment: the shell must build and send it.
    pub fn poll_transmit(&mut self, now_us: u64) -> Transmit<A> {
        self.refill(now_us);
        self.maybe_start(now_us);
        self.estimate_loss(now_us);
        self.adapt_rate(now_us);

        if self.ack_len > 0 {
            self.ack_len -= 1;
            let (client_id, to) = self.acks[self.ack_len];
            self.spend(RESULT_ACK_LEN);
            return Transmit::ResultAck {
                to: to.expect("queued with an address"),
                client_id,
            };
        }
        let interval = if self.started {
            self.cfg.announce_interval_us
        } else {
            self.cfg.announce_interval_us.min(200_000)
        };
        let by_count = self.cfg.announce_every_packets > 0
            && self.data_since_announce >= self.cfg.announce_every_packets;
        if now_us >= self.next_announce_us || by_count {
            if self.credit < (ANNOUNCE_LEN as i64 + FRAMING_BYTES as i64) {
                return Transmit::Wait {
                    until_us: self.wait_for_credit(ANNOUNCE_LEN, now_us),
                };
            }
            self.next_announce_us = now_us + interval;
            self.data_since_announce = 0;
            self.spend(ANNOUNCE_LEN);
            self.stats.announces += 1;
            return Transmit::Announce;
        }
        if !self.started || self.closing {
            return Transmit::Wait {
                until_us: self.next_announce_us,
            };
        }
        let sym_len = self.cfg.geometry.symbol_size as usize + DATA_OVERHEAD;
        if self.credit < (sym_len as i64 + FRAMING_BYTES as i64) {
            return Transmit::Wait {
                until_us: self
                    .wait_for_credit(sym_len, now_us)
                    .min(self.next_announce_us),
            };
        }
        if self.burst.is_none() {
            self.burst = self.pick_burst();
        }
        if let Some(mut b) = self.burst {
            let esi = if b.source {
                b.next_esi
            } else {
                self.repair_esi(b.block)
            };
            b.next_esi += 1;
            b.left -= 1;
            let seq = self.next_seq();
            if b.source {
                self.stats.resend_packets += 1;
            } else {
                self.stats.repair_packets += 1;
            }
            if b.left == 0 {
                self.burst = None;
                self.remember_burst_end(b.block, seq, now_us);
            } else {
                self.burst = Some(b);
            }
            return self.commit_symbol(b.block, esi, seq, sym_len);
        }
        if !self.forward_done() {
            let block = self.fwd_block;
            let k = self.cfg.geometry.block_k(block);
            let seq = self.next_seq();
            let esi = if self.fwd_esi < k {
                let e = self.fwd_esi as u16;
                self.fwd_esi += 1;
                if self.fwd_esi == k {
                    self.fwd_proactive_left = self.proactive_count(k);
                }
                self.stats.forward_packets += 1;
                e
            } else {
                self.fwd_proactive_left -= 1;
                self.stats.proactive_packets += 1;
                self.repair_esi(block)
            };
            if self.fwd_esi == k && self.fwd_proactive_left == 0 {
                self.fwd_ends[self.fwd_ends_at] = SentMark {
                    block,
                    seq,
                    at_us: now_us,
                };
                self.fwd_ends_at = (self.fwd_ends_at + 1) % FWD_ENDS;
                self.fwd_block += 1;
                self.fwd_esi = 0;
            }
            return self.commit_symbol(block, esi, seq, sym_len);
        }
        Transmit::Wait {
            until_us: self.next_announce_us,
        }
    }

    fn commit_symbol(&mut self, block: u32, esi: u16, seq: u32, len: usize) -> Transmit<A> {
        self.spend(len);
        self.stats.data_packets += 1;
        self.data_since_announce += 1;
        Transmit::Symbol { block, esi, seq }
    }

    /// Builds the announce packet; returns its length.
    pub fn build_announce(&self, buf: &mut [u8]) -> Result<usize, SenderError> {
        let mut flags = AnnounceFlags::NONE;
        if self.started {
            flags |= AnnounceFlags::STARTED;
        }
        if self.closing {
            flags |= AnnounceFlags::CLOSING;
        }
        let a = Announce {
            geometry: self.cfg.geometry,
            flags,
            seq: self.seq,
            report_interval_ms: self.report_interval_ms(),
            digest: self.digest,
        };
        wire::write_announce(buf, self.cfg.session_id, &a).map_err(SenderError::Wire)
    }

    /// Builds the data packet for a [`Transmit::Symbol`]. `block_data` is the block's
    /// `block_k * symbol_size` bytes: its image bytes followed by zeros. The first time a
    /// block is built its hash is taken (blocks are first built in order by the forward
    /// pass), which feeds the image digest.
    pub fn build_symbol(
        &mut self,
        block: u32,
        esi: u16,
        seq: u32,
        block_data: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, SenderError> {
        let g = self.cfg.geometry;
        let k = g.block_k(block) as usize;
        let s = g.symbol_size as usize;
        if block >= self.blocks || block_data.len() != k * s || block > self.hashed {
            return Err(SenderError::BadBlock);
        }
        if buf.len() < DATA_OVERHEAD + s {
            return Err(SenderError::Wire(WireError::BufferTooSmall));
        }
        if block == self.hashed {
            let h = block_hash(block, &block_data[..g.block_len(block)]);
            self.block_checks[block as usize] = block_check(&h);
            self.acc.add(&h);
            self.hashed += 1;
            if self.hashed == self.blocks {
                self.digest = Some(self.acc.finish(&g));
            }
        }
        let check = self.block_checks[block as usize];
        wire::write_data_header(buf, self.cfg.session_id, block, esi, seq, check);
        let out = &mut buf[DATA_HEADER_LEN..DATA_HEADER_LEN + s];
        fec::encode_symbol(block_data, k, s, esi, out).map_err(SenderError::Fec)?;
        Ok(wire::seal_data(buf, s))
    }

    /// Builds the acknowledgement of a client's result.
    pub fn build_result_ack(&self, client_id: u64, buf: &mut [u8]) -> Result<usize, SenderError> {
        wire::write_result_ack(buf, self.cfg.session_id, client_id).map_err(SenderError::Wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DeficitRange, StatusHead};

    struct Store {
        a: Vec<u16>,
        b: Vec<u16>,
        esi: Vec<u16>,
        checks: Vec<u32>,
        clients: Vec<Option<ClientInfo<u32>>>,
    }

    fn store(g: &Geometry) -> Store {
        let (tree, n) = SenderStorage::<u32>::words(g);
        Store {
            a: vec![0; tree],
            b: vec![0; tree],
            esi: vec![0; n],
            checks: vec![0; n],
            clients: vec![None; 8],
        }
    }

    fn sender<'a>(s: &'a mut Store, cfg: SenderConfig) -> Sender<'a, u32> {
        let st = SenderStorage {
            repair_tree: &mut s.a,
            resend_tree: &mut s.b,
            next_repair_esi: &mut s.esi,
            block_checks: &mut s.checks,
            clients: &mut s.clients,
        };
        Sender::new(cfg, st, 0).unwrap()
    }

    fn status(session: u64, id: u64, last_seq: u32, ranges: &[DeficitRange]) -> Vec<u8> {
        let head = StatusHead {
            client_id: id,
            report_seq: 0,
            last_seq,
            blocks_done: 0,
            loss_ppm: 0,
            phase: ClientPhase::Receiving,
        };
        let mut buf = vec![0u8; 1500];
        let n = wire::write_status(&mut buf, session, &head, ranges).unwrap();
        buf.truncate(n);
        buf
    }

    /// Drives the sender with ample time; returns the symbols it schedules.
    fn drain(s: &mut Sender<'_, u32>, now: &mut u64, max: usize) -> Vec<(u32, u16)> {
        let mut out = vec![];
        for _ in 0..max * 4 {
            match s.poll_transmit(*now) {
                Transmit::Symbol { block, esi, .. } => out.push((block, esi)),
                Transmit::Wait { until_us } => *now = until_us.max(*now + 1),
                _ => {}
            }
            if out.len() == max {
                break;
            }
        }
        out
    }

    fn cfg(g: Geometry) -> SenderConfig {
        let mut c = SenderConfig::new(7, g);
        c.rate_bps = 1_000_000_000;
        c.proactive_repair = false;
        c.adapt_rate = false;
        c
    }

    #[test]
    fn forward_pass_sends_every_source_symbol_once_in_order() {
        let g = Geometry::new(64 * 10 + 5, 64, 4).unwrap(); // 3 blocks: 4, 4, 3 symbols
        let mut st = store(&g);
        let mut s = sender(&mut st, cfg(g));
        let mut now = 0;
        let syms = drain(&mut s, &mut now, 11);
        let want: Vec<(u32, u16)> = [
            (0, 0),
            (0, 1),
            (0, 2),
            (0, 3),
            (1, 0),
            (1, 1),
            (1, 2),
            (1, 3),
            (2, 0),
            (2, 1),
            (2, 2),
        ]
        .to_vec();
        assert_eq!(syms, want);
        assert!(s.forward_done());
        assert!(s.is_idle());
    }

    #[test]
    fn deficit_is_max_over_clients_and_repairs_are_fresh() {
        let g = Geometry::new(64 * 64, 64, 32).unwrap();
        let mut st = store(&g);
        let mut s = sender(&mut st, cfg(g));
        let mut now = 0;
        drain(&mut s, &mut now, 64);
        let r = |d| {
            [DeficitRange {
                first: 0,
                len: 1,
                deficit: d,
            }]
        };
        s.handle_datagram(now, 1, &status(7, 1, 100, &r(2)))
            .unwrap();
        s.handle_datagram(now, 2, &status(7, 2, 100, &r(3)))
            .unwrap();
        s.handle_datagram(now, 3, &status(7, 3, 100, &r(1)))
            .unwrap();
        let syms = drain(&mut s, &mut now, 3);
        assert_eq!(syms, vec![(0, 32), (0, 33), (0, 34)]);
        assert!(s.is_idle());
        // A later report that predates that burst (last_seq before it) is suppressed.
        s.handle_datagram(now, 1, &status(7, 1, 7, &r(2))).unwrap();
        assert!(s.is_idle());
        // One that saw the burst and still lacks a symbol gets a fresh one.
        s.handle_datagram(now, 1, &status(7, 1, 200, &r(1)))
            .unwrap();
        assert_eq!(drain(&mut s, &mut now, 1), vec![(0, 35)]);
    }

    #[test]
    fn whole_block_resends_wait_for_the_end_of_the_forward_pass() {
        let g = Geometry::new(64 * 4 * 6, 64, 4).unwrap(); // 6 blocks
        let mut st = store(&g);
        let mut s = sender(&mut st, cfg(g));
        let mut now = 0;
        drain(&mut s, &mut now, 12); // blocks 0..3 sent
        // A late joiner lacks blocks 0..3 entirely (and claims 3.. too, which is clipped).
        let late = [DeficitRange {
            first: 0,
            len: 6,
            deficit: 4,
        }];
        s.handle_datagram(now, 9, &status(7, 9, 12, &late)).unwrap();
        let rest = drain(&mut s, &mut now, 12 + 12);
        // First the forward pass finishes blocks 3..6, then blocks 0..3 come again as sources.
        let fwd: Vec<(u32, u16)> = (3..6).flat_map(|b| (0..4).map(move |e| (b, e))).collect();
        let again: Vec<(u32, u16)> = (0..3).flat_map(|b| (0..4).map(move |e| (b, e))).collect();
        assert_eq!(&rest[..12], &fwd[..]);
        assert_eq!(&rest[12..], &again[..]);
        assert!(s.is_idle());
    }

    #[test]
    fn pacing_holds_the_rate() {
        let g = Geometry::new(1408 * 512 * 4, 1408, 512).unwrap();
        let mut st = store(&g);
        let mut c = cfg(g);
        c.rate_bps = 100_000_000;
        let mut s = sender(&mut st, c);
        let mut now = 0;
        drain(&mut s, &mut now, 2000);
        let bits = s.stats().bytes as f64 * 8.0;
        let rate = bits / (now as f64 / 1e6);
        // Burst credit lets the start run slightly ahead; over 2000 packets it must be close.
        assert!(rate < 100e6 * 1.05 && rate > 90e6, "rate {rate}");
    }

    #[test]
    fn results_are_checked_against_the_digest_and_acked() {
        let g = Geometry::new(64 * 4, 64, 4).unwrap();
        let mut st = store(&g);
        let mut s = sender(&mut st, cfg(g));
        let block = vec![5u8; 256];
        let mut buf = vec![0u8; 2000];
        let mut now = 0;
        loop {
            match s.poll_transmit(now) {
                Transmit::Symbol { block: b, esi, seq } => {
                    s.build_symbol(b, esi, seq, &block, &mut buf).unwrap();
                }
                Transmit::Wait { until_us } => now = until_us,
                _ => {}
            }
            if s.forward_done() {
                break;
            }
        }
        let digest = *s.digest().unwrap();
        let mut res = wire::ResultReport {
            client_id: 1,
            outcome: ResultOutcome::Verified,
            bytes_written: 256,
            digest,
        };
        let n = wire::write_result(&mut buf, 7, &res).unwrap();
        let r = s.handle_datagram(now, 1, &buf[..n]).unwrap();
        assert_eq!(
            r,
            Received::Result {
                client: 0,
                state: ClientState::Verified,
                repeat: false
            }
        );
        res.client_id = 2;
        res.digest[0] ^= 1;
        let n = wire::write_result(&mut buf, 7, &res).unwrap();
        let r = s.handle_datagram(now, 2, &buf[..n]).unwrap();
        assert_eq!(
            r,
            Received::Result {
                client: 1,
                state: ClientState::Failed(FailReason::DigestMismatch),
                repeat: false
            }
        );
        let acks: Vec<_> = (0..2).map(|_| s.poll_transmit(now)).collect();
        assert!(acks.contains(&Transmit::ResultAck {
            to: 1,
            client_id: 1
        }));
        assert!(acks.contains(&Transmit::ResultAck {
            to: 2,
            client_id: 2
        }));
        assert_eq!((s.verified_count(), s.failed_count()), (1, 1));
    }

    #[test]
    fn foreign_and_malformed_datagrams_are_counted_not_trusted() {
        let g = Geometry::new(64 * 4, 64, 4).unwrap();
        let mut st = store(&g);
        let mut s = sender(&mut st, cfg(g));
        assert_eq!(
            s.handle_datagram(0, 1, &status(8, 1, 0, &[])),
            Err(Dropped::ForeignSession)
        );
        assert!(matches!(
            s.handle_datagram(0, 1, b"garbage"),
            Err(Dropped::Malformed(_))
        ));
        let mut pkt = status(7, 1, 0, &[]);
        pkt[20] ^= 0xff;
        assert_eq!(
            s.handle_datagram(0, 1, &pkt),
            Err(Dropped::Malformed(WireError::BadCrc))
        );
        assert_eq!((s.stats().foreign, s.stats().malformed), (1, 2));
        assert_eq!(s.clients().count(), 0);
    }

    #[test]
    fn start_waits_for_min_clients_or_deadline() {
        let g = Geometry::new(64 * 4, 64, 4).unwrap();
        let mut st = store(&g);
        let mut c = cfg(g);
        c.min_clients = 2;
        c.start_deadline_us = Some(5_000_000);
        let mut s = sender(&mut st, c);
        assert!(!s.started());
        s.handle_datagram(10, 1, &status(7, 1, 0, &[])).unwrap();
        assert!(!s.started());
        assert!(matches!(s.poll_transmit(1_000_000), Transmit::Announce));
        assert!(matches!(s.poll_transmit(1_000_001), Transmit::Wait { .. }));
        s.handle_datagram(20, 2, &status(7, 2, 0, &[])).unwrap();
        assert!(s.started());
        let mut st2 = store(&g);
        let mut s2 = sender(&mut st2, c);
        s2.poll_transmit(5_000_000);
        assert!(s2.started());
    }
}
