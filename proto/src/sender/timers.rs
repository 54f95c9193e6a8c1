//! The sender's named deadlines.
//!
//! Three more timers are not stored here because they follow from other state: client
//! expiry (the earliest silent client's last report plus the client timeout, from the client
//! table), the deadline for the wanted clients (from when the forward pass started or ended)
//! and the quiet end without a wanted count (from the last time anything happened). The
//! loss estimate and rate adaptation are periodic but never wake the sender: they matter
//! only to the next transmission, and while anything is being sent the pacer wakes it far
//! more often than their periods.

/// A deadline the sender keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The next announce is due.
    Announce = 0,
    /// The pacer has credit for the packet that waits.
    Pacing = 1,
    /// Start the forward pass with fewer clients than wanted.
    Start = 2,
    /// The closing announces are over: the session ends.
    Closing = 3,
}

const TIMERS: usize = 4;

/// A table of optional deadlines, one per [`Timer`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TimerTable {
    at: [Option<u64>; TIMERS],
}

impl TimerTable {
    pub fn set(&mut self, t: Timer, at_us: u64) {
        self.at[t as usize] = Some(at_us);
    }
    pub fn stop(&mut self, t: Timer) {
        self.at[t as usize] = None;
    }
    pub fn get(&self, t: Timer) -> Option<u64> {
        self.at[t as usize]
    }
    /// True when `t` is set and its time has come.
    pub fn is_due(&self, t: Timer, now_us: u64) -> bool {
        self.get(t).is_some_and(|at| at <= now_us)
    }
}
