//! One simulated machine of the load client: what a real bb-client keeps about the session,
//! without the symbol memory.
//!
//! A machine sees every datagram the load client's socket received, minus its own simulated
//! loss. It counts the distinct symbols it holds of each block (source symbols by position,
//! repair symbols by index, so duplicates never count twice); a block with its coded k
//! distinct symbols is decodable (the code is MDS) and counts as written once the shared
//! [`Checker`](super::checker::Checker) has decoded it from the same datagrams and checked
//! it against its block check. The machine adds that block's content hash to its own
//! digest accumulator, so its digest covers exactly the blocks it completed and is compared
//! with the announced image digest as bb-client compares it. Reports follow bb-client's
//! receiver: once per jittered announced interval, partial blocks after a holdoff, missing
//! blocks behind the data front, a heartbeat, then the result repeated until acknowledged.

use std::collections::HashMap;

use bb_proto::digest::{DigestAccumulator, ZeroHashes};
use bb_proto::receiver::{
    LossWindow, MAX_REPORT_INTERVAL_US, MIN_REPORT_INTERVAL_US, Outcome, ReceiverConfig,
    last_seq_age_us,
};
use bb_proto::wire::{
    self, Announce, AnnounceFlags, ClientPhase, DataHead, DeficitRange, FailReason, Geometry,
    MAX_RANGES, ResultOutcome, ResultReport, StatusHead,
};

/// A block this machine holds some symbols of.
#[derive(Debug)]
struct Partial {
    coded_len: u32,
    coded_k: u16,
    have: u16,
    /// Source symbols held, one bit per position.
    sources: Vec<u64>,
    /// Repair symbol indices held.
    repairs: Vec<u16>,
    last_symbol_us: u64,
    reported_us: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
struct Bound {
    id: u64,
    geometry: Geometry,
    blocks: u32,
    digest: Option<[u8; 32]>,
    interval_us: u64,
}

/// Counters of one machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineStats {
    /// Datagrams this machine's simulated loss dropped.
    pub lost: u64,
    /// New symbols taken.
    pub symbols: u64,
    /// Symbols it already had, or of blocks already complete.
    pub duplicates: u64,
    /// Status reports sent.
    pub reports: u64,
    /// Deficit ranges in them.
    pub ranges: u64,
    /// Results sent (first and repeats).
    pub results: u64,
}

/// One simulated machine.
pub struct Machine {
    /// Its client id.
    pub id: u64,
    /// Index of the control socket (source address) it sends from.
    pub source: usize,
    cfg: ReceiverConfig,
    /// A datagram is dropped when the next draw is below this (of u32::MAX).
    loss_below: u32,
    rng: u64,
    /// It listens from this time on (joins spread over time).
    pub start_us: u64,
    session: Option<Bound>,
    done: Vec<u64>,
    zero: Vec<u64>,
    done_count: u32,
    partials: HashMap<u32, Partial>,
    /// Blocks it completed that the checker has not decoded yet.
    awaiting: Vec<u32>,
    acc: DigestAccumulator,
    zero_hashes: ZeroHashes,
    highest_seq: Option<u32>,
    /// When the packet of `highest_seq` arrived: reports say how long ago, so that the
    /// server times them by the arrival and not by this process's turn to run.
    highest_seq_arrived_us: u64,
    loss: LossWindow,
    /// Data datagrams since the last report (status field for the sender's rate control).
    interval_received: u32,
    front: u32,
    last_data_us: u64,
    progress_us: u64,
    next_report_us: u64,
    report_gate_us: u64,
    /// Set only by reports with ranges: a report for the rate alone does not hold a deficit.
    deficit_gate_us: u64,
    last_report_us: Option<u64>,
    missing_reported_us: Option<u64>,
    report_cursor: u32,
    report_seq: u32,
    closing: bool,
    outcome: Option<Outcome>,
    outcome_us: u64,
    computed: [u8; 32],
    result_sent: u32,
    next_result_us: u64,
    acked: bool,
    /// Counters.
    pub stats: MachineStats,
}

/// What a machine does with one datagram.
pub enum Seen<'p> {
    Announce(u64, Announce),
    /// A data packet's session, head, and when it arrived (the kernel's receive stamp where
    /// there is one, else the read; the reports' `last_seq_age_us` counts from it).
    Data(u64, DataHead, u64),
    ZeroMap(u64, wire::ZeroMap<'p>),
    Ack(u64, u64),
}

fn get(bits: &[u64], b: u32) -> bool {
    bits[(b / 64) as usize] >> (b % 64) & 1 == 1
}
fn set(bits: &mut [u64], b: u32) {
    bits[(b / 64) as usize] |= 1 << (b % 64);
}

impl Machine {
    /// A machine with client id `id` sending from control socket `source`, losing each
    /// datagram with probability `loss`, giving up after `silence_timeout_us` without
    /// progress, listening from `start_us`.
    pub fn new(
        id: u64,
        source: usize,
        loss: f64,
        seed: u64,
        silence_timeout_us: u64,
        start_us: u64,
    ) -> Self {
        let mut cfg = ReceiverConfig::new(id);
        cfg.silence_timeout_us = silence_timeout_us;
        Self {
            id,
            source,
            cfg,
            loss_below: (loss.clamp(0.0, 1.0) * u32::MAX as f64) as u32,
            rng: seed | 1,
            start_us,
            session: None,
            done: Vec::new(),
            zero: Vec::new(),
            done_count: 0,
            partials: HashMap::new(),
            awaiting: Vec::new(),
            acc: DigestAccumulator::new(),
            zero_hashes: ZeroHashes::new(),
            highest_seq: None,
            highest_seq_arrived_us: 0,
            loss: LossWindow::default(),
            interval_received: 0,
            front: 0,
            last_data_us: 0,
            progress_us: start_us,
            next_report_us: 0,
            report_gate_us: 0,
            deficit_gate_us: 0,
            last_report_us: None,
            missing_reported_us: None,
            report_cursor: 0,
            report_seq: 0,
            closing: false,
            outcome: None,
            outcome_us: 0,
            computed: [0; 32],
            result_sent: 0,
            next_result_us: 0,
            acked: false,
            stats: MachineStats::default(),
        }
    }

    /// A random number (xorshift64*), for loss and report jitter.
    pub fn random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// The outcome, once known.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }
    /// Blocks complete and the image's block count.
    pub fn progress(&self) -> (u32, u32) {
        (self.done_count, self.session.map_or(0, |s| s.blocks))
    }
    /// Loss it measured, ppm.
    pub fn loss_ppm(&self) -> u32 {
        self.loss.ppm()
    }
    /// The server acknowledged its result.
    pub fn acked(&self) -> bool {
        self.acked
    }

    /// Nothing more to do: the result was acknowledged, repeated as often as bb-client
    /// repeats it, or the acknowledgement wait is over; or it failed before any session.
    pub fn finished(&self, now_us: u64) -> bool {
        self.outcome.is_some()
            && (self.acked
                || self.session.is_none()
                || self.result_sent >= self.cfg.result_repeats
                || now_us >= self.outcome_us.saturating_add(self.cfg.ack_wait_us))
    }

    /// Hands one datagram to the machine; `hashes` are the checker's content hashes of the
    /// blocks it decoded. Draws this machine's loss first.
    pub fn handle(&mut self, now_us: u64, seen: &Seen<'_>, hashes: &[Option<[u8; 32]>]) {
        if now_us < self.start_us || self.outcome.is_some() && !matches!(seen, Seen::Ack(..)) {
            return;
        }
        if self.random() < self.loss_below {
            self.stats.lost += 1;
            return;
        }
        let session = match seen {
            Seen::Announce(s, _) | Seen::Data(s, ..) | Seen::ZeroMap(s, _) | Seen::Ack(s, _) => *s,
        };
        if let Some(b) = &self.session
            && b.id != session
        {
            return;
        }
        match seen {
            Seen::Announce(s, a) => self.on_announce(now_us, *s, a),
            Seen::Data(_, d, arrived_us) => self.on_data(now_us, *arrived_us, d, hashes),
            Seen::ZeroMap(_, m) => self.on_zero_map(now_us, m),
            Seen::Ack(_, id) => {
                if *id == self.id && self.outcome.is_some() && self.session.is_some() {
                    self.acked = true;
                }
            }
        }
    }

    fn on_announce(&mut self, now_us: u64, id: u64, a: &Announce) {
        let interval_us = (a.report_interval_ms as u64 * 1000)
            .clamp(MIN_REPORT_INTERVAL_US, MAX_REPORT_INTERVAL_US);
        if let Some(s) = &mut self.session {
            if s.geometry != a.geometry {
                return;
            }
            if s.digest.is_none() {
                s.digest = a.digest;
            }
            s.interval_us = interval_us;
            self.closing |= a.flags.contains(AnnounceFlags::CLOSING);
            return;
        }
        let blocks = a.geometry.block_count();
        let words = (blocks as usize).div_ceil(64);
        self.done = vec![0; words];
        self.zero = vec![0; words];
        self.session = Some(Bound {
            id,
            geometry: a.geometry,
            blocks,
            digest: a.digest,
            interval_us,
        });
        self.next_report_us = now_us;
        self.progress_us = now_us;
        self.loss.restart(a.seq);
    }

    fn on_data(&mut self, now_us: u64, arrived_us: u64, d: &DataHead, hashes: &[Option<[u8; 32]>]) {
        let Some(s) = self.session else { return };
        let g = s.geometry;
        if self
            .highest_seq
            .is_none_or(|h| (d.seq.wrapping_sub(h) as i32) > 0)
        {
            self.highest_seq = Some(d.seq);
            self.highest_seq_arrived_us = arrived_us;
        }
        self.loss.count();
        self.interval_received = self.interval_received.saturating_add(1);
        self.last_data_us = now_us;
        self.front = self.front.max(d.block + 1);
        let b = d.block;
        if b >= s.blocks || get(&self.done, b) || get(&self.zero, b) {
            self.stats.duplicates += 1;
            return;
        }
        let coded_k = d.coded_len.div_ceil(g.symbol_size) as u16;
        let p = self.partials.entry(b).or_insert_with(|| Partial {
            coded_len: d.coded_len,
            coded_k,
            have: 0,
            sources: vec![0; (g.k as usize).div_ceil(64)],
            repairs: Vec::new(),
            last_symbol_us: now_us,
            reported_us: None,
        });
        if p.coded_len != d.coded_len {
            // bb-client drops a symbol whose block fields differ from the block's first.
            return;
        }
        let new = if d.esi < p.coded_k {
            let (w, bit) = (d.esi as usize / 64, d.esi % 64);
            let had = p.sources[w] >> bit & 1 == 1;
            p.sources[w] |= 1 << bit;
            !had
        } else if p.repairs.contains(&d.esi) {
            false
        } else {
            p.repairs.push(d.esi);
            true
        };
        if !new {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.symbols += 1;
        p.have += 1;
        p.last_symbol_us = now_us;
        self.progress_us = now_us;
        if p.have >= p.coded_k {
            self.partials.remove(&b);
            set(&mut self.done, b);
            self.awaiting.push(b);
            self.settle(hashes);
        }
    }

    /// Adds the blocks the checker has decoded since they completed here.
    fn settle(&mut self, hashes: &[Option<[u8; 32]>]) {
        let mut i = 0;
        while i < self.awaiting.len() {
            let b = self.awaiting[i];
            if let Some(h) = hashes.get(b as usize).copied().flatten() {
                self.acc.add(b, &h);
                self.done_count += 1;
                self.awaiting.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn on_zero_map(&mut self, now_us: u64, m: &wire::ZeroMap<'_>) {
        let Some(s) = self.session else { return };
        if m.span_end > s.blocks {
            return;
        }
        let mut learned = false;
        for r in m.ranges() {
            for b in r.first..r.end() as u32 {
                if get(&self.done, b) || get(&self.zero, b) {
                    continue;
                }
                // A partial block the zero map names is dropped, as bb-client drops it.
                self.partials.remove(&b);
                set(&mut self.zero, b);
                set(&mut self.done, b);
                let h = self.zero_hashes.of(&s.geometry, b);
                self.acc.add(b, &h);
                self.done_count += 1;
                learned = true;
            }
        }
        if learned {
            self.progress_us = now_us;
        }
    }

    /// Runs the machine's timers at `now_us` and builds the packet due, if any, into `buf`.
    pub fn poll(
        &mut self,
        now_us: u64,
        hashes: &[Option<[u8; 32]>],
        buf: &mut [u8],
    ) -> Option<usize> {
        if now_us < self.start_us || self.finished(now_us) {
            return None;
        }
        let Some(s) = self.session else {
            if now_us >= self.start_us + self.cfg.silence_timeout_us {
                self.fail(now_us, FailReason::Timeout);
            }
            return None;
        };
        if self.outcome.is_none() {
            if !self.awaiting.is_empty() {
                self.settle(hashes);
            }
            if self.done_count == s.blocks
                && let Some(want) = s.digest
            {
                self.computed = self.acc.finish(&s.geometry);
                let o = if self.computed == want {
                    Outcome::Verified { digest: want }
                } else {
                    Outcome::Failed(FailReason::DigestMismatch)
                };
                self.outcome = Some(o);
                self.outcome_us = now_us;
                self.next_result_us = now_us;
            } else if self.closing {
                self.fail(now_us, FailReason::ServerGone);
            } else if now_us >= self.progress_us + self.cfg.silence_timeout_us {
                self.fail(now_us, FailReason::Timeout);
            }
        }
        if let Some(o) = self.outcome {
            if now_us < self.next_result_us {
                return None;
            }
            let r = ResultReport {
                client_id: self.id,
                outcome: match o {
                    Outcome::Verified { .. } => ResultOutcome::Verified,
                    Outcome::Failed(r) => ResultOutcome::Failed(r),
                },
                bytes_written: if matches!(o, Outcome::Verified { .. }) {
                    s.geometry.image_size
                } else {
                    0
                },
                digest: self.computed,
            };
            self.next_result_us = now_us + self.cfg.result_wait_us(self.result_sent);
            self.result_sent += 1;
            self.stats.results += 1;
            return wire::write_result(buf, s.id, &r).ok();
        }
        self.poll_status(now_us, s, buf)
    }

    fn fail(&mut self, now_us: u64, reason: FailReason) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome::Failed(reason));
            self.outcome_us = now_us;
            self.next_result_us = now_us;
        }
    }

    /// A status report when one is due, paced as bb-client's receiver paces them.
    fn poll_status(&mut self, now_us: u64, s: Bound, buf: &mut [u8]) -> Option<usize> {
        if now_us < self.next_report_us {
            return None;
        }
        let holdoff = self.cfg.holdoff_us.max(1);
        let gated = now_us < self.report_gate_us;
        if gated && now_us < self.deficit_gate_us {
            self.next_report_us = self
                .report_gate_us
                .min(self.deficit_gate_us)
                .min(now_us + holdoff);
            return None;
        }
        let mut ranges = [DeficitRange::default(); MAX_RANGES];
        let n = self.build_ranges(now_us, s, &mut ranges);
        if gated && n == 0 {
            self.next_report_us = self.report_gate_us.min(now_us + holdoff);
            return None;
        }
        let heartbeat_due = self
            .last_report_us
            .is_none_or(|t| now_us.saturating_sub(t) >= self.cfg.heartbeat_us);
        if n == 0 && !heartbeat_due && self.interval_received == 0 {
            self.next_report_us = now_us + holdoff;
            return None;
        }
        // Jitter in [0.5, 1.5) of the announced interval, as bb-client.
        let interval = s.interval_us.max(1);
        let jitter = interval / 2 + interval * (self.random() as u64 % 1024) / 1024;
        self.report_gate_us = now_us + jitter;
        if n > 0 {
            self.deficit_gate_us = now_us + jitter;
        }
        self.next_report_us = now_us + (interval / 4).max(holdoff.min(interval / 2));
        self.update_loss();
        let head = StatusHead {
            client_id: self.id,
            report_seq: self.report_seq,
            last_seq: self.highest_seq.unwrap_or(0),
            blocks_done: self.done_count,
            loss_ppm: self.loss.ppm(),
            phase: if self.done_count == s.blocks {
                ClientPhase::Finishing
            } else {
                ClientPhase::Receiving
            },
            resumed: false,
            interval_received: self.interval_received,
            last_seq_age_us: last_seq_age_us(
                now_us,
                self.highest_seq.map(|_| self.highest_seq_arrived_us),
            ),
        };
        self.interval_received = 0;
        self.report_seq = self.report_seq.wrapping_add(1);
        self.last_report_us = Some(now_us);
        self.stats.reports += 1;
        self.stats.ranges += n as u64;
        wire::write_status(buf, s.id, &head, &ranges[..n]).ok()
    }

    fn update_loss(&mut self) {
        if let Some(h) = self.highest_seq {
            self.loss.update(h);
        }
    }

    /// The deficit ranges due, ascending from the report cursor: partial blocks quiet for a
    /// holdoff and not reported for a re-report time, and blocks lacked entirely behind the
    /// data front (all blocks once data stopped), each run once per re-report time.
    fn build_ranges(
        &mut self,
        now_us: u64,
        s: Bound,
        out: &mut [DeficitRange; MAX_RANGES],
    ) -> usize {
        let g = s.geometry;
        let missing_due = self
            .missing_reported_us
            .is_none_or(|t| now_us.saturating_sub(t) >= self.cfg.rereport_us);
        let limit = if now_us.saturating_sub(self.last_data_us) >= self.cfg.rereport_us {
            s.blocks
        } else {
            self.front.min(s.blocks)
        };
        let start = if self.report_cursor >= limit {
            0
        } else {
            self.report_cursor
        };
        let mut n = 0;
        let mut run: Option<(u32, u16, u16)> = None; // first, len, deficit
        let mut stopped_at = None;
        let mut reported = Vec::new();
        let mut b = start;
        while b < limit {
            if get(&self.done, b) {
                b += 1;
                continue;
            }
            let entry = match self.partials.get(&b) {
                Some(p) => {
                    let due = now_us.saturating_sub(p.last_symbol_us) >= self.cfg.holdoff_us
                        && p.reported_us
                            .is_none_or(|t| now_us.saturating_sub(t) >= self.cfg.rereport_us);
                    due.then_some((p.coded_k - p.have, true))
                }
                None => missing_due.then_some((g.block_k(b) as u16, false)),
            };
            let Some((deficit, partial)) = entry else {
                b += 1;
                continue;
            };
            let extends = run.is_some_and(|(f, l, d)| {
                !partial && d == deficit && f + l as u32 == b && l < u16::MAX
            });
            if extends {
                let r = run.as_mut().expect("checked");
                r.1 += 1;
            } else {
                if let Some((f, l, d)) = run.take() {
                    out[n] = DeficitRange {
                        first: f,
                        len: l,
                        deficit: d,
                    };
                    n += 1;
                }
                if n == MAX_RANGES {
                    stopped_at = Some(b);
                    break;
                }
                if partial {
                    out[n] = DeficitRange {
                        first: b,
                        len: 1,
                        deficit,
                    };
                    n += 1;
                    reported.push(b);
                    if n == MAX_RANGES {
                        stopped_at = Some(b + 1);
                        break;
                    }
                } else {
                    run = Some((b, 1, deficit));
                }
            }
            b += 1;
        }
        if let Some((f, l, d)) = run.take() {
            out[n] = DeficitRange {
                first: f,
                len: l,
                deficit: d,
            };
            n += 1;
        }
        self.report_cursor = stopped_at.unwrap_or(0);
        for b in reported {
            if let Some(p) = self.partials.get_mut(&b) {
                p.reported_us = Some(now_us);
            }
        }
        if n > 0 && missing_due && stopped_at.is_none() {
            self.missing_reported_us = Some(now_us);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bb_proto::digest::content_hash;
    use bb_proto::wire::Encoding;

    const S: u32 = 64;
    const K: u32 = 4;
    const SESSION: u64 = 77;

    fn geometry() -> Geometry {
        // Four blocks of four 64-byte symbols.
        Geometry::new(4 * (K * S) as u64, S, K).unwrap()
    }

    fn hashes() -> Vec<Option<[u8; 32]>> {
        (0..4u8)
            .map(|b| Some(content_hash(&[b + 1; 256])))
            .collect()
    }

    fn digest_of(h: &[Option<[u8; 32]>]) -> [u8; 32] {
        let mut acc = DigestAccumulator::new();
        for (b, c) in h.iter().enumerate() {
            acc.add(b as u32, &c.unwrap());
        }
        acc.finish(&geometry())
    }

    fn announce(digest: Option<[u8; 32]>) -> Seen<'static> {
        Seen::Announce(
            SESSION,
            Announce {
                geometry: geometry(),
                flags: AnnounceFlags::NONE,
                seq: 0,
                report_interval_ms: 200,
                digest,
            },
        )
    }

    fn data(block: u32, esi: u16, seq: u32) -> Seen<'static> {
        data_at(block, esi, seq, 0)
    }

    fn data_at(block: u32, esi: u16, seq: u32, arrived_us: u64) -> Seen<'static> {
        Seen::Data(
            SESSION,
            DataHead {
                block,
                esi,
                encoding: Encoding::Raw,
                seq,
                block_check: 0,
                coded_len: K * S,
            },
            arrived_us,
        )
    }

    fn machine() -> Machine {
        Machine::new(1, 0, 0.0, 5, 10_000_000, 0)
    }

    /// Polls until a packet comes, returns it parsed as a status report's ranges.
    fn report(m: &mut Machine, now: u64, h: &[Option<[u8; 32]>]) -> Vec<DeficitRange> {
        let mut buf = [0u8; 1500];
        let n = m.poll(now, h, &mut buf).expect("a report is due");
        let p = wire::open(&buf[..n]).unwrap();
        p.status().unwrap().ranges().collect()
    }

    #[test]
    fn duplicates_never_complete_a_block() {
        let h = hashes();
        let mut m = machine();
        m.handle(0, &announce(None), &h);
        // Source 0 three times and 1 once: two distinct symbols of four.
        for (i, esi) in [0, 0, 1, 0].into_iter().enumerate() {
            m.handle(10, &data(0, esi, i as u32), &h);
        }
        // Repair 9 twice: three distinct.
        m.handle(10, &data(0, 9, 4), &h);
        m.handle(10, &data(0, 9, 5), &h);
        assert_eq!(m.progress().0, 0);
        assert_eq!((m.stats.symbols, m.stats.duplicates), (3, 3));
        m.handle(10, &data(0, 3, 6), &h);
        assert_eq!(m.progress().0, 1);
    }

    #[test]
    fn verifies_only_the_announced_digest_over_every_block() {
        let h = hashes();
        for (announced, verified) in [(digest_of(&h), true), ([9; 32], false)] {
            let mut m = machine();
            m.handle(0, &announce(Some(announced)), &h);
            let mut seq = 0;
            for b in 0..4 {
                for esi in 0..K as u16 {
                    m.handle(10, &data(b, esi, seq), &h);
                    seq += 1;
                }
            }
            let mut buf = [0u8; 1500];
            let n = m.poll(20, &h, &mut buf).unwrap();
            let r = wire::open(&buf[..n]).unwrap().result().unwrap();
            assert_eq!(r.outcome == ResultOutcome::Verified, verified);
            assert_eq!(
                m.outcome(),
                Some(if verified {
                    Outcome::Verified { digest: announced }
                } else {
                    Outcome::Failed(FailReason::DigestMismatch)
                })
            );
            // Repeated until acknowledged, then finished.
            assert!(!m.finished(20));
            m.handle(30, &Seen::Ack(SESSION, 1), &h);
            assert!(m.finished(30) && m.acked());
        }
    }

    #[test]
    fn a_block_counts_once_the_checker_decoded_it() {
        let h = hashes();
        let mut none = h.clone();
        none[2] = None;
        let mut m = machine();
        m.handle(0, &announce(Some(digest_of(&h))), &h);
        let mut seq = 0;
        for b in 0..4 {
            for esi in 0..K as u16 {
                m.handle(10, &data(b, esi, seq), &none);
                seq += 1;
            }
        }
        assert_eq!(m.progress().0, 3);
        let mut buf = [0u8; 1500];
        // Still a status report (finishing is not claimed), no result.
        let n = m.poll(20, &none, &mut buf).unwrap();
        assert!(wire::open(&buf[..n]).unwrap().status().is_ok());
        // The checker has it now: the next poll verifies.
        let n = m.poll(2_000_000, &h, &mut buf).unwrap();
        let r = wire::open(&buf[..n]).unwrap().result().unwrap();
        assert_eq!(r.outcome, ResultOutcome::Verified);
    }

    #[test]
    fn reports_missing_blocks_behind_the_front_and_partial_ones_after_a_holdoff() {
        let h = hashes();
        let mut m = machine();
        m.handle(0, &announce(None), &h);
        // Block 0 whole, block 1 lost entirely, block 2 half; block 3 not sent yet.
        let mut seq = 0;
        for esi in 0..K as u16 {
            m.handle(1_000, &data(0, esi, seq), &h);
            seq += 1;
        }
        seq += 4;
        for esi in 0..2 {
            m.handle(1_000, &data(2, esi, seq), &h);
            seq += 1;
        }
        // Data still flowing (last at 1 ms); 100 ms later the partial block 2 is past its
        // holdoff, block 1 is missing behind the front; block 3 is beyond it.
        let r = report(&mut m, 101_000, &h);
        assert_eq!(
            r,
            vec![
                DeficitRange {
                    first: 1,
                    len: 1,
                    deficit: 4
                },
                DeficitRange {
                    first: 2,
                    len: 1,
                    deficit: 2
                },
            ]
        );
        // Not again before the jittered interval (at least half of 200 ms).
        let mut buf = [0u8; 1500];
        assert!(m.poll(150_000, &h, &mut buf).is_none());
        // Once data stopped, blocks past the front count too.
        let r = report(&mut m, 500_000, &h);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!((r[2].first, r[2].len, r[2].deficit), (3, 1, 4));
    }

    /// A report says how long ago the newest packet arrived, counted from its arrival (the
    /// kernel's stamp) and not from its read: a machine read late must not look like a
    /// queue to the server's rate control. An older packet arriving later leaves it.
    #[test]
    fn a_report_carries_the_age_of_its_newest_packets_arrival() {
        let h = hashes();
        let mut m = machine();
        m.handle(0, &announce(None), &h);
        m.handle(9_000, &data_at(0, 0, 7, 2_000), &h);
        m.handle(9_000, &data_at(0, 1, 5, 8_000), &h);
        let mut buf = [0u8; 1500];
        let n = m.poll(50_000, &h, &mut buf).expect("a report is due");
        let head = wire::open(&buf[..n]).unwrap().status().unwrap().head;
        assert_eq!((head.last_seq, head.last_seq_age_us), (7, 48_000));
    }
}
