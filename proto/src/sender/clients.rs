//! The client table: one row per client heard, a running tally by state, expiry of silent
//! clients, and the median of the loss they report.
//!
//! Rows are never reused within a session, so a row index keeps naming the same client
//! (events and the shell's summary refer to rows).

use super::rate::ClientRate;
use crate::wire::{ClientPhase, FailReason, StatusHead};

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
    /// True once the client reported its result (verified or failed): nothing it says
    /// afterwards changes its state.
    fn has_result(&self) -> bool {
        matches!(self, Self::Verified | Self::Failed(_))
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
    /// When it verified, failed or was declared lost.
    pub finished_us: u64,
    /// What rate control measured of its link.
    pub rate: ClientRate,
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

    fn count(&mut self, s: ClientState, add: bool) {
        let field = match s {
            ClientState::Verified => &mut self.verified,
            ClientState::Failed(_) => &mut self.failed,
            ClientState::Lost => &mut self.lost,
            ClientState::Receiving | ClientState::Finishing => return,
        };
        if add {
            *field += 1;
        } else {
            *field -= 1;
        }
    }
}

/// A change of a client's state, as the table saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub row: usize,
    pub from: Option<ClientState>,
    pub to: ClientState,
}

/// The table over caller-provided rows, with its tally kept as states change.
///
/// Expiry costs a scan of the table only when a client may be due: `expiry_at` is never
/// later than the earliest true deadline (clients are only ever heard later, or become
/// final, after it was computed; one heard anew lowers it), so checking it is enough.
pub(crate) struct ClientTable<'a, A> {
    rows: &'a mut [Option<ClientInfo<A>>],
    tally: ClientTally,
    timeout_us: u64,
    expiry_at: Option<u64>,
    last_heard_us: Option<u64>,
}

impl<'a, A: Copy> ClientTable<'a, A> {
    /// A table over `rows`; clients silent for longer than `timeout_us` expire.
    pub fn new(rows: &'a mut [Option<ClientInfo<A>>], timeout_us: u64) -> Self {
        rows.fill(None);
        Self {
            rows,
            tally: ClientTally::default(),
            timeout_us,
            expiry_at: None,
            last_heard_us: None,
        }
    }

    /// A client not final was heard at `now_us`.
    fn heard(&mut self, now_us: u64) {
        self.last_heard_us = Some(now_us);
        let due = now_us.saturating_add(self.timeout_us).saturating_add(1);
        self.expiry_at = Some(self.expiry_at.map_or(due, |e| e.min(due)));
    }

    pub fn tally(&self) -> ClientTally {
        self.tally
    }

    pub fn iter(&self) -> impl Iterator<Item = &ClientInfo<A>> + Clone {
        self.rows.iter().flatten()
    }

    pub fn get(&self, row: usize) -> Option<&ClientInfo<A>> {
        self.rows.get(row)?.as_ref()
    }

    pub fn get_mut(&mut self, row: usize) -> Option<&mut ClientInfo<A>> {
        self.rows.get_mut(row)?.as_mut()
    }

    /// The row of client `id`, added (receiving) when new; None when the table is full.
    pub fn find_or_add(&mut self, now_us: u64, id: u64, from: A) -> Option<(usize, bool)> {
        if let Some(i) = self
            .rows
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.id == id))
        {
            return Some((i, false));
        }
        let i = self.rows.iter().position(|c| c.is_none())?;
        self.rows[i] = Some(ClientInfo {
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
            rate: ClientRate::default(),
        });
        self.tally.seen += 1;
        self.heard(now_us);
        Some((i, true))
    }

    fn set_state(&mut self, row: usize, to: ClientState) -> Option<Change> {
        let c = self.rows[row].as_mut().expect("row in use");
        let from = c.state;
        if from == to {
            return None;
        }
        c.state = to;
        self.tally.count(from, false);
        self.tally.count(to, true);
        Some(Change {
            row,
            from: Some(from),
            to,
        })
    }

    /// Records a status report from `row`; returns the state change it caused, if any.
    pub fn record_status(
        &mut self,
        row: usize,
        now_us: u64,
        from: A,
        head: &StatusHead,
        blocks: u32,
        lacking: u64,
    ) -> Option<Change> {
        let c = self.rows[row].as_mut().expect("row in use");
        c.addr = from;
        c.last_heard_us = now_us;
        c.reports += 1;
        c.blocks_done = head.blocks_done.min(blocks);
        c.loss_ppm = head.loss_ppm;
        c.blocks_lacking = lacking;
        let has_result = c.state.has_result();
        self.heard(now_us);
        if has_result {
            return None;
        }
        // A lost client that reports again is back.
        let to = match head.phase {
            ClientPhase::Receiving => ClientState::Receiving,
            ClientPhase::Finishing => ClientState::Finishing,
        };
        self.set_state(row, to)
    }

    /// Records a result from `row` (the first one counts; repeats only refresh the row).
    /// Returns the state change, if any.
    pub fn record_result(
        &mut self,
        row: usize,
        now_us: u64,
        from: A,
        state: ClientState,
        bytes_written: u64,
        blocks: u32,
    ) -> Option<Change> {
        let c = self.rows[row].as_mut().expect("row in use");
        c.addr = from;
        c.last_heard_us = now_us;
        self.last_heard_us = Some(now_us);
        if c.state.has_result() {
            return None;
        }
        c.bytes_written = bytes_written;
        c.finished_us = now_us;
        if state == ClientState::Verified {
            c.blocks_done = blocks;
        }
        self.set_state(row, state)
    }

    /// No later than when the next client will have been silent for longer than the
    /// timeout, if any client can be.
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiry_at
    }

    /// Declares clients silent for longer than the timeout lost, at most `budget` of them,
    /// calling `lost` for each. Those beyond the budget stay due: the next call takes them.
    pub fn expire(&mut self, now_us: u64, mut budget: usize, mut lost: impl FnMut(Change)) {
        if self.expiry_at.is_none_or(|t| now_us < t) {
            return;
        }
        let mut next: Option<u64> = None;
        for row in 0..self.rows.len() {
            let Some(c) = self.rows[row].as_mut() else {
                continue;
            };
            if c.state.is_final() {
                continue;
            }
            if now_us.saturating_sub(c.last_heard_us) > self.timeout_us {
                if budget == 0 {
                    next = Some(now_us);
                    continue;
                }
                budget -= 1;
                c.finished_us = now_us;
                if let Some(ch) = self.set_state(row, ClientState::Lost) {
                    lost(ch);
                }
            } else {
                let due = c
                    .last_heard_us
                    .saturating_add(self.timeout_us)
                    .saturating_add(1);
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        self.expiry_at = next;
    }

    /// The latest time any client was heard.
    pub fn last_heard_us(&self) -> Option<u64> {
        self.last_heard_us
    }

    /// Median loss over clients still receiving, by bisection on the value: no sorting, no
    /// heap.
    pub fn median_loss_ppm(&self) -> u32 {
        let active = || self.iter().filter(|c| !c.state.is_final());
        let n = active().count() as u32;
        if n == 0 {
            return 0;
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
        lo
    }
}
