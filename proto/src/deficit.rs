//! Per-block pending counts for the sender, with range updates in O(log n).
//!
//! A status report names ranges of blocks and the symbols each still needs; a late joiner
//! may report a range covering half the image. The sender keeps, per block, the largest
//! count reported and not yet served. This segment tree with lazy "max" tags applies a
//! range in O(log n), reads or overwrites one block in O(log n) and finds the next block
//! with something pending in O(log n), so handling a report costs time proportional to its
//! ranges, never to the image's block count. Storage is caller-provided (no heap).

/// Segment tree over `n` blocks of u16 counts, supporting range chmax.
pub struct DeficitTree<'a> {
    /// `max[node]`: largest value in the node's subtree, tags included.
    max: &'a mut [u16],
    /// `tag[node]`: a value applied to every leaf below, not yet pushed down.
    tag: &'a mut [u16],
    leaves: usize,
    n: u32,
}

impl<'a> DeficitTree<'a> {
    /// u16 words of storage needed for `n` blocks.
    pub const fn storage_len(n: u32) -> usize {
        let leaves = if n <= 1 {
            1
        } else {
            (n as usize).next_power_of_two()
        };
        4 * leaves
    }

    /// Builds an all-zero tree over `n` blocks in `storage` (at least `storage_len(n)` words).
    /// Returns `None` when the storage is too small.
    pub fn new(storage: &'a mut [u16], n: u32) -> Option<Self> {
        let need = Self::storage_len(n);
        if storage.len() < need {
            return None;
        }
        let storage = &mut storage[..need];
        storage.fill(0);
        let (max, tag) = storage.split_at_mut(need / 2);
        Some(Self {
            max,
            tag,
            leaves: need / 4,
            n,
        })
    }

    /// Number of blocks covered.
    pub fn len(&self) -> u32 {
        self.n
    }

    /// True when the tree covers no block.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// True when some block has a non-zero count.
    pub fn any(&self) -> bool {
        self.max[1] > 0
    }

    /// Raises every block in `[lo, hi)` to at least `v`.
    pub fn raise_range(&mut self, lo: u32, hi: u32, v: u16) {
        let hi = hi.min(self.n);
        if lo >= hi || v == 0 {
            return;
        }
        self.raise(1, 0, self.leaves, lo as usize, hi as usize, v);
    }

    fn raise(&mut self, node: usize, nlo: usize, nhi: usize, lo: usize, hi: usize, v: u16) {
        if hi <= nlo || nhi <= lo {
            return;
        }
        if lo <= nlo && nhi <= hi {
            self.tag[node] = self.tag[node].max(v);
            self.max[node] = self.max[node].max(v);
            return;
        }
        let mid = (nlo + nhi) / 2;
        self.raise(2 * node, nlo, mid, lo, hi, v);
        self.raise(2 * node + 1, mid, nhi, lo, hi, v);
        self.max[node] = self.tag[node]
            .max(self.max[2 * node])
            .max(self.max[2 * node + 1]);
    }

    /// The count of block `i` (0 past the end).
    pub fn get(&self, i: u32) -> u16 {
        if i >= self.n {
            return 0;
        }
        let mut node = 1;
        let (mut lo, mut hi) = (0, self.leaves);
        let mut v = 0;
        while hi - lo > 1 {
            v = v.max(self.tag[node]);
            let mid = (lo + hi) / 2;
            if (i as usize) < mid {
                node *= 2;
                hi = mid;
            } else {
                node = 2 * node + 1;
                lo = mid;
            }
        }
        v.max(self.max[node])
    }

    /// Sets block `i` to exactly `v`.
    pub fn set(&mut self, i: u32, v: u16) {
        if i >= self.n {
            return;
        }
        // Push tags down the path so the leaf can be overwritten.
        let mut node = 1;
        let (mut lo, mut hi) = (0, self.leaves);
        while hi - lo > 1 {
            let t = core::mem::take(&mut self.tag[node]);
            if t > 0 {
                for c in [2 * node, 2 * node + 1] {
                    self.tag[c] = self.tag[c].max(t);
                    self.max[c] = self.max[c].max(t);
                }
            }
            let mid = (lo + hi) / 2;
            if (i as usize) < mid {
                node *= 2;
                hi = mid;
            } else {
                node = 2 * node + 1;
                lo = mid;
            }
        }
        self.tag[node] = 0;
        self.max[node] = v;
        node /= 2;
        while node >= 1 {
            self.max[node] = self.tag[node]
                .max(self.max[2 * node])
                .max(self.max[2 * node + 1]);
            node /= 2;
        }
    }

    /// Smallest block `>= from` with a non-zero count.
    pub fn next_nonzero(&self, from: u32) -> Option<u32> {
        if from >= self.n {
            return None;
        }
        self.find(1, 0, self.leaves, from as usize)
            .filter(|&i| i < self.n)
    }

    fn find(&self, node: usize, nlo: usize, nhi: usize, from: usize) -> Option<u32> {
        if nhi <= from || self.max[node] == 0 {
            return None;
        }
        if self.tag[node] > 0 {
            return Some(nlo.max(from) as u32);
        }
        if nhi - nlo == 1 {
            return Some(nlo as u32);
        }
        let mid = (nlo + nhi) / 2;
        self.find(2 * node, nlo, mid, from)
            .or_else(|| self.find(2 * node + 1, mid, nhi, from))
    }

    /// Next non-zero block at or after `from`, wrapping around to the start.
    pub fn next_nonzero_wrapping(&self, from: u32) -> Option<u32> {
        self.next_nonzero(from).or_else(|| self.next_nonzero(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares the tree with a plain array under a deterministic mix of operations.
    #[test]
    fn matches_a_plain_array() {
        for n in [1u32, 2, 3, 7, 64, 100, 1000] {
            let mut store = vec![0u16; DeficitTree::storage_len(n)];
            let mut t = DeficitTree::new(&mut store, n).unwrap();
            let mut model = vec![0u16; n as usize];
            let mut x = 0x1234_5678_u64 ^ n as u64;
            let mut rnd = |m: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % m
            };
            for _ in 0..3000 {
                match rnd(4) {
                    0 | 1 => {
                        let a = rnd(n as u64 + 1) as u32;
                        let b = rnd(n as u64 + 1) as u32;
                        let (lo, hi) = (a.min(b), a.max(b));
                        let v = rnd(600) as u16;
                        t.raise_range(lo, hi, v);
                        for m in &mut model[lo as usize..hi as usize] {
                            *m = (*m).max(v);
                        }
                    }
                    2 => {
                        let i = rnd(n as u64) as u32;
                        let v = if rnd(2) == 0 { 0 } else { rnd(600) as u16 };
                        t.set(i, v);
                        model[i as usize] = v;
                    }
                    _ => {
                        let from = rnd(n as u64 + 2) as u32;
                        let want = (from as usize..n as usize)
                            .find(|&i| model[i] > 0)
                            .map(|i| i as u32);
                        assert_eq!(t.next_nonzero(from), want, "n={n} from={from}");
                    }
                }
                let i = rnd(n as u64) as u32;
                assert_eq!(t.get(i), model[i as usize]);
                assert_eq!(t.any(), model.iter().any(|&m| m > 0));
            }
        }
    }

    #[test]
    fn range_past_the_end_is_clipped_and_storage_checked() {
        let mut small = vec![0u16; 3];
        assert!(DeficitTree::new(&mut small, 5).is_none());
        let mut store = vec![0u16; DeficitTree::storage_len(5)];
        let mut t = DeficitTree::new(&mut store, 5).unwrap();
        t.raise_range(3, u32::MAX, 9);
        assert_eq!((t.get(2), t.get(3), t.get(4), t.get(5)), (0, 9, 9, 0));
        assert_eq!(t.next_nonzero(5), None);
        assert_eq!(t.next_nonzero_wrapping(5), Some(3));
    }
}
