//! Status reports: the report gate and timer, the deficit ranges (partial blocks after a
//! holdoff, missing runs behind the data front, from a rotating cursor), and the loss
//! estimate carried in each report.

use super::Receiver;
use super::slots::{MAX_SLOTS, SlotState};
use crate::wire::{self, ClientPhase, DeficitRange, MAX_RANGES, StatusHead};

impl<'a> Receiver<'a> {
    /// Builds a status report into `buf` when one is due (the result path is handled by
    /// the caller). `random` jitters the report interval.
    pub(super) fn poll_status(
        &mut self,
        now_us: u64,
        random: u32,
        buf: &mut [u8],
    ) -> Option<usize> {
        let s = self.session?;
        if now_us < self.next_report_us {
            return None;
        }
        // Reports come once per (jittered) interval; sooner, down to a quarter interval, only
        // when half the slots hold partial blocks and waiting would force evictions.
        let filling = self.slots[..s.slots]
            .iter()
            .filter(|m| m.state == SlotState::Filling)
            .count();
        // A closed gate still lets a deficit through when only rate reports (no ranges)
        // closed it: the deficit gate is then open.
        let gated = now_us < self.report_gate_us && filling * 2 < s.slots;
        if gated && now_us < self.deficit_gate_us {
            self.next_report_us = self
                .report_gate_us
                .min(self.deficit_gate_us)
                .min(now_us + self.cfg.holdoff_us.max(1));
            return None;
        }
        let mut ranges = [DeficitRange::default(); MAX_RANGES];
        let n = self.build_ranges(now_us, &mut ranges);
        if gated && n == 0 {
            self.next_report_us = self.report_gate_us.min(now_us + self.cfg.holdoff_us.max(1));
            return None;
        }
        let heartbeat_due = self
            .last_report_us
            .is_none_or(|t| now_us.saturating_sub(t) >= self.cfg.heartbeat_us);
        // Data arriving is reported every interval even without a deficit: the sender's rate
        // control needs each interval's delivery to tell whether the links keep up.
        if n == 0 && !heartbeat_due && self.interval_received == 0 {
            // Nothing due: look again soon, so a block that becomes due is reported within
            // about a holdoff, not a whole interval later. Reports still come at most once
            // per interval, because the interval only restarts when one is sent.
            self.next_report_us = now_us + self.cfg.holdoff_us.max(1);
            return None;
        }
        // Jitter in [0.5, 1.5) of the interval keeps clients from reporting in step.
        let interval = self.report_interval_now(now_us, s.report_interval_us);
        let jitter = interval / 2 + (interval * (random as u64 % 1024)) / 1024;
        self.report_gate_us = now_us + jitter;
        if n > 0 {
            self.deficit_gate_us = now_us + jitter;
        }
        // Look again after a quarter interval, or the holdoff, but within half an interval:
        // a short interval (the server probing the rate) is kept.
        self.next_report_us = now_us + (interval / 4).max(self.cfg.holdoff_us.min(interval / 2));
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
            loss_ppm: self.loss.ppm(),
            phase,
            resumed: self.resumed,
            interval_received: self.interval_received,
            last_seq_age_us: super::last_seq_age_us(
                now_us,
                self.highest_seq.map(|_| self.highest_seq_arrived_us),
            ),
        };
        self.interval_received = 0;
        self.report_seq = self.report_seq.wrapping_add(1);
        self.last_report_us = Some(now_us);
        self.stats.reports += 1;
        wire::write_status(buf, s.id, &head, &ranges[..n]).ok()
    }

    pub(super) fn update_loss(&mut self) {
        if let Some(h) = self.highest_seq {
            self.loss.update(h);
        }
    }

    /// Collects the deficit ranges due for reporting, ascending, starting at the report
    /// cursor so that successive reports cover everything even when one packet cannot.
    fn build_ranges(&mut self, now_us: u64, out: &mut [DeficitRange; MAX_RANGES]) -> usize {
        let s = self.session.expect("bound");
        let g = s.geometry;
        // Blocks in slots, sorted by block (a few dozen at most).
        // `Receiver::new` refuses storage with more than MAX_SLOTS slots, so all fit.
        let mut held = [(0u32, 0u16, false); MAX_SLOTS];
        let mut nh = 0;
        for m in self.slots[..s.slots]
            .iter()
            .filter(|m| m.state != SlotState::Free)
        {
            let due = m.state == SlotState::Filling
                && now_us.saturating_sub(m.last_symbol_us) >= self.cfg.holdoff_us
                && m.reported_us
                    .is_none_or(|t| now_us.saturating_sub(t) >= self.cfg.rereport_us);
            held[nh] = (m.block, m.coded_k(g.symbol_size) as u16 - m.have, due);
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
