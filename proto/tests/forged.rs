//! The receiver against single forged packets that need no key: a "closing" announce while
//! data flows, a huge report interval, a sequence number far ahead, an empty image, and a
//! second image digest for the session.

use bb_proto::receiver::{
    Dropped, Event, Expired, MAX_REPORT_INTERVAL_US, MIN_REPORT_INTERVAL_US,
    MIN_STEADY_REPORT_INTERVAL_US, Outcome, PROBING_WINDOW_US, Receiver, ReceiverConfig,
    ReceiverStorage, Slot,
};
use bb_proto::sender::SenderConfig;
use bb_proto::wire::{
    self, Announce, AnnounceFlags, DataHead, Encoding, FailReason, Geometry, PacketType,
};

const SECOND: u64 = 1_000_000;
const SESSION: u64 = 9;

struct RxMem {
    done: Vec<u64>,
    pool: Vec<u8>,
    slots: Vec<Slot>,
    esi_at: Vec<u16>,
    scratch: Vec<u8>,
    zero: Vec<u64>,
    out: Vec<u8>,
}

fn rx_mem(g: &Geometry, slots: usize) -> RxMem {
    let (slot_bytes, esis, scratch) = Receiver::slot_needs(g);
    RxMem {
        done: vec![0; 64],
        pool: vec![0; slot_bytes * slots],
        slots: vec![Slot::FREE; slots],
        esi_at: vec![0; esis * slots],
        scratch: vec![0; scratch],
        zero: vec![0; 64],
        out: vec![0; g.block_bytes() as usize],
    }
}

fn receiver(m: &mut RxMem) -> Receiver<'_> {
    receiver_with(m, ReceiverConfig::new(3))
}

fn receiver_with(m: &mut RxMem, cfg: ReceiverConfig) -> Receiver<'_> {
    let st = ReceiverStorage {
        done: &mut m.done,
        pool: &mut m.pool,
        slots: &mut m.slots,
        esi_at: &mut m.esi_at,
        scratch: &mut m.scratch,
        zero: &mut m.zero,
        out: &mut m.out,
    };
    Receiver::new(cfg, st, 0).unwrap()
}

fn announce(
    g: Geometry,
    flags: AnnounceFlags,
    interval_ms: u32,
    digest: Option<[u8; 32]>,
) -> Vec<u8> {
    let a = Announce {
        geometry: g,
        flags,
        seq: 0,
        report_interval_ms: interval_ms,
        digest,
    };
    let mut buf = vec![0u8; 256];
    let n = wire::write_announce(&mut buf, SESSION, &a).unwrap();
    buf.truncate(n);
    buf
}

fn data(g: &Geometry, block: u32, esi: u16, seq: u32) -> Vec<u8> {
    let payload = vec![0u8; g.symbol_size as usize];
    let d = wire::Data {
        head: DataHead {
            block,
            esi,
            encoding: Encoding::Raw,
            seq,
            block_check: 0,
            coded_len: g.block_len(block) as u32,
        },
        payload: &payload,
    };
    let mut buf = vec![0u8; 2048];
    let n = wire::write_data(&mut buf, SESSION, &d).unwrap();
    buf.truncate(n);
    buf
}

fn geometry() -> Geometry {
    // 100 blocks of 16 x 64 B.
    Geometry::new(102_400, 64, 16).unwrap()
}

/// The time of the next status report at or after `from`, stepping the receiver's clock.
fn next_report(rx: &mut Receiver<'_>, from: u64) -> u64 {
    let mut buf = [0u8; 1500];
    let mut now = from;
    loop {
        if let Some(n) = rx.poll_transmit(now, 777, &mut buf) {
            assert_eq!(buf[5], PacketType::Status as u8, "{n} bytes");
            return now;
        }
        now = rx.poll_timeout(now).unwrap().max(now + 1);
        assert!(now < from + 120 * SECOND, "no report for two minutes");
    }
}

#[test]
fn a_closing_announce_ends_the_client_only_once_data_has_stopped() {
    let g = geometry();
    let mut m = rx_mem(&g, 4);
    let mut rx = receiver(&mut m);
    let ok = AnnounceFlags::STARTED;
    rx.handle_datagram(0, &announce(g, ok, 200, None)).unwrap();
    let closing = announce(g, ok | AnnounceFlags::CLOSING, 200, None);
    // Data flowing: a forged closing between two data packets changes nothing.
    rx.handle_datagram(1000, &data(&g, 0, 0, 1)).unwrap();
    assert_eq!(rx.handle_datagram(2000, &closing), Ok(Event::Nothing));
    rx.handle_datagram(3000, &data(&g, 0, 1, 2)).unwrap();
    assert_eq!(rx.handle_timeout(3000 + 5 * SECOND), None);
    assert_eq!(rx.outcome(), None);
    // The real end: data stops, closing announces follow; the client ends within the
    // quiet time of the last data, by the announce or by its timer.
    let last = 6 * SECOND;
    rx.handle_datagram(last, &data(&g, 1, 0, 3)).unwrap();
    assert_eq!(
        rx.handle_datagram(last + 100_000, &closing),
        Ok(Event::Nothing)
    );
    let quiet = ReceiverConfig::new(3).closing_quiet_us;
    assert!(rx.poll_timeout(last + 100_000).unwrap() <= last + quiet);
    assert_eq!(rx.handle_timeout(last + quiet - 1), None);
    assert_eq!(rx.handle_timeout(last + quiet), Some(Expired::ServerClosed));
    assert_eq!(rx.outcome(), Some(Outcome::Failed(FailReason::ServerGone)));
}

#[test]
fn a_closing_announce_after_the_quiet_time_ends_the_client_at_once() {
    let g = geometry();
    let mut m = rx_mem(&g, 4);
    let mut rx = receiver(&mut m);
    let ok = AnnounceFlags::STARTED;
    rx.handle_datagram(0, &announce(g, ok, 200, None)).unwrap();
    rx.handle_datagram(1000, &data(&g, 0, 0, 1)).unwrap();
    let closing = announce(g, ok | AnnounceFlags::CLOSING, 200, None);
    assert_eq!(
        rx.handle_datagram(1000 + 2 * SECOND, &closing),
        Ok(Event::ServerClosing)
    );
}

#[test]
fn a_huge_report_interval_is_capped_and_a_shorter_one_takes_effect_at_once() {
    let g = geometry();
    let mut m = rx_mem(&g, 4);
    let mut rx = receiver(&mut m);
    let ok = AnnounceFlags::STARTED;
    // Bound by a (forged) announce asking for a 60 s interval.
    rx.handle_datagram(0, &announce(g, ok, 60_000, None))
        .unwrap();
    let first = next_report(&mut rx, 0);
    let second = next_report(&mut rx, first + 1);
    assert!(
        second - first <= MAX_REPORT_INTERVAL_US * 3 / 2,
        "reports {} s apart",
        (second - first) as f64 / SECOND as f64
    );
    let server_timeout = SenderConfig::new(1, g).client_timeout_us;
    assert!(
        MAX_REPORT_INTERVAL_US * 3 / 2 < server_timeout,
        "below the server's timeout"
    );
    // The real server's 200 ms interval arrives just after a report: the next report
    // comes within 1.5 of it, not after the long interval.
    rx.handle_datagram(second + 10_000, &announce(g, ok, 200, None))
        .unwrap();
    let third = next_report(&mut rx, second + 10_000);
    assert!(third - second <= 300_000, "{} us", third - second);
}

#[test]
fn one_data_packet_with_its_sequence_number_advanced_does_not_pin_loss() {
    let g = geometry();
    let mut m = rx_mem(&g, 4);
    let mut rx = receiver(&mut m);
    rx.handle_datagram(0, &announce(g, AnnounceFlags::STARTED, 200, None))
        .unwrap();
    let feed = |rx: &mut Receiver<'_>, seqs: core::ops::Range<u32>| {
        for seq in seqs {
            let (b, e) = (seq / 16 % 100, (seq % 16) as u16);
            let _ = rx.handle_datagram(seq as u64 * 100, &data(&g, b, e, seq));
        }
    };
    feed(&mut rx, 1..500);
    // The replayed packet, its number advanced by a million; then, among the real stream,
    // two more that would confirm each other if nothing came between them.
    let _ = rx.handle_datagram(500 * 100, &data(&g, 3, 3, 1_000_500));
    feed(&mut rx, 500..700);
    let _ = rx.handle_datagram(700 * 100, &data(&g, 3, 3, 1_000_700));
    feed(&mut rx, 700..702);
    let _ = rx.handle_datagram(702 * 100, &data(&g, 3, 3, 1_000_702));
    feed(&mut rx, 702..1000);
    let _ = next_report(&mut rx, 1000 * 100);
    assert!(rx.loss_ppm() < 10_000, "loss {} ppm", rx.loss_ppm());
    assert_eq!(rx.stats().seq_jumps_ignored, 3);
}

#[test]
fn a_real_jump_in_sequence_numbers_is_believed_once_confirmed() {
    let g = geometry();
    let mut m = rx_mem(&g, 4);
    let mut rx = receiver(&mut m);
    rx.handle_datagram(0, &announce(g, AnnounceFlags::STARTED, 200, None))
        .unwrap();
    for seq in 1..300u32 {
        let _ = rx.handle_datagram(seq as u64 * 100, &data(&g, seq % 100, 0, seq));
    }
    // A long outage: the data goes on two million packets later.
    let base = 2_000_000u32;
    for seq in base..base + 300 {
        let _ = rx.handle_datagram(seq as u64, &data(&g, seq % 100, 1, seq));
    }
    let mut buf = [0u8; 1500];
    let n = rx.poll_transmit(10 * SECOND, 0, &mut buf).unwrap();
    let p = wire::open(&buf[..n]).unwrap();
    assert_eq!(p.status().unwrap().head.last_seq, base + 299);
    assert!(rx.loss_ppm() < 10_000, "loss {} ppm", rx.loss_ppm());
}

#[test]
fn an_empty_image_is_never_bound_and_the_client_waits_for_a_usable_session() {
    let g = geometry();
    let mut m = rx_mem(&g, 4);
    let mut rx = receiver(&mut m);
    let empty = Geometry::new(0, 64, 16).unwrap();
    assert_eq!(
        rx.handle_datagram(
            0,
            &announce(empty, AnnounceFlags::STARTED, 200, Some([0; 32]))
        ),
        Err(Dropped::Unusable)
    );
    assert_eq!(rx.session(), None);
    assert_eq!(rx.outcome(), None);
    assert!(matches!(
        rx.handle_datagram(1000, &announce(g, AnnounceFlags::STARTED, 200, None)),
        Ok(Event::Bound { .. })
    ));
}

#[test]
fn an_unusable_geometry_leaves_the_client_unbound_for_a_usable_one() {
    let g = geometry();
    let mut m = rx_mem(&g, 4);
    let mut rx = receiver(&mut m);
    // More blocks than the done bitmap holds (64 words = 4096 blocks).
    let huge = Geometry::new(1 << 30, 64, 16).unwrap();
    assert!(matches!(
        rx.handle_datagram(0, &announce(huge, AnnounceFlags::STARTED, 200, None)),
        Ok(Event::Unsupported { .. })
    ));
    assert_eq!(rx.session(), None);
    assert!(matches!(
        rx.handle_datagram(1000, &announce(g, AnnounceFlags::STARTED, 200, None)),
        Ok(Event::Bound { .. })
    ));
}

#[test]
fn two_digests_for_the_session_stop_the_client_naming_a_conflict_not_its_disk() {
    let g = geometry();
    let mut m = rx_mem(&g, 4);
    let mut rx = receiver(&mut m);
    let ok = AnnounceFlags::STARTED;
    rx.handle_datagram(0, &announce(g, ok, 200, Some([1; 32])))
        .unwrap();
    assert_eq!(
        rx.handle_datagram(1000, &announce(g, ok, 200, Some([1; 32]))),
        Ok(Event::Nothing)
    );
    assert_eq!(
        rx.handle_datagram(2000, &announce(g, ok, 200, Some([2; 32]))),
        Ok(Event::DigestConflict)
    );
    assert_eq!(
        rx.outcome(),
        Some(Outcome::Failed(FailReason::DigestConflict))
    );
    // The failure is reported to the server like any other.
    let mut buf = [0u8; 1500];
    let n = rx.poll_transmit(3000, 0, &mut buf).unwrap();
    let r = wire::open(&buf[..n]).unwrap().result().unwrap();
    assert_eq!(
        r.outcome,
        wire::ResultOutcome::Failed(FailReason::DigestConflict)
    );
}

#[test]
fn an_announce_of_another_digest_cannot_fail_a_client_that_pinned_the_digest() {
    let g = geometry();
    let mut m = rx_mem(&g, 4);
    let mut cfg = ReceiverConfig::new(3);
    cfg.pinned_digest = Some([0x11; 32]);
    let mut rx = receiver_with(&mut m, cfg);
    let ok = AnnounceFlags::STARTED;
    rx.handle_datagram(0, &announce(g, ok, 200, Some([0x11; 32])))
        .unwrap();
    // A forged announce of the bound session with another digest: the pin says which one
    // is real, so it is dropped and the client goes on.
    assert_eq!(
        rx.handle_datagram(1_000, &announce(g, ok, 200, Some([0x22; 32])))
            .unwrap_err(),
        Dropped::PinMismatch
    );
    assert_eq!(rx.outcome(), None);
    assert_eq!(rx.stats().pin_refused, 1);
}

#[test]
fn a_tiny_report_interval_is_raised_to_the_floor() {
    let g = geometry();
    let mut m = rx_mem(&g, 4);
    let mut rx = receiver(&mut m);
    // A (forged) announce asking for 5 ms, the least the wire carries, then data with
    // blocks lacking, so the client has a report to make at every interval: reports stay
    // at least half the floor apart (the jitter's lower end), so clients cannot be turned
    // into a flood.
    rx.handle_datagram(0, &announce(g, AnnounceFlags::STARTED, 5, None))
        .unwrap();
    let _ = rx.handle_datagram(1, &data(&g, 2, 0, 50));
    let gaps = |rx: &mut Receiver<'_>, from: u64| {
        let mut at = next_report(rx, from);
        let mut least = u64::MAX;
        for _ in 0..6u32 {
            let next = next_report(rx, at + 1);
            least = least.min(next - at);
            at = next;
        }
        least
    };
    // While the server may be probing the rate (the first seconds of data): the floor.
    let least = gaps(&mut rx, 1);
    assert!(
        least >= MIN_REPORT_INTERVAL_US / 2,
        "reports {least} us apart"
    );
    assert!(
        least < MIN_STEADY_REPORT_INTERVAL_US / 2,
        "reports {least} us apart"
    );
    // After the probing window, a 5 ms interval is raised to the steady floor.
    let later = PROBING_WINDOW_US + SECOND;
    let _ = rx.handle_datagram(later, &data(&g, 2, 1, 51));
    let least = gaps(&mut rx, later);
    assert!(
        least >= MIN_STEADY_REPORT_INTERVAL_US / 2,
        "reports {least} us apart"
    );
}
