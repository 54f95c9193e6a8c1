//! Deficit suppression: a report that predates a send still on its way must not ask for
//! that send again.
//!
//! Two rings remember recent sends: where repair bursts ended, and where the forward pass
//! ended each block. A report names the highest data sequence number its client had seen;
//! a burst numbered after it, sent within the in-flight window, already answers the
//! report's deficit for its block, and blocks whose forward transmission the client had not
//! seen the end of are clipped from the report altogether.

/// Repair bursts remembered.
pub(crate) const RECENT_BURSTS: usize = 256;
/// Forward-pass block ends remembered.
const FORWARD_ENDS: usize = 512;

/// Where and when a block was last sent: the end of its forward transmission, or of a burst.
#[derive(Clone, Copy, Debug)]
struct SentMark {
    block: u32,
    seq: u32,
    at_us: u64,
}

impl SentMark {
    const NONE: SentMark = SentMark {
        block: u32::MAX,
        seq: 0,
        at_us: 0,
    };

    /// True when a report that had seen data up to `last_seq`, arriving at `now_us`, may
    /// predate this send: the send came after the report's view, and recently enough to
    /// still be on its way. Without the time bound a client that lost a whole burst (its
    /// view never moves past it, since nothing more is sent) would be ignored forever.
    fn unseen_by(&self, last_seq: u32, now_us: u64, window_us: u64) -> bool {
        self.block != u32::MAX
            && seq_after(self.seq, last_seq)
            && now_us.saturating_sub(self.at_us) < window_us
    }
}

/// True when sequence number `a` comes after `b` (wrapping).
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// A fixed ring of send marks.
struct Ring<const N: usize> {
    marks: [SentMark; N],
    at: usize,
}

impl<const N: usize> Ring<N> {
    const fn new() -> Self {
        Self {
            marks: [SentMark::NONE; N],
            at: 0,
        }
    }

    fn push(&mut self, block: u32, seq: u32, at_us: u64) {
        self.marks[self.at] = SentMark { block, seq, at_us };
        self.at = (self.at + 1) % N;
    }
}

/// The recent sends a report is judged against.
pub(crate) struct Suppression {
    bursts: Ring<RECENT_BURSTS>,
    forward_ends: Ring<FORWARD_ENDS>,
    window_us: u64,
}

impl Suppression {
    pub fn new(in_flight_us: u64) -> Self {
        Self {
            bursts: Ring::new(),
            forward_ends: Ring::new(),
            window_us: in_flight_us,
        }
    }

    /// A repair or resend burst of `block` ended with data sequence number `seq`.
    pub fn burst_sent(&mut self, block: u32, seq: u32, now_us: u64) {
        self.bursts.push(block, seq, now_us);
    }

    /// The forward pass finished `block` with data sequence number `seq`.
    pub fn forward_sent(&mut self, block: u32, seq: u32, now_us: u64) {
        self.forward_ends.push(block, seq, now_us);
    }

    /// Blocks whose latest burst a report that had seen up to `last_seq` cannot have seen.
    pub fn unseen_bursts(&self, last_seq: u32, now_us: u64) -> impl Iterator<Item = u32> + '_ {
        self.bursts
            .marks
            .iter()
            .filter(move |m| m.unseen_by(last_seq, now_us, self.window_us))
            .map(|m| m.block)
    }

    /// The first block whose forward transmission the client had not seen the end of when
    /// it reported (`last_seq`): blocks from there on may still be in its receive queue.
    /// `forward_block` is the block the forward pass is at.
    pub fn forward_clip(&self, last_seq: u32, now_us: u64, forward_block: u32) -> u32 {
        let mut clip = forward_block;
        let mut all_unseen = true;
        for m in self.forward_ends.marks.iter() {
            if m.unseen_by(last_seq, now_us, self.window_us) {
                clip = clip.min(m.block);
            } else {
                all_unseen = false;
            }
        }
        // Lagging further behind than the ring remembers: trust none of its ranges.
        if all_unseen {
            return 0;
        }
        clip
    }
}
