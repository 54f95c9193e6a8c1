//! The sender's cost of one status report in its worst case: the most deficit ranges a
//! report holds, while the most repair bursts are in flight that the report has not seen
//! (each one a block the report names, so its pending counts are saved and restored).
//! Printed in microseconds per report, beside a report with one range and one with none.

use std::hint::black_box;
use std::time::Instant;

use bb_proto::digest::content_hash;
use bb_proto::sender::{BlockSource, ClientInfo, Sender, SenderConfig, SenderStorage, Transmit};
use bb_proto::wire::{self, ClientPhase, DeficitRange, Geometry, MAX_RANGES, StatusHead};

const SESSION: u64 = 1;
/// Blocks with a repair burst in flight (every other block from 0).
const BURSTS: u32 = 256;

fn status(last_seq: u32, ranges: &[DeficitRange]) -> Vec<u8> {
    let head = StatusHead {
        client_id: 1,
        report_seq: 0,
        last_seq,
        blocks_done: 0,
        loss_ppm: 0,
        phase: ClientPhase::Receiving,
        resumed: false,
        interval_received: 0,
        last_seq_age_us: 0,
    };
    let mut buf = vec![0u8; 1500];
    let n = wire::write_status(&mut buf, SESSION, &head, ranges).unwrap();
    buf.truncate(n);
    buf
}

/// Sends until `done`; returns the last data sequence number sent.
fn run(
    s: &mut Sender<'_, u32>,
    now: &mut u64,
    mut done: impl FnMut(&Sender<'_, u32>, u32) -> bool,
) -> u32 {
    let mut last = 0;
    let mut sent = 0;
    while !done(s, sent) {
        s.handle_timeout(*now);
        match s.poll_transmit(*now) {
            Some(Transmit::Symbol { seq, .. }) => {
                last = seq;
                sent += 1;
            }
            Some(_) => {}
            None => *now = s.poll_timeout(*now).unwrap().max(*now + 1),
        }
    }
    last
}

fn per_report_us(s: &mut Sender<'_, u32>, now: &mut u64, pkt: &[u8]) -> f64 {
    // Best of 5 windows of 2000 reports: robust to noisy neighbours.
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..2000 {
            *now += 1_000_000;
            black_box(s.handle_datagram(*now, 1, black_box(pkt))).unwrap();
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / 2000.0);
    }
    best
}

pub fn bench_status() {
    // 4 GiB in blocks of 64 x 1408 B: 47,663 blocks.
    let g = Geometry::new(4 << 30, 1408, 64).unwrap();
    let (tree, n) = SenderStorage::<u32>::words(&g);
    let (mut a, mut b) = (vec![0u16; tree], vec![0u16; tree]);
    let (mut esi, mut checks, mut coded) = (vec![0u16; n], vec![0u32; n], vec![0u32; n]);
    let mut clients: Vec<Option<ClientInfo<u32>>> = vec![None; 4096];
    let mut c = SenderConfig::new(SESSION, g);
    c.rate_bps = 1 << 50;
    c.adapt_rate = false;
    c.proactive_repair = false;
    // Bursts stay in flight however long the measurement takes, and each report comes a
    // second after the last, within the client timeout (the sender applies one client's ranges at most every eighth
    // of the report interval).
    c.in_flight_us = 24 * 3600 * 1_000_000;
    c.client_timeout_us = c.in_flight_us;
    let st = SenderStorage {
        repair_tree: &mut a,
        resend_tree: &mut b,
        next_repair_esi: &mut esi,
        block_checks: &mut checks,
        coded_len: &mut coded,
        clients: &mut clients,
    };
    let mut s = Sender::new(c, st, 0).unwrap();
    for blk in 0..g.block_count() {
        let hash = content_hash(&blk.to_le_bytes());
        s.block_ready(blk, BlockSource::Raw { hash }).unwrap();
    }
    let mut now = 0;
    let seen = run(&mut s, &mut now, |s, _| s.forward_done());
    // One symbol lacking in every other block of the first 512: a burst each.
    let wanted: Vec<DeficitRange> = (0..BURSTS)
        .map(|i| DeficitRange {
            first: 2 * i,
            len: 1,
            deficit: 1,
        })
        .collect();
    for chunk in wanted.chunks(MAX_RANGES) {
        now += 1_000_000;
        s.handle_datagram(now, 1, &status(seen, chunk)).unwrap();
    }
    run(&mut s, &mut now, |_, sent| sent >= BURSTS);
    // The report: MAX_RANGES ranges of 3 blocks, [4j, 4j + 3), covering every burst.
    let worst: Vec<DeficitRange> = (0..MAX_RANGES as u32)
        .map(|j| DeficitRange {
            first: 4 * j,
            len: 3,
            deficit: 1,
        })
        .collect();
    let figures = [
        ("no range", status(seen, &[])),
        ("1 range", status(seen, &worst[..1])),
        ("max ranges", status(seen, &worst)),
    ];
    for (what, pkt) in &figures {
        let us = per_report_us(&mut s, &mut now, pkt);
        println!(
            "status report, {what} ({} ranges, {BURSTS} unseen bursts, {} blocks): {us:.2} us",
            wire::open(pkt).unwrap().status().unwrap().range_count(),
            g.block_count()
        );
    }
    assert_eq!(
        s.stats().ranges_too_soon,
        0,
        "every report measured was applied"
    );
}
