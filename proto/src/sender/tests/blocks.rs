//! The block map: blocks given in order, zero blocks skipped, coded blocks, zero maps.

use super::*;

#[test]
fn the_forward_pass_waits_for_blocks_and_skips_zero_ones() {
    let g = Geometry::new(64 * 4 * 6, 64, 4).unwrap(); // 6 blocks of 4 symbols
    let mut st = store(&g);
    let mut s = sender_without_blocks(&mut st, cfg(g));
    let raw = |b: u32| BlockSource::Raw {
        hash: crate::digest::content_hash(&[b as u8]),
    };
    assert_eq!(
        s.block_ready(1, raw(1)),
        Err(SenderError::BlockOutOfOrder),
        "blocks come in order"
    );
    s.block_ready(0, raw(0)).unwrap();
    s.block_ready(1, BlockSource::Zero).unwrap();
    let mut now = 0;
    // Block 0 only: the pass stops where the given blocks end.
    assert_eq!(
        drain(&mut s, &mut now, 10),
        (0..4).map(|e| (0, e)).collect::<Vec<_>>()
    );
    assert!(!s.forward_done());
    assert_eq!(s.digest(), None);
    s.block_ready(2, raw(2)).unwrap();
    for b in 3..5 {
        s.block_ready(b, BlockSource::Zero).unwrap();
    }
    s.block_ready(5, raw(5)).unwrap();
    assert!(s.digest().is_some(), "known once every block is given");
    let rest = drain(&mut s, &mut now, 8);
    let want: Vec<(u32, u16)> = [2u32, 5]
        .iter()
        .flat_map(|&b| (0..4).map(move |e| (b, e)))
        .collect();
    assert_eq!(rest, want, "zero blocks 1, 3, 4 are never sent");
    assert!(s.forward_done());
    assert_eq!(s.zero_blocks(), 3);
}

#[test]
fn a_compressed_block_sends_only_its_coded_symbols() {
    let g = Geometry::new(64 * 8 * 2, 64, 8).unwrap(); // 2 blocks of 8 symbols
    let mut st = store(&g);
    let mut s = sender_without_blocks(&mut st, cfg(g));
    let hash = [7u8; 32];
    assert_eq!(
        s.block_ready(
            0,
            BlockSource::Zstd {
                hash,
                coded_len: 512
            }
        ),
        Err(SenderError::BadCodedLength),
        "a frame as long as the block is sent raw instead"
    );
    s.block_ready(
        0,
        BlockSource::Zstd {
            hash,
            coded_len: 130,
        },
    )
    .unwrap();
    s.block_ready(1, BlockSource::Raw { hash }).unwrap();
    let mut now = 0;
    let syms = drain(&mut s, &mut now, 11);
    let mut want: Vec<(u32, u16)> = (0..3).map(|e| (0, e)).collect(); // ceil(130 / 64)
    want.extend((0..8).map(|e| (1, e)));
    assert_eq!(syms, want);
    // The packets carry the encoding and the coded length.
    let mut buf = vec![0u8; 200];
    let coded = vec![1u8; 3 * 64];
    let n = s.build_symbol(0, 1, 99, &coded, &mut buf).unwrap();
    let d = wire::open(&buf[..n]).unwrap().data().unwrap();
    assert_eq!(
        (d.head.encoding, d.head.coded_len),
        (wire::Encoding::Zstd, 130)
    );
    assert_eq!(
        s.build_symbol(0, 1, 99, &coded[..128], &mut buf),
        Err(SenderError::BadBlock),
        "the coded bytes padded to the coded symbols, nothing else"
    );
}

/// Gives 1000 blocks, every third one zero: 334 ranges, more than one zero map holds.
fn every_third_block_zero(s: &mut Sender<'_, u32>) {
    for b in 0..1000 {
        let src = if b % 3 == 0 {
            BlockSource::Zero
        } else {
            BlockSource::Raw { hash: [1; 32] }
        };
        s.block_ready(b, src).unwrap();
    }
}

#[test]
fn zero_maps_cycle_through_every_zero_block() {
    let g = Geometry::new(64 * 2 * 1000, 64, 2).unwrap(); // 1000 blocks
    let mut st = store(&g);
    let mut s = sender_without_blocks(&mut st, cfg(g));
    every_third_block_zero(&mut s);
    let mut seen = vec![false; 1000];
    let mut covered = vec![false; 1000];
    let mut buf = vec![0u8; 1500];
    for _ in 0..4 {
        let n = s.build_zero_map(&mut buf).unwrap();
        assert!(n <= 1472, "fits a 1500-byte MTU");
        let m = wire::open(&buf[..n]).unwrap().zero_map().unwrap();
        for b in m.span_first..m.span_end {
            covered[b as usize] = true;
        }
        for r in m.ranges() {
            for b in r.first..r.end() as u32 {
                seen[b as usize] = true;
            }
        }
    }
    assert!(covered.iter().all(|&c| c), "the spans cover the image");
    assert!(
        (0..1000).all(|b| seen[b] == (b % 3 == 0)),
        "exactly the zero blocks"
    );
}

#[test]
fn zero_blocks_are_announced_before_the_data_that_follows_them() {
    let g = Geometry::new(64 * 2 * 300, 64, 2).unwrap(); // 300 blocks
    let mut st = store(&g);
    let mut s = sender_without_blocks(&mut st, cfg(g));
    let raw = BlockSource::Raw { hash: [1; 32] };
    let mut now = 0;
    let mut buf = vec![0u8; 1500];
    // Give blocks a few at a time, every fourth one zero, as a pipeline would, and check
    // that each zero block is in a zero map before a symbol of a later block goes out.
    let mut known_zero = vec![false; 300];
    let mut given = 0u32;
    while !s.forward_done() {
        while given < 300 && given < s.forward_blocks_done() + 4 {
            let src = if given % 4 == 3 {
                BlockSource::Zero
            } else {
                raw
            };
            s.block_ready(given, src).unwrap();
            given += 1;
        }
        s.handle_timeout(now);
        match s.poll_transmit(now) {
            Some(Transmit::ZeroMap) => {
                let n = s.build_zero_map(&mut buf).unwrap();
                let m = wire::open(&buf[..n]).unwrap().zero_map().unwrap();
                for r in m.ranges() {
                    for b in r.first..r.end() as u32 {
                        known_zero[b as usize] = true;
                    }
                }
            }
            Some(Transmit::Symbol { block, .. }) => {
                for z in (3..block).step_by(4) {
                    assert!(
                        known_zero[z as usize],
                        "block {z} announced before block {block}"
                    );
                }
            }
            Some(_) => {}
            None => now = s.poll_timeout(now).unwrap().max(now + 1),
        }
    }
}

#[test]
fn a_client_missing_a_zero_block_gets_the_span_that_names_it_next() {
    let g = Geometry::new(64 * 2 * 1000, 64, 2).unwrap(); // 1000 blocks
    let mut st = store(&g);
    let mut s = sender_without_blocks(&mut st, cfg(g));
    every_third_block_zero(&mut s);
    let mut buf = vec![0u8; 1500];
    let span = |s: &mut Sender<'_, u32>, buf: &mut Vec<u8>| {
        let n = s.build_zero_map(buf).unwrap();
        let m = wire::open(&buf[..n]).unwrap().zero_map().unwrap();
        (m.span_first, m.span_end)
    };
    assert_eq!(span(&mut s, &mut buf).0, 0);
    // A late joiner reports blocks 600.. missing, 600 being zero: it is named next.
    let missing = [DeficitRange {
        first: 600,
        len: 10,
        deficit: 2,
    }];
    s.handle_datagram(0, 5, &status(7, 5, 0, &missing)).unwrap();
    assert_eq!(span(&mut s, &mut buf).0, 600);
    // Then the map goes on where it was.
    assert!(span(&mut s, &mut buf).0 < 600);
}

#[test]
fn a_digest_known_ahead_is_announced_at_once_and_the_blocks_must_add_up_to_it() {
    let g = Geometry::new(64 * 4 * 3, 64, 4).unwrap();
    let hashes: Vec<[u8; 32]> = (0..3u8)
        .map(|b| crate::digest::content_hash(&[b]))
        .collect();
    // The digest of the three blocks, as a sender that was given them computes it.
    let digest = {
        let mut st = store(&g);
        let mut s = sender_without_blocks(&mut st, cfg(g));
        for (b, hash) in hashes.iter().enumerate() {
            s.block_ready(b as u32, BlockSource::Raw { hash: *hash })
                .unwrap();
        }
        *s.digest().unwrap()
    };
    for changed in [false, true] {
        let mut st = store(&g);
        let mut s = sender_without_blocks(&mut st, cfg(g));
        s.expect_digest(digest);
        assert_eq!(s.digest(), Some(&digest), "announced before any block");
        let mut buf = vec![0u8; 200];
        let n = s.build_announce(&mut buf).unwrap();
        let a = wire::open(&buf[..n]).unwrap().announce().unwrap();
        assert_eq!(a.digest, Some(digest));
        s.block_ready(0, BlockSource::Raw { hash: hashes[0] })
            .unwrap();
        s.block_ready(1, BlockSource::Raw { hash: hashes[1] })
            .unwrap();
        let last = if changed {
            crate::digest::content_hash(b"written while served")
        } else {
            hashes[2]
        };
        let r = s.block_ready(2, BlockSource::Raw { hash: last });
        if changed {
            assert_eq!(r, Err(SenderError::DigestChanged));
        } else {
            assert_eq!(r, Ok(()));
        }
    }
}
