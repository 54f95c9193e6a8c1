//! The pacer (a token bucket at the current rate) and rate control (the loss estimate and
//! the rate it adapts).

use crate::wire::FRAMING_BYTES;

/// How often the loss estimate is refreshed from the client table.
pub(crate) const LOSS_ESTIMATE_EVERY_US: u64 = 100_000;
/// How often the rate adapts to the loss estimate.
pub(crate) const RATE_ADAPT_EVERY_US: u64 = 500_000;

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

    /// Adds the credit earned at `rate_bps` since the last refill.
    pub fn refill(&mut self, now_us: u64, rate_bps: u64) {
        let dt = now_us.saturating_sub(self.credit_at_us);
        self.credit_at_us = now_us;
        let add = (dt as u128 * rate_bps as u128 / 8_000_000) as i64;
        self.credit = (self.credit + add).min(self.depth);
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

/// The sending rate and the loss estimate it follows.
pub(crate) struct RateControl {
    ceiling_bps: u64,
    floor_bps: u64,
    adapt: bool,
    rate_bps: u64,
    loss_estimate_ppm: u32,
    estimated_at_us: Option<u64>,
    adapted_at_us: u64,
}

impl RateControl {
    pub fn new(ceiling_bps: u64, min_rate_bps: u64, adapt: bool, now_us: u64) -> Self {
        Self {
            ceiling_bps,
            floor_bps: min_rate_bps.max(ceiling_bps / 16),
            adapt,
            rate_bps: ceiling_bps.max(1),
            loss_estimate_ppm: 0,
            estimated_at_us: None,
            adapted_at_us: now_us,
        }
    }

    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    pub fn loss_estimate_ppm(&self) -> u32 {
        self.loss_estimate_ppm
    }

    /// True when the loss estimate is due for a refresh.
    pub fn estimate_due(&self, now_us: u64) -> bool {
        self.estimated_at_us
            .is_none_or(|t| now_us.saturating_sub(t) >= LOSS_ESTIMATE_EVERY_US)
    }

    /// Takes a fresh estimate (the median loss of the clients still receiving).
    pub fn set_estimate(&mut self, now_us: u64, median_loss_ppm: u32) {
        self.estimated_at_us = Some(now_us);
        self.loss_estimate_ppm = median_loss_ppm;
    }

    /// Adapts the rate to the loss estimate, at most every [`RATE_ADAPT_EVERY_US`].
    pub fn adapt(&mut self, now_us: u64) {
        if !self.adapt || now_us.saturating_sub(self.adapted_at_us) < RATE_ADAPT_EVERY_US {
            return;
        }
        self.adapted_at_us = now_us;
        let loss = self.loss_estimate_ppm;
        // The median client decides: a slow link that every client shares lowers the rate;
        // one slow client does not (it catches up from the carousel). The bar is 10%: below
        // it, loss is more often random or starved receivers than a link the sender
        // overruns, and cutting would not help. The floor keeps a burst of such loss from
        // collapsing the rate altogether.
        if loss > 100_000 {
            // Down to a little under what the clients actually receive: an overrun link
            // converges in one step instead of many.
            let delivered =
                self.rate_bps as u128 * (1_000_000 - loss.min(1_000_000)) as u128 / 1_000_000;
            self.rate_bps = ((delivered * 95 / 100) as u64).max(self.floor_bps);
        } else if loss < 30_000 {
            self.rate_bps = (self.rate_bps + self.rate_bps / 16 + 1).min(self.ceiling_bps);
        }
    }
}
