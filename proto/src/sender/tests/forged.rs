//! The client table against made-up client ids: bounded per source address, lost rows
//! reused when full, one-shot ids kept out of the median and the report interval capped.

use super::*;

fn report(id: u64, loss_ppm: u32) -> Vec<u8> {
    let mut h = head(id, 0, 0, ClientPhase::Receiving);
    h.loss_ppm = loss_ppm;
    status_packet(7, h, &[])
}

#[test]
fn one_address_cannot_fill_the_table_with_made_up_ids() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    st.clients = vec![None; 64];
    let mut s = sender(&mut st, cfg(g));
    // Address 1 makes up a thousand ids; only a few get rows.
    for id in 0..1000u64 {
        let r = s.handle_datagram(0, 1, &report(1000 + id, 1_000_000));
        assert_eq!(r.is_ok(), (id as usize) < ROWS_PER_ADDRESS, "id {id}");
    }
    assert_eq!(s.stats().address_full, 1000 - ROWS_PER_ADDRESS as u64);
    // Real machines, one address each, still get rows.
    for a in 2..40u32 {
        s.handle_datagram(0, a, &report(a as u64, 0)).unwrap();
    }
    assert_eq!(s.tally().seen as usize, ROWS_PER_ADDRESS + 38);
}

#[test]
fn rows_of_lost_clients_are_reused_once_the_table_is_full() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    st.clients = vec![None; 8];
    let mut c = cfg(g);
    c.client_timeout_us = 1_000_000;
    let mut s = sender(&mut st, c);
    // Eight ids from eight addresses fill the table, then fall silent.
    for id in 0..8u64 {
        s.handle_datagram(0, id as u32 + 100, &report(id, 0))
            .unwrap();
    }
    assert_eq!(
        s.handle_datagram(10, 50, &report(50, 0)),
        Err(Dropped::TableFull)
    );
    s.handle_timeout(1_000_002);
    assert_eq!(s.tally().lost, 8);
    // A real machine arriving later gets a lost client's row.
    s.handle_datagram(1_000_003, 50, &report(50, 0)).unwrap();
    let t = s.tally();
    assert_eq!((t.seen, t.lost, t.active()), (8, 7, 1));
    assert!(s.clients().any(|c| c.id == 50 && !c.state.is_final()));
}

#[test]
fn ids_that_report_once_do_not_set_the_median_loss() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    st.clients = vec![None; 64];
    let mut s = sender(&mut st, cfg(g));
    // Two real clients report twice with 1% loss.
    for _ in 0..2 {
        for id in [1u64, 2] {
            s.handle_datagram(0, id as u32, &report(id, 10_000))
                .unwrap();
        }
    }
    // Made-up ids from many addresses, each reporting once with 100% loss.
    for id in 10..40u64 {
        s.handle_datagram(0, id as u32, &report(id, 1_000_000))
            .unwrap();
    }
    s.handle_timeout(1);
    assert_eq!(s.loss_estimate_ppm(), 10_000);
}

#[test]
fn the_report_interval_stays_under_the_client_timeout_and_counts_only_live_clients() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    st.clients = vec![None; 4096];
    let mut c = cfg(g);
    c.client_timeout_us = 3_000_000;
    c.report_budget_per_s = 100;
    let mut s = sender(&mut st, c);
    for id in 0..4000u64 {
        s.handle_datagram(0, id as u32, &report(id, 0)).unwrap();
    }
    // 4000 clients at 100 reports/s would ask for 40 s; the cap is a third of the timeout.
    assert_eq!(s.report_interval_ms(), 1000);
    // Once they are lost they no longer stretch the interval.
    // (Expiry hands out as many as the event queue holds per call.)
    for now in 3_000_002..3_000_100 {
        s.handle_timeout(now);
        events(&mut s);
    }
    assert_eq!(s.tally().active(), 0);
    assert_eq!(s.report_interval_ms(), c.report_interval_ms);
}

#[test]
fn while_probing_the_rate_a_few_clients_are_asked_for_reports_every_five_ms() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    st.clients = vec![None; 64];
    let mut c = cfg(g);
    c.adapt_rate = true;
    c.report_budget_per_s = 2000;
    let mut s = sender(&mut st, c);
    for id in 0..2u64 {
        s.handle_datagram(0, id as u32, &report(id, 0)).unwrap();
    }
    assert_eq!(s.report_interval_ms(), 5);
    // The report budget still holds: 48 clients at 2000 reports/s report every 24 ms.
    for id in 2..48u64 {
        s.handle_datagram(0, id as u32, &report(id, 0)).unwrap();
    }
    assert_eq!(s.report_interval_ms(), 24);
}

#[test]
fn a_client_reporting_faster_than_any_real_one_gets_its_ranges_applied_once_per_spacing() {
    let g = Geometry::new(64 * 64, 64, 32).unwrap();
    let mut st = store(&g);
    let mut s = sender(&mut st, cfg(g));
    let mut now = 0;
    drain(&mut s, &mut now, 64);
    let r = [DeficitRange {
        first: 1,
        len: 1,
        deficit: 1,
    }];
    // A thousand reports within a millisecond: one burst, not a thousand.
    for _ in 0..1000 {
        s.handle_datagram(now, 1, &status(7, 1, 1_000_000, &r))
            .unwrap();
    }
    assert_eq!(s.stats().ranges_too_soon, 999);
    assert_eq!(drain(&mut s, &mut now, 10).len(), 1);
    // A report an eighth of an interval later is applied again.
    now += s.report_interval_ms() as u64 * 1000 / 8;
    s.handle_datagram(now, 1, &status(7, 1, 1_000_000, &r))
        .unwrap();
    assert_eq!(s.stats().ranges_too_soon, 999);
}

#[test]
fn reports_asking_for_repairs_without_end_cannot_starve_the_forward_pass() {
    // 32 blocks of 4 symbols.
    let g = Geometry::new(64 * 4 * 32, 64, 4).unwrap();
    let mut st = store(&g);
    let mut s = sender(&mut st, cfg(g));
    let mut now = 0;
    drain(&mut s, &mut now, 8);
    // A "client" that lacks one symbol of each block sent, reported as often as allowed.
    let mut forward = 0;
    let mut repairs = 0;
    for _ in 0..20 {
        now += s.report_interval_ms() as u64 * 1000 / 8;
        let ranges = [DeficitRange {
            first: 0,
            len: 8,
            deficit: 1,
        }];
        s.handle_datagram(now, 1, &status(7, 1, 1_000_000, &ranges))
            .unwrap();
        for (_, esi) in drain(&mut s, &mut now, 4) {
            if esi < 4 {
                forward += 1;
            } else {
                repairs += 1;
            }
        }
    }
    assert!(repairs > 0, "the repairs are sent");
    assert!(forward >= repairs, "forward {forward}, repairs {repairs}");
}

#[test]
fn small_deficits_without_end_cannot_hold_back_a_block_another_client_lacks_entirely() {
    // 32 blocks of 4 symbols, all sent.
    let g = Geometry::new(64 * 4 * 32, 64, 4).unwrap();
    let mut st = store(&g);
    let mut s = sender(&mut st, cfg(g));
    let mut now = 0;
    drain(&mut s, &mut now, 128);
    assert!(s.forward_done());
    now += 1_000_000;
    // Client 1 lacks one symbol of each of blocks 4..32; client 2 lacks block 3 entirely.
    let small = [DeficitRange {
        first: 4,
        len: 28,
        deficit: 1,
    }];
    let whole = [DeficitRange {
        first: 3,
        len: 1,
        deficit: 4,
    }];
    s.handle_datagram(now, 1, &status(7, 1, 1_000_000, &small))
        .unwrap();
    s.handle_datagram(now, 2, &status(7, 2, 1_000_000, &whole))
        .unwrap();
    let first = drain(&mut s, &mut now, 8);
    assert!(
        first.iter().filter(|&&(b, _)| b == 3).count() == 4,
        "block 3 resent among the first symbols: {first:?}"
    );
}
