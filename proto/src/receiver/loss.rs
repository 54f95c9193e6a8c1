//! The data loss a client measures from gaps in data sequence numbers (PROTOCOL.md section
//! 7, item 8), one window at a time; shared by the receiver and the lab's load client, so
//! that simulated machines report loss exactly as real ones do.

/// Packets received since the window started, and the loss measured so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossWindow {
    start_seq: u32,
    received: u32,
    ppm: u32,
}

impl LossWindow {
    /// Starts a new window at sequence number `seq` (a bind, a resume, a believed jump).
    pub fn restart(&mut self, seq: u32) {
        self.start_seq = seq;
        self.received = 0;
    }

    /// One more data packet received.
    pub fn count(&mut self) {
        self.received = self.received.wrapping_add(1);
    }

    /// Closes the window at `highest` once at least 200 sequence numbers have passed: the
    /// share of them not received, averaged with the previous figure (the first is taken
    /// as it is).
    pub fn update(&mut self, highest: u32) {
        let span = highest.wrapping_sub(self.start_seq) as u64;
        if !(200..=i32::MAX as u64).contains(&span) {
            return;
        }
        let got = (self.received as u64).min(span);
        let ppm = ((span - got) * 1_000_000 / span) as u32;
        self.ppm = if self.ppm == 0 {
            ppm
        } else {
            (self.ppm + ppm) / 2
        };
        self.restart(highest);
    }

    /// The loss measured, parts per million.
    pub fn ppm(&self) -> u32 {
        self.ppm
    }
}
