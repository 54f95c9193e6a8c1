//! The server's uses of the protocol core's block API, in one place: content hashes, the
//! image digest of a block map, and what the sender is told about each block.

use bb_proto::digest::{DigestAccumulator, ZeroHashes};
use bb_proto::sender::{BlockSource, Sender};
use bb_proto::wire::Geometry;

use crate::codec::Kind;
use crate::sidefile::MapEntry;

/// The per-block content hash the image digest is built from (uncompressed bytes).
pub fn content_hash(data: &[u8]) -> [u8; 32] {
    bb_proto::digest::content_hash(data)
}

/// The image digest of a complete block map, as the sender computes it (a zero block's
/// content hash depends only on its length).
pub fn image_digest(geometry: &Geometry, blocks: &[MapEntry]) -> [u8; 32] {
    let mut acc = DigestAccumulator::new();
    let mut zeros = ZeroHashes::new();
    for (b, e) in blocks.iter().enumerate() {
        let b = b as u32;
        let hash = match e.kind {
            Kind::Zero => zeros.of(geometry, b),
            Kind::Raw | Kind::Zstd => e.hash,
        };
        acc.add(b, &hash);
    }
    acc.finish(geometry)
}

/// What the sender is told about a block.
pub fn source(e: &MapEntry) -> BlockSource {
    match e.kind {
        Kind::Zero => BlockSource::Zero,
        Kind::Raw => BlockSource::Raw { hash: e.hash },
        Kind::Zstd => BlockSource::Zstd {
            hash: e.hash,
            coded_len: e.coded_len,
        },
    }
}

/// Tells the sender what block `b` holds; blocks come in order.
pub fn block_ready<A: bb_proto::sender::SourceAddr>(
    sender: &mut Sender<'_, A>,
    b: u32,
    e: &MapEntry,
) -> Result<(), String> {
    sender.block_ready(b, source(e)).map_err(|err| match err {
        bb_proto::sender::SenderError::DigestChanged => format!(
            "the image changed while it was served: its blocks, as the forward pass read them \
             (the last one: block {b}), do not add up to the image digest read at the start; \
             stopping rather than send data no client could verify (serve a copy or a \
             snapshot that nothing writes)"
        ),
        _ => format!("internal error giving block {b} to the sender: {err}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_of_a_map_is_the_senders() {
        let g = Geometry::new(10_000, 64, 32).unwrap(); // 5 blocks, the last short
        let data: Vec<u8> = (0..10_000u32)
            .map(|i| {
                if (2048..6144).contains(&i) {
                    0
                } else {
                    i as u8 | 1
                }
            })
            .collect();
        let entries: Vec<MapEntry> = (0..g.block_count())
            .map(|b| {
                let off = g.block_offset(b) as usize;
                let chunk = &data[off..off + g.block_len(b)];
                let zero = chunk.iter().all(|&x| x == 0);
                MapEntry {
                    kind: if zero { Kind::Zero } else { Kind::Raw },
                    coded_len: if zero { 0 } else { chunk.len() as u32 },
                    hash: if zero { [0; 32] } else { content_hash(chunk) },
                }
            })
            .collect();
        assert_eq!(entries[1].kind, Kind::Zero);
        // Every block hashed in full, zeros included.
        let mut acc = DigestAccumulator::new();
        for b in 0..g.block_count() {
            let off = g.block_offset(b) as usize;
            acc.add(b, &content_hash(&data[off..off + g.block_len(b)]));
        }
        assert_eq!(image_digest(&g, &entries), acc.finish(&g));
    }
}
