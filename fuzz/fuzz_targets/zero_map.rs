//! Zero maps into a bound receiver of 300 blocks: each input chunk becomes a zero map of the
//! session, its ranges made ascending and inside the span half the time (so that most are
//! accepted) and left as fuzzed otherwise. The invariants of common/rx.rs: zeros written
//! only over blocks a map named, each block once, never past the image.
#![no_main]

use bb_proto::wire::{self, Geometry, ZeroRange};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "common/rx.rs"]
mod rx;

/// `[flags u8][span_first u16][span_len u16][n u8][n x (gap u8, blocks u8)]` per map.
fn zero_maps(mut input: &[u8]) -> Vec<Vec<u8>> {
    let mut maps = Vec::new();
    while input.len() >= 6 {
        let flags = input[0];
        let span_first = u16::from_le_bytes([input[1], input[2]]) as u32;
        let span_len = u16::from_le_bytes([input[3], input[4]]) as u32;
        let n = (input[5] as usize).min((input.len() - 6) / 2);
        let pairs = &input[6..6 + 2 * n];
        input = &input[6 + 2 * n..];
        let span_end = span_first.saturating_add(span_len);
        let mut ranges = Vec::with_capacity(n);
        let mut at = span_first;
        for pair in pairs.chunks_exact(2) {
            let (gap, len) = (pair[0] as u32, pair[1] as u32);
            if flags & 1 == 1 {
                // Well-formed: ascending, non-empty, inside the span.
                let first = at.saturating_add(gap);
                let blocks = len.max(1).min(span_end.saturating_sub(first));
                if blocks == 0 {
                    break;
                }
                ranges.push(ZeroRange { first, blocks });
                at = first + blocks;
            } else {
                ranges.push(ZeroRange {
                    first: span_first.wrapping_add(gap * 7),
                    blocks: len,
                });
            }
        }
        ranges.truncate(wire::MAX_ZERO_RANGES);
        let mut buf = vec![0u8; 1500];
        let len =
            wire::write_zero_map(&mut buf, rx::SESSION, span_first, span_end, &ranges).unwrap();
        buf.truncate(len);
        maps.push(buf);
    }
    maps
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, input)) = input.split_first() else {
        return;
    };
    // 300 blocks of 64 bytes, the last one short.
    let g = Geometry::new(300 * 64 - 10, 64, 1).unwrap();
    rx::run(
        g,
        mode & 1 == 1,
        mode & 2 == 2,
        None,
        zero_maps(input).into_iter().map(|m| (m, true)),
    );
});
