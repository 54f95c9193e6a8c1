//! A sender fed arbitrary control datagrams between transmissions: never a panic, every
//! scheduled symbol belongs to the image.
#![no_main]

use bb_proto::deficit::DeficitTree;
use bb_proto::sender::{Sender, SenderConfig, SenderStorage, Transmit};
use bb_proto::wire::Geometry;
use libfuzzer_sys::fuzz_target;

#[path = "datagrams.rs"]
mod datagrams;
use datagrams::datagrams;

const SESSION: u64 = 9;

fuzz_target!(|input: &[u8]| {
    let g = Geometry::new(64 * 8 * 6 + 100, 64, 8).unwrap();
    let n = g.block_count();
    let tree = DeficitTree::storage_len(n);
    let (mut a, mut b, mut esi, mut checks, mut clients) =
        (vec![0u16; tree], vec![0u16; tree], vec![0u16; n as usize], vec![0u32; n as usize], vec![None; 4]);
    let st = SenderStorage { repair_tree: &mut a, resend_tree: &mut b, next_repair_esi: &mut esi, block_checks: &mut checks, clients: &mut clients };
    let mut s = Sender::<u8>::new(SenderConfig::new(SESSION, g), st, 0).unwrap();
    let image = vec![0x5au8; g.block_bytes() as usize];
    let mut buf = vec![0u8; 2000];
    let mut now = 0u64;
    for (fix, pkt) in datagrams(input, SESSION, Some(3)) {
        let _ = s.handle_datagram(now, fix, &pkt);
        s.handle_timeout(now);
        for _ in 0..(fix as usize % 16) {
            match s.poll_transmit(now) {
                Some(Transmit::Symbol { block, esi, seq }) => {
                    assert!(block < n);
                    let k = g.block_k(block) as usize * 64;
                    s.build_symbol(block, esi, seq, &image[..k], &mut buf).unwrap();
                }
                Some(_) => {}
                None => match s.poll_timeout(now) {
                    Some(t) => {
                        assert!(t > now, "a deadline in the past after the transmissions");
                        now = t;
                        s.handle_timeout(now);
                    }
                    None => return,
                },
            }
        }
        while s.poll_event().is_some() {}
        now += 5000;
    }
});
