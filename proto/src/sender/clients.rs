//! The client table: one row per client heard, a running tally by state, expiry of silent
//! clients, and the median of the loss they report.
//!
//! Rows are reused only when the table is full, and only rows of clients declared lost,
//! so while there is room a row index keeps naming the same client (events and the shell's
//! summary refer to rows), and a table filled by forged ids empties again as they expire.
//! A source address holds at most [`ROWS_PER_ADDRESS`] rows of clients not final, so ids
//! made up by one sender cannot fill the table; and only clients that reported at least
//! twice count in the median loss, so one-shot ids cannot set it.
//!
//! A machine restarted (its client process killed and started again, or the machine
//! rebooted into the imaging initramfs) draws a new id but keeps its address: its new id
//! takes over the row of a lost client of the same address, and a client that falls silent
//! after a newer client of its address was first heard is dropped from the table instead of
//! being declared lost, so one machine is one row.

use super::rate::ClientRate;
use crate::wire::{ClientPhase, FailReason, StatusHead};

/// Rows of clients not final that one source host may hold: real machines have an address
/// each (a few clients on one host, as in tests, still fit).
pub const ROWS_PER_ADDRESS: usize = 8;

/// A client's source address as the shell gives it. The bound on rows per source and the
/// recognition of a restarted machine go by host (the IP address, whatever the port), so
/// ids made up from many ports of one address count as one source.
pub trait SourceAddr: Copy + PartialEq {
    /// True when both come from the same host.
    fn same_host(&self, other: &Self) -> bool;
}

impl SourceAddr for core::net::SocketAddrV4 {
    fn same_host(&self, other: &Self) -> bool {
        self.ip() == other.ip()
    }
}

impl SourceAddr for core::net::SocketAddr {
    fn same_host(&self, other: &Self) -> bool {
        self.ip() == other.ip()
    }
}

/// Tests and the simulator name each client's address with a number: one host each.
impl SourceAddr for u32 {
    fn same_host(&self, other: &Self) -> bool {
        self == other
    }
}

/// Why a client got no row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoRow {
    /// Every row holds a client not lost.
    Full,
    /// Its address already holds [`ROWS_PER_ADDRESS`] rows of clients not final.
    AddressFull,
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
    /// It reported holding blocks from an earlier session of this image (status flag:
    /// a server restarted on the same image).
    pub resumed: bool,
    /// When the deficit ranges of its reports were last applied.
    pub ranges_applied_us: Option<u64>,
    /// What rate control measured of its link.
    pub rate: ClientRate,
    /// Its result awaits an acknowledgement.
    pub ack_due: bool,
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
    /// Rows that reported resuming from an earlier session of this image (any state).
    pub resumed: u32,
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

/// What expiry did to a silent client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    /// Declared lost.
    Lost(Change),
    /// Its machine was heard again under a new id (row `now`, from the same address, first
    /// heard after this client's last packet): the silent row was dropped.
    Restarted { now: usize },
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
    last_lost_us: Option<u64>,
    /// Rows whose result awaits an acknowledgement, and where the search for the next
    /// one starts (rows are acknowledged in turn, none twice before all others).
    acks_due: usize,
    ack_cursor: usize,
}

impl<'a, A: SourceAddr> ClientTable<'a, A> {
    /// A table over `rows`; clients silent for longer than `timeout_us` expire.
    pub fn new(rows: &'a mut [Option<ClientInfo<A>>], timeout_us: u64) -> Self {
        rows.fill(None);
        Self {
            rows,
            tally: ClientTally::default(),
            timeout_us,
            expiry_at: None,
            last_heard_us: None,
            last_lost_us: None,
            acks_due: 0,
            ack_cursor: 0,
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

    /// The row of client `id`, added (receiving) when new: in a free row, else in the row
    /// of the client lost longest ago. Refused when the table holds only clients not lost,
    /// or when `from` already holds [`ROWS_PER_ADDRESS`] rows of clients not final.
    pub fn find_or_add(&mut self, now_us: u64, id: u64, from: A) -> Result<(usize, bool), NoRow> {
        if let Some(i) = self
            .rows
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.id == id))
        {
            return Ok((i, false));
        }
        let mut same_address = 0;
        let mut free = None;
        let mut lost: Option<(usize, u64)> = None;
        let mut restarted = None;
        for (i, row) in self.rows.iter().enumerate() {
            match row {
                None => free = free.or(Some(i)),
                Some(c) if c.state == ClientState::Lost => {
                    if c.addr.same_host(&from) {
                        restarted = restarted.or(Some(i));
                    }
                    if lost.is_none_or(|(_, t)| c.finished_us < t) {
                        lost = Some((i, c.finished_us));
                    }
                }
                Some(c) if !c.state.is_final() && c.addr.same_host(&from) => same_address += 1,
                Some(_) => {}
            }
        }
        if same_address >= ROWS_PER_ADDRESS {
            return Err(NoRow::AddressFull);
        }
        let i = match (restarted, free, lost) {
            // The machine of a lost client, back under a new id: the same row.
            (Some(i), _, _) => {
                self.tally.count(ClientState::Lost, false);
                if self.rows[i].is_some_and(|c| c.resumed) {
                    self.tally.resumed -= 1;
                }
                i
            }
            (None, Some(i), _) => {
                self.tally.seen += 1;
                i
            }
            (None, None, Some((i, _))) => {
                self.tally.count(ClientState::Lost, false);
                if self.rows[i].is_some_and(|c| c.resumed) {
                    self.tally.resumed -= 1;
                }
                i
            }
            (None, None, None) => return Err(NoRow::Full),
        };
        self.forget_ack(i);
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
            resumed: false,
            ranges_applied_us: None,
            rate: ClientRate::default(),
            ack_due: false,
        });
        self.heard(now_us);
        Ok((i, true))
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
        if head.resumed && !c.resumed {
            c.resumed = true;
            self.tally.resumed += 1;
        }
        let c = self.rows[row].as_ref().expect("row in use");
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

    /// Marks `row`'s result (the first or a repeat), from `from`, as awaiting an
    /// acknowledgement there (docs/PROTOCOL.md: to the result's source). A flag
    /// per row, not a queue: every client of a room may finish within a few milliseconds,
    /// and an acknowledgement that does not fit costs its client a repeat interval (a
    /// queue of 32 left 13 of 48 clients waiting 200 ms, and one lost acknowledgement
    /// more as the session closed, 5 s).
    pub fn ack_later(&mut self, row: usize, from: A) {
        let c = self.rows[row].as_mut().expect("row in use");
        c.addr = from;
        if !c.ack_due {
            c.ack_due = true;
            self.acks_due += 1;
        }
    }

    /// The next client whose result awaits an acknowledgement, and its address (the
    /// latest its result came from); the flag is cleared.
    pub fn take_ack(&mut self) -> Option<(u64, A)> {
        if self.acks_due == 0 {
            return None;
        }
        let n = self.rows.len();
        for k in 0..n {
            let i = (self.ack_cursor + k) % n;
            if let Some(c) = self.rows[i].as_mut().filter(|c| c.ack_due) {
                c.ack_due = false;
                self.acks_due -= 1;
                self.ack_cursor = (i + 1) % n;
                return Some((c.id, c.addr));
            }
        }
        self.acks_due = 0;
        None
    }

    /// A row about to be reused or emptied no longer awaits an acknowledgement.
    fn forget_ack(&mut self, row: usize) {
        if self.rows[row].is_some_and(|c| c.ack_due) {
            self.acks_due -= 1;
        }
    }

    /// True when `row`'s ranges may be applied at `now_us` (then recorded as applied): at
    /// most once per `spacing_us`. A client reports at most every quarter interval, so a
    /// row that reports faster is not one client, and its deficits would only multiply
    /// resends.
    pub fn ranges_due(&mut self, row: usize, now_us: u64, spacing_us: u64) -> bool {
        let c = self.rows[row].as_mut().expect("row in use");
        if c.ranges_applied_us
            .is_some_and(|t| now_us.saturating_sub(t) < spacing_us)
        {
            return false;
        }
        c.ranges_applied_us = Some(now_us);
        true
    }

    /// No later than when the next client will have been silent for longer than the
    /// timeout, if any client can be.
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiry_at
    }

    /// Declares clients silent for longer than the timeout lost, at most `budget` of them,
    /// calling `expired` for each; a client whose machine is back under a new id is dropped
    /// instead. Those beyond the budget stay due: the next call takes them.
    pub fn expire(&mut self, now_us: u64, mut budget: usize, mut expired: impl FnMut(Expired)) {
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
                if let Some(now) = self.restarted_as(row) {
                    self.drop_row(row);
                    expired(Expired::Restarted { now });
                    continue;
                }
                let c = self.rows[row].as_mut().expect("row in use");
                c.finished_us = now_us;
                self.last_lost_us = Some(now_us);
                if let Some(ch) = self.set_state(row, ClientState::Lost) {
                    expired(Expired::Lost(ch));
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

    /// The row of a client from the same address as `row`'s, first heard after `row`'s last
    /// packet: the same machine, restarted.
    fn restarted_as(&self, row: usize) -> Option<usize> {
        let old = self.rows[row]?;
        self.rows.iter().position(|c| {
            c.is_some_and(|c| {
                c.id != old.id
                    && c.addr.same_host(&old.addr)
                    && c.first_heard_us > old.last_heard_us
            })
        })
    }

    /// Removes a client not final from the table (its machine is back in another row).
    fn drop_row(&mut self, row: usize) {
        self.forget_ack(row);
        if let Some(c) = self.rows[row].take() {
            self.tally.count(c.state, false);
            self.tally.seen -= 1;
            if c.resumed {
                self.tally.resumed -= 1;
            }
        }
    }

    /// When a client was last declared lost, if any was.
    pub fn last_lost_us(&self) -> Option<u64> {
        self.last_lost_us
    }

    /// True when at least one client is in the table and every one reported resuming.
    pub fn all_resumed(&self) -> bool {
        self.tally.seen > 0 && self.tally.resumed == self.tally.seen
    }

    /// The latest time any client was heard.
    pub fn last_heard_us(&self) -> Option<u64> {
        self.last_heard_us
    }

    /// Median loss over clients still receiving that reported at least twice (a made-up
    /// id that reports once does not count), by bisection on the value: no sorting, no
    /// heap.
    ///
    /// With `random_only`, each client's loss floor (the loss its link shows at any rate,
    /// learned by the rate control) stands for its loss: loss from overrunning a link is
    /// the rate control's to end, not a reason for repair symbols ahead of need. Before the
    /// floor is known, the client's own figure up to a few per cent, as the rate control
    /// takes it ([`ClientRate::random_loss_ppm`]): the startup's overrun of 20 Mbit/s links
    /// showed as 12-42% in it for half a second (the figure halves once per 200 packets),
    /// and the blocks sent then went with up to a quarter more symbols each, where their
    /// clients then lost 1%.
    pub fn median_loss_ppm(&self, random_only: bool) -> u32 {
        let active = || {
            self.iter()
                .filter(|c| !c.state.is_final() && c.reports >= 2)
        };
        let loss = |c: &ClientInfo<A>| match random_only {
            true => c.rate.random_loss_ppm(c.loss_ppm).min(c.loss_ppm),
            false => c.loss_ppm,
        };
        let n = active().count() as u32;
        if n == 0 {
            return 0;
        }
        let (mut lo, mut hi) = (0u32, 1_000_000u32);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if active().filter(|c| loss(c) <= mid).count() as u32 * 2 >= n {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn made_up_ids_from_many_ports_of_one_host_count_as_one_source() {
        let mut rows = [None; 32];
        let mut t = ClientTable::new(&mut rows, 10_000_000);
        let host = Ipv4Addr::new(10, 0, 0, 9);
        for port in 0..ROWS_PER_ADDRESS as u16 {
            let from = SocketAddrV4::new(host, 40_000 + port);
            assert!(t.find_or_add(0, 100 + port as u64, from).is_ok());
        }
        let another_port = SocketAddrV4::new(host, 50_000);
        assert_eq!(t.find_or_add(0, 999, another_port), Err(NoRow::AddressFull));
        let another_host = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 10), 50_000);
        assert!(t.find_or_add(0, 999, another_host).is_ok());
    }
}
