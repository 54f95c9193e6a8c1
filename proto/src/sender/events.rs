//! What changed in the session, queued for the shell in a fixed ring and drained with
//! `Sender::poll_event`.

use crate::wire::FailReason;

/// Events queued at most between two drains; later ones are dropped and counted. Client
/// expiry never raises more than there is room for (the rest expire at the next call), and a
/// shell that drains after every [`EVENT_DRAIN_EVERY`] datagrams never loses one.
pub const EVENT_QUEUE: usize = 1024;
/// Datagrams a shell may hand the sender between two drains of the events: each raises at
/// most three (joined, progressed, a change of state).
pub const EVENT_DRAIN_EVERY: usize = EVENT_QUEUE / 4;

/// How a session ended (the shell turns it into a message and an exit code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The wanted number of clients verified and no client is still receiving (some may
    /// have failed or been lost: see the tally).
    WantedVerified,
    /// Every client heard is final, but fewer than wanted verified.
    WantedUnreachable,
    /// The deadline passed before the wanted clients verified.
    Deadline,
    /// No wanted count: everything was sent, nothing is pending and no client was heard for
    /// the linger time.
    Quiet,
    /// The shell stopped the session (an operator's interrupt).
    Stopped,
}

/// Something the shell may want to tell the operator. Rows name client table rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A client was heard for the first time.
    ClientJoined { row: usize },
    /// A client passed another tenth of the image.
    ClientProgressed { row: usize, tenths: u8 },
    /// A client has every block and is flushing or waiting for the digest.
    ClientFinishing { row: usize },
    /// A client verified the image against the digest.
    ClientVerified { row: usize },
    /// A client reported a failure.
    ClientFailed { row: usize, reason: FailReason },
    /// A client was silent for longer than the client timeout.
    ClientLost { row: usize },
    /// A client declared lost was heard again.
    ClientBack { row: usize },
    /// The client in `row` is a machine that was in the table under an earlier id (killed
    /// and started again, or rebooted): its earlier row, silent since, was dropped.
    ClientRestarted { row: usize },
    /// The forward pass started.
    Started,
    /// The forward pass scheduled the last symbol of the last block: every block was sent
    /// once, and the image digest is known once the shell built that symbol (the shell
    /// builds each symbol before it drains events).
    FirstPassDone,
    /// The session is decided: closing announces go out from now on.
    Closing(SessionEnd),
    /// The session is over; nothing more will be sent.
    Ended(SessionEnd),
}

pub(crate) struct EventQueue {
    ring: [Option<Event>; EVENT_QUEUE],
    head: usize,
    len: usize,
    dropped: u64,
    total: u64,
}

impl EventQueue {
    pub fn new() -> Self {
        Self {
            ring: [None; EVENT_QUEUE],
            head: 0,
            len: 0,
            dropped: 0,
            total: 0,
        }
    }

    pub fn push(&mut self, e: Event) {
        self.total += 1;
        if self.len == EVENT_QUEUE {
            self.dropped += 1;
            return;
        }
        self.ring[(self.head + self.len) % EVENT_QUEUE] = Some(e);
        self.len += 1;
    }

    pub fn pop(&mut self) -> Option<Event> {
        if self.len == 0 {
            return None;
        }
        let e = self.ring[self.head].take();
        self.head = (self.head + 1) % EVENT_QUEUE;
        self.len -= 1;
        e
    }

    /// Room left in the ring.
    pub fn room(&self) -> usize {
        EVENT_QUEUE - self.len
    }

    /// Events not queued because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Events raised so far, queued or not.
    pub fn total(&self) -> u64 {
        self.total
    }
}
