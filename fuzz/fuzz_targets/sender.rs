//! A sender fed arbitrary control datagrams between transmissions, over an image whose
//! blocks the input makes zero or raw: never a panic, every scheduled symbol belongs to a
//! non-zero block of the image, every zero map names exactly the zero blocks of its span,
//! and the transmissions, events and deadlines of one instant are bounded.
#![no_main]

use bb_proto::deficit::DeficitTree;
use bb_proto::digest::content_hash;
use bb_proto::sender::{BlockSource, Sender, SenderConfig, SenderStorage, Transmit};
use bb_proto::wire::{self, Geometry, PacketType};
use libfuzzer_sys::fuzz_target;

#[path = "common/datagrams.rs"]
mod datagrams;
use datagrams::datagrams;

const SESSION: u64 = 9;

fuzz_target!(|input: &[u8]| {
    // The first byte says which blocks are zero (bit b for block b), the rest is datagrams.
    let Some((&zero_mask, input)) = input.split_first() else {
        return;
    };
    let g = Geometry::new(64 * 8 * 6 + 100, 64, 8).unwrap();
    let n = g.block_count();
    let is_zero = |b: u32| zero_mask >> b & 1 == 1;
    let tree = DeficitTree::storage_len(n);
    let (mut a, mut b, mut esi, mut checks, mut coded_len, mut clients) = (
        vec![0u16; tree],
        vec![0u16; tree],
        vec![0u16; n as usize],
        vec![0u32; n as usize],
        vec![0u32; n as usize],
        vec![None; 4],
    );
    let st = SenderStorage {
        repair_tree: &mut a,
        resend_tree: &mut b,
        next_repair_esi: &mut esi,
        block_checks: &mut checks,
        coded_len: &mut coded_len,
        clients: &mut clients,
    };
    let mut s = Sender::<u8>::new(SenderConfig::new(SESSION, g), st, 0).unwrap();
    // Each raw block's coded bytes: its image bytes padded with zeros to whole symbols.
    let mut coded = Vec::with_capacity(n as usize);
    for block in 0..n {
        let len = g.block_len(block);
        let mut bytes = vec![0u8; g.block_k(block) as usize * 64];
        bytes[..len].fill(0x5a ^ block as u8);
        let src = if is_zero(block) {
            BlockSource::Zero
        } else {
            BlockSource::Raw {
                hash: content_hash(&bytes[..len]),
            }
        };
        s.block_ready(block, src).unwrap();
        coded.push(bytes);
    }
    assert_eq!(s.blocks_ready(), n);
    let mut buf = vec![0u8; 2000];
    let mut now = 0u64;
    // Bounded work per step: the pacer's bucket holds at most this many of the smallest
    // datagrams, plus one result ack per client row, an announce and a zero map.
    let depth = s.config().burst_bytes.max(2 * 9000);
    let per_step = (depth / (wire::DATA_OVERHEAD as u64 + 64)) as usize + 4 + 2;
    for (fix, pkt) in datagrams(
        input,
        SESSION,
        &[PacketType::Status as u8, PacketType::Result as u8],
    ) {
        let _ = s.handle_datagram(now, fix, &pkt);
        if s.poll_timeout(now).is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
        let mut sent = 0usize;
        while let Some(t) = s.poll_transmit(now) {
            sent += 1;
            assert!(
                sent <= per_step,
                "more than {per_step} transmissions in one instant"
            );
            match t {
                Transmit::Symbol { block, esi, seq } => {
                    assert!(block < n && !is_zero(block), "symbol of block {block}");
                    s.build_symbol(block, esi, seq, &coded[block as usize], &mut buf)
                        .unwrap();
                }
                Transmit::ZeroMap => {
                    let len = s.build_zero_map(&mut buf).unwrap();
                    let m = wire::open(&buf[..len]).unwrap().zero_map().unwrap();
                    assert!(m.span_end <= n);
                    let mut named = m.span_first;
                    for r in m.ranges() {
                        assert!((named..r.first).all(|b| !is_zero(b)), "zero block left out");
                        assert!(
                            (r.first..r.end() as u32).all(is_zero),
                            "data block named zero"
                        );
                        named = r.end() as u32;
                    }
                    assert!(
                        (named..m.span_end).all(|b| !is_zero(b)),
                        "zero block left out"
                    );
                }
                Transmit::Announce => {
                    let len = s.build_announce(&mut buf).unwrap();
                    wire::open(&buf[..len]).unwrap().announce().unwrap();
                }
                Transmit::ResultAck { client_id, .. } => {
                    s.build_result_ack(client_id, &mut buf).unwrap();
                }
            }
        }
        let mut events = 0;
        while s.poll_event().is_some() {
            events += 1;
            assert!(events <= 64, "events do not stop");
        }
        // Time moves on by what the flags say: to the next deadline (which must lie ahead
        // once everything due was sent), or by a few milliseconds.
        if fix & 0x80 != 0 {
            match s.poll_timeout(now) {
                Some(t) => {
                    assert!(t > now, "a deadline in the past after the transmissions");
                    now = t;
                }
                None => return,
            }
        } else {
            now += 1000 * (1 + (fix >> 1 & 7) as u64);
        }
    }
});
