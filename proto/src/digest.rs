//! Image digest built from per-block hashes, in any order.
//!
//! Each block's hash is BLAKE3 (derive-key mode, context [`BLOCK_CONTEXT`]) over the block
//! index (u64 LE) and the block's image bytes (no padding). The image digest is BLAKE3
//! (context [`IMAGE_CONTEXT`]) over the image size, symbol size and k (LE) and the sum of all
//! block hashes as 256-bit little-endian integers modulo 2^256. A sum does not depend on the
//! order of its terms, so the server can announce the digest when its first pass ends and a
//! client can accumulate blocks as they complete, in any order, in 32 bytes of memory.
//! The first four bytes of a block hash (LE u32) travel in every data packet of the block
//! as its check, so a client verifies each decoded block before writing it.

use crate::wire::Geometry;

/// BLAKE3 derive-key context of block hashes.
pub const BLOCK_CONTEXT: &str = "broadband 2026-11 block hash v1";
/// BLAKE3 derive-key context of the image digest.
pub const IMAGE_CONTEXT: &str = "broadband 2026-11 image digest v1";

/// Hash of block `index` holding `data` (the block's image bytes, without padding).
pub fn block_hash(index: u32, data: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(BLOCK_CONTEXT);
    h.update(&(index as u64).to_le_bytes());
    h.update(data);
    *h.finalize().as_bytes()
}

/// The 32-bit check carried in data packets: the first four bytes of the block hash.
pub fn block_check(hash: &[u8; 32]) -> u32 {
    u32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]])
}

/// Order-independent accumulator of block hashes (a 256-bit sum).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigestAccumulator {
    limbs: [u64; 4],
    blocks: u64,
}

impl DigestAccumulator {
    /// An empty accumulator.
    pub const fn new() -> Self {
        Self {
            limbs: [0; 4],
            blocks: 0,
        }
    }

    /// Adds one block hash.
    pub fn add(&mut self, hash: &[u8; 32]) {
        let mut carry = 0u64;
        for (i, limb) in self.limbs.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&hash[i * 8..i * 8 + 8]);
            let (s1, c1) = limb.overflowing_add(u64::from_le_bytes(w));
            let (s2, c2) = s1.overflowing_add(carry);
            *limb = s2;
            carry = (c1 as u64) + (c2 as u64);
        }
        self.blocks += 1;
    }

    /// Number of block hashes added.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The image digest for `geometry` over the blocks added so far.
    pub fn finish(&self, geometry: &Geometry) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(IMAGE_CONTEXT);
        h.update(&geometry.image_size.to_le_bytes());
        h.update(&geometry.symbol_size.to_le_bytes());
        h.update(&geometry.k.to_le_bytes());
        for limb in &self.limbs {
            h.update(&limb.to_le_bytes());
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
            acc.add(&block_hash(b, &img[off..off + g.block_len(b)]));
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
    fn sum_carries_across_limbs() {
        let mut acc = DigestAccumulator::new();
        acc.add(&[0xff; 32]);
        acc.add(&{
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        });
        assert_eq!(acc.limbs, [0, 0, 0, 0]);
        assert_eq!(acc.blocks(), 2);
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
