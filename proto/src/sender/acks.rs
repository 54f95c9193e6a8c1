//! Result acknowledgements waiting to be sent: first in, first out, in a fixed queue.
//!
//! A client repeats its result until it is acknowledged, so an acknowledgement dropped
//! because the queue is full is not lost for good: the sender counts it, and the repeat
//! gets one.

/// Acknowledgements queued at most.
pub(crate) const ACK_QUEUE: usize = 32;

pub(crate) struct AckQueue<A> {
    entries: [Option<(u64, A)>; ACK_QUEUE],
    head: usize,
    len: usize,
}

impl<A: Copy> AckQueue<A> {
    pub fn new() -> Self {
        Self {
            entries: [None; ACK_QUEUE],
            head: 0,
            len: 0,
        }
    }

    /// Queues an acknowledgement of `client_id`'s result, to `to`; false when the queue
    /// is full (the acknowledgement is dropped and counted).
    pub fn push(&mut self, client_id: u64, to: A) -> bool {
        if self.len == ACK_QUEUE {
            return false;
        }
        self.entries[(self.head + self.len) % ACK_QUEUE] = Some((client_id, to));
        self.len += 1;
        true
    }

    /// The oldest queued acknowledgement.
    pub fn pop(&mut self) -> Option<(u64, A)> {
        if self.len == 0 {
            return None;
        }
        let e = self.entries[self.head].take();
        self.head = (self.head + 1) % ACK_QUEUE;
        self.len -= 1;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_in_first_out_and_overflow_counted() {
        let mut q = AckQueue::<u32>::new();
        for i in 0..ACK_QUEUE as u64 {
            assert!(q.push(i, i as u32));
        }
        assert!(!q.push(1000, 1000), "a full queue refuses");
        assert_eq!(q.pop(), Some((0, 0)));
        assert!(q.push(99, 99));
        for i in 1..ACK_QUEUE as u64 {
            assert_eq!(q.pop(), Some((i, i as u32)));
        }
        assert_eq!(q.pop(), Some((99, 99)));
        assert_eq!(q.pop(), None);
    }
}
