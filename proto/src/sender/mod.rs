//! The sender state machine (sans-IO).
//!
//! It never touches a socket, a clock or a random source: the shell feeds it what arrives
//! and the time, in microseconds, and sends what it asks for. One API, in the shape of
//! quinn-proto's `Connection`, with each concern in its own file: the configuration
//! (`config`), the client table and which results await an acknowledgement (`clients`),
//! the pacer (`pacer`), rate control (`rate`), the schedule of data symbols (`schedule`),
//! deficit suppression (`suppression`), the block map and image digest (`blockmap`), the timers
//! (`timers`), the end-of-session rule (`ending`), the events the shell drains (`events`)
//! and the packets it builds (`build`).
//!
//! The shell gives every block in order with [`Sender::block_ready`], ahead of sending
//! (all at once from a prepared side file, or as its reading and compressing pipeline
//! produces them); the forward pass never goes past the blocks given.
//!
//! Call order, each time the shell wakes:
//! 1. [`Sender::block_ready`] for blocks its pipeline finished;
//! 2. [`Sender::handle_datagram`] for every datagram that reached the control port;
//! 3. [`Sender::handle_timeout`] (it runs whatever is due: the start deadline, the loss
//!    estimate and rate adaptation, client expiry, the end of the session; calling it when
//!    nothing is due is harmless);
//! 4. [`Sender::poll_transmit`] until it returns `None`, building and sending each answer:
//!    [`Transmit::Symbol`] with [`Sender::build_symbol`] (the shell loads the block's coded
//!    bytes), [`Transmit::Announce`] with [`Sender::build_announce`],
//!    [`Transmit::ZeroMap`] with [`Sender::build_zero_map`], [`Transmit::ResultAck`] with
//!    [`Sender::build_result_ack`];
//! 5. [`Sender::poll_event`] until `None`, to tell the operator what changed;
//! 6. [`Sender::poll_timeout`]: sleep until that time or until a datagram arrives. `None`
//!    means the session is over ([`Event::Ended`] was the last event).
//!
//! Transmissions, in priority order: result acknowledgements; the announce, on its cadence;
//! then data symbols as the schedule decides (see `schedule`), paced at the current rate.

mod blockmap;
mod build;
mod clients;
mod config;
mod ending;
mod events;
mod latest;
mod pacer;
mod rate;
mod schedule;
mod suppression;
mod timers;

#[cfg(test)]
mod tests;

pub use blockmap::BlockSource;
pub use clients::{ClientInfo, ClientState, ClientTally, ROWS_PER_ADDRESS, SourceAddr};
pub use config::{DEFAULT_TIMEOUT_AFTER_FORWARD_US, SenderConfig, SenderError, SenderStorage};
pub use events::{EVENT_DRAIN_EVERY, EVENT_QUEUE, Event, SessionEnd};
pub use rate::{ClientRate, PROBE_START_BPS, RateReason, RateSample, tcp_throughput_bps};
pub use schedule::Phase;

use blockmap::BlockMap;
use clients::{Change, ClientTable, Expired, NoRow};
use ending::EndFacts;
use events::EventQueue;
use pacer::{LOSS_ESTIMATE_EVERY_US, Pacer};
use rate::{Decide, RateControl};
use schedule::{LossView, Schedule, SymbolKind};
use suppression::Suppression;
use timers::{Timer, TimerTable};

use crate::wire::auth::{SessionMacs, TRAILER_LEN};
use crate::wire::{
    self, ANNOUNCE_LEN, DATA_OVERHEAD, FRAMING_BYTES, FailReason, PacketType, RESULT_ACK_LEN,
    ResultOutcome, STANDARD_DATAGRAM, WireError,
};

/// Announces before the start come at least this often, so clients bind quickly.
const WAITING_ANNOUNCE_US: u64 = 200_000;
/// While closing, a result heard keeps the session open this much longer: a client whose
/// acknowledgement was lost on the way repeats its result after 20, 40 and 80 ms, then every
/// 100 ms, and must find the server still there (else it repeats for 5 s more, unanswered).
const CLOSING_AFTER_RESULT_US: u64 = 250_000;
/// Closing lasts at most this long, whatever results keep coming (forged ones too).
const CLOSING_MAX_US: u64 = 2_000_000;

/// What to send now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmit<A> {
    /// An announce: build it with [`Sender::build_announce`].
    Announce,
    /// A zero map (the next span of the image's zero blocks): build it with
    /// [`Sender::build_zero_map`].
    ZeroMap,
    /// Symbol `esi` of `block` with data sequence number `seq`: load the block and build it
    /// with [`Sender::build_symbol`].
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
    /// The sender's address already holds the most rows one address may (ids made up by
    /// one sender cannot fill the table).
    AddressFull,
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
    /// Zero map packets sent.
    pub zero_maps: u64,
    /// Result acknowledgements sent.
    pub result_acks: u64,
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
    /// Keyed sessions: datagrams whose tag did not verify (forged, modified, another key).
    pub bad_tag: u64,
    /// Keyed sessions: datagrams without a tag.
    pub untagged: u64,
    /// Keyless sessions: tagged datagrams (a client holding a key).
    pub needs_key: u64,
    /// Datagrams of an unexpected type.
    pub unexpected: u64,
    /// Reports dropped because the client table was full.
    pub table_full: u64,
    /// Reports whose ranges were ignored: their client reported again sooner than a client
    /// does (an eighth of the report interval).
    pub ranges_too_soon: u64,
    /// Reports dropped because their address held the most rows one address may.
    pub address_full: u64,
    /// "Verified" results from clients never heard in a status report (not counted as
    /// verified: a real client reports status from the moment it binds).
    pub unheard_verified: u64,
    /// Deficits ignored because a burst already on its way covers them.
    pub suppressed: u64,
    /// Reports whose ranges were left for after the forward pass: their client was left
    /// behind (its link takes well under the rate).
    pub ranges_deferred: u64,
    /// Events raised.
    pub events: u64,
    /// Events not queued because the shell had not drained the queue.
    pub events_dropped: u64,
}

/// The sender. `A` is the shell's address type.
pub struct Sender<'a, A> {
    cfg: SenderConfig,
    clients: ClientTable<'a, A>,
    schedule: Schedule<'a>,
    suppression: Suppression,
    map: BlockMap<'a>,
    // The next cycling zero map starts here; one goes out after each announce while there
    // are zero blocks, and one as soon as new zero blocks were given.
    zero_map_cursor: u32,
    // Blocks before this were in a zero map at least once.
    zero_map_fresh: u32,
    // A zero block a client reported missing: the next zero map starts there.
    zero_map_hint: Option<u32>,
    zero_map_due: bool,
    pacer: Pacer,
    rate: RateControl,
    // What the latest status report told the rate control, and how many reports did.
    last_rate_sample: RateSample,
    rate_samples: u64,
    loss_estimated_at_us: Option<u64>,
    events: EventQueue,
    timers: TimerTable,
    data_since_announce: u32,
    started_us: Option<u64>,
    forward_done_us: Option<u64>,
    last_busy_us: u64,
    end: Option<SessionEnd>,
    /// When closing began.
    closing_since_us: u64,
    decided_tally: ClientTally,
    ended: bool,
    // With a key: this session's MAC keys (tag out, check in).
    macs: Option<SessionMacs>,
    stats: SenderStats,
}

impl<'a, A: SourceAddr> Sender<'a, A> {
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
        let schedule = Schedule::new(
            cfg.geometry,
            storage.repair_tree,
            storage.resend_tree,
            storage.next_repair_esi,
        )
        .ok_or(SenderError::StorageTooSmall)?;
        let map = BlockMap::new(cfg.geometry, storage.coded_len, storage.block_checks)
            .ok_or(SenderError::StorageTooSmall)?;
        let mut timers = TimerTable::default();
        timers.set(Timer::Announce, now_us);
        if let Some(t) = cfg.start_deadline_us {
            timers.set(Timer::Start, t);
        }
        let mut s = Self {
            cfg,
            clients: ClientTable::new(storage.clients, cfg.client_timeout_us),
            schedule,
            suppression: Suppression::new(cfg.in_flight_us),
            map,
            zero_map_cursor: 0,
            zero_map_fresh: 0,
            zero_map_hint: None,
            zero_map_due: false,
            pacer: Pacer::new(cfg.burst_bytes, now_us),
            rate: RateControl::new(
                cfg.rate_bps,
                cfg.start_rate_bps,
                cfg.min_rate_bps,
                cfg.adapt_rate,
                cfg.fair,
                (cfg.geometry.symbol_size as usize + DATA_OVERHEAD) as u64,
                now_us,
            ),
            last_rate_sample: RateSample::default(),
            rate_samples: 0,
            loss_estimated_at_us: None,
            events: EventQueue::new(),
            timers,
            data_since_announce: 0,
            started_us: None,
            forward_done_us: None,
            last_busy_us: now_us,
            end: None,
            closing_since_us: 0,
            decided_tally: ClientTally::default(),
            ended: false,
            macs: cfg.key.map(|k| SessionMacs::server(&k, cfg.session_id)),
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
        self.clients.iter()
    }
    /// Client table row `row`, as named by [`Event`]s. Rows are reused only when the table
    /// is full, and then only rows of lost clients.
    pub fn client(&self, row: usize) -> Option<&ClientInfo<A>> {
        self.clients.get(row)
    }
    /// The client table counted by state.
    pub fn tally(&self) -> ClientTally {
        self.clients.tally()
    }
    /// Current sending rate in bits per second.
    pub fn rate_bps(&self) -> u64 {
        self.rate.rate_bps()
    }
    /// Why the rate last changed.
    /// What the latest status report told the rate control, and the count of reports that
    /// did (a shell's trace prints the sample when the count moves).
    pub fn last_rate_sample(&self) -> (u64, &RateSample) {
        (self.rate_samples, &self.last_rate_sample)
    }

    pub fn rate_reason(&self) -> RateReason {
        self.rate.reason()
    }
    /// Median loss reported by receiving clients, parts per million.
    pub fn loss_estimate_ppm(&self) -> u32 {
        self.rate.loss_estimate_ppm()
    }
    /// Where the session is.
    pub fn phase(&self) -> Phase {
        self.schedule.phase()
    }
    /// True once the forward pass has started.
    pub fn started(&self) -> bool {
        self.started_us.is_some()
    }
    /// When the forward pass started.
    pub fn started_at_us(&self) -> Option<u64> {
        self.started_us
    }
    /// Blocks the forward pass has finished.
    pub fn forward_blocks_done(&self) -> u32 {
        self.schedule.forward_blocks_done()
    }
    /// True once every block was sent at least once.
    pub fn forward_done(&self) -> bool {
        self.schedule.forward_done()
    }
    /// The image digest, once every block was given.
    pub fn digest(&self) -> Option<&[u8; 32]> {
        self.map.digest()
    }
    /// Tells the digest of the whole image before its blocks are given (the shell read
    /// it ahead): it is announced at once, so clients of an earlier session of this image
    /// can resume, and the blocks given must add up to it, else
    /// [`SenderError::DigestChanged`] (the image changed while it was served).
    pub fn expect_digest(&mut self, digest: [u8; 32]) {
        self.map.expect(digest);
    }
    /// True when the forward pass was skipped because every client at the start resumed.
    pub fn forward_skipped(&self) -> bool {
        self.schedule.forward_skipped()
    }
    /// Blocks given so far with [`Sender::block_ready`].
    pub fn blocks_ready(&self) -> u32 {
        self.map.ready()
    }
    /// Zero blocks among those given.
    pub fn zero_blocks(&self) -> u32 {
        self.map.zeros()
    }

    /// Gives block `b` (blocks come in order 0, 1, 2, ...): what it holds, and for data
    /// blocks the content hash of its image bytes and how it is coded.
    pub fn block_ready(&mut self, b: u32, src: BlockSource) -> Result<(), SenderError> {
        self.map.add(b, src)?;
        if src == BlockSource::Zero {
            // Announced before the data that follows it goes out.
            self.zero_map_due = true;
        }
        self.schedule.block_ready(b, self.map.coded_k(b));
        if self.schedule.skip_blocks(&self.map) {
            self.first_pass_done(self.last_busy_us);
        }
        Ok(())
    }

    fn first_pass_done(&mut self, now_us: u64) {
        self.forward_done_us = Some(now_us);
        self.push_event(Event::FirstPassDone);
    }
    /// Data packets sent divided by the source symbols the image needs.
    pub fn wire_ratio(&self) -> f64 {
        self.stats.data_packets as f64 / self.cfg.geometry.source_symbols() as f64
    }
    /// Clients that verified.
    pub fn verified_count(&self) -> u32 {
        self.tally().verified
    }
    /// True when there is nothing left to send: forward pass done, no deficit pending.
    pub fn is_idle(&self) -> bool {
        self.schedule.is_idle()
    }
    /// How the session was decided, once it is (closing or over).
    pub fn session_end(&self) -> Option<SessionEnd> {
        self.end
    }
    /// The client table counted by state when the session was decided: what the outcome is
    /// worded from (clients heard while closing change the table, not the decision).
    pub fn decided_tally(&self) -> Option<ClientTally> {
        self.end.map(|_| self.decided_tally)
    }
    /// True once the session is over: nothing more will be sent.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The report interval the sender asks of clients: longer with more clients still
    /// receiving (lost, failed and verified ones send no more reports), so that all
    /// reports together stay within the budget; shorter while the rate is probed upward, so
    /// that the first congestion is heard of before the rate doubles again; never so long
    /// that a client reporting at 1.5 intervals (the most jitter) comes near the client
    /// timeout.
    pub fn report_interval_ms(&self) -> u32 {
        let clients = self.tally().active() as u64;
        let by_budget = (clients * 1000).div_ceil(self.cfg.report_budget_per_s.max(1) as u64);
        let cap_ms = (self.cfg.client_timeout_us / 3 / 1000).clamp(
            wire::MIN_REPORT_INTERVAL_MS as u64,
            wire::MAX_REPORT_INTERVAL_MS as u64,
        );
        let wanted = if self.rate.in_startup() {
            self.cfg
                .report_interval_ms
                .min(rate::STARTUP_REPORT_INTERVAL_MS)
        } else {
            self.cfg.report_interval_ms
        };
        (wanted as u64)
            .max(by_budget)
            .clamp(wire::MIN_REPORT_INTERVAL_MS as u64, cap_ms) as u32
    }

    /// Data packets of `packet_bytes` sent in two report intervals at `rate_bps`: what goes
    /// out while a client's deficit of the block before comes back (the proactive repair's
    /// tail margin).
    fn tail_symbols(&self, rate_bps: u64, packet_bytes: usize) -> u32 {
        let bits = rate_bps as u128 * 2 * self.report_interval_ms() as u128 / 1000;
        (bits / (packet_bytes as u128 * 8)).min(u32::MAX as u128) as u32
    }

    /// Ends the session early (an operator's interrupt): closing announces go out for the
    /// closing time, then the session is over.
    pub fn close(&mut self, now_us: u64) {
        self.begin_closing(now_us, SessionEnd::Stopped);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    fn push_event(&mut self, e: Event) {
        self.events.push(e);
        self.stats.events = self.events.total();
        self.stats.events_dropped = self.events.dropped();
    }

    fn maybe_start(&mut self, now_us: u64) {
        if self.schedule.phase() != Phase::Waiting {
            return;
        }
        let present = self.tally().seen;
        let by_count = self.cfg.min_clients == 0 || present >= self.cfg.min_clients;
        let by_time = self.timers.is_due(Timer::Start, now_us);
        if by_count || by_time {
            self.schedule.start();
            if self.clients.all_resumed() {
                self.schedule.skip_forward();
            }
            self.started_us = Some(now_us);
            self.timers.stop(Timer::Start);
            self.timers.set(Timer::Announce, now_us);
            self.push_event(Event::Started);
        }
    }

    /// Handles one datagram that arrived on the control port from `from`.
    pub fn handle_datagram(&mut self, now_us: u64, from: A, pkt: &[u8]) -> Result<(), Dropped> {
        self.handle_datagram_arrived(now_us, now_us, from, pkt)
    }

    /// Handles one datagram that the kernel received at `arrived_us` (its receive
    /// timestamp, on the same clock as `now_us` and not after it): the rate control times
    /// the report by its arrival, not by when a busy loop got to read it, which would look
    /// like a queue on the path.
    pub fn handle_datagram_arrived(
        &mut self,
        now_us: u64,
        arrived_us: u64,
        from: A,
        pkt: &[u8],
    ) -> Result<(), Dropped> {
        let arrived_us = arrived_us.min(now_us);
        let opened = match &self.macs {
            Some(m) => wire::open_keyed(pkt, |_, sender| m.receive_key(sender)),
            None => wire::open(pkt),
        };
        let packet = match opened {
            Ok(p) => p,
            Err(e) => {
                match e {
                    WireError::BadTag => self.stats.bad_tag += 1,
                    WireError::Unauthenticated => self.stats.untagged += 1,
                    WireError::NeedsKey => self.stats.needs_key += 1,
                    _ => self.stats.malformed += 1,
                }
                return Err(Dropped::Malformed(e));
            }
        };
        if packet.session() != self.cfg.session_id {
            self.stats.foreign += 1;
            return Err(Dropped::ForeignSession);
        }
        let r = match packet.ty() {
            PacketType::Status => self.handle_status(now_us, arrived_us, from, &packet),
            PacketType::Result => self.handle_result(now_us, from, &packet),
            _ => {
                self.stats.unexpected += 1;
                return Err(Dropped::Unexpected);
            }
        };
        match r {
            Err(Dropped::Malformed(_)) => self.stats.malformed += 1,
            Err(Dropped::TableFull) => self.stats.table_full += 1,
            Err(Dropped::AddressFull) => self.stats.address_full += 1,
            _ => {}
        }
        r
    }

    fn client_row(&mut self, now_us: u64, id: u64, from: A) -> Result<usize, Dropped> {
        let (row, new) = self
            .clients
            .find_or_add(now_us, id, from)
            .map_err(|e| match e {
                NoRow::Full => Dropped::TableFull,
                NoRow::AddressFull => Dropped::AddressFull,
            })?;
        if new {
            self.push_event(Event::ClientJoined { row });
        }
        Ok(row)
    }

    fn handle_status(
        &mut self,
        now_us: u64,
        arrived_us: u64,
        from: A,
        packet: &wire::Packet<'_>,
    ) -> Result<(), Dropped> {
        let st = packet.status().map_err(Dropped::Malformed)?;
        let seen = self.tally().seen;
        let row = self.client_row(now_us, st.head.client_id, from)?;
        self.stats.status_reports += 1;
        let lacking = st.ranges().map(|r| r.len as u64).sum();
        let blocks = self.cfg.geometry.block_count();
        let tenths = |done: u32| (done as u64 * 10 / blocks as u64) as u8;
        let before = self.clients.get(row).map_or(0, |c| tenths(c.blocks_done));
        let change = self
            .clients
            .record_status(row, now_us, from, &st.head, blocks, lacking);
        let after = self.clients.get(row).map_or(0, |c| tenths(c.blocks_done));
        if after > before {
            self.push_event(Event::ClientProgressed { row, tenths: after });
        }
        if let Some(c) = self.clients.get_mut(row) {
            self.last_rate_sample = self.rate.on_report(&mut c.rate, &st.head, arrived_us);
            self.rate_samples += 1;
        }
        if let Some(ch) = change {
            self.client_changed(ch);
        }
        if self.tally().seen > seen {
            self.maybe_start(now_us);
        }
        // Half the shortest spacing a client keeps (a quarter interval) between reports.
        let spacing_us = self.report_interval_ms() as u64 * 1000 / 8;
        if st.range_count() > 0 && !self.clients.ranges_due(row, now_us, spacing_us) {
            self.stats.ranges_too_soon += 1;
            return Ok(());
        }
        // A client left behind (its link has taken well under the rate the bulk takes for
        // several reports) is served once the others are done: repairs for it now would
        // take their rate for what its link cannot pass anyway.
        if st.range_count() > 0
            && self.rate.others_receiving()
            && self
                .clients
                .get(row)
                .is_some_and(|c| self.rate.left_behind(&c.rate))
        {
            self.stats.ranges_deferred += 1;
            return Ok(());
        }
        self.stats.suppressed += self.schedule.apply_deficits(now_us, &st, &self.suppression);
        // A client that reports a zero block missing has not heard of it: the next zero map
        // starts there rather than wherever the cycle is (a whole cycle of a fragmented map
        // can take many seconds).
        let ready = self.map.ready();
        if self.zero_map_hint.is_none()
            && let Some(r) = st
                .ranges()
                .find(|r| r.first < ready && self.map.is_zero(r.first))
        {
            self.zero_map_hint = Some(r.first);
            self.zero_map_due = true;
        }
        self.stats.ranges += st.range_count() as u64;
        Ok(())
    }

    fn handle_result(
        &mut self,
        now_us: u64,
        from: A,
        packet: &wire::Packet<'_>,
    ) -> Result<(), Dropped> {
        let res = packet.result().map_err(Dropped::Malformed)?;
        let row = self.client_row(now_us, res.client_id, from)?;
        self.stats.results += 1;
        if self.end.is_some()
            && let Some(at) = self.timers.get(Timer::Closing)
        {
            let last = self.closing_since_us + self.cfg.closing_us.max(CLOSING_MAX_US);
            let at = at.max(now_us + CLOSING_AFTER_RESULT_US).min(last);
            self.timers.set(Timer::Closing, at);
        }
        let reported = self.clients.get(row).is_some_and(|c| c.reports > 0);
        let state = match res.outcome {
            // A client reports status from the moment it binds: a "verified" from an id
            // never heard before is not believed (it is still acknowledged).
            ResultOutcome::Verified if !reported => {
                self.stats.unheard_verified += 1;
                self.clients.ack_later(row, from);
                return Ok(());
            }
            ResultOutcome::Verified if self.digest() == Some(&res.digest) => ClientState::Verified,
            // The client believes it verified, but not against this image's digest.
            ResultOutcome::Verified => ClientState::Failed(FailReason::DigestMismatch),
            ResultOutcome::Failed(reason) => ClientState::Failed(reason),
        };
        let blocks = self.cfg.geometry.block_count();
        if let Some(ch) =
            self.clients
                .record_result(row, now_us, from, state, res.bytes_written, blocks)
        {
            self.client_changed(ch);
        }
        self.clients.ack_later(row, from);
        Ok(())
    }

    fn client_changed(&mut self, ch: Change) {
        let row = ch.row;
        let e = match (ch.from, ch.to) {
            (Some(ClientState::Lost), s) if !s.is_final() => Event::ClientBack { row },
            (_, ClientState::Finishing) => Event::ClientFinishing { row },
            (_, ClientState::Verified) => Event::ClientVerified { row },
            (_, ClientState::Failed(reason)) => Event::ClientFailed { row, reason },
            (_, ClientState::Lost) => Event::ClientLost { row },
            (_, ClientState::Receiving) => return,
        };
        self.push_event(e);
    }

    fn end_facts(&self) -> EndFacts {
        let heard = self.clients.last_heard_us().unwrap_or(0);
        let tally = self.tally();
        EndFacts {
            tally,
            lost_may_return_until_us: self
                .clients
                .last_lost_us()
                .filter(|_| tally.lost > 0)
                .map(|t| t.saturating_add(self.cfg.lost_grace_us)),
            started_us: self.started_us,
            forward_done_us: self.forward_done_us,
            idle: self.is_idle(),
            last_activity_us: heard
                .max(self.last_busy_us)
                .max(self.forward_done_us.unwrap_or(0)),
        }
    }

    fn begin_closing(&mut self, now_us: u64, end: SessionEnd) {
        if self.end.is_some() {
            return;
        }
        self.end = Some(end);
        self.closing_since_us = now_us;
        self.decided_tally = self.tally();
        self.schedule.close();
        self.timers.stop(Timer::Start);
        self.timers
            .set(Timer::Closing, now_us + self.cfg.closing_us);
        self.push_event(Event::Closing(end));
    }

    /// Runs whatever is due at `now_us`.
    pub fn handle_timeout(&mut self, now_us: u64) {
        if self.ended {
            return;
        }
        // Credit earned so far counts at the rate it was earned at, before the rate adapts.
        self.pacer.refill(now_us, self.rate.rate_bps());
        self.maybe_start(now_us);
        if self
            .loss_estimated_at_us
            .is_none_or(|t| now_us.saturating_sub(t) >= LOSS_ESTIMATE_EVERY_US)
        {
            self.loss_estimated_at_us = Some(now_us);
            let random_only = self.cfg.adapt_rate;
            self.rate
                .set_loss_estimate(self.clients.median_loss_ppm(random_only));
        }
        // The rate follows the clients still receiving: one that finished has nothing more
        // to say about its link.
        let decide = Decide {
            now_us,
            report_interval_us: self.report_interval_ms() as u64 * 1000,
            busy: self.schedule.sending() && !self.is_idle(),
        };
        let receiving = self
            .clients
            .iter()
            .filter(|c| c.state == ClientState::Receiving)
            .map(|c| &c.rate);
        self.rate.decide(decide, receiving);
        let events = &mut self.events;
        let room = events.room();
        self.clients.expire(now_us, room, |e| {
            events.push(match e {
                Expired::Lost(ch) => Event::ClientLost { row: ch.row },
                Expired::Restarted { now } => Event::ClientRestarted { row: now },
            })
        });
        self.stats.events = self.events.total();
        self.stats.events_dropped = self.events.dropped();
        if !self.is_idle() {
            self.last_busy_us = now_us;
        }
        if self.end.is_none()
            && let Some(end) = ending::decide(&self.cfg, &self.end_facts(), now_us)
        {
            self.begin_closing(now_us, end);
        }
        if self.timers.is_due(Timer::Closing, now_us)
            && let Some(end) = self.end
        {
            self.schedule.end();
            self.ended = true;
            self.timers = TimerTable::default();
            self.push_event(Event::Ended(end));
        }
    }

    /// When [`Sender::handle_timeout`] or [`Sender::poll_transmit`] next has something to
    /// do, if nothing arrives before. `None` once the session is over.
    pub fn poll_timeout(&self, now_us: u64) -> Option<u64> {
        if self.ended {
            return None;
        }
        let pacing = self.timers.get(Timer::Pacing);
        // An announce already due waits for the pacer, not for itself.
        let announce = self
            .timers
            .get(Timer::Announce)
            .filter(|&t| t > now_us || pacing.is_none());
        let facts = self.end_facts();
        let closing = self.end.is_some();
        let expiry = (!closing).then(|| self.clients.next_expiry()).flatten();
        let deadline = (!closing)
            .then(|| ending::deadline(&self.cfg, &facts))
            .flatten();
        let quiet = (!closing)
            .then(|| ending::quiet_at(&self.cfg, &facts))
            .flatten();
        let lost_grace = (!closing)
            .then_some(facts.lost_may_return_until_us)
            .flatten()
            .filter(|&t| t > now_us);
        [
            lost_grace,
            pacing,
            announce,
            self.timers.get(Timer::Start),
            self.timers.get(Timer::Closing),
            expiry,
            deadline,
            quiet,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Bytes the counter and tag add to every packet: [`TRAILER_LEN`] with a key, else 0.
    fn tag_len(&self) -> usize {
        if self.macs.is_some() { TRAILER_LEN } else { 0 }
    }

    /// Tags the `len`-byte packet a builder wrote in `buf` when the session is keyed.
    fn finish_packet(&self, buf: &mut [u8], len: usize) -> Result<usize, SenderError> {
        match &self.macs {
            Some(m) => m.sign(buf, len).map_err(SenderError::Wire),
            None => Ok(len),
        }
    }

    fn spend(&mut self, bytes: usize) {
        self.pacer.spend(bytes);
        self.rate.on_sent((bytes + wire::FRAMING_BYTES) as u64);
        self.stats.bytes += bytes as u64;
    }

    /// Decides what to send now; `None` when nothing is due (see [`Sender::poll_timeout`]).
    /// Every answer is a commitment: the shell must build and send it.
    pub fn poll_transmit(&mut self, now_us: u64) -> Option<Transmit<A>> {
        self.timers.stop(Timer::Pacing);
        if self.ended {
            return None;
        }
        let rate = self.rate.rate_bps();
        self.pacer.refill(now_us, rate);
        if let Some((client_id, to)) = self.clients.take_ack() {
            self.spend(RESULT_ACK_LEN);
            self.stats.result_acks += 1;
            return Some(Transmit::ResultAck { to, client_id });
        }
        if self.zero_map_due && self.map.zeros() > 0 {
            if !self.pacer.allows(STANDARD_DATAGRAM) {
                let at = self.pacer.ready_at(STANDARD_DATAGRAM, now_us, rate);
                self.timers.set(Timer::Pacing, at);
                return None;
            }
            self.zero_map_due = false;
            self.spend(STANDARD_DATAGRAM);
            self.stats.zero_maps += 1;
            return Some(Transmit::ZeroMap);
        }
        let by_count = self.cfg.announce_every_packets > 0
            && self.data_since_announce >= self.cfg.announce_every_packets;
        if self.timers.is_due(Timer::Announce, now_us) || by_count {
            if !self.pacer.allows(ANNOUNCE_LEN) {
                let at = self.pacer.ready_at(ANNOUNCE_LEN, now_us, rate);
                self.timers.set(Timer::Pacing, at);
                return None;
            }
            let interval = if self.started() {
                self.cfg.announce_interval_us
            } else {
                self.cfg.announce_interval_us.min(WAITING_ANNOUNCE_US)
            };
            self.timers.set(Timer::Announce, now_us + interval);
            self.data_since_announce = 0;
            self.zero_map_due = true;
            self.spend(ANNOUNCE_LEN + self.tag_len());
            self.stats.announces += 1;
            return Some(Transmit::Announce);
        }
        if !self.schedule.sending() {
            return None;
        }
        let sym_len = self.cfg.geometry.symbol_size as usize + DATA_OVERHEAD + self.tag_len();
        if !self.pacer.allows(sym_len) {
            let at = self.pacer.ready_at(sym_len, now_us, rate);
            self.timers.set(Timer::Pacing, at);
            return None;
        }
        if self.schedule.skip_blocks(&self.map) {
            self.first_pass_done(now_us);
        }
        let loss = LossView {
            loss_ppm: self.rate.loss_estimate_ppm(),
            active_clients: self.tally().active(),
            proactive: self.cfg.proactive_repair,
            tail_symbols: self.tail_symbols(rate, sym_len),
            rate_bps: rate,
            wire_packet_bytes: (sym_len + FRAMING_BYTES) as u64,
        };
        let sym = self
            .schedule
            .next_symbol(now_us, loss, &self.map, &mut self.suppression)?;
        match sym.kind {
            SymbolKind::Forward => self.stats.forward_packets += 1,
            SymbolKind::Proactive => self.stats.proactive_packets += 1,
            SymbolKind::Repair => self.stats.repair_packets += 1,
            SymbolKind::Resend => self.stats.resend_packets += 1,
        }
        if sym.ends_forward {
            self.first_pass_done(now_us);
        }
        self.last_busy_us = now_us;
        let spacing = rate::sent_history_spacing_us(self.report_interval_ms() as u64 * 1000);
        self.rate.on_data_sent(sym.seq, now_us, spacing);
        self.spend(sym_len);
        self.stats.data_packets += 1;
        self.data_since_announce += 1;
        Some(Transmit::Symbol {
            block: sym.block,
            esi: sym.esi,
            seq: sym.seq,
        })
    }
}
