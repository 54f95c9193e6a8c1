//! A fixed ring that keeps the latest `N` items pushed, the oldest first, without a heap.

#[derive(Clone, Copy)]
pub(crate) struct Latest<T: Copy, const N: usize> {
    items: [T; N],
    head: usize,
    len: usize,
}

impl<T: Copy, const N: usize> Latest<T, N> {
    pub const fn new(fill: T) -> Self {
        Self {
            items: [fill; N],
            head: 0,
            len: 0,
        }
    }

    /// Adds `item`, dropping the oldest when full.
    pub fn push(&mut self, item: T) {
        if self.len < N {
            self.items[(self.head + self.len) % N] = item;
            self.len += 1;
        } else {
            self.items[self.head] = item;
            self.head = (self.head + 1) % N;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The `i`th item kept, the oldest first (`i < len()`).
    pub fn get(&self, i: usize) -> T {
        debug_assert!(i < self.len);
        self.items[(self.head + i) % N]
    }

    /// The newest item, if any.
    pub fn newest(&self) -> Option<T> {
        self.len.checked_sub(1).map(|i| self.get(i))
    }

    /// The items kept, the oldest first.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len).map(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_oldest_first() {
        let mut r = Latest::<u32, 3>::new(0);
        assert_eq!(r.newest(), None);
        for i in 1..=5 {
            r.push(i);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.iter().collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!((r.get(0), r.newest()), (3, Some(5)));
    }
}
