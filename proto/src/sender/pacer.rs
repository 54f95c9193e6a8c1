//! The pacer: a token bucket at the current rate (the rate itself comes from `rate`).

use crate::wire::FRAMING_BYTES;

/// How often the loss estimate is refreshed from the client table.
pub(crate) const LOSS_ESTIMATE_EVERY_US: u64 = 100_000;

/// A token bucket: sending spends credit, time refills it at the rate, up to the depth.
pub(crate) struct Pacer {
    credit: i64,
    credit_at_us: u64,
    depth: i64,
}

impl Pacer {
    pub fn new(burst_bytes: u64, now_us: u64) -> Self {
        Self {
            credit: burst_bytes as i64,
            credit_at_us: now_us,
            depth: burst_bytes.max(2 * 9000) as i64,
        }
    }

    /// Adds the credit earned at `rate_bps` since the last refill. The bucket holds at most
    /// 4 ms at the rate (and at least two jumbo datagrams): the depth is set for the
    /// ceiling, and a found rate far below it must not burst the ceiling's depth at once.
    pub fn refill(&mut self, now_us: u64, rate_bps: u64) {
        let dt = now_us.saturating_sub(self.credit_at_us);
        self.credit_at_us = now_us;
        let add = (dt as u128 * rate_bps as u128 / 8_000_000) as i64;
        let at_rate = (rate_bps / 8 * 4 / 1000).max(2 * 9042) as i64;
        self.credit = (self.credit + add).min(self.depth.min(at_rate));
    }

    /// True when a datagram of `bytes` (UDP payload) may go now.
    pub fn allows(&self, bytes: usize) -> bool {
        self.credit >= bytes as i64 + FRAMING_BYTES as i64
    }

    /// Spends the credit of a datagram of `bytes` (UDP payload) and its framing.
    pub fn spend(&mut self, bytes: usize) {
        self.credit -= bytes as i64 + FRAMING_BYTES as i64;
    }

    /// When a datagram of `bytes` may go, at `rate_bps`.
    pub fn ready_at(&self, bytes: usize, now_us: u64, rate_bps: u64) -> u64 {
        let short = bytes as i64 + FRAMING_BYTES as i64 - self.credit;
        let us = (short.max(1) as u128 * 8_000_000).div_ceil(rate_bps as u128) as u64;
        now_us + us.max(1)
    }
}
