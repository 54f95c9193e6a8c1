//! A bound receiver fed arbitrary datagrams (CRC made valid half the time, so the field
//! checks are reached): never a panic, never a write outside the image.
#![no_main]

use bb_proto::receiver::{Receiver, ReceiverConfig, ReceiverStorage, Slot};
use bb_proto::wire::{self, Announce, AnnounceFlags, Geometry};
use libfuzzer_sys::fuzz_target;

#[path = "datagrams.rs"]
mod datagrams;
use datagrams::datagrams;

const SESSION: u64 = 7;

fuzz_target!(|input: &[u8]| {
    let g = Geometry::new(5000, 64, 8).unwrap();
    let (slot_bytes, esis, scratch) = Receiver::slot_needs(&g);
    let (mut done, mut pool, mut slots, mut esi_at, mut scr) =
        (vec![0u64; 1], vec![0u8; slot_bytes * 3], vec![Slot::FREE; 3], vec![0u16; esis * 3], vec![0u8; scratch]);
    // Short deadlines, so that inputs of a few dozen datagrams reach the timers too.
    let mut cfg = ReceiverConfig::new(1);
    cfg.silence_timeout_us = 20_000;
    cfg.ack_wait_us = 30_000;
    let mut rx = Receiver::new(
        cfg,
        ReceiverStorage { done: &mut done, pool: &mut pool, slots: &mut slots, esi_at: &mut esi_at, scratch: &mut scr },
        0,
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let a = Announce { geometry: g, flags: AnnounceFlags::NONE, seq: 0, report_interval_ms: 100, digest: None };
    let n = wire::write_announce(&mut buf, SESSION, &a).unwrap();
    rx.handle_datagram(0, &buf[..n]).unwrap();
    let mut now = 0u64;
    for (_, pkt) in datagrams(input, SESSION, None) {
        now += 1000;
        let _ = rx.handle_datagram(now, &pkt);
        if rx.poll_timeout(now).is_some_and(|t| t <= now) {
            rx.handle_timeout(now);
        }
        while let Some(w) = rx.poll_write() {
            assert!(w.offset + w.data.len() as u64 <= g.image_size);
            let b = w.block;
            rx.write_done(b);
        }
        let mut out = [0u8; 1500];
        let _ = rx.poll_transmit(now, 0, &mut out);
    }
});
