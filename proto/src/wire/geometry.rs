//! Image geometry: how an image is cut into blocks of symbols.

use super::{MAX_K, MAX_SYMBOL_SIZE, SYMBOL_ALIGN, WireError};

/// Image geometry: how the image is cut into blocks of k symbols of `symbol_size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Image size in bytes.
    pub image_size: u64,
    /// Bytes per symbol: a positive multiple of [`SYMBOL_ALIGN`], at most [`MAX_SYMBOL_SIZE`].
    pub symbol_size: u32,
    /// Source symbols per full block, 1..=[`MAX_K`].
    pub k: u32,
}

impl Geometry {
    /// Checks every field and the derived block count (must fit a u32).
    pub fn new(image_size: u64, symbol_size: u32, k: u32) -> Result<Self, WireError> {
        if symbol_size == 0
            || !symbol_size.is_multiple_of(SYMBOL_ALIGN)
            || symbol_size > MAX_SYMBOL_SIZE
        {
            return Err(WireError::BadField("symbol_size"));
        }
        if k == 0 || k > MAX_K {
            return Err(WireError::BadField("k"));
        }
        let g = Self {
            image_size,
            symbol_size,
            k,
        };
        if g.block_count_u64() > u32::MAX as u64 {
            return Err(WireError::BadField("image_size"));
        }
        Ok(g)
    }

    /// Bytes in a full block.
    pub const fn block_bytes(&self) -> u64 {
        self.k as u64 * self.symbol_size as u64
    }

    fn block_count_u64(&self) -> u64 {
        self.image_size.div_ceil(self.block_bytes())
    }

    /// Number of blocks (the last may be short). 0 for an empty image.
    pub fn block_count(&self) -> u32 {
        self.block_count_u64() as u32
    }

    /// Byte offset of block `b` in the image.
    pub const fn block_offset(&self, b: u32) -> u64 {
        b as u64 * self.block_bytes()
    }

    /// Bytes of image data in block `b` (without padding); 0 past the end.
    pub fn block_len(&self, b: u32) -> usize {
        let off = self.block_offset(b);
        if off >= self.image_size {
            return 0;
        }
        (self.image_size - off).min(self.block_bytes()) as usize
    }

    /// Source symbols in block `b` (k, or fewer for the last block).
    pub fn block_k(&self, b: u32) -> u32 {
        (self.block_len(b) as u64).div_ceil(self.symbol_size as u64) as u32
    }

    /// Source symbols in the whole image: what a perfect channel would need to carry.
    pub fn source_symbols(&self) -> u64 {
        self.image_size.div_ceil(self.symbol_size as u64)
    }
}
