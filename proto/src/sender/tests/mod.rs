//! Unit tests of the sender through its public API: the schedule, pacing, results and
//! datagrams here; the session's life in `session`, the block map in `blocks`.

mod blocks;
mod forged;
mod session;

use super::*;
use crate::wire::{ClientPhase, DeficitRange, Geometry, StatusHead};

struct Store {
    a: Vec<u16>,
    b: Vec<u16>,
    esi: Vec<u16>,
    checks: Vec<u32>,
    coded: Vec<u32>,
    clients: Vec<Option<ClientInfo<u32>>>,
}

fn store(g: &Geometry) -> Store {
    let (tree, n) = SenderStorage::<u32>::words(g);
    Store {
        a: vec![0; tree],
        b: vec![0; tree],
        esi: vec![0; n],
        checks: vec![0; n],
        coded: vec![0; n],
        clients: vec![None; 8],
    }
}

/// A sender with every block given (raw, as from a prepared image).
fn sender<'a>(s: &'a mut Store, cfg: SenderConfig) -> Sender<'a, u32> {
    let mut sender = sender_without_blocks(s, cfg);
    for b in 0..cfg.geometry.block_count() {
        let hash = crate::digest::content_hash(&[b as u8]);
        sender.block_ready(b, BlockSource::Raw { hash }).unwrap();
    }
    sender
}

fn sender_without_blocks<'a>(s: &'a mut Store, cfg: SenderConfig) -> Sender<'a, u32> {
    let st = SenderStorage {
        repair_tree: &mut s.a,
        resend_tree: &mut s.b,
        next_repair_esi: &mut s.esi,
        block_checks: &mut s.checks,
        coded_len: &mut s.coded,
        clients: &mut s.clients,
    };
    Sender::new(cfg, st, 0).unwrap()
}

fn status_packet(session: u64, head: StatusHead, ranges: &[DeficitRange]) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let n = wire::write_status(&mut buf, session, &head, ranges).unwrap();
    buf.truncate(n);
    buf
}

fn head(id: u64, last_seq: u32, blocks_done: u32, phase: ClientPhase) -> StatusHead {
    StatusHead {
        client_id: id,
        report_seq: 0,
        last_seq,
        blocks_done,
        loss_ppm: 0,
        phase,
        resumed: false,
        interval_received: 0,
        last_seq_age_us: 0,
    }
}

fn status(session: u64, id: u64, last_seq: u32, ranges: &[DeficitRange]) -> Vec<u8> {
    status_packet(
        session,
        head(id, last_seq, 0, ClientPhase::Receiving),
        ranges,
    )
}

/// One step of the shell's loop: what is due, then one transmission, or a jump in time to
/// the sender's next deadline.
fn step(s: &mut Sender<'_, u32>, now: &mut u64) -> Option<Transmit<u32>> {
    s.handle_timeout(*now);
    let t = s.poll_transmit(*now);
    if t.is_none()
        && let Some(at) = s.poll_timeout(*now)
    {
        *now = at.max(*now + 1);
    }
    t
}

/// Drives the sender with ample time; returns the symbols it schedules.
fn drain(s: &mut Sender<'_, u32>, now: &mut u64, max: usize) -> Vec<(u32, u16)> {
    let mut out = vec![];
    for _ in 0..max * 4 {
        if let Some(Transmit::Symbol { block, esi, .. }) = step(s, now) {
            out.push((block, esi));
        }
        if out.len() == max {
            break;
        }
    }
    out
}

fn cfg(g: Geometry) -> SenderConfig {
    let mut c = SenderConfig::new(7, g);
    c.rate_bps = 1_000_000_000;
    c.proactive_repair = false;
    c.adapt_rate = false;
    c
}

#[test]
fn forward_pass_sends_every_source_symbol_once_in_order() {
    let g = Geometry::new(64 * 10 + 5, 64, 4).unwrap(); // 3 blocks: 4, 4, 3 symbols
    let mut st = store(&g);
    let mut s = sender(&mut st, cfg(g));
    let mut now = 0;
    let syms = drain(&mut s, &mut now, 11);
    let want: Vec<(u32, u16)> = [
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 0),
        (2, 1),
        (2, 2),
    ]
    .to_vec();
    assert_eq!(syms, want);
    assert!(s.forward_done());
    assert!(s.is_idle());
}

/// Proactive repair symbols per block of a forward pass at `rate_bps`, blocks of 64 symbols
/// of 64 bytes given as `kinds` (false: raw data, true: zero), one client losing 5%.
fn proactive_per_block(rate_bps: u64, kinds: &[bool]) -> Vec<u32> {
    let g = Geometry::new(64 * 64 * kinds.len() as u64, 64, 64).unwrap();
    let mut c = cfg(g);
    c.rate_bps = rate_bps;
    c.proactive_repair = true;
    let mut st = store(&g);
    let mut s = sender_without_blocks(&mut st, c);
    for (b, &zero) in kinds.iter().enumerate() {
        let hash = crate::digest::content_hash(&[b as u8]);
        let src = match zero {
            true => BlockSource::Zero,
            false => BlockSource::Raw { hash },
        };
        s.block_ready(b as u32, src).unwrap();
    }
    let mut now = 0;
    // A loss figure counts from a client's second report on.
    for report_seq in 0..2 {
        let mut h = head(1, 0, 0, ClientPhase::Receiving);
        (h.report_seq, h.loss_ppm) = (report_seq, 50_000);
        s.handle_datagram(now, 1, &status_packet(7, h, &[]))
            .unwrap();
        now += 20_000;
    }
    let mut repairs = vec![0u32; kinds.len()];
    for (block, esi) in drain(&mut s, &mut now, 4000) {
        if esi >= 64 {
            repairs[block as usize] += 1;
        }
    }
    assert!(s.forward_done());
    repairs
}

// 5% of 64 symbols, one client: mean 3.2, deviation 1.74; z = 1 in the body of the pass (4
// proactive symbols), z = 3 in the tail (8).
const BODY: u32 = 4;
const TAIL: u32 = 8;

#[test]
fn the_last_four_data_blocks_get_more_proactive_repair() {
    // At 1 Mbit/s two report intervals (200 ms) carry about 240 packets, under four blocks:
    // the last four blocks are the tail.
    let repairs = proactive_per_block(1_000_000, &[false; 12]);
    assert_eq!(repairs[..8], [BODY; 8]);
    assert_eq!(repairs[8..], [TAIL; 4]);
}

#[test]
fn an_overrun_before_the_links_loss_is_known_sizes_no_repair_beyond_a_few_per_cent() {
    // The startup's overrun of slow links: clients report 40% loss before the rate
    // control has learned what their links lose at any rate.
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let estimate = |adapt: bool| {
        let mut st = store(&g);
        let mut s = sender(&mut st, if adapt { adapting(g) } else { cfg(g) });
        for _ in 0..2 {
            for id in [1u64, 2, 3] {
                let mut h = head(id, 0, 0, ClientPhase::Receiving);
                h.loss_ppm = 400_000;
                s.handle_datagram(0, id as u32, &status_packet(7, h, &[]))
                    .unwrap();
            }
        }
        s.handle_timeout(1);
        s.loss_estimate_ppm()
    };
    assert_eq!(estimate(true), 50_000);
    // At a fixed rate nothing else will end the loss: the repair follows it.
    assert_eq!(estimate(false), 400_000);
}

#[test]
fn the_tail_is_what_the_rate_sends_in_two_report_intervals() {
    // At 4 Mbit/s two report intervals carry 961 packets of 104 bytes: blocks followed by
    // fewer source symbols, fifteen blocks' worth (960), are the tail.
    let repairs = proactive_per_block(4_000_000, &[false; 24]);
    assert_eq!(repairs[..8], [BODY; 8]);
    assert_eq!(repairs[8..], [TAIL; 16]);
}

#[test]
fn zero_blocks_after_the_data_do_not_hide_the_tail() {
    // Data at the front of a disk, its free space zero: the last data blocks are the end of
    // the pass, however many zero blocks follow (and zero blocks between count nothing).
    let mut kinds = vec![true; 5012];
    kinds[..6].fill(false);
    kinds[100..106].fill(false);
    let repairs = proactive_per_block(1_000_000, &kinds);
    let data: Vec<u32> = (0..6).chain(100..106).map(|b| repairs[b]).collect();
    assert_eq!(
        data,
        [
            BODY, BODY, BODY, BODY, BODY, BODY, BODY, BODY, TAIL, TAIL, TAIL, TAIL
        ]
    );
    assert_eq!(repairs.iter().sum::<u32>(), 8 * BODY + 4 * TAIL);
}

#[test]
fn deficit_is_max_over_clients_and_repairs_are_fresh() {
    let g = Geometry::new(64 * 64, 64, 32).unwrap();
    let mut st = store(&g);
    let mut s = sender(&mut st, cfg(g));
    let mut now = 0;
    drain(&mut s, &mut now, 64);
    let r = |d| {
        [DeficitRange {
            first: 0,
            len: 1,
            deficit: d,
        }]
    };
    s.handle_datagram(now, 1, &status(7, 1, 100, &r(2)))
        .unwrap();
    s.handle_datagram(now, 2, &status(7, 2, 100, &r(3)))
        .unwrap();
    s.handle_datagram(now, 3, &status(7, 3, 100, &r(1)))
        .unwrap();
    let syms = drain(&mut s, &mut now, 3);
    assert_eq!(syms, vec![(0, 32), (0, 33), (0, 34)]);
    assert!(s.is_idle());
    // A later report that predates that burst (last_seq before it) is suppressed. (Each
    // comes at least an eighth of the report interval after the client's last one, as
    // from a real client: sooner, its ranges would be ignored.)
    now += 30_000;
    let suppressed = s.stats().suppressed;
    s.handle_datagram(now, 1, &status(7, 1, 7, &r(2))).unwrap();
    assert!(s.is_idle());
    assert_eq!(s.stats().suppressed, suppressed + 1);
    // One that saw the burst and still lacks a symbol gets a fresh one.
    now += 30_000;
    s.handle_datagram(now, 1, &status(7, 1, 200, &r(1)))
        .unwrap();
    assert_eq!(drain(&mut s, &mut now, 1), vec![(0, 35)]);
}

#[test]
fn whole_block_resends_wait_for_the_end_of_the_forward_pass() {
    let g = Geometry::new(64 * 4 * 6, 64, 4).unwrap(); // 6 blocks
    let mut st = store(&g);
    let mut s = sender(&mut st, cfg(g));
    let mut now = 0;
    drain(&mut s, &mut now, 12); // blocks 0..3 sent
    // A late joiner lacks blocks 0..3 entirely (and claims 3.. too, which is clipped).
    let late = [DeficitRange {
        first: 0,
        len: 6,
        deficit: 4,
    }];
    s.handle_datagram(now, 9, &status(7, 9, 12, &late)).unwrap();
    let rest = drain(&mut s, &mut now, 12 + 12);
    // First the forward pass finishes blocks 3..6, then blocks 0..3 come again as sources.
    let fwd: Vec<(u32, u16)> = (3..6).flat_map(|b| (0..4).map(move |e| (b, e))).collect();
    let again: Vec<(u32, u16)> = (0..3).flat_map(|b| (0..4).map(move |e| (b, e))).collect();
    assert_eq!(&rest[..12], &fwd[..]);
    assert_eq!(&rest[12..], &again[..]);
    assert!(s.is_idle());
}

#[test]
fn a_deferred_deficit_is_repaired_while_that_costs_less_than_resending_the_block() {
    // 2 blocks of 512 x 1408 bytes; after the pass a client lacks `deficit` of block 0.
    // Sources again when the duplicates cost the wire less than decoding the missing
    // sources costs the client (34 us each here), from a quarter of the block.
    let g = Geometry::new(1408 * 512 * 2, 1408, 512).unwrap();
    let served = |rate_bps: u64, deficit: u16| {
        let mut st = store(&g);
        let mut c = cfg(g);
        c.rate_bps = rate_bps;
        let mut s = sender(&mut st, c);
        let mut now = 0;
        drain(&mut s, &mut now, 1024);
        let lacks = [DeficitRange {
            first: 0,
            len: 1,
            deficit,
        }];
        s.handle_datagram(now, 9, &status(7, 9, 1024, &lacks))
            .unwrap();
        let esis: Vec<u16> = drain(&mut s, &mut now, 600)
            .into_iter()
            .map(|(block, esi)| {
                assert_eq!(block, 0);
                esi
            })
            .collect();
        match esis.first() {
            Some(0) => {
                assert_eq!(esis, (0..512).collect::<Vec<u16>>());
                "sources"
            }
            _ => {
                assert_eq!(esis, (512..512 + deficit).collect::<Vec<u16>>());
                "repairs"
            }
        }
    };
    // 20 Mbit/s: a packet takes 600 us, far more than a decode: repairs up to 484 of 512
    // (a startup overshoot's loss of the first block).
    assert_eq!(served(20_000_000, 300), "repairs");
    assert_eq!(served(20_000_000, 484), "repairs");
    assert_eq!(served(20_000_000, 485), "sources");
    // 1 Gbit/s: 12 us a packet, break-even at about a quarter and a tenth of the block.
    assert_eq!(served(1_000_000_000, 120), "repairs");
    assert_eq!(served(1_000_000_000, 150), "sources");
    // 10 Gbit/s: below a quarter it is always repairs.
    assert_eq!(served(10_000_000_000, 128), "repairs");
    assert_eq!(served(10_000_000_000, 129), "sources");
}

#[test]
fn pacing_holds_the_rate() {
    let g = Geometry::new(1408 * 512 * 4, 1408, 512).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.rate_bps = 100_000_000;
    let mut s = sender(&mut st, c);
    let mut now = 0;
    drain(&mut s, &mut now, 2000);
    let bits = s.stats().bytes as f64 * 8.0;
    let rate = bits / (now as f64 / 1e6);
    // Burst credit lets the start run slightly ahead; over 2000 packets it must be close.
    assert!(rate < 100e6 * 1.05 && rate > 90e6, "rate {rate}");
}

#[test]
fn a_room_finishing_at_once_is_acknowledged_in_full() {
    // 48 clients whose results arrive together (the last repair completed every one of
    // them): each is acknowledged once, before any data, none left to its repeat.
    let g = Geometry::new(64 * 4, 64, 4).unwrap();
    let mut st = store(&g);
    st.clients = vec![None; 64];
    let mut s = sender(&mut st, cfg(g));
    let mut buf = vec![0u8; 2000];
    let block = vec![5u8; 256];
    let mut now = 0;
    while !s.forward_done() {
        if let Some(Transmit::Symbol { block: b, esi, seq }) = step(&mut s, &mut now) {
            s.build_symbol(b, esi, seq, &block, &mut buf).unwrap();
        }
    }
    let clients = 1..=48u64;
    for id in clients.clone() {
        s.handle_datagram(now, id as u32, &status_phase(id, 0, ClientPhase::Receiving))
            .unwrap();
    }
    let mut res = wire::ResultReport {
        client_id: 0,
        outcome: ResultOutcome::Verified,
        bytes_written: 256,
        digest: *s.digest().unwrap(),
    };
    for id in clients.clone() {
        res.client_id = id;
        let n = wire::write_result(&mut buf, 7, &res).unwrap();
        s.handle_datagram(now, id as u32, &buf[..n]).unwrap();
    }
    // A repeat before its acknowledgement went out is acknowledged once.
    res.client_id = 5;
    let n = wire::write_result(&mut buf, 7, &res).unwrap();
    s.handle_datagram(now, 5, &buf[..n]).unwrap();
    assert_eq!(s.tally().verified, 48);
    let mut acked: Vec<u64> = core::iter::from_fn(|| match s.poll_transmit(now) {
        Some(Transmit::ResultAck { to, client_id }) => {
            assert_eq!(to as u64, client_id, "to the client's address");
            Some(client_id)
        }
        _ => None,
    })
    .collect();
    acked.sort_unstable();
    assert_eq!(acked, clients.collect::<Vec<_>>());
    // Repeats after it are acknowledged again.
    s.handle_datagram(now, 5, &buf[..n]).unwrap();
    assert_eq!(
        s.poll_transmit(now),
        Some(Transmit::ResultAck {
            to: 5,
            client_id: 5
        })
    );
}

#[test]
fn results_are_checked_against_the_digest_and_acked() {
    let g = Geometry::new(64 * 4, 64, 4).unwrap();
    let mut st = store(&g);
    let mut s = sender(&mut st, cfg(g));
    let block = vec![5u8; 256];
    let mut buf = vec![0u8; 2000];
    let mut now = 0;
    while !s.forward_done() {
        if let Some(Transmit::Symbol { block: b, esi, seq }) = step(&mut s, &mut now) {
            s.build_symbol(b, esi, seq, &block, &mut buf).unwrap();
        }
    }
    while s.poll_event().is_some() {}
    let digest = *s.digest().unwrap();
    let mut res = wire::ResultReport {
        client_id: 1,
        outcome: ResultOutcome::Verified,
        bytes_written: 256,
        digest,
    };
    // A "verified" from an id never heard in a status report is acknowledged, not believed.
    res.client_id = 9;
    let n = wire::write_result(&mut buf, 7, &res).unwrap();
    s.handle_datagram(now, 9, &buf[..n]).unwrap();
    assert_eq!(s.poll_event(), Some(Event::ClientJoined { row: 0 }));
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.tally().verified, 0);
    assert_eq!(s.stats().unheard_verified, 1);
    assert_eq!(
        s.poll_transmit(now),
        Some(Transmit::ResultAck {
            to: 9,
            client_id: 9
        })
    );
    for id in [1, 2] {
        s.handle_datagram(now, id as u32, &status_phase(id, 0, ClientPhase::Receiving))
            .unwrap();
    }
    assert_eq!(s.poll_event(), Some(Event::ClientJoined { row: 1 }));
    assert_eq!(s.poll_event(), Some(Event::ClientJoined { row: 2 }));
    res.client_id = 1;
    let n = wire::write_result(&mut buf, 7, &res).unwrap();
    s.handle_datagram(now, 1, &buf[..n]).unwrap();
    assert_eq!(s.poll_event(), Some(Event::ClientVerified { row: 1 }));
    res.client_id = 2;
    res.digest[0] ^= 1;
    let n = wire::write_result(&mut buf, 7, &res).unwrap();
    s.handle_datagram(now, 2, &buf[..n]).unwrap();
    assert_eq!(
        s.poll_event(),
        Some(Event::ClientFailed {
            row: 2,
            reason: FailReason::DigestMismatch
        })
    );
    // Acknowledged in turn.
    assert_eq!(
        s.poll_transmit(now),
        Some(Transmit::ResultAck {
            to: 1,
            client_id: 1
        })
    );
    assert_eq!(
        s.poll_transmit(now),
        Some(Transmit::ResultAck {
            to: 2,
            client_id: 2
        })
    );
    // A repeat is acknowledged again but changes nothing.
    s.handle_datagram(now, 2, &buf[..n]).unwrap();
    assert_eq!(s.poll_event(), None);
    let t = s.tally();
    assert_eq!((t.seen, t.verified, t.failed), (3, 1, 1));
}

#[test]
fn foreign_and_malformed_datagrams_are_counted_not_trusted() {
    let g = Geometry::new(64 * 4, 64, 4).unwrap();
    let mut st = store(&g);
    let mut s = sender(&mut st, cfg(g));
    assert_eq!(
        s.handle_datagram(0, 1, &status(8, 1, 0, &[])),
        Err(Dropped::ForeignSession)
    );
    assert!(matches!(
        s.handle_datagram(0, 1, b"garbage"),
        Err(Dropped::Malformed(_))
    ));
    let mut pkt = status(7, 1, 0, &[]);
    pkt[20] ^= 0xff;
    assert_eq!(
        s.handle_datagram(0, 1, &pkt),
        Err(Dropped::Malformed(WireError::BadCrc))
    );
    assert_eq!((s.stats().foreign, s.stats().malformed), (1, 2));
    assert_eq!(s.clients().count(), 0);
}

#[test]
fn start_waits_for_min_clients_or_deadline() {
    let g = Geometry::new(64 * 4, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.min_clients = 2;
    c.start_deadline_us = Some(5_000_000);
    let mut s = sender(&mut st, c);
    assert!(!s.started());
    s.handle_datagram(10, 1, &status(7, 1, 0, &[])).unwrap();
    assert!(!s.started());
    assert_eq!(s.poll_transmit(1_000_000), Some(Transmit::Announce));
    assert_eq!(s.poll_transmit(1_000_001), None, "no data before the start");
    s.handle_datagram(20, 2, &status(7, 2, 0, &[])).unwrap();
    assert!(s.started());
    let mut st2 = store(&g);
    let mut s2 = sender(&mut st2, c);
    let mut now = 0;
    while !s2.started() {
        step(&mut s2, &mut now);
    }
    assert_eq!(
        now, 5_000_000,
        "the start deadline is one of the sender's timers"
    );
}

fn status_phase(id: u64, blocks_done: u32, phase: ClientPhase) -> Vec<u8> {
    status_packet(7, head(id, 0, blocks_done, phase), &[])
}

fn events(s: &mut Sender<'_, u32>) -> Vec<Event> {
    core::iter::from_fn(|| s.poll_event()).collect()
}

/// Runs the sender, building every symbol, until `done` holds or the session is over.
fn run_until(
    s: &mut Sender<'_, u32>,
    now: &mut u64,
    done: impl Fn(&Sender<'_, u32>) -> bool,
) -> Vec<Event> {
    let mut seen = vec![];
    let data = vec![1u8; 64 * 4];
    let mut buf = vec![0u8; 2000];
    while !done(s) && !s.is_ended() {
        if let Some(Transmit::Symbol { block, esi, seq }) = step(s, now) {
            let k = s.config().geometry.block_k(block) as usize * 64;
            s.build_symbol(block, esi, seq, &data[..k], &mut buf)
                .unwrap();
        }
        seen.extend(events(s));
    }
    seen
}

fn verified_result(s: &Sender<'_, u32>, id: u64) -> Vec<u8> {
    let res = wire::ResultReport {
        client_id: id,
        outcome: ResultOutcome::Verified,
        bytes_written: 64 * 16,
        digest: *s.digest().unwrap(),
    };
    let mut buf = vec![0u8; 200];
    let n = wire::write_result(&mut buf, 7, &res).unwrap();
    buf.truncate(n);
    buf
}

/// A sender whose rate adapts, at 100 Mbit/s to start.
fn adapting(g: Geometry) -> SenderConfig {
    let mut c = cfg(g);
    c.rate_bps = 100_000_000;
    c.adapt_rate = true;
    c
}

/// Runs the sender until `until`; returns the newest data sequence number sent by then
/// (`last` when none was sent).
fn send_until(s: &mut Sender<'_, u32>, now: &mut u64, until: u64, mut last: u32) -> u32 {
    while *now < until {
        if let Some(Transmit::Symbol { seq, .. }) = step(s, now) {
            last = seq;
        }
    }
    last
}

/// Client `id`'s report number `seq`: newest sequence `last_seq`, `received` data packets
/// since its previous report.
fn rate_report(
    id: u64,
    seq: u32,
    last_seq: u32,
    received: u32,
    ranges: &[DeficitRange],
) -> Vec<u8> {
    let mut h = head(id, last_seq, 0, ClientPhase::Receiving);
    h.report_seq = seq;
    h.interval_received = received;
    status_packet(7, h, ranges)
}

/// A report read late by a busy loop but timed by its kernel arrival shows no queue; the
/// same report timed by its reading shows the wait as one.
#[test]
fn reports_are_timed_by_their_arrival_not_their_reading() {
    let g = Geometry::new(1408 * 512 * 4, 1408, 512).unwrap();
    let mut st = store(&g);
    let mut s = sender(&mut st, adapting(g));
    let mut now = 0;
    let sent_by = |s: &mut Sender<'_, u32>, now: &mut u64, until: u64| send_until(s, now, until, 0);
    let report =
        |seq: u32, last_seq: u32, received: u32| rate_report(1, seq, last_seq, received, &[]);
    // Reports arrive 1 ms after the newest packet they count; the first sets the least
    // round trip.
    let l0 = sent_by(&mut s, &mut now, 20_000);
    s.handle_datagram(now + 1_000, 1, &report(0, l0, 0))
        .unwrap();
    let l1 = sent_by(&mut s, &mut now, 40_000);
    s.handle_datagram(now + 1_000, 1, &report(1, l1, l1 - l0))
        .unwrap();
    // Read 40 ms after it arrived, timed by its arrival: no queue.
    let l2 = sent_by(&mut s, &mut now, 60_000);
    s.handle_datagram_arrived(now + 41_000, now + 1_000, 1, &report(2, l2, l2 - l1))
        .unwrap();
    let (_, sample) = s.last_rate_sample();
    assert_eq!(sample.note, "sample");
    assert!(
        sample.queue_delay_us < 2_000,
        "queue {} us",
        sample.queue_delay_us
    );
    // Timed by its reading, the 40 ms look like a queue (the sender sends on meanwhile: a
    // report after it paused is no round trip).
    let l3 = sent_by(&mut s, &mut now, 110_000);
    let read_at = now + 41_000;
    sent_by(&mut s, &mut now, read_at);
    s.handle_datagram(read_at, 1, &report(3, l3, l3 - l2))
        .unwrap();
    let (_, sample) = s.last_rate_sample();
    assert!(
        sample.queue_delay_us > 35_000,
        "queue {} us",
        sample.queue_delay_us
    );
}

/// The deficits of a client left behind (its link took well under the rate for several
/// reports while the others' did not) wait while the others still receive: repairs for it
/// would take their rate for what its link cannot pass.
#[test]
fn a_client_left_behind_has_its_deficits_wait_while_others_receive() {
    let g = Geometry::new(1408 * 512 * 8, 1408, 512).unwrap();
    let mut st = store(&g);
    let mut s = sender(&mut st, adapting(g));
    let mut now = 0;
    let sent_until =
        |s: &mut Sender<'_, u32>, now: &mut u64, until: u64| send_until(s, now, until, 0);
    let report = rate_report;
    // Six clients: five take everything, client 6 a tenth of it, report after report.
    let mut prev = 0;
    for k in 0..5u32 {
        let l = sent_until(&mut s, &mut now, (k as u64 + 1) * 50_000);
        for id in 1..=6u64 {
            let got = if k == 0 {
                0
            } else if id == 6 {
                (l - prev) / 10
            } else {
                l - prev
            };
            s.handle_datagram(now + 1_000, id as u32, &report(id, k, l, got, &[]))
                .unwrap();
        }
        prev = l;
        s.handle_timeout(now + 1_000);
    }
    let lacking = [DeficitRange {
        first: 0,
        len: 1,
        deficit: 100,
    }];
    let deferred = s.stats().ranges_deferred;
    let l = sent_until(&mut s, &mut now, 300_000);
    s.handle_datagram(now + 1_000, 6, &report(6, 5, l, (l - prev) / 10, &lacking))
        .unwrap();
    assert_eq!(
        s.stats().ranges_deferred,
        deferred + 1,
        "client 6 left behind"
    );
    // A client not left behind has its deficits applied.
    s.handle_datagram(now + 1_000, 1, &report(1, 5, l, l - prev, &lacking))
        .unwrap();
    assert_eq!(s.stats().ranges_deferred, deferred + 1);
}
