//! The receiver's clock: when it next has something to do ([`Receiver::poll_timeout`]), and
//! the deadlines that end it ([`Receiver::handle_timeout`]): the silence timeout and the
//! wait for the server's acknowledgement of the result. Report and result timers are kept
//! by the report and result paths; they only show up here in the earliest time.

use super::Receiver;
use crate::wire::FailReason;

/// A deadline [`Receiver::handle_timeout`] found passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// No session was announced within the silence timeout: the receiver failed with
    /// [`FailReason::Timeout`] and is finished (there is no server to report to).
    NoSession,
    /// Bound, but no new symbol arrived within the silence timeout: the receiver failed with
    /// [`FailReason::Timeout`] and reports it to the server.
    Stalled,
    /// The server announced "closing" and its data stopped for the quiet time: the receiver
    /// failed with [`FailReason::ServerGone`] and reports it.
    ServerClosed,
    /// The server did not acknowledge the result within the acknowledgement wait: the
    /// receiver is finished.
    AckWait,
}

/// Times the deadlines count from.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timers {
    /// When the receiver started listening.
    started_us: u64,
    /// When the session last made progress: bound, a packet of it before the first symbol,
    /// then only a new symbol.
    progress_us: u64,
    /// Symbols received and blocks learned zero at that time.
    progress_symbols: u64,
    /// When the outcome became known.
    pub(super) outcome_us: u64,
    /// The acknowledgement wait is over.
    pub(super) ack_wait_over: bool,
}

impl Timers {
    pub(super) fn new(now_us: u64) -> Self {
        Self {
            started_us: now_us,
            progress_us: now_us,
            progress_symbols: 0,
            outcome_us: 0,
            ack_wait_over: false,
        }
    }
}

impl Timers {
    /// A new session of the same image was taken over: its silence counts from now.
    pub(super) fn restart_silence(&mut self, now_us: u64) {
        self.progress_us = now_us;
    }
}

impl Receiver<'_> {
    /// Notes a packet of the bound session (or the announce that bound it). Once data has
    /// flowed, only new symbols (or blocks newly learned to be zero) count as progress: a
    /// server that keeps announcing but sends nothing this receiver needs is a stall too.
    pub(super) fn note_session_packet(&mut self, now_us: u64) {
        if self.session.is_none() {
            return;
        }
        let t = &mut self.timers;
        let learned = self.stats.symbols + self.stats.zero_blocks;
        if learned != t.progress_symbols || t.progress_symbols == 0 {
            t.progress_symbols = learned;
            t.progress_us = now_us;
        }
    }

    /// The earliest time (never before `now_us`) at which the receiver has something to do:
    /// a report or result to send ([`Receiver::poll_transmit`]) or a deadline to check
    /// ([`Receiver::handle_timeout`]). None once finished.
    pub fn poll_timeout(&self, now_us: u64) -> Option<u64> {
        if self.finished() {
            return None;
        }
        let t = &self.timers;
        let due = if self.outcome.is_some() {
            self.next_result_us
                .min(t.outcome_us.saturating_add(self.cfg.ack_wait_us))
        } else if self.session.is_none() {
            t.started_us.saturating_add(self.cfg.silence_timeout_us)
        } else {
            let closing = self.closing_deadline().unwrap_or(u64::MAX);
            self.next_report_us
                .min(t.progress_us.saturating_add(self.cfg.silence_timeout_us))
                .min(closing)
        };
        Some(due.max(now_us))
    }

    /// Checks the deadlines at `now_us`; returns the one that passed, if any. A silence
    /// timeout fails the receiver with [`FailReason::Timeout`]; the end of the
    /// acknowledgement wait finishes it.
    pub fn handle_timeout(&mut self, now_us: u64) -> Option<Expired> {
        let t = self.timers;
        if self.outcome.is_some() {
            if self.finished() || now_us < t.outcome_us.saturating_add(self.cfg.ack_wait_us) {
                return None;
            }
            self.timers.ack_wait_over = true;
            return Some(Expired::AckWait);
        }
        if self.closing_now(now_us) {
            self.fail(now_us, FailReason::ServerGone);
            return Some(Expired::ServerClosed);
        }
        let (since, expired) = match self.session {
            None => (t.started_us, Expired::NoSession),
            Some(_) => (t.progress_us, Expired::Stalled),
        };
        if now_us < since.saturating_add(self.cfg.silence_timeout_us) {
            return None;
        }
        self.fail(now_us, FailReason::Timeout);
        Some(expired)
    }
}
