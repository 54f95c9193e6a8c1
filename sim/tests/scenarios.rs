//! Simulator runs that assert byte-exact delivery under the conditions users meet: loss,
//! bursts, duplication, reordering, per-receiver delay, late joiners and dead receivers.

use bb_sim::args::{self, Options};
use bb_sim::world::{Report, run};

fn opts(extra: &str) -> Options {
    let argv: Vec<String> = format!("--image-size 6MiB --seed 11 {extra}")
        .split_whitespace()
        .map(String::from)
        .collect();
    args::parse(&argv)
        .expect("valid options")
        .expect("not --help")
}

fn assert_all_verified(r: &Report, what: &str) {
    let alive = r.clients - r.dead;
    assert_eq!(r.mismatched_bytes, 0, "{what}: bytes differ from the image");
    assert_eq!(
        (r.verified, r.failed, r.unfinished),
        (alive, 0, 0),
        "{what}: {r:?}"
    );
}

#[test]
fn lossless_medium_needs_no_repair() {
    let r = run(&opts("--clients 10 --loss 0"));
    assert_all_verified(&r, "lossless");
    assert_eq!(
        r.data_packets, r.source_packets,
        "nothing beyond the source symbols"
    );
}

#[test]
fn independent_loss_at_50_clients_is_repaired_cheaply() {
    let r = run(&opts("--clients 50 --loss 2%"));
    assert_all_verified(&r, "2% loss");
    assert!(r.repair + r.proactive > 0, "loss must have been repaired");
    // Ideal per-packet retransmission would need ~1.4x here; count NACKs with a code stay low.
    assert!(r.wire_ratio < 1.10, "wire ratio {}", r.wire_ratio);
}

#[test]
fn burst_loss_duplication_reordering_and_delay_spread() {
    let r = run(&opts(
        "--clients 30 --loss 1% --burst 8 --dup 2% --reorder 5% --reorder-window 3ms --delay 1ms --delay-spread 4ms",
    ));
    assert_all_verified(&r, "bursts, duplicates, reordering");
}

#[test]
fn late_joiners_catch_up_from_the_carousel_without_holding_back_the_others() {
    // At 100 Mbit/s the data time dominates, so holding back would show: resending half the
    // image for the late joiners costs half a forward pass.
    let base = run(&opts(
        "--clients 18 --loss 1% --image-size 24MiB --rate 100M",
    ));
    let r = run(&opts(
        "--clients 20 --loss 1% --image-size 24MiB --rate 100M --late-joiners 10% --join-at 50%",
    ));
    assert_all_verified(&r, "late joiners");
    assert_eq!(r.late, 2);
    assert!(
        r.resend > 0,
        "the first half was sent again for the late joiners"
    );
    assert!(r.wire_ratio < 1.6, "wire ratio {}", r.wire_ratio);
    assert!(
        r.completion_s <= base.completion_s * 1.1,
        "early receivers took {}s with late joiners, {}s without",
        r.completion_s,
        base.completion_s
    );
    assert!(
        r.late_completion_s > r.completion_s,
        "late joiners catch up after the pass"
    );
}

#[test]
fn dead_receivers_do_not_hold_back_the_others() {
    let base = run(&opts("--clients 20 --loss 1%"));
    let dead = run(&opts(
        "--clients 20 --loss 1% --dead-clients 3 --die-at 40%",
    ));
    assert_all_verified(&dead, "dead receivers");
    assert_eq!((dead.dead, dead.lost), (3, 3));
    assert_eq!(base.lost, 0);
    assert!(
        dead.completion_s <= base.completion_s * 1.05,
        "with dead receivers {}s, without {}s",
        dead.completion_s,
        base.completion_s
    );
}

#[test]
fn the_sender_declares_dead_receivers_lost_and_the_others_verify() {
    // The reference run, exactly: `bb-sim --clients 100 --dead-clients 5 --loss 1%`.
    let argv: Vec<String> = "--clients 100 --dead-clients 5 --loss 1%"
        .split_whitespace()
        .map(String::from)
        .collect();
    let o = args::parse(&argv).expect("valid").expect("not --help");
    let r = run(&o);
    assert_all_verified(&r, "dead receivers at 100 clients");
    assert_eq!((r.dead, r.lost), (5, 5), "the core expires the dead: {r:?}");
    assert!(r.events > 0);
    // The session ends once they are lost: about the client timeout after they died, not
    // at the simulator's time limit.
    assert!(r.sim_s < r.completion_s + 11.0, "{r:?}");
}

#[test]
fn a_slow_link_converges_instead_of_flooding() {
    // The sender is told 1 Gbit/s but the link carries 100 Mbit/s with a short queue.
    let r = run(&opts(
        "--clients 10 --loss 0.5% --rate 100M --send-rate 1G --queue 200",
    ));
    assert_all_verified(&r, "slow link");
    assert!(
        r.final_rate_mbps < 1000.0,
        "the sender lowered its rate: {}",
        r.final_rate_mbps
    );
}

#[test]
fn in_order_sinks_with_few_slots_still_deliver_every_byte() {
    // A stdout sink writes strictly in order through a bounded window of 4 slots.
    let r = run(&opts(
        "--clients 12 --loss 2% --burst 4 --reorder 5% --in-order --slots 4",
    ));
    assert_all_verified(&r, "in-order sinks");
}

#[test]
fn same_seed_same_run() {
    let a = run(&opts("--clients 8 --loss 3% --burst 3"));
    let b = run(&opts("--clients 8 --loss 3% --burst 3"));
    assert_eq!(
        (a.data_packets, a.repair, a.resend, a.reports),
        (b.data_packets, b.repair, b.resend, b.reports)
    );
    assert_eq!(a.sim_s, b.sim_s);
}

#[test]
fn a_sparse_compressible_image_costs_about_its_coded_symbols() {
    let r = run(&opts(
        "--clients 20 --loss 1% --image-size 16MiB --zero-blocks 70% --compressible --compress 3",
    ));
    assert_all_verified(&r, "sparse, compressible image");
    assert!(r.zero_blocks > 0 && r.zero_maps > 0);
    assert!(
        r.coded_symbols * 2 < r.source_packets,
        "zeros and compression leave well under half the raw symbols: {r:?}"
    );
    assert!(
        (r.data_packets as f64) < r.coded_symbols as f64 * 1.1,
        "data packets {} for {} coded symbols",
        r.data_packets,
        r.coded_symbols
    );
}

#[test]
fn late_joiners_and_in_order_sinks_learn_the_zero_map() {
    let r = run(&opts(
        "--clients 12 --loss 2% --zero-blocks 50% --compressible --compress 3 --late-joiners 25% --join-at 60%",
    ));
    assert_all_verified(&r, "late joiners, zero map");
    let r = run(&opts(
        "--clients 6 --loss 2% --zero-blocks 50% --compressible --compress 3 --in-order --slots 4",
    ));
    assert_all_verified(&r, "in-order sinks, zero map");
}

#[test]
fn probing_finds_a_finite_link_it_was_not_told_of() {
    // 24 MiB over a 200 Mbit/s link: the floor is 1.01 s.
    let r = run(&opts(
        "--clients 10 --loss 1% --rate 200M --start-rate probe --image-size 24MiB",
    ));
    assert_all_verified(&r, "probing");
    let floor = 24.0 * 1048576.0 * 8.0 / 200e6;
    assert!(r.completion_s < 1.5 * floor, "took {} s", r.completion_s);
    assert!(r.wire_ratio < 1.10, "wire ratio {}", r.wire_ratio);
    // Growth holds once the links' queues hold more than 5 ms, which shows a report late:
    // until the queue overflows and the cut follows, the rate may sit up to ~12% above
    // (seeds 11-16: 215-221 Mbit/s).
    assert!(
        (150.0..=225.0).contains(&r.final_rate_mbps),
        "settled at {} Mbit/s",
        r.final_rate_mbps
    );
}

#[test]
fn one_slow_client_neither_sets_the_rate_nor_is_flooded_at_the_end() {
    let base = run(&opts("--clients 8 --loss 1% --image-size 8MiB"));
    let r = run(&opts(
        "--clients 8 --slow-clients 1 --slow-rate 50M --loss 1% --image-size 8MiB",
    ));
    assert_all_verified(&r, "slow client");
    // The fast ones finish as if it were not there.
    assert!(
        r.completion_s < 1.2 * base.completion_s,
        "fast clients {} s, without the slow one {} s",
        r.completion_s,
        base.completion_s
    );
    // The slow one is served at its link's pace once they are done (floor 1.34 s).
    let floor = 8.0 * 1048576.0 * 8.0 / 50e6;
    assert!(
        r.slow_completion_s < 1.4 * floor,
        "slow client {} s",
        r.slow_completion_s
    );
    assert!(r.final_rate_mbps < 60.0, "final rate {}", r.final_rate_mbps);
}

#[test]
fn a_link_that_slows_down_mid_transfer_is_followed() {
    let r = run(&opts(
        "--clients 10 --loss 1% --rate 500M --rate-step 100M --rate-step-at 30% --image-size 12MiB",
    ));
    assert_all_verified(&r, "rate step");
    assert!(
        r.final_rate_mbps <= 105.0,
        "final rate {}",
        r.final_rate_mbps
    );
    assert!(r.wire_ratio < 1.8, "wire ratio {}", r.wire_ratio);
}

#[test]
fn random_loss_of_a_few_percent_does_not_hold_the_rate_down() {
    // 32 MiB over 300 Mbit/s links that drop 3% or 5% at any rate, found by probing, with
    // a machine restarted at 40% (it joins again late): short samples of a lossy link must
    // not read as congestion. The floor is 0.89 s; before the loss floor was estimated over
    // many samples, the rate was cut again and again and took 3-4 s.
    for loss in ["3%", "5%"] {
        let r = run(&opts(&format!(
            "--clients 4 --loss {loss} --rate 300M --start-rate probe --image-size 32MiB \
             --late-joiners 1 --join-at 40%"
        )));
        assert_all_verified(&r, loss);
        let floor = 32.0 * 1048576.0 * 8.0 / 300e6;
        // From the first data packet: a hello lost on the way (5% of them) delays the start
        // by its retry, which no rate has a part in.
        let took = r.completion_s - r.first_data_s;
        // Seeds 11-18 take 1.13-1.34 x the floor; before the fix, 2.5 x.
        assert!(
            took < 1.6 * floor,
            "{loss}: took {took} s from the first data packet (floor {floor} s)",
        );
        // The restarted one needs the 40% it missed again, at the same rate. At 3%, seeds
        // 30-49 take 1.63-2.12 x the floor (this seed 2.20 x) since the last blocks of the
        // pass get more proactive repair, 1.62-1.90 x before (the others: 10% sooner now).
        // Not explained: this seed's two runs send about the same, but the later one loses
        // more in the simulated queue (125 drops against 46).
        assert!(
            r.late_completion_s < 2.3 * floor,
            "{loss}: the restarted machine took {} s",
            r.late_completion_s
        );
    }
}
