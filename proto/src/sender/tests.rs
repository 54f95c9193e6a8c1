//! Unit tests of the sender through its public API.

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
    // A later report that predates that burst (last_seq before it) is suppressed.
    s.handle_datagram(now, 1, &status(7, 1, 7, &r(2))).unwrap();
    assert!(s.is_idle());
    // One that saw the burst and still lacks a symbol gets a fresh one.
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
    let n = wire::write_result(&mut buf, 7, &res).unwrap();
    s.handle_datagram(now, 1, &buf[..n]).unwrap();
    assert_eq!(s.poll_event(), Some(Event::ClientJoined { row: 0 }));
    assert_eq!(s.poll_event(), Some(Event::ClientVerified { row: 0 }));
    res.client_id = 2;
    res.digest[0] ^= 1;
    let n = wire::write_result(&mut buf, 7, &res).unwrap();
    s.handle_datagram(now, 2, &buf[..n]).unwrap();
    assert_eq!(s.poll_event(), Some(Event::ClientJoined { row: 1 }));
    assert_eq!(
        s.poll_event(),
        Some(Event::ClientFailed {
            row: 1,
            reason: FailReason::DigestMismatch
        })
    );
    // Acknowledged first in, first out.
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
    assert_eq!((t.seen, t.verified, t.failed), (2, 1, 1));
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

#[test]
fn a_silent_client_is_declared_lost_by_the_core_and_the_session_ends_without_it() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.wanted_clients = 1;
    c.client_timeout_us = 2_000_000;
    let mut s = sender(&mut st, c);
    let mut now = 0;
    s.handle_datagram(now, 1, &status_phase(1, 0, ClientPhase::Receiving))
        .unwrap();
    s.handle_datagram(now, 2, &status_phase(2, 0, ClientPhase::Receiving))
        .unwrap();
    let mut seen = run_until(&mut s, &mut now, |s| s.forward_done());
    // Client 1 verifies; client 2 says nothing more. The wanted count is reached, but the
    // session waits for the machine still receiving until it is declared lost.
    s.handle_datagram(now, 1, &verified_result(&s, 1)).unwrap();
    seen.extend(run_until(&mut s, &mut now, |s| s.session_end().is_some()));
    assert_eq!(s.session_end(), Some(SessionEnd::WantedVerified));
    assert!(seen.contains(&Event::ClientLost { row: 1 }), "{seen:?}");
    assert!(seen.contains(&Event::ClientVerified { row: 0 }));
    assert!(seen.contains(&Event::Closing(SessionEnd::WantedVerified)));
    assert_eq!(
        s.client(1).unwrap().finished_us,
        2_000_001,
        "lost as soon as it was silent for longer than the client timeout"
    );
    let t = s.tally();
    assert_eq!((t.seen, t.verified, t.lost, t.active()), (2, 1, 1, 0));
    assert_eq!(s.client(1).unwrap().state, ClientState::Lost);
    // Closing announces go out for the closing time, then the session is over.
    let closing_from = 2_000_001;
    let mut closing_announces = 0;
    while !s.is_ended() {
        if let Some(t) = step(&mut s, &mut now) {
            assert_eq!(t, Transmit::Announce, "no data while closing");
            closing_announces += 1;
        }
    }
    assert!(closing_announces >= 2);
    assert_eq!(now, closing_from + s.config().closing_us);
    assert_eq!(
        events(&mut s).last(),
        Some(&Event::Ended(SessionEnd::WantedVerified))
    );
    assert_eq!(s.poll_timeout(now), None);
    assert_eq!(s.poll_transmit(now), None);
}

#[test]
fn a_lost_client_that_reports_again_is_back() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.client_timeout_us = 1_000_000;
    c.wanted_clients = 5;
    let mut s = sender(&mut st, c);
    s.handle_datagram(0, 1, &status_phase(1, 0, ClientPhase::Receiving))
        .unwrap();
    let mut now = 0;
    run_until(&mut s, &mut now, |s| s.tally().lost == 1);
    s.handle_datagram(now, 1, &status_phase(1, 2, ClientPhase::Receiving))
        .unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            Event::ClientProgressed { row: 0, tenths: 5 },
            Event::ClientBack { row: 0 }
        ]
    );
    assert_eq!(s.tally().lost, 0);
    s.handle_datagram(now, 1, &status_phase(1, 4, ClientPhase::Finishing))
        .unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            Event::ClientProgressed { row: 0, tenths: 10 },
            Event::ClientFinishing { row: 0 }
        ]
    );
}

#[test]
fn with_a_wanted_count_every_client_final_but_too_few_verified_ends_at_once() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.wanted_clients = 2;
    let mut s = sender(&mut st, c);
    let mut now = 0;
    run_until(&mut s, &mut now, |s| s.forward_done());
    s.handle_datagram(now, 1, &verified_result(&s, 1)).unwrap();
    let mut failed = wire::ResultReport {
        client_id: 2,
        outcome: ResultOutcome::Failed(FailReason::IoError),
        bytes_written: 0,
        digest: [0; 32],
    };
    let mut buf = vec![0u8; 200];
    let n = wire::write_result(&mut buf, 7, &failed).unwrap();
    s.handle_datagram(now, 2, &buf[..n]).unwrap();
    s.handle_timeout(now);
    assert_eq!(s.session_end(), Some(SessionEnd::WantedUnreachable));
    // A result after the decision is still acknowledged while closing.
    failed.client_id = 3;
    let n = wire::write_result(&mut buf, 7, &failed).unwrap();
    s.handle_datagram(now, 3, &buf[..n]).unwrap();
    assert!(core::iter::from_fn(|| s.poll_transmit(now)).any(|t| t
        == Transmit::ResultAck {
            to: 3,
            client_id: 3
        }));
}

#[test]
fn the_deadline_ends_a_session_whose_wanted_clients_never_come() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.wanted_clients = 3;
    c.session_timeout_us = Some(4_000_000);
    let mut s = sender(&mut st, c);
    let mut now = 0;
    // A client that keeps reporting (never lost) but never finishes.
    let mut next_report = 0;
    while s.session_end().is_none() {
        if now >= next_report {
            s.handle_datagram(now, 1, &status_phase(1, 2, ClientPhase::Receiving))
                .unwrap();
            next_report = now + 500_000;
        }
        step(&mut s, &mut now);
    }
    assert_eq!(s.session_end(), Some(SessionEnd::Deadline));
    assert_eq!(
        now, 4_000_000,
        "started at 0, given up at the session timeout"
    );
}

#[test]
fn without_a_wanted_count_the_session_ends_after_the_linger_time_of_quiet() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.linger_us = 3_000_000;
    let mut s = sender(&mut st, c);
    let mut now = 0;
    s.handle_datagram(now, 1, &status_phase(1, 0, ClientPhase::Receiving))
        .unwrap();
    run_until(&mut s, &mut now, |s| s.forward_done());
    let sent = now;
    s.handle_datagram(now, 1, &verified_result(&s, 1)).unwrap();
    run_until(&mut s, &mut now, |s| s.session_end().is_some());
    assert_eq!(s.session_end(), Some(SessionEnd::Quiet));
    assert_eq!(now, sent + 3_000_000, "quiet since the last packet heard");
}

fn joins(s: &mut Sender<'_, u32>) -> usize {
    events(s)
        .iter()
        .filter(|e| matches!(e, Event::ClientJoined { .. }))
        .count()
}

#[test]
fn a_whole_rack_going_silent_loses_no_event_when_the_shell_drains_between_calls() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    st.clients = vec![None; 3000];
    let mut c = cfg(g);
    c.client_timeout_us = 1_000_000;
    c.wanted_clients = 3000;
    let mut s = sender(&mut st, c);
    let mut joined = 0;
    for id in 0..2500u64 {
        s.handle_datagram(0, id as u32, &status_phase(id, 0, ClientPhase::Receiving))
            .unwrap();
        if (id as usize + 1).is_multiple_of(EVENT_DRAIN_EVERY) {
            joined += joins(&mut s);
        }
    }
    joined += joins(&mut s);
    assert_eq!(joined, 2500);
    // Every one falls silent at once: expiry hands out no more events than fit, and the
    // rest stay due, so the shell is woken again at once.
    let mut lost = 0;
    for now in 1_000_001..1_000_011 {
        s.handle_timeout(now);
        lost += events(&mut s)
            .iter()
            .filter(|e| matches!(e, Event::ClientLost { .. }))
            .count();
        match s.poll_timeout(now) {
            Some(t) if t <= now => {}
            _ => break,
        }
    }
    assert_eq!(lost, 2500);
    assert_eq!(s.stats().events_dropped, 0);
    assert_eq!(s.tally().lost, 2500);
}

#[test]
fn stopping_before_the_start_never_asks_to_be_woken_in_the_past() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.min_clients = 5;
    c.start_deadline_us = Some(100_000);
    let mut s = sender(&mut st, c);
    s.close(50_000);
    let mut now = 50_000;
    while !s.is_ended() {
        s.handle_timeout(now);
        while s.poll_transmit(now).is_some() {}
        let Some(t) = s.poll_timeout(now) else { break };
        assert!(t > now, "woken at {t} when it is already {now}");
        now = t;
    }
    assert!(!s.started());
    assert_eq!(s.session_end(), Some(SessionEnd::Stopped));
}

#[test]
fn the_outcome_is_the_table_as_it_stood_when_the_session_was_decided() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.linger_us = 1_000_000;
    let mut s = sender(&mut st, c);
    let mut now = 0;
    s.handle_datagram(now, 1, &status_phase(1, 0, ClientPhase::Receiving))
        .unwrap();
    run_until(&mut s, &mut now, |s| s.forward_done());
    s.handle_datagram(now, 1, &verified_result(&s, 1)).unwrap();
    run_until(&mut s, &mut now, |s| s.session_end().is_some());
    // A machine that reboots into the session while it closes changes the table only.
    s.handle_datagram(now, 9, &status_phase(9, 0, ClientPhase::Receiving))
        .unwrap();
    assert_eq!(s.tally().active(), 1);
    let t = s.decided_tally().unwrap();
    assert_eq!((t.seen, t.verified, t.active()), (1, 1, 0));
}

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

#[test]
fn zero_maps_cycle_through_every_zero_block() {
    let g = Geometry::new(64 * 2 * 1000, 64, 2).unwrap(); // 1000 blocks
    let mut st = store(&g);
    let mut s = sender_without_blocks(&mut st, cfg(g));
    // Every third block is zero: 334 ranges, more than one packet holds.
    for b in 0..1000 {
        let src = if b % 3 == 0 {
            BlockSource::Zero
        } else {
            BlockSource::Raw { hash: [1; 32] }
        };
        s.block_ready(b, src).unwrap();
    }
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
