//! The block map: what each block holds (zeros, raw bytes, or a zstd frame and its coded
//! length), its check, and the image digest, filled in block order as the shell reads the
//! image (or all at once from a prepared side file).
//!
//! The digest is known as soon as the last block is in the map: before the first packet
//! when the image was prepared, at the end of the first pass otherwise.

use super::config::SenderError;
use crate::digest::{DigestAccumulator, ZeroHashes, block_check};
use crate::wire::{Encoding, Geometry};

/// What the shell found in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockSource {
    /// Every byte is zero: never sent as data, announced in zero maps.
    Zero,
    /// Sent as its image bytes. `hash` is [`crate::digest::content_hash`] of them.
    Raw {
        /// Content hash of the block's image bytes.
        hash: [u8; 32],
    },
    /// Sent as one zstd frame of `coded_len` bytes (less than the block's length).
    Zstd {
        /// Content hash of the block's image bytes (uncompressed).
        hash: [u8; 32],
        /// Bytes of the frame.
        coded_len: u32,
    },
}

/// Top bit of a stored coded length: the block is a zstd frame.
const ZSTD_BIT: u32 = 1 << 31;

pub(crate) struct BlockMap<'a> {
    geometry: Geometry,
    blocks: u32,
    // Per block: coded length, with ZSTD_BIT for zstd frames; 0 for a zero block.
    coded: &'a mut [u32],
    checks: &'a mut [u32],
    ready: u32,
    zeros: u32,
    acc: DigestAccumulator,
    digest: Option<[u8; 32]>,
    // Announced before every block was given (read ahead by the shell); checked at the end.
    expected: Option<[u8; 32]>,
    zero_hashes: ZeroHashes,
}

impl<'a> BlockMap<'a> {
    /// None when a slice is shorter than the image's block count.
    pub fn new(geometry: Geometry, coded: &'a mut [u32], checks: &'a mut [u32]) -> Option<Self> {
        let blocks = geometry.block_count();
        if coded.len() < blocks as usize || checks.len() < blocks as usize {
            return None;
        }
        Some(Self {
            geometry,
            blocks,
            coded,
            checks,
            ready: 0,
            zeros: 0,
            acc: DigestAccumulator::new(),
            digest: None,
            expected: None,
            zero_hashes: ZeroHashes::new(),
        })
    }

    /// Records what block `b` holds; blocks come in order.
    pub fn add(&mut self, b: u32, src: BlockSource) -> Result<(), SenderError> {
        if b != self.ready || b >= self.blocks {
            return Err(SenderError::BlockOutOfOrder);
        }
        let len = self.geometry.block_len(b);
        let (coded, hash) = match src {
            BlockSource::Zero => (0, self.zero_hashes.of(&self.geometry, b)),
            BlockSource::Raw { hash } => (len as u32, hash),
            BlockSource::Zstd { hash, coded_len } => {
                if coded_len == 0 || coded_len as usize >= len {
                    return Err(SenderError::BadCodedLength);
                }
                (coded_len | ZSTD_BIT, hash)
            }
        };
        self.coded[b as usize] = coded;
        self.checks[b as usize] = block_check(b, &hash);
        self.acc.add(b, &hash);
        if coded == 0 {
            self.zeros += 1;
        }
        self.ready += 1;
        if self.ready == self.blocks {
            let d = self.acc.finish(&self.geometry);
            self.digest = Some(d);
            if self.expected.is_some_and(|e| e != d) {
                return Err(SenderError::DigestChanged);
            }
        }
        Ok(())
    }

    /// Blocks in the map so far (the forward pass cannot go past them).
    pub fn ready(&self) -> u32 {
        self.ready
    }
    /// Zero blocks so far.
    pub fn zeros(&self) -> u32 {
        self.zeros
    }
    pub fn is_zero(&self, b: u32) -> bool {
        self.coded[b as usize] == 0
    }
    /// Bytes of the coded block before padding (0 for a zero block).
    pub fn coded_len(&self, b: u32) -> u32 {
        self.coded[b as usize] & !ZSTD_BIT
    }
    /// Source symbols of the coded block (0 for a zero block).
    pub fn coded_k(&self, b: u32) -> u32 {
        self.coded_len(b).div_ceil(self.geometry.symbol_size)
    }
    pub fn encoding(&self, b: u32) -> Encoding {
        if self.coded[b as usize] & ZSTD_BIT != 0 {
            Encoding::Zstd
        } else {
            Encoding::Raw
        }
    }
    pub fn check(&self, b: u32) -> u32 {
        self.checks[b as usize]
    }
    /// The digest announced: known ahead ([`BlockMap::expect`]) or computed once every
    /// block was given.
    pub fn digest(&self) -> Option<&[u8; 32]> {
        self.expected.as_ref().or(self.digest.as_ref())
    }
    /// The image digest, known before the blocks are given: announced at once, and the
    /// blocks given must add up to it.
    pub fn expect(&mut self, digest: [u8; 32]) {
        self.expected = Some(digest);
    }
}
