//! The simulated image and what the server's shell makes of it: which blocks are zero, the
//! content hash of the others, and their coded bytes (zstd when it saves a symbol).

use crate::args::Options;
use crate::channel::Rng;
use bb_proto::digest::content_hash;
use bb_proto::receiver::{Decompress, DecompressError};
use bb_proto::sender::BlockSource;
use bb_proto::wire::Geometry;

/// Deterministic image content for `o`: random (or text-like) bytes, with the fraction of
/// blocks `o.zero_blocks` all zero.
pub fn make_image(o: &Options, g: &Geometry) -> Vec<u8> {
    let mut rng = Rng::new(o.seed, u64::MAX);
    let mut img = vec![0u8; o.image_size as usize];
    for chunk in img.chunks_mut(8) {
        let w = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    if o.compressible {
        // About 3 bits of entropy a byte: zstd brings it to about half.
        for b in img.iter_mut() {
            *b = b"etaoinshrdlucmfw"[(*b & 15) as usize];
        }
    }
    if o.zero_blocks > 0.0 {
        let mut pick = Rng::new(o.seed, u64::MAX - 2);
        for b in 0..g.block_count() {
            if pick.chance(o.zero_blocks) {
                let off = g.block_offset(b) as usize;
                img[off..off + g.block_len(b)].fill(0);
            }
        }
    }
    img
}

/// One block as the server's shell gives it to the sender.
pub struct CodedBlock {
    pub source: BlockSource,
    /// The coded bytes padded to whole symbols (empty for a zero block).
    pub coded: Vec<u8>,
}

/// Classifies and codes every block of `img`, as bb-server's pipeline does.
pub fn code_blocks(img: &[u8], g: &Geometry, level: Option<i32>) -> Vec<CodedBlock> {
    let s = g.symbol_size as usize;
    (0..g.block_count())
        .map(|b| {
            let off = g.block_offset(b) as usize;
            let data = &img[off..off + g.block_len(b)];
            if data.iter().all(|&x| x == 0) {
                return CodedBlock {
                    source: BlockSource::Zero,
                    coded: Vec::new(),
                };
            }
            let hash = content_hash(data);
            let frame = level.and_then(|l| zstd::bulk::compress(data, l).ok());
            let (source, mut coded) = match frame {
                // Worth it only when it saves at least one symbol.
                Some(f) if f.len().div_ceil(s) < data.len().div_ceil(s) => (
                    BlockSource::Zstd {
                        hash,
                        coded_len: f.len() as u32,
                    },
                    f,
                ),
                _ => (BlockSource::Raw { hash }, data.to_vec()),
            };
            coded.resize(coded.len().div_ceil(s) * s, 0);
            CodedBlock { source, coded }
        })
        .collect()
}

/// The receivers' decompressor: zstd through the standard crate.
pub struct Zstd;

impl Decompress for Zstd {
    fn decompress(&mut self, src: &[u8], dst: &mut [u8]) -> Result<usize, DecompressError> {
        zstd::bulk::decompress_to_buffer(src, dst).map_err(|_| DecompressError)
    }
}
