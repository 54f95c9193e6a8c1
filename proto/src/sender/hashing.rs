//! The image digest and the block checks, taken as the first pass builds each block.
//!
//! Blocks are first built in order by the forward pass, so each block is hashed once, when
//! its first symbol is built, and the digest is known as soon as the last block was.

use crate::digest::{DigestAccumulator, block_check, block_hash};
use crate::wire::Geometry;

pub(crate) struct ImageHasher<'a> {
    block_checks: &'a mut [u32],
    hashed: u32,
    acc: DigestAccumulator,
    digest: Option<[u8; 32]>,
}

impl<'a> ImageHasher<'a> {
    /// None when `block_checks` is shorter than the image's block count.
    pub fn new(block_checks: &'a mut [u32], blocks: u32) -> Option<Self> {
        (block_checks.len() >= blocks as usize).then_some(Self {
            block_checks,
            hashed: 0,
            acc: DigestAccumulator::new(),
            digest: None,
        })
    }

    /// True when `block` can be built now: hashed already, or the next to hash.
    pub fn may_build(&self, block: u32) -> bool {
        block <= self.hashed
    }

    /// The check of `block`, hashing it first when it is the next one. `data` is the block's
    /// image bytes (without padding).
    pub fn check(&mut self, g: &Geometry, block: u32, data: &[u8]) -> u32 {
        if block == self.hashed {
            let h = block_hash(block, data);
            self.block_checks[block as usize] = block_check(&h);
            self.acc.add(&h);
            self.hashed += 1;
            if self.hashed == g.block_count() {
                self.digest = Some(self.acc.finish(g));
            }
        }
        self.block_checks[block as usize]
    }

    pub fn digest(&self) -> Option<&[u8; 32]> {
        self.digest.as_ref()
    }
}
