//! The session's life: client expiry, the end-of-session rule, events.

use super::*;

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
fn a_result_repeated_while_closing_keeps_the_session_open_for_the_next_repeat() {
    // The acknowledgement of the result that ended the session is lost on the way: the
    // client repeats its result (after 20, 40, 80 ms, then every 100 ms) until one is
    // answered. The server stays open CLOSING_AFTER_RESULT_US after each repeat, so the next
    // one is answered too; never longer than CLOSING_MAX_US however many come (forged ones
    // too).
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    // How long closing lasts when the client repeats its result `repeats` times, and how
    // many of those repeats were acknowledged.
    let closing_with = |repeats: u32| {
        let mut st = store(&g);
        let mut c = cfg(g);
        c.wanted_clients = 1;
        let mut s = sender(&mut st, c);
        let mut now = 0;
        s.handle_datagram(now, 1, &status_phase(1, 0, ClientPhase::Receiving))
            .unwrap();
        run_until(&mut s, &mut now, |s| s.forward_done());
        let result = verified_result(&s, 1);
        s.handle_datagram(now, 1, &result).unwrap();
        s.handle_timeout(now);
        assert_eq!(s.session_end(), Some(SessionEnd::WantedVerified));
        let closing_from = now;
        let (mut sent, mut acked) = (0, 0);
        let client = crate::receiver::ReceiverConfig::new(1);
        let mut next_repeat = closing_from + client.result_wait_us(0);
        while !s.is_ended() {
            if sent < repeats && now >= next_repeat {
                s.handle_datagram(now, 1, &result).unwrap();
                sent += 1;
                next_repeat = now + client.result_wait_us(sent);
            }
            s.handle_timeout(now);
            while let Some(t) = s.poll_transmit(now) {
                if t == (Transmit::ResultAck {
                    to: 1,
                    client_id: 1,
                }) {
                    acked += 1;
                }
            }
            now += 1_000;
        }
        (now - 1_000 - closing_from, acked)
    };
    let closing = SenderConfig::new(7, g).closing_us;
    // No repeat: the closing time.
    assert_eq!(closing_with(0), (closing, 1));
    // Three repeats (20, 60 and 140 ms): open until 250 ms after the third, all answered.
    assert_eq!(closing_with(3), (140_000 + CLOSING_AFTER_RESULT_US, 4));
    // Six (the last at 440 ms): open until 250 ms after it.
    assert_eq!(closing_with(6), (440_000 + CLOSING_AFTER_RESULT_US, 7));
    // Repeats without end: closed after CLOSING_MAX_US.
    let (over, _) = closing_with(1_000);
    assert_eq!(over, CLOSING_MAX_US);
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
    s.handle_datagram(now, 1, &status_phase(1, 0, ClientPhase::Receiving))
        .unwrap();
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
fn a_lost_wanted_client_may_come_back_within_the_grace_and_the_session_waits_for_it() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.wanted_clients = 2;
    c.client_timeout_us = 1_000_000;
    c.lost_grace_us = 5_000_000;
    let mut s = sender(&mut st, c);
    let mut now = 0;
    for id in [1, 2] {
        s.handle_datagram(now, id as u32, &status_phase(id, 0, ClientPhase::Receiving))
            .unwrap();
    }
    run_until(&mut s, &mut now, |s| s.forward_done());
    s.handle_datagram(now, 1, &verified_result(&s, 1)).unwrap();
    run_until(&mut s, &mut now, |s| s.tally().lost == 1);
    let lost_at = s.client(1).unwrap().finished_us;
    // Verified + lost reach the wanted count, but the lost machine may come back (a link
    // down, a reboot): no decision within the grace, and the sender wakes when it ends.
    assert!(s.poll_timeout(now).unwrap() <= lost_at + 5_000_000);
    now = lost_at + 4_000_000;
    s.handle_timeout(now);
    assert_eq!(s.session_end(), None);
    // It comes back (the same id, the same row) and verifies: success.
    s.handle_datagram(now, 2, &status_phase(2, 2, ClientPhase::Receiving))
        .unwrap();
    assert!(events(&mut s).contains(&Event::ClientBack { row: 1 }));
    assert_eq!(s.tally().seen, 2, "one machine, not two");
    s.handle_datagram(now, 2, &verified_result(&s, 2)).unwrap();
    s.handle_timeout(now);
    assert_eq!(s.session_end(), Some(SessionEnd::WantedVerified));
}

#[test]
fn a_lost_client_that_never_comes_back_fails_the_session_once_the_grace_is_over() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    for wanted in [0, 2] {
        let mut st = store(&g);
        let mut c = cfg(g);
        c.wanted_clients = wanted;
        c.client_timeout_us = 1_000_000;
        c.lost_grace_us = 5_000_000;
        c.linger_us = 1_000_000;
        let mut s = sender(&mut st, c);
        let mut now = 0;
        for id in [1, 2] {
            s.handle_datagram(now, id as u32, &status_phase(id, 0, ClientPhase::Receiving))
                .unwrap();
        }
        run_until(&mut s, &mut now, |s| s.forward_done());
        s.handle_datagram(now, 1, &verified_result(&s, 1)).unwrap();
        run_until(&mut s, &mut now, |s| s.tally().lost == 1);
        let lost_at = s.client(1).unwrap().finished_us;
        run_until(&mut s, &mut now, |s| s.session_end().is_some());
        assert!(
            now >= lost_at + 5_000_000,
            "wanted {wanted}: decided {} us after the loss, within the grace",
            now - lost_at
        );
        assert!(
            now <= lost_at + 5_000_000 + 1_000_000,
            "wanted {wanted}: decided late: {} us after the loss",
            now - lost_at
        );
        let end = if wanted > 0 {
            SessionEnd::WantedUnreachable
        } else {
            SessionEnd::Quiet
        };
        assert_eq!(s.session_end(), Some(end));
    }
}

#[test]
fn when_every_client_at_the_start_resumed_the_forward_pass_sends_nothing() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    for resumed in [false, true] {
        let mut st = store(&g);
        let mut c = cfg(g);
        c.min_clients = 1;
        let mut s = sender(&mut st, c);
        let mut now = 0;
        let mut h = head(1, 0, 2, ClientPhase::Receiving);
        h.resumed = resumed;
        // It lacks blocks 2 and 3 (whole blocks: k symbols each).
        let lack = [DeficitRange {
            first: 2,
            len: 2,
            deficit: 4,
        }];
        s.handle_datagram(now, 1, &status_packet(7, h, &lack))
            .unwrap();
        // The first report came before the start: it is heard, its ranges wait for the next.
        let mut sent: Vec<_> = (0..3).filter_map(|_| step(&mut s, &mut now)).collect();
        assert_eq!(s.forward_skipped(), resumed);
        assert_eq!(s.tally().resumed, resumed as u32);
        s.handle_datagram(now, 1, &status_packet(7, h, &lack))
            .unwrap();
        sent.extend((0..60).filter_map(|_| step(&mut s, &mut now)));
        let blocks: Vec<u32> = sent
            .iter()
            .filter_map(|t| match t {
                Transmit::Symbol { block, .. } => Some(*block),
                _ => None,
            })
            .collect();
        if resumed {
            assert_eq!(blocks, [2, 2, 2, 2, 3, 3, 3, 3], "only what it lacks");
        } else {
            assert!(blocks.len() >= 16, "a full forward pass: {blocks:?}");
        }
    }
}

#[test]
fn a_machine_restarted_under_a_new_id_stays_one_row() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.client_timeout_us = 1_000_000;
    let mut s = sender(&mut st, c);
    let mut now = 0;
    s.handle_datagram(now, 5, &status_phase(1, 0, ClientPhase::Receiving))
        .unwrap();
    run_until(&mut s, &mut now, |s| s.forward_done());
    // Killed and started again at once: a new id from the same address, while the old
    // row is not yet lost.
    now += 100_000;
    s.handle_datagram(now, 5, &status_phase(2, 0, ClientPhase::Receiving))
        .unwrap();
    events(&mut s);
    let restart = now;
    let seen = run_until(&mut s, &mut now, |s| s.tally().seen == 1);
    assert!(
        seen.contains(&Event::ClientRestarted { row: 1 }),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|e| matches!(e, Event::ClientLost { .. })));
    assert!(
        now <= restart + 1_000_000,
        "the old row went when it expired"
    );
    assert_eq!(s.tally().lost, 0);
    assert!(s.client(0).is_none() && s.client(1).unwrap().id == 2);
}

#[test]
fn a_lost_machine_back_under_a_new_id_takes_its_old_row() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.client_timeout_us = 1_000_000;
    c.wanted_clients = 3;
    let mut s = sender(&mut st, c);
    let mut now = 0;
    s.handle_datagram(now, 5, &status_phase(1, 0, ClientPhase::Receiving))
        .unwrap();
    run_until(&mut s, &mut now, |s| s.tally().lost == 1);
    // Rebooted into the imaging initramfs: a new id from the same address.
    s.handle_datagram(now, 5, &status_phase(2, 0, ClientPhase::Receiving))
        .unwrap();
    assert_eq!(s.client(0).unwrap().id, 2);
    let t = s.tally();
    assert_eq!((t.seen, t.lost), (1, 0));
}

#[test]
fn two_clients_of_one_address_stay_two_when_one_falls_silent() {
    let g = Geometry::new(64 * 16, 64, 4).unwrap();
    let mut st = store(&g);
    let mut c = cfg(g);
    c.client_timeout_us = 1_000_000;
    c.wanted_clients = 3;
    let mut s = sender(&mut st, c);
    let mut now = 0;
    for id in [1, 2] {
        s.handle_datagram(now, 5, &status_phase(id, 0, ClientPhase::Receiving))
            .unwrap();
    }
    // Both heard from the start (two clients on one host), then both silent: both are
    // lost, neither is taken for a restart of the other.
    let seen = run_until(&mut s, &mut now, |s| {
        s.tally().lost == 2 || s.tally().seen < 2
    });
    assert!(seen.contains(&Event::ClientLost { row: 0 }), "{seen:?}");
    assert!(seen.contains(&Event::ClientLost { row: 1 }), "{seen:?}");
    assert_eq!(s.tally().seen, 2);
}
