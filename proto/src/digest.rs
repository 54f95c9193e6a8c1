//! Image digest built from per-block leaves, in any order, resistant to chosen-block
//! collisions.
//!
//! A block's CONTENT hash is BLAKE3 (derive-key mode, [`CONTENT_CONTEXT`]) of its image bytes
//! (no padding, uncompressed). Its LEAF is BLAKE3 (derive-key, [`LEAF_CONTEXT`]) of the block
//! index (u64 LE) and the content hash, read as an extendable output: the first 4 bytes are
//! the block CHECK carried in every data packet of the block (so a client verifies each
//! decoded block before writing it), and 2048 bytes from offset 64 are [`LANES`] u16 lanes
//! (LE). The image digest is BLAKE3 (derive-key, [`IMAGE_CONTEXT`]) of the image size,
//! symbol size and k (LE) and the lane-wise sum modulo 2^16 of every block's lanes: an
//! LtHash (Bellare-Micciancio's additive hash, as in Facebook's LtHash16), which does not
//! depend on the order of its terms, so the server can announce the digest when its first
//! pass ends and a client can accumulate blocks as they complete, in 2 KiB of memory. Unlike
//! a plain modular sum of 256-bit hashes, finding two sets of blocks with the same sum is a
//! hard lattice problem, so an operator can pin the digest.
//!
//! A block of zeros costs no pass over its bytes: its content hash depends only on its
//! length, so callers hash zeros once per length ([`zero_content_hash`]) and each zero block
//! costs one leaf.

use crate::wire::Geometry;

/// BLAKE3 derive-key context of block content hashes.
pub const CONTENT_CONTEXT: &str = "broadband 2026-12 block content v2";
/// BLAKE3 derive-key context of block leaves.
pub const LEAF_CONTEXT: &str = "broadband 2026-12 block leaf v2";
/// BLAKE3 derive-key context of the image digest.
pub const IMAGE_CONTEXT: &str = "broadband 2026-12 image digest v2";
/// Lanes of the additive hash.
pub const LANES: usize = 1024;

/// Content hash of a block's image bytes (without padding, uncompressed).
pub fn content_hash(data: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(CONTENT_CONTEXT);
    h.update(data);
    *h.finalize().as_bytes()
}

/// Content hash of `len` zero bytes, hashed in fixed chunks (no buffer of `len` bytes).
pub fn zero_content_hash(len: usize) -> [u8; 32] {
    const ZEROS: [u8; 4096] = [0; 4096];
    let mut h = blake3::Hasher::new_derive_key(CONTENT_CONTEXT);
    let mut left = len;
    while left > 0 {
        let n = left.min(ZEROS.len());
        h.update(&ZEROS[..n]);
        left -= n;
    }
    *h.finalize().as_bytes()
}

/// Content hashes of an image's zero blocks, each computed once: every full block of zeros
/// has the same one, and only the last block can be shorter.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZeroHashes {
    full: Option<[u8; 32]>,
}

impl ZeroHashes {
    /// Nothing computed yet.
    pub const fn new() -> Self {
        Self { full: None }
    }

    /// The content hash of block `b` of `geometry` when it holds only zeros.
    pub fn of(&mut self, geometry: &Geometry, b: u32) -> [u8; 32] {
        let len = geometry.block_len(b);
        if len as u64 != geometry.block_bytes() {
            return zero_content_hash(len);
        }
        *self.full.get_or_insert_with(|| zero_content_hash(len))
    }
}

fn leaf_reader(index: u32, content: &[u8; 32]) -> blake3::OutputReader {
    let mut h = blake3::Hasher::new_derive_key(LEAF_CONTEXT);
    h.update(&(index as u64).to_le_bytes());
    h.update(content);
    h.finalize_xof()
}

/// The 32-bit check carried in the data packets of block `index` with content hash `content`.
pub fn block_check(index: u32, content: &[u8; 32]) -> u32 {
    let mut c = [0u8; 4];
    leaf_reader(index, content).fill(&mut c);
    u32::from_le_bytes(c)
}

/// Order-independent accumulator of block leaves (an LtHash of [`LANES`] u16 lanes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestAccumulator {
    lanes: [u16; LANES],
    blocks: u64,
}

impl Default for DigestAccumulator {
    fn default() -> Self {
        Self::new()
    }
}

impl DigestAccumulator {
    /// An empty accumulator.
    pub const fn new() -> Self {
        Self {
            lanes: [0; LANES],
            blocks: 0,
        }
    }

    /// Adds the leaf of block `index` whose content hash is `content`.
    pub fn add(&mut self, index: u32, content: &[u8; 32]) {
        let mut r = leaf_reader(index, content);
        r.set_position(64);
        let mut chunk = [0u8; 256];
        for lanes in self.lanes.chunks_mut(chunk.len() / 2) {
            r.fill(&mut chunk);
            for (lane, b) in lanes.iter_mut().zip(chunk.chunks_exact(2)) {
                *lane = lane.wrapping_add(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        self.blocks += 1;
    }

    /// Number of leaves added.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The image digest for `geometry` over the leaves added so far.
    pub fn finish(&self, geometry: &Geometry) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(IMAGE_CONTEXT);
        h.update(&geometry.image_size.to_le_bytes());
        h.update(&geometry.symbol_size.to_le_bytes());
        h.update(&geometry.k.to_le_bytes());
        let mut buf = [0u8; 256];
        for lanes in self.lanes.chunks(buf.len() / 2) {
            for (b, lane) in buf.chunks_exact_mut(2).zip(lanes) {
                b.copy_from_slice(&lane.to_le_bytes());
            }
            h.update(&buf);
        }
        *h.finalize().as_bytes()
    }
}

/// Writes `digest` as 64 lowercase hex digits into `out`.
pub fn to_hex(digest: &[u8; 32], out: &mut [u8; 64]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn digest_in_order(img: &[u8], g: &Geometry, order: &[u32]) -> [u8; 32] {
        let mut acc = DigestAccumulator::new();
        for &b in order {
            let off = g.block_offset(b) as usize;
            acc.add(b, &content_hash(&img[off..off + g.block_len(b)]));
        }
        acc.finish(g)
    }

    #[test]
    fn digest_does_not_depend_on_block_order() {
        let g = Geometry::new(10_000, 64, 16).unwrap();
        let img = image(10_000);
        let n = g.block_count();
        let fwd: Vec<u32> = (0..n).collect();
        let rev: Vec<u32> = (0..n).rev().collect();
        assert_eq!(
            digest_in_order(&img, &g, &fwd),
            digest_in_order(&img, &g, &rev)
        );
    }

    #[test]
    fn digest_changes_with_one_byte_geometry_or_block_swap() {
        let g = Geometry::new(10_000, 64, 16).unwrap();
        let img = image(10_000);
        let order: Vec<u32> = (0..g.block_count()).collect();
        let base = digest_in_order(&img, &g, &order);
        let mut flipped = img.clone();
        flipped[9_999] ^= 1;
        assert_ne!(base, digest_in_order(&flipped, &g, &order));
        // Same bytes, other geometry: a different digest.
        let g2 = Geometry::new(10_000, 128, 8).unwrap();
        let order2: Vec<u32> = (0..g2.block_count()).collect();
        assert_ne!(base, digest_in_order(&img, &g2, &order2));
        // Two blocks swapped in place: the index is hashed, so the digest changes.
        let bb = g.block_bytes() as usize;
        let mut swapped = img.clone();
        swapped[..bb].copy_from_slice(&img[bb..2 * bb]);
        swapped[bb..2 * bb].copy_from_slice(&img[..bb]);
        assert_ne!(base, digest_in_order(&swapped, &g, &order));
    }

    #[test]
    fn zero_blocks_hash_like_their_bytes_and_leaves_cancel_in_no_order() {
        assert_eq!(zero_content_hash(10_000), content_hash(&[0u8; 10_000]));
        assert_eq!(zero_content_hash(0), content_hash(&[]));
        // The check is bound to the block index, not only the content.
        let z = zero_content_hash(64);
        assert_ne!(block_check(0, &z), block_check(1, &z));
        // Adding the same leaf twice is not the same as adding it once (no XOR-like cancel).
        let mut once = DigestAccumulator::new();
        once.add(3, &z);
        let mut twice = once.clone();
        twice.add(3, &z);
        assert_ne!(once.lanes, twice.lanes);
        assert_eq!(twice.blocks(), 2);
    }

    #[test]
    fn zero_hashes_match_the_bytes_of_full_and_short_blocks() {
        let g = Geometry::new(64 * 16 * 3 + 100, 64, 16).unwrap(); // 3 full blocks, 1 short
        let mut z = ZeroHashes::new();
        for b in 0..g.block_count() {
            assert_eq!(
                z.of(&g, b),
                content_hash(&vec![0u8; g.block_len(b)]),
                "block {b}"
            );
        }
    }

    #[test]
    fn hex_is_lowercase_and_complete() {
        let mut d = [0u8; 32];
        d[0] = 0xab;
        d[31] = 0x01;
        let mut out = [0u8; 64];
        to_hex(&d, &mut out);
        assert_eq!(&out[..2], b"ab");
        assert_eq!(&out[62..], b"01");
    }
}
