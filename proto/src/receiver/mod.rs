//! The receiver state machine (sans-IO), in fixed memory.
//!
//! Call order, in a loop (as quinn-proto's `Connection`):
//! 1. [`Receiver::handle_datagram`] for every datagram from the data port
//!    ([`Receiver::handle_datagram_at`] where the kernel stamped when it arrived); act on
//!    the [`Event`] it returns (check the target's size when bound, ...).
//! 2. [`Receiver::handle_timeout`] when the time from [`Receiver::poll_timeout`] has come:
//!    the silence timeout and the wait for the server's acknowledgement end here, and it
//!    says which one ([`Expired`]).
//! 3. [`Receiver::poll_write`], then [`Receiver::write_done`] once the data or the zeros
//!    it hands out are written, until it has nothing more.
//! 4. When [`Receiver::needs_flush`] says so, flush the target, then [`Receiver::flushed`].
//! 5. [`Receiver::poll_transmit`] until it returns nothing, sending each packet to the
//!    server.
//! 6. [`Receiver::poll_timeout`]: sleep until then, or until a datagram arrives.
//!
//! Stop when [`Receiver::finished`]; [`Receiver::outcome`] says how it went. Time comes in
//! as microseconds and randomness (for report jitter) as an argument.
//!
//! Memory is what the caller provides and never grows: two bits per block of the image
//! (`done`, and `zero` for blocks the server's zero map names), a fixed pool of block slots
//! ([`slots`](self) file) and one block of output for decompression. Source symbols land at
//! their position in a slot; repair symbols fill positions of missing sources; once a slot
//! holds the block's coded k symbols it is decoded in place, checked against the block check
//! carried in every data packet (a zstd block after it is decompressed), and handed out for
//! writing (`writes`). Blocks are written in any order (or strictly in order for a stdout
//! sink, through the same slots as a bounded window). Status reports are built in `report`,
//! the silence and acknowledgement timers kept in `timers`.

mod loss;
mod report;
mod slots;
mod timers;
mod writes;

pub use loss::LossWindow;
pub use slots::{MAX_SLOTS, Slot};
pub use timers::Expired;
pub use writes::{Decompress, DecompressError, Write};

use crate::digest::{DigestAccumulator, ZeroHashes};
use crate::fec;
use crate::wire::auth::{Direction, MacKey, PresharedKey, ReceiveKey, SessionMacs};
use crate::wire::{
    self, AnnounceFlags, FailReason, Geometry, PacketType, ResultOutcome, ResultReport, WireError,
};
use slots::SlotState;

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
    /// Time before the first repeat of the result while the server has not acknowledged
    /// it; each next repeat waits twice as long, up to `result_repeat_us`.
    pub result_first_repeat_us: u64,
    /// Time between repeats of the result until the server acknowledges it, at most.
    pub result_repeat_us: u64,
    /// Repeats of the result before giving up on an acknowledgement.
    pub result_repeats: u32,
    /// Give up when no session is announced within this long of the start, or, once
    /// bound, when no new symbol (before the first one: no packet of the session) arrives
    /// for this long: [`FailReason::Timeout`].
    pub silence_timeout_us: u64,
    /// After the outcome, stop waiting for the server's acknowledgement after this long
    /// even if repeats remain.
    pub ack_wait_us: u64,
    /// A "closing" announce ends this client only once no data came for this long (and
    /// some had come): a forged one while data flows changes nothing.
    pub closing_quiet_us: u64,
    /// With a key, only tagged packets that verify under it are used and every packet out
    /// is tagged (docs/PROTOCOL.md section 9); without, tagged packets are dropped.
    pub key: Option<PresharedKey>,
    /// The operator's pinned image digest: a session announcing another digest is refused
    /// before it is bound (or failed, once bound), and the written image must hash to it.
    pub pinned_digest: Option<[u8; 32]>,
    /// Erasure-code kernel that decodes the blocks (only speed depends on it).
    pub engine: fec::Engine,
    /// A new session of the same image (same geometry and image digest) is taken over,
    /// keeping every block written, only once the bound session has sent nothing for this
    /// long: a live server announces every 100 ms, so a forged announce cannot pull
    /// clients away from it.
    pub resume_quiet_us: u64,
}

/// The longest report interval a receiver follows, whatever the announce asks: with the
/// jitter (up to 1.5 intervals) reports still come every 6 s, well within the server's
/// client timeout (10 s by default), so a forged announce cannot make clients look lost.
pub const MAX_REPORT_INTERVAL_US: u64 = 4_000_000;

/// The shortest report interval a receiver follows while the server probes the link's rate
/// (it asks for 5 ms then, the least the wire carries): within [`PROBING_WINDOW_US`] of
/// the session's first data packet.
pub const MIN_REPORT_INTERVAL_US: u64 = wire::MIN_REPORT_INTERVAL_MS as u64 * 1000;
/// How long after the first data packet reports may come as often as
/// [`MIN_REPORT_INTERVAL_US`]: probing takes well under a second.
pub const PROBING_WINDOW_US: u64 = 2_000_000;
/// The shortest report interval a receiver follows after that: a forged announce asking
/// for 1 ms cannot make every client flood the server for more than the probing window
/// (the server asks for 100 ms or more then).
pub const MIN_STEADY_REPORT_INTERVAL_US: u64 = 100_000;

/// The longest a datagram is believed to have waited in its socket (see
/// [`arrival_from_stamp`]).
pub const MAX_SOCKET_WAIT_US: u64 = 10_000_000;

/// A datagram's arrival on the receiver's clock `now_us` (what
/// [`Receiver::handle_datagram_at`] takes), from the kernel's receive stamp `stamp_us` on the
/// wall clock read as `wall_us` at `now_us`. Without a stamp (0), or with one from the
/// future or over [`MAX_SOCKET_WAIT_US`] old (the wall clock was set meanwhile), the read
/// time stands in.
pub fn arrival_from_stamp(now_us: u64, wall_us: u64, stamp_us: u64) -> u64 {
    match wall_us.checked_sub(stamp_us) {
        Some(waited) if stamp_us > 0 && waited <= MAX_SOCKET_WAIT_US => {
            now_us.saturating_sub(waited)
        }
        _ => now_us,
    }
}

/// A status report's `last_seq_age_us`: how long before `now_us` its newest packet arrived
/// (0 before any packet), at most what 32 bits hold.
pub fn last_seq_age_us(now_us: u64, newest_arrived_us: Option<u64>) -> u32 {
    newest_arrived_us
        .map_or(0, |at| now_us.saturating_sub(at))
        .min(u32::MAX as u64) as u32
}

impl ReceiverConfig {
    /// How long the result waits for an acknowledgement after its send number `sent` (0:
    /// the first) before it is sent again: twice as long after each, from
    /// `result_first_repeat_us` (at least 1 ms) up to `result_repeat_us`.
    pub fn result_wait_us(&self, sent: u32) -> u64 {
        self.result_first_repeat_us
            .max(1_000)
            .saturating_mul(1 << sent.min(16))
            .min(self.result_repeat_us)
    }

    /// Defaults for a LAN.
    pub fn new(client_id: u64) -> Self {
        Self {
            client_id,
            in_order: false,
            holdoff_us: 20_000,
            rereport_us: 150_000,
            heartbeat_us: 1_000_000,
            // Soon: an acknowledgement lost on the way (a full queue in front of a slow
            // link drops it as any packet; 1% loss at 48 clients lost one in five of seven
            // races) costs the client this much: with 100 ms the client that repeated was
            // the last of the room in four, 14-71 ms after the one before it. A repeat
            // before a late acknowledgement (behind a 50 ms queue) costs one more result
            // datagram, acknowledged again.
            result_first_repeat_us: 20_000,
            result_repeat_us: 100_000,
            result_repeats: 50,
            silence_timeout_us: 60_000_000,
            ack_wait_us: 30_000_000,
            closing_quiet_us: 1_000_000,
            key: None,
            pinned_digest: None,
            engine: fec::Engine::detect(),
            resume_quiet_us: 2_000_000,
        }
    }
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
    /// One bit per block, like `done`: blocks the server's zero map names.
    pub zero: &'a mut [u64],
    /// One block of decompressed output: `k * symbol_size` bytes.
    pub out: &'a mut [u8],
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
    /// The server is ending the session before this client finished: it announced
    /// "closing" and data has stopped.
    ServerClosing,
    /// The bound session went silent and a new session of the same image (same geometry
    /// and image digest: a restarted server) was announced: the receiver moved to it,
    /// keeping every block written, and reports only what it still lacks.
    Resumed {
        /// The new session's id.
        session: u64,
        /// Blocks kept from the earlier session.
        blocks_kept: u32,
    },
    /// Two different image digests were announced for the bound session: two servers use
    /// one session id, or someone forged an announce. The receiver failed with
    /// [`FailReason::DigestConflict`]; nothing about this machine's disk is implied.
    DigestConflict,
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
    /// An announce of a session this receiver cannot use (an empty image, or one larger
    /// than its memory): it waits for a usable one.
    Unusable,
    /// An announce whose image digest differs from the pinned one.
    PinMismatch,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReceiverStats {
    /// Keyed: packets whose tag did not verify (forged, modified, another key).
    pub bad_tag: u64,
    /// Keyed: packets without a tag (a keyless server).
    pub untagged: u64,
    /// Keyless: tagged packets (a server that requires a key).
    pub needs_key: u64,
    /// Announces refused because their digest differs from the pinned one.
    pub pin_refused: u64,
    /// Data packets of the bound session accepted into a slot.
    pub symbols: u64,
    /// Blocks the server's zero maps named (each counted once).
    pub zero_blocks: u64,
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
    /// Slots whose first claim was outvoted by later symbols and started over.
    pub claims_overturned: u64,
    /// Data sequence numbers that jumped too far ahead to be believed (not used for loss).
    pub seq_jumps_ignored: u64,
    /// Announces of sessions this receiver cannot use (ignored).
    pub unusable: u64,
    /// Status reports built.
    pub reports: u64,
    /// Results built.
    pub results: u64,
    /// Times the receiver moved to a new session of the same image (server restarts).
    pub resumes: u64,
}

#[derive(Clone, Copy, Debug)]
struct Session {
    id: u64,
    geometry: Geometry,
    digest: Option<[u8; 32]>,
    report_interval_us: u64,
    blocks: u32,
    slots: usize,
    // Content hashes of zero blocks, computed at their first use.
    zero_hashes: ZeroHashes,
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
    zero: &'a mut [u64],
    out: &'a mut [u8],
    pending: Option<writes::Pending>,
    zero_cursor: u32,
    zeros_unwritten: u32,
    session: Option<Session>,
    done_count: u32,
    next_in_order: u32,
    acc: DigestAccumulator,
    bytes_written: u64,
    highest_seq: Option<u32>,
    /// When the data packet `highest_seq` arrived (see [`Receiver::handle_datagram_at`]).
    highest_seq_arrived_us: u64,
    // The latest sequence number that jumped too far ahead, and how many in a row followed
    // the jump closely (it is believed after a few).
    seq_jump: Option<(u32, u8)>,
    // The latest "closing" announce of the bound session.
    closing_heard_us: Option<u64>,
    // One past the highest block seen in data, and when data last came: blocks beyond the
    // front are not reported missing while data flows (the server has not sent them yet).
    front: u32,
    last_data_us: u64,
    /// The session's first data packet (the start of the probing window).
    first_data_us: Option<u64>,
    loss: LossWindow,
    // Data packets since the last report: the sender's rate control compares it with what
    // it sent in between.
    interval_received: u32,
    next_report_us: u64,
    report_gate_us: u64,
    // The report gate for deficits: set only by reports that carried ranges, so that the
    // reports sent each interval for the rate control alone do not delay a deficit.
    deficit_gate_us: u64,
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
    // With a key: the bound session's MAC keys.
    macs: Option<SessionMacs>,
    stats: ReceiverStats,
    timers: timers::Timers,
    // When the bound session last sent a valid packet (for taking over a new session).
    last_session_packet_us: u64,
    // Blocks were kept from an earlier session of the same image (status flag).
    resumed: bool,
}

/// Why [`Receiver::new`] refused its storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageError {
    /// More slots than [`MAX_SLOTS`].
    TooManySlots {
        /// Slots given.
        given: usize,
    },
}

impl<'a> Receiver<'a> {
    /// Builds a receiver in `storage`, listening from `now_us` (the silence timeout counts
    /// from here until a session is announced).
    pub fn new(
        cfg: ReceiverConfig,
        storage: ReceiverStorage<'a>,
        now_us: u64,
    ) -> Result<Self, StorageError> {
        if storage.slots.len() > MAX_SLOTS {
            return Err(StorageError::TooManySlots {
                given: storage.slots.len(),
            });
        }
        storage.slots.fill(Slot::FREE);
        Ok(Self {
            cfg,
            done: storage.done,
            pool: storage.pool,
            slots: storage.slots,
            esi_at: storage.esi_at,
            scratch: storage.scratch,
            zero: storage.zero,
            out: storage.out,
            pending: None,
            zero_cursor: 0,
            zeros_unwritten: 0,
            session: None,
            done_count: 0,
            next_in_order: 0,
            acc: DigestAccumulator::new(),
            bytes_written: 0,
            highest_seq: None,
            highest_seq_arrived_us: 0,
            seq_jump: None,
            closing_heard_us: None,
            front: 0,
            last_data_us: 0,
            first_data_us: None,
            loss: LossWindow::default(),
            interval_received: 0,
            next_report_us: 0,
            report_gate_us: 0,
            deficit_gate_us: 0,
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
            macs: None,
            stats: ReceiverStats::default(),
            timers: timers::Timers::new(now_us),
            last_session_packet_us: now_us,
            resumed: false,
        })
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
    /// The image digest this client computed (all zero until every block is written and
    /// flushed).
    pub fn computed_digest(&self) -> [u8; 32] {
        self.computed_digest
    }
    /// Image bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }
    /// Loss this receiver measured, parts per million.
    pub fn loss_ppm(&self) -> u32 {
        self.loss.ppm()
    }
    /// Block slots in use for this session.
    pub fn slot_count(&self) -> usize {
        self.session.map_or(0, |s| s.slots)
    }
    /// The outcome, once known.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }
    /// True once the server acknowledged the result.
    pub fn acked(&self) -> bool {
        self.acked
    }
    /// True when the result was acknowledged or repeated as often as configured.
    pub fn finished(&self) -> bool {
        // Before binding there is no session to report to: a local failure ends at once.
        self.outcome.is_some()
            && (self.acked
                || self.result_sent >= self.cfg.result_repeats
                || self.session.is_none()
                || self.timers.ack_wait_over)
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

    /// Handles one datagram from the data port, read at `now_us`.
    pub fn handle_datagram(&mut self, now_us: u64, pkt: &[u8]) -> Result<Event, Dropped> {
        self.handle_datagram_at(now_us, now_us, pkt)
    }

    /// Handles one datagram from the data port that reached this host at `arrived_us`
    /// (the kernel's receive timestamp, on the clock of `now_us`; a later one counts as
    /// `now_us`) and was read at `now_us`. Each status report says how long before it was
    /// built its newest data packet arrived, and the server takes that off: the time a
    /// datagram waited in the socket for this process to run (a busy machine) must not
    /// read as a queue in front of the link, nor bunch the packets' arrivals.
    pub fn handle_datagram_at(
        &mut self,
        now_us: u64,
        arrived_us: u64,
        pkt: &[u8],
    ) -> Result<Event, Dropped> {
        let r = self.handle_inner(now_us, arrived_us.min(now_us), pkt);
        if !matches!(r, Err(Dropped::Malformed(_) | Dropped::ForeignSession)) {
            self.note_session_packet(now_us);
            self.last_session_packet_us = now_us;
        }
        match r {
            Err(Dropped::Malformed(WireError::BadTag)) => self.stats.bad_tag += 1,
            Err(Dropped::Malformed(WireError::Unauthenticated)) => self.stats.untagged += 1,
            Err(Dropped::Malformed(WireError::NeedsKey)) => self.stats.needs_key += 1,
            Err(Dropped::Malformed(_)) => self.stats.malformed += 1,
            Err(Dropped::PinMismatch) => self.stats.pin_refused += 1,
            Err(Dropped::ForeignSession) => self.stats.foreign += 1,
            Err(Dropped::NotBound) => self.stats.unbound += 1,
            Err(Dropped::Unexpected) => self.stats.unexpected += 1,
            Err(Dropped::Duplicate) => self.stats.duplicates += 1,
            Err(Dropped::NoSlot) => self.stats.no_slot += 1,
            Err(Dropped::CheckConflict) => self.stats.check_conflicts += 1,
            Err(Dropped::Unusable) => self.stats.unusable += 1,
            Ok(_) => {}
        }
        r
    }

    fn handle_inner(&mut self, now_us: u64, arrived_us: u64, pkt: &[u8]) -> Result<Event, Dropped> {
        let opened = match (&self.cfg.key, &self.macs) {
            (None, _) => wire::open(pkt),
            (Some(psk), macs) => {
                wire::open_keyed(pkt, |session, sender| match (&self.session, macs) {
                    (Some(s), Some(m)) if s.id == session => m.receive_key(sender),
                    _ => ReceiveKey::Derived(MacKey::derive(
                        psk,
                        session,
                        Direction::FromServer,
                        sender,
                    )),
                })
            }
        };
        let packet = opened.map_err(Dropped::Malformed)?;
        if let Some(s) = &self.session
            && s.id != packet.session()
        {
            if packet.ty() == PacketType::Announce
                && let Ok(a) = packet.announce()
                && self.may_resume(now_us, &a)
            {
                return Ok(self.resume(now_us, packet.session(), &a));
            }
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
                self.handle_data(now_us, arrived_us, &d)
                    .map(|_| Event::Nothing)
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
            PacketType::ZeroMap => {
                let m = packet.zero_map().map_err(Dropped::Malformed)?;
                let Some(s) = self.session else {
                    return Err(Dropped::NotBound);
                };
                if m.span_end > s.blocks {
                    return Err(Dropped::Malformed(WireError::BadField("span")));
                }
                for r in m.ranges() {
                    self.mark_zero(r.first, r.end() as u32);
                }
                Ok(Event::Nothing)
            }
            PacketType::Status | PacketType::Result => Err(Dropped::Unexpected),
        }
    }

    /// The report interval followed now: the announced one, but not below the floor of
    /// the moment (short only within the probing window).
    fn report_interval_now(&self, now_us: u64, announced_us: u64) -> u64 {
        let probing = self
            .first_data_us
            .is_none_or(|t| now_us.saturating_sub(t) < PROBING_WINDOW_US);
        let floor = match probing {
            true => MIN_REPORT_INTERVAL_US,
            false => MIN_STEADY_REPORT_INTERVAL_US,
        };
        announced_us.max(floor)
    }

    fn handle_announce(
        &mut self,
        now_us: u64,
        id: u64,
        a: &wire::Announce,
    ) -> Result<Event, Dropped> {
        let interval = (a.report_interval_ms as u64 * 1000)
            .clamp(MIN_REPORT_INTERVAL_US, MAX_REPORT_INTERVAL_US);
        if let (Some(pin), Some(announced)) = (self.cfg.pinned_digest, a.digest)
            && pin != announced
        {
            // Another image: never bind to it. A bound session is not failed for it: the pin
            // says which digest is real, and without a key anyone can announce another one.
            // What this client writes must still hash to the pin at the end.
            return Err(Dropped::PinMismatch);
        }
        if let Some(s) = &mut self.session {
            if s.geometry != a.geometry {
                return Err(Dropped::Malformed(WireError::BadField("geometry changed")));
            }
            if let (Some(old), Some(new)) = (s.digest, a.digest)
                && old != new
            {
                // Which of the two is the real one cannot be told without a key: stop
                // rather than write an image that may not be the one wanted.
                if self.outcome.is_none() {
                    self.fail(now_us, FailReason::DigestConflict);
                    return Ok(Event::DigestConflict);
                }
                return Err(Dropped::Malformed(WireError::BadField("digest changed")));
            }
            if s.digest.is_none() {
                s.digest = a.digest;
            }
            if interval < s.report_interval_us {
                // A shorter interval takes effect now, not after the longer one runs out.
                let jittered_max = interval + interval / 2;
                self.report_gate_us = self.report_gate_us.min(
                    self.last_report_us
                        .map_or(now_us, |t| t.saturating_add(jittered_max)),
                );
                self.next_report_us = self.next_report_us.min(self.report_gate_us.max(now_us));
            }
            s.report_interval_us = interval;
            // The announce's sequence number is not evidence of data seen: a server that
            // batches its sends may announce before the data it numbered has left.
            if a.flags.contains(AnnounceFlags::CLOSING) {
                self.closing_heard_us = Some(now_us);
                if self.closing_now(now_us) {
                    return Ok(Event::ServerClosing);
                }
            }
            return Ok(Event::Nothing);
        }
        let g = a.geometry;
        let blocks = g.block_count();
        if blocks == 0 {
            // Nothing to write and nothing to verify: never a session worth binding to.
            return Err(Dropped::Unusable);
        }
        let (slot_bytes, slot_esis, scratch) = Self::slot_needs(&g);
        let slots = (self.pool.len() / slot_bytes)
            .min(self.esi_at.len() / slot_esis)
            .min(self.slots.len());
        let min_slots = if self.cfg.in_order { 2 } else { 1 };
        if blocks as usize > self.done.len().min(self.zero.len()) * 64
            || slots < min_slots
            || self.scratch.len() < scratch
            || (self.out.len() as u64) < g.block_bytes()
        {
            return Ok(Event::Unsupported { geometry: g });
        }
        let words = (blocks as usize).div_ceil(64);
        self.done[..words].fill(0);
        self.zero[..words].fill(0);
        self.session = Some(Session {
            id,
            geometry: g,
            digest: a.digest,
            report_interval_us: interval,
            blocks,
            slots,
            zero_hashes: ZeroHashes::new(),
        });
        self.macs = self
            .cfg
            .key
            .map(|k| SessionMacs::client(&k, id, self.cfg.client_id));
        self.next_report_us = now_us;
        self.loss.restart(a.seq);
        Ok(Event::Bound {
            session: id,
            geometry: g,
        })
    }

    /// True when announce `a` of another session may replace the bound one: the bound
    /// session has been silent for `resume_quiet_us`, no outcome is known yet, and the new
    /// session proves it sends the same image: the same geometry and the same image digest,
    /// announced by both. Without both digests the image cannot be proven the same, and
    /// blocks of two images are never mixed: the receiver stays bound (and times out).
    fn may_resume(&self, now_us: u64, a: &wire::Announce) -> bool {
        let Some(s) = &self.session else { return false };
        self.outcome.is_none()
            && !a.flags.contains(AnnounceFlags::CLOSING)
            && now_us.saturating_sub(self.last_session_packet_us) >= self.cfg.resume_quiet_us
            && s.geometry == a.geometry
            && s.digest.is_some()
            && s.digest == a.digest
    }

    /// Moves to session `id` of the same image: blocks written (and decoded blocks waiting
    /// to be written) are kept; partial blocks are dropped (their symbols were counted
    /// against the old session's sends); sequence numbers, the data front and the report
    /// timers start again, so the first report names every block still lacking.
    fn resume(&mut self, now_us: u64, id: u64, a: &wire::Announce) -> Event {
        for m in self.slots.iter_mut() {
            if m.state == SlotState::Filling {
                *m = Slot::FREE;
            }
        }
        if let Some(s) = &mut self.session {
            s.id = id;
            s.report_interval_us = (a.report_interval_ms as u64 * 1000)
                .clamp(MIN_REPORT_INTERVAL_US, MAX_REPORT_INTERVAL_US);
        }
        // A keyed session's keys are the session's: the new server checks reports under its
        // own session id. The packet counter goes on from the old session's, so no nonce
        // repeats even if this client later comes back to a session it used before.
        self.macs = match (&self.cfg.key, &self.macs) {
            (Some(k), Some(old)) => Some(old.client_moved(k, id, self.cfg.client_id)),
            (Some(k), None) => Some(SessionMacs::client(k, id, self.cfg.client_id)),
            (None, _) => None,
        };
        self.highest_seq = None;
        self.seq_jump = None;
        self.closing_heard_us = None;
        // The new server probes the rate again.
        self.first_data_us = None;
        self.loss.restart(a.seq);
        self.front = 0;
        self.last_data_us = 0;
        self.next_report_us = now_us;
        self.report_gate_us = now_us;
        self.missing_reported_us = None;
        self.report_cursor = 0;
        self.resumed = true;
        self.last_session_packet_us = now_us;
        self.timers.restart_silence(now_us);
        self.stats.resumes += 1;
        Event::Resumed {
            session: id,
            blocks_kept: self.done_count,
        }
    }

    /// True once this receiver kept blocks from an earlier session of the same image.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// True when a "closing" announce was heard after the last data, data had come before
    /// and has stopped for the quiet time, and this client still needs the server (one
    /// with every block written finishes on its own).
    pub(super) fn closing_now(&self, now_us: u64) -> bool {
        self.closing_deadline().is_some_and(|t| now_us >= t)
    }

    /// When a "closing" heard after the last data ends this client, if data stays away.
    pub(super) fn closing_deadline(&self) -> Option<u64> {
        let c = self.closing_heard_us?;
        let s = self.session?;
        (self.outcome.is_none()
            && self.done_count < s.blocks
            && self.highest_seq.is_some()
            && c >= self.last_data_us)
            .then(|| self.last_data_us.saturating_add(self.cfg.closing_quiet_us))
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
        let Some(want) = self.cfg.pinned_digest.or(s.digest) else {
            return;
        };
        self.computed_digest = self.acc.finish(&s.geometry);
        self.outcome = Some(if self.computed_digest == want {
            Outcome::Verified { digest: want }
        } else {
            Outcome::Failed(FailReason::DigestMismatch)
        });
        self.next_result_us = now_us;
        self.timers.outcome_us = now_us;
    }

    /// Ends this client with a failure (target too small, I/O error, timeout, ...). The
    /// result is still reported to the server.
    pub fn fail(&mut self, now_us: u64, reason: FailReason) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome::Failed(reason));
            self.next_result_us = now_us;
            self.timers.outcome_us = now_us;
        }
    }

    /// Builds the next packet for the server into `buf`, if one is due. `random` jitters
    /// the report timer.
    pub fn poll_transmit(&mut self, now_us: u64, random: u32, buf: &mut [u8]) -> Option<usize> {
        let n = self.poll_transmit_untagged(now_us, random, buf)?;
        match &self.macs {
            Some(m) => m.sign(buf, n).ok(),
            None => Some(n),
        }
    }

    fn poll_transmit_untagged(
        &mut self,
        now_us: u64,
        random: u32,
        buf: &mut [u8],
    ) -> Option<usize> {
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
                    Outcome::Failed(r) => ResultOutcome::Failed(r),
                },
                bytes_written: self.bytes_written,
                digest: self.computed_digest,
            };
            self.next_result_us = now_us + self.cfg.result_wait_us(self.result_sent);
            self.result_sent += 1;
            self.stats.results += 1;
            return wire::write_result(buf, s.id, &r).ok();
        }
        self.poll_status(now_us, random, buf)
    }
}
